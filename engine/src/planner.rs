//! The one planning entry point: [`Planner::plan`] takes the model, a [`Selection`] (what the
//! user asked for, by name) and a [`Resolver`] (what planning must ask the world: upstream
//! commits, base images, recorded outputs, the registry, builder identity, the graph at a git
//! revision) and returns a [`Planned`]: the graph, the state it read, and the [`Plan`].
//!
//! Owns the planning policy: names to node sets (`--force`, `--schedule`, `--group`, `--only`),
//! `--since` by comparing input manifests, a refreshing schedule's second look at what moved
//! upstream, registry lookups wave by wave, and `--only`'s check that dependencies are built.
//! It prints nothing: warnings and step timings are data in the answer; the resolver (in
//! `hephy-stdlib`) does all the network, git and image work.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hephy_dsl::{Code, Definition, Model, Problem, Problems};
use petgraph::graph::NodeIndex;

use crate::files::{Exclusions, StatCache, Watched, relative_inside};
use crate::graph::{Graph, Node, NodeKind, compile};
use crate::inputs::{BaseImages, Inputs, Upstreams, gather};
use crate::key::Key;
use crate::plan::{OutputCheck, Plan, PlanOptions, Reason, differences, missing_outputs, plan};
use crate::reads::ContextReads;
use crate::sorted::Text;
use crate::state::{Snapshot, State, StateError};

/// What the user asked for on top of the incremental plan, by name.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Rebuild these nodes (ids, or image and task names) whatever their state (`--force`).
    pub force: Vec<String>,
    /// Rebuild what this schedule names, and its dependents (`--schedule`).
    pub schedule: Option<String>,
    /// Do not ask the registry for outputs built elsewhere (`--offline`).
    pub offline: bool,
    /// Only what changed since this git revision, and its dependents (`--since`).
    pub since: Option<String>,
    /// Only these nodes (`run --only`); their dependencies must be fresh already.
    pub only: Vec<String>,
    /// `--only` names node ids only (`curl` is curl's manifest, not all of curl's nodes).
    pub exact: bool,
    /// Re-resolve the tags of external base images (`--refresh`).
    pub refresh: bool,
    /// Only this group's nodes and their dependencies (`--group`); those dependencies are
    /// built as needed.
    pub group: Option<String>,
}

impl Selection {
    /// Whether it asks for nothing but the incremental plan (only `--offline` may be set).
    pub fn is_plain(&self) -> bool {
        self.force.is_empty()
            && self.schedule.is_none()
            && self.since.is_none()
            && self.only.is_empty()
            && self.group.is_none()
            && !self.refresh
    }
}

/// The graph at a git revision, as a [`Resolver`] found it (for `--since`).
pub struct Revision {
    /// The graph file, relative to the repository's top: how a changed setting is named.
    pub graph_file: String,
    /// The graph at the revision, checked; `None` when the graph file did not exist then.
    pub model: Option<Model>,
    /// What must live while the model's files are read (the folder holding the old tree).
    pub keep: Box<dyn std::any::Any>,
}

