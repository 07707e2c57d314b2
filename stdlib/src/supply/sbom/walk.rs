//! An image's merged file system as its layers make it, read in one pass over each layer's
//! stream: whiteouts (`.wh.NAME`, `.wh..wh..opq`) applied, hardlinks resolved when they are read
//! (they name an entry already there, as an unpacker sees it), the SHA-1 and SHA-256 of each
//! regular file of the layers asked for computed as it streams by (a base image's files are not
//! read; a build's hardlink to one, which no common tool writes, has that one base layer read
//! again for it). Only metadata is kept per path; the bytes of the few files
//! that name installed packages (dpkg, apk and RPM databases, `os-release`) are kept too, small
//! ones in memory, the RPM database in a temporary file of the layout. Nothing is written to
//! the host's file system by path, and links are resolved inside the image, never outside it.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;

use hephy_oci::layout::{Descriptor, Layout};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::SbomError;
use crate::builders::oci::archive::inside;

/// The most a package database read into memory may hold.
const MAX_KEPT: u64 = 64 << 20;
/// The most all package databases read into memory may hold together.
const MAX_KEPT_TOTAL: u64 = 256 << 20;

/// The files whose bytes are kept: where package managers record what they installed.
const KEPT: &[&str] = &[
    "etc/os-release",
    "usr/lib/os-release",
    "var/lib/dpkg/status",
    "lib/apk/db/installed",
    "usr/lib/apk/db/installed",
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/share/rpm/rpmdb.sqlite",
];

/// The folder of distroless images' one-file-per-package dpkg status.
pub(super) const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d";

fn kept(path: &str) -> bool {
    KEPT.contains(&path)
        || path
            .strip_prefix(DPKG_STATUS_D)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|name| !name.is_empty() && !name.contains('/') && !name.ends_with(".md5sums"))
}

fn spilled(path: &str) -> bool {
    path.ends_with(".sqlite")
}

/// A file's SHA-1 and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sums {
    pub(super) sha1: [u8; 20],
    pub(super) sha256: [u8; 32],
}

/// A path of the merged file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// A regular file (or a hardlink to one): its checksums when its layer was hashed, and the
    /// entry that holds its bytes (the layer's index, the entry's name as the layer writes it).
    File {
        sums: Option<Sums>,
        holder: Arc<(usize, String)>,
    },
    Dir,
    Symlink(String),
    /// A device or FIFO.
    Other,
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) kind: Kind,
    /// The index of the layer that wrote it last.
    pub(super) layer: usize,
}

/// The bytes of a kept file.
#[derive(Debug)]
pub(super) enum Bytes {
    Memory(Vec<u8>),
    File(tempfile::NamedTempFile),
}

/// The merged file system.
#[derive(Debug, Default)]
pub(super) struct Merged {
    pub(super) nodes: BTreeMap<String, Node>,
    kept: BTreeMap<String, Arc<Bytes>>,
}

impl Merged {
    /// Applies each layer of `layers`, bottom first; the files of those from `hashed` on get
    /// their checksums.
    pub(super) fn read(layout: &Layout, layers: &[Descriptor], hashed: usize) -> Result<Merged, SbomError> {
        let mut merged = Merged::default();
        for (index, layer) in layers.iter().enumerate() {
            merged.apply(layout, index, layer, index >= hashed)?;
        }
        // A hardlink of a hashed layer to a file of one below: that file's layer read again.
        let mut wanted: BTreeMap<usize, BTreeMap<String, Option<Sums>>> = BTreeMap::new();
        for node in merged.nodes.values() {
            if let Kind::File { sums: None, holder } = &node.kind
                && node.layer >= hashed
            {
                wanted.entry(holder.0).or_default().insert(holder.1.clone(), None);
            }
        }
        for (index, mut names) in wanted {
            hash_again(layout, &layers[index], &mut names)?;
            for node in merged.nodes.values_mut() {
                if let Kind::File { sums: sums @ None, holder } = &mut node.kind
                    && holder.0 == index
                {
                    *sums = names.get(&holder.1).copied().flatten();
                }
            }
        }
        Ok(merged)
    }

