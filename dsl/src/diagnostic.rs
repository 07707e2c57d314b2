//! Problems found in a graph file, as miette diagnostics.
//!
//! Owns [`Problem`] (one error: a code, a message, labelled spans and a help line) and
//! [`Problems`] (all the errors of one load). Every user-facing error of the language is built
//! here, so wording, codes and "did you mean" suggestions stay consistent.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

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
            Code::Cycle => "hephy::cycle",
            Code::InvalidPlatform => "hephy::invalid_platform",
            Code::MissingPlatform => "hephy::missing_platform",
            Code::NoExecutor => "hephy::no_executor",
            Code::PathEscapes => "hephy::path_escapes",
            Code::MissingPath => "hephy::missing_path",
            Code::InvalidValue => "hephy::invalid_value",
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
    source: Option<Arc<NamedSource<Arc<str>>>>,
    /// `Some(Warning)` for a warning; `None` is an error.
    severity: Option<miette::Severity>,
}

impl Problem {
    /// A problem with no position yet.
    pub fn new(code: Code, message: impl Into<String>) -> Problem {
        Problem {
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
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
        self.source = Some(file.named());
        self
    }

    /// The kind of problem.
    /// Its spans point into another file than the graph (a Dockerfile): `name` and its `text`.
    #[must_use]
    pub fn in_source(mut self, name: &str, text: Arc<str>) -> Problem {
        self.source = Some(Arc::new(NamedSource::new(name, text)));
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
        self.source.as_deref().map(|s| s as &dyn SourceCode)
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

    pub(crate) fn into_problems(self, file: &SourceFile) -> Problems {
        let problems = self.problems.into_iter().map(|p| p.in_file(file)).collect();
        Problems::new(file.path().display().to_string(), problems)
    }
}

/// `did you mean `x`?` for the closest of `candidates` to `word`, if one is close enough.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
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
