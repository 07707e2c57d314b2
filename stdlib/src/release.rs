//! What the graph's own repository and the plan say about a release, for tag templates: a
//! [`Release`] value for one graph root holding HEAD's commit (with `-dirty` for an image whose
//! context has uncommitted changes), HEAD's tag and its semver parts, the branch, the origin's
//! web address, and the date. The caller makes one per plan (and hands the same one to the run),
//! so every node of a plan renders the same values, and two graphs planned in one process each
//! get their own; each part is asked of git once, on first use. `{date}` is `HEPHY_DATE` when it
//! is set (a generated CI pipeline sets it once, so all its jobs push the same date).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::git;

/// HEAD of the graph's own repository.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    /// The full commit id; empty outside a git repository.
    pub(crate) commit: String,
    /// The tag HEAD carries (the highest version when several do); empty when untagged.
    pub(crate) tag: String,
}

/// Release information of one graph root, each part read once (on first use) and then the
/// same for the value's life: make one per plan.
#[derive(Debug)]
pub struct Release {
    root: PathBuf,
    head: OnceLock<Head>,
    source: OnceLock<String>,
    branch: OnceLock<String>,
    dirty: Mutex<HashMap<String, bool>>,
    date: OnceLock<Result<String, BadDate>>,
}

impl Release {
    /// The release information of the repository `root` (the graph's folder) is in; nothing is
    /// read yet.
    pub fn new(root: &Path) -> Release {
        Release {
            root: root.to_path_buf(),
            head: OnceLock::new(),
            source: OnceLock::new(),
            branch: OnceLock::new(),
            dirty: Mutex::new(HashMap::new()),
            date: OnceLock::new(),
        }
    }

    /// HEAD of the repository; its tag from CI's variables when a CI checkout lacks tags
    /// (`CI_COMMIT_TAG`, or `GITHUB_REF_NAME` when `GITHUB_REF_TYPE=tag`).
    pub(crate) fn head(&self) -> &Head {
        self.head.get_or_init(|| {
            let root = &self.root;
            let Some(commit) = git::line(root, &["rev-parse", "--verify", "-q", "HEAD"]) else {
                return Head::default();
            };
            let ci_tag = std::env::var("CI_COMMIT_TAG").ok().filter(|t| !t.is_empty()).or_else(|| {
                (std::env::var("GITHUB_REF_TYPE").as_deref() == Ok("tag"))
                    .then(|| std::env::var("GITHUB_REF_NAME").ok())
                    .flatten()
            });
            let tag = ci_tag
                .or_else(|| git::line(root, &["tag", "--points-at", "HEAD", "--sort=-version:refname"]))
                .unwrap_or_default();
            Head { commit, tag }
        })
    }

    /// HEAD's tag as a version (`v1.2.3-rc.1` → 1.2.3-rc.1); `None` for an untagged HEAD or a tag
    /// that is not `[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]`.
    pub(crate) fn version(&self) -> Option<semver::Version> {
        version(&self.head().tag)
    }

    /// The repository's web address, for `org.opencontainers.image.source`: `HEPHY_SOURCE`,
    /// else git's `origin` as `https://host/path` (an scp-like `git@host:path.git` too,
    /// credentials dropped); empty when there is none.
    pub(crate) fn source(&self) -> &str {
        self.source.get_or_init(|| {
            let url = std::env::var("HEPHY_SOURCE")
                .ok()
                .filter(|s| !s.is_empty())
                .or_else(|| git::line(&self.root, &["remote", "get-url", "origin"]))
                .unwrap_or_default();
            web_address(&url)
        })
    }

