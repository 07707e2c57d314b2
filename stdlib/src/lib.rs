//! hephy's built-in node kinds: what each kind of node does when it runs.
//!
//! Owns [`Stdlib`], the engine's [`Work`] for every node kind: tasks run their argv as a process
//! (no shell, own process group, output to a log); image, manifest and tag nodes go through the
//! image's builder (`buildah` runs here: build per platform, push, index, tags; kaniko,
//! BuildKit, buildx, ko and spin run their rendered command where the tool exists), checked
//! before anything runs ([`check`]). Also owns [`builder_identity`], which enters every node's
//! key, and [`RegistryCache`], the registry as a shared cache.

mod bases;
mod buildah;
mod builders;
mod cache;
mod check;
mod dockerfile;
mod external;
mod git;
mod process;
mod reference;
mod task;

use std::path::Path;

pub use bases::{Bases, resolve_bases};
pub use builders::{Builder, Capabilities, Rendered, Request, read_digest, render};
pub use cache::RegistryCache;
pub use check::check;
pub use git::{Upstreams, resolve_all as resolve_upstreams};

use hephy_dsl::{Definition, Model};
use hephy_engine::{Exclusions, Job, Node, NodeKind, Outcome, Work};

/// The built-in implementation of every node kind.
#[derive(Debug)]
pub struct Stdlib<'m> {
    model: &'m Model,
    exclusions: Exclusions,
    buildah: buildah::Buildah,
}

/// Where an image's build context is: a local folder, or a checkout of its upstream commit.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    state_dir: std::path::PathBuf,
    upstreams: Upstreams,
}

impl Sources {
    /// The commit `reference` of `url` resolved to when planning.
    pub(crate) fn commit(&self, url: &str, reference: &str) -> Result<String, String> {
        match self.upstreams.get(&(url.to_owned(), reference.to_owned())) {
            Some(resolved) => resolved.clone(),
            None => Err(format!("`{reference}` of {url} was not resolved")),
        }
    }

    /// The context folder of `image` (fetching and exporting its upstream commit if need be).
    pub(crate) fn context(
        &self,
        root: &Path,
        image: &hephy_dsl::Image,
    ) -> Result<std::path::PathBuf, String> {
        match &image.source {
            hephy_dsl::ImageSource::Context { dir } => Ok(root.join(dir)),
            hephy_dsl::ImageSource::Git { url, reference, dir } => {
                let commit = self.commit(url, reference)?;
                let checkout = git::checkout(url, reference, &commit, &self.state_dir)?;
                Ok(if dir == "." { checkout } else { checkout.join(dir) })
            }
        }
    }
}

impl<'m> Stdlib<'m> {
    /// Work for the nodes of `model`; `state_dir` holds builder storage; `exclusions` are
    /// folders never taken as task outputs.
    pub fn new(
        model: &'m Model,
        state_dir: &Path,
        exclusions: Exclusions,
        upstreams: Upstreams,
    ) -> Stdlib<'m> {
        let sources = Sources { state_dir: state_dir.to_path_buf(), upstreams };
        Stdlib { model, exclusions, buildah: buildah::Buildah::new(state_dir, sources) }
    }
}

impl Work for Stdlib<'_> {
    fn execute(&self, job: &Job<'_>) -> Outcome {
        match (job.node.kind, self.model.definition(&job.node.name)) {
            (NodeKind::Task, Some(Definition::Task(task))) => task::run(task, job, &self.exclusions),
            (NodeKind::Image, Some(Definition::Image(image))) => match Builder::from_name(&image.builder) {
                Some(Builder::Buildah) | None => self.buildah.build(self.model, image, job),
                Some(other) => external::build(other, self.model, image, job, &self.buildah),
            },
            (NodeKind::Manifest, Some(Definition::Image(_))) => self.buildah.index(self.model, job),
            (NodeKind::Tag, Some(Definition::Image(_))) => self.buildah.tag(self.model, job),
            _ => Outcome::Failed { message: format!("`{}` is not in the graph", job.node.name) },
        }
    }
}

/// The tool (and its version) that does a node's work; part of every node's key, so changing
/// how a kind of node is built rebuilds it.
pub fn builder_identity(model: &Model, node: &Node) -> String {
    match node.kind {
        NodeKind::Task => "process/1".to_owned(),
        NodeKind::Image => match model.definition(&node.name) {
            Some(Definition::Image(image)) if image.builder != "buildah" => format!("{}/1", image.builder),
            _ => buildah::identity(),
        },
        NodeKind::Manifest => buildah::identity(),
        NodeKind::Tag => "skopeo-copy/1".to_owned(),
    }
}
