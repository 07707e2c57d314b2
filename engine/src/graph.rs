//! The build graph: a validated [`Model`] → a DAG of [`Node`]s.
//!
//! Owns node identity ([`NodeId`]), the expansion of images into per-platform (and per-target)
//! builds, manifests and tags, the platform-matched edges between them, and the deterministic
//! topological order. It never fails: every error it could meet was reported by the analyzer.
//!
//! Why compact adjacency and not a petgraph graph. Planning asks of every node, on every plan,
//! its dependencies and dependents in id order and the execution order; a petgraph `DiGraph`
//! keeps edges as linked lists in insertion order and its `algo::toposort` is a DFS whose order
//! follows insertion, not ids. On a million nodes `toposort` took 375 ms against 72 ms for Kahn's
//! algorithm over the flat, id-sorted arrays kept here (design notes' measurements table), and
//! the order must be deterministic by id whatever the graph file's order. So the graph keeps
//! petgraph's [`NodeIndex`] as its node handle, builds no petgraph graph on a compile, and offers
//! one on demand ([`Graph::dag`]) for algorithms and export. Where petgraph was weighed for the
//! rest and not taken: cycles never reach the engine (the dsl reports them first, with a span
//! per edge of the cycle, which `petgraph::algo::toposort`'s one `Cycle` node or a strongly
//! connected component's member list would still need a walk to give; the dsl depends on no
//! graph crate); petgraph 0.8 has no longest path for a weighted DAG (Bellman-Ford on negated
//! weights is O(V·E)), and the run's critical path and ETA are a memoized walk over the planned
//! nodes' dependencies, linear in edges; `petgraph::dot` names nodes by
//! index and escapes labels its own way, where `hephy graph --format dot` names them by id and
//! escapes through `hephy_dsl::escape`; and the HTML report draws every declared edge on purpose
//! (edges that skip layers are routed around the cards between), so a transitive reduction
//! (`petgraph::algo::tred`) would hide dependencies the graph file declares.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hephy_dsl::{Definition, DependencyKind, FromPlatform, Model, Platform};
use petgraph::graph::{DiGraph, NodeIndex};
use rayon::prelude::*;

/// A node's identity, stable across runs and syntaxes.
///
/// `curl@linux/amd64` (an image build), `kaniko.debug@linux/arm64` (a build of one target),
/// `curl` (the multi-platform manifest), `curl:latest` (an extra tag), `lint` or `test@linux/arm64`
/// (a task).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// An id (`curl@linux/arm64`); the graph makes them, checks of would-be nodes too.
    pub fn new(id: impl Into<String>) -> NodeId {
        NodeId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Builds one image for one platform (and target).
    Image,
    /// Joins an image's platform builds into one multi-platform index.
    Manifest,
    /// Gives a finished image an extra tag.
    Tag,
    /// Runs a command.
    Task,
}

impl NodeKind {
    /// Its name, as plans show it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Image => "image",
            NodeKind::Manifest => "manifest",
            NodeKind::Tag => "tag",
            NodeKind::Task => "task",
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its identity.
    pub id: NodeId,
    /// The length of the name of the image or task it comes from, which starts its id.
    name_len: u32,
    /// What it does.
    pub kind: NodeKind,
    /// The platform it builds for; `None` for manifests, tags and platform-free tasks.
    pub platform: Option<Platform>,
    /// The build target (Dockerfile stage), for images with several.
    pub target: Option<String>,
    /// The extra tag, for tag nodes.
    pub tag: Option<String>,
    /// The executor it runs on (`local` when the graph declares none for it); shared by the
    /// nodes that run there.
    pub executor: Arc<str>,
    /// Build args that receive the image reference of another node (`from NAME arg=ARG`).
    pub inject: BTreeMap<String, NodeId>,
    /// Build args that receive the repository part of that reference (`registry-arg=`), keyed
    /// by the `arg` they pair with.
    pub inject_registry: BTreeMap<String, String>,
    /// Named build contexts that receive the image of another node (`from NAME context=CTX`).
    pub contexts: BTreeMap<String, NodeId>,
}

