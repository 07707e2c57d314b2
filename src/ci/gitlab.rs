//! The GitLab forms: the parent pipeline to commit (a plan job writes the child pipeline of that
//! moment's plan, a trigger job runs it) and the static child pipeline itself.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::setup::{self, Tools};
use super::{
    GITLAB_RESERVED, Layout, Options, quoted, run_command, runtime_selection, selection_words, shell_word,
};

/// The most jobs one job may `need` (GitLab's `ci_needs_size_limit`, 50 by default).
const MAX_NEEDS: usize = 50;

/// The child pipeline's file, as the plan job writes it and the trigger job includes it.
const CHILD: &str = "hephy-pipeline.yml";

fn gitlab_name(id: &str) -> String {
    if GITLAB_RESERVED.contains(&id) { format!("node {id}") } else { id.to_owned() }
}

/// When the pipeline runs: for merge requests, on the default branch and on schedules (a push
/// to a branch with an open merge request runs as the merge request's pipeline, not twice).
const WORKFLOW: &str = "workflow:\n  rules:\n\
    \x20   - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n\
    \x20   - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n\
    \x20   - if: $CI_PIPELINE_SOURCE == \"schedule\"\n";

/// The jobs that push: not in a merge request's pipeline.
const PUSHING: &str = "  rules:\n    - if: $CI_PIPELINE_SOURCE != \"merge_request_event\"\n";

/// A job's script up to its hephy command: install hephy (from the cache when it is there),
/// the user's `--setup`, the registry login from the job's variables, and buildah and binfmt
/// when `tools` says its nodes need them.
fn prelude(out: &mut String, options: &Options<'_>, tools: &Tools) {
    out.push_str("  script:\n");
    let _ = writeln!(out, "    - {}", quoted(&setup::install_script()));
    if let Some(setup) = options.setup {
        let _ = writeln!(out, "    - {}", quoted(setup));
    }
    let _ = writeln!(out, "    - {}", quoted(&setup::login_command(options.graph_file)));
    if tools.buildah {
        let _ = writeln!(out, "    - {}", quoted(setup::BUILDAH_SCRIPT));
    }
    if !tools.emulate.is_empty() {
        let _ = writeln!(out, "    - {}", quoted(&setup::binfmt_script(&setup::machines(tools))));
    }
}

/// A job's cache: the installed hephy, one per version (and, inside, per architecture).
fn cache(out: &mut String) {
    let _ = writeln!(
        out,
        "  cache:\n    key: {}\n    paths: [{}]",
        quoted(&format!("hephy-{}", setup::VERSION)),
        quoted(&format!("{}/", setup::CACHE_DIR))
    );
}

