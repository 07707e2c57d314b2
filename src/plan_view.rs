//! Renders a [`Plan`] for people (an aligned table) and for programs (the JSON plan of SPEC.md).

use std::borrow::Cow;
use std::collections::BTreeMap;

use hephy_engine::{Action, NodeKind, Reason};
use serde::Serialize;

use crate::style::{Style, clean_line};
use hephy_stdlib::session::Session;

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
    /// `fresh`, `build` or `push`: [`action_word`].
    action: &'static str,
    reasons: &'a [Reason],
    key: hephy_engine::Key,
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
                name: node.name(),
                kind: node.kind,
                platform: node.platform.as_ref().map(ToString::to_string),
                target: node.target.as_deref(),
                tag: node.tag.as_deref(),
                executor: &node.executor,
                deps: graph.deps(step.node).iter().map(|&d| graph.node(d).id.as_str()).collect(),
                inject: node.inject.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                action: action_word(node.kind, step.action),
                reasons: &step.reasons,
                key: step.key,
            }
        })
        .collect();
    let order = plan.steps.iter().map(|s| graph.node(s.node).id.as_str()).collect();
    let mut text = serde_json::to_string_pretty(&JsonPlan { order, nodes }).unwrap_or_default();
    text.push('\n');
    text
}

/// One row of the plan's table: action, node, kind, executor, needs, why.
pub(crate) type Row<'a> = [Cow<'a, str>; 6];

pub(crate) fn text(session: &Session, style: Style) -> String {
    let (graph, plan) = (&session.graph, &session.plan);
    let rows: Vec<Row<'_>> = plan
        .steps
        .iter()
        .map(|step| {
            let node = graph.node(step.node);
            let why = step.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            let needs = graph
                .deps(step.node)
                .iter()
                .map(|d| graph.node(*d).id.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            [
                Cow::Borrowed(action_word(node.kind, step.action)),
                clean_line(node.id.as_str()),
                Cow::Borrowed(node.kind.as_str()),
                clean_line(&node.executor),
                Cow::Owned(clean_line(&needs).into_owned()),
                Cow::Owned(clean_line(&why).into_owned()),
            ]
        })
        .collect();
    table(&session.model.path().display().to_string(), &rows, style)
}

/// The text plan the plan cache worked out from its memo (`steps`, in plan order).
pub(crate) fn replanned(graph: &str, steps: &[hephy_engine::Replanned], style: Style) -> String {
    let rows: Vec<Row<'_>> = steps
        .iter()
        .map(|step| {
            let why = step.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            [
                Cow::Borrowed(match (step.action, step.kind.as_str()) {
                    (Action::Build, "manifest" | "tag") => "push",
                    (action, _) => action_word(NodeKind::Image, action),
                }),
                Cow::Borrowed(step.id.as_str()),
                Cow::Borrowed(step.kind.as_str()),
                Cow::Borrowed(step.executor.as_str()),
                Cow::Owned(step.needs.join(", ")),
                Cow::Owned(why),
            ]
        })
        .collect();
    table(graph, &rows, style)
}

/// What the plan says will happen to a node of `kind`, in every output's words: `fresh`
/// (nothing), else `build` (an image, a task) or `push` (a manifest, a tag: an index or a tag
/// written to the registry or the image layout).
pub(crate) fn action_word(kind: NodeKind, action: Action) -> &'static str {
    match (action, kind) {
        (Action::Skip, _) => "fresh",
        (Action::Build, NodeKind::Manifest | NodeKind::Tag) => "push",
        (Action::Build, NodeKind::Image | NodeKind::Task) => "build",
    }
}

