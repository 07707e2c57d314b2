//! The YAML front-end: `hephy.yaml` text → [`Document`].
//!
//! Owns the YAML spelling of every construct (maps of named images, tasks, executors and
//! schedules) but an image's keys, which the shapes of the image key table's rows read
//! (`image_keys!` in `analyze/images.rs`, with the helpers of [`Reader`]), and reports shape
//! errors: YAML syntax errors, unknown keys, wrong value types, keys
//! given twice. It reads the event stream of `saphyr-parser` into a small tree that keeps a span
//! on every value, because serde-based YAML crates drop positions after parsing and hephy points
//! every later error (an unknown dependency, a cycle) at the exact value in the file. Scalars stay
//! the text the user wrote (`1.10` is the tag `1.10`, never the number 1.1), and aliases are
//! expanded under a size budget, so an alias bomb is an error, not an out-of-memory.

use std::collections::HashMap;

use miette::SourceSpan;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::{Code, Problem, Sink, did_you_mean};
use crate::document::{
    DependencyDraft, Document, ExecutorDraft, FromDraft, GroupDraft, ImageDraft, MatrixDraft, NamingDraft,
    ScheduleDraft, SecretDraft, SignDraft, SupplyDraft, Tally, TaskDraft, Text,
};
use crate::limits::{MAX_ALIAS_VALUES as MAX_VALUES, MAX_NESTING as MAX_DEPTH};
use crate::schema::{Construct, keys};
use crate::source::{Spanned, Syntax};

/// A YAML value with the span it was written at.
#[derive(Debug, Clone)]
pub struct Value {
    /// What the value is.
    pub kind: Kind,
    /// Where it was written.
    pub span: SourceSpan,
}

/// A YAML value's kind: a scalar, a list or a map.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A scalar as written; `plain` is false for quoted and block scalars.
    Scalar { text: String, plain: bool },
    /// A list.
    Seq(Vec<Value>),
    /// A map, its entries in the order written.
    Map(Vec<(Value, Value)>),
}

impl Value {
    fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { text, plain: true } if is_null(text) => "nothing (null)",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
        }
    }
}

/// Parses any YAML text into a value tree (for files other than graph files).
pub fn value(text: &str) -> Result<Option<Value>, Problem> {
    Tree::build(text)
}

pub fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses YAML text into a draft document; `None` if the text is not usable YAML.
pub(crate) fn parse(text: &str, sink: &mut Sink) -> Option<Document> {
    let root = match Tree::build(text) {
        Ok(root) => root,
        Err(problem) => {
            sink.push(problem);
            return None;
        }
    };
    let mut reader = Reader { sink };
    Some(match root {
        // An empty file: nothing read, nothing to tally.
        None => Document { tally: Some(crate::document::Tally::default()), ..Document::default() },
        Some(root) => reader.document(&root),
    })
}

/// Turns saphyr's character offsets into byte offsets: the identity for ASCII text, a table
/// lookup otherwise (never a walk from the start per span).
struct Offsets {
    len: usize,
    /// Byte offset of each character, for non-ASCII text.
    table: Option<Vec<usize>>,
}

impl Offsets {
    fn new(text: &str) -> Offsets {
        let table = (!text.is_ascii()).then(|| text.char_indices().map(|(b, _)| b).collect());
        Offsets { len: text.len(), table }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(table) => table.get(char_index).copied().unwrap_or(self.len),
        }
    }

    fn span(&self, span: Span) -> SourceSpan {
        let start = self.byte(span.start.index());
        let end = self.byte(span.end.index()).max(start);
        SourceSpan::new(start.into(), end - start)
    }
}

/// Builds the value tree from the event stream.
struct Tree {
    offsets: Offsets,
    anchors: HashMap<usize, Value>,
    /// Values produced by expanding aliases so far.
    values: usize,
}

