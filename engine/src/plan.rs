//! The plan: per node, in execution order, whether it is built or skipped, and why.
//!
//! Owns [`Plan`], [`Action`] and [`Reason`]. Reasons are data (serializable, one variant per
//! cause); people see them through [`Reason`]'s `Display`. Planning compares each node's key
//! with the last successful build (the fast path); only on a mismatch are the two input
//! manifests compared, field by field, to name what changed. It never runs anything.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, LazyLock};

use petgraph::graph::NodeIndex;
use rayon::prelude::*;

use crate::graph::{Graph, Node};
use crate::inputs::{Inputs, NodeInputs};
use crate::key::{DepValue, InputManifest, Key, key_of};
use crate::sorted::SortedMap;
use crate::state::{Record, Snapshot};

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No successful build of this node is recorded.
    NeverBuilt,
    /// An input file's content (or mode, or link target) changed.
    InputChanged {
        /// The file, relative to the graph's folder.
        path: String,
        /// Its recorded digest.
        old: String,
        /// Its digest now.
        new: String,
    },
    /// A file joined the inputs.
    InputAdded {
        /// The file.
        path: String,
    },
    /// A file left the inputs.
    InputRemoved {
        /// The file.
        path: String,
    },
    /// A setting of the node changed (an arg, the command, the builder, …).
    SettingChanged {
        /// The setting.
        field: String,
        /// Its recorded value (`None`: it was not set).
        old: Option<String>,
        /// Its value now (`None`: it is no longer set).
        new: Option<String>,
    },
    /// A dependency is rebuilt (or was rebuilt since this node was), so its output may differ.
    DependencyRebuilt {
        /// The dependency's node id.
        node: String,
    },
    /// The upstream ref now points at another commit.
    UpstreamMoved {
        /// The ref.
        #[serde(rename = "ref")]
        reference: String,
        /// The commit it was built from.
        old: String,
        /// The commit it points at now.
        new: String,
    },
    /// An external base image's tag now points at another digest.
    BaseImageMoved {
        /// The base image reference, as the Dockerfile names it.
        image: String,
        /// The digest it was built on.
        old: String,
        /// The digest the tag points at now.
        new: String,
    },
    /// Named by the schedule being run.
    Scheduled {
        /// The schedule.
        schedule: String,
    },
    /// Forced with `--force`.
    Forced,
    /// Its last attempt failed.
    LastRunFailed,
    /// Its declared outputs are missing or were changed since it was built.
    OutputMissing,
    /// Its stored record cannot be decoded (written by another version, or damaged).
    StateUnreadable,
    /// Not built here: the registry already holds its output for this exact key (a node is
    /// then `skip` with this reason).
    CachedInRegistry,
    /// Its inputs differ from those it had at a git revision (`--since`).
    ChangedSince {
        /// The revision.
        rev: String,
        /// The first differing input: a file, or the graph file for a changed setting.
        path: String,
    },
    /// Its inputs cannot be read; the build will report the problem.
    InputsUnreadable {
        /// What went wrong.
        message: String,
    },
}

fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.get(..8).unwrap_or(hex).to_owned()
}

fn show(value: Option<&String>) -> String {
    value.map_or_else(|| "unset".to_owned(), |v| format!("`{v}`"))
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NeverBuilt => f.write_str("never built"),
            Reason::InputChanged { path, old, new } => {
                if old.starts_with("l:") || new.starts_with("l:") {
                    write!(f, "{path} changed ({old} → {new})")
                } else if old.get(..2) != new.get(..2) && short(old) == short(new) {
                    write!(f, "{path} changed mode")
                } else {
                    write!(f, "{path} changed (blake3 {}…→{}…)", short(old), short(new))
                }
            }
            Reason::InputAdded { path } => write!(f, "{path} was added"),
            Reason::InputRemoved { path } => write!(f, "{path} was removed"),
            Reason::SettingChanged { field, old, new } => {
                write!(f, "setting `{field}` changed ({} → {})", show(old.as_ref()), show(new.as_ref()))
            }
            Reason::DependencyRebuilt { node } => write!(f, "its dependency {node} rebuilds"),
            Reason::UpstreamMoved { reference, old, new } => {
                write!(f, "upstream {reference} moved ({}…→{}…)", short(old), short(new))
            }
            Reason::BaseImageMoved { image, old, new } => {
                write!(f, "base image {image} moved ({}…→{}…)", short(old), short(new))
            }
            Reason::Scheduled { schedule } => write!(f, "scheduled by `{schedule}`"),
            Reason::Forced => f.write_str("forced"),
            Reason::LastRunFailed => f.write_str("its last run failed"),
            Reason::OutputMissing => f.write_str("its outputs are missing or changed"),
            Reason::StateUnreadable => f.write_str("its stored state cannot be read"),
            Reason::CachedInRegistry => f.write_str("cached in the registry"),
            Reason::ChangedSince { rev, path } => write!(f, "{path} changed since {rev}"),
            Reason::InputsUnreadable { message } => write!(f, "its inputs cannot be read: {message}"),
        }
    }
}

