//! The plan: per node, in execution order, whether it is built or skipped, and why.
//!
//! Owns [`Plan`], [`Action`] and [`Reason`]. Reasons are data (serializable, one variant per
//! cause); people see them through [`Reason`]'s `Display`. Planning reads the graph and (in later
//! stages) the recorded state; it never runs anything.

use std::fmt;

use petgraph::graph::NodeIndex;

use crate::graph::Graph;

/// What happens to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It is (re)built.
    Build,
    /// It is fresh; nothing to do.
    Skip,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Build => "build",
            Action::Skip => "skip",
        })
    }
}

/// Why a node is built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No successful build of this node is recorded.
    NeverBuilt,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NeverBuilt => f.write_str("never built"),
        }
    }
}

/// One node's entry in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The node.
    pub node: NodeIndex,
    /// Build or skip.
    pub action: Action,
    /// Why it is built (empty when skipped).
    pub reasons: Vec<Reason>,
}

/// Every node of a graph, in execution order, with its action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps, dependencies first.
    pub steps: Vec<Step>,
}

impl Plan {
    /// How many nodes are built.
    pub fn builds(&self) -> usize {
        self.steps.iter().filter(|s| s.action == Action::Build).count()
    }
}

/// Plans `graph` with no recorded state: every node is built because it never was.
pub fn plan(graph: &Graph) -> Plan {
    let steps = graph
        .order()
        .iter()
        .map(|&node| Step { node, action: Action::Build, reasons: vec![Reason::NeverBuilt] })
        .collect();
    Plan { steps }
}
