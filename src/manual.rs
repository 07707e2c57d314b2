//! `hephy man`: the man pages, generated from the command-line definition (clap_mangen) with the
//! sections a man page is expected to have and clap does not write: EXIT STATUS, ENVIRONMENT,
//! FILES, EXAMPLES and SEE ALSO. One page for `hephy` and one per command (`hephy-plan(1)`…),
//! the pages the main page's SEE ALSO names; hidden commands have none.

use std::fmt::Write as _;
use std::path::Path;

use hephy_dsl::{Code, Problem, Problems};

use crate::Failure;

/// The exit codes, as every command uses them.
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    ("1", "A build failed: a node's build, task, push or signature failed (the others went on)."),
    (
        "2",
        "Bad input or usage: a graph file with problems, an unknown node, a flag that does not apply, a state folder that cannot be used.",
    ),
    (
        "129, 130, 143",
        "Interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM; what finished is recorded, and the next run redoes the rest.",
    ),
];

/// The environment hephy reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("HEPHY_VAR_NAME", "Sets the graph variable NAME, as --set NAME=VALUE does."),
    ("HEPHY_OFFLINE", "When true, as --offline: no registry lookups and no git ls-remote."),
    (
        "HEPHY_DATE",
        "The date (YYYYMMDD, UTC) {date} renders; a generated pipeline sets it once for all its jobs.",
    ),
    (
        "HEPHY_BRANCH",
        "The branch {branch} renders, before CI_COMMIT_REF_NAME, GITHUB_HEAD_REF, GITHUB_REF_NAME and git.",
    ),
    ("HEPHY_SOURCE", "The repository's web address for labels and provenance (default: git's origin)."),
    (
        "HEPHY_SINCE, HEPHY_SCHEDULE",
        "Read by the generated pipelines: the --since revision and the --schedule name of a run.",
    ),
    (
        "HEPHY_MAX_OUTPUT_BYTES",
        "The most output one command may write before it is stopped (default 256 MiB).",
    ),
    (
        "HEPHY_SECRET_FINGERPRINT_KEY",
        "The key of the secrets' fingerprints in build keys; the same on every machine that shares a registry.",
    ),
    (
        "HEPHY_SSH_CONFIG, HEPHY_SSH_CONNECT_TIMEOUT",
        "The ssh config file and the connect timeout (seconds) of ssh executors.",
    ),
    (
        "HEPHY_REMOTE_DIR",
        "On an ssh executor's host: where hephy keeps its binary and image layout (default ~/.cache/hephy).",
    ),
    (
        "HEPHY_TIMINGS",
        "When set, each loading and planning step's time is printed on stderr (the parse says whether the document kept in the state folder was reused).",
    ),
    (
        "DOCKER_CONFIG",
        "The folder of Docker's config.json, whose credentials and credential helpers log in to registries.",
    ),
    ("COSIGN_PASSWORD", "The password of a cosign private key (signing, hephy key generate)."),
    ("SOURCE_DATE_EPOCH", "Times written into images and attestations."),
    ("NO_COLOR", "When set, no colours (as --color never)."),
    ("COMPLETE", "Set by the shell completion script: hephy answers with completions and exits."),
];

/// The files hephy reads and writes.
const FILES: &[(&str, &str)] = &[
    (
        "hephy.kdl, hephy.yaml",
        "The graph file, looked for in the current folder and then its parents, up to the top of the git repository (-f FILE names one).",
    ),
    (
        ".hephy/",
        "The state folder beside the graph file (--state DIR): never committed; list it in .gitignore.",
    ),
    (".hephy/state.db", "Records, failures, run history, the stat cache and base image digests (SQLite)."),
    (".hephy/oci/", "hephy's OCI image layout: every image built here."),
    (".hephy/logs/RUN/NODE.log", "Each node's output, per run."),
    (".hephy/git/", "Upstream repositories and their checkouts."),
    (".dockerignore, DOCKERFILE.dockerignore", "What a build context leaves out, as BuildKit reads them."),
];

/// Examples: (the command's name or "" for the main page, the example, what it does).
const EXAMPLES: &[(&str, &str, &str)] = &[
    ("", "hephy plan", "What would build, and why."),
    ("", "hephy run --schedule weekly", "Rebuild what the weekly schedule names, then what is built on it."),
    ("", "hephy -C images explain curl", "Why curl's nodes rebuild, in the graph of the folder images."),
    ("plan", "hephy plan", "Every node: build or fresh, and why."),
    (
        "plan",
        "hephy plan --since origin/main --format json",
        "What changed since origin/main, and its dependents, as JSON.",
    ),
    ("run", "hephy run", "Build what the plan says."),
    (
        "run",
        "hephy run -q --fail-fast",
        "Build, printing only failures and the summary; stop launching after a failure.",
    ),
    ("run", "hephy run --no-push", "Build without pushing anything (a merge request's pipeline)."),
    (
        "explain",
        "hephy explain manifest-tool@linux/arm64",
        "Why that node rebuilds, down to the root causes.",
    ),
    ("check", "hephy check -f hephy.yaml", "Every problem of the graph file, with its place."),
    ("ci", "hephy ci gitlab -o .gitlab-ci.yml", "The GitLab pipeline to commit once."),
    ("import", "hephy import --from bake docker-bake.hcl -o hephy.kdl", "A bake file's graph."),
    ("init", "hephy init", "A starting graph: one image per Dockerfile, with the edges between them."),
    ("graph", "hephy graph --format html -o graph.html", "The graph as a page to open in a browser."),
    ("gc", "hephy gc", "Remove blobs no recorded image references."),
    ("show", "hephy show curl", "curl's settings and where each came from."),
    ("log", "hephy log", "Past runs."),
    (
        "completions",
        "hephy completions bash > ~/.local/share/bash-completion/completions/hephy",
        "Completion for bash (mkdir -p that folder first).",
    ),
    ("man", "hephy man -o ~/.local/share/man/man1", "Every page, for man hephy and man hephy-plan."),
    ("schema", "hephy schema > hephy.schema.json", "The JSON Schema of hephy.yaml, for editors."),
    ("key", "COSIGN_PASSWORD=… hephy key generate", "A cosign key pair, cosign.key and cosign.pub."),
    (
        "verify",
        "hephy verify registry.example.com/curl:latest --key cosign.pub",
        "Check an image's signatures and attestations.",
    ),
];

