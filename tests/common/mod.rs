//! A tiny harness for end-to-end tests: a temporary repository, files written into it, and the
//! real `hephy` binary run inside it (in the style of just's `Test` builder).

#![allow(dead_code, unreachable_pub)]

pub mod cosign;
pub mod layers;
pub mod portal;
pub mod proxy;
pub mod registry;
pub mod ssh;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

/// A temporary folder that holds one graph repository.
pub struct Repo {
    dir: tempfile::TempDir,
    online: bool,
    /// The user's cache folder the runs see (`XDG_CACHE_HOME`: where hephy keeps the secret
    /// that seals stored documents), the test's own, outside the repository.
    cache: tempfile::TempDir,
}

/// What a run of `hephy` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The `results` of a `run --format json`: node id → result.
    pub fn results(&self) -> std::collections::BTreeMap<String, String> {
        serde_json::from_value(self.json()["results"].clone())
            .unwrap_or_else(|e| panic!("no results ({e}):\n{}", self.stdout))
    }

    /// The `hephy::…` codes of the diagnostics on stderr, in order.
    pub fn codes(&self) -> Vec<String> {
        self.stderr.lines().map(str::trim).filter(|l| l.starts_with("hephy::")).map(str::to_owned).collect()
    }
}

impl Repo {
    pub fn new() -> Repo {
        Repo {
            dir: tempfile::tempdir().expect("temp dir"),
            online: false,
            cache: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A repository holding a copy of `examples/<name>`.
    pub fn example(name: &str) -> Repo {
        Repo::copy_of(&format!("examples/{name}"))
    }

    /// The quickstart example in KDL alone, pushing to `registry` (`host:port`, under `qs/`),
    /// with `lines` (executors, say) added to its graph; registry lookups allowed.
    pub fn quickstart_pushing_to(registry: &str, lines: &str) -> Repo {
        let repo = Repo::example("quickstart").online();
        let graph = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("read hephy.kdl");
        repo.write("hephy.kdl", &format!("registry \"{registry}/qs\"\n{lines}{graph}"));
        repo
    }

    /// A repository holding a copy of a folder of the source tree (`tests/fixtures/…`).
    pub fn copy_of(path: &str) -> Repo {
        let repo = Repo::new();
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(path), repo.path());
        repo
    }

    /// Lets `hephy` ask the graph's registry (only for tests whose registry is a loopback one
    /// they started): every other test runs with `HEPHY_OFFLINE=1`, so no test ever reaches
    /// for the examples' made-up registries.
    pub fn online(mut self) -> Repo {
        self.online = true;
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `path` (relative to the repository), creating folders.
    pub fn file(self, path: &str, text: &str) -> Repo {
        self.write(path, text);
        self
    }

    pub fn write(&self, path: &str, text: &str) {
        let full = self.dir.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(full, text).expect("write file");
    }

    /// Creates the folder `path` with a Dockerfile in it, which takes a base as `ARG BASE` (so
    /// a `from … arg="BASE"` is wired right) and builds on `scratch` without one.
    pub fn context(self, path: &str) -> Repo {
        self.file(&format!("{path}/Dockerfile"), "ARG BASE=scratch\nFROM ${BASE}\n")
    }

    /// Runs `hephy ARGS` in the repository.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// Runs `hephy ARGS` in the repository with extra environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output = Command::cargo_bin("hephy")
            .expect("hephy binary")
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("HEPHY_OFFLINE", if self.online { "0" } else { "1" })
            .env("XDG_CACHE_HOME", self.cache.path())
            .env_remove("COLUMNS")
            // The branch a naming template's `{-branch}` reads is the test's, not the CI's.
            .env_remove("HEPHY_BRANCH")
            .env_remove("CI_COMMIT_REF_NAME")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME")
            .envs(env.iter().copied())
            .output()
            .expect("run hephy");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `hephy ARGS` in `repo`, failing (and killing it) if it takes longer than `limit`.
pub fn run_within(repo: &Repo, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Run {
    let mut child = Command::cargo_bin("hephy")
        .expect("hephy")
        .args(args)
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .env("XDG_CACHE_HOME", repo.cache.path())
        .env_remove("COLUMNS")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hephy");
    // Read both streams beside the wait, so a large output cannot stall the child.
    let mut stdout = child.stdout.take().expect("hephy");
    let mut stderr = child.stderr.take().expect("hephy");
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut text).expect("hephy");
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut text).expect("hephy");
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("hephy") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`hephy {}` still running after {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.join().expect("hephy")).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().expect("hephy")).into_owned(),
    }
}

/// Whether `tool` is on `PATH`.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Panics, naming the install step, unless every tool of `tools` is on `PATH`. Tests that need
/// a tool are `#[ignore = "needs …"]`d and call this first: run with `--include-ignored` (as
/// `.ci/run` does), a missing tool fails the test instead of letting it pass untested.
pub fn require(tools: &[&str], install: &str) {
    let missing: Vec<&str> = tools.iter().copied().filter(|tool| !have(tool)).collect();
    assert!(missing.is_empty(), "this test needs {missing:?}: {install} (.ci/run installs them)");
}

/// The path of an example in the source tree.
pub fn example_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read example") {
        let entry = entry.expect("entry");
        // A state folder left by running an example in the source tree is not part of it.
        if entry.file_name() == ".hephy" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Runs git in `dir` with a fixed identity and default branch; panics with git's message on
/// failure. Returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=hephy",
            "-c",
            "user.email=hephy@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
