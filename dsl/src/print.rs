//! The printer: a [`Document`] → graph text, in KDL or YAML.
//!
//! The inverse of the front-ends: reading what it prints gives the same document (spans
//! aside; in YAML, where `from` and `after` are two keys, an image's `from` dependencies come
//! before its `after` ones, and several `from` of one image are one list). It writes every
//! value quoted where the syntax could read it otherwise, and checks nothing: a document that
//! does not analyze prints as faithfully as one that does. Comments are the caller's.

use std::fmt::Write as _;

use crate::document::{DependencyDraft, Document, ImageDraft, MatrixDraft, SupplyDraft, TaskDraft, Text};
use crate::escape::{kdl_string, yaml_scalar};
use crate::source::Syntax;

/// `doc` as graph text in `syntax`.
pub fn print(doc: &Document, syntax: Syntax) -> String {
    match syntax {
        Syntax::Kdl => kdl(doc),
        Syntax::Yaml => yaml(doc),
    }
}

/// A KDL property key or node name: bare when KDL reads it as this identifier, else quoted.
fn kdl_key(key: &str) -> String {
    let bare = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(key, "true" | "false" | "null" | "inf" | "nan");
    if bare { key.to_owned() } else { kdl_string(key) }
}

pub(crate) fn kdl_values(values: &[Text]) -> String {
    values.iter().map(|v| kdl_string(v)).collect::<Vec<_>>().join(" ")
}

pub(crate) fn kdl_pairs(pairs: &[(Text, Text)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", kdl_key(k), kdl_string(v))).collect::<Vec<_>>().join(" ")
}

/// ` key="value"` for each property given.
pub(crate) fn kdl_properties(props: &[(&str, Option<&Text>)]) -> String {
    props.iter().filter_map(|(k, v)| v.map(|v| format!(" {k}={}", kdl_string(v)))).collect()
}

fn kdl(doc: &Document) -> String {
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: Option<&Text>| {
        if let Some(v) = value {
            let _ = writeln!(out, "{key} {}", kdl_string(v));
        }
    };
    line(&mut out, "registry", doc.registry.as_ref());
    if let Some(n) = &doc.naming {
        let preset = n.preset.as_ref().map(|p| format!(" {}", kdl_string(p))).unwrap_or_default();
        let props = kdl_properties(&[
            ("repository", n.repository.as_ref()),
            ("platform", n.platform.as_ref()),
            ("manifest", n.manifest.as_ref()),
            ("tag", n.tag.as_ref()),
        ]);
        let _ = writeln!(out, "naming{preset}{props}");
    }
    line(&mut out, "builder", doc.builder.as_ref());
    line(&mut out, "timeout", doc.timeout.as_ref());
    if let Some(p) = doc.platforms.as_ref().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "platforms {}", kdl_values(p));
    }
    if !doc.variables.is_empty() {
        let _ = writeln!(out, "variables {}", kdl_pairs(&doc.variables));
    }
    if !doc.mirrors.is_empty() {
        let _ = writeln!(out, "mirrors {}", kdl_values(&doc.mirrors));
    }
    for (key, pairs) in [("labels", &doc.labels), ("annotations", &doc.annotations)] {
        if !pairs.is_empty() {
            let _ = writeln!(out, "{key} {}", kdl_pairs(pairs));
        }
    }
    kdl_supply(&mut out, "", &doc.supply);
    let section = |out: &mut String, started: bool| {
        if started && !out.is_empty() {
            out.push('\n');
        }
    };
    section(&mut out, !doc.executors.is_empty());
    for e in &doc.executors {
        let jobs = e.jobs.as_ref().map(|j| format!(" jobs={}", j.value)).unwrap_or_default();
        let props = kdl_properties(&[("platform", e.platform.as_ref())]);
        let rest = kdl_properties(&[
            ("gitlab-tags", e.gitlab_tags.as_ref()),
            ("runs-on", e.runs_on.as_ref()),
            ("ssh", e.ssh.as_ref()),
            ("buildkit", e.buildkit.as_ref()),
            ("kubernetes", e.kubernetes.as_ref()),
        ]);
        let _ = writeln!(out, "executor {}{props}{jobs}{rest}", kdl_string(&e.name));
    }
    section(&mut out, !doc.secrets.is_empty());
    for s in &doc.secrets {
        let props = kdl_properties(&[("env", s.env.as_ref()), ("file", s.file.as_ref())]);
        let _ = writeln!(out, "secret {}{props}", kdl_string(&s.name));
    }
    for template in &doc.templates {
        section(&mut out, true);
        out.push_str(&kdl_block("template", template));
    }
    for image in &doc.images {
        section(&mut out, true);
        out.push_str(&kdl_image(image));
    }
    for task in &doc.tasks {
        section(&mut out, true);
        out.push_str(&kdl_task(task));
    }
    for s in &doc.schedules {
        section(&mut out, true);
        let _ = writeln!(out, "schedule {} {{", kdl_string(&s.name));
        if !s.rebuild.is_empty() {
            let _ = writeln!(out, "    rebuild {}", kdl_values(&s.rebuild));
        }
        if s.refresh {
            out.push_str("    refresh\n");
        }
        out.push_str("}\n");
    }
    for g in &doc.groups {
        section(&mut out, true);
        let _ = writeln!(out, "group {} {{", kdl_string(&g.name));
        if !g.members.is_empty() {
            let _ = writeln!(out, "    members {}", kdl_values(&g.members));
        }
        out.push_str("}\n");
    }
    out
}

