//! Running `git`: the one place hephy starts it, for the graph's own repository (release
//! information: [`crate::release`]; the graph at a revision for `--since`) and for upstream
//! sources ([`crate::sources::git`]). Owns [`GitError`], what every git question answers when it
//! fails. Never prompts (`GIT_TERMINAL_PROMPT=0`), never reads stdin.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// git could not be run, or failed; or a git source could not be resolved or checked out.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum GitError {
    /// `git` or `tar` could not be started (or waited for).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: &'static str,
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// git failed, and said this (its last line on stderr).
    #[error("{said}")]
    Git {
        /// Its exit status, when it exited.
        status: Option<i32>,
        /// Its last line on stderr.
        said: String,
    },
    /// The remote has no such branch or tag.
    #[error("no branch or tag `{reference}`")]
    NoSuchRef {
        /// The ref.
        reference: String,
    },
    /// Offline, and the ref was never fetched into the cache.
    #[error("offline, and never fetched here")]
    NeverFetched,
    /// Resolving a ref of a repository failed.
    #[error("cannot resolve `{reference}` of {url}: {source}")]
    Resolve {
        /// The repository.
        url: String,
        /// The ref.
        reference: String,
        /// Why.
        source: Box<GitError>,
    },
    /// Fetching a commit failed.
    #[error("cannot fetch {commit} from {url}: {source}")]
    Fetch {
        /// The commit.
        commit: String,
        /// The repository.
        url: String,
        /// Why.
        source: Box<GitError>,
    },
    /// A folder of the cache could not be created.
    #[error("cannot create `{}`: {source}", path.display())]
    Create {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// `git archive | tar -x` of a commit failed.
    #[error("cannot export {commit} of {url}")]
    Export {
        /// The commit.
        commit: String,
        /// The repository.
        url: String,
    },
    /// The finished checkout could not be renamed into place.
    #[error("cannot move the checkout of {commit} into place")]
    Place {
        /// The commit.
        commit: String,
    },
    /// `git archive | tar -x` of a commit failed (what the caller says about it is its own).
    #[error("cannot export the tree of {commit}")]
    Archive {
        /// The commit.
        commit: String,
    },
    /// A fetch of the same repository panicked.
    #[error("a git lock was poisoned")]
    Poisoned,
}

impl GitError {
    pub(crate) fn spawn(program: &'static str, source: std::io::Error) -> GitError {
        GitError::Spawn { program, source: Arc::new(source) }
    }

    pub(crate) fn create(path: &Path, source: std::io::Error) -> GitError {
        GitError::Create { path: path.to_path_buf(), source: Arc::new(source) }
    }
}

/// Runs `git ARGS` (in `dir` when given, as `git -C DIR`); its standard output when it succeeds,
/// else what it said last on stderr.
pub(crate) fn run(dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    let output = command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| GitError::spawn("git", e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said =
            stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("git failed").trim().to_owned();
        Err(GitError::Git { status: output.status.code(), said })
    }
}

/// [`run`], its output's first line trimmed (`rev-parse`'s answers); `None` when git fails or
/// says nothing.
pub(crate) fn line(dir: &Path, args: &[&str]) -> Option<String> {
    run(Some(dir), args)
        .ok()
        .and_then(|out| out.lines().next().map(|l| l.trim().to_owned()))
        .filter(|l| !l.is_empty())
}

/// Writes the tree of `commit` into the folder `into` (`git ARGS archive | tar -x`); `args`
/// name the repository (`--git-dir=…`, or `-C DIR`).
pub(crate) fn export(args: &[&str], commit: &str, into: &Path) -> Result<(), GitError> {
    let mut archive = Command::new("git")
        .args(args)
        .args(["archive", "--format=tar", commit])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| GitError::spawn("git", e))?;
    let archived = || GitError::Archive { commit: commit.to_owned() };
    let Some(tar_in) = archive.stdout.take() else {
        let _ = archive.kill();
        let _ = archive.wait();
        return Err(archived());
    };
    let tar = Command::new("tar").arg("-x").arg("-C").arg(into).stdin(tar_in).status();
    let done = archive.wait().map_err(|e| GitError::spawn("git", e))?;
    let tar = tar.map_err(|e| GitError::spawn("tar", e))?;
    if tar.success() && done.success() { Ok(()) } else { Err(archived()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_answers_or_says_why_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = run(Some(dir.path()), &["rev-parse", "--verify", "HEAD"]).expect_err("no repository");
        assert!(matches!(&error, GitError::Git { status: Some(_), said } if !said.is_empty()), "{error:?}");
        assert_eq!(line(dir.path(), &["rev-parse", "--verify", "HEAD"]), None);
        assert!(run(Some(dir.path()), &["init", "--quiet"]).is_ok());
        assert_eq!(line(dir.path(), &["rev-parse", "--is-inside-work-tree"]).as_deref(), Some("true"));
    }
}
