//! The archives `ADD` unpacks, as Docker tells and reads them: a file is an archive when, once
//! decompressed (gzip, bzip2, xz or zstd, told by its first bytes), it starts with a tar header;
//! anything else, a compressed file that is no tar included, is copied as it is. Unpacking
//! refuses, naming the entry, what the builder would otherwise drop or write broken: paths that
//! leave the archive, hardlinks to anything but an earlier entry of it, entries under one of its
//! symlinks, devices and FIFOs.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use hephy_oci::layer::{Content, Entry, Tree};

use super::merge::{LinkProblem, Merge};

/// How an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Told by the first bytes (Docker's `DetectCompression`).
    fn of(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// `reader`, decompressed.
    fn decoder<'r>(self, reader: impl Read + 'r) -> io::Result<Box<dyn Read + 'r>> {
        let reader = io::BufReader::new(reader);
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(reader)),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        })
    }
}

/// `file` decompressed, if it is an archive `ADD` unpacks (a tar, compressed or not).
pub(crate) fn open(file: &Path) -> Option<Box<dyn Read>> {
    use std::io::{Seek as _, SeekFrom};
    let mut head = [0u8; 6];
    // One handle, reached through no link (as the layer writer reads a context file): a link or
    // a FIFO swapped in after the context was listed is not followed or waited on.
    let mut opened = hephy_os::open::open_no_symlinks(file).ok()?;
    let mut read = 0;
    while read < head.len() {
        match opened.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    let compression = Compression::of(&head[..read]);
    // As Docker's `IsArchivePath`: the first tar header reads.
    opened.seek(SeekFrom::Start(0)).ok()?;
    let reader = compression.decoder(opened.try_clone().ok()?).ok()?;
    let mut probe = tar::Archive::new(reader);
    let first = probe.entries().ok()?.next();
    if !matches!(first, Some(Ok(_))) {
        return None;
    }
    drop(probe);
    opened.seek(SeekFrom::Start(0)).ok()?;
    compression.decoder(opened).ok()
}

/// An entry of an archive (or a base image's layer) the builder will not write: what it is;
/// [`EntryProblem::help`] says how to fix the archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EntryProblem {
    #[error("`{path}` leaves it (`..` past its root)")]
    Escapes { path: String },
    #[error("`{path}` is a hardlink to `{target}`, outside it")]
    LinkEscapes { path: String, target: String },
    #[error("`{path}` is a hardlink to `{target}`, which is not an entry before it")]
    LinkMissing { path: String, target: String },
    #[error("`{path}` is a hardlink to itself")]
    LinkItself { path: String },
    #[error("`{path}` is a hardlink to `{target}`, a folder")]
    LinkFolder { path: String, target: String },
    #[error("`{path}` is a {kind}, which the oci builder does not write into a layer")]
    Special { path: String, kind: &'static str },
    #[error(
        "`{path}` lies under `{link}`, a symlink of the archive, so it would be written through the link"
    )]
    ThroughSymlink { path: String, link: String },
    #[error("`{path}` lies under `{parent}`, which the archive made a file")]
    UnderFile { path: String, parent: String },
}

impl EntryProblem {
    /// How to fix the archive.
    pub(crate) fn help(&self) -> String {
        match self {
            EntryProblem::Escapes { .. } => {
                "remove the entry, or give it a name inside the archive".to_owned()
            }
            EntryProblem::LinkEscapes { .. } | EntryProblem::LinkMissing { .. } => {
                "add the file before the link and link to that, or store a copy".to_owned()
            }
            EntryProblem::LinkItself { .. } => "remove the entry".to_owned(),
            EntryProblem::LinkFolder { .. } => "a hardlink names a file; use a symlink".to_owned(),
            EntryProblem::Special { .. } => {
                "remove it (a container gets its `/dev` when it runs), or build with buildah".to_owned()
            }
            EntryProblem::ThroughSymlink { .. } => "remove the entry or the link".to_owned(),
            EntryProblem::UnderFile { .. } => "remove one of them".to_owned(),
        }
    }

