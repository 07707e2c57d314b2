//! `hephy ci gitlab|github`: the current plan as a CI pipeline, one job per node to build.
//!
//! Each job runs `hephy run --only ID` (with the selection that made the plan: `--force`,
//! `--schedule`, `--refresh`), its `needs` are exactly the DAG edges among the nodes to build,
//! and its runner comes from the node's executor (`gitlab-tags`, `runs-on`). Fresh nodes get no
//! job; the registry carries every result between jobs (a job's dependencies are found there by
//! their key tags). Both files are written as YAML with JSON-quoted strings, so no name or
//! command can change their structure.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use hephy_engine::{Action, NodeIndex};

use crate::session::{Selection, Session};

/// The CI systems hephy writes pipelines for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    Gitlab,
    Github,
}

/// What a generated pipeline needs to know beyond the plan.
pub(crate) struct Options<'a> {
    /// The graph file as the job should name it (`-f`), relative to the repository.
    pub(crate) graph_file: Option<&'a str>,
    /// The selection the plan was made with; jobs repeat its forcing flags.
    pub(crate) selection: &'a Selection,
    /// A command run before hephy in every job (installing it, logging in).
    pub(crate) setup: Option<&'a str>,
}

/// One job: a node to build, what it needs, where it runs.
struct Job {
    id: String,
    needs: Vec<String>,
    runner: Vec<String>,
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

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// A word for a POSIX shell command line, single-quoted.
fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn jobs(session: &Session, system: System) -> Vec<Job> {
    let building: BTreeSet<NodeIndex> =
        session.plan.steps.iter().filter(|s| s.action == Action::Build).map(|s| s.node).collect();
    let executors: HashMap<&str, &hephy_dsl::Executor> =
        session.model.executors.iter().map(|e| (e.name.value.as_str(), e)).collect();
    let mut out = Vec::new();
    for step in &session.plan.steps {
        if step.action != Action::Build {
            continue;
        }
        let node = session.graph.node(step.node);
        let needs = session
            .graph
            .deps(step.node)
            .iter()
            .copied()
            .filter(|d| building.contains(d))
            .map(|d| session.graph.node(d).id.to_string())
            .collect();
        let runner = executors
            .get(&*node.executor)
            .map(|e| match system {
                System::Gitlab => e.gitlab_tags.clone(),
                System::Github => e.runs_on.clone(),
            })
            .unwrap_or_default();
        out.push(Job { id: node.id.to_string(), needs, runner });
    }
    out
}

fn command(id: &str, options: &Options<'_>) -> String {
    let mut words =
        vec!["hephy".to_owned(), "run".to_owned(), "--exact".to_owned(), "--only".to_owned(), shell_word(id)];
    if let Some(file) = options.graph_file {
        words.extend(["-f".to_owned(), shell_word(file)]);
    }
    for force in &options.selection.force {
        words.extend(["--force".to_owned(), shell_word(force)]);
    }
    if let Some(schedule) = &options.selection.schedule {
        words.extend(["--schedule".to_owned(), shell_word(schedule)]);
    }
    if options.selection.refresh {
        words.push("--refresh".to_owned());
    }
    words.join(" ")
}

/// The pipeline for `session`'s plan.
pub(crate) fn render(session: &Session, system: System, options: &Options<'_>) -> String {
    let jobs = jobs(session, system);
    match system {
        System::Gitlab => gitlab(&jobs, options),
        System::Github => github(&jobs, options),
    }
}

fn gitlab_name(id: &str) -> String {
    if GITLAB_RESERVED.contains(&id) { format!("node {id}") } else { id.to_owned() }
}

/// The pipeline's first line: what wrote it and how many jobs it has.
fn header(system: &str, jobs: &[Job]) -> String {
    if jobs.is_empty() {
        format!("# Written by `hephy ci {system}`: every node is fresh, so one job that says so.\n")
    } else {
        format!(
            "# Written by `hephy ci {system}`: {} job{}, one per node to build, `needs` as the build graph.\n",
            jobs.len(),
            if jobs.len() == 1 { "" } else { "s" }
        )
    }
}

/// Why a plan cannot become a pipeline: its jobs would build images that no other job (and no
/// later pipeline) can find, because the graph names no registry to carry them.
pub(crate) fn unshareable(session: &Session) -> Option<String> {
    if session.model.registry.is_some() {
        return None;
    }
    let images = session
        .plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Build)
        .filter(|s| session.graph.node(s.node).kind != hephy_engine::NodeKind::Task)
        .count();
    (images > 0).then(|| {
        format!(
            "the graph names no registry, so the {images} image node(s) to build cannot be shared between CI jobs"
        )
    })
}

