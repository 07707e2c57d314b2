//! Input files: finding them (build contexts with `.dockerignore`, task globs) and hashing them.
//!
//! Hashing is parallel (rayon), reads small files into a reused per-thread buffer and streams
//! large ones, hashes each path at most once per run, and consults a stat cache (size, mtime,
//! ctime, inode → digest) so unchanged files are never read. A changed stat means re-hash.
//!
//! Files that several phases need whole (a Dockerfile is scanned for its base images, hashed,
//! and built) are read through [`read_shared`]: once per process while their stat holds, so
//! what is built is the very bytes that were hashed.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::dockerignore::{DockerIgnore, ignore_files};
use crate::reads::{ContextPaths, Reach};

/// Where a node's input files come from, relative to the graph's folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileSource {
    /// A Docker build context: every file under `dir` not excluded by its `.dockerignore`, plus
    /// the Dockerfile (which may live elsewhere).
    Context {
        /// The context folder.
        dir: String,
        /// The Dockerfile, relative to the graph's folder.
        dockerfile: String,
    },
    /// Files matching any of the globs (task inputs or outputs).
    Globs(Vec<String>),
    /// The part of a Docker build context its Dockerfile reads: the files of `dir` (after its
    /// ignore file) that `paths` match, with the Dockerfile and the ignore file in effect. A
    /// symbolic link the paths name or lead through makes it the whole context.
    ContextPaths {
        /// The context folder.
        dir: String,
        /// The Dockerfile, relative to the graph's folder.
        dockerfile: String,
        /// What of it the build reads.
        paths: Arc<ContextPaths>,
    },
}

/// A problem finding input files; it fails the plan for that node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilesError {
    /// A `.dockerignore` pattern or task glob that does not parse.
    #[error("{0}")]
    Pattern(String),
    /// Something that is not a regular file, a folder or a symbolic link (a FIFO would hang
    /// the read, a device never end it).
    #[error("`{path}` is a {kind}: only regular files, folders and symbolic links can be inputs")]
    Special {
        /// The path, relative to the graph's folder.
        path: String,
        /// What it is (`FIFO (named pipe)`, `character device`, …).
        kind: &'static str,
    },
    /// An ignore file that is a symbolic link leading out of the folder it must stay in.
    #[error(
        "`{path}` is a symbolic link that leads out of `{boundary}`: an ignore file is read only from inside the build context; replace the link with the file"
    )]
    IgnoreEscapes {
        /// The ignore file, relative to the graph's folder.
        path: String,
        /// The folder it must stay in.
        boundary: String,
    },
    /// A folder or file that cannot be read.
    #[error("cannot read `{path}`: {message}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        message: String,
    },
}

/// Folders never treated as inputs: hephy's own state and VCS metadata of task globs.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    /// Relative paths of folders to skip everywhere (the state folder).
    pub dirs: Vec<String>,
}

/// What a listing looked at beyond the files it found: every folder it read (a file added or
/// removed there changes the folder) and the `.dockerignore` files that shaped it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watched {
    /// Folders read, relative to the root (`.` for the root itself).
    pub dirs: BTreeSet<String>,
    /// Files read that are not inputs themselves.
    pub files: BTreeSet<String>,
    /// Declared outputs found (tasks' `outputs`), a plan's inputs too: a changed one is a reason.
    pub outputs: BTreeSet<String>,
}

/// Lists the files of `source`, relative to `root`, sorted.
pub fn collect(root: &Path, source: &FileSource, exclusions: &Exclusions) -> Result<Vec<String>, FilesError> {
    collect_watched(root, source, exclusions, &mut Watched::default())
}

