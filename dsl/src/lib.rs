//! hephy's graph language: a graph file (KDL or YAML) → a typed, validated [`Model`].
//!
//! Stages, one module each: [`source`] (the text and spans) → `kdl` / `yaml` (syntax → a
//! syntax-independent draft `Document`, shape errors) → `expand` (variables, templates, matrices,
//! `--set`) → `analyze` (meaning: names, dependencies, platforms, paths → [`Model`]; its
//! `images` holds the image key table, whose rows' `shape`s read, print and walk every image
//! key in both syntaxes); `stored`
//! keeps the document as read between commands, for a [`DocumentStore`] the caller gives
//! ([`load_reusing`]). [`limits`] holds every size and depth bound. Every error is a
//! [`Problem`], a miette diagnostic pointing into the file; all problems of one load are
//! returned together as [`Problems`]. This crate knows nothing of graphs of nodes, hashing or
//! execution.

mod analyze;
mod compose;
mod diagnostic;
mod document;
pub mod escape;
mod expand;
mod kdl;
pub mod limits;
mod model;
mod platform;
mod print;
mod reference;
mod schema;
mod shape;
mod source;
mod stored;
mod yaml;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use analyze::{valid_tag, valid_variable};
pub use diagnostic::{Code, Problem, Problems, escape_controls, printable, printable_line};
pub use document::{Document, FromDraft, GroupDraft, ImageDraft, ScheduleDraft, SecretDraft};
pub use escape::{kdl_string, yaml_scalar, yaml_string};
pub use expand::{
    ENV_PREFIX, Given, Origin, Overrides, ResolvedImage, SETTABLE, Setting, VariableSource, VariableUse,
};
pub use model::{
    BUILDERS, BuildContext, Compression, ContextSource, DEFAULT_BUILDER, Definition, Dependency,
    DependencyKind, Executor, FromPlatform, Group, Image, ImageNode, ImageSource, KoSettings, Model, Naming,
    Publish, Schedule, Secret, SecretSource, Signing, Task,
};
pub use model::{Builder, Engine};
pub use platform::{Platform, PlatformError};
pub use print::print;
pub use reference::{dash_ref, empty_group, render_template, tag_part};
pub use schema::{Construct, Hash, KEYS, KdlForm, Key, Kind, Need, json_schema, keys};
pub use source::{SourceFile, Spanned, Syntax};
pub use stored::{DocumentStore, Miss, Reuse};

use diagnostic::Sink;

/// The YAML value tree hephy reads YAML with (a span on every value, scalars as written,
/// aliases under a budget), for YAML files other than graph files (an importer's configs).
pub mod yaml_tree {
    pub use crate::yaml::{Kind, Value, is_null, value};
}

/// The file names looked for when no graph file is named.
pub const DEFAULT_FILES: [&str; 2] = ["hephy.kdl", "hephy.yaml"];

/// Reads and analyzes the graph file at `path`; relative paths in it resolve against its folder.
pub fn load(path: &Path) -> Result<Model, Problems> {
    match load_partial(path) {
        (Some(model), None) => Ok(model),
        (_, problems) => {
            Err(problems.unwrap_or_else(|| Problems::new(path.display().to_string(), Vec::new())))
        }
    }
}

/// Loads the graph file at `path` as far as it can be: the problems found, and the model when
/// the file could be read through despite them (problems of names, paths and platforms leave a
/// model; syntax errors do not), so that later stages can report theirs in the same run.
pub fn load_partial(path: &Path) -> (Option<Model>, Option<Problems>) {
    load_partial_with(path, &Overrides::default())
}

/// [`load_partial`], with variables and image settings overridden (`--set`, `HEPHY_VAR_*`).
pub fn load_partial_with(path: &Path, overrides: &Overrides) -> (Option<Model>, Option<Problems>) {
    let loaded = load_reusing(path, overrides, None);
    (loaded.model, loaded.problems)
}

/// A graph file loaded as far as it could be ([`load_partial`]), with how long each stage took
/// and whether its document was reused.
#[derive(Debug)]
pub struct Loaded {
    /// The model, when the file could be read through.
    pub model: Option<Model>,
    /// The problems found.
    pub problems: Option<Problems>,
    /// Each stage and how long it took, in order: `read`, the parse ([`Reuse::lap`]),
    /// `expand`, `analyze` (as far as the load got).
    pub laps: Vec<(&'static str, Duration)>,
    /// How the document was had.
    pub reuse: Option<Reuse>,
}

/// [`load_partial_with`], reusing the document as read that `store` keeps for this file when
/// its key is this file's bytes and syntax (and keeping the one parsed otherwise).
pub fn load_reusing(path: &Path, overrides: &Overrides, store: Option<&dyn DocumentStore>) -> Loaded {
    let mut clock = Instant::now();
    let mut laps = Vec::with_capacity(4);
    let mut lap = |what: &'static str, laps: &mut Vec<(&'static str, Duration)>| {
        laps.push((what, clock.elapsed()));
        clock = Instant::now();
    };
    let read = read_path(path);
    lap("read", &mut laps);
    let (source, root) = match read {
        Ok(read) => read,
        Err(problems) => return Loaded { model: None, problems: Some(problems), laps, reuse: None },
    };
    let mut sink = Sink::default();
    let (document, reuse) = stored::read(&source, &mut sink, store);
    lap(reuse.lap(), &mut laps);
    let model =
        document.and_then(|doc| expand_and_analyze(doc, &source, &root, overrides, &mut sink, &mut laps));
    let problems = (!sink.is_empty()).then(|| sink.into_problems(&source));
    Loaded { model, problems, laps, reuse: Some(reuse) }
}

