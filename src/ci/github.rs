//! The GitHub Actions forms: the committed workflow whose plan job feeds one matrix job per
//! dependency level, that plan job's output (`hephy ci matrix`), and the static workflow of one
//! plan.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::setup::{self, Tools};
use super::{Layout, Options, quoted, run_command, runtime_selection, selection_words};

/// The runner of jobs whose executor names none.
const DEFAULT_RUNNER: &str = "ubuntu-latest";

/// The job that fixes the date in the static workflow; no node's job may take its id.
const DATE_JOB: &str = "hephy-date";

/// A GitHub job id (`^[A-Za-z_][A-Za-z0-9_-]*$`) for each name, unique, none of them `taken`.
fn github_ids<'a>(names: impl Iterator<Item = &'a str>, taken: &[&str]) -> HashMap<&'a str, String> {
    let mut taken: BTreeSet<String> = taken.iter().map(|t| (*t).to_owned()).collect();
    let mut out = HashMap::new();
    for name in names {
        let mut base: String = name
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
        out.insert(name, id);
    }
    out
}

fn runs_on(labels: &[String]) -> String {
    if labels.is_empty() {
        DEFAULT_RUNNER.to_owned()
    } else {
        format!("[{}]", labels.iter().map(|l| quoted(l)).collect::<Vec<_>>().join(", "))
    }
}

fn triggers(out: &mut String) {
    out.push_str("name: hephy\non:\n  workflow_dispatch: {}\n  workflow_call: {}\n");
}

/// The dynamic workflow's triggers: run by hand or from another workflow, with the selection
/// as inputs (`since`: a git revision, `schedule`: a schedule's name), both optional.
fn triggers_with_inputs(out: &mut String) {
    out.push_str("name: hephy\non:\n");
    for trigger in ["workflow_dispatch", "workflow_call"] {
        let _ = writeln!(out, "  {trigger}:\n    inputs:");
        for (input, what) in [
            ("since", "only what changed since this git revision, and what depends on it"),
            ("schedule", "rebuild what this schedule names, and what depends on it"),
        ] {
            let _ = writeln!(
                out,
                "      {input}:\n        description: {}\n        type: string\n        required: false\n        default: \"\"",
                quoted(what)
            );
        }
    }
    let _ = writeln!(
        out,
        "env:\n  HEPHY_SINCE: {}\n  HEPHY_SCHEDULE: {}",
        quoted("${{ inputs.since }}"),
        quoted("${{ inputs.schedule }}")
    );
}

/// What the job's steps need before hephy runs: `Tools` themselves for a static job, or the
/// matrix entry's fields (`matrix.buildah`, `matrix.emulate`) for a level job.
enum Needs<'a> {
    None,
    Fixed(&'a Tools),
    Matrix,
}

/// A job's steps up to its hephy command: the checkout, hephy from the cache or installed (the
/// version that wrote the workflow, or the repository variables `HEPHY_INSTALL`,
/// `HEPHY_SOURCE_DIR`, `HEPHY_GIT`, `HEPHY_REF`), the user's `--setup`, the registry login from
/// the job's token, and buildah and binfmt only where the nodes need them.
fn steps(out: &mut String, options: &Options<'_>, full_history: bool, needs: &Needs<'_>) {
    out.push_str("    steps:\n      - uses: actions/checkout@v5\n");
    if full_history {
        out.push_str("        with:\n          fetch-depth: 0\n");
    }
    let _ = writeln!(
        out,
        "      - uses: actions/cache@v4\n        with:\n          path: {}\n          key: {}",
        setup::CACHE_DIR,
        quoted(&format!("hephy-{}-${{{{ runner.os }}}}-${{{{ runner.arch }}}}", setup::VERSION))
    );
    out.push_str("      - name: install hephy\n        env:\n");
    for var in ["HEPHY_INSTALL", "HEPHY_SOURCE_DIR", "HEPHY_GIT", "HEPHY_REF"] {
        let _ = writeln!(out, "          {var}: {}", quoted(&format!("${{{{ vars.{var} }}}}")));
    }
    let _ = writeln!(
        out,
        "        run: {}",
        quoted(&format!("{}; echo \"$HEPHY_INSTALL_ROOT/bin\" >> \"$GITHUB_PATH\"", setup::install_script()))
    );
    if let Some(setup) = options.setup {
        let _ = writeln!(out, "      - run: {}", quoted(setup));
    }
    let _ = writeln!(
        out,
        "      - name: registry login\n        env:\n          GITHUB_TOKEN: {}\n        run: {}",
        quoted("${{ github.token }}"),
        quoted(&setup::login_command(options.graph_file))
    );
    match needs {
        Needs::None => {}
        Needs::Fixed(tools) => {
            if tools.buildah {
                let _ =
                    writeln!(out, "      - name: buildah\n        run: {}", quoted(setup::BUILDAH_SCRIPT));
            }
            if !tools.emulate.is_empty() {
                let _ = writeln!(
                    out,
                    "      - name: binfmt\n        run: {}",
                    quoted(&setup::binfmt_script(&setup::machines(tools)))
                );
            }
        }
        Needs::Matrix => {
            let _ = writeln!(
                out,
                "      - name: buildah\n        if: {}\n        run: {}",
                quoted("${{ matrix.buildah }}"),
                quoted(setup::BUILDAH_SCRIPT)
            );
            let _ = writeln!(
                out,
                "      - name: binfmt\n        if: {}\n        env:\n          HEPHY_EMULATE: {}\n        run: {}",
                quoted("${{ matrix.emulate != '' }}"),
                quoted("${{ matrix.emulate }}"),
                quoted(&setup::binfmt_script("$HEPHY_EMULATE"))
            );
        }
    }
}

