//! hephy's engine: from a validated model to what runs, in which order, and why.
//!
//! The phases, each a type produced by one function:
//!
//! | phase | function | type |
//! |---|---|---|
//! | compile | [`compile`] | [`Graph`]: a petgraph DAG of [`Node`]s (image × platform × target, manifests, tags, tasks) |
//! | plan | [`plan()`] | [`Plan`]: per node, [`Action`] and typed [`Reason`]s, in execution order |
//!
//! The engine depends on `hephy-dsl` for the model and never on the CLI: it prints nothing.

mod graph;
mod plan;

pub use graph::{Graph, LOCAL_EXECUTOR, Node, NodeId, NodeKind, compile};
pub use petgraph::graph::NodeIndex;
pub use plan::{Action, Plan, Reason, Step, plan};
