//! Expansion: variables, templates (`inherits`) and matrices, on the [`Document`], before
//! analysis.
//!
//! Owns the meaning of `variables`, `template`, `inherits`, `matrix`, `${NAME}` and `--set`:
//! after [`expand`] the document holds plain images and tasks, as if written out by hand, each
//! string keeping the span of the text that produced it, so the analyzer checks (and points at)
//! expanded images exactly as it does hand-written ones. It knows nothing of paths, platforms or
//! dependencies beyond their names. The CLI supplies the overrides ([`Overrides`]): this crate
//! reads no environment itself.

use std::collections::{HashMap, HashSet};

use miette::SourceSpan;
use serde::Serialize;

use crate::analyze::IMAGE_KEY_ROWS;
use crate::diagnostic::{Code, Problem, Problems, Sink, did_you_mean};
use crate::document::{Document, ImageDraft, MatrixDraft, Tally, TaskDraft, Text};
use crate::limits::{
    MAX_EXPANDED_STRING, MAX_EXPANDED_STRINGS, MAX_EXPANDED_TEXT, MAX_INHERITS, MAX_MATRIX_COPIES,
    MAX_TEMPLATE_DEPTH,
};
use crate::shape::{Dependencies, Shape};
use crate::source::{SourceFile, Spanned};

/// The prefix of the environment variables that set graph variables (`HEPHY_VAR_VERSION`).
pub const ENV_PREFIX: &str = "HEPHY_VAR_";

/// The image fields `--set image.NAME.FIELD=VALUE` may set (and `args.ARG`), in the order its
/// usage lists them: the spellings the image key table (`image_keys!`) marks `set`, each at its
/// position.
pub const SETTABLE: &[&str] = &settable();

