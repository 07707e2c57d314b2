//! Problems found in a graph file, as miette diagnostics.
//!
//! Owns [`Problem`] (one error: a code, a message, labelled spans and a help line) and
//! [`Problems`] (all the errors of one load). Every user-facing error of the language is built
//! here, so wording, codes and "did you mean" suggestions stay consistent.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

use crate::escape::acts_on_terminal as is_control;
use crate::source::SourceFile;

/// The stable identity of a kind of problem: shown as `hephy::<code>` and listed in SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// The file could not be read or has no usable syntax.
    Io,
    /// The text is not valid KDL or YAML.
    Syntax,
    /// A key or node that the language does not have.
    UnknownKey,
    /// A value of the wrong type (a number where text is expected, a list where a map is).
    WrongType,
    /// A required setting is absent.
    Missing,
    /// Two settings that exclude each other, or one given twice.
    Conflict,
    /// A name that is not a valid node name.
    InvalidName,
    /// Two definitions with the same name.
    DuplicateName,
    /// A reference to a name that is not defined.
    UnknownDependency,
    /// `${NAME}` naming no variable or matrix value; `--set` naming no variable.
    UnknownVariable,
    /// Dependencies that form a cycle.
    Cycle,
    /// A platform that is not `os/arch[/variant]`.
    InvalidPlatform,
    /// A dependency that is not built for a platform its dependent needs.
    MissingPlatform,
    /// A platform no declared executor can build.
    NoExecutor,
    /// A path that leaves the graph file's folder.
    PathEscapes,
    /// A context folder or Dockerfile that does not exist.
    MissingPath,
    /// An out-of-range or malformed value.
    InvalidValue,
    /// A size or depth limit (SPEC's "Limits") exceeded: templates inherited too deep, matrices
    /// making too many copies, `${…}` filling in too much text.
    Limit,
}

impl Code {
    /// The code as shown to users, e.g. `hephy::cycle`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "hephy::io",
            Code::Syntax => "hephy::syntax",
            Code::UnknownKey => "hephy::unknown_key",
            Code::WrongType => "hephy::wrong_type",
            Code::Missing => "hephy::missing",
            Code::Conflict => "hephy::conflict",
            Code::InvalidName => "hephy::invalid_name",
            Code::DuplicateName => "hephy::duplicate_name",
            Code::UnknownDependency => "hephy::unknown_dependency",
            Code::UnknownVariable => "hephy::unknown_variable",
            Code::Cycle => "hephy::cycle",
            Code::InvalidPlatform => "hephy::invalid_platform",
            Code::MissingPlatform => "hephy::missing_platform",
            Code::NoExecutor => "hephy::no_executor",
            Code::PathEscapes => "hephy::path_escapes",
            Code::MissingPath => "hephy::missing_path",
            Code::InvalidValue => "hephy::invalid_value",
            Code::Limit => "hephy::limit",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One error in a graph file.
#[derive(Debug, Clone)]
pub struct Problem {
    code: Code,
    message: String,
    labels: Vec<(SourceSpan, String)>,
    help: Option<String>,
    /// The help in YAML's syntax, where it differs from `help` (KDL's): chosen when the problem
    /// is attached to a YAML graph file ([`Problem::in_file`]).
    yaml_help: Option<String>,
    source: Option<Source>,
    /// `Some(Warning)` for a warning; `None` is an error.
    severity: Option<miette::Severity>,
}

/// The text a problem's spans point into.
#[derive(Debug, Clone)]
enum Source {
    /// The graph file as read.
    File(Arc<NamedSource<Arc<str>>>),
    /// The lines of it a [`Problem::printable`] shows.
    Shown(Arc<Shown>),
}

/// A printable copy of a file's lines, which says where each label starts in the file itself
/// (the column miette puts in a diagnostic's header).
#[derive(Debug)]
struct Shown {
    text: NamedSource<Arc<str>>,
    /// Each label's start in `text` → its column (in bytes) in the file's line.
    columns: Vec<(usize, usize)>,
}

impl SourceCode for Shown {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let contents = self.text.read_span(span, before, after)?;
        let column = self.columns.iter().find(|(at, _)| *at == span.offset()).map(|(_, c)| *c);
        match column {
            Some(column) if before == 0 && after == 0 => Ok(Box::new(miette::MietteSpanContents::new_named(
                self.text.name().to_owned(),
                contents.data(),
                *contents.span(),
                contents.line(),
                column,
                contents.line_count(),
            ))),
            _ => Ok(contents),
        }
    }
}

