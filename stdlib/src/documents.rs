//! Where a graph file's document as read is kept between commands: the state folder's
//! `documents/`, one entry per graph file (named after the file and its absolute path), replaced
//! when the file changes, and the secret that seals the entries (the user's, outside any
//! repository: `$XDG_CACHE_HOME/hephy/document.key`, else `~/.cache/hephy/document.key`; made
//! on first use). The entry's format, key and seal are the dsl's ([`DocumentStore`]); this
//! module only stores bytes; a temporary a killed writer left is removed the next time the
//! entry is kept. Nothing is read or written through a symbolic link: the state
//! folder and its `documents/` are opened without following one and the entry is opened,
//! written and renamed relative to them; an entry that is a link is neither read nor replaced
//! (the state folder's check reports it).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use hephy_dsl::DocumentStore;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// The state folder's folder of entries.
const DIR: &str = "documents";

/// An entry larger than this is neither kept nor read (a document is a few times its file's
/// size; files are at most [`hephy_dsl::limits::MAX_FILE_BYTES`]).
const MAX_ENTRY_BYTES: u64 = 8 * hephy_dsl::limits::MAX_FILE_BYTES;

/// The entry of one graph file in one state folder.
#[derive(Debug)]
pub(crate) struct StateDocument {
    state_dir: PathBuf,
    name: String,
    secret: [u8; 32],
}

impl StateDocument {
    /// The entry of the graph file `graph_file` in the state folder `state_dir`, sealed with the
    /// user's secret; `None` where there is no secret to be had (no cache folder, or one that
    /// cannot be written): the graph file is then parsed every time.
    pub(crate) fn new(graph_file: &Path, state_dir: &Path) -> Option<StateDocument> {
        Some(StateDocument::with_secret(graph_file, state_dir, user_secret()?))
    }

    fn with_secret(graph_file: &Path, state_dir: &Path, secret: [u8; 32]) -> StateDocument {
        let absolute = graph_file
            .canonicalize()
            .or_else(|_| std::path::absolute(graph_file))
            .unwrap_or_else(|_| graph_file.to_path_buf());
        let file = graph_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let hash = blake3::hash(absolute.as_os_str().as_encoded_bytes()).to_hex();
        StateDocument { state_dir: state_dir.to_path_buf(), name: format!("{file}-{}", &hash[..16]), secret }
    }

    /// The folder `documents/` of the state folder, opened without following a link to either;
    /// made (a real folder) when `make`.
    fn folder(&self, make: bool) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if make {
            std::fs::create_dir_all(&self.state_dir)?;
        }
        let state = rustix::fs::open(&self.state_dir, flags, Mode::empty())?;
        if make {
            match rustix::fs::mkdirat(&state, DIR, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(File::from(rustix::fs::openat(&state, DIR, flags, Mode::empty())?))
    }
}

impl StateDocument {
    /// Removes the temporaries of this entry that a writer killed before its rename left in
    /// `dir` (its `documents/`): those not changed for [`STALE_TEMP`] (a live writer's is a few
    /// milliseconds old; one removed under a writer only makes its rename fail, and the entry
    /// is kept next time). Each is removed as the name it is (a link, not what it points to).
    fn sweep(&self, dir: &File) {
        let prefix = format!(".{}.", self.name);
        let Ok(listing) = rustix::fs::Dir::read_from(dir) else { return };
        let now = std::time::SystemTime::now();
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy();
            if !(name.starts_with(&prefix) && name.ends_with(".tmp")) {
                continue;
            }
            let Ok(st) = rustix::fs::statat(dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let changed = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or_default());
            if now.duration_since(changed).is_ok_and(|age| age >= STALE_TEMP) {
                let _ = rustix::fs::unlinkat(dir, entry.file_name(), AtFlags::empty());
            }
        }
    }
}

/// How long a temporary of an entry goes unchanged before [`StateDocument::sweep`] takes it
/// for one a killed writer left.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(600);