/// [`collect`], noting in `watched` every folder read and every `.dockerignore` consulted.
pub fn collect_watched(
    root: &Path,
    source: &FileSource,
    exclusions: &Exclusions,
    watched: &mut Watched,
) -> Result<Vec<String>, FilesError> {
    match source {
        FileSource::Context { dir, dockerfile } => {
            let mut files =
                context_files(root, dir, dockerfile, exclusions, watched, None)?.unwrap_or_default();
            files.insert(dockerfile.clone());
            Ok(files.into_iter().collect())
        }
        FileSource::ContextPaths { dir, dockerfile, paths } => {
            let mut seen = Watched::default();
            let Some(mut files) = context_files(root, dir, dockerfile, exclusions, &mut seen, Some(paths))?
            else {
                // A link where the paths lead: what it points at is read, so is every file.
                let whole = FileSource::Context { dir: dir.clone(), dockerfile: dockerfile.clone() };
                return collect_watched(root, &whole, exclusions, watched);
            };
            watched.dirs.extend(seen.dirs);
            watched.files.extend(seen.files);
            files.insert(dockerfile.clone());
            // The ignore file in effect shapes what the paths match: part of the key too.
            if let Some(ignore) =
                ignore_files(dir, dockerfile).into_iter().find(|f| fs::symlink_metadata(root.join(f)).is_ok())
            {
                files.insert(ignore);
            }
            Ok(files.into_iter().collect())
        }
        FileSource::Globs(globs) => glob_files(root, globs, exclusions, watched),
    }
}

/// The folder holding `path` (`.` for a top-level one).
fn parent_of(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent.to_owned(),
        _ => ".".to_owned(),
    }
}

/// `dir/name`, or just `name` for the graph's own folder (`.`): a path relative to the graph's
/// folder, as plans and manifests name files.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "." || dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

fn io_error(path: &Path, e: &std::io::Error) -> FilesError {
    FilesError::Io { path: path.display().to_string(), message: e.to_string() }
}

/// An error when `kind` is not a regular file, a folder or a symbolic link.
fn refuse_special(path: &str, kind: fs::FileType) -> Result<(), FilesError> {
    match crate::open::special_kind(kind) {
        Some(what) if !kind.is_dir() && !kind.is_symlink() => {
            Err(FilesError::Special { path: path.to_owned(), kind: what })
        }
        _ => Ok(()),
    }
}

/// The ignore rules of the context `dir` whose Dockerfile is `dockerfile` (both relative to
/// `root`): the Dockerfile's own `<Dockerfile>.dockerignore` when it has one, else the context's
/// `.dockerignore`, else none. An ignore file that is a symbolic link is followed only while it
/// stays in the context (in the Dockerfile's folder, for a Dockerfile outside the context);
/// one that leads out is refused, and nothing of what it points at is read or quoted.
pub fn context_ignore(root: &Path, dir: &str, dockerfile: &str) -> Result<DockerIgnore, FilesError> {
    let context = lexical(dir);
    for file in ignore_files(dir, dockerfile) {
        let rel = lexical(&file);
        // The folder the file must stay in, and its path from there.
        let (boundary, inner) = match rel.strip_prefix(&format!("{context}/")) {
            Some(inner) if context != "." => (context.clone(), inner.to_owned()),
            _ if context == "." && !rel.starts_with("../") => (".".to_owned(), rel.clone()),
            _ => match rel.rsplit_once('/') {
                Some((folder, name)) => (folder.to_owned(), name.to_owned()),
                None => (".".to_owned(), rel.clone()),
            },
        };
        let full = root.join(&rel);
        let folder = match File::open(root.join(&boundary)) {
            Ok(folder) => folder,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&root.join(&boundary), &e)),
        };
        let escapes = || FilesError::IgnoreEscapes { path: file.clone(), boundary: boundary.clone() };
        // Opened with no link followed; a link is read and followed by hand while its target
        // stays in the boundary (a few hops at most).
        let mut inner = inner;
        // `None` when there is no such file; `Some(Err)` after too many links.
        let mut opened = Some(Err(escapes()));
        for _ in 0..8 {
            match crate::open::open_inside(&folder, Path::new(&inner)) {
                Ok(file) => {
                    opened = Some(Ok(file));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    opened = None;
                    break;
                }
                Err(e) => {
                    let at = root.join(&boundary).join(&inner);
                    if !fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                        return Err(io_error(&full, &e));
                    }
                    let target = fs::read_link(&at).map_err(|e| io_error(&full, &e))?;
                    let target = target.to_str().ok_or_else(escapes)?;
                    if target.starts_with('/') {
                        return Err(escapes());
                    }
                    let next = lexical(&format!("{}/{target}", parent_of(&inner)));
                    if next == ".." || next.starts_with("../") || next == "." {
                        return Err(escapes());
                    }
                    inner = next;
                }
            }
        }
        let Some(opened) = opened else { continue };
        let mut opened = opened?;
        let mut text = String::new();
        opened.read_to_string(&mut text).map_err(|e| io_error(&full, &e))?;
        return DockerIgnore::parse(&text).map_err(|e| FilesError::Pattern(format!("{file}: {e}")));
    }
    Ok(DockerIgnore::default())
}

