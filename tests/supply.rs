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
                format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap()),
                entry["digest"].as_str().unwrap().to_owned(),
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
        let tag = registry
            .tags(&format!("team/{image}"))
            .into_iter()
            .find(|t| {
                let raw = json(&registry.raw(&format!("team/{image}:{t}")));
                raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
            })
            .unwrap_or_else(|| panic!("no index of {image} in {:?}", registry.tags(&format!("team/{image}"))));
        let raw = registry.raw(&format!("team/{image}:{tag}"));
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
            let manifest_digest = entry["digest"].as_str().unwrap();
            let manifest = json(&registry.raw(&format!("team/{image}@{manifest_digest}")));
            let layers = manifest["layers"].as_array().expect("layers");
            assert_eq!(layers.len(), 1, "provenance only (no sbom asked): {manifest}");
            assert_eq!(layers[0]["mediaType"], "application/vnd.in-toto+json");
            assert_eq!(layers[0]["annotations"]["in-toto.io/predicate-type"], "https://slsa.dev/provenance/v1");
            let statement: Value = serde_json::from_slice(&blob(
                &registry,
                &format!("team/{image}"),
                layers[0]["digest"].as_str().unwrap(),
            ))
            .expect("a JSON statement");
            assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
            assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
            let subject = &statement["subject"][0];
            assert_eq!(
                format!("sha256:{}", subject["digest"]["sha256"].as_str().unwrap()),
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
                let (_, base_digest) = base_platforms.iter().find(|(p, _)| p == platform).expect("base platform");
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
        assert_eq!(&registry.raw(&format!("team/{image}:{tag}")), raw, "the index of {image} moved");
    }

    // Provenance off: the index is published again (its key changed) without attestations,
    // and no platform is rebuilt.
    let off = two_platform_repo(&registry.address(), "provenance #false");
    let run = off.run(&["run", "-f", "hephy.kdl", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let app = registry
        .tags("team/app")
        .into_iter()
        .map(|t| json(&registry.raw(&format!("team/app:{t}"))))
        .filter(|raw| raw["mediaType"] == "application/vnd.oci.image.index.v1+json")
        .find(|raw| split(raw).1.is_empty())
        .expect("an index without attestations");
    assert_eq!(split(&app).0.len(), 2);
}
