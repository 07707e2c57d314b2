//! `hephy import --from bake`: a `docker buildx bake` file (HCL, or its JSON form) → the
//! equivalent graph file, evaluated as buildx evaluates it.
//!
//! Evaluates the file with `hcl-rs` and [`bake_functions`] (variables, top-level attributes,
//! bake's built-ins, every function of buildx's stdlib and the file's own, `matrix`, `inherits`
//! with bake's merge: `null` is "not set", empty strings leave lists, `local` is the host's
//! platform). Each value is evaluated twice, once with the variables' values and once with each
//! variable marked, so that a value that uses a variable as it is is written as a template over
//! the graph's variable of that name (the environment is read only with `--env-frozen`). Then
//! maps each target to an image, each `target:` context to a named-context dependency, each
//! other context the Dockerfile reads to a `build-context`, the tags to a `repository` and tags,
//! and each group to a `group`. What has no equivalent is named in a warning (and a comment
//! above the image), never dropped silently; like the kaniko-builder import, every image the
//! analyzer would reject, or that would build on another base than bake's, is written
//! commented out with its reason.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hcl::eval::Context;
use hcl::{Block, BlockLabel, Body, Value};

use crate::import::bake_functions::{self, EvalError, UserFunctions};
use crate::import::{Import, comment, shown};
use hephy_dsl::Syntax;
use hephy_dsl::limits::{MAX_MATRIX_COPIES, MAX_TEMPLATE_DEPTH};

/// A target after `matrix`, `inherits` and evaluation: its attributes by name.
#[derive(Debug, Clone, Default)]
struct Target {
    name: String,
    attrs: BTreeMap<String, Value>,
    /// `inherits` not yet merged in.
    inherits: Vec<String>,
}

/// A named-context dependency: `from DEP context=NAME [platform="build"]`.
#[derive(Debug, Clone)]
struct Edge {
    dep: String,
    context: String,
    build_platform: bool,
}

/// One image of the graph.
#[derive(Debug, Clone, Default)]
struct Image {
    name: String,
    context: String,
    git: Option<(String, String)>,
    dockerfile: Option<String>,
    target: Option<String>,
    args: Vec<(String, String)>,
    platforms: Vec<String>,
    tags: Vec<String>,
    secrets: Vec<String>,
    from: Vec<Edge>,
    /// A repository from its `tags`, written as the image's `repository`.
    repository: Option<String>,
    /// Its external named contexts (`build-context`), sorted by name.
    build_contexts: Vec<(String, External)>,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    notes: Vec<String>,
    disabled: Option<String>,
}

/// The source of an external named context, as the graph writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum External {
    /// `docker-image://REF`.
    Image(String),
    /// A folder, relative to the bake file's (`cwd://` dropped).
    Path(String),
    /// A git URL `URL#REF[:DIR]`.
    Git { url: String, reference: Option<String>, dir: Option<String> },
    /// `oci-layout://DIR[:TAG|@DIGEST]` (`latest` when no ref is given, as BuildKit reads it).
    OciLayout { path: String, reference: String },
}

impl External {
    /// A bake `contexts` value other than `target:…`.
    fn parse(source: &str) -> External {
        if let Some(path) = source.strip_prefix("cwd://") {
            let path = path.trim_start_matches("./").trim_end_matches('/');
            return External::Path(if path.is_empty() { ".".to_owned() } else { path.to_owned() });
        }
        if let Some(reference) = source.strip_prefix("docker-image://") {
            return External::Image(reference.to_owned());
        }
        if let Some(rest) = source.strip_prefix("oci-layout://") {
            let (path, reference) = match rest.split_once('@') {
                Some((path, digest)) => (path, digest.to_owned()),
                None => match rest.rsplit_once(':') {
                    Some((path, tag)) if !tag.contains('/') => (path, tag.to_owned()),
                    _ => (rest, "latest".to_owned()),
                },
            };
            return External::OciLayout { path: path.to_owned(), reference };
        }
        if source.contains("://")
            || source.starts_with("git@")
            || source.ends_with(".git")
            || source.contains(".git#")
        {
            let (url, fragment) = match source.split_once('#') {
                Some((url, fragment)) => (url, Some(fragment)),
                None => (source, None),
            };
            let (reference, dir) = match fragment {
                Some(f) => match f.split_once(':') {
                    Some((r, d)) => (r, Some(d)),
                    None => (f, None),
                },
                None => ("", None),
            };
            let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            return External::Git {
                url: url.to_owned(),
                reference: some(reference),
                dir: dir.and_then(some),
            };
        }
        let path = source.trim_start_matches("./").trim_end_matches('/');
        External::Path(if path.is_empty() { ".".to_owned() } else { path.to_owned() })
    }
}

/// A secret of the graph: name, and `env` or `file`.
type Secret = (String, Option<String>, Option<String>);

/// Why a bake file was not imported.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BakeError {
    /// The file cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// A `.json` file that is not JSON.
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    /// A `.json` file whose top is not an object.
    #[error("the JSON bake file is not an object")]
    NotAnObject,
    /// A block type or attribute name of bake's JSON form that is no HCL identifier.
    #[error("`{}` is not a bake block type or attribute name (letters, digits, `_`, `-`)", shown(name))]
    NotAName { name: String },
    /// A file that is not HCL.
    #[error("`{}` is not a bake file: {source}", path.display())]
    NotBake { path: PathBuf, source: hcl::Error },
    /// A matrix or a chain of `inherits` of `file` beyond hephy's limits (SPEC, "Limits").
    #[error("`{file}`: {exceeded}")]
    Limit { file: String, exceeded: Exceeded },
    /// No target of `file` imports into an image that builds: `why` says, target by target,
    /// what failed where; `warnings` are every warning met on the way (printed before it).
    #[error("no target of `{file}` imports into an image that builds{}", because(why))]
    NothingImports { file: String, why: Vec<String>, warnings: Vec<String> },
}

/// `: why; why` after [`BakeError::NothingImports`]'s sentence, when there is a why.
fn because(why: &[String]) -> String {
    if why.is_empty() { String::new() } else { format!(": {}", why.join("; ")) }
}

/// A construct of a bake file past hephy's limits; `target` is as warnings quote it.
#[derive(Debug)]
pub(crate) enum Exceeded {
    /// The matrices make more targets than [`MAX_MATRIX_COPIES`] in all.
    Matrix { target: String, product: String, before: usize },
    /// A chain of `inherits` deeper than [`MAX_TEMPLATE_DEPTH`].
    Inherits { target: String },
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Matrix { target, product, before } => write!(
                f,
                "target `{target}`: its `matrix` makes {product} targets, and a graph's matrices may make {MAX_MATRIX_COPIES} in all ({before} before this one): list fewer values"
            ),
            Exceeded::Inherits { target } => write!(
                f,
                "target `{target}`: its chain of `inherits` is more than {MAX_TEMPLATE_DEPTH} targets deep: merge some of the chain into one target"
            ),
        }
    }
}

impl BakeError {
    /// What to do about it.
    pub(crate) fn help(&self) -> &'static str {
        match self {
            BakeError::Unreadable { .. }
            | BakeError::NotJson(_)
            | BakeError::NotAnObject
            | BakeError::NotAName { .. }
            | BakeError::NotBake { .. } => "name a `docker buildx bake` file (HCL or JSON)",
            BakeError::Limit { .. } => {
                "hephy imports graphs within its limits (SPEC, \"Limits\"): shrink the construct named"
            }
            BakeError::NothingImports { .. } => {
                "fix what the warnings above name for one target at least, or import a file with a target that builds"
            }
        }
    }

    /// The warnings met before the import failed (printed before the error).
    pub(crate) fn warnings(&self) -> &[String] {
        match self {
            BakeError::NothingImports { warnings, .. } => warnings,
            _ => &[],
        }
    }
}

/// The longest target name written into the graph, even commented out: names past it are left
/// out with a warning.
const KEPT_NAME: usize = 1024;

/// How `hephy import --from bake` treats the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Env {
    /// Bake's variables become the graph's `variables` with their defaults; the environment
    /// is not read (none of its values, secret or not, lands in the file).
    Kept,
    /// `--env-frozen`: the environment's values override the defaults and are written as
    /// literals.
    Frozen,
}

