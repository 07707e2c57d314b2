//! The build graph: a validated [`Model`] → a DAG of [`Node`]s.
//!
//! Owns node identity ([`NodeId`]), the expansion of images into per-platform (and per-target)
//! builds, manifests and tags, the platform-matched edges between them, and the deterministic
//! topological order. It never fails: every error it could meet was reported by the analyzer.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fmt;

use hephy_dsl::{Definition, DependencyKind, Model, Platform};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

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

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Image => "image",
            NodeKind::Manifest => "manifest",
            NodeKind::Tag => "tag",
            NodeKind::Task => "task",
        })
    }
}

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its identity.
    pub id: NodeId,
    /// The image or task it comes from.
    pub name: String,
    /// What it does.
    pub kind: NodeKind,
    /// The platform it builds for; `None` for manifests, tags and platform-free tasks.
    pub platform: Option<Platform>,
    /// The build target (Dockerfile stage), for images with several.
    pub target: Option<String>,
    /// The extra tag, for tag nodes.
    pub tag: Option<String>,
    /// The executor it runs on (`local` when the graph declares none for it).
    pub executor: String,
    /// Build args that receive the image reference of another node (`from NAME arg=ARG`).
    pub inject: BTreeMap<String, NodeId>,
    /// Build args that receive the repository part of that reference (`registry-arg=`), keyed
    /// by the `arg` they pair with.
    pub inject_registry: BTreeMap<String, String>,
}

/// The name of the executor that exists when none is declared, and that runs platform-free nodes.
pub const LOCAL_EXECUTOR: &str = "local";

/// The compiled DAG. Edges point from a dependency to its dependent.
#[derive(Debug, Clone)]
pub struct Graph {
    dag: DiGraph<Node, ()>,
    ids: HashMap<NodeId, NodeIndex>,
    order: Vec<NodeIndex>,
}

impl Graph {
    /// All nodes in execution order: dependencies first, ties broken by id.
    pub fn order(&self) -> &[NodeIndex] {
        &self.order
    }

    /// The node at `index`.
    pub fn node(&self, index: NodeIndex) -> &Node {
        &self.dag[index]
    }

    /// The node called `id`.
    pub fn find(&self, id: &str) -> Option<NodeIndex> {
        self.ids.get(&NodeId(id.to_owned())).copied()
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.dag.node_count()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }

    /// The direct dependencies of `index`, sorted by id.
    pub fn deps(&self, index: NodeIndex) -> Vec<NodeIndex> {
        self.neighbours(index, Direction::Incoming)
    }

    /// The direct dependents of `index`, sorted by id.
    pub fn dependents(&self, index: NodeIndex) -> Vec<NodeIndex> {
        self.neighbours(index, Direction::Outgoing)
    }

    fn neighbours(&self, index: NodeIndex, direction: Direction) -> Vec<NodeIndex> {
        let mut out: Vec<NodeIndex> = self.dag.neighbors_directed(index, direction).collect();
        out.sort_by(|a, b| self.dag[*a].id.cmp(&self.dag[*b].id));
        out.dedup();
        out
    }

    /// The underlying petgraph graph, for algorithms and export.
    pub fn dag(&self) -> &DiGraph<Node, ()> {
        &self.dag
    }
}

/// Compiles a model into its DAG.
pub fn compile(model: &Model) -> Graph {
    let mut b = Builder { model, dag: DiGraph::new(), ids: HashMap::new(), by_def: HashMap::new() };
    b.add_nodes();
    b.add_edges();
    let order = topological_order(&b.dag);
    Graph { dag: b.dag, ids: b.ids, order }
}

struct Builder<'m> {
    model: &'m Model,
    dag: DiGraph<Node, ()>,
    ids: HashMap<NodeId, NodeIndex>,
    /// Per definition name: its platform nodes (builds or task runs), and its manifests.
    by_def: HashMap<&'m str, Parts>,
}

#[derive(Default)]
struct Parts {
    /// (platform, target, node) for image builds and task runs.
    runs: Vec<(Option<Platform>, Option<String>, NodeIndex)>,
    manifests: Vec<NodeIndex>,
}

impl<'m> Builder<'m> {
    fn executor_for(&self, platform: Option<&Platform>) -> String {
        platform
            .and_then(|p| self.model.executors.iter().find(|e| e.platform == *p))
            .map_or_else(|| LOCAL_EXECUTOR.to_owned(), |e| e.name.value.clone())
    }

    fn add(&mut self, node: Node) -> NodeIndex {
        let id = node.id.clone();
        let index = self.dag.add_node(node);
        self.ids.insert(id, index);
        index
    }

