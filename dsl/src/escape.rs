//! How text is written into each language hephy writes: one function per target syntax, used by
//! every writer (the printer, the importers, `init`, the CI pipelines, the HTML report, the
//! terminal). KDL strings and comments, YAML strings and comments, HTML text, attributes and a
//! `<script>` data island, and the terminal. Each function escapes whatever the target would read
//! as something else (a line end that closes a comment, a `<` that opens an element, an ESC that
//! moves the cursor); none of them checks or rejects a value.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::source::Syntax;

/// Whether a KDL or YAML reader ends a line at `c`: KDL v2's newlines (CR, LF, NEL, VT, FF,
/// U+2028, U+2029) and YAML 1.1's (CR, LF, NEL, U+2028, U+2029).
fn ends_a_line(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{b}' | '\u{c}' | '\u{2028}' | '\u{2029}')
}

/// Whether `c` may not appear literally in a KDL v2 or YAML document (outside the escapes of a
/// quoted string): the control characters (C0, DEL, C1), the text-direction marks and
/// overrides, the byte-order mark, and YAML's non-characters U+FFFE, U+FFFF.
fn not_literal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}')
}

/// `s` between double quotes, with the escapes KDL, YAML and HCL share (`\"`, `\\`, `\n`,
/// `\r`, `\t`); every other character `escaped` picks is written by `unicode`.
fn quoted(s: &str, escaped: impl Fn(char) -> bool, unicode: impl Fn(&mut String, u32)) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if escaped(c) => unicode(&mut out, c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A KDL v2 string, quoted: every character KDL would read otherwise is an escape.
pub fn kdl_string(s: &str) -> String {
    quoted(
        s,
        |c| not_literal(c) || ends_a_line(c),
        |out, c| {
            let _ = write!(out, "\\u{{{c:x}}}");
        },
    )
}

/// A YAML double-quoted string (JSON's escapes, and YAML's for what JSON leaves raw: DEL, the C1
/// controls, U+2028, U+2029, the byte-order mark).
pub fn yaml_string(s: &str) -> String {
    quoted(
        s,
        |c| not_literal(c) || ends_a_line(c),
        |out, c| {
            let _ = write!(out, "\\u{c:04x}");
        },
    )
}

/// An HCL quoted string (bake files): every control character and line separator as `\uNNNN`.
/// `${…}` and `%{…}` are left as they are: HCL reads them as templates, as bake means them.
pub fn hcl_string(s: &str) -> String {
    quoted(
        s,
        |c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'),
        |out, c| {
            let _ = write!(out, "\\u{c:04x}");
        },
    )
}

/// A YAML scalar: plain when it cannot be read as anything but this text, else quoted.
pub fn yaml_scalar(text: &str) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain { text.to_owned() } else { yaml_string(text) }
}