/// A step's reasons. Borrowed when there are none, or just one that carries nothing (`never
/// built`, `forced`, …): most steps, and then a plan of a million steps makes no million
/// vectors.
pub type Reasons = Cow<'static, [Reason]>;

/// The reasons that carry nothing, each to be borrowed alone.
static ALONE: [Reason; 5] = [
    Reason::NeverBuilt,
    Reason::Forced,
    Reason::CachedInRegistry,
    Reason::OutputMissing,
    Reason::LastRunFailed,
];

thread_local! {
    /// The reasons of the step being planned, found into one vector per thread.
    static FOUND: RefCell<Vec<Reason>> = const { RefCell::new(Vec::new()) };
}

/// The reasons `found`, as a step keeps them; `found`, emptied, goes back for the next step.
fn keep(mut found: Vec<Reason>) -> Reasons {
    let alone = match found.as_slice() {
        [] => Some(&[][..]),
        [one] => ALONE.iter().position(|r| r == one).map(|i| std::slice::from_ref(&ALONE[i])),
        _ => None,
    };
    let kept = alone.map_or_else(
        || {
            // Moved into a vector of their size; the found vector keeps its room.
            let mut owned = Vec::with_capacity(found.len());
            owned.append(&mut found);
            Cow::Owned(owned)
        },
        Cow::Borrowed,
    );
    found.clear();
    FOUND.set(found);
    kept
}

/// One node's entry in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The node.
    pub node: NodeIndex,
    /// Build or skip.
    pub action: Action,
    /// Why it is built (empty when skipped).
    pub reasons: Reasons,
    /// Its key as planned.
    pub key: Key,
    /// Its output, when it is fresh because the registry holds it (`cached_in_registry`).
    pub cached_output: Option<String>,
}

/// Every node of a graph, in execution order, with its action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps, dependencies first.
    pub steps: Vec<Step>,
    /// Per node index, its step's position in `steps`.
    position: Vec<usize>,
    /// Per node index, its own inputs (shared with the [`Inputs`] planned from).
    inputs: Arc<Vec<NodeInputs>>,
}

impl Plan {
    /// How many nodes are built.
    pub fn builds(&self) -> usize {
        self.steps.iter().filter(|s| s.action == Action::Build).count()
    }

    /// The step of `node`.
    pub fn step(&self, node: NodeIndex) -> Option<&Step> {
        self.position(node).and_then(|i| self.steps.get(i))
    }

    /// Where `node`'s step is in `steps`.
    pub fn position(&self, node: NodeIndex) -> Option<usize> {
        self.position.get(node.index()).copied().filter(|&at| at < self.steps.len())
    }

    /// Drops the steps of every node not in `keep` (what a `--group` plan shows: the group's
    /// nodes and their dependencies, nothing else). Only for showing a plan: running one needs
    /// every node's step.
    pub fn retain_nodes(&mut self, keep: &HashSet<NodeIndex>) {
        self.steps.retain(|s| keep.contains(&s.node));
        self.position.iter_mut().for_each(|at| *at = usize::MAX);
        for (at, step) in self.steps.iter().enumerate() {
            self.position[step.node.index()] = at;
        }
    }

    /// The own inputs of `node` (settings and files), without its dependencies, which
    /// [`Plan::manifest`] adds.
    pub fn inputs(&self, node: NodeIndex) -> &NodeInputs {
        self.inputs.get(node.index()).unwrap_or(&*EMPTY)
    }

    /// The inputs `step` was planned with, its dependencies' included (those still to be
    /// rebuilt as `pending:<key>`): the manifest its key is the key of.
    pub fn manifest(&self, step: &Step, graph: &Graph, state: &Snapshot) -> InputManifest {
        with_deps(
            self.inputs(step.node),
            graph.deps(step.node).iter().map(|&dep| {
                let id = graph.node(dep).id.as_str();
                let value = self.step(dep).map_or(DepValue::Output(""), |s| {
                    dep_value(s, s.cached_output.as_deref(), state.records.get(id))
                });
                (id, value)
            }),
        )
    }
}