impl Node {
    /// A node of the image or task `name`, with the id the graph gives it: `name@platform` (an
    /// image build, or a task run per platform), `name.target@platform` (a build of one target),
    /// `name[.target]` (a manifest, or a platform-free task), `name[.target]:tag` (a tag).
    pub fn new(
        name: &str,
        kind: NodeKind,
        platform: Option<Platform>,
        target: Option<String>,
        tag: Option<String>,
        executor: Arc<str>,
    ) -> Node {
        let mut id = String::with_capacity(name.len() + 24);
        id.push_str(name);
        if let Some(target) = &target {
            id.push('.');
            id.push_str(target);
        }
        match (kind, &platform, &tag) {
            (NodeKind::Tag, _, Some(tag)) => {
                id.push(':');
                id.push_str(tag);
            }
            (NodeKind::Image | NodeKind::Task, Some(platform), _) => {
                use fmt::Write;
                let _ = write!(id, "@{platform}");
            }
            _ => {}
        }
        Node {
            id: NodeId(id),
            name_len: name.len() as u32,
            kind,
            platform,
            target,
            tag,
            executor,
            inject: BTreeMap::new(),
            inject_registry: BTreeMap::new(),
            contexts: BTreeMap::new(),
        }
    }

    /// The image or task it comes from.
    pub fn name(&self) -> &str {
        self.id.0.get(..self.name_len as usize).unwrap_or_default()
    }
}

/// The name of the executor that exists when none is declared, and that runs platform-free nodes.
pub const LOCAL_EXECUTOR: &str = "local";

/// The compiled DAG. Edges point from a dependency to its dependent.
///
/// It keeps its nodes by index (petgraph's [`NodeIndex`]) and what planning asks for on every
/// node, computed once: each node's dependencies and dependents as compact adjacency (one flat
/// array, sorted by id), the ids in sorted order (so a lookup by id is a binary search, with no
/// second copy of them), and the execution order. [`Graph::dag`] makes a petgraph graph of it
/// for algorithms and export; planning does not need one, so a compile builds none.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Node>,
    /// Per node, the position of its definition in the model ([`Model::position`]).
    definitions: Vec<u32>,
    /// Node indices sorted by id.
    by_id: Vec<NodeIndex>,
    deps: Adjacency,
    dependents: Adjacency,
    order: Vec<NodeIndex>,
}

/// Per node, its neighbours in one direction: `list[start[i]..start[i + 1]]`, sorted by id.
#[derive(Debug, Clone, Default)]
struct Adjacency {
    start: Vec<u32>,
    list: Vec<NodeIndex>,
}

impl Adjacency {
    /// Builds it from `(node, neighbour)` pairs sorted by node, then by the neighbour's id.
    fn from_sorted(nodes: usize, pairs: &[(u32, u32)]) -> Adjacency {
        let mut start = vec![0u32; nodes + 1];
        for &(node, _) in pairs {
            start[node as usize + 1] += 1;
        }
        for i in 0..nodes {
            start[i + 1] += start[i];
        }
        let list = pairs.iter().map(|&(_, n)| NodeIndex::new(n as usize)).collect();
        Adjacency { start, list }
    }

    fn of(&self, node: NodeIndex) -> &[NodeIndex] {
        let i = node.index();
        match (self.start.get(i), self.start.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.list[a as usize..b as usize],
            _ => &[],
        }
    }
}

impl Graph {
    /// All nodes in execution order: dependencies first, ties broken by id.
    pub fn order(&self) -> &[NodeIndex] {
        &self.order
    }

    /// The node at `index`.
    pub fn node(&self, index: NodeIndex) -> &Node {
        &self.nodes[index.index()]
    }

