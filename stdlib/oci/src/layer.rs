//! Reproducible layers: a set of file-system entries written as a compressed tar whose bytes
//! depend only on the entries — paths sorted, parents before children, mtime 0, the owners and
//! modes the builder gives, hardlinks as tar links, no user or group names — compressed by
//! [`super::compress`] (gzip with no timestamp or file name, or zstd; on every core, the same
//! bytes).
//!
//! A layer is written once per process for what it is made of: the second platform's build of
//! an image copies the same files to the same places, and gets the first one's layer without
//! reading a file again (files are told apart by their stat, as the stat cache does).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};

use sha2::{Digest as _, Sha256};

use super::compress::{self, Codec, Encoder, Settings};
use super::layout::{Layout, LayoutError, hex};
use hephy_os::stop::Stopped;

/// Where an entry's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file on disk, read when the layer is written.
    File(PathBuf),
    /// A folder.
    Dir,
    /// A symbolic link to this target.
    Symlink(String),
    /// A hardlink to another entry of the same layer (its path, written before this one).
    Hardlink(String),
    /// A file of a base image, still inside its layer blob (`path` as the layer names it); the
    /// builder reads it out before it goes into a new layer.
    Layer { blob: String, path: String },
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its content.
    pub content: Content,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
}

/// Entries by path, relative to `/` (`usr/bin/tool`).
pub type Tree = BTreeMap<String, Entry>;

/// A written layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The compressed blob's digest.
    pub digest: String,
    /// The compressed blob's size.
    pub size: u64,
    /// The digest of the uncompressed tar (the image config's `diff_id`).
    pub diff_id: String,
    /// Its media type (`tar+gzip`, `tar+zstd`).
    pub media_type: &'static str,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why writing a layer failed: a message, and whether the writer was stopped (a cancelled run,
/// a node past its `timeout`), which says nothing about the layer to another build.
type Failure = LayerError;

/// A layer that could not be written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LayerError {
    /// The layout refused its temporary file or the finished blob.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The node's work was stopped while writing it.
    #[error("cannot write a layer: {0}")]
    Stopped(Stopped),
    /// A hardlink names no entry the layer holds before it (or a folder): unpackers refuse such
    /// a layer, so it is never written.
    #[error(
        "cannot add `/{entry}` to a layer: it is a hardlink to `/{target}`, which the layer does not hold as a file before it"
    )]
    Hardlink {
        /// The hardlink.
        entry: String,
        /// What it names.
        target: String,
    },
    /// Reading an entry or writing the tar failed; `entry` is the path being added, if any.
    #[error("{}: {source}", match entry { Some(path) => format!("cannot add `/{path}` to a layer"), None => "cannot write a layer".to_owned() })]
    Io {
        /// The entry being added.
        entry: Option<String>,
        /// Why.
        source: Arc<io::Error>,
    },
}

/// One layer's writing, shared by every build that asks for the same layer while it runs.
type Once = Arc<OnceLock<Result<Layer, Failure>>>;

/// Layers written (or being written) by this process, by [`identity`].
static WRITTEN: LazyLock<Mutex<HashMap<blake3::Hash, Once>>> = LazyLock::new(Mutex::default);

/// Writes `tree` as a layer blob into `layout`, or gives the layer this process already wrote
/// from the same entries (waiting for it when another build is writing it).
pub fn write(tree: &Tree, layout: &Layout, settings: &Settings<'_>) -> Result<Layer, LayerError> {
    check_links(tree)?;
    let now = || write_now(tree, layout, settings);
    let Some(key) = identity(tree, layout, settings.codec) else { return now() };
    let once = Arc::clone(WRITTEN.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default());
    match once.get_or_init(|| write_now(tree, layout, settings)).clone() {
        // Still there (nothing removes blobs during a run, but a layer is never assumed).
        Ok(layer) if layout.has(&layer.digest) => Ok(layer),
        Ok(_) => now(),
        Err(error) => {
            if matches!(error, LayerError::Stopped(_)) {
                // Forget a writing that was stopped: the next build writes the layer anew.
                let mut written = WRITTEN.lock().unwrap_or_else(PoisonError::into_inner);
                if written.get(&key).is_some_and(|o| Arc::ptr_eq(o, &once)) {
                    written.remove(&key);
                }
                // Another build's stop is not this one's.
                settings.stop.check().map_err(LayerError::Stopped)?;
                return now();
            }
            Err(error)
        }
    }
}

