//! hephy's one Dockerfile reader, after the Dockerfile reference and BuildKit's parser: a UTF-8
//! byte order mark (discarded), CRLF or LF line ends, parser directives (`# escape=`,
//! `# syntax=`), comments, line continuations (comment and empty lines inside them skipped),
//! here-documents (`COPY <<EOF /x`), instruction flags (`--from=…`, each instruction's own),
//! JSON (exec) and shell forms, into typed instructions ([`Command`]) with byte spans, lines and
//! columns. [`words`] holds the shell word rules of variable substitution.
//!
//! It owns the text → instructions step and the word rules; what an instruction means is a
//! builder's business, what a graph may ask of a Dockerfile is the checks'. Every reader of a
//! Dockerfile in hephy (the `oci` builder, the wiring and builder checks, base-image
//! resolution, `hephy init`, `hephy import`) reads it here, so a new flag or rule is one change.

pub mod words;

use std::ops::Range;

pub use words::{WordError, expand, json_array, split_words, word};

/// The most instructions a Dockerfile may have (the longest real ones have a few hundred);
/// counted while reading, before any more is kept.
pub const MAX_INSTRUCTIONS: usize = 10_000;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// The `# syntax=` directive's value and where it is, if there is one.
    pub syntax: Option<Word>,
    /// Its instructions, in order.
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// What it is, typed.
    pub command: Command,
    /// Its `--name[=value]` flags, as written (values not yet substituted), each known to its
    /// instruction.
    pub flags: Vec<Flag>,
    /// The rest of the logical line after the keyword and flags, continuations joined.
    pub args: String,
    /// Here-documents the instruction names, in order.
    pub heredocs: Vec<Heredoc>,
    /// Where it is in the text (keyword to the end of its last line).
    pub span: Range<usize>,
    /// 1-based line of the keyword.
    pub line: usize,
    /// 1-based column (in characters) of the keyword.
    pub column: usize,
    /// The logical line as written after the keyword (flags included; for `ONBUILD`).
    pub original: String,
}

impl Instruction {
    /// The keyword, upper-case (`COPY`).
    #[must_use]
    pub fn keyword(&self) -> &'static str {
        self.command.keyword()
    }

    /// Where the keyword is.
    #[must_use]
    pub fn keyword_span(&self) -> Range<usize> {
        self.span.start..self.span.start + self.keyword().len()
    }

    /// The flag `name` (`from` for `--from=…`), if given.
    #[must_use]
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// Whether it runs a command: `RUN`, or `ONBUILD RUN`.
    #[must_use]
    pub fn runs(&self) -> bool {
        match &self.command {
            Command::Run(_) => true,
            Command::Onbuild(trigger) => trigger.runs(),
            _ => false,
        }
    }
}

/// A word of the Dockerfile as written (quotes and `$` kept) and where it is in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text as written.
    pub text: String,
    /// Its bytes in the Dockerfile (for a word of a JSON array, the whole array).
    pub span: Range<usize>,
}

/// A `--name[=value]` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Its name without the dashes (`from`).
    pub name: String,
    /// Its value as written, after `=`.
    pub value: Option<Word>,
    /// Where the whole flag is.
    pub span: Range<usize>,
}

/// A command in the exec (JSON) or the shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `["a", "b"]`.
    Exec(Vec<String>),
    /// Anything else, as written.
    Shell(String),
}

impl Form {
    fn of(args: &str) -> Form {
        json_array(args).map_or_else(|| Form::Shell(args.to_owned()), Form::Exec)
    }
}

/// `COPY` or `ADD`: sources and a destination (as written), and the flags that shape them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// `--from=STAGE|IMAGE|CONTEXT` (`COPY`).
    pub from: Option<Word>,
    /// `--chown=USER[:GROUP]`.
    pub chown: Option<Word>,
    /// `--chmod=MODE`.
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// The sources (here-document words `<<EOF` among them) and, last, the destination.
    pub paths: Vec<Word>,
    /// Whether they were written as a JSON array.
    pub json: bool,
}

impl Copy {
    /// The sources.
    #[must_use]
    pub fn sources(&self) -> &[Word] {
        &self.paths[..self.paths.len().saturating_sub(1)]
    }

    /// The destination.
    #[must_use]
    pub fn dest(&self) -> Option<&Word> {
        self.paths.last()
    }
}

/// An `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The name.
    pub name: Word,
    /// `=default`, as written.
    pub default: Option<Word>,
}

