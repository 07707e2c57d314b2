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
    #[error("{0}")]
    Unresolvable(String),
    /// Fetching or exporting the commit failed.
    #[error(transparent)]
    Git(#[from] git::GitError),
    /// The context folder cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::sync::Arc<std::io::Error>,
    },
}

impl From<SourceError> for String {
    fn from(e: SourceError) -> String {
        e.to_string()
    }
}

impl Sources {
    /// The commit `reference` of `url` resolved to when planning.
    pub(crate) fn commit(&self, url: &str, reference: &str) -> Result<String, SourceError> {
        match self.upstreams.get(&(url.to_owned(), reference.to_owned())) {
            Some(resolved) => resolved.clone().map_err(SourceError::Unresolvable),
            None => Err(SourceError::Unresolved { url: url.to_owned(), reference: reference.to_owned() }),
        }
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
