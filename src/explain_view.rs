//! `hephy explain`: finds what to explain (the current plan, a past run, or for a node fresh now
//! the run that last built it) and renders the chain from each node back to its root causes,
//! each node once.

use hephy_dsl::{Code, Problem, Problems};
use hephy_engine::{Explanation, Graph, NodeStatus, Reason, State};

use crate::commands::load_in;
use crate::session::{self, Selection, Session};
use crate::{FileArg, Format, StateArg, print};

/// Which past run `--run` names: a number, or `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunRef {
    /// The newest run.
    Last,
    /// Run N, as `hephy log` numbers them.
    Id(i64),
}

/// Parses `--run`'s value: `last` or a run number.
pub(crate) fn parse_run(text: &str) -> Result<RunRef, NotARun> {
    if text == "last" {
        return Ok(RunRef::Last);
    }
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(RunRef::Id(id)),
        _ => Err(NotARun),
    }
}

/// `--run` given something that names no run.
#[derive(Debug, thiserror::Error)]
#[error("expected `last` or a run number (`hephy log` lists them)")]
pub(crate) struct NotARun;

/// `hephy explain NODE [--run N|last]`.
pub(crate) fn command(
    node: &str,
    file: &FileArg,
    state: &StateArg,
    run: Option<RunRef>,
    format: Format,
) -> Result<(), crate::Failure> {
    let model = load_in(file, state)?;
    let explanations = match run {
        None => {
            let session = session::open(model, state.dir.as_deref(), &Selection::default())?;
            let nodes = session::nodes_named(&session.model, &session.graph, node)?;
            let mut explanations =
                hephy_engine::explain_plan(&session.graph, &session.plan, &session.snapshot, &nodes);
            last_builds(&session, &mut explanations)?;
            name_actions(&mut explanations, &session.graph);
            explanations
        }
        Some(which) => {
            let graph = hephy_engine::compile(&model);
            let ids: Vec<String> = session::nodes_named(&model, &graph, node)?
                .into_iter()
                .map(|n| graph.node(n).id.to_string())
                .collect();
            let store = State::open(&session::state_dir(&model, state.dir.as_deref()))
                .map_err(crate::Failure::State)?;
            let id = match which {
                RunRef::Id(id) => id,
                RunRef::Last => store.last_run().map_err(crate::Failure::State)?.ok_or_else(|| {
                    input(
                        "there is no run yet".to_owned(),
                        "`hephy run` builds the graph; `hephy explain` without `--run` explains the plan",
                    )
                })?,
            };
            let Some(history) = store.run_nodes(id).map_err(crate::Failure::State)? else {
                return Err(input(format!("there is no run {id}"), "`hephy log` lists the runs"));
            };
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut found = hephy_engine::explain_run(id, &history, &ids);
            if found.is_empty() {
                return Err(input(
                    format!("run {id} built nothing of `{node}`: it was fresh or not planned"),
                    "`hephy explain NODE` without `--run` names the run that last built it; `hephy log` lists the runs",
                ));
            }
            name_actions(&mut found, &graph);
            found
        }
    };
    print(&match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&explanations).unwrap_or_default()),
        Format::Text => text(&explanations),
    });
    Ok(())
}

fn input(message: String, help: &str) -> crate::Failure {
    crate::Failure::Input(Problems::single(
        "hephy",
        Problem::new(Code::UnknownDependency, message).help(help),
    ))
}

/// For each explained node that is fresh now: how the run that last built it built it (the
/// nodes one run built share its explanation's mentions).
fn last_builds(session: &Session, explanations: &mut [Explanation]) -> Result<(), crate::Failure> {
    let mut runs: Vec<i64> = explanations
        .iter()
        .filter(|e| e.action == "fresh")
        .filter_map(|e| session.snapshot.records.get(&e.node).map(|r| r.run_id))
        .collect();
    runs.sort_unstable();
    runs.dedup();
    for run in runs {
        let Some(history) = session.state.run_nodes(run).map_err(crate::Failure::State)? else { continue };
        let fresh: Vec<&str> = explanations
            .iter()
            .filter(|e| e.action == "fresh")
            .filter(|e| session.snapshot.records.get(&e.node).is_some_and(|r| r.run_id == run))
            .map(|e| e.node.as_str())
            .collect();
        let past = hephy_engine::explain_run(run, &history, &fresh);
        for p in past {
            if let Some(e) = explanations.iter_mut().find(|e| e.node == p.node && e.action == "fresh") {
                e.last_build = Some(Box::new(p));
            }
        }
    }
    Ok(())
}

/// Names each build by what it does to its node's kind: `build`, or `push` for a manifest or a
/// tag (the plan's words: [`crate::plan_view::action_word`]).
fn name_actions(explanations: &mut [Explanation], graph: &Graph) {
    for e in explanations {
        if e.action == "build"
            && let Some(index) = graph.find(&e.node)
        {
            e.action =
                crate::plan_view::action_word(graph.node(index).kind, hephy_engine::Action::Build).to_owned();
        }
        name_actions(&mut e.causes, graph);
        if let Some(last) = e.last_build.as_deref_mut() {
            name_actions(std::slice::from_mut(last), graph);
        }
    }
}