/// `path` with `.` parts and `x/..` pairs taken out (`.` when nothing is left).
fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() { ".".to_owned() } else { parts.join("/") }
}

/// The files of the context `dir` after its ignore file; with `only`, those it reads alone,
/// walking no folder it cannot reach (`None`: a symbolic link stands where it leads).
fn context_files(
    root: &Path,
    dir: &str,
    dockerfile: &str,
    exclusions: &Exclusions,
    watched: &mut Watched,
    only: Option<&ContextPaths>,
) -> Result<Option<BTreeSet<String>>, FilesError> {
    let base = root.join(dir);
    watched.files.extend(ignore_files(dir, dockerfile));
    let ignore = context_ignore(root, dir, dockerfile)?;
    let mut out = BTreeSet::new();
    let mut stack: Vec<String> = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let folder = if rel.is_empty() { base.clone() } else { base.join(&rel) };
        watched.dirs.insert(if rel.is_empty() { dir.to_owned() } else { join(dir, &rel) });
        let entries = fs::read_dir(&folder).map_err(|e| io_error(&folder, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&folder, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let full = join(dir, &path);
            if exclusions.dirs.contains(&full) {
                continue;
            }
            let kind = entry.file_type().map_err(|e| io_error(&entry.path(), &e))?;
            if !ignore.excludes(&path) {
                refuse_special(&full, kind)?;
            }
            let read = only.map_or(Reach::Yes, |only| only.read(&path, kind.is_dir(), kind.is_symlink()));
            if kind.is_dir() {
                if !ignore.prunes(&path) && read == Reach::Yes {
                    stack.push(path);
                }
            } else if !ignore.excludes(&path) {
                match read {
                    Reach::Yes => {
                        out.insert(full);
                    }
                    Reach::No => {}
                    Reach::Link => return Ok(None),
                }
            }
        }
    }
    Ok(Some(out))
}

fn glob_files(
    root: &Path,
    globs: &[String],
    exclusions: &Exclusions,
    watched: &mut Watched,
) -> Result<Vec<String>, FilesError> {
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = BTreeSet::new();
    // Literal paths need no pattern and no walk: a file is itself, a folder is all it holds.
    let (literal, patterns): (Vec<&String>, Vec<&String>) =
        globs.iter().partition(|g| !g.contains(['*', '?', '[', '{', '\\']));
    let mut folders: Vec<String> = Vec::new();
    for path in literal {
        match fs::symlink_metadata(root.join(path.as_str())) {
            Ok(meta) if meta.is_dir() => folders.push(format!("{path}/**")),
            Ok(meta) => {
                refuse_special(path, meta.file_type())?;
                out.insert(path.clone());
            }
            // Missing now: its folder changes when it appears.
            Err(_) => {
                watched.dirs.insert(parent_of(path));
            }
        }
    }
    let patterns: Vec<String> = patterns.into_iter().cloned().chain(folders).collect();
    if patterns.is_empty() {
        return Ok(out.into_iter().collect());
    }
    let mut builder = GlobSetBuilder::new();
    let mut bases: BTreeSet<String> = BTreeSet::new();
    for glob in &patterns {
        let g = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| FilesError::Pattern(format!("invalid glob `{glob}`: {}", e.kind())))?;
        builder.add(g);
        bases.insert(literal_prefix(glob));
    }
    let set = builder.build().map_err(|e| FilesError::Pattern(e.to_string()))?;
    // Walk only the literal folders the globs start from, and each only once.
    let mut walked: Vec<String> = Vec::new();
    for base in bases {
        if walked.iter().any(|w| w == "." || base == *w || base.starts_with(&format!("{w}/"))) {
            continue;
        }
        walk_globs(root, &base, &set, exclusions, &mut out, watched)?;
        walked.push(base);
    }
    Ok(out.into_iter().collect())
}

