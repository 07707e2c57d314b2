//! Shell completion as the shell asks for it (`COMPLETE=bash hephy -- hephy run --force <TAB>`,
//! clap_complete's dynamic completion): commands and flags from the command-line definition,
//! hidden commands left out, and the values only the graph knows — node ids with image and task
//! names (`--force`, `--only`, `explain`), image names (`show`), group names (`--group`) and
//! schedule names (`--schedule`) — read from the graph file found from the current folder.

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use hephy_dsl::Model;

use crate::Cli;

/// What a flag or an argument completes to.
#[derive(Clone, Copy)]
enum Names {
    /// Node ids, and image and task names (each meaning all their nodes).
    Nodes,
    /// Image names.
    Images,
    /// Group names.
    Groups,
    /// Schedule names.
    Schedules,
}

/// The arguments (by id, in every command that has them) and what each completes to.
const COMPLETED: &[(&str, Names)] = &[
    ("force", Names::Nodes),
    ("only", Names::Nodes),
    ("node", Names::Nodes),
    ("image", Names::Images),
    ("group", Names::Groups),
    ("schedule", Names::Schedules),
];

/// The command-line definition with the graph's names attached to the arguments that take them.
pub(crate) fn command() -> clap::Command {
    let mut cli = Cli::command();
    let names: Vec<String> = cli.get_subcommands().map(|c| c.get_name().to_owned()).collect();
    for name in names {
        cli = cli.mut_subcommand(name, |mut sub| {
            for &(id, names) in COMPLETED {
                if sub.get_arguments().any(|a| a.get_id() == id) {
                    sub = sub.mut_arg(id, |arg| arg.add(ArgValueCandidates::new(move || candidates(names))));
                }
            }
            sub
        });
    }
    cli
}

/// The names of the graph file found from the current folder; none when there is no graph or it
/// cannot be read (completion never prints an error).
fn candidates(names: Names) -> Vec<CompletionCandidate> {
    let Ok(path) = crate::discover(std::path::Path::new(".")) else { return Vec::new() };
    let (Some(model), _) = hephy_dsl::load_partial_with(&path, &hephy_dsl::Overrides::default()) else {
        return Vec::new();
    };
    listed(&model, names).into_iter().map(CompletionCandidate::new).collect()
}

fn listed(model: &Model, names: Names) -> Vec<String> {
    let mut out: Vec<String> = match names {
        Names::Images => model.images.iter().map(|i| i.name.value.clone()).collect(),
        Names::Groups => model.groups.iter().map(|g| g.name.value.clone()).collect(),
        Names::Schedules => model.schedules.iter().map(|s| s.name.value.clone()).collect(),
        Names::Nodes => {
            let graph = hephy_engine::compile(model);
            let mut all: Vec<String> = model.images.iter().map(|i| i.name.value.clone()).collect();
            all.extend(model.tasks.iter().map(|t| t.name.value.clone()));
            all.extend(graph.order().iter().map(|&n| graph.node(n).id.as_str().to_owned()));
            all
        }
    };
    out.sort();
    out.dedup();
    out
}
