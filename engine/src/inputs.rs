//! Node inputs: what each node of a [`Graph`] reads, gathered and hashed in one pass.
//!
//! Owns the mapping from a node to its normalized settings and its input files (a build context
//! with `.dockerignore`, a Dockerfile, task globs), and the single parallel hashing pass over the
//! union of all those files, so a file shared by many nodes is read once per run. Dependency
//! outputs are added later, by planning and running, because they change as the run goes on.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hephy_dsl::{Definition, ImageNode, ImageSource, Model};
use petgraph::graph::NodeIndex;
use rayon::prelude::*;

use crate::files::{self, Exclusions, FileSource, FilesError, StatCache};
use crate::graph::{Graph, Node, NodeKind};
use crate::key::{EncodedSettings, InputManifest, files_digest};
use crate::reads::ContextReads;
use crate::sorted::{SortedMap, Text};

/// The inputs of every node, except dependency outputs.
#[derive(Debug, Default)]
pub struct Inputs {
    /// By node index; shared with the plans made from them.
    nodes: Arc<Vec<NodeInputs>>,
    /// Stat-cache entries learnt while hashing, to be saved.
    pub fresh_stats: Vec<(String, files::Stat, String)>,
    /// How many files were read (not served by the stat cache).
    pub files_read: usize,
    /// How many distinct files were considered.
    pub files_total: usize,
    /// Every input file, and what listing them looked at: if none of these changed (nor the
    /// graph, nor the state), a plan comes out the same.
    pub watched: files::Watched,
}

/// One node's own inputs: its settings and files, without its dependencies' outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInputs {
    /// Its settings, encoded ([`NodeInputs::manifest`] spells them out).
    pub(crate) settings: EncodedSettings,
    /// Its input files → digest. Shared by the nodes that read the same files (the platforms of
    /// an image, unless its Dockerfile reads per platform).
    pub files: Arc<SortedMap>,
    /// Facts kept to explain changes, not part of the key (see [`InputManifest::labels`]).
    pub labels: BTreeMap<String, String>,
    /// The digest of the node's declared output files as they are now (tasks with `outputs`).
    pub outputs_now: Option<String>,
    /// A problem finding the node's inputs; the node cannot be planned.
    pub error: Option<InputError>,
    /// Where its result goes (`registry`, `naming`, `mirrors`) is no input of it: a task, or
    /// a build of hephy's own builder, which its index node pushes.
    pub placeless: bool,
}

impl NodeInputs {
    /// A manifest recorded before where results go left the keys of builds and tasks, as
    /// today's would be: without `registry`, `naming.*` and `mirrors.*` for a placeless node;
    /// without the settings that were their defaults (`naming.repository` `{registry}/{name}`,
    /// a tag's `naming.tag` `{tag}`, an image key's the dsl names: `Image::recorded_default`)
    /// for the others. Such a record whose other inputs are the same stays fresh and takes today's key.
    pub fn upgrade(&self, kind: NodeKind, mut old: InputManifest) -> InputManifest {
        let standard = hephy_dsl::Naming::standard();
        let had_registry = old.settings.contains_key("registry");
        old.settings.retain(|field, value| {
            let destination =
                field == "registry" || field.starts_with("naming.") || field.starts_with("mirrors.");
            let default = (field == "naming.repository" && value == standard.repository)
                || (kind == NodeKind::Tag && field == "naming.tag" && value == standard.tag)
                || (kind == NodeKind::Manifest
                    && hephy_dsl::Image::recorded_default(ImageNode::Index, field, value, had_registry));
            !(default || (self.placeless && destination))
        });
        old
    }

    /// Its settings, files and labels as a manifest (with no dependencies).
    pub fn manifest(&self) -> InputManifest {
        InputManifest {
            settings: self.settings.decode(),
            files: Arc::clone(&self.files),
            deps: SortedMap::new(),
            labels: self.labels.clone(),
        }
    }
}

impl Inputs {
    /// The inputs of `node`.
    pub fn get(&self, node: NodeIndex) -> Option<&NodeInputs> {
        self.nodes.get(node.index())
    }

    /// Every node's inputs, by node index, shared.
    pub(crate) fn shared(&self) -> Arc<Vec<NodeInputs>> {
        Arc::clone(&self.nodes)
    }
}

