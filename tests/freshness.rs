//! A node is fresh only if its output is still there: images deleted or damaged in the layout
//! or lost by the registry are rebuilt (`output_missing`), the no-op stamp never answers for
//! them or for a damaged state database, the layout is repaired rather than truncated, and the
//! state folder is never written through a symbolic link.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Repo;
use common::registry::Registry;
use serde_json::Value;

const FAST: [(&str, &str); 1] = [("HEPHY_TIMINGS", "1")];

/// The quickstart, built, with a stamp left by a plan after the racy window.
fn built_quickstart() -> Repo {
    let repo = Repo::example("quickstart");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["built"], 12, "{}", run.stdout);
    stamp(&repo);
    repo
}

/// Waits out the racy window and plans, leaving a stamp the next plan is answered from.
fn stamp(repo: &Repo) {
    std::thread::sleep(Duration::from_millis(2100));
    let plan = repo.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let again = repo.run_with(&["plan"], &FAST);
    assert!(again.stderr.contains("unchanged since the last plan"), "no stamp: {}", again.stderr);
}

fn oci(repo: &Repo) -> PathBuf {
    repo.path().join(".hephy/oci")
}

/// The names in the layout's `index.json`.
fn names(repo: &Repo) -> BTreeSet<String> {
    let bytes = std::fs::read(oci(repo).join("index.json")).expect("index.json");
    let index: Value = serde_json::from_slice(&bytes).expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|e| e["annotations"]["org.opencontainers.image.ref.name"].as_str().expect("name").to_owned())
        .collect()
}

const ALL_NAMES: [&str; 12] = [
    "base",
    "base.linux-amd64",
    "base.linux-arm64",
    "base:latest",
    "docs",
    "docs.linux-amd64",
    "docs.linux-arm64",
    "docs:latest",
    "web",
    "web.linux-amd64",
    "web.linux-arm64",
    "web:latest",
];

/// Node id → its reasons' kinds, from `plan --format json`.
fn reasons(repo: &Repo) -> BTreeMap<String, Vec<String>> {
    let plan = repo.run(&["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    plan.json()["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            let kinds =
                n["reasons"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap().to_owned());
            (n["id"].as_str().unwrap().to_owned(), kinds.collect())
        })
        .collect()
}