    /// The branch, as a tag-safe slug (`feature/x` → `feature-x`): `HEPHY_BRANCH`, else the
    /// CI's (`CI_COMMIT_REF_NAME`, `GITHUB_HEAD_REF`, `GITHUB_REF_NAME`), else git's current
    /// branch; empty when none is known (a detached checkout).
    pub(crate) fn branch(&self) -> &str {
        self.branch.get_or_init(|| {
            let from_env = ["HEPHY_BRANCH", "CI_COMMIT_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_REF_NAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|b| !b.trim().is_empty()));
            let name = from_env.or_else(|| {
                git::line(&self.root, &["rev-parse", "--abbrev-ref", "HEAD"]).filter(|n| n != "HEAD")
            });
            name.map(|n| hephy_dsl::tag_part(&n)).unwrap_or_default()
        })
    }

    /// Whether the folder `dir` (relative to the root) has uncommitted changes: modified,
    /// staged or untracked files, hephy's state folder aside. Asked once per folder.
    pub(crate) fn dirty(&self, dir: &str) -> bool {
        if let Some(known) = self.dirty.lock().ok().and_then(|c| c.get(dir).copied()) {
            return known;
        }
        let status = git::run(Some(&self.root), &["status", "--porcelain", "--", dir, ":(exclude).hephy"]);
        let dirty = status.is_ok_and(|s| !s.trim().is_empty());
        if let Ok(mut c) = self.dirty.lock() {
            c.insert(dir.to_owned(), dirty);
        }
        dirty
    }

    /// The plan's `{date}` ([`plan_date`]), fixed at its first use.
    pub fn date(&self) -> Result<&str, BadDate> {
        self.date.get_or_init(plan_date).as_deref().map_err(Clone::clone)
    }

    /// `{created}`: the plan's date as an RFC 3339 time at midnight UTC
    /// (`2026-01-31T00:00:00Z`).
    pub(crate) fn created(&self) -> String {
        self.date().map(midnight).unwrap_or_default()
    }
}

/// `git@host:org/repo.git`, `ssh://git@host/org/repo`, `https://user:token@host/org/repo.git`
/// → `https://host/org/repo`; other text as it is.
fn web_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (host, path) = match url.split_once("://") {
        Some(_) => rest.split_once('/').unwrap_or((rest, "")),
        None => match rest.split_once(':') {
            Some((host, path)) if !host.contains('/') => (host, path),
            _ => return url.to_owned(),
        },
    };
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    if host.is_empty() { String::new() } else { format!("https://{host}/{path}") }
}

/// Whether a plan of `model` depends on git or the date beyond its files: with a registry, a
/// tag of an image (through the naming's `tag` template) says `{commit}`, `{date}`, `{git_tag}`…,
/// so a new commit, tag or day makes its fresh tag node stale (a no-op stamp cannot know).
pub fn tags_follow_git_or_date(model: &hephy_dsl::Model) -> bool {
    const WORDS: &[&str] = &["commit", "branch", "git_tag", "version", "major", "minor", "patch", "date"];
    let follows = |text: &str| WORDS.iter().any(|w| text.contains(w));
    model.registry.is_some()
        && model.images.iter().any(|i| !i.tags.is_empty())
        && (follows(&model.naming.tag) || model.images.iter().flat_map(|i| &i.tags).any(|t| follows(t)))
}

/// Why `HEPHY_DATE` is not a date: its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDate(String);

impl std::fmt::Display for BadDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`HEPHY_DATE` is `{}`, not a UTC date written `YYYYMMDD`", self.0)
    }
}

/// The plan's `{date}`: `HEPHY_DATE` (checked), else today (UTC), as `YYYYMMDD`.
pub fn plan_date() -> Result<String, BadDate> {
    match std::env::var("HEPHY_DATE") {
        Ok(text) if !text.is_empty() => valid_date(&text).then(|| text.clone()).ok_or(BadDate(text)),
        _ => Ok(today()),
    }
}

/// Today, UTC, as `YYYYMMDD`.
fn today() -> String {
    yyyymmdd(jiff::tz::Offset::UTC.to_datetime(jiff::Timestamp::now()).date())
}

/// A date as `YYYYMMDD`.
fn yyyymmdd(date: jiff::civil::Date) -> String {
    format!("{:04}{:02}{:02}", date.year(), date.month(), date.day())
}