/// Reads the bake file at `path` (`.json`: bake's JSON form) and writes its graph in `syntax`,
/// to be saved beside it. `env` reads the variables' overrides (the process environment), read
/// only with [`Env::Frozen`].
pub(crate) fn import_bake(
    path: &Path,
    syntax: Syntax,
    mode: Env,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Import, BakeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| BakeError::Unreadable { path: path.to_path_buf(), source })?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let hcl_text = if is_json { json_to_hcl(&text)? } else { text };
    let body: Body =
        hcl::parse(&hcl_text).map_err(|source| BakeError::NotBake { path: path.to_path_buf(), source })?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut warnings = Vec::new();
    let scope = variables(&body, mode, env, &mut warnings);
    let mut targets: Vec<Target> = Vec::new();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut matrices: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut left_out: BTreeMap<String, String> = BTreeMap::new();
    let mut copies = 0usize;
    for block in body.blocks() {
        let label = block.labels.first().map(label).unwrap_or_default();
        match block.identifier.as_str() {
            "target" => {
                let expanded = expand(block, &label, &scope, &mut copies, &mut warnings, &mut left_out)
                    .map_err(|exceeded| BakeError::Limit { file: path.display().to_string(), exceeded })?;
                if !expanded.is_empty() && expanded.iter().all(|t| t.name != label) {
                    // A group naming a matrix target's label means every one of its targets.
                    matrices.insert(label.clone(), expanded.iter().map(|t| t.name.clone()).collect());
                }
                for target in expanded {
                    // Far past what a name may be (128): not worth a comment that would make the
                    // written graph megabytes long to read back.
                    if target.name.len() > KEPT_NAME {
                        warnings.push(format!(
                            "target `{}`: its name is {} bytes long, and a name is at most 128 characters: left out",
                            shown(&target.name),
                            target.name.len()
                        ));
                        continue;
                    }
                    // Blocks of one name are one target, as in bake: the later merged over the
                    // earlier.
                    match targets.iter_mut().find(|t| t.name == target.name) {
                        Some(first) => {
                            for (k, v) in target.attrs {
                                merge(&mut first.attrs, k, v);
                            }
                            if !target.inherits.is_empty() {
                                first.inherits = target.inherits;
                            }
                        }
                        None => targets.push(target),
                    }
                }
            }
            "group" => {
                let members = match block.body.attributes().find(|a| a.key.as_str() == "targets") {
                    Some(a) => match scope.eval(&a.expr, &scope.real) {
                        Ok(v) => strings(&v),
                        Err(e) => {
                            warnings.push(format!(
                                "group `{}`: `targets` cannot be evaluated ({}): it names no target",
                                shown(&label),
                                shown(&e.to_string())
                            ));
                            Vec::new()
                        }
                    },
                    None => Vec::new(),
                };
                // Blocks of one name are one group, as in bake.
                match groups.iter_mut().find(|(name, _)| *name == label) {
                    Some((_, all)) => all.extend(members),
                    None => groups.push((label, members)),
                }
            }
            "variable" => {}
            "function" => {}
            other => {
                warnings.push(format!("`{}` blocks have no equivalent in hephy: left out", shown(other)))
            }
        }
    }
    let resolved = inherit(&targets, &mut left_out, &mut warnings)
        .map_err(|exceeded| BakeError::Limit { file: path.display().to_string(), exceeded })?;
    let names: Vec<String> = resolved.iter().map(|t| t.name.clone()).collect();
    let mut secrets: Vec<Secret> = Vec::new();
    let mut images: Vec<Image> = resolved
        .iter()
        .filter(|t| !t.name.starts_with('_'))
        .map(|t| image(dir, t, &names, &left_out, &scope, &mut secrets, &mut warnings))
        .collect();
    // A target only inherited from (bake's convention `_common`) is no image.
    for t in resolved.iter().filter(|t| t.name.starts_with('_')) {
        warnings.push(format!(
            "target `{}`: only inherited from (its name starts with `_`): no image",
            shown(&t.name)
        ));
    }
    let file = path.display().to_string();
    if images.is_empty() {
        let why = left_out.iter().map(|(name, why)| format!("target `{}`: {why}", shown(name))).collect();
        return Err(BakeError::NothingImports { file, why, warnings });
    }
    let groups = Groups { declared: groups, matrices, left_out: left_out.clone() };
    let written = Written { secrets: &secrets, groups: &groups, scope: &scope };
    crate::import::settle(dir, &mut images, |images| kdl(images, &written), &mut warnings);
    if images.iter().all(|i| i.disabled.is_some()) {
        // (That the graph of no image does not pass `check` is what the error says.)
        warnings.retain(|w| !w.starts_with("the imported graph does not pass `check`"));
        let why = images
            .iter()
            .filter_map(|i| i.disabled.as_ref().map(|d| format!("target `{}`: {d}", shown(&i.name))))
            .chain(left_out.iter().map(|(name, why)| format!("target `{}`: {why}", shown(name))))
            .collect();
        return Err(BakeError::NothingImports { file, why, warnings });
    }
    for group in groups.resolve(&images) {
        for note in group.notes.iter().chain(&group.disabled) {
            warnings.push(format!("group `{}`: {note}", shown(&group.name)));
        }
    }
    let text = match syntax {
        Syntax::Kdl => kdl(&images, &written).0,
        Syntax::Yaml => yaml(&images, &written),
    };
    Ok(Import { text, warnings })
}

fn label(l: &BlockLabel) -> String {
    match l {
        BlockLabel::Identifier(i) => i.as_str().to_owned(),
        BlockLabel::String(s) => s.clone(),
    }
}

/// Bake's JSON form as HCL text: the same blocks and attributes, strings kept as templates so
/// `${VAR}` still interpolates.
fn json_to_hcl(text: &str) -> Result<String, BakeError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(BakeError::NotJson)?;
    let mut out = String::new();
    let Some(top) = json.as_object() else {
        return Err(BakeError::NotAnObject);
    };
    for (kind, blocks) in top {
        let Some(blocks) = blocks.as_object() else { continue };
        for (name, body) in blocks {
            let _ = writeln!(out, "{} {} {{", hcl_identifier(kind)?, hephy_dsl::escape::hcl_string(name));
            if let Some(body) = body.as_object() {
                for (key, value) in body {
                    let _ = writeln!(out, "  {} = {}", hcl_identifier(key)?, hcl_literal(value));
                }
            }
            out.push_str("}\n");
        }
    }
    Ok(out)
}

/// A block type or attribute name of bake's JSON form, written as HCL: an identifier, or an
/// error (a name that is not one would be read as other HCL).
fn hcl_identifier(name: &str) -> Result<&str, BakeError> {
    let identifier = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if identifier { Ok(name) } else { Err(BakeError::NotAName { name: name.to_owned() }) }
}

fn hcl_literal(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "null".to_owned(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(text) => hephy_dsl::escape::hcl_string(text),
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(hcl_literal).collect::<Vec<_>>().join(", "))
        }
        serde_json::Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{} = {}", hephy_dsl::escape::hcl_string(k), hcl_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Marks where a graph variable stands in a value evaluated with [`Scope::kept`]: the variable's
/// name between these two characters (from Unicode's private use area, which no bake file means).
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// bake's built-in variable for the platform of the machine that runs bake.
const LOCAL_PLATFORM: &str = "BAKE_LOCAL_PLATFORM";

/// What values are evaluated in.
struct Scope {
    /// Every variable at its value (its default; with `--env-frozen`, the environment's).
    real: Context<'static>,
    /// The same, but each variable that becomes a graph variable stands as its mark
    /// (`OPEN NAME CLOSE`), and the variables whose defaults use them are evaluated over the
    /// marks: a value that evaluates alike in both, marks put back, is written as a template.
    kept: Option<Context<'static>>,
    /// The graph's variables: name → default, in the order declared.
    graph: Vec<(String, String)>,
    /// Each marked variable's value (the graph's and bake's built-ins).
    values: HashMap<String, String>,
    /// The file's `function` blocks.
    user: UserFunctions,
}

impl Scope {
    /// `text` with every mark replaced by the variable's value.
    fn real_text(&self, text: &str) -> String {
        self.unmark(text, |name| self.values.get(name).cloned().unwrap_or_default())
    }

    /// `text` as the graph writes it: its graph variables' marks kept (the writer turns them
    /// into `${NAME}`), a built-in's replaced by its value.
    fn graph_text(&self, text: &str) -> String {
        self.unmark(text, |name| {
            if self.graph.iter().any(|(n, _)| n == name) {
                format!("{OPEN}{name}{CLOSE}")
            } else {
                self.values.get(name).cloned().unwrap_or_default()
            }
        })
    }

