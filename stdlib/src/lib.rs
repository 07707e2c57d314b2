//! hephy's standard library of node kinds: the built-in kinds (tasks, images, their indexes
//! and tags) and the backends that realise them.
//!
//! - `builders/`: how an image is made — the Dockerfile reader, hephy's own `oci` builder,
//!   buildah, and the command lines of kaniko, BuildKit, buildx, ko and spin.
//! - `executors/`: where work runs — a process here, a host over ssh, a BuildKit daemon, a
//!   Kubernetes cluster.
//! - `registry/`: images in registries as the graph names them, and the registry as a cache
//!   (the protocol client and credentials are the `hephy-oci` crate's, beside this one).
//! - `sources/`: what planning resolves outside the graph's folder — upstream git commits,
//!   base-image digests.
//! - `supply/`: the supply chain of published images: cosign keys and signatures, SBOMs
//!   (`sbom.rs`: SPDX 2.3 from an image's layers), provenance and BuildKit's attestation layout.
//! - `session`: the plan and run orchestration of one command over one graph file (the plan
//!   cache's policy, the run lock, layout repair, the document as read reused from the state
//!   folder's `documents/`: `documents.rs`), answering in types; the CLI renders.
//! - here: [`Stdlib`], the engine's [`Work`] for every node kind; [`check`](crate::check()) and
//!   the Dockerfile wiring checks made before anything runs; [`Outputs`], whether recorded
//!   outputs are still there; [`builder_identity`], which enters every node's key.

mod builders;
mod check;
mod documents;
mod executors;
mod git;
mod outputs;
mod registry;
mod release;
mod resolver;
mod scratch;
pub mod session;
mod sources;
pub mod supply;
mod task;
mod wiring;

use std::borrow::Cow;
use std::path::Path;

pub use builders::oci::ImageLocation;
pub use builders::oci::pushed_tag;
pub use builders::{
    Builder, Capabilities, Frontend, Rendered, Request, capabilities, read_digest, render, resolve_auto,
};
pub use check::{check, warnings};
pub use executors::ssh::{ServeError, serve as serve_remote_build};
/// Where credential helpers' failures are remembered across commands: the state folder.
pub use hephy_oci::credentials::remember_failures_in as remember_helper_failures_in;
pub use outputs::{
    Collected, Evidence, GcError, Outputs, clean_temporaries, collect_garbage, prepare_layout,
    registry_holds_all,
};
pub use registry::cache::RegistryCache;
pub use registry::records::{
    Pruned, Record as CacheRecord, prune as prune_registry, repository as cache_repository,
};
pub use release::{BadDate, Release, plan_date, tags_follow_git_or_date};
pub use resolver::{PlanResolver, RegistryRecheck};
pub use sources::bases::resolve_bases;
pub use sources::git::{Upstreams, resolve_all as resolve_upstreams};
pub use sources::reads::context_reads;
pub use supply::sbom::{BaseInfo, SbomError, spdx as sbom_spdx};

use hephy_dsl::{Definition, Model};
use hephy_engine::{Exclusions, Job, Node, NodeError, NodeKind, Outcome, StopCause, Work};

use crate::builders::external::Engine;
use crate::builders::{buildah, external, oci};
use crate::executors::{process, ssh};

/// The built-in implementation of every node kind.
#[derive(Debug)]
pub struct Stdlib<'m> {
    model: &'m Model,
    exclusions: Exclusions,
    buildah: buildah::Buildah,
    oci: oci::Oci,
    remote: ssh::Remote,
}

pub(crate) use sources::Sources;

