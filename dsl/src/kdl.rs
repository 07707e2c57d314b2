//! The KDL front-end: `hephy.kdl` text → [`Document`].
//!
//! Owns the KDL spelling of every construct (nodes, arguments, properties) but an image's keys,
//! which the shapes of the image key table's rows read (`image_keys!` in `analyze/images.rs`,
//! with the helpers of [`Reader`]), and reports shape errors: KDL syntax errors, unknown nodes
//! and properties, wrong value types, repeated settings.
//! Meaning (names, paths, platforms) is checked later by the analyzer, the same for both syntaxes.

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use crate::diagnostic::{Code, Problem, Sink, did_you_mean};
use crate::document::{
    DependencyDraft, Document, ExecutorDraft, FromDraft, GroupDraft, ImageDraft, MatrixDraft, NamingDraft,
    ScheduleDraft, SecretDraft, SignDraft, SupplyDraft, Tally, TaskDraft, Text,
};
use crate::limits::MAX_NESTING as MAX_DEPTH;
use crate::schema::{Construct, keys};
use crate::source::{Spanned, Syntax};

/// Parses KDL text into a draft document; `None` if the text is not KDL (problems in `sink`).
pub(crate) fn parse(text: &str, sink: &mut Sink) -> Option<Document> {
    // The KDL parser recurses per level of `{ }`: refuse absurd nesting before it can exhaust
    // the stack (no graph needs more than three levels).
    if let Some(offset) = too_deep(text, MAX_DEPTH) {
        sink.push(
            Problem::new(Code::Syntax, format!("blocks are nested more than {MAX_DEPTH} levels deep"))
                .label(SourceSpan::from((offset, 1)), "this `{` is too deep")
                .help("a graph file nests at most `image { from … }`: remove the extra levels"),
        );
        return None;
    }
    let kdl = match KdlDocument::parse_v2(text) {
        Ok(kdl) => kdl,
        Err(err) => {
            // The parser may report one mistake twice (an unclosed `{` is "no closing `}` for
            // child block" at the brace and "closing `}` was not found" right after it): a
            // report that starts where an earlier one with the same label ends is the same one.
            let mut said: Vec<(String, usize)> = Vec::new();
            for d in err.diagnostics {
                let message = d.message.unwrap_or_else(|| "invalid KDL".to_owned());
                let label = d.label.unwrap_or_else(|| "here".to_owned());
                let (start, end) = (d.span.offset(), d.span.offset() + d.span.len());
                if said.iter().any(|(l, e)| *l == label && start.abs_diff(*e) <= 1) {
                    continue;
                }
                said.push((label.clone(), end));
                let help = d.help.unwrap_or_else(|| {
                    "hephy reads KDL v2 (https://kdl.dev): strings in double quotes, `#true`/`#false`"
                        .to_owned()
                });
                sink.push(
                    Problem::new(Code::Syntax, format!("invalid KDL: {}", lowercase_first(&message)))
                        .label(d.span, label)
                        .help(help),
                );
            }
            return None;
        }
    };
    let mut reader = Reader { sink };
    reader.no_type_annotations(kdl.nodes());
    Some(reader.document(&kdl))
}

/// The offset of the first `{` nested deeper than `max`, skipping strings and comments.
fn too_deep(text: &str, max: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // A quoted string (escapes skipped); raw and multi-line strings close on a
                // quote too, which is all this count needs.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                // A raw string (`#"…"#`, `##"…"##`, multi-line too) has no escapes and closes
                // at a quote followed by as many `#`; any other `#` (`#true`) is skipped.
                let hashes = bytes[i..].iter().take_while(|b| **b == b'#').count();
                i += hashes;
                if bytes.get(i) == Some(&b'"') {
                    i += 1;
                    while i < bytes.len()
                        && !(bytes[i] == b'"'
                            && bytes.get(i + 1..i + 1 + hashes).is_some_and(|h| h.iter().all(|b| *b == b'#')))
                    {
                        i += 1;
                    }
                    i += hashes;
                } else {
                    continue;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if !s.starts_with("KDL") => c.to_lowercase().chain(chars).collect(),
        _ => s.to_owned(),
    }
}

