//! Paths in the graph: relative, normalized, existing, and inside the graph's folder.

use super::*;

impl Analyzer<'_> {
    pub(super) fn local_context(
        &mut self,
        ctx: &Text,
        dir: &str,
        dockerfile: &str,
        dockerfile_text: Option<&Text>,
        needs_dockerfile: bool,
    ) {
        let path = self.root.join(dir);
        if !path.is_dir() {
            self.sink.push(
                Problem::new(Code::MissingPath, format!("context folder `{dir}` does not exist"))
                    .label(ctx.span, "no such folder")
                    .help("the context is a folder relative to the graph file; create it or fix the path"),
            );
            return;
        }
        if !self.stays_inside(&path) {
            self.sink.push(
                Problem::new(Code::PathEscapes, format!("context `{dir}` leads outside the graph's folder"))
                    .label(ctx.span, "resolves (through a symlink) outside the graph's folder")
                    .help("keep build contexts inside the repository"),
            );
            return;
        }
        let file = path.join(dockerfile);
        if !needs_dockerfile && dockerfile_text.is_none() {
            return;
        }
        if let Some(kind) = std::fs::metadata(&file).ok().and_then(|m| special_kind(m.file_type())) {
            self.sink.push(
                Problem::new(
                    Code::InvalidValue,
                    format!("Dockerfile `{dir}/{dockerfile}` is a {kind}, not a file"),
                )
                .label(dockerfile_text.map_or(ctx.span, |d| d.span), format!("a {kind}"))
                .help(
                    "a Dockerfile is a regular file: replace it with one, or name another with `dockerfile`",
                ),
            );
        } else if !file.is_file() {
            let problem =
                Problem::new(Code::MissingPath, format!("Dockerfile `{dir}/{dockerfile}` does not exist"));
            let problem = match dockerfile_text {
                Some(d) => problem
                    .label(d.span, "no such file in the context")
                    .help("`dockerfile` is relative to the context folder"),
                None => problem
                    .label(ctx.span, "this folder has no `Dockerfile`")
                    .help("add a Dockerfile to the folder, or name it with `dockerfile`"),
            };
            self.sink.push(problem);
        } else if !self.stays_inside(&file) {
            self.sink.push(
                Problem::new(
                    Code::PathEscapes,
                    format!("Dockerfile `{dir}/{dockerfile}` leads outside the graph's folder"),
                )
                .label(dockerfile_text.map_or(ctx.span, |d| d.span), "resolves outside the graph's folder")
                .help("keep Dockerfiles inside the repository"),
            );
        }
    }

    pub(super) fn stays_inside(&self, path: &Path) -> bool {
        match (&self.canonical_root, path.canonicalize()) {
            (Some(root), Ok(path)) => path.starts_with(root),
            _ => true,
        }
    }

    /// A relative path that stays inside its folder, normalized to `/`-separated form.
    pub(super) fn relative(&mut self, text: &Text, what: &str) -> Option<String> {
        match normalize(text) {
            Ok(path) => Some(path),
            Err(why) => {
                self.sink.push(
                    Problem::new(Code::PathEscapes, format!("{what} path `{}` {why}", text.value))
                        .label(text.span, "leaves the graph's folder")
                        .help("paths are relative to the graph file's folder and must stay inside it"),
                );
                None
            }
        }
    }
}

/// What a path that is neither a regular file nor a folder is (`None` for those: a folder
/// where the Dockerfile should be is reported as no Dockerfile).
fn special_kind(kind: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(if kind.is_file() || kind.is_dir() {
        return None;
    } else if kind.is_fifo() {
        "FIFO (named pipe)"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    })
}
