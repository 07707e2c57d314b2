//! Exports the build graph as Graphviz dot, Mermaid, JSON, or one self-contained HTML page,
//! each node marked with what the plan will do (build or fresh, and why) and how it last ran.

use std::collections::HashMap;

use hephy_dsl::escape::{dot_text, mermaid_text};
use hephy_engine::{Graph, Node, NodeIndex, NodeKind};
use serde::Serialize;

/// What the plan and the state say of one node.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Mark {
    /// `fresh`, `build` or `push`: the plan's words (`plan_view::action_word`).
    pub(crate) action: &'static str,
    /// Why it builds, for people.
    pub(crate) reasons: Vec<String>,
    /// How it ended in the last run that planned it: `built`, `failed`, `cancelled`, …
    pub(crate) last_result: Option<String>,
    /// How long its last build took, in milliseconds.
    pub(crate) duration_ms: Option<i64>,
    /// Its last output (an image digest, or the digest of a task's outputs).
    pub(crate) output: Option<String>,
}

/// Marks by node.
pub(crate) type Marks = HashMap<NodeIndex, Mark>;

/// The plan's line of a node's label: `build: REASONS` (`push: …`) or `fresh`.
fn mark_line(mark: Option<&Mark>) -> Option<String> {
    match mark {
        Some(m) if m.action != "fresh" => Some(format!("{}: {}", m.action, m.reasons.join("; "))),
        Some(_) => Some("fresh".to_owned()),
        None => None,
    }
}

/// The lines of a node's label: its id, and its kind (and executor).
fn label(node: &Node) -> [String; 2] {
    let kind = match node.kind {
        NodeKind::Image | NodeKind::Task => format!("{} on {}", node.kind, node.executor),
        NodeKind::Manifest | NodeKind::Tag => node.kind.to_string(),
    };
    [node.id.to_string(), kind]
}

fn shape(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Image => "box",
        NodeKind::Manifest => "box3d",
        NodeKind::Tag => "note",
        NodeKind::Task => "ellipse",
    }
}