/// One `image "NAME" { … }` block, ending in a newline.
pub(crate) fn kdl_image(image: &ImageDraft) -> String {
    kdl_block("image", image)
}

/// `KEYWORD "NAME" { … }` of an image's (or a template's) settings: each key by its row of
/// the image key table (`image_keys!`).
fn kdl_block(keyword: &str, image: &ImageDraft) -> String {
    let mut out = format!("{keyword} {} {{\n", kdl_string(&image.name));
    image.print_keys(Syntax::Kdl, "    ", &mut out);
    out.push_str("}\n");
    out
}

/// `sign key="…"`, `sbom #true`, `provenance #false`, each as given.
pub(crate) fn kdl_supply(out: &mut String, indent: &str, supply: &SupplyDraft) {
    if let Some(sign) = &supply.sign {
        let _ = writeln!(out, "{indent}sign{}", kdl_properties(&[("key", sign.key.as_ref())]));
    }
    for (key, on) in [("sbom", &supply.sbom), ("provenance", &supply.provenance)] {
        if let Some(on) = on {
            let _ = writeln!(out, "{indent}{key} #{}", on.value);
        }
    }
}

/// `sign: { key: … }`, `sbom: true`, `provenance: false`, each as given.
pub(crate) fn yaml_supply(out: &mut String, indent: &str, supply: &SupplyDraft) {
    if let Some(sign) = &supply.sign {
        let _ = writeln!(out, "{indent}sign: {}", yaml_flow(&[("key", sign.key.as_ref())]));
    }
    for (key, on) in [("sbom", &supply.sbom), ("provenance", &supply.provenance)] {
        if let Some(on) = on {
            let _ = writeln!(out, "{indent}{key}: {}", on.value);
        }
    }
}

pub(crate) fn kdl_deps(out: &mut String, deps: &[DependencyDraft]) {
    for dep in deps {
        match &dep.from {
            Some(from) => {
                let props = kdl_properties(&[
                    ("arg", from.arg.as_ref()),
                    ("registry-arg", from.registry_arg.as_ref()),
                    ("target", from.target.as_ref()),
                    ("context", from.context.as_ref()),
                    ("platform", from.platform.as_ref()),
                ]);
                let _ = writeln!(out, "    from {}{props}", kdl_string(&dep.name));
            }
            None => {
                let _ = writeln!(out, "    after {}", kdl_string(&dep.name));
            }
        }
    }
}

