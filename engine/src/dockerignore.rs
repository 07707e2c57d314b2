//! `.dockerignore` matching with Docker's semantics (moby/patternmatcher).
//!
//! Patterns are anchored at the context root; `*` and `?` never cross `/`; `**` matches any
//! number of folders; a pattern that matches a folder excludes everything in it; `!pattern`
//! re-includes; the last matching pattern decides. Comments (`#`) and blank lines are ignored.

use globset::{GlobBuilder, GlobMatcher};

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: GlobMatcher,
    exception: bool,
}

/// A pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid .dockerignore pattern `{pattern}` on line {line}: {message}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// Its 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .empty_alternates(true)
                .build()
                .map_err(|e| PatternError {
                    pattern: pattern.clone(),
                    line: i + 1,
                    message: e.kind().to_string(),
                })?;
            rules.push(Rule { matcher: glob.compile_matcher(), exception });
        }
        Ok(DockerIgnore { rules })
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if rule.exception == excluded && matches_or_parent(&rule.matcher, path) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether a folder can be skipped whole: it is excluded and no exception could bring back
    /// anything inside it.
    pub fn prunes(&self, dir: &str) -> bool {
        !self.rules.iter().any(|r| r.exception) && self.excludes(dir)
    }
}

fn matches_or_parent(matcher: &GlobMatcher, path: &str) -> bool {
    if matcher.is_match(path) {
        return true;
    }
    let mut rest = path;
    while let Some(slash) = rest.rfind('/') {
        rest = &rest[..slash];
        if matcher.is_match(rest) {
            return true;
        }
    }
    false
}

/// Go's `filepath.Clean` for patterns, with the leading `/` dropped (Docker anchors at the root).
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).expect("valid patterns")
    }

    #[test]
    fn patterns_are_anchored_at_the_root() {
        let d = ignore("*.md\n/build\n");
        assert!(d.excludes("README.md"));
        assert!(!d.excludes("docs/README.md"), "`*` does not cross folders");
        assert!(d.excludes("build") && d.excludes("build/out/app"));
        assert!(!d.excludes("src/build"));
    }

    #[test]
    fn double_star_crosses_folders() {
        let d = ignore("**/*.log\ndocs/**\n");
        assert!(d.excludes("a.log") && d.excludes("a/b/c.log"));
        assert!(d.excludes("docs/x/y.txt"));
        assert!(!d.excludes("src/main.rs"));
    }

    #[test]
    fn exceptions_reinclude_and_the_last_match_wins() {
        let d = ignore("*.md\n!README.md\n");
        assert!(d.excludes("CHANGES.md"));
        assert!(!d.excludes("README.md"));
        let d = ignore("!README.md\n*.md\n");
        assert!(d.excludes("README.md"), "a later pattern overrides an earlier exception");
        let d = ignore("vendor\n!vendor/keep.txt\n");
        assert!(d.excludes("vendor/drop.txt"));
        assert!(!d.excludes("vendor/keep.txt"));
        assert!(!d.prunes("vendor"), "an exception may re-include inside it");
    }

    #[test]
    fn comments_blank_lines_and_cleaning() {
        let d = ignore("# comment\n\n  ./tmp/../cache  \n");
        assert!(d.excludes("cache/x"));
        assert!(!d.excludes("tmp/x"));
        assert!(d.prunes("cache"));
    }

    #[test]
    fn question_mark_and_classes() {
        let d = ignore("file?.txt\n[ab].bin\n");
        assert!(d.excludes("file1.txt") && !d.excludes("file10.txt"));
        assert!(d.excludes("a.bin") && !d.excludes("c.bin"));
    }
}

#[cfg(test)]
mod fuzz {
    //! Property-based fuzzing (proptest) of `.dockerignore` parsing and matching: any pattern
    //! text parses or is refused with an error, never a panic; matching never panics; and an
    //! exception after a pattern re-includes what the pattern excluded.

    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_dockerignore_parses_or_is_refused(text in "[a-z*?!/.\\[\\]{},\\\\ \\n#-]{0,120}", path in "[a-z./]{0,40}") {
            if let Ok(ignore) = DockerIgnore::parse(&text) {
                let _ = ignore.excludes(&path);
                let _ = ignore.prunes(&path);
            }
        }

        #[test]
        fn an_exception_re_includes(name in "[a-z]{1,8}(/[a-z]{1,8}){0,3}") {
            let ignore = DockerIgnore::parse(&format!("{name}\n!{name}\n")).expect("literal patterns parse");
            prop_assert!(!ignore.excludes(&name));
            let ignore = DockerIgnore::parse(&format!("{name}\n")).expect("literal patterns parse");
            prop_assert!(ignore.excludes(&name));
        }
    }
}
