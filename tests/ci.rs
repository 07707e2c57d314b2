//! `hephy ci gitlab|github|matrix` end to end. The committed GitLab pipeline runs whole under
//! `gitlab-ci-local`: its plan job writes the child pipeline, the trigger job runs it, each job
//! in its own copy of the repository (so only the registry on 127.0.0.1 carries results between
//! jobs, as between CI runners). GitHub workflows are checked by `action-validator`; there is no
//! offline emulation of GitHub's runner that evaluates `fromJSON` matrices, so one test plays
//! the runner's part for the dynamic workflow (its steps' scripts in bash, each matrix entry in
//! a clone of its own). The CI tools come from npm (`.ci/run` installs them).

mod common;

use std::collections::{BTreeMap, BTreeSet};
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

/// A runner without hephy: the test's `PATH` without any folder holding a `hephy`, and the
/// generated install step's `HEPHY_INSTALL` pointing at a script that copies the binary under
/// test into the install root. The step itself runs (cache, `PATH`, version check); only the
/// `cargo install` it would otherwise do is replaced, as a fork's `HEPHY_INSTALL` would be.
/// Returns the `PATH` and the install command, kept in `dir`.
fn bare_runner(dir: &Path) -> (String, String) {
    let path = std::env::var("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::env::split_paths(&path).filter(|d| !d.join("hephy").exists()))
        .expect("PATH's folders")
        .into_string()
        .expect("a UTF-8 PATH");
    let found =
        Command::new("sh").args(["-c", "command -v hephy"]).env("PATH", &path).output().expect("run sh");
    assert!(!found.status.success(), "hephy is still on the runner's PATH");
    let script = dir.join("install-hephy.sh");
    std::fs::write(
        &script,
        format!(
            "set -e\ninstall -D -m 755 '{}' \"$HEPHY_INSTALL_ROOT/bin/hephy\"\n",
            env!("CARGO_BIN_EXE_hephy")
        ),
    )
    .expect("write the install script");
    (path, format!("sh {}", script.display()))
}

/// Sets the project's CI/CD variables as gitlab-ci-local takes them, for the parent pipeline and
/// the child pipeline it triggers alike (`--variable` reaches the parent only).
fn project_variables(repo: &Repo, variables: &[(&str, &str)]) {
    let map: serde_json::Map<String, Value> =
        variables.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
    std::fs::write(repo.path().join(".gitlab-ci-local-variables.yml"), Value::Object(map).to_string())
        .expect("write gitlab-ci-local's variables");
}

/// The jobs of a GitLab pipeline written by hephy: name → (needs, the nodes it runs).
fn gitlab_jobs(pipeline: &str) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut jobs = BTreeMap::new();
    for block in pipeline.split("\n\n").filter(|b| b.starts_with('"')) {
        let name: String = serde_json::from_str(block.lines().next().expect("a job").trim_end_matches(':'))
            .expect("a JSON-quoted job name");
        let needs = block.lines().find_map(|l| l.trim_start().strip_prefix("needs:")).unwrap_or("[]");
        let needs: Vec<String> = serde_json::from_str(needs.trim()).expect("needs as a JSON list");
        let nodes = block.lines().filter_map(|l| l.trim_start().strip_prefix("- ")).find_map(only_nodes);
        jobs.insert(name, (needs, nodes.unwrap_or_default()));
    }
    jobs
}

/// The node ids of a JSON-quoted `hephy run --exact --only 'A' 'B' …` command.
fn only_nodes(quoted: &str) -> Option<Vec<String>> {
    let command: String = serde_json::from_str(quoted.trim()).ok()?;
    let rest = command.strip_prefix("hephy run --exact --only ")?;
    Some(rest.split('\'').skip(1).step_by(2).map(str::to_owned).collect())
}

/// The jobs of a GitHub workflow written by hephy: id → (needs, the nodes it runs).
fn github_jobs(workflow: &str) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut jobs: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut current = String::new();
    for line in workflow.lines().skip_while(|l| *l != "jobs:").skip(1) {
        if let Some(id) =
            line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')).filter(|l| !l.starts_with(' '))
        {
            current = id.to_owned();
            jobs.insert(current.clone(), Default::default());
        } else if let Some(needs) = line.strip_prefix("    needs: [") {
            let needs = needs.trim_end_matches(']').split(", ").map(str::to_owned).collect();
            jobs.get_mut(&current).expect("a job id first").0 = needs;
        } else if let Some(nodes) = line.strip_prefix("      - run: ").and_then(only_nodes) {
            jobs.get_mut(&current).expect("a job id first").1 = nodes;
        }
    }
    jobs
}

/// The plan's nodes to build, with their dependencies that are built too.
fn to_build(repo: &Repo) -> BTreeMap<String, Vec<String>> {
    let plan = repo.run(&["plan", "--format", "json"]).json();
    let nodes = plan["nodes"].as_array().expect("the plan's nodes");
    let building: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n["action"] != "fresh")
        .map(|n| n["id"].as_str().expect("the JSON plan of SPEC.md"))
        .collect();
    nodes
        .iter()
        .filter(|n| n["action"] != "fresh")
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .expect("the JSON plan of SPEC.md")
                .iter()
                .map(|d| d.as_str().expect("the JSON plan of SPEC.md"));
            let deps = deps.filter(|d| building.contains(d)).map(str::to_owned).collect();
            (n["id"].as_str().expect("the JSON plan of SPEC.md").to_owned(), deps)
        })
        .collect()
}