    /// The node called `id`.
    pub fn find(&self, id: &str) -> Option<NodeIndex> {
        let at = self.by_id.binary_search_by(|n| self.node(*n).id.as_str().cmp(id)).ok()?;
        Some(self.by_id[at])
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The direct dependencies of `index`, sorted by id.
    pub fn deps(&self, index: NodeIndex) -> &[NodeIndex] {
        self.deps.of(index)
    }

    /// The direct dependents of `index`, sorted by id.
    pub fn dependents(&self, index: NodeIndex) -> &[NodeIndex] {
        self.dependents.of(index)
    }

    /// The image or task that `index` comes from: found by position, not by name (a name
    /// lookup per node is a hash-table miss per node on a large graph).
    pub fn definition<'m>(&self, model: &'m Model, index: NodeIndex) -> Option<Definition<'m>> {
        model.definition_at(*self.definitions.get(index.index())? as usize)
    }

    /// The graph as a petgraph graph, for algorithms and export: the same node indices, an
    /// edge from each dependency to its dependent.
    pub fn dag(&self) -> DiGraph<&Node, ()> {
        let mut dag = DiGraph::with_capacity(self.nodes.len(), self.deps.list.len());
        for node in &self.nodes {
            dag.add_node(node);
        }
        for index in 0..self.nodes.len() {
            let index = NodeIndex::new(index);
            for &dep in self.deps(index) {
                dag.add_edge(dep, index, ());
            }
        }
        dag
    }
}

/// Compiles a model into its DAG.
pub fn compile(model: &Model) -> Graph {
    // Room for every node up front: a million nodes are not copied as the graph grows.
    let images: usize =
        model.images.iter().map(|i| i.targets.len().max(1) * (i.platforms.len() + 1 + i.tags.len())).sum();
    let count = images + model.tasks.iter().map(|t| t.platforms.len().max(1)).sum::<usize>();
    let mut b = Compiler {
        model,
        nodes: Vec::with_capacity(count),
        definitions: Vec::with_capacity(count),
        keyed: Vec::with_capacity(count),
        current: 0,
        by_def: Vec::with_capacity(model.images.len() + model.tasks.len()),
        runs: Vec::new(),
        manifests: Vec::new(),
        edges: Vec::new(),
        executors: model.executors.iter().map(|e| (&e.platform, Arc::from(e.name.value.as_str()))).collect(),
        local: Arc::from(LOCAL_EXECUTOR),
    };
    b.add_nodes();
    b.add_edges();
    let Compiler { nodes: all, edges, definitions, mut keyed, .. } = b;
    let nodes = all.len();
    // Sorted by id: first by the id's first eight bytes as a number (most comparisons end
    // there, without following a pointer), then by the whole id.
    keyed.par_sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| all[a.1.index()].id.cmp(&all[b.1.index()].id))
    });
    let by_id: Vec<NodeIndex> = keyed.into_iter().map(|(_, n)| n).collect();
    let mut rank = vec![0u32; nodes];
    for (r, n) in by_id.iter().enumerate() {
        rank[n.index()] = r as u32;
    }
    // Each direction's adjacency from one sort of integers: (node, neighbour's rank) packed in
    // a u64, so the order within a node is by id; duplicates (an edge found twice) go.
    let packed = |node: u32, neighbour: u32| (u64::from(node) << 32) | u64::from(rank[neighbour as usize]);
    let unpacked =
        |pair: u64| ((pair >> 32) as u32, by_id[(pair & u64::from(u32::MAX)) as usize].index() as u32);
    let mut incoming: Vec<u64> = edges.par_iter().map(|&(from, to)| packed(to, from)).collect();
    incoming.par_sort_unstable();
    incoming.dedup();
    let incoming: Vec<(u32, u32)> = incoming.into_par_iter().map(unpacked).collect();
    let deps = Adjacency::from_sorted(nodes, &incoming);
    let mut outgoing: Vec<u64> = incoming.par_iter().map(|&(to, from)| packed(from, to)).collect();
    outgoing.par_sort_unstable();
    let outgoing: Vec<(u32, u32)> = outgoing.into_par_iter().map(unpacked).collect();
    let dependents = Adjacency::from_sorted(nodes, &outgoing);
    let order = topological_order(nodes, &deps, &dependents, &by_id, &rank);
    Graph { nodes: all, definitions, by_id, deps, dependents, order }
}

