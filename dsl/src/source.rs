//! The graph file as text: its name, its bytes, and spans into it.
//!
//! Owns [`SourceFile`] (shared by every diagnostic about the file) and [`Spanned`] (a value with
//! the byte range it came from). It knows nothing of either syntax.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// Which syntax a graph file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    /// [KDL v2](https://kdl.dev).
    Kdl,
    /// YAML 1.2.
    Yaml,
}

impl Syntax {
    /// The syntax a file name implies: `.kdl`, or `.yaml`/`.yml`.
    pub fn from_path(path: &Path) -> Option<Syntax> {
        match path.extension()?.to_str()? {
            "kdl" => Some(Syntax::Kdl),
            "yaml" | "yml" => Some(Syntax::Yaml),
            _ => None,
        }
    }
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Syntax::Kdl => "KDL",
            Syntax::Yaml => "YAML",
        })
    }
}

/// A graph file's text, cheap to clone, ready to be shown under a diagnostic.
#[derive(Debug, Clone)]
pub struct SourceFile {
    path: PathBuf,
    syntax: Syntax,
    named: Arc<NamedSource<Arc<str>>>,
}

impl SourceFile {
    /// Wraps `text`, read from `path` (shown as given in diagnostics).
    pub fn new(path: impl Into<PathBuf>, syntax: Syntax, text: impl Into<Arc<str>>) -> SourceFile {
        let path = path.into();
        let named = NamedSource::new(path.display().to_string(), text.into()).with_language(match syntax {
            Syntax::Kdl => "kdl",
            Syntax::Yaml => "yaml",
        });
        SourceFile { path, syntax, named: Arc::new(named) }
    }

    /// The path the file was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's syntax.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        self.named.inner()
    }

    pub(crate) fn named(&self) -> Arc<NamedSource<Arc<str>>> {
        Arc::clone(&self.named)
    }
}

/// A value and the bytes of the graph file it was read from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: SourceSpan,
}

impl<T> Spanned<T> {
    /// Pairs `value` with `span`.
    pub fn new(value: T, span: SourceSpan) -> Spanned<T> {
        Spanned { value, span }
    }

    /// Maps the value, keeping the span.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Spanned<U> {
        Spanned { value: f(self.value), span: self.span }
    }
}

impl<T> Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}
