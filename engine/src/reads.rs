//! What of its build context an image's build reads, as path patterns, and BuildKit's matching
//! of them: a `COPY`/`ADD` source (or a context bind mount) covers the paths it matches and,
//! when it matches a folder, everything below it, as `FollowPaths`/`IncludePatterns` select a
//! context's files (`fsutil`); each path component matched as Go's `filepath.Match` (`*`, `?`,
//! `[a-z]`, `[^a]`, `\` escapes), a `**` component as any number of components (the include
//! patterns' rule, wider than `COPY`'s own, so never narrower than what is copied); a `COPY
//! --exclude` pattern removes what it matches below a source (relative to it).
//!
//! Owns the patterns and the matching only: which patterns a Dockerfile reads is the resolver's
//! (`hephy-stdlib`), listing the context is `files.rs`'s. Anything it cannot match exactly
//! (a source that is the context's root, a pattern that does not parse, more sources than
//! [`MAX_SOURCES`]) is the whole context.

use std::sync::Arc;

/// What of its context an image's key covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ContextReads {
    /// Every file of the context (after its ignore file).
    #[default]
    Whole,
    /// Only the files these paths match (after the ignore file), with the Dockerfile and the
    /// ignore file itself.
    Paths(Arc<ContextPaths>),
}

/// A source path of the build context, relative to it, with the `--exclude` patterns of the
/// instruction that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadPath {
    /// The source as the Dockerfile gives it after substitution (`src/`, `bin/*-amd64`).
    pub pattern: String,
    /// `COPY --exclude=…` patterns, matched below the source.
    pub exclude: Vec<String>,
}

/// The paths an image reads, cleaned and checked ([`ContextReads::of`] makes them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContextPaths {
    sources: Vec<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Source {
    parts: Vec<String>,
    /// Exclusions, each split into parts; empty when none apply (or none can be honoured).
    exclude: Vec<Vec<String>>,
}

/// The most sources an image may read before it counts as reading the whole context (each
/// file of the context is matched against each: real Dockerfiles have a few dozen).
const MAX_SOURCES: usize = 1_024;

impl ContextReads {
    /// The reads of `paths`: [`ContextReads::Whole`] when one of them is the context's root (`.`,
    /// `/`, `a/..`), or cannot be matched exactly (a malformed `[`), or they are too many.
    #[must_use]
    pub fn of(paths: impl IntoIterator<Item = ReadPath>) -> ContextReads {
        let mut sources = Vec::new();
        for read in paths {
            let Some(parts) = clean(&read.pattern) else { return ContextReads::Whole };
            if parts.is_empty() || parts.iter().any(|p| !valid(p)) || sources.len() >= MAX_SOURCES {
                return ContextReads::Whole;
            }
            // An exclusion is honoured only where it is exactly BuildKit's: relative to a
            // source matched at one depth (no `**` in it), with no `!` exception among them.
            let exact_depth = !parts.iter().any(|p| p == "**");
            let exclude: Option<Vec<Vec<String>>> = read
                .exclude
                .iter()
                .map(|e| {
                    let parts = clean(e).filter(|p| !p.is_empty() && !e.starts_with(['!', '/']))?;
                    parts.iter().all(|p| valid(p)).then_some(parts)
                })
                .collect();
            let exclude = match exclude {
                Some(exclude) if exact_depth => exclude,
                _ => Vec::new(),
            };
            sources.push(Source { parts, exclude });
        }
        sources.sort();
        sources.dedup();
        ContextReads::Paths(Arc::new(ContextPaths { sources }))
    }
}

/// Whether a listed path of the context is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Not read, nor anything below it.
    No,
    /// Read (a file), or something below it may be (a folder).
    Yes,
    /// A symbolic link a source names or leads through: what it points at is read, so the
    /// whole context is.
    Link,
}

/// How a pattern meets a path, as bits: it matches the path itself, a folder above it, or the
/// path is a folder the pattern leads into.
const EXACT: u8 = 1;
const BELOW: u8 = 2;
const INTO: u8 = 4;

impl ContextPaths {
    /// How the context's `path` (relative to the context, `/`-separated), a folder or not, a
    /// symbolic link or not, is read.
    pub(crate) fn read(&self, path: &str, folder: bool, link: bool) -> Reach {
        let parts: Vec<&str> = path.split('/').collect();
        let mut read = false;
        for source in &self.sources {
            let how = meet(&source.parts, &parts);
            if how == 0 {
                continue;
            }
            if link && how & (EXACT | INTO) != 0 {
                return Reach::Link;
            }
            if folder && how & INTO != 0 {
                read = true;
                continue;
            }
            if how & (EXACT | BELOW) != 0 && !source.excludes(&parts) {
                read = true;
            }
        }
        if read { Reach::Yes } else { Reach::No }
    }
}