impl Problem {
    /// A problem with no position yet.
    pub fn new(code: Code, message: impl Into<String>) -> Problem {
        Problem {
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            yaml_help: None,
            source: None,
            severity: None,
        }
    }

    /// Points at `span` with a short label (the first label is the primary one).
    #[must_use]
    pub fn label(mut self, span: SourceSpan, text: impl Into<String>) -> Problem {
        self.labels.push((span, text.into()));
        self
    }

    /// Says how to fix it.
    #[must_use]
    pub fn help(mut self, text: impl Into<String>) -> Problem {
        self.help = Some(text.into());
        self.yaml_help = None;
        self
    }

    /// Says how to fix it in the syntax of the graph file it is about: `kdl` in a KDL file,
    /// `yaml` in a YAML one (and `kdl` until the problem has a file).
    #[must_use]
    pub fn help_for(mut self, kdl: impl Into<String>, yaml: impl Into<String>) -> Problem {
        self.help = Some(kdl.into());
        self.yaml_help = Some(yaml.into());
        self
    }

    /// Says how to fix it, when there is something to say.
    #[must_use]
    pub fn maybe_help(mut self, text: Option<String>) -> Problem {
        if text.is_some() {
            self.help = text;
        }
        self
    }

    /// Attaches the file the spans point into.
    #[must_use]
    pub fn in_file(mut self, file: &SourceFile) -> Problem {
        self.source = Some(Source::File(file.named()));
        if file.syntax() == crate::Syntax::Yaml
            && let Some(yaml) = self.yaml_help.take()
        {
            self.help = Some(yaml);
        }
        self
    }

    /// Attaches a file other than the graph file (a Dockerfile) that the spans point into; a
    /// problem with its own file keeps it when collected.
    #[must_use]
    pub fn in_text(mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> Problem {
        self.source = Some(Source::File(Arc::new(NamedSource::new(name.into(), text.into()))));
        self
    }

    /// The kind of problem.
    /// Its spans point into another file than the graph (a Dockerfile): `name` and its `text`.
    #[must_use]
    pub fn in_source(mut self, name: &str, text: Arc<str>) -> Problem {
        self.source = Some(Source::File(Arc::new(NamedSource::new(name, text))));
        self
    }

    /// A warning: reported, but it stops nothing.
    #[must_use]
    pub fn warning(mut self) -> Problem {
        self.severity = Some(miette::Severity::Warning);
        self
    }

    /// Whether it is a warning rather than an error.
    pub fn is_warning(&self) -> bool {
        self.severity == Some(miette::Severity::Warning)
    }

    pub fn code(&self) -> Code {
        self.code
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The primary span, if the problem has a position.
    pub fn primary_span(&self) -> Option<SourceSpan> {
        self.labels.first().map(|(span, _)| *span)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        self.severity
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        if self.labels.is_empty() {
            return None;
        }
        match self.source.as_ref()? {
            Source::File(file) => Some(&**file as &dyn SourceCode),
            Source::Shown(shown) => Some(&**shown as &dyn SourceCode),
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() || self.source.is_none() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(|(i, (span, text))| {
            let text = (!text.is_empty()).then(|| text.clone());
            if i == 0 {
                LabeledSpan::new_primary_with_span(text, *span)
            } else {
                LabeledSpan::new_with_span(text, *span)
            }
        })))
    }
}

/// Every problem found while loading one graph file, in file order.
#[derive(Debug, Clone)]
pub struct Problems {
    file: String,
    problems: Vec<Problem>,
}

impl Problems {
    pub(crate) fn new(file: String, mut problems: Vec<Problem>) -> Problems {
        problems.sort_by_key(|p| p.primary_span().map_or(usize::MAX, |s| s.offset()));
        Problems { file, problems }
    }

