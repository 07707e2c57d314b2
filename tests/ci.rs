//! `hephy ci gitlab|github` end to end: the generated GitLab child pipeline of the quickstart is
//! executed by `gitlab-ci-local` (each job in its own copy of the repository, so only the
//! registry on 127.0.0.1 carries results between jobs, as between CI runners), and the GitHub
//! workflow is checked by `action-validator`. Both tools come from npm (`.ci/run` installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{Registry, sha256};
use common::{Repo, git};
use serde_json::Value;

/// The CI tool `name`, found on `PATH`; panics, naming the install step, when it is not there
/// (the tests that call this are `#[ignore]`d: `.ci/run` installs the tools and runs them).
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("this test needs `{name}`: npm install gitlab-ci-local@4.70.1 @action-validator/cli@0.6.0, apt-get install rsync (.ci/run installs them)")
        })
}

/// The graph repository as a git repository with a GitLab-like origin (gitlab-ci-local reads it).
fn as_git_repo(dir: &Path) {
    git(dir, &["init", "-q", "."]);
    git(dir, &["remote", "add", "origin", "https://gitlab.example.com/platform/images.git"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "images"]);
}

fn job_names(pipeline: &str) -> Vec<String> {
    pipeline
        .lines()
        .filter(|l| l.starts_with('"') && l.ends_with("\":"))
        .map(|l| l.trim_end_matches(':').trim_matches('"').to_owned())
        .collect()
}

#[test]
#[ignore = "needs gitlab-ci-local, rsync, buildah, skopeo and docker-registry (installed by .ci/run)"]
fn the_gitlab_child_pipeline_builds_the_quickstart_in_dependency_order() {
    let runner = tool("gitlab-ci-local");
    tool("rsync");
    common::registry::require_image_tools();
    let registry = Registry::start();
    let repo = Repo::quickstart_pushing_to(&registry.address(), "");
    std::fs::write(repo.path().join(".gitignore"), ".hephy/\n.gitlab-ci-local/\n").unwrap();
    as_git_repo(repo.path());

    let generated = repo.run(&["ci", "gitlab", "-o", "child.yml"]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let pipeline = std::fs::read_to_string(repo.path().join("child.yml")).unwrap();
    let jobs = job_names(&pipeline);
    assert_eq!(jobs.len(), 12, "{pipeline}");
    git(repo.path(), &["add", "child.yml"]);
    git(repo.path(), &["commit", "-q", "-m", "child pipeline"]);

    // Every job in its own copy of the repository (no shared .hephy): like separate runners.
    let hephy = PathBuf::from(env!("CARGO_BIN_EXE_hephy"));
    let path = format!("{}:{}", hephy.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new(&runner)
        .args(["--file", "child.yml", "--shell-isolation"])
        .current_dir(repo.path())
        .env("PATH", path)
        .env("HEPHY_OFFLINE", "0")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "gitlab-ci-local failed:\n{log}");

    // Each job started only after every job it needs had finished.
    let position = |job: &str, what: &str| {
        log.lines()
            .position(|l| l.split_whitespace().next() == Some(job) && l.contains(what))
            .unwrap_or_else(|| panic!("no `{job} {what}` in:\n{log}"))
    };
    for block in pipeline.split("\n\n").filter(|b| b.starts_with('"')) {
        let name = job_names(block).remove(0);
        let needs = block.lines().find(|l| l.trim_start().starts_with("needs:")).unwrap();
        let needs: Vec<String> =
            serde_json::from_str(needs.trim_start().trim_start_matches("needs:").trim()).unwrap();
        for need in needs {
            assert!(
                position(&need, "finished in") < position(&name, "starting shell"),
                "{name} started before {need} finished:\n{log}"
            );
        }
    }
    // The images are in the registry: each tag names an index of both platforms.
    for image in ["base", "web", "docs"] {
        let index = registry.raw(&format!("qs/{image}:latest"));
        let parsed: Value = serde_json::from_str(&index).unwrap();
        assert_eq!(parsed["manifests"].as_array().unwrap().len(), 2, "{image}");
        assert!(sha256(&index).starts_with("sha256:"));
    }
    // Generated again, everything is in the registry: no build job, one no-op job.
    let again = repo.run(&["ci", "gitlab"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(job_names(&again.stdout), ["hephy: nothing to build"], "{}", again.stdout);
}

#[test]
fn touching_curls_context_yields_jobs_for_curl_and_its_dependents_only() {
    let repo = Repo::example("kaniko-builder");
    as_git_repo(repo.path());
    repo.write("curl/curlrc", "--retry 5\n");
    let run = repo.run(&["ci", "gitlab", "--since", "HEAD"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        job_names(&run.stdout),
        [
            "curl@linux/amd64",
            "curl@linux/arm64",
            "curl",
            "curl:latest",
            "manifest-tool@linux/amd64",
            "manifest-tool@linux/arm64",
            "manifest-tool",
            "manifest-tool:latest"
        ],
        "{}",
        run.stdout
    );
    // Runner tags come from the executors; manifests and tags run anywhere.
    assert!(
        run.stdout.contains("\"curl@linux/arm64\":\n  stage: build\n  tags: [\"arm64\"]\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\"curl\":\n  stage: build\n  needs: [\"curl@linux/amd64\", \"curl@linux/arm64\"]\n")
    );
    assert!(run.stdout.contains("hephy run --exact --only 'manifest-tool@linux/amd64'"), "{}", run.stdout);
}

#[test]
#[ignore = "needs action-validator (installed by .ci/run)"]
fn the_github_workflow_passes_action_validator() {
    let validator = tool("action-validator");
    for example in ["quickstart", "kaniko-builder"] {
        let repo = Repo::example(example);
        if example == "quickstart" {
            // Jobs share images through a registry; without one there is no pipeline to write.
            let refused = repo.run(&["ci", "github"]);
            assert_eq!(refused.code, 2, "{}", refused.stdout);
            assert!(refused.stderr.contains("cannot be shared between CI jobs"), "{}", refused.stderr);
            assert!(refused.stderr.contains("add `registry"), "{}", refused.stderr);
            assert_eq!(repo.run(&["ci", "gitlab"]).code, 2);
            let graph = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
            repo.write("hephy.kdl", &format!("registry \"registry.example.com/qs\"\n{graph}"));
        }
        let run = repo.run(&[
            "ci",
            "github",
            "-f",
            "hephy.kdl",
            "--setup",
            "cargo install --locked hephy",
            "-o",
            "wf.yml",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let workflow = std::fs::read_to_string(repo.path().join("wf.yml")).unwrap();
        let output = Command::new(&validator).arg("wf.yml").current_dir(repo.path()).output().unwrap();
        assert!(
            output.status.success(),
            "{example}: {}\n{workflow}",
            String::from_utf8_lossy(&output.stdout)
        );
        if example == "kaniko-builder" {
            assert!(workflow.contains("runs-on: [\"ubuntu-24.04-arm\"]"), "{workflow}");
            assert!(workflow.contains("needs: [curl_linux_arm64]"), "{workflow}");
        }
    }
    // A plan with nothing to build is still a valid workflow.
    let repo = Repo::new().file("hephy.kdl", "task \"t\" {\n    run \"true\"\n}\n");
    assert_eq!(repo.run(&["run"]).code, 0);
    let run = repo.run(&["ci", "github", "-o", "wf.yml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let output = Command::new(&validator).arg("wf.yml").current_dir(repo.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}
