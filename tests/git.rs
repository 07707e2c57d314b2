//! Images built from upstream git repositories at a ref: real repositories made by the test
//! (`file://` URLs), real fetches, real builds against a loopback registry.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use common::registry::Registry;
use common::{Repo, git};
use serde_json::{Value, json};

/// An upstream repository with a two-stage Dockerfile in `deploy/`.
fn upstream() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    git(path, &["init", "-q"]);
    std::fs::create_dir_all(path.join("deploy")).unwrap();
    std::fs::write(
        path.join("deploy/Dockerfile"),
        "FROM scratch AS executor\nCOPY VERSION /executor\nFROM scratch AS debug\nCOPY VERSION /debug\n",
    )
    .unwrap();
    std::fs::write(path.join("VERSION"), "1\n").unwrap();
    git(path, &["add", "."]);
    git(path, &["commit", "-q", "-m", "one"]);
    git(path, &["tag", "-a", "v1", "-m", "v1"]);
    dir
}

fn graph(registry: &Registry, url: &str, reference: &str) -> String {
    format!(
        "registry \"{}/team\"\nplatforms \"linux/amd64\"\nimage \"kaniko\" {{\n    git \"{url}\" ref=\"{reference}\"\n    dockerfile \"deploy/Dockerfile\"\n    targets \"executor\" \"debug\"\n    tags \"latest\"\n}}\n",
        registry.address()
    )
}

fn plan(repo: &Repo, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "--format", "json"];
    args.extend(extra);
    let run = repo.run(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

fn node<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap()
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn builds_from_a_ref_and_follows_it_when_it_moves() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let up = upstream();
    let url = format!("file://{}", up.path().display());
    let repo = Repo::new().online().file("hephy.kdl", &graph(&registry, &url, "main"));
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Both targets were built from one checkout of the commit, into their own repositories.
    let checkouts = std::fs::read_dir(repo.path().join(".hephy/git")).unwrap().count();
    assert_eq!(checkouts, 2, "one bare cache and one checkouts folder");
    let exec: Value = serde_json::from_str(&registry.raw("team/kaniko-executor:latest")).unwrap();
    // One platform, and its provenance (BuildKit's attestation manifest about it).
    let entries = exec["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{exec}");
    assert_eq!(entries[1]["annotations"]["vnd.docker.reference.type"], "attestation-manifest");
    assert_eq!(entries[1]["annotations"]["vnd.docker.reference.digest"], entries[0]["digest"]);
    registry.raw("team/kaniko-debug:latest");

    // Nothing moved: nothing to do, even offline (the commit is remembered).
    assert!(plan(&repo, &[]).get("nodes").unwrap().as_array().unwrap().iter().all(|n| n["action"] == "skip"));
    assert!(plan(&repo, &["--offline"])["nodes"].as_array().unwrap().iter().all(|n| n["action"] == "skip"));

    // The same commit under another name (a tag) is the same input: the key holds the commit.
    repo.write("hephy.kdl", &graph(&registry, &url, "v1"));
    assert!(plan(&repo, &[])["nodes"].as_array().unwrap().iter().all(|n| n["action"] == "skip"));

    // The branch moves: its images rebuild, and the reason names the ref and both commits.
    repo.write("hephy.kdl", &graph(&registry, &url, "main"));
    let old = git(up.path(), &["rev-parse", "HEAD"]);
    std::fs::write(up.path().join("VERSION"), "2\n").unwrap();
    git(up.path(), &["commit", "-q", "-am", "two"]);
    let new = git(up.path(), &["rev-parse", "HEAD"]);
    let moved = plan(&repo, &[]);
    assert_eq!(
        node(&moved, "kaniko.debug@linux/amd64")["reasons"],
        json!([{"kind": "upstream_moved", "ref": "main", "old": old, "new": new}])
    );
    let explain = repo.run(&["explain", "kaniko.executor:latest"]);
    assert!(explain.stdout.contains("upstream main moved"), "{}", explain.stdout);
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["results"]["kaniko.executor@linux/amd64"], "built");
}

#[test]
fn a_ref_that_cannot_be_resolved_is_a_clear_failure() {
    let up = upstream();
    let url = format!("file://{}", up.path().display());
    let repo = Repo::new().online().file(
        "hephy.yaml",
        &format!("platforms: [linux/amd64]\nimages:\n  kaniko:\n    git: {url}\n    ref: no-such-branch\n    dockerfile: deploy/Dockerfile\n"),
    );
    let plan = repo.run(&["plan", "--format", "json"]).json();
    let reason = &node(&plan, "kaniko@linux/amd64")["reasons"][0];
    assert_eq!(reason["kind"], "inputs_unreadable");
    let message = reason["message"].as_str().unwrap();
    assert!(message.contains("no-such-branch") && message.contains(&url), "{message}");
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("cannot resolve `no-such-branch`"), "{}", run.stdout);
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn a_moved_tag_rebuilds_the_image_and_its_dependents() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let up = upstream();
    let url = format!("file://{}", up.path().display());
    let repo = Repo::new()
        .online()
        .file("app/Dockerfile", "ARG BASE\nFROM ${BASE}\nCOPY app.txt /\n")
        .file("app/app.txt", "app\n")
        .file(
            "hephy.kdl",
            &format!(
                "registry \"{}/team\"\nplatforms \"linux/amd64\"\nimage \"up\" {{\n    git \"{url}\" ref=\"v1\"\n    dockerfile \"deploy/Dockerfile\"\n    target \"executor\"\n}}\nimage \"app\" {{\n    context \"app\"\n    from \"up\" arg=\"BASE\"\n    tags \"latest\"\n}}\n",
                registry.address()
            ),
        );
    let first = repo.run(&["run"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    // Move the tag to a new commit.
    std::fs::write(up.path().join("VERSION"), "2\n").unwrap();
    git(up.path(), &["commit", "-q", "-am", "two"]);
    git(up.path(), &["tag", "-f", "-a", "v1", "-m", "v1 again"]);
    let plan = plan(&repo, &[]);
    assert_eq!(node(&plan, "up.executor@linux/amd64")["reasons"][0]["kind"], "upstream_moved");
    assert_eq!(
        node(&plan, "app@linux/amd64")["reasons"],
        json!([{"kind": "dependency_rebuilt", "node": "up.executor@linux/amd64"}])
    );
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let results = &run.json()["results"];
    assert_eq!(results["up.executor@linux/amd64"], "built");
    assert_eq!(results["app@linux/amd64"], "built", "its base moved, so its digest input did");
    assert_eq!(results["app:latest"], "built");
}