/// Identifies the tool that builds a node (name and version) from the node and its image or
/// task, so a new builder rebuilds. Most are fixed text (`process/1`), so no node pays for a
/// copy.
pub type BuilderIdentity<'a> = &'a (dyn Fn(&Node, Option<Definition<'_>>) -> Text + Sync);

/// What of its build context an image node reads ([`ContextReads::Whole`] unless its
/// Dockerfile says less), from the node and its image: the resolver's answer, so the engine
/// reads no Dockerfile.
pub type ContextReader<'a> = &'a (dyn Fn(&Node, Option<Definition<'_>>) -> ContextReads + Sync);

/// Why a secret's value cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretUnavailable {
    /// The graph declares no secret of that name.
    #[error("secret `{name}` is not declared")]
    Undeclared {
        /// The secret's name.
        name: String,
    },
    /// Its environment variable is not set (or not Unicode).
    #[error("secret `{name}`: the environment variable `{var}` is not set")]
    Unset {
        /// The secret's name.
        name: String,
        /// The variable it is read from.
        var: String,
    },
    /// Its file cannot be read.
    #[error("secret `{name}`: cannot read `{}`: {message}", path.display())]
    Unreadable {
        /// The secret's name.
        name: String,
        /// The file it is read from.
        path: PathBuf,
        /// What the system said.
        message: String,
    },
}

/// A secret's value, read from where the graph says (`Err`: why it cannot be had).
pub fn secret_value(model: &Model, name: &str) -> Result<String, SecretUnavailable> {
    let secret = model
        .secrets
        .iter()
        .find(|s| s.name.value == name)
        .ok_or_else(|| SecretUnavailable::Undeclared { name: name.to_owned() })?;
    match &secret.source {
        hephy_dsl::SecretSource::Env(var) => std::env::var(var)
            .map_err(|_| SecretUnavailable::Unset { name: name.to_owned(), var: var.clone() }),
        hephy_dsl::SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|v| v.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| SecretUnavailable::Unreadable {
                name: name.to_owned(),
                path: path.clone(),
                message: e.to_string(),
            }),
    }
}

/// What of a secret enters a key: a keyed blake3 of its value, so a changed secret rebuilds
/// without the value (or an unkeyed hash of it) ever being stored. The key comes from
/// `HEPHY_SECRET_FINGERPRINT_KEY` when set (share it between machines that share a registry
/// cache), else from the secret's name alone.
fn secret_fingerprint(model: &Model, name: &str) -> Result<String, SecretUnavailable> {
    let value = secret_value(model, name)?;
    let material = std::env::var("HEPHY_SECRET_FINGERPRINT_KEY").unwrap_or_default();
    let key =
        blake3::derive_key("hephy 2026-11 secret fingerprint v1", format!("{material}\0{name}").as_bytes());
    Ok(format!("keyed:{}", &blake3::keyed_hash(&key, value.as_bytes()).to_hex()[..32]))
}

/// Upstream commits by (URL, ref), resolved by the caller (`Err`: why it could not be).
pub type Upstreams = HashMap<(String, String), Result<String, UpstreamError>>;

/// Why the caller could not resolve an upstream ref: its own error, kept whole (the engine
/// knows no git), shared by every node built from that ref.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct UpstreamError(Arc<dyn std::error::Error + Send + Sync>);

impl UpstreamError {
    /// Wraps the resolver's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> UpstreamError {
        UpstreamError(Arc::new(error))
    }

    /// The resolver's error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

/// Two are equal when they are one error or say the same (plans compare their inputs).
impl PartialEq for UpstreamError {
    fn eq(&self, other: &UpstreamError) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for UpstreamError {}

/// Why a node's inputs cannot be gathered; the node cannot be planned
/// ([`crate::Reason::InputsUnreadable`] says it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Its context's or globs' files cannot be listed.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The files of a folder build context cannot be listed.
    #[error("build context `{name}`: {source}")]
    ContextFiles {
        /// The build context's name.
        name: String,
        /// Why.
        source: FilesError,
    },
    /// An OCI layout build context does not name its image.
    #[error("build context `{name}`: {source}")]
    ContextLayout {
        /// The build context's name.
        name: String,
        /// Why.
        source: LayoutError,
    },
    /// An upstream ref the caller could not resolve.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// An upstream ref the caller did not resolve at all.
    #[error("`{reference}` of {url} was not resolved")]
    Unresolved {
        /// The repository.
        url: String,
        /// The ref.
        reference: String,
    },
    /// A secret whose value (and so its fingerprint) cannot be had.
    #[error(transparent)]
    Secret(#[from] SecretUnavailable),
}

/// Per image name, the digests of the external base images it is built `FROM`.
pub type BaseImages = HashMap<String, BTreeMap<String, String>>;

/// The files of one source (a context or a set of globs), or why they cannot be listed.
type Listed = Result<Vec<String>, FilesError>;

/// Gathers and hashes the inputs of every node of `graph`.
#[allow(clippy::too_many_arguments)]
pub fn gather(
    model: &Model,
    graph: &Graph,
    builder: BuilderIdentity<'_>,
    reads: ContextReader<'_>,
    upstreams: &Upstreams,
    bases: &BaseImages,
    cache: &StatCache,
    exclusions: &Exclusions,
) -> Inputs {
    let root = model.root.as_path();
    // Settings of every node, in parallel (nothing here touches the disk but secret files).
    let no_files = Arc::new(SortedMap::new());
    let mut inputs = Inputs::default();
    // Most nodes have no files (tasks without globs, manifests, tags): one pointer each.
    let sources: Vec<Option<Box<Sources>>>;
    let mut nodes: Vec<NodeInputs>;
    (nodes, sources) = (0..graph.len())
        .into_par_iter()
        .map_init(
            // Each job its own empty file map: nodes of one job share it, and the two cores do
            // not fight over one reference count.
            || (Settings(Vec::with_capacity(16)), Arc::new(SortedMap::new())),
            |(settings, no_files), i| {
                let index = NodeIndex::new(i);
                let node = graph.node(index);
                let definition = graph.definition(model, index);
                let mut described = describe(
                    settings,
                    model,
                    node,
                    definition,
                    builder(node, definition),
                    upstreams,
                    bases,
                    no_files,
                );
                narrow_context(&mut described.1, || reads(node, definition));
                described
            },
        )
        .unzip();
    let unique: foldhash::HashSet<&FileSource> =
        sources.iter().flatten().flat_map(|s| [&s.0, &s.1]).flatten().collect();
    // Each distinct context or glob set is listed once, in parallel.
    let listed: Vec<(&FileSource, Listed, files::Watched)> = unique
        .into_par_iter()
        .map(|source| {
            let mut watched = files::Watched::default();
            let files = files::collect_watched(root, source, exclusions, &mut watched);
            (source, files, watched)
        })
        .collect();
    let mut watched = files::Watched::default();
    let listed: foldhash::HashMap<&FileSource, Listed> = listed
        .into_iter()
        .map(|(source, files, seen)| {
            watched.dirs.extend(seen.dirs);
            watched.files.extend(seen.files);
            (source, files)
        })
        .collect();
    for (_, output_source) in sources.iter().flatten().map(|s| &**s) {
        if let Some(Ok(paths)) = output_source.as_ref().and_then(|source| listed.get(source)) {
            watched.outputs.extend(paths.iter().cloned());
        }
    }
    let all: BTreeSet<String> = listed.values().flatten().flatten().cloned().collect();
    watched.files.extend(all.iter().cloned());
    inputs.watched = watched;
    let hashed = files::hash_all(root, &all, cache);
    inputs.files_total = all.len();
    inputs.files_read = hashed.read;
    inputs.fresh_stats = hashed.fresh_stats;
    // Each source's files and digests once, shared by every node built from it (an image's
    // platforms share their context).
    let digests: foldhash::HashMap<&FileSource, Result<Arc<SortedMap>, FilesError>> = listed
        .par_iter()
        .map(|(source, paths)| {
            let files = match paths {
                Ok(paths) => Ok(Arc::new(
                    paths
                        .iter()
                        .map(|p| {
                            (
                                p.clone(),
                                hashed.digests.get(p).cloned().unwrap_or_else(|| "missing".to_owned()),
                            )
                        })
                        .collect(),
                )),
                Err(e) => Err(e.clone()),
            };
            (*source, files)
        })
        .collect();
    let digests_of = |source: &FileSource| -> Result<Arc<SortedMap>, FilesError> {
        digests.get(source).cloned().unwrap_or_else(|| Ok(Arc::clone(&no_files)))
    };
    nodes.par_iter_mut().zip(&sources).for_each(|(entry, sources)| {
        let Some((input_source, output_source)) = sources.as_deref() else { return };
        if let Some(source) = input_source {
            match digests_of(source) {
                Ok(files) if files.is_empty() => {}
                Ok(files) => entry.files = files,
                Err(e) => entry.error = entry.error.take().or(Some(e.into())),
            }
        }
        if let Some(source) = output_source {
            match digests_of(source) {
                Ok(files) => entry.outputs_now = Some(files_digest(&files)),
                Err(e) => entry.error = Some(e.into()),
            }
        }
    });
    add_folder_contexts(model, graph, &mut nodes, cache, exclusions, &mut inputs);
    inputs.nodes = Arc::new(nodes);
    inputs
}

/// The files of each image's folder build contexts (`build-context "src" path="src"`), listed as
/// BuildKit sends a named local context (its own `.dockerignore` applies), hashed and added to
/// the files of the image's nodes, so `explain` names a changed file of the folder.
fn add_folder_contexts(
    model: &Model,
    graph: &Graph,
    nodes: &mut [NodeInputs],
    cache: &StatCache,
    exclusions: &Exclusions,
    inputs: &mut Inputs,
) {
    let mut listed: HashMap<String, Result<BTreeSet<String>, FilesError>> = HashMap::new();
    for image in &model.images {
        for context in &image.build_contexts {
            let hephy_dsl::ContextSource::Path(dir) = &context.source else { continue };
            let dir = dir.to_string_lossy().into_owned();
            listed.entry(dir.clone()).or_insert_with(|| {
                // A `Dockerfile` the folder may not have: only its `.dockerignore` is read.
                let source =
                    FileSource::Context { dir: dir.clone(), dockerfile: files::join(&dir, ".dockerignore") };
                let mut watched = files::Watched::default();
                let found = files::collect_watched(&model.root, &source, exclusions, &mut watched);
                inputs.watched.dirs.extend(watched.dirs);
                inputs.watched.files.extend(watched.files);
                found.map(|f| {
                    // The stand-in Dockerfile (the `.dockerignore`) is listed even when absent.
                    let ignore = files::join(&dir, ".dockerignore");
                    f.into_iter().filter(|p| *p != ignore || model.root.join(p).is_file()).collect()
                })
            });
        }
    }
    if listed.is_empty() {
        return;
    }
    let all: BTreeSet<String> = listed.values().flatten().flatten().cloned().collect();
    inputs.watched.files.extend(all.iter().cloned());
    let hashed = files::hash_all(&model.root, &all, cache);
    inputs.files_total += all.len();
    inputs.files_read += hashed.read;
    inputs.fresh_stats.extend(hashed.fresh_stats);
    for (i, entry) in nodes.iter_mut().enumerate() {
        let index = NodeIndex::new(i);
        if graph.node(index).kind != NodeKind::Image {
            continue;
        }
        let Some(Definition::Image(image)) = graph.definition(model, index) else { continue };
        let mut files: Option<SortedMap> = None;
        for context in &image.build_contexts {
            let hephy_dsl::ContextSource::Path(dir) = &context.source else { continue };
            match listed.get(dir.to_string_lossy().as_ref()) {
                Some(Ok(paths)) => {
                    let map = files.get_or_insert_with(|| {
                        entry.files.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
                    });
                    for path in paths {
                        let digest =
                            hashed.digests.get(path).cloned().unwrap_or_else(|| "missing".to_owned());
                        map.insert(path.clone(), digest);
                    }
                }
                Some(Err(e)) => {
                    entry.error = entry.error.take().or_else(|| {
                        Some(InputError::ContextFiles { name: context.name.value.clone(), source: e.clone() })
                    });
                }
                None => {}
            }
        }
        if let Some(files) = files {
            entry.files = Arc::new(files);
        }
    }
}

/// The settings an image's external named contexts put in its build's key: an image's
/// reference (its digest is among the bases), a folder's path (its files are added after
/// hashing), a git repository's commit, an OCI layout's manifest digest.
fn external_contexts<'a>(
    s: &mut Settings<'a>,
    model: &Model,
    image: &'a hephy_dsl::Image,
    upstreams: &Upstreams,
    labels: &mut BTreeMap<String, String>,
    error: &mut Option<InputError>,
) {
    use hephy_dsl::ContextSource;
    for context in &image.build_contexts {
        let name = &context.name.value;
        match &context.source {
            ContextSource::Image { reference } => {
                s.insert(format!("build-context.{name}.image"), reference.as_str())
            }
            ContextSource::Path(dir) => {
                s.insert(format!("build-context.{name}.path"), dir.to_string_lossy().into_owned());
            }
            ContextSource::Git { url, reference, dir } => {
                let reference = reference.as_deref().unwrap_or("HEAD");
                s.insert(format!("build-context.{name}.git"), url.as_str());
                s.insert(format!("build-context.{name}.dir"), dir.as_deref().unwrap_or("."));
                labels.insert(format!("build-context.{name}.ref"), reference.to_owned());
                match upstreams.get(&(url.clone(), reference.to_owned())) {
                    Some(Ok(commit)) => s.insert(format!("build-context.{name}.commit"), commit.clone()),
                    Some(Err(e)) => *error = error.take().or_else(|| Some(e.clone().into())),
                    None => {
                        *error = error.take().or_else(|| {
                            Some(InputError::Unresolved { url: url.clone(), reference: reference.to_owned() })
                        });
                    }
                }
            }
            ContextSource::OciLayout { path, reference } => {
                s.insert(format!("build-context.{name}.oci-layout"), path.to_string_lossy().into_owned());
                labels.insert(format!("build-context.{name}.ref"), reference.clone());
                match layout_digest(&model.root.join(path), reference) {
                    Ok(digest) => s.insert(format!("build-context.{name}.digest"), digest),
                    Err(source) => {
                        *error = error
                            .take()
                            .or_else(|| Some(InputError::ContextLayout { name: name.clone(), source }));
                    }
                }
            }
        }
    }
}

/// Why an OCI image layout does not name an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Its `index.json` cannot be read.
    #[error("cannot read `{path}`: {message}")]
    Read {
        /// The index file.
        path: String,
        /// What the system said.
        message: String,
    },
    /// Its `index.json` is not JSON.
    #[error("`{path}` is not JSON: {message}")]
    Json {
        /// The index file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// No manifest of the index has that tag or digest.
    #[error("the layout `{layout}` has no image `{reference}`")]
    NoSuchImage {
        /// The layout folder.
        layout: String,
        /// The tag or digest asked for.
        reference: String,
    },
}

/// The manifest digest `reference` (a tag, its `org.opencontainers.image.ref.name`, or a
/// `sha256:` digest) names in the OCI image layout at `layout`.
pub fn layout_digest(layout: &Path, reference: &str) -> Result<String, LayoutError> {
    let index = layout.join("index.json");
    let path = || index.display().to_string();
    let text = std::fs::read_to_string(&index)
        .map_err(|e| LayoutError::Read { path: path(), message: e.to_string() })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| LayoutError::Json { path: path(), message: e.to_string() })?;
    let manifests = value.get("manifests").and_then(|m| m.as_array()).cloned().unwrap_or_default();
    let digest_of = |m: &serde_json::Value| m.get("digest").and_then(|d| d.as_str()).map(str::to_owned);
    let found = if reference.starts_with("sha256:") {
        manifests.iter().filter_map(digest_of).find(|d| d == reference)
    } else {
        manifests
            .iter()
            .find(|m| {
                m.pointer("/annotations/org.opencontainers.image.ref.name").and_then(|r| r.as_str())
                    == Some(reference)
            })
            .and_then(digest_of)
    };
    found.ok_or_else(|| LayoutError::NoSuchImage {
        layout: layout.display().to_string(),
        reference: reference.to_owned(),
    })
}

/// Where a node's input and output files are.
type Sources = (Option<FileSource>, Option<FileSource>);

/// A node's own inputs, and where its files are (when it has any).
type Described = (NodeInputs, Option<Box<Sources>>);

/// A node's settings as they are described, in any order, borrowed from the model and the
/// graph where they can be; reused from node to node, as a node keeps only their encoding.
struct Settings<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Settings<'a> {
    fn insert(&mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        self.0.push((name.into(), value.into()));
    }
}

