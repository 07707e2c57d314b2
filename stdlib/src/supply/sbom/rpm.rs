//! RPM's sqlite database (`rpmdb.sqlite`, RPM 4.16 and later): each installed package a header
//! blob in the `Packages` table, read for its name, epoch, version, release, architecture,
//! license, vendor and source package. The database is opened read-only and immutable (no
//! journal is written beside it), from the temporary copy the layer walk kept.

use super::SbomError;
use super::packages::Package;
use super::walk::Bytes;

// Header tags (rpmtag.h) and types.
const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const VENDOR: u32 = 1011;
const LICENSE: u32 = 1014;
const ARCH: u32 = 1022;
const SOURCERPM: u32 = 1044;
const INT32: u32 = 4;
const STRING: u32 = 6;
const I18NSTRING: u32 = 9;

/// The packages the database lists (RPM's `gpg-pubkey` entries, keys rather than packages,
/// left out).
pub(super) fn packages(bytes: &Bytes, path: &str) -> Result<Vec<Package>, SbomError> {
    let fail = |why: String| SbomError::Rpm { path: path.to_owned(), why };
    let Bytes::File(file) = bytes else { return Ok(Vec::new()) };
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = format!("file:{}?immutable=1", uri_path(file.path()));
    let db = rusqlite::Connection::open_with_flags(uri, flags).map_err(|e| fail(e.to_string()))?;
    let mut query = db.prepare("SELECT blob FROM Packages ORDER BY hnum").map_err(|e| fail(e.to_string()))?;
    let blobs = query
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    let mut packages = Vec::new();
    for blob in blobs {
        let header =
            Header::parse(&blob).ok_or_else(|| fail("a package's header is malformed".to_owned()))?;
        let (Some(name), Some(version)) = (header.string(NAME), header.string(VERSION)) else { continue };
        if name == "gpg-pubkey" {
            continue;
        }
        let version = match header.string(RELEASE) {
            Some(release) => format!("{version}-{release}"),
            None => version,
        };
        // The source package's file (`bash-5.2.26-3.fc40.src.rpm`), the purl's `upstream` as
        // other SBOM tools write it.
        let source = header.string(SOURCERPM);
        packages.push(Package {
            name,
            version,
            arch: header.string(ARCH),
            source,
            source_version: None,
            license: header.string(LICENSE),
            supplier: header.string(VENDOR),
            epoch: header.int32(EPOCH).map(|e| e.to_string()),
        });
    }
    Ok(packages)
}

/// A path as a `file:` URI's path (percent-encoding what a URI would read otherwise).
fn uri_path(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An RPM header as the database stores it: the index length and data length (big-endian),
/// the index entries (tag, type, offset, count), then the data.
struct Header<'a> {
    index: Vec<(u32, u32, usize, u32)>,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Option<Header<'a>> {
        let word = |at: usize| blob.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let il = word(0)? as usize;
        let dl = word(4)? as usize;
        let start = 8usize.checked_add(il.checked_mul(16)?)?;
        let data = blob.get(start..start.checked_add(dl)?)?;
        let mut index = Vec::with_capacity(il.min(4096));
        for i in 0..il {
            let at = 8 + i * 16;
            index.push((word(at)?, word(at + 4)?, word(at + 8)? as usize, word(at + 12)?));
        }
        Some(Header { index, data })
    }

    fn string(&self, tag: u32) -> Option<String> {
        let &(_, kind, offset, _) = self.index.iter().find(|e| e.0 == tag)?;
        if kind != STRING && kind != I18NSTRING {
            return None;
        }
        let rest = self.data.get(offset..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        (!text.is_empty()).then_some(text)
    }

    fn int32(&self, tag: u32) -> Option<u32> {
        let &(_, kind, offset, _) = self.index.iter().find(|e| e.0 == tag)?;
        if kind != INT32 {
            return None;
        }
        let b = self.data.get(offset..offset + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}