pub(crate) struct Reader<'s> {
    sink: &'s mut Sink,
}

impl Reader<'_> {
    /// Type annotations (`(date)"2024-01-01"`) mean nothing in a graph: reject them rather
    /// than ignore them.
    fn no_type_annotations(&mut self, nodes: &[KdlNode]) {
        for node in nodes {
            let annotations = node.ty().into_iter().chain(node.entries().iter().filter_map(|e| e.ty()));
            for ty in annotations {
                self.sink.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("type annotation `({})` means nothing here", ty.value()),
                    )
                    .label(ty.span(), "a type annotation")
                    .help("remove it: hephy's values are plain strings, numbers and booleans"),
                );
            }
            if let Some(children) = node.children() {
                self.no_type_annotations(children.nodes());
            }
        }
    }

    fn document(&mut self, kdl: &KdlDocument) -> Document {
        let mut doc = Document::default();
        let mut tally = Tally::default();
        for node in kdl.nodes() {
            match node.name().value() {
                "registry" => {
                    if let Some(value) = self.one_string(node) {
                        self.set_once(&mut doc.registry, value, node);
                    }
                }
                "builder" => {
                    if let Some(value) = self.one_string(node) {
                        self.set_once(&mut doc.builder, value, node);
                    }
                }
                "timeout" => {
                    if let Some(value) = self.one_string(node) {
                        self.set_once(&mut doc.timeout, value, node);
                    }
                }
                "mirrors" => doc.mirrors.extend(self.strings(node, 1)),
                "labels" => doc.labels.extend(self.pairs(node)),
                "annotations" => doc.annotations.extend(self.pairs(node)),
                "naming" => {
                    let naming = self.naming(node);
                    self.set_once(&mut doc.naming, naming, node);
                }
                "platforms" => {
                    let list = self.strings(node, 1);
                    self.set_once(&mut doc.platforms, list, node);
                }
                "executor" => doc.executors.extend(self.executor(node)),
                "image" => {
                    if let Some(image) = self.image(node) {
                        tally.image(&image);
                        doc.images.push(image);
                    }
                }
                "task" => {
                    if let Some(task) = self.task(node) {
                        tally.task(&task);
                        doc.tasks.push(task);
                    }
                }
                "schedule" => doc.schedules.extend(self.schedule(node)),
                "group" => doc.groups.extend(self.group(node)),
                "secret" => doc.secrets.extend(self.secret(node)),
                "variables" => doc.variables.extend(self.pairs(node)),
                "template" => doc.templates.extend(self.image(node)),
                "sign" | "sbom" | "provenance" => self.supply(&mut doc.supply, node),
                other => self.unknown_node(node, other, keys(Construct::Graph, Syntax::Kdl), "a graph file"),
            }
        }
        doc.tally = Some(tally);
        doc
    }

    /// `naming ["preset"] repository="…" platform="…" manifest="…" tag="…"`
    fn naming(&mut self, node: &KdlNode) -> NamingDraft {
        self.no_children(node);
        let mut naming = NamingDraft::default();
        let mut positional = node.entries().iter().filter(|e| e.name().is_none());
        naming.preset = positional.next().and_then(|e| self.string(e));
        for (key, entry) in self.properties(node, keys(Construct::Naming, Syntax::Kdl)) {
            let value = self.string(entry);
            match key {
                "repository" => naming.repository = value,
                "platform" => naming.platform = value,
                "manifest" => naming.manifest = value,
                _ => naming.tag = value,
            }
        }
        naming
    }

    fn secret(&mut self, node: &KdlNode) -> Option<SecretDraft> {
        let name = self.name(node)?;
        self.no_children(node);
        let mut secret = SecretDraft { name, env: None, file: None };
        for (key, entry) in self.properties(node, keys(Construct::Secret, Syntax::Kdl)) {
            match key {
                "env" => secret.env = self.string(entry),
                _ => secret.file = self.string(entry),
            }
        }
        Some(secret)
    }

    fn executor(&mut self, node: &KdlNode) -> Option<ExecutorDraft> {
        let name = self.name(node)?;
        self.no_children(node);
        let mut executor = ExecutorDraft::new(name);
        for (key, entry) in self.properties(node, keys(Construct::Executor, Syntax::Kdl)) {
            match key {
                "platform" => executor.platform = self.string(entry),
                "gitlab-tags" => executor.gitlab_tags = self.string(entry),
                "runs-on" => executor.runs_on = self.string(entry),
                "ssh" => executor.ssh = self.string(entry),
                "buildkit" => executor.buildkit = self.string(entry),
                "kubernetes" => executor.kubernetes = self.string(entry),
                _ => match entry.value() {
                    KdlValue::Integer(n) => executor.jobs = Some(Spanned::new(*n, entry.span())),
                    other => self.wrong_type(value_span(entry), "a whole number", other),
                },
            }
        }
        Some(executor)
    }

    fn image(&mut self, node: &KdlNode) -> Option<ImageDraft> {
        let mut image = ImageDraft::new(self.name(node)?);
        for child in self.children(node) {
            // Every key of an image is a row of the image key table (`image_keys!`), whose
            // shape reads it.
            if !image.read_kdl(self, child) {
                let name = child.name().value();
                self.unknown_node(child, name, keys(Construct::Image, Syntax::Kdl), "an `image`");
            }
        }
        Some(image)
    }

    fn task(&mut self, node: &KdlNode) -> Option<TaskDraft> {
        let mut task = TaskDraft::new(self.name(node)?);
        for child in self.children(node) {
            match child.name().value() {
                "run" => {
                    let argv = Spanned::new(self.strings(child, 1), child.span());
                    self.set_once(&mut task.run, argv, child);
                }
                "inputs" => task.inputs.extend(self.strings(child, 1)),
                "outputs" => task.outputs.extend(self.strings(child, 1)),
                "env" => task.env.extend(self.pairs(child)),
                "platforms" => {
                    let list = self.strings(child, 1);
                    self.set_once(&mut task.platforms, list, child);
                }
                "after" => task.deps.extend(self.after(child)),
                "secrets" => task.secrets.extend(self.strings(child, 1)),
                "timeout" => {
                    if let Some(v) = self.one_string(child) {
                        self.set_once(&mut task.timeout, v, child);
                    }
                }
                "matrix" => {
                    let matrix = self.matrix(child);
                    self.set_once(&mut task.matrix, matrix, child);
                }
                other => self.unknown_node(child, other, keys(Construct::Task, Syntax::Kdl), "a `task`"),
            }
        }
        Some(task)
    }

    fn schedule(&mut self, node: &KdlNode) -> Option<ScheduleDraft> {
        let mut schedule = ScheduleDraft { name: self.name(node)?, rebuild: Vec::new(), refresh: false };
        for child in self.children(node) {
            match child.name().value() {
                "rebuild" => schedule.rebuild.extend(self.strings(child, 1)),
                "refresh" => {
                    self.strings(child, 0);
                    schedule.refresh = true;
                }
                other => {
                    self.unknown_node(child, other, keys(Construct::Schedule, Syntax::Kdl), "a `schedule`")
                }
            }
        }
        Some(schedule)
    }

    /// `group "NAME" { members "image" "task" "group"… }`
    fn group(&mut self, node: &KdlNode) -> Option<GroupDraft> {
        let mut group = GroupDraft { name: self.name(node)?, members: Vec::new() };
        for child in self.children(node) {
            match child.name().value() {
                "members" => group.members.extend(self.strings(child, 1)),
                other => self.unknown_node(child, other, keys(Construct::Group, Syntax::Kdl), "a `group`"),
            }
        }
        Some(group)
    }

    /// A node that takes only properties (`ko`, `sign`): a value without a name is reported,
    /// with `write` as the help.
    pub(crate) fn only_properties(&mut self, node: &KdlNode, write: &str) {
        if let Some(value) = node.entries().iter().find(|e| e.name().is_none()) {
            self.sink.push(
                Problem::new(Code::UnknownKey, format!("`{}` takes only properties", node.name().value()))
                    .label(value.span(), "a value without a name")
                    .help(write),
            );
        }
    }

    /// `sign key="cosign.key"`, `sbom [#true|#false]`, `provenance [#true|#false]`.
    pub(crate) fn supply(&mut self, supply: &mut SupplyDraft, node: &KdlNode) {
        match node.name().value() {
            "sign" => {
                let sign = self.sign(node);
                self.set_once(&mut supply.sign, sign, node);
            }
            "sbom" => {
                if let Some(on) = self.flag(node) {
                    self.set_once(&mut supply.sbom, on, node);
                }
            }
            _ => {
                if let Some(on) = self.flag(node) {
                    self.set_once(&mut supply.provenance, on, node);
                }
            }
        }
    }

    /// `sign key="cosign.key"`
    fn sign(&mut self, node: &KdlNode) -> SignDraft {
        self.only_properties(node, "write `sign key=\"cosign.key\"`");
        self.no_children(node);
        let mut sign = SignDraft { key: None, span: node.span() };
        for (_, entry) in self.properties(node, keys(Construct::Sign, Syntax::Kdl)) {
            sign.key = self.string(entry);
        }
        if sign.key.is_none() && node.entries().iter().all(|e| e.name().is_none()) {
            self.sink.push(
                Problem::new(Code::Missing, "`sign` needs `key`")
                    .label(node.span(), "no key given")
                    .help("write `sign key=\"cosign.key\"` (make one with `hephy key generate`)"),
            );
        }
        sign
    }

    /// A switch: the node alone is on; `#true` or `#false` says which.
    fn flag(&mut self, node: &KdlNode) -> Option<Spanned<bool>> {
        self.properties(node, &[]);
        self.no_children(node);
        let mut positional = node.entries().iter().filter(|e| e.name().is_none());
        let value = match positional.next() {
            None => Some(Spanned::new(true, node.span())),
            Some(entry) => match entry.value() {
                KdlValue::Bool(on) => Some(Spanned::new(*on, entry.span())),
                other => {
                    self.wrong_type(value_span(entry), "`#true` or `#false`", other);
                    None
                }
            },
        };
        for extra in positional {
            self.sink.push(
                Problem::new(Code::UnknownKey, format!("`{}` takes one value", node.name().value()))
                    .label(extra.span(), "unexpected value")
                    .help(format!(
                        "write `{} #true` or `{} #false`",
                        node.name().value(),
                        node.name().value()
                    )),
            );
        }
        value
    }

    /// `from "curl" arg="BASE" [target="debug"] [context="base"] [platform="build"]`
    pub(crate) fn from(&mut self, node: &KdlNode) -> Option<DependencyDraft> {
        let name = self.first_arg(node);
        self.no_children(node);
        let mut from = FromDraft {
            arg: None,
            target: None,
            registry_arg: None,
            context: None,
            platform: None,
            span: node.span(),
        };
        for (key, entry) in self.properties(node, keys(Construct::From, Syntax::Kdl)) {
            let value = self.string(entry);
            match key {
                "arg" => from.arg = value,
                "target" => from.target = value,
                "context" => from.context = value,
                "platform" => from.platform = value,
                _ => from.registry_arg = value,
            }
        }
        Some(DependencyDraft { name: name?, from: Some(from) })
    }

    /// `matrix { service "nova" "glance"; variant "api" "worker" }`: each child is a key and
    /// its values.
    pub(crate) fn matrix(&mut self, node: &KdlNode) -> MatrixDraft {
        let mut axes = Vec::new();
        for child in self.children(node) {
            let key = Spanned::new(child.name().value().to_owned(), child.name().span());
            axes.push((key, self.strings(child, 1)));
        }
        if axes.is_empty() {
            self.sink.push(
                Problem::new(Code::Missing, "`matrix` needs at least one key")
                    .label(node.span(), "an empty matrix")
                    .help("write `matrix { service \"nova\" \"glance\" }`"),
            );
        }
        MatrixDraft { axes, span: node.span() }
    }

    /// `after "lint" "curl"`
    pub(crate) fn after(&mut self, node: &KdlNode) -> Vec<DependencyDraft> {
        self.strings(node, 1).into_iter().map(|name| DependencyDraft { name, from: None }).collect()
    }

    // --- shapes -------------------------------------------------------------------------------

    /// The node's name: its one positional string argument.
    pub(crate) fn name(&mut self, node: &KdlNode) -> Option<Text> {
        let kind = node.name().value();
        let name = self.first_arg(node);
        if name.is_none() && !node.entries().iter().any(|e| e.name().is_none()) {
            self.sink.push(
                Problem::new(Code::Missing, format!("`{kind}` needs a name"))
                    .label(node.name().span(), "no name given")
                    .help(format!("write `{kind} \"name\"`")),
            );
        }
        name
    }

    /// The first positional argument as a string; any further positional argument is an error.
    pub(crate) fn first_arg(&mut self, node: &KdlNode) -> Option<Text> {
        let mut positional = node.entries().iter().filter(|e| e.name().is_none());
        let first = positional.next().and_then(|e| self.string(e));
        for extra in positional {
            self.sink.push(
                Problem::new(Code::UnknownKey, format!("`{}` takes one value", node.name().value()))
                    .label(extra.span(), "unexpected value")
                    .help("remove it, or give each value its own node"),
            );
        }
        if first.is_none() && node.entries().iter().all(|e| e.name().is_some()) {
            self.sink.push(
                Problem::new(Code::Missing, format!("`{}` needs a value", node.name().value()))
                    .label(node.span(), "no value given")
                    .help(format!("write `{} \"…\"`", node.name().value())),
            );
        }
        first
    }

    /// Exactly one string argument, no properties, no children.
    pub(crate) fn one_string(&mut self, node: &KdlNode) -> Option<Text> {
        let value = self.first_arg(node);
        self.properties(node, &[]);
        self.no_children(node);
        value
    }

    /// At least `min` string arguments, no properties, no children.
    pub(crate) fn strings(&mut self, node: &KdlNode, min: usize) -> Vec<Text> {
        self.properties(node, &[]);
        self.no_children(node);
        let values: Vec<Text> =
            node.entries().iter().filter(|e| e.name().is_none()).filter_map(|e| self.string(e)).collect();
        if node.entries().iter().filter(|e| e.name().is_none()).count() < min {
            let kind = node.name().value();
            self.sink.push(
                Problem::new(Code::Missing, format!("`{kind}` needs at least {min} value"))
                    .label(node.span(), "no value given")
                    .help(format!("write `{kind} \"…\"`")),
            );
        }
        values
    }

    /// `KEY="value"` properties (build args, environment), no positional arguments.
    pub(crate) fn pairs(&mut self, node: &KdlNode) -> Vec<(Text, Text)> {
        self.no_children(node);
        let mut pairs = Vec::new();
        for entry in node.entries() {
            match entry.name() {
                Some(key) => {
                    if let Some(value) = self.string(entry) {
                        pairs.push((Spanned::new(key.value().to_owned(), key.span()), value));
                    }
                }
                None => self.sink.push(
                    Problem::new(
                        Code::WrongType,
                        format!("`{}` takes `NAME=\"value\"` pairs", node.name().value()),
                    )
                    .label(entry.span(), "a value without a name")
                    .help(format!("write `{} NAME=\"value\"`", node.name().value())),
                ),
            }
        }
        pairs
    }

    /// The node's properties whose key is in `allowed`; others are reported.
    pub(crate) fn properties<'n>(
        &mut self,
        node: &'n KdlNode,
        allowed: &[&str],
    ) -> Vec<(&'n str, &'n KdlEntry)> {
        let mut found = Vec::new();
        for entry in node.entries() {
            let Some(key) = entry.name() else { continue };
            if allowed.contains(&key.value()) {
                found.push((key.value(), entry));
            } else {
                let what = node.name().value();
                let help = did_you_mean(key.value(), allowed.iter().copied()).or_else(|| {
                    Some(if allowed.is_empty() {
                        format!("`{what}` takes no properties")
                    } else {
                        format!("`{what}` takes {}", list(allowed))
                    })
                });
                self.sink.push(
                    Problem::new(Code::UnknownKey, format!("unknown property `{}` on `{what}`", key.value()))
                        .label(key.span(), "unknown property")
                        .maybe_help(help),
                );
            }
        }
        found
    }

    pub(crate) fn children<'n>(&mut self, node: &'n KdlNode) -> &'n [KdlNode] {
        self.properties(node, &[]);
        node.children().map_or(&[], KdlDocument::nodes)
    }

    pub(crate) fn no_children(&mut self, node: &KdlNode) {
        if let Some(children) = node.children() {
            self.sink.push(
                Problem::new(Code::WrongType, format!("`{}` takes no block", node.name().value()))
                    .label(children.span(), "unexpected block")
                    .help("remove the `{ … }` block"),
            );
        }
    }

    pub(crate) fn string(&mut self, entry: &KdlEntry) -> Option<Text> {
        match entry.value() {
            KdlValue::String(s) => Some(Spanned::new(s.clone(), value_span(entry))),
            other => {
                self.wrong_type(value_span(entry), "a string", other);
                None
            }
        }
    }

    fn wrong_type(&mut self, span: SourceSpan, expected: &str, found: &KdlValue) {
        let found_kind = match found {
            KdlValue::String(_) => "a string",
            KdlValue::Integer(_) | KdlValue::Float(_) => "a number",
            KdlValue::Bool(_) => "a boolean",
            KdlValue::Null => "#null",
        };
        let help = if expected == "a string" {
            "write it in double quotes, e.g. `\"1.10\"`".to_owned()
        } else {
            format!("write {expected}")
        };
        self.sink.push(
            Problem::new(Code::WrongType, format!("expected {expected}, found {found_kind}"))
                .label(span, found_kind)
                .help(help),
        );
    }

    pub(crate) fn set_once<T>(&mut self, slot: &mut Option<T>, value: T, node: &KdlNode) {
        if slot.is_some() {
            let name = node.name().value();
            self.sink.push(
                Problem::new(Code::Conflict, format!("`{name}` is given more than once"))
                    .label(node.span(), "given again here")
                    .help(format!("keep one `{name}`")),
            );
        } else {
            *slot = Some(value);
        }
    }

    fn unknown_node(&mut self, node: &KdlNode, name: &str, allowed: &[&str], inside: &str) {
        let help = did_you_mean(name, allowed.iter().copied())
            .unwrap_or_else(|| format!("{inside} may contain {}", list(allowed)));
        self.sink.push(
            Problem::new(Code::UnknownKey, format!("unknown node `{name}` in {inside}"))
                .label(node.name().span(), "unknown node")
                .help(help),
        );
    }
}

/// The span of an entry's value (for `key="value"`, just `"value"`).
fn value_span(entry: &KdlEntry) -> SourceSpan {
    let span = entry.span();
    match entry.name() {
        Some(key) => {
            let start = key.span().offset() + key.span().len() + 1;
            let end = span.offset() + span.len();
            if start < end { SourceSpan::new(start.into(), end - start) } else { span }
        }
        None => span,
    }
}

fn list(words: &[&str]) -> String {
    words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
}
