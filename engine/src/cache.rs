//! The plan cache's replan: when the only change since an all-fresh plan is the content of some
//! input files, each node's step follows from its own changed files and its rebuilt
//! dependencies alone. [`replan_touched`] finds them with the full plan's own [`differences`]
//! (no second copy of how reasons are derived), in work proportional to the change.
//!
//! The stamp ([`PlanCache`](crate::PlanCache), `stamp.rs`) says when this holds; the caller
//! renders the answer. Nothing here touches the disk.

use std::sync::Arc;

use crate::key::InputManifest;
use crate::plan::{Action, Reason, differences};

/// One node of an all-fresh plan, as the cache remembers it.
#[derive(Debug, Clone)]
pub struct TouchedNode<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its dependencies: positions among the nodes (which are in execution order).
    pub deps: &'a [usize],
    /// Its input files whose content changed since: path, digest then, digest now.
    pub changed: Vec<(&'a str, &'a str, &'a str)>,
}

/// Each node's action and reasons, in the order of `nodes`, after their `changed` files: a
/// node with a changed file, or a dependency that rebuilds, rebuilds for exactly the reasons
/// the full plan gives (`input_changed`, then `dependency_rebuilt`); every other node is fresh.
pub fn replan_touched(nodes: &[TouchedNode<'_>]) -> Vec<(Action, Vec<Reason>)> {
    let mut rebuilt = vec![false; nodes.len()];
    let mut out = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let moved = node.deps.iter().any(|&d| rebuilt.get(d).copied().unwrap_or(false));
        if node.changed.is_empty() && !moved {
            out.push((Action::Skip, Vec::new()));
            continue;
        }
        // The parts of its manifests that differ: the changed files, and each dependency as
        // recorded then, and now either as recorded or pending a rebuild.
        let (mut old, mut new) = (InputManifest::default(), InputManifest::default());
        old.files = Arc::new(node.changed.iter().map(|f| (f.0.to_owned(), f.1.to_owned())).collect());
        new.files = Arc::new(node.changed.iter().map(|f| (f.0.to_owned(), f.2.to_owned())).collect());
        for &d in node.deps {
            let Some(dep) = nodes.get(d) else { continue };
            old.deps.insert(dep.id.to_owned(), "recorded");
            let now = if rebuilt[d] { "pending" } else { "recorded" };
            new.deps.insert(dep.id.to_owned(), now);
        }
        let reasons = differences(&old, &new);
        rebuilt[i] = !reasons.is_empty();
        out.push((if rebuilt[i] { Action::Build } else { Action::Skip }, reasons));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A changed file rebuilds its node for `input_changed` (a file whose digest is the same
    /// changes nothing), and its dependents for `dependency_rebuilt`, in dependency id order,
    /// as the full plan words them; the rest stays fresh.
    #[test]
    fn a_changed_file_rebuilds_its_node_and_dependents() {
        let node = |id, deps, changed| TouchedNode { id, deps, changed };
        let nodes = [
            node("a", &[][..], vec![("a/app.txt", "f:11", "f:12"), ("a/Dockerfile", "f:33", "f:33")]),
            node("b", &[][..], vec![]),
            node("c", &[0, 1][..], vec![]),
            node("d", &[1][..], vec![]),
            node("e", &[2, 0][..], vec![("e/run.sh", "f:44", "x:44")]),
        ];
        let changed = |path: &str, old: &str, new: &str| Reason::InputChanged {
            path: path.to_owned(),
            old: old.to_owned(),
            new: new.to_owned(),
        };
        let rebuilt = |node: &str| Reason::DependencyRebuilt { node: node.to_owned() };
        assert_eq!(
            replan_touched(&nodes),
            [
                (Action::Build, vec![changed("a/app.txt", "f:11", "f:12")]),
                (Action::Skip, vec![]),
                (Action::Build, vec![rebuilt("a")]),
                (Action::Skip, vec![]),
                (Action::Build, vec![changed("e/run.sh", "f:44", "x:44"), rebuilt("a"), rebuilt("c")]),
            ]
        );
    }
}