    /// The problem of putting a hardlink `path` → `target`.
    pub(crate) fn link(problem: LinkProblem, path: &str, target: &str) -> EntryProblem {
        let (path, target) = (path.to_owned(), target.to_owned());
        match problem {
            LinkProblem::Itself => EntryProblem::LinkItself { path },
            LinkProblem::Missing => EntryProblem::LinkMissing { path, target },
            LinkProblem::Folder => EntryProblem::LinkFolder { path, target },
        }
    }
}

/// Why unpacking failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnpackError {
    #[error(transparent)]
    Entry(#[from] EntryProblem),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The kind of a special file, for messages; `None` for the kinds that are read.
pub(crate) fn special(kind: tar::EntryType) -> Option<&'static str> {
    match kind {
        tar::EntryType::Char => Some("character device"),
        tar::EntryType::Block => Some("block device"),
        tar::EntryType::Fifo => Some("FIFO (named pipe)"),
        _ => None,
    }
}

/// `path` made relative to the root it is unpacked into (a leading `/` dropped, `.` and `..`
/// applied, as Docker's `filepath.Join(dest, name)`); `None` when `..` leaves it.
pub(crate) fn inside(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The entries of the archive `reader`, relative to its root; file bytes go to the files
/// `store` gives.
pub(crate) fn unpack(reader: impl Read, store: &mut dyn FnMut() -> PathBuf) -> Result<Tree, UnpackError> {
    let mut tree = Tree::new();
    let mut merge = Merge::new(&mut tree);
    let mut archive = tar::Archive::new(reader);
    for item in archive.entries()? {
        let mut item = item?;
        let raw = item.path()?.to_string_lossy().into_owned();
        let Some(path) = inside(&raw) else { return Err(EntryProblem::Escapes { path: raw }.into()) };
        if path.is_empty() {
            continue;
        }
        // Never written through a link or under a file the archive made.
        let mut parent = path.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            match merge.get(dir).map(|e| &e.content) {
                Some(Content::Symlink(_)) => {
                    return Err(EntryProblem::ThroughSymlink { path: raw, link: dir.to_owned() }.into());
                }
                Some(Content::Dir) | None => {}
                Some(_) => return Err(EntryProblem::UnderFile { path: raw, parent: dir.to_owned() }.into()),
            }
            parent = dir;
        }
        let header = item.header().clone();
        let mode = header.mode()? & 0o7777;
        let uid = header.uid()?;
        let gid = header.gid()?;
        let kind = header.entry_type();
        let link_name = || -> io::Result<String> {
            Ok(item.link_name()?.map(|l| l.to_string_lossy().into_owned()).unwrap_or_default())
        };
        let content = if kind.is_dir() {
            Content::Dir
        } else if kind.is_symlink() {
            Content::Symlink(link_name()?)
        } else if kind.is_hard_link() {
            let target = link_name()?;
            let Some(inner) = inside(&target) else {
                return Err(EntryProblem::LinkEscapes { path: raw, target }.into());
            };
            let entry = Entry { content: Content::Hardlink(inner), mode, uid, gid };
            merge.put(&path, entry).map_err(|p| EntryProblem::link(p, &raw, &target))?;
            continue;
        } else if kind.is_file() || kind == tar::EntryType::Continuous || kind == tar::EntryType::GNUSparse {
            let out = store();
            let mut f = std::fs::File::create(&out)?;
            io::copy(&mut item, &mut f)?;
            Content::File(out)
        } else if let Some(kind) = special(kind) {
            return Err(EntryProblem::Special { path: raw, kind }.into());
        } else {
            // Global pax headers and the like: nothing to write (as Docker ignores them).
            continue;
        };
        merge.put(&path, Entry { content, mode, uid, gid }).map_err(|p| EntryProblem::link(p, &raw, ""))?;
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry of a tar: name, kind, data (a link's target).
    type Item<'a> = (&'a str, tar::EntryType, &'a str);

    fn tar_of(entries: &[Item]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match kind {
                tar::EntryType::Link | tar::EntryType::Symlink => {
                    header.set_size(0);
                    tar.append_link(&mut header, path, data).unwrap();
                }
                _ => {
                    header.set_size(data.len() as u64);
                    // `append_data` refuses `..`; the raw name goes in as it is.
                    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                    header.set_cksum();
                    tar.append(&header, data.as_bytes()).unwrap();
                }
            }
        }
        tar.into_inner().unwrap()
    }

    fn unpacked(entries: &[Item]) -> Result<Tree, String> {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        let mut store = || {
            n += 1;
            dir.path().join(format!("f{n}"))
        };
        unpack(&tar_of(entries)[..], &mut store).map_err(|e| e.to_string())
    }

    #[test]
    fn entries_it_would_drop_or_write_broken_are_refused() {
        use tar::EntryType::{Char, Directory, Fifo, Link, Regular, Symlink};
        let cases: [(&[Item], &str); 8] = [
            (&[("../x", Regular, "x")], "`../x` leaves it"),
            (
                &[("a", Regular, "a"), ("h", Link, "../../etc/passwd")],
                "`h` is a hardlink to `../../etc/passwd`, outside it",
            ),
            (&[("h", Link, "h")], "`h` is a hardlink to itself"),
            (&[("h", Link, "etc/passwd")], "not an entry before it"),
            (
                &[("h1", Link, "h2"), ("h2", Link, "h1")],
                "`h1` is a hardlink to `h2`, which is not an entry before it",
            ),
            (&[("d/", Directory, ""), ("h", Link, "d")], "a folder"),
            (&[("null", Char, ""), ("p", Fifo, "")], "`null` is a character device"),
            (
                &[("d/lnk", Symlink, "/srv/x"), ("d/lnk/file", Regular, "x")],
                "`d/lnk/file` lies under `d/lnk`, a symlink",
            ),
        ];
        for (entries, expected) in cases {
            let e = unpacked(entries).expect_err(expected);
            assert!(e.contains(expected), "{expected}: {e}");
        }
    }

    #[test]
    fn absolute_paths_and_link_chains_land_inside() {
        use tar::EntryType::{Link, Regular};
        let tree = unpacked(&[("/abs/f", Regular, "f"), ("a", Link, "/abs/f"), ("b", Link, "a")]).unwrap();
        assert!(matches!(tree["abs/f"].content, Content::File(_)));
        assert_eq!(tree["a"].content, Content::Hardlink("abs/f".to_owned()));
        assert_eq!(tree["b"].content, Content::Hardlink("abs/f".to_owned()), "a chain names the file");
    }

    #[test]
    fn only_tars_are_archives_whatever_their_compression() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[("f", tar::EntryType::Regular, "x")]);
        let gz = |bytes: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut e, bytes).unwrap();
            e.finish().unwrap()
        };
        let bz = |bytes: &[u8]| {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            std::io::Write::write_all(&mut e, bytes).unwrap();
            e.finish().unwrap()
        };
        let xz = |bytes: &[u8]| {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            std::io::Write::write_all(&mut e, bytes).unwrap();
            e.finish().unwrap()
        };
        let zst = |bytes: &[u8]| zstd::encode_all(bytes, 3).unwrap();
        for (name, bytes, archive) in [
            ("t.tar", tar.clone(), true),
            ("t.tgz", gz(&tar), true),
            ("t.tbz", bz(&tar), true),
            ("t.txz", xz(&tar), true),
            ("t.tzst", zst(&tar), true),
            ("text.gz", gz(b"just text\n"), false),
            ("text.xz", xz(b"just text\n"), false),
            ("text", b"just text\n".to_vec(), false),
            ("fake.bz2", b"BZh91AY&SY not really".to_vec(), false),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(open(&path).is_some(), archive, "{name}");
        }
    }
}