    /// Problems found by a later stage (a builder's checks), sorted by position.
    pub fn collect(file: &SourceFile, problems: Vec<Problem>) -> Problems {
        // A problem already pointing into another file (a Dockerfile) keeps it.
        let problems =
            problems.into_iter().map(|p| if p.source.is_some() { p } else { p.in_file(file) }).collect();
        Problems::new(file.path().display().to_string(), problems)
    }

    /// One problem that is not about a position in a file (a missing file, a usage error).
    pub fn single(file: &str, problem: Problem) -> Problems {
        Problems { file: file.to_owned(), problems: vec![problem] }
    }

    /// The problems, sorted by position in the file.
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter()
    }

    /// These problems, then `later`'s (a later stage's, found in the same run), less those a
    /// later stage found at a place an earlier one already pointed at (the same mistake seen
    /// twice: an image name that is no repository is no pushable reference either).
    #[must_use]
    pub fn and(mut self, later: Problems) -> Problems {
        let same_file = later.file == self.file;
        let seen: Vec<SourceSpan> = self.problems.iter().filter_map(Problem::primary_span).collect();
        self.problems.extend(
            later
                .problems
                .into_iter()
                .filter(|p| !(same_file && p.primary_span().is_some_and(|s| seen.contains(&s)))),
        );
        self
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    /// Whether there are none (never true for a returned error).
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The file the problems are in.
    pub fn file(&self) -> &str {
        &self.file
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "`{}` has {n} problem{}", self.file, if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Problems {}

impl Diagnostic for Problems {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

/// At most this many characters of a message, label or help are shown; a longer one (a huge
/// value quoted back) keeps its start and end.
const TEXT_LIMIT: usize = 2000;

/// Source lines longer than this many characters are shown as a window around what the
/// problem points at (miette cannot show a label past column 65,535, and a 5 MB line is no
/// help to anyone).
const LINE_LIMIT: usize = 160;

/// At most this many lines of one label's span are shown.
const SPAN_LINES: usize = 8;

/// Lines around a label kept in the printable source (miette shows one on each side).
const CONTEXT_LINES: usize = 3;

/// `text` with every control character but newline and tab (ESC, BEL, the C1 controls that
/// start OSC sequences, bidirectional overrides) written as `\u{1b}`: safe to print on a
/// terminal, however long ([`crate::escape::terminal`]).
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::terminal(text)
}

/// `text` safe to print on a terminal: control characters (ESC, BEL, OSC, …; newlines and tabs
/// excepted) written as `\u{1b}`, and at most 2,000 characters, a longer text keeping its start
/// and end around a note of what was left out.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let count = text.chars().count();
    if count <= TEXT_LIMIT && !text.chars().any(is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let escape = |part: &str, out: &mut String| {
        for c in part.chars() {
            if is_control(c) {
                out.extend(c.escape_unicode());
            } else {
                out.push(c);
            }
        }
    };
    let mut out = String::new();
    if count <= TEXT_LIMIT {
        escape(text, &mut out);
    } else {
        let head = text.char_indices().nth(TEXT_LIMIT * 2 / 3).map_or(text.len(), |(i, _)| i);
        let tail = text.char_indices().nth(count - TEXT_LIMIT / 6).map_or(text.len(), |(i, _)| i);
        escape(&text[..head], &mut out);
        out.push_str(&format!("…({} characters left out)…", count - TEXT_LIMIT * 2 / 3 - TEXT_LIMIT / 6));
        escape(&text[tail..], &mut out);
    }
    std::borrow::Cow::Owned(out)
}

/// [`printable`] for text shown on one line: newlines and tabs escaped too.
pub fn printable_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\n', '\t']) {
        return printable(text);
    }
    printable(&text.replace('\n', "\\n").replace('\t', "\\t")).into_owned().into()
}

/// One line of a source file made printable: its control characters escaped and, when it is
/// longer than [`LINE_LIMIT`], only a window of it kept, around byte `focus`. Maps a byte offset
/// of the line to one of the shown line.
struct ShownLine<'a> {
    line: &'a str,
    /// The kept bytes of `line`.
    window: std::ops::Range<usize>,
}

