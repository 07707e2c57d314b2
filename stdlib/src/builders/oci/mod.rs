//! The built-in `oci` builder and hephy's native publishing of indexes and tags.
//!
//! The builder needs no external tool: it reads the Dockerfile ([`build`]), writes reproducible
//! layers ([`hephy_oci::layer`]) and the image into hephy's OCI layout under the state folder
//! ([`hephy_oci::layout`]), pulls base images by digest, and, when the graph has a registry, pushes
//! blobs and manifest itself ([`crate::registry`]), tagged with the node's key so other
//! machines find it.
//!
//! Indexes and tags are native for every builder: a manifest node assembles an OCI index from
//! its platforms' manifests in platform order (so its digest is reproducible) and puts it; a
//! tag node puts the same bytes under the tag, so the tag resolves to the index digest. A
//! failed platform never gets here: its manifest node does not run, and no tag moves.

pub(crate) mod archive;
pub(crate) mod build;
mod merge;
pub(crate) mod metadata;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hephy_dsl::{Image, Model, Platform};
use hephy_engine::{Exclusions, FileSource, Job, Node, Outcome};
use serde_json::{Value, json};

use crate::builders::{Capabilities, Frontend, ImageBuilder};
use crate::executors::process::Log;
use crate::registry::{Client, Reference, RegistryError};
use crate::registry::{records, reference};
use crate::release::Release;
use crate::supply;
use hephy_oci::compress;
use hephy_oci::document::{self, spec};
use hephy_oci::layout::{self, Descriptor, Layout};
use hephy_os::stop::Stop;

/// The `oci` builder's identity, part of its images' keys.
pub(crate) const IDENTITY: &str = "hephy-oci/2";

/// hephy's own builder, in this executable: every instruction but `RUN` and `ADD` of a URL,
/// interpreted by [`build`]; labels, annotations and mirrors.
pub(crate) struct OciBuilder;

impl ImageBuilder for OciBuilder {
    fn kind(&self) -> hephy_dsl::Builder {
        hephy_dsl::Builder::Oci
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dockerfile: true,
            copy_flags: Some(&["chown", "chmod", "link", "from"]),
            frontend: Frontend::Refuses,
            interprets: true,
            named_contexts: true,
            context_kinds: crate::builders::ALL_CONTEXT_KINDS,
            labels: true,
            annotations: true,
            mirrors: true,
            in_process: true,
            ..Capabilities::NONE
        }
    }

    fn identity(&self) -> std::borrow::Cow<'static, str> {
        IDENTITY.into()
    }

    fn build(&self, stdlib: &crate::Stdlib<'_>, image: &Image, job: &Job<'_>) -> Outcome {
        stdlib.oci.build(stdlib.model, image, job)
    }
}

/// The layer codec the graph asks for.
fn codec(compression: hephy_dsl::Compression) -> compress::Codec {
    match compression {
        hephy_dsl::Compression::Gzip => compress::Codec::Gzip,
        hephy_dsl::Compression::Zstd => compress::Codec::Zstd,
    }
}

/// Blob uploads of one image at once.
const BLOB_UPLOADS: usize = 4;

