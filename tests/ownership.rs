//! What hephy owns, it repairs and cleans; what it did not write, it leaves alone.
//!
//! - A damaged blob (the right name, other bytes) is replaced by the rebuild that notices it
//!   (a base image's layer pulled from a registry: pulled again),
//!   by `run --force`, and `gc` removes it so the next run rebuilds it.
//! - `gc` and `run` keep an `index.json` entry without a name (as `skopeo copy … oci:DIR`
//!   writes it) and every blob it reaches.
//! - A build killed with SIGKILL leaves its scratch folder in the state folder, never in
//!   `$TMPDIR`, and the next run removes it.
//! - A run whose process was killed lists as `killed` in `hephy log`.
//! - A daemon a task detached (`setsid`, output redirected) does not outlive the run.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::Repo;
use serde_json::Value;

fn blob(repo: &Repo, digest: &str) -> PathBuf {
    repo.path().join(".hephy/oci/blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// The recorded output of every node, from the state.
fn outputs(repo: &Repo) -> BTreeMap<String, String> {
    let state = hephy_engine::State::open(&repo.path().join(".hephy")).unwrap();
    state.snapshot().unwrap().records.iter().map(|(id, r)| (id.clone(), r.output.clone())).collect()
}

/// The digests of the layers of the manifest `digest`.
fn layers(repo: &Repo, digest: &str) -> Vec<String> {
    let manifest: Value = serde_json::from_slice(&std::fs::read(blob(repo, digest)).unwrap()).unwrap();
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect()
}

/// Whether the blob `digest` holds bytes that hash to its name (as `sha256sum` says).
fn sound(repo: &Repo, digest: &str) -> bool {
    let out = Command::new("sha256sum").arg(blob(repo, digest)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256:{}", text.split_whitespace().next().unwrap_or_default()) == digest
}

fn built(run: &common::Run) -> u64 {
    run.json()["built"].as_u64().unwrap_or_else(|| panic!("no `built`: {}", run.stdout))
}

#[test]
fn a_damaged_layer_is_replaced_by_the_rebuild() {
    let repo = Repo::example("quickstart");
    let first = repo.run(&["run", "--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let base = &outputs(&repo)["base@linux/amd64"];
    let layer = layers(&repo, base)[0].clone();
    let path = blob(&repo, &layer);
    let good = std::fs::read(&path).unwrap();

    // Cut short: the plan notices (its size), the rebuild replaces it, dependents build.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(sound(&repo, &layer), "the rebuild left the damaged layer");
    let again = repo.run(&["run", "--format", "json"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(built(&again), 0, "{}", again.stdout);

    // Same size, other bytes: nothing notices without reading it, but `--force` replaces it.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    std::fs::write(&path, &flipped).unwrap();
    let forced = repo.run(&["run", "--format", "json", "--force", "base"]);
    assert_eq!(forced.code, 0, "{}\n{}", forced.stdout, forced.stderr);
    assert!(sound(&repo, &layer), "`run --force` left the damaged layer");

    // `gc` removes a damaged blob a record needs (it says so); the next run rebuilds it.
    std::fs::write(&path, b"not a layer").unwrap();
    let gc = repo.run(&["gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(gc.stdout.contains("1 of them damaged"), "{}", gc.stdout);
    assert!(!path.exists());
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(sound(&repo, &layer));
    assert_eq!(built(&repo.run(&["run", "--format", "json"])), 0);
}

#[test]
#[ignore = "needs docker-registry (installed by .ci/run)"]
fn a_damaged_base_layer_is_pulled_again() {
    common::require(&["docker-registry"], "apt-get install docker-registry");
    let registry = common::registry::Registry::start();
    // A base image from outside the graph, published to the registry by another repository.
    let ext = Repo::new().online().file("base/Dockerfile", "FROM scratch\nCOPY v.txt /etc/v.txt\n").file(
        "hephy.kdl",
        &format!(
            "registry \"{}/ext\"\nplatforms \"linux/amd64\"\nimage \"base\" {{\n    context \"base\"\n    tags \"1\"\n}}\n",
            registry.address()
        ),
    );
    ext.write("base/v.txt", &"the base's file\n".repeat(1000));
    let published = ext.run(&["run"]);
    assert_eq!(published.code, 0, "{}", published.stderr);
    // Built here, into the local layout, FROM it: its blobs are pulled into `.hephy/oci`.
    let repo = Repo::new()
        .online()
        .file(
            "app/Dockerfile",
            &format!(
                "FROM {0}/ext/base:1 AS b\nFROM {0}/ext/base:1\nCOPY --from=b /etc/v.txt /copy.txt\n",
                registry.address()
            ),
        )
        .file("hephy.kdl", "platforms \"linux/amd64\"\nimage \"app\" {\n    context \"app\"\n}\n");
    let first = repo.run(&["run"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let app = &outputs(&repo)["app@linux/amd64"];
    let base_layer = layers(&repo, app)[0].clone();
    let path = blob(&repo, &base_layer);
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.results()["app@linux/amd64"], "built", "{}", run.stdout);
    assert!(sound(&repo, &base_layer), "the base's damaged layer was not pulled again");
}

/// The index entries of `.hephy/oci` without a name: their digests.
fn unnamed(repo: &Repo) -> Vec<String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(repo.path().join(".hephy/oci/index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["annotations"]["org.opencontainers.image.ref.name"].is_null())
        .map(|e| e["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "needs skopeo (installed by .ci/run)"]
fn gc_never_removes_an_image_another_tool_put_in_the_layout() {
    common::require(&["skopeo"], "apt-get install skopeo");
    let repo = Repo::example("quickstart");
    assert_eq!(repo.run(&["run"]).code, 0);
    // An image hephy did not build, copied in by skopeo without a name.
    let other = Repo::new()
        .file("hephy.kdl", "image \"other\" {\n    context \"other\"\n}\n")
        .file("other/Dockerfile", "FROM scratch\nCOPY only.txt /\n");
    other.write("other/only.txt", "nobody else has this file\n");
    let built = other.run(&["run"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    let copy = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:other", other.path().join(".hephy/oci").display()))
        .arg(format!("oci:{}", repo.path().join(".hephy/oci").display()))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
    let foreign = unnamed(&repo);
    assert_eq!(foreign.len(), 1, "skopeo wrote no unnamed entry");
    let layer = layers(&repo, &foreign[0])[0].clone();
    assert!(blob(&repo, &layer).is_file());

    let gc = repo.run(&["gc"]);
    assert_eq!(gc.code, 0, "{}{}", gc.stdout, gc.stderr);
    // A run (which rewrites the index from the records) keeps the entry; the next gc keeps its
    // blobs.
    repo.write("docs/pages/extra.md", "more\n");
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(unnamed(&repo), foreign);
    let gc = repo.run(&["gc"]);
    assert_eq!(gc.code, 0, "{}{}", gc.stdout, gc.stderr);
    assert!(blob(&repo, &foreign[0]).is_file(), "{}", gc.stdout);
    assert!(blob(&repo, &layer).is_file(), "{}", gc.stdout);
    // Whole: its manifest, config and layers, each hashing to its name.
    let manifest: Value = serde_json::from_slice(&std::fs::read(blob(&repo, &foreign[0])).unwrap()).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap();
    for digest in [foreign[0].as_str(), config, layer.as_str()] {
        assert!(sound(&repo, digest), "{digest} is gone or damaged");
    }
}

fn spawn(repo: &Repo, args: &[&str], env: &[(&str, &Path)]) -> Child {
    Command::cargo_bin("hephy")
        .unwrap()
        .args(args)
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The names in `dir` (none when it is not there).
fn listed(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|e| e.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Bytes no compressor shrinks, so the build takes a while.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn a_build_killed_mid_way_leaves_no_scratch_behind() {
    let repo = Repo::new()
        .file("hephy.kdl", "image \"big\" {\n    context \"big\"\n}\n")
        .file("big/Dockerfile", "FROM scratch\nCOPY blob.bin /\n");
    std::fs::write(repo.path().join("big/blob.bin"), noise(16 << 20)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let scratch = repo.path().join(".hephy/tmp");
    let mut child = spawn(&repo, &["run"], &[("TMPDIR", tmp.path())]);
    // Mid-way: its scratch folder is made, its layer is being written.
    wait_for("the build's scratch folder", || !listed(&scratch).is_empty() || !listed(tmp.path()).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    let left = listed(&scratch);
    assert!(listed(tmp.path()).is_empty(), "scratch in TMPDIR: {:?}", listed(tmp.path()));
    assert_eq!(left.len(), 1, "{left:?}");

    let run = repo.run_with(&["run"], &[("TMPDIR", tmp.path().to_str().unwrap())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(listed(&scratch).is_empty(), "after the next run: {:?}", listed(&scratch));
    assert!(listed(tmp.path()).is_empty(), "scratch in TMPDIR: {:?}", listed(tmp.path()));
    // And `gc` removes what a killed run left too.
    let run = spawn(&repo, &["run", "--force", "big"], &[("TMPDIR", tmp.path())]);
    let mut child = run;
    wait_for("the build's scratch folder", || !listed(&scratch).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    let gc = repo.run_with(&["gc"], &[("TMPDIR", tmp.path().to_str().unwrap())]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(gc.stdout.contains("removed 1 scratch folders and files"), "{}", gc.stdout);
    assert!(listed(&scratch).is_empty(), "after gc: {:?}", listed(&scratch));
}

#[test]
fn a_killed_run_lists_as_killed() {
    let repo = Repo::new().file(
        "hephy.kdl",
        "task \"slow\" {\n    run \"sh\" \"-c\" \"echo $$ > slow.pid; exec sleep 30\"\n}\n",
    );
    let mut child = spawn(&repo, &["run"], &[]);
    let pid_file = repo.path().join("slow.pid");
    wait_for("the task", || std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n')));
    let log = repo.run(&["log", "--format", "json"]);
    assert_eq!(log.json()[0]["status"], "running", "{}", log.stdout);
    child.kill().unwrap();
    child.wait().unwrap();
    // The task (its own process group) outlived hephy's SIGKILL: stop it.
    let task = std::fs::read_to_string(&pid_file).unwrap();
    let _ = Command::new("kill").args(["-9", task.trim()]).status();

    let log = repo.run(&["log", "--format", "json"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.json()[0]["status"], "killed", "{}", log.stdout);
    let text = repo.run(&["log"]);
    assert!(text.stdout.contains("killed"), "{}", text.stdout);
    assert!(!text.stdout.contains("running"), "{}", text.stdout);
}

/// The pids of live processes whose command line is `argv`.
fn running(argv: &[&str]) -> Vec<String> {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    listed(Path::new("/proc"))
        .into_iter()
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .filter(|pid| {
            // A zombie has exited; only its parent has yet to reap it.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        })
        .collect()
}

#[test]
fn a_detached_daemon_does_not_outlive_the_run() {
    // A number no other test's sleep has: the daemon is found by its command line. The task
    // ends once the daemon runs in a session of its own (it wrote its pid after `setsid`).
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let seconds = format!("300.{nanos:09}");
    let script = format!(
        "setsid sh -c 'echo $$ > daemon.pid; exec sleep {seconds}' >/dev/null 2>&1 </dev/null & \
         while [ ! -s daemon.pid ]; do sleep 0.01; done; echo started"
    );
    let repo = Repo::new().file(
        "hephy.kdl",
        &format!(
            "task \"daemon\" {{\n    run \"sh\" \"-c\" {}\n}}\n",
            serde_json::to_string(&script).unwrap()
        ),
    );
    let run = repo.run(&["run"]);
    let left = running(&["sleep", &seconds]);
    for pid in &left {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    assert_eq!(run.code, 0, "{}", run.stderr);
    let daemon = std::fs::read_to_string(repo.path().join("daemon.pid")).unwrap();
    assert!(!daemon.trim().is_empty(), "the daemon never started");
    assert!(left.is_empty(), "the daemon outlived the run: pid {left:?}");
}
