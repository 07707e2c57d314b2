//! Explanations: why a node is (or was) rebuilt, followed back to root causes.
//!
//! Owns [`Explanation`]: a node, whether it is fresh (and since when) or rebuilt, its direct
//! reasons, and for every `dependency_rebuilt` reason the explanation of that dependency, so the
//! chain always ends at causes that are not "a dependency rebuilt" (a file, a setting, a
//! schedule, `--force`, …), as buck2's invalidation tracking does. A node reached again by
//! another path (two images on one base, a manifest over its platform builds) is explained once,
//! at its first mention; later mentions are marked [`Explanation::repeated`] and carry no causes.

use std::collections::HashMap;

use crate::graph::Graph;
use crate::plan::{Action, Plan, Reason};
use crate::state::{NodeStatus, RunNode, Snapshot};

/// Why one node is in the state it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explanation {
    /// The node id.
    pub node: String,
    /// `build` (rebuilds / was rebuilt) or `fresh`; the CLI names a build by its node's kind
    /// (`push` for a manifest or a tag).
    pub action: String,
    /// Its direct reasons.
    pub reasons: Vec<Reason>,
    /// For a fresh node: when its last build finished (seconds since the epoch) and its key.
    pub fresh_since: Option<(i64, String)>,
    /// The explanations of the dependencies named by `dependency_rebuilt` reasons.
    pub causes: Vec<Explanation>,
    /// For a node whose last run failed: that run and what went wrong.
    pub last_failure: Option<LastFailure>,
    /// For a past run: how the node ended in it (`built`, `failed`, `cancelled`, `skipped`,
    /// `cached`, `cutoff`), and the message recorded with a failure, skip or cancellation.
    pub outcome: Option<PastOutcome>,
    /// The run explained, for an explanation of a past run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// Explained above (an earlier explanation or cause names the same node): its reasons are
    /// repeated, its causes are not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
    /// For a node fresh now: how the run that last built it built it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_build: Option<Box<Explanation>>,
}

/// How a node ended in a past run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PastOutcome {
    /// How it ended.
    pub result: NodeStatus,
    /// What the run recorded with it (a failure, why it was skipped or cancelled).
    pub message: Option<String>,
}

/// A node's last failed run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastFailure {
    /// The run.
    pub run: i64,
    /// What went wrong, as the run reported it.
    pub message: String,
}

impl Explanation {
    /// Fills in, down the tree, how each node ended in the run of `nodes`.
    fn with_outcomes(mut self, nodes: &HashMap<&str, &RunNode>) -> Explanation {
        self.outcome = nodes
            .get(self.node.as_str())
            .map(|n| PastOutcome { result: n.result, message: n.message.clone() });
        self.causes = self.causes.into_iter().map(|c| c.with_outcomes(nodes)).collect();
        self
    }

    /// Fills in, down the tree, what the last failed run of each node said.
    fn with_failures(mut self, state: &Snapshot) -> Explanation {
        if self.reasons.contains(&Reason::LastRunFailed) {
            self.last_failure = state
                .failures
                .get(&self.node)
                .map(|f| LastFailure { run: f.run_id, message: f.message.clone() });
        }
        self.causes = self.causes.into_iter().map(|c| c.with_failures(state)).collect();
        self
    }
}

/// Explains `nodes` in `plan`, in that order; a node is explained once, at its first mention.
pub fn explain_plan(
    graph: &Graph,
    plan: &Plan,
    state: &Snapshot,
    nodes: &[petgraph::graph::NodeIndex],
) -> Vec<Explanation> {
    let mut memo = HashMap::new();
    let lookup = |id: &str| {
        let index = graph.find(id)?;
        let step = plan.step(index)?;
        let since = state.records.get(id).map(|r| (r.built_at, r.key.to_string()));
        Some((step.action, step.reasons.to_vec(), since))
    };
    nodes
        .iter()
        .map(|&node| explain_from(&lookup, graph.node(node).id.as_str(), &mut memo).with_failures(state))
        .collect()
}