/// Pushing to ghcr.io takes the job token's `packages: write`.
fn permissions(out: &mut String, ghcr: bool) {
    if ghcr {
        out.push_str("permissions:\n  contents: read\n  packages: write\n");
    }
}

/// The workflow to commit: a plan job runs `hephy ci matrix` and hands each level's jobs to a
/// matrix job of its own; level N waits for level N-1 (so for everything before it).
pub(crate) fn workflow(options: &Options<'_>, ghcr: bool) -> String {
    let levels = options.levels.max(1);
    let mut out = format!(
        "# Written by `hephy ci github`: a plan job, then one matrix job per dependency level (up to {levels}),\n\
         # fed by the plan when it runs. Commit it once: it does not change when images are added;\n\
         # write it again only when `hephy ci matrix` says the graph needs more levels.\n"
    );
    triggers_with_inputs(&mut out);
    permissions(&mut out, ghcr);
    out.push_str("jobs:\n  plan:\n");
    let _ = writeln!(out, "    runs-on: {DEFAULT_RUNNER}");
    out.push_str("    outputs:\n");
    let _ = writeln!(out, "      date: {}", quoted("${{ steps.plan.outputs.date }}"));
    for level in 1..=levels {
        let _ = writeln!(
            out,
            "      level{level}: {}",
            quoted(&format!("${{{{ steps.plan.outputs.level{level} }}}}"))
        );
    }
    // `--since REV` compares with a revision, given now or when it runs: the whole history.
    steps(&mut out, options, true, &Needs::None);
    let mut plan = vec![
        "hephy".to_owned(),
        "ci".to_owned(),
        "matrix".to_owned(),
        "--levels".to_owned(),
        levels.to_string(),
        "--max-jobs".to_owned(),
        options.max_jobs.to_string(),
    ];
    plan.extend(selection_words(options, true));
    plan.extend(runtime_selection(options, true));
    let _ = writeln!(
        out,
        "      - id: plan\n        run: {}",
        quoted(&format!("{} >> \"$GITHUB_OUTPUT\"", plan.join(" ")))
    );
    // The entry's node ids come through the environment, split into words by bash, never
    // into the script's text.
    let mut run = vec![
        "read -ra nodes <<< \"$HEPHY_NODES\";".to_owned(),
        "hephy run --exact --only \"${nodes[@]}\"".to_owned(),
    ];
    run.extend(selection_words(options, false));
    run.extend(runtime_selection(options, false));
    for level in 1..=levels {
        let _ = write!(out, "  level{level}:\n    name: {}\n", quoted("${{ matrix.name }}"));
        if level == 1 {
            out.push_str("    needs: [plan]\n");
        } else {
            let _ = writeln!(out, "    needs: [plan, level{}]", level - 1);
        }
        // A failed job does not stop the next levels: their jobs that need its nodes fail
        // naming the missing dependency, the others go on (failures stay isolated).
        let _ = writeln!(
            out,
            "    if: {}",
            quoted(&format!(
                "${{{{ !cancelled() && needs.plan.result == 'success' && needs.plan.outputs.level{level} != '[]' }}}}"
            ))
        );
        out.push_str("    strategy:\n      fail-fast: false\n      matrix:\n");
        let _ = writeln!(
            out,
            "        include: {}",
            quoted(&format!("${{{{ fromJSON(needs.plan.outputs.level{level}) }}}}"))
        );
        let _ = writeln!(out, "    runs-on: {}", quoted("${{ matrix.runner }}"));
        out.push_str("    env:\n");
        let _ = writeln!(out, "      HEPHY_DATE: {}", quoted("${{ needs.plan.outputs.date }}"));
        let _ = writeln!(out, "      HEPHY_NODES: {}", quoted("${{ matrix.nodes }}"));
        steps(&mut out, options, false, &Needs::Matrix);
        let _ = writeln!(out, "      - shell: bash\n        run: {}", quoted(&run.join(" ")));
    }
    out
}