    fn apply(
        &mut self,
        layout: &Layout,
        index: usize,
        layer: &Descriptor,
        hash: bool,
    ) -> Result<(), SbomError> {
        let fail = |source| SbomError::Layer { digest: layer.digest.clone(), source: Arc::new(source) };
        let mut archive = open(layout, layer)?;
        // What this layer put: an opaque whiteout hides only what lies below it.
        let mut added: HashSet<String> = HashSet::new();
        for item in archive.entries().map_err(fail)? {
            let mut item = item.map_err(fail)?;
            let raw = item.path().map_err(fail)?.to_string_lossy().into_owned();
            let Some(path) = inside(&raw) else {
                return Err(SbomError::Escapes { layer: layer.digest.clone(), path: raw });
            };
            if path.is_empty() {
                continue;
            }
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            if name == ".wh..wh..opq" {
                let below: Vec<String> = self.below(dir).into_iter().filter(|p| !added.contains(p)).collect();
                for gone in below {
                    self.nodes.remove(&gone);
                    self.kept.remove(&gone);
                }
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                let gone = if dir.is_empty() { gone.to_owned() } else { format!("{dir}/{gone}") };
                self.remove(&gone);
                continue;
            }
            let kind = item.header().entry_type();
            let node = if kind.is_dir() {
                Kind::Dir
            } else if kind.is_symlink() {
                let target = item.link_name().map_err(fail)?.map(|l| l.to_string_lossy().into_owned());
                Kind::Symlink(target.unwrap_or_default())
            } else if kind.is_hard_link() {
                let target = item.link_name().map_err(fail)?.map(|l| l.to_string_lossy().into_owned());
                let target = target.unwrap_or_default();
                let Some(inner) = inside(&target) else {
                    return Err(SbomError::Escapes { layer: layer.digest.clone(), path: target });
                };
                // A link to nothing (hephy's builds refuse such layers) or to a folder names no file.
                let Some(Node { kind: found @ Kind::File { .. }, .. }) = self.nodes.get(&inner).cloned()
                else {
                    continue;
                };
                let bytes = self.kept.get(&inner).cloned();
                self.put(&path, Node { kind: found, layer: index });
                added.insert(path.clone());
                match bytes {
                    Some(bytes) if kept(&path) => {
                        self.kept.insert(path, bytes);
                    }
                    _ => {}
                }
                continue;
            } else if kind.is_file()
                || kind == tar::EntryType::Continuous
                || kind == tar::EntryType::GNUSparse
            {
                let (sums, bytes) = if kept(&path) {
                    let (sums, bytes) = keep(layout, &path, &mut item, layer)?;
                    (Some(sums), Some(bytes))
                } else if hash {
                    (Some(digest(&mut item, std::io::sink()).map_err(fail)?), None)
                } else {
                    (None, None)
                };
                let holder = Arc::new((index, raw));
                self.put(&path, Node { kind: Kind::File { sums, holder }, layer: index });
                if let Some(bytes) = bytes {
                    self.kept.insert(path.clone(), Arc::new(bytes));
                    let total: u64 = self
                        .kept
                        .values()
                        .map(|b| match &**b {
                            Bytes::Memory(bytes) => bytes.len() as u64,
                            Bytes::File(_) => 0,
                        })
                        .sum();
                    if total > MAX_KEPT_TOTAL {
                        return Err(SbomError::TooMuch {
                            layer: layer.digest.clone(),
                            limit: MAX_KEPT_TOTAL,
                        });
                    }
                }
                added.insert(path);
                continue;
            } else {
                Kind::Other
            };
            self.put(&path, Node { kind: node, layer: index });
            added.insert(path);
        }
        Ok(())
    }

    /// Puts `node` at `path`: a folder over a folder keeps what is below it; anything else
    /// replaces what was there, a folder with all below it.
    fn put(&mut self, path: &str, node: Node) {
        let folder_over_folder =
            node.kind == Kind::Dir && self.nodes.get(path).is_some_and(|old| old.kind == Kind::Dir);
        if !folder_over_folder {
            self.remove(path);
        }
        self.nodes.insert(path.to_owned(), node);
    }

    /// Removes `path` and everything below it.
    fn remove(&mut self, path: &str) {
        for below in self.below(path) {
            self.nodes.remove(&below);
            self.kept.remove(&below);
        }
        self.nodes.remove(path);
        self.kept.remove(path);
    }

    /// The paths below `dir` (every path when `dir` is empty).
    fn below(&self, dir: &str) -> Vec<String> {
        if dir.is_empty() {
            return self.nodes.keys().cloned().collect();
        }
        let prefix = format!("{dir}/");
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// `path` with the symbolic links on its way followed inside the image (an absolute
    /// target starts again at the image's root, `..` stops at it); `None` past 40 links.
    pub(super) fn resolve(&self, path: &str) -> Option<String> {
        let mut parts: Vec<String> =
            path.split('/').filter(|p| !p.is_empty() && *p != ".").map(str::to_owned).rev().collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = parts.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            done.push(part);
            if let Some(Node { kind: Kind::Symlink(target), .. }) = self.nodes.get(&done.join("/")) {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                parts.extend(
                    target.split('/').filter(|p| !p.is_empty() && *p != ".").map(str::to_owned).rev(),
                );
            }
        }
        Some(done.join("/"))
    }

