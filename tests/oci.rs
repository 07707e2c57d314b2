//! The built-in `oci` builder end to end: the quickstart example built with nothing installed
//! (an empty `PATH`), reproducible across clean runs, readable as an OCI layout; and, against a
//! real registry on 127.0.0.1, pushed with its indexes and tags, found again as the shared
//! cache, with a dependent rebuilt on a machine that has only the registry.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::io::Read;
use std::path::Path;

use common::Repo;
use common::registry::{Registry, sha256};
use serde_json::Value;

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
}

/// The digest `index.json` gives `name`.
fn named(layout: &Path, name: &str) -> String {
    let index = json_file(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn manifest(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).unwrap()
}

/// Paths and owners in a gzip layer.
/// The architectures of an image index's platform manifests, in order (its attestation
/// manifests, `unknown/unknown`, left out).
fn architectures(index: &Value) -> Vec<&str> {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] != "attestation-manifest")
        .map(|m| m["platform"]["architecture"].as_str().expect("an architecture"))
        .collect()
}

fn listing(bytes: &[u8]) -> Vec<(String, u64, u32)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let uid = e.header().uid().unwrap();
            let mode = e.header().mode().unwrap();
            let mut sink = Vec::new();
            e.read_to_end(&mut sink).unwrap();
            (path, uid, mode)
        })
        .collect()
}

#[test]
fn the_quickstart_builds_with_nothing_installed_and_reproducibly() {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let nothing = [("PATH", path.as_str())];
    let one = Repo::example("quickstart");
    let run = one.run_with(&["run", "-f", "hephy.kdl"], &nothing);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("oci:.hephy/oci:web"), "it says where the images are:\n{}", run.stdout);
    let again = one.run_with(&["run", "--format", "json", "-f", "hephy.kdl"], &nothing);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.results().values().all(|r| r == "fresh"), "{:?}", again.results());

    // A second clean checkout builds byte-identical images.
    let two = Repo::example("quickstart");
    let run = two.run_with(&["run", "--format", "json", "-f", "graph.yaml"], &nothing);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let layout = one.path().join(".hephy/oci");
    assert_eq!(
        std::fs::read(layout.join("index.json")).unwrap(),
        std::fs::read(two.path().join(".hephy/oci/index.json")).unwrap()
    );

    // Every image is an index of both platforms, in platform order; tags name the same index.
    for image in ["base", "web", "docs"] {
        let index_digest = named(&layout, image);
        assert_eq!(named(&layout, &format!("{image}:latest")), index_digest);
        let index = manifest(&layout, &index_digest);
        assert_eq!(architectures(&index), ["amd64", "arm64"], "{image}");
    }
    // web is built FROM base's image for the same platform: base's layer comes first.
    for platform in ["linux-amd64", "linux-arm64"] {
        let base = manifest(&layout, &named(&layout, &format!("base.{platform}")));
        let web = manifest(&layout, &named(&layout, &format!("web.{platform}")));
        assert_eq!(web["layers"][0], base["layers"][0], "{platform}");
        let config = manifest(&layout, web["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], platform.trim_start_matches("linux-"));
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["WorkingDir"], "/srv/www");
        assert_eq!(config["config"]["Env"][1], "QUICKSTART_VERSION=1.0");
    }
    // Layers are reproducible: root-owned unless told, fixed modes; .dockerignore honoured.
    let web = manifest(&layout, &named(&layout, "web.linux-amd64"));
    // Its own layers come after base's (WORKDIR makes its folder in a layer, as BuildKit does).
    let files: Vec<(String, u64, u32)> = web["layers"].as_array().unwrap()[1..]
        .iter()
        .flat_map(|l| listing(&blob(&layout, l["digest"].as_str().unwrap())))
        .collect();
    assert!(files.contains(&("srv/www/index.html".to_owned(), 65532, 0o644)), "{files:?}");
    assert!(files.iter().all(|(p, _, _)| !p.contains("drafts")), "{files:?}");
    let docs = manifest(&layout, &named(&layout, "docs.linux-arm64"));
    let files = listing(&blob(&layout, docs["layers"][0]["digest"].as_str().unwrap()));
    assert!(files.contains(&("usr/share/doc/quickstart/index.md".to_owned(), 0, 0o444)), "{files:?}");
}

