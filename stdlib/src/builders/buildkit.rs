//! The `buildkit` builder: BuildKit through `buildctl` (here, or against a BuildKit executor's daemon).

use crate::builders::{
    Builder, Capabilities, Frontend, ImageBuilder, Rendered, Request, metadata_digest, path,
};

/// BuildKit: the whole Dockerfile, custom frontends included; labels only.
pub(crate) struct Buildkit;

impl ImageBuilder for Buildkit {
    fn kind(&self) -> Builder {
        Builder::Buildkit
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dockerfile: true,
            run: true,
            run_mount: true,
            add_url: true,
            frontend: Frontend::Runs,
            named_contexts: true,
            context_kinds: crate::builders::ALL_CONTEXT_KINDS,
            labels: true,
            ..Capabilities::NONE
        }
    }

    fn render(&self, r: &Request) -> Option<Rendered> {
        let mut args: Vec<String> = Vec::new();
        let mut env = Vec::new();
        let dockerfile_dir = r.dockerfile.parent().map_or_else(|| path(&r.context), path);
        let filename = r
            .dockerfile
            .file_name()
            .map_or_else(|| "Dockerfile".to_owned(), |f| f.to_string_lossy().into_owned());
        args.extend([
            "build".to_owned(),
            "--frontend".to_owned(),
            "dockerfile.v0".to_owned(),
            "--local".to_owned(),
            format!("context={}", path(&r.context)),
            "--local".to_owned(),
            format!("dockerfile={dockerfile_dir}"),
            "--opt".to_owned(),
            format!("filename={filename}"),
            "--opt".to_owned(),
            format!("platform={}", r.platform),
        ]);
        if let Some(t) = &r.target {
            args.extend(["--opt".to_owned(), format!("target={t}")]);
        }
        for (k, v) in &r.build_args {
            args.extend(["--opt".to_owned(), format!("build-arg:{k}={v}")]);
        }
        for (k, v) in &r.labels {
            args.extend(["--opt".to_owned(), format!("label:{k}={v}")]);
        }
        for (name, value) in &r.contexts {
            if let Some(rest) = value.strip_prefix(crate::builders::LAYOUT_SCHEME) {
                // `buildctl` takes a layout as a store of its own, named like the context.
                let (dir, digest) = rest.rsplit_once('@').unwrap_or((rest, ""));
                args.extend(["--oci-layout".to_owned(), format!("{name}={dir}")]);
                args.extend(["--opt".to_owned(), format!("context:{name}=oci-layout://{name}@{digest}")]);
            } else if value.starts_with('/') {
                args.extend(["--local".to_owned(), format!("{name}={value}")]);
                args.extend(["--opt".to_owned(), format!("context:{name}=local:{name}")]);
            } else {
                args.extend(["--opt".to_owned(), format!("context:{name}={value}")]);
            }
        }
        for (id, file) in &r.secrets {
            args.extend(["--secret".to_owned(), format!("id={id},src={}", path(file))]);
        }
        let insecure = if r.insecure { ",registry.insecure=true" } else { "" };
        args.extend([
            "--output".to_owned(),
            format!("type=image,name={},push=true,rewrite-timestamp=true{insecure}", r.destination),
            "--metadata-file".to_owned(),
            path(&r.digest_file),
        ]);
        env.push(("SOURCE_DATE_EPOCH".to_owned(), "0".to_owned()));
        Some(Rendered { program: "buildctl".to_owned(), args, env, dir: None })
    }

    fn digest(&self, left: &str) -> Option<String> {
        metadata_digest(left)
    }
}