    fn unmark(&self, text: &str, mut with: impl FnMut(&str) -> String) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(OPEN) {
            out.push_str(&rest[..at]);
            let after = &rest[at + OPEN.len_utf8()..];
            match after.find(CLOSE) {
                Some(end) => {
                    out.push_str(&with(&after[..end]));
                    rest = &after[end + CLOSE.len_utf8()..];
                }
                None => {
                    out.push_str(&rest[at..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// `expr` evaluated in `ctx`, with bake's functions and the file's own.
    fn eval(&self, expr: &hcl::Expression, ctx: &Context<'_>) -> Result<Value, EvalError> {
        bake_functions::evaluate(expr, ctx, &self.user)
    }

    /// `expr` evaluated in `ctx` (the real one, with a matrix's values) and in `kept` (the
    /// same values over the marks): the marked value when both agree, else the real one.
    /// `Err` when the real evaluation fails.
    fn evaluate(
        &self,
        expr: &hcl::Expression,
        real: &Context<'_>,
        kept: Option<&Context<'_>>,
        frozen: &mut BTreeSet<String>,
    ) -> Result<Value, EvalError> {
        let value = self.eval(expr, real)?;
        let Some(kept) = kept else { return Ok(value) };
        match self.eval(expr, kept) {
            Ok(marked) => Ok(self.reconcile(marked, value, frozen)),
            Err(_) => Ok(value),
        }
    }

    /// Part by part (list items, map values), the marked part where it stands for the real one
    /// (its marks put back, it is the same), else the real part; the graph variables a real
    /// part was made from (its marks) are put in `frozen`.
    fn reconcile(&self, marked: Value, value: Value, frozen: &mut BTreeSet<String>) -> Value {
        match (marked, value) {
            (Value::Array(m), Value::Array(v)) if m.len() == v.len() => {
                Value::Array(m.into_iter().zip(v).map(|(m, v)| self.reconcile(m, v, frozen)).collect())
            }
            (Value::Object(m), Value::Object(v)) if m.keys().eq(v.keys()) => Value::Object(
                m.into_iter().zip(v).map(|((k, m), (_, v))| (k, self.reconcile(m, v, frozen))).collect(),
            ),
            (Value::String(m), Value::String(v))
                if self.real_text(&m) == v && !m.contains(&format!("${OPEN}")) =>
            {
                Value::String(m)
            }
            (marked, value) => {
                self.marks(&marked, frozen);
                value
            }
        }
    }

    /// The graph variables whose marks `value` holds.
    fn marks(&self, value: &Value, into: &mut BTreeSet<String>) {
        match value {
            Value::String(s) => {
                let _ = self.unmark(s, |name| {
                    if self.graph.iter().any(|(n, _)| n == name) {
                        into.insert(name.to_owned());
                    }
                    String::new()
                });
            }
            Value::Array(items) => items.iter().for_each(|v| self.marks(v, into)),
            Value::Object(map) => map.values().for_each(|v| self.marks(v, into)),
            _ => {}
        }
    }

    /// `value` with every mark replaced by its value.
    fn unmarked(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.real_text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.unmarked(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (self.real_text(k), self.unmarked(v))).collect())
            }
            other => other.clone(),
        }
    }
}

/// The evaluation contexts: bake's functions hephy knows, bake's built-in variables, the file's
/// top-level attributes, and every variable (its default; with `--env-frozen`, overridden by
/// the environment variable of its name).
fn variables(
    body: &Body,
    mode: Env,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Scope {
    let (user, unusable) = UserFunctions::from_body(body);
    warnings.extend(unusable.iter().map(ToString::to_string));
    let mut real = Context::new();
    bake_functions::declare(&mut real);
    let local = host_platform();
    let mut values: HashMap<String, String> = HashMap::new();
    // `cwd://` is the folder bake runs in: the bake file's, as the graph's paths are.
    real.declare_var("BAKE_CMD_CONTEXT", Value::String("cwd://".to_owned()));
    real.declare_var(LOCAL_PLATFORM, Value::String(local.clone()));
    values.insert(LOCAL_PLATFORM.to_owned(), local);
    let declared: Vec<(String, Option<&hcl::Expression>)> = body
        .blocks()
        .filter(|b| b.identifier.as_str() == "variable")
        .map(|b| {
            let name = b.labels.first().map(label).unwrap_or_default();
            let default = b.body.attributes().find(|a| a.key.as_str() == "default").map(|a| &a.expr);
            (name, default)
        })
        .collect();
    let attributes: Vec<(String, &hcl::Expression)> =
        body.attributes().map(|a| (a.key.as_str().to_owned(), &a.expr)).collect();
    let frozen = mode == Env::Frozen;
    let overridden = |name: &str, value: Value| -> Value {
        if !frozen {
            return value;
        }
        match env(name) {
            Some(text) => match &value {
                Value::Bool(_) => text.parse::<bool>().map(Value::Bool).unwrap_or(Value::String(text)),
                Value::Number(_) => {
                    text.parse::<i64>().map(|n| Value::Number(n.into())).unwrap_or(Value::String(text))
                }
                _ => Value::String(text),
            },
            None => value,
        }
    };
    let found = evaluate_all(
        &declared,
        &attributes,
        &mut real,
        &user,
        &|name, value| overridden(name, value),
        &|_| None,
    );
    for (name, _) in declared.iter().filter(|(n, _)| !found.contains_key(n)) {
        warnings.push(format!("variable `{}`: its default cannot be evaluated: left unset", shown(name)));
    }
    for (name, _) in attributes.iter().filter(|(n, _)| !found.contains_key(n)) {
        warnings.push(format!("attribute `{}`: it cannot be evaluated: left unset", shown(name)));
    }
    let mut scope = Scope { real, kept: None, graph: Vec::new(), values, user };
    if frozen {
        return scope;
    }
    // A variable whose default is a string that uses no other variable becomes a graph
    // variable; the others (and top-level attributes) are evaluated over the marks.
    let bare = Context::new();
    let mut graph: Vec<(String, String)> = Vec::new();
    for (name, default) in &declared {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let literal = match default {
            None => Some(String::new()),
            Some(expr) => match bake_functions::evaluate(expr, &bare, &scope.user) {
                Ok(Value::String(text)) => Some(text),
                _ => None,
            },
        };
        if let (true, Some(text)) = (valid, literal)
            && !graph.iter().any(|(n, _)| n == name)
        {
            graph.push((name.clone(), text));
        }
    }
    let mut kept = Context::new();
    bake_functions::declare(&mut kept);
    kept.declare_var("BAKE_CMD_CONTEXT", Value::String("cwd://".to_owned()));
    kept.declare_var(LOCAL_PLATFORM, Value::String(format!("{OPEN}{LOCAL_PLATFORM}{CLOSE}")));
    let marked = |name: &str| {
        graph.iter().any(|(n, _)| n == name).then(|| Value::String(format!("{OPEN}{name}{CLOSE}")))
    };
    evaluate_all(&declared, &attributes, &mut kept, &scope.user, &|_, value| value, &marked);
    for (name, default) in &graph {
        scope.values.insert(name.clone(), default.clone());
    }
    scope.graph = graph;
    scope.kept = Some(kept);
    scope
}

/// Declares in `ctx` every variable (its default through `overridden`, or what `fixed` gives
/// it) and every top-level attribute, each after those it uses (found by evaluating it: an
/// undefined name that is declared is evaluated first, on a stack of its own), so a chain takes
/// time linear in its length. Returns the values declared.
fn evaluate_all(
    declared: &[(String, Option<&hcl::Expression>)],
    attributes: &[(String, &hcl::Expression)],
    ctx: &mut Context<'static>,
    user: &UserFunctions,
    overridden: &dyn Fn(&str, Value) -> Value,
    fixed: &dyn Fn(&str) -> Option<Value>,
) -> BTreeMap<String, Value> {
    // Variables first, then attributes (a name declared as both is bake's error; the variable
    // wins here).
    let all: Vec<(&str, Option<&hcl::Expression>, bool)> = declared
        .iter()
        .map(|(n, e)| (n.as_str(), *e, true))
        .chain(attributes.iter().map(|(n, e)| (n.as_str(), Some(*e), false)))
        .collect();
    let index: HashMap<&str, usize> =
        all.iter().enumerate().rev().map(|(i, (name, _, _))| (*name, i)).collect();
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    // 0: not yet looked at; 1: waiting on the stack; 2: evaluated (or given up on).
    let mut state = vec![0u8; all.len()];
    for first in 0..all.len() {
        if state[first] != 0 {
            continue;
        }
        state[first] = 1;
        let mut stack = vec![first];
        while let Some(&i) = stack.last() {
            let (name, default, variable) = all[i];
            let value = match fixed(name).filter(|_| variable) {
                Some(value) => Ok(value),
                None => match default {
                    None => Ok(Value::String(String::new())),
                    Some(expr) => bake_functions::evaluate(expr, &*ctx, user),
                },
            };
            let value = match value {
                Ok(value) => value,
                Err(e) => {
                    if let Some(var) = e.undefined_var()
                        && let Some(&j) = index.get(var)
                        && state[j] == 0
                    {
                        state[j] = 1;
                        stack.push(j);
                    } else {
                        state[i] = 2;
                        stack.pop();
                    }
                    continue;
                }
            };
            state[i] = 2;
            stack.pop();
            if values.contains_key(name) {
                continue;
            }
            let value = if variable { overridden(name, value) } else { value };
            ctx.declare_var(name.to_owned(), value.clone());
            values.insert(name.to_owned(), value);
        }
    }
    values
}

/// The platform of this machine as bake's `local` and `BAKE_LOCAL_PLATFORM` name it.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm/v7",
        other => other,
    };
    format!("linux/{arch}")
}

/// A value as a list of strings (one string is a list of one), as bake reads lists: empty
/// strings and repeats dropped.
fn strings(value: &Value) -> Vec<String> {
    let all: Vec<String> = match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        Value::Null => Vec::new(),
        other => scalar(other).into_iter().collect(),
    };
    let mut out: Vec<String> = Vec::with_capacity(all.len());
    for s in all {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The attributes of a target hephy writes into the graph: a target one of them cannot be
/// evaluated for is left out; any other attribute that cannot be evaluated is only named in a
/// warning (hephy does not use it).
const USED: &[&str] = &[
    "context",
    "dockerfile",
    "target",
    "args",
    "platforms",
    "tags",
    "contexts",
    "secret",
    "labels",
    "annotations",
];

/// One target block → its targets: one, or one per `matrix` combination (named by `name`; without
/// it every combination is named by the label, and merged into one target, as bake does).
/// `copies` counts the targets matrices have made so far; a matrix that would make more than
/// [`MAX_MATRIX_COPIES`] in all is an error. Targets left out are put in `left_out` with why.
fn expand(
    block: &Block,
    label: &str,
    scope: &Scope,
    copies: &mut usize,
    warnings: &mut Vec<String>,
    left_out: &mut BTreeMap<String, String>,
) -> Result<Vec<Target>, Exceeded> {
    let attr = |key: &str| block.body.attributes().find(|a| a.key.as_str() == key).map(|a| &a.expr);
    let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    if let Some(matrix) = attr("matrix") {
        match scope.eval(matrix, &scope.real) {
            Ok(Value::Object(axes)) => {
                let axes: Vec<(String, Vec<Value>)> = axes
                    .into_iter()
                    .map(|(axis, values)| match values {
                        Value::Array(v) => (axis, v),
                        other => (axis, vec![other]),
                    })
                    .collect();
                // Counted before any is made: a graph's matrices make at most so many copies.
                let made = axes.iter().try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()));
                match made.and_then(|n| n.checked_add(*copies)) {
                    Some(total) if total <= MAX_MATRIX_COPIES => *copies = total,
                    _ => {
                        let product =
                            axes.iter().map(|(_, v)| v.len().to_string()).collect::<Vec<_>>().join(" × ");
                        return Err(Exceeded::Matrix {
                            target: shown(label).into_owned(),
                            product,
                            before: *copies,
                        });
                    }
                }
                for (axis, values) in axes {
                    let mut next = Vec::new();
                    for c in &combos {
                        for v in &values {
                            let mut c = c.clone();
                            c.push((axis.clone(), v.clone()));
                            next.push(c);
                        }
                    }
                    combos = next;
                }
            }
            Ok(_) | Err(_) => {
                let why = "its `matrix` cannot be evaluated: left out".to_owned();
                warnings.push(format!("target `{}`: {why}", shown(label)));
                left_out.insert(label.to_owned(), why);
                return Ok(Vec::new());
            }
        }
    }
    let mut out: Vec<Target> = Vec::new();
    // One copy of the contexts, the matrix values set anew for each combination.
    let mut real = scope.real.clone();
    let mut kept = scope.kept.clone();
    for combo in combos {
        for (k, v) in &combo {
            real.declare_var(k.clone(), v.clone());
            if let Some(kept) = &mut kept {
                kept.declare_var(k.clone(), v.clone());
            }
        }
        let name = match attr("name") {
            Some(expr) => match scope.eval(expr, &real) {
                Ok(Value::String(n)) => n,
                _ => {
                    let why = "its `name` cannot be evaluated: left out".to_owned();
                    warnings.push(format!("target `{}`: {why}", shown(label)));
                    left_out.insert(label.to_owned(), why);
                    continue;
                }
            },
            None => label.to_owned(),
        };
        let mut target = Target { name: name.clone(), ..Target::default() };
        let mut broken: Option<String> = None;
        for a in block.body.attributes() {
            let key = a.key.as_str();
            if matches!(key, "matrix" | "name") {
                continue;
            }
            let mut frozen = BTreeSet::new();
            let evaluated = scope.evaluate(&a.expr, &real, kept.as_ref(), &mut frozen);
            if !frozen.is_empty() && USED.contains(&key) {
                let names: Vec<String> = frozen.iter().map(|n| format!("`{n}`")).collect();
                warnings.push(format!(
                    "target `{}`: `{}` uses {} through a function or condition the graph's templates cannot follow: written with the default's value (`--set` and `HEPHY_VAR_…` do not change it)",
                    shown(&name),
                    shown(key),
                    names.join(", ")
                ));
            }
            match evaluated {
                // Names are what the variables' values make (a name is no template).
                Ok(value) if key == "inherits" => target.inherits = strings(&scope.unmarked(&value)),
                Ok(value) => merge(&mut target.attrs, key.to_owned(), value),
                Err(e) if USED.contains(&key) || key == "inherits" => {
                    let why = format!("`{}` cannot be evaluated ({}): left out", shown(key), shown(&e.to_string()));
                    warnings.push(format!("target `{}`: {why}", shown(&name)));
                    broken.get_or_insert(why);
                }
                Err(e) => warnings.push(format!(
                    "target `{}`: `{}` cannot be evaluated ({}), and hephy does not use it: that attribute is left out",
                    shown(&name),
                    shown(key),
                    shown(&e.to_string())
                )),
            }
        }
        match broken {
            Some(why) => {
                left_out.insert(name, why);
            }
            None => match out.iter_mut().find(|t| t.name == target.name) {
                // Combinations of one name are one target, the later merged over the earlier.
                Some(first) => {
                    for (k, v) in target.attrs {
                        merge(&mut first.attrs, k, v);
                    }
                }
                None => out.push(target),
            },
        }
    }
    Ok(out)
}

