//! The `kaniko` builder: kaniko's executor, run as `/kaniko/executor` (here, or as a Kubernetes Job).

use crate::builders::{Builder, Capabilities, ImageBuilder, Rendered, Request, path};

/// kaniko: `RUN` but not `RUN --mount`, no named contexts, labels only.
pub(crate) struct Kaniko;

impl ImageBuilder for Kaniko {
    fn kind(&self) -> Builder {
        Builder::Kaniko
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { dockerfile: true, run: true, add_url: true, labels: true, ..Capabilities::NONE }
    }

    fn render(&self, r: &Request) -> Option<Rendered> {
        let mut args: Vec<String> = Vec::new();
        args.extend([
            format!("--context=dir://{}", path(&r.context)),
            format!("--dockerfile={}", path(&r.dockerfile)),
            format!("--destination={}", r.destination),
            format!("--custom-platform={}", r.platform),
            format!("--digest-file={}", path(&r.digest_file)),
            "--reproducible".to_owned(),
        ]);
        if let Some(t) = &r.target {
            args.push(format!("--target={t}"));
        }
        for (k, v) in &r.build_args {
            args.push(format!("--build-arg={k}={v}"));
        }
        for (k, v) in &r.labels {
            args.push(format!("--label={k}={v}"));
        }
        if r.insecure {
            args.extend(["--insecure".to_owned(), "--insecure-pull".to_owned()]);
        }
        Some(Rendered { program: "/kaniko/executor".to_owned(), args, env: Vec::new(), dir: None })
    }

    fn digest(&self, left: &str) -> Option<String> {
        Some(left.trim().to_owned())
    }
}
