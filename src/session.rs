//! Loading a graph and its state, hashing its inputs, and planning: the steps `plan`, `run` and
//! `explain` share.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hephy_dsl::{Code, Model, Problem, Problems};
use hephy_engine::{Exclusions, Graph, NodeIndex, Plan, PlanOptions, Snapshot, State};

use crate::Failure;

/// A loaded graph with its state and plan.
pub(crate) struct Session {
    pub(crate) model: Model,
    pub(crate) graph: Graph,
    pub(crate) state_dir: PathBuf,
    pub(crate) state: State,
    pub(crate) snapshot: Snapshot,
    pub(crate) plan: Plan,
    pub(crate) exclusions: Exclusions,
    pub(crate) upstreams: hephy_stdlib::Upstreams,
    /// Every input file and folder the plan looked at (for the no-op stamp).
    pub(crate) watched: hephy_engine::Watched,
    /// What the check of recorded outputs looked at (for the no-op stamp).
    pub(crate) evidence: hephy_stdlib::Evidence,
    /// `--group`: the group's nodes and everything they depend on; the plan shown holds these
    /// only.
    pub(crate) scope: Option<HashSet<NodeIndex>>,
}

/// What the user asked to force.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    pub(crate) force: Vec<String>,
    pub(crate) schedule: Option<String>,
    /// Do not ask the registry for outputs built elsewhere.
    pub(crate) offline: bool,
    /// Only what changed since this git revision, and its dependents.
    pub(crate) since: Option<String>,
    /// Only these nodes (`run --only`); their dependencies must be fresh already.
    pub(crate) only: Vec<String>,
    /// `--only` names node ids only (`curl` is curl's manifest, not all of curl's nodes).
    pub(crate) exact: bool,
    /// Re-resolve the tags of external base images.
    pub(crate) refresh: bool,
    /// Only this group's nodes and their dependencies (`--group`); those dependencies are
    /// built as needed.
    pub(crate) group: Option<String>,
}

/// A node to look up: its key, and its dependencies with their outputs.
type Lookup<'g> = (NodeIndex, hephy_engine::Key, Vec<(&'g hephy_engine::Node, String)>);

/// How many registry lookups run at once.
const LOOKUPS: usize = 8;

