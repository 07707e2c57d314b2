//! SBOMs of images the built-in `oci` builder makes, checked by a tool that is not hephy: an
//! image built on a base whose layer holds a dpkg status file (a base made here, pushed to a
//! loopback registry), its SPDX 2.3 document made by the library from hephy's OCI layout and
//! validated by `pyspdxtools` (PyPI `spdx-tools`, installed by `.ci/run`), naming the base's
//! dpkg packages and the files the build added, with their checksums; and an RPM database that
//! RPM itself wrote, read from an image whose `/var/lib/rpm` is a link, as Fedora's is.

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

/// An image of one uncompressed layer in `layout`; its manifest's digest.
fn one_layer_image(layout: &Layout, layer: &[u8]) -> String {
    let layer = layout.put("application/vnd.oci.image.layer.v1.tar", layer).unwrap();
    let config = layout.put("application/vnd.oci.image.config.v1+json", b"{}").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.json(),
        "layers": [layer.json()],
    });
    layout
        .put("application/vnd.oci.image.manifest.v1+json", &serde_json::to_vec(&manifest).unwrap())
        .unwrap()
        .digest
}

#[test]
#[ignore = "needs pyspdxtools, rpm and rpmbuild (installed by .ci/run)"]
fn rpm_sqlite_databases_name_their_packages() {
    common::require(&["pyspdxtools"], "pip install spdx-tools");
    common::require(&["rpm", "rpmbuild"], "apt-get install rpm");
    // A package built and recorded by RPM itself, in the sqlite database of RPM 4.16 and later.
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("hello.spec");
    std::fs::write(
        &spec,
        "Name: hello-sbom\nEpoch: 2\nVersion: 1.2.3\nRelease: 4.fc40\nSummary: a package for an SBOM test\n\
         License: MIT OR Apache-2.0\nVendor: Example Org <packages@example.org>\nBuildArch: noarch\n\n\
         %description\nA test package.\n\n%install\nmkdir -p %{buildroot}/usr/share/hello\n\
         echo hi > %{buildroot}/usr/share/hello/hi\n\n%files\n/usr/share/hello/hi\n",
    )
    .unwrap();
    let top = dir.path().join("top");
    let db = dir.path().join("db");
    let run = |command: &mut Command| {
        let output = command.output().unwrap();
        assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    run(Command::new("rpmbuild")
        .args(["-bb", "--define"])
        .arg(format!("_topdir {}", top.display()))
        .args(["--define", "_db_backend sqlite"])
        .arg(&spec));
    let package = top.join("RPMS/noarch/hello-sbom-1.2.3-4.fc40.noarch.rpm");
    run(Command::new("rpm").arg("--dbpath").arg(&db).args(["--define", "_db_backend sqlite", "--initdb"]));
    run(Command::new("rpm")
        .arg("--dbpath")
        .arg(&db)
        .args(["--define", "_db_backend sqlite", "-i", "--justdb", "--nodeps", "--nosignature"])
        .arg(&package));
    let sqlite = std::fs::read(db.join("rpmdb.sqlite")).unwrap();

    // Fedora's layout: the database under /usr/lib/sysimage, /var/lib/rpm a link to it.
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        tar.append_data(&mut header, name, data).unwrap();
    };
    add("etc/os-release", Regular, b"NAME=\"Fedora Linux\"\nID=fedora\nVERSION_ID=40\n", None);
    add("usr/lib/sysimage/rpm/rpmdb.sqlite", Regular, &sqlite, None);
    add("var/lib/rpm", Symlink, b"", Some("../../usr/lib/sysimage/rpm"));
    let layer = tar.into_inner().unwrap();
    let oci = tempfile::tempdir().unwrap();
    let layout = Layout::new(oci.path().to_path_buf());
    let digest = one_layer_image(&layout, &layer);
    let sbom = hephy_stdlib::sbom_spdx(&layout, &digest, None, "2026-01-02T03:04:05Z", "rpm").unwrap();
    let document: serde_json::Value = serde_json::from_slice(&sbom).unwrap();
    let packages: Vec<&serde_json::Value> =
        document["packages"].as_array().unwrap().iter().filter(|p| p["name"] == "hello-sbom").collect();
    assert_eq!(packages.len(), 1, "one package, though two paths lead to its database: {document:#}");
    let hello = packages[0];
    assert_eq!(hello["versionInfo"], "1.2.3-4.fc40");
    assert_eq!(hello["licenseDeclared"], "MIT OR Apache-2.0");
    assert_eq!(hello["supplier"], "Organization: Example Org (packages@example.org)");
    assert_eq!(hello["sourceInfo"], "listed in /usr/lib/sysimage/rpm/rpmdb.sqlite");
    assert_eq!(
        hello["externalRefs"][0]["referenceLocator"],
        "pkg:rpm/fedora/hello-sbom@1.2.3-4.fc40?arch=noarch&distro=fedora-40&epoch=2&upstream=hello-sbom-1.2.3-4.fc40.src.rpm"
    );
    let file = dir.path().join("rpm.spdx.json");
    std::fs::write(&file, &sbom).unwrap();
    let output = Command::new("pyspdxtools").arg("-i").arg(&file).output().unwrap();
    assert!(output.status.success(), "pyspdxtools -i: {}", String::from_utf8_lossy(&output.stderr));
}