/// Why the `oci` builder, an index or a tag node failed: the data of the failure; text only
/// when the node's outcome is made. A registry's error is kept whole ([`OciError::registry`],
/// whose `is_retryable()` and `is_upload_race()` decide what is tried again).
#[derive(Debug, thiserror::Error)]
pub(crate) enum OciError {
    /// The node's log cannot be written.
    #[error(transparent)]
    Log(#[from] crate::executors::process::LogError),
    /// The build context cannot be fetched.
    #[error(transparent)]
    Source(#[from] crate::sources::SourceError),
    /// The Dockerfile cannot be read (never through a link out of its repository).
    #[error(transparent)]
    Dockerfile(#[from] crate::builders::dockerfile::Unread),
    /// The build context cannot be listed.
    #[error("{0}")]
    Files(#[from] hephy_engine::FilesError),
    /// The Dockerfile interpreter failed.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// A naming template (labels, annotations, tags) cannot be rendered whole.
    #[error(transparent)]
    Naming(#[from] reference::NamingError),
    /// The image layout refused.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// A repository is not a valid reference.
    #[error(transparent)]
    Reference(#[from] hephy_oci::registry::ReferenceError),
    /// A registry failed (a manifest push).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A blob upload failed.
    #[error("pushing to {host}: {source}")]
    Push {
        /// The registry.
        host: String,
        /// Its error.
        source: RegistryError,
    },
    /// A manifest or base image cannot be fetched.
    #[error(transparent)]
    Pull(#[from] PullError),
    /// The run was stopped.
    #[error(transparent)]
    Stopped(#[from] hephy_os::stop::Stopped),
    /// A thread holding a repository's lock panicked.
    #[error("a registry lock was poisoned")]
    Poisoned,
    /// The manifest just built is no longer in the layout.
    #[error("the manifest just written is gone")]
    Gone,
    /// A blob of the image to push is not in the layout.
    #[error("blob {digest} of the image is missing from `{}`", layout.display())]
    MissingBlob {
        /// The blob.
        digest: String,
        /// The layout's folder.
        layout: std::path::PathBuf,
    },
    /// A tag node has no index to tag.
    #[error("a tag node needs its image's index")]
    NoIndex,
    /// A manifest or config to add metadata to is not in the layout.
    #[error("`{digest}` is not in hephy's image layout")]
    NotInLayout {
        /// The blob.
        digest: String,
    },
    /// A manifest or config in the layout is not JSON.
    #[error("`{digest}` is not JSON: {source}")]
    NotJson {
        /// The blob.
        digest: String,
        /// Why.
        source: serde_json::Error,
    },
    /// An image config or manifest is JSON but not an object.
    #[error("the image {what} is not a JSON object")]
    NotObject {
        /// `config` or `manifest`.
        what: &'static str,
    },
    /// A document cannot be serialized or read.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// An OCI document cannot be made or read.
    #[error(transparent)]
    Document(#[from] document::DocumentError),
    /// An image's SBOM cannot be made.
    #[error("the SBOM of {digest}: {source}")]
    Sbom {
        /// The platform manifest.
        digest: String,
        /// Why.
        source: supply::sbom::SbomError,
    },
    /// The signing key cannot be opened (its `help` says how to fix it).
    #[error("signing key: {source}{}", source.help().map(|h| format!(" ({h})")).unwrap_or_default())]
    Key {
        /// Why.
        #[from]
        source: supply::keys::KeyError,
    },
    /// A signature cannot be written.
    #[error("signing: {0}")]
    Sign(#[from] supply::sign::SignError),
}

impl OciError {
    /// The registry error under this one, if a registry failed (its `is_retryable()` decides).
    pub(crate) fn registry(&self) -> Option<&RegistryError> {
        match self {
            OciError::Registry(e) | OciError::Push { source: e, .. } => Some(e),
            OciError::Pull(e) => e.registry(),
            OciError::Build(e) => e.registry(),
            _ => None,
        }
    }
}

/// Why a base image or a manifest cannot be fetched into the layout.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullError {
    /// The reference is not valid.
    #[error(transparent)]
    Reference(#[from] hephy_oci::registry::ReferenceError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The layout refused.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// The tag does not exist.
    #[error("{reference} does not exist in its registry")]
    Missing {
        /// The image.
        reference: String,
    },
    /// The image's index lists no image for the platform.
    #[error("{reference} has no image for {platform}")]
    NoPlatform {
        /// The image.
        reference: String,
        /// The platform built.
        platform: Platform,
    },
    /// Its index, manifest or config is not JSON.
    #[error("{reference}: {source}")]
    Json {
        /// The image.
        reference: String,
        /// Why.
        source: serde_json::Error,
    },
    /// Its manifest lacks what an image has, or nests indexes.
    #[error("{reference}: {problem}")]
    Malformed {
        /// The image.
        reference: String,
        /// What is wrong: "no config", "a layer without a digest", ….
        problem: &'static str,
    },
    /// It has a layer that may not be copied.
    #[error("{reference} has a non-distributable layer the oci builder cannot copy")]
    NonDistributable {
        /// The image.
        reference: String,
    },
    /// A manifest is neither in the layout nor in a registry hephy knows.
    #[error("manifest {digest} is not in hephy's image layout")]
    NotInLayout {
        /// The manifest.
        digest: String,
    },
    /// A manifest names a blob by something that is not a digest.
    #[error("`{digest}` is not a sha256 digest")]
    BadDigest {
        /// What it names.
        digest: String,
    },
    /// The config just fetched is no longer in the layout.
    #[error("a fetched config is gone")]
    ConfigGone,
    /// The temporary file for a blob cannot be made.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The downloaded blob's temporary file cannot be kept (tempfile's words).
    #[error("failed to persist temporary file: {0}")]
    Keep(std::io::Error),
}

impl PullError {
    /// The registry error under this one, if a registry failed.
    pub(crate) fn registry(&self) -> Option<&RegistryError> {
        match self {
            PullError::Registry(e) => Some(e),
            _ => None,
        }
    }
}

/// The index media type hephy writes.
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Native image work: the `oci` builder, indexes and tags.
#[derive(Debug)]
pub(crate) struct Oci {
    layout: Layout,
    client: Client,
    sources: crate::Sources,
    /// Manifest writes to one repository go one at a time (distribution's filesystem storage
    /// answers concurrent writes to a repository with 500s).
    repositories: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Where a node's image is, from its recorded `output`: what the CLI matches on, and shows
/// (`Display`: `oci:.hephy/oci:curl`, `registry/curl@sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLocation {
    /// In the state folder's image layout, under its name there.
    Layout {
        /// The layout's folder (`STATE/oci`).
        layout: PathBuf,
        /// The image's name in it (`curl`, `curl.linux-arm64`, `curl:latest`).
        name: String,
    },
    /// In a builder's own storage only (buildah's, with no registry): nothing to show or pull
    /// from; `digest` hashes the platform outputs.
    Local {
        /// The hash of the platform images' outputs.
        digest: String,
    },
    /// In the graph's registry, by digest.
    Registry {
        /// The image's repository.
        repository: String,
        /// The output: its manifest's or index's digest.
        digest: String,
    },
}

/// The prefix of a manifest's output that stays in a builder's own storage
/// ([`buildah::local_index`](crate::builders::buildah)).
pub(crate) const LOCAL_OUTPUT: &str = "local:";

impl ImageLocation {
    /// Where `node`'s image is, given its recorded `output` ("" for where it would be) and the
    /// state folder as it should be shown.
    pub fn of(
        model: &Model,
        release: &Release,
        node: &Node,
        output: &str,
        state_dir: &Path,
    ) -> ImageLocation {
        if let Some(digest) = output.strip_prefix(LOCAL_OUTPUT) {
            return ImageLocation::Local { digest: digest.to_owned() };
        }
        match &model.registry {
            Some(_) => ImageLocation::Registry {
                repository: reference::repository(model, release, node),
                digest: output.to_owned(),
            },
            None => ImageLocation::Layout {
                layout: hephy_oci::layout::folder(state_dir),
                name: layout_name(node),
            },
        }
    }
}

impl std::fmt::Display for ImageLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageLocation::Layout { layout, name } => write!(f, "oci:{}:{name}", layout.display()),
            ImageLocation::Local { digest } => write!(f, "{LOCAL_OUTPUT}{digest}"),
            ImageLocation::Registry { repository, digest } => write!(f, "{repository}@{digest}"),
        }
    }
}

/// An image's name in the local layout: `curl`, `kaniko-debug`; `curl:latest` for a tag;
/// `curl.linux-arm64` for one platform.
pub(crate) fn layout_name(node: &Node) -> String {
    let base = match &node.target {
        Some(target) => format!("{}-{target}", node.name()),
        None => node.name().to_owned(),
    };
    match (&node.platform, &node.tag) {
        (Some(p), _) => format!("{base}.{}", p.to_string().replace('/', "-")),
        (None, Some(tag)) => format!("{base}:{tag}"),
        (None, None) => base,
    }
}

/// `platform` as an OCI platform (what an index entry says).
pub(crate) fn oci_platform(platform: &Platform) -> spec::Platform {
    document::platform(platform.os(), platform.arch(), platform.variant())
}

/// Whether the index entry `entry` is for `platform` (of its variant, when `platform` names
/// one).
fn is_for(entry: &spec::Descriptor, platform: &Platform) -> bool {
    entry.platform().as_ref().is_some_and(|p| {
        p.os().to_string() == platform.os()
            && p.architecture().to_string() == platform.arch()
            && platform.variant().is_none_or(|v| p.variant().as_deref() == Some(v))
    })
}

/// The media type a base image's `layer` is kept under (Docker's gzip layer is OCI's); a
/// non-distributable layer is refused.
fn base_layer_type(reference: &str, layer: &spec::Descriptor) -> Result<String, PullError> {
    match layer.media_type().as_ref() {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => Ok(build::LAYER.to_owned()),
        other if other.contains("foreign") || other.contains("nondistributable") => {
            Err(PullError::NonDistributable { reference: reference.to_owned() })
        }
        other => Ok(other.to_owned()),
    }
}

/// The media type a manifest in the layout names itself with, else an OCI image manifest's.
pub(crate) fn media_type_of(bytes: &[u8]) -> String {
    document::media_type(bytes).map_or_else(|| build::MANIFEST.to_owned(), |t| t.to_string())
}

impl Oci {
    /// Native image work with its layout in `state_dir/oci`.
    pub(crate) fn new(state_dir: &Path, sources: crate::Sources) -> Oci {
        Oci {
            layout: Layout::in_state(state_dir),
            client: Client::new(),
            sources,
            repositories: Mutex::new(HashMap::new()),
        }
    }

    fn repository_lock(&self, repository: &str) -> Result<Arc<Mutex<()>>, OciError> {
        let mut map = self.repositories.lock().map_err(|_| OciError::Poisoned)?;
        Ok(Arc::clone(map.entry(repository.to_owned()).or_default()))
    }

    /// Builds one platform of `image` with the built-in builder.
    pub(crate) fn build(&self, model: &Model, image: &Image, job: &Job<'_>) -> Outcome {
        match self.try_build(model, image, job) {
            Ok(digest) => Outcome::Built(digest),
            Err(error) => Outcome::failed(error),
        }
    }

    fn try_build(&self, model: &Model, image: &Image, job: &Job<'_>) -> Result<String, OciError> {
        let log = Log::create(job)?;
        let note = |line: &str| log.note(line);
        let node = job.node;
        let platform = node.platform.clone().unwrap_or_else(Platform::host);
        let context = self.sources.context(job.root, image)?;
        // Below the graph's folder for a local context (a Dockerfile may link to another of the
        // repository), below the checkout for an upstream one; never through a link out of it.
        let text = match &image.source {
            hephy_dsl::ImageSource::Context { dir } => crate::builders::dockerfile::read_below(
                job.root,
                &Path::new(dir).join(&image.dockerfile),
                &hephy_engine::join(dir, &image.dockerfile),
            )?,
            hephy_dsl::ImageSource::Git { .. } => crate::builders::dockerfile::read_below(
                &context,
                Path::new(&image.dockerfile),
                &image.dockerfile,
            )?,
        };
        let dockerfile = &*text;
        let files = context_files(&context, &image.dockerfile)?;
        let mut build_args: Vec<(String, String)> =
            image.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        build_args.extend(reference::injected(model, &self.sources.release, node, &job.deps));
        let contexts = crate::builders::named_contexts(model, image, job, &self.sources)?;
        note(&format!(
            "hephy oci: building {} for {platform}{} from {} files",
            image.dockerfile,
            node.target.as_ref().map(|t| format!(" (target {t})")).unwrap_or_default(),
            files.len()
        ));
        let request = build::Request {
            dockerfile,
            dockerfile_name: &image.dockerfile,
            context: &context,
            files: &files,
            build_args: &build_args,
            target: node.target.as_deref(),
            platform: &platform,
            contexts: &contexts,
            layers: compress::Settings {
                codec: codec(image.compression),
                stop: crate::executors::process::stop(job),
            },
        };
        let manifest = self.assemble(&request, &note)?;
        let upstream = commit_of(model, node, &self.sources);
        let labels =
            reference::metadata(model, &self.sources.release, node, Some(job.key), upstream.as_deref(), true)
                .map_err(OciError::Naming)?;
        let annotations = reference::metadata(
            model,
            &self.sources.release,
            node,
            Some(job.key),
            upstream.as_deref(),
            false,
        )
        .map_err(OciError::Naming)?;
        let manifest = metadata::apply(&self.layout, &manifest, &labels, &annotations)?;
        let digest = manifest.digest.clone();
        self.layout.name(&layout_name(node), &manifest, Some(&oci_platform(&platform)))?;
        note(&format!("hephy oci: {} is {digest}", layout_name(node)));
        if model.registry.is_some() {
            // By digest (the repository's tag list is the graph's), and a record of the key in
            // the cache repository.
            let mut tags = vec![digest.clone()];
            tags.extend(
                template_tag(model, job, model.naming.platform.as_ref(), &self.sources)
                    .map_err(OciError::Naming)?,
            );
            for repository in reference::repositories(model, &self.sources.release, node) {
                self.publish_build(
                    &repository,
                    &manifest,
                    &tags,
                    &crate::executors::process::stop(job),
                    &note,
                )?;
            }
            self.write_record(model, node, job.key, &digest, &crate::executors::process::stop(job), &note)?;
        }
        Ok(digest)
    }

    /// Writes the cache record of `node` built with `key` as `digest` into the graph's
    /// registry's cache repository ([`records`]); nothing without a registry.
    pub(crate) fn write_record(
        &self,
        model: &Model,
        node: &Node,
        key: &hephy_engine::Key,
        digest: &str,
        stop: &Stop<'_>,
        note: &dyn Fn(&str),
    ) -> Result<(), OciError> {
        let Some(registry) = &model.registry else { return Ok(()) };
        let cache = records::repository(registry);
        let target = Reference::parse(&cache)?;
        let repository = reference::repository(model, &self.sources.release, node);
        // The same record is not written again (a new one would leave the old untagged).
        if let Ok(Some(there)) = records::read(&self.client, registry, &reference::key_tag(key))
            && there.key == key.hex().as_str()
            && there.digest == digest
            && there.repository == repository
        {
            return Ok(());
        }
        let empty = self.layout.put(records::EMPTY, b"{}")?;
        let bytes = records::bytes(node, key, &repository, digest, &empty.digest);
        let lock = self.repository_lock(&cache)?;
        let _held = lock.lock().map_err(|_| OciError::Poisoned)?;
        self.client.push_blob(&target, &empty.digest, &self.layout.blob_path(&empty.digest), stop)?;
        let tag = reference::key_tag(key);
        self.client.push_manifest(&target, &tag, records::MANIFEST, &bytes)?;
        note(&format!("hephy: recorded {cache}:{tag} → {digest}"));
        Ok(())
    }

    /// Builds `request` into the layout; returns the image manifest's descriptor.
    pub(crate) fn assemble(
        &self,
        request: &build::Request<'_>,
        note: &dyn Fn(&str),
    ) -> Result<Descriptor, build::BuildError> {
        let bases = Pulls { oci: self, note, stop: request.layers.stop };
        build::build(request, &self.layout, &bases).map(|built| built.manifest)
    }

    /// Pushes a built image (blobs the registry lacks, then its manifest under each tag).
    pub(crate) fn publish_build(
        &self,
        repository: &str,
        manifest: &Descriptor,
        tags: &[String],
        stop: &Stop<'_>,
        note: &dyn Fn(&str),
    ) -> Result<(), OciError> {
        let target = Reference::parse(repository)?;
        // One push into a repository at a time, blobs included: the platform builds of an
        // image share layers, and distribution's storage rejects two concurrent uploads of
        // one blob ("provided digest did not match uploaded content").
        let lock = self.repository_lock(repository)?;
        let _held = lock.lock().map_err(|_| OciError::Poisoned)?;
        let started = std::time::Instant::now();
        let bytes = self.layout.read(&manifest.digest).ok_or(OciError::Gone)?;
        // Another process pushing the same layers (another platform's CI job, a remote
        // executor) can leave a blob half-visible for a moment; the registry then refuses the
        // manifest. Pushing the blobs again settles it.
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            self.push_image(&target, manifest, stop, note)?;
            let pushed = tags.iter().try_for_each(|tag| {
                stop.check()?;
                self.client.push_manifest(&target, tag, build::MANIFEST, &bytes)?;
                note(&format!("hephy oci: pushed {repository}:{tag}"));
                Ok::<(), OciError>(())
            });
            match pushed {
                Err(e) if attempt < 3 && e.registry().is_some_and(RegistryError::is_upload_race) => {
                    note(&format!("hephy oci: {e}; pushing the blobs again"));
                    std::thread::sleep(std::time::Duration::from_millis(300 * attempt));
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    let took = started.elapsed().as_secs_f64();
                    note(&format!("hephy oci: published {} to {repository} in {took:.3} s", manifest.digest));
                    return Ok(());
                }
            }
        }
    }

    /// Uploads the blobs of the manifest `manifest` (config and layers) to `target`'s
    /// repository: those it lacks (each looked up by HEAD first), several at once.
    fn push_image(
        &self,
        target: &Reference,
        manifest: &Descriptor,
        stop: &Stop<'_>,
        note: &dyn Fn(&str),
    ) -> Result<(), OciError> {
        let bytes = self.layout.read(&manifest.digest).ok_or(OciError::Gone)?;
        let parsed = document::manifest(&bytes)?;
        let mut blobs = vec![parsed.config().digest().to_string()];
        blobs.extend(parsed.layers().iter().map(|layer| layer.digest().to_string()));
        blobs.dedup();
        if let Some(missing) = blobs.iter().find(|d| !self.layout.has(d)) {
            return Err(OciError::MissingBlob {
                digest: missing.clone(),
                layout: self.layout.dir().to_path_buf(),
            });
        }
        // Largest first, so the longest upload starts at once.
        let size = |d: &String| std::fs::metadata(self.layout.blob_path(d)).map_or(0, |m| m.len());
        blobs.sort_by_key(|d| std::cmp::Reverse(size(d)));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<(u64, u64), RegistryError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..BLOB_UPLOADS.min(blobs.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let (mut sent, mut bytes) = (0, 0);
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let Some(digest) = blobs.get(i) else { return Ok((sent, bytes)) };
                            if self.client.push_blob(target, digest, &self.layout.blob_path(digest), stop)? {
                                sent += 1;
                                bytes += size(digest);
                            }
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        let (mut sent, mut bytes) = (0, 0);
        for result in results {
            let (s, b) = result.map_err(|source| OciError::Push { host: target.host.clone(), source })?;
            sent += s;
            bytes += b;
        }
        note(&format!(
            "hephy oci: blobs of {} are in {}/{}: {sent} of {} uploaded ({bytes} bytes), the rest were there",
            manifest.digest,
            target.host,
            target.repository,
            blobs.len(),
        ));
        Ok(())
    }

    /// The bytes and media type of manifest `digest`, from the layout or else the registry (and
    /// then kept in the layout).
    fn manifest_bytes(&self, repository: Option<&str>, digest: &str) -> Result<(String, Vec<u8>), PullError> {
        // A copy here whose bytes are not its digest's (damaged) is fetched again.
        if let Some(bytes) = self.layout.read(digest).filter(|b| layout::sha256(b) == digest) {
            return Ok((media_type_of(&bytes), bytes));
        }
        let repository = repository.ok_or_else(|| PullError::NotInLayout { digest: digest.to_owned() })?;
        let fetched = self.client.manifest(&Reference::parse(&format!("{repository}@{digest}"))?)?;
        self.layout.put(&fetched.media_type, &fetched.bytes)?;
        Ok((fetched.media_type, fetched.bytes))
    }

    /// Joins an image's platform builds into an OCI index (platform order) and publishes it.
    pub(crate) fn index(&self, model: &Model, job: &Job<'_>) -> Outcome {
        match self.try_index(model, job) {
            Ok(digest) => Outcome::Built(digest),
            Err(error) => Outcome::failed(error),
        }
    }

    fn try_index(&self, model: &Model, job: &Job<'_>) -> Result<String, OciError> {
        let log = Log::create(job)?;
        let repository =
            model.registry.as_ref().map(|_| reference::repository(model, &self.sources.release, job.node));
        let mut entries: Vec<(&Node, &String)> = job.deps.iter().map(|(n, d)| (*n, d)).collect();
        entries.sort_by(|a, b| a.0.platform.cmp(&b.0.platform));
        let publish = match model.definition(job.node.name()) {
            Some(hephy_dsl::Definition::Image(image)) => Some(&image.publish),
            _ => None,
        };
        // The key is opened first: a wrong password fails the node before anything is pushed.
        let key = match publish.and_then(|p| p.sign.as_ref()) {
            Some(signing) if repository.is_some() => {
                let password = supply::keys::password_from_env()?;
                Some(supply::keys::SigningKey::load(&signing.key, &password)?)
            }
            _ => None,
        };
        // An index of this key already pushed (its inputs have not changed; it runs again
        // because a registry lost it or a signature went missing) is published as it is, not
        // made anew: its provenance names the run that made it, and the index does not move.
        let kept = if repository.is_some() && publish.is_some_and(|p| p.attests() || p.sign.is_some()) {
            self.pushed_index(model, job)?
        } else {
            None
        };
        let (descriptor, bytes, attestations) = match kept {
            Some((source, digest, bytes)) => {
                let descriptor = self.layout.put(INDEX, &bytes)?;
                self.layout.name(&layout_name(job.node), &descriptor, None)?;
                let attestations =
                    self.kept_attestations(&source, &bytes, &crate::executors::process::stop(job))?;
                log.note(&format!("hephy: index {digest} is in {source} under its key; kept"));
                (descriptor, bytes, attestations)
            }
            None => self.new_index(model, job, &entries, repository.as_deref(), &log)?,
        };
        if repository.is_some() {
            let tag = template_tag(model, job, model.naming.manifest.as_ref(), &self.sources)
                .map_err(OciError::Naming)?;
            for repository in reference::repositories(model, &self.sources.release, job.node) {
                let target = Reference::parse(&repository)?;
                let lock = self.repository_lock(&repository)?;
                let mut _held = lock.lock().map_err(|_| OciError::Poisoned)?;
                let stop = crate::executors::process::stop(job);
                for attestation in &attestations {
                    self.push_image(&target, attestation, &stop, &|line: &str| log.note(line))?;
                    let bytes = self.layout.read(&attestation.digest).ok_or(OciError::Gone)?;
                    self.client.push_manifest(
                        &target,
                        &attestation.digest,
                        &attestation.media_type,
                        &bytes,
                    )?;
                }
                // Each platform build the repository lacks (built before the registry or this
                // mirror was added: where results go is not in a build's key), from the layout.
                for (node, digest) in &entries {
                    let here = Reference::parse(&format!("{repository}@{digest}"))?;
                    if self.client.resolve(&here)?.is_some() {
                        continue;
                    }
                    // From the layout; what it lacks (a build found in the cache on this
                    // runner) from the graph's own repository first.
                    let main = reference::repository(model, &self.sources.release, job.node);
                    let source = (main != repository).then_some(main.as_str());
                    drop(_held);
                    self.image_blobs(source, digest, &stop)?;
                    let (media_type, manifest) = self.manifest_bytes(source, digest)?;
                    let built =
                        Descriptor { media_type, digest: (*digest).clone(), size: manifest.len() as u64 };
                    self.publish_build(&repository, &built, &[(*digest).clone()], &stop, &|line: &str| {
                        log.note(line)
                    })?;
                    log.note(&format!("hephy: pushed {} ({digest}) to {repository}", node.id));
                    _held = lock.lock().map_err(|_| OciError::Poisoned)?;
                }
                self.client.push_manifest(&target, &descriptor.digest, INDEX, &bytes)?;
                log.note(&format!("hephy: pushed {repository}@{}", descriptor.digest));
                if let Some(tag) = &tag {
                    self.client.push_manifest(&target, tag, INDEX, &bytes)?;
                    log.note(&format!("hephy: tagged {repository}:{tag}"));
                }
                if let Some(key) = &key {
                    self.sign_all(&target, &descriptor.digest, &entries, key, &log)?;
                }
            }
            // The records of the index and of each platform build it joined.
            let stop = crate::executors::process::stop(job);
            let note = |line: &str| log.note(line);
            for (i, (node, digest)) in job.deps.iter().enumerate() {
                if let Some(detail) = job.details.get(i) {
                    self.write_record(model, node, &detail.key, digest, &stop, &note)?;
                }
            }
            self.write_record(model, job.node, job.key, &descriptor.digest, &stop, &note)?;
        }
        Ok(descriptor.digest)
    }

    /// A new index of `entries` (platform order) and its attestation manifests, written into
    /// the layout.
    fn new_index(
        &self,
        model: &Model,
        job: &Job<'_>,
        entries: &[(&Node, &String)],
        repository: Option<&str>,
        log: &Log,
    ) -> Result<(Descriptor, Vec<u8>, Vec<Descriptor>), OciError> {
        let mut manifests = Vec::new();
        for (node, digest) in entries {
            let (media_type, bytes) = self.manifest_bytes(repository, digest)?;
            let mut entry = document::descriptor(&media_type, digest, bytes.len() as u64)?;
            entry.set_platform(node.platform.as_ref().map(oci_platform));
            manifests.push(entry);
        }
        // Attestation manifests follow the platforms', one per platform (as BuildKit orders them).
        let attestations = self.attestations(model, job, entries, repository)?;
        manifests.extend(attestations.iter().map(|(_, entry)| entry.clone()));
        let mut index = layout::new_index(manifests);
        let upstream = commit_of(model, job.node, &self.sources);
        let annotations = reference::metadata(
            model,
            &self.sources.release,
            job.node,
            Some(job.key),
            upstream.as_deref(),
            false,
        )
        .map_err(OciError::Naming)?;
        if !annotations.is_empty() {
            index.set_annotations(Some(annotations.into_iter().collect()));
        }
        let bytes = document::to_bytes(&index)?;
        let descriptor = self.layout.put(INDEX, &bytes)?;
        self.layout.name(&layout_name(job.node), &descriptor, None)?;
        log.note(&format!("hephy: index {} of {} platforms", descriptor.digest, entries.len()));
        Ok((descriptor, bytes, attestations.into_iter().map(|(d, _)| d).collect()))
    }

    /// The attestation manifests a kept index names, each with its blobs in the layout
    /// (fetched from `source` when they are not here).
    fn kept_attestations(
        &self,
        source: &str,
        index: &[u8],
        stop: &Stop<'_>,
    ) -> Result<Vec<Descriptor>, OciError> {
        let index = document::index(index)?;
        let mut out = Vec::new();
        for entry in index.manifests() {
            let kind = entry.annotations().as_ref().and_then(|a| a.get(supply::attest::REFERENCE_TYPE));
            if kind.map(String::as_str) != Some(supply::attest::ATTESTATION_MANIFEST) {
                continue;
            }
            let digest = entry.digest().as_ref();
            self.image_blobs(Some(source), digest, stop)?;
            let (media_type, bytes) = self.manifest_bytes(Some(source), digest)?;
            out.push(Descriptor { media_type, digest: digest.to_owned(), size: bytes.len() as u64 });
        }
        Ok(out)
    }

    /// The index some registry of `job`'s image holds under the node's key tag (the first that
    /// does, in the order pushed to): that repository, its digest and bytes.
    fn pushed_index(
        &self,
        model: &Model,
        job: &Job<'_>,
    ) -> Result<Option<(String, String, Vec<u8>)>, OciError> {
        let Some(registry) = &model.registry else { return Ok(None) };
        for repository in reference::repositories(model, &self.sources.release, job.node) {
            let Ok(Some(digest)) = records::lookup(&self.client, registry, job.key, &repository) else {
                continue;
            };
            let target = Reference::parse(&format!("{repository}@{digest}"))?;
            if let Ok(manifest) = self.client.manifest(&target)
                && manifest.media_type == INDEX
            {
                return Ok(Some((repository, manifest.digest, manifest.bytes)));
            }
        }
        Ok(None)
    }

    /// Signs the index `digest` pushed to `target` and each of its platform manifests (the
    /// index's signature covers its attestation manifests), as cosign does; a signature already
    /// there is not written again.
    fn sign_all(
        &self,
        target: &Reference,
        digest: &str,
        platforms: &[(&Node, &String)],
        key: &supply::keys::SigningKey,
        log: &Log,
    ) -> Result<(), OciError> {
        for digest in std::iter::once(digest).chain(platforms.iter().map(|(_, d)| d.as_str())) {
            let signed = supply::sign::sign(&self.client, target, digest, key)?;
            let what = if signed.added { "signed" } else { "already signed" };
            log.note(&format!(
                "hephy: {what} {}/{}@{digest}: {}",
                target.host, target.repository, signed.reference
            ));
        }
        Ok(())
    }

    /// The attestation manifests of an index's platforms (written into the layout): each
    /// platform's SLSA provenance when the image's `provenance` is on. Empty when it attests
    /// nothing.
    fn attestations(
        &self,
        model: &Model,
        job: &Job<'_>,
        platforms: &[(&Node, &String)],
        repository: Option<&str>,
    ) -> Result<Vec<(Descriptor, spec::Descriptor)>, OciError> {
        let Some(hephy_dsl::Definition::Image(image)) = model.definition(job.node.name()) else {
            return Ok(Vec::new());
        };
        if !image.publish.attests() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (node, digest) in platforms {
            let mut statements = Vec::new();
            if image.publish.provenance {
                let build = self.provenance(model, image, job, node, digest, repository);
                statements.push(supply::attest::Statement {
                    predicate_type: supply::provenance::SLSA_PROVENANCE.to_owned(),
                    bytes: supply::provenance::bytes(&build),
                });
            }
            if image.publish.sbom {
                statements.push(self.sbom(model, job, node, digest, repository)?);
            }
            if statements.is_empty() {
                continue;
            }
            out.push(supply::attest::attestation_manifest(&self.layout, digest, &statements)?);
        }
        Ok(out)
    }

    /// The SBOM statement of the platform build `node` (manifest `digest`): an SPDX 2.3
    /// document of its layers (fetched into the layout when another builder pushed them) as an
    /// in-toto statement about the manifest.
    fn sbom(
        &self,
        model: &Model,
        job: &Job<'_>,
        node: &Node,
        digest: &str,
        repository: Option<&str>,
    ) -> Result<supply::attest::Statement, OciError> {
        let stop = crate::executors::process::stop(job);
        // Another builder's image is in the registry only: its layers are fetched here.
        self.image_blobs(repository, digest, &stop)?;
        let base = self.sbom_base(model, job, node, repository, &stop);
        let created = supply::provenance::fixed_time().unwrap_or_else(|| self.sources.release.created());
        let name = repository.map_or_else(|| layout_name(node), str::to_owned);
        let document = supply::sbom::spdx(&self.layout, digest, base.as_ref(), &created, &name)
            .map_err(|source| OciError::Sbom { digest: digest.to_owned(), source })?;
        let predicate: Value = serde_json::from_slice(&document)?;
        let statement = json!({
            "_type": supply::provenance::STATEMENT,
            "subject": [{ "name": name, "digest": { "sha256": digest.trim_start_matches("sha256:") } }],
            "predicateType": supply::attest::SPDX,
            "predicate": predicate,
        });
        Ok(supply::attest::Statement {
            predicate_type: supply::attest::SPDX.to_owned(),
            bytes: serde_json::to_vec(&statement)?,
        })
    }

    /// The layer digests of image manifest `digest`, its config and each layer fetched into the
    /// layout when it is not there (an image another builder pushed, or a kept index's
    /// attestation manifest).
    fn image_blobs(
        &self,
        repository: Option<&str>,
        digest: &str,
        stop: &Stop<'_>,
    ) -> Result<Vec<String>, OciError> {
        let (_, bytes) = self.manifest_bytes(repository, digest)?;
        let manifest = document::manifest(&bytes)?;
        let config = std::iter::once(manifest.config());
        let mut layers = Vec::new();
        for (i, blob) in config.chain(manifest.layers()).enumerate() {
            let blob_digest = blob.digest().as_ref();
            if !self.layout.has(blob_digest)
                && let Some(repository) = repository
            {
                let reference = Reference::parse(&format!("{repository}@{digest}"))?;
                self.fetch_blob(&reference, blob_digest, Some(blob.size()), stop)?;
            }
            if i > 0 {
                layers.push(blob_digest.to_owned());
            }
        }
        Ok(layers)
    }

    /// The image `node` was built on, for its SBOM: the graph image it is built `from` (its
    /// platform manifest), else its one external base when the layout holds that platform's
    /// manifest; `None` when neither is known.
    fn sbom_base(
        &self,
        model: &Model,
        job: &Job<'_>,
        node: &Node,
        repository: Option<&str>,
        stop: &Stop<'_>,
    ) -> Option<supply::sbom::BaseInfo> {
        let detail = job.deps.iter().position(|(n, _)| n.id == node.id).and_then(|i| job.details.get(i))?;
        let graph_bases: Vec<&(&Node, String)> = detail
            .deps
            .iter()
            .filter(|(dep, out)| dep.kind == hephy_engine::NodeKind::Image && layout::valid_digest(out))
            .collect();
        if let [(dep, digest)] = graph_bases.as_slice() {
            let dep_repository = repository.map(|_| reference::repository(model, &self.sources.release, dep));
            let layers = self.image_blobs(dep_repository.as_deref(), digest, stop).ok()?;
            let reference = match &dep_repository {
                Some(r) => format!("{r}@{digest}"),
                None => layout_name(dep),
            };
            return Some(supply::sbom::BaseInfo { reference, digest: digest.clone(), layers: layers.len() });
        }
        let Some(hephy_dsl::Definition::Image(image)) = model.definition(node.name()) else { return None };
        let local = crate::builders::dockerfile::local(&model.root, image)?.ok()?;
        let [reference] = crate::sources::bases::external_froms(&local.text).try_into().ok()?;
        let state_dir = self.layout.dir().parent()?;
        let resolved = crate::sources::bases::planned(state_dir, &reference)?;
        let bytes = self.layout.read(&resolved)?;
        let children = document::Children::of(&bytes).ok()?;
        let platform = node.platform.as_ref()?;
        let digest = if children.manifests.is_empty() && children.config.is_some() {
            resolved
        } else {
            let same_variant = |e: &&spec::Descriptor| {
                e.platform().as_ref().is_some_and(|p| p.variant().as_deref() == platform.variant())
            };
            children.manifests.iter().filter(|e| is_for(e, platform)).find(same_variant)?.digest().to_string()
        };
        let layers = document::manifest(&self.layout.read(&digest)?).ok()?.layers().len();
        Some(supply::sbom::BaseInfo { reference, digest, layers })
    }

    /// What the provenance of the platform build `node` (manifest `digest`) says.
    fn provenance(
        &self,
        model: &Model,
        image: &Image,
        job: &Job<'_>,
        node: &Node,
        digest: &str,
        repository: Option<&str>,
    ) -> supply::provenance::Build {
        let detail = job.deps.iter().position(|(n, _)| n.id == node.id).and_then(|i| job.details.get(i));
        let (sets, environment) = model.overrides.given();
        let graph_file = model
            .source
            .path()
            .strip_prefix(&model.root)
            .unwrap_or(model.source.path())
            .to_string_lossy()
            .into_owned();
        let state_dir = self.layout.dir().parent().unwrap_or(self.layout.dir());
        let bases = crate::builders::dockerfile::local(&model.root, image)
            .and_then(Result::ok)
            .map(|local| crate::sources::bases::external_froms(&local.text))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| crate::sources::bases::planned(state_dir, &r).map(|d| (r, d)))
            .collect();
        // The graph images it was built from: by their pushed reference, or their name here.
        let images = detail
            .map(|d| d.deps.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|(dep, out)| dep.kind == hephy_engine::NodeKind::Image && layout::valid_digest(out))
            .map(|(dep, out)| {
                let name = match &model.registry {
                    Some(_) => format!("{}@{out}", reference::repository(model, &self.sources.release, dep)),
                    None => layout_name(dep),
                };
                (name, out.clone())
            })
            .collect();
        let upstream = match &image.source {
            hephy_dsl::ImageSource::Git { url, .. } => {
                commit_of(model, node, &self.sources).map(|commit| (url.clone(), commit))
            }
            hephy_dsl::ImageSource::Context { .. } => None,
        };
        let head = self.sources.release.head();
        supply::provenance::Build {
            name: repository.map_or_else(|| layout_name(node), str::to_owned),
            digest: digest.to_owned(),
            graph_file,
            image: image.name.value.clone(),
            target: node.target.clone(),
            platform: node.platform.as_ref().map(ToString::to_string).unwrap_or_default(),
            sets,
            environment,
            builder: (
                image.builder.to_string(),
                crate::builder_identity(node, Some(hephy_dsl::Definition::Image(image))).into_owned(),
            ),
            dockerfile: image.dockerfile.clone(),
            args: image.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            key: detail.map(|d| d.key.to_string()).unwrap_or_default(),
            source: (
                self.sources.release.source().to_owned(),
                Some(head.commit.clone()).filter(|c| !c.is_empty()),
            ),
            bases,
            images,
            upstream,
            reasons: detail.map(|d| serde_json::to_value(&d.reasons).unwrap_or_default()).unwrap_or_default(),
            run_id: job.run_id,
            time: supply::provenance::fixed_time(),
        }
    }

    /// Gives an image's index one more tag: the same bytes put under the tag.
    pub(crate) fn tag(&self, model: &Model, job: &Job<'_>) -> Outcome {
        match self.try_tag(model, job) {
            Ok(digest) => Outcome::Built(digest),
            Err(error) => Outcome::failed(error),
        }
    }

    fn try_tag(&self, model: &Model, job: &Job<'_>) -> Result<String, OciError> {
        let (_, index) = job.deps.first().ok_or(OciError::NoIndex)?;
        let log = Log::create(job)?;
        let repository =
            model.registry.as_ref().map(|_| reference::repository(model, &self.sources.release, job.node));
        let (media_type, bytes) = self.manifest_bytes(repository.as_deref(), index)?;
        let descriptor =
            Descriptor { media_type: media_type.clone(), digest: index.clone(), size: bytes.len() as u64 };
        self.layout.name(&layout_name(job.node), &descriptor, None)?;
        if repository.is_some() {
            let commit = commit_of(model, job.node, &self.sources);
            let tag = reference::Vars::new(model, &self.sources.release, job.node, None, commit.as_deref())
                .render_tag(&model.naming.tag)
                .map_err(OciError::Naming)?;
            for repository in reference::repositories(model, &self.sources.release, job.node) {
                let target = Reference::parse(&repository)?;
                let lock = self.repository_lock(&repository)?;
                let _held = lock.lock().map_err(|_| OciError::Poisoned)?;
                self.client.push_manifest(&target, &tag, &media_type, &bytes)?;
                log.note(&format!("hephy: tagged {repository}:{tag} → {index}"));
            }
        }
        Ok(index.clone())
    }

    /// Where build contexts come from.
    pub(crate) fn sources(&self) -> &crate::Sources {
        &self.sources
    }

    /// The per-platform tag the graph's naming gives a build, if any.
    pub(crate) fn platform_tag(
        &self,
        model: &Model,
        job: &Job<'_>,
    ) -> Result<Option<String>, reference::NamingError> {
        template_tag(model, job, model.naming.platform.as_ref(), &self.sources)
    }

    /// Gives the pushed manifest `digest` in `repository` one more tag (the external builders'
    /// per-platform naming templates).
    pub(crate) fn copy_tag(&self, repository: &str, digest: &str, tag: &str) -> Result<(), OciError> {
        let (media_type, bytes) = self.manifest_bytes(Some(repository), digest)?;
        let target = Reference::parse(repository)?;
        let lock = self.repository_lock(repository)?;
        let _held = lock.lock().map_err(|_| OciError::Poisoned)?;
        self.client.push_manifest(&target, tag, &media_type, &bytes)?;
        Ok(())
    }

    /// Fetches a base image for `platform` into the layout (the local layout first: graph
    /// images built here are found there by digest).
    fn pull(
        &self,
        text: &str,
        platform: &Platform,
        stop: &Stop<'_>,
        note: &dyn Fn(&str),
    ) -> Result<build::BaseImage, PullError> {
        let reference = Reference::parse(text)?;
        let mut digest = match (&reference.digest, self.planned_base(text)) {
            (Some(digest), _) => digest.clone(),
            // The digest the plan resolved the tag to (and keyed the build with).
            (None, Some(digest)) => {
                note(&format!("hephy oci: {text} is {digest} (as planned)"));
                digest
            }
            (None, None) => {
                let digest = self
                    .client
                    .resolve(&reference)?
                    .ok_or_else(|| PullError::Missing { reference: text.to_owned() })?;
                note(&format!("hephy oci: {text} is {digest}"));
                digest
            }
        };
        let repository = format!("{}/{}", reference.host, reference.repository);
        let (mut media_type, mut bytes) = self.manifest_bytes(Some(&repository), &digest)?;
        let is_index = |t: &str| t.contains("index") || t.contains("manifest.list");
        if is_index(&media_type) {
            let index: spec::ImageIndex = serde_json::from_slice(&bytes)
                .map_err(|source| PullError::Json { reference: text.to_owned(), source })?;
            let chosen = index.manifests().iter().find(|m| is_for(m, platform)).ok_or_else(|| {
                PullError::NoPlatform { reference: text.to_owned(), platform: platform.clone() }
            })?;
            digest = chosen.digest().to_string();
            (media_type, bytes) = self.manifest_bytes(Some(&repository), &digest)?;
            if is_index(&media_type) {
                return Err(PullError::Malformed {
                    reference: text.to_owned(),
                    problem: "an index inside an index is not supported",
                });
            }
        }
        let manifest: spec::ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|source| PullError::Json { reference: text.to_owned(), source })?;
        let config_digest = manifest.config().digest().as_ref();
        self.fetch_blob(&reference, config_digest, Some(manifest.config().size()), stop)?;
        let config_bytes = self.layout.read(config_digest).ok_or(PullError::ConfigGone)?;
        // The config stays JSON: `oci-spec`'s config type has no `Healthcheck`, `Shell` or
        // `OnBuild`, which an image built on this one inherits.
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|source| PullError::Json { reference: text.to_owned(), source })?;
        let mut layers = Vec::new();
        for layer in manifest.layers() {
            let digest = layer.digest().as_ref();
            let media_type = base_layer_type(text, layer)?;
            self.fetch_blob(&reference, digest, Some(layer.size()), stop)?;
            layers.push(Descriptor { media_type, digest: digest.to_owned(), size: layer.size() });
        }
        Ok(build::BaseImage { config, layers })
    }

    /// The image `text` (`oci-layout:///DIR@sha256:…`, a `build-context … oci-layout=`) names in
    /// a local OCI image layout: its blobs (the platform's manifest, its config and layers) are
    /// copied into hephy's layout, read through no link out of the layout's folder, each
    /// checked against its digest.
    fn read_layout(&self, text: &str, platform: &Platform) -> Result<build::BaseImage, PullError> {
        let rest = text.strip_prefix(crate::builders::LAYOUT_SCHEME).unwrap_or(text);
        let (dir, digest) = rest
            .rsplit_once('@')
            .ok_or_else(|| PullError::Malformed { reference: text.to_owned(), problem: "no digest" })?;
        let dir = Path::new(dir);
        let import = |digest: &str, media_type: &str| -> Result<Vec<u8>, PullError> {
            let hex = digest
                .strip_prefix("sha256:")
                .filter(|_| layout::valid_digest(digest))
                .ok_or_else(|| PullError::BadDigest { digest: digest.to_owned() })?;
            let mut file = hephy_os::open::open_below(dir, &Path::new("blobs/sha256").join(hex))?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes)?;
            if layout::sha256(&bytes) != digest {
                return Err(PullError::Malformed {
                    reference: text.to_owned(),
                    problem: "a blob whose bytes are not its digest's",
                });
            }
            self.layout.put(media_type, &bytes)?;
            Ok(bytes)
        };
        let json_error = |source| PullError::Json { reference: text.to_owned(), source };
        let mut bytes = import(digest, build::MANIFEST)?;
        let children: document::Children = serde_json::from_slice(&bytes).map_err(json_error)?;
        if !children.manifests.is_empty() || children.config.is_none() {
            let chosen = children.manifests.iter().find(|m| is_for(m, platform)).ok_or_else(|| {
                PullError::NoPlatform { reference: text.to_owned(), platform: platform.clone() }
            })?;
            bytes = import(chosen.digest().as_ref(), build::MANIFEST)?;
        }
        let manifest: spec::ImageManifest = serde_json::from_slice(&bytes).map_err(json_error)?;
        let config_digest = manifest.config().digest().as_ref();
        // JSON, as a pulled base's config (see `pull`).
        let config =
            serde_json::from_slice(&import(config_digest, "application/vnd.oci.image.config.v1+json")?)
                .map_err(json_error)?;
        let mut layers = Vec::new();
        for layer in manifest.layers() {
            let digest = layer.digest().as_ref();
            let media_type = base_layer_type(text, layer)?;
            import(digest, &media_type)?;
            layers.push(Descriptor { media_type, digest: digest.to_owned(), size: layer.size() });
        }
        Ok(build::BaseImage { config, layers })
    }

    /// The digest the last plan resolved the external base `text` to (kept in the state).
    fn planned_base(&self, text: &str) -> Option<String> {
        let state_dir = self.layout.dir().parent()?;
        crate::sources::bases::planned(state_dir, text).filter(|d| layout::valid_digest(d))
    }

    /// Fetches blob `digest` into the layout, unless it is here at `size` (the size its
    /// descriptor gives): a copy of another size is damaged, and replaced.
    fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &str,
        size: Option<u64>,
        stop: &Stop<'_>,
    ) -> Result<(), PullError> {
        let here = std::fs::symlink_metadata(self.layout.blob_path(digest)).ok().filter(|m| m.is_file());
        if self.layout.has(digest) && here.is_some_and(|m| size.is_none_or(|size| m.len() == size)) {
            return Ok(());
        }
        if !layout::valid_digest(digest) {
            return Err(PullError::BadDigest { digest: digest.to_owned() });
        }
        let temp = self.layout.temp()?;
        let mut file = temp.as_file().try_clone()?;
        self.client.blob(reference, digest, &mut file, stop)?;
        let (_, path) = temp.keep().map_err(|e| PullError::Keep(e.error))?;
        Ok(self.layout.adopt(&path, digest)?)
    }
}

/// Base images for one build, pulled through the layout.
struct Pulls<'a> {
    oci: &'a Oci,
    note: &'a dyn Fn(&str),
    stop: Stop<'a>,
}

impl build::BaseSource for Pulls<'_> {
    fn fetch(&self, reference: &str, platform: &Platform) -> Result<build::BaseImage, PullError> {
        if reference.starts_with(crate::builders::LAYOUT_SCHEME) {
            (self.note)(&format!("hephy oci: reading {reference}"));
            return self.oci.read_layout(reference, platform);
        }
        self.oci.pull(reference, platform, &self.stop, self.note)
    }
}