/// `matrix { KEY "v1" "v2" }`.
pub(crate) fn kdl_matrix(out: &mut String, matrix: Option<&MatrixDraft>) {
    if let Some(m) = matrix {
        out.push_str("    matrix {\n");
        for (key, values) in &m.axes {
            let _ = writeln!(out, "        {} {}", kdl_key(key), kdl_values(values));
        }
        out.push_str("    }\n");
    }
}

fn kdl_task(task: &TaskDraft) -> String {
    let mut out = format!("task {} {{\n", kdl_string(&task.name));
    kdl_matrix(&mut out, task.matrix.as_ref());
    if let Some(run) = task.run.as_ref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "    run {}", kdl_values(run));
    }
    for (key, values) in [("inputs", &task.inputs), ("outputs", &task.outputs)] {
        if !values.is_empty() {
            let _ = writeln!(out, "    {key} {}", kdl_values(values));
        }
    }
    if !task.env.is_empty() {
        let _ = writeln!(out, "    env {}", kdl_pairs(&task.env));
    }
    if let Some(p) = task.platforms.as_ref().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "    platforms {}", kdl_values(p));
    }
    kdl_deps(&mut out, &task.deps);
    if let Some(t) = &task.timeout {
        let _ = writeln!(out, "    timeout {}", kdl_string(t));
    }
    if !task.secrets.is_empty() {
        let _ = writeln!(out, "    secrets {}", kdl_values(&task.secrets));
    }
    out.push_str("}\n");
    out
}

pub(crate) fn yaml_list(values: &[Text]) -> String {
    format!("[{}]", values.iter().map(|v| yaml_scalar(v)).collect::<Vec<_>>().join(", "))
}

/// `key: value` for each value given, at `indent`.
fn yaml_fields(out: &mut String, indent: &str, fields: &[(&str, Option<&Text>)]) {
    for (key, value) in fields {
        if let Some(v) = value {
            let _ = writeln!(out, "{indent}{key}: {}", yaml_scalar(v));
        }
    }
}