/// Lists bake appends when a target is merged over another (`inherits`, blocks of one name);
/// other lists are replaced.
const APPENDED: &[&str] =
    &["annotations", "attest", "secret", "ssh", "cache-from", "no-cache-filter", "ulimits", "entitlements"];

/// `value` merged into `into` as bake merges targets: `null` is not set (the inherited value
/// stays, in a map too), maps are merged key by key, the lists of [`APPENDED`] appended, anything
/// else replaced.
fn merge(into: &mut BTreeMap<String, Value>, key: String, value: Value) {
    match (into.get_mut(&key), value) {
        (_, Value::Null) => {}
        (Some(Value::Object(old)), Value::Object(new)) => {
            for (k, v) in new {
                if !v.is_null() {
                    old.insert(k, v);
                }
            }
        }
        (Some(Value::Array(old)), Value::Array(new)) if APPENDED.contains(&key.as_str()) => old.extend(new),
        (_, Value::Object(new)) => {
            into.insert(key, Value::Object(new.into_iter().filter(|(_, v)| !v.is_null()).collect()));
        }
        (_, value) => {
            into.insert(key, value);
        }
    }
}

/// `inherits`: the parents' attributes, overridden by the child's; maps (`args`, `labels`,
/// `contexts`, …) are merged key by key, as bake merges them. Parents are resolved first, each
/// once, on a stack of its own (never the thread's); a chain of `inherits` deeper than
/// [`MAX_TEMPLATE_DEPTH`] is an error.
/// A target that inherits one left out is left out too (it would build without what it
/// inherits), added to `left_out` with why.
fn inherit(
    targets: &[Target],
    left_out: &mut BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Target>, Exceeded> {
    let mut tainted: BTreeMap<String, String> = BTreeMap::new();
    // The first target of each name, as bake's `inherits` finds it.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        by_name.entry(t.name.as_str()).or_insert(i);
    }
    // Each target's attributes with its parents merged in, and the depth of its chain.
    let mut done: Vec<Option<(BTreeMap<String, Value>, usize)>> = vec![None; targets.len()];
    let mut on_stack: HashSet<usize> = HashSet::new();
    for first in 0..targets.len() {
        if done[first].is_some() {
            continue;
        }
        // (target, the index of the parent to look at next)
        let mut stack: Vec<(usize, usize)> = vec![(first, 0)];
        on_stack.insert(first);
        while let Some(&mut (i, ref mut next)) = stack.last_mut() {
            let target = &targets[i];
            if let Some(parent) = target.inherits.get(*next) {
                *next += 1;
                match by_name.get(parent.as_str()) {
                    None if left_out.contains_key(parent) => {
                        tainted.entry(target.name.clone()).or_insert_with(|| {
                            format!("it inherits `{}`, which is left out (above): left out", shown(parent))
                        });
                    }
                    None => warnings.push(format!(
                        "target `{}`: inherits `{}`, which no target of the file is named: that parent is left out",
                        shown(&target.name),
                        shown(parent)
                    )),
                    Some(&p) if on_stack.contains(&p) => warnings.push(format!(
                        "target `{}`: `inherits` forms a cycle through `{}`: that parent is left out",
                        shown(&target.name),
                        shown(parent)
                    )),
                    Some(&p) if done[p].is_none() => {
                        on_stack.insert(p);
                        stack.push((p, 0));
                    }
                    Some(_) => {}
                }
                continue;
            }
            let mut merged: BTreeMap<String, Value> = BTreeMap::new();
            let mut depth = 0;
            for parent in &target.inherits {
                if tainted.contains_key(parent) && !tainted.contains_key(&target.name) {
                    tainted.insert(
                        target.name.clone(),
                        format!("it inherits `{}`, which is left out (above): left out", shown(parent)),
                    );
                }
                if let Some((attrs, d)) = by_name.get(parent.as_str()).and_then(|&p| done[p].as_ref()) {
                    depth = depth.max(*d);
                    for (k, v) in attrs {
                        merge(&mut merged, k.clone(), v.clone());
                    }
                }
            }
            if depth >= MAX_TEMPLATE_DEPTH {
                return Err(Exceeded::Inherits { target: shown(&target.name).into_owned() });
            }
            for (k, v) in &target.attrs {
                merge(&mut merged, k.clone(), v.clone());
            }
            done[i] = Some((merged, depth + 1));
            on_stack.remove(&i);
            stack.pop();
        }
    }
    for (name, why) in &tainted {
        warnings.push(format!("target `{}`: {why}", shown(name)));
    }
    left_out.extend(tainted.clone());
    Ok(targets
        .iter()
        .zip(done)
        .filter(|(t, _)| !tainted.contains_key(&t.name))
        .map(|(t, attrs)| Target {
            name: t.name.clone(),
            attrs: attrs.map(|(a, _)| a).unwrap_or_default(),
            inherits: Vec::new(),
        })
        .collect())
}

