//! Whether what the state records as built is still there, and keeping hephy's image layout in
//! step with the records.
//!
//! [`Outputs`] is the engine's [`OutputCheck`] for images: without a registry, an image of the
//! built-in builder must be named in `.hephy/oci/index.json` with its recorded digest and be
//! there whole (a read of its small manifest and a stat of each blob it names, never a read of
//! a layer); with a registry, its manifest must answer a `HEAD` by digest (unless `--offline`;
//! a registry out of reach cannot say an image is gone). Tasks' declared outputs are checked by
//! the engine itself (`outputs_now`); images of external builders without a registry live in
//! that builder's storage and are not checked. It remembers every file and manifest it looked
//! at ([`Evidence`]), so the CLI's no-op stamp can tell, cheaply, whether they all still hold.
//!
//! [`prepare_layout`] repairs `index.json` from the records of every image (never truncating it
//! to what one run built) and removes temporaries and scratch folders a killed run left;
//! [`collect_garbage`] (`hephy gc`) removes the blobs no recorded image and no entry of
//! `index.json` references (an entry without a name, as `skopeo copy` writes it, included),
//! and the damaged blobs of recorded images, so the next run rebuilds them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use hephy_dsl::{Definition, Model};
use hephy_engine::{Graph, Node, NodeKind, OutputCheck, Snapshot};
use hephy_oci::document::{self, spec};

use crate::builders::oci::{layout_name, media_type_of, oci_platform};
use crate::registry::reference;
use crate::registry::{Client, Reference};
use crate::release::Release;
use hephy_oci::layout::{self, Layout, LayoutError, Looked, valid_digest};

/// What an output check looked at: files (which must keep their stat) and registry manifests
/// (reference by digest, which must still answer).
#[derive(Debug, Default, Clone)]
pub struct Evidence {
    /// Files of the image layout, absolute, each once: `index.json`, the manifests and
    /// indexes read, and the blobs folder (the other blobs are only sized).
    pub files: Vec<PathBuf>,
    /// `repository@digest` references asked by `HEAD`.
    pub manifests: BTreeSet<String>,
}

/// The check of images' outputs for one graph (see the module doc).
#[derive(Debug)]
pub struct Outputs<'m> {
    model: &'m Model,
    release: Arc<Release>,
    layout: Layout,
    state_dir: PathBuf,
    offline: bool,
    client: Client,
    names: OnceLock<Option<BTreeMap<String, String>>>,
    looked: Looked,
    manifests: Mutex<BTreeSet<String>>,
}

impl<'m> Outputs<'m> {
    /// The check for `model`, whose state is in `state_dir`; `offline` trusts the registry;
    /// tags render with `release`.
    pub fn new(model: &'m Model, state_dir: &Path, offline: bool, release: Arc<Release>) -> Outputs<'m> {
        Outputs {
            model,
            release,
            layout: layout_of(state_dir),
            state_dir: state_dir.to_path_buf(),
            offline,
            client: Client::once_only(),
            names: OnceLock::new(),
            looked: Looked::default(),
            manifests: Mutex::new(BTreeSet::new()),
        }
    }

    /// Everything the checks so far looked at: `index.json`, each manifest and index read (a
    /// change in place is a change to what the check reads), and the blobs folder itself for
    /// the configs and layers, which the check only sizes: a blob removed, added or renamed
    /// changes the folder's times, so the stamp stats one folder rather than every blob.
    pub fn evidence(&self) -> Evidence {
        let mut read = self.looked.read();
        read.sort_unstable();
        let mut files: Vec<PathBuf> = Vec::with_capacity(read.len() + 2);
        if self.names.get().is_some() {
            files.push(self.layout.index_path());
        }
        let sized = self.looked.blobs();
        if let Some(folder) =
            sized.first().and_then(|digest| self.layout.blob_path(digest).parent().map(Path::to_path_buf))
        {
            files.push(folder);
        }
        files.extend(read.iter().map(|digest| self.layout.blob_path(digest)));
        Evidence { files, manifests: self.manifests.lock().map(|m| m.clone()).unwrap_or_default() }
    }

    fn in_layout(&self, node: &Node, output: &str) -> bool {
        let named = self
            .names
            .get_or_init(|| self.layout.names())
            .as_ref()
            .is_some_and(|names| names.get(&layout_name(node)).is_some_and(|d| d == output));
        named && self.layout.whole(output, &self.looked)
    }

    /// Whether every registry the image is pushed to (its `registry`, then each mirror) holds
    /// `output`, and, for a tag node, its tag as rendered now: one missing anywhere reruns the
    /// node, which pushes to all of them.
    fn in_registry(&self, node: &Node, output: &str) -> bool {
        if self.offline || !valid_digest(output) {
            return true;
        }
        let tag = (node.kind == NodeKind::Tag)
            .then(|| crate::builders::oci::pushed_tag(self.model, &self.release, node, &self.state_dir));
        reference::repositories(self.model, &self.release, node).into_iter().all(|repository| {
            let text = format!("{repository}@{output}");
            if let Ok(mut manifests) = self.manifests.lock() {
                manifests.insert(text.clone());
            }
            if !registry_holds(&self.client, &text).unwrap_or(true) {
                return false;
            }
            // A signed image's index and platform manifests each need their signature there.
            if node.kind == NodeKind::Manifest && self.signs(node) && !self.signed(&repository, output) {
                return false;
            }
            // A tag node's output is its tag too: a tag rendered anew (`{date}`, `{commit}`)
            // that the registry lacks is pushed again.
            let Some(tag) = &tag else { return true };
            let Ok(reference) = Reference::parse(&format!("{repository}:{tag}")) else { return false };
            self.client.resolve(&reference).map_or(true, |found| found.is_some_and(|d| d == output))
        })
    }
}

impl Outputs<'_> {
    /// Whether `node`'s image is signed.
    fn signs(&self, node: &Node) -> bool {
        matches!(self.model.definition(node.name()), Some(Definition::Image(image)) if image.publish.sign.is_some())
    }