/// The folder part of a glob before its first wildcard (`src/**/*.rs` → `src`).
fn literal_prefix(glob: &str) -> String {
    let mut parts = Vec::new();
    let pieces: Vec<&str> = glob.split('/').collect();
    for (i, part) in pieces.iter().enumerate() {
        if i + 1 == pieces.len() || part.contains(['*', '?', '[', '{']) {
            break;
        }
        parts.push(*part);
    }
    if parts.is_empty() { ".".to_owned() } else { parts.join("/") }
}

fn walk_globs(
    root: &Path,
    base: &str,
    set: &GlobSet,
    exclusions: &Exclusions,
    out: &mut BTreeSet<String>,
    watched: &mut Watched,
) -> Result<(), FilesError> {
    let start = if base == "." { root.to_path_buf() } else { root.join(base) };
    let meta = match fs::symlink_metadata(&start) {
        Ok(meta) => meta,
        Err(_) => {
            watched.dirs.insert(parent_of(base));
            return Ok(());
        }
    };
    if !meta.is_dir() {
        if set.is_match(base) {
            refuse_special(base, meta.file_type())?;
            out.insert(base.to_owned());
        }
        return Ok(());
    }
    let mut stack = vec![if base == "." { String::new() } else { base.to_owned() }];
    while let Some(rel) = stack.pop() {
        let folder = if rel.is_empty() { root.to_path_buf() } else { root.join(&rel) };
        watched.dirs.insert(if rel.is_empty() { ".".to_owned() } else { rel.clone() });
        let entries = fs::read_dir(&folder).map_err(|e| io_error(&folder, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&folder, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if (rel.is_empty() && name == ".git") || exclusions.dirs.contains(&path) {
                continue;
            }
            let kind = entry.file_type().map_err(|e| io_error(&entry.path(), &e))?;
            if kind.is_dir() {
                stack.push(path);
            } else if set.is_match(&path) {
                refuse_special(&path, kind)?;
                out.insert(path);
            }
        }
    }
    Ok(())
}

/// What a file's stat said when it was last hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
}