/// Graphviz: `hephy graph --format dot | dot -Tsvg > graph.svg`; nodes to build are filled
/// amber, fresh ones green, with the plan's reasons as their tooltip.
pub(crate) fn dot(graph: &Graph, marks: &Marks) -> String {
    let mut out = String::from("digraph hephy {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
    for &n in graph.order() {
        let node = graph.node(n);
        let mark = marks.get(&n);
        let paint = match mark {
            Some(m) if m.action != "fresh" => ", style=filled, fillcolor=\"#fde68a\"",
            Some(_) => ", style=filled, fillcolor=\"#bbf7d0\"",
            None => "",
        };
        let tooltip =
            mark.map(|m| if m.action == "fresh" { "fresh".to_owned() } else { m.reasons.join("; ") });
        let tooltip = tooltip.map(|t| format!(", tooltip=\"{}\"", dot_text(&t))).unwrap_or_default();
        let action = mark.map(|m| format!("\\n[{}]", m.action)).unwrap_or_default();
        let label = label(node).map(|line| dot_text(&line)).join("\\n");
        out.push_str(&format!(
            "  \"{}\" [label=\"{label}{action}\", shape={}{paint}{tooltip}];\n",
            dot_text(node.id.as_str()),
            shape(node.kind)
        ));
    }
    for &n in graph.order() {
        for &d in graph.deps(n) {
            let (from, to) = (dot_text(graph.node(d).id.as_str()), dot_text(graph.node(n).id.as_str()));
            out.push_str(&format!("  \"{from}\" -> \"{to}\";\n"));
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart, for Markdown that renders it (GitHub, GitLab); nodes to build and fresh
/// ones in two classes, the plan's reasons in their label.
pub(crate) fn mermaid(graph: &Graph, marks: &Marks) -> String {
    let mut out =
        String::from("flowchart LR\n  classDef build fill:#fde68a\n  classDef fresh fill:#bbf7d0\n");
    let key = |n: hephy_engine::NodeIndex| format!("n{}", n.index());
    for &n in graph.order() {
        let node = graph.node(n);
        let text = label(node)
            .into_iter()
            .chain(mark_line(marks.get(&n)))
            .map(|line| mermaid_text(&line))
            .collect::<Vec<_>>()
            .join("<br/>");
        let (open, close) = match node.kind {
            NodeKind::Image => ("[", "]"),
            NodeKind::Manifest => ("[[", "]]"),
            NodeKind::Tag => ("{{", "}}"),
            NodeKind::Task => ("(", ")"),
        };
        let class = match marks.get(&n) {
            Some(m) if m.action != "fresh" => ":::build",
            Some(_) => ":::fresh",
            None => "",
        };
        out.push_str(&format!("  {}{open}\"{text}\"{close}{class}\n", key(n)));
    }
    for &n in graph.order() {
        for &d in graph.deps(n) {
            out.push_str(&format!("  {} --> {}\n", key(d), key(n)));
        }
    }
    out
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    nodes: Vec<JsonNode<'a>>,
    edges: Vec<[&'a str; 2]>,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    id: &'a str,
    name: &'a str,
    kind: NodeKind,
    platform: Option<String>,
    target: Option<&'a str>,
    tag: Option<&'a str>,
    executor: &'a str,
    /// Tags of an image's manifest node.
    tags: Vec<&'a str>,
    /// What the plan will do with it and how it last ran (absent when not planned).
    plan: Option<&'a Mark>,
}

/// `{"nodes": [...], "edges": [[from, to], ...]}`, nodes in execution order, each with its
/// plan action, reasons and last run.
pub(crate) fn json(graph: &Graph, marks: &Marks) -> String {
    let mut text = serde_json::to_string_pretty(&document(graph, marks)).unwrap_or_default();
    text.push('\n');
    text
}

fn document<'a>(graph: &'a Graph, marks: &'a Marks) -> JsonGraph<'a> {
    let nodes = graph
        .order()
        .iter()
        .map(|&n| {
            let node = graph.node(n);
            JsonNode {
                id: node.id.as_str(),
                name: node.name(),
                kind: node.kind,
                platform: node.platform.as_ref().map(ToString::to_string),
                target: node.target.as_deref(),
                tag: node.tag.as_deref(),
                executor: &node.executor,
                tags: if node.kind == NodeKind::Manifest {
                    graph
                        .dependents(n)
                        .iter()
                        .filter(|&&t| graph.node(t).kind == NodeKind::Tag)
                        .filter_map(|&t| graph.node(t).tag.as_deref())
                        .collect()
                } else {
                    Vec::new()
                },
                plan: marks.get(&n),
            }
        })
        .collect();
    let edges = graph
        .order()
        .iter()
        .flat_map(|&n| {
            graph.deps(n).iter().copied().map(move |d| [graph.node(d).id.as_str(), graph.node(n).id.as_str()])
        })
        .collect();
    JsonGraph { nodes, edges }
}

/// One self-contained HTML page (no network at view time): the graph's JSON document, laid out
/// in the page by dagre (`graph_view/dagre.min.js`, MIT, inlined with its licence) into layers,
/// an image's builds, manifest and tags in one collapsible box, edges routed orthogonally
/// through the gaps between layers with arrowheads; each card coloured by what the plan will
/// do, with its last run and duration, the critical path by last durations highlighted; zoom,
/// pan, search and filters; a panel with a node's facts and reasons when it is clicked.
pub(crate) fn html(graph: &Graph, marks: &Marks, title: &str) -> String {
    let data = serde_json::to_string(&document(graph, marks)).unwrap_or_default();
    let title = hephy_dsl::escape::html_text(title);
    let data = hephy_dsl::escape::html_script_json(&data);
    fill(
        include_str!("graph_view/report.html"),
        &[
            ("{{TITLE}}", &title),
            ("{{DATA}}", &data),
            ("{{LAYOUT}}", include_str!("graph_view/dagre.min.js")),
        ],
    )
}

/// `template` with each placeholder replaced by its value, in one pass over the template: a
/// value is never searched for placeholders (a title holding `{{DATA}}` stays text).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some((at, key, value)) = values
        .iter()
        .filter_map(|(key, value)| rest.find(key).map(|at| (at, *key, *value)))
        .min_by_key(|(at, _, _)| *at)
    {
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + key.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once_from_the_template() {
        let page = fill(
            "<t>{{TITLE}}</t><s>{{DATA}}</s>{{TITLE}}",
            &[("{{TITLE}}", "{{DATA}}"), ("{{DATA}}", "[1]")],
        );
        assert_eq!(page, "<t>{{DATA}}</t><s>[1]</s>{{DATA}}");
    }
}