/// The plan as people read it: a summary line, then the table of `rows` (each line trimmed at
/// the end, so a row without reasons has no trailing blanks).
pub(crate) fn table(graph: &str, rows: &[Row<'_>], style: Style) -> String {
    // Pushes (a manifest, a tag) count as builds here: the work the run does.
    let builds = rows.iter().filter(|r| r[0] != "fresh").count();
    let fresh = rows.len() - builds;
    let mut out = format!(
        "{} {} — {} nodes: {} to build, {} fresh\n",
        style.bold("plan"),
        clean_line(graph),
        rows.len(),
        builds,
        fresh
    );
    if rows.is_empty() {
        out.push_str("nothing to do: the graph declares no images or tasks\n");
        return out;
    }
    let header: Row<'_> = ["ACTION", "NODE", "KIND", "EXECUTOR", "NEEDS", "WHY"].map(Cow::Borrowed);
    let mut widths = [0usize; 6];
    for row in rows.iter().chain([&header]) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let natural = widths;
    let fitted = style.width().is_some_and(|w| fit(&mut widths, w));
    out.reserve(rows.len() * (widths.iter().sum::<usize>() + 16));
    out.push('\n');
    push_line(&mut out, &header, &widths, style.color(), |_, s| style.dim(s));
    for row in rows {
        let shortened;
        let row = if fitted && (row[4].chars().count() > widths[4] || row[5].chars().count() > widths[5]) {
            shortened = [
                row[0].clone(),
                row[1].clone(),
                row[2].clone(),
                row[3].clone(),
                Cow::Owned(shorten(&row[4], widths[4])),
                Cow::Owned(shorten(&row[5], widths[5])),
            ];
            &shortened
        } else {
            row
        };
        push_line(&mut out, row, &widths, style.color(), |c, s| match c {
            0 if row[0] != "fresh" => style.yellow(s),
            0 => style.green(s),
            1 => style.bold(s),
            3 => style.cyan(s),
            4 => style.dim(s),
            _ => s.to_owned(),
        });
    }
    if fitted && (natural[4] > widths[4] || natural[5] > widths[5]) {
        out.push_str(&style.dim(&format!(
            "\n  … shortened to fit {} columns: `--wide` shows all, `hephy explain NODE` every reason\n",
            style.width().unwrap_or_default()
        )));
    }
    out
}

/// Narrows the NEEDS and WHY columns (4 and 5) so a line fits in `width` columns, keeping the
/// others whole and each of the two at least 12 wide; whether anything had to narrow.
fn fit(widths: &mut [usize; 6], width: usize) -> bool {
    // Two leading blanks and two between each pair of columns.
    let fixed: usize = 2 + widths[..4].iter().sum::<usize>() + 2 * 5;
    let line = fixed + widths[4] + widths[5];
    if line <= width {
        return false;
    }
    let budget = width.saturating_sub(fixed).max(24);
    let needs = widths[4].min((budget * 2 / 5).max(12));
    widths[5] = widths[5].min(budget - needs).max(12);
    widths[4] = needs.max(12).min(widths[4]);
    true
}

/// `text` in at most `width` characters: whole, or cut with `…`.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.truncate(out.trim_end_matches([' ', ',', ';']).len());
    out.push('…');
    out
}

/// One line of the table: cells padded to `widths` (all but the last), painted, trimmed.
fn push_line(
    out: &mut String,
    row: &Row<'_>,
    widths: &[usize; 6],
    color: bool,
    paint: impl Fn(usize, &str) -> String,
) {
    let start = out.len();
    out.push_str("  ");
    let mut padded = String::new();
    for (c, cell) in row.iter().enumerate() {
        if c > 0 {
            out.push_str("  ");
        }
        padded.clear();
        padded.push_str(cell);
        if c < 5 {
            let pad = widths[c].saturating_sub(cell.chars().count());
            padded.extend(std::iter::repeat_n(' ', pad));
        }
        if color {
            out.push_str(&paint(c, &padded));
        } else {
            out.push_str(&padded);
        }
    }
    let end = start + out[start..].trim_end().len();
    out.truncate(end);
    out.push('\n');
}

/// The name of the view `style` renders (the plan cache's stamp stores renderings of one
/// view and answers only that view).
pub(crate) fn view(style: Style) -> &'static str {
    if style.color() { "ansi" } else { "plain" }
}
