//! `hephy ci`: a CI pipeline for the graph, or a job's login.

use std::path::Path;

use hephy_dsl::{Code, Problem, Problems};

use crate::commands::{emit, load_in};
use crate::{Failure, FileArg, SelectArgs, StateArg, ci};

/// `hephy ci`'s flags about the pipeline it writes.
pub(crate) struct CiFlags<'a> {
    /// `--setup`: a command every job runs first.
    pub(crate) setup: Option<&'a str>,
    /// `-o FILE`.
    pub(crate) output: Option<&'a Path>,
    /// `--static`: the jobs of the current plan.
    pub(crate) fixed: bool,
    /// `--levels`.
    pub(crate) levels: u16,
    /// `--max-jobs`.
    pub(crate) max_jobs: u16,
}

/// `hephy ci`: a CI pipeline for the current plan.
pub(crate) fn command(
    system: ci::System,
    file: &FileArg,
    state: &StateArg,
    select: &SelectArgs,
    flags: &CiFlags<'_>,
) -> Result<(), Failure> {
    let CiFlags { setup, output, fixed, levels, max_jobs } = *flags;
    if !file.set.is_empty() {
        // The jobs run `hephy run -f FILE` without the generator's `--set`.
        return Err(Failure::Input(Problems::single(
            "--set",
            Problem::new(Code::Conflict, "`hephy ci` does not carry `--set` into the jobs it writes")
                .help("set the variables in the pipeline's environment (`HEPHY_VAR_NAME`) for the generator and every job alike"),
        )));
    }
    let model = load_in(file, state)?;
    let graph_file = file.file.as_ref().map(|f| f.to_string_lossy().into_owned());
    let selection = select.selection();
    let options = ci::Options {
        graph_file: graph_file.as_deref(),
        selection: &selection,
        setup,
        form: if fixed { ci::Form::Static } else { ci::Form::Dynamic },
        levels: usize::from(levels),
        max_jobs: usize::from(max_jobs),
    };
    let text = ci::write(model, state.dir.as_deref(), system, &options)?;
    emit(output, &text)?;
    Ok(())
}