fn yaml(doc: &Document) -> String {
    let mut out = String::new();
    yaml_fields(&mut out, "", &[("registry", doc.registry.as_ref())]);
    if let Some(n) = &doc.naming {
        out.push_str("naming:\n");
        yaml_fields(
            &mut out,
            "  ",
            &[
                ("preset", n.preset.as_ref()),
                ("repository", n.repository.as_ref()),
                ("platform", n.platform.as_ref()),
                ("manifest", n.manifest.as_ref()),
                ("tag", n.tag.as_ref()),
            ],
        );
    }
    yaml_fields(&mut out, "", &[("builder", doc.builder.as_ref()), ("timeout", doc.timeout.as_ref())]);
    if let Some(p) = &doc.platforms {
        let _ = writeln!(out, "platforms: {}", yaml_list(p));
    }
    if !doc.variables.is_empty() {
        let _ = writeln!(out, "variables: {}", yaml_flow_pairs(&doc.variables));
    }
    if !doc.mirrors.is_empty() {
        let _ = writeln!(out, "mirrors: {}", yaml_list(&doc.mirrors));
    }
    for (key, pairs) in [("labels", &doc.labels), ("annotations", &doc.annotations)] {
        if !pairs.is_empty() {
            let _ = writeln!(out, "{key}: {}", yaml_flow_pairs(pairs));
        }
    }
    yaml_supply(&mut out, "", &doc.supply);
    if !doc.executors.is_empty() {
        out.push_str("\nexecutors:\n");
        for e in &doc.executors {
            let _ = writeln!(out, "  {}:", yaml_scalar(&e.name));
            yaml_fields(&mut out, "    ", &[("platform", e.platform.as_ref())]);
            if let Some(jobs) = &e.jobs {
                let _ = writeln!(out, "    jobs: {}", jobs.value);
            }
            yaml_fields(
                &mut out,
                "    ",
                &[
                    ("gitlab-tags", e.gitlab_tags.as_ref()),
                    ("runs-on", e.runs_on.as_ref()),
                    ("ssh", e.ssh.as_ref()),
                    ("buildkit", e.buildkit.as_ref()),
                    ("kubernetes", e.kubernetes.as_ref()),
                ],
            );
        }
    }
    if !doc.secrets.is_empty() {
        out.push_str("\nsecrets:\n");
        for s in &doc.secrets {
            let _ = writeln!(out, "  {}:", yaml_scalar(&s.name));
            yaml_fields(&mut out, "    ", &[("env", s.env.as_ref()), ("file", s.file.as_ref())]);
        }
    }
    if !doc.templates.is_empty() {
        out.push_str("\ntemplates:\n");
        for template in &doc.templates {
            out.push_str(&yaml_image(template, "  "));
        }
    }
    if !doc.images.is_empty() {
        out.push_str("\nimages:\n");
        for image in &doc.images {
            out.push_str(&yaml_image(image, "  "));
        }
    }
    if !doc.tasks.is_empty() {
        out.push_str("\ntasks:\n");
        for task in &doc.tasks {
            yaml_task(&mut out, task);
        }
    }
    if !doc.schedules.is_empty() {
        out.push_str("\nschedules:\n");
        for s in &doc.schedules {
            let _ = writeln!(out, "  {}:", yaml_scalar(&s.name));
            if !s.rebuild.is_empty() {
                let _ = writeln!(out, "    rebuild: {}", yaml_list(&s.rebuild));
            }
            if s.refresh {
                out.push_str("    refresh: true\n");
            }
        }
    }
    if !doc.groups.is_empty() {
        out.push_str("\ngroups:\n");
        for g in &doc.groups {
            let _ = writeln!(out, "  {}: {}", yaml_scalar(&g.name), yaml_list(&g.members));
        }
    }
    out
}

/// One image's `NAME:` entry of `images:`, each line starting with `indent`: each key by its
/// row of the image key table (`image_keys!`).
pub(crate) fn yaml_image(image: &ImageDraft, indent: &str) -> String {
    let mut out = format!("{indent}{}:\n", yaml_scalar(&image.name));
    image.print_keys(Syntax::Yaml, &format!("{indent}  "), &mut out);
    out
}

/// `{ key: value, … }` of the values given.
pub(crate) fn yaml_flow(fields: &[(&str, Option<&Text>)]) -> String {
    let fields: Vec<String> =
        fields.iter().filter_map(|(k, v)| v.map(|v| format!("{k}: {}", yaml_scalar(v)))).collect();
    if fields.is_empty() { "{}".to_owned() } else { format!("{{ {} }}", fields.join(", ")) }
}

/// `{ NAME: value, … }`.
pub(crate) fn yaml_flow_pairs(pairs: &[(Text, Text)]) -> String {
    let fields: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{}: {}", yaml_scalar(k), yaml_scalar(v))).collect();
    format!("{{ {} }}", fields.join(", "))
}

