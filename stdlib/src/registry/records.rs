//! Cache records: what hephy writes to a registry besides the user's images and tags.
//!
//! A build or index pushed to a repository goes there by digest only: the repository's tag list
//! holds the graph's tags and nothing else. What makes the registry a shared cache is one small
//! record per built key in one hephy-owned repository per registry, `{registry}/hephy-cache`:
//! an OCI artifact manifest tagged `hephy-<key>` whose annotations name the node, the
//! repository and the digest it built (and when). A lookup reads the record, then asks the
//! repository for the digest; `hephy gc --registry` deletes the records no state needs.
//!
//! Why a repository and not OCI referrers: a record points at a key, not at an image (no
//! `subject` to refer to: the key exists before the image does, and it is what is looked up),
//! and Debian's registry (distribution 2.8) has no referrers API anyway.

use std::collections::{BTreeMap, HashMap, HashSet};

use hephy_engine::{Key, Node};
use hephy_oci::document::{self, spec};

use crate::registry::reference;
use crate::registry::{Client, Reference, RegistryError};

/// The repository, under each registry, that holds hephy's cache records.
pub(crate) const REPOSITORY: &str = "hephy-cache";
/// The artifact type of a record.
pub(crate) const ARTIFACT: &str = "application/vnd.hephy.cache.record.v1";
/// The OCI empty descriptor's media type, and its one blob (`{}`).
pub(crate) const EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The OCI image manifest media type (records are image manifests with an artifact type).
pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

const KEY: &str = "dev.hephy.cache.key";
const NODE: &str = "dev.hephy.cache.node";
const TARGET: &str = "dev.hephy.cache.repository";
const DIGEST: &str = "dev.hephy.cache.digest";
const CREATED: &str = "dev.hephy.cache.created";

/// The cache repository of `registry`.
pub fn repository(registry: &str) -> String {
    format!("{registry}/{REPOSITORY}")
}

/// A record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its tag in the cache repository (`hephy-<key>`).
    pub tag: String,
    /// The manifest digest of the record itself (what a delete names).
    pub record: String,
    /// The full key, as hex.
    pub key: String,
    /// The node it was built for.
    pub node: String,
    /// The repository the build or index was pushed to.
    pub repository: String,
    /// Its digest there.
    pub digest: String,
    /// When it was written (seconds since the epoch).
    pub created: u64,
}

/// The bytes of the record of `node` built with `key` into `repository` as `digest`; `empty`
/// is the digest of the `{}` blob.
pub(crate) fn bytes(node: &Node, key: &Key, repository: &str, digest: &str, empty: &str) -> Vec<u8> {
    let created =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let annotations: HashMap<String, String> = [
        (KEY, key.hex().to_string()),
        (NODE, node.id.to_string()),
        (TARGET, repository.to_owned()),
        (DIGEST, digest.to_owned()),
        (CREATED, created.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // `empty` is the digest of bytes just hashed: it is well formed.
    let Ok(config) = document::descriptor(EMPTY, empty, 2) else { return Vec::new() };
    let Ok(mut manifest) = document::image_manifest(spec::MediaType::from(MANIFEST), config, Vec::new())
    else {
        return Vec::new();
    };
    manifest.set_artifact_type(Some(spec::MediaType::from(ARTIFACT)));
    manifest.set_annotations(Some(annotations));
    document::to_bytes(&manifest).unwrap_or_default()
}

/// Reads the record tagged `tag` in `registry`'s cache repository; `None` when there is none
/// (or it is not one of hephy's).
pub(crate) fn read(client: &Client, registry: &str, tag: &str) -> Result<Option<Record>, RegistryError> {
    let Ok(reference) = Reference::parse(&format!("{}:{tag}", repository(registry))) else {
        return Ok(None);
    };
    if client.resolve(&reference)?.is_none() {
        return Ok(None);
    }
    let manifest = client.manifest(&reference)?;
    let Ok(parsed) = document::manifest(&manifest.bytes) else { return Ok(None) };
    if parsed.artifact_type().as_ref().map(AsRef::as_ref) != Some(ARTIFACT) {
        return Ok(None);
    }
    let annotations = parsed.annotations().clone().unwrap_or_default();
    let text = |k: &str| annotations.get(k).cloned().unwrap_or_default();
    Ok(Some(Record {
        tag: tag.to_owned(),
        record: manifest.digest,
        key: text(KEY),
        node: text(NODE),
        repository: text(TARGET),
        digest: text(DIGEST),
        created: text(CREATED).parse().unwrap_or(0),
    }))
}

/// The digest the record of `key` names, when the record's repository still holds it.
pub(crate) fn lookup(
    client: &Client,
    registry: &str,
    key: &Key,
    repository: &str,
) -> Result<Option<String>, RegistryError> {
    let Some(record) = read(client, registry, &reference::key_tag(key))? else { return Ok(None) };
    if record.key != key.hex().as_str() || record.digest.is_empty() {
        return Ok(None);
    }
    let Ok(there) = Reference::parse(&format!("{repository}@{}", record.digest)) else { return Ok(None) };
    Ok(client.resolve(&there)?.filter(|d| *d == record.digest))
}

/// What pruning did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The records deleted (their nodes and keys, short).
    pub removed: Vec<Record>,
    /// How many were kept.
    pub kept: usize,
}

/// Deletes from `registry`'s cache repository every record of a node in `ours` (this graph's
/// node ids) whose key is not in `live`, but the `keep` newest stale records of each node.
/// Records of nodes this graph does not have (another graph, or another version of this one,
/// sharing the registry) are never touched.
pub fn prune(
    registry: &str,
    live: &HashSet<String>,
    ours: &HashSet<String>,
    keep: usize,
) -> Result<Pruned, RegistryError> {
    let client = Client::new();
    let Ok(cache) = Reference::parse(&repository(registry)) else { return Ok(Pruned::default()) };
    let mut stale: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut pruned = Pruned::default();
    // buildah's layer cache shares the repository; its tags (64 hex digits) are not records.
    for tag in client.tags(&cache)?.into_iter().filter(|t| t.starts_with("hephy-")) {
        let Some(record) = read(&client, registry, &tag)? else { continue };
        if live.contains(&record.key) || !ours.contains(&record.node) {
            pruned.kept += 1;
        } else {
            stale.entry(record.node.clone()).or_default().push(record);
        }
    }
    for (_, mut records) in stale {
        records.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.tag.cmp(&a.tag)));
        pruned.kept += records.len().min(keep);
        for record in records.into_iter().skip(keep) {
            client.delete_manifest(&cache, &record.record)?;
            pruned.removed.push(record);
        }
    }
    Ok(pruned)
}