/// What an instruction is, with its parts typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `FROM [--platform=P] IMAGE [AS NAME]`.
    From {
        /// The image (or stage, or named context), as written.
        image: Word,
        /// `--platform=…`, as written.
        platform: Option<Word>,
        /// `AS NAME`.
        alias: Option<Word>,
    },
    /// `RUN [--mount=…] [--network=…] [--security=…] COMMAND`.
    Run(Form),
    /// `CMD`.
    Cmd(Form),
    /// `ENTRYPOINT`.
    Entrypoint(Form),
    /// `SHELL ["…", …]`.
    Shell(Vec<String>),
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Copy),
    /// `ENV` (its pairs are read by [`pairs`] with the variables in scope).
    Env,
    /// `LABEL` (as `ENV`).
    Label,
    /// `ARG NAME[=default] …`.
    Arg(Vec<Arg>),
    /// `WORKDIR`.
    Workdir(Word),
    /// `USER`.
    User(Word),
    /// `STOPSIGNAL`.
    Stopsignal(Word),
    /// `EXPOSE PORT[/PROTO] …`.
    Expose(Vec<Word>),
    /// `VOLUME` (JSON or words).
    Volume(Vec<String>),
    /// `HEALTHCHECK NONE` (`None`) or `HEALTHCHECK [flags] CMD …`.
    Healthcheck(Option<Form>),
    /// `MAINTAINER`.
    Maintainer(String),
    /// `ONBUILD TRIGGER`.
    Onbuild(Box<Instruction>),
}

impl Command {
    /// The keyword, upper-case.
    #[must_use]
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::From { .. } => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Shell(_) => "SHELL",
            Command::Copy(_) => "COPY",
            Command::Add(_) => "ADD",
            Command::Env => "ENV",
            Command::Label => "LABEL",
            Command::Arg(_) => "ARG",
            Command::Workdir(_) => "WORKDIR",
            Command::User(_) => "USER",
            Command::Stopsignal(_) => "STOPSIGNAL",
            Command::Expose(_) => "EXPOSE",
            Command::Volume(_) => "VOLUME",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Maintainer(_) => "MAINTAINER",
            Command::Onbuild(_) => "ONBUILD",
        }
    }
}

/// The flags each instruction takes (BuildKit's), and whether each must have a value.
fn known_flags(keyword: &str) -> &'static [(&'static str, bool)] {
    match keyword {
        "FROM" => &[("platform", true)],
        "RUN" => &[("mount", true), ("network", true), ("security", true), ("device", true)],
        "COPY" => &[
            ("from", true),
            ("chown", true),
            ("chmod", true),
            ("link", false),
            ("parents", false),
            ("exclude", true),
        ],
        "ADD" => &[
            ("chown", true),
            ("chmod", true),
            ("link", false),
            ("checksum", true),
            ("keep-git-dir", false),
            ("exclude", true),
            ("unpack", false),
        ],
        "HEALTHCHECK" => &[
            ("interval", true),
            ("timeout", true),
            ("start-period", true),
            ("start-interval", true),
            ("retries", true),
        ],
        _ => &[],
    }
}

/// A here-document (`<<EOF … EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The word after `<<`.
    pub name: String,
    /// Its lines, each ending in a newline.
    pub body: String,
    /// Whether variables in the body are substituted (the word was not quoted).
    pub expand: bool,
}

/// Why a text is not a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// Where, in the text.
    pub span: Range<usize>,
    /// Its 1-based line.
    pub line: usize,
    /// Its 1-based column (in characters).
    pub column: usize,
}

/// What is wrong with a Dockerfile's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// A line that does not start with an instruction.
    #[error("`{0}` is not a Dockerfile instruction")]
    NotAnInstruction(String),
    /// `# escape=` with something but `\` or `` ` ``.
    #[error("invalid escape character `{0}`: it must be ` or \\")]
    Escape(String),
    /// A here-document without its closing line.
    #[error("the here-document `<<{0}` has no closing `{0}` line")]
    UnclosedHeredoc(String),
    /// More than [`MAX_INSTRUCTIONS`].
    #[error("the Dockerfile has more than {0} instructions")]
    TooMany(usize),
    /// A flag the instruction does not take.
    #[error("`{keyword} --{flag}` is not a flag of `{keyword}`")]
    UnknownFlag {
        /// The instruction.
        keyword: &'static str,
        /// The flag's name.
        flag: String,
    },
    /// A flag that needs a value, without one.
    #[error("`{keyword} --{flag}` needs a value (`--{flag}=…`)")]
    FlagValue {
        /// The instruction.
        keyword: &'static str,
        /// The flag's name.
        flag: String,
    },
    /// An instruction whose arguments do not have its shape (`FROM a b`, `SHELL x`).
    #[error("{0}")]
    Malformed(String),
}

