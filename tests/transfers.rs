//! In-process work stops when it must: a node's `timeout` ends the built-in builder mid-layer,
//! and Ctrl-C ends a push to a registry mid-upload. Either way the run ends quickly, nothing
//! half-written is left behind or recorded as built, and the next run builds it whole.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Repo;
use common::proxy::{Fault, Proxy};
use common::registry::Registry;

/// `count` files of `size` bytes that compress poorly (so a layer of them is slow to write).
fn noisy_context(repo: &Repo, dir: &str, count: usize, size: usize) {
    let root = repo.path().join(dir);
    std::fs::create_dir_all(&root).unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..count {
        let mut bytes = Vec::with_capacity(size);
        while bytes.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(root.join(format!("blob{i}.bin")), &bytes).unwrap();
    }
    std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /data/\n").unwrap();
}

/// Files in the layout's blob folder: (name, size).
fn blobs(repo: &Repo) -> Vec<(String, u64)> {
    let dir = repo.path().join(".hephy/oci/blobs/sha256");
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map_or(0, |m| m.len())))
        .collect()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn logs_contain(dir: &Path, text: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            logs_contain(&path, text)
        } else {
            std::fs::read_to_string(&path).is_ok_and(|t| t.contains(text))
        }
    })
}

#[test]
fn a_timeout_stops_the_builtin_builder_mid_layer() {
    let repo = Repo::new().file(
        "hephy.kdl",
        "image \"big\" {\n    context \"big\"\n    builder \"oci\"\n    timeout \"200ms\"\n}\n",
    );
    // 96 MiB of noise: many seconds of compression in a test build, far more than the timeout.
    noisy_context(&repo, "big", 24, 4 << 20);
    let started = Instant::now();
    let run = repo.run(&["run"]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let failed = run.stdout.lines().find(|l| l.starts_with("failed  big@")).unwrap_or_default();
    assert!(failed.contains("stopped: it ran past its timeout of 200ms"), "{}", run.stdout);
    // Planning hashes the context first; the build itself is cut off about when its time is up.
    assert!(took < Duration::from_secs(30), "the run took {took:?}");
    // No half-written layer, no temporary file: only what a finished build would leave (nothing
    // here, since no layer was finished).
    let left = blobs(&repo);
    assert!(left.iter().all(|(name, _)| !name.starts_with(".tmp-")), "temporary files left: {left:?}");
    assert!(left.iter().all(|(_, size)| *size < 1 << 20), "a layer was finished: {left:?}");

    // Without the timeout, the same node builds whole.
    repo.write("hephy.kdl", "image \"big\" {\n    context \"big\"\n    builder \"oci\"\n}\n");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(blobs(&repo).iter().any(|(_, size)| *size > 90 << 20), "{:?}", blobs(&repo));
}

#[test]
#[ignore = "needs docker-registry (installed by .ci/run)"]
fn ctrl_c_stops_a_push_mid_upload() {
    let registry = Registry::start();
    // Every request to the registry waits: the push of a 48 MiB layer (16 MiB per request)
    // takes several seconds.
    let proxy = Proxy::start(registry.port, Fault::Slow(Duration::from_millis(800)));
    let graph = format!(
        "registry \"{}/t\"\nimage \"big\" {{\n    context \"big\"\n    builder \"oci\"\n}}\n",
        proxy.address()
    );
    let repo = Repo::new().file("hephy.kdl", &graph);
    noisy_context(&repo, "big", 12, 4 << 20);
    let child = Command::new(env!("CARGO_BIN_EXE_hephy"))
        .args(["run", "--format", "json"])
        .current_dir(repo.path())
        .env("HEPHY_OFFLINE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The image is in the layout and its push has begun.
    let logs = repo.path().join(".hephy/logs");
    wait_for("the push to start", || logs_contain(&logs, "hephy oci: big.") && proxy.faults_injected() > 0);
    std::thread::sleep(Duration::from_millis(1200));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let output = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stdout));
    // At most the request in flight finishes (0.8 s of delay plus its bytes).
    assert!(took < Duration::from_secs(5), "the push went on for {took:?} after Ctrl-C");
    assert!(
        !logs_contain(&logs, "hephy oci: published"),
        "the push finished before Ctrl-C: too fast to test"
    );
    assert!(registry.tags("t/big").is_empty(), "a manifest was pushed: {:?}", registry.tags("t/big"));
    assert!(
        registry.tags("t/hephy-cache").is_empty(),
        "a record was written: {:?}",
        registry.tags("t/hephy-cache")
    );
    let log = repo.run(&["log", "--format", "json"]).json();
    assert_eq!(log[0]["status"], "interrupted", "{log}");
    // The image stopped mid-push (`stopped`) and its manifest, which never started (`cancelled`).
    assert_eq!(log[0]["counts"], serde_json::json!({"stopped": 1, "cancelled": 1}), "{log}");

    // The next run pushes it whole (straight to the registry this time).
    let graph = format!(
        "registry \"{}/t\"\nimage \"big\" {{\n    context \"big\"\n    builder \"oci\"\n}}\n",
        registry.address()
    );
    repo.write("hephy.kdl", &graph);
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.results().values().all(|r| r == "built"), "{}", run.stdout);
    // Pushed by digest (no tag: the graph has none), the build's key and its index's recorded
    // in the cache repository.
    assert!(registry.tags("t/big").is_empty(), "{:?}", registry.tags("t/big"));
    assert_eq!(registry.records("t/hephy-cache").len(), 2, "{:?}", registry.records("t/hephy-cache"));
}
