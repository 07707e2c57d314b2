//! hephy's Dockerfile reader, after the Dockerfile reference: parser directives (`# escape=`,
//! `# syntax=`), comments, line continuations (comment lines inside them skipped), here-documents
//! (`COPY <<EOF /x`), instruction flags (`--from=…`), JSON (exec) and shell forms, and the shell
//! word rules of variable substitution (quotes, escapes, `${VAR:-word}`…).
//!
//! It owns the text → instructions step and the word rules; what an instruction means is the
//! builder's business ([`crate::builders::oci::build`]), what a graph may ask of it is `check`'s.

use std::ops::Range;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dockerfile {
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub(crate) escape: char,
    /// Its instructions, in order.
    pub(crate) instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instruction {
    /// The keyword, upper-case (`COPY`).
    pub(crate) keyword: String,
    /// Leading `--name[=value]` flags, as written (values not yet substituted).
    pub(crate) flags: Vec<(String, Option<String>)>,
    /// The rest of the logical line after the keyword and flags, continuations joined.
    pub(crate) args: String,
    /// Here-documents the instruction names, in order.
    pub(crate) heredocs: Vec<Heredoc>,
    /// Where it is in the text (keyword to the end of its last line).
    pub(crate) span: Range<usize>,
    /// 1-based line of the keyword.
    pub(crate) line: usize,
    /// The logical line as written after the keyword (flags included; for `ONBUILD`).
    pub(crate) original: String,
}

/// A here-document (`<<EOF … EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heredoc {
    /// The word after `<<`.
    pub(crate) name: String,
    /// Its lines, each ending in a newline.
    pub(crate) body: String,
    /// Whether variables in the body are substituted (the word was not quoted).
    pub(crate) expand: bool,
}

/// Why a text is not a Dockerfile; `span` points into the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadError {
    pub(crate) message: String,
    pub(crate) span: Range<usize>,
}

/// Physical lines with their byte offsets.
fn physical_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.strip_suffix('\n').unwrap_or(line);
        let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
        out.push((start, trimmed));
        start += line.len();
    }
    out
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// `line` without a trailing continuation (`\` and trailing blanks), and whether it had one.
fn continued(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(rest) => (rest, true),
        None => (line, false),
    }
}

/// Reads `text`.
pub(crate) fn parse(text: &str) -> Result<Dockerfile, ReadError> {
    let lines = physical_lines(text);
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: `# key=value` lines at the very top.
    let mut seen = Vec::new();
    while let Some((offset, line)) = lines.get(i) {
        let Some(rest) = line.trim_start().strip_prefix('#') else { break };
        let Some((key, value)) = rest.split_once('=') else { break };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() || key.contains(char::is_whitespace) {
            break;
        }
        if seen.contains(&key) {
            break;
        }
        if key == "escape" {
            escape = match value.trim() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(ReadError {
                        message: format!("invalid escape character `{other}`: it must be ` or \\"),
                        span: *offset..offset + line.len(),
                    });
                }
            };
        }
        seen.push(key);
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let (offset, line) = lines[i];
        i += 1;
        if line.trim().is_empty() || is_comment(line) {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let start = offset + indent;
        let (first, mut more) = continued(line.trim_start(), escape);
        let mut logical = first.to_owned();
        let mut end = offset + line.len();
        while more && i < lines.len() {
            let (o, l) = lines[i];
            i += 1;
            end = o + l.len();
            if is_comment(l) || l.trim().is_empty() {
                continue;
            }
            let (part, again) = continued(l, escape);
            logical.push_str(part);
            more = again;
        }
        let logical = logical.trim().to_owned();
        let (keyword, rest) = match logical.split_once(char::is_whitespace) {
            Some((k, r)) => (k.to_ascii_uppercase(), r.trim_start().to_owned()),
            None => (logical.to_ascii_uppercase(), String::new()),
        };
        if !keyword.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ReadError {
                message: format!("`{keyword}` is not a Dockerfile instruction"),
                span: start..start + keyword.len(),
            });
        }
        let (flags, args) = if matches!(keyword.as_str(), "FROM" | "COPY" | "ADD" | "RUN" | "HEALTHCHECK") {
            split_flags(&rest)
        } else {
            (Vec::new(), rest.clone())
        };
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "COPY" | "ADD" | "RUN") {
            for (name, strip_tabs, expand) in heredoc_words(&args) {
                let mut body = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let (o, l) = lines[i];
                    i += 1;
                    end = o + l.len();
                    let l = if strip_tabs { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        closed = true;
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                if !closed {
                    return Err(ReadError {
                        message: format!("the here-document `<<{name}` has no closing `{name}` line"),
                        span: start..end,
                    });
                }
                heredocs.push(Heredoc { name, body, expand });
            }
        }
        let line_number = text.get(..start).unwrap_or_default().matches('\n').count() + 1;
        instructions.push(Instruction {
            keyword,
            flags,
            args: args.trim().to_owned(),
            heredocs,
            span: start..end,
            line: line_number,
            original: rest,
        });
    }
    Ok(Dockerfile { escape, instructions })
}

