//! Upstream git sources, with the `git` CLI (the reference implementation, with every
//! transport and credential helper users already have configured).
//!
//! A ref is resolved to a commit first (`git ls-remote`; a full commit id needs no network),
//! and that commit — not the ref — enters the image's key. Each repository is fetched once into a
//! bare cache under `.hephy/git/` (shallow: just the commit), reused across runs; each commit is
//! exported once into `.hephy/git/checkouts/<commit>/`, shared by every target and platform of
//! the image. Offline, a ref resolves to the commit it had at the last successful fetch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use hephy_dsl::{ImageSource, Model};

use hephy_engine::UpstreamError;
pub use hephy_engine::Upstreams;

pub(crate) use crate::git::GitError;

/// Resolves the ref of every git-sourced image of `model`, each (URL, ref) once; `offline`
/// resolves from the local cache only.
pub fn resolve_all(model: &Model, state_dir: &Path, offline: bool) -> Upstreams {
    let mut out = Upstreams::new();
    for image in &model.images {
        let contexts = image.build_contexts.iter().filter_map(|c| match &c.source {
            hephy_dsl::ContextSource::Git { url, reference, .. } => {
                Some((url, reference.clone().unwrap_or_else(|| "HEAD".to_owned())))
            }
            _ => None,
        });
        let own = match &image.source {
            ImageSource::Git { url, reference, .. } => Some((url, reference.clone())),
            ImageSource::Context { .. } => None,
        };
        for (url, reference) in own.into_iter().chain(contexts) {
            out.entry((url.clone(), reference.clone())).or_insert_with(|| {
                resolve(url, &reference, state_dir, offline).map_err(|e| {
                    UpstreamError::new(GitError::Resolve {
                        url: url.clone(),
                        reference: reference.clone(),
                        source: Box::new(e),
                    })
                })
            });
        }
    }
    out
}

fn is_commit(reference: &str) -> bool {
    reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The bare cache repository for `url`.
fn cache(state_dir: &Path, url: &str) -> PathBuf {
    let id = blake3::hash(url.as_bytes()).to_hex();
    std::path::absolute(state_dir)
        .unwrap_or_else(|_| state_dir.to_path_buf())
        .join("git")
        .join(&id.as_str()[..16])
}

fn remembered_ref(reference: &str) -> String {
    let safe: String = reference
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    format!("refs/hephy/resolved/{safe}")
}

fn git(args: &[&str]) -> Result<String, GitError> {
    crate::git::run(None, args)
}

/// The commit `reference` of `url` points at.
pub(crate) fn resolve(
    url: &str,
    reference: &str,
    state_dir: &Path,
    offline: bool,
) -> Result<String, GitError> {
    if is_commit(reference) {
        return Ok(reference.to_ascii_lowercase());
    }
    let listed = if offline { Err(GitError::NeverFetched) } else { git(&["ls-remote", "--", url]) };
    match listed {
        Ok(listing) => {
            pick(&listing, reference).ok_or_else(|| GitError::NoSuchRef { reference: reference.to_owned() })
        }
        Err(e) => {
            // Offline: the commit the ref had when it was last fetched.
            let repo = cache(state_dir, url);
            let git_dir = format!("--git-dir={}", repo.display());
            git(&[
                &git_dir,
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{}^{{commit}}", remembered_ref(reference)),
            ])
            .map(|c| c.trim().to_owned())
            .map_err(|_| if offline { GitError::NeverFetched } else { e })
        }
    }
}

/// The commit of `reference` in `git ls-remote` output: a tag (peeled), a branch, or `HEAD`.
fn pick(listing: &str, reference: &str) -> Option<String> {
    let refs: HashMap<&str, &str> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, name)| (name.trim(), sha.trim()))
        .collect();
    let candidates = [
        format!("refs/tags/{reference}^{{}}"),
        format!("refs/tags/{reference}"),
        format!("refs/heads/{reference}"),
        reference.to_owned(),
    ];
    candidates.iter().find_map(|c| refs.get(c.as_str()).map(|s| (*s).to_owned()))
}