/// What the importer reads of an image's Dockerfile: the names its `FROM`s build on (and
/// whether with `--platform=$BUILDPLATFORM`), and those `COPY --from=` and `RUN --mount=…,from=`
/// read.
#[derive(Debug, Default)]
struct Uses {
    froms: Vec<(String, bool)>,
    reads: Vec<String>,
}

impl Uses {
    /// The Dockerfile at `rel` below `dir`, read only below `dir` (never through a link out of
    /// it, never a FIFO or a device) and at most 16 MiB of it; `None` when it cannot be read.
    fn read(dir: &Path, rel: &Path) -> Option<Uses> {
        let file = hephy_os::open::open_below(dir, rel).ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, 16 << 20), &mut text).ok()?;
        let dockerfile = hephy_dockerfile::parse(&text).ok()?;
        let mut uses = Uses::default();
        for i in &dockerfile.instructions {
            match &i.command {
                hephy_dockerfile::Command::From { image, platform, .. } => uses.froms.push((
                    image.text.clone(),
                    platform.as_ref().is_some_and(|p| p.text.contains("BUILDPLATFORM")),
                )),
                hephy_dockerfile::Command::Copy(copy) => {
                    uses.reads.extend(copy.from.as_ref().map(|f| f.text.clone()));
                }
                hephy_dockerfile::Command::Run(_) => {
                    for flag in i.flags.iter().filter(|f| f.name == "mount") {
                        if let Some(value) = &flag.value {
                            uses.reads.extend(
                                value
                                    .text
                                    .split(',')
                                    .filter_map(|f| f.trim().strip_prefix("from="))
                                    .map(str::to_owned),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        Some(uses)
    }

    /// Whether a build reads the named context `name`.
    fn uses(&self, name: &str) -> bool {
        self.froms.iter().any(|(f, _)| f == name) || self.reads.iter().any(|r| r == name)
    }

    /// Whether it says `FROM --platform=$BUILDPLATFORM NAME`.
    fn builds_on_build_platform(&self, name: &str) -> bool {
        self.froms.iter().any(|(f, build)| f == name && *build)
    }
}

const NO_EQUIVALENT: &[(&str, &str)] = &[
    ("cache-from", "hephy's cache is its state and the registry (by key)"),
    ("cache-to", "hephy's cache is its state and the registry (by key)"),
    ("output", "hephy pushes each build to its registry and keeps an OCI layout"),
    ("attest", "hephy writes no attestations yet"),
    ("pull", "hephy resolves base images by digest itself"),
    ("no-cache", "use `hephy run --force NODE`"),
    ("no-cache-filter", "use `hephy run --force NODE`"),
    ("network", "builds use the builder's default network"),
    ("ssh", "hephy forwards no ssh agent to builds"),
    ("shm-size", "no equivalent"),
    ("ulimits", "no equivalent"),
    ("entitlements", "no equivalent"),
    ("call", "hephy builds images; it runs no other frontend method"),
    ("description", "kept as a comment"),
];

fn image(
    dir: &Path,
    t: &Target,
    names: &[String],
    left_out: &BTreeMap<String, String>,
    scope: &Scope,
    secrets: &mut Vec<Secret>,
    warnings: &mut Vec<String>,
) -> Image {
    let mut image = Image { name: t.name.clone(), context: ".".to_owned(), ..Image::default() };
    let mut warn = |image: &mut Image, note: String| {
        warnings.push(format!("target `{}`: {note}", shown(&t.name)));
        image.notes.push(note);
    };
    // Values as they are (paths, names) and as the graph writes them (templates).
    let real = |v: &Value| scalar(v).map(|s| scope.real_text(&s));
    let graph = |v: &Value| scalar(v).map(|s| scope.graph_text(&s));
    let real_list = |v: &Value| {
        let mut out: Vec<String> = Vec::new();
        for s in strings(v).iter().map(|s| scope.real_text(s)) {
            if !s.is_empty() && !out.contains(&s) {
                out.push(s);
            }
        }
        out
    };
    let mut contexts: Vec<(String, String)> = Vec::new();
    for (key, value) in &t.attrs {
        match key.as_str() {
            "context" => {
                let c = real(value).unwrap_or_default();
                let c = c.strip_prefix("cwd://").unwrap_or(&c);
                if c.contains("://") || c.ends_with(".git") || c.starts_with("git@") {
                    let (url, reference) = c.split_once('#').unwrap_or((c, "HEAD"));
                    let (reference, sub) = reference.split_once(':').unwrap_or((reference, "."));
                    let reference = if reference.is_empty() { "HEAD" } else { reference };
                    image.git = Some((url.to_owned(), reference.to_owned()));
                    image.context = if sub.is_empty() { ".".to_owned() } else { sub.to_owned() };
                } else {
                    let c = c.trim_start_matches("./").trim_end_matches('/');
                    image.context = if c.is_empty() { ".".to_owned() } else { c.to_owned() };
                }
            }
            "dockerfile" => image.dockerfile = real(value).filter(|d| d != "Dockerfile" && !d.is_empty()),
            // Built without it, the image would build the context's Dockerfile instead.
            "dockerfile-inline" if !matches!(value, Value::Null) => {
                image.disabled.get_or_insert(
                    "its Dockerfile is inline (`dockerfile-inline`), and the graph builds Dockerfiles from files: write it to a file and name that with `dockerfile`: imported commented out"
                        .to_owned(),
                );
            }
            "target" => image.target = real(value).filter(|s| !s.is_empty()),
            "args" => {
                if let Value::Object(args) = value {
                    for (k, v) in args {
                        // `null`: not set (bake passes no value, the Dockerfile's default holds).
                        match (v, graph(v)) {
                            (Value::Null, _) => {}
                            (_, Some(v)) => image.args.push((k.clone(), v)),
                            (_, None) => warn(
                                &mut image,
                                format!("build arg `{}` = {} is no text: left out", shown(k), show(v)),
                            ),
                        }
                    }
                }
            }
            "platforms" => {
                let all = real_list(value);
                let local = |p: &String| p.eq_ignore_ascii_case("local");
                let from_local: Vec<bool> = strings(value)
                    .iter()
                    .map(|p| {
                        p.eq_ignore_ascii_case("local")
                            || p.contains(&format!("{OPEN}{LOCAL_PLATFORM}{CLOSE}"))
                    })
                    .collect();
                if !all.is_empty()
                    && (all.iter().all(local) || (from_local.iter().all(|l| *l) && all.len() == 1))
                {
                    // The host's platform: the graph's default when it lists none.
                } else {
                    let host = host_platform();
                    let mut platforms: Vec<String> = Vec::new();
                    for p in all.iter().map(|p| if local(p) { host.clone() } else { p.clone() }) {
                        if !platforms.contains(&p) {
                            platforms.push(p);
                        }
                    }
                    if from_local.iter().any(|l| *l) {
                        warn(
                            &mut image,
                            format!("`local` beside other platforms is written as this machine's, `{host}`"),
                        );
                    }
                    image.platforms = platforms;
                }
            }
            "tags" => {
                let mut repositories: Vec<String> = Vec::new();
                for tag in strings(value) {
                    let real_tag = scope.real_text(&tag);
                    let (repository, tag_part) = match hephy_oci::registry::Reference::parse(&real_tag) {
                        Ok(r) => {
                            (format!("{}/{}", r.host, r.repository), r.tag.filter(|_| r.digest.is_none()))
                        }
                        Err(e) => {
                            warn(&mut image, format!("tag {}: left out", shown(&e.to_string())));
                            continue;
                        }
                    };
                    let Some(tag_part) = tag_part else {
                        warn(
                            &mut image,
                            format!("tag `{}` names a digest, not a tag: left out", shown(&real_tag)),
                        );
                        continue;
                    };
                    // The template form, when the marks split where the value does (docker's
                    // defaults put before it as before the value).
                    let marked = scope.graph_text(&tag);
                    let marked_split = match marked.rsplit_once(':') {
                        Some((name, t)) if !t.contains('/') => Some((name, t)),
                        _ => None,
                    };
                    let (repository_text, tag_text) = match marked_split {
                        Some((name, t)) if scope.real_text(t) == tag_part => {
                            let real_name = scope.real_text(name);
                            // docker's defaults depend on the first part: the template is kept
                            // only when it is written out, or no variable makes it.
                            let repository_text = match repository.strip_suffix(real_name.as_str()) {
                                Some(prefix) if prefix.is_empty() || !name.starts_with(OPEN) => {
                                    format!("{prefix}{name}")
                                }
                                _ => repository.clone(),
                            };
                            (repository_text, t.to_owned())
                        }
                        _ => (repository.clone(), tag_part.clone()),
                    };
                    match repositories.first() {
                        None => {
                            repositories.push(repository);
                            image.repository = Some(repository_text);
                        }
                        Some(first) if *first == repository => {}
                        Some(first) => {
                            warn(
                                &mut image,
                                format!(
                                    "tag `{}` names repository `{}`, and an image is pushed to one repository here (`{}`, its first tag's): left out",
                                    shown(&real_tag),
                                    shown(&repository),
                                    shown(first)
                                ),
                            );
                            continue;
                        }
                    }
                    if !image.tags.contains(&tag_text) {
                        image.tags.push(tag_text);
                    }
                }
            }
            "labels" => {
                if let Value::Object(labels) = value {
                    for (k, v) in labels {
                        match (v, graph(v)) {
                            (Value::Null, _) => {}
                            (_, Some(v)) => image.labels.push((k.clone(), v)),
                            (_, None) => warn(
                                &mut image,
                                format!("label `{}` = {} is no text: left out", shown(k), show(v)),
                            ),
                        }
                    }
                }
            }
            "annotations" => {
                for a in strings(value) {
                    let text = scope.graph_text(&a);
                    match text.split_once('=') {
                        Some((key, v)) => {
                            // `manifest,index:KEY=VALUE`: hephy writes every annotation on both.
                            let key = match key.split_once(':') {
                                Some((kinds, key)) if kinds.split(',').all(|k| !k.contains('.')) => {
                                    if kinds.split(',').any(|k| !matches!(k.trim(), "manifest" | "index")) {
                                        warn(
                                            &mut image,
                                            format!(
                                                "annotation `{}`: hephy writes annotations on the manifests and the index, not on `{}`",
                                                shown(key),
                                                shown(kinds)
                                            ),
                                        );
                                    }
                                    key
                                }
                                _ => key,
                            };
                            if !key.contains(OPEN) {
                                image.annotations.push((key.to_owned(), v.to_owned()));
                            }
                        }
                        None => warn(
                            &mut image,
                            format!(
                                "annotation `{}` is not `KEY=VALUE`: left out",
                                shown(&scope.real_text(&a))
                            ),
                        ),
                    }
                }
            }
            "contexts" => {
                if let Value::Object(map) = value {
                    for (name, source) in map {
                        let source = real(source).unwrap_or_default();
                        // `""`: bake drops the context.
                        if !source.is_empty() {
                            contexts.push((name.clone(), source));
                        }
                    }
                }
            }
            "secret" => {
                for spec in strings(value).iter().map(|s| scope.real_text(s)) {
                    let fields: BTreeMap<&str, &str> =
                        spec.split(',').filter_map(|f| f.split_once('=')).collect();
                    let id = fields.get("id").copied().unwrap_or_default();
                    let valid = !id.is_empty()
                        && id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        warn(
                            &mut image,
                            format!(
                                "secret `{}`: its id is not a variable name hephy can use: left out",
                                shown(&spec)
                            ),
                        );
                        continue;
                    }
                    let env = fields.get("env").map(|e| (*e).to_owned());
                    let file = fields.get("src").map(|e| (*e).to_owned());
                    let (env, file) = match (env, file) {
                        (None, None) => (Some(id.to_owned()), None),
                        other => other,
                    };
                    if !secrets.iter().any(|(n, _, _)| n == id) {
                        secrets.push((id.to_owned(), env, file));
                    }
                    image.secrets.push(id.to_owned());
                }
            }
            other => match NO_EQUIVALENT.iter().find(|(k, _)| *k == other) {
                Some((_, why)) => {
                    let value = scope.unmarked(value);
                    warn(
                        &mut image,
                        format!("`{other}` = {} has no equivalent ({why}): left out", show(&value)),
                    )
                }
                None => warn(&mut image, format!("unknown attribute `{}`: left out", shown(other))),
            },
        }
    }
    image.args.sort();
    // The named contexts, against what the final Dockerfile reads.
    let uses = if image.git.is_none() {
        let dockerfile = Path::new(&image.context).join(image.dockerfile.as_deref().unwrap_or("Dockerfile"));
        Uses::read(dir, &dockerfile)
    } else {
        None
    };
    // Whether a build reads it (a Dockerfile that cannot be read here: assume it does).
    let read = |name: &str| uses.as_ref().is_none_or(|u| u.uses(name));
    for (name, source) in contexts {
        match source.strip_prefix("target:") {
            Some(dep) if names.iter().any(|n| n == dep) => image.from.push(Edge {
                dep: dep.to_owned(),
                context: name.clone(),
                build_platform: uses.as_ref().is_some_and(|u| u.builds_on_build_platform(&name)),
            }),
            Some(dep) => {
                let why = match left_out.get(dep) {
                    Some(why) => format!("target `{}` is left out ({why})", shown(dep)),
                    None => format!("no target of the file is named `{}`", shown(dep)),
                };
                if read(&name) {
                    image.disabled.get_or_insert(format!(
                        "its named context `{}` = `target:{}` cannot be wired: {why}; it would build on a registry image of that name instead: imported commented out",
                        shown(&name),
                        shown(dep)
                    ));
                } else {
                    warn(
                        &mut image,
                        format!(
                            "context `{}` = `target:{}` (unused by its Dockerfile): {why}: left out",
                            shown(&name),
                            shown(dep)
                        ),
                    );
                }
            }
            // `docker-image://`, a folder, a git URL, `oci-layout://`: a `build-context`, when
            // a build reads it (BuildKit gives an unread one to no instruction).
            None if read(&name) => image.build_contexts.push((name.clone(), External::parse(&source))),
            None => warn(
                &mut image,
                format!(
                    "context `{}` = `{}`: its Dockerfile never reads it (no `FROM`, `COPY --from=` or `RUN --mount=…,from=` names it): left out",
                    shown(&name),
                    shown(&source)
                ),
            ),
        }
    }
    image.build_contexts.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(why) = image.disabled.clone() {
        warnings.push(format!("target `{}`: {why}", shown(&t.name)));
    }
    image
}

/// A value quoted in a warning: as JSON, on one line, at most 80 characters.
fn show(value: &Value) -> String {
    hephy_dsl::escape::excerpt(&serde_json::to_string(value).unwrap_or_default(), 80).into_owned()
}

impl crate::import::Settled for Image {
    fn disabled(&mut self) -> &mut Option<String> {
        &mut self.disabled
    }

    fn label(&self) -> String {
        format!("target `{}`", shown(&self.name))
    }
}

use hephy_dsl::{Document, FromDraft, ImageDraft, yaml_scalar};

const HEADER: &str = "imported from a bake file by `hephy import --from bake`
set `registry` to where the images are pushed; each bake target is an image, each
`target:` context a `from … context=…` dependency, each group a `group`
(`hephy plan --group NAME`)";

/// The image as the dsl's printer writes it.
fn draft(image: &Image) -> ImageDraft {
    let mut d = ImageDraft::named(&image.name);
    match &image.git {
        Some((url, reference)) => {
            d = d.with_git(url, reference);
            if image.context != "." {
                d = d.with_context(&image.context);
            }
        }
        None => d = d.with_context(&image.context),
    }
    if let Some(path) = &image.dockerfile {
        d = d.with_dockerfile(path);
    }
    if let Some(target) = &image.target {
        d = d.with_target(target);
    }
    for (name, value) in &image.args {
        d = d.with_arg(name, value);
    }
    if !image.platforms.is_empty() {
        d = d.with_platforms(&image.platforms);
    }
    d = d.with_tags(&image.tags).with_secrets(&image.secrets);
    if let Some(repository) = &image.repository {
        d = d.with_repository(repository);
    }
    for (name, value) in &image.labels {
        d = d.with_label(name, value);
    }
    for (name, value) in &image.annotations {
        d = d.with_annotation(name, value);
    }
    // buildah (the graph's builder) takes no OCI layout context; buildx, bake's own, does.
    if image.build_contexts.iter().any(|(_, c)| matches!(c, External::OciLayout { .. })) {
        d = d.with_builder("buildx");
    }
    for (name, source) in &image.build_contexts {
        d = match source {
            External::Image(reference) => d.with_image_context(name, reference),
            External::Path(path) => d.with_path_context(name, path),
            External::Git { url, reference, dir } => {
                d.with_git_context(name, url, reference.as_deref(), dir.as_deref())
            }
            External::OciLayout { path, reference } => d.with_oci_layout_context(name, path, reference),
        };
    }
    for edge in &image.from {
        let mut from = FromDraft::new().with_context(&edge.context);
        if edge.build_platform {
            from = from.for_build_platform();
        }
        d = d.with_from(&edge.dep, from);
    }
    d
}

/// What the graph is written with beside its images.
#[derive(Clone, Copy)]
struct Written<'a> {
    secrets: &'a [Secret],
    groups: &'a Groups,
    scope: &'a Scope,
}

/// `text` (the images as printed) with each graph variable's mark written `${NAME}`, and the
/// variables it used, in the order declared.
fn unmark<'a>(text: &str, scope: &'a Scope) -> (String, Vec<&'a (String, String)>) {
    let used =
        scope.graph.iter().filter(|(name, _)| text.contains(&format!("{OPEN}{name}{CLOSE}"))).collect();
    let text = scope.unmark(text, |name| format!("${{{name}}}"));
    (text, used)
}

/// The graph's settings, the variables `used`, and the secrets its enabled images use, as the
/// printer writes them.
fn settings(images: &[Image], secrets: &[Secret], used: &[&(String, String)]) -> Document {
    let mut doc = Document::default();
    doc.set_builder("buildah");
    for (name, default) in used {
        doc.add_variable(name, default);
    }
    let used: Vec<&String> =
        images.iter().filter(|i| i.disabled.is_none()).flat_map(|i| &i.secrets).collect();
    for (name, env, file) in secrets.iter().filter(|(n, _, _)| used.contains(&n)) {
        match (env, file) {
            (_, Some(file)) => doc.add_secret(name, None, Some(file)),
            (env, None) => doc.add_secret(name, Some(env.as_deref().unwrap_or(name)), None),
        };
    }
    doc
}

fn kdl(images: &[Image], w: &Written<'_>) -> (String, Vec<(usize, std::ops::Range<usize>)>) {
    // The images first (their spans are moved once the head is known).
    let mut body = String::new();
    let mut spans = Vec::new();
    for (index, image) in images.iter().enumerate() {
        for note in &image.notes {
            comment(&mut body, Syntax::Kdl, "", &format!("{}: {note}", shown(&image.name)));
        }
        if let Some(why) = &image.disabled {
            comment(&mut body, Syntax::Kdl, "", &format!("{}: {why}", shown(&image.name)));
            body.push_str("/-");
        }
        let start = body.len();
        let (text, _) = unmark(draft(image).print(Syntax::Kdl).trim_end_matches('\n'), w.scope);
        body.push_str(&text);
        spans.push((index, start..body.len()));
        body.push_str("\n\n");
    }
    let (_, used) = unmark(
        &images
            .iter()
            .filter(|i| i.disabled.is_none())
            .map(|i| draft(i).print(Syntax::Kdl))
            .collect::<String>(),
        w.scope,
    );
    let mut out = String::new();
    comment(&mut out, Syntax::Kdl, "", HEADER);
    out.push_str("// registry \"registry.example.com/team\"\n");
    out.push_str(&hephy_dsl::print(&settings(images, w.secrets, &used), Syntax::Kdl));
    out.push('\n');
    let head = out.len();
    out.push_str(&body);
    let spans = spans.into_iter().map(|(i, r)| (i, r.start + head..r.end + head)).collect();
    for group in w.groups.resolve(images) {
        for note in &group.notes {
            comment(&mut out, Syntax::Kdl, "", &format!("group {}: {note}", shown(&group.name)));
        }
        if let Some(why) = &group.disabled {
            comment(&mut out, Syntax::Kdl, "", &format!("group {}: {why}", shown(&group.name)));
            out.push_str("/-");
        }
        let mut doc = Document::default();
        doc.add_group(&group.name, &group.members);
        out.push_str(&hephy_dsl::print(&doc, Syntax::Kdl));
        out.push('\n');
    }
    (out, spans)
}

fn yaml(images: &[Image], w: &Written<'_>) -> String {
    let (_, used) = unmark(
        &images
            .iter()
            .filter(|i| i.disabled.is_none())
            .map(|i| draft(i).print(Syntax::Yaml))
            .collect::<String>(),
        w.scope,
    );
    let mut out = String::new();
    comment(&mut out, Syntax::Yaml, "", HEADER);
    out.push_str("# registry: registry.example.com/team\n");
    out.push_str(&hephy_dsl::print(&settings(images, w.secrets, &used), Syntax::Yaml));
    out.push_str("\nimages:\n");
    for image in images {
        for note in &image.notes {
            comment(&mut out, Syntax::Yaml, "  ", &format!("{}: {note}", shown(&image.name)));
        }
        let (body, _) = unmark(&draft(image).print(Syntax::Yaml), w.scope);
        match &image.disabled {
            Some(why) => {
                comment(&mut out, Syntax::Yaml, "  ", &format!("{}: {why}", shown(&image.name)));
                comment(&mut out, Syntax::Yaml, "  ", &body);
            }
            None => {
                for line in body.lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
    }
    let groups = w.groups.resolve(images);
    if !groups.is_empty() {
        out.push_str("\ngroups:\n");
    }
    for group in groups {
        for note in &group.notes {
            comment(&mut out, Syntax::Yaml, "  ", &format!("group {}: {note}", shown(&group.name)));
        }
        let members: Vec<String> = group.members.iter().map(|m| yaml_scalar(m)).collect();
        let line = format!("{}: [{}]", yaml_scalar(&group.name), members.join(", "));
        match &group.disabled {
            Some(why) => {
                comment(&mut out, Syntax::Yaml, "  ", &format!("group {}: {why}", shown(&group.name)));
                comment(&mut out, Syntax::Yaml, "  ", &line);
            }
            None => {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

/// bake's groups, as declared, and the targets each `matrix` target's label stands for.
struct Groups {
    declared: Vec<(String, Vec<String>)>,
    matrices: BTreeMap<String, Vec<String>>,
    /// The targets left out, with why.
    left_out: BTreeMap<String, String>,
}

/// A group as written into the graph.
struct GroupOut {
    name: String,
    /// Images (that import enabled) and other groups.
    members: Vec<String>,
    /// What was left out of it, and why.
    notes: Vec<String>,
    /// Why the whole group is written commented out.
    disabled: Option<String>,
}

impl Groups {
    /// Each bake group → a graph group over the images that import enabled: a matrix target's
    /// label stands for its targets; members that are not imported images are left out with
    /// a note, and so is a nested group that would contain the group itself.
    fn resolve(&self, images: &[Image]) -> Vec<GroupOut> {
        let image = |name: &str| images.iter().find(|i| i.name == name);
        let clashes = |name: &str| image(name).is_some();
        let mut out: Vec<GroupOut> = Vec::new();
        for (name, declared) in &self.declared {
            let mut group =
                GroupOut { name: name.clone(), members: Vec::new(), notes: Vec::new(), disabled: None };
            let add = |member: &str, group: &mut GroupOut| {
                if !group.members.iter().any(|m| m == member) {
                    group.members.push(member.to_owned());
                }
            };
            for member in declared {
                let expanded: Vec<&str> = match self.matrices.get(member) {
                    Some(names) if image(member).is_none() => names.iter().map(String::as_str).collect(),
                    _ => vec![member.as_str()],
                };
                for m in expanded {
                    match image(m) {
                        Some(i) if i.disabled.is_none() => add(m, &mut group),
                        Some(_) => {
                            group.notes.push(format!("`{}` is imported commented out: left out", shown(m)))
                        }
                        None if self.declared.iter().any(|(g, _)| g == m) && !clashes(m) => {
                            if self.reaches(m, name) {
                                group
                                    .notes
                                    .push(format!("`{}` contains this group: left out (a cycle)", shown(m)));
                            } else {
                                add(m, &mut group);
                            }
                        }
                        None if m.starts_with('_') => {
                            group.notes.push(format!("`{}` is only inherited from: left out", shown(m)));
                        }
                        None => group.notes.push(match self.left_out.get(m) {
                            Some(why) => format!("target `{}` is left out ({why}): left out", shown(m)),
                            None => format!("`{}` names no target or group of the file: left out", shown(m)),
                        }),
                    }
                }
            }
            if clashes(name) {
                group.disabled = Some("a target has the same name, and hephy's group names are distinct from images': imported commented out".to_owned());
            } else if group.members.is_empty() {
                group.disabled = Some("names no image that imports: imported commented out".to_owned());
            }
            out.push(group);
        }
        // A group naming only a group written commented out would name an unknown group.
        loop {
            // (A name that is also an image's means the image.)
            let off: Vec<String> = out
                .iter()
                .filter(|g| g.disabled.is_some() && !clashes(&g.name))
                .map(|g| g.name.clone())
                .collect();
            let mut changed = false;
            for group in out.iter_mut().filter(|g| g.disabled.is_none()) {
                let before = group.members.len();
                group.members.retain(|m| !off.contains(m));
                if group.members.len() != before {
                    changed = true;
                    group.notes.push("a group it names is imported commented out: left out".to_owned());
                    if group.members.is_empty() {
                        group.disabled =
                            Some("names no image that imports: imported commented out".to_owned());
                    }
                }
            }
            if !changed {
                return out;
            }
        }
    }

    /// Whether group `from` contains group `to`, through its members (a cycle when `to` names
    /// `from`).
    fn reaches(&self, from: &str, to: &str) -> bool {
        let mut stack = vec![from];
        let mut seen: Vec<&str> = Vec::new();
        while let Some(g) = stack.pop() {
            if g == to {
                return true;
            }
            if seen.contains(&g) {
                continue;
            }
            seen.push(g);
            if let Some((_, members)) = self.declared.iter().find(|(n, _)| n == g) {
                stack.extend(members.iter().map(String::as_str));
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcl::eval::Evaluate as _;

    /// Bake's JSON form becomes HCL that reads back as the same strings, whatever they hold,
    /// and a key that is no identifier is refused rather than written as other HCL.
    #[test]
    fn json_strings_and_names_are_written_as_hcl() {
        let value: String = (0u32..0xa0).chain([0x2028, 0x2029]).filter_map(char::from_u32).collect();
        let json = serde_json::json!({"target": {value.clone(): {"context": value, "args": {value.clone(): value}}}});
        let hcl = json_to_hcl(&json.to_string()).expect("HCL");
        let body: Body = hcl::parse(&hcl).expect("HCL that parses");
        let block = body.blocks().next().expect("a block");
        assert_eq!(block.labels.first().map(label), Some(value.clone()));
        let ctx = Context::new();
        let attr = |key: &str| {
            let found = block.body.attributes().find(|a| a.key.as_str() == key).expect("the attribute");
            found.expr.evaluate(&ctx).expect("a value")
        };
        assert_eq!(attr("context"), Value::String(value.clone()));
        let Value::Object(args) = attr("args") else { panic!("an object") };
        assert_eq!(args.get(&value), Some(&Value::String(value.clone())));
        let injected = serde_json::json!({"target": {"app": {"tags = [\"x\"]\n  context": "app"}}});
        assert!(json_to_hcl(&injected.to_string()).is_err());
    }

    /// Each way a file is no bake file is its own error, with the data it names, and says
    /// what it said when these were text.
    #[test]
    fn files_that_are_no_bake_file_say_why() {
        let err = json_to_hcl(r#"{"target": {"app": {"a b": 1}}}"#).unwrap_err();
        assert!(matches!(&err, BakeError::NotAName { name } if name == "a b"), "{err:?}");
        assert_eq!(
            err.to_string(),
            "`a b` is not a bake block type or attribute name (letters, digits, `_`, `-`)"
        );
        let err = json_to_hcl("[1]").unwrap_err();
        assert!(matches!(err, BakeError::NotAnObject));
        assert_eq!(err.to_string(), "the JSON bake file is not an object");
        let err = json_to_hcl("{").unwrap_err();
        assert!(matches!(err, BakeError::NotJson(_)));
        assert!(err.to_string().starts_with("not JSON: "), "{err}");
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("docker-bake.hcl");
        let err = import_bake(&missing, Syntax::Kdl, Env::Kept, &|_| None).unwrap_err();
        assert!(matches!(&err, BakeError::Unreadable { path, .. } if *path == missing), "{err:?}");
        assert!(err.to_string().starts_with(&format!("cannot read `{}`: ", missing.display())), "{err}");
        std::fs::write(&missing, "target {").expect("write");
        let err = import_bake(&missing, Syntax::Kdl, Env::Kept, &|_| None).unwrap_err();
        assert!(matches!(&err, BakeError::NotBake { path, .. } if *path == missing), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!("`{}` is not a bake file: ", missing.display())),
            "{err}"
        );
        assert_eq!(err.help(), "name a `docker buildx bake` file (HCL or JSON)");
    }
}
