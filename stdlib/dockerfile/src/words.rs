//! The shell word rules of the Dockerfile reference, after BuildKit's `shell/lex.go`: quotes,
//! the escape character, and variable substitution (`$VAR`, `${VAR}`, `${VAR:-word}`…; `$1`,
//! `$@` and the other positional and special parameters are never set, so they expand to
//! nothing). Owns turning one written word into its value; where words are is the reader's.

/// Splits on blanks outside quotes, keeping quotes and escapes in the words (ENV and LABEL
/// pairs, before each word is substituted).
pub fn split_words(text: &str, escape: char) -> Vec<String> {
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
pub fn json_array(text: &str) -> Option<Vec<String>> {
    let trimmed = text.trim();
    if !trimmed.starts_with('[') {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

/// Why a word's substitution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordError {
    /// A quote or `${` that is never closed.
    #[error("an unclosed `{0}`")]
    Unclosed(&'static str),
    /// `${}` or `${:x}`: no name.
    #[error("`${{{0}}}` is not a variable")]
    NotAVariable(String),
    /// `${VAR:?message}` / `${VAR?message}` with `VAR` unset (or empty).
    #[error("`{name}`: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The word after `?`, or what BuildKit says without one.
        message: String,
    },
    /// A modifier the reader does not substitute (`${VAR#pattern}`, `${VAR/a/b}`).
    #[error("`${{{0}}}`: unsupported modifier")]
    Modifier(String),
    /// `${a:-${b:-${c:-…}}}` nested deeper than [`MAX_NESTING`].
    #[error("`${{…}}` nested more than {MAX_NESTING} deep")]
    TooDeep,
}

/// How deep `${…}` may nest in one word: each level is substituted by a call of its own, so
/// the depth is bounded (real Dockerfiles nest two or three).
pub const MAX_NESTING: usize = 64;

/// Substitutes one word as the shell would, after the Dockerfile reference: quotes removed,
/// `escape` escapes, `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`, `${VAR:+w}`, `${VAR+w}`,
/// `${VAR:?msg}`, `${VAR?msg}`; nothing inside single quotes.
pub fn word(text: &str, escape: char, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, WordError> {
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
                return Err(WordError::Unclosed("'"));
            }
            i += 1;
        } else if c == '"' {
            i += 1;
            loop {
                let Some(&c) = chars.get(i) else { return Err(WordError::Unclosed("\"")) };
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
pub fn expand(text: &str, escape: char, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, WordError> {
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
                    '{' => {
                        depth += 1;
                        if depth > MAX_NESTING {
                            return Err(WordError::TooDeep);
                        }
                    }
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
                return Err(WordError::Unclosed("${"));
            }
            let inner: String = chars[start..i].iter().collect();
            let inner_chars: Vec<char> = inner.chars().collect();
            let name_end = name_end(&inner_chars, 0);
            let name: String = inner_chars[..name_end].iter().collect();
            let rest: String = inner_chars[name_end..].iter().collect();
            if name.is_empty() {
                return Err(WordError::NotAVariable(inner));
            }
            let value = vars(&name);
            let set_non_empty = value.as_ref().is_some_and(|v| !v.is_empty());
            let nested = |w: &str| word(w, escape, vars);
            let required = |w: &str, why: &str| -> Result<String, WordError> {
                let message = nested(w)?;
                let message = if message.is_empty() { why.to_owned() } else { message };
                Err(WordError::Required { name: name.clone(), message })
            };
            let expanded = if rest.is_empty() {
                value.unwrap_or_default()
            } else if let Some(w) = rest.strip_prefix(":-") {
                if set_non_empty { value.unwrap_or_default() } else { nested(w)? }
            } else if let Some(w) = rest.strip_prefix(":+") {
                if set_non_empty { nested(w)? } else { String::new() }
            } else if let Some(w) = rest.strip_prefix(":?") {
                match value {
                    Some(v) if !v.is_empty() => v,
                    Some(_) => required(w, "is not allowed to be empty")?,
                    None => required(w, "is not allowed to be unset")?,
                }
            } else if let Some(w) = rest.strip_prefix('-') {
                value.map_or_else(|| nested(w), Ok)?
            } else if let Some(w) = rest.strip_prefix('+') {
                if value.is_some() { nested(w)? } else { String::new() }
            } else if let Some(w) = rest.strip_prefix('?') {
                match value {
                    Some(v) => v,
                    None => required(w, "is not allowed to be unset")?,
                }
            } else {
                return Err(WordError::Modifier(inner));
            };
            out.push_str(&expanded);
            Ok(i + 1)
        }
        Some(_) => {
            // `$NAME`, `$1`, `$@`: a name the rules read, unset ones expand to nothing.
            let end = name_end(chars, i);
            if end == i {
                out.push('$');
                return Ok(i);
            }
            let name: String = chars[i..end].iter().collect();
            out.push_str(&vars(&name).unwrap_or_default());
            Ok(end)
        }
        None => {
            out.push('$');
            Ok(i)
        }
    }
}

/// Where the name that starts at `chars[at]` ends, as BuildKit's `processName` reads one:
/// a run of digits (a positional parameter, `$1`), one special parameter (`$@`, `$*`, `$#`,
/// `$?`, `$-`, `$$`, `$!`), or letters, digits and `_`; `at` itself when none starts there.
fn name_end(chars: &[char], at: usize) -> usize {
    let Some(&first) = chars.get(at) else { return at };
    if first.is_ascii_digit() {
        return at + chars[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    if matches!(first, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
        return at + 1;
    }
    at + chars[at..].iter().take_while(|c| c.is_alphanumeric() || **c == '_').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_not_a_stack_overflow() {
        let none = |_: &str| None;
        assert_eq!(word("${a:-${b:-${c:-x}}}", '\\', &none), Ok("x".to_owned()));
        let deep = format!("{}x{}", "${a:-".repeat(100_000), "}".repeat(100_000));
        assert_eq!(word(&deep, '\\', &none), Err(WordError::TooDeep));
        assert_eq!(expand(&deep, '\\', &none), Err(WordError::TooDeep));
        let at_limit = format!("{}x{}", "${a:-".repeat(MAX_NESTING), "}".repeat(MAX_NESTING));
        assert_eq!(word(&at_limit, '\\', &none), Ok("x".to_owned()));
    }
}
