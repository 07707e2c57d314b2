//! Image signatures as cosign stores them (sigstore/cosign `specs/SIGNATURE_SPEC.md`, tag-based
//! discovery): for the manifest `sha256:HEX` of a repository, the tag `sha256-HEX.sig` in the
//! same repository holds an OCI image manifest whose layers are simple-signing payloads
//! (`application/vnd.dev.cosign.simplesigning.v1+json`), each with its base64 DER ECDSA
//! signature in the annotation `dev.cosignproject.cosign/signature`. Signing one digest
//! ([`sign`], appending to a signature manifest already there, as cosign does), asking whether a
//! key's signature is there ([`signature_present`]), and verifying an image or an index with
//! its platform manifests ([`verify`]).
//!
//! OCI 1.1 referrers are not written: the distribution registry hephy is tested against (2.8)
//! has no referrers API, and cosign reads the tag by default.

use std::io::{Read, Seek, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hephy_oci::layout::hex;
use hephy_oci::registry::{Client, Reference, RegistryError};
use hephy_os::stop::Stop;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::keys::{PublicKey, SigningKey};

/// The media type of a signature layer: a simple-signing payload.
pub const PAYLOAD_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const PAYLOAD_KIND: &str = "cosign container image signature";

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The largest payload read back: cosign's are a few hundred bytes.
const PAYLOAD_LIMIT: u64 = 1 << 20;

/// Signing or verifying that could not talk to the registry or read what it holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A scratch file for a blob failed.
    #[error("cannot stage a signature blob: {0}")]
    Local(#[from] std::io::Error),
    /// `digest` is not `sha256:` and 64 hex digits.
    #[error("`{0}` is not a sha256 manifest digest")]
    Digest(String),
    /// The manifest at a `.sig` tag (or the image's) is not what cosign writes.
    #[error("`{reference}` is not {wanted}")]
    Unexpected {
        /// `host/repository:tag` or `@digest`.
        reference: String,
        /// What it should have been.
        wanted: &'static str,
    },
}

impl SignError {
    /// The registry error inside, if it is one (for `is_retryable()`).
    pub fn registry(&self) -> Option<&RegistryError> {
        match self {
            SignError::Registry(e) => Some(e),
            _ => None,
        }
    }
}

/// Where a signature was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRef {
    /// `host/repository:sha256-HEX.sig`.
    pub reference: String,
    /// The digest of the signature manifest at that tag.
    pub manifest: String,
    /// Whether a signature was added: `false` when this key's signature of the same payload
    /// was already there.
    pub added: bool,
}

/// The tag cosign stores `digest`'s signatures under: `sha256-HEX.sig`.
pub fn signature_tag(digest: &str) -> Result<String, SignError> {
    let hex =
        digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex.map(|h| format!("sha256-{h}.sig")).ok_or_else(|| SignError::Digest(digest.to_owned()))
}

/// The name cosign writes as `docker-reference`: go-containerregistry's repository name
/// (`index.docker.io` for Docker Hub).
pub fn docker_reference(repository: &Reference) -> String {
    let host = if repository.host == "docker.io" { "index.docker.io" } else { repository.host.as_str() };
    format!("{host}/{}", repository.repository)
}

/// The simple-signing payload cosign signs for `digest` of `repository`, byte for byte as
/// cosign writes it (Go's field order is the alphabetical one `serde_json` keeps).
pub fn payload(repository: &Reference, digest: &str) -> Vec<u8> {
    let value = json!({
        "critical": {
            "identity": {"docker-reference": docker_reference(repository)},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_KIND,
        },
        "optional": null,
    });
    value.to_string().into_bytes()
}

/// The `.sig` reference of `digest` in `repository`'s repository.
fn signature_reference(repository: &Reference, digest: &str) -> Result<Reference, SignError> {
    Ok(Reference {
        host: repository.host.clone(),
        repository: repository.repository.clone(),
        tag: Some(signature_tag(digest)?),
        digest: None,
    })
}

fn shown(reference: &Reference) -> String {
    match (&reference.digest, &reference.tag) {
        (Some(d), _) => format!("{}/{}@{d}", reference.host, reference.repository),
        (None, Some(t)) => format!("{}/{}:{t}", reference.host, reference.repository),
        (None, None) => format!("{}/{}", reference.host, reference.repository),
    }
}

