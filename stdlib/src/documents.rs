//! Where a graph file's document as read is kept between commands: the state folder's
//! `documents/`, one entry per graph file (named after the file and its absolute path), replaced
//! when the file changes. The entry's format and key are the dsl's ([`DocumentStore`]); this
//! module only stores bytes. Nothing is read or written through a symbolic link: a state folder
//! the engine's check refuses (a link in it, at its top or one folder down) is not used at all
//! (planning then reports it), and the entry is opened without following one.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use hephy_dsl::DocumentStore;

/// The state folder's folder of entries.
const DIR: &str = "documents";

/// An entry larger than this is not read (a document is a few times its file's size; files are
/// at most [`hephy_dsl::limits::MAX_FILE_BYTES`]).
const MAX_ENTRY_BYTES: u64 = 8 * hephy_dsl::limits::MAX_FILE_BYTES;

/// The entry of one graph file in one state folder.
#[derive(Debug)]
pub(crate) struct StateDocument {
    state_dir: PathBuf,
    name: String,
}

impl StateDocument {
    /// The entry of the graph file `graph_file` in the state folder `state_dir`.
    pub(crate) fn new(graph_file: &Path, state_dir: &Path) -> StateDocument {
        let absolute = graph_file
            .canonicalize()
            .or_else(|_| std::path::absolute(graph_file))
            .unwrap_or_else(|_| graph_file.to_path_buf());
        let file = graph_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let hash = blake3::hash(absolute.as_os_str().as_encoded_bytes()).to_hex();
        StateDocument { state_dir: state_dir.to_path_buf(), name: format!("{file}-{}", &hash[..16]) }
    }

    /// The state folder, when the engine's check finds no symbolic link in it.
    fn checked(&self) -> io::Result<&Path> {
        hephy_engine::check_state_dir(&self.state_dir).map_err(io::Error::other)?;
        Ok(&self.state_dir)
    }
}

impl DocumentStore for StateDocument {
    fn fetch(&self) -> io::Result<Vec<u8>> {
        let dir = File::open(self.checked()?)?;
        let file = hephy_os::open::open_beneath(&dir, &Path::new(DIR).join(&self.name))?;
        let mut bytes = Vec::new();
        file.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(io::Error::other("the entry is too large"));
        }
        Ok(bytes)
    }

    fn keep(&self, bytes: &[u8]) {
        let Ok(state_dir) = self.checked() else { return };
        let dir = state_dir.join(DIR);
        // A new file beside the entry, renamed over it: a reader sees the old entry or the new,
        // never half of one; a link at the entry's name is replaced, not written through.
        let written = fs::create_dir_all(&dir)
            .and_then(|()| tempfile::Builder::new().prefix(".").suffix(".tmp").tempfile_in(&dir))
            .and_then(|mut temp| temp.write_all(bytes).map(|()| temp))
            .and_then(|temp| temp.persist(dir.join(&self.name)).map_err(|e| e.error));
        let _ = written;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes kept come back; an entry that is a symbolic link, or a state folder holding one, is
    /// never read, and nothing is written through a link.
    #[test]
    fn entries_are_kept_and_never_read_through_a_link() {
        let dir = tempfile::tempdir().expect("temp dir");
        let graph = dir.path().join("hephy.kdl");
        let text = "task \"a\" {\n    run \"true\"\n}\n";
        fs::write(&graph, text).expect("write");
        let state = dir.path().join(".hephy");
        let entry = StateDocument::new(&graph, &state);
        assert_eq!(entry.fetch().map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
        entry.keep(b"first");
        assert_eq!(entry.fetch().expect("kept"), b"first");
        entry.keep(b"second");
        assert_eq!(entry.fetch().expect("replaced"), b"second");
        let names: Vec<_> = fs::read_dir(state.join(DIR)).expect("folder").flatten().collect();
        assert_eq!(names.len(), 1, "one entry per graph file, no temporaries left");
        // Another graph file in the same folder has its own entry.
        let other = StateDocument::new(&dir.path().join("other.kdl"), &state);
        assert_ne!(other.name, entry.name);

        // The entry replaced by a link to a file holding what an entry would: not read.
        let outside = dir.path().join("outside");
        fs::write(&outside, b"second").expect("write");
        let path = state.join(DIR).join(&entry.name);
        fs::remove_file(&path).expect("remove");
        std::os::unix::fs::symlink(&outside, &path).expect("symlink");
        assert!(entry.fetch().is_err(), "read through a link");
        entry.keep(b"third");
        assert_eq!(fs::read(&outside).expect("outside"), b"second", "written through a link");
        assert!(fs::symlink_metadata(&path).expect("link").file_type().is_symlink(), "left to the check");

        // A link elsewhere in the state folder: the folder is not used at all.
        fs::remove_file(&path).expect("remove");
        entry.keep(b"fourth");
        assert_eq!(entry.fetch().expect("kept"), b"fourth");
        std::os::unix::fs::symlink(&outside, state.join("lock")).expect("symlink");
        assert!(entry.fetch().is_err(), "a state folder holding a link is not read");

        // A state folder that cannot be made (a file is in its way): nothing kept, no error.
        let blocked = StateDocument::new(&graph, &graph);
        blocked.keep(b"fifth");
        assert!(blocked.fetch().is_err());
        assert_eq!(fs::read_to_string(&graph).expect("graph"), text, "the graph file untouched");
    }
}
