//! `hephy show IMAGE`: an image's settings after variables, templates and matrices, and where
//! each came from.

use crate::commands::{graph_path, load};
use crate::style::Style;
use crate::{Failure, FileArg, Format, print, show};

/// `hephy show`: checks the graph, then shows `image`.
pub(crate) fn command(image: &str, file: &FileArg, format: Format, style: Style) -> Result<(), Failure> {
    load(file)?;
    print(&show::show(&graph_path(file)?, &file.overrides()?, image, format == Format::Json, style)?);
    Ok(())
}
