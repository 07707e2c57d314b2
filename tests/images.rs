//! Real image builds with buildah against a real registry on 127.0.0.1: per-platform builds,
//! digest-pinned `FROM` injection, OCI indexes, extra tags, reproducible digests and early
//! cutoff.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use common::Repo;
use common::registry::{Registry, sha256};
use serde_json::Value;

fn repo(registry: &Registry) -> Repo {
    Repo::new()
        .online()
        .file("base/hello.txt", "hello\n")
        .file("base/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n")
        .file("app/app.txt", "app\n")
        .file("app/Dockerfile", "ARG BASE\nFROM ${BASE}\nCOPY app.txt /app.txt\n")
        .file(
            "hephy.kdl",
            &format!(
                "registry \"{}/team\"\nplatforms \"linux/amd64\" \"linux/arm64\"\nbuilder \"buildah\"\n\nimage \"base\" {{\n    context \"base\"\n    tags \"latest\"\n}}\n\nimage \"app\" {{\n    context \"app\"\n    from \"base\" arg=\"BASE\"\n    tags \"latest\" \"v1\"\n}}\n",
                registry.address()
            ),
        )
}

fn layers(manifest: &str) -> Vec<String> {
    let m: Value = serde_json::from_str(manifest).unwrap();
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect()
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn builds_push_platforms_index_and_tags() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let repo = repo(&registry);
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.results().values().all(|r| r == "built"), "{:?}", run.results());

    // The index lists both platforms, in platform order, and every tag resolves to it.
    let index_text = registry.raw("team/app:v1");
    let index: Value = serde_json::from_str(&index_text).unwrap();
    // Each buildah platform has its provenance too (hephy writes the index): an attestation
    // manifest after the platforms, naming it.
    let (attestations, entries): (Vec<&Value>, Vec<&Value>) = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|e| e["annotations"]["vnd.docker.reference.type"] == "attestation-manifest");
    let arches: Vec<&str> = entries.iter().map(|e| e["platform"]["architecture"].as_str().unwrap()).collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    assert_eq!(index["manifests"][0]["digest"], entries[0]["digest"], "the platforms come first");
    for entry in &entries {
        assert!(
            attestations.iter().any(|a| a["annotations"]["vnd.docker.reference.digest"] == entry["digest"]),
            "{index_text}"
        );
    }
    assert_eq!(sha256(&registry.raw("team/app:latest")), sha256(&index_text));
    let base_index: Value = serde_json::from_str(&registry.raw("team/base:latest")).unwrap();

    // app was built FROM base's digest for the same platform: base's layer comes first.
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let app = registry.raw(&format!("team/app@{}", entries[i]["digest"].as_str().unwrap()));
        let base =
            registry.raw(&format!("team/base@{}", base_index["manifests"][i]["digest"].as_str().unwrap()));
        assert_eq!(base_index["manifests"][i]["platform"]["architecture"], *arch);
        let (app_layers, base_layers) = (layers(&app), layers(&base));
        assert_eq!(app_layers.len(), 2);
        assert_eq!(app_layers[0], base_layers[0], "{arch}: app is built on base's {arch} image");
    }

    // Nothing to do the second time.
    let again = repo.run(&["run", "--format", "json"]);
    assert!(again.results().values().all(|r| r == "fresh"), "{:?}", again.results());

    // A clean rebuild (no local state) gives the same digests: builds are reproducible.
    std::fs::remove_dir_all(repo.path().join(".hephy")).unwrap();
    let clean = repo.run(&["run", "--format", "json"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert_eq!(sha256(&registry.raw("team/app:v1")), sha256(&index_text));
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn a_changed_base_rebuilds_dependents_and_an_equivalent_one_cuts_them_off() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let repo = repo(&registry);
    let first = repo.run(&["run"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let before = registry.raw("team/app:v1");

    // A comment changes the Dockerfile's bytes, not the image: base rebuilds to the same digest.
    repo.write("base/Dockerfile", "# the base layer\nFROM scratch\nCOPY hello.txt /hello.txt\n");
    let run = repo.run(&["run", "--format", "json"]);
    let r = run.results();
    assert_eq!(r["base@linux/amd64"], "built");
    assert_eq!(r["app@linux/amd64"], "cutoff");
    assert_eq!(r["app:v1"], "cutoff");
    assert_eq!(registry.raw("team/app:v1"), before);

    // A changed file changes base's digest: app rebuilds on it, and explain names the file.
    repo.write("base/hello.txt", "hello, world\n");
    let explain = repo.run(&["explain", "app@linux/arm64"]);
    assert!(
        explain.stdout.contains("base@linux/arm64 rebuilds because base/hello.txt changed"),
        "{}",
        explain.stdout
    );
    let run = repo.run(&["run", "--format", "json"]);
    let r = run.results();
    assert_eq!(r["app@linux/arm64"], "built", "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["app:v1"], "built", "{}\n{}", run.stdout, run.stderr);
    assert_ne!(registry.raw("team/app:v1"), before);
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn a_failed_build_publishes_no_index_and_moves_no_tag() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let repo = repo(&registry);
    let first = repo.run(&["run"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let before = registry.raw("team/app:v1");
    // `RUN` needs a shell, and `FROM scratch` has none: app fails on every platform.
    repo.write("app/Dockerfile", "ARG BASE\nFROM ${BASE}\nRUN echo hi > /x\n");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 1);
    let r = run.results();
    assert_eq!(r["app@linux/amd64"], "failed");
    assert_eq!(r["app"], "skipped");
    assert_eq!(r["app:v1"], "skipped");
    assert_eq!(r["base@linux/amd64"], "fresh");
    assert_eq!(registry.raw("team/app:v1"), before, "the tag did not move");
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn without_local_state_the_registry_is_the_cache() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let repo = repo(&registry);
    let first = repo.run(&["run"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    // A fresh CI runner: no `.hephy/`.
    std::fs::remove_dir_all(repo.path().join(".hephy")).unwrap();
    let offline = repo.run(&["plan", "--offline", "--format", "json"]).json();
    assert!(offline["nodes"].as_array().unwrap().iter().all(|n| n["action"] == "build"));
    let plan = repo.run(&["plan", "--format", "json"]).json();
    for node in plan["nodes"].as_array().unwrap() {
        assert_eq!(node["action"], "skip", "{}", node["id"]);
        assert_eq!(node["reasons"], serde_json::json!([{"kind": "cached_in_registry"}]), "{}", node["id"]);
    }
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.results().values().all(|r| r == "cached"), "{:?}", run.results());
    // Remembered locally now.
    let offline = repo.run(&["plan", "--offline", "--format", "json"]).json();
    assert!(
        offline["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["action"] == "skip" && n["reasons"] == serde_json::json!([]))
    );
    // A tag moved elsewhere is not cached: it is published again, and nothing is rebuilt.
    let moved = std::process::Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{}/team/base:latest", registry.address()))
        .arg(format!("docker://{}/team/app:v1", registry.address()))
        .output()
        .unwrap();
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    std::fs::remove_dir_all(repo.path().join(".hephy")).unwrap();
    let plan = repo.run(&["plan", "--format", "json"]).json();
    let building: Vec<&str> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["action"] == "build")
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(building, ["app:v1"]);
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn an_unreachable_registry_is_a_warning_for_plan_not_an_error() {
    common::registry::require_image_tools();
    // Nothing listens on port 1: the first lookup fails to connect, and planning goes on.
    let repo = Repo::new().online().file("base/Dockerfile", "FROM scratch\n").file(
        "hephy.yaml",
        "registry: 127.0.0.1:1/team\nplatforms: [linux/amd64]\nimages:\n  base: { context: base }\n",
    );
    let plan = repo.run(&["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stderr.contains("warning: the registry cannot be asked"), "{}", plan.stderr);
    assert!(plan.stderr.to_ascii_lowercase().contains("connection refused"), "{}", plan.stderr);
    assert!(plan.json()["nodes"].as_array().unwrap().iter().all(|n| n["action"] == "build"));
    let offline = repo.run(&["plan", "--offline"]);
    assert!(!offline.stderr.contains("warning"), "{}", offline.stderr);
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn without_a_registry_images_stay_in_local_storage() {
    common::registry::require_image_tools();
    let repo = Repo::new()
        .file("base/Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
        .file("base/hello.txt", "hello\n")
        .file("app/Dockerfile", "ARG BASE\nFROM ${BASE}\nCOPY app.txt /\n")
        .file("app/app.txt", "app\n")
        .file(
            "hephy.yaml",
            "platforms: [linux/amd64]\nbuilder: buildah\nimages:\n  base: { context: base }\n  app: { context: app, from: { base: { arg: BASE } } }\n",
        );
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.results().values().all(|r| r == "built"), "{:?}", run.results());
    // The dependent was built FROM the base's image id in hephy's storage.
    let log = std::fs::read_to_string(repo.path().join(".hephy/logs/1/app@linux_amd64.log")).unwrap();
    let base_id =
        std::fs::read_to_string(repo.path().join(".hephy/logs/1/base@linux_amd64.work/iid")).unwrap();
    assert!(
        log.contains(&format!("--build-arg BASE={}", base_id.trim().trim_start_matches("sha256:"))),
        "{log}"
    );
    let again = repo.run(&["run", "--format", "json"]);
    assert!(again.results().values().all(|r| r == "fresh"));
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn registry_and_tag_args_rejoin_into_the_pinned_reference() {
    common::registry::require_image_tools();
    // Dockerfiles of the kaniko-builder layout say `FROM ${ECR_REGISTRY}:${BASE_TAG}`.
    let registry = Registry::start();
    let repo = Repo::new()
        .online()
        .file("base/Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
        .file("base/hello.txt", "hello\n")
        .file("app/Dockerfile", "ARG ECR_REGISTRY\nARG BASE_TAG\nFROM ${ECR_REGISTRY}:${BASE_TAG}\nCOPY app.txt /\n")
        .file("app/app.txt", "app\n")
        .file(
            "hephy.yaml",
            &format!(
                "registry: {}/team\nplatforms: [linux/amd64]\nbuilder: buildah\nimages:\n  base: {{ context: base }}\n  app:\n    context: app\n    from: {{ base: {{ arg: BASE_TAG, registry-arg: ECR_REGISTRY }} }}\n",
                registry.address()
            ),
        );
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let log = std::fs::read_to_string(repo.path().join(".hephy/logs/1/app@linux_amd64.log")).unwrap();
    assert!(
        log.contains(&format!(
            "--build-arg ECR_REGISTRY={}/team/base@sha256 --build-arg BASE_TAG=",
            registry.address()
        )),
        "{log}"
    );
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn the_kaniko_builder_naming_puts_every_image_in_one_repository_with_dated_tags() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let repo = Repo::new()
        .online()
        .file("base/Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
        .file("base/hello.txt", "hello\n")
        .file(
            "hephy.kdl",
            &format!(
                "registry \"{}/images\"\nnaming \"kaniko-builder\"\nplatforms \"linux/amd64\" \"linux/arm64\"\nimage \"base\" {{\n    context \"base\"\n    tags \"latest\"\n}}\n",
                registry.address()
            ),
        );
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let date = {
        let out = std::process::Command::new("date").args(["-u", "+%Y%m%d"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let index = registry.raw(&format!("images:base-{date}"));
    assert_eq!(sha256(&registry.raw("images:base-latest")), sha256(&index), "{{name}}-{{tag}} is the index");
    let amd64 = registry.raw(&format!("images:base-{date}-amd64"));
    let entries: Value = serde_json::from_str(&index).unwrap();
    assert_eq!(
        entries["manifests"][0]["digest"].as_str().unwrap(),
        sha256(&amd64),
        "{{name}}-{{date}}-{{arch}} is the amd64 build"
    );
    registry.raw(&format!("images:base-{date}-arm64"));
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn only_runs_the_named_nodes_once_their_dependencies_are_built_somewhere() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let repo = repo(&registry);
    // Nothing is built yet: app needs base first.
    let early = repo.run(&["run", "--only", "app@linux/amd64"]);
    assert_eq!(early.code, 2, "{}", early.stderr);
    assert!(
        early.stderr.contains("`app@linux/amd64` needs `base@linux/amd64`, which is not built"),
        "{}",
        early.stderr
    );
    // A CI job per node: base's build, then (on a fresh machine) app's, found through the registry.
    let base = repo.run(&["run", "--only", "base@linux/amd64", "--format", "json"]);
    assert_eq!(base.code, 0, "{}", base.stderr);
    assert_eq!(base.results()["base@linux/amd64"], "built");
    assert_eq!(base.results()["app@linux/amd64"], "fresh", "not selected: untouched");
    std::fs::remove_dir_all(repo.path().join(".hephy")).unwrap();
    let app = repo.run(&["run", "--only", "app@linux/amd64", "--format", "json"]);
    assert_eq!(app.code, 0, "{}", app.stderr);
    assert_eq!(app.results()["base@linux/amd64"], "cached");
    assert_eq!(app.results()["app@linux/amd64"], "built");
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn a_moved_base_image_tag_rebuilds_on_refresh_only() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    // An image from outside the graph: published by another repository as `ext/base:1`.
    let ext = Repo::new().online().file("base/Dockerfile", "FROM scratch\nCOPY v.txt /\n").file("base/v.txt", "1\n").file(
        "hephy.kdl",
        &format!("registry \"{}/ext\"\nplatforms \"linux/amd64\"\nimage \"base\" {{\n    context \"base\"\n    tags \"1\"\n}}\n", registry.address()),
    );
    assert_eq!(ext.run(&["run"]).code, 0);
    let repo = Repo::new()
        .online()
        .file("app/Dockerfile", &format!("FROM {}/ext/base:1\nCOPY app.txt /\n", registry.address()))
        .file("app/app.txt", "app\n")
        .file("other/Dockerfile", "FROM scratch\nCOPY other.txt /\n")
        .file("other/other.txt", "other\n")
        .file(
            "hephy.kdl",
            &format!(
                "registry \"{}/team\"\nplatforms \"linux/amd64\"\nimage \"app\" {{\n    context \"app\"\n}}\nimage \"other\" {{\n    context \"other\"\n}}\nschedule \"weekly\" {{\n    refresh\n}}\n",
                registry.address()
            ),
        );
    let first = repo.run(&["run"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    // The tag moves upstream.
    ext.write("base/v.txt", "2\n");
    assert_eq!(ext.run(&["run"]).code, 0);
    // An ordinary plan does not ask: the digest it knows still holds.
    let quiet = repo.run(&["plan", "--format", "json"]).json();
    assert!(quiet["nodes"].as_array().unwrap().iter().all(|n| n["action"] == "skip"));
    // The weekly schedule refreshes: what is built on the moved tag rebuilds, nothing else.
    let weekly = repo.run(&["plan", "--schedule", "weekly", "--format", "json"]).json();
    let building: Vec<&str> = weekly["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["action"] == "build")
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(building, ["app@linux/amd64", "app"]);
    let reason = &weekly["nodes"][0]["reasons"][0];
    assert_eq!(reason["kind"], "base_image_moved");
    assert_eq!(reason["image"], format!("{}/ext/base:1", registry.address()));
    let run = repo.run(&["run", "--schedule", "weekly", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.results()["app@linux/amd64"], "built");
    assert_eq!(run.results()["other@linux/amd64"], "fresh");
}