struct Compiler<'m> {
    model: &'m Model,
    nodes: Vec<Node>,
    /// Per node, its definition's position.
    definitions: Vec<u32>,
    /// Per node, the first eight bytes of its id as a number, and the node: what sorting by
    /// id sorts, taken while the id is at hand.
    keyed: Vec<(u64, NodeIndex)>,
    /// The position of the definition whose nodes are being added.
    current: u32,
    /// Per definition, by [`Model::position`]: where its platform nodes (builds or task runs)
    /// and its manifests are in `runs` and `manifests` (flat, so a million definitions are not
    /// a million small vectors).
    by_def: Vec<Parts>,
    /// (platform, target, node) of every image build and task run.
    runs: Vec<Run<'m>>,
    manifests: Vec<NodeIndex>,
    /// (dependency, dependent) pairs, possibly repeated.
    edges: Vec<(u32, u32)>,
    /// The declared executors' platforms and names, and `local`: each name made once, shared
    /// by its nodes.
    executors: Vec<(&'m Platform, Arc<str>)>,
    local: Arc<str>,
}

/// A build arg that receives another node's reference: (node, arg, the other node, its
/// registry arg).
/// A dependent, the build arg and named context that receive a dependency, the dependency,
/// and the arg that receives its repository part.
type Injected<'m> = (NodeIndex, Option<&'m String>, Option<&'m String>, NodeIndex, Option<&'m String>);

/// An image build or task run: its platform, target and node.
type Run<'m> = (Option<&'m Platform>, Option<&'m String>, NodeIndex);

/// One definition's nodes: ranges of [`Compiler::runs`] and [`Compiler::manifests`].
struct Parts {
    runs: std::ops::Range<usize>,
    manifests: std::ops::Range<usize>,
}

fn edge(from: NodeIndex, to: NodeIndex) -> (u32, u32) {
    (from.index() as u32, to.index() as u32)
}

impl<'m> Compiler<'m> {
    /// The platform of the machine that builds for `platform`: a declared executor builds its
    /// platform natively; the implicit `local` one is this host.
    fn build_platform(&self, platform: &Platform) -> Platform {
        if self.executors.iter().any(|(e, _)| *e == platform) { platform.clone() } else { Platform::host() }
    }

    fn executor_for(&self, platform: Option<&Platform>) -> Arc<str> {
        let declared = platform.and_then(|p| self.executors.iter().find(|(e, _)| *e == p));
        Arc::clone(declared.map_or(&self.local, |(_, name)| name))
    }

    fn add(&mut self, node: Node) -> NodeIndex {
        let index = NodeIndex::new(self.nodes.len());
        let id = node.id.as_str().as_bytes();
        let mut prefix = [0u8; 8];
        let head = &id[..id.len().min(8)];
        prefix[..head.len()].copy_from_slice(head);
        self.keyed.push((u64::from_be_bytes(prefix), index));
        self.definitions.push(self.current);
        self.nodes.push(node);
        index
    }