/// Everything planning asks beyond the model and the state: implemented by `hephy-stdlib`
/// (git, registries, image layouts, builders). Each answer is asked once per plan.
pub trait Resolver: OutputCheck {
    /// What `node`'s builder contributes to its key (its name and version).
    fn builder_identity(&self, node: &Node, definition: Option<Definition<'_>>) -> Text;
    /// What of its build context `node` (an image of `model`, for one platform and target)
    /// reads: its key covers only that. The whole context unless the resolver knows less is
    /// read (from its Dockerfile).
    fn context_reads(&self, model: &Model, node: &Node, definition: Option<Definition<'_>>) -> ContextReads {
        let _ = (model, node, definition);
        ContextReads::Whole
    }
    /// The commit each upstream git source's ref points at.
    fn upstreams(&self) -> Upstreams;
    /// The digests of the external base images, asked again of their registries when
    /// `refresh`.
    fn base_images(&self, refresh: bool) -> BaseImages;
    /// The output the graph's registry holds for `node` built with `key` (`deps`: its
    /// dependencies with their outputs), if it holds one.
    fn registry_output(&self, node: &Node, key: &Key, deps: &[(&Node, String)]) -> Option<String>;
    /// Why the registry cannot be asked, once a lookup found it out of reach.
    fn registry_unreachable(&self) -> Option<String>;
    /// The graph file and model at the git revision `rev`.
    ///
    /// # Errors
    /// When there is no repository, no such revision, or the old graph has problems.
    fn revision(&self, rev: &str) -> Result<Revision, Problem>;
    /// Whether the model's plans depend on nothing the plan cache's stamp cannot see, beyond
    /// what the model itself says (e.g. every image's builder is this executable, whose
    /// identity the stamp records; no tag that follows git or the date, which a new commit or
    /// day moves).
    fn stampable(&self) -> bool;
}

/// Why planning stopped.
#[derive(Debug)]
pub enum PlanError {
    /// The selection names something the graph does not have, or `--since` cannot be answered.
    Selection(Problems),
    /// The state store failed.
    State(StateError),
}

/// Something planning wants the user to know, that did not stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanWarning {
    /// The registry could not be asked for outputs built elsewhere; planned without it.
    RegistryUnreachable {
        /// Why.
        why: String,
    },
}

/// A plan with what it was made from.
#[derive(Debug)]
pub struct Planned {
    /// The compiled graph.
    pub graph: Graph,
    /// The open state store.
    pub store: State,
    /// The records and failures the plan compared with.
    pub snapshot: Snapshot,
    /// The plan.
    pub plan: Plan,
    /// The upstream commits the plan used (a run builds from these).
    pub upstreams: Upstreams,
    /// What input collection leaves out (the state folder, when it is inside the graph's).
    pub exclusions: Exclusions,
    /// Every input file and folder the plan looked at.
    pub watched: Watched,
    /// `--group`: the group's nodes and everything they depend on.
    pub scope: Option<HashSet<NodeIndex>>,
    /// What the user should be told.
    pub warnings: Vec<PlanWarning>,
    /// How long each step took, in order.
    pub timings: Vec<(&'static str, Duration)>,
    /// Whether the plan cache may stamp this plan when it is all fresh: a plain selection, a
    /// model whose plans depend only on what a stamp records, and the resolver agreeing.
    pub stampable: bool,
}

/// Plans one model with one resolver.
pub struct Planner<'a> {
    /// The model.
    pub model: &'a Model,
    /// The state folder.
    pub state_dir: &'a Path,
    /// What planning asks the world.
    pub resolver: &'a dyn Resolver,
}

/// How many registry lookups run at once.
const LOOKUPS: usize = 8;

/// A node to look up: its key, and its dependencies with their outputs.
type Lookup<'g> = (NodeIndex, Key, Vec<(&'g Node, String)>);

