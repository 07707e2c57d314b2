//! BuildKit's attestation layout (`exporter/containerimage/attestations`, its
//! `docs/attestations/attestation-storage.md`): per platform manifest, one more manifest in the
//! same index, `platform unknown/unknown`, annotated `vnd.docker.reference.type:
//! attestation-manifest` and `vnd.docker.reference.digest: <the platform manifest>`, whose
//! layers are in-toto statements (`application/vnd.in-toto+json`, each annotated
//! `in-toto.io/predicate-type`). Docker's and Trivy's tools read attestations there.

use std::io::{Read, Seek};

use hephy_oci::document::{self, spec};
use hephy_oci::layout::{Descriptor, Layout, LayoutError};
use hephy_oci::registry::{Client, Reference, RegistryError};
use hephy_os::stop::Stop;
use serde_json::{Value, json};

/// An in-toto statement's media type (a layer of an attestation manifest).
pub(crate) const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The annotation of a statement layer naming its predicate type.
pub(crate) const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// The index entry annotation saying what an entry is.
pub(crate) const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The index entry annotation naming the platform manifest an attestation manifest is about.
pub(crate) const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// [`REFERENCE_TYPE`]'s value for an attestation manifest.
pub(crate) const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// SPDX's predicate type (an SBOM statement).
pub(crate) const SPDX: &str = "https://spdx.dev/Document";

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// One in-toto statement: its predicate type and its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) predicate_type: String,
    pub(crate) bytes: Vec<u8>,
}

/// Writes the attestation manifest of the platform manifest `subject` (its statements, their
/// config, the manifest) into `layout`; returns the manifest's descriptor and its index entry.
pub(crate) fn attestation_manifest(
    layout: &Layout,
    subject: &str,
    statements: &[Statement],
) -> Result<(Descriptor, spec::Descriptor), LayoutError> {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for statement in statements {
        let blob = layout.put(IN_TOTO, &statement.bytes)?;
        diff_ids.push(blob.digest.clone());
        let mut layer = blob.oci()?;
        layer.set_annotations(Some([(PREDICATE_TYPE.to_owned(), statement.predicate_type.clone())].into()));
        layers.push(layer);
    }
    // As BuildKit writes it: a config for compatibility only, its platform unknown.
    let config = json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = layout.put(CONFIG, &serde_json::to_vec(&config).unwrap_or_default())?;
    let manifest = document::image_manifest(spec::MediaType::ImageManifest, config.oci()?, layers)?;
    let descriptor = layout.put(MANIFEST, &document::to_bytes(&manifest)?)?;
    let mut entry = descriptor.oci()?;
    entry.set_platform(Some(document::platform("unknown", "unknown", None)));
    entry.set_annotations(Some(
        [(REFERENCE_DIGEST, subject), (REFERENCE_TYPE, ATTESTATION_MANIFEST)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    ));
    Ok((descriptor, entry))
}

/// The largest statement read back (an SBOM of a large image is a few MiB).
const STATEMENT_LIMIT: u64 = 64 << 20;

/// Reading an index's attestations failed.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A temporary file for a statement failed.
    #[error("reading a statement: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a platform manifest of an index counts as not attested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unattested {
    #[error("no attestation manifest")]
    NoManifest,
    #[error("an entry without a sha256 digest")]
    NoDigest,
    #[error("attestation manifest {0} is not JSON")]
    ManifestNotJson(String),
    #[error("statement {0} is not JSON")]
    StatementNotJson(String),
    #[error("statement {blob} is not about {subject}")]
    NotAbout { blob: String, subject: String },
    #[error("statement {blob} is a `{kind}`, its layer says otherwise")]
    Mislabelled { blob: String, kind: String },
    #[error("attestation manifest {0} holds no in-toto statement")]
    NoStatement(String),
}

/// The attestations found for one platform manifest of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The platform manifest's digest.
    pub digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The predicate types of its statements whose subject is this manifest; or what is wrong.
    pub found: Result<Vec<String>, Unattested>,
}

/// For each platform manifest of the index `image` (by tag or digest): its attestation
/// manifest, and each statement's predicate type, checked to name the platform manifest as
/// its subject and to match its layer's annotation. Empty for an image that is not an index.
pub fn check(client: &Client, image: &Reference) -> Result<Vec<Attested>, AttestError> {
    let index = client.manifest(image)?;
    let Ok(value) = serde_json::from_slice::<Value>(&index.bytes) else { return Ok(Vec::new()) };
    let entries = value["manifests"].as_array().cloned().unwrap_or_default();
    let (attestations, platforms): (Vec<&Value>, Vec<&Value>) =
        entries.iter().partition(|e| e["annotations"][REFERENCE_TYPE] == ATTESTATION_MANIFEST);
    let mut out = Vec::new();
    for entry in platforms {
        let Some(digest) = entry["digest"].as_str().filter(|d| is_sha256(d)) else { continue };
        let p = &entry["platform"];
        let mut platform =
            format!("{}/{}", p["os"].as_str().unwrap_or(""), p["architecture"].as_str().unwrap_or(""));
        if let Some(variant) = p["variant"].as_str() {
            platform = format!("{platform}/{variant}");
        }
        let found = match attestations.iter().find(|a| a["annotations"][REFERENCE_DIGEST] == digest) {
            None => Err(Unattested::NoManifest),
            Some(attestation) => statements(client, image, attestation, digest)?,
        };
        out.push(Attested { digest: digest.to_owned(), platform, found });
    }
    Ok(out)
}