/// `from:` (each name once: a block, or a list of blocks for several) and `after:`.
pub(crate) fn yaml_deps(out: &mut String, indent: &str, deps: &[DependencyDraft]) {
    let mut names: Vec<&str> = Vec::new();
    for dep in deps.iter().filter(|d| d.from.is_some()) {
        if !names.contains(&dep.name.as_str()) {
            names.push(dep.name.as_str());
        }
    }
    if !names.is_empty() {
        let _ = writeln!(out, "{indent}from:");
    }
    for name in names {
        let blocks: Vec<String> = deps
            .iter()
            .filter(|d| d.name.as_str() == name)
            .filter_map(|d| d.from.as_ref())
            .map(|from| {
                yaml_flow(&[
                    ("arg", from.arg.as_ref()),
                    ("registry-arg", from.registry_arg.as_ref()),
                    ("target", from.target.as_ref()),
                    ("context", from.context.as_ref()),
                    ("platform", from.platform.as_ref()),
                ])
            })
            .collect();
        let body = if blocks.len() == 1 { blocks.concat() } else { format!("[{}]", blocks.join(", ")) };
        let _ = writeln!(out, "{indent}  {}: {body}", yaml_scalar(name));
    }
    let after: Vec<Text> = deps.iter().filter(|d| d.from.is_none()).map(|d| d.name.clone()).collect();
    if !after.is_empty() {
        let _ = writeln!(out, "{indent}after: {}", yaml_list(&after));
    }
}

/// `matrix: { KEY: [v1, v2] }`.
pub(crate) fn yaml_matrix(out: &mut String, indent: &str, matrix: Option<&MatrixDraft>) {
    if let Some(m) = matrix {
        let axes: Vec<String> = m
            .axes
            .iter()
            .map(|(key, values)| format!("{}: {}", yaml_scalar(key), yaml_list(values)))
            .collect();
        let _ = writeln!(out, "{indent}matrix: {{ {} }}", axes.join(", "));
    }
}