/// Step timings, taken as planning goes.
struct Laps {
    last: Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl Laps {
    fn lap(&mut self, what: &'static str) {
        self.laps.push((what, self.last.elapsed()));
        self.last = Instant::now();
    }
}

impl Planner<'_> {
    /// Compiles the model, reads the state, gathers every node's inputs and plans them as
    /// `selection` asks.
    ///
    /// # Errors
    /// When `selection` names what the graph does not have, `--since` cannot be answered, or
    /// the state store fails.
    pub fn plan(&self, selection: &Selection) -> Result<Planned, PlanError> {
        let (model, resolver) = (self.model, self.resolver);
        let mut laps = Laps { last: Instant::now(), laps: Vec::new() };
        let graph = compile(model);
        laps.lap("compile");
        let mut options = resolve(model, &graph, selection).map_err(PlanError::Selection)?;
        let scope = match &selection.group {
            Some(name) => Some(group_scope(model, &graph, name, &mut options).map_err(PlanError::Selection)?),
            None => None,
        };
        let mut store = State::open(self.state_dir).map_err(PlanError::State)?;
        laps.lap("open state");
        let snapshot = store.snapshot().map_err(PlanError::State)?;
        laps.lap("read records");
        let cache = store.stat_cache().map_err(PlanError::State)?;
        laps.lap("read stat cache");
        let exclusions =
            Exclusions { dirs: relative_inside(&model.root, self.state_dir).into_iter().collect() };
        let upstreams = resolver.upstreams();
        laps.lap("resolve upstreams");
        let schedule_refreshes =
            selection.schedule.as_deref().and_then(|s| model.schedule(s)).is_some_and(|s| s.refresh);
        let refreshing = selection.refresh || schedule_refreshes;
        let bases = resolver.base_images(refreshing);
        laps.lap("resolve base images");
        let identity =
            |node: &Node, definition: Option<Definition<'_>>| resolver.builder_identity(node, definition);
        let reads =
            |node: &Node, definition: Option<Definition<'_>>| resolver.context_reads(model, node, definition);
        let inputs = gather(model, &graph, &identity, &reads, &upstreams, &bases, &cache, &exclusions);
        laps.lap("gather inputs");
        store.save_stats(&inputs.fresh_stats);
        laps.lap("save stat cache");
        // A node is fresh only if its output is still there: checked once per recorded node.
        options.missing = missing_outputs(&graph, &snapshot, resolver);
        laps.lap("check outputs");
        if let Some(rev) = &selection.since {
            options.changed = changed_since(resolver, &graph, &inputs, &upstreams, &bases, rev)
                .map_err(|p| PlanError::Selection(usage(p)))?;
            let roots: Vec<NodeIndex> = options.changed.keys().copied().collect();
            options.restrict_to_dependents_of(&graph, roots);
            laps.lap("changes since");
        }
        let mut only_nodes: Vec<NodeIndex> = Vec::new();
        for name in &selection.only {
            if selection.exact {
                only_nodes.push(node_with_id(&graph, name).map_err(PlanError::Selection)?);
            } else {
                only_nodes.extend(nodes_named(model, &graph, name).map_err(PlanError::Selection)?);
            }
        }
        let mut planned = plan(&graph, &inputs, &snapshot, &options);
        laps.lap("plan");
        if refreshing && options.only.is_some() {
            // A refreshing schedule also rebuilds whatever moved upstream, and its dependents.
            let everything = PlanOptions { only: None, ..options.clone() };
            let moved: Vec<NodeIndex> = plan(&graph, &inputs, &snapshot, &everything)
                .steps
                .iter()
                .filter(|s| {
                    s.reasons
                        .iter()
                        .any(|r| matches!(r, Reason::BaseImageMoved { .. } | Reason::UpstreamMoved { .. }))
                })
                .map(|s| s.node)
                .collect();
            options.include_dependents_of(&graph, moved);
            if let (Some(scope), Some(only)) = (&scope, &mut options.only) {
                // What moved upstream rebuilds inside the group only.
                only.retain(|n| scope.contains(n));
            }
            planned = plan(&graph, &inputs, &snapshot, &options);
        }
        let mut warnings = Vec::new();
        if !selection.offline && model.registry.is_some() {
            planned = ask_registry(resolver, &graph, &inputs, &snapshot, &mut options, planned);
            if let Some(why) = resolver.registry_unreachable() {
                warnings.push(PlanWarning::RegistryUnreachable { why });
            }
            laps.lap("registry lookups");
        }
        if !only_nodes.is_empty() {
            // After the registry was asked, so dependencies built elsewhere count as built.
            let only: HashSet<NodeIndex> = only_nodes.iter().copied().collect();
            match &mut options.only {
                Some(selected) => selected.retain(|n| only.contains(n)),
                None => options.only = Some(only),
            }
            let unrestricted = planned;
            planned = plan(&graph, &inputs, &snapshot, &options);
            require_fresh_deps(&graph, &unrestricted, &snapshot, &only_nodes)
                .map_err(PlanError::Selection)?;
        }
        let watched = inputs.watched;
        let stampable = selection.is_plain() && crate::stamp::model_stampable(model) && resolver.stampable();
        Ok(Planned {
            graph,
            store,
            snapshot,
            plan: planned,
            upstreams,
            exclusions,
            watched,
            scope,
            warnings,
            timings: laps.laps,
            stampable,
        })
    }
}

