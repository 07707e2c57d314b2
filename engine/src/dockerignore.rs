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