impl Tree {
    fn build(text: &str) -> Result<Option<Value>, Problem> {
        let mut tree = Tree { offsets: Offsets::new(text), anchors: HashMap::new(), values: 0 };
        let mut events = Parser::new_from_str(text);
        let mut root = None;
        loop {
            let (event, span) = tree.next(&mut events)?;
            match event {
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) if root.is_some() => {
                    return Err(Problem::new(Code::Syntax, "a graph file holds one YAML document")
                        .label(tree.offsets.span(span), "a second document starts here")
                        .help("remove the `---` and everything after it, or merge the documents"));
                }
                Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd | Event::Nothing => {}
                other => root = Some(tree.value(other, span, &mut events, 0)?),
            }
        }
    }

    fn next<'t>(
        &self,
        events: &mut Parser<'t, saphyr_parser::StrInput<'t>>,
    ) -> Result<(Event<'t>, Span), Problem> {
        match events.next() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => {
                let at = self.offsets.byte(e.marker().index());
                Err(Problem::new(Code::Syntax, format!("invalid YAML: {}", e.info()))
                    .label(SourceSpan::new(at.into(), 0), "here")
                    .help("check the indentation and quoting around this point"))
            }
            None => Err(Problem::new(Code::Syntax, "invalid YAML: the document ends early")),
        }
    }

    fn value<'t>(
        &mut self,
        event: Event<'t>,
        span: Span,
        events: &mut Parser<'t, saphyr_parser::StrInput<'t>>,
        depth: usize,
    ) -> Result<Value, Problem> {
        let start = self.offsets.span(span);
        if depth > MAX_DEPTH {
            return Err(Problem::new(Code::InvalidValue, "the YAML document is nested too deeply")
                .label(start, "the limit is reached here")
                .help(format!("a graph file may nest values {MAX_DEPTH} deep")));
        }
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, _) => {
                let plain = matches!(style, ScalarStyle::Plain);
                (Value { kind: Kind::Scalar { text: text.into_owned(), plain }, span: start }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                let end = loop {
                    let (event, span) = self.next(events)?;
                    if let Event::SequenceEnd = event {
                        break self.offsets.span(span);
                    }
                    items.push(self.value(event, span, events, depth + 1)?);
                };
                (Value { kind: Kind::Seq(items), span: join(start, end) }, anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries = Vec::new();
                let end = loop {
                    let (event, span) = self.next(events)?;
                    if let Event::MappingEnd = event {
                        break self.offsets.span(span);
                    }
                    let key = self.value(event, span, events, depth + 1)?;
                    let (event, span) = self.next(events)?;
                    let value = self.value(event, span, events, depth + 1)?;
                    entries.push((key, value));
                };
                (Value { kind: Kind::Map(entries), span: join(start, end) }, anchor)
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(Problem::new(Code::Syntax, "invalid YAML: alias to an unknown anchor")
                        .label(start, "this alias"));
                };
                self.values += count(target);
                if self.values > MAX_VALUES {
                    return Err(Problem::new(Code::InvalidValue, "YAML aliases expand to too many values")
                        .label(start, "the limit is reached at this alias")
                        .help(format!(
                            "aliases may expand to {MAX_VALUES} values in all; write the values out instead"
                        )));
                }
                let mut copy = target.clone();
                copy.span = start;
                return Ok(copy);
            }
            _ => {
                return Err(Problem::new(Code::Syntax, "invalid YAML: unexpected event").label(start, "here"));
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }
}

fn count(value: &Value) -> usize {
    1 + match &value.kind {
        Kind::Scalar { .. } => 0,
        Kind::Seq(items) => items.iter().map(count).sum(),
        Kind::Map(entries) => entries.iter().map(|(k, v)| count(k) + count(v)).sum(),
    }
}

pub(crate) fn join(a: SourceSpan, b: SourceSpan) -> SourceSpan {
    let start = a.offset();
    let end = (b.offset() + b.len()).max(start + a.len());
    SourceSpan::new(start.into(), end - start)
}

pub(crate) struct Reader<'s> {
    sink: &'s mut Sink,
}