/// Checks that `jobs` run every node to build exactly once, and that each job needs exactly the
/// jobs that run a dependency of one of its nodes (and `extra`).
fn assert_exact(
    jobs: &BTreeMap<String, (Vec<String>, Vec<String>)>,
    nodes: &BTreeMap<String, Vec<String>>,
    extra: &[&str],
) {
    let mut job_of = BTreeMap::new();
    for (job, (_, runs)) in jobs {
        for node in runs {
            assert!(job_of.insert(node.clone(), job.clone()).is_none(), "{node} runs in two jobs");
        }
    }
    assert_eq!(job_of.keys().collect::<BTreeSet<_>>(), nodes.keys().collect::<BTreeSet<_>>());
    for (job, (needs, runs)) in jobs.iter().filter(|(_, (_, runs))| !runs.is_empty()) {
        let mut expected: BTreeSet<String> =
            runs.iter().flat_map(|n| &nodes[n]).map(|d| job_of[d].clone()).filter(|j| j != job).collect();
        expected.extend(extra.iter().map(|e| (*e).to_owned()));
        assert_eq!(needs.iter().cloned().collect::<BTreeSet<_>>(), expected, "the needs of {job}");
    }
}

#[test]
#[ignore = "needs gitlab-ci-local, rsync, buildah, skopeo and docker-registry (installed by .ci/run)"]
fn the_gitlab_pipeline_plans_then_builds_the_quickstart_in_dependency_order() {
    let runner = tool("gitlab-ci-local");
    tool("rsync");
    common::registry::require_image_tools();
    let registry = Registry::start();
    // A task that fails unless the pipeline handed it a date.
    let check = "task \"date-check\" {\n    run \"sh\" \"-c\" \"test $${#HEPHY_DATE} -eq 8\"\n}\n";
    let repo = Repo::quickstart_pushing_to(&registry.address(), check);
    std::fs::write(
        repo.path().join(".gitignore"),
        ".hephy/\n.gitlab-ci-local/\n.gitlab-ci-local-variables.yml\nhephy-pipeline.yml\nhephy.env\n",
    )
    .unwrap();
    let no_date = repo.run_with(&["run", "--only", "date-check"], &[("HEPHY_DATE", "")]);
    assert_eq!(no_date.code, 1, "the date check passes without a date:\n{}", no_date.stdout);
    std::fs::remove_dir_all(repo.path().join(".hephy")).unwrap();

    let generated = repo.run(&["ci", "gitlab", "-o", ".gitlab-ci.yml"]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    as_git_repo(repo.path());

    // The whole pipeline, as GitLab would run it: the plan job, then the child it wrote. Every
    // job in its own copy of the repository (no shared .hephy): like separate runners.
    let tools = tempfile::tempdir().unwrap();
    let (path, install) = bare_runner(tools.path());
    project_variables(&repo, &[("HEPHY_INSTALL", &install)]);
    let pipeline = |schedule: &str| {
        let output = Command::new(&runner)
            .arg("--shell-isolation")
            .current_dir(repo.path())
            .env("PATH", &path)
            .env("HEPHY_OFFLINE", "0")
            .env_remove("HEPHY_DATE")
            .env("HEPHY_SCHEDULE", schedule)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let log =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "gitlab-ci-local failed:\n{log}");
        log
    };
    let log = pipeline("");

    // The plan job fixed the date once: its dotenv report and the child pipeline carry it.
    let env = std::fs::read_to_string(repo.path().join("hephy.env")).expect("the plan job's dotenv report");
    let date = env.trim().strip_prefix("HEPHY_DATE=").unwrap();
    assert!(date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()), "{env}");
    let child = std::fs::read_to_string(repo.path().join("hephy-pipeline.yml")).unwrap();
    assert!(child.contains(&format!("variables:\n  HEPHY_DATE: \"{date}\"\n")), "{child}");
    let jobs = gitlab_jobs(&child);
    // 6 platform builds, 3 publish jobs (manifest and tag), the task: 10, not 13 (one per node).
    assert_eq!(jobs.len(), 10, "{child}");
    assert_eq!(jobs["web"].1, ["web", "web:latest"]);
    assert_eq!(jobs["web"].0, ["web@linux/amd64", "web@linux/arm64"]);

    // Each job started only after every job it needs had finished.
    let position = |job: &str, what: &str| {
        log.lines()
            .position(|l| {
                let l = l.trim_start().trim_start_matches("[hephy-build] -> ");
                l.split_whitespace().next() == Some(job) && l.contains(what)
            })
            .unwrap_or_else(|| panic!("no `{job} {what}` in:\n{log}"))
    };
    for (name, (needs, _)) in &jobs {
        for need in needs {
            assert!(
                position(need, "finished in") < position(name, "starting shell"),
                "{name} started before {need} finished:\n{log}"
            );
        }
    }
    // The images are in the registry: each tag names an index of both platforms.
    for image in ["base", "web", "docs"] {
        let index = registry.raw(&format!("qs/{image}:latest"));
        let parsed: Value = serde_json::from_str(&index).unwrap();
        // Both platforms, each with its provenance (an attestation manifest naming it).
        let (attestations, platforms): (Vec<&Value>, Vec<&Value>) = parsed["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .partition(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest");
        assert_eq!((platforms.len(), attestations.len()), (2, 2), "{image}");
        assert!(sha256(&index).starts_with("sha256:"));
    }
    // Planned again, everything is in the registry but the task: no image job.
    let again = repo.run(&["ci", "gitlab", "--static"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        gitlab_jobs(&again.stdout).into_keys().collect::<Vec<_>>(),
        ["date-check"],
        "{}",
        again.stdout
    );

    // The same committed pipeline, run by a schedule that sets `HEPHY_SCHEDULE`: base and what
    // is built on it rebuild, docs does not, and every job repeats `--schedule`.
    let log = pipeline("weekly");
    let child = std::fs::read_to_string(repo.path().join("hephy-pipeline.yml")).unwrap();
    let jobs = gitlab_jobs(&child);
    let names: Vec<&str> = jobs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["base", "base@linux/amd64", "base@linux/arm64", "web", "web@linux/amd64", "web@linux/arm64"],
        "{child}"
    );
    assert_eq!(child.matches("--schedule 'weekly'").count(), 6, "{child}");
    assert!(log.contains("built   base@linux/arm64"), "{log}");
}

