//! The `buildah` builder: daemonless, full Dockerfile support (`RUN` included), one platform per
//! build, its own storage under the state folder.
//!
//! An image build is `buildah bud --isolation chroot --timestamp 0 --platform P` (reproducible:
//! the same inputs give the same digest), then a push to the registry under a tag derived from
//! the node's key, whose digest is read back and becomes the node's output (indexes and tags are
//! hephy's own, see [`crate::builders::oci`]). Without a registry, images stay in buildah's storage under
//! the state folder and the image id is the output. With one and `HEPHY_BUILDAH_LAYER_CACHE=1`,
//! builds without secrets keep buildah's layer cache in the registry's cache repository (`--layers --cache-from/--cache-to
//! REGISTRY/hephy-cache`), so a fresh runner reruns only the steps after the first that changed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hephy_dsl::{Image, Model};
use hephy_engine::{Job, Outcome};

use crate::builders::{Builder, Capabilities, ImageBuilder, Rendered, Request, path};
use crate::executors::process::{self, Log, shown};
use crate::registry::reference;

/// buildah: the whole Dockerfile and secrets, read by buildah's own reader; labels,
/// annotations and mirrors.
pub(crate) struct BuildahBuilder;

impl ImageBuilder for BuildahBuilder {
    fn kind(&self) -> Builder {
        Builder::Buildah
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dockerfile: true,
            run: true,
            run_mount: true,
            add_url: true,
            own_reader: true,
            named_contexts: true,
            context_kinds: &["image", "path", "git"],
            secrets: true,
            labels: true,
            annotations: true,
            mirrors: true,
            ..Capabilities::NONE
        }
    }

    fn identity(&self) -> Cow<'static, str> {
        identity().into()
    }

    fn render(&self, r: &Request) -> Option<Rendered> {
        let mut args: Vec<String> = Vec::new();
        args.extend([
            "bud".to_owned(),
            "--isolation".to_owned(),
            "chroot".to_owned(),
            "--timestamp".to_owned(),
            "0".to_owned(),
            "--platform".to_owned(),
            r.platform.clone(),
            "-f".to_owned(),
            path(&r.dockerfile),
        ]);
        if let Some(t) = &r.target {
            args.extend(["--target".to_owned(), t.clone()]);
        }
        for (k, v) in &r.build_args {
            args.extend(["--build-arg".to_owned(), format!("{k}={v}")]);
        }
        for (name, value) in &r.contexts {
            args.extend(["--build-context".to_owned(), format!("{name}={value}")]);
        }
        if r.insecure {
            args.push("--tls-verify=false".to_owned());
        }
        for (k, v) in &r.labels {
            args.extend(["--label".to_owned(), format!("{k}={v}")]);
        }
        for (k, v) in &r.annotations {
            args.extend(["--annotation".to_owned(), format!("{k}={v}")]);
        }
        args.extend(["-t".to_owned(), r.destination.clone(), path(&r.context)]);
        Some(Rendered { program: "buildah".to_owned(), args, env: Vec::new(), dir: None })
    }

    fn digest(&self, left: &str) -> Option<String> {
        Some(left.trim().to_owned())
    }

    fn build(&self, stdlib: &crate::Stdlib<'_>, image: &Image, job: &Job<'_>) -> Outcome {
        stdlib.buildah.build(stdlib.model, image, job, &stdlib.oci)
    }
}

/// buildah's version (`buildah/1.28.2`), asked once; part of every image node's key.
pub(crate) fn identity() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            Command::new("buildah")
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|v| v.split_whitespace().nth(2).map(|v| format!("buildah/{v}")))
                .unwrap_or_else(|| "buildah/unavailable".to_owned())
        })
        .as_str()
}

/// What one `buildah bud` builds, and where it leaves what.
#[derive(Clone, Copy)]
pub(crate) struct Bud<'a> {
    /// The build context.
    pub(crate) context: &'a Path,
    /// The tag in hephy's buildah storage.
    pub(crate) local_tag: &'a str,
    /// Where buildah writes the image id.
    pub(crate) iidfile: &'a Path,
    /// Secrets, each in its own file.
    pub(crate) secrets: &'a [(String, tempfile::NamedTempFile)],
    /// The graph's labels (`--label`) and annotations (`--annotation`), rendered.
    pub(crate) metadata: &'a [(&'static str, String, String)],
    /// Named build contexts, in BuildKit's form (`docker-image://…`, a folder).
    pub(crate) contexts: &'a [(String, String)],
}