impl Source {
    /// Whether `--exclude` takes `parts` (matched by the source at its own depth) out.
    fn excludes(&self, parts: &[&str]) -> bool {
        let Some(below) = parts.get(self.parts.len()..).filter(|b| !b.is_empty()) else { return false };
        self.exclude.iter().any(|e| meet(e, below) & (EXACT | BELOW) != 0)
    }
}

/// How `pattern` meets `path` (both in parts), as [`EXACT`], [`BELOW`], [`INTO`] bits: each
/// (pattern part, path part) pair is worked out once, so `**`s cost their product, never more.
fn meet(pattern: &[String], path: &[&str]) -> u8 {
    let mut memo = if pattern.iter().any(|p| p == "**") {
        vec![u8::MAX; (pattern.len() + 1) * (path.len() + 1)]
    } else {
        Vec::new()
    };
    meet_at(pattern, path, 0, 0, &mut memo)
}

fn meet_at(pattern: &[String], path: &[&str], pi: usize, ci: usize, memo: &mut [u8]) -> u8 {
    let slot = pi * (path.len() + 1) + ci;
    if let Some(known) = memo.get(slot).filter(|m| **m != u8::MAX) {
        return *known;
    }
    let out = match (pattern.get(pi), path.get(ci)) {
        (None, None) => EXACT,
        (None, Some(_)) => BELOW,
        // The path ends where the pattern goes on: a folder it leads into, unless what is left
        // is only `**` (which also matches no part at all).
        (Some(_), None) => {
            if pattern[pi..].iter().all(|p| p == "**") {
                EXACT | INTO
            } else {
                INTO
            }
        }
        (Some(first), Some(_)) if first == "**" => {
            meet_at(pattern, path, pi + 1, ci, memo) | meet_at(pattern, path, pi, ci + 1, memo)
        }
        (Some(first), Some(part)) => {
            if component(first, part) {
                meet_at(pattern, path, pi + 1, ci + 1, memo)
            } else {
                0
            }
        }
    };
    if let Some(entry) = memo.get_mut(slot) {
        *entry = out;
    }
    out
}

/// `pattern` cleaned as `path.Join("/", pattern)` and split: `..` stops at the root, `.` and
/// empty parts go; `None` for a pattern with a NUL (no path has one).
fn clean(pattern: &str) -> Option<Vec<String>> {
    if pattern.contains('\0') {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other.to_owned()),
        }
    }
    Some(parts)
}