/// `hephy man [COMMAND] [-o DIR]`.
pub(crate) fn command(name: Option<&str>, output: Option<&Path>) -> Result<(), Failure> {
    let cli = built();
    if let Some(dir) = output {
        let io = |e: std::io::Error| {
            Failure::Input(Problems::single(
                "hephy",
                Problem::new(Code::Io, format!("cannot write the man pages into `{}`: {e}", dir.display()))
                    .help("name a folder that exists and can be written (`mkdir -p` it first)"),
            ))
        };
        std::fs::write(dir.join("hephy.1"), page(&cli, None)).map_err(io)?;
        for sub in visible(&cli) {
            std::fs::write(dir.join(format!("hephy-{}.1", sub.get_name())), page(sub, Some(sub.get_name())))
                .map_err(io)?;
        }
        return Ok(());
    }
    let text = match name {
        None => page(&cli, None),
        Some(name) => match visible(&cli).find(|c| c.get_name() == name) {
            Some(sub) => page(sub, Some(name)),
            None => {
                let names: Vec<&str> = visible(&cli).map(clap::Command::get_name).collect();
                return Err(Failure::Input(Problems::single(
                    "hephy",
                    Problem::new(Code::InvalidValue, format!("no command `{name}`"))
                        .help(format!("the commands are {}", names.join(", "))),
                )));
            }
        },
    };
    crate::print(&text);
    Ok(())
}

/// The command-line definition, built (so each command's display name is `hephy-NAME`).
fn built() -> clap::Command {
    let mut cli = <crate::Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    cli.build();
    cli
}

fn visible(cli: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cli.get_subcommands().filter(|c| !c.is_hide_set())
}

/// One page: clap_mangen's sections, then ours.
fn page(cmd: &clap::Command, name: Option<&str>) -> String {
    let man = clap_mangen::Man::new(cmd.clone()).date(DATE);
    let mut out = Vec::new();
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);
    if cmd.has_subcommands() && name.is_none() {
        let _ = man.render_subcommands_section(&mut out);
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    section(&mut text, "EXIT STATUS", EXIT_STATUS);
    section(&mut text, "ENVIRONMENT", ENVIRONMENT);
    section(&mut text, "FILES", FILES);
    let key = name.unwrap_or("");
    let examples: Vec<(&str, &str)> =
        EXAMPLES.iter().filter(|(c, _, _)| *c == key).map(|(_, e, what)| (*e, *what)).collect();
    if !examples.is_empty() {
        text.push_str(".SH EXAMPLES\n");
        for (example, what) in examples {
            let _ = writeln!(text, ".TP\n.B {}\n{}", roff(example), roff(what));
        }
    }
    text.push_str(".SH \"SEE ALSO\"\n");
    let see: Vec<String> = match name {
        None => {
            let cli = built();
            visible(&cli).map(|c| format!("\\fBhephy\\-{}\\fR(1)", roff(c.get_name()))).collect()
        }
        Some(_) => vec!["\\fBhephy\\fR(1)".to_owned()],
    };
    let _ = writeln!(text, "{}", see.join(", "));
    text
}

/// A man page's date, fixed so that pages are the same bytes on every machine.
const DATE: &str = "2026";

fn section(text: &mut String, title: &str, rows: &[(&str, &str)]) {
    let _ = writeln!(text, ".SH \"{title}\"");
    for (term, meaning) in rows {
        let _ = writeln!(text, ".TP\n.B {}\n{}", roff(term), roff(meaning));
    }
}

/// Text as roff reads it literally: backslashes and hyphens escaped, no line that starts a
/// request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') { format!("\\&{escaped}") } else { escaped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_text_cannot_start_a_request() {
        assert_eq!(roff(".hephy/"), "\\&.hephy/");
        assert_eq!(roff("a-b\\c"), "a\\-b\\ec");
    }

    #[test]
    fn every_page_has_the_sections_and_hidden_commands_none() {
        let cli = built();
        assert!(!visible(&cli).any(|c| c.get_name() == "remote-build"));
        for sub in visible(&cli) {
            let text = page(sub, Some(sub.get_name()));
            for title in ["EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"] {
                assert!(text.contains(&format!(".SH \"{title}\"")), "{} lacks {title}", sub.get_name());
            }
            assert!(text.contains(".SH EXAMPLES"), "{} has no example", sub.get_name());
        }
    }
}
