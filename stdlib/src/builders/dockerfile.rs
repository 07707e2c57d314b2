//! A local image's Dockerfile as the checks and builders open it: below the graph's folder only
//! (a link that leads out of it is refused before the file is opened, so no diagnostic can
//! quote a host file), a regular file only (a FIFO is refused, not waited on). Reading the text
//! is [`hephy_dockerfile`]'s.

use std::path::Path;
use std::sync::Arc;

use hephy_dsl::{Image, ImageSource};

/// A local image's Dockerfile.
pub(crate) struct Local {
    /// Its path as the graph names it (`app/Dockerfile`).
    pub(crate) shown: String,
    /// Its text.
    pub(crate) text: Arc<str>,
}

/// Why a Dockerfile is not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unread {
    /// It cannot be opened (a link out of its folder, a FIFO, missing) or read.
    #[error("cannot read `{shown}`: {source}")]
    Io {
        /// The Dockerfile.
        shown: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not UTF-8 text.
    #[error("`{shown}` is not UTF-8 text")]
    NotUtf8 {
        /// The Dockerfile.
        shown: String,
    },
}

/// The text of `rel` below the folder `dir`, never through a link that leads out of `dir`.
pub(crate) fn read_below(dir: &Path, rel: &Path, shown: &str) -> Result<Arc<str>, Unread> {
    let io = |source| Unread::Io { shown: shown.to_owned(), source };
    let file = hephy_os::open::open_below(dir, rel).map_err(io)?;
    // Shared with the hashing of the same file: what is built is the very bytes that were hashed
    // (and the file is read once per run, however many phases read it).
    let bytes = hephy_engine::read_shared_from(&dir.join(rel), file).map_err(io)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Unread::NotUtf8 { shown: shown.to_owned() })?;
    Ok(Arc::from(text))
}

/// `image`'s Dockerfile, if it is local (an upstream image's is read from its checkout when it
/// is built).
pub(crate) fn local(root: &Path, image: &Image) -> Option<Result<Local, Unread>> {
    let ImageSource::Context { dir } = &image.source else { return None };
    let shown = hephy_engine::join(dir, &image.dockerfile);
    let rel = Path::new(dir).join(&image.dockerfile);
    Some(read_below(root, &rel, &shown).map(|text| Local { shown, text }))
}

/// Whether `text` has a `RUN` (or an `ONBUILD RUN`); a text that does not read as a Dockerfile
/// counts as one without (the builder reports it).
pub(crate) fn runs_commands(text: &str) -> bool {
    hephy_dockerfile::parse(text)
        .is_ok_and(|d| d.instructions.iter().any(hephy_dockerfile::Instruction::runs))
}
