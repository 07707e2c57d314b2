//! The `ko` builder: Go applications built by `ko build`, no Dockerfile (settings: `ko`, `ko-env`).

use crate::builders::{Builder, Capabilities, ImageBuilder, Rendered, Request, path};

/// ko: no Dockerfile; its image reference names the digest.
pub(crate) struct Ko;

impl ImageBuilder for Ko {
    fn kind(&self) -> Builder {
        Builder::Ko
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    fn render(&self, r: &Request) -> Option<Rendered> {
        let mut args: Vec<String> = Vec::new();
        let mut env = Vec::new();
        let mut dir = None;
        let (repository, tag) = r.destination.rsplit_once(':').unwrap_or((&r.destination, "latest"));
        // With settings, ko runs in the context (an import path like `./cmd/app` is relative
        // to it) and reads hephy's `.ko.yaml` ([`crate::builders::ko_config`]) beside the digest file.
        let package = match &r.ko {
            Some(ko) => {
                dir = Some(r.context.clone());
                if ko.base_image.is_some() || ko.ldflags.is_some() || !ko.env.is_empty() {
                    let config = r.digest_file.parent().map_or_else(|| ".".to_owned(), path);
                    env.push(("KO_CONFIG_PATH".to_owned(), config));
                }
                ko.import_path.clone().unwrap_or_else(|| ".".to_owned())
            }
            None => path(&r.context),
        };
        args.extend([
            "build".to_owned(),
            package,
            format!("--platform={}", r.platform),
            "--bare".to_owned(),
            format!("--tags={tag}"),
            format!("--image-refs={}", path(&r.digest_file)),
        ]);
        env.push(("KO_DOCKER_REPO".to_owned(), repository.to_owned()));
        if r.insecure {
            args.push("--insecure-registry".to_owned());
        }
        Some(Rendered { program: "ko".to_owned(), args, env, dir })
    }

    fn digest(&self, left: &str) -> Option<String> {
        left.trim().rsplit_once('@').map(|(_, d)| d.to_owned())
    }
}
