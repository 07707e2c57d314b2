//! SBOMs of images the built-in `oci` builder makes, checked by a tool that is not hephy: an
//! image built on a base whose layer holds a dpkg status file (a base made here, pushed to a
//! loopback registry), its SPDX 2.3 document made by the library from hephy's OCI layout and
//! validated by `pyspdxtools` (PyPI `spdx-tools`, installed by `.ci/run`), naming the base's
//! dpkg packages and the files the build added, with their checksums.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::process::Command;

use common::Repo;
use common::layers::{push_layers, tar_of};
use hephy_oci::layout::Layout;
use sha2::Digest as _;
use tar::EntryType::{Directory, Regular, Symlink};

const DPKG_STATUS: &str = include_str!("../stdlib/src/supply/sbom/fixtures/dpkg-status");
const OS_RELEASE: &str = include_str!("../stdlib/src/supply/sbom/fixtures/os-release");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
#[ignore = "needs pyspdxtools, skopeo and docker-registry (installed by .ci/run)"]
fn the_sbom_of_an_image_on_a_debian_base_validates_and_names_its_packages_and_files() {
    common::require(&["pyspdxtools"], "pip install spdx-tools");
    common::require(&["skopeo", "docker-registry"], "apt-get install skopeo docker-registry");
    let registry = common::registry::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/debian:12", registry.address());
    push_layers(
        dir.path(),
        &base,
        &[
            tar_of(&[
                ("etc/", Directory, ""),
                ("etc/os-release", Symlink, "../usr/lib/os-release"),
                ("usr/", Directory, ""),
                ("usr/lib/", Directory, ""),
                ("usr/lib/os-release", Regular, OS_RELEASE),
                ("bin/", Directory, ""),
                ("bin/sh", Regular, "a shell\n"),
            ]),
            tar_of(&[
                ("var/", Directory, ""),
                ("var/lib/", Directory, ""),
                ("var/lib/dpkg/", Directory, ""),
                ("var/lib/dpkg/status", Regular, DPKG_STATUS),
            ]),
        ],
    );
    let repo = Repo::new()
        .online()
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n")
        .file(
            "app/Dockerfile",
            &format!("FROM {base}\nCOPY hello.txt /srv/hello.txt\nCOPY run.sh /srv/bin/run\n"),
        )
        .file("app/hello.txt", "hello\n")
        .file("app/run.sh", "#!/bin/sh\necho hi\n");
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // The platform manifest hephy built, and what the base resolved to.
    let oci = repo.path().join(".hephy/oci");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "app")
        .unwrap();
    let layout = Layout::new(oci.clone());
    let mut manifest_digest = entry["digest"].as_str().unwrap().to_owned();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&layout.read(&manifest_digest).unwrap()).unwrap();
    if let Some(platforms) = manifest["manifests"].as_array() {
        manifest_digest = platforms[0]["digest"].as_str().unwrap().to_owned();
        manifest = serde_json::from_slice(&layout.read(&manifest_digest).unwrap()).unwrap();
    }
    let raw = registry.raw("debian:12");
    let base_manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let base_info = hephy_stdlib::BaseInfo {
        reference: base.clone(),
        digest: format!("sha256:{}", hex(&sha2::Sha256::digest(raw.as_bytes()))),
        layers: base_manifest["layers"].as_array().unwrap().len(),
    };
    assert!(manifest["layers"].as_array().unwrap().len() > base_info.layers, "the build added layers");

    let sbom =
        hephy_stdlib::sbom_spdx(&layout, &manifest_digest, Some(&base_info), "2026-01-02T03:04:05Z", "app")
            .unwrap();
    let file = dir.path().join("app.spdx.json");
    std::fs::write(&file, &sbom).unwrap();
    let output = Command::new("pyspdxtools").arg("-i").arg(&file).output().expect("run pyspdxtools");
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && !said.contains("invalid"), "pyspdxtools -i: {said}");

    let document: serde_json::Value = serde_json::from_slice(&sbom).unwrap();
    let packages = document["packages"].as_array().unwrap();
    let named = |name: &str| packages.iter().find(|p| p["name"] == name);
    for (name, version) in [
        ("base-files", "12.4+deb12u11"),
        ("bash", "5.2.15-2+b8"),
        ("bsdutils", "1:2.38.1-5+deb12u3"),
        ("libc6", "2.36-9+deb12u14"),
        ("tzdata", "2025b-0+deb12u2"),
    ] {
        let package = named(name).unwrap_or_else(|| panic!("{name} is listed: {document:#}"));
        assert_eq!(package["versionInfo"], version);
        let purl = package["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        assert!(
            purl.starts_with(&format!("pkg:deb/debian/{name}@")) && purl.contains("distro=debian-12"),
            "{purl}"
        );
    }
    assert!(named("iputils-ping").is_none(), "a package removed but for its configuration is not installed");
    let base_package = named(&base).unwrap();
    assert_eq!(base_package["versionInfo"], base_info.digest.as_str());
    assert!(
        base_package["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pkg:oci/debian@sha256%3A{}", &base_info.digest[7..])),
        "{base_package:#}"
    );

    let files: Vec<(&str, &str)> = document["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["fileName"].as_str().unwrap(), f["checksums"][1]["checksumValue"].as_str().unwrap()))
        .collect();
    let hello = hex(&sha2::Sha256::digest(b"hello\n"));
    let run_sh = hex(&sha2::Sha256::digest(b"#!/bin/sh\necho hi\n"));
    assert_eq!(
        files,
        [("./srv/bin/run", run_sh.as_str()), ("./srv/hello.txt", hello.as_str())],
        "only what the build added"
    );
}