/// Explains `nodes` as they went in past run `run` (whose history is `history`), in that order,
/// leaving out those the run did not plan; a node is explained once, at its first mention.
pub fn explain_run(run: i64, history: &[RunNode], nodes: &[&str]) -> Vec<Explanation> {
    let by_id: HashMap<&str, &RunNode> = history.iter().map(|n| (n.node.as_str(), n)).collect();
    let mut memo = HashMap::new();
    nodes
        .iter()
        .filter(|node| by_id.contains_key(*node))
        .map(|node| {
            let mut explanation = explain_past(&by_id, node, &mut memo);
            explanation.run = Some(run);
            explanation
        })
        .collect()
}

fn explain_past(
    by_id: &HashMap<&str, &RunNode>,
    node: &str,
    memo: &mut HashMap<String, Explanation>,
) -> Explanation {
    let explanation = explain_from(
        &|id: &str| {
            let n = by_id.get(id)?;
            // A node that was to be built and did not finish (failed, cancelled, skipped) keeps
            // the reasons it was to be built for.
            let action = if matches!(
                n.result,
                NodeStatus::Built
                    | NodeStatus::Failed
                    | NodeStatus::Cancelled
                    | NodeStatus::Stopped
                    | NodeStatus::Skipped
            ) {
                Action::Build
            } else {
                Action::Skip
            };
            Some((action, if action == Action::Build { n.reasons.clone() } else { Vec::new() }, None))
        },
        node,
        memo,
    );
    explanation.with_outcomes(by_id)
}

type Lookup<'a> = dyn Fn(&str) -> Option<(Action, Vec<Reason>, Option<(i64, String)>)> + 'a;

fn explain_from(lookup: &Lookup<'_>, id: &str, memo: &mut HashMap<String, Explanation>) -> Explanation {
    if let Some(done) = memo.get(id) {
        return Explanation { causes: Vec::new(), repeated: true, ..done.clone() };
    }
    let (action, reasons, since) = lookup(id).unwrap_or((Action::Skip, Vec::new(), None));
    // Marked before its causes are explained: a cause that leads back here (it cannot in a DAG,
    // but a damaged history could say so) is a repetition, not a loop.
    let mut explanation = Explanation {
        node: id.to_owned(),
        action: match action {
            Action::Build => "build".to_owned(),
            Action::Skip => "fresh".to_owned(),
        },
        reasons,
        fresh_since: if action == Action::Skip { since } else { None },
        causes: Vec::new(),
        last_failure: None,
        outcome: None,
        run: None,
        repeated: false,
        last_build: None,
    };
    memo.insert(id.to_owned(), explanation.clone());
    explanation.causes = explanation
        .reasons
        .iter()
        .filter_map(|r| match r {
            Reason::DependencyRebuilt { node } => Some(explain_from(lookup, node, memo)),
            _ => None,
        })
        .collect();
    explanation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, deps: &[&str]) -> RunNode {
        let reasons: Vec<Reason> = if deps.is_empty() {
            vec![Reason::NeverBuilt]
        } else {
            deps.iter().map(|d| Reason::DependencyRebuilt { node: (*d).to_owned() }).collect()
        };
        RunNode {
            node: id.to_owned(),
            result: NodeStatus::Built,
            reasons,
            key: None,
            output: None,
            message: None,
            duration_ms: None,
        }
    }

    /// A diamond (two builds on one base, a manifest over both): the base is explained once,
    /// and a node already explained by an earlier top-level explanation is marked, not repeated.
    #[test]
    fn each_node_is_explained_once() {
        let history = [node("base", &[]), node("a", &["base"]), node("b", &["base"]), node("m", &["a", "b"])];
        let found = explain_run(7, &history, &["a", "m", "missing"]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].run, Some(7));
        assert!(!found[0].causes[0].repeated, "base, first mention");
        let m = &found[1];
        assert!(m.causes[0].repeated && m.causes[0].causes.is_empty(), "a was explained above");
        let b = &m.causes[1];
        assert!(!b.repeated);
        assert!(b.causes[0].repeated && b.causes[0].node == "base", "base was explained above");
    }
}