/// One line of a comment's text: every character that would end the comment or may not appear
/// in the document written as `\u{d}`.
fn comment_text(line: &str, out: &mut String) {
    for c in line.chars() {
        if (not_literal(c) || ends_a_line(c)) && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
}

/// `text` as comment lines of `prefix`: one per `\n` of it, each `INDENT PREFIX text`; every other
/// line end, and every control character, is written as `\u{d}` inside its line.
fn comment(prefix: &str, indent: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let text = text.strip_suffix('\n').unwrap_or(text);
    for line in text.split('\n') {
        out.push_str(indent);
        out.push_str(prefix);
        if !line.is_empty() {
            out.push(' ');
            comment_text(line, &mut out);
        }
        out.push('\n');
    }
    out
}

/// `text` as KDL `//` comment lines at `indent`, one per line of it: nothing in it ends a comment
/// early (KDL ends one at CR, NEL, VT, FF, U+2028 and U+2029 too).
pub fn kdl_comment(indent: &str, text: &str) -> String {
    comment("//", indent, text)
}

/// `text` as YAML `#` comment lines at `indent`, one per line of it: nothing in it ends a comment
/// early (YAML ends one at CR, and YAML 1.1 readers at NEL, U+2028 and U+2029).
pub fn yaml_comment(indent: &str, text: &str) -> String {
    comment("#", indent, text)
}

/// [`kdl_comment`] or [`yaml_comment`], for `syntax`.
pub fn graph_comment(syntax: Syntax, indent: &str, text: &str) -> String {
    match syntax {
        Syntax::Kdl => kdl_comment(indent, text),
        Syntax::Yaml => yaml_comment(indent, text),
    }
}

/// Whether `c` would act on a terminal rather than print: C0 and C1 controls, DEL, and the
/// bidirectional overrides that reorder what is shown (newline and tab print).
pub(crate) fn acts_on_terminal(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` as it may reach a terminal: every control character but newline and tab (ESC, BEL,
/// CR, the C1 controls that start OSC sequences, bidirectional overrides) written as `\u{1b}`.
pub fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if acts_on_terminal(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`terminal`] for text shown within one line: newline and tab escaped too (`\n`, `\t`), and
/// the Unicode line and paragraph separators (`\u{2028}`).
pub fn terminal_line(text: &str) -> Cow<'_, str> {
    if !text.contains(['\n', '\t', '\u{2028}', '\u{2029}']) {
        return terminal(text);
    }
    let text = text
        .replace('\n', "\\n")
        .replace('\t', "\\t")
        .replace('\u{2028}', "\\u{2028}")
        .replace('\u{2029}', "\\u{2029}");
    Cow::Owned(terminal(&text).into_owned())
}

/// A value quoted in a message (a warning, a comment): [`terminal_line`], and at most `max`
/// characters of it, a longer one cut with `…`.
pub fn excerpt(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => terminal_line(text),
        Some((cut, _)) => Cow::Owned(format!("{}…", terminal_line(&text[..cut]))),
    }
}

/// Text of an HTML element: `&`, `<` and `>` as references, control characters (which HTML
/// reads as parse errors, NUL as nothing) as `\u{1b}`.
pub fn html_text(text: &str) -> Cow<'_, str> {
    html(text, false)
}

/// A quoted HTML attribute value (`"…"` or `'…'`): [`html_text`], and both quotes as
/// references.
pub fn html_attribute(text: &str) -> Cow<'_, str> {
    html(text, true)
}

fn html(text: &str, attribute: bool) -> Cow<'_, str> {
    let special = |c: char| {
        matches!(c, '&' | '<' | '>')
            || (attribute && matches!(c, '"' | '\''))
            || (c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    };
    if !text.chars().any(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&#39;"),
            c if special(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text as the content of an HTML `<script type="application/json">` data island: every
/// `<`, `>` and `&` (which JSON has only inside strings) as its `\u003c` escape, so nothing in
/// it ends the element (`</script`) or changes how it is read (`<!--`, `<script`), and U+2028,
/// U+2029 escaped too. `JSON.parse` reads it back unchanged.
pub fn html_script_json(json: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}');
    if !json.chars().any(special) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if special(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text inside a Graphviz DOT double-quoted string (without the quotes): `"` and `\\` escaped
/// (DOT's one escape, and the backslash its labels read as one), a line end as `\\n`, other
/// control characters as `\\u{1b}` text.
pub fn dot_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push('\\');
                out.extend(c.escape_unicode());
            }
            c => out.push(c),
        }
    }
    out
}

