//! OCI documents (image manifests, indexes, descriptors) as `oci-spec` types, and the bytes
//! hephy writes for them.
//!
//! Reading: a manifest or an index is parsed into [`spec::ImageManifest`] /
//! [`spec::ImageIndex`]; media types hephy does not know (Docker v2 schema 2, attestation
//! types) are kept as `MediaType::Other`, fields the types do not have are ignored. [`Children`]
//! is the one-pass view checks of whole images read: the config and layers of a manifest, or
//! the manifests of an index, whichever the document has (the layout's walk for `gc` reads
//! each descriptor on its own instead, so one bad descriptor hides no other).
//!
//! Writing: [`to_bytes`] and [`to_bytes_pretty`] write a typed value as hephy always wrote its
//! documents — every object's keys in byte order, nothing added (an absent optional field stays
//! absent). A digest hephy pinned therefore does not change with the types: `oci-spec`'s own
//! `Serialize` writes fields in declaration order and annotations in a `HashMap`'s order (which
//! changes from run to run), so its bytes are never hashed directly.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The `oci-spec` image types, as this crate uses them (one version for every caller).
pub use oci_spec::image as spec;

use spec::{Descriptor, Digest, MediaType, Platform};

/// A document that could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DocumentError {
    /// The bytes are not the JSON of the document wanted.
    #[error("not {wanted}: {source}")]
    Parse {
        /// What was wanted ("an OCI image manifest", …).
        wanted: &'static str,
        /// Why.
        source: Arc<serde_json::Error>,
    },
    /// A value could not be encoded (a map with keys that are not strings).
    #[error("cannot encode an OCI document: {0}")]
    Encode(Arc<serde_json::Error>),
    /// A document could not be put together.
    #[error("cannot make an OCI document: {0}")]
    Build(Arc<oci_spec::OciSpecError>),
    /// A digest that is not `algorithm:hex` of the right length.
    #[error("`{digest}` is not a well-formed digest: {reason}")]
    Digest {
        /// The text.
        digest: String,
        /// Why.
        reason: String,
    },
}

impl From<serde_json::Error> for DocumentError {
    fn from(e: serde_json::Error) -> DocumentError {
        DocumentError::Encode(Arc::new(e))
    }
}

/// The descriptors a manifest or an index names, read in one pass whatever the document is: an
/// image manifest's `config` and `layers`, an index's `manifests` (absent ones are empty). Other
/// fields are ignored.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Children {
    /// An image manifest's config.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// An image manifest's layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// An index's manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl Children {
    /// The descriptors `bytes` (a manifest or an index) names.
    pub fn of(bytes: &[u8]) -> Result<Children, DocumentError> {
        serde_json::from_slice(bytes)
            .map_err(|e| DocumentError::Parse { wanted: "an OCI manifest or index", source: Arc::new(e) })
    }
}

/// An image manifest from its bytes.
pub fn manifest(bytes: &[u8]) -> Result<spec::ImageManifest, DocumentError> {
    serde_json::from_slice(bytes)
        .map_err(|e| DocumentError::Parse { wanted: "an OCI image manifest", source: Arc::new(e) })
}

/// An index from its bytes.
pub fn index(bytes: &[u8]) -> Result<spec::ImageIndex, DocumentError> {
    serde_json::from_slice(bytes)
        .map_err(|e| DocumentError::Parse { wanted: "an OCI index", source: Arc::new(e) })
}

/// The `mediaType` a manifest or an index names itself with, if it does (OCI lets it be left
/// out); `None` also when `bytes` are not a JSON object.
pub fn media_type(bytes: &[u8]) -> Option<MediaType> {
    #[derive(Deserialize)]
    struct Named {
        #[serde(rename = "mediaType")]
        media_type: Option<MediaType>,
    }
    serde_json::from_slice::<Named>(bytes).ok()?.media_type
}

/// The bytes hephy writes for `document`: compact JSON, keys in byte order, nothing added.
pub fn to_bytes<T: Serialize>(document: &T) -> Result<Vec<u8>, DocumentError> {
    Ok(serde_json::to_vec(&serde_json::to_value(document)?)?)
}

/// As [`to_bytes`], indented (as `index.json` is written).
pub fn to_bytes_pretty<T: Serialize>(document: &T) -> Result<Vec<u8>, DocumentError> {
    Ok(serde_json::to_vec_pretty(&serde_json::to_value(document)?)?)
}

