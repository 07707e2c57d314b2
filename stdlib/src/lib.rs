//! hephy's built-in node kinds: what each kind of node does when it runs.
//!
//! Owns [`Stdlib`], the engine's [`Work`] for every node kind: tasks run their argv as a process
//! (no shell) in their own process group, with output to a log file; image, manifest and tag
//! nodes go through builders, which have not landed yet — they fail cleanly with "no builder".
//! Also owns [`builder_identity`], which enters every node's key.

mod task;

use hephy_dsl::Model;
use hephy_engine::{Exclusions, Job, Node, NodeKind, Outcome, Work};

/// The built-in implementation of every node kind.
#[derive(Debug)]
pub struct Stdlib<'m> {
    model: &'m Model,
    exclusions: Exclusions,
}

impl<'m> Stdlib<'m> {
    /// Work for the nodes of `model`; `exclusions` are folders never taken as task outputs.
    pub fn new(model: &'m Model, exclusions: Exclusions) -> Stdlib<'m> {
        Stdlib { model, exclusions }
    }
}

impl Work for Stdlib<'_> {
    fn execute(&self, job: &Job<'_>) -> Outcome {
        match job.node.kind {
            NodeKind::Task => match self.model.tasks.iter().find(|t| *t.name == job.node.name) {
                Some(task) => task::run(task, job, &self.exclusions),
                None => Outcome::Failed { message: format!("task `{}` is not in the graph", job.node.name) },
            },
            NodeKind::Image | NodeKind::Manifest | NodeKind::Tag => Outcome::Failed {
                message: format!(
                    "no builder for {} node `{}`: image builders (buildah, the built-in OCI builder) are not part of this hephy yet",
                    job.node.kind, job.node.id
                ),
            },
        }
    }
}

/// The tool (and its version) that does a node's work; part of every node's key, so changing
/// how a kind of node is built rebuilds it.
pub fn builder_identity(node: &Node) -> String {
    match node.kind {
        NodeKind::Task => "process/1".to_owned(),
        NodeKind::Image => "none/0".to_owned(),
        NodeKind::Manifest | NodeKind::Tag => "registry/0".to_owned(),
    }
}