/// How many spellings of the image key table `--set` sets.
const SETTABLE_COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < IMAGE_KEY_ROWS.len() {
        if IMAGE_KEY_ROWS[i].set.is_some() {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The spellings `--set` sets at their positions, which must be `0..N` each once (checked when
/// compiling).
const fn settable() -> [&'static str; SETTABLE_COUNT] {
    let mut out = [""; SETTABLE_COUNT];
    let mut i = 0;
    while i < IMAGE_KEY_ROWS.len() {
        if let Some(at) = IMAGE_KEY_ROWS[i].set {
            assert!(
                at < SETTABLE_COUNT && out[at].is_empty(),
                "a `--set` position out of range or taken twice"
            );
            out[at] = IMAGE_KEY_ROWS[i].key;
        }
        i += 1;
    }
    out
}

/// Names and values as given on the command line or in the environment, in order.
pub type Given = Vec<(String, String)>;

/// What the command line and the environment say on top of the graph file: `--set` and
/// `HEPHY_VAR_*`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--set NAME=VALUE`, in order (a later one wins).
    variables: Vec<(String, String)>,
    /// `HEPHY_VAR_NAME=VALUE`, the prefix removed.
    environment: Vec<(String, String)>,
    /// `--set image.NAME.FIELD=VALUE`, in order.
    images: Vec<ImageSet>,
}

#[derive(Debug, Clone)]
struct ImageSet {
    /// The image's (expanded) name, or `*`.
    image: String,
    /// A member of [`SETTABLE`], or `args.ARG`.
    field: String,
    value: String,
}

impl Overrides {
    /// Reads `--set` arguments and the environment's `HEPHY_VAR_*` variables (`environment`
    /// yields every variable; the others are ignored).
    pub fn new(
        set: &[String],
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Overrides, Problems> {
        let mut overrides = Overrides::default();
        for (name, value) in environment {
            if let Some(var) = name.strip_prefix(ENV_PREFIX) {
                overrides.environment.push((var.to_owned(), value));
            }
        }
        for arg in set {
            let usage = |why: String| {
                Problems::single(
                    "--set",
                    Problem::new(Code::InvalidValue, why).help(format!(
                        "write `--set NAME=VALUE` for a variable, or `--set image.NAME.FIELD=VALUE` with FIELD one of {}, `args.ARG`",
                        SETTABLE.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                    )),
                )
            };
            let Some((key, value)) = arg.split_once('=') else {
                return Err(usage(format!("`--set {arg}` has no `=`")));
            };
            if let Some(rest) = key.strip_prefix("image.") {
                let Some((image, field)) = rest.split_once('.') else {
                    return Err(usage(format!("`--set {key}=…` names no field")));
                };
                let known =
                    SETTABLE.contains(&field) || field.strip_prefix("args.").is_some_and(is_variable_name);
                if !known || image.is_empty() {
                    let hint = did_you_mean(field, SETTABLE.iter().copied())
                        .map_or(String::new(), |d| format!(" ({d})"));
                    return Err(usage(format!("`{field}` is not a setting `--set` can change{hint}")));
                }
                overrides.images.push(ImageSet {
                    image: image.to_owned(),
                    field: field.to_owned(),
                    value: value.to_owned(),
                });
            } else if is_variable_name(key) {
                overrides.variables.push((key.to_owned(), value.to_owned()));
            } else {
                return Err(usage(format!("`{key}` is neither a variable name nor `image.NAME.FIELD`")));
            }
        }
        Ok(overrides)
    }

    /// What was given on top of the graph file, for a build's provenance: each `--set` in order
    /// (`NAME` or `image.NAME.FIELD`, and its value), then each `HEPHY_VAR_*` (its `NAME`).
    pub fn given(&self) -> (Given, Given) {
        let mut set = self.variables.clone();
        set.extend(self.images.iter().map(|i| (format!("image.{}.{}", i.image, i.field), i.value.clone())));
        let mut environment = self.environment.clone();
        environment.sort();
        (set, environment)
    }

    /// Nothing overridden: the graph means what its file says.
    pub fn is_empty(&self) -> bool {
        self.variables.is_empty() && self.environment.is_empty() && self.images.is_empty()
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableSource {
    /// The default in the graph file.
    Default,
    /// `HEPHY_VAR_NAME`.
    Environment,
    /// `--set NAME=VALUE`.
    Set,
    /// A value of the image's matrix.
    Matrix,
}

/// Where a setting of an expanded image came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Origin {
    /// Written in the image itself.
    Image,
    /// Inherited from this template.
    Template(String),
    /// `--set image.NAME.FIELD=VALUE`.
    Set,
}

/// A variable that went into a setting.
#[derive(Debug, Clone, Serialize)]
pub struct VariableUse {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Where the value came from.
    pub source: VariableSource,
}

/// One setting of an expanded image: what `hephy show` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// The setting (`context`, `tags`, `args.VERSION`, `from curl`…).
    pub field: String,
    /// Its value after expansion.
    pub value: String,
    /// As written, before variables were filled in (the same as `value` when none were).
    pub written: String,
    /// Where it came from.
    pub origin: Origin,
    /// The line (1-based) of the graph file it was written on; none for `--set`.
    pub line: Option<usize>,
    /// The variables (and matrix values) it used.
    pub variables: Vec<VariableUse>,
}

/// An image after expansion, setting by setting.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedImage {
    /// Its name.
    pub name: String,
    /// The line its definition starts on.
    pub line: usize,
    /// Its templates, nearest last, as inherited (transitively).
    pub templates: Vec<String>,
    /// The matrix values it was made with (none for an image without a matrix).
    pub matrix: Vec<(String, String)>,
    /// Every setting it has.
    pub settings: Vec<Setting>,
}

/// Per field of a merged image, where its value came from.
type Origins = HashMap<String, Origin>;

/// A variable's value and its source.
type Variables = HashMap<String, (String, VariableSource)>;

/// Expands `doc` in place: variables filled in, templates merged into images, matrices
/// multiplied out, `--set image.…` applied. With `record`, the resolved images are returned.
pub(crate) fn expand(
    doc: &mut Document,
    source: &SourceFile,
    overrides: &Overrides,
    sink: &mut Sink,
    record: bool,
) -> (Vec<ResolvedImage>, Vec<SourceSpan>) {
    if !record && nothing_to_expand(doc, source, overrides) {
        return (Vec::new(), Vec::new());
    }
    expand_all(doc, source, overrides, sink, record)
}

/// [`expand`] without looking first whether there is anything to expand.
fn expand_all(
    doc: &mut Document,
    source: &SourceFile,
    overrides: &Overrides,
    sink: &mut Sink,
    record: bool,
) -> (Vec<ResolvedImage>, Vec<SourceSpan>) {
    let mut expander = Expander {
        source,
        sink,
        reported: HashSet::new(),
        variables: Variables::new(),
        record,
        broken: Vec::new(),
        poisoned: HashSet::new(),
        copies: 0,
        too_many_copies: false,
        strings: 0,
        too_many_strings: false,
        filled: 0,
        too_much_text: false,
    };
    // The images and tasks change: what was tallied of them as read holds no more.
    doc.tally = None;
    expander.variables(doc, overrides);
    let templates = expander.templates(doc);
    let mut resolved = Vec::new();
    let images = std::mem::take(&mut doc.images);
    let mut out = Vec::with_capacity(images.len());
    for mut image in images {
        expander.few_inherits(&mut image);
        // Counted before templates are merged in and copies made: at most what the image and
        // its templates hold, times the copies its matrix makes.
        let inherited: usize =
            image.inherits.iter().filter_map(|p| templates.get(&p.value)).map(|t| t.size).sum();
        let copies = image.matrix.as_ref().map_or(1, |m| {
            m.axes.iter().try_fold(1usize, |n, (_, v)| n.checked_mul(v.len())).unwrap_or(usize::MAX)
        });
        // (A matrix that makes too many copies is refused as such, below.)
        if copies <= MAX_MATRIX_COPIES
            && !expander
                .hold(image.count_texts().saturating_add(inherited).saturating_mul(copies), &image.name)
        {
            continue;
        }
        let (mut merged, origins, chain) = expander.inherit(image, &templates);
        merged.inherits.clear();
        let combinations = match merged.matrix.take() {
            None => vec![Vec::new()],
            Some(matrix) => expander.combinations(&matrix, &merged.name),
        };
        let last = combinations.len().saturating_sub(1);
        let mut merged = Some(merged);
        for (i, bindings) in combinations.into_iter().enumerate() {
            let mut copy = if i == last { merged.take() } else { merged.clone() }
                .unwrap_or_else(|| ImageDraft::new(Spanned::new(String::new(), SourceSpan::from(0..0))));
            let written = record.then(|| copy.clone());
            expander.image_texts(&mut copy, &bindings);
            if let Some(written) = written {
                resolved.push(expander.resolved(&written, &copy, &origins, &chain, &bindings));
            }
            out.push(copy);
        }
    }
    doc.images = out;
    let tasks = std::mem::take(&mut doc.tasks);
    let mut out = Vec::with_capacity(tasks.len());
    for mut task in tasks {
        let copies = task.matrix.as_ref().map_or(1, |m| {
            m.axes.iter().try_fold(1usize, |n, (_, v)| n.checked_mul(v.len())).unwrap_or(usize::MAX)
        });
        if copies <= MAX_MATRIX_COPIES
            && !expander.hold(task.count_texts().saturating_mul(copies), &task.name)
        {
            continue;
        }
        match task.matrix.take() {
            None => {
                expander.task_texts(&mut task, &[]);
                out.push(task);
            }
            Some(matrix) => {
                for bindings in expander.combinations(&matrix, &task.name) {
                    let mut copy = task.clone();
                    expander.task_texts(&mut copy, &bindings);
                    out.push(copy);
                }
            }
        }
    }
    doc.tasks = out;
    scan_top(doc, &mut |t| expander.interpolate(t, &[]));
    expander.set_images(doc, overrides, &mut resolved);
    (resolved, expander.broken)
}

/// Whether expanding `doc` with `overrides` would leave it as it is and say nothing: no
/// variables, templates, `inherits` or matrices, no `--set` (`HEPHY_VAR_*` sets only declared
/// variables), no `$` in any string (so no `${NAME}` to fill in or report, no `$${` to
/// unescape), and no more strings than expansion allows. Such a graph (the usual large one) is
/// not walked again, copied or rebuilt.
///
/// `doc` was read from `source`: a string can hold a `$` only where the file has one, or a
/// backslash (an escape such as KDL's `\u{24}` or YAML's `\x24`), so a file with neither is
/// not walked for one.
fn nothing_to_expand(doc: &mut Document, source: &SourceFile, overrides: &Overrides) -> bool {
    if !doc.variables.is_empty()
        || !doc.templates.is_empty()
        || !overrides.variables.is_empty()
        || !overrides.images.is_empty()
    {
        return false;
    }
    // What the front-end tallied as it read each image and task, or else a walk.
    let tally = doc.tally.unwrap_or_else(|| Tally::of(doc));
    if tally.expandable || tally.strings > MAX_EXPANDED_STRINGS {
        return false;
    }
    if memchr::memchr2(b'$', b'\\', source.text().as_bytes()).is_none() {
        return true;
    }
    let mut dollar = false;
    let mut look = |t: &mut Text| dollar |= t.value.contains('$');
    for image in &mut doc.images {
        image.each_text(&mut look);
    }
    for task in &mut doc.tasks {
        visit_task_mut(task, &mut look);
    }
    scan_top(doc, &mut look);
    !dollar
}

struct Expander<'a> {
    source: &'a SourceFile,
    sink: &'a mut Sink,
    /// Unknown variables already reported, by (offset, name): a template's mistake is said once,
    /// not once per image that inherits it.
    reported: HashSet<(usize, String)>,
    variables: Variables,
    /// Whether [`ResolvedImage`]s are wanted (`hephy show`): origins are tracked only then.
    record: bool,
    /// The strings left with an unknown `${NAME}` in them: what later stages say about them
    /// again is noise.
    broken: Vec<SourceSpan>,
    /// Variables whose default is refused: strings that use them are broken too.
    poisoned: HashSet<String>,
    /// The copies matrices have made so far.
    copies: usize,
    /// Whether a matrix was refused for making too many copies (said once).
    too_many_copies: bool,
    /// The strings expanded templates, images and tasks hold so far (at most).
    strings: usize,
    /// Whether a definition was refused for holding too many (said once).
    too_many_strings: bool,
    /// The bytes `${…}` has filled in so far.
    filled: usize,
    /// Whether a string was refused for growing too large (said once).
    too_much_text: bool,
}

impl Expander<'_> {
    /// The variables' values: defaults, then `HEPHY_VAR_*`, then `--set`.
    fn variables(&mut self, doc: &Document, overrides: &Overrides) {
        let mut spans: HashMap<&str, SourceSpan> = HashMap::new();
        for (name, default) in &doc.variables {
            if !is_variable_name(&name.value) {
                self.sink.push(
                    Problem::new(Code::InvalidName, format!("`{}` is not a variable name", name.value))
                        .label(name.span, "not a variable name")
                        .help("a variable name is a letter or `_`, then letters, digits and `_`"),
                );
                continue;
            }
            if let Some(first) = spans.insert(&name.value, name.span) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("variable `{}` is declared twice", name.value))
                        .label(name.span, "declared again here")
                        .label(first, "first declared here")
                        .help("keep one of them"),
                );
                continue;
            }
            if default.value.replace("$${", "").contains("${") {
                self.sink.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("the default of `{}` uses a variable", name.value),
                    )
                    .label(default.span, "a `${…}` in a default")
                    .help("a default is plain text: write the value out, or `$${` for a literal `${`"),
                );
                // Declared all the same, so its uses are not "unknown"; what is made of them
                // is not checked again.
                self.poisoned.insert(name.value.clone());
            }
            let value = default.value.replace("$${", "${");
            self.variables.insert(name.value.clone(), (value, VariableSource::Default));
        }
        for (name, value) in &overrides.environment {
            if let Some(slot) = self.variables.get_mut(name) {
                *slot = (value.clone(), VariableSource::Environment);
            }
        }
        for (name, value) in &overrides.variables {
            match self.variables.get_mut(name) {
                Some(slot) => *slot = (value.clone(), VariableSource::Set),
                None => {
                    let help =
                        did_you_mean(name, self.variables.keys().map(String::as_str)).unwrap_or_else(|| {
                            "declare it with `variables NAME=\"default\"` in the graph file".to_owned()
                        });
                    self.sink.push(
                        Problem::new(
                            Code::UnknownVariable,
                            format!("`--set {name}=…`: the graph has no variable `{name}`"),
                        )
                        .help(help),
                    );
                }
            }
        }
    }

    /// The templates by name, each with its own `inherits` resolved (cycles reported).
    fn templates(&mut self, doc: &mut Document) -> HashMap<String, Resolving> {
        let mut raw: HashMap<String, ImageDraft> = HashMap::new();
        for mut template in std::mem::take(&mut doc.templates) {
            self.few_inherits(&mut template);
            if let Some(matrix) = &template.matrix {
                self.sink.push(
                    Problem::new(Code::UnknownKey, "a template has no `matrix`")
                        .label(matrix.span, "a matrix in a template")
                        .help("put the matrix on the image that inherits the template"),
                );
            }
            if let Some(first) = raw.get(&template.name.value) {
                self.sink.push(
                    Problem::new(
                        Code::DuplicateName,
                        format!("two templates named `{}`", template.name.value),
                    )
                    .label(template.name.span, "defined again here")
                    .label(first.name.span, "first defined here")
                    .help("rename one of them"),
                );
                continue;
            }
            raw.insert(template.name.value.clone(), template);
        }
        let mut done: HashMap<String, Resolving> = HashMap::new();
        let mut names: Vec<String> = raw.keys().cloned().collect();
        names.sort();
        let mut too_deep = false;
        for name in names {
            self.resolve_template(&name, &raw, &mut done, &mut too_deep);
        }
        done
    }

    /// Resolves template `name` and every template it inherits, parents first: depth first
    /// with a stack of its own (never the thread's). A cycle and an unknown template are
    /// reported (at the `inherits` that makes them) and that parent left out; a chain deeper
    /// than [`MAX_TEMPLATE_DEPTH`] is reported (the first) and cut there. Each template is
    /// merged once, so a chain of templates resolves in time linear in its length.
    fn resolve_template(
        &mut self,
        name: &str,
        raw: &HashMap<String, ImageDraft>,
        done: &mut HashMap<String, Resolving>,
        too_deep: &mut bool,
    ) {
        if done.contains_key(name) || !raw.contains_key(name) {
            return;
        }
        // (template, the index of the parent to look at next), and where each is on it.
        let mut stack: Vec<(&str, usize)> = vec![(name, 0)];
        let mut on_stack: HashMap<&str, usize> = HashMap::from([(name, 0)]);
        while let Some(&mut (current, ref mut next)) = stack.last_mut() {
            let Some(template) = raw.get(current) else {
                on_stack.remove(current);
                stack.pop();
                continue;
            };
            let Some(parent) = template.inherits.get(*next) else {
                let mut parents: Vec<Resolving> =
                    template.inherits.iter().filter_map(|p| done.get(&p.value)).cloned().collect();
                let mut depth = 1 + parents.iter().map(|p| p.depth).max().unwrap_or(0);
                let inherited: usize = parents.iter().map(|p| p.size).sum();
                if !self.hold(template.count_texts().saturating_add(inherited), &template.name) {
                    // Resolved alone: what it would hold is too much.
                    parents.clear();
                    depth = 1;
                } else if depth > MAX_TEMPLATE_DEPTH {
                    if !std::mem::replace(too_deep, true) {
                        self.too_deep(template, &parents);
                    }
                    // Resolved alone, so what inherits it is measured (and merged) afresh.
                    parents.clear();
                    depth = 1;
                }
                let own = Origin::Template(current.to_owned());
                let mut resolved =
                    merge_all(&parents, template.clone(), self.record.then_some(&own), current);
                resolved.depth = depth;
                resolved.size = resolved.draft.count_texts();
                done.insert(current.to_owned(), resolved);
                on_stack.remove(current);
                stack.pop();
                continue;
            };
            *next += 1;
            if let Some(&at) = on_stack.get(parent.value.as_str()) {
                let mut cycle: Vec<&str> = stack[at..].iter().map(|(s, _)| *s).collect();
                cycle.push(&parent.value);
                self.sink.push(
                    Problem::new(Code::Cycle, format!("template cycle: {}", cycle.join(" → ")))
                        .label(parent.span, "inherited here")
                        .help("a template may not inherit itself, directly or through others"),
                );
                continue;
            }
            if done.contains_key(&parent.value) {
                continue;
            }
            let Some((key, _)) = raw.get_key_value(&parent.value) else {
                self.unknown_template(parent, raw.keys());
                continue;
            };
            on_stack.insert(key.as_str(), stack.len());
            stack.push((key.as_str(), 0));
        }
    }

    /// Keeps the first [`MAX_INHERITS`] templates `draft` inherits, and says so if it lists more.
    fn few_inherits(&mut self, draft: &mut ImageDraft) {
        if let Some(first) = draft.inherits.get(MAX_INHERITS) {
            self.sink.push(
                Problem::new(
                    Code::Limit,
                    format!("`{}` inherits {} templates, more than {MAX_INHERITS}", draft.name.value, draft.inherits.len()),
                )
                .label(first.span, format!("template {} of the list", MAX_INHERITS + 1))
                .help(format!("an `inherits` may list {MAX_INHERITS} templates: gather some into a template they inherit")),
            );
            draft.inherits.truncate(MAX_INHERITS);
        }
    }

    /// Says that `template`, inheriting `parents`, ends a chain of templates deeper than
    /// [`MAX_TEMPLATE_DEPTH`].
    fn too_deep(&mut self, template: &ImageDraft, parents: &[Resolving]) {
        let deepest = parents.iter().max_by_key(|p| p.depth);
        let mut problem = Problem::new(
            Code::Limit,
            format!(
                "template `{}` inherits more than {MAX_TEMPLATE_DEPTH} templates deep",
                template.name.value
            ),
        )
        .label(template.name.span, "this template");
        if let Some(deepest) = deepest
            && let Some(at) = template.inherits.iter().find(|i| i.value == deepest.draft.name.value)
        {
            problem = problem.label(at.span, format!("a chain of {} templates", deepest.depth));
        }
        self.sink.push(problem.help(format!(
            "templates may inherit {MAX_TEMPLATE_DEPTH} deep: merge some of the chain into one template"
        )));
    }

    fn unknown_template<'k>(&mut self, name: &Text, known: impl Iterator<Item = &'k String>) {
        let mut known: Vec<&str> = known.map(String::as_str).collect();
        let help = self.sink.suggest(&name.value, known.iter().copied()).unwrap_or_else(|| {
            if known.is_empty() {
                return "declare it with `template \"NAME\" { … }`".to_owned();
            }
            // The first few by name, without sorting them all.
            const SHOWN: usize = 8;
            let more = known.len().saturating_sub(SHOWN);
            if more > 0 {
                known.select_nth_unstable(SHOWN);
                known.truncate(SHOWN);
            }
            known.sort_unstable();
            let list = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            if more > 0 {
                format!("the templates are {list} and {more} more")
            } else {
                format!("the templates are {list}")
            }
        });
        self.sink.push(
            Problem::new(Code::UnknownDependency, format!("unknown template `{}`", name.value))
                .label(name.span, "no template has this name")
                .help(help),
        );
    }

    /// `image` with its templates merged in, where each setting came from, and its templates.
    fn inherit(
        &mut self,
        image: ImageDraft,
        templates: &HashMap<String, Resolving>,
    ) -> (ImageDraft, Origins, Vec<String>) {
        if image.inherits.is_empty() {
            let origins = if self.record { own_origins(&image, &Origin::Image) } else { Origins::new() };
            return (image, origins, Vec::new());
        }
        let mut parents = Vec::new();
        for parent in &image.inherits {
            match templates.get(&parent.value) {
                Some(resolved) => parents.push(resolved.clone()),
                None => {
                    if !self.reported.insert((parent.span.offset(), parent.value.clone())) {
                        continue;
                    }
                    self.unknown_template(parent, templates.keys());
                }
            }
        }
        let resolved = merge_all(&parents, image, self.record.then_some(&Origin::Image), "");
        (resolved.draft, resolved.origins, resolved.chain)
    }

    /// Each combination of the matrix's values (one empty combination without a matrix).
    fn combinations(&mut self, matrix: &MatrixDraft, name: &Text) -> Vec<Vec<(String, String)>> {
        let mut axes: Vec<(String, Vec<String>)> = Vec::new();
        let mut ok = true;
        for (key, values) in &matrix.axes {
            if !is_variable_name(&key.value) {
                self.sink.push(
                    Problem::new(Code::InvalidName, format!("`{}` is not a matrix key", key.value))
                        .label(key.span, "not a name")
                        .help("a matrix key is a letter or `_`, then letters, digits and `_`"),
                );
                ok = false;
            } else if self.variables.contains_key(&key.value) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("matrix key `{}` is also a variable", key.value))
                        .label(key.span, "the matrix key")
                        .help("rename the matrix key or the variable: `${…}` would be ambiguous"),
                );
                ok = false;
            } else if axes.iter().any(|(k, _)| *k == key.value) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("matrix key `{}` is given twice", key.value))
                        .label(key.span, "given again here")
                        .help("keep one of them"),
                );
                ok = false;
            } else if values.is_empty() {
                self.sink.push(
                    Problem::new(Code::Missing, format!("matrix key `{}` has no values", key.value))
                        .label(key.span, "no values")
                        .help("list at least one value"),
                );
                ok = false;
            } else if values.len() > 1 && !name.value.contains(&format!("${{{}}}", key.value)) {
                self.sink.push(
                    Problem::new(
                        Code::DuplicateName,
                        format!("the name `{}` does not use the matrix key `{}`", name.value, key.value),
                    )
                    .label(name.span, format!("every copy would have this name for each `{}`", key.value))
                    .label(key.span, "the matrix key")
                    .help(format!("put `${{{}}}` in the name so that the copies differ", key.value)),
                );
                ok = false;
            } else {
                let mut filled: Vec<String> = Vec::with_capacity(values.len());
                let mut firsts: HashMap<String, SourceSpan> = HashMap::with_capacity(values.len());
                for value in values {
                    let mut text = value.clone();
                    self.interpolate(&mut text, &[]);
                    if let Some(first) = firsts.get(&text.value) {
                        self.sink.push(
                            Problem::new(
                                Code::DuplicateName,
                                format!("matrix key `{}` lists `{}` twice", key.value, text.value),
                            )
                            .label(value.span, "listed again here")
                            .label(*first, "first listed here")
                            .help("list each value once: each value makes one copy"),
                        );
                        continue;
                    }
                    firsts.insert(text.value.clone(), value.span);
                    filled.push(text.value);
                }
                axes.push((key.value.clone(), filled));
            }
        }
        if !ok || !self.room_for(matrix, &axes) {
            return Vec::new();
        }
        let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for (key, values) in &axes {
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut next = prefix.clone();
                        next.push((key.clone(), v.clone()));
                        next
                    })
                })
                .collect();
        }
        out
    }

    /// Whether `strings` more strings fit in what expansion may hold
    /// ([`MAX_EXPANDED_STRINGS`]); the first definition that does not fit is reported, at its
    /// name, and left out.
    fn hold(&mut self, strings: usize, name: &Text) -> bool {
        if let Some(total) = self.strings.checked_add(strings)
            && total <= MAX_EXPANDED_STRINGS
        {
            self.strings = total;
            return true;
        }
        if !std::mem::replace(&mut self.too_many_strings, true) {
            self.sink.push(
                Problem::new(
                    Code::Limit,
                    format!(
                        "`{}` with its templates and matrix copies makes the graph hold more than {MAX_EXPANDED_STRINGS} strings",
                        name.value
                    ),
                )
                .label(name.span, format!("{strings} more strings, {} before", self.strings))
                .help(format!(
                    "templates, images and tasks may hold {MAX_EXPANDED_STRINGS} strings in all after expansion: inherit large templates into fewer images, or list fewer matrix values"
                )),
            );
        }
        false
    }

    /// Whether the copies `axes` make fit in what matrices may make ([`MAX_MATRIX_COPIES`]),
    /// counted before any is made; the first matrix that does not fit is reported.
    fn room_for(&mut self, matrix: &MatrixDraft, axes: &[(String, Vec<String>)]) -> bool {
        let copies = axes.iter().try_fold(1usize, |n, (_, values)| n.checked_mul(values.len()));
        if let Some(total) = copies.and_then(|c| c.checked_add(self.copies))
            && total <= MAX_MATRIX_COPIES
        {
            self.copies = total;
            return true;
        }
        if !std::mem::replace(&mut self.too_many_copies, true) {
            let product = axes.iter().map(|(_, v)| v.len().to_string()).collect::<Vec<_>>().join(" × ");
            let (message, label) = match copies {
                Some(n) if n <= MAX_MATRIX_COPIES => (
                    format!(
                        "the matrices make more than {MAX_MATRIX_COPIES} copies in all ({} before this one)",
                        self.copies
                    ),
                    format!("{product} more copies"),
                ),
                _ => (
                    format!("the matrix makes {product} copies, more than {MAX_MATRIX_COPIES}"),
                    format!("{product} copies"),
                ),
            };
            self.sink.push(Problem::new(Code::Limit, message).label(matrix.span, label).help(format!(
                "a graph's matrices may make {MAX_MATRIX_COPIES} images and tasks in all: list fewer values, or split the graph"
            )));
        }
        false
    }

    fn image_texts(&mut self, image: &mut ImageDraft, bindings: &[(String, String)]) {
        image.each_text(&mut |t| self.interpolate(t, bindings));
    }

    fn task_texts(&mut self, task: &mut TaskDraft, bindings: &[(String, String)]) {
        visit_task_mut(task, &mut |t| self.interpolate(t, bindings));
    }

    /// Fills `${NAME}` in `text` from `bindings` (matrix values) and the variables; `$${` is a
    /// literal `${`.
    fn interpolate(&mut self, text: &mut Text, bindings: &[(String, String)]) {
        if !text.value.contains('$') {
            return;
        }
        let raw = &text.value;
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw.as_str();
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if let Some(after) = tail.strip_prefix("${") {
                let Some(end) = after.find('}') else {
                    self.broken.push(text.span);
                    self.sink.push(
                        Problem::new(Code::UnknownVariable, "`${` is not closed")
                            .label(text.span, "here")
                            .help("write `${NAME}`, or `$${` for a literal `${`"),
                    );
                    return;
                };
                let name = &after[..end];
                match lookup(name, bindings, &self.variables) {
                    Some((value, _)) => {
                        if self.poisoned.contains(name) {
                            self.broken.push(text.span);
                        }
                        self.filled = self.filled.saturating_add(value.len());
                        if out.len() + value.len() > MAX_EXPANDED_STRING || self.filled > MAX_EXPANDED_TEXT {
                            self.broken.push(text.span);
                            self.too_much_text(text.span, name, out.len() + value.len());
                            return;
                        }
                        out.push_str(value);
                    }
                    None => {
                        self.broken.push(text.span);
                        self.unknown_variable(name, text.span, bindings);
                        out.push_str(&tail[..end + 3]);
                    }
                }
                rest = &after[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        text.value = out;
    }

    /// Says (once) that filling in `${name}` at `span` makes a string of `len` bytes, or the
    /// text filled in all in all, larger than the limits allow; the string is left as written.
    fn too_much_text(&mut self, span: SourceSpan, name: &str, len: usize) {
        if std::mem::replace(&mut self.too_much_text, true) {
            return;
        }
        let (message, help) = if len > MAX_EXPANDED_STRING {
            (
                format!("filling in `${{{name}}}` makes a string longer than {MAX_EXPANDED_STRING} bytes"),
                format!(
                    "a string may grow to {MAX_EXPANDED_STRING} bytes through `${{…}}`: use the variable fewer times, or shorten its value"
                ),
            )
        } else {
            (
                format!("`${{…}}` fills in more than {MAX_EXPANDED_TEXT} bytes of text in all"),
                format!(
                    "variables may fill in {MAX_EXPANDED_TEXT} bytes in all: use long values in fewer strings and matrix copies"
                ),
            )
        };
        self.sink
            .push(Problem::new(Code::Limit, message).label(span, "the limit is reached here").help(help));
    }

    fn unknown_variable(&mut self, name: &str, span: SourceSpan, bindings: &[(String, String)]) {
        if !self.reported.insert((span.offset(), name.to_owned())) {
            return;
        }
        let needle = format!("${{{name}}}");
        let within =
            self.source.text().get(span.offset()..span.offset() + span.len()).and_then(|t| t.find(&needle));
        let label = within.map_or(span, |at| SourceSpan::new((span.offset() + at).into(), needle.len()));
        let known: Vec<&str> = bindings
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.variables.keys().map(String::as_str))
            .collect();
        let help = self.sink.suggest(name, known.iter().copied()).unwrap_or_else(|| {
            "declare it with `variables NAME=\"default\"`, or write `$${` for a literal `${`".to_owned()
        });
        self.sink.push(
            Problem::new(Code::UnknownVariable, format!("unknown variable `{name}`"))
                .label(label, "no variable or matrix value has this name")
                .help(help),
        );
    }

    /// `--set image.NAME.FIELD=VALUE`, after expansion.
    fn set_images(&mut self, doc: &mut Document, overrides: &Overrides, resolved: &mut [ResolvedImage]) {
        for set in &overrides.images {
            let mut hit = false;
            for image in doc.images.iter_mut().filter(|i| set.image == "*" || i.name.value == set.image) {
                hit = true;
                let at = image.name.span;
                apply(image, &set.field, &set.value, at);
                if let Some(r) = resolved.iter_mut().find(|r| r.name == image.name.value) {
                    let shown = ImageDraft::shown_field(&set.field);
                    r.settings.retain(|s| s.field != set.field && s.field != shown);
                    r.settings.push(Setting {
                        field: set.field.clone(),
                        value: set.value.clone(),
                        written: set.value.clone(),
                        origin: Origin::Set,
                        line: None,
                        variables: Vec::new(),
                    });
                }
            }
            if !hit {
                let help = did_you_mean(&set.image, doc.images.iter().map(|i| i.name.value.as_str()))
                    .unwrap_or_else(|| {
                        "name an image of the graph (its expanded name), or `*` for all".to_owned()
                    });
                self.sink.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!(
                            "`--set image.{}.{}=…`: there is no image `{}`",
                            set.image, set.field, set.image
                        ),
                    )
                    .help(help),
                );
            }
        }
    }

    fn resolved(
        &self,
        written: &ImageDraft,
        copy: &ImageDraft,
        origins: &Origins,
        chain: &[String],
        bindings: &[(String, String)],
    ) -> ResolvedImage {
        let line = |span: SourceSpan| line_of(self.source.text(), span.offset());
        let mut settings = Vec::new();
        for ((field, before, span), (_, after, _)) in written.shown().into_iter().zip(copy.shown()) {
            let origin = origins
                .get(field.split(' ').next().unwrap_or(&field))
                .or_else(|| origins.get(&field))
                .cloned();
            let variables = used(&before, bindings, &self.variables);
            settings.push(Setting {
                origin: origin.unwrap_or(Origin::Image),
                line: Some(line(span)),
                field,
                value: after,
                written: before,
                variables,
            });
        }
        ResolvedImage {
            name: copy.name.value.clone(),
            line: line(copy.name.span),
            templates: chain.to_vec(),
            matrix: bindings.to_vec(),
            settings,
        }
    }
}

