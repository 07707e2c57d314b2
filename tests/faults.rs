//! Faults from the outside: builders that crash, hang past their timeout or print without end
//! fail their own node cleanly while the others go on; and a real registry behind a
//! fault-injecting proxy (refused connections, 500s, slow answers, a connection cut in the
//! middle of a blob): transient faults are retried and the run succeeds, permanent ones fail the
//! node with a message naming the registry and the operation, and nothing half-pushed is tagged.

mod common;

use std::time::{Duration, Instant};

use common::Repo;
use common::proxy::{Fault, Proxy};
use common::registry::Registry;

#[test]
fn crashing_hanging_and_flooding_builders_fail_alone() {
    let repo = Repo::new().file(
        "hephy.kdl",
        "task \"crash\" {\n    run \"sh\" \"-c\" \"kill -SEGV $$\"\n}\ntask \"hang\" {\n    run \"sleep\" \"60\"\n    timeout \"1s\"\n}\ntask \"flood\" {\n    run \"yes\" \"hephy\"\n}\ntask \"fine\" {\n    run \"sh\" \"-c\" \"sleep 1; echo done\"\n}\ntask \"after-fine\" {\n    run \"true\"\n    after \"fine\"\n}\n",
    );
    let started = Instant::now();
    let run =
        repo.run_with(&["run", "-j", "4", "--format", "json"], &[("HEPHY_MAX_OUTPUT_BYTES", "1000000")]);
    assert!(started.elapsed() < Duration::from_secs(30), "a hung builder held the run");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let results = run.results();
    assert_eq!(results["crash"], "failed");
    assert_eq!(results["hang"], "failed");
    assert_eq!(results["flood"], "failed");
    assert_eq!(results["fine"], "built");
    assert_eq!(results["after-fine"], "built");
    let log =
        |node: &str| std::fs::read_to_string(repo.path().join(format!(".hephy/logs/1/{node}.log"))).unwrap();
    assert!(log("hang").contains("ran past its timeout of 1s"), "{}", log("hang"));
    assert!(log("flood").contains("printed more than 1000000 bytes of output"));
    // The log of the flood stayed bounded.
    let size = std::fs::metadata(repo.path().join(".hephy/logs/1/flood.log")).unwrap().len();
    assert!(size < 3_000_000, "the flood's log is {size} bytes");
}

fn graph(registry: &str) -> String {
    format!(
        "registry \"{registry}/qs\"\nplatforms \"linux/amd64\"\nimage \"base\" {{\n    context \"base\"\n    tags \"latest\"\n}}\n"
    )
}

fn repo(registry: &str) -> Repo {
    Repo::new()
        .online()
        .file("base/Dockerfile", "FROM scratch\nCOPY big.bin /\n")
        .file("base/big.bin", &"0123456789abcdef".repeat(64 * 1024))
        .file("hephy.kdl", &graph(registry))
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn transient_registry_faults_are_retried() {
    common::registry::require_image_tools();
    for fault in [Fault::ServerErrors(2), Fault::Slow(Duration::from_millis(300)), Fault::CutBlob] {
        let registry = Registry::start();
        let proxy = Proxy::start(registry.port, fault);
        let repo = repo(&proxy.address());
        let run = repo.run(&["run", "--format", "json"]);
        assert_eq!(run.code, 0, "{fault:?}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.results().values().all(|r| r == "built" || r == "cached"),
            "{fault:?}: {:?}",
            run.results()
        );
        assert!(proxy.faults_injected() > 0, "{fault:?} was never injected");
        let index = registry.raw("qs/base:latest");
        assert!(index.contains("manifests"), "{fault:?}: {index}");
    }
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn permanent_registry_faults_fail_the_node_and_tag_nothing() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    // Every manifest write fails: the blobs go up, but no manifest, no index, no tag.
    let proxy = Proxy::start(registry.port, Fault::ManifestWritesFail);
    let repo = repo(&proxy.address());
    let started = Instant::now();
    let run = repo.run(&["run"]);
    assert!(started.elapsed() < Duration::from_secs(60), "retries are bounded");
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failed = run.stdout.lines().find(|l| l.starts_with("failed  base@linux/amd64")).unwrap_or_default();
    assert!(failed.contains(&proxy.address()) && failed.contains("writing a manifest"), "{}", run.stdout);
    assert!(run.stdout.contains("skip    base:latest: skipped: dependency base failed"), "{}", run.stdout);
    assert!(registry.tags("qs/base").is_empty(), "something was tagged: {:?}", registry.tags("qs/base"));

    // Nobody listens: the connection is refused, the node fails naming the registry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let repo = self::repo(&format!("127.0.0.1:{closed}"));
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 1);
    let failed = run.stdout.lines().find(|l| l.starts_with("failed  base@linux/amd64")).unwrap_or_default();
    assert!(failed.to_ascii_lowercase().contains("connection refused"), "{}", run.stdout);
    assert!(failed.contains(&format!("127.0.0.1:{closed}")), "{}", run.stdout);
}
