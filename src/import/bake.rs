//! `hephy import --from bake`: a `docker buildx bake` file (HCL, or its JSON form) → the
//! equivalent graph file.
//!
//! Evaluates the file with `hcl-rs` (variables with defaults and environment overrides, a few
//! of bake's functions, `matrix`, `inherits`), then maps each target to an image, each
//! `target:` context to a named-context dependency and each group to a `group`. What has no
//! equivalent is named in a warning (and a comment above the image), never dropped silently;
//! like the kaniko-builder import, every image the analyzer would reject is written commented
//! out with its reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use hcl::eval::Context;
use hcl::{Block, BlockLabel, Body, Value};

use crate::import::bake_functions::{self, UserFunctions};
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
    notes: Vec<String>,
    disabled: Option<String>,
}

/// A secret of the graph: name, and `env` or `file`.
type Secret = (String, Option<String>, Option<String>);

/// Why a bake file was not imported.
#[derive(Debug)]
pub(crate) enum BakeError {
    /// The file cannot be read, is not a bake file, or has nothing that imports.
    Unreadable(String),
    /// A matrix or a chain of `inherits` of `file` beyond hephy's limits (SPEC, "Limits").
    Limit { file: String, exceeded: Exceeded },
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

impl std::fmt::Display for BakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BakeError::Unreadable(message) => f.write_str(message),
            BakeError::Limit { file, exceeded } => write!(f, "`{file}`: {exceeded}"),
        }
    }
}

impl std::error::Error for BakeError {}

impl From<String> for BakeError {
    fn from(message: String) -> BakeError {
        BakeError::Unreadable(message)
    }
}

impl BakeError {
    /// What to do about it.
    pub(crate) fn help(&self) -> &'static str {
        match self {
            BakeError::Unreadable(_) => "name a `docker buildx bake` file (HCL or JSON)",
            BakeError::Limit { .. } => {
                "hephy imports graphs within its limits (SPEC, \"Limits\"): shrink the construct named"
            }
        }
    }
}

/// The longest target name written into the graph, even commented out: names past it are left
/// out with a warning.
const KEPT_NAME: usize = 1024;