    fn add_nodes(&mut self) {
        let model = self.model;
        for (position, image) in model.images.iter().enumerate() {
            self.current = position as u32;
            let (runs, manifests) = (self.runs.len(), self.manifests.len());
            let targets: Vec<Option<&String>> =
                if image.targets.is_empty() { vec![None] } else { image.targets.iter().map(Some).collect() };
            let name = image.name.value.as_str();
            for target in targets {
                let builds = self.runs.len();
                for platform in &image.platforms {
                    let executor = self.executor_for(Some(platform));
                    let node = Node::new(
                        name,
                        NodeKind::Image,
                        Some(platform.clone()),
                        target.cloned(),
                        None,
                        executor,
                    );
                    let node = self.add(node);
                    self.runs.push((Some(platform), target, node));
                }
                let local = Arc::clone(&self.local);
                let manifest =
                    self.add(Node::new(name, NodeKind::Manifest, None, target.cloned(), None, local));
                for b in builds..self.runs.len() {
                    self.edges.push(edge(self.runs[b].2, manifest));
                }
                self.manifests.push(manifest);
                for tag in &image.tags {
                    let local = Arc::clone(&self.local);
                    let node =
                        Node::new(name, NodeKind::Tag, None, target.cloned(), Some(tag.clone()), local);
                    let node = self.add(node);
                    self.edges.push(edge(manifest, node));
                }
            }
            self.by_def
                .push(Parts { runs: runs..self.runs.len(), manifests: manifests..self.manifests.len() });
        }
        for (position, task) in model.tasks.iter().enumerate() {
            self.current = (model.images.len() + position) as u32;
            let (runs, manifests) = (self.runs.len(), self.manifests.len());
            let name = task.name.value.as_str();
            let platforms = task.platforms.iter().map(Some);
            // A task with no platforms runs once, on none.
            let none = task.platforms.is_empty().then_some(None);
            for platform in none.into_iter().chain(platforms) {
                let executor = self.executor_for(platform);
                let node = self.add(Node::new(name, NodeKind::Task, platform.cloned(), None, None, executor));
                self.runs.push((platform, None, node));
            }
            self.by_def
                .push(Parts { runs: runs..self.runs.len(), manifests: manifests..self.manifests.len() });
        }
    }

    fn add_edges(&mut self) {
        let model = self.model;
        let deps_of = |d: usize| match d.checked_sub(model.images.len()) {
            None => &model.images[d].deps,
            Some(task) => &model.tasks[task].deps,
        };
        // Each definition's edges are found on their own, so in parallel; rayon's fold and
        // reduce keep them in definition order.
        let this = &*self;
        type Found<'m> = (Vec<(u32, u32)>, Vec<Injected<'m>>);
        let (edges, injected): Found<'_> = (0..this.by_def.len())
            .into_par_iter()
            .fold(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(mut edges, mut injected, mut found), d| {
                    let parts = &this.by_def[d];
                    for &(platform, _, node) in &this.runs[parts.runs.clone()] {
                        for dep in deps_of(d) {
                            let target_filter = match &dep.kind {
                                DependencyKind::From { target, .. } => Some(target.as_ref()),
                                DependencyKind::After => None,
                            };
                            found.clear();
                            let build_platform;
                            let platform = match (&dep.kind, platform) {
                                (DependencyKind::From { platform: FromPlatform::Build, .. }, Some(p)) => {
                                    build_platform = this.build_platform(p);
                                    Some(&build_platform)
                                }
                                _ => platform,
                            };
                            this.resolve(dep.position, platform, target_filter, &mut found);
                            edges.extend(found.iter().map(|&from| edge(from, node)));
                            if let (DependencyKind::From { arg, registry_arg, context, .. }, [from]) =
                                (&dep.kind, found.as_slice())
                            {
                                injected.push((
                                    node,
                                    arg.as_ref(),
                                    context.as_ref(),
                                    *from,
                                    registry_arg.as_ref(),
                                ));
                            }
                        }
                    }
                    (edges, injected, found)
                },
            )
            .map(|(edges, injected, _)| (edges, injected))
            .reduce(
                || (Vec::new(), Vec::new()),
                |(mut edges, mut injected), (more_edges, more_injected)| {
                    edges.extend(more_edges);
                    injected.extend(more_injected);
                    (edges, injected)
                },
            );
        self.edges.extend(edges);
        for (node, arg, context, from, registry_arg) in injected {
            let id = self.nodes[from.index()].id.clone();
            let node = &mut self.nodes[node.index()];
            if let Some(context) = context {
                node.contexts.insert(context.clone(), id.clone());
            }
            if let Some(arg) = arg {
                node.inject.insert(arg.clone(), id);
                if let Some(registry_arg) = registry_arg {
                    node.inject_registry.insert(arg.clone(), registry_arg.clone());
                }
            }
        }
    }

    /// The nodes of the definition at `position` that a node on `platform` depends on, into
    /// `found`.
    fn resolve(
        &self,
        position: usize,
        platform: Option<&Platform>,
        target: Option<Option<&String>>,
        found: &mut Vec<NodeIndex>,
    ) {
        let Some(parts) = self.by_def.get(position) else { return };
        let is_task = position >= self.model.images.len();
        match platform {
            // A platform-free dependent needs the whole image (its manifests), or every run of a task.
            None if !is_task => found.extend_from_slice(&self.manifests[parts.manifests.clone()]),
            None => found.extend(self.runs[parts.runs.clone()].iter().map(|(_, _, n)| *n)),
            Some(p) => found.extend(
                self.runs[parts.runs.clone()]
                    .iter()
                    .filter(|(rp, _, _)| rp.is_none_or(|rp| rp == p))
                    .filter(|(_, t, _)| target.is_none_or(|want| want == *t))
                    .map(|(_, _, n)| *n),
            ),
        }
    }
}

