//! What a builder needs to know of a Dockerfile before building it: its stages, and which
//! `RUN` instructions it has (with `--mount` or not), read with the `dockerfile-parser` crate.

use dockerfile_parser::{BreakableStringComponent, Dockerfile, Instruction, ShellOrExecExpr};

/// One `RUN` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    /// Its 1-based line.
    pub(crate) line: usize,
    /// Whether it uses `--mount=…` (BuildKit syntax).
    pub(crate) mount: bool,
}

/// The facts of one Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Facts {
    /// Every `RUN`.
    pub(crate) runs: Vec<Run>,
    /// Named stages (`FROM … AS name`), in order.
    pub(crate) stages: Vec<String>,
}

/// Reads `text`; `Err` says why it is not a Dockerfile.
pub(crate) fn read(text: &str) -> Result<Facts, String> {
    let dockerfile = Dockerfile::parse(text).map_err(|e| e.to_string())?;
    let line_of = |offset: usize| text.get(..offset).unwrap_or(text).matches('\n').count() + 1;
    let mut facts = Facts::default();
    for instruction in &dockerfile.instructions {
        match instruction {
            Instruction::Run(run) => {
                let mount = match &run.expr {
                    ShellOrExecExpr::Shell(shell) => shell.components.iter().any(|c| match c {
                        BreakableStringComponent::String(s) => s.content.trim_start().starts_with("--mount="),
                        BreakableStringComponent::Comment(_) => false,
                    }),
                    ShellOrExecExpr::Exec(_) => false,
                };
                facts.runs.push(Run { line: line_of(run.span.start), mount });
            }
            Instruction::From(from) => {
                if let Some(alias) = &from.alias {
                    facts.stages.push(alias.content.clone());
                }
            }
            _ => {}
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_runs_mounts_and_stages() {
        let facts = read(
            "ARG BASE\nFROM ${BASE} AS build\nRUN --mount=type=cache,target=/root/.cache \\\n    make\nRUN echo hi\nFROM scratch AS final\nCOPY --from=build /out /\n",
        )
        .expect("a Dockerfile");
        assert_eq!(facts.runs, [Run { line: 3, mount: true }, Run { line: 5, mount: false }]);
        assert_eq!(facts.stages, ["build", "final"]);
        assert_eq!(read("FROM scratch\nCOPY a /\n").expect("reads").runs, []);
    }
}