    fn add_nodes(&mut self) {
        for image in &self.model.images {
            let mut parts = Parts::default();
            let targets: Vec<Option<&String>> =
                if image.targets.is_empty() { vec![None] } else { image.targets.iter().map(Some).collect() };
            for target in targets {
                let base = match target {
                    Some(t) => format!("{}.{t}", image.name.value),
                    None => image.name.value.clone(),
                };
                let mut builds = Vec::new();
                for platform in &image.platforms {
                    let node = self.add(Node {
                        id: NodeId(format!("{base}@{platform}")),
                        name: image.name.value.clone(),
                        kind: NodeKind::Image,
                        platform: Some(platform.clone()),
                        target: target.cloned(),
                        tag: None,
                        executor: self.executor_for(Some(platform)),
                        inject: BTreeMap::new(),
                        inject_registry: BTreeMap::new(),
                    });
                    builds.push(node);
                    parts.runs.push((Some(platform.clone()), target.cloned(), node));
                }
                let manifest = self.add(Node {
                    id: NodeId(base.clone()),
                    name: image.name.value.clone(),
                    kind: NodeKind::Manifest,
                    platform: None,
                    target: target.cloned(),
                    tag: None,
                    executor: LOCAL_EXECUTOR.to_owned(),
                    inject: BTreeMap::new(),
                    inject_registry: BTreeMap::new(),
                });
                for build in builds {
                    self.dag.add_edge(build, manifest, ());
                }
                parts.manifests.push(manifest);
                for tag in &image.tags {
                    let node = self.add(Node {
                        id: NodeId(format!("{base}:{tag}")),
                        name: image.name.value.clone(),
                        kind: NodeKind::Tag,
                        platform: None,
                        target: target.cloned(),
                        tag: Some(tag.clone()),
                        executor: LOCAL_EXECUTOR.to_owned(),
                        inject: BTreeMap::new(),
                        inject_registry: BTreeMap::new(),
                    });
                    self.dag.add_edge(manifest, node, ());
                }
            }
            self.by_def.insert(image.name.as_str(), parts);
        }
        for task in &self.model.tasks {
            let mut parts = Parts::default();
            let platforms: Vec<Option<&Platform>> = if task.platforms.is_empty() {
                vec![None]
            } else {
                task.platforms.iter().map(Some).collect()
            };
            for platform in platforms {
                let id = match platform {
                    Some(p) => format!("{}@{p}", task.name.value),
                    None => task.name.value.clone(),
                };
                let node = self.add(Node {
                    id: NodeId(id),
                    name: task.name.value.clone(),
                    kind: NodeKind::Task,
                    platform: platform.cloned(),
                    target: None,
                    tag: None,
                    executor: self.executor_for(platform),
                    inject: BTreeMap::new(),
                    inject_registry: BTreeMap::new(),
                });
                parts.runs.push((platform.cloned(), None, node));
            }
            self.by_def.insert(task.name.as_str(), parts);
        }
    }

    fn add_edges(&mut self) {
        let runs: Vec<(NodeIndex, &'m str, Option<Platform>)> = self
            .by_def
            .iter()
            .flat_map(|(name, parts)| parts.runs.iter().map(move |(p, _, n)| (*n, *name, p.clone())))
            .collect();
        let mut edges: HashSet<(NodeIndex, NodeIndex)> = HashSet::new();
        for (node, name, platform) in runs {
            let Some(def) = self.model.definition(name) else { continue };
            for dep in def.deps() {
                let target_filter = match &dep.kind {
                    DependencyKind::From { target, .. } => Some(target.clone()),
                    DependencyKind::After => None,
                };
                let found = self.resolve(&dep.name, platform.as_ref(), target_filter.as_ref());
                for &from in &found {
                    // A set, not `update_edge`: that scans the dependency's edges, quadratic for
                    // a node many depend on.
                    if edges.insert((from, node)) {
                        self.dag.add_edge(from, node, ());
                    }
                }
                if let (DependencyKind::From { arg, registry_arg, .. }, [from]) =
                    (&dep.kind, found.as_slice())
                {
                    let id = self.dag[*from].id.clone();
                    self.dag[node].inject.insert(arg.clone(), id);
                    if let Some(registry_arg) = registry_arg {
                        self.dag[node].inject_registry.insert(arg.clone(), registry_arg.clone());
                    }
                }
            }
        }
    }

    /// The nodes of `name` that a node on `platform` depends on.
    fn resolve(
        &self,
        name: &str,
        platform: Option<&Platform>,
        target: Option<&Option<String>>,
    ) -> Vec<NodeIndex> {
        let Some(parts) = self.by_def.get(name) else { return Vec::new() };
        let is_task = matches!(self.model.definition(name), Some(Definition::Task(_)));
        match platform {
            // A platform-free dependent needs the whole image (its manifests), or every run of a task.
            None if !is_task => parts.manifests.clone(),
            None => parts.runs.iter().map(|(_, _, n)| *n).collect(),
            Some(p) => parts
                .runs
                .iter()
                .filter(|(rp, _, _)| rp.is_none() || rp.as_ref() == Some(p))
                .filter(|(_, t, _)| target.is_none_or(|want| want == t))
                .map(|(_, _, n)| *n)
                .collect(),
        }
    }
}

/// Kahn's algorithm, always taking the smallest ready id: deterministic whatever the input order.
fn topological_order(dag: &DiGraph<Node, ()>) -> Vec<NodeIndex> {
    let mut indegree: Vec<usize> =
        dag.node_indices().map(|n| dag.neighbors_directed(n, Direction::Incoming).count()).collect();
    let mut ready: BinaryHeap<Reverse<(&NodeId, NodeIndex)>> =
        dag.node_indices().filter(|n| indegree[n.index()] == 0).map(|n| Reverse((&dag[n].id, n))).collect();
    let mut order = Vec::with_capacity(dag.node_count());
    while let Some(Reverse((_, node))) = ready.pop() {
        order.push(node);
        for next in dag.neighbors_directed(node, Direction::Outgoing) {
            indegree[next.index()] -= 1;
            if indegree[next.index()] == 0 {
                ready.push(Reverse((&dag[next].id, next)));
            }
        }
    }
    order
}
