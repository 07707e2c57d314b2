//! The command line's clap types: every command, flag and argument, and their help texts
//! (which `hephy man` and shell completion read too).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::Failure;
use crate::explain_view;
use crate::session::Selection;

/// hephy: a build-graph engine for container images.
#[derive(Debug, Parser)]
#[command(name = "hephy", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// When to colour output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub(crate) color: ColorChoice,
    /// The graph file, for every command that reads one (`hephy -f FILE plan` is
    /// `hephy plan -f FILE`).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Run as if hephy had been started in DIR (`hephy -C images plan`, as `git -C`).
    #[arg(short = 'C', value_name = "DIR", global = true, value_hint = clap::ValueHint::DirPath)]
    pub(crate) directory: Option<PathBuf>,
    /// Print only problems and the outcome: no progress and no per-node lines (`run`), no
    /// report of the images built, no `ok` (`check`).
    #[arg(short = 'q', long, global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
        system: crate::ci::System,
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
pub(crate) enum KeyCommand {
    /// Write `cosign.key` (encrypted with `COSIGN_PASSWORD`) and `cosign.pub` into DIR, as
    /// `cosign generate-key-pair` does; never over existing files.
    Generate {
        /// The folder (default: the current one; created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct FileArg {
    /// The graph file (default: `hephy.kdl` or `hephy.yaml` in the current folder).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Set a variable (`NAME=VALUE`) or one image's setting (`image.NAME.FIELD=VALUE`);
    /// `HEPHY_VAR_NAME` in the environment sets a variable too.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub(crate) set: Vec<String>,
}

impl FileArg {
    /// `--set` and the environment's `HEPHY_VAR_*`.
    pub(crate) fn overrides(&self) -> Result<hephy_dsl::Overrides, Failure> {
        // `vars_os`: a variable that is not UTF-8 is skipped, never a panic.
        let env =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        hephy_dsl::Overrides::new(&self.set, env).map_err(Failure::Input)
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct StateArg {
    /// The state folder (default: `.hephy` beside the graph file).
    #[arg(long = "state", value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SelectArgs {
    /// Rebuild these nodes (ids, or image and task names for all their nodes) whatever their
    /// state.
    #[arg(long, value_name = "NODE", num_args = 1..)]
    pub(crate) force: Vec<String>,
    /// Rebuild the nodes this schedule names; their dependents follow.
    #[arg(long, value_name = "NAME")]
    pub(crate) schedule: Option<String>,
    /// Only this group's images and tasks and everything they depend on (built as needed);
    /// `--force` and `--schedule` still decide what rebuilds inside it.
    #[arg(long, value_name = "NAME")]
    pub(crate) group: Option<String>,
    /// Only these nodes (ids, or image and task names); their dependencies must be built
    /// already (here, or found in the registry). What a CI job per node runs.
    #[arg(long, value_name = "NODE", num_args = 1..)]
    pub(crate) only: Vec<String>,
    /// `--only` takes node ids only: `--exact --only curl` is curl's manifest alone, not every
    /// node of the image curl (what generated CI jobs say).
    #[arg(long, requires = "only")]
    pub(crate) exact: bool,
    /// Ask registries again where external base images' tags (`FROM alpine:3.20`) point now,
    /// and rebuild what is built on a moved one.
    #[arg(long)]
    pub(crate) refresh: bool,
    /// Only the nodes whose inputs changed since this git revision, and their dependents.
    #[arg(long, value_name = "REV")]
    pub(crate) since: Option<String>,
    /// Use no network: no registry lookups (images built elsewhere, base image tags), no
    /// `git ls-remote` (upstream refs resolve to the commits last fetched here).
    #[arg(long, env = "HEPHY_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) offline: bool,
}

impl SelectArgs {
    pub(crate) fn selection(&self) -> Selection {
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
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ImportFrom {
    /// A repository in the kaniko-builder layout.
    KanikoBuilder,
    /// A `docker buildx bake` file.
    Bake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ImportFormat {
    Kdl,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    Dot,
    Mermaid,
    Json,
    Html,
}