#[test]
fn a_changed_file_rebuilds_its_image_and_dependents_only() {
    let repo = Repo::example("quickstart");
    assert_eq!(repo.run(&["run", "-f", "hephy.kdl"]).code, 0);
    repo.write("base/rootfs/etc/os-release", "NAME=\"hephy quickstart\"\nID=quickstart\nVERSION=2\n");
    let run = repo.run(&["run", "--format", "json", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let built: Vec<String> =
        run.results().into_iter().filter(|(_, r)| r == "built").map(|(id, _)| id).collect();
    assert_eq!(
        built,
        [
            "base",
            "base:latest",
            "base@linux/amd64",
            "base@linux/arm64",
            "web",
            "web:latest",
            "web@linux/amd64",
            "web@linux/arm64"
        ]
    );
}

#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn the_quickstart_pushes_to_a_registry_that_is_then_the_cache() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let repo = Repo::quickstart_pushing_to(&registry.address(), "");
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&format!("{}/qs/web@sha256:", registry.address())), "{}", run.stdout);

    for image in ["base", "web", "docs"] {
        let index = registry.raw(&format!("qs/{image}:latest"));
        let parsed: Value = serde_json::from_str(&index).unwrap();
        assert_eq!(architectures(&parsed), ["amd64", "arm64"], "{image}");
        // Each platform has its provenance, as BuildKit lays it out, after the platforms.
        for i in 0..2 {
            assert_eq!(
                parsed["manifests"][i + 2]["annotations"]["vnd.docker.reference.digest"],
                parsed["manifests"][i]["digest"],
                "{image}"
            );
        }
        // The tag and the layout name the very same index.
        assert_eq!(sha256(&index), named(&repo.path().join(".hephy/oci"), image));
    }
    // web was built FROM base's digest for the same platform.
    let base: Value = serde_json::from_str(&registry.raw("qs/base:latest")).unwrap();
    let web: Value = serde_json::from_str(&registry.raw("qs/web:latest")).unwrap();
    for i in 0..2 {
        let base_digest = base["manifests"][i]["digest"].as_str().unwrap();
        let web_manifest: Value = serde_json::from_str(
            &registry.raw(&format!("qs/web@{}", web["manifests"][i]["digest"].as_str().unwrap())),
        )
        .unwrap();
        let config =
            manifest(&repo.path().join(".hephy/oci"), web_manifest["config"]["digest"].as_str().unwrap());
        let history = config["history"].to_string();
        assert!(history.contains(&format!("FROM {}/qs/base@{base_digest}", registry.address())), "{history}");
    }

    // A machine with no local state finds everything in the registry.
    std::fs::remove_dir_all(repo.path().join(".hephy")).unwrap();
    let plan = repo.run(&["plan", "--format", "json", "-f", "hephy.kdl"]).json();
    for node in plan["nodes"].as_array().unwrap() {
        assert_eq!(node["reasons"], serde_json::json!([{"kind": "cached_in_registry"}]), "{}", node["id"]);
    }
    // A change there rebuilds web, FROM base pulled back from the registry by digest.
    std::fs::remove_dir_all(repo.path().join(".hephy")).unwrap();
    repo.write("web/site/index.html", "<h1>changed</h1>\n");
    let run = repo.run(&["run", "--format", "json", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let results = run.results();
    assert_eq!(results["base@linux/amd64"], "cached");
    assert_eq!(results["web@linux/amd64"], "built");
    let web: Value = serde_json::from_str(&registry.raw("qs/web:latest")).unwrap();
    let pushed: Value = serde_json::from_str(
        &registry.raw(&format!("qs/web@{}", web["manifests"][0]["digest"].as_str().unwrap())),
    )
    .unwrap();
    let base_amd64: Value = serde_json::from_str(
        &registry.raw(&format!("qs/base@{}", base["manifests"][0]["digest"].as_str().unwrap())),
    )
    .unwrap();
    assert_eq!(pushed["layers"][0], base_amd64["layers"][0]);
}

#[test]
fn the_weekly_schedule_rebuilds_base_then_its_dependents_in_order() {
    let repo = Repo::example("quickstart");
    assert_eq!(repo.run(&["run", "-f", "hephy.kdl"]).code, 0);
    let plan = repo.run(&["plan", "--schedule", "weekly", "--format", "json", "-f", "hephy.kdl"]).json();
    let building: Vec<&str> = plan["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .filter(|id| {
            plan["nodes"].as_array().unwrap().iter().any(|n| n["id"] == *id && n["action"] == "build")
        })
        .collect();
    assert_eq!(
        building,
        [
            "base@linux/amd64",
            "base@linux/arm64",
            "base",
            "base:latest",
            "web@linux/amd64",
            "web@linux/arm64",
            "web",
            "web:latest"
        ]
    );
    // The scheduled image rebuilds; rebuilt to the same digest (the builds are reproducible),
    // its dependents are cut off after it, not rebuilt; docs is not touched at all.
    let run = repo.run(&["run", "--schedule", "weekly", "--format", "json", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let results = run.results();
    assert_eq!(results["base@linux/amd64"], "built");
    assert_eq!(results["base"], "built");
    assert_eq!(results["web@linux/amd64"], "cutoff");
    assert_eq!(results["docs@linux/amd64"], "fresh");
}

#[test]
#[ignore = "needs umoci and skopeo (installed by .ci/run)"]
fn umoci_and_skopeo_read_the_layout() {
    common::require(&["umoci", "skopeo"], "apt-get install umoci skopeo");
    let repo = Repo::example("quickstart");
    assert_eq!(repo.run(&["run", "-f", "hephy.kdl"]).code, 0);
    let bundle = repo.path().join("bundle");
    let unpack = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image", ".hephy/oci:web.linux-amd64"])
        .arg(&bundle)
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(unpack.status.success(), "{}", String::from_utf8_lossy(&unpack.stderr));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/www/index.html")).unwrap(),
        std::fs::read_to_string(repo.path().join("web/site/index.html")).unwrap()
    );
    assert!(rootfs.join("etc/os-release").is_file(), "base's layer is under web's");
    assert!(!rootfs.join("srv/www/drafts").exists(), ".dockerignore left drafts out");
    // skopeo copies the multi-arch image out of the layout, checking every blob's digest.
    let copy = std::process::Command::new("skopeo")
        .args(["copy", "--all", "oci:.hephy/oci:web:latest", "oci:copy:web"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
}