impl<'a> ShownLine<'a> {
    fn new(line: &'a str, focus: usize) -> ShownLine<'a> {
        if line.chars().count() <= LINE_LIMIT {
            return ShownLine { line, window: 0..line.len() };
        }
        let focus = floor_boundary(line, focus.min(line.len()));
        let start = line[..focus].char_indices().rev().nth(LINE_LIMIT / 3).map_or(0, |(i, _)| i);
        let end = line[start..].char_indices().nth(LINE_LIMIT).map_or(line.len(), |(i, _)| start + i);
        ShownLine { line, window: start..end }
    }

    fn escaped_len(part: &str) -> usize {
        part.chars().map(|c| if is_control(c) { c.escape_unicode().count() } else { c.len_utf8() }).sum()
    }

    fn lead(&self) -> usize {
        if self.window.start > 0 { '…'.len_utf8() } else { 0 }
    }

    /// Where byte `offset` of the line is in the shown line (an offset inside a character: the
    /// character's start, or with `end`, its end).
    fn map(&self, offset: usize, end: bool) -> usize {
        let mut offset = offset.clamp(self.window.start, self.window.end);
        while end && !self.line.is_char_boundary(offset) {
            offset += 1;
        }
        let offset = floor_boundary(self.line, offset);
        self.lead() + ShownLine::escaped_len(&self.line[self.window.start..offset])
    }

    fn write(&self, out: &mut String) {
        if self.window.start > 0 {
            out.push('…');
        }
        for c in self.line[self.window.clone()].chars() {
            if is_control(c) {
                out.extend(c.escape_unicode());
            } else {
                out.push(c);
            }
        }
        if self.window.end < self.line.len() {
            out.push('…');
        }
    }
}

/// The largest char boundary of `text` at or before `at`.
fn floor_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The lines of `text` as (start offset, the line without its ending, the ending).
fn lines_of(text: &str) -> Vec<(usize, &str, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in text.split_inclusive('\n') {
        let body = piece.strip_suffix('\n').map_or(piece, |b| b.strip_suffix('\r').unwrap_or(b));
        out.push((start, body, &piece[body.len()..]));
        start += piece.len();
    }
    out
}

impl Problem {
    /// The problem as it may be shown on a terminal: its texts and the source lines it shows
    /// with control characters escaped, long texts shortened, and long lines cut to a window
    /// around the spans (lines far from the spans left empty, so line numbers hold).
    #[must_use]
    pub fn printable(&self) -> Problem {
        let text_of = |t: &str| printable(t).into_owned();
        let mut out = Problem {
            code: self.code,
            message: text_of(&self.message),
            labels: Vec::new(),
            help: self.help.as_deref().map(text_of),
            yaml_help: self.yaml_help.as_deref().map(text_of),
            source: None,
            severity: self.severity,
        };
        let label_texts: Vec<String> =
            self.labels.iter().map(|(_, t)| printable_line(t).into_owned()).collect();
        let Some(Source::File(source)) = &self.source else {
            out.labels = self.labels.iter().zip(label_texts).map(|((s, _), t)| (*s, t)).collect();
            return out;
        };
        let text: &str = source.inner();
        let lines = lines_of(text);
        let line_at =
            |offset: usize| lines.partition_point(|(start, _, _)| *start <= offset).saturating_sub(1);
        // Each label's span, at most SPAN_LINES lines long, and the lines to show around it.
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut keep = std::collections::BTreeMap::<usize, usize>::new();
        for (span, _) in &self.labels {
            let start = span.offset().min(text.len());
            let first = line_at(start);
            let mut end = (start + span.len()).min(text.len());
            if line_at(end) >= first + SPAN_LINES {
                end = lines[first + SPAN_LINES - 1].0 + lines[first + SPAN_LINES - 1].1.len();
            }
            spans.push((start, end));
            let last = line_at(end) + CONTEXT_LINES;
            for (i, (line_start, _, _)) in lines.iter().enumerate().skip(first.saturating_sub(CONTEXT_LINES))
            {
                if i > last {
                    break;
                }
                // The first span to touch a line chooses its window.
                let focus = if i == first { start.saturating_sub(*line_start) } else { 0 };
                keep.entry(i).or_insert(focus);
            }
        }
        let mut shown = String::new();
        let mut starts = Vec::with_capacity(lines.len());
        let mut windows: std::collections::BTreeMap<usize, ShownLine<'_>> = std::collections::BTreeMap::new();
        for (i, (_, body, ending)) in lines.iter().enumerate() {
            starts.push(shown.len());
            if let Some(focus) = keep.get(&i) {
                let line = ShownLine::new(body, *focus);
                line.write(&mut shown);
                windows.insert(i, line);
            }
            shown.push_str(ending);
        }
        let map = |offset: usize, end: bool| -> usize {
            let i = line_at(offset);
            match (lines.get(i), windows.get(&i)) {
                (Some((start, body, _)), Some(line)) => {
                    starts[i] + line.map((offset - start).min(body.len()), end)
                }
                _ => starts.get(i).copied().unwrap_or(shown.len()),
            }
        };
        let columns = spans
            .iter()
            .map(|(start, _)| {
                (map(*start, false), lines.get(line_at(*start)).map_or(0, |line| start - line.0))
            })
            .collect();
        out.labels = spans
            .iter()
            .zip(label_texts)
            .map(|((start, end), t)| {
                let (from, to) = (map(*start, false), map(*end, true).max(map(*start, false)));
                (SourceSpan::new(from.into(), to - from), t)
            })
            .collect();
        let name = printable_line(source.name()).into_owned();
        let text = NamedSource::new(name, Arc::<str>::from(shown));
        out.source = Some(Source::Shown(Arc::new(Shown { text, columns })));
        out
    }
}

impl Problems {
    /// Every problem made [`Problem::printable`].
    #[must_use]
    pub fn printable(&self) -> Problems {
        Problems {
            file: printable_line(&self.file).into_owned(),
            problems: self.problems.iter().map(Problem::printable).collect(),
        }
    }
}

/// Collects problems while a stage keeps going, so one run reports them all.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    problems: Vec<Problem>,
}

