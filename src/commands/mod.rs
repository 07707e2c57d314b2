//! One module per command: each parses nothing (clap's types are `main.rs`'s), calls the
//! library and renders its answer. Here: what several commands share — finding and loading
//! the graph file, writing output, the session's errors as exit codes.

pub(crate) mod check;
pub(crate) mod ci;
pub(crate) mod completions;
pub(crate) mod gc;
pub(crate) mod graph;
pub(crate) mod import;
pub(crate) mod init;
pub(crate) mod log;
pub(crate) mod plan;
pub(crate) mod remote_build;
pub(crate) mod run;
pub(crate) mod show;

use std::io::Write;
use std::path::{Path, PathBuf};

use hephy_dsl::{Code, Model, Problem, Problems};
use hephy_stdlib::session::SessionError;

use crate::{Failure, FileArg, StateArg};

impl From<SessionError> for Failure {
    fn from(e: SessionError) -> Failure {
        match e {
            SessionError::Input(problems) => Failure::Input(problems),
            SessionError::State(e) => Failure::State(e),
        }
    }
}

/// `text` into the file `-o FILE` names, or on stdout.
pub(crate) fn emit(output: Option<&Path>, text: &str) -> Result<(), Failure> {
    match output {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            Failure::Input(Problems::single(
                "hephy",
                Problem::new(Code::Io, format!("cannot write `{}`: {e}", path.display()))
                    .help("name a file in a folder that exists and can be written"),
            ))
        }),
        None => {
            print(text);
            Ok(())
        }
    }
}

pub(crate) fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`hephy plan | head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// Finds and loads the graph file.
pub(crate) fn load(arg: &FileArg) -> Result<Model, Failure> {
    load_path(&graph_path(arg)?, &arg.overrides()?)
}

/// Finds and loads the graph file of a command with a state folder, reusing the document as
/// read kept there while the file is unchanged; with `HEPHY_TIMINGS=1`, each step's time on
/// stderr.
pub(crate) fn load_in(arg: &FileArg, state: &StateArg) -> Result<Model, Failure> {
    let path = graph_path(arg)?;
    let state_dir = hephy_engine::graph_state_dir(&path, state.dir.as_deref());
    let loaded =
        hephy_stdlib::session::load_in(&path, &arg.overrides()?, &state_dir).map_err(Failure::Input)?;
    crate::session::show_timings(&loaded.timings);
    Ok(loaded.model)
}

/// The graph file: `-f FILE`, or the one in the current folder.
pub(crate) fn graph_path(arg: &FileArg) -> Result<PathBuf, Failure> {
    match &arg.file {
        Some(path) => Ok(path.clone()),
        None => discover(Path::new(".")).map_err(Failure::Input),
    }
}

/// Loads and checks the graph file at `path` (the library session's loading).
pub(crate) fn load_path(path: &Path, overrides: &hephy_dsl::Overrides) -> Result<Model, Failure> {
    hephy_stdlib::session::load(path, overrides).map_err(Failure::Input)
}

/// Checks graph text not (yet) on disk as [`load_path`] checks a file; relative paths resolve
/// against `root`.
pub(crate) fn check_text(source: hephy_dsl::SourceFile, root: &Path) -> Result<Model, Failure> {
    let mut model = hephy_dsl::parse(source, root).map_err(Failure::Input)?;
    hephy_stdlib::resolve_auto(&mut model);
    hephy_stdlib::check(&model).map_err(Failure::Input)?;
    Ok(model)
}

/// `hephy.kdl` or `hephy.yaml` in `dir`: exactly one of them.
pub(crate) fn discover(dir: &Path) -> Result<PathBuf, Problems> {
    // As git and cargo do: this folder, then each parent, up to the top of the git repository
    // it is in (a graph file above the repository is another project's).
    let mut up = PathBuf::new();
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    for folder in absolute.ancestors().take(MAX_DISCOVERY_DEPTH) {
        let found: Vec<&str> =
            hephy_dsl::DEFAULT_FILES.into_iter().filter(|f| folder.join(f).is_file()).collect();
        match found.as_slice() {
            [one] => return Ok(if up.as_os_str().is_empty() { PathBuf::from(one) } else { up.join(one) }),
            [] => {}
            _ => {
                let place = if up.as_os_str().is_empty() {
                    "here".to_owned()
                } else {
                    format!("in `{}`", up.display())
                };
                return Err(Problems::single(
                    "hephy",
                    Problem::new(Code::Conflict, format!("both `hephy.kdl` and `hephy.yaml` exist {place}"))
                        .help("remove one of them, or choose with `-f FILE`"),
                ));
            }
        }
        if folder.join(".git").exists() {
            break;
        }
        up.push("..");
    }
    Err(Problems::single(
        "hephy",
        Problem::new(
            Code::Io,
            "no graph file here or in a parent folder: neither `hephy.kdl` nor `hephy.yaml` exists",
        )
        .help("`hephy init` writes one for the repository here (one image per Dockerfile), or name one with `-f FILE`"),
    ))
}

/// How many folders graph-file discovery looks in, this one and its parents.
const MAX_DISCOVERY_DEPTH: usize = 64;
