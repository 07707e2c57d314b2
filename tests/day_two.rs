//! The second week of a graph (issue 27): what a team meets after adopting hephy, step by
//! step, against the real binary and a real registry on 127.0.0.1. Each step is a function
//! of its own, so the steps join into the one scenario.

mod common;

use std::collections::BTreeSet;

use common::Repo;
use common::registry::{CacheRecord, Registry};
use serde_json::Value;

/// The quickstart (three images for two platforms, no registry) with a task of its own, built.
fn built_quickstart() -> Repo {
    let repo = Repo::example("quickstart").online();
    let graph = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("read hephy.kdl");
    repo.write("hephy.kdl", &format!("{graph}\ntask \"lint\" {{\n    run \"true\"\n}}\n"));
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    repo
}

/// `plan --format json`'s nodes.
fn planned(repo: &Repo) -> Vec<Value> {
    let plan = repo.run(&["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    plan.json()["nodes"].as_array().expect("nodes").clone()
}

/// Whether a planned node will not run (`skip`, or `fresh` as the vocabulary may say).
fn stays(node: &Value) -> bool {
    matches!(node["action"].as_str(), Some("skip" | "fresh"))
}

/// Step: adds `registry` to a built graph. The plan builds no image and runs no task (where
/// results go is no input of a build), pushes what exists, and no reason names a setting the
/// user did not write; the run then pushes the graph's tags and nothing else to its
/// repositories.
fn add_a_registry(repo: &Repo, registry: &Registry) {
    let graph = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("read hephy.kdl");
    repo.write("hephy.kdl", &format!("registry \"{}/qs\"\n{graph}", registry.address()));
    let nodes = planned(repo);
    let rebuilt: Vec<&str> = nodes
        .iter()
        .filter(|n| matches!(n["kind"].as_str(), Some("image" | "task")) && !stays(n))
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert!(rebuilt.is_empty(), "adding a registry rebuilds {rebuilt:?}: {nodes:#?}");
    let pushed: BTreeSet<&str> =
        nodes.iter().filter(|n| !stays(n)).filter_map(|n| n["kind"].as_str()).collect();
    assert_eq!(pushed, BTreeSet::from(["manifest", "tag"]), "the index and tag nodes push what exists");
    let text = repo.run(&["plan"]);
    for unwritten in ["naming.repository", "naming.tag", "supply.provenance"] {
        assert!(!text.stdout.contains(unwritten), "a reason names `{unwritten}`:\n{}", text.stdout);
    }
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for image in ["base", "web", "docs"] {
        assert_eq!(registry.tags(&format!("qs/{image}")), ["latest"], "qs/{image}");
    }
    // Pushed whole: the web image's index, its platforms and their blobs are all there.
    let index: Value = serde_json::from_str(&registry.raw("qs/web:latest")).expect("index JSON");
    for entry in index["manifests"].as_array().expect("manifests") {
        let digest = entry["digest"].as_str().expect("digest");
        registry.raw(&format!("qs/web@{digest}"));
    }
    assert_eq!(planned(repo).iter().filter(|n| !stays(n)).count(), 0, "the next plan is empty");
}

/// Step: rebuilds the `docs` image three times (its content changes each time). Its
/// repository lists the graph's tag alone; each build and index is recorded in the registry's
/// cache repository instead.
fn rebuild_three_times(repo: &Repo, registry: &Registry) {
    for i in 1..=3 {
        repo.write("docs/pages/index.md", &format!("# Docs, version {i}\n"));
        let run = repo.run(&["run"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }
    assert_eq!(registry.tags("qs/docs"), ["latest"], "the user's repository lists only the graph's tags");
    let docs: Vec<CacheRecord> =
        registry.records("qs/hephy-cache").into_iter().filter(|r| r.node.starts_with("docs")).collect();
    // Three nodes (two platforms, the index), each recorded when the registry came and at each
    // of the three rebuilds.
    assert_eq!(docs.len(), 3 * 3 + 3, "{docs:#?}");
}

/// The keys the state holds now (the plan is all fresh), by node.
fn live_keys(repo: &Repo) -> BTreeSet<String> {
    planned(repo).iter().filter_map(|n| n["key"].as_str().map(str::to_owned)).collect()
}

/// Step: `hephy gc --registry` removes the stale records and keeps the live ones, which a
/// machine with no state still finds.
fn gc_the_registry(repo: &Repo, registry: &Registry) {
    let live = live_keys(repo);
    let before = registry.records("qs/hephy-cache");
    let stale: Vec<&CacheRecord> = before.iter().filter(|r| !live.contains(&r.key)).collect();
    assert!(!stale.is_empty(), "three rebuilds leave stale records: {before:#?}");
    // `--keep 1` keeps the newest stale record of each node.
    let gc = repo.run(&["gc", "--registry", "--keep", "1"]);
    assert_eq!(gc.code, 0, "{}\n{}", gc.stdout, gc.stderr);
    let kept = registry.records("qs/hephy-cache");
    let stale_nodes: BTreeSet<&str> = stale.iter().map(|r| r.node.as_str()).collect();
    let kept_stale: Vec<&CacheRecord> = kept.iter().filter(|r| !live.contains(&r.key)).collect();
    assert_eq!(kept_stale.len(), stale_nodes.len(), "one stale record per node: {kept_stale:#?}");
    let gc = repo.run(&["gc", "--registry"]);
    assert_eq!(gc.code, 0, "{}\n{}", gc.stdout, gc.stderr);
    assert!(gc.stdout.contains(&format!("removed {} cache records", stale_nodes.len())), "{}", gc.stdout);
    let after = registry.records("qs/hephy-cache");
    let after_keys: BTreeSet<&str> = after.iter().map(|r| r.key.as_str()).collect();
    assert!(after.iter().all(|r| live.contains(&r.key)), "stale records left: {after:#?}");
    let live_recorded: Vec<&CacheRecord> = before.iter().filter(|r| live.contains(&r.key)).collect();
    assert!(!live_recorded.is_empty());
    for record in live_recorded {
        assert!(after_keys.contains(record.key.as_str()), "the live record of {} was removed", record.node);
    }
    assert_eq!(registry.tags("qs/docs"), ["latest"]);
    // A machine with no state (a fresh CI runner) finds every image build in the registry.
    std::fs::remove_dir_all(repo.path().join(".hephy")).expect("remove the state");
    let nodes = planned(repo);
    let built: Vec<&str> =
        nodes.iter().filter(|n| n["kind"] != "task" && !stays(n)).filter_map(|n| n["id"].as_str()).collect();
    assert!(built.is_empty(), "with the live records kept, nothing builds: {built:?}");
}

/// Step: a file `base` copies changes and the graph is run again; `explain` of a dependent,
/// fresh now, names that file and the run that rebuilt it, without `--run`.
fn explain_after_a_rebuild(repo: &Repo) {
    let file = "base/rootfs/etc/os-release";
    let text = std::fs::read_to_string(repo.path().join(file)).expect("read");
    repo.write(file, &format!("{text}VARIANT=v2\n"));
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let why = repo.run(&["explain", "web@linux/amd64"]);
    assert_eq!(why.code, 0, "{}", why.stderr);
    assert!(why.stdout.contains(&format!("{file} changed")), "{}", why.stdout);
    assert!(why.stdout.contains("it was built in run 2 ("), "{}", why.stdout);
}

/// The three first steps, in order, on one repository: `explain` after a rebuild,
/// adding a registry, three rebuilds and `gc --registry`.
#[test]
#[ignore = "needs docker-registry and skopeo (installed by .ci/run)"]
fn adding_a_registry_pushes_what_exists_and_the_registry_stays_clean() {
    common::require(&["docker-registry", "skopeo"], "apt-get install docker-registry skopeo");
    let registry = Registry::start();
    let repo = built_quickstart();
    explain_after_a_rebuild(&repo);
    add_a_registry(&repo, &registry);
    rebuild_three_times(&repo, &registry);
    gc_the_registry(&repo, &registry);
}

#[test]
fn gc_registry_without_a_registry_is_bad_input() {
    let repo = built_quickstart();
    let gc = repo.run(&["gc", "--registry"]);
    assert_eq!(gc.code, 2, "{}\n{}", gc.stdout, gc.stderr);
    assert!(gc.stderr.contains("the graph has no `registry`"), "{}", gc.stderr);
}

/// Every node log of the run `run` (`.hephy/logs/RUN/…`), joined.
fn logs_of(repo: &Repo, run: u32) -> String {
    fn walk(dir: &std::path::Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                out.push_str(&text);
            }
        }
    }
    let mut out = String::new();
    walk(&repo.path().join(format!(".hephy/logs/{run}")), &mut out);
    out
}

/// A RUN-heavy buildah image whose last `COPY` changed, built again on an empty runner (no
/// state, no buildah storage): the layers before the `COPY` come from the registry's cache
/// repository, and only what follows it runs.
#[test]
#[ignore = "needs buildah, docker-registry and busybox-static (installed by .ci/run)"]
fn buildah_on_an_empty_runner_reruns_only_what_follows_the_changed_copy() {
    common::registry::require_image_tools();
    let busybox = std::path::Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "this test needs /bin/busybox: apt-get install busybox-static (.ci/run installs it)"
    );
    let registry = Registry::start();
    let step = |n: &str| {
        format!("RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox sleep 2; echo {n} > /{n}\"]\n")
    };
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\n{}{}{}COPY last.txt /last.txt\nRUN [\"/bin/busybox\", \"cp\", \"/last.txt\", \"/copy\"]\n",
        step("one"),
        step("two"),
        step("three")
    );
    let repo = Repo::new().online().file("app/Dockerfile", &dockerfile).file("app/last.txt", "v1\n").file(
        "hephy.kdl",
        &format!(
            "registry \"{}/team\"\nbuilder \"buildah\"\n\nimage \"app\" {{\n    context \"app\"\n}}\n",
            registry.address()
        ),
    );
    std::fs::copy(busybox, repo.path().join("app/busybox")).expect("copy busybox");
    let cache = [("HEPHY_BUILDAH_LAYER_CACHE", "1")];
    let first = repo.run_with(&["run"], &cache);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(logs_of(&repo, 1).contains("Pushing cache"), "{}", logs_of(&repo, 1));

    repo.write("app/last.txt", "v2\n");
    std::fs::remove_dir_all(repo.path().join(".hephy")).expect("an empty runner");
    let started = std::time::Instant::now();
    let second = repo.run_with(&["run"], &cache);
    let took = started.elapsed();
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    let log = logs_of(&repo, 1);
    // The `COPY busybox` and the three RUNs: pulled from the cache repository, not run.
    assert_eq!(log.matches("Cache pulled from remote").count(), 4, "{log}");
    assert!(log.contains(&format!("{}/team/hephy-cache:", registry.address())), "{log}");
    // What follows the changed `COPY` ran: the `COPY` itself and the last `RUN`, pushed anew.
    assert!(log.matches("Pushing cache").count() >= 2, "{log}");
    eprintln!("second build on empty storage, with the registry's layer cache: {took:.1?}");
}