/// Kahn's algorithm over ranks (positions in id order), always taking the smallest ready one:
/// deterministic whatever the input order.
fn topological_order(
    nodes: usize,
    deps: &Adjacency,
    dependents: &Adjacency,
    by_id: &[NodeIndex],
    rank: &[u32],
) -> Vec<NodeIndex> {
    let mut indegree: Vec<u32> = (0..nodes).map(|n| deps.of(NodeIndex::new(n)).len() as u32).collect();
    let mut ready = RankSet::new(nodes);
    for n in (0..nodes).filter(|&n| indegree[n] == 0) {
        ready.insert(rank[n]);
    }
    let mut order = Vec::with_capacity(nodes);
    while let Some(r) = ready.pop_min() {
        let node = by_id[r as usize];
        order.push(node);
        for next in dependents.of(node) {
            let i = next.index();
            indegree[i] -= 1;
            if indegree[i] == 0 {
                ready.insert(rank[i]);
            }
        }
    }
    order
}

/// A set of ranks below a fixed bound, popped smallest first: a bit per rank, and above them
/// summaries (a bit per non-empty word of the level below) up to a single word. Inserting and
/// popping each touch one word per level (four for a million ranks), where a binary heap of a
/// million entries sifts through twenty.
struct RankSet {
    /// `levels[0]` holds a bit per rank; each next level a bit per word of the one before.
    levels: Vec<Vec<u64>>,
}

impl RankSet {
    fn new(bound: usize) -> RankSet {
        let mut levels = Vec::new();
        let mut bits = bound.max(1);
        loop {
            let words = bits.div_ceil(64);
            levels.push(vec![0u64; words]);
            if words == 1 {
                break;
            }
            bits = words;
        }
        RankSet { levels }
    }

    fn insert(&mut self, rank: u32) {
        let mut at = rank as usize;
        for level in &mut self.levels {
            let was = level[at / 64];
            level[at / 64] = was | (1 << (at % 64));
            if was != 0 {
                // The levels above already know this word is not empty.
                return;
            }
            at /= 64;
        }
    }

