//! The supply chain of pushed images, read back with tools that are not hephy: BuildKit's
//! attestation layout in the index (`skopeo inspect --raw`), the SLSA provenance statements
//! (fetched from the registry's blob API), their subjects and resolved dependencies, and that
//! the same inputs give the same index again.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::registry::Registry;
use common::{Repo, git};
use serde_json::Value;

/// A git repository with a base (a Debian-like root with a dpkg status file) and an app built
/// on it (`from "base" arg="BASE"`), both for two platforms by the built-in builder, pushing to
/// `registry/team`, with the graph's `lines` added; committed.
fn two_platform_repo(registry: &str, lines: &str) -> Repo {
    let status = "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n\n\
                  Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\nArchitecture: amd64\n";
    let repo = Repo::new()
        .online()
        .file("base/Dockerfile", "FROM scratch\nCOPY status /var/lib/dpkg/status\n")
        .file("base/status", status)
        .file("app/Dockerfile", "ARG BASE\nFROM ${BASE}\nCOPY hello.txt /hello.txt\n")
        .file("app/hello.txt", "hello\n")
        .file(".gitignore", ".hephy/\n")
        .file(
            "hephy.kdl",
            &format!(
                "registry \"{registry}/team\"\nplatforms \"linux/amd64\" \"linux/arm64\"\n{lines}\n\
                 image \"base\" {{\n    context \"base\"\n    builder \"oci\"\n}}\n\
                 image \"app\" {{\n    context \"app\"\n    builder \"oci\"\n    from \"base\" arg=\"BASE\"\n}}\n"
            ),
        );
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "init"]);
    repo
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A blob of `repository`, through the registry's HTTP API.
fn blob(registry: &Registry, repository: &str, digest: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", registry.port)).expect("connect");
    let request =
        format!("GET /v2/{repository}/blobs/{digest} HTTP/1.0\r\nHost: {}\r\n\r\n", registry.address());
    stream.write_all(request.as_bytes()).expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let at = response.windows(4).position(|w| w == b"\r\n\r\n").expect("headers end");
    assert!(response.starts_with(b"HTTP/1.0 200"), "{}", String::from_utf8_lossy(&response[..at]));
    response[at + 4..].to_vec()
}

/// The index's platform manifests (platform → digest) and its attestation manifests.
fn split(index: &Value) -> (Vec<(String, String)>, Vec<Value>) {
    let mut platforms = Vec::new();
    let mut attestations = Vec::new();
    for entry in index["manifests"].as_array().expect("manifests") {
        if entry["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
            attestations.push(entry.clone());
        } else {
            let p = &entry["platform"];
            platforms.push((
                format!(
                    "{}/{}",
                    p["os"].as_str().expect("a string"),
                    p["architecture"].as_str().expect("a string")
                ),
                entry["digest"].as_str().expect("a string").to_owned(),
            ));
        }
    }
    (platforms, attestations)
}

