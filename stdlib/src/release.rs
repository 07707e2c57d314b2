//! What the graph's own repository and the plan say about a release, for tag templates: HEAD's
//! commit (with `-dirty` for an image whose context has uncommitted changes), HEAD's tag and its
//! semver parts, and the date. Each is read once per process (one plan), never per node, so every
//! node of a plan renders the same values; `{date}` is `HEPHY_DATE` when it is set (a generated
//! CI pipeline sets it once, so all its jobs push the same date).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// HEAD of the graph's own repository.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    /// The full commit id; empty outside a git repository.
    pub(crate) commit: String,
    /// The tag HEAD carries (the highest version when several do); empty when untagged.
    pub(crate) tag: String,
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// HEAD of the repository `root` is in (read once); its tag from CI's variables when a CI
/// checkout lacks tags (`CI_COMMIT_TAG`, or `GITHUB_REF_NAME` when `GITHUB_REF_TYPE=tag`).
pub(crate) fn head(root: &Path) -> &'static Head {
    static HEAD: OnceLock<Head> = OnceLock::new();
    HEAD.get_or_init(|| {
        let commit = git(root, &["rev-parse", "--verify", "-q", "HEAD"]).map(|c| c.trim().to_owned());
        let Some(commit) = commit.filter(|c| !c.is_empty()) else { return Head::default() };
        let ci_tag = std::env::var("CI_COMMIT_TAG").ok().filter(|t| !t.is_empty()).or_else(|| {
            (std::env::var("GITHUB_REF_TYPE").as_deref() == Ok("tag"))
                .then(|| std::env::var("GITHUB_REF_NAME").ok())
                .flatten()
        });
        let tag = ci_tag
            .or_else(|| {
                git(root, &["tag", "--points-at", "HEAD", "--sort=-version:refname"])
                    .and_then(|out| out.lines().next().map(str::to_owned))
            })
            .unwrap_or_default();
        Head { commit, tag }
    })
}

/// The graph repository's web address, for `org.opencontainers.image.source`: `HEPHY_SOURCE`,
/// else git's `origin` as `https://host/path` (an scp-like `git@host:path.git` too, credentials
/// dropped); empty when there is none. Read once.
pub(crate) fn source(root: &Path) -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let url = std::env::var("HEPHY_SOURCE")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| git(root, &["remote", "get-url", "origin"]).map(|u| u.trim().to_owned()))
            .unwrap_or_default();
        web_address(&url)
    })
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

/// `{created}`: the plan's date as an RFC 3339 time at midnight UTC (`2026-01-31T00:00:00Z`), the
/// same for every node of the plan.
pub(crate) fn created() -> String {
    date().map(|d| format!("{}-{}-{}T00:00:00Z", &d[..4], &d[4..6], &d[6..])).unwrap_or_default()
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

/// Whether the folder `dir` (relative to `root`) has uncommitted changes: modified, staged or
/// untracked files, hephy's state folder aside. Asked once per folder.
pub(crate) fn dirty(root: &Path, dir: &str) -> bool {
    static DIRTY: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let cache = DIRTY.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(dir).copied()) {
        return known;
    }
    let status = git(root, &["status", "--porcelain", "--", dir, ":(exclude).hephy"]);
    let dirty = status.is_some_and(|s| !s.trim().is_empty());
    if let Ok(mut c) = cache.lock() {
        c.insert(dir.to_owned(), dirty);
    }
    dirty
}

/// A tag's semver parts: `v1.2.3-rc.1` → (`1.2.3-rc.1`, `1`, `2`, `3`); `None` for a tag that
/// is not `[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]`.
pub(crate) fn semver(tag: &str) -> Option<(String, String, String, String)> {
    let version = tag.strip_prefix('v').unwrap_or(tag);
    let core = version.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(|p| number(p)) {
        return None;
    }
    // `+` is not a tag character: build metadata becomes `_`, as Docker's own tools write it.
    Some((version.replace('+', "_"), parts[0].to_owned(), parts[1].to_owned(), parts[2].to_owned()))
}

/// Why `HEPHY_DATE` is not a date: its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDate(String);

impl std::fmt::Display for BadDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`HEPHY_DATE` is `{}`, not a UTC date written `YYYYMMDD`", self.0)
    }
}

/// The plan's `{date}`: `HEPHY_DATE` (checked), else today (UTC), fixed at its first use.
pub fn date() -> Result<&'static str, BadDate> {
    static DATE: OnceLock<Result<String, BadDate>> = OnceLock::new();
    DATE.get_or_init(|| match std::env::var("HEPHY_DATE") {
        Ok(text) if !text.is_empty() => valid_date(&text).then(|| text.clone()).ok_or(BadDate(text)),
        _ => Ok(crate::registry::reference::today()),
    })
    .as_ref()
    .map(String::as_str)
    .map_err(Clone::clone)
}

/// `YYYYMMDD` with a month 01–12 and a day that month has.
fn valid_date(text: &str) -> bool {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (year, month, day) = (
        text[..4].parse::<u32>().unwrap_or(0),
        text[4..6].parse::<u32>().unwrap_or(0),
        text[6..].parse::<u32>().unwrap_or(0),
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_parts_come_from_version_tags_only() {
        assert_eq!(
            semver("v1.25.3"),
            Some(("1.25.3".to_owned(), "1".to_owned(), "25".to_owned(), "3".to_owned()))
        );
        assert_eq!(semver("2.0.1-rc.1+b5").map(|s| s.0), Some("2.0.1-rc.1_b5".to_owned()));
        assert_eq!(semver("release-7"), None);
        assert_eq!(semver("v1.2"), None);
    }

    #[test]
    fn origins_become_web_addresses() {
        assert_eq!(web_address("git@github.com:org/repo.git"), "https://github.com/org/repo");
        assert_eq!(web_address("https://u:t@gitlab.example.com/g/r.git"), "https://gitlab.example.com/g/r");
        assert_eq!(web_address("ssh://git@host:22/org/repo"), "https://host:22/org/repo");
    }

    #[test]
    fn dates_are_checked() {
        assert!(valid_date("20260131") && valid_date("20240229"));
        assert!(!valid_date("20230229") && !valid_date("2026-01-31") && !valid_date("20261301"));
        assert!(!valid_date("20260100"));
    }
}