impl Reader<'_> {
    fn document(&mut self, root: &Value) -> Document {
        let mut doc = Document::default();
        let mut tally = Tally::default();
        for (key, value) in self.map(root, keys(Construct::Graph, Syntax::Yaml), "a graph file") {
            match key.value.as_str() {
                "registry" => doc.registry = self.string(value),
                "mirrors" => doc.mirrors = self.strings(value),
                "labels" => doc.labels = self.pairs(value),
                "annotations" => doc.annotations = self.pairs(value),
                "sign" | "sbom" | "provenance" => self.supply(&mut doc.supply, &key, value),
                "builder" => doc.builder = self.string(value),
                "timeout" => doc.timeout = self.string(value),
                "naming" => {
                    let mut naming = NamingDraft::default();
                    for (key, value) in self.map(value, keys(Construct::Naming, Syntax::Yaml), "`naming`") {
                        let text = self.string(value);
                        match key.value.as_str() {
                            "preset" => naming.preset = text,
                            "repository" => naming.repository = text,
                            "platform" => naming.platform = text,
                            "manifest" => naming.manifest = text,
                            _ => naming.tag = text,
                        }
                    }
                    doc.naming = Some(naming);
                }
                "platforms" => doc.platforms = Some(self.strings(value)),
                "executors" => {
                    for (name, body) in self.named_map(value) {
                        doc.executors.extend(self.executor(name, body));
                    }
                }
                "secrets" => {
                    for (name, body) in self.named_map(value) {
                        let mut secret = SecretDraft { name, env: None, file: None };
                        for (key, value) in self.map(body, keys(Construct::Secret, Syntax::Yaml), "a secret")
                        {
                            match key.value.as_str() {
                                "env" => secret.env = self.string(value),
                                _ => secret.file = self.string(value),
                            }
                        }
                        doc.secrets.push(secret);
                    }
                }
                "images" => {
                    for (name, body) in self.named_map(value) {
                        let image = self.image(name, body);
                        tally.image(&image);
                        doc.images.push(image);
                    }
                }
                "tasks" => {
                    for (name, body) in self.named_map(value) {
                        let task = self.task(name, body);
                        tally.task(&task);
                        doc.tasks.push(task);
                    }
                }
                "variables" => doc.variables = self.pairs(value),
                "templates" => {
                    for (name, body) in self.named_map(value) {
                        doc.templates.push(self.image(name, body));
                    }
                }
                "groups" => {
                    for (name, body) in self.named_map(value) {
                        let members = self.strings(body);
                        doc.groups.push(GroupDraft { name, members });
                    }
                }
                _ => {
                    for (name, body) in self.named_map(value) {
                        let mut schedule = ScheduleDraft { name, rebuild: Vec::new(), refresh: false };
                        for (key, value) in
                            self.map(body, keys(Construct::Schedule, Syntax::Yaml), "a schedule")
                        {
                            if key.value == "rebuild" {
                                schedule.rebuild = self.strings(value);
                            } else {
                                match self.string(value).as_ref().map(|t| t.as_str()) {
                                    Some("true" | "yes" | "on") => schedule.refresh = true,
                                    Some("false" | "no" | "off") => {}
                                    _ => self.sink.push(
                                        Problem::new(Code::WrongType, "`refresh` is `true` or `false`")
                                            .label(value.span, "not a boolean")
                                            .help("write `refresh: true`"),
                                    ),
                                }
                            }
                        }
                        doc.schedules.push(schedule);
                    }
                }
            }
        }
        doc.tally = Some(tally);
        doc
    }

    fn executor(&mut self, name: Text, body: &Value) -> Option<ExecutorDraft> {
        let mut executor = ExecutorDraft::new(name);
        for (key, value) in self.map(body, keys(Construct::Executor, Syntax::Yaml), "an executor") {
            match key.value.as_str() {
                "platform" => executor.platform = self.string(value),
                "gitlab-tags" => executor.gitlab_tags = self.string(value),
                "runs-on" => executor.runs_on = self.string(value),
                "ssh" => executor.ssh = self.string(value),
                "buildkit" => executor.buildkit = self.string(value),
                "kubernetes" => executor.kubernetes = self.string(value),
                _ => executor.jobs = self.integer(value),
            }
        }
        Some(executor)
    }

    fn image(&mut self, name: Text, body: &Value) -> ImageDraft {
        let mut image = ImageDraft::new(name);
        for (key, value) in self.map(body, keys(Construct::Image, Syntax::Yaml), "an image") {
            // Every key of an image is a row of the image key table (`image_keys!`), whose
            // shape reads it; `map` has refused any other.
            image.read_yaml(self, &key, value);
        }
        image
    }

    fn task(&mut self, name: Text, body: &Value) -> TaskDraft {
        let mut task = TaskDraft::new(name);
        for (key, value) in self.map(body, keys(Construct::Task, Syntax::Yaml), "a task") {
            match key.value.as_str() {
                "run" => task.run = Some(Spanned::new(self.strings(value), value.span)),
                "inputs" => task.inputs = self.strings(value),
                "outputs" => task.outputs = self.strings(value),
                "env" => task.env = self.pairs(value),
                "platforms" => task.platforms = Some(self.strings(value)),
                "timeout" => task.timeout = self.string(value),
                "secrets" => task.secrets = self.strings(value),
                "matrix" => task.matrix = Some(self.matrix(value)),
                _ => task.deps.extend(self.after(value)),
            }
        }
        task
    }

    /// `from: {curl: {arg: BASE, target: debug}}`, or a list of such bodies for one image.
    pub(crate) fn from(&mut self, value: &Value) -> Vec<DependencyDraft> {
        let mut deps = Vec::new();
        for (name, value) in self.named_map(value) {
            // `builder: [{target: a, context: a}, {target: b, context: b}]`: several targets of one image.
            let bodies: Vec<&Value> = match &value.kind {
                Kind::Seq(items) => items.iter().collect(),
                _ => vec![value],
            };
            for body in bodies {
                let mut from = FromDraft {
                    arg: None,
                    target: None,
                    registry_arg: None,
                    context: None,
                    platform: None,
                    span: join(name.span, body.span),
                };
                for (key, value) in self.map(body, keys(Construct::From, Syntax::Yaml), "a `from` dependency")
                {
                    let text = self.string(value);
                    match key.value.as_str() {
                        "arg" => from.arg = text,
                        "target" => from.target = text,
                        "context" => from.context = text,
                        "platform" => from.platform = text,
                        _ => from.registry_arg = text,
                    }
                }
                deps.push(DependencyDraft { name: name.clone(), from: Some(from) });
            }
        }
        deps
    }

    /// `matrix: {service: [nova, glance], variant: [api, worker]}`.
    pub(crate) fn matrix(&mut self, value: &Value) -> MatrixDraft {
        let axes: Vec<(Text, Vec<Text>)> =
            self.named_map(value).into_iter().map(|(key, values)| (key, self.strings(values))).collect();
        if axes.is_empty() {
            self.sink.push(
                Problem::new(Code::Missing, "`matrix` needs at least one key")
                    .label(value.span, "an empty matrix")
                    .help("write `matrix: { service: [nova, glance] }`"),
            );
        }
        MatrixDraft { axes, span: value.span }
    }

    /// `after: [lint, curl]` (or one name).
    pub(crate) fn after(&mut self, value: &Value) -> Vec<DependencyDraft> {
        self.strings(value).into_iter().map(|name| DependencyDraft { name, from: None }).collect()
    }

    // --- shapes -------------------------------------------------------------------------------

    /// A map's entries whose keys are in `allowed`; unknown and repeated keys are reported.
    pub(crate) fn map<'v>(
        &mut self,
        value: &'v Value,
        allowed: &[&str],
        what: &str,
    ) -> Vec<(Text, &'v Value)> {
        let mut found: Vec<(Text, &Value)> = Vec::new();
        for (key, value) in self.entries(value, what) {
            if !allowed.contains(&key.value.as_str()) {
                let help = did_you_mean(&key.value, allowed.iter().copied())
                    .unwrap_or_else(|| format!("{what} may contain {}", list(allowed)));
                self.sink.push(
                    Problem::new(Code::UnknownKey, format!("unknown key `{}` in {what}", key.value))
                        .label(key.span, "unknown key")
                        .help(help),
                );
                continue;
            }
            found.push((key, value));
        }
        found
    }

    /// A map from names to definitions (`images:`, `tasks:`, …).
    pub(crate) fn named_map<'v>(&mut self, value: &'v Value) -> Vec<(Text, &'v Value)> {
        self.entries(value, "this section")
    }

    /// A map's entries with string keys; keys given twice are reported.
    pub(crate) fn entries<'v>(&mut self, value: &'v Value, what: &str) -> Vec<(Text, &'v Value)> {
        let entries = match &value.kind {
            Kind::Map(entries) => entries,
            Kind::Scalar { text, plain: true } if is_null(text) => return Vec::new(),
            _ => {
                self.sink.push(
                    Problem::new(Code::WrongType, format!("expected a map, found {}", value.describe()))
                        .label(value.span, format!("{what} must be a map of `key: value`"))
                        .help("write `key: value` pairs, one per line, indented under the key"),
                );
                return Vec::new();
            }
        };
        let mut seen: Vec<(Text, &Value)> = Vec::with_capacity(entries.len());
        // Repeated keys: a small map (nearly all of them) is searched; a large one (a graph's
        // `tasks:`) is indexed by the keys' own text.
        let small = entries.len() <= 16;
        let mut first: foldhash::HashMap<&'v str, SourceSpan> = foldhash::HashMap::default();
        for (raw, value) in entries {
            let Some(key) = self.string(raw) else { continue };
            let earlier = if small {
                seen.iter().find(|(k, _)| k.value == key.value).map(|(k, _)| k.span)
            } else {
                let text = match &raw.kind {
                    Kind::Scalar { text, .. } => text.as_str(),
                    _ => "",
                };
                match first.entry(text) {
                    std::collections::hash_map::Entry::Occupied(at) => Some(*at.get()),
                    std::collections::hash_map::Entry::Vacant(at) => {
                        at.insert(key.span);
                        None
                    }
                }
            };
            if let Some(first) = earlier {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("key `{}` is given more than once", key.value))
                        .label(key.span, "given again here")
                        .label(first, "first given here")
                        .help("keep one of them"),
                );
                continue;
            }
            seen.push((key, value));
        }
        seen
    }

    /// `sign: {key: cosign.key}`, `sbom: true`, `provenance: false`.
    pub(crate) fn supply(&mut self, supply: &mut SupplyDraft, key: &Text, value: &Value) {
        match key.value.as_str() {
            "sign" => {
                let mut sign = SignDraft { key: None, span: value.span };
                for (_, value) in self.map(value, keys(Construct::Sign, Syntax::Yaml), "`sign`") {
                    sign.key = self.string(value);
                }
                if sign.key.is_none() {
                    self.sink.push(
                        Problem::new(Code::Missing, "`sign` needs `key`")
                            .label(value.span, "no key given")
                            .help("write `sign: { key: cosign.key }` (make one with `hephy key generate`)"),
                    );
                }
                supply.sign = Some(sign);
            }
            name => {
                let on = match &value.kind {
                    Kind::Scalar { text, plain: true } => match text.as_str() {
                        "true" | "yes" | "on" => Some(true),
                        "false" | "no" | "off" => Some(false),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(on) = on else {
                    self.sink.push(
                        Problem::new(Code::WrongType, format!("`{name}` is `true` or `false`"))
                            .label(value.span, "not a boolean")
                            .help(format!("write `{name}: true` or `{name}: false`")),
                    );
                    return;
                };
                let on = Some(Spanned::new(on, value.span));
                if name == "sbom" {
                    supply.sbom = on;
                } else {
                    supply.provenance = on;
                }
            }
        }
    }

    pub(crate) fn string(&mut self, value: &Value) -> Option<Text> {
        match &value.kind {
            Kind::Scalar { text, plain } if !(*plain && is_null(text)) => {
                Some(Spanned::new(text.clone(), value.span))
            }
            _ => {
                self.sink.push(
                    Problem::new(Code::WrongType, format!("expected a string, found {}", value.describe()))
                        .label(value.span, value.describe())
                        .help("write a single value here"),
                );
                None
            }
        }
    }

    /// A list of strings; a single string is read as a list of one.
    pub(crate) fn strings(&mut self, value: &Value) -> Vec<Text> {
        match &value.kind {
            Kind::Seq(items) => items.iter().filter_map(|item| self.string(item)).collect(),
            _ => self.string(value).into_iter().collect(),
        }
    }

    fn integer(&mut self, value: &Value) -> Option<Spanned<i128>> {
        let text = self.string(value)?;
        match text.value.parse::<i128>() {
            Ok(n) => Some(Spanned::new(n, text.span)),
            Err(_) => {
                self.sink.push(
                    Problem::new(Code::WrongType, "expected a whole number")
                        .label(text.span, "not a whole number")
                        .help("write a number such as `2`"),
                );
                None
            }
        }
    }

    /// `NAME: value` pairs (build args, environment).
    pub(crate) fn pairs(&mut self, value: &Value) -> Vec<(Text, Text)> {
        self.entries(value, "this setting")
            .into_iter()
            .filter_map(|(k, v)| Some((k, self.string(v)?)))
            .collect()
    }
}

fn list(words: &[&str]) -> String {
    words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use miette::Diagnostic;

    use crate::{SourceFile, Syntax};

    /// A repeated key is reported with both places, in a small map (searched) and in a large
    /// one (indexed).
    #[test]
    fn repeated_keys_are_named_with_both_places() {
        for tasks in [3usize, 40] {
            let mut text = String::from("tasks:\n");
            for i in 0..tasks {
                text.push_str(&format!("  t{i}: {{ run: [\"true\"] }}\n"));
            }
            text.push_str("  t1: { run: [\"false\"] }\n");
            let source = SourceFile::new(std::path::PathBuf::from("hephy.yaml"), Syntax::Yaml, text.as_str());
            let Err(problems) = crate::read(&source) else { panic!("a repeated key is an error") };
            let problem = problems.iter().next().expect("one problem");
            assert_eq!(problem.message(), "key `t1` is given more than once", "{tasks} tasks");
            let spans: Vec<usize> = problem.labels().expect("labels").map(|l| l.offset()).collect();
            let first = text.find("  t1:").expect("first") + 2;
            let again = text.rfind("  t1:").expect("again") + 2;
            assert_eq!(spans, vec![again, first], "{tasks} tasks");
        }
    }
}