    /// The kept bytes of the regular file `path` names in the image, if it is one of those kept.
    pub(super) fn bytes(&self, path: &str) -> Option<(String, Arc<Bytes>)> {
        let real = self.resolve(path)?;
        match self.nodes.get(&real) {
            Some(Node { kind: Kind::File { .. }, .. }) => {}
            _ => return None,
        }
        self.kept.get(&real).map(|bytes| (real, bytes.clone()))
    }

    /// The kept files directly in the folder `dir` names in the image, by name.
    pub(super) fn kept_in(&self, dir: &str) -> Vec<(String, Arc<Bytes>)> {
        let Some(real) = self.resolve(dir) else { return Vec::new() };
        if self.nodes.get(&real).is_none_or(|n| n.kind != Kind::Dir) {
            return Vec::new();
        }
        let prefix = format!("{real}/");
        self.kept
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/'))
            .filter(|(p, _)| matches!(self.nodes.get(*p), Some(Node { kind: Kind::File { .. }, .. })))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect()
    }
}

/// Reads `item` to its end, writing it to `out`, and returns its checksums.
fn digest(item: &mut impl Read, mut out: impl Write) -> std::io::Result<Sums> {
    let mut sha1 = Sha1::new();
    let mut sha256 = Sha256::new();
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let n = item.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        sha1.update(&buffer[..n]);
        sha256.update(&buffer[..n]);
        out.write_all(&buffer[..n])?;
    }
    Ok(Sums { sha1: sha1.finalize().into(), sha256: sha256.finalize().into() })
}

/// The checksums of the entries of `layer` named in `names` (the last of a name, as an
/// unpacker leaves it).
fn hash_again(
    layout: &Layout,
    layer: &Descriptor,
    names: &mut BTreeMap<String, Option<Sums>>,
) -> Result<(), SbomError> {
    let fail = |source| SbomError::Layer { digest: layer.digest.clone(), source: Arc::new(source) };
    let mut archive = open(layout, layer)?;
    for item in archive.entries().map_err(fail)? {
        let mut item = item.map_err(fail)?;
        let raw = item.path().map_err(fail)?.to_string_lossy().into_owned();
        if let Some(sums) = names.get_mut(&raw) {
            *sums = Some(digest(&mut item, std::io::sink()).map_err(fail)?);
        }
    }
    Ok(())
}

/// Reads a kept file: into memory (at most [`MAX_KEPT`]), or a database into a temporary file.
fn keep(
    layout: &Layout,
    path: &str,
    item: &mut impl Read,
    layer: &Descriptor,
) -> Result<(Sums, Bytes), SbomError> {
    let fail = |source| SbomError::Layer { digest: layer.digest.clone(), source: Arc::new(source) };
    if spilled(path) {
        let mut file = layout.temp().map_err(SbomError::Layout)?;
        let sums = digest(item, std::io::BufWriter::new(file.as_file_mut())).map_err(fail)?;
        return Ok((sums, Bytes::File(file)));
    }
    let mut bytes = Vec::new();
    let mut limited = item.take(MAX_KEPT + 1);
    let sums = digest(&mut limited, &mut bytes).map_err(fail)?;
    if bytes.len() as u64 > MAX_KEPT {
        return Err(SbomError::TooLarge {
            layer: layer.digest.clone(),
            path: path.to_owned(),
            limit: MAX_KEPT,
        });
    }
    Ok((sums, Bytes::Memory(bytes)))
}

/// The tar stream of `layer`, decompressed as its media type says.
fn open(layout: &Layout, layer: &Descriptor) -> Result<tar::Archive<Box<dyn Read>>, SbomError> {
    if !layout.has(&layer.digest) {
        return Err(SbomError::MissingBlob { digest: layer.digest.clone() });
    }
    let file = std::fs::File::open(layout.blob_path(&layer.digest))
        .map_err(|source| SbomError::Layer { digest: layer.digest.clone(), source: Arc::new(source) })?;
    let file = std::io::BufReader::new(file);
    let media = layer.media_type.as_str();
    let reader: Box<dyn Read> = if media.ends_with("gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if media.ends_with("zstd") {
        let decoder = zstd::stream::read::Decoder::with_buffer(file)
            .map_err(|source| SbomError::Layer { digest: layer.digest.clone(), source: Arc::new(source) })?;
        Box::new(decoder)
    } else if media.ends_with("tar") {
        Box::new(file)
    } else {
        return Err(SbomError::MediaType { digest: layer.digest.clone(), media_type: media.to_owned() });
    };
    Ok(tar::Archive::new(reader))
}