    fn pop_min(&mut self) -> Option<u32> {
        // Down from the top, the first set bit of each level names the word to look in below.
        let mut at = 0usize;
        for level in self.levels.iter().rev() {
            let word = level[at];
            if word == 0 {
                return None;
            }
            at = at * 64 + word.trailing_zeros() as usize;
        }
        // Clear it, and each summary bit whose word it emptied.
        let rank = at;
        for level in &mut self.levels {
            level[at / 64] &= !(1 << (at % 64));
            if level[at / 64] != 0 {
                break;
            }
            at /= 64;
        }
        Some(rank as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranks come out smallest first, as from a binary heap, whatever order they went in.
    #[test]
    fn rank_set_pops_in_order() {
        for bound in [1usize, 63, 64, 65, 4096, 4097, 300_000] {
            let mut set = RankSet::new(bound);
            // The model: a sorted set.
            let mut model = std::collections::BTreeSet::new();
            let mut x = 12345u64;
            for step in 0..(bound * 2).min(40_000) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let rank = ((x >> 33) % bound as u64) as u32;
                // Ranks not already in go in (Kahn inserts each once); now and then, one comes out.
                if step % 3 != 2 && model.insert(rank) {
                    set.insert(rank);
                } else {
                    assert_eq!(set.pop_min(), model.pop_first(), "bound {bound}");
                }
            }
            while let Some(r) = set.pop_min() {
                assert_eq!(Some(r), model.pop_first());
            }
            assert!(model.is_empty());
        }
    }

    /// The petgraph graph has the graph's nodes, at the same indices, and its edges.
    #[test]
    fn dag_is_the_graph() {
        let (_dir, model) = crate::testing::yaml_model(
            "tasks:\n  a: { run: [\"true\"] }\n  b: { run: [\"true\"], after: [a] }\n  \
             c: { run: [\"true\"], after: [b, a] }\n",
        );
        let graph = compile(&model);
        let dag = graph.dag();
        assert_eq!(dag.node_count(), 3);
        for index in dag.node_indices() {
            assert_eq!(dag[index], graph.node(index));
        }
        let id = |n: NodeIndex| graph.node(n).id.as_str();
        let mut edges: Vec<(&str, &str)> =
            dag.raw_edges().iter().map(|e| (id(e.source()), id(e.target()))).collect();
        edges.sort_unstable();
        assert_eq!(edges, [("a", "b"), ("a", "c"), ("b", "c")]);
        let sorted = petgraph::algo::toposort(&dag, None).expect("acyclic");
        assert_eq!(sorted.iter().map(|&n| id(n)).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(graph.order().iter().map(|&n| id(n)).collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    /// Every kind of node is named as the graph names it, and its name starts its id.
    #[test]
    fn node_ids() {
        let arm: Platform = "linux/arm64".parse().expect("a platform");
        let local: Arc<str> = Arc::from(LOCAL_EXECUTOR);
        let node = |kind, platform: Option<&Platform>, target: Option<&str>, tag: Option<&str>| {
            let (target, tag) = (target.map(str::to_owned), tag.map(str::to_owned));
            Node::new("kaniko", kind, platform.cloned(), target, tag, Arc::clone(&local))
        };
        let cases = [
            (node(NodeKind::Image, Some(&arm), None, None), "kaniko@linux/arm64"),
            (node(NodeKind::Image, Some(&arm), Some("debug"), None), "kaniko.debug@linux/arm64"),
            (node(NodeKind::Manifest, None, Some("debug"), None), "kaniko.debug"),
            (node(NodeKind::Manifest, None, None, None), "kaniko"),
            (node(NodeKind::Tag, None, None, Some("latest")), "kaniko:latest"),
            (node(NodeKind::Tag, None, Some("debug"), Some("v1")), "kaniko.debug:v1"),
            (node(NodeKind::Task, Some(&arm), None, None), "kaniko@linux/arm64"),
            (node(NodeKind::Task, None, None, None), "kaniko"),
        ];
        for (node, id) in cases {
            assert_eq!(node.id.as_str(), id);
            assert_eq!(node.name(), "kaniko");
        }
    }
}