/// The recorded output of each node.
fn outputs(repo: &Repo) -> BTreeMap<String, String> {
    let db = rusqlite::Connection::open(repo.path().join(".hephy/state.db")).unwrap();
    let mut stmt = db.prepare("SELECT id, output FROM nodes").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

fn blob(repo: &Repo, digest: &str) -> PathBuf {
    oci(repo).join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// The last layer of the manifest `digest`.
fn last_layer(repo: &Repo, digest: &str) -> String {
    let manifest: Value = serde_json::from_slice(&std::fs::read(blob(repo, digest)).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().expect("layers");
    layers.last().and_then(|l| l["digest"].as_str()).expect("a layer").to_owned()
}

/// A plan or run answered from the stamp says so on stderr with `HEPHY_TIMINGS`.
fn assert_not_from_stamp(repo: &Repo) {
    let plan = repo.run_with(&["plan"], &FAST);
    assert!(
        !plan.stderr.contains("unchanged since the last plan"),
        "answered from the stamp:\n{}",
        plan.stdout
    );
}

#[test]
fn a_deleted_layout_is_rebuilt_and_the_stamp_does_not_answer() {
    let repo = built_quickstart();
    std::fs::remove_dir_all(oci(&repo)).unwrap();
    assert_not_from_stamp(&repo);
    let planned = reasons(&repo);
    assert_eq!(planned.len(), 12);
    for (id, kinds) in &planned {
        assert!(kinds.contains(&"output_missing".to_owned()), "{id}: {kinds:?}");
    }
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("12 of 12 nodes to build"), "{}", run.stdout);
    assert!(run.stdout.contains("oci:.hephy/oci:web"), "{}", run.stdout);
    assert_eq!(names(&repo), ALL_NAMES.iter().map(|n| (*n).to_owned()).collect());
    let again = repo.run(&["run", "--format", "json"]);
    assert_eq!(again.json()["built"], 0, "{}", again.stdout);
}

#[test]
fn a_deleted_blob_rebuilds_the_images_that_need_it() {
    let repo = built_quickstart();
    let outputs = outputs(&repo);
    // web's own layer (its first ones are base's).
    let layer = last_layer(&repo, &outputs["web@linux/amd64"]);
    std::fs::remove_file(blob(&repo, &layer)).unwrap();
    assert_not_from_stamp(&repo);
    let planned = reasons(&repo);
    assert!(planned["web@linux/amd64"].contains(&"output_missing".to_owned()), "{planned:?}");
    assert!(planned["base@linux/amd64"].is_empty(), "{planned:?}");
    assert!(planned["docs"].is_empty(), "{planned:?}");
    // The run (answered from the stamp before) builds it again.
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.results()["web@linux/amd64"], "built", "{}", run.stdout);
    assert!(blob(&repo, &layer).is_file());
    // A damaged manifest (same size, other bytes) is missing too.
    let manifest = blob(&repo, &outputs["docs@linux/arm64"]);
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[0] = b' ';
    std::fs::write(&manifest, bytes).unwrap();
    assert!(reasons(&repo)["docs@linux/arm64"].contains(&"output_missing".to_owned()));
}

#[test]
fn a_damaged_index_is_repaired_not_truncated() {
    let repo = built_quickstart();
    std::fs::write(oci(&repo).join("index.json"), "{ not json").unwrap();
    assert_not_from_stamp(&repo);
    // Building one node rewrites the index from every record, not from that node alone.
    let run = repo.run(&["run", "--format", "json", "--only", "web@linux/amd64"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["built"], 1, "{}", run.stdout);
    assert_eq!(names(&repo), ALL_NAMES.iter().map(|n| (*n).to_owned()).collect());
    // And the plan after it is all fresh: every image is named and whole.
    let planned = reasons(&repo);
    assert!(planned.values().all(Vec::is_empty), "{planned:?}");
}

#[test]
fn a_damaged_state_database_is_not_answered_from_the_stamp() {
    let repo = built_quickstart();
    let db = repo.path().join(".hephy/state.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TABLE nodes").unwrap();
    }
    let plan = repo.run_with(&["plan"], &FAST);
    assert!(!plan.stderr.contains("unchanged since the last plan"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("0 of 12"), "{}", plan.stdout);
    let run = repo.run(&["run"]);
    assert!(!run.stdout.contains("12 fresh"), "{}", run.stdout);

    // Damaged pages, the file's times kept.
    let repo = built_quickstart();
    let db = repo.path().join(".hephy/state.db");
    let before = std::fs::metadata(&db).unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 8192, "a database of {} bytes", bytes.len());
    for b in &mut bytes[4096..8192] {
        *b = 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&db).unwrap();
    file.set_modified(before.modified().unwrap()).unwrap();
    let plan = repo.run_with(&["plan"], &FAST);
    assert!(!plan.stderr.contains("unchanged since the last plan"), "{}", plan.stdout);
    let run = repo.run(&["run"]);
    assert!(!run.stdout.contains("12 fresh"), "{}", run.stdout);
}

#[test]
fn temporaries_go_on_the_next_run_and_gc_removes_unreferenced_blobs() {
    let repo = built_quickstart();
    let blobs = oci(&repo).join("blobs/sha256");
    std::fs::write(blobs.join(".tmp-left-by-a-kill"), vec![7u8; 4096]).unwrap();
    // Even a run answered from the stamp cleans them.
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("0 of 12 nodes to build"), "{}", run.stdout);
    assert!(!blobs.join(".tmp-left-by-a-kill").exists());
    // And so does an ordinary run.
    std::fs::write(blobs.join(".tmp-again"), b"x").unwrap();
    repo.write("docs/pages/extra.md", "more\n");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!blobs.join(".tmp-again").exists());

    // docs changed twice: its first images are referenced by no record now.
    let old = outputs(&repo);
    repo.write("docs/pages/extra.md", "more and more\n");
    assert_eq!(repo.run(&["run"]).code, 0);
    let stale = blob(&repo, &old["docs@linux/amd64"]);
    assert!(stale.is_file());
    let gc = repo.run(&["gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(gc.stdout.starts_with("removed "), "{}", gc.stdout);
    assert!(!gc.stdout.starts_with("removed 0 "), "{}", gc.stdout);
    assert!(!stale.exists(), "{}", gc.stdout);
    // Everything recorded is still whole: nothing to build.
    let planned = reasons(&repo);
    assert!(planned.values().all(Vec::is_empty), "{planned:?}");
    let again = repo.run(&["gc"]);
    assert!(again.stdout.starts_with("removed 0 files"), "{}", again.stdout);
}

/// Runs `hephy ARGS` in `repo` under `umask`.
fn run_with_umask(repo: &Repo, umask: &str, args: &str) -> std::process::Output {
    let hephy = env!("CARGO_BIN_EXE_hephy");
    std::process::Command::new("sh")
        .args(["-c", &format!("umask {umask} && exec '{hephy}' {args}")])
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .output()
        .unwrap()
}

fn modes(dir: &Path) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(modes(&entry.path()));
        } else {
            out.insert(meta.permissions().mode() & 0o777);
        }
    }
    out
}

#[test]
fn the_layout_is_written_with_the_umask() {
    for (umask, mode) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        let repo = Repo::example("quickstart");
        let out = run_with_umask(&repo, umask, "run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(modes(&oci(&repo)), BTreeSet::from([mode]), "umask {umask}");
    }
}