/// Every hardlink of `tree` names a file or link written before it (entries go in path order).
fn check_links(tree: &Tree) -> Result<(), LayerError> {
    for (path, entry) in tree {
        if let Content::Hardlink(target) = &entry.content {
            let before = target < path && tree.get(target).is_some_and(|t| t.content != Content::Dir);
            if !before {
                return Err(LayerError::Hardlink { entry: path.clone(), target: target.clone() });
            }
        }
    }
    Ok(())
}

/// What a layer is made of: the layout, and each entry's path, owner, mode and content, a file
/// by its path and stat. `None` when a file cannot be looked at (the write reports it).
fn identity(tree: &Tree, layout: &Layout, codec: Codec) -> Option<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut put = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    put(layout.dir().as_os_str().as_encoded_bytes());
    put(codec.name().as_bytes());
    for (path, entry) in tree {
        put(path.as_bytes());
        put(&[u64::from(entry.mode), entry.uid, entry.gid].map(u64::to_le_bytes).concat());
        match &entry.content {
            Content::File(source) => {
                let meta = std::fs::symlink_metadata(source).ok()?;
                put(b"file");
                put(source.as_os_str().as_encoded_bytes());
                let stat = [meta.len(), meta.dev(), meta.ino()].map(u64::to_le_bytes).concat();
                let times = [meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec()]
                    .map(i64::to_le_bytes)
                    .concat();
                put(&stat);
                put(&times);
            }
            Content::Dir => put(b"dir"),
            Content::Symlink(target) => {
                put(b"symlink");
                put(target.as_bytes());
            }
            Content::Hardlink(target) => {
                put(b"hardlink");
                put(target.as_bytes());
            }
            Content::Layer { .. } => return None,
        }
    }
    Some(hasher.finalize())
}

fn write_now(tree: &Tree, layout: &Layout, settings: &Settings<'_>) -> Result<Layer, Failure> {
    let temp = layout.temp()?;
    // A stopped writer says so, and nothing else (the temporary file goes with `temp`).
    let fail = |entry: Option<String>, e: io::Error| match compress::stopped(&e) {
        Some(stopped) => LayerError::Stopped(stopped),
        None => LayerError::Io { entry, source: Arc::new(e) },
    };
    let plain = |e: io::Error| fail(None, e);
    let file = temp.as_file().try_clone().map_err(plain)?;
    let compressed =
        Hashing { inner: io::BufWriter::with_capacity(1 << 20, file), hasher: Sha256::new(), count: 0 };
    let encoder = Encoder::new(compressed, *settings).map_err(plain)?;
    let tar_out = Hashing { inner: encoder, hasher: Sha256::new(), count: 0 };
    let mut tar = tar::Builder::new(tar_out);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    for (path, entry) in with_parents(tree) {
        append(&mut tar, &path, &entry).map_err(|e| fail(Some(path.clone()), e))?;
    }
    let tar_out = tar.into_inner().map_err(plain)?;
    let diff_id = format!("sha256:{}", hex(&tar_out.hasher.finalize()));
    let mut compressed = tar_out.inner.finish().map_err(plain)?;
    compressed.flush().map_err(plain)?;
    let Hashing { inner, hasher, count: size } = compressed;
    drop(inner);
    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    // Moved into place even when a blob of that name is there: its bytes may be damaged (a
    // truncated copy, a flipped bit), these are known to hash to the name. The rename is atomic,
    // so a reader of the old file keeps reading the same bytes.
    let (_, path) = temp.keep().map_err(|e| plain(e.error))?;
    layout.adopt(&path, &digest)?;
    Ok(Layer { digest, size, diff_id, media_type: settings.codec.media_type() })
}