impl DocumentStore for StateDocument {
    fn fetch(&self) -> io::Result<Vec<u8>> {
        let dir = self.folder(false)?;
        let file = hephy_os::open::open_beneath(&dir, Path::new(&self.name))?;
        let mut bytes = Vec::new();
        file.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(io::Error::other("the entry is too large"));
        }
        Ok(bytes)
    }

    fn keep(&self, bytes: &[u8]) {
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return;
        }
        let Ok(dir) = self.folder(true) else { return };
        // An entry that is a link is left for the state folder's check to report.
        if rustix::fs::statat(&dir, self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
        {
            return;
        }
        // A new file beside the entry (a fresh random name, made exclusively: nothing that
        // is already there, a link or a FIFO, is opened), renamed over it: a reader sees the
        // old entry or the new, never half of one.
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Some((temp, fd)) = (0..4)
            .find_map(|_| {
                let temp = format!(".{}.{}.tmp", self.name, random_hex()?);
                match rustix::fs::openat(&dir, temp.as_str(), flags, Mode::from_raw_mode(0o600)) {
                    Ok(fd) => Some(Some((temp, fd))),
                    Err(rustix::io::Errno::EXIST) => None,
                    Err(_) => Some(None),
                }
            })
            .flatten()
        else {
            return;
        };
        let written = File::from(fd).write_all(bytes).and_then(|()| {
            rustix::fs::renameat(&dir, temp.as_str(), &dir, self.name.as_str()).map_err(io::Error::from)
        });
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
        }
        self.sweep(&dir);
    }

    fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// Eight random bytes in hex (a temporary file's name), `None` without a source of them.
fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The user's secret for sealing entries: read from the user's cache folder, made there (32
/// random bytes, readable by the user only) on first use. `None` where there is no such folder
/// or it cannot be written.
fn user_secret() -> Option<[u8; 32]> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let cache = env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|home| home.join(".cache")))?;
    secret_in(&cache.join("hephy"))
}