/// The logical line of an instruction: its text with continuations joined, and where each
/// piece of it is in the Dockerfile.
struct Logical {
    text: String,
    /// `(offset in text, offset in the Dockerfile)` where each joined piece starts.
    pieces: Vec<(usize, usize)>,
}

impl Logical {
    /// The Dockerfile offset of `at` (an offset into `text`).
    fn source(&self, at: usize) -> usize {
        let i = self.pieces.partition_point(|(l, _)| *l <= at).saturating_sub(1);
        let (l, s) = self.pieces.get(i).copied().unwrap_or((0, 0));
        s + (at - l)
    }

    fn span(&self, range: Range<usize>) -> Range<usize> {
        let start = self.source(range.start);
        let end = if range.end > range.start { self.source(range.end - 1) + 1 } else { start };
        start..end
    }
}

/// Physical lines: byte offset, the line without its `\n` / `\r\n`.
fn physical_lines(text: &str, from: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = from;
    for line in text[from..].split_inclusive('\n') {
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

/// Where instruction reading stands: the lines, and the line number of the next one.
struct Reader<'t> {
    text: &'t str,
    lines: Vec<(usize, &'t str)>,
    next: usize,
    /// The 1-based number of line 0 of `lines`.
    first_line: usize,
}

impl Reader<'_> {
    fn error(&self, kind: ParseErrorKind, span: Range<usize>) -> ParseError {
        let line_index = self.lines.partition_point(|(o, _)| *o <= span.start).saturating_sub(1);
        let (offset, _) = self.lines.get(line_index).copied().unwrap_or((0, ""));
        let column = self.text.get(offset..span.start).map_or(1, |t| t.chars().count() + 1);
        ParseError { kind, span, line: self.first_line + line_index, column }
    }
}

/// Reads `text`.
///
/// # Errors
/// A [`ParseError`] with its place: a line that is no instruction, a flag the instruction does
/// not take, an instruction of the wrong shape, an unclosed here-document, a bad `# escape=`,
/// more than [`MAX_INSTRUCTIONS`].
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let (dockerfile, mut errors) = read(text, false);
    match errors.pop() {
        Some(error) => Err(error),
        None => Ok(dockerfile),
    }
}

/// Reads `text` as far as it can: the instructions that read, and an error for each that does
/// not (in order; after a bad `# escape=`, an unclosed here-document or more than
/// [`MAX_INSTRUCTIONS`], reading stops). For checks that report every problem at once.
#[must_use]
pub fn parse_all(text: &str) -> (Dockerfile, Vec<ParseError>) {
    read(text, true)
}

fn read(text: &str, keep_going: bool) -> (Dockerfile, Vec<ParseError>) {
    let mut errors = Vec::new();
    let mut instructions = Vec::new();
    let mut escape = '\\';
    let mut syntax = None;
    if let Err(e) = read_into(text, keep_going, &mut escape, &mut syntax, &mut instructions, &mut errors) {
        errors.push(e);
    }
    (Dockerfile { escape, syntax, instructions }, errors)
}