/// Asks the registry for the nodes that would be built only for lack of local state, wave by
/// wave (a node's key is final once its dependencies are fresh), and replans with what it has.
fn ask_registry(
    resolver: &dyn Resolver,
    graph: &Graph,
    inputs: &Inputs,
    snapshot: &Snapshot,
    options: &mut PlanOptions,
    mut planned: Plan,
) -> Plan {
    let mut asked: HashSet<NodeIndex> = HashSet::new();
    loop {
        let wave: Vec<Lookup<'_>> = planned
            .steps
            .iter()
            .filter(|s| graph.node(s.node).kind != NodeKind::Task)
            .filter(|s| !asked.contains(&s.node) && s.wants_lookup(&planned, graph))
            .map(|s| {
                let deps = graph
                    .deps(s.node)
                    .iter()
                    .copied()
                    .map(|d| {
                        let dep = graph.node(d);
                        let output = planned
                            .step(d)
                            .and_then(|st| st.cached_output.clone())
                            .or_else(|| snapshot.records.get(dep.id.as_str()).map(|r| r.output.clone()))
                            .unwrap_or_default();
                        (dep, output)
                    })
                    .collect();
                (s.node, s.key, deps)
            })
            .collect();
        if wave.is_empty() || resolver.registry_unreachable().is_some() {
            return planned;
        }
        let found: Vec<(NodeIndex, Key, Option<String>)> = std::thread::scope(|scope| {
            let mut results = Vec::new();
            for chunk in wave.chunks(wave.len().div_ceil(LOOKUPS)) {
                results.push(scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(n, key, deps)| (*n, *key, resolver.registry_output(graph.node(*n), key, deps)))
                        .collect::<Vec<_>>()
                }));
            }
            results.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        let mut any = false;
        for (node, key, output) in found {
            asked.insert(node);
            if let Some(output) = output {
                options.cached.insert(node, (key, output));
                any = true;
            }
        }
        if !any {
            return planned;
        }
        planned = plan(graph, inputs, snapshot, options);
    }
}

/// Per node of `graph`, why it changed since `rev` (its own inputs differ from those it had
/// then, compared as planning compares manifests); nodes that did not are absent.
fn changed_since(
    resolver: &dyn Resolver,
    graph: &Graph,
    inputs: &Inputs,
    upstreams: &Upstreams,
    bases: &BaseImages,
    rev: &str,
) -> Result<HashMap<NodeIndex, Reason>, Problem> {
    let revision = resolver.revision(rev)?;
    let changed = |path: &str| Reason::ChangedSince { rev: rev.to_owned(), path: path.to_owned() };
    let Some(old_model) = &revision.model else {
        return Ok(graph.order().iter().map(|&n| (n, changed(&revision.graph_file))).collect());
    };
    let old_graph = compile(old_model);
    let identity =
        |node: &Node, definition: Option<Definition<'_>>| resolver.builder_identity(node, definition);
    let reads =
        |node: &Node, definition: Option<Definition<'_>>| resolver.context_reads(old_model, node, definition);
    let old_inputs = gather(
        old_model,
        &old_graph,
        &identity,
        &reads,
        upstreams,
        bases,
        &StatCache::new(),
        &Exclusions::default(),
    );
    let mut out = HashMap::new();
    for &index in graph.order() {
        let node = graph.node(index);
        let Some(now) = inputs.get(index) else { continue };
        let Some(then) = old_graph.find(node.id.as_str()).and_then(|o| old_inputs.get(o)) else {
            out.insert(index, changed(&revision.graph_file));
            continue;
        };
        let (now, then) = (now.manifest(), then.manifest());
        if now.key() == then.key() {
            continue;
        }
        let path = differences(&then, &now)
            .into_iter()
            .find_map(|r| match r {
                Reason::InputChanged { path, .. }
                | Reason::InputAdded { path }
                | Reason::InputRemoved { path } => Some(path),
                _ => None,
            })
            .unwrap_or_else(|| revision.graph_file.clone());
        out.insert(index, Reason::ChangedSince { rev: rev.to_owned(), path });
    }
    drop(revision);
    Ok(out)
}