/// The secret kept in the folder `dir` (`document.key`: the user's, readable by the user only),
/// made when there is none.
fn secret_in(dir: &Path) -> Option<[u8; 32]> {
    let path = dir.join("document.key");
    // Only a key file of the user's that no one else may read or write is a secret (a key file
    // a repository committed, where the cache folder is inside a checkout, is not).
    let read = |path: &Path| -> Option<[u8; 32]> {
        use std::os::unix::fs::MetadataExt;
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o077 != 0 {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(33).read_to_end(&mut bytes).ok()?;
        bytes.try_into().ok()
    };
    if let Some(secret) = read(&path) {
        return Some(secret);
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).ok()?;
    std::fs::create_dir_all(dir).ok()?;
    // Made beside it (readable by the user only) and moved into place unless another process
    // was first: then that one's is the secret.
    let mut temp = tempfile::Builder::new().prefix(".document.key").tempfile_in(dir).ok()?;
    temp.write_all(&secret).ok()?;
    match temp.persist_noclobber(&path) {
        Ok(_) => Some(secret),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => read(&path),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [1; 32];

    /// Bytes kept come back; an entry that is a symbolic link, or reached through one (the
    /// state folder or its `documents/`), is never read, and nothing is written through a link.
    #[test]
    fn entries_are_kept_and_never_read_through_a_link() {
        let dir = tempfile::tempdir().expect("temp dir");
        let graph = dir.path().join("hephy.kdl");
        let text = "task \"a\" {\n    run \"true\"\n}\n";
        std::fs::write(&graph, text).expect("write");
        let state = dir.path().join(".hephy");
        let entry = StateDocument::with_secret(&graph, &state, SECRET);
        assert_eq!(entry.fetch().map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
        entry.keep(b"first");
        assert_eq!(entry.fetch().expect("kept"), b"first");
        entry.keep(b"second");
        assert_eq!(entry.fetch().expect("replaced"), b"second");
        let names: Vec<_> = std::fs::read_dir(state.join(DIR)).expect("folder").flatten().collect();
        assert_eq!(names.len(), 1, "one entry per graph file, no temporaries left");
        // Another graph file in the same folder has its own entry.
        let other = StateDocument::with_secret(&dir.path().join("other.kdl"), &state, SECRET);
        assert_ne!(other.name, entry.name);

        // The entry replaced by a link to a file holding what an entry would: not read, not
        // written through, and left for the state folder's check to report.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"second").expect("write");
        let path = state.join(DIR).join(&entry.name);
        std::fs::remove_file(&path).expect("remove");
        std::os::unix::fs::symlink(&outside, &path).expect("symlink");
        assert!(entry.fetch().is_err(), "read through a link");
        entry.keep(b"third");
        assert_eq!(std::fs::read(&outside).expect("outside"), b"second", "written through a link");
        assert!(
            std::fs::symlink_metadata(&path).expect("link").file_type().is_symlink(),
            "left to the check"
        );
        std::fs::remove_file(&path).expect("remove");

        // `documents/` a link to a folder holding a copy of the entry: not read, not written.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        std::fs::write(elsewhere.join(&entry.name), b"second").expect("write");
        std::fs::remove_dir(state.join(DIR)).expect("rmdir");
        std::os::unix::fs::symlink(&elsewhere, state.join(DIR)).expect("symlink");
        assert!(entry.fetch().is_err(), "read through a linked documents/");
        entry.keep(b"fourth");
        assert_eq!(std::fs::read(elsewhere.join(&entry.name)).expect("copy"), b"second");
        assert_eq!(std::fs::read_dir(&elsewhere).expect("folder").count(), 1, "nothing written there");

        // The state folder itself a link: not used either.
        let linked = dir.path().join("linked-state");
        std::os::unix::fs::symlink(&elsewhere, &linked).expect("symlink");
        let through = StateDocument::with_secret(&graph, &linked, SECRET);
        assert!(through.fetch().is_err(), "read through a linked state folder");
        through.keep(b"fifth");
        assert_eq!(std::fs::read_dir(&elsewhere).expect("folder").count(), 1, "nothing written there");

        // A state folder that cannot be made (a file is in its way): nothing kept, no error.
        let blocked = StateDocument::with_secret(&graph, &graph, SECRET);
        blocked.keep(b"sixth");
        assert!(blocked.fetch().is_err());
        assert_eq!(std::fs::read_to_string(&graph).expect("graph"), text, "the graph file untouched");
    }

    /// A temporary a killed writer left (unchanged for long) is removed when the entry is next
    /// kept; a recent one (a live writer's), another entry's and a link are not touched.
    #[test]
    fn a_killed_writers_temporaries_are_swept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let graph = dir.path().join("hephy.kdl");
        std::fs::write(&graph, "task \"a\" {\n    run \"true\"\n}\n").expect("write");
        let state = dir.path().join(".hephy");
        let entry = StateDocument::with_secret(&graph, &state, SECRET);
        entry.keep(b"first");
        let folder = state.join(DIR);
        let old = std::time::SystemTime::now() - STALE_TEMP - std::time::Duration::from_secs(60);
        let made = |name: &str, when: std::time::SystemTime| {
            let file = File::create(folder.join(name)).expect("temporary");
            file.set_modified(when).expect("mtime");
        };
        let stale = format!(".{}.0123456789abcdef.tmp", entry.name);
        let live = format!(".{}.fedcba9876543210.tmp", entry.name);
        let others = ".other.kdl-0000000000000000.0123456789abcdef.tmp";
        made(&stale, old);
        made(&live, std::time::SystemTime::now());
        made(others, old);
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"kept").expect("write");
        let linked = format!(".{}.1111111111111111.tmp", entry.name);
        std::os::unix::fs::symlink(&outside, folder.join(&linked)).expect("symlink");
        // The link's own time, as old as the stale temporary's (its target's stays now).
        let then = rustix::fs::Timespec {
            tv_sec: old.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64,
            tv_nsec: 0,
        };
        let times = rustix::fs::Timestamps { last_access: then, last_modification: then };
        rustix::fs::utimensat(rustix::fs::CWD, folder.join(&linked), &times, AtFlags::SYMLINK_NOFOLLOW)
            .expect("the link's time");
        entry.keep(b"second");
        assert_eq!(entry.fetch().expect("kept"), b"second");
        assert!(!folder.join(&stale).exists(), "a killed writer's temporary is left");
        assert!(folder.join(&live).exists(), "a live writer's temporary is removed");
        assert!(folder.join(others).exists(), "another entry's temporary is removed");
        assert!(std::fs::symlink_metadata(folder.join(&linked)).is_err(), "a stale link is left");
        assert_eq!(std::fs::read(&outside).expect("outside"), b"kept", "what a link points to changed");
    }

    /// The user's secret is made once, 32 bytes readable by the user only, and read back after.
    #[test]
    fn the_secret_is_made_once_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path().join("cache/hephy");
        let first = secret_in(&folder).expect("made");
        assert_eq!(secret_in(&folder), Some(first), "read back, not made again");
        let meta = std::fs::metadata(folder.join("document.key")).expect("kept");
        assert_eq!(meta.len(), 32);
        assert_eq!(meta.permissions().mode() & 0o077, 0, "readable by the user only");
        let other = dir.path().join("other");
        assert_ne!(secret_in(&other), Some(first), "another folder, another secret");
        // A key file of another size is no secret: not used, not replaced.
        std::fs::write(folder.join("document.key"), b"short").expect("write");
        assert_eq!(secret_in(&folder), None);
        // Nor is one others may read (a key file a repository committed: git gives 0644).
        let committed = dir.path().join("committed");
        std::fs::create_dir(&committed).expect("mkdir");
        std::fs::write(committed.join("document.key"), [9u8; 32]).expect("write");
        std::fs::set_permissions(committed.join("document.key"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        assert_eq!(secret_in(&committed), None);
        std::fs::set_permissions(committed.join("document.key"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        assert_eq!(secret_in(&committed), Some([9u8; 32]), "the user's own, readable by the user only");
    }
}
