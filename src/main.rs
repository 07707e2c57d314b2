//! The `hephy` command line: argument parsing, graph-file discovery, exit codes.
//!
//! Owns the commands and how their results reach the user, one function per command. It holds
//! no planning policy (that is the engine's `Planner`, asked through `session.rs`); the work
//! itself is in `hephy-dsl` (the language), `hephy-engine` (graph, hashing, state, plan, run)
//! and `hephy-stdlib` (what nodes do). Exit codes: 0 ok, 1 a build failed, 2 bad input or usage, 130
//! interrupted (129 on SIGHUP, 143 on SIGTERM).

mod ci;
mod complete;
mod diagnostics;
mod explain_view;
mod graph_view;
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

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use hephy_dsl::{Code, Model, Problem, Problems};
use hephy_engine::{NodeStatus, Reporter, RunLock, RunOptions, State, StateError};

use crate::session::{Selection, Session};
use crate::style::Style;

/// hephy: a build-graph engine for container images.
#[derive(Debug, Parser)]
#[command(name = "hephy", version, about, propagate_version = true)]
struct Cli {
    /// When to colour output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
    /// The graph file, for every command that reads one (`hephy -f FILE plan` is
    /// `hephy plan -f FILE`).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Run as if hephy had been started in DIR (`hephy -C images plan`, as `git -C`).
    #[arg(short = 'C', value_name = "DIR", global = true, value_hint = clap::ValueHint::DirPath)]
    directory: Option<PathBuf>,
    /// Print only problems and the outcome: no progress and no per-node lines (`run`), no
    /// report of the images built, no `ok` (`check`).
    #[arg(short = 'q', long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the graph file and report every problem in it.
    Check(FileArg),
    /// Show what would run, in which order, on which executor, and why.
    Plan {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        state: StateArg,
        #[command(flatten)]
        select: SelectArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Show every column whole, however wide the terminal (by default the table fits it).
        #[arg(long)]
        wide: bool,
        /// Show only the nodes that will run (build, push), not the fresh ones.
        #[arg(long)]
        changed: bool,
    },
    /// Build what the plan says, in dependency order, across executors.
    Run {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        state: StateArg,
        #[command(flatten)]
        select: SelectArgs,
        /// The most nodes running at once (default: the number of CPUs).
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        /// Stop launching nodes after the first failure.
        #[arg(long)]
        fail_fast: bool,
        /// Show each node's output as it runs.
        #[arg(long, short = 'v')]
        verbose: bool,
        /// Seconds to wait for another `hephy run` on the same state to finish.
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        lock_timeout: f64,
        /// Build as if the graph named no registry and no mirror: images land in the state
        /// folder's image layout only, nothing is pushed and no registry is asked for images
        /// built elsewhere (what a merge request's pipeline runs).
        #[arg(long)]
        no_push: bool,
        /// Show whole digests in the closing list of images (shortened to 12 hex digits,
        /// `sha256:7967ab…`, without it).
        #[arg(long)]
        wide: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Explain why a node rebuilds (or was rebuilt), down to the root causes.
    Explain {
        /// A node id (`curl@linux/arm64`), or an image or task name (all its nodes).
        node: String,
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        state: StateArg,
        /// Explain a past run (its number, or `last`) instead of the current plan; without it a
        /// node fresh now is explained by the run that last built it.
        #[arg(long, value_name = "ID|last", value_parser = explain_view::parse_run)]
        run: Option<explain_view::RunRef>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List past runs.
    Log {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        state: StateArg,
        /// How many runs to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write the graph file of a repository in the kaniko-builder layout, or of a bake file.
    Import {
        /// The repository (folders with `build-config.yaml`, `rebuild-weekly.txt`), or with
        /// `--from bake` the bake file (`docker-bake.hcl`, or its JSON form).
        dir: PathBuf,
        /// What to import.
        #[arg(long, value_enum, default_value_t = ImportFrom::KanikoBuilder)]
        from: ImportFrom,
        /// The syntax to write.
        #[arg(long, value_enum, default_value_t = ImportFormat::Kdl)]
        format: ImportFormat,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// `--from bake`: write the environment's values of the bake file's variables as
        /// literals (default: the variables become the graph's `variables`, with their
        /// defaults, and no environment value is written).
        #[arg(long)]
        env_frozen: bool,
    },
    /// Write a CI pipeline: by default the one to commit (its first job plans, later jobs build
    /// what it chose); `--static` the jobs of the current plan, `needs` as the graph, runners
    /// from the executors (`gitlab-tags`, `runs-on`).
    Ci {
        /// The CI system.
        #[arg(value_enum)]
        system: CiSystem,
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        state: StateArg,
        #[command(flatten)]
        select: SelectArgs,
        /// A command every job runs before hephy (installing it, logging in to the registry).
        #[arg(long, value_name = "COMMAND")]
        setup: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// The jobs of the current plan, instead of the pipeline that plans when it runs.
        #[arg(long = "static")]
        fixed: bool,
        /// The dependency levels the GitHub workflow has a matrix job for.
        #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        levels: u16,
        /// The most jobs one pipeline may have; more nodes are batched by level and executor.
        #[arg(long, value_name = "N", default_value_t = 250, value_parser = clap::value_parser!(u16).range(2..))]
        max_jobs: u16,
    },
    /// Build one image shipped over ssh by another hephy (what an ssh executor's host runs;
    /// reads the bundle on stdin, prints the pushed digest).
    #[command(hide = true)]
    RemoteBuild,
    /// Write a starting graph file for this repository: one image per Dockerfile found,
    /// `from` edges where one builds on another.
    Init {
        /// The repository (default: the current folder); the graph file is written there.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The syntax to write.
        #[arg(long, value_enum, default_value_t = ImportFormat::Kdl)]
        format: ImportFormat,
        /// Print the graph instead of writing it.
        #[arg(long)]
        stdout: bool,
    },
    /// Print a shell's completion script: it asks hephy for commands, flags and the graph's
    /// node, image, group and schedule names as you type (see README for where to put it).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print hephy's man page, or one command's (`hephy man plan` is hephy-plan(1)); with
    /// `-o DIR`, write every page into DIR (`hephy man -o ~/.local/share/man/man1`).
    Man {
        /// A command whose page to print.
        command: Option<String>,
        /// Write hephy.1 and every command's page into this folder.
        #[arg(short = 'o', long = "output", value_name = "DIR", conflicts_with = "command")]
        output: Option<PathBuf>,
    },
    /// Print the JSON Schema of `hephy.yaml` (for editors: `# yaml-language-server: $schema=…`).
    Schema,
    /// Remove from the image layout (`.hephy/oci`) every blob no recorded image references,
    /// and the temporaries a killed run left.
    Gc {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        state: StateArg,
        /// Seconds to wait for a running `hephy run` on the same state to finish.
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        lock_timeout: f64,
        /// Prune the graph's registry instead: delete from its cache repository
        /// (`REGISTRY/hephy-cache`) the records of keys no node of the state was last built with.
        #[arg(long)]
        registry: bool,
        /// With `--registry`: keep the N newest stale records of each node too.
        #[arg(long, value_name = "N", default_value_t = 0, requires = "registry")]
        keep: usize,
    },
    /// Print an image's settings after variables, templates and matrices, and where each
    /// came from.
    Show {
        /// The image's name (as expanded: `nova-api` for a matrix copy).
        image: String,
        #[command(flatten)]
        file: FileArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Cosign-compatible signing keys.
    Key {
        #[command(subcommand)]
        action: KeyCommand,
    },
    /// Check an image's cosign signatures with a public key: the manifest named and, for an
    /// index, each platform manifest (exit 0 signed throughout, 1 not).
    Verify {
        /// The image (`HOST/REPOSITORY:TAG` or `@sha256:DIGEST`).
        image: String,
        /// The public key (`cosign.pub`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Export the build graph.
    Graph {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        state: StateArg,
        #[command(flatten)]
        select: SelectArgs,
        /// Output format: Graphviz `dot`, `mermaid`, `json`, or one self-contained `html` page.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Write `cosign.key` (encrypted with `COSIGN_PASSWORD`) and `cosign.pub` into DIR, as
    /// `cosign generate-key-pair` does; never over existing files.
    Generate {
        /// The folder (default: the current one; created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct FileArg {
    /// The graph file (default: `hephy.kdl` or `hephy.yaml` in the current folder).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Set a variable (`NAME=VALUE`) or one image's setting (`image.NAME.FIELD=VALUE`);
    /// `HEPHY_VAR_NAME` in the environment sets a variable too.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

impl FileArg {
    /// `--set` and the environment's `HEPHY_VAR_*`.
    fn overrides(&self) -> Result<hephy_dsl::Overrides, Failure> {
        // `vars_os`: a variable that is not UTF-8 is skipped, never a panic.
        let env =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        hephy_dsl::Overrides::new(&self.set, env).map_err(Failure::Input)
    }
}

#[derive(Debug, clap::Args)]
struct StateArg {
    /// The state folder (default: `.hephy` beside the graph file).
    #[arg(long = "state", value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SelectArgs {
    /// Rebuild these nodes (ids, or image and task names for all their nodes) whatever their
    /// state.
    #[arg(long, value_name = "NODE", num_args = 1..)]
    force: Vec<String>,
    /// Rebuild the nodes this schedule names; their dependents follow.
    #[arg(long, value_name = "NAME")]
    schedule: Option<String>,
    /// Only this group's images and tasks and everything they depend on (built as needed);
    /// `--force` and `--schedule` still decide what rebuilds inside it.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Only these nodes (ids, or image and task names); their dependencies must be built
    /// already (here, or found in the registry). What a CI job per node runs.
    #[arg(long, value_name = "NODE", num_args = 1..)]
    only: Vec<String>,
    /// `--only` takes node ids only: `--exact --only curl` is curl's manifest alone, not every
    /// node of the image curl (what generated CI jobs say).
    #[arg(long, requires = "only")]
    exact: bool,
    /// Ask registries again where external base images' tags (`FROM alpine:3.20`) point now,
    /// and rebuild what is built on a moved one.
    #[arg(long)]
    refresh: bool,
    /// Only the nodes whose inputs changed since this git revision, and their dependents.
    #[arg(long, value_name = "REV")]
    since: Option<String>,
    /// Use no network: no registry lookups (images built elsewhere, base image tags), no
    /// `git ls-remote` (upstream refs resolve to the commits last fetched here).
    #[arg(long, env = "HEPHY_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    offline: bool,
}

impl SelectArgs {
    fn selection(&self) -> Selection {
        Selection {
            force: self.force.clone(),
            schedule: self.schedule.clone(),
            offline: self.offline,
            since: self.since.clone(),
            only: self.only.clone(),
            exact: self.exact,
            refresh: self.refresh,
            group: self.group.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CiSystem {
    /// A GitLab pipeline: the parent to commit, or with `--static` the child of this plan.
    Gitlab,
    /// A GitHub Actions workflow.
    Github,
    /// The dynamic GitHub workflow's plan step: each level's jobs, as `$GITHUB_OUTPUT` lines.
    Matrix,
    /// A job's registry login: the CI's credentials for the graph's registry (`CI_REGISTRY*`,
    /// `GITHUB_TOKEN` for ghcr.io, ECR's helper) into Docker's `config.json`.
    Login,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ImportFrom {
    /// A repository in the kaniko-builder layout.
    KanikoBuilder,
    /// A `docker buildx bake` file.
    Bake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ImportFormat {
    Kdl,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Json,
    Html,
}

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
        Command::Show { image, file, format } => {
            load(file)?;
            print(&show::show(
                &graph_path(file)?,
                &file.overrides()?,
                image,
                *format == Format::Json,
                style,
            )?);
        }
        Command::Check(file) => check_command(file, quiet)?,
        Command::Plan { file, state, select, format, wide, changed } => {
            plan_command(file, state, select, format, wide, *changed, style)?
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
            let flags = RunFlags {
                jobs: *jobs,
                fail_fast: *fail_fast,
                verbose: *verbose,
                no_push: *no_push,
                quiet,
                wide: *wide,
            };
            run_command(file, state, select, &flags, lock_timeout, format, style)?
        }
        Command::RemoteBuild => remote_build_command()?,
        Command::Ci { system, file, state, select, setup, output, fixed, levels, max_jobs } => {
            ci_command(system, file, state, select, setup, output, *fixed, *levels, *max_jobs)?
        }
        Command::Explain { node, file, state, run, format } => {
            explain_view::command(node, file, state, *run, *format)?;
        }
        Command::Log { file, state, limit, format } => log_command(file, state, limit, format)?,
        Command::Import { dir, from, format, output, env_frozen } => {
            import_command(dir, from, format, output, *env_frozen)?
        }
        Command::Gc { file, state, lock_timeout, registry, keep } => {
            gc(file, state, *lock_timeout, registry.then_some(*keep))?
        }
        Command::Init { dir, format, stdout } => init(dir, *format, *stdout)?,
        Command::Completions { shell } => completions_command(*shell)?,
        Command::Man { command, output } => manual::command(command.as_deref(), output.as_deref())?,
        Command::Schema => print(&schema::text()),
        Command::Key { action: KeyCommand::Generate { dir } } => supply::generate(dir)?,
        Command::Verify { image, key } => supply::verify(image, key, style)?,
        Command::Graph { file, state, select, format, output } => {
            graph_command(file, state, select, format, output)?
        }
    }
    Ok(())
}

/// `hephy remote-build`: builds the bundle on stdin, prints the pushed digest.
fn remote_build_command() -> Result<(), Failure> {
    let stdin = std::io::stdin().lock();
    if let Err(message) = hephy_stdlib::serve_remote_build(stdin, std::io::stdout().lock()) {
        eprintln!("hephy remote-build: {}", style::clean(&message.to_string()));
        return Err(Failure::Build);
    }
    Ok(())
}

/// `hephy completions SHELL`: the shell's completion script.
fn completions_command(shell: clap_complete::Shell) -> Result<(), Failure> {
    use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Zsh => &Zsh,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::PowerShell => &Powershell,
        other => {
            return Err(Failure::Input(Problems::single(
                "hephy",
                Problem::new(Code::InvalidValue, format!("no completion for the shell `{other}`"))
                    .help("the shells are bash, zsh, fish, elvish and powershell"),
            )));
        }
    };
    // The script asks `hephy` itself (found on PATH) for each completion, so it knows the
    // graph's names and never goes stale.
    let mut out = Vec::new();
    completer
        .write_registration("COMPLETE", "hephy", "hephy", "hephy", &mut out)
        .map_err(|e| Failure::Input(Problems::single("hephy", Problem::new(Code::Io, e.to_string()))))?;
    print(&String::from_utf8_lossy(&out));
    Ok(())
}

/// `hephy check`: validates the graph file and reports every problem in it.
fn check_command(file: &FileArg, quiet: bool) -> Result<(), Failure> {
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

/// `hephy plan`: the stamp's answer when it holds, else the planner's plan, rendered; leaves or removes the stamp.
fn plan_command(
    file: &FileArg,
    state: &StateArg,
    select: &SelectArgs,
    format: &Format,
    wide: &bool,
    changed: bool,
    style: Style,
) -> Result<(), Failure> {
    let mut clock = session::Clock::new();
    let path = graph_path(file)?;
    let selection = select.selection();
    let json = *format == Format::Json;
    let width = if *wide || json { None } else { style::stdout_width() };
    let fitted = style.fitting(width);
    // Overridden variables are not in the stamp: plan in full, leave no stamp.
    let overrides = file.overrides()?;
    let cache = hephy_engine::PlanCache::new(&path, state.dir.as_deref());
    // Before the stamp's registry recheck, the first request that may need a login.
    hephy_stdlib::remember_helper_failures_in(&hephy_engine::graph_state_dir(&path, state.dir.as_deref()));
    let cached = || cache.answer(&selection, fitted.color(), json, &hephy_stdlib::RegistryRecheck);
    // The stamp keeps the whole plan: `--changed` plans, shows part of it and leaves the stamp.
    if let Some(answer) = if overrides.is_empty() && !changed { cached() } else { None } {
        let (text, how) = match answer {
            hephy_engine::Answer::Unchanged(text) => (text, "unchanged since the last plan"),
            hephy_engine::Answer::Replanned(steps) => {
                (plan_view::replanned(&path.display().to_string(), &steps, fitted), "replanned from the memo")
            }
        };
        // The stamp keeps the whole table; one too wide for this terminal is planned
        // again below, to fit.
        let fits = width.is_none_or(|w| text.lines().all(|l| style::visible_width(l) <= w));
        if fits {
            clock.lap(how);
            print(&text);
            return Ok(());
        }
    }
    let model = load_path(&path, &overrides)?;
    clock.lap("load");
    let mut session = Session::open(model, state.dir.as_deref(), &selection)?;
    if let Some(scope) = &session.scope {
        // Nodes outside the group are left out of the plan shown.
        session.plan.retain_nodes(scope);
    }
    if changed {
        plan_view::retain_changed(&mut session.plan);
    }
    let mut clock = session::Clock::new();
    let shown = if json { plan_view::json(&session) } else { plan_view::text(&session, fitted) };
    clock.lap("render");
    print(&shown);
    clock.lap("print");
    if changed {
        return Ok(());
    }
    if overrides.is_empty() && hephy_engine::worth_remembering(session.stampable, &session.plan) {
        // The stamp keeps the whole table, whatever this terminal's width.
        let text = if json || width.is_some() { plan_view::text(&session, style) } else { shown.clone() };
        let json = if json { shown } else { plan_view::json(&session) };
        let rendered =
            hephy_engine::Rendered { color: style.color(), text, json, images: all_fresh_images(&session) };
        hephy_engine::PlanCache::remember(&session.stamped(&path), &rendered);
    } else {
        hephy_engine::PlanCache::forget(&session.state_dir, &selection);
    }
    clock.lap("stamp");
    Ok(())
}

/// `hephy run`'s flags about how it runs.
struct RunFlags {
    jobs: Option<usize>,
    fail_fast: bool,
    verbose: bool,
    /// `--no-push`: the graph as if it named no registry.
    no_push: bool,
    /// `-q`: failures and the summary line only.
    quiet: bool,
    /// `--wide`: whole digests in the list of images.
    wide: bool,
}

/// `hephy run`: under the run lock, a run that builds nothing when the stamp holds, else plans and runs.
fn run_command(
    file: &FileArg,
    state: &StateArg,
    select: &SelectArgs,
    flags: &RunFlags,
    lock_timeout: &f64,
    format: &Format,
    style: Style,
) -> Result<(), Failure> {
    let RunFlags { jobs, fail_fast, verbose, no_push, quiet, wide } = flags;
    let path = graph_path(file)?;
    let selection = select.selection();
    let cache = hephy_engine::PlanCache::new(&path, state.dir.as_deref());
    let dir = hephy_engine::graph_state_dir(&path, state.dir.as_deref());
    hephy_stdlib::remember_helper_failures_in(&dir);
    // `NaN` parses as an f64 too: treat anything not a finite number of seconds as none.
    let secs = if lock_timeout.is_finite() { lock_timeout.clamp(0.0, 86_400.0) } else { 0.0 };
    let timeout = Duration::from_secs_f64(secs);
    let live = *format == Format::Text && std::io::stdout().is_terminal() && !*verbose && !*quiet;
    let mut reporter: Box<dyn Reporter> = match format {
        Format::Json => Box::new(report::Json),
        Format::Text if *quiet => Box::new(report::Quiet::new(style)),
        Format::Text if live => Box::new(report::Live::new(style, report::Context::default())),
        Format::Text => Box::new(report::Lines::new(style, report::Context::default(), *verbose)),
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let overrides = file.overrides()?;
    // The stamp is of the graph as written: a run without its registries neither reads nor
    // leaves one.
    let stamped = overrides.is_empty() && !no_push;
    if path.is_file() && stamped {
        let _lock = RunLock::acquire(&dir, timeout).map_err(Failure::State)?;
        // Nothing changed since the last all-fresh plan: a run that builds nothing,
        // recorded as such, without planning again.
        if let Some(nothing) = cache.nothing_to_do(&selection, style.color(), &hephy_stdlib::RegistryRecheck)
        {
            hephy_stdlib::clean_temporaries(&dir);
            let run_id = record_nothing_to_do(&dir, &command, nothing, reporter.as_mut(), *format, *wide)?;
            cache.advance(run_id);
            return Ok(());
        }
    }
    let mut model = load_path(&path, &overrides)?;
    if *no_push {
        model.without_registries();
    }
    let _lock = RunLock::acquire(&dir, timeout).map_err(Failure::State)?;
    let mut session = Session::open(model, state.dir.as_deref(), &selection)?;
    // Under the lock: temporaries a killed run left go, and the layout names every
    // image the state records (a damaged `index.json` is rebuilt, never truncated).
    if let Err(e) =
        hephy_stdlib::prepare_layout(&session.model, &session.graph, &session.snapshot, &session.state_dir)
    {
        eprintln!("warning: the image layout cannot be repaired: {}", style::clean(&e.to_string()));
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let signal = cancel_on_signals(&cancel);
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let context = run_context(&session, jobs);
    reporter = match format {
        Format::Json => reporter,
        Format::Text if *quiet => reporter,
        Format::Text if live => Box::new(report::Live::new(style, context)),
        Format::Text => Box::new(report::Lines::new(style, context, *verbose)),
    };
    let options = RunOptions {
        jobs,
        fail_fast: *fail_fast,
        // The live view shows each running node's last line of output.
        verbose: *verbose || live,
        state_dir: session.state_dir.clone(),
        command,
    };
    let Session { model, graph, plan, snapshot, state, exclusions, state_dir, upstreams, .. } = &mut session;
    let work = hephy_stdlib::Stdlib::new(model, state_dir, exclusions.clone(), upstreams.clone());
    let summary =
        hephy_engine::run(model, graph, plan, snapshot, state, &work, reporter.as_mut(), &options, &cancel)
            .map_err(Failure::State)?;
    if matches!(format, Format::Text) && !summary.interrupted && !*quiet {
        let images = images_text(model, graph, state, state_dir, &summary.results);
        print(&style::clean(&report::digests(&images, *wide)));
    }
    // A run that built nothing leaves the plan's stamp, so the next run or plan is quick.
    if summary.built == 0 && summary.failed == 0 && summary.skipped == 0 && !summary.interrupted {
        let session = &session;
        if stamped && hephy_engine::worth_remembering(session.stampable, &session.plan) {
            let rendered = hephy_engine::Rendered {
                color: style.color(),
                text: plan_view::text(session, style),
                json: plan_view::json(session),
                images: all_fresh_images(session),
            };
            hephy_engine::PlanCache::remember(&session.stamped(&path), &rendered);
        }
    } else if summary.failed == 0
        && summary.skipped == 0
        && !summary.interrupted
        && stamped
        && session.stampable
        && session.model.registry.is_none()
    {
        // A run that built all its plan asked leaves the stamp of the plan after it (built
        // images' keys hold their dependencies' new outputs), so that the next plan after an
        // edit is worked out from the memo rather than planned in full. Not with a registry:
        // its stamp has no memo, and planning again would ask the registry again.
        let (model, state_dir) = (session.model.clone(), session.state_dir.clone());
        drop(session);
        let Ok(after) = Session::open(model, Some(&state_dir), &selection) else { return Ok(()) };
        if hephy_engine::worth_remembering(after.stampable, &after.plan) {
            let rendered = hephy_engine::Rendered {
                color: style.color(),
                text: plan_view::text(&after, style),
                json: plan_view::json(&after),
                images: all_fresh_images(&after),
            };
            hephy_engine::PlanCache::remember(&after.stamped(&path), &rendered);
        }
        return Ok(());
    }
    if summary.interrupted {
        let signal = u8::try_from(signal.load(Ordering::SeqCst)).unwrap_or(0);
        return Err(Failure::Interrupted { signal: if signal == 0 { 2 } else { signal } });
    }
    if summary.failed > 0 {
        return Err(Failure::Build);
    }
    Ok(())
}

/// `hephy ci`: a CI pipeline for the current plan.
#[allow(clippy::too_many_arguments)]
fn ci_command(
    system: &CiSystem,
    file: &FileArg,
    state: &StateArg,
    select: &SelectArgs,
    setup: &Option<String>,
    output: &Option<PathBuf>,
    fixed: bool,
    levels: u16,
    max_jobs: u16,
) -> Result<(), Failure> {
    if !file.set.is_empty() {
        // The jobs run `hephy run -f FILE` without the generator's `--set`.
        return Err(Failure::Input(Problems::single(
            "--set",
            Problem::new(Code::Conflict, "`hephy ci` does not carry `--set` into the jobs it writes")
                .help("set the variables in the pipeline's environment (`HEPHY_VAR_NAME`) for the generator and every job alike"),
        )));
    }
    let model = load(file)?;
    let graph_file = file.file.as_ref().map(|f| f.to_string_lossy().into_owned());
    let selection = select.selection();
    let options = ci::Options {
        graph_file: graph_file.as_deref(),
        selection: &selection,
        setup: setup.as_deref(),
        form: if fixed { ci::Form::Static } else { ci::Form::Dynamic },
        levels: usize::from(levels),
        max_jobs: usize::from(max_jobs),
    };
    let system = match system {
        CiSystem::Gitlab => ci::System::Gitlab,
        CiSystem::Github => ci::System::Github,
        CiSystem::Matrix => ci::System::Matrix,
        CiSystem::Login => ci::System::Login,
    };
    let text = ci::write(model, state.dir.as_deref(), system, &options)?;
    emit(output.as_deref(), &text)?;
    Ok(())
}

/// `hephy log`: the past runs.
fn log_command(file: &FileArg, state: &StateArg, limit: &usize, format: &Format) -> Result<(), Failure> {
    let model = load(file)?;
    let store = State::open(&session::state_dir(&model, state.dir.as_deref())).map_err(Failure::State)?;
    let runs = store.runs(*limit).map_err(Failure::State)?;
    print(&match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&runs).unwrap_or_default()),
        Format::Text => style::clean(&log_text(&runs)).into_owned(),
    });
    Ok(())
}

/// `hephy import`: the graph file of a kaniko-builder repository or a bake file.
fn import_command(
    dir: &Path,
    from: &ImportFrom,
    format: &ImportFormat,
    output: &Option<PathBuf>,
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
        ImportFrom::KanikoBuilder => import::import(dir, syntax).map_err(usage)?,
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

/// `hephy graph`: the build graph, marked with the plan.
fn graph_command(
    file: &FileArg,
    state: &StateArg,
    select: &SelectArgs,
    format: &GraphFormat,
    output: &Option<PathBuf>,
) -> Result<(), Failure> {
    let model = load(file)?;
    let session = Session::open(model, state.dir.as_deref(), &select.selection())?;
    let marks = graph_marks(&session);
    let graph = &session.graph;
    let text = match format {
        GraphFormat::Dot => graph_view::dot(graph, &marks),
        GraphFormat::Mermaid => graph_view::mermaid(graph, &marks),
        GraphFormat::Json => graph_view::json(graph, &marks),
        GraphFormat::Html => graph_view::html(graph, &marks, &session.model.path().display().to_string()),
    };
    emit(output.as_deref(), &text)?;
    Ok(())
}

/// `hephy init`: finds the Dockerfiles, writes the graph (never over an existing one), then
/// checks it like any graph file.
fn init(dir: &Path, format: ImportFormat, stdout: bool) -> Result<(), Failure> {
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

/// `hephy gc`: under the run lock, removes the blobs no recorded image references.
/// With `registry` (`--keep N`), prunes the graph's registry's cache records instead.
fn gc(file: &FileArg, state: &StateArg, lock_timeout: f64, registry: Option<usize>) -> Result<(), Failure> {
    let path = graph_path(file)?;
    let dir = hephy_engine::graph_state_dir(&path, state.dir.as_deref());
    let secs = if lock_timeout.is_finite() { lock_timeout.clamp(0.0, 86_400.0) } else { 0.0 };
    let _lock = RunLock::acquire(&dir, Duration::from_secs_f64(secs)).map_err(Failure::State)?;
    let snapshot = State::open(&dir).and_then(|s| s.snapshot()).map_err(Failure::State)?;
    if let Some(keep) = registry {
        let model = load(file)?;
        print(&registry_gc::prune(&model, &snapshot, keep, &dir)?);
        return Ok(());
    }
    let collected = hephy_stdlib::collect_garbage(&snapshot, &dir).map_err(|message| {
        Failure::Input(Problems::single(
            "hephy",
            Problem::new(Code::Io, message)
                .help("nothing was removed; run `hephy run`, then `hephy gc` again"),
        ))
    })?;
    #[expect(clippy::cast_precision_loss, reason = "a size shown in MB")]
    let megabytes = collected.bytes as f64 / 1_000_000.0;
    let damaged = match collected.damaged {
        0 => String::new(),
        n => format!(" ({n} of them damaged: the next `hephy run` rebuilds what needed them)"),
    };
    let scratch = match collected.scratch {
        0 => String::new(),
        n => format!("; removed {n} scratch folders and files killed runs left"),
    };
    print(&format!(
        "removed {} files ({megabytes:.1} MB) from `{}`{damaged}; kept {} blobs{scratch}\n",
        collected.files,
        dir.strip_prefix(".").unwrap_or(&dir).join("oci").display(),
        collected.kept
    ));
    Ok(())
}

fn log_text(runs: &[hephy_engine::RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs yet\n".to_owned();
    }
    let mut out = String::new();
    for run in runs {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(run.started_at).unwrap_or(0)),
        );
        let took = run.finished_at.map_or_else(|| "-".to_owned(), |f| format!("{}s", f - run.started_at));
        let mut counts: Vec<String> = run.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        counts.sort();
        out.push_str(&format!(
            "run {:<4} {when}  {:<11} {:>5}  {}\n",
            run.id,
            run.status,
            took,
            counts.join(", ")
        ));
    }
    out
}

/// What `hephy graph` marks each node with: the plan's action and reasons, and the last run.
fn graph_marks(session: &Session) -> graph_view::Marks {
    let last: std::collections::HashMap<String, String> = session
        .state
        .last_run()
        .ok()
        .flatten()
        .and_then(|run| session.state.run_nodes(run).ok().flatten())
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.node, n.result.to_string()))
        .collect();
    let mut built = std::collections::HashMap::new();
    session
        .plan
        .steps
        .iter()
        .map(|step| {
            let id = session.graph.node(step.node).id.as_str();
            let record = session.snapshot.records.get(id);
            let mark = graph_view::Mark {
                action: plan_view::action_word(session.graph.node(step.node).kind, step.action),
                reasons: step.reasons.iter().map(ToString::to_string).collect(),
                // Not in the last run (fresh there): how the run that built it ended it.
                last_result: last.get(id).cloned().or_else(|| {
                    let run = record?.run_id;
                    built.entry(run).or_insert_with(|| run_results(&session.state, run)).get(id).cloned()
                }),
                duration_ms: record.map(|r| r.duration_ms),
                output: record.map(|r| r.output.clone()).filter(|o| !o.is_empty()),
            };
            (step.node, mark)
        })
        .collect()
}

/// How each node ended in run `run` (none if it cannot be read).
fn run_results(state: &State, run: i64) -> std::collections::HashMap<String, String> {
    let nodes = state.run_nodes(run).ok().flatten().unwrap_or_default();
    nodes.into_iter().map(|n| (n.node, n.result.to_string())).collect()
}

/// What the renderers of a run know before it starts: the nodes to build with their last build
/// times (the ETA) and their dependencies (the critical path), the parallelism.
fn run_context(session: &Session, jobs: usize) -> report::Context {
    let (graph, plan) = (&session.graph, &session.plan);
    // A node's last build time (none when it was found fresh, cut off or cached: 0 ms).
    let past = |id: &str| {
        session
            .snapshot
            .records
            .get(id)
            .and_then(|r| u64::try_from(r.duration_ms).ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis)
    };
    let medians = report::medians_by_kind(graph.order().iter().filter_map(|&i| {
        let node = graph.node(i);
        past(node.id.as_str()).map(|d| (node.kind.as_str(), d))
    }));
    let planned = plan
        .steps
        .iter()
        .filter(|s| s.action == hephy_engine::Action::Build)
        .map(|s| {
            let node = graph.node(s.node);
            let expected = past(node.id.as_str()).or_else(|| medians.get(node.kind.as_str()).copied());
            (node.id.to_string(), expected)
        })
        .collect();
    // Only nodes to build take time: the critical path runs through them alone.
    let deps = plan
        .steps
        .iter()
        .filter(|s| s.action == hephy_engine::Action::Build)
        .map(|s| {
            let id = graph.node(s.node).id.to_string();
            (id, graph.deps(s.node).iter().map(|&d| graph.node(d).id.to_string()).collect())
        })
        .collect();
    report::Context { planned, deps, jobs }
}

/// A run with nothing to do (the stamp holds): recorded, reported and printed as the ordinary
/// run would, without planning. Returns its id.
fn record_nothing_to_do(
    dir: &Path,
    command: &str,
    nothing: hephy_engine::NothingToDo,
    reporter: &mut dyn Reporter,
    format: Format,
    wide: bool,
) -> Result<i64, Failure> {
    let mut store = State::open(dir).map_err(Failure::State)?;
    let summary =
        hephy_engine::run_all_fresh(&mut store, command, nothing.nodes, reporter).map_err(Failure::State)?;
    if format == Format::Text {
        print(&report::digests(&nothing.images, wide));
    }
    Ok(summary.run_id)
}

/// Where the images are, as a run that finds everything fresh prints it.
fn all_fresh_images(session: &Session) -> String {
    let results = session
        .plan
        .steps
        .iter()
        .map(|s| (session.graph.node(s.node).id.to_string(), NodeStatus::Fresh))
        .collect();
    images_text(&session.model, &session.graph, &session.state, &session.state_dir, &results)
}

/// Where the images of a finished run are: one line per image (and target) the run built or
/// found fresh, with its extra tags.
fn images_text(
    model: &Model,
    graph: &hephy_engine::Graph,
    state: &State,
    state_dir: &std::path::Path,
    results: &std::collections::BTreeMap<String, NodeStatus>,
) -> String {
    let Ok(snapshot) = state.snapshot() else { return String::new() };
    let shown_dir = std::env::current_dir()
        .ok()
        .and_then(|cwd| state_dir.strip_prefix(&cwd).ok().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| state_dir.to_path_buf());
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for &index in graph.order() {
        let node = graph.node(index);
        let ran = results.get(node.id.as_str()).is_some_and(|r| r.has_output());
        if node.kind != hephy_engine::NodeKind::Manifest || !ran {
            continue;
        }
        let Some(record) = snapshot.records.get(node.id.as_str()) else { continue };
        if record.output.starts_with("local:") {
            continue;
        }
        // The tags as pushed: rendered from git and the plan (`{commit}`), not as written.
        let tags: Vec<String> = graph
            .dependents(index)
            .iter()
            .copied()
            .filter(|&i| graph.node(i).kind == hephy_engine::NodeKind::Tag)
            .map(|i| hephy_stdlib::pushed_tag(model, graph.node(i), state_dir))
            .collect();
        let location = hephy_stdlib::location(model, node, &record.output, &shown_dir);
        let mut detail = match (location.contains('@'), tags.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("tags: {}", tags.join(", ")),
            (false, true) => record.output.clone(),
            (false, false) => format!("{}  tags: {}", record.output, tags.join(", ")),
        };
        if !location.contains('@') {
            // The layout's name for the index names several images; a tool that unpacks one
            // (`umoci unpack`) needs a platform's own name.
            let platforms: Vec<String> = graph
                .deps(index)
                .iter()
                .map(|&d| graph.node(d))
                .filter(|d| d.kind == hephy_engine::NodeKind::Image)
                .map(|d| hephy_stdlib::location(model, d, "", &shown_dir))
                .filter_map(|l| l.rsplit(':').next().map(str::to_owned))
                .collect();
            if !platforms.is_empty() {
                detail.push_str(&format!("  platforms: {}", platforms.join(", ")));
            }
        }
        rows.push((node.id.to_string(), location, detail));
    }
    if rows.is_empty() {
        return String::new();
    }
    let id_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let location_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = String::from("images:\n");
    for (id, location, detail) in rows {
        out.push_str(format!("  {id:id_width$}  {location:location_width$}  {detail}").trim_end());
        out.push('\n');
    }
    out
}

/// `text` into the file `-o FILE` names, or on stdout.
fn emit(output: Option<&Path>, text: &str) -> Result<(), Failure> {
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
fn load(arg: &FileArg) -> Result<Model, Failure> {
    load_path(&graph_path(arg)?, &arg.overrides()?)
}

/// Sets `cancel` on SIGINT, SIGTERM and SIGHUP (Ctrl-C, a CI job's cancellation, a closed
/// terminal): the run stops its tasks' process groups and is recorded as interrupted. The
/// answer holds the number of the signal that came.
fn cancel_on_signals(cancel: &Arc<AtomicBool>) -> Arc<AtomicUsize> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let which = Arc::new(AtomicUsize::new(0));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let _ = signal_hook::flag::register(signal, Arc::clone(cancel));
        let _ = signal_hook::flag::register_usize(signal, Arc::clone(&which), signal.unsigned_abs() as usize);
    }
    which
}

/// The graph file: `-f FILE`, or the one in the current folder.
fn graph_path(arg: &FileArg) -> Result<PathBuf, Failure> {
    match &arg.file {
        Some(path) => Ok(path.clone()),
        None => discover(Path::new(".")).map_err(Failure::Input),
    }
}

/// Loads and checks the graph file at `path`.
/// Every problem is reported in one run: the builders' checks run on the model even when the
/// language found problems, where the file could be read through.
fn load_path(path: &Path, overrides: &hephy_dsl::Overrides) -> Result<Model, Failure> {
    match hephy_dsl::load_partial_with(path, overrides) {
        (Some(mut model), None) => {
            hephy_stdlib::resolve_auto(&mut model);
            hephy_stdlib::check(&model).map_err(Failure::Input)?;
            Ok(model)
        }
        (Some(mut model), Some(problems)) => {
            hephy_stdlib::resolve_auto(&mut model);
            Err(Failure::Input(match hephy_stdlib::check(&model) {
                Ok(()) => problems,
                Err(later) => problems.and(later),
            }))
        }
        (None, problems) => Err(Failure::Input(problems.unwrap_or_else(|| {
            Problems::single(
                &path.display().to_string(),
                Problem::new(Code::Io, "the graph file could not be read"),
            )
        }))),
    }
}

/// Checks graph text not (yet) on disk as [`load_path`] checks a file; relative paths resolve
/// against `root`.
fn check_text(source: hephy_dsl::SourceFile, root: &Path) -> Result<Model, Failure> {
    let mut model = hephy_dsl::parse(source, root).map_err(Failure::Input)?;
    hephy_stdlib::resolve_auto(&mut model);
    hephy_stdlib::check(&model).map_err(Failure::Input)?;
    Ok(model)
}

/// `hephy.kdl` or `hephy.yaml` in `dir`: exactly one of them.
fn discover(dir: &Path) -> Result<PathBuf, Problems> {
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
