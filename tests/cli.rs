//! The command line's conventions, through the real binary: the graph file found from a
//! subfolder (as git and cargo find theirs), `-C DIR`, `-q`, shell completion that knows the
//! graph's names (run by a real bash), and man pages that `man` renders.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use common::{Repo, Run, git};

/// `hephy ARGS` run in `dir`.
fn hephy_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::cargo_bin("hephy")
        .unwrap()
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn tasks() -> Repo {
    let repo = Repo::example("tasks");
    git(repo.path(), &["init", "-q"]);
    std::fs::create_dir_all(repo.path().join("docs/deep/er")).unwrap();
    repo
}

#[test]
fn the_graph_file_is_found_from_a_subfolder_up_to_the_repositorys_top() {
    let repo = tasks();
    let deep = repo.path().join("docs/deep/er");
    let plan = hephy_in(&deep, &["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.starts_with("plan ../../../hephy.kdl"), "{}", plan.stdout);
    // Its state is the graph's, beside it: a run from the subfolder, then a plan from the top,
    // finds everything built.
    let run = hephy_in(&deep, &["run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(repo.path().join(".hephy/state.db").is_file());
    assert!(!deep.join(".hephy").exists());
    let again = repo.run(&["plan", "--format", "json"]);
    assert!(
        again.stdout.contains("\"to_build\": 0") || !again.stdout.contains("\"build\""),
        "{}",
        again.stdout
    );

    // A repository inside it (its own `.git`) is another project: the search stops at its top.
    let inner = repo.path().join("vendor/other");
    std::fs::create_dir_all(inner.join("src")).unwrap();
    git(&inner, &["init", "-q"]);
    let none = hephy_in(&inner.join("src"), &["plan"]);
    assert_eq!(none.code, 2, "{}", none.stdout);
    assert!(none.stderr.contains("no graph file here or in a parent folder"), "{}", none.stderr);
    assert!(none.stderr.contains("`hephy init` writes one"), "the hint names init: {}", none.stderr);
}

#[test]
fn dash_c_runs_in_another_folder_and_dash_q_prints_only_the_outcome() {
    let repo = tasks();
    let outside = tempfile::tempdir().unwrap();
    let dir = repo.path().to_str().unwrap();
    let check = hephy_in(outside.path(), &["-C", dir, "check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stdout.contains("hephy.kdl: ok"), "{}", check.stdout);
    let quiet = hephy_in(outside.path(), &["-C", dir, "-q", "check"]);
    assert_eq!((quiet.code, quiet.stdout.as_str()), (0, ""), "{}", quiet.stderr);
    let missing = hephy_in(outside.path(), &["-C", "no/such/folder", "plan"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("cannot change to `no/such/folder`"), "{}", missing.stderr);

    // `run -q`: the summary line, no per-node lines and no images table.
    let run = hephy_in(outside.path(), &["-C", dir, "run", "-q"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(lines[0].contains("built"), "{}", run.stdout);
    let loud = hephy_in(outside.path(), &["-C", dir, "run", "--force", "lint"]);
    assert!(loud.stdout.lines().count() > 1, "{}", loud.stdout);
}

#[test]
fn bash_completes_commands_and_the_graphs_names_and_hides_hidden_commands() {
    common::require(&["bash"], "apt-get install bash");
    let repo = Repo::example("quickstart");
    let hephy = assert_cmd::cargo::cargo_bin("hephy");
    let path = format!("{}:{}", hephy.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    // The script `hephy completions bash` prints, sourced by bash, asked as bash asks it.
    let complete = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source <(hephy completions bash)\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_TYPE=9\n_clap_complete_hephy hephy '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            quoted.join(" "),
            words.len() - 1,
            words.last().unwrap(),
            words[words.len().saturating_sub(2)],
        );
        let output = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(repo.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let commands = complete(&["hephy", ""]);
    for command in ["plan", "run", "explain", "init"] {
        assert!(commands.iter().any(|c| c == command), "{command} not offered: {commands:?}");
    }
    assert!(!commands.iter().any(|c| c == "remote-build"), "a hidden command is offered: {commands:?}");
    let nodes = complete(&["hephy", "run", "--force", "we"]);
    assert!(nodes.iter().any(|n| n == "web@linux/arm64"), "{nodes:?}");
    assert!(nodes.iter().all(|n| n.starts_with("we")), "{nodes:?}");
    let schedules = complete(&["hephy", "plan", "--schedule", ""]);
    assert_eq!(schedules, ["weekly"]);
    // A positional argument: the graph's images, then the command's flags.
    let images: Vec<String> =
        complete(&["hephy", "show", ""]).into_iter().filter(|w| !w.starts_with('-')).collect();
    assert_eq!(images, ["base", "docs", "web"]);
}

#[test]
fn man_renders_a_page_per_command_with_the_usual_sections() {
    common::require(&["man"], "apt-get install man-db");
    let repo = Repo::new();
    let pages = tempfile::tempdir().unwrap();
    let man1 = pages.path().join("man1");
    std::fs::create_dir_all(&man1).unwrap();
    let written = repo.run(&["man", "-o", man1.to_str().unwrap()]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    assert!(!man1.join("hephy-remote-build.1").exists(), "a hidden command has a page");
    let render = |page: &str| {
        let output = Command::new("man")
            .args(["-P", "cat", page])
            .env("MANPATH", pages.path())
            .env("MANWIDTH", "100")
            .env("LANG", "C.UTF-8")
            .output()
            .unwrap();
        assert!(output.status.success(), "man {page}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let plan = render("hephy-plan");
    for section in
        ["NAME", "SYNOPSIS", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"]
    {
        assert!(plan.lines().any(|l| l == section), "hephy-plan(1) has no {section}:\n{plan}");
    }
    assert!(
        plan.contains("COSIGN_PASSWORD") && plan.contains("DOCKER_CONFIG") && plan.contains("HEPHY_OFFLINE")
    );
    assert!(plan.contains("hephy plan --since origin/main"), "{plan}");
    // The main page names each command's page, and each exists.
    let main = render("hephy");
    for command in ["plan", "run", "explain"] {
        assert!(main.contains(&format!("hephy-{command}(1)")), "{main}");
        assert!(man1.join(format!("hephy-{command}.1")).is_file());
    }
    let one = repo.run(&["man", "explain"]);
    assert_eq!(one.code, 0);
    assert!(one.stdout.contains(".TH hephy-explain 1"), "{}", &one.stdout[..200.min(one.stdout.len())]);
    let unknown = repo.run(&["man", "nope"]);
    assert_eq!(unknown.code, 2);
}

#[test]
fn the_readmes_completion_and_man_commands_work_on_a_fresh_home() {
    // The README's set-up lines, run as written in an empty home.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let lines: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("mkdir -p ~/.local/share/") && l.contains("hephy "))
        .collect();
    assert_eq!(lines.len(), 2, "the README's completion and man lines: {lines:?}");
    let home = tempfile::tempdir().unwrap();
    let hephy = assert_cmd::cargo::cargo_bin("hephy");
    let path = format!("{}:{}", hephy.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    for line in lines {
        let output = Command::new("sh")
            .arg("-ec")
            .arg(line)
            .env("HOME", home.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{line}: {}", String::from_utf8_lossy(&output.stderr));
    }
    assert!(home.path().join(".local/share/bash-completion/completions/hephy").is_file());
    assert!(home.path().join(".local/share/man/man1/hephy-plan.1").is_file());
}