/// A secret that cannot be handed to a build (never its value: only its name).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// Its value cannot be read (the engine's message names the secret and its source).
    #[error(transparent)]
    Value(#[from] hephy_engine::SecretUnavailable),
    /// Its temporary file cannot be created.
    #[error("cannot create a file for secret `{name}`: {source}")]
    Create {
        /// The secret's name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// Its temporary file cannot be written.
    #[error("cannot write secret `{name}`: {source}")]
    Write {
        /// The secret's name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A node the work cannot do at all (the checks before a run keep these from happening).
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkError {
    /// An image whose builder `auto` stayed unresolved.
    #[error("image `{image}`: builder `{builder}` was not resolved to a builder")]
    Unresolved {
        /// The image.
        image: String,
        /// Its builder, as written.
        builder: String,
    },
    /// A node of no image or task of the model.
    #[error("`{0}` is not in the graph")]
    NotInGraph(String),
}

/// Each secret written to a temporary file of its own (mode 0600, removed on drop, and by the
/// next run if its process was killed).
pub(crate) fn secret_files(
    model: &Model,
    names: &[String],
) -> Result<Vec<(String, tempfile::NamedTempFile)>, SecretError> {
    let mut out = Vec::new();
    for name in names {
        let value = hephy_engine::secret_value(model, name).map_err(SecretError::Value)?;
        let mut file = crate::scratch::secret_file()
            .map_err(|source| SecretError::Create { name: name.clone(), source })?;
        std::io::Write::write_all(&mut file, value.as_bytes())
            .map_err(|source| SecretError::Write { name: name.clone(), source })?;
        out.push((name.clone(), file));
    }
    Ok(out)
}

impl<'m> Stdlib<'m> {
    /// Work for the nodes of `model`; `state_dir` holds builder storage; `exclusions` are
    /// folders never taken as task outputs; `release` is the plan's ([`PlanResolver::release`]).
    pub fn new(
        model: &'m Model,
        state_dir: &Path,
        exclusions: Exclusions,
        upstreams: Upstreams,
        release: std::sync::Arc<Release>,
    ) -> Stdlib<'m> {
        let sources = Sources { state_dir: state_dir.to_path_buf(), upstreams, release };
        Stdlib {
            model,
            exclusions,
            buildah: buildah::Buildah::new(state_dir, sources.clone()),
            oci: oci::Oci::new(state_dir, sources),
            remote: ssh::Remote::default(),
        }
    }
}

impl Stdlib<'_> {
    /// Where `node`'s executor builds, if somewhere other than here (ssh, BuildKit, Kubernetes).
    fn engine(&self, node: &Node) -> Option<&hephy_dsl::Engine> {
        self.model.executors.iter().find(|e| *e.name.value == *node.executor)?.engine.as_ref()
    }

    /// Whether hephy assembles `image`'s index and tags itself: always with a registry, and
    /// in its own image layout for the `oci` builder.
    fn native(&self, image: &hephy_dsl::Image) -> bool {
        self.model.registry.is_some() || builders::in_process(image.builder)
    }
}

impl Work for Stdlib<'_> {
    /// The node's work; a failure is told apart from a stop: stopped at the job's deadline, or
    /// cut off because its run was cancelled (whatever the work said then: a build cut off
    /// halfway may fail in its own words).
    fn execute(&self, job: &Job<'_>) -> Outcome {
        match self.work(job) {
            Outcome::Failed(error) => match stopped_by(&error) {
                _ if job.cancel.is_cancelled() => Outcome::Cancelled(error),
                Some(StopCause::Cancelled) => Outcome::Cancelled(error),
                Some(StopCause::TimedOut(_)) => Outcome::TimedOut(error),
                None => Outcome::Failed(error),
            },
            other => other,
        }
    }
}

/// Why `error` says its work was stopped, if it does: a command hephy stopped at its deadline
/// or for its run's cancel, or in-process work that found its stop.
fn stopped_by(error: &NodeError) -> Option<StopCause> {
    error.chain().find_map(|e| {
        if let Some(failed) = e.downcast_ref::<process::CommandFailed>() {
            match failed {
                process::CommandFailed::Stopped { why: process::Stopped::Timeout(timeout), .. } => {
                    Some(StopCause::TimedOut(*timeout))
                }
                process::CommandFailed::Cancelled { .. } => Some(StopCause::Cancelled),
                _ => None,
            }
        } else {
            e.downcast_ref::<hephy_os::stop::Stopped>().map(|stopped| match stopped {
                hephy_os::stop::Stopped::Cancelled => StopCause::Cancelled,
                hephy_os::stop::Stopped::TimedOut(timeout) => StopCause::TimedOut(*timeout),
            })
        }
    })
}

impl Stdlib<'_> {
    fn work(&self, job: &Job<'_>) -> Outcome {
        match (job.node.kind, self.model.definition(job.node.name())) {
            (NodeKind::Task, Some(Definition::Task(task))) => {
                task::run(self.model, task, job, &self.exclusions)
            }
            (NodeKind::Image, Some(Definition::Image(image))) if let Some(engine) = self.engine(job.node) => {
                match engine {
                    hephy_dsl::Engine::Ssh(host) => {
                        self.remote.build(self.model, image, job, &host.value, &self.oci)
                    }
                    hephy_dsl::Engine::Buildkit(addr) => external::build(
                        Builder::Buildkit,
                        self.model,
                        image,
                        job,
                        &self.oci,
                        Engine::Buildkit(&addr.value),
                    ),
                    hephy_dsl::Engine::Kubernetes(namespace) => external::build(
                        Builder::Kaniko,
                        self.model,
                        image,
                        job,
                        &self.oci,
                        Engine::Kubernetes(&namespace.value),
                    ),
                }
            }
            (NodeKind::Image, Some(Definition::Image(image))) => match builders::builder(image.builder) {
                Some(builder) => builder.build(self, image, job),
                // `check` stops a run before this: `auto` stays unresolved only for a Dockerfile
                // that runs commands on a machine without buildah.
                None => Outcome::failed(WorkError::Unresolved {
                    image: image.name.value.clone(),
                    builder: image.builder.to_string(),
                }),
            },
            // Without a registry, images of external builders live only in that builder's
            // storage: their "index" is the list of platform outputs.
            (NodeKind::Manifest, Some(Definition::Image(image))) if !self.native(image) => {
                buildah::local_index(job)
            }
            (NodeKind::Tag, Some(Definition::Image(image))) if !self.native(image) => buildah::local_tag(job),
            (NodeKind::Manifest, Some(Definition::Image(_))) => self.oci.index(self.model, job),
            (NodeKind::Tag, Some(Definition::Image(_))) => self.oci.tag(self.model, job),
            _ => Outcome::failed(WorkError::NotInGraph(job.node.name().to_owned())),
        }
    }
}