impl Sink {
    pub(crate) fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems so far (a stage's problems are those after its start).
    pub(crate) fn len(&self) -> usize {
        self.problems.len()
    }

    /// [`did_you_mean`] among names of the graph, while fewer than
    /// [`MAX_SUGGESTIONS`](crate::limits::MAX_SUGGESTIONS) problems were found.
    pub(crate) fn suggest<'a>(
        &self,
        word: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Option<String> {
        if self.problems.len() < crate::limits::MAX_SUGGESTIONS {
            did_you_mean(word, candidates)
        } else {
            None
        }
    }

    /// Drops, after the first `from`, the problems `drop` says are noise, and any problem said
    /// twice (same code, message and place: copies of one matrix image share their text).
    pub(crate) fn prune(&mut self, from: usize, drop: impl Fn(&Problem) -> bool) {
        let mut seen = std::collections::HashSet::new();
        let mut index = 0;
        self.problems.retain(|p| {
            index += 1;
            if index <= from {
                return true;
            }
            let key = (p.code, p.message.clone(), p.primary_span().map(|s| (s.offset(), s.len())));
            !drop(p) && seen.insert(key)
        });
    }

    pub(crate) fn into_problems(self, file: &SourceFile) -> Problems {
        let problems = self.problems.into_iter().map(|p| p.in_file(file)).collect();
        Problems::new(file.path().display().to_string(), problems)
    }
}

/// `did you mean `x`?` for the closest of `candidates` to `word`, if one is close enough.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // The distance is at least the difference in length: a word too long (or short) for a
    // candidate is not compared (a 5 MB value against each name would take seconds and memory).
    let length = word.chars().count();
    let close_in_length = |c: &str| {
        let other = c.chars().count();
        length.abs_diff(other) <= (word.len().max(c.len()) / 3).max(1)
    };
    candidates
        .into_iter()
        .filter(|c| close_in_length(c))
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (word.len().max(c.len()) / 3).max(1))
        .min()
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("crul", ["curl", "kaniko"]), Some("did you mean `curl`?".into()));
        assert_eq!(
            did_you_mean("platfroms", ["platforms", "tags"]).as_deref(),
            Some("did you mean `platforms`?")
        );
        assert_eq!(did_you_mean("zzz", ["curl", "kaniko"]), None);
    }
}