/// The images of the graph file at `path` after variables, templates, matrices and
/// `overrides`, each setting with where it came from (what `hephy show` prints).
pub fn resolve(path: &Path, overrides: &Overrides) -> Result<Vec<ResolvedImage>, Problems> {
    let (source, _) = read_path(path)?;
    let mut sink = Sink::default();
    let resolved = read_into(&source, &mut sink)
        .map(|mut doc| expand::expand(&mut doc, &source, overrides, &mut sink, true).0)
        .unwrap_or_default();
    if sink.is_empty() { Ok(resolved) } else { Err(sink.into_problems(&source)) }
}

fn read_path(path: &Path) -> Result<(SourceFile, PathBuf), Problems> {
    let fail = |problem: Problem| Problems::new(path.display().to_string(), vec![problem]);
    let Some(syntax) = Syntax::from_path(path) else {
        return Err(fail(
            Problem::new(Code::Io, format!("`{}` is neither a `.kdl` nor a `.yaml` file", path.display()))
                .help("name the graph file `hephy.kdl` or `hephy.yaml`"),
        ));
    };
    let bytes = match std::fs::metadata(path) {
        Ok(meta) if meta.len() > limits::MAX_FILE_BYTES => {
            return Err(fail(Problem::new(Code::Io, format!("`{}` is larger than 64 MiB", path.display()))));
        }
        Ok(_) => std::fs::read(path),
        Err(e) => Err(e),
    };
    let bytes = bytes.map_err(|e| {
        fail(
            Problem::new(Code::Io, format!("cannot read `{}`: {e}", path.display()))
                .help("check the path given with `-f`"),
        )
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let file = SourceFile::new(path, syntax, lossy);
            let problem = Problem::new(Code::Syntax, "the graph file is not valid UTF-8")
                .label(miette::SourceSpan::new(at.into(), 1), "invalid byte")
                .help("save the file as UTF-8");
            let mut sink = Sink::default();
            sink.push(problem);
            return Err(sink.into_problems(&file));
        }
    };
    let root = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((SourceFile::new(path, syntax, text), root))
}

/// Analyzes graph text already read; relative paths resolve against `root`. Shape and meaning
/// problems are reported together.
pub fn parse(source: SourceFile, root: &Path) -> Result<Model, Problems> {
    match parse_partial(source, root, &Overrides::default()) {
        (Some(model), None) => Ok(model),
        (_, problems) => Err(problems.unwrap_or_else(|| Problems::new(String::new(), Vec::new()))),
    }
}

fn parse_partial(
    source: SourceFile,
    root: &Path,
    overrides: &Overrides,
) -> (Option<Model>, Option<Problems>) {
    let mut sink = Sink::default();
    let model = read_into(&source, &mut sink)
        .and_then(|doc| expand_and_analyze(doc, &source, root, overrides, &mut sink, &mut Vec::new()));
    if sink.is_empty() { (model, None) } else { (model, Some(sink.into_problems(&source))) }
}

/// Stage one: the text → a syntax-independent [`Document`] (shape errors only).
pub fn read(source: &SourceFile) -> Result<Document, Problems> {
    let mut sink = Sink::default();
    match read_into(source, &mut sink) {
        Some(doc) if sink.is_empty() => Ok(doc),
        _ => Err(sink.into_problems(source)),
    }
}

/// Stage two: a [`Document`] → the validated [`Model`] (meaning errors), paths against `root`;
/// variables, templates and matrices are expanded first, with no overrides.
pub fn lower(doc: Document, source: &SourceFile, root: &Path) -> Result<Model, Problems> {
    let mut sink = Sink::default();
    match expand_and_analyze(doc, source, root, &Overrides::default(), &mut sink, &mut Vec::new()) {
        Some(model) if sink.is_empty() => Ok(model),
        _ => Err(sink.into_problems(source)),
    }
}

/// Expansion, then analysis (each one's time pushed on `laps`); what the analyzer says again
/// about a string expansion already found broken (an unknown `${NAME}`, one grown past its
/// limit), or says twice about copies of one matrix image, is dropped.
fn expand_and_analyze(
    mut doc: Document,
    source: &SourceFile,
    root: &Path,
    overrides: &Overrides,
    sink: &mut Sink,
    laps: &mut Vec<(&'static str, Duration)>,
) -> Option<Model> {
    let start = sink.len();
    let clock = Instant::now();
    let (_, broken) = expand::expand(&mut doc, source, overrides, sink, false);
    laps.push(("expand", clock.elapsed()));
    let clock = Instant::now();
    let mut model = analyze::analyze(doc, source, root, sink);
    laps.push(("analyze", clock.elapsed()));
    if let Some(model) = &mut model {
        model.overrides = overrides.clone();
    }
    sink.prune(start, |p| {
        !matches!(p.code(), Code::UnknownVariable | Code::Limit)
            && p.primary_span().is_some_and(|s| broken.contains(&s))
    });
    model
}

pub(crate) fn read_into(source: &SourceFile, sink: &mut Sink) -> Option<Document> {
    match source.syntax() {
        Syntax::Kdl => kdl::parse(source.text(), sink),
        Syntax::Yaml => yaml::parse(source.text(), sink),
    }
}