/// `YYYYMMDD` (checked by [`plan_date`]) as an RFC 3339 time at midnight UTC.
pub(crate) fn midnight(date: &str) -> String {
    format!("{}-{}-{}T00:00:00Z", &date[..4], &date[4..6], &date[6..])
}

/// `YYYYMMDD` with a month 01–12 and a day that month has.
fn valid_date(text: &str) -> bool {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let part = |range: std::ops::Range<usize>| text[range].parse::<i8>().unwrap_or(0);
    let year = text[..4].parse::<i16>().unwrap_or(0);
    jiff::civil::Date::new(year, part(4..6), part(6..8)).is_ok()
}

/// A tag as a version: `[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]`, checked by the `semver` crate.
pub(crate) fn version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_parts_come_from_version_tags_only() {
        let v = version("v1.25.3").expect("a version");
        assert_eq!((v.to_string(), v.major, v.minor, v.patch), ("1.25.3".to_owned(), 1, 25, 3));
        assert_eq!(version("2.0.1-rc.1+b5").map(|v| v.to_string()), Some("2.0.1-rc.1+b5".to_owned()));
        assert_eq!(version("release-7"), None);
        assert_eq!(version("v1.2"), None);
    }

    #[test]
    fn origins_become_web_addresses() {
        assert_eq!(web_address("git@github.com:org/repo.git"), "https://github.com/org/repo");
        assert_eq!(web_address("https://u:t@gitlab.example.com/g/r.git"), "https://gitlab.example.com/g/r");
        assert_eq!(web_address("ssh://git@host:22/org/repo"), "https://host:22/org/repo");
    }

    #[test]
    fn today_is_a_date() {
        let d = today();
        assert_eq!(d.len(), 8);
        assert!(d.starts_with("20"), "{d}");
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn dates_are_checked() {
        assert!(valid_date("20260131") && valid_date("20240229"));
        assert!(!valid_date("20230229") && !valid_date("2026-01-31") && !valid_date("20261301"));
        assert!(!valid_date("20260100"));
        assert_eq!(yyyymmdd(jiff::civil::date(2000, 2, 29)), "20000229");
        assert_eq!(midnight("20260131"), "2026-01-31T00:00:00Z");
    }

    /// Two graphs in one process, each in a repository of its own: each release says its own
    /// HEAD and branch (a process-wide cache answered the first root's for both).
    #[test]
    fn two_roots_in_one_process_get_their_own_release() {
        let repo = |branch: &str, tag: &str| {
            let dir = tempfile::tempdir().expect("temp dir");
            let git = |args: &[&str]| {
                let mut all = vec!["-c", "user.name=t", "-c", "user.email=t@example.com"];
                all.extend_from_slice(args);
                git::run(Some(dir.path()), &all).expect("git");
            };
            git(&["init", "--quiet", "-b", branch]);
            std::fs::write(dir.path().join("file"), branch).expect("write");
            git(&["add", "file"]);
            git(&["commit", "--quiet", "-m", branch]);
            git(&["tag", tag]);
            dir
        };
        let (one, two) = (repo("one", "v1.0.0"), repo("two", "v2.3.4"));
        let (first, second) = (Release::new(one.path()), Release::new(two.path()));
        for release in [&first, &second] {
            assert_eq!(release.head().commit.len(), 40, "{release:?}");
        }
        assert_ne!(first.head().commit, second.head().commit);
        assert_eq!((first.head().tag.as_str(), second.head().tag.as_str()), ("v1.0.0", "v2.3.4"));
        assert_eq!(second.version().map(|v| v.minor), Some(3));
        if std::env::var_os("HEPHY_BRANCH").is_none() && std::env::var_os("CI_COMMIT_REF_NAME").is_none() {
            assert_eq!((first.branch(), second.branch()), ("one", "two"));
        }
        std::fs::write(two.path().join("file"), "changed").expect("write");
        assert!(!first.dirty(".") && second.dirty("."));
    }
}
