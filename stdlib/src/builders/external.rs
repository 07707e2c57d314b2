//! Running a builder other than buildah: render its command, run it, read the digest it left;
//! on a BuildKit executor, against that daemon; on a Kubernetes executor, as a kaniko Job.

use std::process::Command;

use hephy_dsl::{Image, Model};
use hephy_engine::{Job, Outcome};

use crate::builders::{self, Builder, Rendered, Request};
use crate::executors::engines;
use crate::executors::process::{self, Log};
use crate::registry::reference;

/// Where an external build runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Engine<'a> {
    /// Here: the builder's own command.
    Local,
    /// A BuildKit daemon at this address.
    Buildkit(&'a str),
    /// A kaniko Job in this Kubernetes namespace.
    Kubernetes(&'a str),
}

pub(crate) fn build(
    builder: Builder,
    model: &Model,
    image: &Image,
    job: &Job<'_>,
    oci: &crate::builders::oci::Oci,
    engine: Engine<'_>,
) -> Outcome {
    let Some(registry) = &model.registry else {
        return Outcome::failed(ExternalError::NoRegistry(builder));
    };
    let log = match Log::create(job) {
        Ok(log) => log,
        Err(e) => return Outcome::failed(e),
    };
    let work = job.log.with_extension("work");
    if let Err(source) = std::fs::create_dir_all(&work) {
        return Outcome::failed(ExternalError::Folder { path: work, source });
    }
    let context = match oci.sources().context(job.root, image) {
        Ok(context) => std::path::absolute(&context).unwrap_or(context),
        Err(e) => return Outcome::failed(e),
    };
    let mut build_args: Vec<(String, String)> =
        image.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    build_args.extend(reference::injected(model, &oci.sources().release, job.node, &job.deps));
    let contexts = match builders::named_contexts(model, image, job, oci.sources()) {
        Ok(contexts) => contexts,
        Err(e) => return Outcome::failed(e),
    };
    let upstream = match &image.source {
        hephy_dsl::ImageSource::Git { url, reference, .. } => oci.sources().commit(url, reference).ok(),
        hephy_dsl::ImageSource::Context { .. } => None,
    };
    let metadata = |labels| {
        reference::metadata(
            model,
            &oci.sources().release,
            job.node,
            Some(job.key),
            upstream.as_deref(),
            labels,
        )
    };
    let (labels, annotations) = match (metadata(true), metadata(false)) {
        (Ok(labels), Ok(annotations)) => (labels, annotations),
        (Err(e), _) | (_, Err(e)) => return Outcome::failed(e),
    };
    // Secret files live as long as this build (removed when dropped).
    let secret_files = match crate::secret_files(model, &image.secrets) {
        Ok(files) => files,
        Err(e) => return Outcome::failed(e),
    };
    let request = Request {
        dockerfile: context.join(&image.dockerfile),
        context,
        platform: job.node.platform.as_ref().map(ToString::to_string).unwrap_or_default(),
        target: job.node.target.clone(),
        build_args,
        destination: format!(
            "{}:{}",
            reference::repository(model, &oci.sources().release, job.node),
            reference::key_tag(job.key)
        ),
        insecure: reference::insecure(Some(registry)),
        digest_file: work.join("digest"),
        secrets: secret_files.iter().map(|(id, file)| (id.clone(), file.path().to_path_buf())).collect(),
        contexts,
        ko: image.ko.clone(),
        labels,
        annotations,
    };
    if let Some(config) = image.ko.as_ref().and_then(builders::ko_config)
        && let Err(source) = std::fs::write(work.join(".ko.yaml"), config)
    {
        return Outcome::failed(ExternalError::Write { path: work.join(".ko.yaml"), source });
    }
    let built = match engine {
        Engine::Local => run_builder(builder, &request, job, &log),
        Engine::Buildkit(addr) => {
            run_rendered(&engines::buildkit(addr, &request), job, &log).and_then(|()| {
                let text =
                    std::fs::read_to_string(&request.digest_file).map_err(ExternalError::Unreadable)?;
                Ok(builders::read_digest(Builder::Buildkit, &text)?)
            })
        }
        Engine::Kubernetes(namespace) => {
            run_kubernetes(namespace, &request, &image.dockerfile, &work, job, &log)
        }
    };
    let digest = match built {
        Ok(digest) => digest,
        Err(e) => return Outcome::failed(e),
    };
    // Its key's record in the cache repository (a fresh runner finds the build by it).
    let stop = crate::executors::process::stop(job);
    if let Err(e) = oci.write_record(model, job.node, job.key, &digest, &stop, &|line: &str| log.note(line)) {
        return Outcome::failed(e);
    }
    let repository = reference::repository(model, &oci.sources().release, job.node);
    match oci.platform_tag(model, job) {
        Ok(Some(tag)) => {
            if let Err(e) = oci.copy_tag(&repository, &digest, &tag) {
                return Outcome::failed(e);
            }
        }
        Ok(None) => {}
        Err(e) => return Outcome::failed(e),
    }
    Outcome::Built(digest)
}

/// An external builder's build that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExternalError {
    /// The builder pushes what it builds, and the graph names no registry.
    #[error("{} pushes what it builds: the graph needs a `registry`", .0.name())]
    NoRegistry(Builder),
    /// The node's work folder cannot be made.
    #[error("cannot create `{}`: {source}", path.display())]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The builder has no command of its own.
    #[error("{0} runs no external command")]
    NoCommand(Builder),
    /// Its command (or a step of the Kubernetes Job) failed.
    #[error(transparent)]
    Command(#[from] process::CommandFailed),
    /// The file it writes its digest to cannot be read.
    #[error("{0}")]
    Unreadable(std::io::Error),
    /// It left no digest.
    #[error(transparent)]
    NoDigest(#[from] builders::NoDigest),
    /// The build context cannot be listed (the `oci` builder's reading of it).
    #[error("{0}")]
    Context(hephy_engine::FilesError),
    /// The context tar for the Kubernetes Job cannot be written.
    #[error("cannot pack the build context: {0}")]
    Pack(std::io::Error),
    /// The Job's manifest cannot be written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Job started no pod.
    #[error("the Job has no pod")]
    NoPod,
}

fn run_rendered(rendered: &Rendered, job: &Job<'_>, log: &Log) -> Result<(), ExternalError> {
    let mut command = Command::new(&rendered.program);
    command
        .args(&rendered.args)
        .envs(rendered.env.iter().map(|(k, v)| (k, v)))
        .current_dir(rendered.dir.as_deref().unwrap_or(job.root));
    log.note(&format!("$ {}", process::shown(&command)));
    Ok(process::run(command, job, log)?)
}

fn run_builder(
    builder: Builder,
    request: &Request,
    job: &Job<'_>,
    log: &Log,
) -> Result<String, ExternalError> {
    let implementation = builders::builder(builder);
    let rendered = implementation.and_then(|b| b.render(request)).ok_or(ExternalError::NoCommand(builder))?;
    run_rendered(&rendered, job, log)?;
    let left = if implementation.is_some_and(|b| b.digest_in_log()) {
        std::fs::read_to_string(&job.log)
    } else {
        std::fs::read_to_string(&request.digest_file)
    };
    Ok(builders::read_digest(builder, &left.map_err(ExternalError::Unreadable)?)?)
}

/// A kaniko Job: the context as a tar, the Job applied, the context copied in, the digest read
/// from the finished container.
fn run_kubernetes(
    namespace: &str,
    request: &Request,
    dockerfile: &str,
    work: &std::path::Path,
    job: &Job<'_>,
    log: &Log,
) -> Result<String, ExternalError> {
    let files = engines::KubernetesFiles::in_dir(work);
    let context_files =
        crate::builders::oci::context_files(&request.context, dockerfile).map_err(ExternalError::Context)?;
    write_context_tar(&request.context, &context_files, &files.context).map_err(ExternalError::Pack)?;
    let name = engines::job_name(job.node.id.as_str(), &job.key.hex());
    let manifest = engines::kubernetes_job(namespace, &name, request, dockerfile);
    let bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ExternalError::Write { path: files.job.clone(), source: std::io::Error::other(e) })?;
    std::fs::write(&files.job, bytes)
        .map_err(|source| ExternalError::Write { path: files.job.clone(), source })?;
    let mut pod = String::new();
    for (i, step) in
        engines::kubernetes_steps(namespace, &name, &files.job, &files.context).into_iter().enumerate()
    {
        let mut step = step;
        for arg in &mut step.args {
            if arg == "POD" {
                arg.clone_from(&pod);
            } else if let Some(rest) = arg.strip_prefix("POD:") {
                *arg = format!("{pod}:{rest}");
            }
        }
        run_rendered(&step, job, log)?;
        if i == 2 {
            pod = log.marker("pod=").filter(|p| !p.is_empty()).ok_or(ExternalError::NoPod)?;
        }
    }
    let digest = log.marker("digest=").unwrap_or_default();
    Ok(builders::read_digest(Builder::Kaniko, &digest)?)
}

fn write_context_tar(
    context: &std::path::Path,
    files: &[String],
    out: &std::path::Path,
) -> std::io::Result<()> {
    let file = std::fs::File::create(out)?;
    let gzip = flate2::GzBuilder::new().mtime(0).write(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    tar.follow_symlinks(false);
    for path in files {
        tar.append_path_with_name(context.join(path), path)?;
    }
    tar.into_inner()?.finish()?.sync_all()
}