/// What the user asked for on top of the incremental plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Nodes rebuilt whatever their state (`--force`).
    pub force: HashSet<NodeIndex>,
    /// A schedule being run and the nodes it names.
    pub schedule: Option<(String, HashSet<NodeIndex>)>,
    /// Outputs found in the registry, by node: the key they were built with, and the output.
    pub cached: HashMap<NodeIndex, (Key, String)>,
    /// Nodes whose inputs changed since a revision (`--since`), with the reason to give.
    pub changed: HashMap<NodeIndex, Reason>,
    /// When set, only these nodes may build (a schedule or `--since` and their dependents);
    /// every other node is `skip`, whatever its state.
    pub only: Option<HashSet<NodeIndex>>,
    /// Nodes whose recorded output is gone or damaged ([`missing_outputs`]): they rebuild for
    /// `output_missing`, whatever their key.
    pub missing: HashSet<NodeIndex>,
}

/// Whether a node's recorded output still exists. The engine knows keys, not what an output
/// is: whoever does the nodes' work (`hephy-stdlib`: an image in the OCI layout or the
/// registry) supplies this, and planning asks it once per recorded node, through
/// [`missing_outputs`]. A check must be cheap (a stat of a few files, a `HEAD`), never a
/// rehash of the output; when it cannot tell (a registry out of reach), it says present.
pub trait OutputCheck: Sync {
    /// Whether `output`, recorded as `node`'s last successful build, is still there, whole.
    fn exists(&self, node: &Node, output: &str) -> bool;
}

/// The nodes of `graph` with a record in `state` whose output `check` cannot find, checked in
/// parallel.
pub fn missing_outputs(graph: &Graph, state: &Snapshot, check: &dyn OutputCheck) -> HashSet<NodeIndex> {
    graph
        .order()
        .par_iter()
        .filter(|&&index| {
            let node = graph.node(index);
            state.records.get(node.id.as_str()).is_some_and(|record| !check.exists(node, &record.output))
        })
        .copied()
        .collect()
}

impl PlanOptions {
    /// Adds `roots` and everything that depends on them to a restricted plan's selection.
    pub fn include_dependents_of(&mut self, graph: &Graph, roots: impl IntoIterator<Item = NodeIndex>) {
        let Some(only) = &mut self.only else { return };
        let mut stack: Vec<NodeIndex> = roots.into_iter().collect();
        while let Some(node) = stack.pop() {
            if only.insert(node) {
                stack.extend(graph.dependents(node));
            }
        }
    }

    /// Restricts the plan to `roots` and everything they depend on (`--group`); returns that set.
    pub fn restrict_to_dependencies_of(
        &mut self,
        graph: &Graph,
        roots: impl IntoIterator<Item = NodeIndex>,
    ) -> HashSet<NodeIndex> {
        let mut selected: HashSet<NodeIndex> = HashSet::new();
        let mut stack: Vec<NodeIndex> = roots.into_iter().collect();
        while let Some(node) = stack.pop() {
            if selected.insert(node) {
                stack.extend(graph.deps(node));
            }
        }
        match &mut self.only {
            Some(only) => only.retain(|n| selected.contains(n)),
            None => self.only = Some(selected.clone()),
        }
        selected
    }

    /// Restricts the plan to `roots` and everything that depends on them.
    pub fn restrict_to_dependents_of(&mut self, graph: &Graph, roots: impl IntoIterator<Item = NodeIndex>) {
        let mut selected: HashSet<NodeIndex> = HashSet::new();
        let mut stack: Vec<NodeIndex> = roots.into_iter().collect();
        while let Some(node) = stack.pop() {
            if selected.insert(node) {
                stack.extend(graph.dependents(node));
            }
        }
        match &mut self.only {
            Some(only) => only.retain(|n| selected.contains(n)),
            None => self.only = Some(selected),
        }
    }
}

/// `inputs` with these dependencies (id → value) as its own.
pub(crate) fn with_deps<'a>(
    inputs: &NodeInputs,
    deps: impl Iterator<Item = (&'a str, DepValue<'a>)>,
) -> InputManifest {
    let mut manifest = inputs.manifest();
    manifest.deps = deps.map(|(id, value)| (id.to_owned(), value.to_string())).collect();
    manifest
}

/// The value a dependency contributes to its dependents' manifests: the output the registry
/// holds for it (`cached`, the step's `cached_output`), or its record's, or its key.
pub(crate) fn dep_value<'a>(
    step: &Step,
    cached: Option<&'a str>,
    record: Option<&'a Record>,
) -> DepValue<'a> {
    match (step.action, cached, record) {
        (Action::Skip, Some(output), _) => DepValue::Output(output),
        (Action::Skip, None, Some(record)) => DepValue::Output(&record.output),
        _ => DepValue::Pending(step.key),
    }
}

