//! `.dockerignore` matching with Docker's semantics (moby/patternmatcher), and which ignore file
//! shapes a context (a Dockerfile's own `<Dockerfile>.dockerignore` before the context's).
//!
//! Reading (moby's `ignorefile`): a UTF-8 BOM is dropped, a line starting with `#` is a comment
//! (only at the very start of the line), blank lines are skipped, each pattern is trimmed and
//! cleaned like Go's `filepath.Clean`, and a leading `/` is dropped (patterns are anchored at
//! the context root). Matching (moby's `patternmatcher`): `*` and `?` never cross `/`; `**`
//! matches any number of folders; `[…]` is a class whose negation is `^` (`[!a]` is the class of
//! `!` and `a`, as Go's `filepath.Match` reads it); `{` and `}` are literal, never alternatives;
//! `\` escapes the next character; a pattern that matches a folder excludes everything in it;
//! `!pattern` re-includes; the last matching pattern decides. This module never reads files.

use regex::Regex;

/// Which file may shape the context of a Dockerfile, in order of preference: the
/// Dockerfile-specific `<Dockerfile>.dockerignore` beside it (BuildKit and buildx take it
/// instead of the context's, never merged with it), then the context's own `.dockerignore`.
/// `dir` is the context and `dockerfile` the Dockerfile, relative to the same folder.
pub fn ignore_files(dir: &str, dockerfile: &str) -> [String; 2] {
    let context = if dir == "." || dir.is_empty() {
        ".dockerignore".to_owned()
    } else {
        format!("{dir}/.dockerignore")
    };
    [format!("{dockerfile}.dockerignore"), context]
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    exception: bool,
}

/// How a pattern matches, as moby's `patternmatcher` decides it: a literal path, a literal
/// prefix (`dir/**`), a literal suffix (`**/name`), or a regular expression.
#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(Regex),
}