/// The signature manifest at `digest`'s `.sig` tag, if there is one.
/// With its digest.
fn signature_manifest(client: &Client, sig: &Reference) -> Result<Option<(String, Value)>, SignError> {
    if client.resolve(sig)?.is_none() {
        return Ok(None);
    }
    let manifest = client.manifest(sig)?;
    let value: Value = serde_json::from_slice(&manifest.bytes).map_err(|_| SignError::Unexpected {
        reference: shown(sig),
        wanted: "a cosign signature manifest",
    })?;
    if !value.get("layers").is_some_and(Value::is_array) {
        return Err(SignError::Unexpected { reference: shown(sig), wanted: "a cosign signature manifest" });
    }
    Ok(Some((manifest.digest, value)))
}

/// Whether `layer` is `key`'s signature of exactly `payload` (by the payload's digest: no
/// download).
fn layer_signs(layer: &Value, payload: &[u8], public: &PublicKey) -> bool {
    let digest = format!("sha256:{}", hex(&Sha256::digest(payload)));
    layer["mediaType"] == PAYLOAD_TYPE
        && layer["digest"] == digest.as_str()
        && layer["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .and_then(|s| BASE64.decode(s).ok())
            .is_some_and(|signature| public.verifies(payload, &signature))
}

/// Signs manifest `digest` (an image or an index) of `repository` (its host and repository;
/// tag and digest are ignored) with `key`, as `cosign sign --key` does without a transparency
/// log: the payload blob, a config, and the signature manifest at `sha256-HEX.sig`, with the
/// layers already there kept. Nothing is written when this key's signature of the same payload
/// is there already.
pub fn sign(
    client: &Client,
    repository: &Reference,
    digest: &str,
    key: &SigningKey,
) -> Result<SignatureRef, SignError> {
    let sig = signature_reference(repository, digest)?;
    let payload = payload(repository, digest);
    let existing = signature_manifest(client, &sig)?;
    let mut layers: Vec<Value> =
        existing.as_ref().and_then(|(_, m)| m["layers"].as_array().cloned()).unwrap_or_default();
    if let Some((manifest, _)) = existing
        && layers.iter().any(|layer| layer_signs(layer, &payload, &key.public()))
    {
        return Ok(SignatureRef { reference: shown(&sig), manifest, added: false });
    }
    let payload_digest = push_blob(client, &sig, &payload)?;
    layers.push(json!({
        "mediaType": PAYLOAD_TYPE,
        "size": payload.len(),
        "digest": payload_digest,
        "annotations": {SIGNATURE_ANNOTATION: BASE64.encode(key.sign(&payload))},
    }));
    // The config go-containerregistry makes for cosign's image of signature layers: the
    // payloads are uncompressed, so each layer's digest is its diff id.
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let history: Vec<Value> = layers.iter().map(|_| json!({"created": "0001-01-01T00:00:00Z"})).collect();
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": history,
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    })
    .to_string();
    let config_digest = push_blob(client, &sig, config.as_bytes())?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": config.len(), "digest": config_digest},
        "layers": layers,
    })
    .to_string();
    let tag = sig.tag.as_deref().unwrap_or_default();
    let pushed = client.push_manifest(&sig, tag, MANIFEST_TYPE, manifest.as_bytes())?;
    Ok(SignatureRef { reference: shown(&sig), manifest: pushed, added: true })
}

/// Uploads `bytes` as a blob of `reference`'s repository; its digest.
fn push_blob(client: &Client, reference: &Reference, bytes: &[u8]) -> Result<String, SignError> {
    let digest = format!("sha256:{}", hex(&Sha256::digest(bytes)));
    let mut file = tempfile::NamedTempFile::new()?;
    file.write_all(bytes)?;
    file.flush()?;
    client.push_blob(reference, &digest, file.path(), &Stop::never())?;
    Ok(digest)
}

/// Whether `public`'s signature of manifest `digest` (with the payload [`sign`] writes) is at
/// its `.sig` tag in `repository`.
pub fn signature_present(
    client: &Client,
    repository: &Reference,
    digest: &str,
    public: &PublicKey,
) -> Result<bool, SignError> {
    let sig = signature_reference(repository, digest)?;
    let payload = payload(repository, digest);
    Ok(signature_manifest(client, &sig)?.is_some_and(|(_, m)| {
        m["layers"].as_array().is_some_and(|l| l.iter().any(|l| layer_signs(l, &payload, public)))
    }))
}

/// What verifying one manifest found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// This many signatures verify with the key and name this digest.
    Verified(usize),
    /// No `.sig` tag for the digest.
    Unsigned,
    /// A `.sig` tag, but no signature in it verifies: why each failed.
    Invalid(Vec<String>),
}

