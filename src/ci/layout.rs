//! How a plan's nodes to build become CI jobs: manifests and tags fold into one publish unit per
//! image, units get a dependency level, and when there are more units than a job budget allows
//! (GitHub runs at most 256 jobs per workflow run), the units of one level and one executor are
//! batched into as few jobs as needed. Both the static pipelines and the dynamic workflow's
//! matrices are written from this one [`Layout`]; it knows nothing of YAML.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use hephy_engine::{Action, Graph, NodeIndex, NodeKind, Plan};

/// What runs together in one job when there is room: one image build (per platform), one task
/// run, or one image's publish step (its manifest and its extra tags).
#[derive(Debug)]
struct Unit {
    /// Its nodes, in plan order.
    nodes: Vec<NodeIndex>,
    /// The executor its nodes run on.
    executor: Arc<str>,
    /// The units it waits for.
    deps: BTreeSet<usize>,
    /// 0 for units that wait for none, else one more than the highest of its dependencies.
    level: usize,
}

/// One job of a pipeline (or one entry of a level's matrix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its name: the node id of a single build or task, the image (manifest) id of a publish
    /// step, or `level L EXECUTOR I/N` for a batch.
    pub(crate) name: String,
    /// The executor its nodes run on (its runner labels come from it).
    pub(crate) executor: Arc<str>,
    /// The node ids it runs (`hephy run --exact --only …`), in plan order.
    pub(crate) nodes: Vec<String>,
    /// The same nodes as graph indices.
    pub(crate) indices: Vec<NodeIndex>,
    /// The entries it waits for (indices into [`Layout::entries`]): exactly those holding a
    /// dependency of one of its nodes.
    pub(crate) needs: Vec<usize>,
    /// Its dependency level, from 0: no entry waits for one of the same or a higher level.
    pub(crate) level: usize,
}

/// The jobs of a plan.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// The jobs, by level, then in plan order.
    pub(crate) entries: Vec<Entry>,
    /// How many levels there are (0 when there is nothing to build).
    pub(crate) levels: usize,
    /// How many units there were before batching (the job count with no budget).
    pub(crate) units: usize,
}

/// Why the plan does not fit the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OverBudget {
    /// The fewest jobs the plan can take: one per level and executor.
    pub(crate) needed: usize,
    /// The jobs allowed.
    pub(crate) budget: usize,
}

/// The publish unit a tag belongs to: its image's manifest (a tag's one dependency).
fn manifest_of(graph: &Graph, tag: NodeIndex) -> NodeIndex {
    graph.deps(tag).iter().copied().find(|&d| graph.node(d).kind == NodeKind::Manifest).unwrap_or(tag)
}