/// `--only`: every dependency outside the selection must already be built (here, or found in
/// the registry), or the selected node could not be built.
fn require_fresh_deps(
    graph: &Graph,
    plan: &Plan,
    snapshot: &Snapshot,
    only: &[NodeIndex],
) -> Result<(), Problems> {
    for &node in only {
        for &dep in graph.deps(node) {
            if only.contains(&dep) {
                continue;
            }
            let id = graph.node(dep).id.as_str();
            let built = plan.step(dep).is_some_and(|s| s.cached_output.is_some())
                || snapshot.records.contains_key(id);
            if !built {
                return Err(usage(
                    Problem::new(
                        Code::Missing,
                        format!(
                            "`{}` needs `{id}`, which is not built here or in the registry",
                            graph.node(node).id
                        ),
                    )
                    .help(format!("run `{id}` first, or add it: --only {id}")),
                ));
            }
        }
    }
    Ok(())
}

/// `--force` names and `--schedule` → node sets.
fn resolve(model: &Model, graph: &Graph, selection: &Selection) -> Result<PlanOptions, Problems> {
    let mut options = PlanOptions::default();
    for name in &selection.force {
        options.force.extend(nodes_named(model, graph, name)?);
    }
    if let Some(name) = &selection.schedule {
        let Some(schedule) = model.schedule(name) else {
            let names: Vec<&str> = model.schedules.iter().map(|s| s.name.as_str()).collect();
            return Err(usage(
                Problem::new(Code::UnknownDependency, format!("unknown schedule `{name}`")).help(
                    if names.is_empty() {
                        "the graph declares no schedules".to_owned()
                    } else {
                        format!("the schedules are {}", names.join(", "))
                    },
                ),
            ));
        };
        let mut nodes = HashSet::new();
        for def in &schedule.rebuild {
            nodes.extend(nodes_named(model, graph, def)?);
        }
        // The schedule's nodes and their dependents, and nothing else.
        options.restrict_to_dependents_of(graph, nodes.iter().copied());
        options.schedule = Some((name.clone(), nodes));
    }
    Ok(options)
}

/// `--group NAME`: restricts `options` to the nodes of the group's images and tasks (through
/// nested groups) and everything they depend on; returns those nodes.
fn group_scope(
    model: &Model,
    graph: &Graph,
    name: &str,
    options: &mut PlanOptions,
) -> Result<HashSet<NodeIndex>, Problems> {
    let Some(members) = model.group_members(name) else {
        let names: Vec<&str> = model.groups.iter().map(|g| g.name.as_str()).collect();
        let closest = names
            .iter()
            .map(|g| (strsim::damerau_levenshtein(name, g), *g))
            .min()
            .filter(|(d, _)| *d <= name.len().max(3) / 3 + 1);
        let help = match closest {
            Some((_, g)) => format!("did you mean `{g}`?"),
            None if names.is_empty() => "the graph declares no groups".to_owned(),
            None => format!("the groups are {}", names.join(", ")),
        };
        return Err(usage(
            Problem::new(Code::UnknownDependency, format!("unknown group `{name}`")).help(help),
        ));
    };
    let mut roots = Vec::new();
    for member in members {
        roots.extend(nodes_named(model, graph, member)?);
    }
    Ok(options.restrict_to_dependencies_of(graph, roots))
}