/// How hephy calls buildah: its own storage, the vfs driver (works everywhere, even nested).
#[derive(Debug)]
pub(crate) struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
    /// Writes to one repository go one at a time: distribution's filesystem storage answers
    /// concurrent manifest writes to a repository with 500s.
    repositories: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Where build contexts come from (local folders, upstream checkouts).
    sources: crate::Sources,
}

/// Why a buildah build failed outside buildah's own command: the data; text only when the
/// node's outcome is made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildahError {
    /// A thread holding a repository's lock panicked.
    #[error("a registry lock was poisoned")]
    Poisoned,
    /// A registry write (`buildah push`, `skopeo copy`) failed, retries spent.
    #[error(transparent)]
    Command(#[from] process::CommandFailed),
    /// The node's work folder cannot be made.
    #[error("cannot create `{}`: {source}", path.display())]
    Scratch {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file buildah writes the digest to cannot be read.
    #[error("no digest in `{}`: {source}", path.display())]
    NoDigestFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A build's push to a registry or mirror failed.
    #[error("pushing to {registry} failed: {source}")]
    Push {
        /// The registry (or mirror).
        registry: String,
        /// Why.
        source: Box<BuildahError>,
    },
    /// A tag node without its image's index among its dependencies.
    #[error("a tag node needs its image's index")]
    NoIndex,
    /// It holds something that is not a sha256 digest.
    #[error("`{}` holds no sha256 digest: {text:?}", path.display())]
    BadDigest {
        /// The file.
        path: PathBuf,
        /// What it holds.
        text: String,
    },
}

/// Attempts of a registry write before its node fails; transient errors (5xx, resets) are
/// retried after 0.5 s, then 1.5 s.
const ATTEMPTS: u32 = 3;

impl Buildah {
    pub(crate) fn new(state_dir: &Path, sources: crate::Sources) -> Buildah {
        let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        Buildah {
            root: state_dir.join("buildah").join("root"),
            runroot: state_dir.join("buildah").join("run"),
            repositories: Mutex::new(HashMap::new()),
            sources,
        }
    }

    /// Runs a registry write for `repository`, alone among hephy's writes to it, with retries.
    fn publish(
        &self,
        repository: &str,
        job: &Job<'_>,
        log: &Log,
        make: impl Fn() -> Command,
    ) -> Result<(), BuildahError> {
        let lock = {
            let mut map = self.repositories.lock().map_err(|_| BuildahError::Poisoned)?;
            Arc::clone(map.entry(repository.to_owned()).or_default())
        };
        let _held = lock.lock().map_err(|_| BuildahError::Poisoned)?;
        let mut attempt = 1;
        loop {
            let command = make();
            log.note(&format!("$ {}", shown(&command)));
            match process::run(command, job, log) {
                Ok(()) => return Ok(()),
                Err(e) if attempt < ATTEMPTS && !job.cancel.is_cancelled() => {
                    log.note(&format!("hephy: attempt {attempt} failed ({e}); retrying"));
                    std::thread::sleep(Duration::from_millis(
                        500 * u64::from(attempt * attempt + attempt - 1),
                    ));
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("buildah");
        command
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot);
        command
    }

    /// The `bud` command for one platform build (also what `hephy` shows in the node's log).
    pub(crate) fn bud_command(
        &self,
        model: &Model,
        image: &Image,
        job: &Job<'_>,
        build: &Bud<'_>,
    ) -> Command {
        let Bud { context, local_tag, iidfile, secrets, metadata, contexts } = *build;
        let (node, deps) = (job.node, &job.deps);
        let mut command = self.command();
        command.args(["bud", "--isolation", "chroot", "--timestamp", "0", "--pull=true"]);
        if let Some(platform) = &node.platform {
            command.arg("--platform").arg(platform.to_string());
        }
        if reference::insecure(model.registry.as_deref()) {
            command.arg("--tls-verify=false");
        }
        // With `HEPHY_BUILDAH_LAYER_CACHE=1`, the layer cache in the registry's cache
        // repository, beside hephy's records: a fresh runner reruns only the steps after the
        // first changed one. Opt-in: with `--layers`, buildah 1.28 pushes a build whose
        // Dockerfile changed only in a comment under another digest, which defeats early cutoff.
        // Not with secrets: buildah's layer keys do not cover a secret's value.
        if let Some(registry) = &model.registry
            && secrets.is_empty()
            && std::env::var_os("HEPHY_BUILDAH_LAYER_CACHE").is_some_and(|v| v == "1")
        {
            let cache = crate::registry::records::repository(registry);
            command.arg("--layers").arg("--cache-from").arg(&cache).arg("--cache-to").arg(&cache);
        }
        command.arg("-f").arg(context.join(&image.dockerfile));
        if let Some(target) = &node.target {
            command.arg("--target").arg(target);
        }
        for (name, value) in &image.args {
            command.arg("--build-arg").arg(format!("{name}={value}"));
        }
        for (arg, value) in reference::injected(model, &self.sources.release, node, deps) {
            command.arg("--build-arg").arg(format!("{arg}={value}"));
        }
        for (name, value) in contexts {
            command.arg("--build-context").arg(format!("{name}={value}"));
        }
        for (name, file) in secrets {
            command.arg("--secret").arg(format!("id={name},src={}", file.path().display()));
        }
        for (flag, name, value) in metadata {
            command.arg(flag).arg(format!("{name}={value}"));
        }
        command.arg("--iidfile").arg(iidfile).arg("-t").arg(local_tag).arg(context);
        command
    }

    /// Builds one platform of an image and (with a registry) pushes it. A build that failed
    /// because buildah could not start a `RUN` step for a transient reason of its own is built
    /// again, once.
    pub(crate) fn build(
        &self,
        model: &Model,
        image: &Image,
        job: &Job<'_>,
        oci: &crate::builders::oci::Oci,
    ) -> Outcome {
        let log = match Log::create(job) {
            Ok(log) => log,
            Err(e) => return Outcome::failed(e),
        };
        let context = match self.sources.context(job.root, image) {
            Ok(context) => context,
            Err(e) => return Outcome::failed(e),
        };
        let scratch = match tempdir(job) {
            Ok(dir) => dir,
            Err(e) => return Outcome::failed(e),
        };
        let iidfile = scratch.join("iid");
        let digestfile = scratch.join("digest");
        let local_tag = reference::local(job.node, job.key);
        // Secrets go to buildah as files only it can read (`--secret id=…,src=…`), deleted when
        // the build ends: never a build arg, never on a command line.
        let secrets = match crate::secret_files(model, &image.secrets) {
            Ok(files) => files,
            Err(e) => return Outcome::failed(e),
        };
        let upstream = match &image.source {
            hephy_dsl::ImageSource::Git { url, reference, .. } => self.sources.commit(url, reference).ok(),
            hephy_dsl::ImageSource::Context { .. } => None,
        };
        let rendered = reference::metadata(
            model,
            &self.sources.release,
            job.node,
            Some(job.key),
            upstream.as_deref(),
            true,
        )
        .map(|l| l.into_iter().map(|(k, v)| ("--label", k, v)).collect::<Vec<_>>())
        .and_then(|mut all| {
            let annotations = reference::metadata(
                model,
                &self.sources.release,
                job.node,
                Some(job.key),
                upstream.as_deref(),
                false,
            )?;
            all.extend(annotations.into_iter().map(|(k, v)| ("--annotation", k, v)));
            Ok(all)
        });
        let metadata = match rendered {
            Ok(metadata) => metadata,
            Err(e) => return Outcome::failed(e),
        };
        let contexts = match crate::builders::named_contexts(model, image, job, &self.sources) {
            Ok(contexts) => contexts,
            Err(e) => return Outcome::failed(e),
        };
        let spec = Bud {
            contexts: &contexts,
            context: &context,
            local_tag: &local_tag,
            iidfile: &iidfile,
            secrets: &secrets,
            metadata: &metadata,
        };
        for attempt in 1.. {
            let bud = self.bud_command(model, image, job, &spec);
            log.note(&format!("$ {}", shown(&bud)));
            let Err(e) = process::run(bud, job, &log) else { break };
            if attempt > 1 || !transient(&job.log) {
                return Outcome::failed(e);
            }
            log.note("buildah failed re-executing itself for RUN (`sealing memfd copy`, a race in it, not the build): building again, once");
        }
        let Some(registry) = &model.registry else {
            return match read_digest(&iidfile) {
                Ok(id) => Outcome::Built(id),
                Err(e) => Outcome::failed(e),
            };
        };
        let destination = format!(
            "docker://{}:{}",
            reference::repository(model, &self.sources.release, job.node),
            reference::key_tag(job.key)
        );
        let repository = reference::repository(model, &self.sources.release, job.node);
        let insecure = reference::insecure(Some(registry));
        let pushed = self.publish(&repository, job, &log, || {
            let mut push = self.command();
            push.arg("push");
            if insecure {
                push.arg("--tls-verify=false");
            }
            push.arg("--digestfile").arg(&digestfile).arg(&local_tag).arg(&destination);
            push
        });
        if let Err(e) = pushed {
            return Outcome::failed(BuildahError::Push {
                registry: registry.to_string(),
                source: Box::new(e),
            });
        }
        // The same build to each mirror (its index is pushed there by the manifest node).
        for (mirror, mirror_repository) in model
            .mirrors_of(image)
            .iter()
            .zip(reference::repositories(model, &self.sources.release, job.node).into_iter().skip(1))
        {
            let destination = format!("docker://{mirror_repository}:{}", reference::key_tag(job.key));
            let insecure = reference::insecure(Some(mirror));
            let pushed = self.publish(&mirror_repository, job, &log, || {
                let mut push = self.command();
                push.arg("push");
                if insecure {
                    push.arg("--tls-verify=false");
                }
                push.arg(&local_tag).arg(&destination);
                push
            });
            if let Err(e) = pushed {
                return Outcome::failed(BuildahError::Push {
                    registry: mirror.to_string(),
                    source: Box::new(e),
                });
            }
        }
        // The local copy stays: a concurrent build may be using the same image (a dependent
        // pulls it back by digest), and it is the layer cache of the next build.
        let digest = match read_digest(&digestfile) {
            Ok(digest) => digest,
            Err(e) => return Outcome::failed(e),
        };
        // Its key's record in the cache repository (a fresh runner finds the build by it).
        let stop = process::stop(job);
        if let Err(e) =
            oci.write_record(model, job.node, job.key, &digest, &stop, &|line: &str| log.note(line))
        {
            return Outcome::failed(e);
        }
        match oci.platform_tag(model, job) {
            Ok(Some(tag)) => {
                for repository in reference::repositories(model, &self.sources.release, job.node) {
                    if let Err(e) = oci.copy_tag(&repository, &digest, &tag) {
                        return Outcome::failed(e);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => return Outcome::failed(e),
        }
        Outcome::Built(digest)
    }
}

/// The "index" of builds that stay in a builder's own storage (no registry): the list of
/// platform outputs, hashed.
pub(crate) fn local_index(job: &Job<'_>) -> Outcome {
    let outputs: Vec<&str> = job.deps.iter().map(|(_, o)| o.as_str()).collect();
    Outcome::Built(format!(
        "{}{}",
        crate::builders::oci::LOCAL_OUTPUT,
        blake3::hash(outputs.join("\n").as_bytes()).to_hex()
    ))
}

/// A tag of a local "index": nothing to move, its output is the index's.
pub(crate) fn local_tag(job: &Job<'_>) -> Outcome {
    match job.deps.first() {
        Some((_, index)) => Outcome::Built(index.clone()),
        None => Outcome::failed(BuildahError::NoIndex),
    }
}

fn tempdir(job: &Job<'_>) -> Result<PathBuf, BuildahError> {
    let dir = job.log.with_extension("work");
    std::fs::create_dir_all(&dir).map_err(|source| BuildahError::Scratch { path: dir.clone(), source })?;
    Ok(dir)
}

fn read_digest(path: &Path) -> Result<String, BuildahError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| BuildahError::NoDigestFile { path: path.to_path_buf(), source })?;
    let digest = text.trim();
    let digest = if digest.contains(':') { digest.to_owned() } else { format!("sha256:{digest}") };
    if digest.len() == 71 && digest.starts_with("sha256:") {
        Ok(digest)
    } else {
        Err(BuildahError::BadDigest { path: path.to_path_buf(), text })
    }
}

/// Whether the build logged at `log` failed the way buildah 1.28's chroot `RUN` sometimes does
/// under load: sealing the in-memory copy of itself it re-executes (`Close_Fd sealing memfd
/// copy: Device or resource busy`), before any of the Dockerfile's commands ran.
fn transient(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .is_ok_and(|text| text.contains("sealing memfd copy: Device or resource busy"))
}