/// Text inside a Mermaid `"…"` label (without the quotes): what Mermaid reads as syntax or
/// markup (`"`, `#`, `&`, `<`, `>`) as its entity codes (`#34;`), a line end as `<br/>`, other
/// control characters as `\u{1b}` text.
pub fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' | '#' | '&' | '<' | '>' => {
                let _ = write!(out, "#{};", c as u32);
            }
            '\n' => out.push_str("<br/>"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every character a reader might take for a line end, a control, or markup, and some plain
    /// text around them.
    pub(crate) fn hostile() -> impl Strategy<Value = String> {
        let special: Vec<char> = (0u32..=0x20)
            .chain(0x7f..=0xa0)
            .chain([0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202e, 0x2066, 0x2069, 0xfeff, 0xfffe, 0xffff])
            .filter_map(char::from_u32)
            .chain("\"\\/#*{}[]();=<>&'!-`$%:,|".chars())
            .collect();
        let pieces = prop_oneof![
            proptest::sample::select(special).prop_map(String::from),
            Just("</script>".to_owned()),
            Just("<!--<script>".to_owned()),
            Just("task \"pwn\" { run \"x\" }".to_owned()),
            Just("-->".to_owned()),
            Just("*/".to_owned()),
            "[a-z ]{0,4}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(pieces, 0..24).prop_map(|parts| parts.concat())
    }

    /// The document's nodes, by name, as KDL v2 reads it.
    fn kdl_nodes(text: &str) -> Vec<String> {
        match kdl::KdlDocument::parse_v2(text) {
            Ok(doc) => doc.nodes().iter().map(|n| n.name().value().to_owned()).collect(),
            Err(e) => panic!("not KDL v2 ({e:?}):\n{text:?}"),
        }
    }

    /// The scalars of a YAML stream, in order, as the dsl's YAML reader reads them.
    fn yaml_scalars(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for event in saphyr_parser::Parser::new_from_str(text) {
            match event {
                Ok((saphyr_parser::Event::Scalar(value, ..), _)) => out.push(value.into_owned()),
                Ok(_) => {}
                Err(e) => panic!("not YAML ({e}):\n{text:?}"),
            }
        }
        out
    }

    /// Undoes [`html`]'s references (the only ones it writes).
    fn unescape_html(text: &str) -> String {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    /// Undoes `\u{…}` escapes of controls (what the comment, terminal and HTML writers write).
    fn unescape_unicode(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("\\u{") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 3..];
            let end = after.find('}').expect("a closing brace");
            let c =
                u32::from_str_radix(&after[..end], 16).ok().and_then(char::from_u32).expect("a code point");
            out.push(c);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn known_forms() {
        assert_eq!(kdl_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(yaml_string("a\"b\u{1}\u{2028}"), "\"a\\\"b\\u0001\\u2028\"");
        assert_eq!(kdl_comment("  ", "a\rb\n\nc\u{2028}"), "  // a\\u{d}b\n  //\n  // c\\u{2028}\n");
        assert_eq!(yaml_comment("", "x\u{85}y"), "# x\\u{85}y\n");
        assert_eq!(terminal_line("a\x1b[2J\n"), "a\\u{1b}[2J\\n");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("a\rb", 3), "a\\u{d}b");
        assert_eq!(html_text("<b>&"), "&lt;b&gt;&amp;");
        assert_eq!(html_attribute("\"'"), "&quot;&#39;");
        assert_eq!(html_script_json(r#"["</script><!--"]"#), r#"["\u003c/script\u003e\u003c!--"]"#);
        assert_eq!(dot_text("a\"b\\c\nd\re"), "a\\\"b\\\\c\\nd\\\\u{d}e");
        assert_eq!(mermaid_text("a\"b#c<d>\ne"), "a#34;b#35;c#60;d#62;<br/>e");
    }

    /// The strings of a DOT text, as Graphviz's lexer reads them: `"…"` with `\"` for a quote.
    fn dot_strings(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut string = String::new();
            loop {
                match chars.next() {
                    Some('"') | None => break,
                    Some('\\') => match chars.next() {
                        Some('"') => string.push('"'),
                        Some(other) => {
                            string.push('\\');
                            string.push(other);
                        }
                        None => break,
                    },
                    Some(other) => string.push(other),
                }
            }
            out.push(string);
        }
        out
    }

    /// What a DOT label shows, read from its escapes as Graphviz does (`\\`, `\n`).
    fn unescape_dot_label(label: &str) -> String {
        let mut out = String::new();
        let mut chars = label.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A DOT string holds the text as one string (no quote ends it early, no raw line end or
        /// control in it), and Graphviz's label escapes give the text back.
        #[test]
        fn dot_reads_back(value in hostile()) {
            let text = format!("\"a\" [label=\"{}\", tooltip=\"{}\"];\n", dot_text(&value), dot_text(&value));
            let strings = dot_strings(&text);
            prop_assert_eq!(strings.len(), 3, "{:?}", text);
            prop_assert!(!strings[1].chars().any(|c| c.is_control()), "{:?}", strings[1]);
            let shown: String = value
                .chars()
                .flat_map(|c| {
                    let escaped = c != '\n' && (c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
                    if escaped { c.escape_unicode().collect::<Vec<_>>() } else { vec![c] }
                })
                .collect();
            prop_assert_eq!(unescape_dot_label(&strings[1]), shown);
        }

        /// A Mermaid label holds no quote, markup or line end of its own, and its entity codes
        /// give the text back.
        #[test]
        fn mermaid_reads_back(value in hostile()) {
            let label = mermaid_text(&value);
            prop_assert!(!label.replace("<br/>", "").contains(['"', '<', '>', '&']), "{:?}", label);
            prop_assert!(!label.chars().any(|c| c.is_control()), "{:?}", label);
            if !value.contains("\\u{") && !value.contains("<br/>") {
                let mut back = label.replace("<br/>", "\n");
                for c in ['"', '&', '<', '>', '#'] {
                    back = back.replace(&format!("#{};", c as u32), &c.to_string());
                }
                prop_assert_eq!(unescape_unicode(&back), value.clone());
            }
        }

        /// A KDL string reads back as the value; a KDL comment adds no node, whatever it holds.
        #[test]
        fn kdl_reads_back(value in hostile()) {
            let text = format!("{}a {}\n{}b\n", kdl_comment("", &value), kdl_string(&value), kdl_comment("    ", &value));
            let doc = kdl::KdlDocument::parse_v2(&text).unwrap_or_else(|e| panic!("{e:?}\n{text:?}"));
            let names: Vec<&str> = doc.nodes().iter().map(|n| n.name().value()).collect();
            prop_assert_eq!(names, ["a", "b"]);
            let read = doc.nodes()[0].entries()[0].value().as_string().map(str::to_owned);
            prop_assert_eq!(read, Some(value.clone()));
            prop_assert_eq!(kdl_nodes(&kdl_comment("", &value)).len(), 0);
        }

        /// A YAML string reads back as the value; a YAML comment adds no scalar.
        #[test]
        fn yaml_reads_back(value in hostile()) {
            let text = format!("{}a: {}\n{}b: {}\n", yaml_comment("", &value), yaml_string(&value), yaml_comment("  ", &value), yaml_scalar(&value));
            prop_assert_eq!(yaml_scalars(&text), ["a".to_owned(), value.clone(), "b".to_owned(), value.clone()]);
        }

        /// What reaches a terminal holds no C0 or C1 control but newline and tab, and reads back.
        #[test]
        fn terminal_text_has_no_control(value in hostile()) {
            let shown = terminal(&value);
            prop_assert!(!shown.chars().any(acts_on_terminal), "{:?}", shown);
            if !value.contains("\\u{") {
                prop_assert_eq!(unescape_unicode(&shown), value.clone());
            }
            let line = terminal_line(&value);
            prop_assert!(!line.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')), "{:?}", line);
            let cut = excerpt(&value, 5);
            prop_assert!(!cut.chars().any(|c| c.is_control()) && cut.chars().count() <= 5 * 10 + 1);
        }

        /// HTML text and attributes open no element, comment or reference of their own, end no
        /// quoted attribute, and read back; a data island holds no `<` (so no `</script`, no
        /// `<!--`) and parses back as the same JSON.
        #[test]
        fn html_reads_back(value in hostile()) {
            for (escaped, quotes) in [(html_text(&value), false), (html_attribute(&value), true)] {
                prop_assert!(!escaped.contains(['<', '>']), "{:?}", escaped);
                prop_assert!(!quotes || !escaped.contains(['"', '\'']), "{:?}", escaped);
                prop_assert!(!escaped.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')));
                for (at, _) in escaped.match_indices('&') {
                    let rest = &escaped[at..];
                    prop_assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|r| rest.starts_with(r)), "{:?}", escaped);
                }
                if !value.contains("\\u{") {
                    prop_assert_eq!(unescape_unicode(&unescape_html(&escaped)), value.clone());
                }
            }
            let json = serde_json::to_string(&[&value]).expect("json");
            let island = html_script_json(&json);
            prop_assert!(!island.contains(['<', '>', '&']), "{:?}", island);
            let back: Vec<String> = serde_json::from_str(&island).expect("the same JSON");
            prop_assert_eq!(back, vec![value.clone()]);
        }
    }
}