/// The fingerprint of a signing key file: the blake3 of its bytes (cosign's encrypted key, so
/// neither the key nor its password), so a new key re-signs. An unreadable file has none (the
/// signing node then fails, saying why).
fn key_fingerprint(path: &std::path::Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => format!("blake3:{}", blake3::hash(&bytes).to_hex()),
        Err(_) => "unreadable".to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
fn describe<'a>(
    s: &mut Settings<'a>,
    model: &'a Model,
    node: &'a Node,
    definition: Option<Definition<'a>>,
    builder: Text,
    upstreams: &'a Upstreams,
    bases: &'a BaseImages,
    no_files: &Arc<SortedMap>,
) -> Described {
    let mut labels = BTreeMap::new();
    let mut error = None;
    s.insert("kind", node.kind.as_str());
    if let Some(p) = &node.platform {
        s.insert("platform", p.to_string());
    }
    if let Some(t) = &node.target {
        s.insert("target", t);
    }
    // Where results go is an input only of the nodes that put them there. A task never pushes;
    // an image build of hephy's own builder (`oci`) lands in its layout whatever the registry,
    // and its index node pushes it (so adding or changing a registry or a mirror pushes what
    // exists and rebuilds nothing); builders that push themselves (buildah, kaniko, …) keep
    // the destination in their key.
    let image = match definition {
        Some(Definition::Image(image)) => Some(image),
        _ => None,
    };
    let pushes = match node.kind {
        NodeKind::Task => false,
        NodeKind::Image => image.is_some_and(|i| i.builder != hephy_dsl::Builder::Oci),
        NodeKind::Manifest | NodeKind::Tag => true,
    };
    let placeless = !pushes;
    if let (Some(r), true) = (&model.registry, pushes) {
        s.insert("registry", r);
        // How the pushed image is named is part of what a node publishes.
        let naming = &model.naming;
        let extra = match node.kind {
            NodeKind::Image => naming.platform.as_ref(),
            NodeKind::Manifest => naming.manifest.as_ref(),
            NodeKind::Tag => Some(&naming.tag),
            NodeKind::Task => None,
        };
        // The repository only when written (the image's own, or a naming that is not the
        // standard `{registry}/{name}`, which `registry` above already holds): a reason never
        // names a setting the user did not write.
        let own = image.and_then(|i| i.publish.repository.as_ref());
        match own {
            Some(own) => s.insert("naming.repository", own),
            None if naming.repository != hephy_dsl::Naming::standard().repository => {
                s.insert("naming.repository", &naming.repository);
            }
            None => {}
        }
        // Each more registry it is pushed to (a new mirror pushes everything there).
        let mirrors = image.map_or(&model.mirrors[..], |i| model.mirrors_of(i));
        for (i, mirror) in mirrors.iter().enumerate() {
            s.insert(format!("mirrors.{i}"), mirror);
        }
        // The tag template only when it is not the standard `{tag}` (the tag itself is the
        // node's own input).
        if let Some(extra) =
            extra.filter(|e| node.kind != NodeKind::Tag || **e != hephy_dsl::Naming::standard().tag)
        {
            s.insert("naming.tag", extra);
        }
    }
    let mut input_source = None;
    let mut output_source = None;
    match (node.kind, definition) {
        (NodeKind::Image, Some(Definition::Image(image))) => {
            s.insert("builder", builder);
            // The image's keys that put their own settings (the rows of the dsl's image key
            // table, `image_keys!`, that say `Put`): a new one is hashed without a line here.
            // Then what the engine knows: the references it injects, the external contexts
            // and the commit a git source resolves to.
            image.key_settings(model, ImageNode::Build, &mut |name, value| s.insert(name, value));
            for (arg, dep) in &node.inject {
                s.insert(format!("inject.{arg}"), dep.to_string());
            }
            for (arg, registry_arg) in &node.inject_registry {
                s.insert(format!("inject-registry.{arg}"), registry_arg);
            }
            for (context, dep) in &node.contexts {
                s.insert(format!("build-context.{context}"), dep.to_string());
            }
            external_contexts(s, model, image, upstreams, &mut labels, &mut error);
            match &image.source {
                ImageSource::Context { dir } => {
                    let dockerfile = files::join(dir, &image.dockerfile);
                    input_source = Some(FileSource::Context { dir: dir.clone(), dockerfile });
                }
                ImageSource::Git { url, reference, .. } => {
                    // What the ref resolves to (the table's `ref` row: `Resolved`).
                    labels.insert("git.ref".to_owned(), reference.clone());
                    match upstreams.get(&(url.clone(), reference.clone())) {
                        Some(Ok(commit)) => {
                            s.insert("git.commit", commit);
                        }
                        Some(Err(e)) => error = Some(e.clone().into()),
                        None => {
                            error = Some(InputError::Unresolved {
                                url: url.clone(),
                                reference: reference.clone(),
                            });
                        }
                    }
                }
            }
        }
        (NodeKind::Manifest, Some(Definition::Image(image))) => {
            image.key_settings(model, ImageNode::Index, &mut |name, value| s.insert(name, value));
            // The signing key is the index's (the index and its platform manifests are signed
            // when it is published): what the `sign` row resolves to (`Resolved`), the key
            // file's fingerprint, so a new key re-signs and rebuilds no platform.
            if let Some(sign) = &image.publish.sign {
                s.insert("supply.sign", key_fingerprint(&sign.key));
            }
        }
        (NodeKind::Tag, _) => {
            s.insert("tag", node.tag.as_deref().unwrap_or_default());
        }
        (NodeKind::Task, Some(Definition::Task(task))) => {
            s.insert("builder", builder);
            s.insert("run", encode_list(&task.run));
            s.insert("inputs", encode_list(&task.inputs));
            s.insert("outputs", encode_list(&task.outputs));
            for (k, v) in &task.env {
                s.insert(format!("env.{k}"), v);
            }
            // No globs, no files: nothing to list (or to watch).
            if !task.inputs.is_empty() {
                input_source = Some(FileSource::Globs(task.inputs.clone()));
            }
            if !task.outputs.is_empty() {
                output_source = Some(FileSource::Globs(task.outputs.clone()));
            }
        }
        _ => {}
    }
    let secrets = match definition {
        Some(Definition::Image(image)) if node.kind == NodeKind::Image => image.secrets.as_slice(),
        Some(Definition::Task(task)) => task.secrets.as_slice(),
        _ => &[],
    };
    for name in secrets {
        match secret_fingerprint(model, name) {
            Ok(fingerprint) => {
                s.insert(format!("secret.{name}"), fingerprint);
            }
            Err(e) => error = error.or(Some(e.into())),
        }
    }
    if node.kind == NodeKind::Image
        && let Some(refs) = bases.get(node.name())
    {
        for (reference, digest) in refs {
            s.insert(format!("base.{reference}"), digest);
        }
    }
    let sources =
        (input_source.is_some() || output_source.is_some()).then(|| Box::new((input_source, output_source)));
    let settings = EncodedSettings::from_unsorted(&mut s.0);
    s.0.clear();
    (
        NodeInputs { settings, files: Arc::clone(no_files), labels, outputs_now: None, error, placeless },
        sources,
    )
}

