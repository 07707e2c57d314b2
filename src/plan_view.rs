//! Renders a [`Plan`] for people (an aligned table) and for programs (the JSON plan of SPEC.md).

use std::collections::BTreeMap;

use hephy_engine::{Action, Reason};
use serde::Serialize;

use crate::session::Session;
use crate::style::Style;

/// The JSON plan: `{"order": [...], "nodes": [...]}`, nodes in execution order.
#[derive(Serialize)]
struct JsonPlan<'a> {
    order: Vec<&'a str>,
    nodes: Vec<JsonNode<'a>>,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    id: &'a str,
    name: &'a str,
    kind: hephy_engine::NodeKind,
    platform: Option<String>,
    target: Option<&'a str>,
    tag: Option<&'a str>,
    executor: &'a str,
    deps: Vec<&'a str>,
    inject: BTreeMap<&'a str, &'a str>,
    action: Action,
    reasons: &'a [Reason],
    key: &'a str,
}

pub(crate) fn json(session: &Session) -> String {
    let (graph, plan) = (&session.graph, &session.plan);
    let nodes = plan
        .steps
        .iter()
        .map(|step| {
            let node = graph.node(step.node);
            JsonNode {
                id: node.id.as_str(),
                name: &node.name,
                kind: node.kind,
                platform: node.platform.as_ref().map(ToString::to_string),
                target: node.target.as_deref(),
                tag: node.tag.as_deref(),
                executor: &node.executor,
                deps: graph.deps(step.node).iter().map(|&d| graph.node(d).id.as_str()).collect(),
                inject: node.inject.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                action: step.action,
                reasons: &step.reasons,
                key: step.key.as_str(),
            }
        })
        .collect();
    let order = plan.steps.iter().map(|s| graph.node(s.node).id.as_str()).collect();
    let mut text = serde_json::to_string_pretty(&JsonPlan { order, nodes }).unwrap_or_default();
    text.push('\n');
    text
}

pub(crate) fn text(session: &Session, style: Style) -> String {
    let (model, graph, plan) = (&session.model, &session.graph, &session.plan);
    let builds = plan.builds();
    let fresh = plan.steps.len() - builds;
    let mut out = format!(
        "{} {} — {} nodes: {} to build, {} fresh\n",
        style.bold("plan"),
        model.path().display(),
        plan.steps.len(),
        builds,
        fresh
    );
    if plan.steps.is_empty() {
        out.push_str("nothing to do: the graph declares no images or tasks\n");
        return out;
    }
    let rows: Vec<[String; 6]> = plan
        .steps
        .iter()
        .map(|step| {
            let node = graph.node(step.node);
            let why = step.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            let needs = graph
                .deps(step.node)
                .iter()
                .map(|d| graph.node(*d).id.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            [
                step.action.to_string(),
                node.id.to_string(),
                node.kind.to_string(),
                node.executor.clone(),
                needs,
                why,
            ]
        })
        .collect();
    let header = ["ACTION", "NODE", "KIND", "EXECUTOR", "NEEDS", "WHY"].map(str::to_owned);
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().chain([&header]).map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let line = |row: &[String; 6], paint: &dyn Fn(usize, String) -> String| {
        let cells: Vec<String> = (0..6)
            .map(|c| if c == 5 { paint(c, row[c].clone()) } else { paint(c, pad(&row[c], widths[c])) })
            .collect();
        format!("  {}\n", cells.join("  ").trim_end())
    };
    out.push('\n');
    out.push_str(&line(&header, &|_, s| style.dim(&s)));
    for row in &rows {
        out.push_str(&line(row, &|c, s| match c {
            0 if row[0] == "build" => style.yellow(&s),
            0 => style.green(&s),
            1 => style.bold(&s),
            3 => style.cyan(&s),
            4 => style.dim(&s),
            _ => s,
        }));
    }
    out
}
