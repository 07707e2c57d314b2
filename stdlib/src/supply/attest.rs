//! BuildKit's attestation layout (`exporter/containerimage/attestations`, its
//! `docs/attestations/attestation-storage.md`): per platform manifest, one more manifest in the
//! same index, `platform unknown/unknown`, annotated `vnd.docker.reference.type:
//! attestation-manifest` and `vnd.docker.reference.digest: <the platform manifest>`, whose
//! layers are in-toto statements (`application/vnd.in-toto+json`, each annotated
//! `in-toto.io/predicate-type`). Docker's and Trivy's tools read attestations there.

use hephy_oci::layout::{Descriptor, Layout, LayoutError};
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
) -> Result<(Descriptor, Value), LayoutError> {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for statement in statements {
        let blob = layout.put(IN_TOTO, &statement.bytes)?;
        diff_ids.push(blob.digest.clone());
        let mut layer = blob.json();
        layer["annotations"] = json!({ PREDICATE_TYPE: statement.predicate_type });
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
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.json(),
        "layers": layers,
    });
    let descriptor = layout.put(MANIFEST, &serde_json::to_vec(&manifest).unwrap_or_default())?;
    let mut entry = descriptor.json();
    entry["platform"] = json!({ "architecture": "unknown", "os": "unknown" });
    entry["annotations"] = json!({
        REFERENCE_DIGEST: subject,
        REFERENCE_TYPE: ATTESTATION_MANIFEST,
    });
    Ok((descriptor, entry))
}

/// Whether an index entry is an attestation manifest.
pub(crate) fn is_attestation(entry: &Value) -> bool {
    entry["annotations"][REFERENCE_TYPE] == ATTESTATION_MANIFEST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attestation_manifest_is_laid_out_as_buildkit_does() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let subject = format!("sha256:{}", "a".repeat(64));
        let statement = Statement { predicate_type: "https://slsa.dev/provenance/v1".into(), bytes: b"{}".to_vec() };
        let (descriptor, entry) = attestation_manifest(&layout, &subject, &[statement]).unwrap();
        assert!(is_attestation(&entry));
        assert_eq!(entry["platform"], json!({ "architecture": "unknown", "os": "unknown" }));
        assert_eq!(entry["annotations"][REFERENCE_DIGEST], subject);
        let manifest: Value = serde_json::from_slice(&layout.read(&descriptor.digest).unwrap()).unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], IN_TOTO);
        assert_eq!(manifest["layers"][0]["annotations"][PREDICATE_TYPE], "https://slsa.dev/provenance/v1");
        assert_eq!(layout.read(manifest["layers"][0]["digest"].as_str().unwrap()).unwrap(), b"{}");
    }
}
