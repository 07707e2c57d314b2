//! hephy's built-in node kinds: what each kind of node does when it runs.
//!
//! Owns [`Stdlib`], the engine's [`Work`] for every node kind: tasks run their argv as a process
//! (no shell, own process group, output to a log); image nodes go through the image's builder
//! (the built-in `oci` builder and `buildah` run here; kaniko, BuildKit, buildx, ko and spin run
//! their rendered command where the tool exists), checked before anything runs ([`check`]);
//! manifest and tag nodes are hephy's own (an OCI index and tag puts, [`oci`]). Also owns [`builder_identity`], which enters every node's
//! key, and [`RegistryCache`], the registry as a shared cache.

mod bases;
mod buildah;
mod builders;
mod cache;
mod check;
mod credentials;
mod dockerfile;
mod engines;
mod external;
mod git;
mod oci;
mod outputs;
mod process;
mod reference;
mod registry;
mod remote;
mod resolver;
mod stop;
mod task;
mod wiring;

use std::borrow::Cow;
use std::path::Path;

pub use bases::{Bases, resolve_bases};
pub use builders::{AUTO, Builder, Capabilities, Rendered, Request, read_digest, render, resolve_auto};
pub use cache::RegistryCache;
pub use check::{check, warnings};
pub use git::{Upstreams, resolve_all as resolve_upstreams};
pub use oci::location;
pub use outputs::{
    Collected, Evidence, Outputs, clean_temporaries, collect_garbage, prepare_layout, registry_holds_all,
};
pub use remote::serve as serve_remote_build;
pub use resolver::PlanResolver;

use hephy_dsl::{Definition, Model};
use hephy_engine::{Exclusions, Job, Node, NodeKind, Outcome, Work};

use crate::external::Engine;

/// The built-in implementation of every node kind.
#[derive(Debug)]
pub struct Stdlib<'m> {
    model: &'m Model,
    exclusions: Exclusions,
    buildah: buildah::Buildah,
    oci: oci::Oci,
    remote: remote::Remote,
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
            // Canonical, so that files below it are read following no link at all.
            hephy_dsl::ImageSource::Context { dir } => {
                let context = root.join(dir);
                context.canonicalize().map_err(|e| format!("cannot read `{}`: {e}", context.display()))
            }
            hephy_dsl::ImageSource::Git { url, reference, dir } => {
                let commit = self.commit(url, reference)?;
                let checkout = git::checkout(url, reference, &commit, &self.state_dir)?;
                let context = if dir == "." { checkout } else { checkout.join(dir) };
                context.canonicalize().map_err(|e| format!("cannot read `{}`: {e}", context.display()))
            }
        }
    }
}

/// Each secret written to a temporary file of its own (mode 0600, removed on drop).
pub(crate) fn secret_files(
    model: &Model,
    names: &[String],
) -> Result<Vec<(String, tempfile::NamedTempFile)>, String> {
    let mut out = Vec::new();
    for name in names {
        let value = hephy_engine::secret_value(model, name)?;
        let mut file = tempfile::Builder::new()
            .prefix("hephy-secret-")
            .tempfile()
            .map_err(|e| format!("cannot create a file for secret `{name}`: {e}"))?;
        std::io::Write::write_all(&mut file, value.as_bytes())
            .map_err(|e| format!("cannot write secret `{name}`: {e}"))?;
        out.push((name.clone(), file));
    }
    Ok(out)
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
        Stdlib {
            model,
            exclusions,
            buildah: buildah::Buildah::new(state_dir, sources.clone()),
            oci: oci::Oci::new(state_dir, sources),
            remote: remote::Remote::default(),
        }
    }
}

impl Stdlib<'_> {
    /// The executor `node` runs on, if it builds somewhere other than here (ssh, BuildKit,
    /// Kubernetes).
    fn executor(&self, node: &Node) -> Option<&hephy_dsl::Executor> {
        self.model
            .executors
            .iter()
            .find(|e| *e.name.value == *node.executor)
            .filter(|e| e.ssh.is_some() || e.buildkit.is_some() || e.kubernetes.is_some())
    }

    /// Whether hephy assembles `image`'s index and tags itself: always with a registry, and
    /// in its own image layout for the `oci` builder.
    fn native(&self, image: &hephy_dsl::Image) -> bool {
        self.model.registry.is_some() || image.builder == "oci"
    }
}

impl Work for Stdlib<'_> {
    fn execute(&self, job: &Job<'_>) -> Outcome {
        let timeout = match self.model.definition(job.node.name()) {
            Some(Definition::Image(image)) => image.timeout,
            Some(Definition::Task(task)) => task.timeout,
            None => None,
        };
        process::with_timeout(timeout, || self.work(job))
    }
}

impl Stdlib<'_> {
    fn work(&self, job: &Job<'_>) -> Outcome {
        match (job.node.kind, self.model.definition(job.node.name())) {
            (NodeKind::Task, Some(Definition::Task(task))) => {
                task::run(self.model, task, job, &self.exclusions)
            }
            (NodeKind::Image, Some(Definition::Image(image)))
                if let Some(executor) = self.executor(job.node) =>
            {
                if let Some(host) = &executor.ssh {
                    self.remote.build(self.model, image, job, &host.value, &self.oci)
                } else if let Some(addr) = &executor.buildkit {
                    external::build(
                        Builder::Buildkit,
                        self.model,
                        image,
                        job,
                        &self.oci,
                        Engine::Buildkit(&addr.value),
                    )
                } else if let Some(namespace) = &executor.kubernetes {
                    external::build(
                        Builder::Kaniko,
                        self.model,
                        image,
                        job,
                        &self.oci,
                        Engine::Kubernetes(&namespace.value),
                    )
                } else {
                    Outcome::Failed { message: format!("executor `{}` builds nowhere", executor.name.value) }
                }
            }
            (NodeKind::Image, Some(Definition::Image(image))) => match Builder::from_name(&image.builder) {
                Some(Builder::Oci) => self.oci.build(self.model, image, job),
                Some(Builder::Buildah) | None => self.buildah.build(self.model, image, job, &self.oci),
                Some(other) => external::build(other, self.model, image, job, &self.oci, Engine::Local),
            },
            // Without a registry, images of external builders live only in that builder's
            // storage: their "index" is the list of platform outputs.
            (NodeKind::Manifest, Some(Definition::Image(image))) if !self.native(image) => {
                buildah::local_index(job)
            }
            (NodeKind::Tag, Some(Definition::Image(image))) if !self.native(image) => buildah::local_tag(job),
            (NodeKind::Manifest, Some(Definition::Image(_))) => self.oci.index(self.model, job),
            (NodeKind::Tag, Some(Definition::Image(_))) => self.oci.tag(self.model, job),
            _ => Outcome::Failed { message: format!("`{}` is not in the graph", job.node.name()) },
        }
    }
}

/// The tool (and its version) that does a node's work; part of every node's key, so changing
/// how a kind of node is built rebuilds it.
pub fn builder_identity(node: &Node, definition: Option<Definition<'_>>) -> Cow<'static, str> {
    match node.kind {
        NodeKind::Task => "process/1".into(),
        NodeKind::Image => match definition {
            Some(Definition::Image(image)) if image.builder == "oci" => oci::IDENTITY.into(),
            Some(Definition::Image(image)) if image.builder != "buildah" => {
                format!("{}/1", image.builder).into()
            }
            _ => buildah::identity().into(),
        },
        NodeKind::Manifest => "hephy-index/1".into(),
        NodeKind::Tag => "hephy-tag/1".into(),
    }
}
