//! `--since REV` and `--schedule` on real git repositories: exact selection from input
//! manifests, the changed node and its dependents only.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::collections::BTreeMap;

use common::Repo;

fn git(repo: &Repo, args: &[&str]) {
    common::git(repo.path(), args);
}
use serde_json::{Value, json};

fn commit(repo: &Repo, message: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
}

const GRAPH: &str = r#"platforms "linux/amd64" "linux/arm64"
image "base" {
    context "base"
    tags "latest"
}
image "app" {
    context "app"
    from "base" arg="BASE"
}
image "other" {
    context "other"
    args VERSION="1"
}
schedule "weekly" {
    rebuild "base"
}
"#;

/// A repository with three images (`app` is built FROM `base`), in git, two commits deep.
fn repository() -> Repo {
    let repo = Repo::new()
        .file(".gitignore", ".hephy/\n")
        .file("base/Dockerfile", "FROM scratch\nCOPY base.txt /\n")
        .file("base/base.txt", "base\n")
        .file("app/Dockerfile", "ARG BASE\nFROM ${BASE}\nCOPY app.txt /\n")
        .file("app/app.txt", "app\n")
        .file("other/Dockerfile", "FROM scratch\nCOPY other.txt /\n")
        .file("other/other.txt", "other\n")
        .file("hephy.kdl", GRAPH);
    git(&repo, &["init", "-q"]);
    commit(&repo, "one");
    repo.write("other/other.txt", "other, edited\n");
    commit(&repo, "two");
    repo
}

fn building(repo: &Repo, args: &[&str]) -> (Vec<String>, Value) {
    let mut all = vec!["plan", "--format", "json"];
    all.extend(args);
    let run = repo.run(&all);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = run.json();
    let ids = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["action"] != "fresh")
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, plan)
}

fn reasons(plan: &Value) -> BTreeMap<String, Value> {
    plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n["reasons"].clone()))
        .collect()
}

#[test]
fn an_unchanged_tree_since_head_selects_nothing() {
    let repo = repository();
    let (ids, _) = building(&repo, &["--since", "HEAD"]);
    assert!(ids.is_empty(), "{ids:?}");
}

#[test]
fn since_the_previous_commit_selects_the_changed_image_and_its_dependents_only() {
    let repo = repository();
    // The last commit edited a file of `other`.
    let (ids, plan) = building(&repo, &["--since", "HEAD~1"]);
    assert_eq!(ids, ["other@linux/amd64", "other@linux/arm64", "other"]);
    assert_eq!(
        reasons(&plan)["other@linux/amd64"][0],
        json!({"kind": "changed_since", "rev": "HEAD~1", "path": "other/other.txt"})
    );

    // Edit base's Dockerfile and commit: base, and app built FROM it, and nothing else.
    repo.write("base/Dockerfile", "FROM scratch\nCOPY base.txt /base.txt\n");
    commit(&repo, "three");
    let (ids, plan) = building(&repo, &["--since", "HEAD~1"]);
    assert_eq!(
        ids,
        [
            "base@linux/amd64",
            "app@linux/amd64",
            "base@linux/arm64",
            "app@linux/arm64",
            "app",
            "base",
            "base:latest"
        ]
    );
    assert_eq!(
        reasons(&plan)["base@linux/arm64"][0],
        json!({"kind": "changed_since", "rev": "HEAD~1", "path": "base/Dockerfile"})
    );
    // The working tree counts too: an uncommitted edit is a change since HEAD.
    repo.write("app/app.txt", "app, edited\n");
    let (ids, _) = building(&repo, &["--since", "HEAD"]);
    assert_eq!(ids, ["app@linux/amd64", "app@linux/arm64", "app"]);
}

#[test]
fn a_changed_graph_file_selects_only_the_nodes_whose_settings_changed() {
    let repo = repository();
    repo.write("hephy.kdl", &GRAPH.replace("VERSION=\"1\"", "VERSION=\"2\""));
    commit(&repo, "bump other");
    let (ids, plan) = building(&repo, &["--since", "HEAD~1"]);
    assert_eq!(ids, ["other@linux/amd64", "other@linux/arm64", "other"]);
    assert_eq!(reasons(&plan)["other@linux/amd64"][0]["path"], "hephy.kdl");
    let bad = repo.run(&["plan", "--since", "no-such-rev"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("`no-such-rev` is not a commit"), "{}", bad.stderr);
}

#[test]
fn a_schedule_runs_its_nodes_then_their_dependents_and_nothing_else() {
    let repo = repository();
    let (ids, plan) = building(&repo, &["--schedule", "weekly"]);
    assert_eq!(
        ids,
        [
            "base@linux/amd64",
            "app@linux/amd64",
            "base@linux/arm64",
            "app@linux/arm64",
            "app",
            "base",
            "base:latest"
        ]
    );
    assert_eq!(reasons(&plan)["base@linux/amd64"][0], json!({"kind": "scheduled", "schedule": "weekly"}));
    assert_eq!(reasons(&plan)["other@linux/amd64"], json!([]), "not in the schedule: untouched");
}
