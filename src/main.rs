//! The `hephy` command line: argument parsing, graph-file discovery, exit codes.
//!
//! Owns the commands and how their results reach the user; the work itself is in `hephy-dsl`
//! (the language) and `hephy-engine` (graph and plan). Exit codes: 0 ok, 1 a build failed,
//! 2 bad input or usage.

mod diagnostics;
mod graph_view;
mod plan_view;
mod style;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hephy_dsl::{Code, Model, Problem, Problems};

use crate::style::Style;

/// hephy: a build-graph engine for container images.
#[derive(Debug, Parser)]
#[command(name = "hephy", version, about, propagate_version = true)]
struct Cli {
    /// When to colour output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
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
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Export the build graph.
    Graph {
        #[command(flatten)]
        file: FileArg,
        /// Output format.
        #[arg(long, value_enum)]
        format: GraphFormat,
    },
}

#[derive(Debug, clap::Args)]
struct FileArg {
    /// The graph file (default: `hephy.kdl` or `hephy.yaml` in the current folder).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

/// Bad input or usage.
const EXIT_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out_style = Style::for_stdout(cli.color == ColorChoice::Always, cli.color == ColorChoice::Never);
    let err_color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => style::stderr_wants_color(),
    };
    let result = match &cli.command {
        Command::Check(file) => load(file).map(|model| {
            let graph = hephy_engine::compile(&model);
            println!("{}: ok ({} nodes)", model.path().display(), graph.len());
        }),
        Command::Plan { file, format } => load(file).map(|model| {
            let graph = hephy_engine::compile(&model);
            let plan = hephy_engine::plan(&graph);
            let text = match format {
                PlanFormat::Text => plan_view::text(&model, &graph, &plan, out_style),
                PlanFormat::Json => plan_view::json(&graph, &plan),
            };
            print(&text);
        }),
        Command::Graph { file, format } => load(file).map(|model| {
            let graph = hephy_engine::compile(&model);
            let text = match format {
                GraphFormat::Dot => graph_view::dot(&graph),
                GraphFormat::Mermaid => graph_view::mermaid(&graph),
                GraphFormat::Json => graph_view::json(&graph),
            };
            print(&text);
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(problems) => {
            diagnostics::report(&problems, err_color);
            ExitCode::from(EXIT_INPUT)
        }
    }
}

fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`hephy plan | head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// Finds and loads the graph file.
fn load(arg: &FileArg) -> Result<Model, Problems> {
    let path = match &arg.file {
        Some(path) => path.clone(),
        None => discover(Path::new("."))?,
    };
    hephy_dsl::load(&path)
}

/// `hephy.kdl` or `hephy.yaml` in `dir`: exactly one of them.
fn discover(dir: &Path) -> Result<PathBuf, Problems> {
    let found: Vec<&str> = hephy_dsl::DEFAULT_FILES.into_iter().filter(|f| dir.join(f).is_file()).collect();
    match found.as_slice() {
        [one] => Ok(PathBuf::from(one)),
        [] => Err(diagnostics::single(
            "hephy",
            Problem::new(Code::Io, "no graph file here: neither `hephy.kdl` nor `hephy.yaml` exists")
                .help("create one, or name it with `-f FILE`"),
        )),
        _ => Err(diagnostics::single(
            "hephy",
            Problem::new(Code::Conflict, "both `hephy.kdl` and `hephy.yaml` exist here")
                .help("remove one of them, or choose with `-f FILE`"),
        )),
    }
}