    /// Whether `repository` holds a signature (a cosign `sha256-HEX.sig` tag) of the index
    /// `index` and of each of its platform manifests (its attestation manifests are covered by
    /// the index's). Each signature manifest found joins the evidence, so deleting one makes
    /// the no-op stamp stale too. A registry that cannot be asked cannot say one is gone.
    fn signed(&self, repository: &str, index: &str) -> bool {
        let Ok(reference) = Reference::parse(&format!("{repository}@{index}")) else { return false };
        let Ok(manifest) = self.client.manifest(&reference) else { return true };
        let Ok(children) = document::Children::of(&manifest.bytes) else { return true };
        let attestation = |e: &spec::Descriptor| {
            e.annotations().as_ref().and_then(|a| a.get("vnd.docker.reference.type")).map(String::as_str)
                == Some("attestation-manifest")
        };
        let platforms = children.manifests.iter().filter(|e| !attestation(e)).map(|e| e.digest().as_ref());
        for digest in std::iter::once(index).chain(platforms) {
            let Ok(tag) = crate::supply::sign::signature_tag(digest) else { return false };
            let Ok(sig) = Reference::parse(&format!("{repository}:{tag}")) else { return false };
            match self.client.resolve(&sig) {
                Ok(Some(found)) => {
                    if let Ok(mut manifests) = self.manifests.lock() {
                        manifests.insert(format!("{repository}@{found}"));
                    }
                }
                Ok(None) => return false,
                Err(_) => {}
            }
        }
        true
    }
}

impl OutputCheck for Outputs<'_> {
    fn exists(&self, node: &Node, output: &str) -> bool {
        let Some(Definition::Image(image)) = self.model.definition(node.name()) else { return true };
        let own = crate::builders::in_process(image.builder);
        match &self.model.registry {
            // A build of hephy's own builder in the layout is there: its index node pushes it
            // to each registry that lacks it (where results go is not in a build's key).
            Some(_) if own && node.kind == NodeKind::Image && self.in_layout(node, output) => true,
            Some(_) => self.in_registry(node, output),
            None if own => self.in_layout(node, output),
            None => true,
        }
    }
}

/// Whether the registry holds the manifest `text` (`repository@digest`); `None` when it cannot
/// be asked.
fn registry_holds(client: &Client, text: &str) -> Option<bool> {
    let reference = Reference::parse(text).ok()?;
    let digest = reference.digest.clone()?;
    client.resolve(&reference).ok().map(|found| found.is_some_and(|d| d == digest))
}

/// Whether the registry still holds every one of `manifests` (`repository@digest`); `false`
/// when one is gone or cannot be asked.
pub fn registry_holds_all(manifests: &[String]) -> bool {
    let client = Client::once_only();
    std::thread::scope(|scope| {
        let handles: Vec<_> = manifests
            .chunks(manifests.len().div_ceil(8).max(1))
            .map(|chunk| {
                let client = &client;
                scope.spawn(move || chunk.iter().all(|m| registry_holds(client, m) == Some(true)))
            })
            .collect();
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    })
}

