//! External named build contexts of images (`build-context "NAME" image=… | path=… | git=… |
//! oci-layout=…`): their names, their one source each, and that a folder stays inside the graph.

use super::*;
use crate::document::BuildContextDraft;
use crate::model::{BuildContext, ContextSource};

/// The keys that name a context's source; exactly one is given.
const SOURCES: [&str; 4] = ["image", "path", "git", "oci-layout"];

impl Analyzer<'_> {
    /// The image's external named contexts, sorted by name; problems reported.
    pub(super) fn build_contexts(&mut self, image: &ImageDraft) -> Vec<BuildContext> {
        let mut out: Vec<BuildContext> = Vec::new();
        for (i, draft) in image.build_contexts.iter().enumerate() {
            let name = &draft.name;
            if !valid_context(name) {
                self.sink.push(
                    Problem::new(Code::InvalidName, format!("`{}` is not a build context name", name.value))
                        .label(name.span, "invalid name")
                        .help("a named context is what the Dockerfile writes after `FROM` or `COPY --from=`: lower-case letters, digits, `.`, `_`, `-` and `/`"),
                );
                continue;
            }
            if let Some(first) = image.build_contexts[..i].iter().find(|c| c.name.value == name.value) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("build context `{}` is given twice", name.value))
                        .label(name.span, "given again here")
                        .label(first.name.span, "first given here")
                        .help("give each build context once, or give the second another name"),
                );
                continue;
            }
            if let Some(context) = image
                .deps
                .iter()
                .filter_map(|d| d.from.as_ref()?.context.as_ref())
                .find(|c| c.value == name.value)
            {
                self.sink.push(
                    Problem::new(
                        Code::Conflict,
                        format!(
                            "named context `{}` is both a `build-context` and a `from` dependency",
                            name.value
                        ),
                    )
                    .label(name.span, "an external context here")
                    .label(context.span, "and a graph image's context here")
                    .help("remove one of the two, or give one of them another name"),
                );
                continue;
            }
            if let Some(source) = self.context_source(draft) {
                out.push(BuildContext { name: name.clone(), source });
            }
        }
        out.sort_by(|a, b| a.name.value.cmp(&b.name.value));
        out
    }

    /// What one `build-context` reads: exactly one source, and only the keys that source takes.
    fn context_source(&mut self, draft: &BuildContextDraft) -> Option<ContextSource> {
        let given: Vec<(&str, &Text)> = SOURCES
            .into_iter()
            .zip([&draft.image, &draft.path, &draft.git, &draft.oci_layout])
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect();
        let (kind, value) = match given.as_slice() {
            [] => {
                self.sink.push(
                    Problem::new(Code::Missing, format!("build context `{}` names no source", draft.name.value))
                        .label(draft.span, "no `image`, `path`, `git` or `oci-layout`")
                        .help_for("give one of `image=\"ubuntu:noble\"`, `path=\"src\"`, `git=\"URL\" ref=\"…\"` or `oci-layout=\"DIR\" ref=\"TAG\"`", "give one of `image: ubuntu:noble`, `path: src`, `git: URL` (and `ref: …`) or `oci-layout: DIR` (and `ref: TAG`)"),
                );
                return None;
            }
            [one] => *one,
            [(first, a), (second, b), ..] => {
                self.sink.push(
                    Problem::new(
                        Code::Conflict,
                        format!(
                            "build context `{}` names two sources, `{first}` and `{second}`",
                            draft.name.value
                        ),
                    )
                    .label(a.span, "one source")
                    .label(b.span, "another")
                    .help("a build context reads one source: keep one of them"),
                );
                return None;
            }
        };
        if let Some(dir) = &draft.dir
            && kind != "git"
        {
            self.sink.push(
                Problem::new(Code::Conflict, "`dir` applies only to a `git` build context")
                    .label(dir.span, format!("this context is `{kind}`"))
                    .help("remove `dir`, or give the folder in the path itself"),
            );
        }
        match kind {
            "image" => {
                if let Some(problem) = image_reference_problem(value) {
                    self.sink.push(
                        Problem::new(Code::InvalidValue, format!("`{}` is not an image reference", value.value))
                            .label(value.span, problem)
                            .help("write a reference such as `ubuntu:noble-20250529` or `quay.io/centos/centos:stream9` (no scheme)"),
                    );
                    return None;
                }
                self.no_ref(draft, kind);
                Some(ContextSource::Image { reference: value.value.clone() })
            }
            "path" => {
                self.no_ref(draft, kind);
                let dir = self.relative(value, "build context")?;
                self.context_folder(value, &dir, "build context folder")?;
                Some(ContextSource::Path(PathBuf::from(dir)))
            }
            "git" => {
                if !valid_git_url(value) {
                    self.sink.push(
                        Problem::new(Code::InvalidValue, format!("`{}` is not a git URL", value.value))
                            .label(value.span, "expected https://, ssh://, git://, file:// or user@host:path")
                            .help("give the repository's URL, e.g. `https://github.com/org/tools`"),
                    );
                    return None;
                }
                let dir = match &draft.dir {
                    Some(d) => Some(self.relative(d, "`dir`")?).filter(|d| d != "."),
                    None => None,
                };
                Some(ContextSource::Git {
                    url: value.value.clone(),
                    reference: draft.reference.as_ref().map(|r| r.value.clone()),
                    dir,
                })
            }
            _ => {
                let Some(reference) = &draft.reference else {
                    self.sink.push(
                        Problem::new(
                            Code::Missing,
                            format!("build context `{}` needs the `ref` of its image in the layout", draft.name.value),
                        )
                        .label(draft.span, "no `ref` given")
                        .help_for("add `ref=\"TAG\"` (the layout's `org.opencontainers.image.ref.name`) or `ref=\"sha256:…\"`", "add `ref: TAG` (the layout's `org.opencontainers.image.ref.name`) or `ref: \"sha256:…\"`"),
                    );
                    return None;
                };
                let dir = self.relative(value, "OCI layout")?;
                self.context_folder(value, &dir, "OCI layout folder")?;
                if !self.root.join(&dir).join("index.json").is_file() {
                    self.sink.push(
                        Problem::new(Code::MissingPath, format!("`{dir}` is not an OCI image layout"))
                            .label(value.span, "no `index.json` in this folder")
                            .help("name a folder written by `skopeo copy … oci:DIR:TAG` or `umoci init`"),
                    );
                    return None;
                }
                Some(ContextSource::OciLayout {
                    path: PathBuf::from(dir),
                    reference: reference.value.clone(),
                })
            }
        }
    }

    /// `ref` given to a context kind that has none.
    fn no_ref(&mut self, draft: &BuildContextDraft, kind: &str) {
        if let Some(r) = &draft.reference {
            let help = if kind == "image" {
                "write the tag or digest in the reference itself (`ubuntu:noble`, `ubuntu@sha256:…`)"
            } else {
                "remove `ref`: a folder is read as it is"
            };
            self.sink.push(
                Problem::new(Code::Conflict, "`ref` applies only to a `git` or `oci-layout` build context")
                    .label(r.span, format!("this context is `{kind}`"))
                    .help(help),
            );
        }
    }

    /// A folder that exists and stays inside the graph's folder.
    fn context_folder(&mut self, text: &Text, dir: &str, what: &str) -> Option<()> {
        let path = self.root.join(dir);
        if !path.is_dir() {
            self.sink.push(
                Problem::new(Code::MissingPath, format!("{what} `{dir}` does not exist"))
                    .label(text.span, "no such folder")
                    .help("the path is relative to the graph file; create the folder or fix the path"),
            );
            return None;
        }
        if !self.stays_inside(&path) {
            self.sink.push(
                Problem::new(Code::PathEscapes, format!("{what} `{dir}` leads outside the graph's folder"))
                    .label(text.span, "resolves (through a symlink) outside the graph's folder")
                    .help("keep build contexts inside the repository"),
            );
            return None;
        }
        Some(())
    }
}