/// The files of a build context (relative, sorted, `.dockerignore` applied).
pub(crate) fn context_files(
    context: &Path,
    dockerfile: &str,
) -> Result<Vec<String>, hephy_engine::FilesError> {
    hephy_engine::collect(
        context,
        &FileSource::Context { dir: ".".to_owned(), dockerfile: dockerfile.to_owned() },
        &Exclusions::default(),
    )
}

fn commit_of(model: &Model, node: &Node, sources: &crate::Sources) -> Option<String> {
    match model.definition(node.name()) {
        Some(hephy_dsl::Definition::Image(image)) => match &image.source {
            hephy_dsl::ImageSource::Git { url, reference, .. } => sources.commit(url, reference).ok(),
            hephy_dsl::ImageSource::Context { .. } => None,
        },
        _ => None,
    }
}

/// The extra tag a naming template gives a build or an index, if any; an error when it cannot
/// be rendered whole (never a cut-short tag).
fn template_tag(
    model: &Model,
    job: &Job<'_>,
    template: Option<&String>,
    sources: &crate::Sources,
) -> Result<Option<String>, reference::NamingError> {
    let Some(template) = template else { return Ok(None) };
    let commit = commit_of(model, job.node, sources);
    reference::Vars::new(model, &sources.release, job.node, Some(job.key), commit.as_deref())
        .render_tag(template)
        .map(Some)
}

