//! Scratch folders: where a build or a plan keeps files for a while (files read out of base
//! layers, here-documents, a tree exported at a git revision). They live in the state folder's
//! `tmp/`, never in `$TMPDIR`, each named after the process that made it
//! (`PURPOSE-PID-RANDOM`), so what a killed process left is found and removed, by the next run
//! and by `hephy gc`, once that process is gone. Nothing else in `tmp/` is touched. Secrets
//! handed to builders as files stay in `$TMPDIR` (never beside the repository), named after
//! their process the same way (`hephy-secret-PID-RANDOM`), and are removed alike.

use std::fs;
use std::io;
use std::path::Path;

/// The folder of the state folder that holds scratch folders.
const DIR: &str = "tmp";

/// A scratch folder for `purpose` (a word without `-`) in `state_dir`'s `tmp/`, removed when
/// dropped.
pub(crate) fn folder(state_dir: &Path, purpose: &str) -> io::Result<tempfile::TempDir> {
    let dir = state_dir.join(DIR);
    if fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::other(format!("`{}` is a symbolic link; remove it", dir.display())));
    }
    fs::create_dir_all(&dir)?;
    tempfile::Builder::new().prefix(&format!("{purpose}-{}-", std::process::id())).tempdir_in(dir)
}

/// The pid a scratch folder's name gives (`PURPOSE-PID-RANDOM`); `None` for any other name.
fn owner(name: &str) -> Option<i32> {
    let mut parts = name.split('-');
    let (purpose, pid, random) = (parts.next()?, parts.next()?, parts.next()?);
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (parts.next().is_none() && word(purpose) && word(random)).then_some(())?;
    pid.parse().ok().filter(|&pid| pid > 0)
}

/// The pid a secret file's name gives (`hephy-secret-PID-RANDOM`); `None` for any other name.
fn secret_owner(name: &str) -> Option<i32> {
    owner(&format!("secret-{}", name.strip_prefix(SECRET)?.strip_prefix('-')?))
}

/// The prefix of the files secrets are handed to builders in.
const SECRET: &str = "hephy-secret";

/// A file for a secret's value in `$TMPDIR` (mode 0600, removed when dropped), named after
/// this process (`hephy-secret-PID-RANDOM`) so one a killed process left is removed by
/// [`clean`]. Not in the state folder: a secret never lands beside the repository.
pub(crate) fn secret_file() -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new().prefix(&format!("{SECRET}-{}-", std::process::id())).tempfile()
}

/// Removes the scratch folders in `state_dir` whose process is gone, and the secret files in
/// `$TMPDIR` whose process is gone; returns how many. A folder is removed without following a
/// symbolic link in it.
pub(crate) fn clean(state_dir: &Path) -> usize {
    let dir = state_dir.join(DIR);
    let scratch =
        if fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) { clean_in(&dir, owner, false) } else { 0 };
    // `$TMPDIR` is shared: there, only regular files of this user are hephy's (a secret is a
    // file, never a folder).
    scratch + clean_in(&std::env::temp_dir(), secret_owner, true)
}

/// Removes the entries of `dir` whose name `owner` gives a pid of a process that is gone (with
/// `shared`, only regular files this user owns).
fn clean_in(dir: &Path, owner: fn(&str) -> Option<i32>, shared: bool) -> usize {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let me = rustix::process::geteuid().as_raw();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(owner) else { continue };
        if shared && !fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_file() && m.uid() == me) {
            continue;
        }
        if !hephy_engine::process_gone(pid) {
            continue;
        }
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_folders_of_processes_that_are_gone_are_removed() {
        let state = tempfile::tempdir().expect("temp dir");
        let mine = folder(state.path(), "build").expect("a scratch folder");
        fs::write(mine.path().join("f1"), "x").expect("write");
        assert!(mine.path().starts_with(state.path().join(DIR)));
        // A process that is gone: a child that has exited and been waited for.
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let gone = i32::try_from(child.id()).expect("a pid");
        child.wait().expect("wait");
        let left = state.path().join(DIR).join(format!("build-{gone}-abc123"));
        fs::create_dir_all(left.join("deep")).expect("create");
        fs::write(left.join("deep/f2"), "y").expect("write");
        // Never touched: a name of another shape.
        let foreign = state.path().join(DIR).join("notes");
        fs::create_dir(&foreign).expect("create");
        assert_eq!(clean_in(&state.path().join(DIR), owner, false), 1);
        assert!(!left.exists());
        assert!(mine.path().join("f1").is_file());
        assert!(foreign.is_dir());
    }

    #[test]
    fn secret_files_of_processes_that_are_gone_are_removed() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mine = secret_file().expect("a secret file");
        let name = mine.path().file_name().and_then(|n| n.to_str()).expect("a name");
        assert_eq!(secret_owner(name), i32::try_from(std::process::id()).ok());
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let gone = i32::try_from(child.id()).expect("a pid");
        child.wait().expect("wait");
        let left = tmp.path().join(format!("hephy-secret-{gone}-Ab12"));
        fs::write(&left, "s3cret").expect("write");
        let alive = tmp.path().join(format!("hephy-secret-{}-Cd34", std::process::id()));
        fs::write(&alive, "s3cret").expect("write");
        let foreign = tmp.path().join(format!("other-secret-{gone}-Ab12"));
        fs::write(&foreign, "x").expect("write");
        // A folder of that name is not hephy's (a secret is a file): kept.
        let folder = tmp.path().join(format!("hephy-secret-{gone}-Ef56"));
        fs::create_dir(&folder).expect("create");
        assert_eq!(clean_in(tmp.path(), secret_owner, true), 1);
        assert!(!left.exists() && alive.exists() && foreign.exists() && folder.is_dir());
    }

    #[test]
    fn names_say_their_owner() {
        assert_eq!(owner("build-123-AbC9x"), Some(123));
        assert_eq!(owner("build-0-abc"), None);
        assert_eq!(owner("build-x-abc"), None);
        assert_eq!(owner("notes"), None);
        assert_eq!(owner("a-1-b-c"), None);
    }
}
