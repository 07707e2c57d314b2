//! `hephy check`: the graph file validated, every problem reported.

use crate::commands::load;
use crate::{Failure, FileArg, diagnostics, print, style};

/// `hephy check`: validates the graph file and reports every problem in it.
pub(crate) fn command(file: &FileArg, quiet: bool) -> Result<(), Failure> {
    let model = load(file)?;
    if let Some(warnings) = hephy_stdlib::warnings(&model) {
        diagnostics::warn(&warnings, style::stderr_wants_color());
    }
    if !quiet {
        let graph = hephy_engine::compile(&model);
        print(&style::clean(&format!("{}: ok ({} nodes)\n", model.path().display(), graph.len())));
    }
    Ok(())
}
