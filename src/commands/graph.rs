//! `hephy graph`: the build graph marked with the plan, as dot, Mermaid, JSON or HTML.

use std::path::Path;

use hephy_engine::State;

use crate::commands::{emit, load_in};
use crate::session::Session;
use crate::{Failure, FileArg, GraphFormat, SelectArgs, StateArg, graph_view, plan_view, session};

/// `hephy graph`: the build graph, marked with the plan.
pub(crate) fn command(
    file: &FileArg,
    state: &StateArg,
    select: &SelectArgs,
    format: GraphFormat,
    output: Option<&Path>,
) -> Result<(), Failure> {
    let model = load_in(file, state)?;
    let session = session::open(model, state.dir.as_deref(), &select.selection())?;
    let marks = graph_marks(&session);
    let graph = &session.graph;
    let text = match format {
        GraphFormat::Dot => graph_view::dot(graph, &marks),
        GraphFormat::Mermaid => graph_view::mermaid(graph, &marks),
        GraphFormat::Json => graph_view::json(graph, &marks),
        GraphFormat::Html => graph_view::html(graph, &marks, &session.model.path().display().to_string()),
    };
    emit(output, &text)?;
    Ok(())
}

/// What `hephy graph` marks each node with: the plan's action and reasons, and the last run.
fn graph_marks(session: &Session) -> graph_view::Marks {
    let last: std::collections::HashMap<String, String> = session
        .state
        .last_run()
        .ok()
        .flatten()
        .and_then(|run| session.state.run_nodes(run).ok().flatten())
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.node, n.result.to_string()))
        .collect();
    let mut built = std::collections::HashMap::new();
    session
        .plan
        .steps
        .iter()
        .map(|step| {
            let id = session.graph.node(step.node).id.as_str();
            let record = session.snapshot.records.get(id);
            let mark = graph_view::Mark {
                action: plan_view::action_word(session.graph.node(step.node).kind, step.action),
                reasons: step.reasons.iter().map(ToString::to_string).collect(),
                // Not in the last run (fresh there): how the run that built it ended it.
                last_result: last.get(id).cloned().or_else(|| {
                    let run = record?.run_id;
                    built.entry(run).or_insert_with(|| run_results(&session.state, run)).get(id).cloned()
                }),
                duration_ms: record.map(|r| r.duration_ms),
                output: record.map(|r| r.output.clone()).filter(|o| !o.is_empty()),
            };
            (step.node, mark)
        })
        .collect()
}

/// How each node ended in run `run` (none if it cannot be read).
fn run_results(state: &State, run: i64) -> std::collections::HashMap<String, String> {
    let nodes = state.run_nodes(run).ok().flatten().unwrap_or_default();
    nodes.into_iter().map(|n| (n.node, n.result.to_string())).collect()
}