impl Stat {
    fn of(meta: &fs::Metadata) -> Stat {
        Stat {
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// A file read whole, with the stat it had just before.
type Held = (Stat, Arc<[u8]>);

/// Files read whole by [`read_shared`].
static SHARED: LazyLock<Mutex<HashMap<PathBuf, Held>>> = LazyLock::new(Mutex::default);

/// Whether [`SHARED`] holds anything: hashing asks for every file, and most runs share a few
/// Dockerfiles at most, so the common answer costs no lock.
static ANY_SHARED: AtomicBool = AtomicBool::new(false);

/// The bytes of `path`, read once per process while its stat holds: a later call (or the
/// hashing of the same file) gets the same bytes without reading again; a file whose stat
/// changed is read anew. Only a regular file is read (a FIFO or a device is an error).
pub fn read_shared(path: &Path) -> std::io::Result<Arc<[u8]>> {
    read_shared_from(path, crate::open::open_regular(path)?)
}

/// [`read_shared`] of a file its caller opened (say, below a folder only), shared under `path`:
/// the path its hashing reads it by.
pub fn read_shared_from(path: &Path, mut file: File) -> std::io::Result<Arc<[u8]>> {
    let stat = Stat::of(&file.metadata()?);
    if let Some(bytes) = shared(path, &stat) {
        return Ok(bytes);
    }
    // Stat (of the handle) before read: if the file changes in between, the stat kept is the
    // older one, and the next look sees a different stat and reads again (never new stat with
    // old bytes).
    let mut bytes = Vec::with_capacity(usize::try_from(stat.size).unwrap_or(0).min(64 << 20));
    file.read_to_end(&mut bytes)?;
    let bytes: Arc<[u8]> = bytes.into();
    SHARED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(path.to_path_buf(), (stat, Arc::clone(&bytes)));
    ANY_SHARED.store(true, Ordering::Release);
    Ok(bytes)
}

/// The bytes [`read_shared`] holds for `path`, if its stat then was `stat`.
fn shared(path: &Path, stat: &Stat) -> Option<Arc<[u8]>> {
    if !ANY_SHARED.load(Ordering::Acquire) {
        return None;
    }
    let held = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    held.get(path).filter(|(then, _)| then == stat).map(|(_, bytes)| Arc::clone(bytes))
}

/// Remembered digests by path, valid while the stat is unchanged.
pub type StatCache = HashMap<String, (Stat, String)>;

/// The digests of one hashing pass, and the stat entries to remember.
#[derive(Debug, Default)]
pub struct Hashed {
    /// Path → digest: `f:<blake3>` (a file), `x:<blake3>` (executable), `l:<target>` (a
    /// symlink, hashed as a link), `missing`.
    pub digests: HashMap<String, String>,
    /// New or changed stat-cache entries.
    pub fresh_stats: Vec<(String, Stat, String)>,
    /// How many files were read (the rest came from the stat cache).
    pub read: usize,
}

/// Files whose mtime is this close to now are not cached: a write within the clock's
/// granularity could go unseen (git's "racy clean" problem).
const RACY_NS: i64 = 2_000_000_000;

/// Hashes `paths` (relative to `root`) in parallel, each once, consulting `cache`.
pub fn hash_all(root: &Path, paths: &BTreeSet<String>, cache: &StatCache) -> Hashed {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    // Files are opened below the root's handle, following no link out of it.
    let folder = File::open(root).ok();
    let results: Vec<(String, String, Option<Stat>, bool)> = paths
        .par_iter()
        .map(|path| {
            let full = root.join(path);
            let (digest, stat, read) = hash_one(&full, path, folder.as_ref(), cache);
            let cacheable = stat.filter(|s| now_ns - s.mtime_ns > RACY_NS && now_ns - s.ctime_ns > RACY_NS);
            (path.clone(), digest, cacheable, read)
        })
        .collect();
    let mut hashed = Hashed::default();
    for (path, digest, stat, read) in results {
        if read {
            hashed.read += 1;
            if let Some(stat) = stat {
                hashed.fresh_stats.push((path.clone(), stat, digest.clone()));
            }
        }
        hashed.digests.insert(path, digest);
    }
    hashed
}

fn hash_one(
    full: &Path,
    rel: &str,
    folder: Option<&File>,
    cache: &StatCache,
) -> (String, Option<Stat>, bool) {
    let meta = match fs::symlink_metadata(full) {
        Ok(meta) => meta,
        Err(_) => return ("missing".to_owned(), None, false),
    };
    if meta.file_type().is_symlink() {
        let target = fs::read_link(full).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
        return (format!("l:{target}"), None, false);
    }
    if !meta.is_file() {
        // Listing refuses these; one that appeared since is never opened (a FIFO would block).
        return ("unreadable:not a regular file".to_owned(), None, false);
    }
    let stat = Stat::of(&meta);
    let exec = meta.permissions().mode() & 0o111 != 0;
    if let Some((cached, digest)) = cache.get(rel)
        && *cached == stat
        && digest.starts_with(if exec { "x:" } else { "f:" })
    {
        return (digest.clone(), Some(stat), false);
    }
    if let Some(bytes) = shared(full, &stat) {
        let hash = blake3::hash(&bytes).to_hex();
        return (format!("{}:{hash}", if exec { "x" } else { "f" }), Some(stat), true);
    }
    // Read through a handle checked to be a regular file, reached by no link that leads out of
    // the root, and described by that handle's own stat: the path is not looked up again
    // between the check and the read.
    let opened = match folder {
        Some(folder) => crate::open::open_inside(folder, Path::new(rel)),
        None => crate::open::open_no_symlinks(full),
    };
    let read = opened.and_then(|file| {
        let meta = file.metadata()?;
        let hash = hash_open(file, meta.len())?;
        Ok((hash, meta))
    });
    match read {
        Ok((hash, meta)) => {
            let exec = meta.permissions().mode() & 0o111 != 0;
            (format!("{}:{hash}", if exec { "x" } else { "f" }), Some(Stat::of(&meta)), true)
        }
        Err(e) => (format!("unreadable:{}", e.kind()), None, true),
    }
}

/// Files up to this size are read whole into a reused buffer; larger ones are streamed.
const SMALL_FILE: u64 = 256 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(SMALL_FILE as usize));
}

/// The blake3 digest (hex) of a file's bytes (a regular file only: a FIFO or device is an error).
pub fn hash_file(path: &Path, size_hint: u64) -> std::io::Result<String> {
    hash_open(crate::open::open_regular(path)?, size_hint)
}

/// The blake3 digest (hex) of what `file` holds.
fn hash_open(mut file: File, size_hint: u64) -> std::io::Result<String> {
    if size_hint <= SMALL_FILE {
        return BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            file.read_to_end(&mut buffer)?;
            Ok(blake3::hash(&buffer).to_hex().to_string())
        });
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut file)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The state folder relative to `root`, when it is inside it (so it is never an input).
pub fn relative_inside(root: &Path, dir: &Path) -> Option<String> {
    let root = root.canonicalize().ok()?;
    let dir: PathBuf = dir.canonicalize().ok()?;
    let rel = dir.strip_prefix(&root).ok()?;
    Some(rel.to_string_lossy().replace('\\', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let full = root.join(path);
        fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        fs::write(full, text).expect("write");
    }

    #[test]
    fn a_shared_file_is_hashed_from_the_bytes_read_and_read_again_once_changed() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(root, "Dockerfile", "FROM scratch\n");
        let first = read_shared(&root.join("Dockerfile")).expect("read");
        assert!(Arc::ptr_eq(&first, &read_shared(&root.join("Dockerfile")).expect("read")), "read once");
        let paths: BTreeSet<String> = ["Dockerfile".to_owned()].into();
        let hashed = hash_all(root, &paths, &StatCache::new());
        assert_eq!(hashed.digests["Dockerfile"], format!("f:{}", blake3::hash(b"FROM scratch\n").to_hex()));
        // A change (a different size, so a different stat) is read anew, by both.
        write(root, "Dockerfile", "FROM scratch\nCOPY . /\n");
        let second = read_shared(&root.join("Dockerfile")).expect("read");
        assert_eq!(&*second, b"FROM scratch\nCOPY . /\n");
        let hashed = hash_all(root, &paths, &StatCache::new());
        assert_eq!(hashed.digests["Dockerfile"], format!("f:{}", blake3::hash(&second).to_hex()));
    }

    #[test]
    fn context_honours_dockerignore_and_adds_the_dockerfile() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(root, "app/Dockerfile", "FROM scratch\n");
        write(root, "app/.dockerignore", "*.md\nbuild\n!keep.md\n");
        write(root, "app/src/main.c", "int main(){}\n");
        write(root, "app/README.md", "x");
        write(root, "app/keep.md", "x");
        write(root, "app/build/out.o", "x");
        write(root, "docker/app.Dockerfile", "FROM scratch\n");
        let files = collect(
            root,
            &FileSource::Context { dir: "app".into(), dockerfile: "docker/app.Dockerfile".into() },
            &Exclusions::default(),
        )
        .expect("collect");
        assert_eq!(
            files,
            ["app/.dockerignore", "app/Dockerfile", "app/keep.md", "app/src/main.c", "docker/app.Dockerfile"]
        );
    }

    /// The paths a Dockerfile reads: what they match after `.dockerignore`, the Dockerfile
    /// and the ignore file; no folder they cannot reach is read; a link they name or lead
    /// through is the whole context.
    #[test]
    fn context_paths_list_what_the_sources_match_after_the_ignore_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(root, "app/Dockerfile", "FROM scratch\n");
        write(root, "app/.dockerignore", "src/**/*.tmp\n");
        write(root, "app/README.md", "x");
        write(root, "app/go.mod", "x");
        write(root, "app/src/main.go", "x");
        write(root, "app/src/deep/cache.tmp", "x");
        write(root, "app/docs/index.md", "x");
        let reads = crate::ContextReads::of(
            ["src/", "go.*"].map(|p| crate::ReadPath { pattern: p.to_owned(), exclude: Vec::new() }),
        );
        let crate::ContextReads::Paths(paths) = reads else { panic!("paths") };
        let source =
            FileSource::ContextPaths { dir: "app".into(), dockerfile: "app/Dockerfile".into(), paths };
        let mut watched = Watched::default();
        let files = collect_watched(root, &source, &Exclusions::default(), &mut watched).expect("collect");
        assert_eq!(files, ["app/.dockerignore", "app/Dockerfile", "app/go.mod", "app/src/main.go"]);
        assert!(!watched.dirs.contains("app/docs"), "a folder no source reaches is not read");
        assert!(watched.dirs.contains("app/src/deep") && watched.dirs.contains("app"));
        // `go.*` names a link: what it points at is read, so is the whole context.
        std::os::unix::fs::symlink("README.md", root.join("app/go.sum")).expect("symlink");
        let files = collect(root, &source, &Exclusions::default()).expect("collect");
        assert!(files.contains(&"app/docs/index.md".to_owned()), "{files:?}");
    }

    #[test]
    fn a_dockerfiles_own_ignore_file_replaces_the_contexts() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(root, "app/.dockerignore", "*.md\n");
        write(root, "app/README.md", "x");
        write(root, "app/debug.log", "x");
        write(root, "app/web.Dockerfile", "FROM scratch\n");
        write(root, "app/web.Dockerfile.dockerignore", "*.log\n");
        write(root, "docker/api.Dockerfile", "FROM scratch\n");
        write(root, "docker/api.Dockerfile.dockerignore", "README.md\n");
        let context =
            |dockerfile: &str| FileSource::Context { dir: "app".into(), dockerfile: dockerfile.into() };
        let mut watched = Watched::default();
        let files =
            collect_watched(root, &context("app/web.Dockerfile"), &Exclusions::default(), &mut watched)
                .expect("collect");
        assert_eq!(
            files,
            ["app/.dockerignore", "app/README.md", "app/web.Dockerfile", "app/web.Dockerfile.dockerignore"],
            "the Dockerfile's own, not merged with the context's"
        );
        assert!(
            watched.files.contains("app/web.Dockerfile.dockerignore")
                && watched.files.contains("app/.dockerignore")
        );
        // Beside a Dockerfile outside the context.
        let files =
            collect(root, &context("docker/api.Dockerfile"), &Exclusions::default()).expect("collect");
        assert_eq!(
            files,
            [
                "app/.dockerignore",
                "app/debug.log",
                "app/web.Dockerfile",
                "app/web.Dockerfile.dockerignore",
                "docker/api.Dockerfile"
            ]
        );
        // None of its own: the context's.
        write(root, "app/other.Dockerfile", "FROM scratch\n");
        let files = collect(root, &context("app/other.Dockerfile"), &Exclusions::default()).expect("collect");
        assert!(!files.iter().any(|f| f.ends_with(".md")) && files.contains(&"app/debug.log".to_owned()));
    }

    #[test]
    fn an_ignore_file_linking_out_of_the_context_is_refused_unread() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(root, "secret.txt", "[unclosed\n");
        write(root, "app/Dockerfile", "FROM scratch\n");
        write(root, "app/patterns", "*.md\n");
        std::os::unix::fs::symlink("../secret.txt", root.join("app/Dockerfile.dockerignore"))
            .expect("symlink");
        let source = FileSource::Context { dir: "app".into(), dockerfile: "app/Dockerfile".into() };
        let error = collect(root, &source, &Exclusions::default()).expect_err("refused");
        assert!(
            matches!(&error, FilesError::IgnoreEscapes { path, .. } if path == "app/Dockerfile.dockerignore"),
            "{error}"
        );
        assert!(!error.to_string().contains("unclosed"), "nothing of the target is quoted: {error}");
        // A link that stays inside is followed.
        std::fs::remove_file(root.join("app/Dockerfile.dockerignore")).expect("rm");
        std::os::unix::fs::symlink("patterns", root.join("app/.dockerignore")).expect("symlink");
        write(root, "app/x.md", "x");
        let files = collect(root, &source, &Exclusions::default()).expect("collect");
        assert!(!files.contains(&"app/x.md".to_owned()), "{files:?}");
    }

    #[test]
    fn globs_walk_only_their_folders_and_skip_state() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(root, "src/a.rs", "a");
        write(root, "src/deep/b.rs", "b");
        write(root, "src/c.txt", "c");
        write(root, "scripts/test.sh", "t");
        write(root, ".hephy/state.db", "s");
        let globs = FileSource::Globs(vec!["src/**/*.rs".into(), "scripts/*.sh".into(), "**/*.db".into()]);
        let exclusions = Exclusions { dirs: vec![".hephy".into()] };
        let files = collect(root, &globs, &exclusions).expect("collect");
        assert_eq!(files, ["scripts/test.sh", "src/a.rs", "src/deep/b.rs"]);
        let literal = FileSource::Globs(vec!["src".into(), "scripts/test.sh".into(), "missing.txt".into()]);
        let files = collect(root, &literal, &exclusions).expect("collect");
        assert_eq!(
            files,
            ["scripts/test.sh", "src/a.rs", "src/c.txt", "src/deep/b.rs"],
            "a folder is all it holds"
        );
        assert_eq!(literal_prefix("src/**/*.rs"), "src");
        assert_eq!(literal_prefix("*.sh"), ".");
        assert_eq!(literal_prefix("a/b/c.txt"), "a/b");
    }

    #[test]
    fn hashes_files_links_and_modes_and_uses_the_stat_cache() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(root, "a.txt", "hello");
        write(root, "run.sh", "#!/bin/sh\n");
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::symlink("a.txt", root.join("link")).expect("symlink");
        let paths: BTreeSet<String> =
            ["a.txt", "run.sh", "link", "gone"].map(String::from).into_iter().collect();
        let first = hash_all(root, &paths, &StatCache::new());
        assert_eq!(first.digests["a.txt"], format!("f:{}", blake3::hash(b"hello").to_hex()));
        assert!(first.digests["run.sh"].starts_with("x:"));
        assert_eq!(first.digests["link"], "l:a.txt");
        assert_eq!(first.digests["gone"], "missing");
        assert_eq!(first.read, 2);
        // A cache entry with the file's current stat is trusted without reading the file.
        let meta = fs::symlink_metadata(root.join("a.txt")).expect("stat");
        let mut cache = StatCache::new();
        cache.insert("a.txt".into(), (Stat::of(&meta), "f:cached".into()));
        let only: BTreeSet<String> = ["a.txt".to_owned()].into_iter().collect();
        let second = hash_all(root, &only, &cache);
        assert_eq!(second.digests["a.txt"], "f:cached");
        assert_eq!(second.read, 0);
        // A changed stat means re-hash, never "assume changed".
        let mut stale = Stat::of(&meta);
        stale.size += 1;
        cache.insert("a.txt".into(), (stale, "f:cached".into()));
        let third = hash_all(root, &only, &cache);
        assert_eq!(third.digests["a.txt"], first.digests["a.txt"]);
        assert_eq!(third.read, 1);
    }
}