#[test]
fn a_state_folder_holding_symlinks_is_refused() {
    for link in
        [".hephy", ".hephy/lock", ".hephy/logs", ".hephy/oci", ".hephy/oci/blobs", ".hephy/oci/blobs/sha256"]
    {
        let repo = Repo::example("quickstart");
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("target");
        if link == ".hephy/lock" {
            std::fs::write(&target, "precious\n").unwrap();
        } else {
            std::fs::create_dir(&target).unwrap();
        }
        std::fs::create_dir_all(repo.path().join(".hephy")).unwrap();
        std::fs::create_dir_all(repo.path().join(link).parent().unwrap()).unwrap();
        if link == ".hephy" {
            std::fs::remove_dir(repo.path().join(".hephy")).unwrap();
        }
        std::os::unix::fs::symlink(&target, repo.path().join(link)).unwrap();
        for args in [&["run"][..], &["plan"], &["gc"]] {
            let out = repo.run(args);
            assert_eq!(out.code, 2, "{link} {args:?}: {}{}", out.stdout, out.stderr);
            assert!(out.stderr.contains("is a symbolic link"), "{link}: {}", out.stderr);
            assert!(out.stderr.contains(link), "{link}: {}", out.stderr);
        }
        if link == ".hephy/lock" {
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        } else {
            assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "{link} was written through");
        }
    }
}

/// Runs `script` (sh) in a user and mount namespace of its own, in `repo`, with `$HEPHY` the
/// binary; returns its output.
fn in_namespace(repo: &Repo, script: &str) -> (bool, String) {
    let out = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .current_dir(repo.path())
        .env("HEPHY", env!("CARGO_BIN_EXE_hephy"))
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .output()
        .expect("run unshare (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
#[ignore = "needs unshare (util-linux) with user and mount namespaces"]
fn a_read_only_or_full_state_says_retrying_is_safe() {
    let repo = Repo::example("quickstart");
    assert_eq!(repo.run(&["run"]).code, 0);
    repo.write("docs/pages/extra.md", "changed\n");
    // Read-only: the state folder bound read-only over itself.
    let (ok, text) = in_namespace(
        &repo,
        "mount --bind .hephy .hephy && mount -o remount,bind,ro .hephy && \"$HEPHY\" run; echo \"exit $?\"",
    );
    assert!(ok, "{text}");
    assert!(text.contains("exit 2"), "{text}");
    assert!(text.contains("retrying is safe"), "{text}");
    assert!(!text.contains("aside"), "{text}");
    // Nothing was lost: the next run builds only what changed.
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.results()["base@linux/amd64"], "fresh", "{}", run.stdout);

    // Full: the state on a small file system, filled up.
    let (ok, text) = in_namespace(
        &repo,
        "mkdir -p small && mount -t tmpfs -o size=1m tmpfs small \
         && \"$HEPHY\" run --state small/state >/dev/null && echo more > docs/pages/extra.md \
         && (dd if=/dev/zero of=small/fill bs=4k 2>/dev/null; true) \
         && \"$HEPHY\" run --state small/state; echo \"exit $?\"; \
         rm small/fill && \"$HEPHY\" run --state small/state --format json",
    );
    assert!(ok, "{text}");
    assert!(text.contains("disk is full"), "{text}");
    assert!(text.contains("retrying is safe"), "{text}");
    assert!(!text.contains("aside"), "{text}");
    assert!(text.contains("\"docs@linux/amd64\": \"built\""), "{text}");
}

/// Deletes every manifest of the quickstart's images from `registry` (its API, with deletes
/// enabled): the registry lost them.
fn lose_everything(registry: &Registry, outputs: &BTreeMap<String, String>) {
    for (id, digest) in outputs {
        let name = id.split(['@', ':']).next().unwrap();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", registry.port)).unwrap();
        let request = format!(
            "DELETE /v2/qs/{name}/manifests/{digest} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            registry.port
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.0 202") || response.starts_with("HTTP/1.0 404"), "{response}");
    }
}

#[test]
#[ignore = "needs docker-registry (installed by .ci/run)"]
fn images_the_registry_lost_are_pushed_again() {
    let registry = Registry::start();
    let repo = Repo::quickstart_pushing_to(&registry.address(), "");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["built"], 12, "{}", run.stdout);
    stamp(&repo);
    lose_everything(&registry, &outputs(&repo));
    assert_not_from_stamp(&repo);
    let planned = reasons(&repo);
    for (id, kinds) in &planned {
        // A platform build is still in the layout: its index node pushes it again, unbuilt.
        if id.contains('@') {
            assert!(kinds.is_empty(), "{id}: {kinds:?}");
        } else {
            assert!(kinds.contains(&"output_missing".to_owned()), "{id}: {kinds:?}");
        }
    }
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.json()["fresh"].as_u64(), run.json()["built"].as_u64()),
        (Some(6), Some(6)),
        "{}",
        run.stdout
    );
    // Pushed again: the registry holds the index under its tag, each platform build by digest,
    // and nothing is missing.
    let index = registry.raw("qs/web:latest");
    assert!(index.contains("manifests"));
    for (id, digest) in outputs(&repo).iter().filter(|(id, _)| id.starts_with("web@")) {
        assert!(index.contains(digest.as_str()), "{id}");
        assert!(registry.raw(&format!("qs/web@{digest}")).contains("layers"), "{id}");
    }
    let planned = reasons(&repo);
    assert!(planned.values().all(Vec::is_empty), "{planned:?}");
}