/// The tool (and its version) that does a node's work; part of every node's key, so changing
/// how a kind of node is built rebuilds it.
pub fn builder_identity(node: &Node, definition: Option<Definition<'_>>) -> Cow<'static, str> {
    match node.kind {
        NodeKind::Task => "process/1".into(),
        NodeKind::Image => match definition {
            Some(Definition::Image(image)) => builders::builder(image.builder)
                .map_or_else(|| format!("{}/1", image.builder).into(), |b| b.identity()),
            Some(Definition::Task(_)) | None => buildah::identity().into(),
        },
        NodeKind::Manifest => "hephy-index/1".into(),
        NodeKind::Tag => "hephy-tag/1".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use hephy_engine::{Cancel, Deadline, InputManifest, Job, Outcome, Work};

    use super::Stdlib;

    /// Runs the only node of the graph `yaml` (in a fresh folder) as a job with `deadline` and
    /// `cancel`; says how it ended, how long it took, and what its log holds.
    fn execute(yaml: &str, deadline: Option<Deadline>, cancel: &Cancel) -> (Outcome, Duration, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = hephy_dsl::SourceFile::new(dir.path().join("hephy.yaml"), hephy_dsl::Syntax::Yaml, yaml);
        let doc = hephy_dsl::read(&source).expect("reads");
        let model = hephy_dsl::lower(doc, &source, dir.path()).expect("valid");
        let graph = hephy_engine::compile(&model);
        let node = graph.node(hephy_engine::NodeIndex::new(0));
        let state_dir = dir.path().join(".hephy");
        let release = std::sync::Arc::new(crate::Release::new(&state_dir));
        let work =
            Stdlib::new(&model, &state_dir, hephy_engine::Exclusions::default(), Default::default(), release);
        let (events, _received) = std::sync::mpsc::channel();
        let log = state_dir.join("node.log");
        let key = InputManifest::default().key();
        let job = Job {
            node,
            root: dir.path(),
            run_id: 1,
            deps: Vec::new(),
            details: Vec::new(),
            key: &key,
            log: log.clone(),
            cancel: cancel.clone(),
            deadline,
            verbose: false,
            events,
        };
        let started = Instant::now();
        let outcome = work.execute(&job);
        (outcome, started.elapsed(), std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// A job whose deadline passes while its command runs: the command's process group is
    /// stopped then, and the node is reported timed out, saying so. The deadline is the job's
    /// own: nothing else carries it.
    #[test]
    fn a_job_past_its_deadline_is_stopped_and_timed_out() {
        let graph = "tasks:\n  hang: { run: [sleep, \"30\"] }\n";
        let deadline = Deadline::after(Duration::from_millis(300));
        let (outcome, took, log) = execute(graph, Some(deadline), &Cancel::new());
        assert!(took < Duration::from_secs(10), "stopped at its deadline, not at its end: {took:?}");
        match outcome {
            Outcome::TimedOut(error) => {
                assert_eq!(error.render(), "`sleep 30` ran past its timeout of 300ms and was stopped");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(log.contains("ran past its timeout of 300ms; stopped"), "{log}");
        // Without a deadline, the same kind of command runs to its end.
        let (outcome, _, _) = execute("tasks:\n  quick: { run: [sleep, \"0.1\"] }\n", None, &Cancel::new());
        assert!(matches!(outcome, Outcome::Built(_)), "{outcome:?}");
    }

    /// A job whose run's token is cancelled while its command runs: the command is stopped at
    /// once (SIGTERM to its process group) and the node is reported cancelled, not failed.
    #[test]
    fn a_cancelled_token_stops_the_command() {
        let cancel = Cancel::new();
        let setter = cancel.clone();
        let (outcome, took, _) = std::thread::scope(|scope| {
            scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                setter.cancel();
            });
            execute("tasks:\n  hang: { run: [sleep, \"30\"] }\n", None, &cancel)
        });
        assert!(took < Duration::from_secs(10), "stopped at the cancel, not at its end: {took:?}");
        match outcome {
            Outcome::Cancelled(error) => {
                assert_eq!(error.render(), "`sleep 30` was stopped: the run was cancelled");
            }
            other => panic!("expected a cancel, got {other:?}"),
        }
    }
}
