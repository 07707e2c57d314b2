//! Remote executors over SSH against a real sshd on 127.0.0.1: the arm64 builds of the
//! quickstart run on the "remote" host (hephy ships itself there), come back through a real
//! registry with the very digests a local build gives, and a lost or silent host fails its node
//! with a clear message instead of hanging the run.

mod common;

use std::time::{Duration, Instant};

use common::Repo;
use common::registry::Registry;
use common::ssh::{self, Sshd};
use serde_json::Value;

fn quickstart(registry: &Registry, arm64: &str) -> Repo {
    Repo::quickstart_pushing_to(
        &registry.address(),
        &format!(
            "executor \"amd64\" platform=\"linux/amd64\"\nexecutor \"arm64\" platform=\"linux/arm64\" ssh=\"{arm64}\"\n"
        ),
    )
}

/// Gives `docs` two ignore files: the Dockerfile's own (which leaves itself out) decides, and
/// the host must decide alike (`.dockerignore` would leave out a page).
fn with_ignore_files(repo: Repo) -> Repo {
    repo.write("docs/.dockerignore", "pages/usage.md\n");
    repo.write("docs/Dockerfile.dockerignore", "Dockerfile.dockerignore\n");
    repo
}

#[test]
#[ignore = "needs sshd, buildah, skopeo and docker-registry (installed by .ci/run)"]
fn arm64_builds_run_on_the_ssh_host_and_come_back_by_digest() {
    ssh::require();
    common::registry::require_image_tools();
    let registry = Registry::start();
    let sshd = Sshd::start();
    let config = sshd.config().display().to_string();
    let env = [("HEPHY_SSH_CONFIG", config.as_str())];
    let repo = with_ignore_files(quickstart(&registry, &sshd.destination()));
    let run = repo.run_with(&["run", "--format", "json"], &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.results().values().all(|r| r == "built"), "{:?}", run.results());
    // The arm64 builds ran on the host: hephy shipped itself there and built in its folder.
    let log = std::fs::read_to_string(repo.path().join(".hephy/logs/1/web@linux_arm64.log")).unwrap();
    assert!(log.contains("hephy remote-build: web@linux/arm64"), "{log}");
    assert!(log.contains("hephy-remote-digest sha256:"), "{log}");
    assert!(std::fs::read_dir(sshd.remote_dir().join("bin")).unwrap().count() == 1);
    let local = std::fs::read_to_string(repo.path().join(".hephy/logs/1/web@linux_amd64.log")).unwrap();
    assert!(!local.contains("remote-build"), "{local}");

    // Reproducible: built again here, every platform locally, the images are the same bytes.
    let remote_built: Vec<String> =
        ["base", "web", "docs"].iter().map(|i| registry.raw(&format!("qs/{i}:latest"))).collect();
    let here = with_ignore_files(Repo::quickstart_pushing_to(&registry.address(), ""));
    let run = here.run(&["run", "--format", "json", "--force", "base", "--force", "web", "--force", "docs"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.results().values().all(|r| r == "built"), "{:?}", run.results());
    let local_built: Vec<String> =
        ["base", "web", "docs"].iter().map(|i| registry.raw(&format!("qs/{i}:latest"))).collect();
    assert_eq!(remote_built, local_built);
    let index: Value = serde_json::from_str(&local_built[1]).unwrap();
    assert_eq!(index["manifests"][1]["platform"]["architecture"], "arm64");
}

#[test]
#[ignore = "needs sshd, buildah, skopeo and docker-registry (installed by .ci/run)"]
fn a_host_that_is_gone_or_silent_fails_its_node_not_the_run() {
    ssh::require();
    common::registry::require_image_tools();
    let registry = Registry::start();
    // Nothing listens on this port: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let repo = quickstart(&registry, &format!("root@127.0.0.1:{closed}"));
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let results = run.results();
    assert_eq!(results["web@linux/amd64"], "built", "{results:?}");
    assert_eq!(results["base@linux/arm64"], "failed", "{results:?}");
    assert_eq!(results["web@linux/arm64"], "skipped", "{results:?}");
    let message = std::fs::read_to_string(repo.path().join(".hephy/logs/1/base@linux_arm64.log")).unwrap();
    assert!(message.to_ascii_lowercase().contains("connection refused"), "{message}");

    // A host that accepts and then says nothing: the connect timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let repo = quickstart(&registry, &format!("root@127.0.0.1:{port}"));
    let started = Instant::now();
    let run = repo.run_with(
        &["run", "--format", "json", "--only", "base@linux/arm64"],
        &[("HEPHY_SSH_CONNECT_TIMEOUT", "2")],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(started.elapsed() < Duration::from_secs(60), "a silent host hung the run");
    let message = std::fs::read_to_string(repo.path().join(".hephy/logs/1/base@linux_arm64.log")).unwrap();
    assert!(message.contains("failed or was lost") || message.contains("timed out"), "{message}");
    drop(silent);
}