impl Step {
    /// Whether the registry lookup may decide this node: it would be built only because it has
    /// no (or a different) local record, and every dependency is fresh, so its key is final.
    pub fn wants_lookup(&self, plan: &Plan, graph: &Graph) -> bool {
        self.action == Action::Build
            && self.reasons.iter().all(|r| {
                matches!(
                    r,
                    Reason::NeverBuilt
                        | Reason::InputChanged { .. }
                        | Reason::InputAdded { .. }
                        | Reason::InputRemoved { .. }
                        | Reason::SettingChanged { .. }
                        | Reason::DependencyRebuilt { .. }
                        | Reason::StateUnreadable
                        | Reason::ChangedSince { .. }
                        | Reason::BaseImageMoved { .. }
                        | Reason::UpstreamMoved { .. }
                )
            })
            && graph.deps(self.node).iter().all(|d| plan.step(*d).is_some_and(|s| s.action == Action::Skip))
    }
}

/// Plans `graph`: each node's key is compared with its last successful build.
///
/// A node's key needs its dependencies' steps, so nodes are planned level by level (a level
/// is every node whose dependencies are all in earlier levels), each level in parallel.
pub fn plan(graph: &Graph, inputs: &Inputs, state: &Snapshot, options: &PlanOptions) -> Plan {
    let mut level = vec![0u32; graph.len()];
    let mut levels: Vec<Vec<NodeIndex>> = Vec::new();
    for &index in graph.order() {
        let l = graph.deps(index).iter().map(|d| level[d.index()] + 1).max().unwrap_or(0);
        level[index.index()] = l;
        match levels.get_mut(l as usize) {
            Some(nodes) => nodes.push(index),
            None => levels.push(vec![index]),
        }
    }
    // By node index, its id and what it gives its dependents' keys, once it is planned: one
    // place to look per dependency, not its step, its node and its record.
    let mut values: Vec<(&str, DepValue<'_>)> = (0..graph.len())
        .into_par_iter()
        .map(|i| (graph.node(NodeIndex::new(i)).id.as_str(), DepValue::Output("")))
        .collect();
    // Each level's steps are appended in parallel (`at_level`: where a node's step is), then
    // gathered into execution order in parallel: placing them one by one where they belong
    // took a fifth of the planning of a million nodes.
    let mut by_level: Vec<Step> = Vec::with_capacity(graph.len());
    let mut at_level = vec![0u32; graph.len()];
    let mut level_values: Vec<DepValue<'_>> = Vec::new();
    for nodes in levels {
        let start = by_level.len();
        let mut both = (std::mem::take(&mut by_level), level_values);
        both.par_extend(nodes.par_iter().map(|&index| step(graph, inputs, state, options, index, &values)));
        (by_level, level_values) = both;
        for (at, (index, value)) in (start..).zip(nodes.into_iter().zip(level_values.drain(..))) {
            values[index.index()].1 = value;
            at_level[index.index()] = at as u32;
        }
    }
    // Cloning a step copies it, reasons borrowed, unless its reasons are its own (several, or
    // one that names something): those are copied too.
    let steps: Vec<Step> =
        graph.order().par_iter().map(|n| by_level[at_level[n.index()] as usize].clone()).collect();
    let mut position: Vec<usize> = vec![0; graph.len()];
    for (at, index) in graph.order().iter().enumerate() {
        position[index.index()] = at;
    }
    Plan { steps, position, inputs: inputs.shared() }
}

/// The inputs of a node that has none.
static EMPTY: LazyLock<NodeInputs> = LazyLock::new(NodeInputs::default);

/// Plans one node, whose dependencies' values are in `values`; returns its step and its own
/// value for its dependents.
fn step<'a>(
    graph: &Graph,
    inputs: &Inputs,
    state: &'a Snapshot,
    options: &'a PlanOptions,
    index: NodeIndex,
    values: &[(&'a str, DepValue<'a>)],
) -> (Step, DepValue<'a>) {
    let record = state.records.get(graph.node(index).id.as_str());
    let step = plan_step(graph, inputs, state, record, options, index, values);
    // The step's cached output is a copy of the one in `options`, which outlives the plan.
    let cached =
        step.cached_output.as_ref().and(options.cached.get(&index)).map(|(_, output)| output.as_str());
    let value = dep_value(&step, cached, record);
    (step, value)
}

