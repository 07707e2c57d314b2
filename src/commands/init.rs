//! `hephy init`: a starting graph file for the repository, checked before it is written.

use std::path::{Path, PathBuf};

use hephy_dsl::{Code, Problem, Problems};

use crate::commands::check_text;
use crate::{Failure, ImportFormat, init, print, style};

/// `hephy init`: finds the Dockerfiles, writes the graph (never over an existing one), then
/// checks it like any graph file.
pub(crate) fn command(dir: &Path, format: ImportFormat, stdout: bool) -> Result<(), Failure> {
    let io = |message: String, help: &str| {
        Failure::Input(Problems::single("hephy", Problem::new(Code::Io, message).help(help.to_owned())))
    };
    let survey = init::scan(dir)
        .map_err(|e| io(format!("cannot read `{}`: {e}", dir.display()), "name a folder that can be read"))?;
    if survey.images.is_empty() {
        return Err(io(
            format!("no Dockerfile under `{}`", dir.display()),
            "run `hephy init` in a repository with Dockerfiles (`Dockerfile`, `Dockerfile.NAME`, `NAME.Dockerfile`)",
        ));
    }
    let (syntax, name) = match format {
        ImportFormat::Kdl => (init::Syntax::Kdl, "hephy.kdl"),
        ImportFormat::Yaml => (init::Syntax::Yaml, "hephy.yaml"),
    };
    if !stdout && let Some(existing) = hephy_dsl::DEFAULT_FILES.into_iter().find(|f| dir.join(f).exists()) {
        return Err(io(
            format!("`{existing}` already exists in `{}`", dir.display()),
            "keep it, or move it aside first; `hephy init --stdout` prints the graph instead",
        ));
    }
    let text = init::render(&survey, syntax);
    let path = if dir == Path::new(".") { PathBuf::from(name) } else { dir.join(name) };
    // Checked as `check` would check it, before anything is printed or written: a graph that
    // does not pass is reported (exit 2) and never left on disk.
    let dsl_syntax = match syntax {
        init::Syntax::Kdl => hephy_dsl::Syntax::Kdl,
        init::Syntax::Yaml => hephy_dsl::Syntax::Yaml,
    };
    let model = check_text(hephy_dsl::SourceFile::new(&path, dsl_syntax, text.as_str()), dir)?;
    let line = |text: &str| hephy_dsl::printable_line(&hephy_dsl::escape::terminal_line(text)).to_string();
    for (rule, count) in &survey.rules {
        eprintln!("inferred: {} ({count} edge(s))", line(rule));
    }
    for unwired in &survey.unwired {
        eprintln!("warning: {}", line(unwired));
    }
    if stdout {
        print(&text);
        return Ok(());
    }
    std::fs::write(&path, &text).map_err(|e| {
        io(format!("cannot write `{}`: {e}", path.display()), "choose a folder that can be written")
    })?;
    let beside = init::finish(dir, syntax).map_err(|e| {
        io(format!("wrote `{}`, then: {e}", path.display()), "check the folder's permissions")
    })?;
    let graph = hephy_engine::compile(&model);
    print(&format!(
        "wrote {}: {} image(s), {} nodes; `hephy plan` shows what would build\n",
        path.display(),
        survey.images.len(),
        graph.len()
    ));
    for line in beside {
        print(&format!("{}\n", style::clean_line(&line)));
    }
    Ok(())
}