/// Asks the registry for the nodes that would be built only for lack of local state, wave by
/// wave (a node's key is final once its dependencies are fresh), and replans with what it has.
fn ask_registry(
    model: &Model,
    graph: &Graph,
    inputs: &hephy_engine::Inputs,
    snapshot: &Snapshot,
    options: &mut PlanOptions,
    mut plan: Plan,
) -> Plan {
    let cache = hephy_stdlib::RegistryCache::new(model);
    let mut asked: HashSet<NodeIndex> = HashSet::new();
    loop {
        let wave: Vec<Lookup<'_>> = plan
            .steps
            .iter()
            .filter(|s| graph.node(s.node).kind != hephy_engine::NodeKind::Task)
            .filter(|s| !asked.contains(&s.node) && s.wants_lookup(&plan, graph))
            .map(|s| {
                let deps = graph
                    .deps(s.node)
                    .iter()
                    .copied()
                    .map(|d| {
                        let dep = graph.node(d);
                        let output = plan
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
        if wave.is_empty() || cache.unreachable().is_some() {
            warn_unreachable(&cache);
            return plan;
        }
        let found: Vec<(NodeIndex, hephy_engine::Key, Option<String>)> = std::thread::scope(|scope| {
            let mut results = Vec::new();
            for chunk in wave.chunks(wave.len().div_ceil(LOOKUPS)) {
                let cache = &cache;
                results.push(scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(n, key, deps)| (*n, *key, cache.lookup(graph.node(*n), key, deps)))
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
            warn_unreachable(&cache);
            return plan;
        }
        plan = hephy_engine::plan(graph, inputs, snapshot, options);
    }
}

pub(crate) fn state_dir(model: &Model, state: Option<&Path>) -> PathBuf {
    match state {
        Some(dir) => dir.to_path_buf(),
        // `.hephy`, not `./.hephy`, in messages about the current folder.
        None if model.root == Path::new(".") => PathBuf::from(".hephy"),
        None => model.root.join(".hephy"),
    }
}

impl Session {
    pub(crate) fn open(
        model: Model,
        state: Option<&Path>,
        selection: &Selection,
    ) -> Result<Session, Failure> {
        let mut clock = Clock::new();
        let graph = hephy_engine::compile(&model);
        clock.lap("compile");
        let mut options = resolve(&model, &graph, selection)?;
        let scope = match &selection.group {
            Some(name) => Some(group_scope(&model, &graph, name, &mut options)?),
            None => None,
        };
        let state_dir = state_dir(&model, state);
        let mut store = State::open(&state_dir).map_err(Failure::State)?;
        clock.lap("open state");
        let snapshot = store.snapshot().map_err(Failure::State)?;
        clock.lap("read records");
        let cache = store.stat_cache().map_err(Failure::State)?;
        clock.lap("read stat cache");
        let exclusions =
            Exclusions { dirs: hephy_engine::relative_inside(&model.root, &state_dir).into_iter().collect() };
        let upstreams = hephy_stdlib::resolve_upstreams(&model, &state_dir, selection.offline);
        clock.lap("resolve upstreams");
        let schedule_refreshes =
            selection.schedule.as_deref().and_then(|s| model.schedule(s)).is_some_and(|s| s.refresh);
        let refreshing = selection.refresh || schedule_refreshes;
        let bases = hephy_stdlib::resolve_bases(&model, &state_dir, refreshing, selection.offline);
        clock.lap("resolve base images");
        let inputs = hephy_engine::gather(
            &model,
            &graph,
            &hephy_stdlib::builder_identity,
            &upstreams,
            &bases,
            &cache,
            &exclusions,
        );
        clock.lap("gather inputs");
        store.save_stats(&inputs.fresh_stats);
        clock.lap("save stat cache");
        // A node is fresh only if its output is still there: checked once per recorded node.
        let outputs = hephy_stdlib::Outputs::new(&model, &state_dir, selection.offline);
        options.missing = hephy_engine::missing_outputs(&graph, &snapshot, &outputs);
        clock.lap("check outputs");
        let evidence = outputs.evidence();
        clock.lap("list what it saw");
        if let Some(rev) = &selection.since {
            options.changed = crate::since::changed(&model, &graph, &inputs, &upstreams, &bases, rev)?;
            let roots: Vec<NodeIndex> = options.changed.keys().copied().collect();
            options.restrict_to_dependents_of(&graph, roots);
            clock.lap("changes since");
        }
        let mut only_nodes: Vec<NodeIndex> = Vec::new();
        for name in &selection.only {
            if selection.exact {
                only_nodes.push(node_with_id(&graph, name)?);
            } else {
                only_nodes.extend(nodes_named(&model, &graph, name)?);
            }
        }
        let mut plan = hephy_engine::plan(&graph, &inputs, &snapshot, &options);
        clock.lap("plan");
        if refreshing && options.only.is_some() {
            // A refreshing schedule also rebuilds whatever moved upstream, and its dependents.
            let everything = PlanOptions { only: None, ..options.clone() };
            let moved: Vec<NodeIndex> = hephy_engine::plan(&graph, &inputs, &snapshot, &everything)
                .steps
                .iter()
                .filter(|s| {
                    s.reasons.iter().any(|r| {
                        matches!(
                            r,
                            hephy_engine::Reason::BaseImageMoved { .. }
                                | hephy_engine::Reason::UpstreamMoved { .. }
                        )
                    })
                })
                .map(|s| s.node)
                .collect();
            options.include_dependents_of(&graph, moved);
            if let (Some(scope), Some(only)) = (&scope, &mut options.only) {
                // What moved upstream rebuilds inside the group only.
                only.retain(|n| scope.contains(n));
            }
            plan = hephy_engine::plan(&graph, &inputs, &snapshot, &options);
        }
        if !selection.offline && model.registry.is_some() {
            plan = ask_registry(&model, &graph, &inputs, &snapshot, &mut options, plan);
            clock.lap("registry lookups");
        }
        if !only_nodes.is_empty() {
            // After the registry was asked, so dependencies built elsewhere count as built.
            let only: HashSet<NodeIndex> = only_nodes.iter().copied().collect();
            match &mut options.only {
                Some(selected) => selected.retain(|n| only.contains(n)),
                None => options.only = Some(only),
            }
            let unrestricted = plan;
            plan = hephy_engine::plan(&graph, &inputs, &snapshot, &options);
            require_fresh_deps(&graph, &unrestricted, &snapshot, &only_nodes)?;
        }
        let watched = inputs.watched;
        Ok(Session {
            model,
            graph,
            state_dir,
            state: store,
            snapshot,
            plan,
            exclusions,
            upstreams,
            watched,
            evidence,
            scope,
        })
    }
}

/// `--only`: every dependency outside the selection must already be built (here, or found in
/// the registry), or the selected node could not be built.
fn require_fresh_deps(
    graph: &Graph,
    plan: &Plan,
    snapshot: &Snapshot,
    only: &[NodeIndex],
) -> Result<(), Failure> {
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

fn warn_unreachable(cache: &hephy_stdlib::RegistryCache<'_>) {
    if let Some(why) = cache.unreachable() {
        eprintln!(
            "warning: the registry cannot be asked for images built elsewhere ({why}); planning without it (--offline skips asking)"
        );
    }
}

/// `--force` names and `--schedule` → node sets.
fn resolve(model: &Model, graph: &Graph, selection: &Selection) -> Result<PlanOptions, Failure> {
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
) -> Result<HashSet<NodeIndex>, Failure> {
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

/// A node id, or the name of an image or task (all its nodes).
pub(crate) fn nodes_named(model: &Model, graph: &Graph, name: &str) -> Result<Vec<NodeIndex>, Failure> {
    // An image or task name means all its nodes (`curl` is also the id of curl's manifest).
    if model.definition(name).is_some() {
        return Ok(graph.order().iter().copied().filter(|&n| graph.node(n).name() == name).collect());
    }
    node_with_id(graph, name).map(|index| vec![index])
}

/// The node whose id is `name`.
fn node_with_id(graph: &Graph, name: &str) -> Result<NodeIndex, Failure> {
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

fn usage(problem: Problem) -> Failure {
    Failure::Input(Problems::single("hephy", problem))
}

/// `HEPHY_TIMINGS=1` prints how long each step took, on stderr.
pub(crate) struct Clock {
    on: bool,
    last: std::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock { on: std::env::var_os("HEPHY_TIMINGS").is_some(), last: std::time::Instant::now() }
    }

    pub(crate) fn lap(&mut self, what: &str) {
        if self.on {
            eprintln!("timing: {what:<16} {:>8.1} ms", self.last.elapsed().as_secs_f64() * 1000.0);
        }
        self.last = std::time::Instant::now();
    }
}
