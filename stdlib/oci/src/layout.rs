//! hephy's local OCI image layout (`.hephy/oci`): content-addressed blobs and an `index.json`
//! naming the images built here, readable by skopeo (`oci:.hephy/oci:NAME`) and umoci.
//!
//! Blobs are written to a temporary file and renamed into place, so a crash never leaves a
//! half-written blob under its digest; `index.json` is rewritten the same way, one writer at a
//! time, its entries sorted by name. Files get the mode the process's umask gives (as every
//! other tool writes them), not a temporary file's 0600.
//!
//! It also answers whether an image is here whole (its manifest's bytes match its digest, and
//! the blobs it names are present at their sizes: a stat each, no layer is read), rewrites
//! `index.json` from a list of entries (the records of whoever uses it), removes the
//! temporaries a killed writer left, and collects the blobs nothing names.
//!
//! `index.json`, and the documents a walk for `gc` follows, are read entry by entry as JSON,
//! not as `oci-spec` types: one entry or descriptor another tool wrote that the types reject
//! (no `size`, an odd digest, a platform without `os`) hides nothing else, and an entry is
//! written back as it was read. Entries hephy adds are typed, so its own bytes stay as pinned.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::document::{self, Children, DocumentError, spec};

/// `index.json` as read: its entries one by one, as JSON (each converted on its own where it is
/// looked up, so one entry another tool wrote that the OCI types reject loses nothing), and its
/// other top-level fields.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct IndexFile {
    manifests: Vec<Value>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl IndexFile {
    /// The index in `bytes`; `None` when they are not a JSON object with a `manifests` list.
    fn parse(bytes: &[u8]) -> Option<IndexFile> {
        serde_json::from_slice(bytes).ok()
    }

    /// The bytes of the index holding `manifests` (entries as read, or hephy's as typed), with
    /// the other top-level fields of `base` kept, and hephy's schema version and media type.
    /// For entries hephy wrote these are the bytes [`document::to_bytes_pretty`] gives for
    /// [`new_index`] of them.
    fn bytes(base: Option<&IndexFile>, manifests: Vec<Value>) -> Result<Vec<u8>, DocumentError> {
        let mut index = match serde_json::to_value(new_index(Vec::new()))? {
            Value::Object(fields) => fields,
            _ => serde_json::Map::new(),
        };
        if let Some(base) = base {
            for (key, value) in &base.rest {
                index.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        index.insert("manifests".to_owned(), Value::Array(manifests));
        Ok(serde_json::to_vec_pretty(&Value::Object(index))?)
    }
}

/// The name an entry of `index.json` read as JSON has, if it has one.
fn entry_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(REF_NAME)?.as_str()
}

/// The digest an entry of `index.json` (or any descriptor) read as JSON gives, if any.
fn entry_digest(entry: &Value) -> Option<&str> {
    entry.get("digest")?.as_str()
}

/// A typed entry as the JSON written for it.
fn entry_json(entry: &spec::Descriptor) -> Result<Value, DocumentError> {
    Ok(serde_json::to_value(entry)?)
}

/// What the layout was doing to a file or folder when the file system refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutOperation {
    /// Creating a folder.
    Create,
    /// Listing a folder.
    List,
    /// Removing a blob.
    Remove,
    /// Moving a finished blob into place.
    MoveInto,
    /// Creating a temporary file in the layout.
    CreateIn,
    /// Writing a file (through a temporary and a rename).
    Write,
}

impl LayoutOperation {
    fn describe(self) -> &'static str {
        match self {
            LayoutOperation::Create => "create",
            LayoutOperation::List => "list",
            LayoutOperation::Remove => "remove",
            LayoutOperation::MoveInto => "move a blob into",
            LayoutOperation::CreateIn => "create a file in",
            LayoutOperation::Write => "write",
        }
    }
}

/// A failure of the image layout: the operation and the path, or a lock a panic left.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LayoutError {
    /// The file system refused.
    #[error("cannot {} `{}`: {source}", operation.describe(), path.display())]
    Io {
        /// What the layout was doing.
        operation: LayoutOperation,
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// A writer of `index.json` panicked.
    #[error("the layout's lock was poisoned")]
    Poisoned,
    /// A document (`index.json`, a descriptor) could not be made.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A folder of the layout is a symbolic link: nothing is written or removed through it.
    #[error("`{}` is a symbolic link", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
}