/// Whether a pattern component is well formed as `filepath.Match` reads it (every `[` closed,
/// no `\` at the end).
fn valid(pattern: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return false;
                }
                i += 2;
            }
            '[' => match class(&chars, i + 1, None) {
                Some((_, next)) => i = next,
                None => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// Go's `filepath.Match` of one path component (neither holds a `/`).
fn component(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Backtracking over the last `*` only: where it resumes in the name and pattern.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(&p, pi + 1, Some(n[ni])) {
                Some((true, next)) => Some(next),
                _ => None,
            },
            Some('\\') => p.get(pi + 1).filter(|c| **c == n[ni]).map(|_| pi + 2),
            Some(c) if *c == n[ni] => Some(pi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((resume, from))) => {
                pi = resume;
                ni = from + 1;
                star = Some((resume, from + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The character class starting after `[` at `start`, as Go reads it: whether `c` is in it
/// (`false` when no `c` is given), and where the pattern goes on after `]`; `None` when it is
/// malformed (unclosed, empty, a bare `-` or `]` where a character belongs).
fn class(p: &[char], start: usize, c: Option<char>) -> Option<(bool, usize)> {
    let mut i = start;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut ranges = 0;
    loop {
        if p.get(i) == Some(&']') && ranges > 0 {
            i += 1;
            break;
        }
        let lo = escaped(p, &mut i)?;
        let hi = if p.get(i) == Some(&'-') {
            i += 1;
            escaped(p, &mut i)?
        } else {
            lo
        };
        if c.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
        ranges += 1;
    }
    Some((c.is_some() && matched != negated, i))
}

/// One character of a class at `i` (after a `\`, any), moving past it.
fn escaped(p: &[char], i: &mut usize) -> Option<char> {
    let mut ch = *p.get(*i)?;
    if ch == '-' || ch == ']' {
        return None;
    }
    if ch == '\\' {
        *i += 1;
        ch = *p.get(*i)?;
    }
    *i += 1;
    Some(ch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(patterns: &[&str]) -> ContextReads {
        ContextReads::of(patterns.iter().map(|p| ReadPath { pattern: (*p).to_owned(), exclude: Vec::new() }))
    }

    fn paths(reads: &ContextReads) -> &ContextPaths {
        match reads {
            ContextReads::Paths(paths) => paths,
            ContextReads::Whole => panic!("expected paths, got the whole context"),
        }
    }

    #[test]
    fn components_match_as_go_filepath_match() {
        for (pattern, name, expected) in [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a?c", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*.txt", ".txt", true),
            ("*.txt", "a.md", false),
            ("[\\]a]", "]", true),
            ("[a-]", "a", false),
        ] {
            assert_eq!(component(pattern, name), expected, "{pattern} ~ {name}");
        }
        for bad in ["[", "a[", "[^", "ab\\", "[]a]", "[-a]", "[a-]", "[a"] {
            assert!(!valid(bad), "{bad}");
        }
        assert!(valid("a[b-c]\\*"));
    }

    #[test]
    fn a_folder_source_reads_everything_below_it_and_nothing_beside() {
        let reads = reads(&["./src/", "go.mod"]);
        let p = paths(&reads);
        assert_eq!(p.read("src", true, false), Reach::Yes);
        assert_eq!(p.read("src/deep/main.go", false, false), Reach::Yes);
        assert_eq!(p.read("go.mod", false, false), Reach::Yes);
        assert_eq!(p.read("go.sum", false, false), Reach::No);
        assert_eq!(p.read("README.md", false, false), Reach::No);
        assert_eq!(p.read("docs", true, false), Reach::No, "a folder nothing leads into is not walked");
        assert_eq!(p.read("srcs/x", false, false), Reach::No);
    }

    #[test]
    fn wildcards_match_one_component_and_double_stars_any() {
        let globs = reads(&["bin/*-amd64", "conf/**/*.yaml"]);
        let p = paths(&globs);
        assert_eq!(p.read("bin", true, false), Reach::Yes, "a folder the pattern leads into");
        assert_eq!(p.read("bin/app-amd64", false, false), Reach::Yes);
        assert_eq!(p.read("bin/app-arm64", false, false), Reach::No);
        assert_eq!(p.read("bin/sub/app-amd64", false, false), Reach::No, "`*` stays in its component");
        assert_eq!(p.read("conf/a.yaml", false, false), Reach::Yes);
        assert_eq!(p.read("conf/x/y/a.yaml", false, false), Reach::Yes);
        assert_eq!(p.read("conf/x/y", true, false), Reach::Yes);
        assert_eq!(p.read("conf/x/a.json", false, false), Reach::No);
        // Many `**` against a deep path: each pair of parts is looked at once.
        let stars = reads(&["**/a/**/a/**/a/**/a/**/a/**/a/**/b"]);
        let deep = vec!["a"; 300].join("/");
        assert_eq!(paths(&stars).read(&deep, false, false), Reach::No);
        assert_eq!(paths(&stars).read(&format!("{deep}/b"), false, false), Reach::Yes);
    }

    #[test]
    fn the_root_or_a_malformed_pattern_is_the_whole_context() {
        for root in [".", "/", "./", "a/..", "../", "["] {
            assert_eq!(reads(&["go.mod", root]), ContextReads::Whole, "{root}");
        }
        let many: Vec<String> = (0..=MAX_SOURCES).map(|i| format!("f{i}")).collect();
        assert_eq!(reads(&many.iter().map(String::as_str).collect::<Vec<_>>()), ContextReads::Whole);
        // `..` stops at the context's root, as `path.Join("/", …)` does.
        let reads = reads(&["../../etc/app.conf"]);
        assert_eq!(paths(&reads).read("etc/app.conf", false, false), Reach::Yes);
    }

    #[test]
    fn excludes_apply_below_their_source() {
        let reads = ContextReads::of([
            ReadPath { pattern: "docs".into(), exclude: vec!["*.md".into(), "drafts".into()] },
            ReadPath { pattern: "NOTES.md".into(), exclude: vec!["*.md".into()] },
        ]);
        let p = paths(&reads);
        assert_eq!(p.read("docs/index.html", false, false), Reach::Yes);
        assert_eq!(p.read("docs/README.md", false, false), Reach::No);
        assert_eq!(p.read("docs/drafts/new.html", false, false), Reach::No, "a folder excluded whole");
        assert_eq!(p.read("NOTES.md", false, false), Reach::Yes, "a source itself is never excluded");
        // An exception (`!`) is not followed: nothing is excluded (never narrower than BuildKit).
        let reads = ContextReads::of([ReadPath {
            pattern: "docs".into(),
            exclude: vec!["*.md".into(), "!keep.md".into()],
        }]);
        assert_eq!(paths(&reads).read("docs/README.md", false, false), Reach::Yes);
    }

    #[test]
    fn a_link_a_source_names_or_leads_through_is_the_whole_context() {
        let reads = reads(&["config/app.yaml", "vendor"]);
        let p = paths(&reads);
        assert_eq!(p.read("config", false, true), Reach::Link, "a link where the path leads");
        assert_eq!(p.read("vendor", false, true), Reach::Link, "a source that is a link");
        assert_eq!(p.read("vendor/lib", false, true), Reach::Yes, "a link below a source is copied as one");
        assert_eq!(p.read("other", false, true), Reach::No);
    }
}