/// The nodes `name` means: a node id, or the name of an image or task (all its nodes).
///
/// # Errors
/// When no node, image or task has that name (with the closest id as a suggestion).
pub fn nodes_named(model: &Model, graph: &Graph, name: &str) -> Result<Vec<NodeIndex>, Problems> {
    // An image or task name means all its nodes (`curl` is also the id of curl's manifest).
    if model.definition(name).is_some() {
        return Ok(graph.order().iter().copied().filter(|&n| graph.node(n).name() == name).collect());
    }
    node_with_id(graph, name).map(|index| vec![index])
}

/// The node whose id is `name`.
fn node_with_id(graph: &Graph, name: &str) -> Result<NodeIndex, Problems> {
    if let Some(index) = graph.find(name) {
        return Ok(index);
    }
    let ids = graph.order().iter().map(|&n| graph.node(n).id.as_str());
    let best = ids
        .map(|id| (strsim::damerau_levenshtein(name, id), id))
        .min()
        .filter(|(d, _)| *d <= name.len().max(3) / 3 + 1)
        .map(|(_, id)| format!("did you mean `{id}`?"));
    Err(usage(Problem::new(Code::UnknownDependency, format!("unknown node `{name}`")).help(
        best.unwrap_or_else(|| "name a node id (`hephy plan` lists them) or an image or task".to_owned()),
    )))
}

fn usage(problem: Problem) -> Problems {
    Problems::single("hephy", problem)
}