/// Leading `--name[=value]` words of `rest`, and what follows them.
fn split_flags(rest: &str) -> (Vec<(String, Option<String>)>, String) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    while let Some(flag) = rest.strip_prefix("--") {
        let word_end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let word = &flag[..word_end];
        match word.split_once('=') {
            Some((name, value)) => flags.push((name.to_owned(), Some(value.to_owned()))),
            None => flags.push((word.to_owned(), None)),
        }
        rest = flag[word_end..].trim_start();
    }
    (flags, rest.to_owned())
}

/// The here-document words of an instruction's arguments: `(name, <<- strips tabs, expands)`.
fn heredoc_words(args: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    for word in args.split_whitespace() {
        let Some(rest) = word.strip_prefix("<<") else { continue };
        let (strip, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (name, quoted) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => match rest[1..].strip_suffix(q) {
                Some(inner) => (inner, true),
                None => continue,
            },
            _ => (rest, false),
        };
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push((name.to_owned(), strip, !quoted));
        }
    }
    out
}

/// Splits on blanks outside quotes, keeping quotes and escapes in the words (ENV and LABEL
/// pairs, before each word is substituted).
pub(crate) fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) if c == escape && quote != Some('\'') => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (None, q @ ('"' | '\'')) => {
                quote = Some(q);
                word.push(q);
                in_word = true;
            }
            (Some(q), c) if c == q => {
                quote = None;
                word.push(c);
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `text` as a JSON array of strings (the exec form), if it is one.
pub(crate) fn json_array(text: &str) -> Option<Vec<String>> {
    let trimmed = text.trim();
    if !trimmed.starts_with('[') {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

/// Why a word's substitution failed (`${VAR:?message}`, an unclosed `${`).
pub(crate) type WordError = String;

/// Substitutes one word as the shell would, after the Dockerfile reference: quotes removed,
/// `escape` escapes, `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`, `${VAR:+w}`, `${VAR+w}`,
/// `${VAR:?msg}`, `${VAR?msg}`; nothing inside single quotes.
pub(crate) fn word(
    text: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, WordError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            match chars.get(i + 1) {
                Some(&next) => out.push(next),
                None => out.push(c),
            }
            i += 2;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                out.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err("an unclosed `'`".to_owned());
            }
            i += 1;
        } else if c == '"' {
            i += 1;
            loop {
                let Some(&c) = chars.get(i) else { return Err("an unclosed `\"`".to_owned()) };
                if c == '"' {
                    i += 1;
                    break;
                }
                if c == escape {
                    match chars.get(i + 1) {
                        Some(&n) if n == '"' || n == '$' || n == escape => {
                            out.push(n);
                            i += 2;
                        }
                        _ => {
                            out.push(c);
                            i += 1;
                        }
                    }
                } else if c == '$' {
                    i = dollar(&chars, i, escape, vars, &mut out)?;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
        } else if c == '$' {
            i = dollar(&chars, i, escape, vars, &mut out)?;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// Substitutes variables only (here-document bodies): quotes stay, `escape` before `$` makes
/// it literal.
pub(crate) fn expand(
    text: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, WordError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else if c == '$' {
            i = dollar(&chars, i, escape, vars, &mut out)?;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// Substitutes the `$…` at `chars[at]`; returns where reading goes on.
fn dollar(
    chars: &[char],
    at: usize,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<usize, WordError> {
    let mut i = at + 1;
    match chars.get(i) {
        Some('{') => {
            i += 1;
            let mut depth = 1;
            let start = i;
            while i < chars.len() {
                match chars[i] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    c if c == escape => i += 1,
                    _ => {}
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err("an unclosed `${`".to_owned());
            }
            let inner: String = chars[start..i].iter().collect();
            let name_end =
                inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
            let (name, rest) = inner.split_at(name_end);
            if name.is_empty() {
                return Err(format!("`${{{inner}}}` is not a variable"));
            }
            let value = vars(name);
            let set_non_empty = value.as_ref().is_some_and(|v| !v.is_empty());
            let nested = |w: &str| word(w, escape, vars);
            let expanded = if rest.is_empty() {
                value.unwrap_or_default()
            } else if let Some(w) = rest.strip_prefix(":-") {
                if set_non_empty { value.unwrap_or_default() } else { nested(w)? }
            } else if let Some(w) = rest.strip_prefix(":+") {
                if set_non_empty { nested(w)? } else { String::new() }
            } else if let Some(w) = rest.strip_prefix(":?") {
                if set_non_empty {
                    value.unwrap_or_default()
                } else {
                    return Err(format!("`{name}`: {}", nested(w)?));
                }
            } else if let Some(w) = rest.strip_prefix('-') {
                value.map_or_else(|| nested(w), Ok)?
            } else if let Some(w) = rest.strip_prefix('+') {
                if value.is_some() { nested(w)? } else { String::new() }
            } else if let Some(w) = rest.strip_prefix('?') {
                value.ok_or_else(|| format!("`{name}`: {}", nested(w).unwrap_or_default()))?
            } else {
                return Err(format!("`${{{inner}}}`: unsupported modifier"));
            };
            out.push_str(&expanded);
            Ok(i + 1)
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            out.push_str(&vars(&name).unwrap_or_default());
            Ok(i)
        }
        _ => {
            out.push('$');
            Ok(i)
        }
    }
}

/// Whether `text` has a `RUN` (or an `ONBUILD RUN`); a text that does not read as a Dockerfile
/// counts as one without (the builder reports it).
pub(crate) fn runs_commands(text: &str) -> bool {
    parse(text).is_ok_and(|d| {
        d.instructions.iter().any(|i| {
            i.keyword == "RUN"
                || (i.keyword == "ONBUILD"
                    && i.args.split_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case("RUN")))
        })
    })
}

/// One `RUN` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    /// Its 1-based line.
    pub(crate) line: usize,
    /// Where it is in the text.
    pub(crate) span: Range<usize>,
    /// Whether it uses `--mount=…` (BuildKit syntax).
    pub(crate) mount: bool,
}

/// The facts of one Dockerfile a `check` needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Facts {
    /// Every `RUN`.
    pub(crate) runs: Vec<Run>,
    /// Named stages (`FROM … AS name`), in order.
    pub(crate) stages: Vec<String>,
}

/// Reads `text` for `check`.
pub(crate) fn read(text: &str) -> Result<Facts, ReadError> {
    let dockerfile = parse(text)?;
    let mut facts = Facts::default();
    for instruction in &dockerfile.instructions {
        match instruction.keyword.as_str() {
            "RUN" => facts.runs.push(Run {
                line: instruction.line,
                span: instruction.span.clone(),
                mount: instruction.flags.iter().any(|(name, _)| name == "mount"),
            }),
            "FROM" => {
                let words: Vec<&str> = instruction.args.split_whitespace().collect();
                if let [_, as_word, name] = words.as_slice()
                    && as_word.eq_ignore_ascii_case("as")
                {
                    facts.stages.push((*name).to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_runs_mounts_and_stages() {
        let facts = read(
            "ARG BASE\nFROM ${BASE} AS build\nRUN --mount=type=cache,target=/root/.cache \\\n    make\nRUN echo hi\nFROM scratch AS final\nCOPY --from=build /out /\n",
        )
        .expect("a Dockerfile");
        assert_eq!(facts.runs.iter().map(|r| (r.line, r.mount)).collect::<Vec<_>>(), [(3, true), (5, false)]);
        assert_eq!(facts.stages, ["build", "final"]);
        assert_eq!(read("FROM scratch\nCOPY a /\n").expect("reads").runs, []);
    }

    #[test]
    fn reads_directives_continuations_heredocs_and_json() {
        let d = parse("# escape=`\nFROM scratch\nCOPY a `\n# skipped\n  b /x/\nCOPY <<EOF <<-'END' /d/\nhello $X\nEOF\n\tbye\n\tEND\nCOPY [\"a b\", \"/c d/\"]\n")
            .expect("reads");
        assert_eq!(d.escape, '`');
        let i = &d.instructions;
        assert_eq!(i[1].args, "a   b /x/");
        assert_eq!(i[1].line, 3);
        assert_eq!(i[2].heredocs.len(), 2);
        assert_eq!(i[2].heredocs[0], Heredoc { name: "EOF".into(), body: "hello $X\n".into(), expand: true });
        assert_eq!(i[2].heredocs[1].body, "bye\n");
        assert!(!i[2].heredocs[1].expand);
        assert_eq!(json_array(&i[3].args).expect("json"), ["a b", "/c d/"]);
        assert!(parse("FROM scratch\nCOPY <<EOF /x\nno end\n").is_err());
    }

    #[test]
    fn words_follow_the_shell_rules() {
        let vars = |n: &str| match n {
            "A" => Some("x".to_owned()),
            "E" => Some(String::new()),
            _ => None,
        };
        let w = |t: &str| word(t, '\\', &vars).expect("a word");
        assert_eq!(w("$A/${A}/${B:-d}/${E:-d}/${A:+y}/${B:+y}/\\$A"), "x/x/d/d/y//$A");
        assert_eq!(w("'$A' \"$A\" a\\ b"), "$A x a b");
        assert_eq!(w("${E-d}${B-d}${E+s}${B+s}"), "ds");
        assert!(word("${B:?unset}", '\\', &vars).is_err());
        assert_eq!(split_words("a=b \"c d\"='e f' g=h\\ i", '\\'), ["a=b", "\"c d\"='e f'", "g=h\\ i"]);
    }
}