/// Reads the bake file at `path` (`.json`: bake's JSON form) and writes its graph in `syntax`,
/// to be saved beside it. `env` reads the variables' overrides (the process environment).
pub(crate) fn import_bake(
    path: &Path,
    syntax: Syntax,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Import, BakeError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let hcl_text = if is_json { json_to_hcl(&text)? } else { text };
    let body: Body =
        hcl::parse(&hcl_text).map_err(|e| format!("`{}` is not a bake file: {e}", path.display()))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut warnings = Vec::new();
    let (functions, unusable) = UserFunctions::from_body(&body);
    warnings.extend(unusable.iter().map(ToString::to_string));
    let ctx = variables(&body, env, &functions, &mut warnings);
    let mut targets: Vec<Target> = Vec::new();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut matrices: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut copies = 0usize;
    for block in body.blocks() {
        let label = block.labels.first().map(label).unwrap_or_default();
        match block.identifier.as_str() {
            "target" => {
                let expanded = expand(block, &label, &ctx, &functions, &mut copies, &mut warnings)
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
                    targets.push(target);
                }
            }
            "group" => {
                let members = block
                    .body
                    .attributes()
                    .find(|a| a.key.as_str() == "targets")
                    .and_then(|a| bake_functions::evaluate(&a.expr, &ctx, &functions).ok())
                    .map(|v| strings(&v))
                    .unwrap_or_default();
                // Blocks of one name are one group, as in bake.
                match groups.iter_mut().find(|(name, _)| *name == label) {
                    Some((_, all)) => all.extend(members),
                    None => groups.push((label, members)),
                }
            }
            "variable" | "function" => {}
            other => {
                warnings.push(format!("`{}` blocks have no equivalent in hephy: left out", shown(other)))
            }
        }
    }
    let resolved = inherit(&targets, &mut warnings)
        .map_err(|exceeded| BakeError::Limit { file: path.display().to_string(), exceeded })?;
    let names: Vec<String> = resolved.iter().map(|t| t.name.clone()).collect();
    let mut secrets: Vec<Secret> = Vec::new();
    let mut images: Vec<Image> = resolved
        .iter()
        .filter(|t| !t.name.starts_with('_'))
        .map(|t| image(dir, t, &names, &mut secrets, &mut warnings))
        .collect();
    // A target only inherited from (bake's convention `_common`) is no image.
    for t in resolved.iter().filter(|t| t.name.starts_with('_')) {
        warnings.push(format!(
            "target `{}`: only inherited from (its name starts with `_`): no image",
            shown(&t.name)
        ));
    }
    if images.is_empty() {
        return Err(format!("`{}` has no target to import", path.display()).into());
    }
    let groups = Groups { declared: groups, matrices };
    crate::import::settle(dir, &mut images, |images| kdl(images, &secrets, &groups), &mut warnings);
    if images.iter().all(|i| i.disabled.is_some()) {
        return Err(format!("no target of `{}` imports into an image that builds", path.display()).into());
    }
    for group in groups.resolve(&images) {
        for note in group.notes.iter().chain(&group.disabled) {
            warnings.push(format!("group `{}`: {note}", shown(&group.name)));
        }
    }
    let text = match syntax {
        Syntax::Kdl => kdl(&images, &secrets, &groups).0,
        Syntax::Yaml => yaml(&images, &secrets, &groups),
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
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = String::new();
    let Some(top) = json.as_object() else {
        return Err("the JSON bake file is not an object".to_owned().into());
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
    if identifier {
        Ok(name)
    } else {
        Err(BakeError::Unreadable(format!(
            "`{}` is not a bake block type or attribute name (letters, digits, `_`, `-`)",
            shown(name)
        )))
    }
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

/// The evaluation context: bake's functions hephy knows, and every variable (its default,
/// overridden by the environment variable of its name).
fn variables(
    body: &Body,
    env: &dyn Fn(&str) -> Option<String>,
    functions: &UserFunctions,
    warnings: &mut Vec<String>,
) -> Context<'static> {
    let mut ctx = Context::new();
    bake_functions::declare(&mut ctx);
    let declared: Vec<(String, Option<&hcl::Expression>)> = body
        .blocks()
        .filter(|b| b.identifier.as_str() == "variable")
        .map(|b| {
            let name = b.labels.first().map(label).unwrap_or_default();
            let default = b.body.attributes().find(|a| a.key.as_str() == "default").map(|a| &a.expr);
            (name, default)
        })
        .collect();
    // Defaults may use other variables: each is evaluated after those it names, found by
    // evaluating it (an undefined variable that is declared is evaluated first, on a stack of
    // its own), so a chain of variables takes time linear in its length.
    let index: HashMap<&str, usize> =
        declared.iter().enumerate().rev().map(|(i, (name, _))| (name.as_str(), i)).collect();
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    // 0: not yet looked at; 1: waiting on the stack; 2: evaluated (or given up on).
    let mut state = vec![0u8; declared.len()];
    for first in 0..declared.len() {
        if state[first] != 0 {
            continue;
        }
        state[first] = 1;
        let mut stack = vec![first];
        while let Some(&i) = stack.last() {
            let (name, default) = &declared[i];
            let value = match default {
                None => Ok(Value::String(String::new())),
                Some(expr) => bake_functions::evaluate(expr, &ctx, functions),
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
            let value = match env(name) {
                Some(text) => match &value {
                    Value::Bool(_) => text.parse::<bool>().map(Value::Bool).unwrap_or(Value::String(text)),
                    Value::Number(_) => {
                        text.parse::<i64>().map(|n| Value::Number(n.into())).unwrap_or(Value::String(text))
                    }
                    _ => Value::String(text),
                },
                None => value,
            };
            ctx.declare_var(name.clone(), value.clone());
            values.insert(name.clone(), value);
        }
    }
    for (name, _) in declared.iter().filter(|(n, _)| !values.contains_key(n)) {
        warnings.push(format!("variable `{}`: its default cannot be evaluated: left unset", shown(name)));
    }
    ctx
}

/// A value as a list of strings (one string is a list of one).
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        Value::Null => Vec::new(),
        other => scalar(other).into_iter().collect(),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One target block → its targets: one, or one per `matrix` combination.
/// `copies` counts the targets matrices have made so far; a matrix that would make more than
/// [`MAX_MATRIX_COPIES`] in all is an error.
fn expand(
    block: &Block,
    label: &str,
    ctx: &Context<'_>,
    functions: &UserFunctions,
    copies: &mut usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<Target>, Exceeded> {
    let attr = |key: &str| block.body.attributes().find(|a| a.key.as_str() == key).map(|a| &a.expr);
    let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    if let Some(matrix) = attr("matrix") {
        match bake_functions::evaluate(matrix, ctx, functions) {
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
                warnings
                    .push(format!("target `{}`: its `matrix` cannot be evaluated: left out", shown(label)));
                return Ok(Vec::new());
            }
        }
    }
    let mut out = Vec::new();
    // One copy of the context, its matrix values set anew for each combination.
    let mut ctx = ctx.clone();
    for combo in combos {
        for (k, v) in &combo {
            ctx.declare_var(k.clone(), v.clone());
        }
        let name = match attr("name") {
            Some(expr) => match bake_functions::evaluate(expr, &ctx, functions) {
                Ok(Value::String(n)) => n,
                _ => {
                    warnings
                        .push(format!("target `{}`: its `name` cannot be evaluated: left out", shown(label)));
                    continue;
                }
            },
            None if combo.is_empty() => label.to_owned(),
            None => {
                let parts: Vec<String> = combo.iter().filter_map(|(_, v)| scalar(v)).collect();
                format!("{label}-{}", parts.join("-"))
            }
        };
        let mut target = Target { name: name.clone(), ..Target::default() };
        let mut broken = false;
        for a in block.body.attributes() {
            let key = a.key.as_str();
            if matches!(key, "matrix" | "name") {
                continue;
            }
            match bake_functions::evaluate(&a.expr, &ctx, functions) {
                Ok(value) if key == "inherits" => target.inherits = strings(&value),
                Ok(value) => {
                    target.attrs.insert(key.to_owned(), value);
                }
                Err(e) => {
                    warnings.push(format!(
                        "target `{}`: `{}` cannot be evaluated ({}): target left out",
                        shown(&name),
                        shown(key),
                        shown(&e.to_string())
                    ));
                    broken = true;
                }
            }
        }
        if !broken {
            out.push(target);
        }
    }
    Ok(out)
}

/// `inherits`: the parents' attributes, overridden by the child's; maps (`args`, `labels`,
/// `contexts`, …) are merged key by key, as bake merges them. Parents are resolved first, each
/// once, on a stack of its own (never the thread's); a chain of `inherits` deeper than
/// [`MAX_TEMPLATE_DEPTH`] is an error.
fn inherit(targets: &[Target], warnings: &mut Vec<String>) -> Result<Vec<Target>, Exceeded> {
    fn merge(into: &mut BTreeMap<String, Value>, key: String, value: Value) {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
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
                    None => warnings.push(format!(
                        "target `{}`: inherits unknown `{}`: left out",
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
    Ok(targets
        .iter()
        .zip(done)
        .map(|(t, attrs)| Target {
            name: t.name.clone(),
            attrs: attrs.map(|(a, _)| a).unwrap_or_default(),
            inherits: Vec::new(),
        })
        .collect())
}

/// Whether the Dockerfile at `rel` below `dir` says `FROM --platform=$BUILDPLATFORM NAME`. It
/// is read only below `dir` (never through a link out of it, never a FIFO or a device) and at
/// most 16 MiB of it.
fn from_build_platform(dir: &Path, rel: &Path, name: &str) -> bool {
    let Ok(file) = hephy_oci::open::open_below(dir, rel) else { return false };
    let mut text = String::new();
    if std::io::Read::read_to_string(&mut std::io::Read::take(file, 16 << 20), &mut text).is_err() {
        return false;
    }
    let Ok(dockerfile) = hephy_dockerfile::parse(&text) else { return false };
    dockerfile.instructions.iter().any(|i| match &i.command {
        hephy_dockerfile::Command::From { image, platform: Some(platform), .. } => {
            image.text == name && platform.text.contains("BUILDPLATFORM")
        }
        _ => false,
    })
}

const NO_EQUIVALENT: &[(&str, &str)] = &[
    ("cache-from", "hephy's cache is its state and the registry (by key)"),
    ("cache-to", "hephy's cache is its state and the registry (by key)"),
    ("output", "hephy pushes each build to its registry and keeps an OCI layout"),
    ("attest", "hephy writes no attestations yet"),
    ("labels", "the graph language has no labels yet: put them in the Dockerfile (`LABEL`)"),
    ("annotations", "the graph language has no annotations yet"),
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
    ("dockerfile-inline", "hephy reads Dockerfiles from the context"),
];

fn image(
    dir: &Path,
    t: &Target,
    names: &[String],
    secrets: &mut Vec<Secret>,
    warnings: &mut Vec<String>,
) -> Image {
    let mut image = Image { name: t.name.clone(), context: ".".to_owned(), ..Image::default() };
    let mut warn = |image: &mut Image, note: String| {
        warnings.push(format!("target `{}`: {note}", shown(&t.name)));
        image.notes.push(note);
    };
    for (key, value) in &t.attrs {
        match key.as_str() {
            "context" => {
                let c = scalar(value).unwrap_or_default();
                if c.contains("://") || c.ends_with(".git") || c.starts_with("git@") {
                    let (url, reference) = c.split_once('#').unwrap_or((&c, "HEAD"));
                    let (reference, sub) = reference.split_once(':').unwrap_or((reference, "."));
                    let reference = if reference.is_empty() { "HEAD" } else { reference };
                    image.git = Some((url.to_owned(), reference.to_owned()));
                    image.context = if sub.is_empty() { ".".to_owned() } else { sub.to_owned() };
                } else {
                    let c = c.trim_start_matches("./").trim_end_matches('/');
                    image.context = if c.is_empty() { ".".to_owned() } else { c.to_owned() };
                }
            }
            "dockerfile" => image.dockerfile = scalar(value).filter(|d| d != "Dockerfile"),
            "target" => image.target = scalar(value).filter(|s| !s.is_empty()),
            "args" => {
                if let Value::Object(args) = value {
                    for (k, v) in args {
                        match scalar(v) {
                            Some(v) => image.args.push((k.clone(), v)),
                            None => {
                                warn(&mut image, format!("build arg `{}` has no value: left out", shown(k)))
                            }
                        }
                    }
                }
            }
            "platforms" => image.platforms = strings(value),
            "tags" => {
                let mut repositories: Vec<String> = Vec::new();
                for tag in strings(value) {
                    // `registry/repo:tag` → the tag; the repository is hephy's naming's.
                    let last = tag.rsplit('/').next().unwrap_or(&tag);
                    match last.split_once(':') {
                        Some((_, t)) => {
                            let repository = tag[..tag.len() - t.len() - 1].to_owned();
                            if !image.tags.iter().any(|x| x == t) {
                                image.tags.push(t.to_owned());
                            }
                            if !repositories.contains(&repository) {
                                repositories.push(repository);
                            }
                        }
                        None => warn(
                            &mut image,
                            format!("tag `{}` names no tag (`latest` implied): left out", shown(&tag)),
                        ),
                    }
                }
                if !repositories.is_empty() {
                    let tags: Vec<String> = image.tags.iter().map(|t| format!("`{}`", shown(t))).collect();
                    let repos: Vec<String> = repositories.iter().map(|r| format!("`{}`", shown(r))).collect();
                    warn(
                        &mut image,
                        format!(
                            "tags kept as {}; their repository ({}) is left to the graph's `registry` and `naming`",
                            tags.join(", "),
                            repos.join(", ")
                        ),
                    );
                }
            }
            "contexts" => {
                if let Value::Object(contexts) = value {
                    for (name, source) in contexts {
                        let source = scalar(source).unwrap_or_default();
                        match source.strip_prefix("target:") {
                            Some(dep) if names.iter().any(|n| n == dep) => {
                                // Whether it is `FROM --platform=$BUILDPLATFORM`: read below, once
                                // `context` and `dockerfile` are known.
                                image.from.push(Edge {
                                    dep: dep.to_owned(),
                                    context: name.clone(),
                                    build_platform: false,
                                });
                            }
                            Some(dep) => warn(
                                &mut image,
                                format!(
                                    "context `{}` = `target:{}` names no target: left out",
                                    shown(name),
                                    shown(dep)
                                ),
                            ),
                            None => warn(
                                &mut image,
                                format!(
                                    "context `{}` = `{}` has no equivalent (only `target:` contexts do): left out",
                                    shown(name),
                                    shown(&source)
                                ),
                            ),
                        }
                    }
                }
            }
            "secret" => {
                for spec in strings(value) {
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
                Some((_, why)) => warn(
                    &mut image,
                    format!("`{other}` = {} has no equivalent ({why}): left out", show(value)),
                ),
                None => warn(&mut image, format!("unknown attribute `{}`: left out", shown(other))),
            },
        }
    }
    image.args.sort();
    // The contexts' `FROM --platform=$BUILDPLATFORM` is read from the final Dockerfile.
    if image.git.is_none() {
        let dockerfile = Path::new(&image.context).join(image.dockerfile.as_deref().unwrap_or("Dockerfile"));
        for edge in &mut image.from {
            edge.build_platform = from_build_platform(dir, &dockerfile, &edge.context);
        }
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
    for edge in &image.from {
        let mut from = FromDraft::new().with_context(&edge.context);
        if edge.build_platform {
            from = from.for_build_platform();
        }
        d = d.with_from(&edge.dep, from);
    }
    d
}

/// The graph's settings and the secrets its enabled images use, as the printer writes them.
fn settings(images: &[Image], secrets: &[Secret]) -> Document {
    let mut doc = Document::default();
    doc.set_builder("buildah");
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

fn kdl(
    images: &[Image],
    secrets: &[Secret],
    groups: &Groups,
) -> (String, Vec<(usize, std::ops::Range<usize>)>) {
    let mut out = String::new();
    let mut spans = Vec::new();
    comment(&mut out, Syntax::Kdl, "", HEADER);
    out.push_str("// registry \"registry.example.com/team\"\n");
    out.push_str(&hephy_dsl::print(&settings(images, secrets), Syntax::Kdl));
    out.push('\n');
    for (index, image) in images.iter().enumerate() {
        for note in &image.notes {
            comment(&mut out, Syntax::Kdl, "", &format!("{}: {note}", shown(&image.name)));
        }
        if let Some(why) = &image.disabled {
            comment(&mut out, Syntax::Kdl, "", &format!("{}: {why}", shown(&image.name)));
            out.push_str("/-");
        }
        let start = out.len();
        out.push_str(draft(image).print(Syntax::Kdl).trim_end_matches('\n'));
        spans.push((index, start..out.len()));
        out.push_str("\n\n");
    }
    for group in groups.resolve(images) {
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

fn yaml(images: &[Image], secrets: &[Secret], groups: &Groups) -> String {
    let mut out = String::new();
    comment(&mut out, Syntax::Yaml, "", HEADER);
    out.push_str("# registry: registry.example.com/team\n");
    out.push_str(&hephy_dsl::print(&settings(images, secrets), Syntax::Yaml));
    out.push_str("\nimages:\n");
    for image in images {
        for note in &image.notes {
            comment(&mut out, Syntax::Yaml, "  ", &format!("{}: {note}", shown(&image.name)));
        }
        let body = draft(image).print(Syntax::Yaml);
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
    let groups = groups.resolve(images);
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
                        None => {
                            group.notes.push(format!("`{}` is no target that imports: left out", shown(m)))
                        }
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
}