/// Reads `text` into `instructions`; an error it cannot go on after is returned, the others
/// are kept in `errors` when `keep_going` (else returned at once).
fn read_into(
    text: &str,
    keep_going: bool,
    escape_out: &mut char,
    syntax_out: &mut Option<Word>,
    instructions: &mut Vec<Instruction>,
    errors: &mut Vec<ParseError>,
) -> Result<(), ParseError> {
    // BuildKit discards a byte order mark.
    let from = if text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
    let mut reader = Reader { text, lines: physical_lines(text, from), next: 0, first_line: 1 };
    let mut escape = '\\';
    let mut syntax = None;
    // Parser directives: `# key=value` lines at the very top.
    let mut seen = Vec::new();
    while let Some(&(offset, line)) = reader.lines.get(reader.next) {
        let Some(rest) = line.trim_start().strip_prefix('#') else { break };
        let Some((key, value)) = rest.split_once('=') else { break };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() || key.contains(char::is_whitespace) || seen.contains(&key) {
            break;
        }
        let value_at = offset + line.len() - value.len();
        let trimmed = value.trim();
        let value_at = value_at + (value.len() - value.trim_start().len());
        match key.as_str() {
            "escape" => {
                escape = match trimmed {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        let kind = ParseErrorKind::Escape(other.to_owned());
                        return Err(reader.error(kind, offset..offset + line.len()));
                    }
                };
            }
            "syntax" => {
                syntax = Some(Word { text: trimmed.to_owned(), span: value_at..value_at + trimmed.len() });
            }
            _ => {}
        }
        seen.push(key);
        reader.next += 1;
    }
    *escape_out = escape;
    syntax_out.clone_from(&syntax);
    while let Some(&(offset, line)) = reader.lines.get(reader.next) {
        let index = reader.next;
        reader.next += 1;
        if line.trim().is_empty() || is_comment(line) {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let start = offset + indent;
        if instructions.len() + errors.len() == MAX_INSTRUCTIONS {
            let kind = ParseErrorKind::TooMany(MAX_INSTRUCTIONS);
            return Err(reader.error(kind, start..offset + line.len()));
        }
        let (first, mut more) = continued(line.trim_start(), escape);
        let mut logical = Logical { text: first.to_owned(), pieces: vec![(0, start)] };
        let mut end = offset + line.len();
        while more && let Some(&(o, l)) = reader.lines.get(reader.next) {
            reader.next += 1;
            end = o + l.len();
            if is_comment(l) || l.trim().is_empty() {
                continue;
            }
            let (part, again) = continued(l, escape);
            logical.pieces.push((logical.text.len(), o));
            logical.text.push_str(part);
            more = again;
        }
        let mut instruction = match instruction(&reader, &logical, 0, escape) {
            Ok(instruction) => instruction,
            Err(e) if keep_going => {
                errors.push(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        instruction.span = start..end;
        instruction.line = reader.first_line + index;
        instruction.column = line[..indent].chars().count() + 1;
        if let Command::Copy(_) | Command::Add(_) | Command::Run(_) = instruction.command {
            for (name, strip_tabs, expand) in heredoc_words(&instruction.args) {
                let mut body = String::new();
                let mut closed = false;
                while let Some(&(o, l)) = reader.lines.get(reader.next) {
                    reader.next += 1;
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
                    return Err(reader.error(ParseErrorKind::UnclosedHeredoc(name), start..end));
                }
                instruction.heredocs.push(Heredoc { name, body, expand });
            }
            instruction.span = start..end;
        }
        instructions.push(instruction);
    }
    Ok(())
}

/// Words of `text[range]` split on blanks outside quotes (quotes and escapes kept), with their
/// offsets in `text`.
fn spanned_words(text: &str, range: Range<usize>, escape: char) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut chars = text[range.clone()].char_indices().map(|(i, c)| (i + range.start, c)).peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    out.push(s..i);
                }
            }
            (_, c) if c == escape && quote != Some('\'') => {
                start.get_or_insert(i);
                chars.next();
            }
            (None, q @ ('"' | '\'')) => {
                quote = Some(q);
                start.get_or_insert(i);
            }
            (Some(q), c) if c == q => quote = None,
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        out.push(s..range.end);
    }
    out
}

