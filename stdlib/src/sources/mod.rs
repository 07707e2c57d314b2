//! Where builds come from beyond the graph's folder, resolved when planning: upstream git
//! repositories at a ref ([`git`]) and base images from registries ([`bases`]).

pub(crate) mod bases;
pub(crate) mod git;
pub(crate) mod reads;

use std::path::{Path, PathBuf};

/// Where an image's build context is: a local folder, or a checkout of its upstream commit.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub(crate) state_dir: PathBuf,
    pub(crate) upstreams: git::Upstreams,
    /// The plan's release information (HEAD, its tag, the branch, the date) for tags.
    pub(crate) release: std::sync::Arc<crate::release::Release>,
}

/// An image's build context that cannot be had.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SourceError {
    /// Planning did not resolve this ref (a bug of the caller's).
    #[error("`{reference}` of {url} was not resolved")]
    Unresolved {
        /// The repository.
        url: String,
        /// The ref.
        reference: String,
    },
    /// Planning could not resolve this ref, for the reason it recorded.
    #[error(transparent)]
    Unresolvable(hephy_engine::UpstreamError),
    /// Fetching or exporting the commit failed.
    #[error(transparent)]
    Git(#[from] git::GitError),
    /// An OCI layout context does not name its image.
    #[error(transparent)]
    Layout(#[from] hephy_engine::LayoutError),
    /// The context folder cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::sync::Arc<std::io::Error>,
    },
}

impl Sources {
    /// The commit `reference` of `url` resolved to when planning.
    pub(crate) fn commit(&self, url: &str, reference: &str) -> Result<String, SourceError> {
        match self.upstreams.get(&(url.to_owned(), reference.to_owned())) {
            Some(resolved) => resolved.clone().map_err(SourceError::Unresolvable),
            None => Err(SourceError::Unresolved { url: url.to_owned(), reference: reference.to_owned() }),
        }
    }

    /// The external named contexts of `image` (`build-context`), in BuildKit's form: an image
    /// by the digest the plan resolved (by its tag when it did not resolve, offline), a folder
    /// (a git context's checkout), an OCI layout with the manifest digest its ref names.
    pub(crate) fn named_contexts(
        &self,
        root: &Path,
        image: &hephy_dsl::Image,
    ) -> Result<Vec<(String, String)>, SourceError> {
        use hephy_dsl::ContextSource;
        let folder = |path: PathBuf| {
            path.canonicalize().map_err(|e| SourceError::Unreadable { path, source: std::sync::Arc::new(e) })
        };
        let mut out = Vec::new();
        for context in &image.build_contexts {
            let value = match &context.source {
                ContextSource::Image { reference } => {
                    let pinned = match bases::planned(&self.state_dir, reference) {
                        Some(digest) => pin(reference, &digest),
                        None => reference.clone(),
                    };
                    format!("{}{pinned}", crate::builders::IMAGE_SCHEME)
                }
                ContextSource::Path(dir) => folder(root.join(dir))?.display().to_string(),
                ContextSource::Git { url, reference, dir } => {
                    let reference = reference.as_deref().unwrap_or("HEAD");
                    let commit = self.commit(url, reference)?;
                    let checkout = git::checkout(url, reference, &commit, &self.state_dir)?;
                    let path = match dir {
                        Some(dir) => checkout.join(dir),
                        None => checkout,
                    };
                    folder(path)?.display().to_string()
                }
                ContextSource::OciLayout { path, reference } => {
                    let dir = folder(root.join(path))?;
                    let digest = hephy_engine::layout_digest(&dir, reference)?;
                    format!("{}{}@{digest}", crate::builders::LAYOUT_SCHEME, dir.display())
                }
            };
            out.push((context.name.value.clone(), value));
        }
        Ok(out)
    }

    /// The context folder of `image` (fetching and exporting its upstream commit if need be).
    pub(crate) fn context(&self, root: &Path, image: &hephy_dsl::Image) -> Result<PathBuf, SourceError> {
        let context = match &image.source {
            hephy_dsl::ImageSource::Context { dir } => root.join(dir),
            hephy_dsl::ImageSource::Git { url, reference, dir } => {
                let commit = self.commit(url, reference)?;
                let checkout = git::checkout(url, reference, &commit, &self.state_dir)?;
                if dir == "." { checkout } else { checkout.join(dir) }
            }
        };
        // Canonical, so that files below it are read following no link at all.
        context
            .canonicalize()
            .map_err(|e| SourceError::Unreadable { path: context, source: std::sync::Arc::new(e) })
    }
}

/// `reference` pinned to `digest`: its tag (and any digest it had) replaced by the digest.
pub(crate) fn pin(reference: &str, digest: &str) -> String {
    let name = reference.split_once('@').map_or(reference, |(name, _)| name);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last..].find(':') {
        Some(colon) => &name[..last + colon],
        None => name,
    };
    format!("{name}@{digest}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pinned_reference_loses_its_tag_and_keeps_its_port() {
        assert_eq!(super::pin("ubuntu:noble", "sha256:aa"), "ubuntu@sha256:aa");
        assert_eq!(super::pin("127.0.0.1:5000/base:1", "sha256:aa"), "127.0.0.1:5000/base@sha256:aa");
        assert_eq!(super::pin("127.0.0.1:5000/base", "sha256:aa"), "127.0.0.1:5000/base@sha256:aa");
        assert_eq!(super::pin("x:1@sha256:bb", "sha256:aa"), "x@sha256:aa");
    }
}
