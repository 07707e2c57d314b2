//! `hephy ci gitlab|github|matrix`: CI pipelines for a graph.
//!
//! Two forms. The default is the file to commit once: a GitHub workflow whose first job runs
//! `hephy ci matrix` and feeds one matrix job per dependency level (so the workflow never
//! needs regenerating when images come and go), or a GitLab parent pipeline whose first job
//! writes the static child pipeline of that moment's plan and triggers it. `--static` writes
//! the jobs of the current plan themselves: manifests and tags folded into one publish job per
//! image, `needs` exactly the jobs that hold a dependency, batched by level and executor when
//! there are more than `--max-jobs` (see [`layout`]). The first job of every pipeline fixes
//! the date (`HEPHY_DATE`, UTC `YYYYMMDD`) and hands it to every later job, so that all of
//! them push the same `{date}`. The registry carries every result between jobs (a job's
//! dependencies are found there by their key tags). Files are YAML with JSON-quoted strings,
//! so no name or command can change their structure.

mod github;
mod gitlab;
mod layout;
mod setup;

use std::collections::HashMap;
use std::path::Path;

use hephy_dsl::{Code, Model, Problem, Problems};
use hephy_engine::{Action, NodeKind};

use crate::Failure;
use crate::session::{Selection, Session};

pub(crate) use layout::{Layout, OverBudget};

/// What `hephy ci` writes (`hephy ci SYSTEM`: each variant's comment is its help text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum System {
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

/// Which pipeline: the one to commit, or the current plan's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// Plans when it runs: a plan job, then the jobs it chose (the default).
    Dynamic,
    /// The jobs of the plan made now.
    Static,
}

/// What a generated pipeline needs to know beyond the plan.
pub(crate) struct Options<'a> {
    /// The graph file as the job should name it (`-f`), relative to the repository.
    pub(crate) graph_file: Option<&'a str>,
    /// The selection the plan was made with; jobs repeat its forcing flags.
    pub(crate) selection: &'a Selection,
    /// A command run before hephy in every job (installing it, logging in).
    pub(crate) setup: Option<&'a str>,
    pub(crate) form: Form,
    /// The matrix jobs the dynamic GitHub workflow has: the deepest plan it can run.
    pub(crate) levels: usize,
    /// The most jobs one pipeline may have (GitHub's cap is 256 per workflow run).
    pub(crate) max_jobs: usize,
}

/// Why no pipeline was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Even one job per level and executor is more than `--max-jobs`.
    OverBudget(OverBudget),
    /// The plan has more dependency levels than the workflow has matrix jobs.
    TooDeep { needed: usize, levels: usize },
    /// `HEPHY_DATE` is set but is not a `YYYYMMDD` date (the message says so).
    BadDate(String),
}

impl Refusal {
    /// The message and its help.
    pub(crate) fn describe(&self) -> (String, String) {
        match self {
            Refusal::OverBudget(OverBudget { needed, budget }) => (
                format!("the plan needs at least {needed} jobs (one per dependency level and executor), more than the {budget} allowed"),
                "raise `--max-jobs` (GitHub runs at most 256 jobs per workflow run), or build fewer nodes at once (`--group`, `--since`)".to_owned(),
            ),
            Refusal::TooDeep { needed, levels } => (
                format!("the plan has {needed} dependency levels, but the workflow has matrix jobs for {levels}"),
                format!("write the workflow again with `hephy ci github --levels {needed}` (or more) and commit it"),
            ),
            Refusal::BadDate(message) => (
                message.clone(),
                "unset it (the pipeline's first job sets it), or set it to a UTC date such as `20260131`".to_owned(),
            ),
        }
    }
}

/// GitLab job names a pipeline cannot use for a job of ours.
const GITLAB_RESERVED: &[&str] = &[
    "image",
    "services",
    "stages",
    "types",
    "before_script",
    "after_script",
    "variables",
    "cache",
    "include",
    "default",
    "workflow",
    "pages",
    "true",
    "false",
    "nil",
];

/// A YAML double-quoted string ([`hephy_dsl::escape::yaml_string`]): every value a pipeline
/// file holds is written through it.
fn quoted(text: &str) -> String {
    hephy_dsl::escape::yaml_string(text)
}

/// A word for a POSIX shell command line, single-quoted.
fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The date every job of one pipeline pushes: the plan's `{date}` (`HEPHY_DATE` when set,
/// else today, UTC), checked where hephy reads it.
pub(crate) fn pipeline_date() -> Result<String, Refusal> {
    hephy_stdlib::plan_date().map_err(|bad| Refusal::BadDate(bad.to_string()))
}