fn yaml_task(out: &mut String, task: &TaskDraft) {
    let _ = writeln!(out, "  {}:", yaml_scalar(&task.name));
    yaml_matrix(out, "    ", task.matrix.as_ref());
    if let Some(run) = &task.run {
        let _ = writeln!(out, "    run: {}", yaml_list(run));
    }
    for (key, values) in [("inputs", &task.inputs), ("outputs", &task.outputs)] {
        if !values.is_empty() {
            let _ = writeln!(out, "    {key}: {}", yaml_list(values));
        }
    }
    if !task.env.is_empty() {
        let _ = writeln!(out, "    env: {}", yaml_flow_pairs(&task.env));
    }
    if let Some(p) = &task.platforms {
        let _ = writeln!(out, "    platforms: {}", yaml_list(p));
    }
    yaml_deps(out, "    ", &task.deps);
    yaml_fields(out, "    ", &[("timeout", task.timeout.as_ref())]);
    if !task.secrets.is_empty() {
        let _ = writeln!(out, "    secrets: {}", yaml_list(&task.secrets));
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;
    use crate::source::SourceFile;

    fn read(text: &str, syntax: Syntax) -> Document {
        let file = if syntax == Syntax::Kdl { "hephy.kdl" } else { "hephy.yaml" };
        let source = SourceFile::new(PathBuf::from(file), syntax, text);
        match crate::read(&source) {
            Ok(doc) => doc,
            Err(problems) => panic!("{problems:?}\nin:\n{text}"),
        }
    }

    /// The document's `Debug` text without its spans: what was written, not where.
    fn shape(doc: &Document) -> String {
        let text = format!("{doc:#?}");
        let mut out = String::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim_start().starts_with("span: SourceSpan {") {
                // The span's own lines, to its closing brace.
                for inner in lines.by_ref() {
                    if inner.trim_start().starts_with("},") {
                        break;
                    }
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// `doc` as YAML can hold it: each image's `from` dependencies first (several of one name
    /// together), then its `after` ones.
    fn yaml_order(mut doc: Document) -> Document {
        fn order(deps: &mut [DependencyDraft]) {
            let mut names: Vec<String> = Vec::new();
            for d in deps.iter().filter(|d| d.from.is_some()) {
                if !names.contains(&d.name.value) {
                    names.push(d.name.value.clone());
                }
            }
            let rank = |d: &DependencyDraft| match &d.from {
                Some(_) => names.iter().position(|n| *n == d.name.value).unwrap_or(0),
                None => names.len(),
            };
            deps.sort_by_key(rank);
        }
        doc.images.iter_mut().for_each(|i| order(&mut i.deps));
        doc.tasks.iter_mut().for_each(|t| order(&mut t.deps));
        doc
    }

    fn corpus() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/good"))
            .expect("the good corpus")
            .map(|e| e.expect("an entry").path())
            .collect();
        for example in std::fs::read_dir(root.join("../examples")).expect("the examples") {
            let dir = example.expect("an example").path();
            files
                .extend(["hephy.kdl", "graph.yaml"].map(|f| dir.join(f)).into_iter().filter(|p| p.is_file()));
        }
        files.sort();
        files
    }

    fn round_trip(doc: &Document, what: &str) {
        let kdl = print(doc, Syntax::Kdl);
        assert_eq!(shape(&read(&kdl, Syntax::Kdl)), shape(doc), "{what} through KDL:\n{kdl}");
        let yaml = print(doc, Syntax::Yaml);
        let want = shape(&yaml_order(read(&kdl, Syntax::Kdl)));
        assert_eq!(shape(&read(&yaml, Syntax::Yaml)), want, "{what} through YAML:\n{yaml}");
    }

    /// Printing and reading back gives the same document, for every good graph and example,
    /// in both syntaxes.
    #[test]
    fn every_good_graph_reads_back_as_printed() {
        let files = corpus();
        assert!(files.len() >= 10, "{files:?}");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a graph");
            let syntax = Syntax::from_path(&file).expect("a graph file name");
            round_trip(&read(&text, syntax), &file.display().to_string());
        }
    }

    /// What a front-end tallies of the images and tasks as it reads them is what a walk of the
    /// document finds, for every good graph and example (expansion trusts the tally).
    #[test]
    fn the_front_ends_tally_what_they_read() {
        for file in corpus() {
            let text = std::fs::read_to_string(&file).expect("a graph");
            let doc = read(&text, Syntax::from_path(&file).expect("a graph file name"));
            let walked = crate::document::Tally::of(&doc);
            assert_eq!(doc.tally, Some(walked), "{}", file.display());
        }
    }

    /// The KDL and YAML forms of one graph print the same.
    #[test]
    fn both_syntaxes_of_a_graph_print_alike() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good");
        let kdl = read(&std::fs::read_to_string(root.join("every-key.kdl")).expect("kdl"), Syntax::Kdl);
        let yaml = read(&std::fs::read_to_string(root.join("every-key.yaml")).expect("yaml"), Syntax::Yaml);
        assert_eq!(print(&yaml_order(kdl), Syntax::Yaml), print(&yaml, Syntax::Yaml));
    }

    #[test]
    fn kdls_other_newlines_are_escaped() {
        // KDL reads U+2028 and U+2029 as newlines: raw, they would end the quoted string.
        for value in ["a\u{2028}b", "a\u{2029}b", "a\u{85}b"] {
            let text = format!("registry {}\n", kdl_string(value));
            assert!(!text.contains('\u{2028}') && !text.contains('\u{2029}'), "{text:?}");
            let doc = read(&text, Syntax::Kdl);
            assert_eq!(doc.registry.as_ref().map(|r| r.value.as_str()), Some(value));
        }
    }

    proptest! {
        /// Any text in any value survives printing: quotes, escapes, controls, every line end
        /// KDL or YAML knows, non-ASCII.
        #[test]
        fn any_value_reads_back(name in "[a-z][a-z0-9-]{0,8}", value in prop_oneof![any::<String>(), crate::escape::tests::hostile()], key in "[A-Za-z_][A-Za-z0-9_]{0,6}") {
            let kdl = format!(
                "registry {}\nimage {} {{\n    context {}\n    args {}={}\n    tags {}\n}}\n",
                kdl_string(&value), kdl_string(&name), kdl_string(&value), kdl_key(&key), kdl_string(&value), kdl_string(&value)
            );
            let doc = read(&kdl, Syntax::Kdl);
            round_trip(&doc, &kdl);
        }
    }
}