/// The state folder of `model` (`state`, else `.hephy` beside the graph file).
pub fn state_dir(model: &Model, state: Option<&Path>) -> PathBuf {
    match state {
        Some(dir) => dir.to_path_buf(),
        // `.hephy`, not `./.hephy`, in messages about the current folder.
        None if model.root == Path::new(".") => PathBuf::from(".hephy"),
        None => model.root.join(".hephy"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::plan::Action;

    /// Two images for one platform, `b` built from `a`, pushed to a registry.
    const AB: &str = "registry: 127.0.0.1:1/test\nplatforms: [linux/amd64]\nimages:\n  \
                      a: { context: a }\n  b: { context: b, from: { a: { arg: BASE } } }\n";

    /// The model of `text`, with a context folder (and Dockerfile) for the images `a`, `b`, `c`.
    fn model(text: &str, dockerfile_of_a: &str) -> (tempfile::TempDir, Model) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (image, dockerfile) in
            [("a", dockerfile_of_a), ("b", "ARG BASE\nFROM $BASE\n"), ("c", "FROM scratch\n")]
        {
            std::fs::create_dir_all(dir.path().join(image)).expect("mkdir");
            std::fs::write(dir.path().join(image).join("Dockerfile"), dockerfile).expect("write");
        }
        let path = dir.path().join("hephy.yaml");
        std::fs::write(&path, text).expect("write");
        let source = hephy_dsl::SourceFile::new(path, hephy_dsl::Syntax::Yaml, text);
        let doc = hephy_dsl::read(&source).expect("reads");
        let model = hephy_dsl::lower(doc, &source, dir.path()).expect("valid");
        (dir, model)
    }

    /// A world with nothing upstream, every recorded output present, and a registry holding
    /// the outputs of the node ids in `held`; it notes what it is asked, wave by wave.
    #[derive(Default)]
    struct World {
        held: BTreeMap<&'static str, &'static str>,
        down: bool,
        asked: Mutex<Vec<String>>,
        old: Option<Model>,
    }

    impl OutputCheck for World {
        fn exists(&self, _: &Node, _: &str) -> bool {
            true
        }
    }

    impl Resolver for World {
        fn builder_identity(&self, _: &Node, _: Option<Definition<'_>>) -> Text {
            "test/1".into()
        }
        fn upstreams(&self) -> Upstreams {
            Upstreams::new()
        }
        fn base_images(&self, _: bool) -> BaseImages {
            BaseImages::new()
        }
        fn registry_output(&self, node: &Node, _: &Key, _: &[(&Node, String)]) -> Option<String> {
            self.asked.lock().expect("lock").push(node.id.to_string());
            self.held.get(node.id.as_str()).map(|o| (*o).to_owned())
        }
        fn registry_unreachable(&self) -> Option<String> {
            (self.down && !self.asked.lock().expect("lock").is_empty())
                .then(|| "connection refused".to_owned())
        }
        fn revision(&self, rev: &str) -> Result<Revision, Problem> {
            if rev != "HEAD~1" {
                return Err(Problem::new(Code::Io, format!("`{rev}` is not a commit of this repository")));
            }
            Ok(Revision { graph_file: "hephy.yaml".to_owned(), model: self.old.clone(), keep: Box::new(()) })
        }
        fn stampable(&self) -> bool {
            true
        }
    }

    fn plan_with(model: &Model, world: &World, selection: &Selection) -> Result<Planned, PlanError> {
        let state = tempfile::tempdir().expect("temp dir");
        Planner { model, state_dir: state.path(), resolver: world }.plan(selection)
    }

    fn actions(planned: &Planned) -> Vec<(String, Action, Vec<Reason>)> {
        planned
            .plan
            .steps
            .iter()
            .map(|s| (planned.graph.node(s.node).id.to_string(), s.action, s.reasons.to_vec()))
            .collect()
    }

    fn message(error: PlanError) -> String {
        match error {
            PlanError::Selection(problems) => problems.iter().map(ToString::to_string).collect(),
            PlanError::State(e) => panic!("not a selection error: {e}"),
        }
    }

    /// The registry is asked wave by wave: a node only once its dependencies are fresh (its
    /// key final), so `b`'s image is asked after `a`'s was found, and everything it holds is
    /// skipped as cached; a registry holding nothing is asked one wave.
    #[test]
    fn the_registry_is_asked_wave_by_wave() {
        let (_dir, model) = model(AB, "FROM scratch\n");
        let held = BTreeMap::from([
            ("a@linux/amd64", "sha256:a1"),
            ("a", "sha256:a"),
            ("b@linux/amd64", "sha256:b1"),
            ("b", "sha256:b"),
        ]);
        let world = World { held, ..World::default() };
        let planned = plan_with(&model, &world, &Selection::default()).expect("plans");
        for (id, action, reasons) in actions(&planned) {
            assert_eq!((action, reasons), (Action::Skip, vec![Reason::CachedInRegistry]), "{id}");
        }
        let asked = world.asked.lock().expect("lock").clone();
        let at = |id: &str| asked.iter().position(|a| a == id).expect("asked");
        assert!(at("a@linux/amd64") < at("b@linux/amd64"), "{asked:?}");
        assert_eq!(asked.len(), 4, "each node asked once: {asked:?}");
        assert!(planned.warnings.is_empty());

        let empty = World::default();
        let planned = plan_with(&model, &empty, &Selection::default()).expect("plans");
        assert!(actions(&planned).iter().all(|(_, a, r)| *a == Action::Build && r == &[Reason::NeverBuilt]));
        let asked = empty.asked.lock().expect("lock").clone();
        assert_eq!(asked, ["a@linux/amd64"], "only the node whose key is final");

        let offline = Selection { offline: true, ..Selection::default() };
        plan_with(&model, &world, &offline).expect("plans");
        assert_eq!(world.asked.lock().expect("lock").len(), 4, "offline asks nothing");
    }

    /// A registry out of reach is a warning, and the plan goes on without it.
    #[test]
    fn an_unreachable_registry_is_a_warning() {
        let (_dir, model) = model(AB, "FROM scratch\n");
        let world = World { down: true, ..World::default() };
        let planned = plan_with(&model, &world, &Selection::default()).expect("plans");
        assert_eq!(
            planned.warnings,
            [PlanWarning::RegistryUnreachable { why: "connection refused".to_owned() }]
        );
        assert!(actions(&planned).iter().all(|(_, a, _)| *a == Action::Build));
    }

    /// `--only` builds the named nodes alone, and only when their dependencies are built
    /// (here, or in the registry); names it cannot find are usage errors with a suggestion.
    #[test]
    fn only_needs_its_dependencies_built() {
        let (_dir, model) = model(AB, "FROM scratch\n");
        let only_b = Selection { only: vec!["b".to_owned()], ..Selection::default() };
        let error = message(plan_with(&model, &World::default(), &only_b).expect_err("a is not built"));
        assert!(error.contains("`b@linux/amd64` needs `a@linux/amd64`"), "{error}");

        let held = BTreeMap::from([("a@linux/amd64", "sha256:a1"), ("a", "sha256:a")]);
        let world = World { held, ..World::default() };
        let planned = plan_with(&model, &world, &only_b).expect("plans");
        let building: Vec<String> = actions(&planned)
            .into_iter()
            .filter(|(_, a, _)| *a == Action::Build)
            .map(|(id, ..)| id)
            .collect();
        assert_eq!(building, ["b@linux/amd64", "b"]);

        let typo = Selection { force: vec!["b@linux/amd46".to_owned()], ..Selection::default() };
        let error = message(plan_with(&model, &world, &typo).expect_err("no such node"));
        assert!(error.contains("unknown node `b@linux/amd46`"), "{error}");
        let group = Selection { group: Some("all".to_owned()), ..Selection::default() };
        let error = message(plan_with(&model, &world, &group).expect_err("no such group"));
        assert!(error.contains("unknown group `all`"), "{error}");
    }

    /// `--since` compares each node's inputs with those it had at the revision, as planning
    /// compares manifests: `a`'s changed Dockerfile names it, `b` follows as a dependent, and
    /// nothing else is selected.
    #[test]
    fn since_selects_what_changed_and_its_dependents() {
        let text = "platforms: [linux/amd64]\nimages:\n  a: { context: a }\n  \
                    b: { context: b, from: { a: { arg: BASE } } }\n  c: { context: c }\n";
        let (_dir, model) = model(text, "FROM scratch\n");
        let (_old_dir, old) = self::model(text, "FROM scratch\nLABEL v=1\n");
        let world = World { old: Some(old), ..World::default() };
        let since = Selection { since: Some("HEAD~1".to_owned()), ..Selection::default() };
        let planned = plan_with(&model, &world, &since).expect("plans");
        let changed = Reason::ChangedSince { rev: "HEAD~1".to_owned(), path: "a/Dockerfile".to_owned() };
        for (id, action, reasons) in actions(&planned) {
            match id.as_str() {
                "a@linux/amd64" => assert_eq!(reasons.first(), Some(&changed), "{id}"),
                "c@linux/amd64" | "c" => assert_eq!((action, reasons), (Action::Skip, vec![]), "{id}"),
                _ => assert_eq!(action, Action::Build, "{id}"),
            }
        }
        let gone = World::default();
        let planned = plan_with(&model, &gone, &since).expect("plans");
        let whole = Reason::ChangedSince { rev: "HEAD~1".to_owned(), path: "hephy.yaml".to_owned() };
        assert!(actions(&planned).iter().all(|(_, _, r)| r.first() == Some(&whole)));
        let bad = Selection { since: Some("nope".to_owned()), ..Selection::default() };
        let error = message(plan_with(&model, &gone, &bad).expect_err("no such revision"));
        assert!(error.contains("`nope` is not a commit"), "{error}");
    }
}