/// Why `text` is not an image reference (`None`: it is one): no scheme, no spaces, a
/// lower-case repository, a valid tag or digest.
fn image_reference_problem(text: &str) -> Option<&'static str> {
    if text.contains("://") {
        return Some("a reference has no scheme (`docker-image://` is bake's, not hephy's)");
    }
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("empty, or holds a space");
    }
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest {
        let hex = digest.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Some("the digest is not `sha256:` and 64 lower-case hex digits");
        }
    }
    let (repository, tag) = match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !valid_tag(t)) {
        return Some("the tag is not a valid tag");
    }
    let mut parts = repository.split('/');
    let first = parts.next().unwrap_or_default();
    let first_is_host = repository.contains('/') && (first.contains(['.', ':']) || first == "localhost");
    let path_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    let ok = if first_is_host { valid_registry(repository) } else { repository.split('/').all(path_ok) };
    (!ok).then_some("not a repository name (lower-case letters, digits, `.`, `_`, `-`, `/`)")
}

#[cfg(test)]
mod tests {
    use super::image_reference_problem;

    #[test]
    fn image_references() {
        for good in [
            "ubuntu",
            "ubuntu:noble-20250529",
            "quay.io/centos/centos:stream9",
            "127.0.0.1:5000/base:1",
            "localhost/x",
            "golang@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(image_reference_problem(good), None, "{good}");
        }
        for bad in ["docker-image://ubuntu", "Ubuntu", "a b", "", "x@sha256:12", "x:bad tag", "x:-t"] {
            assert!(image_reference_problem(bad).is_some(), "{bad}");
        }
    }
}