fn layout_of(state_dir: &Path) -> Layout {
    Layout::in_state(state_dir)
}

/// Readies the image layout for a run (the caller holds the run lock): removes temporaries and
/// scratch folders a killed run left, and rewrites `index.json` so it names every image the
/// records say is built here and whose manifest is in the layout (entries of other names, or of
/// none, whose blobs are here are kept). Returns how many temporaries and scratch folders were
/// removed.
pub fn prepare_layout(
    model: &Model,
    graph: &Graph,
    snapshot: &Snapshot,
    state_dir: &Path,
) -> Result<usize, LayoutError> {
    let scratch = crate::scratch::clean(state_dir);
    let layout = layout_of(state_dir);
    if std::fs::symlink_metadata(layout.dir()).is_err() {
        return Ok(scratch);
    }
    let removed = layout.clean_temporaries() + scratch;
    let mut named: BTreeMap<String, spec::Descriptor> = BTreeMap::new();
    for &index in graph.order() {
        let node = graph.node(index);
        if node.kind == NodeKind::Task || !matches!(model.definition(node.name()), Some(Definition::Image(_)))
        {
            continue;
        }
        let Some(record) = snapshot.records.get(node.id.as_str()) else { continue };
        let Some(bytes) = layout.read(&record.output) else { continue };
        // A record whose output is no digest names nothing here.
        let Ok(mut entry) = document::descriptor(&media_type_of(&bytes), &record.output, bytes.len() as u64)
        else {
            continue;
        };
        if node.kind == NodeKind::Image {
            entry.set_platform(node.platform.as_ref().map(oci_platform));
        }
        let name = layout_name(node);
        named.insert(name.clone(), layout::with_ref_name(entry, &name));
    }
    layout.repair(named)?;
    Ok(removed)
}

/// Removes the temporaries a killed run left in the image layout (the caller holds the run
/// lock) and the scratch folders of processes that are gone; returns how many.
pub fn clean_temporaries(state_dir: &Path) -> usize {
    crate::scratch::clean(state_dir) + layout_of(state_dir).clean_temporaries()
}

/// Why `hephy gc` removed nothing.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The layout's `index.json` cannot be read, so what it names is unknown.
    #[error("`{}` is damaged; `hephy run` repairs it from the state, then collect garbage", index.display())]
    Damaged {
        /// The layout's `index.json`.
        index: std::path::PathBuf,
    },
    /// The layout refused.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// What `hephy gc` removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Collected {
    /// Blobs (and temporaries) removed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs kept.
    pub kept: usize,
    /// Of the files removed, blobs of recorded images that were damaged (a size other than
    /// their manifest gives, or a manifest or config whose bytes do not hash to its name):
    /// the next run rebuilds the images that need them.
    pub damaged: usize,
    /// Scratch folders (in the state folder) and secret files (in `$TMPDIR`) a killed process
    /// left, removed.
    pub scratch: usize,
}

/// Removes from the layout every blob that no recorded output (of any node the state
/// remembers, in this graph or not) and no `index.json` entry (named or not: an image another
/// tool put there is never hephy's to remove) reaches, every temporary, and every damaged blob
/// a record reaches; and the scratch folders killed processes left. The caller holds the run
/// lock.
pub fn collect_garbage(snapshot: &Snapshot, state_dir: &Path) -> Result<Collected, GcError> {
    let layout = layout_of(state_dir);
    let recorded: HashSet<String> = snapshot.records.values().map(|r| r.output.clone()).collect();
    let mut roots = recorded.clone();
    match layout.entries() {
        Some(entries) => roots.extend(entries.into_iter().map(|(_, digest)| digest)),
        None => {
            return Err(GcError::Damaged { index: layout.index_path() });
        }
    }
    let scratch = crate::scratch::clean(state_dir);
    let keep = layout.reachable(roots.iter().map(String::as_str));
    let (mut files, mut bytes) = layout.collect_garbage(&keep)?;
    let mut damaged = 0;
    for digest in layout.damaged(recorded.iter().map(String::as_str)) {
        let size = std::fs::symlink_metadata(layout.blob_path(&digest)).map_or(0, |m| m.len());
        if layout.remove(&digest)? {
            damaged += 1;
            files += 1;
            bytes += size;
        }
    }
    let kept = keep.iter().filter(|d| layout.has(d)).count();
    Ok(Collected { files, bytes, kept, damaged, scratch })
}