fn plan_step<'a>(
    graph: &Graph,
    inputs: &Inputs,
    state: &Snapshot,
    record: Option<&Record>,
    options: &PlanOptions,
    index: NodeIndex,
    values: &[(&'a str, DepValue<'a>)],
) -> Step {
    let node = graph.node(index);
    let own = inputs.get(index);
    let inputs = own.unwrap_or(&*EMPTY);
    // The key straight from the dependencies' values, which are in id order, as the key's
    // encoding wants them: the map of them is made only to name a change.
    let deps = || {
        graph
            .deps(index)
            .iter()
            .map(|dep| values.get(dep.index()).copied().unwrap_or(("", DepValue::Output(""))))
    };
    let key = key_of(&inputs.settings, &inputs.files, deps());
    let mut reasons = FOUND.take();
    if options.only.as_ref().is_some_and(|only| !only.contains(&index)) {
        // Not selected: it keeps whatever it has (here, or in the registry).
        let cached_output = options.cached.get(&index).filter(|(k, _)| *k == key).map(|(_, o)| o.clone());
        if cached_output.is_some() {
            reasons.push(Reason::CachedInRegistry);
        }
        return Step { node: index, action: Action::Skip, reasons: keep(reasons), key, cached_output };
    }
    if let Some(reason) = options.changed.get(&index) {
        reasons.push(reason.clone());
    }
    if let Some((name, nodes)) = &options.schedule
        && nodes.contains(&index)
    {
        reasons.push(Reason::Scheduled { schedule: name.clone() });
    }
    if options.force.contains(&index) {
        reasons.push(Reason::Forced);
    }
    if let Some(message) = own.and_then(|i| i.error.as_ref()).map(ToString::to_string) {
        reasons.push(Reason::InputsUnreadable { message });
    }
    match record {
        None => {
            reasons.push(Reason::NeverBuilt);
            if state.failures.contains_key(node.id.as_str()) {
                reasons.push(Reason::LastRunFailed);
            }
        }
        Some(record) => {
            if state.failures.contains_key(node.id.as_str()) {
                reasons.push(Reason::LastRunFailed);
            }
            if record.key != key {
                match &record.manifest() {
                    Some(old) => {
                        let old = inputs.upgrade(node.kind, old.clone());
                        reasons.extend(differences(&old, &with_deps(inputs, deps())));
                    }
                    None => reasons.push(Reason::StateUnreadable),
                }
            }
            let changed = own.and_then(|i| i.outputs_now.as_ref()).is_some_and(|now| *now != record.output);
            if changed || options.missing.contains(&index) {
                reasons.push(Reason::OutputMissing);
            }
        }
    }
    let mut action = if reasons.is_empty() { Action::Skip } else { Action::Build };
    let mut cached_output = None;
    if action == Action::Build
        && let Some((cached_key, output)) = options.cached.get(&index)
        && *cached_key == key
    {
        action = Action::Skip;
        reasons.clear();
        reasons.push(Reason::CachedInRegistry);
        cached_output = Some(output.clone());
    }
    Step { node: index, action, reasons: keep(reasons), key, cached_output }
}

/// What differs between the recorded inputs and today's, in a fixed order: settings, files,
/// dependencies.
pub fn differences(old: &InputManifest, new: &InputManifest) -> Vec<Reason> {
    let mut reasons = Vec::new();
    for (field, (a, b)) in union(&old.settings, &new.settings) {
        if let (Some(image), Some(a), Some(b)) = (field.strip_prefix("base."), a, b)
            && a != b
        {
            reasons.push(Reason::BaseImageMoved {
                image: image.to_owned(),
                old: a.to_owned(),
                new: b.to_owned(),
            });
            continue;
        }
        if let ("git.commit", Some(a), Some(b)) = (field, a, b)
            && a != b
        {
            let reference = new.labels.get("git.ref").cloned().unwrap_or_default();
            reasons.push(Reason::UpstreamMoved { reference, old: a.to_owned(), new: b.to_owned() });
            continue;
        }
        if a != b {
            reasons.push(Reason::SettingChanged {
                field: field.to_owned(),
                old: a.map(str::to_owned),
                new: b.map(str::to_owned),
            });
        }
    }
    for (path, (a, b)) in union(&old.files, &new.files) {
        match (a, b) {
            (Some(a), Some(b)) if a != b => {
                reasons.push(Reason::InputChanged {
                    path: path.to_owned(),
                    old: a.to_owned(),
                    new: b.to_owned(),
                });
            }
            (None, Some(_)) => reasons.push(Reason::InputAdded { path: path.to_owned() }),
            (Some(_), None) => reasons.push(Reason::InputRemoved { path: path.to_owned() }),
            _ => {}
        }
    }
    for (dep, (a, b)) in union(&old.deps, &new.deps) {
        match (a, b) {
            (Some(a), Some(b)) if a != b => reasons.push(Reason::DependencyRebuilt { node: dep.to_owned() }),
            (None, Some(_)) | (Some(_), None) => reasons.push(Reason::SettingChanged {
                field: "dependency".to_owned(),
                old: a.map(|_| dep.to_owned()),
                new: b.map(|_| dep.to_owned()),
            }),
            _ => {}
        }
    }
    if reasons.is_empty() && old.key() != new.key() {
        reasons.push(Reason::StateUnreadable);
    }
    reasons
}