/// The layout's folder in a state folder (`.hephy/oci`): the one place that says where hephy
/// keeps its image layout.
pub const FOLDER: &str = "oci";

/// hephy's image layout folder in the state folder `state_dir`.
pub fn folder(state_dir: &Path) -> PathBuf {
    state_dir.join(FOLDER)
}

impl LayoutError {
    fn io(operation: LayoutOperation, path: &Path, source: std::io::Error) -> LayoutError {
        LayoutError::Io { operation, path: path.to_path_buf(), source: Arc::new(source) }
    }
}

/// The annotation that names an entry of `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor: what a manifest says about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Descriptor {
    /// The descriptor of `bytes`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor { media_type: media_type.to_owned(), digest: sha256(bytes), size: bytes.len() as u64 }
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }

    /// As an OCI descriptor (an error only for a digest that is not well formed).
    pub fn oci(&self) -> Result<spec::Descriptor, DocumentError> {
        document::descriptor(&self.media_type, &self.digest, self.size)
    }
}

/// The name an entry of `index.json` has, if it has one.
pub fn ref_name(entry: &spec::Descriptor) -> Option<&str> {
    entry.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

/// `entry` named `name` (its annotations are that name alone).
pub fn with_ref_name(mut entry: spec::Descriptor, name: &str) -> spec::Descriptor {
    entry.set_annotations(Some([(REF_NAME.to_owned(), name.to_owned())].into()));
    entry
}

/// An index of `manifests`, with its media type (as hephy writes every index).
pub fn new_index(manifests: Vec<spec::Descriptor>) -> spec::ImageIndex {
    let mut index = spec::ImageIndex::default();
    index.set_media_type(Some(spec::MediaType::ImageIndex));
    index.set_manifests(manifests);
    index
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `digest` is a well-formed `sha256:` digest (it becomes a file name).
pub fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What checks of whole images found, shared by the checks of one plan: per manifest whether
/// it is whole, per blob its size (`None`: not here).
#[derive(Debug, Default)]
pub struct Looked {
    manifests: Mutex<std::collections::HashMap<String, bool>>,
    sizes: Mutex<std::collections::HashMap<String, Option<u64>>>,
}

impl Looked {
    /// The digests of every blob looked at.
    pub fn blobs(&self) -> Vec<String> {
        self.sizes.lock().map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    /// The digests of the manifests and indexes read (each also among [`Looked::blobs`]).
    pub fn read(&self) -> Vec<String> {
        self.manifests.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }
}

/// What a walk from some roots found: every blob reached, and those of them that are damaged.
#[derive(Debug, Default)]
struct Walked {
    blobs: HashSet<String>,
    damaged: BTreeSet<String>,
}

/// An OCI image layout on disk.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    index: Mutex<()>,
}

impl Layout {
    /// The layout at `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Layout {
        Layout { dir, index: Mutex::new(()) }
    }

    /// hephy's layout in the state folder `state_dir` ([`folder`]), by its absolute path.
    pub fn in_state(state_dir: &Path) -> Layout {
        let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        Layout::new(folder(&state_dir))
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Refuses a blob folder that is a symbolic link (the state folder's own check refuses one
    /// at the layout's top and in it).
    /// The blobs folder (`blobs/sha256`), refused when it is a symbolic link: nothing is read,
    /// written or removed through it.
    pub fn refuse_links(&self) -> Result<PathBuf, LayoutError> {
        let blobs = self.dir.join("blobs").join("sha256");
        if fs::symlink_metadata(&blobs).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(LayoutError::Symlink { path: blobs });
        }
        Ok(blobs)
    }

    fn init(&self) -> Result<(), LayoutError> {
        let blobs = self.refuse_links()?;
        fs::create_dir_all(&blobs).map_err(|e| LayoutError::io(LayoutOperation::Create, &blobs, e))?;
        let marker = self.dir.join("oci-layout");
        if !marker.exists() {
            write_atomically(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(())
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs").join("sha256").join(hex)
    }

    /// Whether the blob `digest` is here (a regular file: a symbolic link is not a blob).
    pub fn has(&self, digest: &str) -> bool {
        valid_digest(digest) && fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// The bytes of blob `digest`, if it is here.
    pub fn read(&self, digest: &str) -> Option<Vec<u8>> {
        if !self.has(digest) {
            return None;
        }
        fs::read(self.blob_path(digest)).ok()
    }

    /// Whether the manifest or index `digest` is here whole: its bytes match its digest, and
    /// every blob it names (config and layers, or the manifests of an index, themselves whole)
    /// is present at its size. What it found is kept in `looked` (each blob is looked at once,
    /// however many images share it).
    pub fn whole(&self, digest: &str, looked: &Looked) -> bool {
        if let Some(known) = looked.manifests.lock().ok().and_then(|m| m.get(digest).copied()) {
            return known;
        }
        let whole = self.check_manifest(digest, looked);
        if let Ok(mut manifests) = looked.manifests.lock() {
            manifests.insert(digest.to_owned(), whole);
        }
        whole
    }

    fn check_manifest(&self, digest: &str, looked: &Looked) -> bool {
        if self.size(digest, looked).is_none() {
            return false;
        }
        let Some(bytes) = self.read(digest) else { return false };
        if sha256(&bytes) != digest {
            return false;
        }
        let Ok(children) = Children::of(&bytes) else { return false };
        for child in &children.manifests {
            let child_digest = child.digest().as_ref();
            if self.size(child_digest, looked) != Some(child.size()) || !self.whole(child_digest, looked) {
                return false;
            }
        }
        children
            .config
            .iter()
            .chain(&children.layers)
            .all(|blob| self.size(blob.digest().as_ref(), looked) == Some(blob.size()))
    }

    /// The size of blob `digest` (a regular file), looked at once.
    fn size(&self, digest: &str, looked: &Looked) -> Option<u64> {
        if let Some(known) = looked.sizes.lock().ok().and_then(|s| s.get(digest).copied()) {
            return known;
        }
        let size = valid_digest(digest)
            .then(|| fs::symlink_metadata(self.blob_path(digest)).ok())
            .flatten()
            .filter(fs::Metadata::is_file)
            .map(|m| m.len());
        if let Ok(mut sizes) = looked.sizes.lock() {
            sizes.insert(digest.to_owned(), size);
        }
        size
    }

    /// The entries of `index.json` by name (their digests); empty when there is no index yet,
    /// `None` when it cannot be read or is damaged. Entries without a name (as `skopeo copy …
    /// oci:DIR` writes them) are not listed: [`Layout::entries`] has them.
    pub fn names(&self) -> Option<BTreeMap<String, String>> {
        Some(self.entries()?.into_iter().filter_map(|(name, digest)| Some((name?, digest))).collect())
    }

    /// Every entry of `index.json`: its name, if it has one, and its digest; empty when there
    /// is no index yet, `None` when it cannot be read or is damaged (not JSON, no `manifests`
    /// list, an entry without a digest).
    pub fn entries(&self) -> Option<Vec<(Option<String>, String)>> {
        let path = self.dir.join("index.json");
        if fs::symlink_metadata(&path).is_err() {
            return Some(Vec::new());
        }
        let index = IndexFile::parse(&fs::read(path).ok()?)?;
        index
            .manifests
            .iter()
            .map(|entry| Some((entry_name(entry).map(str::to_owned), entry_digest(entry)?.to_owned())))
            .collect()
    }

    /// `index.json` as it is, if it can be read.
    fn index_file(&self) -> Option<IndexFile> {
        IndexFile::parse(&fs::read(self.index_path()).ok()?)
    }

    /// The path of `index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// Rewrites `index.json` to hold `named` (name → entry, whose blobs must be here) and the
    /// entries it holds now under other names, or under none, whose blobs are here; an index
    /// that cannot be read counts as none. Unnamed entries come first, in their order, then the
    /// named ones by name (as [`Layout::name`] sorts them). Written only when it changes.
    /// Returns whether it was written.
    pub fn repair(&self, named: BTreeMap<String, spec::Descriptor>) -> Result<bool, LayoutError> {
        let _one_writer = self.index.lock().map_err(|_| LayoutError::Poisoned)?;
        let path = self.index_path();
        let now = fs::read(&path).ok().and_then(|bytes| IndexFile::parse(&bytes));
        let here: Vec<&Value> = now
            .as_ref()
            .map(|index| index.manifests.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|e| entry_digest(e).is_some_and(|d| self.has(d)))
            .collect();
        let unnamed = here.iter().filter(|e| entry_name(e).is_none());
        let mut entries: BTreeMap<String, Value> =
            here.iter().filter_map(|e| Some((entry_name(e)?.to_owned(), (*e).clone()))).collect();
        for (name, entry) in named {
            entries.insert(name, entry_json(&entry)?);
        }
        let manifests: Vec<Value> = unnamed.map(|e| (*e).clone()).chain(entries.into_values()).collect();
        if now.is_none() && manifests.is_empty() {
            return Ok(false);
        }
        let bytes = IndexFile::bytes(now.as_ref(), manifests)?;
        if IndexFile::parse(&bytes) == now {
            return Ok(false);
        }
        self.init()?;
        write_atomically(&path, &bytes)?;
        Ok(true)
    }

    /// Removes the temporary files (`.tmp-*`) a killed writer left behind. Call it only while
    /// no other process writes the layout (holding the run lock). Returns how many.
    pub fn clean_temporaries(&self) -> usize {
        let mut removed = 0;
        for dir in [self.dir.clone(), self.dir.join("blobs").join("sha256")] {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-")
                    && fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Every blob reachable from `roots` (manifests and indexes), themselves included. Layers
    /// are looked at (a stat), never read.
    pub fn reachable<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
        self.walk(roots).blobs
    }

    /// The blobs reachable from `roots` that are here but damaged: a size other than the one
    /// the descriptor that names it gives, or (manifests, indexes, configs: the blobs read to
    /// walk them) bytes that do not hash to their name. Layers are looked at, never read.
    pub fn damaged<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        self.walk(roots).damaged
    }

    fn walk<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> Walked {
        let mut walked = Walked::default();
        // (digest, the size a descriptor gives, whether it is a layer)
        let mut stack: Vec<(String, Option<u64>, bool)> =
            roots.into_iter().filter(|d| valid_digest(d)).map(|d| (d.to_owned(), None, false)).collect();
        while let Some((digest, size, layer)) = stack.pop() {
            if let Some(size) = size {
                let here = fs::symlink_metadata(self.blob_path(&digest)).ok().filter(fs::Metadata::is_file);
                if here.is_some_and(|m| m.len() != size) {
                    walked.damaged.insert(digest.clone());
                }
            }
            if !walked.blobs.insert(digest.clone()) || layer {
                continue;
            }
            let Some(bytes) = self.read(&digest) else { continue };
            if sha256(&bytes) != digest {
                walked.damaged.insert(digest.clone());
            }
            // Each descriptor on its own: one a tool wrote badly does not hide the others.
            let Ok(document) = serde_json::from_slice::<Value>(&bytes) else { continue };
            let list = |key: &str| document.get(key).and_then(Value::as_array).into_iter().flatten();
            let descriptors = document
                .get("config")
                .map(|c| (c, false))
                .into_iter()
                .chain(list("layers").map(|l| (l, true)))
                .chain(list("manifests").map(|m| (m, false)));
            for (child, layer) in descriptors {
                if let Some(digest) = entry_digest(child).filter(|d| valid_digest(d)) {
                    stack.push((digest.to_owned(), child.get("size").and_then(Value::as_u64), layer));
                }
            }
        }
        walked
    }

    /// Removes the blob `digest` (a damaged one); whether it was here.
    pub fn remove(&self, digest: &str) -> Result<bool, LayoutError> {
        if !self.has(digest) {
            return Ok(false);
        }
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(LayoutError::io(LayoutOperation::Remove, &path, e)),
        }
    }

    /// Removes every blob not in `keep`, and every temporary; returns how many files and bytes.
    pub fn collect_garbage(&self, keep: &HashSet<String>) -> Result<(usize, u64), LayoutError> {
        let dir = self.refuse_links()?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(LayoutError::io(LayoutOperation::List, &dir, e)),
        };
        let (mut files, mut bytes) = (0, 0);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&format!("sha256:{name}")) {
                continue;
            }
            let size = entry.metadata().map_or(0, |m| m.len());
            fs::remove_file(entry.path())
                .map_err(|e| LayoutError::io(LayoutOperation::Remove, &entry.path(), e))?;
            files += 1;
            bytes += size;
        }
        Ok((files, bytes))
    }

    /// Stores `bytes` as a blob of `media_type`; a blob of that digest whose bytes are others
    /// (damaged) is replaced.
    pub fn put(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, LayoutError> {
        let descriptor = Descriptor::of(media_type, bytes);
        if self.read(&descriptor.digest).is_none_or(|here| here != bytes) {
            self.init()?;
            write_atomically(&self.blob_path(&descriptor.digest), bytes)?;
        }
        Ok(descriptor)
    }

    /// Moves the finished file `from` (whose digest is `digest`) into the layout, replacing
    /// the blob of that name if there is one (it may be damaged: `from` is known good).
    pub fn adopt(&self, from: &Path, digest: &str) -> Result<(), LayoutError> {
        self.init()?;
        let to = self.blob_path(digest);
        fs::rename(from, &to).map_err(|e| LayoutError::io(LayoutOperation::MoveInto, &to, e))
    }

    /// A temporary file inside the layout (so a rename into place never crosses devices).
    pub fn temp(&self) -> Result<tempfile::NamedTempFile, LayoutError> {
        self.init()?;
        tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(fs::Permissions::from_mode(0o666))
            .tempfile_in(self.dir.join("blobs").join("sha256"))
            .map_err(|e| LayoutError::io(LayoutOperation::CreateIn, &self.dir, e))
    }

    /// Names `descriptor` `name` in `index.json` (replacing what had that name), for
    /// `platform` if given.
    pub fn name(
        &self,
        name: &str,
        descriptor: &Descriptor,
        platform: Option<&spec::Platform>,
    ) -> Result<(), LayoutError> {
        let _one_writer = self.index.lock().map_err(|_| LayoutError::Poisoned)?;
        self.init()?;
        let now = self.index_file();
        let mut entries: Vec<Value> = now.as_ref().map(|index| index.manifests.clone()).unwrap_or_default();
        entries.retain(|entry| entry_name(entry) != Some(name));
        let mut entry = descriptor.oci()?;
        entry.set_platform(platform.cloned());
        entries.push(entry_json(&with_ref_name(entry, name))?);
        entries.sort_by(|a, b| entry_name(a).unwrap_or("").cmp(entry_name(b).unwrap_or("")));
        write_atomically(&self.index_path(), &IndexFile::bytes(now.as_ref(), entries)?)
    }

    /// The descriptor named `name` in `index.json`.
    #[cfg(test)]
    pub fn named(&self, name: &str) -> Option<Descriptor> {
        let entry = self.index_file()?.manifests.into_iter().find(|entry| entry_name(entry) == Some(name))?;
        let entry: spec::Descriptor = serde_json::from_value(entry).ok()?;
        Some(Descriptor {
            media_type: entry.media_type().to_string(),
            digest: entry.digest().to_string(),
            size: entry.size(),
        })
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename; the file gets the mode the
/// umask gives (0644 under the usual 022), as any other tool's.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| LayoutError::io(LayoutOperation::Write, path, e);
    let mut file = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.as_file().sync_data().map_err(fail)?;
    file.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_folder_that_is_a_link_is_never_written_through() {
        let state = tempfile::tempdir().expect("temp dir");
        let elsewhere = tempfile::tempdir().expect("temp dir");
        let layout = Layout::in_state(state.path());
        assert_eq!(layout.dir(), std::path::absolute(state.path().join("oci")).expect("absolute"));
        fs::create_dir_all(layout.dir().join("blobs")).expect("mkdir");
        std::os::unix::fs::symlink(elsewhere.path(), layout.dir().join("blobs/sha256")).expect("symlink");
        let error = layout.put("application/octet-stream", b"x").expect_err("a link");
        assert!(matches!(&error, LayoutError::Symlink { .. }), "{error:?}");
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        std::fs::write(elsewhere.path().join("precious"), "x").expect("write");
        assert!(layout.collect_garbage(&HashSet::new()).is_err());
        assert_eq!(fs::read_dir(elsewhere.path()).expect("list").count(), 1, "nothing written or removed");
    }

    #[test]
    fn a_refusal_names_the_operation_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let error = Layout::new(file.clone()).put("text/plain", b"x").expect_err("a file is no folder");
        let blobs = file.join("blobs").join("sha256");
        assert!(
            matches!(&error, LayoutError::Io { operation: LayoutOperation::Create, path, .. } if *path == blobs),
            "{error:?}"
        );
        assert!(error.to_string().starts_with(&format!("cannot create `{}`: ", blobs.display())), "{error}");
    }

    #[test]
    fn blobs_are_content_addressed_and_names_replace() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let a = layout.put("application/octet-stream", b"hello").unwrap();
        assert_eq!(a.digest, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(layout.read(&a.digest).unwrap(), b"hello");
        let b = layout.put("application/octet-stream", b"world").unwrap();
        layout.name("x", &a, None).unwrap();
        layout.name("a", &b, Some(&document::platform("linux", "amd64", None))).unwrap();
        layout.name("x", &b, None).unwrap();
        assert_eq!(layout.named("x"), Some(b.clone()));
        let index: Value =
            serde_json::from_slice(&fs::read(dir.path().join("oci/index.json")).unwrap()).unwrap();
        let names: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["annotations"][REF_NAME].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "x"]);
        assert_eq!(index["manifests"][0]["platform"]["os"], "linux");
        assert!(dir.path().join("oci/oci-layout").is_file());
        assert!(!layout.has("sha256:../../etc"));
    }

    /// The bytes of `index.json` are pinned (they must not move with how indexes are written).
    #[test]
    fn index_bytes_are_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let a = layout.put("application/vnd.oci.image.manifest.v1+json", b"{}").unwrap();
        let b = layout.put("application/vnd.oci.image.index.v1+json", b"{ }").unwrap();
        layout.name("web@linux/arm/v7", &a, Some(&document::platform("linux", "arm", Some("v7")))).unwrap();
        layout.name("web", &b, None).unwrap();
        assert_eq!(
            sha256(&fs::read(layout.index_path()).unwrap()),
            "sha256:1f7b8e03feb27b09f455da21d2049fff1e3382f131f93af986ec713dcb5f171b"
        );
    }

    /// An entry without a name (as `skopeo copy … oci:DIR` writes it) is listed by `entries`,
    /// not by `names`, and kept by `repair` and `name`.
    #[test]
    fn entries_without_a_name_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let foreign = layout.put("application/vnd.oci.image.manifest.v1+json", b"{}").unwrap();
        let mine = layout.put("application/vnd.oci.image.manifest.v1+json", b"{ }").unwrap();
        let index = json!({"schemaVersion": 2, "manifests": [foreign.json()]});
        write_atomically(&layout.index_path(), index.to_string().as_bytes()).unwrap();
        assert_eq!(layout.names(), Some(BTreeMap::new()));
        assert_eq!(layout.entries(), Some(vec![(None, foreign.digest.clone())]));
        let entry = with_ref_name(mine.oci().unwrap(), "mine");
        assert!(layout.repair(BTreeMap::from([("mine".to_owned(), entry)])).unwrap());
        layout.name("other", &mine, None).unwrap();
        let expected = vec![
            (None, foreign.digest.clone()),
            (Some("mine".to_owned()), mine.digest.clone()),
            (Some("other".to_owned()), mine.digest.clone()),
        ];
        assert_eq!(layout.entries(), Some(expected));
    }

    /// An entry of `index.json` that the OCI types reject (here: no `size`, as another tool may
    /// write it) beside hephy's: `names` and `entries` still list every entry, `name` keeps it
    /// verbatim with the others, and `repair` keeps it too.
    #[test]
    fn an_entry_the_types_reject_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let foreign = layout.put("application/vnd.oci.image.manifest.v1+json", b"{}").unwrap();
        let mine = layout.put("application/vnd.oci.image.manifest.v1+json", b"{ }").unwrap();
        layout.name("mine", &mine, None).unwrap();
        let odd = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": foreign.digest,
            "annotations": {REF_NAME: "foreign", "x.other": "kept"},
            "somethingNew": [1, 2],
        });
        let mut index: Value = serde_json::from_slice(&fs::read(layout.index_path()).unwrap()).unwrap();
        index["manifests"].as_array_mut().unwrap().insert(0, odd.clone());
        index["annotations"] = json!({"x.index": "kept"});
        write_atomically(&layout.index_path(), index.to_string().as_bytes()).unwrap();
        let names = BTreeMap::from([
            ("foreign".to_owned(), foreign.digest.clone()),
            ("mine".to_owned(), mine.digest.clone()),
        ]);
        assert_eq!(layout.names(), Some(names));
        layout.name("other", &mine, None).unwrap();
        let read = || -> Value { serde_json::from_slice(&fs::read(layout.index_path()).unwrap()).unwrap() };
        let index = read();
        assert_eq!(index["manifests"][0], odd, "the foreign entry is kept verbatim");
        assert_eq!(index["annotations"]["x.index"], "kept");
        let digests: Vec<(Option<String>, String)> = ["foreign", "mine", "other"]
            .iter()
            .zip([&foreign, &mine, &mine])
            .map(|(n, d)| (Some((*n).to_owned()), d.digest.clone()))
            .collect();
        assert_eq!(layout.entries(), Some(digests.clone()));
        assert_eq!(layout.named("mine"), Some(mine.clone()));
        let entry = with_ref_name(mine.oci().unwrap(), "mine");
        layout.repair(BTreeMap::from([("mine".to_owned(), entry)])).unwrap();
        assert_eq!(read()["manifests"][0], odd, "repair keeps it verbatim too");
        assert_eq!(layout.entries(), Some(digests));
    }

    /// A manifest with one descriptor the OCI types reject (no `size`): every well-formed one
    /// is still followed, so gc keeps the config and layers of an image it must keep.
    #[test]
    fn a_bad_descriptor_hides_no_other_child_from_gc() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let layer = layout.put("application/vnd.oci.image.layer.v1.tar+gzip", b"layer bytes").unwrap();
        let odd = layout.put("application/vnd.oci.image.layer.v1.tar+gzip", b"odd layer").unwrap();
        let config = layout.put("application/vnd.oci.image.config.v1+json", b"{}").unwrap();
        let stray = layout.put("application/octet-stream", b"nothing names me").unwrap();
        let bad = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": odd.digest});
        let manifest = json!({"schemaVersion": 2, "config": config.json(), "layers": [layer.json(), bad]});
        let manifest = layout
            .put("application/vnd.oci.image.manifest.v1+json", manifest.to_string().as_bytes())
            .unwrap();
        let keep = layout.reachable([manifest.digest.as_str()]);
        assert_eq!(
            keep,
            HashSet::from([
                manifest.digest.clone(),
                config.digest.clone(),
                layer.digest.clone(),
                odd.digest.clone()
            ])
        );
        assert!(layout.damaged([manifest.digest.as_str()]).is_empty());
        assert_eq!(layout.collect_garbage(&keep).unwrap().0, 1);
        assert!(layout.has(&config.digest) && layout.has(&layer.digest) && layout.has(&odd.digest));
        assert!(!layout.has(&stray.digest));
    }

    /// A blob of a size other than its descriptor's, or a manifest whose bytes do not hash to
    /// its name, is damaged; a layer is never read.
    #[test]
    fn damaged_blobs_are_found_by_size_and_manifests_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let layer = layout.put("application/vnd.oci.image.layer.v1.tar+gzip", b"layer bytes").unwrap();
        let config = layout.put("application/vnd.oci.image.config.v1+json", b"{}").unwrap();
        let manifest = json!({"schemaVersion": 2, "config": config.json(), "layers": [layer.json()]});
        let manifest = layout
            .put("application/vnd.oci.image.manifest.v1+json", manifest.to_string().as_bytes())
            .unwrap();
        let roots = [manifest.digest.as_str()];
        assert!(layout.damaged(roots).is_empty());
        assert_eq!(layout.reachable(roots).len(), 3);
        // Same size, other bytes: a layer is not read, so not found.
        fs::write(layout.blob_path(&layer.digest), b"LAYER BYTES").unwrap();
        assert!(layout.damaged(roots).is_empty());
        fs::write(layout.blob_path(&layer.digest), b"short").unwrap();
        assert_eq!(layout.damaged(roots), BTreeSet::from([layer.digest.clone()]));
        fs::write(layout.blob_path(&config.digest), b"[]").unwrap();
        assert_eq!(layout.damaged(roots), BTreeSet::from([layer.digest.clone(), config.digest.clone()]));
        // `put` replaces a damaged blob of the same digest.
        layout.put("application/vnd.oci.image.config.v1+json", b"{}").unwrap();
        assert_eq!(fs::read(layout.blob_path(&config.digest)).unwrap(), b"{}");
        assert!(layout.remove(&layer.digest).unwrap());
        assert!(!layout.remove(&layer.digest).unwrap());
    }
}
