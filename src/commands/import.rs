//! `hephy import`: the graph file of a kaniko-builder repository or of a bake file.

use std::path::Path;

use hephy_dsl::{Code, Problem, Problems};

use crate::{Failure, ImportFormat, ImportFrom, import, print};

/// `hephy import`: the graph file of a kaniko-builder repository or a bake file.
pub(crate) fn command(
    dir: &Path,
    from: ImportFrom,
    format: ImportFormat,
    output: Option<&Path>,
    env_frozen: bool,
) -> Result<(), Failure> {
    let syntax = match format {
        ImportFormat::Kdl => hephy_dsl::Syntax::Kdl,
        ImportFormat::Yaml => hephy_dsl::Syntax::Yaml,
    };
    let usage = |message: String| {
        Failure::Input(Problems::single(
            "hephy",
            Problem::new(Code::Io, message).help("name a repository in the kaniko-builder layout"),
        ))
    };
    let imported = match from {
        ImportFrom::KanikoBuilder if env_frozen => {
            return Err(Failure::Input(Problems::single(
                "hephy",
                Problem::new(
                    Code::Io,
                    "`--env-frozen` is for bake files: a kaniko-builder layout has no variables",
                )
                .help("drop `--env-frozen`, or add `--from bake`"),
            )));
        }
        ImportFrom::KanikoBuilder => import::import(dir, syntax).map_err(|e| usage(e.to_string()))?,
        ImportFrom::Bake => {
            let mode = if env_frozen { import::BakeEnv::Frozen } else { import::BakeEnv::Kept };
            import::import_bake(dir, syntax, mode, &|name| std::env::var(name).ok()).map_err(|e| {
                // Every warning met first: they say what failed where.
                for warning in e.warnings() {
                    eprintln!(
                        "warning: {}",
                        hephy_dsl::printable_line(&hephy_dsl::escape::terminal_line(warning))
                    );
                }
                let code = if matches!(e, import::BakeError::Limit { .. }) { Code::Limit } else { Code::Io };
                Failure::Input(Problems::single("hephy", Problem::new(code, e.to_string()).help(e.help())))
            })?
        }
    };
    for warning in &imported.warnings {
        eprintln!("warning: {}", hephy_dsl::printable_line(&hephy_dsl::escape::terminal_line(warning)));
    }
    match output {
        Some(path) => std::fs::write(path, &imported.text)
            .map_err(|e| usage(format!("cannot write `{}`: {e}", path.display())))?,
        None => print(&imported.text),
    }
    Ok(())
}