/// The instruction at `logical.text[at..]` (`at` > 0 for an `ONBUILD` trigger); its span, line
/// and column are the caller's to set.
fn instruction(
    reader: &Reader<'_>,
    logical: &Logical,
    at: usize,
    escape: char,
) -> Result<Instruction, ParseError> {
    let text = &logical.text;
    let body = &text[at..];
    let lead = body.len() - body.trim_start().len();
    let key_start = at + lead;
    let key_end = text[key_start..].find(char::is_whitespace).map_or(text.len(), |e| key_start + e);
    let written = &text[key_start..key_end];
    let keyword = written.to_ascii_uppercase();
    let rest_start = key_end + (text[key_end..].len() - text[key_end..].trim_start().len());
    let rest_end = rest_start + text[rest_start..].trim_end().len();
    let original = text[rest_start..rest_end].to_owned();
    let error = |kind: ParseErrorKind, range: Range<usize>| reader.error(kind, logical.span(range));
    let malformed = |message: String| error(ParseErrorKind::Malformed(message), key_start..rest_end);
    let keyword: &'static str = match keyword.as_str() {
        "FROM" => "FROM",
        "RUN" => "RUN",
        "CMD" => "CMD",
        "ENTRYPOINT" => "ENTRYPOINT",
        "SHELL" => "SHELL",
        "COPY" => "COPY",
        "ADD" => "ADD",
        "ENV" => "ENV",
        "LABEL" => "LABEL",
        "ARG" => "ARG",
        "WORKDIR" => "WORKDIR",
        "USER" => "USER",
        "STOPSIGNAL" => "STOPSIGNAL",
        "EXPOSE" => "EXPOSE",
        "VOLUME" => "VOLUME",
        "HEALTHCHECK" => "HEALTHCHECK",
        "MAINTAINER" => "MAINTAINER",
        "ONBUILD" => "ONBUILD",
        _ => {
            return Err(error(ParseErrorKind::NotAnInstruction(written.to_owned()), key_start..key_end));
        }
    };
    // Flags: leading `--name[=value]` words.
    let mut flags = Vec::new();
    let mut args_start = rest_start;
    let known = known_flags(keyword);
    if !known.is_empty() {
        for range in spanned_words(text, rest_start..rest_end, escape) {
            let word = &text[range.clone()];
            let Some(flag) = word.strip_prefix("--") else { break };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => {
                    let value_start = range.start + 2 + name.len() + 1;
                    let span = logical.span(value_start..range.end);
                    (name, Some(Word { text: value.to_owned(), span }))
                }
                None => (flag, None),
            };
            let Some(&(_, needs_value)) = known.iter().find(|(n, _)| *n == name) else {
                let kind = ParseErrorKind::UnknownFlag { keyword, flag: name.to_owned() };
                return Err(error(kind, range));
            };
            if needs_value && value.is_none() {
                let kind = ParseErrorKind::FlagValue { keyword, flag: name.to_owned() };
                return Err(error(kind, range));
            }
            flags.push(Flag { name: name.to_owned(), value, span: logical.span(range.clone()) });
            args_start = range.end + (text[range.end..].len() - text[range.end..].trim_start().len());
        }
    }
    let args_start = args_start.min(rest_end);
    let args = text[args_start..rest_end].to_owned();
    let words = || -> Vec<Word> {
        spanned_words(text, args_start..rest_end, escape)
            .into_iter()
            .map(|r| Word { text: text[r.clone()].to_owned(), span: logical.span(r) })
            .collect()
    };
    let whole = || Word { text: args.clone(), span: logical.span(args_start..rest_end) };
    let flag = |name: &str| flags.iter().find(|f| f.name == name).and_then(|f| f.value.clone());
    let command = match keyword {
        "FROM" => {
            let mut words = words().into_iter();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some(image), None, None, None) => {
                    Command::From { image, platform: flag("platform"), alias: None }
                }
                (Some(image), Some(as_word), Some(alias), None)
                    if as_word.text.eq_ignore_ascii_case("as") =>
                {
                    Command::From { image, platform: flag("platform"), alias: Some(alias) }
                }
                _ => return Err(malformed(format!("`FROM {args}` is not `FROM IMAGE [AS NAME]`"))),
            }
        }
        "RUN" => Command::Run(Form::of(&args)),
        "CMD" => Command::Cmd(Form::of(&args)),
        "ENTRYPOINT" => Command::Entrypoint(Form::of(&args)),
        "SHELL" => match json_array(&args).filter(|s| !s.is_empty()) {
            Some(shell) => Command::Shell(shell),
            None => {
                return Err(malformed("`SHELL` takes a JSON array, like [\"/bin/sh\", \"-c\"]".to_owned()));
            }
        },
        "COPY" | "ADD" => {
            let (paths, json) = match json_array(&args) {
                Some(list) => {
                    let span = logical.span(args_start..rest_end);
                    (list.into_iter().map(|text| Word { text, span: span.clone() }).collect::<Vec<_>>(), true)
                }
                None => (words(), false),
            };
            if paths.len() < 2 {
                return Err(malformed(format!("`{keyword}` needs a source and a destination")));
            }
            let link =
                flags.iter().any(|f| f.name == "link" && f.value.as_ref().is_none_or(|v| v.text != "false"));
            let copy =
                Copy { from: flag("from"), chown: flag("chown"), chmod: flag("chmod"), link, paths, json };
            if keyword == "COPY" { Command::Copy(copy) } else { Command::Add(copy) }
        }
        "ENV" | "LABEL" => {
            if args.is_empty() {
                return Err(malformed(format!("`{keyword}` needs a name and a value")));
            }
            if keyword == "ENV" { Command::Env } else { Command::Label }
        }
        "ARG" => {
            let list: Vec<Arg> = words()
                .into_iter()
                .map(|w| match w.text.split_once('=') {
                    Some((name, default)) => {
                        let at = w.span.start + name.len();
                        Arg {
                            name: Word { text: name.to_owned(), span: w.span.start..at },
                            default: Some(Word { text: default.to_owned(), span: at + 1..w.span.end }),
                        }
                    }
                    None => Arg { name: w, default: None },
                })
                .collect();
            if list.is_empty() {
                return Err(malformed("`ARG` needs a name".to_owned()));
            }
            Command::Arg(list)
        }
        "WORKDIR" => Command::Workdir(whole()),
        "USER" => Command::User(whole()),
        "STOPSIGNAL" => Command::Stopsignal(whole()),
        "EXPOSE" => Command::Expose(words()),
        "VOLUME" => Command::Volume(
            json_array(&args).unwrap_or_else(|| words().into_iter().map(|w| w.text).collect()),
        ),
        "HEALTHCHECK" => {
            let upper = args.trim_start().get(..4).map(str::to_ascii_uppercase);
            match upper.as_deref() {
                Some("NONE") if args.trim().len() == 4 => Command::Healthcheck(None),
                _ => Command::Healthcheck(Some(Form::of(&args))),
            }
        }
        "MAINTAINER" => Command::Maintainer(args.clone()),
        _ => {
            // ONBUILD: the trigger is an instruction of its own.
            let trigger = instruction(reader, logical, rest_start, escape).map_err(|e| {
                if rest_start == rest_end {
                    malformed("`ONBUILD` needs an instruction".to_owned())
                } else {
                    e
                }
            })?;
            if let Command::Onbuild(_) | Command::From { .. } | Command::Maintainer(_) = trigger.command {
                return Err(malformed(format!("`ONBUILD {}` is not allowed", trigger.keyword())));
            }
            Command::Onbuild(Box::new(trigger))
        }
    };
    let span = logical.span(key_start..rest_end);
    Ok(Instruction { command, flags, args, heredocs: Vec::new(), span, line: 0, column: 0, original })
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