/// The flags that repeat the plan's selection in a job's `hephy run` (or, with `plan` true,
/// in the command that plans: `--since` and `--group` too).
fn selection_words(options: &Options<'_>, plan: bool) -> Vec<String> {
    let mut words = Vec::new();
    if let Some(file) = options.graph_file {
        words.extend(["-f".to_owned(), shell_word(file)]);
    }
    let selection = options.selection;
    for force in &selection.force {
        words.extend(["--force".to_owned(), shell_word(force)]);
    }
    if let Some(schedule) = &selection.schedule {
        words.extend(["--schedule".to_owned(), shell_word(schedule)]);
    }
    if selection.refresh {
        words.push("--refresh".to_owned());
    }
    if plan {
        if let Some(since) = &selection.since {
            words.extend(["--since".to_owned(), shell_word(since)]);
        }
        if let Some(group) = &selection.group {
            words.extend(["--group".to_owned(), shell_word(group)]);
        }
    }
    words
}

/// In a pipeline that plans when it runs, the selection may also come from the CI when it
/// runs: `HEPHY_SINCE` (for the plan only) and `HEPHY_SCHEDULE` (for the plan and every job),
/// each when set and not empty, and not already given when the file was written. Shell words
/// that expand to nothing when the variable is unset.
fn runtime_selection(options: &Options<'_>, plan: bool) -> Vec<String> {
    let mut words = Vec::new();
    if plan && options.selection.since.is_none() {
        words.push(r#"${HEPHY_SINCE:+--since "$HEPHY_SINCE"}"#.to_owned());
    }
    if options.selection.schedule.is_none() {
        words.push(r#"${HEPHY_SCHEDULE:+--schedule "$HEPHY_SCHEDULE"}"#.to_owned());
    }
    words
}

/// `hephy run --exact --only` the nodes of one static job.
fn run_command(nodes: &[String], options: &Options<'_>) -> String {
    let mut words = vec!["hephy".to_owned(), "run".to_owned(), "--exact".to_owned(), "--only".to_owned()];
    words.extend(nodes.iter().map(|n| shell_word(n)));
    words.extend(selection_words(options, false));
    words.join(" ")
}

/// Each executor's runner labels on `system`.
fn runners(session: &Session, system: System) -> HashMap<&str, &[String]> {
    session
        .model
        .executors
        .iter()
        .map(|e| {
            let labels = match system {
                System::Gitlab => e.gitlab_tags.as_slice(),
                System::Github | System::Matrix | System::Login => e.runs_on.as_slice(),
            };
            (e.name.value.as_str(), labels)
        })
        .collect()
}

/// `hephy ci`: the pipeline (or, for [`System::Matrix`], the plan step's output) for `model`.
/// The pipelines to commit need no plan, only a graph that can share images; the others plan.
pub(crate) fn write(
    model: Model,
    state_dir: Option<&Path>,
    system: System,
    options: &Options<'_>,
) -> Result<String, Failure> {
    let path = model.path().display().to_string();
    let refused = |code: Code, (message, help): (String, String)| {
        Failure::Input(Problems::single(&path, Problem::new(code, message).help(help)))
    };
    let unshareable = |why: String| {
        refused(
            Code::Missing,
            (why, "each CI job runs on its own machine, and only a registry carries a built image to the jobs (and pipelines) after it: add `registry \"HOST/PREFIX\"` to the graph".to_owned()),
        )
    };
    if system == System::Login {
        let var = |name: &str| std::env::var(name).ok();
        return setup::login(&model, &var).map_err(|e| {
            refused(
                Code::InvalidValue,
                (
                    e.to_string(),
                    "fix or remove the file, or point `DOCKER_CONFIG` at a folder hephy may write".to_owned(),
                ),
            )
        });
    }
    let ghcr = model.registry.as_deref().is_some_and(|r| r.split('/').next() == Some("ghcr.io"));
    if options.form == Form::Dynamic && system != System::Matrix {
        if let Some(why) = unshareable_graph(&model) {
            return Err(unshareable(why));
        }
        let tools = setup::graph_tools(&model);
        return Ok(match system {
            System::Gitlab => gitlab::parent(options, &tools),
            _ => github::workflow(options, ghcr),
        });
    }
    let session = crate::session::open(model, state_dir, options.selection)?;
    if let Some(why) = unshareable_plan(&session) {
        return Err(unshareable(why));
    }
    render(&session, system, options, ghcr).map_err(|refusal| refused(Code::InvalidValue, refusal.describe()))
}

/// The static pipeline of `session`'s plan, or for [`System::Matrix`] the plan step's output.
fn render(session: &Session, system: System, options: &Options<'_>, ghcr: bool) -> Result<String, Refusal> {
    // Each form's budget leaves room for its jobs that are not the plan's: GitHub's date job,
    // the dynamic workflow's plan job and level jobs.
    let budget = match system {
        System::Gitlab => options.max_jobs,
        System::Github => options.max_jobs.saturating_sub(1),
        System::Matrix | System::Login => options.max_jobs.saturating_sub(1 + options.levels),
    };
    let layout = layout::layout(&session.graph, &session.plan, budget.max(1)).map_err(Refusal::OverBudget)?;
    let runners = runners(session, system);
    let tools: Vec<setup::Tools> =
        layout.entries.iter().map(|e| setup::tools(&session.model, &session.graph, &e.indices)).collect();
    match system {
        System::Gitlab => Ok(gitlab::child(&layout, &runners, &pipeline_date()?, options, &tools)),
        System::Github => Ok(github::static_workflow(&layout, &runners, options, &tools, ghcr)),
        System::Matrix | System::Login => {
            if layout.levels > options.levels {
                return Err(Refusal::TooDeep { needed: layout.levels, levels: options.levels });
            }
            Ok(github::matrix(&layout, &runners, &pipeline_date()?, options.levels, &tools))
        }
    }
}

/// A static pipeline's first lines: what wrote it and how many jobs it has (after `first`, a
/// job of its own that precedes them, if any).
fn header(command: &str, layout: &Layout, first: &str) -> String {
    if layout.entries.is_empty() {
        return format!("# Written by `hephy ci {command}`: every node is fresh, so one job that says so.\n");
    }
    let nodes: usize = layout.entries.iter().map(|e| e.nodes.len()).sum();
    let jobs = layout.entries.len();
    let folded = if jobs == layout.units {
        String::from("one per platform build, task, and image publish of manifest and tags")
    } else {
        format!("{} builds, tasks and image publishes batched by level and executor", layout.units)
    };
    format!(
        "# Written by `hephy ci {command}`: {jobs} job{} for {nodes} node{} to build ({folded}),\n# `needs` as the build graph{first}; a plan of this moment: write it again when the graph changes.\n",
        if jobs == 1 { "" } else { "s" },
        if nodes == 1 { "" } else { "s" },
    )
}

const NO_REGISTRY: &str = "the graph names no registry, so the";

/// Why a plan cannot become a pipeline: its jobs would build images that no other job (and no
/// later pipeline) can find, because the graph names no registry to carry them.
fn unshareable_plan(session: &Session) -> Option<String> {
    if session.model.registry.is_some() {
        return None;
    }
    let images = session
        .plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Build)
        .filter(|s| session.graph.node(s.node).kind != NodeKind::Task)
        .count();
    (images > 0)
        .then(|| format!("{NO_REGISTRY} {images} image node(s) to build cannot be shared between CI jobs"))
}

/// Why a pipeline that plans when it runs cannot work: it may build any image of the graph.
fn unshareable_graph(model: &Model) -> Option<String> {
    let images = model.images.len();
    (model.registry.is_none() && images > 0)
        .then(|| format!("{NO_REGISTRY} {images} image(s) it defines cannot be shared between CI jobs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_shells_and_yaml() {
        assert_eq!(shell_word("curl@linux/amd64"), "'curl@linux/amd64'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(quoted("a \"b\": c"), r#""a \"b\": c""#);
    }

    /// What YAML 1.1 readers (GitLab's) take for a line break inside a quoted value (NEL,
    /// U+2028, U+2029) and what YAML may not hold raw (DEL, C1 controls) are escapes, and the
    /// value reads back whole.
    #[test]
    fn every_line_end_and_control_is_escaped_in_pipelines() {
        let value: String = (0u32..0xa0).chain([0x2028, 0x2029, 0xfeff]).filter_map(char::from_u32).collect();
        let text = quoted(&value);
        assert!(
            !text.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')),
            "{text:?}"
        );
        let read = hephy_dsl::yaml_tree::value(&format!("run: {text}\n")).expect("YAML").expect("a value");
        let hephy_dsl::yaml_tree::Kind::Map(entries) = read.kind else { panic!("a map") };
        let hephy_dsl::yaml_tree::Kind::Scalar { text: back, .. } = &entries[0].1.kind else {
            panic!("a scalar")
        };
        assert_eq!(*back, value);
    }
}