/// `sha256:` and 64 lower-case hex digits: the only digest a registry's answer may put into a
/// URL or a report.
fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The predicate types of attestation manifest `entry`'s statements about `subject`.
fn statements(
    client: &Client,
    image: &Reference,
    entry: &Value,
    subject: &str,
) -> Result<Result<Vec<String>, Unattested>, AttestError> {
    let Some(digest) = entry["digest"].as_str().filter(|d| is_sha256(d)) else {
        return Ok(Err(Unattested::NoDigest));
    };
    let at = Reference { tag: None, digest: Some(digest.to_owned()), ..image.clone() };
    let manifest: Value = match serde_json::from_slice(&client.manifest(&at)?.bytes) {
        Ok(m) => m,
        Err(_) => return Ok(Err(Unattested::ManifestNotJson(digest.to_owned()))),
    };
    let hex = subject.trim_start_matches("sha256:");
    let mut types = Vec::new();
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        if layer["mediaType"] != IN_TOTO {
            continue;
        }
        let Some(blob) = layer["digest"].as_str() else { continue };
        let mut file = tempfile::tempfile()?;
        client.blob(&at, blob, &mut file, &Stop::never())?;
        file.rewind()?;
        let mut bytes = Vec::new();
        file.take(STATEMENT_LIMIT).read_to_end(&mut bytes)?;
        let Ok(statement) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(Err(Unattested::StatementNotJson(blob.to_owned())));
        };
        let about =
            statement["subject"].as_array().into_iter().flatten().any(|s| s["digest"]["sha256"] == hex);
        if !about {
            return Ok(Err(Unattested::NotAbout { blob: blob.to_owned(), subject: subject.to_owned() }));
        }
        let kind = statement["predicateType"].as_str().unwrap_or_default().to_owned();
        if layer["annotations"][PREDICATE_TYPE] != kind.as_str() {
            return Ok(Err(Unattested::Mislabelled { blob: blob.to_owned(), kind }));
        }
        types.push(kind);
    }
    if types.is_empty() {
        return Ok(Err(Unattested::NoStatement(digest.to_owned())));
    }
    Ok(Ok(types))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attestation manifest's bytes are pinned by its digest (they must not move with how
    /// manifests are written).
    #[test]
    fn attestation_manifest_bytes_are_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let subject = format!("sha256:{}", "b".repeat(64));
        let statements = [
            Statement { predicate_type: "https://slsa.dev/provenance/v1".into(), bytes: b"{}".to_vec() },
            Statement { predicate_type: SPDX.into(), bytes: b"{\"x\":1}".to_vec() },
        ];
        let (descriptor, _) = attestation_manifest(&layout, &subject, &statements).unwrap();
        assert_eq!(
            descriptor.digest,
            "sha256:9bab4ec61b59fce38acd553f5647c8f8d089671eafdfb84a2a15d6772ac976bd"
        );
    }

    #[test]
    fn an_attestation_manifest_is_laid_out_as_buildkit_does() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let subject = format!("sha256:{}", "a".repeat(64));
        let statement =
            Statement { predicate_type: "https://slsa.dev/provenance/v1".into(), bytes: b"{}".to_vec() };
        let (descriptor, entry) = attestation_manifest(&layout, &subject, &[statement]).unwrap();
        let entry = serde_json::to_value(&entry).unwrap();
        assert_eq!(entry["annotations"][REFERENCE_TYPE], ATTESTATION_MANIFEST);
        assert_eq!(entry["platform"], json!({ "architecture": "unknown", "os": "unknown" }));
        assert_eq!(entry["annotations"][REFERENCE_DIGEST], subject);
        let manifest: Value = serde_json::from_slice(&layout.read(&descriptor.digest).unwrap()).unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], IN_TOTO);
        assert_eq!(manifest["layers"][0]["annotations"][PREDICATE_TYPE], "https://slsa.dev/provenance/v1");
        assert_eq!(layout.read(manifest["layers"][0]["digest"].as_str().unwrap()).unwrap(), b"{}");
    }
}
