//! The `hephy` command line: argument parsing (the clap types here), graph-file discovery,
//! dispatch to one module per command (`commands/`), exit codes.
//!
//! The CLI parses, calls and renders. It holds no planning policy: planning, the plan cache,
//! the run lock and layout repair are the library session's (`hephy_stdlib::session`); the
//! work itself is in `hephy-dsl` (the language), `hephy-engine` (graph, hashing, state, plan,
//! run) and `hephy-stdlib` (what nodes do). Exit codes: 0 ok, 1 a build failed, 2 bad input or
//! usage, 130 interrupted (129 on SIGHUP, 143 on SIGTERM).

mod ci;
mod cli;
mod commands;
mod complete;
mod diagnostics;
mod explain_view;
mod graph_view;
mod images_view;
mod import;
mod init;
mod manual;
mod plan_view;
mod registry_gc;
mod report;
mod schema;
mod session;
mod show;
mod style;
mod supply;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hephy_dsl::{Code, Problem, Problems};
use hephy_engine::StateError;

pub(crate) use crate::cli::{
    Cli, ColorChoice, Command, FileArg, Format, GraphFormat, ImportFormat, ImportFrom, KeyCommand,
    SelectArgs, StateArg,
};
pub(crate) use crate::commands::{discover, print};
use crate::style::Style;

/// Why a command did not succeed, and so its exit code.
pub(crate) enum Failure {
    /// Bad input: exit 2.
    Input(Problems),
    /// The state store failed (or is locked): exit 2.
    State(StateError),
    /// A node failed: exit 1.
    Build,
    /// Ctrl-C (SIGINT), SIGTERM or SIGHUP: exit 128 + the signal's number (130, 143, 129).
    Interrupted {
        /// The signal's number.
        signal: u8,
    },
}

fn main() -> ExitCode {
    // A shell asking for completions (`COMPLETE=bash hephy -- …`): answer and exit.
    clap_complete::CompleteEnv::with_factory(complete::command).complete();
    let mut cli = Cli::parse();
    if let Some(file) = cli.file.take() {
        default_file(&mut cli.command, file);
    }
    let style = Style::for_stdout(cli.color == ColorChoice::Always, cli.color == ColorChoice::Never);
    let err_color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => style::stderr_wants_color(),
    };
    if let Some(dir) = &cli.directory
        && let Err(e) = std::env::set_current_dir(dir)
    {
        let problem = Problem::new(Code::Io, format!("cannot change to `{}`: {e}", dir.display()))
            .help("`-C DIR` names a folder to run in, relative to the current one");
        diagnostics::report(&Problems::single("hephy", problem), err_color);
        return ExitCode::from(2);
    }
    match execute(&cli.command, style, cli.quiet) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(problems)) => {
            diagnostics::report(&problems, err_color);
            ExitCode::from(2)
        }
        Err(Failure::State(e)) => {
            let help = match (&e, e.passing()) {
                (StateError::Locked { .. }, _) => "wait for it to finish, or raise --lock-timeout",
                (StateError::Symlink { .. }, _) => {
                    "remove the link; the state folder belongs to this machine and is never committed (list `.hephy/` in `.gitignore`)"
                }
                (_, Some(hephy_engine::Passing::ReadOnly)) => {
                    "the state folder cannot be written (a read-only file system, or no permission); nothing recorded was lost: make it writable and run again, retrying is safe"
                }
                (_, Some(hephy_engine::Passing::Full)) => {
                    "the disk is full; nothing recorded was lost: free some space and run again, retrying is safe"
                }
                _ => "move the state folder aside (or choose another with --state) to start afresh",
            };
            eprintln!("error: {}\n  help: {help}", style::clean(&e.to_string()));
            ExitCode::from(2)
        }
        Err(Failure::Build) => ExitCode::from(1),
        Err(Failure::Interrupted { signal }) => ExitCode::from(128u8.saturating_add(signal)),
    }
}

/// `hephy -f FILE COMMAND`: the file for a command that reads one and was not given its own.
fn default_file(command: &mut Command, path: PathBuf) {
    let file = match command {
        Command::Check(file)
        | Command::Plan { file, .. }
        | Command::Run { file, .. }
        | Command::Explain { file, .. }
        | Command::Log { file, .. }
        | Command::Ci { file, .. }
        | Command::Gc { file, .. }
        | Command::Show { file, .. }
        | Command::Graph { file, .. } => file,
        Command::Import { .. }
        | Command::Init { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Schema
        | Command::Key { .. }
        | Command::Verify { .. }
        | Command::RemoteBuild => return,
    };
    file.file.get_or_insert(path);
}

fn execute(command: &Command, style: Style, quiet: bool) -> Result<(), Failure> {
    match command {
        Command::Show { image, file, format } => commands::show::command(image, file, *format, style)?,
        Command::Check(file) => commands::check::command(file, quiet)?,
        Command::Plan { file, state, select, format, wide, changed } => {
            commands::plan::command(file, state, select, *format, *wide, *changed, style)?
        }
        Command::Run {
            file,
            state,
            select,
            jobs,
            fail_fast,
            verbose,
            lock_timeout,
            no_push,
            wide,
            format,
        } => {
            let flags = commands::run::RunFlags {
                jobs: *jobs,
                fail_fast: *fail_fast,
                verbose: *verbose,
                no_push: *no_push,
                quiet,
                wide: *wide,
            };
            commands::run::command(file, state, select, &flags, *lock_timeout, *format, style)?
        }
        Command::RemoteBuild => commands::remote_build::command()?,
        Command::Ci { system, file, state, select, setup, output, fixed, levels, max_jobs } => {
            let flags = commands::ci::CiFlags {
                setup: setup.as_deref(),
                output: output.as_deref(),
                fixed: *fixed,
                levels: *levels,
                max_jobs: *max_jobs,
            };
            commands::ci::command(*system, file, state, select, &flags)?
        }
        Command::Explain { node, file, state, run, format } => {
            explain_view::command(node, file, state, *run, *format)?;
        }
        Command::Log { file, state, limit, format } => commands::log::command(file, state, *limit, *format)?,
        Command::Import { dir, from, format, output, env_frozen } => {
            commands::import::command(dir, *from, *format, output.as_deref(), *env_frozen)?
        }
        Command::Gc { file, state, lock_timeout, registry, keep } => {
            commands::gc::command(file, state, *lock_timeout, registry.then_some(*keep))?
        }
        Command::Init { dir, format, stdout } => commands::init::command(dir, *format, *stdout)?,
        Command::Completions { shell } => commands::completions::command(*shell)?,
        Command::Man { command, output } => manual::command(command.as_deref(), output.as_deref())?,
        Command::Schema => print(&schema::text()),
        Command::Key { action: KeyCommand::Generate { dir } } => supply::generate(dir)?,
        Command::Verify { image, key } => supply::verify(image, key, style)?,
        Command::Graph { file, state, select, format, output } => {
            commands::graph::command(file, state, select, *format, output.as_deref())?
        }
    }
    Ok(())
}