impl Matcher {
    fn is_match(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(p) => path == p,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// A pattern that Docker refuses (Go's `filepath.Match` calls it malformed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern `{pattern}` on line {line}: {problem}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// Its 1-based line.
    pub line: usize,
    /// What is wrong.
    pub problem: Malformed,
}

/// What is wrong with a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// `!` with nothing after it.
    #[error("`!` alone excludes nothing; write `!PATTERN`")]
    BareException,
    /// A trailing `\`.
    #[error("it ends in a lone `\\`")]
    LoneEscape,
    /// A `[` class that is not closed, or holds an unescaped `-` or `]`.
    #[error("a `[` class is not closed, or has an unescaped `-` or `]` in it")]
    Class,
    /// The regular expression the pattern becomes is refused (a size limit).
    #[error("{0}")]
    Regex(String),
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let refuse = |pattern: &str, problem: Malformed| PatternError {
                pattern: pattern.to_owned(),
                line: i + 1,
                problem,
            };
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if exception && pattern.is_empty() {
                return Err(refuse(line, Malformed::BareException));
            }
            let mut pattern = clean(pattern);
            if pattern.len() > 1
                && let Some(rest) = pattern.strip_prefix('/')
            {
                pattern = rest.to_owned();
            }
            if pattern == "." {
                // Matches no path of the context.
                continue;
            }
            let matcher = compile(&pattern).map_err(|problem| refuse(&pattern, problem))?;
            rules.push(Rule { matcher, exception });
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

fn matches_or_parent(matcher: &Matcher, path: &str) -> bool {
    if matcher.is_match(path) {
        return true;
    }
    let mut end = 0;
    while let Some(slash) = path[end..].find('/') {
        end += slash;
        if matcher.is_match(&path[..end]) {
            return true;
        }
        end += 1;
    }
    false
}

/// The pattern as moby's `patternmatcher` compiles it (its algorithm, written anew): literal
/// runs stay literal; `*` is `[^/]*`, `?` is `[^/]`, a leading `**` matches any folders (a
/// literal suffix when nothing else is a wildcard), a trailing `**` anything (a literal prefix
/// when what precedes it is literal), `**/` inside any folders or none; classes are checked
/// as Go's `filepath.Match` checks them.
fn compile(pattern: &str) -> Result<Matcher, Malformed> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let mut at = 0;
    let mut first = true;
    while let Some(&ch) = chars.get(at) {
        at += 1;
        let leading = std::mem::take(&mut first);
        match ch {
            '*' if chars.get(at) == Some(&'*') => {
                at += 1;
                if chars.get(at) == Some(&'/') {
                    at += 1;
                }
                if at == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(?:.*/)?");
                    kind = Kind::Regex;
                }
                if leading {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            '\\' => match chars.get(at) {
                Some(&next) => {
                    at += 1;
                    re.push_str(&regex::escape(&next.to_string()));
                    kind = Kind::Regex;
                }
                None => return Err(Malformed::LoneEscape),
            },
            '[' => {
                at = class(&chars, at, &mut re)?;
                kind = Kind::Regex;
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact(pattern.to_owned()),
        Kind::Prefix => Matcher::Prefix(pattern.strip_suffix("**").unwrap_or(pattern).to_owned()),
        Kind::Suffix => Matcher::Suffix(pattern.strip_prefix("**").unwrap_or(pattern).to_owned()),
        Kind::Regex => {
            re.push('$');
            Matcher::Regex(Regex::new(&re).map_err(|e| Malformed::Regex(e.to_string()))?)
        }
    })
}

/// Reads the class opened by the `[` before `chars[at]` as Go's `filepath.Match` does (`^`
/// negates; ranges `a-z`; `\` escapes; at least one range; `-` and `]` only escaped), writes it
/// to `re`, and returns where the pattern goes on.
fn class(chars: &[char], mut at: usize, re: &mut String) -> Result<usize, Malformed> {
    let unclosed = || Malformed::Class;
    let esc = |at: &mut usize| -> Result<char, Malformed> {
        let mut c = *chars.get(*at).ok_or_else(unclosed)?;
        if c == '-' || c == ']' {
            return Err(unclosed());
        }
        if c == '\\' {
            *at += 1;
            c = *chars.get(*at).ok_or_else(unclosed)?;
        }
        *at += 1;
        Ok(c)
    };
    re.push('[');
    if chars.get(at) == Some(&'^') {
        re.push('^');
        at += 1;
    }
    let mut ranges = 0;
    loop {
        if chars.get(at) == Some(&']') && ranges > 0 {
            re.push(']');
            return Ok(at + 1);
        }
        let lo = esc(&mut at)?;
        re.push_str(&format!("\\x{{{:x}}}", u32::from(lo)));
        if chars.get(at) == Some(&'-') {
            at += 1;
            let hi = esc(&mut at)?;
            re.push_str(&format!("-\\x{{{:x}}}", u32::from(hi)));
        }
        if at >= chars.len() {
            return Err(unclosed());
        }
        ranges += 1;
    }
}

/// Go's `filepath.Clean`: `.` parts and `x/..` pairs dropped, repeated `/` joined; `..` at the
/// start of a relative pattern kept (it then matches nothing), above `/` dropped.
fn clean(pattern: &str) -> String {
    let rooted = pattern.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
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
    fn braces_are_literal_and_bang_in_a_class_is_a_character() {
        // moby/patternmatcher copies `{`, `}` as literals and hands `[` to Go's regexp, where
        // `!` is no negation: what Docker and buildah leave out, not what a shell glob would.
        let d = ignore("*.{log,tmp}\n[!a]*.bak\n");
        assert!(!d.excludes("x.log") && !d.excludes("x.tmp"));
        assert!(d.excludes("x.{log,tmp}"));
        assert!(d.excludes("abak.bak") && d.excludes("!x.bak"));
        assert!(!d.excludes("b.bak"));
        let d = ignore("[^a]*.bak\n");
        assert!(d.excludes("b.bak") && !d.excludes("abak.bak"), "`^` negates");
    }

    #[test]
    fn double_star_forms() {
        let d = ignore("docs/**\n");
        assert!(d.excludes("docs/x") && !d.excludes("docs"), "a literal prefix `docs/`");
        let d = ignore("**/cache\n");
        assert!(d.excludes("cache") && d.excludes("a/b/cache/x") && !d.excludes("mycache"));
        let d = ignore("a/**/z\n");
        assert!(d.excludes("a/z") && d.excludes("a/b/c/z") && !d.excludes("b/z"));
    }

    #[test]
    fn reading_follows_docker() {
        // A BOM is dropped; `#` is a comment only at the start of the line; `..` stays.
        let d = ignore("\u{feff}a.txt\n  #b.txt\n../c.txt\n\\#d\n");
        assert!(d.excludes("a.txt"));
        assert!(d.excludes("#b.txt"), "an indented `#` is a pattern");
        assert!(!d.excludes("c.txt"));
        assert!(d.excludes("#d"));
        for bad in ["[a", "a[]", "[-a]", "x\\", "!"] {
            assert!(DockerIgnore::parse(bad).is_err(), "`{bad}` is refused");
        }
    }

    #[test]
    fn the_dockerfiles_own_ignore_file_comes_first() {
        assert_eq!(
            ignore_files("app", "app/web.Dockerfile"),
            ["app/web.Dockerfile.dockerignore", "app/.dockerignore"]
        );
        assert_eq!(ignore_files(".", "Dockerfile"), ["Dockerfile.dockerignore", ".dockerignore"]);
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