/// One manifest verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Its digest.
    pub digest: String,
    /// `os/arch[/variant]` for an index's platform manifest; `None` for the image named.
    pub platform: Option<String>,
    /// What was found.
    pub finding: Finding,
}

/// An image verified: the manifest named, and for an index each platform manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// `host/repository@digest`.
    pub image: String,
    /// Whether the manifest named is an index (its platform manifests follow it).
    pub index: bool,
    /// Each manifest, the named one first.
    pub checked: Vec<Checked>,
}

impl Verification {
    /// Whether every manifest has a signature that verifies.
    pub fn ok(&self) -> bool {
        self.checked.iter().all(|c| matches!(c.finding, Finding::Verified(_)))
    }
}

/// Verifies `image` (by tag or digest) with `public` as `cosign verify --key` does without a
/// transparency log: some signature at the digest's `.sig` tag must verify over its payload,
/// and the payload must name the digest (and be a cosign signature). For an index, each
/// platform manifest too (BuildKit's attestation manifests, `unknown/unknown`, are not signed
/// one by one: the index's signature covers them).
pub fn verify(client: &Client, image: &Reference, public: &PublicKey) -> Result<Verification, SignError> {
    let manifest = client.manifest(image)?;
    let repository = Reference { tag: None, digest: Some(manifest.digest.clone()), ..image.clone() };
    let mut checked = vec![Checked {
        digest: manifest.digest.clone(),
        platform: None,
        finding: check(client, &repository, public)?,
    }];
    let value: Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|_| SignError::Unexpected { reference: shown(&repository), wanted: "an image manifest" })?;
    for entry in value["manifests"].as_array().into_iter().flatten() {
        let platform = &entry["platform"];
        let (os, arch) =
            (platform["os"].as_str().unwrap_or(""), platform["architecture"].as_str().unwrap_or(""));
        let attestation = entry["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
            || (os == "unknown" && arch == "unknown");
        let Some(digest) = entry["digest"].as_str() else { continue };
        if attestation {
            continue;
        }
        let mut name = format!("{os}/{arch}");
        if let Some(variant) = platform["variant"].as_str() {
            name = format!("{name}/{variant}");
        }
        let finding = if signature_tag(digest).is_ok() {
            let child = Reference { digest: Some(digest.to_owned()), ..repository.clone() };
            check(client, &child, public)?
        } else {
            Finding::Invalid(vec!["the index names it by a digest that is not sha256".to_owned()])
        };
        checked.push(Checked { digest: clip(digest), platform: Some(clip(&name)), finding });
    }
    let index = value.get("manifests").is_some_and(Value::is_array);
    Ok(Verification { image: shown(&repository), index, checked })
}

/// Verifies the signatures of `image`'s digest.
fn check(client: &Client, image: &Reference, public: &PublicKey) -> Result<Finding, SignError> {
    let digest = image.digest.clone().unwrap_or_default();
    let sig = signature_reference(image, &digest)?;
    let Some((_, manifest)) = signature_manifest(client, &sig)? else { return Ok(Finding::Unsigned) };
    let mut verified = 0;
    let mut problems = Vec::new();
    for (n, layer) in manifest["layers"].as_array().into_iter().flatten().enumerate() {
        match check_layer(client, &sig, layer, &digest, public) {
            Ok(()) => verified += 1,
            Err(problem) => problems.push(format!("signature {}: {problem}", n + 1)),
        }
    }
    if verified > 0 {
        Ok(Finding::Verified(verified))
    } else {
        if problems.is_empty() {
            problems.push("the signature manifest holds no signature".to_owned());
        }
        Ok(Finding::Invalid(problems))
    }
}

/// Why one signature layer does not count.
#[derive(Debug, thiserror::Error)]
enum LayerProblem {
    #[error("a layer of another media type ({0})")]
    MediaType(String),
    #[error("no `{SIGNATURE_ANNOTATION}` annotation")]
    NoAnnotation,
    #[error("the signature is not base64")]
    NotBase64,
    #[error("a layer without a digest")]
    NoDigest,
    #[error("the payload is larger than 1 MiB")]
    TooLarge,
    #[error("cannot read the payload: {0}")]
    Unreadable(SignError),
    #[error("the signature does not verify with this key")]
    DoesNotVerify,
    #[error("the payload is not JSON")]
    NotJson,
    #[error("the payload is not a cosign container image signature")]
    NotCosign,
    #[error("the payload signs another image ({0})")]
    AnotherImage(String),
    #[error("the payload names no image digest")]
    NoImage,
}