/// The `KEY=VALUE` pairs of an `ENV` or `LABEL` (or the legacy `ENV KEY VALUE`), each part
/// substituted with `vars`.
///
/// # Errors
/// A pair without `=` or a name, or a word substitution cannot make.
pub fn pairs(
    args: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
    keyword: &str,
) -> Result<Vec<(String, String)>, PairError> {
    let words = split_words(args, escape);
    let Some(first) = words.first() else { return Err(PairError::Empty(keyword.to_owned())) };
    if !first.contains('=') {
        let value = args.trim_start().get(first.len()..).unwrap_or_default().trim();
        if value.is_empty() && keyword == "ENV" {
            return Err(PairError::NoValue { keyword: keyword.to_owned(), name: first.clone() });
        }
        return Ok(vec![(word(first, escape, vars)?, word(value, escape, vars)?)]);
    }
    let mut out = Vec::new();
    for w in &words {
        let Some((key, value)) = w.split_once('=') else {
            return Err(PairError::NoEquals { keyword: keyword.to_owned(), word: w.clone() });
        };
        let key = word(key, escape, vars)?;
        if key.is_empty() {
            return Err(PairError::EmptyName(keyword.to_owned()));
        }
        out.push((key, word(value, escape, vars)?));
    }
    Ok(out)
}

/// Why the pairs of an `ENV` or `LABEL` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    /// Nothing after the keyword.
    #[error("`{0}` needs a name and a value")]
    Empty(String),
    /// `ENV NAME` alone.
    #[error("`{keyword} {name}` needs a value")]
    NoValue {
        /// `ENV`.
        keyword: String,
        /// The name.
        name: String,
    },
    /// A word without `=` after a `KEY=VALUE`.
    #[error("`{keyword}`: `{word}` has no `=`")]
    NoEquals {
        /// `ENV` or `LABEL`.
        keyword: String,
        /// The word.
        word: String,
    },
    /// `=value`.
    #[error("`{0}`: a name is empty")]
    EmptyName(String),
    /// A word substitution cannot make.
    #[error(transparent)]
    Word(#[from] WordError),
}

/// Whether the `# syntax=` value names the standard Dockerfile frontend (`docker/dockerfile`,
/// any tag or digest, `docker.io/` or not), which this reader follows; anything else is a
/// custom frontend that may read the file differently.
#[must_use]
pub fn is_standard_syntax(value: &str) -> bool {
    let name = value.split('@').next().unwrap_or(value);
    let name = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    matches!(
        name,
        "docker/dockerfile" | "docker.io/docker/dockerfile" | "docker.io/library/docker/dockerfile"
    )
}

#[cfg(test)]
mod tests;