fn gitlab(jobs: &[Job], options: &Options<'_>) -> String {
    let mut out = header("gitlab", jobs);
    out.push_str("stages:\n  - build\n");
    if jobs.is_empty() {
        // GitLab rejects a pipeline without jobs.
        out.push_str("\n\"hephy: nothing to build\":\n  stage: build\n  script:\n");
        let _ = writeln!(out, "    - {}", quoted("echo 'hephy: every node is fresh; nothing to build'"));
        return out;
    }
    for job in jobs {
        let _ = write!(out, "\n{}:\n  stage: build\n", quoted(&gitlab_name(&job.id)));
        if !job.runner.is_empty() {
            let tags: Vec<String> = job.runner.iter().map(|t| quoted(t)).collect();
            let _ = writeln!(out, "  tags: [{}]", tags.join(", "));
        }
        let needs: Vec<String> = job.needs.iter().map(|n| quoted(&gitlab_name(n))).collect();
        let _ = writeln!(out, "  needs: [{}]", needs.join(", "));
        out.push_str("  script:\n");
        if let Some(setup) = options.setup {
            let _ = writeln!(out, "    - {}", quoted(setup));
        }
        let _ = writeln!(out, "    - {}", quoted(&command(&job.id, options)));
    }
    out
}

/// A GitHub job id (`^[A-Za-z_][A-Za-z0-9_-]*$`) for each node id, unique.
fn github_ids(jobs: &[Job]) -> HashMap<&str, String> {
    let mut taken = BTreeSet::new();
    let mut out = HashMap::new();
    for job in jobs {
        let mut base: String = job
            .id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        if !base.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            base.insert(0, '_');
        }
        let mut id = base.clone();
        let mut n = 2;
        while !taken.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        out.insert(job.id.as_str(), id);
    }
    out
}

fn github(jobs: &[Job], options: &Options<'_>) -> String {
    let mut out = header("github", jobs);
    out.push_str("name: hephy\non:\n  workflow_dispatch: {}\n  workflow_call: {}\njobs:\n");
    if jobs.is_empty() {
        out.push_str("  nothing-to-build:\n    runs-on: ubuntu-latest\n    steps:\n");
        let _ =
            writeln!(out, "      - run: {}", quoted("echo 'hephy: every node is fresh; nothing to build'"));
        return out;
    }
    let ids = github_ids(jobs);
    for job in jobs {
        let _ = writeln!(out, "  {}:", ids[job.id.as_str()]);
        let _ = writeln!(out, "    name: {}", quoted(&job.id));
        if job.runner.is_empty() {
            out.push_str("    runs-on: ubuntu-latest\n");
        } else {
            let labels: Vec<String> = job.runner.iter().map(|l| quoted(l)).collect();
            let _ = writeln!(out, "    runs-on: [{}]", labels.join(", "));
        }
        if !job.needs.is_empty() {
            let needs: Vec<&str> = job.needs.iter().map(|n| ids[n.as_str()].as_str()).collect();
            let _ = writeln!(out, "    needs: [{}]", needs.join(", "));
        }
        out.push_str("    steps:\n      - uses: actions/checkout@v4\n");
        if let Some(setup) = options.setup {
            let _ = writeln!(out, "      - run: {}", quoted(setup));
        }
        let _ = writeln!(out, "      - run: {}", quoted(&command(&job.id, options)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_shells_and_yaml() {
        assert_eq!(shell_word("curl@linux/amd64"), "'curl@linux/amd64'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(quoted("a \"b\": c"), r#""a \"b\": c""#);
        assert_eq!(gitlab_name("pages"), "node pages");
    }

    #[test]
    fn github_ids_are_valid_and_unique() {
        let job = |id: &str| Job { id: id.to_owned(), needs: Vec::new(), runner: Vec::new() };
        let jobs = [job("curl@linux/amd64"), job("curl:latest"), job("curl_latest"), job("1up")];
        let ids = github_ids(&jobs);
        assert_eq!(ids["curl@linux/amd64"], "curl_linux_amd64");
        assert_eq!(ids["curl:latest"], "curl_latest");
        assert_eq!(ids["curl_latest"], "curl_latest_2");
        assert_eq!(ids["1up"], "_1up");
    }
}