/// One signature layer checked: its payload read back, the signature over it, the digest it
/// names.
fn check_layer(
    client: &Client,
    sig: &Reference,
    layer: &Value,
    digest: &str,
    public: &PublicKey,
) -> Result<(), LayerProblem> {
    if layer["mediaType"] != PAYLOAD_TYPE {
        return Err(LayerProblem::MediaType(clip(&layer["mediaType"].to_string())));
    }
    let signature = layer["annotations"][SIGNATURE_ANNOTATION].as_str().ok_or(LayerProblem::NoAnnotation)?;
    let signature = BASE64.decode(signature).map_err(|_| LayerProblem::NotBase64)?;
    let blob = layer["digest"].as_str().ok_or(LayerProblem::NoDigest)?;
    if layer["size"].as_u64().is_none_or(|s| s > PAYLOAD_LIMIT) {
        return Err(LayerProblem::TooLarge);
    }
    let payload = read_blob(client, sig, blob).map_err(LayerProblem::Unreadable)?;
    if !public.verifies(&payload, &signature) {
        return Err(LayerProblem::DoesNotVerify);
    }
    let value: Value = serde_json::from_slice(&payload).map_err(|_| LayerProblem::NotJson)?;
    if value["critical"]["type"] != PAYLOAD_KIND {
        return Err(LayerProblem::NotCosign);
    }
    match value["critical"]["image"]["docker-manifest-digest"].as_str() {
        Some(named) if named == digest => Ok(()),
        Some(named) => Err(LayerProblem::AnotherImage(clip(named))),
        None => Err(LayerProblem::NoImage),
    }
}

/// At most 80 characters of a value read from a registry, without control characters.
fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(80).collect()
}

/// Blob `digest` of `reference`'s repository, checked against its digest, at most
/// [`PAYLOAD_LIMIT`] bytes.
fn read_blob(client: &Client, reference: &Reference, digest: &str) -> Result<Vec<u8>, SignError> {
    let mut file = tempfile::tempfile()?;
    client.blob(reference, digest, &mut file, &Stop::never())?;
    file.rewind()?;
    let mut bytes = Vec::new();
    file.take(PAYLOAD_LIMIT + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository() -> Reference {
        Reference::parse("127.0.0.1:5000/team/app").expect("reference")
    }

    #[test]
    fn the_payload_is_cosigns_byte_for_byte() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            String::from_utf8(payload(&repository(), &digest)).expect("utf-8"),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/team/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        let hub = Reference::parse("alpine").expect("reference");
        assert!(
            String::from_utf8(payload(&hub, &digest))
                .expect("utf-8")
                .contains("index.docker.io/library/alpine")
        );
        // A Docker Hub name with its own namespace: the registry is written `index.docker.io`,
        // and the payload is the spec's fields in the spec's order (SIGNATURE_SPEC: `critical`
        // with `identity`, `image`, `type`; then `optional`, null when there is none), compact
        // JSON as cosign's Go structs marshal it.
        let hub = Reference::parse("docker.io/tools/builder").expect("reference");
        let digest = format!("sha256:{}", hex(&Sha256::digest(b"an image manifest")));
        assert_eq!(
            String::from_utf8(payload(&hub, &digest)).expect("utf-8"),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"index.docker.io/tools/builder"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
    }

    #[test]
    fn the_tag_is_the_digest_with_a_dash() {
        let digest = format!("sha256:{}", "0f".repeat(32));
        assert_eq!(signature_tag(&digest).expect("tag"), format!("sha256-{}.sig", "0f".repeat(32)));
        assert!(signature_tag("sha256:xyz").is_err());
        assert!(signature_tag("sha512:00").is_err());
    }

    #[test]
    fn a_layer_signs_only_its_own_payload_with_its_own_key() {
        let key = SigningKey::generate().expect("key");
        let other = SigningKey::generate().expect("key");
        let digest = format!("sha256:{}", "ab".repeat(32));
        let payload = payload(&repository(), &digest);
        let layer = json!({
            "mediaType": PAYLOAD_TYPE,
            "digest": format!("sha256:{}", hex(&Sha256::digest(&payload))),
            "annotations": {SIGNATURE_ANNOTATION: BASE64.encode(key.sign(&payload))},
        });
        assert!(layer_signs(&layer, &payload, &key.public()));
        assert!(!layer_signs(&layer, &payload, &other.public()));
        let elsewhere = super::payload(&repository(), &format!("sha256:{}", "cd".repeat(32)));
        assert!(!layer_signs(&layer, &elsewhere, &key.public()));
    }
}