/// A context source narrowed to the paths its image reads, when `reads` says less than the
/// whole context (asked only of nodes with a context).
fn narrow_context(sources: &mut Option<Box<Sources>>, reads: impl FnOnce() -> ContextReads) {
    let Some(sources) = sources.as_deref_mut() else { return };
    let Some(FileSource::Context { dir, dockerfile }) = &sources.0 else { return };
    if let ContextReads::Paths(paths) = reads() {
        sources.0 =
            Some(FileSource::ContextPaths { dir: dir.clone(), dockerfile: dockerfile.clone(), paths });
    }
}

/// A list as one unambiguous string (JSON), so `["a b"]` and `["a", "b"]` differ.
fn encode_list(items: &[String]) -> Text {
    if items.is_empty() {
        return Cow::Borrowed("[]");
    }
    // Room for the usual case (no character to escape): `["a","b"]`.
    let mut json = Vec::with_capacity(1 + items.iter().map(|i| i.len() + 3).sum::<usize>());
    match serde_json::to_writer(&mut json, items) {
        Ok(()) => String::from_utf8(json).unwrap_or_default().into(),
        Err(_) => Cow::Borrowed(""),
    }
}

/// The output digest of a task's declared outputs after it ran (`files_digest` of nothing when
/// it declares none).
pub fn task_outputs_digest(
    root: &Path,
    outputs: &[String],
    exclusions: &Exclusions,
) -> Result<String, FilesError> {
    if outputs.is_empty() {
        return Ok(files_digest(&SortedMap::new()));
    }
    let paths = files::collect(root, &FileSource::Globs(outputs.to_vec()), exclusions)?;
    let set: BTreeSet<String> = paths.into_iter().collect();
    let hashed = files::hash_all(root, &set, &StatCache::new());
    let files: SortedMap = hashed.digests.into_iter().collect();
    Ok(files_digest(&files))
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn a_secret_that_cannot_be_had_says_which_and_why_in_its_data() {
        let (dir, model) = crate::testing::yaml_model(
            "secrets:\n  TOKEN: { file: missing-token }\n  KEY: { env: HEPHY_TEST_UNSET_VARIABLE_0 }\n\
             tasks:\n  t: { run: [\"true\"], secrets: [TOKEN, KEY] }\n",
        );
        let undeclared = secret_value(&model, "NOPE").unwrap_err();
        assert_eq!(undeclared, SecretUnavailable::Undeclared { name: "NOPE".to_owned() });
        assert_eq!(undeclared.to_string(), "secret `NOPE` is not declared");
        let unset = secret_value(&model, "KEY").unwrap_err();
        assert_eq!(
            unset,
            SecretUnavailable::Unset {
                name: "KEY".to_owned(),
                var: "HEPHY_TEST_UNSET_VARIABLE_0".to_owned()
            }
        );
        assert_eq!(
            unset.to_string(),
            "secret `KEY`: the environment variable `HEPHY_TEST_UNSET_VARIABLE_0` is not set"
        );
        let SecretUnavailable::Unreadable { name, path, .. } = secret_value(&model, "TOKEN").unwrap_err()
        else {
            panic!("an unreadable file is `Unreadable`");
        };
        assert_eq!((name.as_str(), path), ("TOKEN", dir.path().join("missing-token")));
        // The node that needs it cannot be planned, and says why: the first secret it lacks.
        let graph = crate::compile(&model);
        let inputs = crate::testing::test_inputs(&model, &graph);
        let task = graph.find("t").expect("the task");
        let error = inputs.get(task).and_then(|i| i.error.clone()).expect("an input error");
        assert!(
            matches!(&error, InputError::Secret(SecretUnavailable::Unreadable { name, .. }) if name == "TOKEN")
        );
        assert!(error.to_string().starts_with("secret `TOKEN`: cannot read `"), "{error}");
    }

    #[test]
    fn an_upstream_error_is_the_resolvers_own_kept_whole() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such repository");
        let error = UpstreamError::new(io);
        assert_eq!(error.to_string(), "no such repository");
        assert!(error.get().downcast_ref::<std::io::Error>().is_some());
        assert_eq!(error.clone(), error);
        let upstreams: Upstreams = [(("u".to_owned(), "main".to_owned()), Err(error.clone()))].into();
        let input: InputError = upstreams[&("u".to_owned(), "main".to_owned())].clone().unwrap_err().into();
        assert_eq!(input, InputError::Upstream(error));
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;

    fn manifest(settings: &[(&str, &str)]) -> InputManifest {
        InputManifest {
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..InputManifest::default()
        }
    }

    fn inputs(placeless: bool) -> NodeInputs {
        NodeInputs {
            settings: EncodedSettings::new(&SortedMap::new()),
            files: Arc::new(SortedMap::new()),
            labels: BTreeMap::new(),
            outputs_now: None,
            error: None,
            placeless,
        }
    }

    #[test]
    fn records_from_before_lose_the_destination_and_the_defaults() {
        let build = manifest(&[
            ("kind", "image"),
            ("registry", "reg.example/team"),
            ("naming.repository", "{registry}/{name}"),
            ("mirrors.0", "mirror.example"),
            ("args.V", "1"),
        ]);
        let upgraded = inputs(true).upgrade(NodeKind::Image, build.clone());
        assert_eq!(upgraded, manifest(&[("kind", "image"), ("args.V", "1")]));
        // A builder that pushes itself keeps its destination; only the default goes.
        let kept = inputs(false).upgrade(NodeKind::Image, build);
        assert_eq!(
            kept,
            manifest(&[
                ("kind", "image"),
                ("registry", "reg.example/team"),
                ("mirrors.0", "mirror.example"),
                ("args.V", "1"),
            ])
        );
        let tag = manifest(&[
            ("kind", "tag"),
            ("registry", "r"),
            ("naming.tag", "{tag}"),
            ("naming.repository", "{registry}/apps"),
        ]);
        assert_eq!(
            inputs(false).upgrade(NodeKind::Tag, tag),
            manifest(&[("kind", "tag"), ("registry", "r"), ("naming.repository", "{registry}/apps")])
        );
        let index = manifest(&[("kind", "manifest"), ("registry", "r"), ("supply.provenance", "true")]);
        assert_eq!(
            inputs(false).upgrade(NodeKind::Manifest, index),
            manifest(&[("kind", "manifest"), ("registry", "r")])
        );
    }
}
