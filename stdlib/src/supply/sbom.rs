//! An SPDX 2.3 SBOM (JSON) of one platform image in hephy's OCI layout: the operating system's
//! packages found in the image's merged file system (dpkg, apk and RPM databases, the
//! distribution from `os-release`), the base image as a package with its digest and purl, and
//! every regular file the build's own layers (those above the base's) wrote, with its SHA-1 and
//! SHA-256. The layers are read once, as streams ([`walk`]); the output is deterministic: sorted,
//! its time the caller's, its namespace derived from the manifest's digest.

mod packages;
mod rpm;
mod walk;

use std::collections::BTreeMap;
use std::sync::Arc;

use hephy_oci::layout::{Descriptor, Layout, LayoutError, valid_digest};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use packages::{Manager, OsRelease, Package};
use walk::{Bytes, Kind, Merged};

/// The image a build started from, as the SBOM names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseInfo {
    /// Its reference as the Dockerfile names it (`debian:12`, `registry:5000/base:1`).
    pub reference: String,
    /// The digest of the manifest it resolved to (`sha256:…`), the platform's.
    pub digest: String,
    /// How many of the image's layers, from the bottom, are the base's.
    pub layers: usize,
}

/// Why an SBOM could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SbomError {
    /// The manifest is not in the layout.
    #[error("the manifest `{digest}` is not in hephy's image layout")]
    NoManifest {
        /// Its digest.
        digest: String,
    },
    /// The manifest is not an image manifest.
    #[error("`{digest}` is not an image manifest: {why}")]
    BadManifest {
        /// Its digest.
        digest: String,
        /// What is wrong.
        why: String,
    },
    /// A layer the manifest names is missing.
    #[error("the layer `{digest}` is missing from hephy's image layout")]
    MissingBlob {
        /// Its digest.
        digest: String,
    },
    /// A layer could not be read.
    #[error("cannot read the layer `{digest}`: {source}")]
    Layer {
        /// Its digest.
        digest: String,
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// A layer is compressed in a way not read here.
    #[error("the layer `{digest}` is `{media_type}`, which is neither tar, gzip nor zstd")]
    MediaType {
        /// Its digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// A layer's entry (or a hardlink's target) leaves the image's root.
    #[error("the layer `{layer}` has `{path}`, which leaves the image's root")]
    Escapes {
        /// The layer's digest.
        layer: String,
        /// The entry's name.
        path: String,
    },
    /// A package database too large to read.
    #[error("`{path}` in the layer `{layer}` is larger than {limit} bytes, too large for a package database")]
    TooLarge {
        /// The layer's digest.
        layer: String,
        /// The file.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// The package databases together are too large to read.
    #[error("the package databases up to the layer `{layer}` hold more than {limit} bytes together")]
    TooMuch {
        /// The layer's digest.
        layer: String,
        /// The limit.
        limit: u64,
    },
    /// The base has more layers than the image.
    #[error("the base image has {base} layers, but the image only {image}")]
    BaseLayers {
        /// The base's.
        base: usize,
        /// The image's.
        image: usize,
    },
    /// The creation time is not SPDX's.
    #[error("`{0}` is not a time as SPDX writes it (`YYYY-MM-DDThh:mm:ssZ`)")]
    Created(String),
    /// The layout refused a temporary file.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The document could not be encoded.
    #[error("cannot encode the SBOM: {0}")]
    Encode(Arc<serde_json::Error>),
    /// The RPM database could not be read.
    #[error("cannot read the RPM database `{path}`: {why}")]
    Rpm {
        /// Its path in the image.
        path: String,
        /// Why.
        why: String,
    },
}

/// The SPDX 2.3 JSON document of the image whose manifest is `manifest_digest` in `layout`,
/// named `name`, created at `created` (`YYYY-MM-DDThh:mm:ssZ`, from `HEPHY_DATE` or
/// `SOURCE_DATE_EPOCH` as the caller decides), built on `base` when it has one.
pub fn spdx(
    layout: &Layout,
    manifest_digest: &str,
    base: Option<&BaseInfo>,
    created: &str,
    name: &str,
) -> Result<Vec<u8>, SbomError> {
    if !spdx_time(created) {
        return Err(SbomError::Created(created.to_owned()));
    }
    let layers = layers(layout, manifest_digest)?;
    let base_layers = base.map_or(0, |b| b.layers);
    if base_layers > layers.len() {
        return Err(SbomError::BaseLayers { base: base_layers, image: layers.len() });
    }
    let merged = Merged::read(layout, &layers, base_layers)?;
    let found = packages_of(&merged)?;
    let document = document(manifest_digest, base, created, name, &found, &merged, base_layers);
    let mut bytes = serde_json::to_vec_pretty(&document).map_err(|e| SbomError::Encode(Arc::new(e)))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn spdx_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The layers of the image manifest `digest`, bottom first.
fn layers(layout: &Layout, digest: &str) -> Result<Vec<Descriptor>, SbomError> {
    let bad = |why: &str| SbomError::BadManifest { digest: digest.to_owned(), why: why.to_owned() };
    if !valid_digest(digest) {
        return Err(bad("not a sha256 digest"));
    }
    let bytes = layout.read(digest).ok_or_else(|| SbomError::NoManifest { digest: digest.to_owned() })?;
    // A layer descriptor without a media type, a digest or a size fails here (`missing field`).
    let manifest = hephy_oci::document::manifest(&bytes).map_err(|e| bad(&e.to_string()))?;
    manifest
        .layers()
        .iter()
        .map(|layer| {
            let digest = layer.digest().to_string();
            if !valid_digest(&digest) {
                return Err(bad("a layer's descriptor lacks a media type, a sha256 digest or a size"));
            }
            Ok(Descriptor { media_type: layer.media_type().to_string(), digest, size: layer.size() })
        })
        .collect()
}

/// A package found, and the database that lists it.
#[derive(Debug)]
struct Found {
    manager: Manager,
    package: Package,
    /// The database's path in the image.
    database: String,
}

/// The packages every database in the image lists, and the distribution.
fn packages_of(merged: &Merged) -> Result<(OsRelease, Vec<Found>), SbomError> {
    let text = |bytes: &Bytes| match bytes {
        Bytes::Memory(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Bytes::File(_) => String::new(),
    };
    let os = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|path| merged.bytes(path))
        .map(|(_, bytes)| packages::os_release(&text(&bytes)))
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut databases: Vec<(Manager, String, Arc<Bytes>)> = Vec::new();
    if let Some((path, bytes)) = merged.bytes("var/lib/dpkg/status") {
        databases.push((Manager::Deb, path, bytes));
    }
    for (path, bytes) in merged.kept_in(walk::DPKG_STATUS_D) {
        databases.push((Manager::Deb, path, bytes));
    }
    for path in ["lib/apk/db/installed", "usr/lib/apk/db/installed"] {
        if let Some((path, bytes)) = merged.bytes(path) {
            databases.push((Manager::Apk, path, bytes));
        }
    }
    for path in
        ["var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite", "usr/share/rpm/rpmdb.sqlite"]
    {
        if let Some((path, bytes)) = merged.bytes(path) {
            databases.push((Manager::Rpm, path, bytes));
        }
    }
    // A database two paths lead to (a link to it) is read once.
    databases.sort_by(|a, b| a.1.cmp(&b.1));
    databases.dedup_by(|a, b| a.1 == b.1);
    for (manager, database, bytes) in databases {
        let listed = match manager {
            Manager::Deb => packages::dpkg(&text(&bytes)),
            Manager::Apk => packages::apk(&text(&bytes)),
            Manager::Rpm => rpm::packages(&bytes, &database)?,
        };
        found.extend(listed.into_iter().map(|package| Found {
            manager,
            package,
            database: database.clone(),
        }));
    }
    Ok((os, found))
}

fn hex(bytes: &[u8]) -> String {
    hephy_oci::layout::hex(bytes)
}

/// `text` as an SPDX identifier's part (letters, digits, `.` and `-`).
fn id_part(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect()
}

/// An SPDX actor (`Person: Name (email)`) of a maintainer's `Name <email>`.
fn actor(kind: &str, text: &str) -> String {
    let clean =
        |s: &str| s.replace(['(', ')', '<', '>', '\n'], " ").split_whitespace().collect::<Vec<_>>().join(" ");
    match text.split_once('<') {
        Some((name, rest)) => {
            let email = rest.split_once('>').map_or(rest, |(e, _)| e);
            format!("{kind}: {} ({})", clean(name), clean(email))
        }
        None => format!("{kind}: {}", clean(text)),
    }
}

/// A declared license as SPDX takes it: the expression when it is one of SPDX's, else a
/// `LicenseRef-` whose text is the database's, recorded in `extracted`.
fn license(text: &str, extracted: &mut BTreeMap<String, String>) -> String {
    if spdx::Expression::parse_mode(text, spdx::ParseMode::STRICT)
        .is_ok_and(|e| e.requirements().all(|r| matches!(r.req.license, spdx::LicenseItem::Spdx { .. })))
    {
        return text.to_owned();
    }
    let id = format!("LicenseRef-{}", id_part(text));
    extracted.insert(id.clone(), text.to_owned());
    id
}

/// The base image's package URL: `pkg:oci/NAME@DIGEST?repository_url=HOST/REPOSITORY&tag=TAG`.
fn oci_purl(base: &BaseInfo) -> String {
    let (repository_url, name, tag) = match hephy_oci::registry::Reference::parse(&base.reference) {
        Ok(reference) => {
            let name = reference.repository.rsplit('/').next().unwrap_or(&reference.repository).to_owned();
            (format!("{}/{}", reference.host, reference.repository), name, reference.tag)
        }
        Err(_) => (base.reference.clone(), base.reference.clone(), None),
    };
    let mut purl = format!(
        "pkg:oci/{}@{}?repository_url={}",
        packages::pct(&name.to_ascii_lowercase()),
        packages::pct(&base.digest),
        packages::pct(&repository_url)
    );
    if let Some(tag) = tag {
        purl.push_str(&format!("&tag={}", packages::pct(&tag)));
    }
    purl
}

fn purl_ref(purl: &str) -> Value {
    json!({ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl })
}

fn document(
    manifest_digest: &str,
    base: Option<&BaseInfo>,
    created: &str,
    name: &str,
    (os, found): &(OsRelease, Vec<Found>),
    merged: &Merged,
    base_layers: usize,
) -> Value {
    let image_id = "SPDXRef-Image";
    let mut relationships: Vec<(String, &str, String)> =
        vec![("SPDXRef-DOCUMENT".to_owned(), "DESCRIBES", image_id.to_owned())];
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();

    // The files the build wrote: the regular files whose last writer is above the base.
    let mut files: Vec<Value> = Vec::new();
    let mut sha1s: Vec<String> = Vec::new();
    for (path, node) in &merged.nodes {
        let Kind::File { sums, .. } = &node.kind else { continue };
        if node.layer < base_layers {
            continue;
        }
        // Every file of the build's layers was hashed, or its holder read again.
        let Some(walk::Sums { sha1, sha256 }) = sums else { continue };
        let id = format!("SPDXRef-File-{}", &hex(&Sha256::digest(path.as_bytes()))[..24]);
        sha1s.push(hex(sha1));
        files.push(json!({
            "SPDXID": id,
            "fileName": format!("./{path}"),
            "checksums": [
                { "algorithm": "SHA1", "checksumValue": hex(sha1) },
                { "algorithm": "SHA256", "checksumValue": hex(sha256) },
            ],
        }));
        relationships.push((image_id.to_owned(), "CONTAINS", id));
    }

    let mut image = json!({
        "SPDXID": image_id,
        "name": name,
        "versionInfo": manifest_digest,
        "downloadLocation": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{ "algorithm": "SHA256", "checksumValue": manifest_digest.trim_start_matches("sha256:") }],
        "filesAnalyzed": !files.is_empty(),
        "comment": "the image's platform manifest; its files listed are those the build's layers wrote, above the base image's",
    });
    if !files.is_empty() {
        // SPDX 2.3, 7.9: the SHA-1 of the files' sorted SHA-1s, concatenated.
        sha1s.sort();
        image["packageVerificationCode"] =
            json!({ "packageVerificationCodeValue": hex(&Sha1::digest(sha1s.concat().as_bytes())) });
    }
    let mut packages: BTreeMap<String, Value> = BTreeMap::new();
    packages.insert(image_id.to_owned(), image);

    if let Some(base) = base {
        let id = "SPDXRef-Base".to_owned();
        packages.insert(
            id.clone(),
            json!({
                "SPDXID": id,
                "name": base.reference,
                "versionInfo": base.digest,
                "downloadLocation": "NOASSERTION",
                "primaryPackagePurpose": "CONTAINER",
                "filesAnalyzed": false,
                "checksums": [{ "algorithm": "SHA256", "checksumValue": base.digest.trim_start_matches("sha256:") }],
                "externalRefs": [purl_ref(&oci_purl(base))],
                "comment": "the base image",
            }),
        );
        relationships.push((image_id.to_owned(), "DESCENDANT_OF", id));
    }

    for Found { manager, package, database } in found {
        let purl = package.purl(*manager, os);
        let id = format!(
            "SPDXRef-Package-{}-{}-{}",
            manager.purl_type(),
            id_part(&package.name),
            &hex(&Sha256::digest(purl.as_bytes()))[..12]
        );
        if packages.contains_key(&id) {
            continue;
        }
        let mut entry = json!({
            "SPDXID": id,
            "name": package.name,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "externalRefs": [purl_ref(&purl)],
            "sourceInfo": format!("listed in /{database}"),
        });
        match &package.supplier {
            Some(supplier) => {
                entry["supplier"] =
                    json!(actor(if *manager == Manager::Rpm { "Organization" } else { "Person" }, supplier))
            }
            None => entry["supplier"] = json!("NOASSERTION"),
        }
        if let Some(text) = &package.license {
            entry["licenseDeclared"] = json!(license(text, &mut extracted));
        }
        relationships.push((image_id.to_owned(), "CONTAINS", id.clone()));
        packages.insert(id, entry);
    }

    relationships.sort();
    relationships.dedup();
    let hex_digest = manifest_digest.trim_start_matches("sha256:");
    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!(
            "{}/spdx/{}/sha256-{hex_digest}",
            env!("CARGO_PKG_REPOSITORY"),
            packages::pct(name)
        ),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: hephy-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages.into_values().collect::<Vec<_>>(),
        "files": files,
        "relationships": relationships.into_iter().map(|(element, kind, related)| json!({
            "spdxElementId": element,
            "relationshipType": kind,
            "relatedSpdxElement": related,
        })).collect::<Vec<_>>(),
    });
    if let Some(os_name) = &os.pretty_name {
        document["comment"] = json!(format!("operating system: {os_name}"));
    }
    if !extracted.is_empty() {
        document["hasExtractedLicensingInfos"] = json!(
            extracted
                .into_iter()
                .map(|(id, text)| json!({ "licenseId": id, "extractedText": text, "name": text }))
                .collect::<Vec<_>>()
        );
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::EntryType::{self, Directory, Link, Regular, Symlink};

    const DPKG_STATUS: &str = include_str!("sbom/fixtures/dpkg-status");
    const OS_RELEASE: &str = include_str!("sbom/fixtures/os-release");
    const TIME: &str = "2026-01-02T03:04:05Z";

    /// A tar of `(name, kind, data)` entries (a link's data is its target).
    fn tar(entries: &[(&str, EntryType, &str)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o755);
            header.set_mtime(0);
            let linked = matches!(kind, Link | Symlink);
            if linked {
                header.set_link_name(data).unwrap();
            }
            header.set_size(if linked { 0 } else { data.len() as u64 });
            // Written as it is, `..` included (`set_path` refuses it).
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            tar.append(&header, if linked { &b""[..] } else { data.as_bytes() }).unwrap();
        }
        tar.into_inner().unwrap()
    }

    /// An image of `layers` (bottom first; the first `gzip` of them gzip-compressed, the
    /// rest zstd and plain in turn) in a layout; its manifest's digest.
    fn image(layout: &Layout, layers: &[Vec<u8>]) -> String {
        let mut descriptors = Vec::new();
        for (i, tar) in layers.iter().enumerate() {
            let (media_type, bytes) = match i % 3 {
                0 => {
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    std::io::Write::write_all(&mut gz, tar).unwrap();
                    ("application/vnd.oci.image.layer.v1.tar+gzip", gz.finish().unwrap())
                }
                1 => ("application/vnd.oci.image.layer.v1.tar+zstd", zstd::encode_all(&tar[..], 3).unwrap()),
                _ => ("application/vnd.oci.image.layer.v1.tar", tar.clone()),
            };
            descriptors.push(layout.put(media_type, &bytes).unwrap().json());
        }
        let config = layout.put("application/vnd.oci.image.config.v1+json", b"{}").unwrap();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.json(),
            "layers": descriptors,
        });
        layout
            .put("application/vnd.oci.image.manifest.v1+json", &serde_json::to_vec(&manifest).unwrap())
            .unwrap()
            .digest
    }

    fn base_layer() -> Vec<u8> {
        tar(&[
            ("etc/", Directory, ""),
            ("etc/os-release", Symlink, "../usr/lib/os-release"),
            ("usr/lib/os-release", Regular, OS_RELEASE),
            ("var/lib/dpkg/status", Regular, DPKG_STATUS),
            ("bin/sh", Regular, "a shell"),
            ("etc/motd", Regular, "hello"),
        ])
    }

    fn sbom(layers: &[Vec<u8>], base_layers: usize) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        let digest = image(&layout, layers);
        let base = BaseInfo {
            reference: "registry.example:5000/team/debian:12".to_owned(),
            digest: format!("sha256:{}", "b".repeat(64)),
            layers: base_layers,
        };
        let bytes = spdx(&layout, &digest, Some(&base), TIME, "app").unwrap();
        let again = spdx(&layout, &digest, Some(&base), TIME, "app").unwrap();
        assert_eq!(bytes, again, "the same image gives the same bytes");
        serde_json::from_slice(&bytes).unwrap()
    }

    fn names(document: &Value, key: &str, field: &str) -> Vec<String> {
        document[key].as_array().unwrap().iter().map(|v| v[field].as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn it_lists_the_packages_the_base_and_the_files_the_build_wrote() {
        let build = tar(&[
            ("app/", Directory, ""),
            ("app/run", Regular, "#!/bin/sh\n"),
            ("app/run-too", Link, "app/run"),
            ("app/self", Symlink, "run"),
            ("etc/.wh.motd", Regular, ""),
        ]);
        let document = sbom(&[base_layer(), build], 1);
        assert_eq!(document["spdxVersion"], "SPDX-2.3");
        assert_eq!(document["creationInfo"]["created"], TIME);
        let packages = names(&document, "packages", "name");
        for name in ["app", "registry.example:5000/team/debian:12", "base-files", "bash", "libc6", "tzdata"] {
            assert!(packages.contains(&name.to_owned()), "{name} in {packages:?}");
        }
        assert!(!packages.contains(&"iputils-ping".to_owned()), "only configured, not installed");
        let files = names(&document, "files", "fileName");
        assert_eq!(files, ["./app/run", "./app/run-too"], "the build's regular files, not the base's");
        let run = &document["files"][0]["checksums"];
        assert_eq!(run[0]["algorithm"], "SHA1");
        assert_eq!(run[0]["checksumValue"], hex(&Sha1::digest(b"#!/bin/sh\n")));
        assert_eq!(run[1]["checksumValue"], hex(&Sha256::digest(b"#!/bin/sh\n")));
        assert_eq!(document["files"][1]["checksums"], *run, "a hardlink has its file's bytes");
        let purls: Vec<&str> = document["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
            .collect();
        assert!(
            purls.contains(
                &"pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12&upstream=glibc"
            ),
            "{purls:?}"
        );
        assert!(
            purls.contains(
                &format!(
                    "pkg:oci/debian@sha256%3A{}?repository_url=registry.example%3A5000%2Fteam%2Fdebian&tag=12",
                    "b".repeat(64)
                )
                .as_str()
            ),
            "{purls:?}"
        );
        let relationships: Vec<String> = document["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{} {} {}", r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]))
            .collect();
        assert!(relationships.contains(&"\"SPDXRef-DOCUMENT\" \"DESCRIBES\" \"SPDXRef-Image\"".to_owned()));
        assert!(relationships.contains(&"\"SPDXRef-Image\" \"DESCENDANT_OF\" \"SPDXRef-Base\"".to_owned()));
        assert_eq!(relationships.iter().filter(|r| r.contains("CONTAINS")).count(), 2 + 5);
        let namespace = document["documentNamespace"].as_str().unwrap();
        let digest = document["packages"][1]["versionInfo"].as_str().unwrap().replace(':', "-");
        assert!(
            namespace.starts_with("https://") && namespace.ends_with(&format!("/spdx/app/{digest}")),
            "{namespace}"
        );
    }

    #[test]
    fn whiteouts_and_opaque_folders_remove_what_was_below() {
        let removed = tar(&[("var/lib/dpkg/.wh.status", Regular, "")]);
        let document = sbom(&[base_layer(), removed], 1);
        assert_eq!(names(&document, "packages", "name").len(), 2, "the image and its base only");
        let opaque = tar(&[
            ("var/lib/dpkg/", Directory, ""),
            ("var/lib/dpkg/.wh..wh..opq", Regular, ""),
            ("var/lib/dpkg/status", Regular, "Package: only\nStatus: install ok installed\nVersion: 1\n"),
        ]);
        let document = sbom(&[base_layer(), opaque], 1);
        let packages = names(&document, "packages", "name");
        assert!(
            packages.contains(&"only".to_owned()) && !packages.contains(&"libc6".to_owned()),
            "{packages:?}"
        );
        assert_eq!(names(&document, "files", "fileName"), ["./var/lib/dpkg/status"]);
    }

    #[test]
    fn a_hardlink_of_the_build_to_a_base_file_has_that_files_checksums() {
        // The base's files are not hashed as they stream by; the one a build's hardlink names
        // is, from its layer read again.
        let build = tar(&[("app/", Directory, ""), ("app/sh", Link, "bin/sh")]);
        let document = sbom(&[base_layer(), build], 1);
        assert_eq!(names(&document, "files", "fileName"), ["./app/sh"]);
        let sums = &document["files"][0]["checksums"];
        assert_eq!(sums[0]["checksumValue"], hex(&Sha1::digest(b"a shell")));
        assert_eq!(sums[1]["checksumValue"], hex(&Sha256::digest(b"a shell")));
    }

    #[test]
    fn distroless_status_d_and_apk_are_read_and_links_stay_inside_the_image() {
        let layer = tar(&[
            ("var/lib/dpkg/status.d/", Directory, ""),
            (
                "var/lib/dpkg/status.d/libc6",
                Regular,
                "Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\n",
            ),
            ("var/lib/dpkg/status.d/libc6.md5sums", Regular, "0123  usr/lib/libc.so.6\n"),
            ("lib/apk/db/installed", Regular, include_str!("sbom/fixtures/apk-installed")),
            // A link out of the image's root resolves at the root, as in a container.
            ("etc/os-release", Symlink, "../../../../usr/lib/os-release"),
            ("usr/lib/os-release", Regular, "ID=alpine\nVERSION_ID=3.19.1\n"),
        ]);
        let document = sbom(&[layer], 0);
        let packages = names(&document, "packages", "name");
        for name in ["libc6", "musl", "busybox", "libcrypto3"] {
            assert!(packages.contains(&name.to_owned()), "{name} in {packages:?}");
        }
        let text = document.to_string();
        assert!(
            text.contains("pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"),
            "{text}"
        );
        assert!(text.contains("pkg:deb/alpine/libc6@2.36-9?arch=amd64&distro=alpine-3.19.1"), "{text}");
    }

    #[test]
    fn a_link_loop_names_nothing() {
        let layer = tar(&[
            ("etc/os-release", Symlink, "loop"),
            ("etc/loop", Symlink, "/etc/os-release"),
            ("var/lib/dpkg", Symlink, "../../var/lib/dpkg"),
        ]);
        let document = sbom(&[layer], 0);
        assert_eq!(names(&document, "packages", "name").len(), 2, "the image and its base only");
        assert!(document.get("comment").is_none(), "no os-release read");
    }

    #[test]
    fn a_license_outside_spdx_becomes_a_license_ref_with_its_text() {
        let mut extracted = BTreeMap::new();
        assert_eq!(
            license("MIT AND (GPL-2.0-only OR BSD-3-Clause)", &mut extracted),
            "MIT AND (GPL-2.0-only OR BSD-3-Clause)"
        );
        assert_eq!(license("GPL2+ custom", &mut extracted), "LicenseRef-GPL2--custom");
        assert_eq!(extracted["LicenseRef-GPL2--custom"], "GPL2+ custom");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        let digest = image(&layout, &[tar(&[("../escape", Regular, "x")])]);
        assert!(matches!(spdx(&layout, &digest, None, TIME, "x"), Err(SbomError::Escapes { .. })));
        assert!(matches!(spdx(&layout, &digest, None, "yesterday", "x"), Err(SbomError::Created(_))));
        let missing = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(spdx(&layout, &missing, None, TIME, "x"), Err(SbomError::NoManifest { .. })));
        let base = BaseInfo { reference: "b".into(), digest: missing, layers: 2 };
        assert!(matches!(spdx(&layout, &digest, Some(&base), TIME, "x"), Err(SbomError::BaseLayers { .. })));
    }
}