/// One entry of a level's matrix.
#[derive(Serialize)]
struct MatrixEntry<'a> {
    name: &'a str,
    /// A label, or a list of labels.
    runner: serde_json::Value,
    /// The node ids, space-separated (no id holds a space).
    nodes: String,
    /// Whether its nodes build with buildah (the job sets it up where it is missing).
    buildah: bool,
    /// The machines its `RUN` steps may need emulated (`uname -m` names, space-separated).
    emulate: String,
}

/// What the workflow's plan step appends to `$GITHUB_OUTPUT`: `date=`, `levels=` and, for each
/// of the workflow's `levels`, `levelN=` and that level's matrix entries as JSON (`[]` for none).
pub(crate) fn matrix(
    layout: &Layout,
    runners: &HashMap<&str, &[String]>,
    date: &str,
    levels: usize,
    tools: &[Tools],
) -> String {
    let mut out = format!("date={date}\nlevels={}\n", layout.levels);
    for level in 0..levels.max(1) {
        let entries: Vec<MatrixEntry<'_>> = layout
            .entries
            .iter()
            .zip(tools)
            .filter(|(e, _)| e.level == level)
            .map(|(e, tools)| {
                let labels = runners.get(&*e.executor).copied().unwrap_or_default();
                MatrixEntry {
                    name: &e.name,
                    runner: match labels {
                        [] => serde_json::Value::from(DEFAULT_RUNNER),
                        labels => serde_json::Value::from(labels.to_vec()),
                    },
                    nodes: e.nodes.join(" "),
                    buildah: tools.buildah,
                    emulate: setup::machines(tools),
                }
            })
            .collect();
        let json = serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_owned());
        let _ = writeln!(out, "level{}={json}", level + 1);
    }
    out
}

/// The jobs of one plan, with `needs` as the build graph, after a job that fixes the date.
pub(crate) fn static_workflow(
    layout: &Layout,
    runners: &HashMap<&str, &[String]>,
    options: &Options<'_>,
    tools: &[Tools],
    ghcr: bool,
) -> String {
    let mut out = super::header("github --static", layout, ", after a job that fixes the date");
    triggers(&mut out);
    permissions(&mut out, ghcr);
    out.push_str("jobs:\n");
    if layout.entries.is_empty() {
        out.push_str("  nothing-to-build:\n    runs-on: ubuntu-latest\n    steps:\n");
        let _ =
            writeln!(out, "      - run: {}", quoted("echo 'hephy: every node is fresh; nothing to build'"));
        return out;
    }
    let _ = write!(
        out,
        "  {DATE_JOB}:\n    runs-on: {DEFAULT_RUNNER}\n    outputs:\n      date: {}\n    steps:\n      - id: date\n        run: {}\n",
        quoted("${{ steps.date.outputs.date }}"),
        quoted("echo \"date=${HEPHY_DATE:-$(date -u +%Y%m%d)}\" >> \"$GITHUB_OUTPUT\"")
    );
    let ids = github_ids(layout.entries.iter().map(|e| e.name.as_str()), &[DATE_JOB]);
    for (entry, tools) in layout.entries.iter().zip(tools) {
        let _ = writeln!(out, "  {}:", ids[entry.name.as_str()]);
        let _ = writeln!(out, "    name: {}", quoted(&entry.name));
        let labels = runners.get(&*entry.executor).copied().unwrap_or_default();
        let _ = writeln!(out, "    runs-on: {}", runs_on(labels));
        let mut needs = vec![DATE_JOB];
        needs.extend(entry.needs.iter().map(|&n| ids[layout.entries[n].name.as_str()].as_str()));
        let _ = writeln!(out, "    needs: [{}]", needs.join(", "));
        let _ = writeln!(
            out,
            "    env:\n      HEPHY_DATE: {}",
            quoted(&format!("${{{{ needs.{DATE_JOB}.outputs.date }}}}"))
        );
        steps(&mut out, options, false, &Needs::Fixed(tools));
        let _ = writeln!(out, "      - run: {}", quoted(&run_command(&entry.nodes, options)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_ids_are_valid_and_unique() {
        let names = ["curl@linux/amd64", "curl:latest", "curl_latest", "1up", "hephy-date"];
        let ids = github_ids(names.into_iter(), &[DATE_JOB]);
        assert_eq!(ids["curl@linux/amd64"], "curl_linux_amd64");
        assert_eq!(ids["curl:latest"], "curl_latest");
        assert_eq!(ids["curl_latest"], "curl_latest_2");
        assert_eq!(ids["1up"], "_1up");
        assert_eq!(ids["hephy-date"], "hephy-date_2");
    }
}