/// A folder holding `commit` of `url`, fetched and exported once.
pub(crate) fn checkout(
    url: &str,
    reference: &str,
    commit: &str,
    state_dir: &Path,
) -> Result<PathBuf, GitError> {
    let repo = cache(state_dir, url);
    // One fetch at a time per cache repository (targets and platforms build concurrently; runs
    // are already serialized by the run lock).
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let lock = {
        let mut map = LOCKS.get_or_init(Mutex::default).lock().map_err(|_| GitError::Poisoned)?;
        Arc::clone(map.entry(repo.clone()).or_default())
    };
    let _held = lock.lock().map_err(|_| GitError::Poisoned)?;
    let root = repo.parent().map_or_else(|| repo.clone(), Path::to_path_buf);
    let target = root.join("checkouts").join(commit);
    if target.is_dir() {
        return Ok(target);
    }
    let git_dir = format!("--git-dir={}", repo.display());
    if !repo.join("HEAD").exists() {
        std::fs::create_dir_all(&repo).map_err(|e| GitError::create(&repo, e))?;
        git(&["init", "--quiet", "--bare", &repo.display().to_string()])?;
    }
    if git(&[&git_dir, "cat-file", "-e", &format!("{commit}^{{commit}}")]).is_err() {
        git(&[&git_dir, "fetch", "--quiet", "--depth", "1", "--", url, commit]).map_err(|e| {
            GitError::Fetch { commit: commit.to_owned(), url: url.to_owned(), source: Box::new(e) }
        })?;
    }
    if !is_commit(reference) {
        let _ = git(&[&git_dir, "update-ref", &remembered_ref(reference), commit]);
    }
    // Export into a fresh folder, then move it into place: concurrent builds of the same commit
    // (targets, platforms) never see half a checkout.
    let staging = root.join("checkouts").join(format!(".{commit}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| GitError::create(&staging, e))?;
    if crate::git::export(&[&git_dir], commit, &staging).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(GitError::Export { commit: commit.to_owned(), url: url.to_owned() });
    }
    if std::fs::rename(&staging, &target).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if !target.is_dir() {
            return Err(GitError::Place { commit: commit.to_owned() });
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::{GitError, pick, resolve};

    #[test]
    fn an_unknown_ref_and_an_offline_first_resolve_are_told_apart() {
        let state = tempfile::tempdir().expect("temp dir");
        let url = state.path().join("nowhere").display().to_string();
        // Offline, nothing is asked of the remote, and nothing was fetched before.
        assert!(matches!(resolve(&url, "main", state.path(), true), Err(GitError::NeverFetched)));
        // A full commit id needs no remote at all.
        let commit = "A".repeat(40);
        assert_eq!(resolve(&url, &commit, state.path(), true).expect("a commit"), "a".repeat(40));
        let error = GitError::Resolve {
            url: url.clone(),
            reference: "v9".to_owned(),
            source: Box::new(GitError::NoSuchRef { reference: "v9".to_owned() }),
        };
        assert_eq!(error.to_string(), format!("cannot resolve `v9` of {url}: no branch or tag `v9`"));
    }

    #[test]
    fn picks_peeled_tags_then_branches_then_head() {
        let listing = "aaa\tHEAD\nbbb\trefs/heads/main\nccc\trefs/tags/v1\nddd\trefs/tags/v1^{}\neee\trefs/tags/light\n";
        assert_eq!(pick(listing, "v1").as_deref(), Some("ddd"));
        assert_eq!(pick(listing, "light").as_deref(), Some("eee"));
        assert_eq!(pick(listing, "main").as_deref(), Some("bbb"));
        assert_eq!(pick(listing, "HEAD").as_deref(), Some("aaa"));
        assert_eq!(pick(listing, "nope"), None);
    }
}
