//! The `buildx` builder: `docker buildx build`.

use crate::builders::{
    Builder, Capabilities, Frontend, ImageBuilder, Rendered, Request, metadata_digest, path,
};

/// buildx: the whole Dockerfile, custom frontends included; labels and annotations.
pub(crate) struct Buildx;

impl ImageBuilder for Buildx {
    fn kind(&self) -> Builder {
        Builder::Buildx
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
            annotations: true,
            ..Capabilities::NONE
        }
    }

    fn render(&self, r: &Request) -> Option<Rendered> {
        let mut args: Vec<String> = Vec::new();
        let mut env = Vec::new();
        args.extend([
            "buildx".to_owned(),
            "build".to_owned(),
            "--platform".to_owned(),
            r.platform.clone(),
            "--file".to_owned(),
            path(&r.dockerfile),
            "--tag".to_owned(),
            r.destination.clone(),
            "--push".to_owned(),
            "--metadata-file".to_owned(),
            path(&r.digest_file),
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
        for (id, file) in &r.secrets {
            args.extend(["--secret".to_owned(), format!("id={id},src={}", path(file))]);
        }
        for (k, v) in &r.labels {
            args.extend(["--label".to_owned(), format!("{k}={v}")]);
        }
        for (k, v) in &r.annotations {
            args.extend(["--annotation".to_owned(), format!("{k}={v}")]);
        }
        args.push(path(&r.context));
        env.push(("SOURCE_DATE_EPOCH".to_owned(), "0".to_owned()));
        Some(Rendered { program: "docker".to_owned(), args, env, dir: None })
    }

    fn digest(&self, left: &str) -> Option<String> {
        metadata_digest(left)
    }
}