/// The tag a tag node of a finished run pushed (its graph tag through the naming's `tag`
/// template, from git and the plan as the run rendered it); the tag as written when it cannot
/// be rendered. Upstream commits are read from the git cache in `state_dir`.
pub fn pushed_tag(model: &Model, release: &Release, node: &Node, state_dir: &Path) -> String {
    let commit = match model.definition(node.name()) {
        Some(hephy_dsl::Definition::Image(image)) => match &image.source {
            hephy_dsl::ImageSource::Git { url, reference, .. } => {
                crate::sources::git::resolve(url, reference, state_dir, true).ok()
            }
            hephy_dsl::ImageSource::Context { .. } => None,
        },
        _ => None,
    };
    reference::Vars::new(model, release, node, None, commit.as_deref())
        .render_tag(&model.naming.tag)
        .unwrap_or_else(|_| node.tag.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::ImageLocation;

    /// The model of `graph` (YAML, its images' contexts made), with its nodes compiled.
    fn compiled(graph: &str) -> (hephy_dsl::Model, hephy_engine::Graph) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("app")).expect("mkdir");
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\n").expect("write");
        let source =
            hephy_dsl::SourceFile::new(dir.path().join("hephy.yaml"), hephy_dsl::Syntax::Yaml, graph);
        let model = hephy_dsl::parse(source, dir.path()).expect("a valid graph");
        let graph = hephy_engine::compile(&model);
        (model, graph)
    }

    fn node<'g>(graph: &'g hephy_engine::Graph, id: &str) -> &'g hephy_engine::Node {
        let found = graph.order().iter().map(|&i| graph.node(i)).find(|n| n.id.as_str() == id);
        found.expect("the node")
    }

    /// A location is a type: the layout's name, a builder's own storage, or the registry by
    /// digest; shown as before (`oci:…:name`, `repository@digest`).
    #[test]
    fn image_locations_are_typed() {
        let (model, graph) = compiled("platforms: [linux/amd64]\nimages:\n  app: { context: app }\n");
        let index = node(&graph, "app");
        let platform = node(&graph, "app@linux/amd64");
        let state = Path::new(".hephy");
        let release = crate::Release::new(Path::new("."));
        let layout = ImageLocation::of(&model, &release, index, "sha256:1234", state);
        assert_eq!(
            layout,
            ImageLocation::Layout { layout: PathBuf::from(".hephy/oci"), name: "app".to_owned() }
        );
        assert_eq!(layout.to_string(), "oci:.hephy/oci:app");
        let name = ImageLocation::of(&model, &release, platform, "", state);
        assert!(matches!(name, ImageLocation::Layout { name, .. } if name == "app.linux-amd64"));
        let local = ImageLocation::of(&model, &release, index, "local:abcd", state);
        assert_eq!(local, ImageLocation::Local { digest: "abcd".to_owned() });
        let (model, graph) = compiled(
            "registry: registry.example/team\nplatforms: [linux/amd64]\nimages:\n  app: { context: app }\n",
        );
        let pushed = ImageLocation::of(&model, &release, node(&graph, "app"), "sha256:1234", state);
        assert!(
            matches!(&pushed, ImageLocation::Registry { digest, .. } if digest == "sha256:1234"),
            "{pushed:?}"
        );
        assert!(pushed.to_string().ends_with("/app@sha256:1234"), "{pushed}");
    }
}