fn lookup<'v>(
    name: &str,
    bindings: &'v [(String, String)],
    variables: &'v Variables,
) -> Option<(&'v str, VariableSource)> {
    bindings
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| (v.as_str(), VariableSource::Matrix))
        .or_else(|| variables.get(name).map(|(v, s)| (v.as_str(), *s)))
}

/// The variables `${NAME}` in `written` refers to, with their values.
fn used(written: &str, bindings: &[(String, String)], variables: &Variables) -> Vec<VariableUse> {
    let mut out: Vec<VariableUse> = Vec::new();
    let mut rest = written;
    while let Some(at) = rest.find("${") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !escaped
            && !out.iter().any(|u| u.name == name)
            && let Some((value, source)) = lookup(name, bindings, variables)
        {
            out.push(VariableUse { name: name.to_owned(), value: value.to_owned(), source });
        }
        rest = &after[end + 1..];
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// A template or image with its `inherits` merged in.
#[derive(Debug, Clone)]
struct Resolving {
    draft: ImageDraft,
    origins: Origins,
    /// Its templates, furthest first.
    chain: Vec<String>,
    /// The longest chain of templates it is the end of (1 for a template inheriting none).
    depth: usize,
    /// The strings it holds ([`ImageDraft::count_texts`]).
    size: usize,
}

/// `parents` (in order, later ones nearer), then `own`.
/// Where each setting came from is tracked only with an `origin` (`hephy show`).
fn merge_all(parents: &[Resolving], own: ImageDraft, origin: Option<&Origin>, own_name: &str) -> Resolving {
    let mut chain: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut base: Option<Resolving> = None;
    for parent in parents {
        for t in &parent.chain {
            if seen.insert(t) {
                chain.push(t.clone());
            }
        }
        base = Some(match base {
            None => parent.clone(),
            Some(b) => {
                let (draft, origins) =
                    merge(b.draft, b.origins, parent.draft.clone(), parent.origins.clone());
                Resolving { draft, origins, chain: Vec::new(), depth: 0, size: 0 }
            }
        });
    }
    if !own_name.is_empty() {
        chain.push(own_name.to_owned());
    }
    let own_origins = origin.map_or_else(Origins::new, |origin| own_origins(&own, origin));
    let (draft, origins) = match base {
        None => (own, own_origins),
        Some(b) => merge(b.draft, b.origins, own, own_origins),
    };
    Resolving { draft, origins, chain, depth: 0, size: 0 }
}

/// The settings `draft` gives itself, each from `origin`.
fn own_origins(draft: &ImageDraft, origin: &Origin) -> Origins {
    draft.shown().into_iter().map(|(field, _, _)| (field, origin.clone())).collect()
}

/// `child` over `base`: a setting the child gives replaces the base's; `args`, `ko-env`,
/// `labels`, `annotations`, dependencies and build contexts merge by name (each by its row's
/// shape in the image key table).
fn merge(
    base: ImageDraft,
    mut base_origins: Origins,
    child: ImageDraft,
    child_origins: Origins,
) -> (ImageDraft, Origins) {
    let mut out = child;
    out.merge_over(base);
    // Nearer origins win; the base's stay for what the child left alone.
    base_origins.extend(child_origins);
    (out, base_origins)
}

/// `--set image.NAME.FIELD=VALUE` on one image; the values are spanned at the image's name.
fn apply(image: &mut ImageDraft, field: &str, value: &str, at: SourceSpan) {
    if image.set(field, value, at) {
        return;
    }
    if let Some(arg) = field.strip_prefix("args.") {
        image.args.retain(|(k, _)| k.value != arg);
        image.args.push((Spanned::new(arg.to_owned(), at), Spanned::new(value.to_owned(), at)));
    }
}

// --- walking every string -------------------------------------------------------------------

fn visit_task_mut(d: &mut TaskDraft, f: &mut impl FnMut(&mut Text)) {
    f(&mut d.name);
    if let Some(run) = &mut d.run {
        run.value.iter_mut().for_each(&mut *f);
    }
    d.inputs.iter_mut().chain(d.outputs.iter_mut()).chain(d.secrets.iter_mut()).for_each(&mut *f);
    d.platforms.iter_mut().flatten().for_each(&mut *f);
    for (k, v) in &mut d.env {
        f(k);
        f(v);
    }
    d.timeout.iter_mut().for_each(&mut *f);
    Dependencies::each(&mut d.deps, f);
}

/// The strings outside images and tasks.
fn scan_top(doc: &mut Document, f: &mut impl FnMut(&mut Text)) {
    [&mut doc.registry, &mut doc.builder, &mut doc.timeout].into_iter().flatten().for_each(&mut *f);
    if let Some(naming) = &mut doc.naming {
        [
            &mut naming.preset,
            &mut naming.repository,
            &mut naming.platform,
            &mut naming.manifest,
            &mut naming.tag,
        ]
        .into_iter()
        .flatten()
        .for_each(&mut *f);
    }
    doc.platforms.iter_mut().flatten().for_each(&mut *f);
    doc.mirrors.iter_mut().for_each(&mut *f);
    if let Some(key) = doc.supply.sign.as_mut().and_then(|s| s.key.as_mut()) {
        f(key);
    }
    for (k, v) in doc.labels.iter_mut().chain(doc.annotations.iter_mut()) {
        f(k);
        f(v);
    }
    for e in &mut doc.executors {
        f(&mut e.name);
        [&mut e.platform, &mut e.gitlab_tags, &mut e.runs_on, &mut e.ssh, &mut e.buildkit, &mut e.kubernetes]
            .into_iter()
            .flatten()
            .for_each(&mut *f);
    }
    for s in &mut doc.schedules {
        f(&mut s.name);
        s.rebuild.iter_mut().for_each(&mut *f);
    }
    for g in &mut doc.groups {
        f(&mut g.name);
        g.members.iter_mut().for_each(&mut *f);
    }
    for s in &mut doc.secrets {
        f(&mut s.name);
        [&mut s.env, &mut s.file].into_iter().flatten().for_each(&mut *f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Syntax;

    /// `--set`'s usage lists its fields in the order it always has, now that the image key
    /// table's rows give them.
    #[test]
    fn settable_fields_keep_their_order() {
        let fields = [
            "context",
            "dockerfile",
            "git",
            "ref",
            "builder",
            "timeout",
            "compression",
            "target",
            "targets",
            "platforms",
            "tags",
            "secrets",
        ];
        assert_eq!(SETTABLE, fields);
        let Err(problems) = Overrides::new(&["image.app.nope=1".to_owned()], []) else {
            panic!("`nope` is no field");
        };
        let help = format!("{problems:?}");
        let listed = fields.map(|f| format!("`{f}`")).join(", ");
        assert!(help.contains(&listed), "{help}");
    }

    fn expanded(syntax: Syntax, text: &str, overrides: &Overrides) -> (Document, Vec<String>) {
        let name = match syntax {
            Syntax::Kdl => "hephy.kdl",
            Syntax::Yaml => "hephy.yaml",
        };
        let source = SourceFile::new(name, syntax, text);
        let mut doc = crate::read(&source).expect("reads");
        let mut sink = Sink::default();
        expand(&mut doc, &source, overrides, &mut sink, false);
        let problems = if sink.is_empty() {
            Vec::new()
        } else {
            sink.into_problems(&source).iter().map(|p| p.message().to_owned()).collect()
        };
        (doc, problems)
    }

    fn values(texts: &[Text]) -> Vec<&str> {
        texts.iter().map(|t| t.value.as_str()).collect()
    }

    const KDL: &str = r#"
variables VERSION="1.0" FLAVOR="slim"
template "common" {
    tags "latest" "${VERSION}"
    args A="common" B="common"
    after "lint"
}
template "service" {
    inherits "common"
    args B="service"
    from "base" arg="BASE"
}
image "${service}-${variant}" {
    matrix {
        service "nova" "glance"
        variant "api" "worker"
    }
    inherits "service"
    context "services/${service}"
    args C="${variant}-${FLAVOR}"
    tags "$${literal}"
}
"#;

    const YAML: &str = r#"
variables: { VERSION: "1.0", FLAVOR: slim }
templates:
  common:
    tags: [latest, "${VERSION}"]
    args: { A: common, B: common }
    after: [lint]
  service:
    inherits: [common]
    args: { B: service }
    from: { base: { arg: BASE } }
images:
  ${service}-${variant}:
    matrix:
      service: [nova, glance]
      variant: [api, worker]
    inherits: [service]
    context: services/${service}
    args: { C: "${variant}-${FLAVOR}" }
    tags: ["$${literal}"]
"#;

    /// Both syntaxes expand to the same images: the product in order, templates merged (lists
    /// replaced, args by name, dependencies added up), `$${` a literal `${`.
    #[test]
    fn a_matrix_of_templated_images_expands_alike_in_both_syntaxes() {
        for (syntax, text) in [(Syntax::Kdl, KDL), (Syntax::Yaml, YAML)] {
            let (doc, problems) = expanded(syntax, text, &Overrides::default());
            assert!(problems.is_empty(), "{problems:?}");
            let names: Vec<&str> = doc.images.iter().map(|i| i.name.value.as_str()).collect();
            assert_eq!(names, ["nova-api", "nova-worker", "glance-api", "glance-worker"], "{syntax}");
            let image = &doc.images[3];
            assert_eq!(image.context.as_ref().map(|c| c.value.as_str()), Some("services/glance"));
            assert_eq!(values(&image.tags), ["${literal}"], "the image's own tags replace the template's");
            let args: Vec<(&str, &str)> =
                image.args.iter().map(|(k, v)| (k.value.as_str(), v.value.as_str())).collect();
            assert_eq!(args, [("A", "common"), ("B", "service"), ("C", "worker-slim")], "{syntax}");
            let deps: Vec<&str> = image.deps.iter().map(|d| d.name.value.as_str()).collect();
            assert_eq!(deps, ["lint", "base"], "{syntax}");
            assert!(doc.templates.is_empty());
        }
    }

    /// `--set` beats `HEPHY_VAR_*`, which beats the default; `--set image.…` applies last.
    #[test]
    fn overrides_take_precedence_in_order() {
        let text = "variables VERSION=\"1.0\" FLAVOR=\"slim\"\nimage \"app\" {\n    context \"ctx\"\n    tags \"${VERSION}-${FLAVOR}\"\n}\n";
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let tags = |overrides: Overrides| {
            let (doc, problems) = expanded(Syntax::Kdl, text, &overrides);
            assert!(problems.is_empty(), "{problems:?}");
            values(&doc.images[0].tags).join(" ")
        };
        assert_eq!(tags(Overrides::default()), "1.0-slim");
        let from_env = Overrides::new(&[], env(&[("HEPHY_VAR_VERSION", "2.0"), ("VERSION", "9")])).unwrap();
        assert_eq!(tags(from_env), "2.0-slim");
        let set = vec!["VERSION=3.0".to_owned()];
        assert_eq!(tags(Overrides::new(&set, env(&[("HEPHY_VAR_VERSION", "2.0")])).unwrap()), "3.0-slim");
        let set = vec!["image.app.tags=a, b".to_owned(), "image.*.args.X=1".to_owned()];
        let (doc, _) = expanded(Syntax::Kdl, text, &Overrides::new(&set, Vec::new()).unwrap());
        assert_eq!(values(&doc.images[0].tags), ["a", "b"]);
        assert_eq!(doc.images[0].args[0].1.value, "1");
    }

    #[test]
    fn bad_set_arguments_are_usage_errors() {
        for bad in ["VERSION", "image.app=1", "image.app.labels=x", "1X=2"] {
            let err = Overrides::new(&[bad.to_owned()], Vec::new()).expect_err(bad);
            assert_eq!(err.file(), "--set", "{bad}");
        }
        let (_, problems) = expanded(
            Syntax::Kdl,
            "variables VERSION=\"1\"\nimage \"app\" { context \"c\"; }\n",
            &Overrides::new(&["VERSON=2".to_owned(), "image.ap.tags=x".to_owned()], Vec::new()).unwrap(),
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    /// A mistake in a template is reported once, however many images inherit it.
    #[test]
    fn a_template_mistake_is_reported_once() {
        let text = "template \"t\" { tags \"${NOPE}\"; }\nimage \"${s}\" {\n    matrix { s \"a\" \"b\" \"c\"; }\n    inherits \"t\"\n    context \"c\"\n}\n";
        let (_, problems) = expanded(Syntax::Kdl, text, &Overrides::default());
        assert_eq!(problems, ["unknown variable `NOPE`"]);
    }

    /// A `$` written as an escape (KDL's `\u{24}`, YAML's `\x24`) is a `$` like any other:
    /// the look for one in a graph with nothing else to expand does not stop at the file's
    /// bytes, and a graph with no `$` at all is left as it was read.
    #[test]
    fn a_dollar_written_as_an_escape_is_expanded() {
        let kdl = "image \"app\" {\n    context \"c\"\n    tags \"\\u{24}{NOPE}\"\n}\n";
        let yaml = "images:\n  app: { context: c, tags: [\"\\x24{NOPE}\"] }\n";
        for (syntax, text) in [(Syntax::Kdl, kdl), (Syntax::Yaml, yaml)] {
            let (_, problems) = expanded(syntax, text, &Overrides::default());
            assert_eq!(problems, ["unknown variable `NOPE`"], "{syntax}");
        }
        let plain = "images:\n  app: { context: c, tags: [v1] }\n";
        let (doc, problems) = expanded(Syntax::Yaml, plain, &Overrides::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(values(&doc.images[0].tags), ["v1"]);
    }

    /// Tasks take a matrix too, and strings outside images and tasks (the registry, groups)
    /// take variables.
    #[test]
    fn tasks_and_top_level_strings_expand() {
        let kdl = "variables HOST=\"r.example.com\"\nregistry \"${HOST}/p\"\ntask \"lint-${dir}\" {\n    matrix { dir \"a\" \"b\"; }\n    run \"lint\" \"${dir}/Dockerfile\"\n}\ngroup \"all\" { members \"lint-a\" \"lint-b\"; }\n";
        let yaml = "variables: { HOST: r.example.com }\nregistry: ${HOST}/p\ntasks:\n  lint-${dir}:\n    matrix: { dir: [a, b] }\n    run: [lint, \"${dir}/Dockerfile\"]\ngroups: { all: [lint-a, lint-b] }\n";
        for (syntax, text) in [(Syntax::Kdl, kdl), (Syntax::Yaml, yaml)] {
            let (doc, problems) = expanded(syntax, text, &Overrides::default());
            assert!(problems.is_empty(), "{syntax}: {problems:?}");
            assert_eq!(doc.registry.as_ref().map(|r| r.value.as_str()), Some("r.example.com/p"));
            let tasks: Vec<(&str, Vec<&str>)> = doc
                .tasks
                .iter()
                .map(|t| {
                    (t.name.value.as_str(), t.run.as_ref().map(|r| values(&r.value)).unwrap_or_default())
                })
                .collect();
            assert_eq!(
                tasks,
                [("lint-a", vec!["lint", "a/Dockerfile"]), ("lint-b", vec!["lint", "b/Dockerfile"])]
            );
        }
    }
}