/// The done-when of provenance and the layout: each platform manifest of each pushed index has
/// its attestation manifest as BuildKit lays it out, holding a SLSA v1 statement about that
/// manifest whose resolved dependencies name the base by digest; a second run builds nothing
/// and leaves every index where it was; `provenance #false` leaves attestations out.
#[test]
#[ignore = "needs docker-registry and skopeo (installed by .ci/run)"]
fn pushed_indexes_carry_provenance_as_buildkit_lays_it_out() {
    common::require(&["docker-registry", "skopeo"], "apt-get install docker-registry skopeo");
    let registry = Registry::start();
    let repo = two_platform_repo(&registry.address(), "");
    let env = [("SOURCE_DATE_EPOCH", "1700000000")];
    let run = repo.run_with(&["run", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);

    let mut indexes = Vec::new();
    for image in ["base", "app"] {
        let tag = index_refs(&registry, image)
            .into_iter()
            .find(|t| {
                let raw = json(&registry.raw(&format!("team/{image}{t}")));
                raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
            })
            .unwrap_or_else(|| panic!("no index of {image} recorded"));
        let raw = registry.raw(&format!("team/{image}{tag}"));
        indexes.push((image, tag, raw));
    }
    let (_, _, base_raw) = &indexes[0];
    let (base_platforms, _) = split(&json(base_raw));

    for (image, _, raw) in &indexes {
        let index = json(raw);
        let (platforms, attestations) = split(&index);
        assert_eq!(platforms.len(), 2, "{raw}");
        assert_eq!(attestations.len(), 2, "one attestation manifest per platform: {raw}");
        for (platform, digest) in &platforms {
            let entry = attestations
                .iter()
                .find(|a| a["annotations"]["vnd.docker.reference.digest"] == digest.as_str())
                .unwrap_or_else(|| panic!("no attestation of {digest}: {raw}"));
            assert_eq!(entry["platform"], serde_json::json!({ "architecture": "unknown", "os": "unknown" }));
            assert_eq!(entry["mediaType"], "application/vnd.oci.image.manifest.v1+json");
            let manifest_digest = entry["digest"].as_str().expect("a string");
            let manifest = json(&registry.raw(&format!("team/{image}@{manifest_digest}")));
            let layers = manifest["layers"].as_array().expect("layers");
            assert_eq!(layers.len(), 1, "provenance only (no sbom asked): {manifest}");
            assert_eq!(layers[0]["mediaType"], "application/vnd.in-toto+json");
            assert_eq!(
                layers[0]["annotations"]["in-toto.io/predicate-type"],
                "https://slsa.dev/provenance/v1"
            );
            let statement: Value = serde_json::from_slice(&blob(
                &registry,
                &format!("team/{image}"),
                layers[0]["digest"].as_str().expect("a string"),
            ))
            .expect("a JSON statement");
            assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
            assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
            let subject = &statement["subject"][0];
            assert_eq!(
                format!("sha256:{}", subject["digest"]["sha256"].as_str().expect("a string")),
                *digest,
                "the subject is the platform manifest"
            );
            assert_eq!(subject["name"], format!("{}/team/{image}", registry.address()));
            let definition = &statement["predicate"]["buildDefinition"];
            assert_eq!(definition["externalParameters"]["image"], *image);
            assert_eq!(definition["externalParameters"]["platform"], platform.as_str());
            assert_eq!(definition["externalParameters"]["graph"], "hephy.kdl");
            let deps = definition["resolvedDependencies"].as_array().expect("dependencies");
            assert!(
                deps.iter().any(|d| d["digest"]["gitCommit"] == head.as_str()),
                "the graph repository's commit: {deps:?}"
            );
            if *image == "app" {
                let (_, base_digest) =
                    base_platforms.iter().find(|(p, _)| p == platform).expect("base platform");
                let hex = base_digest.trim_start_matches("sha256:");
                assert!(
                    deps.iter().any(|d| d["digest"]["sha256"] == hex
                        && d["uri"].as_str().is_some_and(|u| u.contains("team/base"))),
                    "the base by digest ({base_digest}): {deps:?}"
                );
            }
            let run_details = &statement["predicate"]["runDetails"];
            assert_eq!(run_details["metadata"]["startedOn"], "2023-11-14T22:13:20Z");
            assert!(run_details["builder"]["version"]["hephy"].is_string());
        }
    }

    // Nothing changed: nothing is built, and every index is where it was.
    let again = repo.run_with(&["run", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(again.results().values().all(|r| r != "built"), "{}", again.stdout);
    for (image, tag, raw) in &indexes {
        assert_eq!(&registry.raw(&format!("team/{image}{tag}")), raw, "the index of {image} moved");
    }

    // Provenance off: the plan says the setting changed for the index nodes alone; the run
    // publishes each index again without attestations and rebuilds no platform.
    let graph = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("graph");
    repo.write("hephy.kdl", &format!("provenance #false\n{graph}"));
    let plan = repo.run_with(&["plan", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let plan = plan.json();
    let building: Vec<&Value> =
        plan["nodes"].as_array().expect("nodes").iter().filter(|n| n["action"] != "fresh").collect();
    let mut ids: Vec<&str> = building.iter().filter_map(|n| n["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["app", "base"], "only the index nodes: {plan}");
    for node in &building {
        assert!(node["reasons"].to_string().contains("supply.provenance"), "{node}");
    }
    let run = repo.run_with(&["run", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let results = run.results();
    let built: Vec<&str> = results.iter().filter(|(_, r)| *r == "built").map(|(n, _)| n.as_str()).collect();
    assert_eq!(built, ["app", "base"], "{}", run.stdout);
    let app = index_refs(&registry, "app")
        .into_iter()
        .map(|t| json(&registry.raw(&format!("team/app{t}"))))
        .filter(|raw| raw["mediaType"] == "application/vnd.oci.image.index.v1+json")
        .find(|raw| split(raw).1.is_empty())
        .expect("an index without attestations");
    let (_, _, before) = &indexes[1];
    assert_eq!(split(&app).0, split(&json(before)).0, "the same platform manifests");
}

const PASSWORD: &str = "supply chain test";

/// A registry request with another method (`DELETE`): the status line.
fn http(registry: &Registry, method: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", registry.port)).expect("connect");
    let request = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n\r\n", registry.address());
    stream.write_all(request.as_bytes()).expect("request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_owned()
}

/// The references (`@sha256:…`, after `team/IMAGE`) of the outputs of node `node` hephy
/// recorded in the registry's cache repository (builds and indexes are pushed by digest).
fn index_refs(registry: &Registry, node: &str) -> Vec<String> {
    registry
        .records("team/hephy-cache")
        .into_iter()
        .filter(|r| r.node == node)
        .map(|r| format!("@{}", r.digest))
        .collect()
}

/// The index of `team/IMAGE` hephy recorded: (its reference after `team/IMAGE`, raw index).
fn pushed_index(registry: &Registry, image: &str) -> (String, String) {
    let repository = format!("team/{image}");
    index_refs(registry, image)
        .into_iter()
        .map(|t| {
            let raw = registry.raw(&format!("{repository}{t}"));
            (t, raw)
        })
        .find(|(_, raw)| json(raw)["mediaType"] == "application/vnd.oci.image.index.v1+json")
        .unwrap_or_else(|| panic!("no index of {image}"))
}

/// The statements of the attestation manifest about `digest` in index `raw`: predicate type →
/// statement.
fn statements_about(registry: &Registry, image: &str, raw: &str, digest: &str) -> Vec<(String, Value)> {
    let (_, attestations) = split(&json(raw));
    let entry = attestations
        .iter()
        .find(|a| a["annotations"]["vnd.docker.reference.digest"] == digest)
        .unwrap_or_else(|| panic!("no attestation of {digest}"));
    let manifest =
        json(&registry.raw(&format!("team/{image}@{}", entry["digest"].as_str().expect("a string"))));
    manifest["layers"]
        .as_array()
        .expect("present")
        .iter()
        .map(|layer| {
            let kind =
                layer["annotations"]["in-toto.io/predicate-type"].as_str().expect("a string").to_owned();
            let bytes = blob(registry, &format!("team/{image}"), layer["digest"].as_str().expect("a string"));
            (kind, serde_json::from_slice(&bytes).expect("a JSON statement"))
        })
        .collect()
}

/// The done-when of issue 26: a two-platform graph (a base with a dpkg status file, an image
/// built on it) pushed with `sbom #true` and `sign`, checked by tools that are not hephy: the
/// signatures of every index and platform manifest verify by cosign's spec (the verifier in
/// `tests/common/cosign.rs`: cosign is not installable here, and Debian's skopeo is built with
/// sigstore disabled, so neither can serve) and an unsigned copy's do not; `pyspdxtools`
/// validates each SBOM, which names the dpkg packages; the provenance is about the platform
/// manifest and names the base by digest; `hephy verify` agrees. A second run builds and signs
/// nothing; deleting one `.sig` re-signs only that image, without moving its index.
#[test]
#[ignore = "needs docker-registry, skopeo, openssl and pyspdxtools (installed by .ci/run)"]
fn signed_images_with_sboms_and_provenance_verify_with_other_tools() {
    common::require(
        &["docker-registry", "skopeo", "openssl", "pyspdxtools"],
        "apt-get install docker-registry skopeo openssl; pip install spdx-tools",
    );
    let registry = Registry::start();
    let repo = two_platform_repo(&registry.address(), "sign key=\"keys/cosign.key\"\nsbom #true");
    std::fs::create_dir(repo.path().join("keys")).expect("mkdir keys");
    let generated = repo.run_with(&["key", "generate", "keys"], &[("COSIGN_PASSWORD", PASSWORD)]);
    assert_eq!(generated.code, 0, "{generated:?}");
    let public_pem = std::fs::read_to_string(repo.path().join("keys/cosign.pub")).expect("cosign.pub");
    let env = [("COSIGN_PASSWORD", PASSWORD), ("SOURCE_DATE_EPOCH", "1700000000")];
    let run = repo.run_with(&["run", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));

    let (_, base_raw) = pushed_index(&registry, "base");
    let (base_platforms, _) = split(&json(&base_raw));
    let scratch = tempfile::tempdir().expect("dir");
    for image in ["base", "app"] {
        let (_, raw) = pushed_index(&registry, image);
        let repository = format!("team/{image}");
        let index_digest = common::registry::sha256(&raw);
        let (platforms, attestations) = split(&json(&raw));
        assert_eq!((platforms.len(), attestations.len()), (2, 2), "{raw}");
        assert!(
            common::cosign::verified_by_the_spec(&registry, &repository, &index_digest, &public_pem),
            "the index of {image} is signed"
        );
        for (platform, digest) in &platforms {
            assert!(
                common::cosign::verified_by_the_spec(&registry, &repository, digest, &public_pem),
                "{image} {platform} is signed"
            );
            let statements = statements_about(&registry, image, &raw, digest);
            let kinds: Vec<&str> = statements.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(kinds, ["https://slsa.dev/provenance/v1", "https://spdx.dev/Document"]);
            for (kind, statement) in &statements {
                assert_eq!(&statement["predicateType"], kind.as_str());
                assert_eq!(
                    statement["subject"][0]["digest"]["sha256"],
                    digest.trim_start_matches("sha256:"),
                    "every statement is about the platform manifest"
                );
            }
            // The SBOM validates with pyspdxtools and names the dpkg packages.
            let sbom = &statements[1].1["predicate"];
            let file = scratch.path().join(format!("{image}-{}.spdx.json", platform.replace('/', "-")));
            std::fs::write(&file, serde_json::to_vec_pretty(sbom).expect("present")).expect("write the SBOM");
            let output =
                std::process::Command::new("pyspdxtools").arg("-i").arg(&file).output().expect("pyspdxtools");
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(output.status.success() && !said.contains("invalid"), "pyspdxtools -i: {said}");
            let names: Vec<&str> = sbom["packages"]
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert!(names.contains(&"libc6") && names.contains(&"zlib1g"), "{names:?}");
            // The provenance names the base by digest.
            if image == "app" {
                let (_, base_digest) = base_platforms.iter().find(|(p, _)| p == platform).expect("present");
                let deps = statements[0].1["predicate"]["buildDefinition"]["resolvedDependencies"].clone();
                assert!(
                    deps.as_array()
                        .expect("present")
                        .iter()
                        .any(|d| d["digest"]["sha256"] == base_digest.trim_start_matches("sha256:")
                            && d["uri"].as_str().is_some_and(|u| u.contains("team/base"))),
                    "{deps}"
                );
            }
        }
        let verify = repo.run(&[
            "verify",
            &format!("{}/{repository}@{index_digest}", registry.address()),
            "--key",
            "keys/cosign.pub",
        ]);
        assert_eq!(verify.code, 0, "{verify:?}");
        assert_eq!(
            verify.stdout.lines().filter(|l| l.starts_with("verified ")).count(),
            3,
            "{}",
            verify.stdout
        );
        assert_eq!(
            verify.stdout.lines().filter(|l| l.starts_with("attested ")).count(),
            2,
            "{}",
            verify.stdout
        );
    }

    // An unsigned copy (the same bytes in another repository) does not verify.
    let copied = std::process::Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{}/team/app{}", registry.address(), pushed_index(&registry, "app").0))
        .arg(format!("docker://{}/team/copy:latest", registry.address()))
        .output()
        .expect("skopeo copy");
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    let copy_raw = registry.raw("team/copy:latest");
    assert!(!common::cosign::verified_by_the_spec(
        &registry,
        "team/copy",
        &common::registry::sha256(&copy_raw),
        &public_pem
    ));

    // Second run: nothing built, nothing signed again (every tag, `.sig` ones included, holds
    // what it held).
    let tags_of = |image: &str| -> Vec<(String, String)> {
        let mut tags: Vec<(String, String)> = registry
            .tags(&format!("team/{image}"))
            .into_iter()
            .map(|t| {
                let raw = registry.raw(&format!("team/{image}:{t}"));
                (t, raw)
            })
            .collect();
        tags.sort();
        tags
    };
    let (before_base, before_app) = (tags_of("base"), tags_of("app"));
    let again = repo.run_with(&["run", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(again.results().values().all(|r| r != "built"), "{}", again.stdout);
    assert_eq!(tags_of("base"), before_base);
    assert_eq!(tags_of("app"), before_app);

    // One `.sig` deleted (the registry API's DELETE of its manifest): only that image's index
    // node runs, signs it again, and its index stays where it was.
    let (app_tag, app_raw) = pushed_index(&registry, "app");
    let (app_platforms, _) = split(&json(&app_raw));
    let victim = &app_platforms[1].1;
    let sig_tag = format!("sha256-{}.sig", victim.trim_start_matches("sha256:"));
    let sig_digest = common::registry::sha256(&registry.raw(&format!("team/app:{sig_tag}")));
    let deleted = http(&registry, "DELETE", &format!("/v2/team/app/manifests/{sig_digest}"));
    assert!(deleted.contains(" 202 "), "{deleted}");
    assert!(!common::cosign::verified_by_the_spec(&registry, "team/app", victim, &public_pem));
    let explain = repo.run_with(&["plan", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(explain.code, 0, "{explain:?}");
    assert!(explain.stdout.contains("output_missing"), "{}", explain.stdout);
    let resign = repo.run_with(&["run", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(resign.code, 0, "{}\n{}", resign.stdout, resign.stderr);
    let results = resign.results();
    let built: Vec<String> = results.iter().filter(|(_, r)| *r == "built").map(|(n, _)| n.clone()).collect();
    assert_eq!(built, ["app"], "only app's index runs again: {}", resign.stdout);
    assert!(common::cosign::verified_by_the_spec(&registry, "team/app", victim, &public_pem), "signed again");
    assert_eq!(registry.raw(&format!("team/app{app_tag}")), app_raw, "the index did not move");
    assert_eq!(tags_of("base"), before_base, "base was not touched");

    // Another key: the index nodes alone run again (the key's fingerprint is part of their
    // key), and everything verifies with the new key.
    let index_tags = |image: &str| -> Vec<String> {
        index_refs(&registry, image)
            .into_iter()
            .filter(|t| {
                json(&registry.raw(&format!("team/{image}{t}")))["mediaType"]
                    == "application/vnd.oci.image.index.v1+json"
            })
            .collect()
    };
    let old_tags: Vec<Vec<String>> = ["base", "app"].iter().map(|i| index_tags(i)).collect();
    std::fs::create_dir(repo.path().join("keys2")).expect("mkdir keys2");
    let generated = repo.run_with(&["key", "generate", "keys2"], &[("COSIGN_PASSWORD", PASSWORD)]);
    assert_eq!(generated.code, 0, "{generated:?}");
    let new_pem = std::fs::read_to_string(repo.path().join("keys2/cosign.pub")).expect("cosign.pub");
    let graph = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("graph");
    repo.write("hephy.kdl", &graph.replace("keys/cosign.key", "keys2/cosign.key"));
    let rekeyed = repo.run_with(&["run", "-f", "hephy.kdl", "--format", "json"], &env);
    assert_eq!(rekeyed.code, 0, "{}\n{}", rekeyed.stdout, rekeyed.stderr);
    let results = rekeyed.results();
    let built: Vec<&str> = results.iter().filter(|(_, r)| *r == "built").map(|(n, _)| n.as_str()).collect();
    assert_eq!(built, ["app", "base"], "{}", rekeyed.stdout);
    for (image, old) in ["base", "app"].into_iter().zip(&old_tags) {
        let tags = index_tags(image);
        let new: Vec<&String> = tags.iter().filter(|t| !old.contains(t)).collect();
        assert_eq!(new.len(), 1, "one index under the new key: {tags:?}");
        let repository = format!("team/{image}");
        let raw = registry.raw(&format!("{repository}{}", new[0]));
        let index_digest = common::registry::sha256(&raw);
        assert!(common::cosign::verified_by_the_spec(&registry, &repository, &index_digest, &new_pem));
        for (_, digest) in split(&json(&raw)).0 {
            assert!(
                common::cosign::verified_by_the_spec(&registry, &repository, &digest, &new_pem),
                "{image}"
            );
        }
    }
}

/// Without a registry, `provenance #true` puts the attestation manifests into hephy's OCI
/// layout, in the index named after the image, each statement about its platform manifest.
#[test]
fn without_a_registry_the_attestations_are_in_the_layout() {
    let repo = Repo::new()
        .file("app/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n")
        .file("app/hello.txt", "hello\n")
        .file(
            "hephy.kdl",
            "platforms \"linux/amd64\" \"linux/arm64\"\nprovenance #true\nimage \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n",
        );
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let layout = repo.path().join(".hephy/oci");
    let read = |digest: &str| -> Value {
        let path = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).expect("a blob")).expect("JSON")
    };
    let names: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json")).expect("JSON");
    let entry = names["manifests"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "app")
        .expect("the index of app");
    let index = read(entry["digest"].as_str().expect("a string"));
    let (platforms, attestations) = split(&index);
    assert_eq!((platforms.len(), attestations.len()), (2, 2), "{index}");
    for (_, digest) in &platforms {
        let attestation = attestations
            .iter()
            .find(|a| a["annotations"]["vnd.docker.reference.digest"] == digest.as_str())
            .expect("an attestation of each platform");
        let manifest = read(attestation["digest"].as_str().expect("a string"));
        let statement = read(manifest["layers"][0]["digest"].as_str().expect("a string"));
        assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
        assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.trim_start_matches("sha256:"));
    }
}