/// `tree` plus an entry for every parent folder it does not list (root-owned, 0755).
fn with_parents(tree: &Tree) -> Tree {
    let mut out = tree.clone();
    for path in tree.keys() {
        let mut parent = path.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            out.entry(dir.to_owned()).or_insert(Entry { content: Content::Dir, mode: 0o755, uid: 0, gid: 0 });
            parent = dir;
        }
    }
    out
}

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, entry: &Entry) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(entry.uid);
    header.set_gid(entry.gid);
    header.set_mode(entry.mode);
    match &entry.content {
        Content::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{path}/"), io::empty())
        }
        Content::Symlink(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, path, target)
        }
        Content::Hardlink(target) => {
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            tar.append_link(&mut header, path, target)
        }
        Content::Layer { path: inner, .. } => {
            Err(io::Error::other(format!("`{inner}` of a base layer was not read out before writing")))
        }
        Content::File(source) => {
            // No link followed anywhere below the (canonical) context, a regular file only.
            let file: File = hephy_os::open::open_no_symlinks(source)?;
            let len = file.metadata()?.len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(len);
            tar.append_data(&mut header, path, io::Read::take(file, len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &std::path::Path) -> Tree {
        std::fs::write(dir.join("a"), b"alpha").unwrap();
        std::fs::write(dir.join("b"), b"beta").unwrap();
        let file = |name: &str, mode| Entry { content: Content::File(dir.join(name)), mode, uid: 0, gid: 0 };
        Tree::from([
            ("app/bin/a".to_owned(), file("a", 0o755)),
            ("app/b".to_owned(), file("b", 0o644)),
            (
                "app/link".to_owned(),
                Entry { content: Content::Symlink("b".into()), mode: 0o777, uid: 0, gid: 0 },
            ),
        ])
    }

    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let first =
            write(&tree(one.path()), &Layout::new(one.path().join("oci")), &Settings::gzip()).unwrap();
        let second =
            write(&tree(two.path()), &Layout::new(two.path().join("oci")), &Settings::gzip()).unwrap();
        assert_eq!(first, second);
        let blob = Layout::new(one.path().join("oci")).read(&first.digest).unwrap();
        assert_eq!(blob.len() as u64, first.size);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        let listed: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (e.path().unwrap().display().to_string(), h.mode().unwrap(), h.mtime().unwrap())
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("app/".to_owned(), 0o755, 0),
                ("app/b".to_owned(), 0o644, 0),
                ("app/bin/".to_owned(), 0o755, 0),
                ("app/bin/a".to_owned(), 0o755, 0),
                ("app/link".to_owned(), 0o777, 0),
            ]
        );
    }

    #[test]
    fn a_hardlink_to_no_earlier_file_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let link = |t: &str| Entry { content: Content::Hardlink(t.to_owned()), mode: 0o644, uid: 0, gid: 0 };
        let mut entries = tree(dir.path());
        for (path, target) in
            [("app/h", "etc/passwd"), ("app/a", "app/b/x"), ("app/h", "app/h"), ("app/h", "app/bin")]
        {
            let mut broken = entries.clone();
            broken.insert(path.to_owned(), link(target));
            let e = write(&broken, &layout, &Settings::gzip()).expect_err(target);
            assert!(matches!(&e, LayerError::Hardlink { entry, .. } if entry == path), "{e}");
        }
        assert!(!dir.path().join("oci").exists(), "nothing written");
        entries.insert("app/c".to_owned(), link("app/b"));
        write(&entries, &layout, &Settings::gzip()).unwrap();
    }

    #[test]
    fn a_layer_is_written_once_per_process_until_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let entries = tree(dir.path());
        let first = write(&entries, &layout, &Settings::gzip()).unwrap();
        assert_eq!(
            write(&entries, &layout, &Settings::gzip()).unwrap(),
            first,
            "the same entries: the same layer"
        );
        // Concurrent builds asking for it get the one written.
        let layers: Vec<Layer> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| write(&entries, &layout, &Settings::gzip()).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(layers.iter().all(|l| *l == first));
        // A changed file (another size: another stat) is a new layer, never the remembered one.
        std::fs::write(dir.path().join("b"), b"beta, changed").unwrap();
        let changed = write(&entries, &layout, &Settings::gzip()).unwrap();
        assert_ne!(changed.digest, first.digest);
        let blob = layout.read(&changed.digest).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        let mut b = String::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_str() == Some("app/b") {
                std::io::Read::read_to_string(&mut entry, &mut b).unwrap();
            }
        }
        assert_eq!(b, "beta, changed");
    }
}
