//! Running a builder other than buildah: render its command, run it, read the digest it left.

use std::process::Command;

use hephy_dsl::{Image, Model};
use hephy_engine::{Job, Outcome};

use crate::builders::{self, Builder, Request};
use crate::process::{self, Log};
use crate::reference;

pub(crate) fn build(
    builder: Builder,
    model: &Model,
    image: &Image,
    job: &Job<'_>,
    oci: &crate::oci::Oci,
) -> Outcome {
    let fail = |message: String| Outcome::Failed { message };
    let Some(registry) = &model.registry else {
        return fail(format!("{} pushes what it builds: the graph needs a `registry`", builder.name()));
    };
    let log = match Log::create(job) {
        Ok(log) => log,
        Err(e) => return fail(e),
    };
    let work = job.log.with_extension("work");
    if let Err(e) = std::fs::create_dir_all(&work) {
        return fail(format!("cannot create `{}`: {e}", work.display()));
    }
    let context = match oci.sources().context(job.root, image) {
        Ok(context) => std::path::absolute(&context).unwrap_or(context),
        Err(e) => return fail(e),
    };
    let mut build_args: Vec<(String, String)> =
        image.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    build_args.extend(reference::injected(model, job.node, &job.deps));
    let request = Request {
        dockerfile: context.join(&image.dockerfile),
        context,
        platform: job.node.platform.as_ref().map(ToString::to_string).unwrap_or_default(),
        target: job.node.target.clone(),
        build_args,
        destination: format!("{}:{}", reference::repository(model, job.node), reference::key_tag(job.key)),
        insecure: reference::insecure(Some(registry)),
        digest_file: work.join("digest"),
    };
    let Some(rendered) = builders::render(builder, &request) else {
        return fail(format!("{} runs no external command", builder.name()));
    };
    let mut command = Command::new(&rendered.program);
    command.args(&rendered.args).envs(rendered.env.iter().map(|(k, v)| (k, v))).current_dir(job.root);
    log.note(&format!("$ {}", process::shown(&command)));
    if let Err(e) = process::run(command, job, &log) {
        return fail(e);
    }
    let left = if builder == Builder::Spin {
        std::fs::read_to_string(&job.log)
    } else {
        std::fs::read_to_string(&request.digest_file)
    };
    let digest = match left.map_err(|e| e.to_string()).and_then(|text| builders::read_digest(builder, &text))
    {
        Ok(digest) => digest,
        Err(e) => return fail(e),
    };
    let repository = reference::repository(model, job.node);
    if let Some(tag) = oci.platform_tag(model, job)
        && let Err(e) = oci.copy_tag(&repository, &digest, &tag)
    {
        return fail(e);
    }
    Outcome::Built { output: digest }
}