/// `manifest-tool@linux/arm64 rebuilds because its dependency curl@linux/arm64 rebuilds`, then
/// each cause indented below, down to the root causes; a node named again says `(see above)`.
pub(crate) fn text(explanations: &[Explanation]) -> String {
    let mut out = String::new();
    for e in explanations {
        line(e, e.run.is_some(), 0, &mut out);
    }
    // Node names, file names and failure messages reach the terminal escaped.
    crate::style::clean(&out).into_owned()
}

fn when(at: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(at).unwrap_or(0)),
    )
    .to_string()
}

fn line(e: &Explanation, past: bool, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    if e.action == "fresh" && past {
        let how = match e.outcome.as_ref().map(|o| o.result) {
            Some(NodeStatus::Cutoff) => "was fresh: its dependencies rebuilt to the same outputs",
            Some(NodeStatus::Cached) => "was found built in the registry",
            _ => "was fresh",
        };
        out.push_str(&format!("{indent}{} {how}\n", e.node));
        return;
    }
    if e.action == "fresh" {
        let key = e.fresh_since.as_ref().map(|(_, key)| format!(" (key {})", &key[..12.min(key.len())]));
        let key = key.unwrap_or_default();
        match (&e.last_build, &e.fresh_since) {
            (Some(last), _) => {
                out.push_str(&format!("{indent}{} is fresh{key}; ", e.node));
                let run = last.run.unwrap_or_default();
                let at =
                    e.fresh_since.as_ref().map(|(at, _)| format!(" ({})", when(*at))).unwrap_or_default();
                if last.action == "fresh" {
                    // Recorded without a build of its own (found in the registry).
                    let rest = format!("in run {run}{at} it {}", how_fresh(last));
                    out.push_str(&format!("{rest}\n"));
                    return;
                }
                let verb = if last.action == "push" { "pushed" } else { "built" };
                out.push_str(&format!("it was {verb} in run {run}{at} because {}\n", reasons(last, true)));
                for cause in &last.causes {
                    line(cause, true, depth + 1, out);
                }
            }
            (_, Some((at, _))) => {
                out.push_str(&format!("{indent}{} is fresh since {}{key}\n", e.node, when(*at)))
            }
            (_, None) => out.push_str(&format!("{indent}{} is fresh\n", e.node)),
        }
        return;
    }
    let first_build = e.reasons.iter().all(|r| matches!(r, Reason::NeverBuilt));
    let outcome = e.outcome.as_ref().map(|o| o.result);
    let push = e.action == "push";
    let verb = match (past, first_build, outcome) {
        (true, _, Some(NodeStatus::Cancelled)) => {
            if push {
                "was not finished: the run was interrupted; it was to be pushed"
            } else {
                "was not finished: the run was interrupted; it was to be built"
            }
        }
        (true, _, Some(NodeStatus::Stopped)) => {
            if push {
                "was stopped halfway: the run was interrupted; it was to be pushed"
            } else {
                "was stopped halfway: the run was interrupted; it was to be built"
            }
        }
        (true, _, Some(NodeStatus::Skipped)) if push => "was skipped; it was to be pushed",
        (true, _, Some(NodeStatus::Skipped)) => "was skipped; it was to be built",
        (true, _, Some(NodeStatus::Failed)) if push => "failed; it was pushed",
        (true, _, Some(NodeStatus::Failed)) => "failed; it was built",
        (true, _, _) if push => "was pushed",
        (true, true, _) => "was built",
        (true, false, _) => "was rebuilt",
        (false, _, _) if push => "is pushed",
        (false, true, _) => "builds",
        (false, false, _) => "rebuilds",
    };
    if e.repeated {
        out.push_str(&format!("{indent}{} {verb} (see above)\n", e.node));
        return;
    }
    out.push_str(&format!("{indent}{} {verb} because {}\n", e.node, reasons(e, past)));
    if let Some(message) =
        e.outcome.as_ref().filter(|o| o.result != NodeStatus::Built).and_then(|o| o.message.as_ref())
    {
        out.push_str(&format!("{indent}  ({message})\n"));
    }
    if let Some(failure) = &e.last_failure {
        out.push_str(&format!("{indent}  run {} failed: {}\n", failure.run, failure.message));
    }
    for cause in &e.causes {
        line(cause, past, depth + 1, out);
    }
}

fn how_fresh(e: &Explanation) -> &'static str {
    match e.outcome.as_ref().map(|o| o.result) {
        Some(NodeStatus::Cached) => "was found built in the registry",
        Some(NodeStatus::Cutoff) => "was fresh: its dependencies rebuilt to the same outputs",
        _ => "was fresh",
    }
}

fn reasons(e: &Explanation, past: bool) -> String {
    e.reasons
        .iter()
        .map(|r| match r {
            Reason::DependencyRebuilt { node } if past => format!("its dependency {node} was rebuilt"),
            Reason::NeverBuilt if past => "it had never been built".to_owned(),
            Reason::NeverBuilt => "it has never been built".to_owned(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", and ")
}
