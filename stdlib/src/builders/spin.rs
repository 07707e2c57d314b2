//! The `spin` builder: WebAssembly applications pushed by `spin registry push`, no Dockerfile.

use crate::builders::{Builder, Capabilities, ImageBuilder, Rendered, Request, path};

/// spin: no Dockerfile; it prints the digest it pushed.
pub(crate) struct Spin;

impl ImageBuilder for Spin {
    fn kind(&self) -> Builder {
        Builder::Spin
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    fn render(&self, r: &Request) -> Option<Rendered> {
        let mut args: Vec<String> = Vec::new();
        args.extend([
            "registry".to_owned(),
            "push".to_owned(),
            "--from".to_owned(),
            path(&r.context.join("spin.toml")),
        ]);
        if r.insecure {
            args.push("--insecure".to_owned());
        }
        args.push(r.destination.clone());
        Some(Rendered { program: "spin".to_owned(), args, env: Vec::new(), dir: None })
    }

    fn digest(&self, left: &str) -> Option<String> {
        left.lines().find_map(|l| l.split_once("Pushed with digest ").map(|(_, d)| d.trim().to_owned()))
    }

    fn digest_in_log(&self) -> bool {
        true
    }
}