/// `digest` as a typed digest.
pub fn digest(digest: &str) -> Result<Digest, DocumentError> {
    Digest::try_from(digest)
        .map_err(|e| DocumentError::Digest { digest: digest.to_owned(), reason: e.to_string() })
}

/// A descriptor of `media_type`, `digest` and `size`.
pub fn descriptor(media_type: &str, digest_text: &str, size: u64) -> Result<Descriptor, DocumentError> {
    Ok(Descriptor::new(MediaType::from(media_type), size, digest(digest_text)?))
}

/// An image manifest (of `media_type`, schema version 2) of `config` and `layers`.
pub fn image_manifest(
    media_type: MediaType,
    config: Descriptor,
    layers: Vec<Descriptor>,
) -> Result<spec::ImageManifest, DocumentError> {
    spec::ImageManifestBuilder::default()
        .schema_version(spec::SCHEMA_VERSION)
        .media_type(media_type)
        .config(config)
        .layers(layers)
        .build()
        .map_err(|e| DocumentError::Build(Arc::new(e)))
}

/// The platform `os`/`architecture`[/`variant`].
pub fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
    let mut platform = Platform::default();
    platform.set_os(spec::Os::from(os));
    platform.set_architecture(spec::Arch::from(architecture));
    platform.set_variant(variant.map(str::to_owned));
    platform
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    /// The bytes of a typed index are those of the JSON hephy wrote by hand before the types:
    /// keys in byte order, no field added, annotations sorted.
    #[test]
    fn typed_documents_write_the_bytes_hephy_always_wrote() {
        let mut entry = descriptor("application/vnd.oci.image.manifest.v1+json", DIGEST, 5).unwrap();
        entry.set_platform(Some(platform("linux", "arm", Some("v7"))));
        entry.set_annotations(Some(
            [("z.last", "2"), ("a.first", "1"), ("m.middle", "3")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ));
        let mut index = spec::ImageIndex::default();
        index.set_media_type(Some(MediaType::ImageIndex));
        index.set_manifests(vec![entry]);
        let by_hand = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": DIGEST,
                "size": 5,
                "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
                "annotations": {"z.last": "2", "a.first": "1", "m.middle": "3"},
            }],
        });
        let expected = format!(
            "{{\"manifests\":[{{\"annotations\":{{\"a.first\":\"1\",\"m.middle\":\"3\",\"z.last\":\"2\"}},\
             \"digest\":\"{DIGEST}\",\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\
             \"platform\":{{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}},\"size\":5}}],\
             \"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"schemaVersion\":2}}"
        );
        assert_eq!(String::from_utf8(to_bytes(&index).unwrap()).unwrap(), expected);
        assert_eq!(to_bytes(&index).unwrap(), serde_json::to_vec(&by_hand).unwrap());
        assert_eq!(to_bytes_pretty(&index).unwrap(), serde_json::to_vec_pretty(&by_hand).unwrap());
    }

    /// Foreign documents read: Docker's media types, unknown fields, `artifactType`, `subject`.
    #[test]
    fn foreign_documents_are_read() {
        let docker = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": DIGEST, "size": 1},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": DIGEST, "size": 2}],
            "somethingNew": {"x": 1},
        });
        let bytes = serde_json::to_vec(&docker).unwrap();
        let parsed = manifest(&bytes).unwrap();
        assert_eq!(
            parsed.media_type().as_ref().map(ToString::to_string).as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
        assert_eq!(parsed.layers()[0].size(), 2);
        assert_eq!(Children::of(&bytes).unwrap().layers.len(), 1);
        let referrer = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": DIGEST, "size": 2},
            "layers": [],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 3},
        });
        let parsed = manifest(&serde_json::to_vec(&referrer).unwrap()).unwrap();
        assert_eq!(parsed.subject().as_ref().map(Descriptor::size), Some(3));
        let list =
            json!({"schemaVersion": 2, "manifests": [{"mediaType": "x/y", "digest": DIGEST, "size": 4}]});
        let bytes = serde_json::to_vec(&list).unwrap();
        assert_eq!(index(&bytes).unwrap().manifests().len(), 1);
        assert_eq!(media_type(&bytes), None);
        assert!(matches!(manifest(b"[]"), Err(DocumentError::Parse { .. })));
        assert!(matches!(descriptor("x/y", "sha256:abc", 1), Err(DocumentError::Digest { .. })));
    }
}
