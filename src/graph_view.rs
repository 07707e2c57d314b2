//! Exports the build graph as Graphviz dot, Mermaid, or JSON.

use hephy_engine::{Graph, Node, NodeKind};
use serde::Serialize;

fn label(node: &Node) -> String {
    match node.kind {
        NodeKind::Image | NodeKind::Task => format!("{}\\n{} on {}", node.id, node.kind, node.executor),
        NodeKind::Manifest | NodeKind::Tag => format!("{}\\n{}", node.id, node.kind),
    }
}

fn shape(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Image => "box",
        NodeKind::Manifest => "box3d",
        NodeKind::Tag => "note",
        NodeKind::Task => "ellipse",
    }
}

/// Graphviz: `hephy graph --format dot | dot -Tsvg > graph.svg`.
pub(crate) fn dot(graph: &Graph) -> String {
    let mut out = String::from("digraph hephy {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
    for &n in graph.order() {
        let node = graph.node(n);
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\", shape={}];\n",
            node.id,
            label(node),
            shape(node.kind)
        ));
    }
    for &n in graph.order() {
        for &d in graph.deps(n) {
            out.push_str(&format!("  \"{}\" -> \"{}\";\n", graph.node(d).id, graph.node(n).id));
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart, for Markdown that renders it (GitHub, GitLab).
pub(crate) fn mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    let key = |n: hephy_engine::NodeIndex| format!("n{}", n.index());
    for &n in graph.order() {
        let node = graph.node(n);
        let text = label(node).replace("\\n", "<br/>");
        let (open, close) = match node.kind {
            NodeKind::Image => ("[", "]"),
            NodeKind::Manifest => ("[[", "]]"),
            NodeKind::Tag => ("{{", "}}"),
            NodeKind::Task => ("(", ")"),
        };
        out.push_str(&format!("  {}{open}\"{text}\"{close}\n", key(n)));
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
}

/// `{"nodes": [...], "edges": [[from, to], ...]}`, nodes in execution order.
pub(crate) fn json(graph: &Graph) -> String {
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
    let mut text = serde_json::to_string_pretty(&JsonGraph { nodes, edges }).unwrap_or_default();
    text.push('\n');
    text
}