#[test]
#[ignore = "needs gitlab-ci-local, rsync and docker-registry (installed by .ci/run)"]
fn a_merge_requests_pipeline_builds_without_pushing() {
    let runner = tool("gitlab-ci-local");
    tool("rsync");
    let registry = Registry::start();
    let repo = Repo::quickstart_pushing_to(&registry.address(), "");
    std::fs::write(
        repo.path().join(".gitignore"),
        ".hephy/\n.gitlab-ci-local/\n.gitlab-ci-local-variables.yml\nhephy-pipeline.yml\nhephy.env\n",
    )
    .unwrap();
    let generated = repo.run(&["ci", "gitlab", "-o", ".gitlab-ci.yml"]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    as_git_repo(repo.path());
    let tools = tempfile::tempdir().unwrap();
    let (path, install) = bare_runner(tools.path());
    project_variables(&repo, &[("HEPHY_INSTALL", &install)]);
    // The pipeline GitLab runs for a merge request (gitlab-ci-local evaluates the jobs' rules
    // with the variables GitLab sets).
    let output = Command::new(&runner)
        .args(["--shell-isolation", "--variable", "CI_PIPELINE_SOURCE=merge_request_event"])
        .current_dir(repo.path())
        .env("PATH", &path)
        .env("HEPHY_OFFLINE", "0")
        .env_remove("HEPHY_DATE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "gitlab-ci-local failed:\n{log}");
    // One job built every image, for both platforms, and pushed nothing.
    assert!(log.contains("hephy-merge-request"), "{log}");
    assert!(!log.contains("hephy-plan"), "the pushing jobs ran in a merge request:\n{log}");
    for node in ["base@linux/amd64", "web@linux/arm64", "docs@linux/arm64"] {
        assert!(log.contains(&format!("built   {node}")), "{node} was not built:\n{log}");
    }
    for image in ["base", "web", "docs"] {
        assert_eq!(registry.tags(&format!("qs/{image}")), Vec::<String>::new(), "{image} was pushed:\n{log}");
    }
}

#[test]
#[ignore = "needs gitlab-ci-local, rsync, htpasswd, skopeo and docker-registry (installed by .ci/run)"]
fn on_a_runner_without_hephy_each_job_installs_it_and_logs_in_from_its_variables() {
    let runner = tool("gitlab-ci-local");
    tool("rsync");
    common::require(
        &["htpasswd", "skopeo", "docker-registry"],
        "apt-get install apache2-utils skopeo docker-registry",
    );
    let password = "pw-7f3a9c-not-in-any-log";
    let registry = Registry::start_with_login("gitlab-ci-token", password);
    let repo = Repo::quickstart_pushing_to(&registry.address(), "");
    std::fs::write(
        repo.path().join(".gitignore"),
        ".hephy/\n.gitlab-ci-local/\n.gitlab-ci-local-variables.yml\nhephy-pipeline.yml\nhephy.env\n",
    )
    .unwrap();
    let generated = repo.run(&["ci", "gitlab", "-o", ".gitlab-ci.yml"]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    as_git_repo(repo.path());
    let tools = tempfile::tempdir().unwrap();
    let (path, install) = bare_runner(tools.path());
    let docker_config = tempfile::tempdir().unwrap();
    project_variables(
        &repo,
        &[
            ("HEPHY_INSTALL", &install),
            ("CI_REGISTRY", &registry.address()),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", password),
        ],
    );
    let output = Command::new(&runner)
        .arg("--shell-isolation")
        .current_dir(repo.path())
        .env("PATH", &path)
        .env("HEPHY_OFFLINE", "0")
        .env_remove("HEPHY_DATE")
        // The runner's own (gitlab-ci-local takes a variable naming a path for a file variable).
        .env("DOCKER_CONFIG", docker_config.path().join("docker"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "gitlab-ci-local failed:\n{log}");
    // Every job installed hephy through its own step, then logged in from the job's variables;
    // the secret is in no log and in no pipeline file. The plan job compiled (here: copied) it;
    // the cache, keyed by the version, carried it to the 9 jobs of the child pipeline.
    assert_eq!(log.matches("> hephy: installing into").count(), 1, "{log}");
    assert_eq!(log.lines().filter(|l| l.ends_with("(cached)")).count(), 9, "{log}");
    let child = std::fs::read_to_string(repo.path().join("hephy-pipeline.yml")).unwrap();
    let jobs = gitlab_jobs(&child);
    assert_eq!(jobs.len(), 9, "{child}");
    for job in jobs.keys().map(String::as_str).chain(["hephy-plan"]) {
        let version = job.to_owned() + " ";
        assert!(
            log.lines()
                .any(|l| l.contains(&version) && l.contains(&format!("hephy {}", env!("CARGO_PKG_VERSION")))),
            "{job} did not run the installed hephy:\n{log}"
        );
        assert!(
            log.lines().any(|l| l.contains(&version) && l.contains("hephy: logged in to `127.0.0.1:")),
            "{job} did not log in:\n{log}"
        );
    }
    assert!(!log.contains(password), "the password is in the log:\n{log}");
    assert!(!child.contains(password));
    let config = std::fs::read_to_string(docker_config.path().join("docker/config.json")).unwrap();
    assert!(config.contains(&registry.address()), "{config}");
    // Pushed with the job's login: each tag names an index of both platforms.
    for image in ["base", "web", "docs"] {
        let output = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
            .arg(format!("gitlab-ci-token:{password}"))
            .arg(format!("docker://{}/qs/{image}:latest", registry.address()))
            .output()
            .unwrap();
        assert!(output.status.success(), "{image}: {}", String::from_utf8_lossy(&output.stderr));
        let index: Value = serde_json::from_slice(&output.stdout).unwrap();
        // Each platform's manifest, beside its attestation manifest (`unknown/unknown`).
        let platforms = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["platform"]["os"] != "unknown")
            .count();
        assert_eq!(platforms, 2, "{image}");
    }
}

/// The `run:` script of the step after the line `marker` in a workflow hephy wrote.
fn step_script(workflow: &str, marker: &str) -> String {
    let line = workflow
        .lines()
        .skip_while(|l| !l.ends_with(marker))
        .find_map(|l| l.trim_start().strip_prefix("run: "))
        .unwrap_or_else(|| panic!("no step after `{marker}` in:\n{workflow}"));
    serde_json::from_str(line).expect("a JSON-quoted script")
}

#[test]
#[ignore = "needs skopeo, docker-registry and bash (installed by .ci/run)"]
fn the_dynamic_workflows_plan_step_and_level_steps_build_the_quickstart() {
    // No GitHub runner emulation works offline, so this plays the runner's part by hand: the
    // plan step's script and each level's step script, taken from the workflow hephy wrote,
    // run in bash with the environment GitHub would give them, each matrix entry in a clone
    // of its own (only the registry carries results), level after level.
    common::require(&["skopeo", "docker-registry", "bash"], "apt-get install skopeo docker-registry bash");
    let registry = Registry::start();
    let check = "task \"date-check\" {\n    run \"sh\" \"-c\" \"test $${#HEPHY_DATE} -eq 8\"\n}\n";
    let repo = Repo::quickstart_pushing_to(&registry.address(), check);
    assert_eq!(repo.run(&["ci", "github", "-o", "wf.yml"]).code, 0);
    let workflow = std::fs::read_to_string(repo.path().join("wf.yml")).unwrap();
    as_git_repo(repo.path());
    // A runner without hephy: each job's own steps install it (from the cache after the first
    // job, as `actions/cache` restores it), log in, and add it to `$GITHUB_PATH`.
    let runner = tempfile::tempdir().unwrap();
    let (bare_path, install) = bare_runner(runner.path());
    let install_step = step_script(&workflow, "- name: install hephy");
    let login_step = step_script(&workflow, "- name: registry login");
    let cache = runner.path().join("actions-cache");
    let installs = std::cell::Cell::new(0);
    let step = |script: &str, name: &str, env: &[(&str, &str)]| {
        let checkout = runner.path().join(name.replace(['/', '@', ':', ' '], "_"));
        let source = repo.path().to_str().unwrap();
        git(runner.path(), &["clone", "-q", source, checkout.to_str().unwrap()]);
        let cached = checkout.join(".hephy/install");
        if cache.exists() {
            std::fs::create_dir_all(checkout.join(".hephy")).unwrap();
            assert!(Command::new("cp").arg("-a").arg(&cache).arg(&cached).status().unwrap().success());
        }
        let github_path = checkout.join("github_path");
        std::fs::write(&github_path, "").unwrap();
        for script in [install_step.as_str(), login_step.as_str(), script] {
            // GitHub puts `$GITHUB_PATH`'s lines before the `PATH` of the steps after.
            let added: Vec<String> =
                std::fs::read_to_string(&github_path).unwrap().lines().map(str::to_owned).collect();
            let path = added.into_iter().rev().chain([bare_path.clone()]).collect::<Vec<_>>().join(":");
            let output = Command::new("bash")
                .args(["-e", "-c", script])
                .current_dir(&checkout)
                .env("PATH", &path)
                .env("GITHUB_PATH", &github_path)
                .env("HEPHY_INSTALL", &install)
                .env("HEPHY_OFFLINE", "0")
                .env("HEPHY_SINCE", "")
                .env("HEPHY_SCHEDULE", "")
                .env("GITHUB_TOKEN", "ghs_not_for_this_registry")
                .env_remove("HEPHY_DATE")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{name} failed:\n{script}\n{log}");
            if log.contains("hephy: installing into") {
                installs.set(installs.get() + 1);
            }
        }
        if !cache.exists() {
            assert!(Command::new("cp").arg("-a").arg(&cached).arg(&cache).status().unwrap().success());
        }
        checkout
    };

    let outputs = runner.path().join("github_output");
    let plan =
        step(&step_script(&workflow, "- id: plan"), "plan", &[("GITHUB_OUTPUT", outputs.to_str().unwrap())]);
    assert!(plan.is_dir());
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    let outputs: BTreeMap<&str, &str> = outputs.lines().filter_map(|l| l.split_once('=')).collect();
    let date = outputs["date"];
    let level_script = step_script(&workflow, "- shell: bash");
    let mut ran = Vec::new();
    for level in 1..=8 {
        let entries: Vec<Value> = serde_json::from_str(outputs[format!("level{level}").as_str()]).unwrap();
        for entry in entries {
            let name = entry["name"].as_str().unwrap();
            let nodes = entry["nodes"].as_str().unwrap();
            step(&level_script, &format!("{level}-{name}"), &[("HEPHY_DATE", date), ("HEPHY_NODES", nodes)]);
            ran.push((level, name.to_owned()));
        }
    }
    assert_eq!(ran.len(), 10, "{ran:?}");
    assert!(ran.contains(&(3, "web".to_owned())), "{ran:?}");
    // Installed once, by the plan job; every later job found it in the cache.
    assert_eq!(installs.get(), 1);
    for image in ["base", "web", "docs"] {
        let index: Value = serde_json::from_str(&registry.raw(&format!("qs/{image}:latest"))).unwrap();
        // Two platforms, each with its provenance (an attestation manifest naming it).
        let (attestations, platforms): (Vec<&Value>, Vec<&Value>) = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .partition(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest");
        assert_eq!((platforms.len(), attestations.len()), (2, 2), "{image}");
    }
    // Planned again, only the task is left (its result lives in each runner's own state).
    step(&step_script(&workflow, "- id: plan"), "plan-again", &[("GITHUB_OUTPUT", "again")]);
    let again = std::fs::read_to_string(runner.path().join("plan-again/again")).unwrap();
    assert!(again.contains("\nlevels=1\nlevel1=[{\"name\":\"date-check\""), "{again}");
}

#[test]
fn touching_curls_context_yields_jobs_for_curl_and_its_dependents_only() {
    let repo = Repo::example("kaniko-builder");
    as_git_repo(repo.path());
    repo.write("curl/curlrc", "--retry 5\n");
    let run = repo.run(&["ci", "gitlab", "--static", "--since", "HEAD"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let jobs = gitlab_jobs(&run.stdout);
    let expected = [
        ("curl", &["curl@linux/amd64", "curl@linux/arm64"][..], &["curl", "curl:latest"][..]),
        ("curl@linux/amd64", &[], &["curl@linux/amd64"]),
        ("curl@linux/arm64", &[], &["curl@linux/arm64"]),
        (
            "manifest-tool",
            &["manifest-tool@linux/amd64", "manifest-tool@linux/arm64"],
            &["manifest-tool", "manifest-tool:latest"],
        ),
        ("manifest-tool@linux/amd64", &["curl@linux/amd64"], &["manifest-tool@linux/amd64"]),
        ("manifest-tool@linux/arm64", &["curl@linux/arm64"], &["manifest-tool@linux/arm64"]),
    ];
    let expected: BTreeMap<String, (Vec<String>, Vec<String>)> = expected
        .iter()
        .map(|(name, needs, nodes)| {
            let strings = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
            ((*name).to_owned(), (strings(needs), strings(nodes)))
        })
        .collect();
    assert_eq!(jobs, expected, "{}", run.stdout);
    // Runner tags come from the executors; publish jobs run anywhere.
    assert!(
        run.stdout.contains("\"curl@linux/arm64\":\n  stage: level-1\n  tags: [\"arm64\"]\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\"curl\":\n  stage: level-2\n  needs: [\"curl@linux/amd64\", \"curl@linux/arm64\"]\n")
    );
}

/// A repository of `count` local-context images for two platforms on two executors, pushed to
/// a registry with two extra tags each; each image after the first 20 builds FROM an earlier
/// one (a tree three images deep).
fn synthetic(count: usize) -> Repo {
    let mut graph = String::from(
        "registry \"registry.example.com/platform\"\nplatforms \"linux/amd64\" \"linux/arm64\"\n\
         executor \"amd64\" platform=\"linux/amd64\" gitlab-tags=\"amd64\" runs-on=\"ubuntu-24.04\"\n\
         executor \"arm64\" platform=\"linux/arm64\" gitlab-tags=\"arm64\" runs-on=\"ubuntu-24.04-arm\"\n",
    );
    let mut repo = Repo::new();
    for i in 0..count {
        let from = if i < 20 {
            String::new()
        } else {
            format!("    from \"img-{:03}\" arg=\"BASE\"\n", (i - 20) / 3)
        };
        graph.push_str(&format!(
            "image \"img-{i:03}\" {{\n    context \"img-{i:03}\"\n{from}    tags \"latest\" \"v1.2.3\"\n}}\n"
        ));
        repo = repo.context(&format!("img-{i:03}"));
    }
    repo.file("hephy.kdl", &graph)
}

#[test]
fn a_200_image_graph_stays_under_githubs_256_jobs() {
    let repo = synthetic(200);
    let nodes = to_build(&repo);
    // One job per node would be 1,000: 400 platform builds, 200 indexes, 400 tags.
    assert_eq!(nodes.len(), 1000);
    let date = [("HEPHY_DATE", "20260131")];

    // The static workflow: under the cap, every node once, `needs` exactly the jobs holding a
    // dependency (and the date job).
    let workflow = repo.run_with(&["ci", "github", "--static"], &date);
    assert_eq!(workflow.code, 0, "{}", workflow.stderr);
    let jobs = github_jobs(&workflow.stdout);
    assert!(jobs.len() <= 250, "{} jobs", jobs.len());
    assert!(jobs.len() >= 200, "batched more than needed: {} jobs", jobs.len());
    let (date_needs, date_nodes) = &jobs["hephy-date"];
    assert!(date_needs.is_empty() && date_nodes.is_empty());
    assert_exact(&jobs, &nodes, &["hephy-date"]);
    assert!(
        workflow.stdout.contains("600 builds, tasks and image publishes batched by level and executor"),
        "{}",
        workflow.stdout.lines().next().unwrap()
    );

    // GitLab's child pipeline: the same jobs, no date job (the date is a pipeline variable).
    let pipeline = repo.run_with(&["ci", "gitlab", "--static"], &date);
    assert_eq!(pipeline.code, 0, "{}", pipeline.stderr);
    let jobs = gitlab_jobs(&pipeline.stdout);
    assert!(jobs.len() <= 250, "{} jobs", jobs.len());
    assert_exact(&jobs, &nodes, &[]);
    assert!(pipeline.stdout.contains("variables:\n  HEPHY_DATE: \"20260131\"\n"));

    // The dynamic workflow's plan step: the plan job and the level jobs' entries stay under
    // the cap; each node runs once, at a level after every dependency's.
    let matrix = repo.run_with(&["ci", "matrix"], &date);
    assert_eq!(matrix.code, 0, "{}", matrix.stderr);
    let lines: BTreeMap<&str, &str> = matrix.stdout.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(lines["date"], "20260131");
    assert_eq!(lines["levels"], "4");
    // Node → (level, entry).
    let mut level_of = BTreeMap::new();
    let mut entries = 0;
    for level in 1..=8 {
        let parsed: Vec<Value> = serde_json::from_str(lines[format!("level{level}").as_str()]).unwrap();
        assert!(parsed.len() <= 256, "level {level}: {} entries", parsed.len());
        for entry in parsed {
            entries += 1;
            assert!(entry["runner"].is_string() || entry["runner"].is_array(), "{entry}");
            for node in entry["nodes"].as_str().unwrap().split(' ') {
                assert!(level_of.insert(node.to_owned(), (level, entries)).is_none(), "{node} twice");
            }
        }
    }
    assert!(1 + 8 + entries <= 250, "{entries} matrix jobs");
    assert_eq!(level_of.keys().collect::<BTreeSet<_>>(), nodes.keys().collect::<BTreeSet<_>>());
    for (node, deps) in &nodes {
        for dep in deps {
            // A dependency runs at an earlier level, or in the same job (an index before its
            // tags).
            let ((level, entry), (dep_level, dep_entry)) = (level_of[node], level_of[dep]);
            assert!(
                dep_level < level || dep_entry == entry,
                "{node} at level {level} runs with or before {dep}"
            );
        }
    }

    // The workflow to commit does not depend on the graph: the same as a three-image one's.
    let small = Repo::example("kaniko-builder");
    assert_eq!(repo.run(&["ci", "github"]).stdout, small.run(&["ci", "github"]).stdout);
}

#[test]
fn a_plan_deeper_than_the_workflow_or_over_budget_is_refused() {
    let repo = Repo::example("kaniko-builder");
    let deep = repo.run(&["ci", "matrix", "--levels", "2"]);
    assert_eq!(deep.code, 2, "{}", deep.stdout);
    assert!(deep.stderr.contains("the plan has 3 dependency levels"), "{}", deep.stderr);
    assert!(deep.stderr.contains("hephy ci github --levels 3"), "{}", deep.stderr);
    // 3 levels × (amd64, arm64, local) minus the empty ones: 7 jobs at the fewest.
    let tight = repo.run(&["ci", "gitlab", "--static", "--max-jobs", "4"]);
    assert_eq!(tight.code, 2, "{}", tight.stdout);
    assert!(tight.stderr.contains("needs at least 7 jobs"), "{}", tight.stderr);
    // At the fewest, each level and executor is one job.
    let fewest = repo.run(&["ci", "gitlab", "--static", "--max-jobs", "7"]);
    assert_eq!(fewest.code, 0, "{}", fewest.stderr);
    assert_eq!(gitlab_jobs(&fewest.stdout).len(), 7, "{}", fewest.stdout);
    let bad = repo.run_with(&["ci", "gitlab", "--static"], &[("HEPHY_DATE", "2026-01-31")]);
    assert_eq!(bad.code, 2, "{}", bad.stdout);
    assert!(
        bad.stderr.contains("`HEPHY_DATE` is `2026-01-31`, not a UTC date written `YYYYMMDD`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_gitlab_job_past_the_limit_of_needs_waits_for_the_stages_before_it() {
    // A task after 60 images needs 60 publish jobs: GitLab allows 50 `needs`, so it waits for
    // every earlier stage (one per level) instead, and the other jobs keep their `needs`.
    let mut graph = String::from("registry \"registry.example.com/p\"\nplatforms \"linux/amd64\"\n");
    let mut repo = Repo::new();
    let mut names = Vec::new();
    for i in 0..60 {
        graph.push_str(&format!("image \"i{i}\" {{\n    context \"i{i}\"\n}}\n"));
        repo = repo.context(&format!("i{i}"));
        names.push(format!("\"i{i}\""));
    }
    graph.push_str(&format!("task \"report\" {{\n    run \"true\"\n    after {}\n}}\n", names.join(" ")));
    let repo = repo.file("hephy.kdl", &graph);
    let run = repo.run_with(&["ci", "gitlab", "--static"], &[("HEPHY_DATE", "20260131")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("stages:\n  - level-1\n  - level-2\n  - level-3\n"), "{}", run.stdout);
    assert!(run.stdout.contains("\n\"report\":\n  stage: level-3\n  cache:\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("\n\"i7\":\n  stage: level-2\n  needs: [\"i7@linux/amd64\"]\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn buildah_and_binfmt_are_set_up_only_in_the_jobs_that_need_them() {
    // `runs` RUNs commands (buildah); `files` only copies (the built-in builder, no tool).
    let images = "image \"runs\" {\n    context \"runs\"\n    builder \"buildah\"\n}\n\
        image \"files\" {\n    context \"files\"\n}\n";
    let head = "registry \"registry.example.com/p\"\nplatforms \"linux/amd64\" \"linux/arm64\"\n";
    let repo = |executors: &str| {
        Repo::new()
            .file("hephy.kdl", &format!("{head}{executors}{images}"))
            .file("runs/Dockerfile", "FROM scratch\nRUN true\n")
            .file("files/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")
    };
    let pipeline = |repo: &Repo| {
        let run = repo.run_with(&["ci", "gitlab", "--static"], &[("HEPHY_DATE", "20260131")]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout
    };
    let job = |pipeline: &str, name: &str| {
        let start =
            pipeline.find(&format!("\n\"{name}\":\n")).unwrap_or_else(|| panic!("no {name}:\n{pipeline}"));
        let rest = &pipeline[start + 1..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_owned()
    };
    let buildah = "apt-get install -y -qq buildah";
    let binfmt = "qemu-user-static";

    // Runners of no known architecture: each RUN build may need emulation (skipped at run
    // time on a runner of its own architecture).
    let unknown = repo("");
    let text = pipeline(&unknown);
    for name in
        ["runs@linux/amd64", "runs@linux/arm64", "runs", "files@linux/amd64", "files@linux/arm64", "files"]
    {
        let job = job(&text, name);
        assert!(job.contains("hephy: installing into") && job.contains("\"hephy ci login\""), "{job}");
    }
    let amd64 = job(&text, "runs@linux/amd64");
    assert!(
        amd64.contains(buildah) && amd64.contains("for m in x86_64;") && amd64.contains(binfmt),
        "{amd64}"
    );
    let arm64 = job(&text, "runs@linux/arm64");
    assert!(arm64.contains(buildah) && arm64.contains("for m in aarch64;"), "{arm64}");
    for name in ["runs", "files@linux/amd64", "files@linux/arm64", "files"] {
        let job = job(&text, name);
        assert!(!job.contains(buildah) && !job.contains(binfmt), "{job}");
    }
    // The dynamic workflow's matrix entries carry the same.
    let matrix = unknown.run_with(&["ci", "matrix"], &[("HEPHY_DATE", "20260131")]).stdout;
    assert!(
        matrix.contains("\"nodes\":\"runs@linux/arm64\",\"buildah\":true,\"emulate\":\"aarch64\"}"),
        "{matrix}"
    );
    assert!(
        matrix.contains("\"nodes\":\"files@linux/arm64\",\"buildah\":false,\"emulate\":\"\"}"),
        "{matrix}"
    );

    // Each platform on an executor of its own architecture: buildah, no emulation.
    let native = repo(
        "executor \"x86\" platform=\"linux/amd64\" gitlab-tags=\"amd64\"\n\
         executor \"arm\" platform=\"linux/arm64\" gitlab-tags=\"arm64\"\n",
    );
    let text = pipeline(&native);
    for name in ["runs@linux/amd64", "runs@linux/arm64"] {
        let job = job(&text, name);
        assert!(job.contains(buildah) && !job.contains(binfmt), "{job}");
    }
}

#[test]
fn ci_login_writes_the_platforms_credential_for_the_graphs_registry_and_keeps_the_rest() {
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().to_str().unwrap();
    let file = config.path().join("config.json");
    std::fs::write(&file, r#"{"auths":{"other.example.com":{"auth":"b3RoZXI6b25l"}},"credsStore":"pass"}"#)
        .unwrap();
    let graph = |registry: &str| {
        Repo::new()
            .file("hephy.kdl", &format!("registry \"{registry}\"\ntask \"t\" {{\n    run \"true\"\n}}\n"))
    };
    // GitHub: the job token for ghcr.io, under the actor's name.
    let token = "ghs_secret_token_value";
    let github = graph("ghcr.io/acme/images").run_with(
        &["ci", "login"],
        &[("DOCKER_CONFIG", dir), ("GITHUB_TOKEN", token), ("GITHUB_ACTOR", "octocat")],
    );
    assert_eq!(github.code, 0, "{}", github.stderr);
    assert!(github.stdout.contains("logged in to `ghcr.io` with `GITHUB_TOKEN`"), "{}", github.stdout);
    assert!(!github.stdout.contains(token) && !github.stderr.contains(token));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("octocat:{token}"));
    assert_eq!(written["auths"]["ghcr.io"]["auth"], auth.as_str());
    // What the file held is kept.
    assert_eq!(written["auths"]["other.example.com"]["auth"], "b3RoZXI6b25l");
    assert_eq!(written["credsStore"], "pass");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // ECR: its credential helper, as the kaniko-builder layout's pipelines use it.
    let ecr = graph("123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform")
        .run_with(&["ci", "login"], &[("DOCKER_CONFIG", dir)]);
    assert_eq!(ecr.code, 0, "{}", ecr.stderr);
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(written["credHelpers"]["123456789012.dkr.ecr.eu-west-1.amazonaws.com"], "ecr-login");
    assert_eq!(written["auths"]["ghcr.io"]["auth"], auth.as_str());

    // GitLab's variables name another registry: nothing is written.
    let before = std::fs::read_to_string(&file).unwrap();
    let elsewhere = graph("registry.example.com/p").run_with(
        &["ci", "login"],
        &[
            ("DOCKER_CONFIG", dir),
            ("CI_REGISTRY", "registry.gitlab.com"),
            ("CI_REGISTRY_USER", "u"),
            ("CI_REGISTRY_PASSWORD", "p"),
        ],
    );
    assert_eq!(elsewhere.code, 0, "{}", elsewhere.stderr);
    assert!(
        elsewhere.stdout.contains("no CI variables give a login for `registry.example.com`"),
        "{}",
        elsewhere.stdout
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // A config.json that is not JSON is an error that names it, and is left as it was.
    std::fs::write(&file, "not json").unwrap();
    let broken = graph("ghcr.io/acme/images")
        .run_with(&["ci", "login"], &[("DOCKER_CONFIG", dir), ("GITHUB_TOKEN", token)]);
    assert_eq!(broken.code, 2, "{}", broken.stdout);
    assert!(broken.stderr.contains("config.json` is not a JSON object"), "{}", broken.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not json");
}

#[test]
fn a_plan_with_nothing_to_build_feeds_empty_matrices() {
    let repo = Repo::new().file("hephy.kdl", "task \"t\" {\n    run \"true\"\n}\n");
    let before = repo.run_with(&["ci", "matrix", "--levels", "2"], &[("HEPHY_DATE", "20260131")]);
    assert_eq!(
        before.stdout,
        "date=20260131\nlevels=1\nlevel1=[{\"name\":\"t\",\"runner\":\"ubuntu-latest\",\"nodes\":\"t\",\"buildah\":false,\"emulate\":\"\"}]\nlevel2=[]\n"
    );
    assert_eq!(repo.run(&["run"]).code, 0);
    let after = repo.run_with(&["ci", "matrix", "--levels", "2"], &[("HEPHY_DATE", "20260131")]);
    assert_eq!(after.stdout, "date=20260131\nlevels=0\nlevel1=[]\nlevel2=[]\n");
}

#[test]
fn the_generated_files_of_the_kaniko_builder_example() {
    let repo = Repo::example("kaniko-builder");
    let date = [("HEPHY_DATE", "20260131")];
    for (name, args) in [
        ("github", &["ci", "github", "--setup", "cargo install --locked hephy"][..]),
        ("github_static", &["ci", "github", "--static"]),
        ("matrix", &["ci", "matrix"]),
        ("gitlab", &["ci", "gitlab", "--schedule", "weekly"]),
        ("gitlab_static", &["ci", "gitlab", "--static", "--schedule", "weekly"]),
    ] {
        let run = repo.run_with(args, &date);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        insta::assert_snapshot!(format!("kaniko_builder_{name}"), run.stdout);
    }
}

#[test]
#[ignore = "needs action-validator (installed by .ci/run)"]
fn the_github_workflows_pass_action_validator() {
    let validator = tool("action-validator");
    let validate = |repo: &Repo, args: &[&str], what: &str| {
        let mut args = args.to_vec();
        args.extend(["-o", "wf.yml"]);
        let run = repo.run(&args);
        assert_eq!(run.code, 0, "{what}: {}", run.stderr);
        let workflow = std::fs::read_to_string(repo.path().join("wf.yml")).unwrap();
        let output = Command::new(&validator).arg("wf.yml").current_dir(repo.path()).output().unwrap();
        assert!(output.status.success(), "{what}: {}\n{workflow}", String::from_utf8_lossy(&output.stdout));
        workflow
    };
    for example in ["quickstart", "kaniko-builder"] {
        let repo = Repo::example(example);
        if example == "quickstart" {
            // Jobs share images through a registry; without one there is no pipeline to write.
            for form in [&["ci", "github"][..], &["ci", "github", "--static"], &["ci", "gitlab"]] {
                let refused = repo.run(form);
                assert_eq!(refused.code, 2, "{}", refused.stdout);
                assert!(refused.stderr.contains("cannot be shared between CI jobs"), "{}", refused.stderr);
                assert!(refused.stderr.contains("add `registry"), "{}", refused.stderr);
            }
            let graph = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
            repo.write("hephy.kdl", &format!("registry \"registry.example.com/qs\"\n{graph}"));
        }
        let setup = ["--setup", "cargo install --locked hephy", "-f", "hephy.kdl"];
        validate(&repo, &[&["ci", "github"][..], &setup].concat(), example);
        let workflow = validate(&repo, &[&["ci", "github", "--static"][..], &setup].concat(), example);
        if example == "kaniko-builder" {
            assert!(workflow.contains("runs-on: [\"ubuntu-24.04-arm\"]"), "{workflow}");
            assert!(workflow.contains("needs: [hephy-date, curl_linux_arm64]"), "{workflow}");
        }
    }
    // A graph on ghcr.io: the job token may push packages.
    let ghcr = Repo::new()
        .file("hephy.kdl", "registry \"ghcr.io/acme/images\"\nimage \"a\" {\n    context \"a\"\n}\n")
        .context("a");
    for form in [&["ci", "github"][..], &["ci", "github", "--static"]] {
        let workflow = validate(&ghcr, form, "ghcr.io");
        assert!(
            workflow.contains("\npermissions:\n  contents: read\n  packages: write\njobs:\n"),
            "{workflow}"
        );
    }
    // The 200-image graph's static workflow, and a plan with nothing to build.
    validate(&synthetic(200), &["ci", "github", "--static"], "200 images");
    let repo = Repo::new().file("hephy.kdl", "task \"t\" {\n    run \"true\"\n}\n");
    assert_eq!(repo.run(&["run"]).code, 0);
    validate(&repo, &["ci", "github", "--static"], "nothing to build");
    validate(&repo, &["ci", "github", "--since", "HEAD~1", "--levels", "3"], "since");
}