fn union<'a>(a: &'a SortedMap, b: &'a SortedMap) -> BTreeMap<&'a str, (Option<&'a str>, Option<&'a str>)> {
    let mut out: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
    for (k, v) in a {
        out.entry(k).or_default().0 = Some(v);
    }
    for (k, v) in b {
        out.entry(k).or_default().1 = Some(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const ABCD: &str = "tasks:\n  a: { run: [\"true\"] }\n  b: { run: [\"true\"], after: [a] }\n  \
                        c: { run: [\"true\"], after: [a, b] }\n  d: { run: [\"true\"], after: [c, a] }\n";

    fn planned(state: &Snapshot) -> (Graph, Inputs, Plan) {
        planned_with(ABCD, state, &PlanOptions::default())
    }

    fn planned_with(graph_text: &str, state: &Snapshot, options: &PlanOptions) -> (Graph, Inputs, Plan) {
        let (_dir, model) = crate::testing::yaml_model(graph_text);
        let graph = crate::compile(&model);
        let inputs = crate::testing::test_inputs(&model, &graph);
        let plan = plan(&graph, &inputs, state, options);
        (graph, inputs, plan)
    }

    /// A record of `step` as built from `manifest`, with `output`.
    fn record(manifest: &InputManifest, output: &str) -> Record {
        Record {
            key: manifest.key(),
            manifest_json: serde_json::to_string(manifest).expect("encodes"),
            output: output.to_owned(),
            built_at: 0,
            duration_ms: 0,
            run_id: 1,
        }
    }

    /// The state after building `graph_text` as a run does: each node recorded (with an output
    /// of its own) once its dependencies are, with their outputs as its inputs.
    fn all_built(graph_text: &str) -> Snapshot {
        let mut state = Snapshot::default();
        loop {
            let (graph, _, plan) = planned_with(graph_text, &state, &PlanOptions::default());
            let skipped = |n: &NodeIndex| plan.step(*n).is_some_and(|s| s.action == Action::Skip);
            let ready: Vec<&Step> = plan
                .steps
                .iter()
                .filter(|s| s.action == Action::Build && graph.deps(s.node).iter().all(skipped))
                .collect();
            if ready.is_empty() {
                return state;
            }
            let records: Vec<(String, Record)> = ready
                .iter()
                .map(|step| {
                    let id = graph.node(step.node).id.to_string();
                    let record = record(&plan.manifest(step, &graph, &state), &format!("blake3:{id}"));
                    (id, record)
                })
                .collect();
            state.records.extend(records);
        }
    }

    /// The key planning computes from the dependencies' steps is the key of the manifest
    /// [`Plan::manifest`] spells out, whether a dependency is pending or fresh.
    #[test]
    fn a_steps_key_is_its_manifests_key() {
        let (graph, _, first) = planned(&Snapshot::default());
        let mut state = Snapshot::default();
        for step in &first.steps {
            let manifest = first.manifest(step, &graph, &state);
            assert_eq!(manifest.key(), step.key);
            assert_eq!(manifest.deps.len(), graph.deps(step.node).len());
        }
        // `a` built (so it is fresh and its output feeds its dependents), `c` built with other
        // inputs (so it rebuilds and names the change).
        let a = graph.find("a").expect("a");
        let c = graph.find("c").expect("c");
        for (node, output) in [(a, "blake3:a-out"), (c, "blake3:c-out")] {
            let step = first.step(node).expect("planned");
            let mut manifest = first.manifest(step, &graph, &state);
            if node == c {
                manifest.deps.insert("b", "blake3:old-b".to_owned());
            }
            let record = Record {
                key: manifest.key(),
                manifest_json: serde_json::to_string(&manifest).expect("encodes"),
                output: output.to_owned(),
                built_at: 0,
                duration_ms: 0,
                run_id: 1,
            };
            state.records.insert(graph.node(node).id.to_string(), record);
        }
        let (graph, _, second) = planned(&state);
        assert_eq!(second.step(a).map(|s| s.action), Some(Action::Skip));
        for step in &second.steps {
            let manifest = second.manifest(step, &graph, &state);
            assert_eq!(manifest.key(), step.key, "{}", graph.node(step.node).id);
        }
        let reasons = &second.step(c).expect("planned").reasons;
        assert!(reasons.contains(&Reason::DependencyRebuilt { node: "b".to_owned() }), "{reasons:?}");
    }

    /// Recorded builds from today's inputs plan as fresh, with no reasons; what the user asks
    /// for (`--force`, a schedule) and what the state holds (a failure, missing outputs) add
    /// their reasons, and a forced node's dependents rebuild because it does.
    #[test]
    fn options_and_state_add_their_reasons() {
        let (graph, _, first) = planned(&Snapshot::default());
        assert!(first.steps.iter().all(|s| *s.reasons == [Reason::NeverBuilt]));
        let mut state = all_built(ABCD);
        let (_, _, fresh) = planned(&state);
        assert!(fresh.steps.iter().all(|s| s.action == Action::Skip && s.reasons.is_empty()), "{fresh:?}");

        let [a, b, c, d] = ["a", "b", "c", "d"].map(|id| graph.find(id).expect("node"));
        state.failures.insert(
            "c".to_owned(),
            crate::state::Failure { key: Key::ZERO, run_id: 2, message: "exit 1".to_owned() },
        );
        let options = PlanOptions {
            force: HashSet::from([b]),
            schedule: Some(("weekly".to_owned(), HashSet::from([b]))),
            ..PlanOptions::default()
        };
        let (_, _, plan) = planned_with(ABCD, &state, &options);
        let reasons = |n: NodeIndex| plan.step(n).expect("planned").reasons.to_vec();
        assert_eq!(plan.step(a).map(|s| s.action), Some(Action::Skip));
        assert_eq!(reasons(b), [Reason::Scheduled { schedule: "weekly".to_owned() }, Reason::Forced]);
        // `c` failed last time, and its dependency `b` is rebuilt (pending, so its key moved).
        assert_eq!(reasons(c), [Reason::LastRunFailed, Reason::DependencyRebuilt { node: "b".to_owned() }]);
        assert_eq!(reasons(d), [Reason::DependencyRebuilt { node: "c".to_owned() }]);
    }

    /// A node whose recorded output is gone rebuilds for `output_missing`, whatever its key,
    /// and its dependents follow; the check is asked about recorded nodes only.
    #[test]
    fn a_missing_output_rebuilds_its_node() {
        struct Gone(&'static str);
        impl OutputCheck for Gone {
            fn exists(&self, node: &Node, output: &str) -> bool {
                assert_eq!(output, format!("blake3:{}", node.id));
                node.id.as_str() != self.0
            }
        }
        let state = all_built(ABCD);
        let (graph, _, _) = planned(&state);
        let [a, b, c] = ["a", "b", "c"].map(|id| graph.find(id).expect("node"));
        let missing = missing_outputs(&graph, &state, &Gone("b"));
        assert_eq!(missing, HashSet::from([b]));
        assert!(missing_outputs(&graph, &Snapshot::default(), &Gone("b")).is_empty());
        let (_, _, plan) = planned_with(ABCD, &state, &PlanOptions { missing, ..PlanOptions::default() });
        let step = |n: NodeIndex| plan.step(n).expect("planned");
        assert_eq!((step(a).action, step(a).reasons.is_empty()), (Action::Skip, true));
        assert_eq!((step(b).action, &*step(b).reasons), (Action::Build, &[Reason::OutputMissing][..]));
        assert_eq!(&*step(c).reasons, [Reason::DependencyRebuilt { node: "b".to_owned() }]);
    }

    /// `only` leaves every other node alone, whatever its state; an output the registry holds
    /// for a node's exact key skips it, and its dependents take that output as their input.
    #[test]
    fn a_selection_and_the_registry_skip_nodes() {
        let (graph, _, first) = planned(&Snapshot::default());
        let [a, b, c, d] = ["a", "b", "c", "d"].map(|id| graph.find(id).expect("node"));
        let key_of_a = first.step(a).expect("planned").key;
        let options = PlanOptions {
            cached: HashMap::from([(a, (key_of_a, "sha256:in-the-registry".to_owned()))]),
            only: Some(HashSet::from([a, b])),
            ..PlanOptions::default()
        };
        let (_, _, plan) = planned_with(ABCD, &Snapshot::default(), &options);
        let step = |n: NodeIndex| plan.step(n).expect("planned");
        assert_eq!((step(a).action, &*step(a).reasons), (Action::Skip, &[Reason::CachedInRegistry][..]));
        assert_eq!(step(a).cached_output.as_deref(), Some("sha256:in-the-registry"));
        assert_eq!((step(b).action, &*step(b).reasons), (Action::Build, &[Reason::NeverBuilt][..]));
        for n in [c, d] {
            assert_eq!((step(n).action, step(n).reasons.is_empty()), (Action::Skip, true));
        }
        let manifest = plan.manifest(step(b), &graph, &Snapshot::default());
        assert_eq!(manifest.deps.get("a"), Some("sha256:in-the-registry"));
        assert_eq!(manifest.key(), step(b).key);
    }

    /// Each difference between a recorded manifest and today's is named, in a fixed order:
    /// settings (a moved base image or upstream commit by name), files, dependencies.
    #[test]
    fn differences_name_each_change() {
        let manifest = |settings: &[(&str, &str)], files: &[(&str, &str)], deps: &[(&str, &str)]| {
            let map = |pairs: &[(&str, &str)]| {
                pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<SortedMap>()
            };
            InputManifest {
                settings: map(settings),
                files: Arc::new(map(files)),
                deps: map(deps),
                labels: BTreeMap::from([("git.ref".to_owned(), "v2".to_owned())]),
            }
        };
        let old = manifest(
            &[("args.V", "1"), ("base.alpine:3", "sha256:aa"), ("git.commit", "c1"), ("gone", "x")],
            &[("Dockerfile", "f:11"), ("old.txt", "f:22"), ("run.sh", "f:33")],
            &[("base@linux/amd64", "blake3:b1"), ("lint", "blake3:l1")],
        );
        let new = manifest(
            &[("args.V", "2"), ("base.alpine:3", "sha256:bb"), ("git.commit", "c2"), ("new", "y")],
            &[("Dockerfile", "f:12"), ("new.txt", "f:44"), ("run.sh", "x:33")],
            &[("base@linux/amd64", "pending:00"), ("tool", "blake3:t1")],
        );
        let owned = |s: &str| s.to_owned();
        let changed = |field: &str, old: Option<&str>, new: Option<&str>| Reason::SettingChanged {
            field: owned(field),
            old: old.map(owned),
            new: new.map(owned),
        };
        assert_eq!(
            differences(&old, &new),
            [
                changed("args.V", Some("1"), Some("2")),
                Reason::BaseImageMoved {
                    image: owned("alpine:3"),
                    old: owned("sha256:aa"),
                    new: owned("sha256:bb")
                },
                Reason::UpstreamMoved { reference: owned("v2"), old: owned("c1"), new: owned("c2") },
                changed("gone", Some("x"), None),
                changed("new", None, Some("y")),
                Reason::InputChanged { path: owned("Dockerfile"), old: owned("f:11"), new: owned("f:12") },
                Reason::InputAdded { path: owned("new.txt") },
                Reason::InputRemoved { path: owned("old.txt") },
                Reason::InputChanged { path: owned("run.sh"), old: owned("f:33"), new: owned("x:33") },
                Reason::DependencyRebuilt { node: owned("base@linux/amd64") },
                changed("dependency", Some("lint"), None),
                changed("dependency", None, Some("tool")),
            ]
        );
        assert_eq!(differences(&old, &old), []);
    }

    /// A graph of many levels where every step carries its own reasons: the steps come out in
    /// execution order, each found at its node, its reasons its own.
    #[test]
    fn steps_are_in_execution_order_with_their_own_reasons() {
        let mut text = String::from("tasks:\n");
        for i in 0..300u32 {
            text.push_str(&format!("  t{i}: {{ run: [\"true\", \"{i}\"]"));
            if i > 0 {
                let deps: BTreeSet<u32> = [i / 3, i * 7 / 11].into();
                let deps: Vec<String> = deps.iter().map(|d| format!("t{d}")).collect();
                text.push_str(&format!(", after: [{}]", deps.join(", ")));
            }
            text.push_str(" }\n");
        }
        let (graph, _, first) = planned_with(&text, &Snapshot::default(), &PlanOptions::default());
        // Recorded with another builder: every node names that setting, and nothing else (its
        // dependencies' pending keys are the ones recorded).
        let mut state = Snapshot::default();
        for step in &first.steps {
            let mut manifest = first.manifest(step, &graph, &state);
            manifest.settings.insert("builder", "test/0");
            state.records.insert(graph.node(step.node).id.to_string(), record(&manifest, "blake3:out"));
        }
        let (_, _, plan) = planned_with(&text, &state, &PlanOptions::default());
        let order: Vec<NodeIndex> = plan.steps.iter().map(|s| s.node).collect();
        // Planned level by level, but not in that order: the levels interleave in id order.
        let mut level = vec![0; graph.len()];
        for &n in graph.order() {
            level[n.index()] = graph.deps(n).iter().map(|d| level[d.index()] + 1).max().unwrap_or(0);
        }
        let mut by_level = order.clone();
        by_level.sort_by_key(|n| level[n.index()]);
        assert_ne!(by_level, order);
        assert_eq!(order, graph.order());
        for &node in graph.order() {
            let step = plan.step(node).expect("planned");
            assert_eq!(step.node, node);
            assert_eq!(step.key, first.step(node).expect("planned").key);
            assert!(matches!(step.reasons, Cow::Owned(_)));
            assert_eq!(
                *step.reasons,
                [Reason::SettingChanged {
                    field: "builder".to_owned(),
                    old: Some("test/0".to_owned()),
                    new: Some("test/1".to_owned())
                }]
            );
        }
    }
}