/// The pipeline to commit as `.gitlab-ci.yml` (or include from it).
pub(crate) fn parent(options: &Options<'_>, tools: &Tools) -> String {
    let mut out = String::from(
        "# Written by `hephy ci gitlab`: a plan job writes the child pipeline of the plan it makes\n\
         # (`hephy ci gitlab --static`), a trigger job runs it. Commit it once: it does not change\n\
         # when images are added. Images are pushed on the default branch and on schedules; a\n\
         # merge request's pipeline builds them in one job without pushing (`hephy run --no-push`).\n",
    );
    out.push_str(WORKFLOW);
    out.push_str("\nstages:\n  - plan\n  - build\n\n\"hephy-plan\":\n  stage: plan\n");
    out.push_str(PUSHING);
    prelude(&mut out, options, &Tools::default());
    // The date is fixed once here: the child pipeline carries it to every job, and the dotenv
    // report to any later job of this pipeline.
    let _ = writeln!(out, "    - {}", quoted("export HEPHY_DATE=\"${HEPHY_DATE:-$(date -u +%Y%m%d)}\""));
    let _ = writeln!(out, "    - {}", quoted("echo \"HEPHY_DATE=$HEPHY_DATE\" > hephy.env"));
    let mut words = vec!["hephy".to_owned(), "ci".to_owned(), "gitlab".to_owned(), "--static".to_owned()];
    words.extend(["--max-jobs".to_owned(), options.max_jobs.to_string()]);
    if let Some(setup) = options.setup {
        words.extend(["--setup".to_owned(), shell_word(setup)]);
    }
    words.extend(selection_words(options, true));
    // The child's jobs repeat a schedule given when it runs as `--schedule`.
    words.extend(runtime_selection(options, true));
    words.extend(["-o".to_owned(), CHILD.to_owned()]);
    let _ = writeln!(out, "    - {}", quoted(&words.join(" ")));
    cache(&mut out);
    let _ = write!(
        out,
        "  artifacts:\n    paths: [{CHILD}]\n    reports:\n      dotenv: hephy.env\n\n\
         \"hephy-build\":\n  stage: build\n  needs: [\"hephy-plan\"]\n{PUSHING}  trigger:\n    include:\n      - artifact: {CHILD}\n        job: \"hephy-plan\"\n    strategy: depend\n"
    );
    // A merge request: everything its graph builds, built once more on one runner, nothing
    // pushed (a dependent needs its dependencies' builds, which only the registry would carry
    // between jobs).
    out.push_str(
        "\n\"hephy-merge-request\":\n  stage: build\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n",
    );
    cache(&mut out);
    prelude(&mut out, options, tools);
    let _ = writeln!(out, "    - {}", quoted("export HEPHY_DATE=\"${HEPHY_DATE:-$(date -u +%Y%m%d)}\""));
    let mut words = vec!["hephy".to_owned(), "run".to_owned(), "--no-push".to_owned()];
    if let Some(file) = options.graph_file {
        words.extend(["-f".to_owned(), shell_word(file)]);
    }
    if let Some(group) = &options.selection.group {
        words.extend(["--group".to_owned(), shell_word(group)]);
    }
    let _ = writeln!(out, "    - {}", quoted(&words.join(" ")));
    out
}

/// The jobs of one plan, with `needs` as the build graph and the pipeline's date.
pub(crate) fn child(
    layout: &Layout,
    runners: &HashMap<&str, &[String]>,
    date: &str,
    options: &Options<'_>,
    tools: &[Tools],
) -> String {
    let mut out = super::header("gitlab --static", layout, "");
    // One stage per level: a job waits for exactly its `needs`, or, past GitLab's limit on
    // them, for every stage before its own (where all its dependencies are).
    out.push_str("stages:\n");
    for level in 1..=layout.levels.max(1) {
        let _ = writeln!(out, "  - level-{level}");
    }
    let _ = writeln!(out, "variables:\n  HEPHY_DATE: {}", quoted(date));
    if layout.entries.is_empty() {
        // GitLab rejects a pipeline without jobs.
        out.push_str("\n\"hephy: nothing to build\":\n  stage: level-1\n  script:\n");
        let _ = writeln!(out, "    - {}", quoted("echo 'hephy: every node is fresh; nothing to build'"));
        return out;
    }
    for (entry, tools) in layout.entries.iter().zip(tools) {
        let _ = write!(out, "\n{}:\n  stage: level-{}\n", quoted(&gitlab_name(&entry.name)), entry.level + 1);
        let labels = runners.get(&*entry.executor).copied().unwrap_or_default();
        if !labels.is_empty() {
            let tags: Vec<String> = labels.iter().map(|t| quoted(t)).collect();
            let _ = writeln!(out, "  tags: [{}]", tags.join(", "));
        }
        if entry.needs.len() <= MAX_NEEDS {
            let needs: Vec<String> =
                entry.needs.iter().map(|&n| quoted(&gitlab_name(&layout.entries[n].name))).collect();
            let _ = writeln!(out, "  needs: [{}]", needs.join(", "));
        }
        cache(&mut out);
        prelude(&mut out, options, tools);
        let _ = writeln!(out, "    - {}", quoted(&run_command(&entry.nodes, options)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_words_are_not_job_names() {
        assert_eq!(gitlab_name("pages"), "node pages");
        assert_eq!(gitlab_name("curl"), "curl");
    }
}