fn units(graph: &Graph, plan: &Plan) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    let mut unit_of: HashMap<NodeIndex, usize> = HashMap::new();
    let mut publish: HashMap<NodeIndex, usize> = HashMap::new();
    for step in plan.steps.iter().filter(|s| s.action == Action::Build) {
        let node = graph.node(step.node);
        let key = match node.kind {
            NodeKind::Manifest => Some(step.node),
            NodeKind::Tag => Some(manifest_of(graph, step.node)),
            NodeKind::Image | NodeKind::Task => None,
        };
        let index = match key.and_then(|k| publish.get(&k)) {
            Some(&index) => index,
            None => {
                units.push(Unit {
                    nodes: Vec::new(),
                    executor: Arc::clone(&node.executor),
                    deps: BTreeSet::new(),
                    level: 0,
                });
                if let Some(key) = key {
                    publish.insert(key, units.len() - 1);
                }
                units.len() - 1
            }
        };
        units[index].nodes.push(step.node);
        unit_of.insert(step.node, index);
    }
    for (index, unit) in units.iter_mut().enumerate() {
        unit.deps = unit
            .nodes
            .iter()
            .flat_map(|&n| graph.deps(n))
            .filter_map(|d| unit_of.get(d).copied())
            .filter(|&u| u != index)
            .collect();
    }
    // Units come in plan order, so a unit's dependencies come before it; passes until nothing
    // moves keep this right whatever the order.
    loop {
        let mut moved = false;
        for index in 0..units.len() {
            let level = units[index].deps.iter().map(|&d| units[d].level + 1).max().unwrap_or(0);
            if level != units[index].level {
                units[index].level = level;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    units
}

/// Units that may share a job: a level and an executor.
type Group = (usize, Arc<str>);

/// `n` items split into `parts` runs as even as can be: the sizes of the runs.
fn even_sizes(n: usize, parts: usize) -> impl Iterator<Item = usize> {
    (0..parts).map(move |i| n / parts + usize::from(i < n % parts))
}

/// The jobs for the nodes `plan` builds, at most `budget` of them.
pub(crate) fn layout(graph: &Graph, plan: &Plan, budget: usize) -> Result<Layout, OverBudget> {
    let units = units(graph, plan);
    let levels = units.iter().map(|u| u.level + 1).max().unwrap_or(0);
    // The groups that may share a job: one level, one executor; in plan order within.
    let mut groups: Vec<(Group, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<Group, usize> = HashMap::new();
    let mut by_level: Vec<usize> = (0..units.len()).collect();
    by_level.sort_by_key(|&u| units[u].level);
    for u in by_level {
        let key = (units[u].level, Arc::clone(&units[u].executor));
        let g = *group_of.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(u);
    }
    let largest = groups.iter().map(|(_, members)| members.len()).max().unwrap_or(0);
    if groups.len() > budget {
        return Err(OverBudget { needed: groups.len(), budget });
    }
    // The smallest batch that fits the budget: one unit per job when they all fit.
    let jobs = |size: usize| groups.iter().map(|(_, m)| m.len().div_ceil(size)).sum::<usize>();
    let size = (1..=largest.max(1)).find(|&s| jobs(s) <= budget).unwrap_or(largest.max(1));
    let position: HashMap<NodeIndex, usize> =
        plan.steps.iter().enumerate().map(|(i, s)| (s.node, i)).collect();
    let mut entries = Vec::new();
    let mut entry_of_unit = vec![0usize; units.len()];
    for ((level, executor), members) in &groups {
        let parts = members.len().div_ceil(size);
        let mut rest = members.as_slice();
        for (i, n) in even_sizes(members.len(), parts).enumerate() {
            let (batch, tail) = rest.split_at(n);
            rest = tail;
            let mut nodes: Vec<NodeIndex> =
                batch.iter().flat_map(|&u| units[u].nodes.iter().copied()).collect();
            nodes.sort_by_key(|n| position.get(n).copied().unwrap_or(usize::MAX));
            let name = if batch.len() == 1 {
                // A publish unit is named by its manifest (the image), whichever of its nodes
                // are built.
                let first = graph.node(units[batch[0]].nodes[0]);
                match first.kind {
                    NodeKind::Tag => graph.node(manifest_of(graph, units[batch[0]].nodes[0])).id.to_string(),
                    _ => first.id.to_string(),
                }
            } else {
                format!("level {} {executor} {}/{parts}", level + 1, i + 1)
            };
            for &u in batch {
                entry_of_unit[u] = entries.len();
            }
            entries.push(Entry {
                name,
                executor: Arc::clone(executor),
                nodes: nodes.iter().map(|&n| graph.node(n).id.to_string()).collect(),
                indices: nodes,
                needs: Vec::new(),
                level: *level,
            });
        }
    }
    for (u, unit) in units.iter().enumerate() {
        let entry = entry_of_unit[u];
        for &d in &unit.deps {
            let need = entry_of_unit[d];
            if need != entry && !entries[entry].needs.contains(&need) {
                entries[entry].needs.push(need);
            }
        }
    }
    for entry in &mut entries {
        entry.needs.sort_unstable();
    }
    Ok(Layout { entries, levels, units: units.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_as_even_as_can_be() {
        assert_eq!(even_sizes(10, 3).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(even_sizes(9, 3).collect::<Vec<_>>(), [3, 3, 3]);
        assert_eq!(even_sizes(1, 1).collect::<Vec<_>>(), [1]);
        assert_eq!(even_sizes(2, 2).sum::<usize>(), 2);
    }
}
