//! `group`s: named selections planned and run with `--group`, in both syntaxes.

mod common;

use common::Repo;
use serde_json::Value;

/// `base → lib → app`, `lib → docs`, and `lint` alone; `release` names `app`, `everything`
/// names `release` and `lint`.
const KDL: &str = r#"
task "base" {
    run "sh" "-c" "echo base > base.txt"
    outputs "base.txt"
}
task "lib" {
    run "sh" "-c" "echo lib > lib.txt"
    outputs "lib.txt"
    after "base"
}
task "app" {
    run "sh" "-c" "echo app > app.txt"
    outputs "app.txt"
    after "lib"
}
task "docs" {
    run "sh" "-c" "echo docs > docs.txt"
    outputs "docs.txt"
    after "lib"
}
task "lint" {
    run "sh" "-c" "echo lint > lint.txt"
    outputs "lint.txt"
}
group "release" {
    members "app"
}
group "everything" {
    members "release" "lint"
}
"#;

const YAML: &str = r#"
tasks:
  base:
    run: [sh, -c, "echo base > base.txt"]
    outputs: [base.txt]
  lib:
    run: [sh, -c, "echo lib > lib.txt"]
    outputs: [lib.txt]
    after: [base]
  app:
    run: [sh, -c, "echo app > app.txt"]
    outputs: [app.txt]
    after: [lib]
  docs:
    run: [sh, -c, "echo docs > docs.txt"]
    outputs: [docs.txt]
    after: [lib]
  lint:
    run: [sh, -c, "echo lint > lint.txt"]
    outputs: [lint.txt]
groups:
  release: [app]
  everything: [release, lint]
"#;

fn repo() -> Repo {
    Repo::new().file("hephy.kdl", KDL).file("graph.yaml", YAML)
}

fn plan(repo: &Repo, file: &str, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "-f", file, "--format", "json"];
    args.extend_from_slice(extra);
    let run = repo.run(&args);
    assert_eq!(run.code, 0, "plan failed: {}", run.stderr);
    run.json()
}

fn order(plan: &Value) -> Vec<String> {
    let mut ids: Vec<String> = plan["order"]
        .as_array()
        .expect("order is a list")
        .iter()
        .map(|v| v.as_str().expect("an id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_group_plans_its_members_and_their_dependencies_only() {
    let repo = repo();
    for file in ["hephy.kdl", "graph.yaml"] {
        let release = plan(&repo, file, &["--group", "release"]);
        assert_eq!(
            order(&release),
            ["app", "base", "lib"],
            "{file}: `app` and what it needs, not `docs`/`lint`"
        );
        let everything = plan(&repo, file, &["--group", "everything"]);
        assert_eq!(order(&everything), ["app", "base", "lib", "lint"], "{file}: nested group");
        let whole = plan(&repo, file, &[]);
        assert_eq!(order(&whole).len(), 5, "{file}: without --group, everything");
    }
    assert_eq!(
        plan(&repo, "hephy.kdl", &["--group", "everything"]),
        plan(&repo, "graph.yaml", &["--group", "everything"]),
        "the two syntaxes must plan identically"
    );
}

#[test]
fn run_group_builds_only_the_group() {
    let repo = repo();
    let run = repo.run(&["run", "--group", "release", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for built in ["base.txt", "lib.txt", "app.txt"] {
        assert!(repo.path().join(built).exists(), "{built} must be built");
    }
    for left in ["docs.txt", "lint.txt"] {
        assert!(!repo.path().join(left).exists(), "{left} is outside the group");
    }
    // Inside the group, everything is fresh now; `--force` still rebuilds inside it only.
    let again = plan(&repo, "hephy.kdl", &["--group", "release"]);
    let nodes = again["nodes"].as_array().expect("nodes is a list");
    assert_eq!(nodes.len(), 3, "{again}");
    assert!(nodes.iter().all(|n| n["action"] == "fresh"), "{again}");
    let forced = repo.run(&["run", "--group", "release", "--force", "lib", "--format", "json"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(!repo.path().join("docs.txt").exists(), "a forced `lib` does not pull its dependent `docs` in");
    assert!(repo.path().join("app.txt").exists());
}

#[test]
fn an_unknown_group_is_a_usage_error_with_a_suggestion() {
    let repo = repo();
    let run = repo.run(&["plan", "--group", "relase"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("unknown group `relase`"), "{}", run.stderr);
    assert!(run.stderr.contains("did you mean `release`?"), "{}", run.stderr);
}

#[test]
fn a_cycle_of_groups_is_an_error() {
    let repo = Repo::new().file(
        "hephy.kdl",
        "task \"t\" {\n    run \"true\"\n}\ngroup \"a\" {\n    members \"b\"\n}\ngroup \"b\" {\n    members \"t\" \"a\"\n}\n",
    );
    let run = repo.run(&["check"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.codes().contains(&"hephy::cycle".to_owned()), "{}", run.stderr);
    assert!(run.stderr.contains("group cycle: a → b → a"), "{}", run.stderr);
}
