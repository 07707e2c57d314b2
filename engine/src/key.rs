//! Keys: the blake3 digest of everything a node's result depends on.
//!
//! Owns [`InputManifest`] (every input by name: settings, files, dependency outputs — kept so
//! that changes can be named) and its canonical, versioned encoding into a [`Key`]. The encoding
//! is pinned by golden tests: changing a golden digest is a deliberate, versioned decision
//! (bump [`KEY_VERSION`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::sorted::SortedMap;

/// Bumped whenever the encoding or the meaning of an input changes; every key changes with it.
pub const KEY_VERSION: &str = "hephy-key-v1";

/// The inputs of one node, by name, as recorded with each successful build.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputManifest {
    /// Normalized settings: `kind`, `builder`, `platform`, `args.NAME`, `run`, … → value.
    /// Shared (`Arc`): a plan copies each node's own inputs into its step without copying them.
    pub settings: Arc<SortedMap>,
    /// Input files (relative to the graph's folder) → digest (`f:`/`x:` + blake3, `l:` + target).
    pub files: Arc<SortedMap>,
    /// Dependency node id → its output digest (or `pending:<key>` while it has yet to be rebuilt).
    pub deps: SortedMap,
    /// Facts kept to explain changes but not part of the key (`git.ref`: the key holds the
    /// commit it resolved to, not the ref).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A node's key: hex blake3 of its canonical input encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Key(String);

impl Key {
    /// The key as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }

    /// Wraps a stored key.
    pub fn from_hex(hex: String) -> Key {
        Key(hex)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// The encoding is written into one buffer and hashed at once: blake3 is the same either way,
// and one call is several times faster than a call per length prefix.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn section(out: &mut Vec<u8>, tag: u8, map: &SortedMap) {
    out.push(tag);
    out.extend_from_slice(&(map.len() as u64).to_le_bytes());
    for (k, v) in map {
        put(out, k.as_bytes());
        put(out, v.as_bytes());
    }
}

thread_local! {
    /// The encoding's buffer, reused: planning computes a key per node on every thread.
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn encoded_len(map: &SortedMap) -> usize {
    9 + map.iter().map(|(k, v)| 16 + k.len() + v.len()).sum::<usize>()
}

impl InputManifest {
    /// The key: length-prefixed sections in a fixed order, maps in key order (so insertion order
    /// never matters), behind the version string.
    pub fn key(&self) -> Key {
        ENCODED.with(|out| {
            let mut out = out.borrow_mut();
            out.clear();
            put(&mut out, KEY_VERSION.as_bytes());
            section(&mut out, b's', &self.settings);
            section(&mut out, b'f', &self.files);
            section(&mut out, b'd', &self.deps);
            Key(blake3::hash(&out).to_hex().to_string())
        })
    }
}

/// The output digest of a set of files (a task's declared outputs): blake3 over path and digest
/// of each, in path order. No files gives a fixed digest.
pub fn files_digest(files: &SortedMap) -> String {
    let mut out = Vec::with_capacity(24 + encoded_len(files));
    put(&mut out, b"hephy-outputs-v1");
    section(&mut out, b'o', files);
    format!("blake3:{}", blake3::hash(&out).to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InputManifest {
        let mut m = InputManifest::default();
        Arc::make_mut(&mut m.settings).insert("kind", "image".into());
        Arc::make_mut(&mut m.settings).insert("platform", "linux/arm64".into());
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abc".into());
        m.deps.insert("base@linux/arm64", "sha256:0123".into());
        m
    }

    #[test]
    fn golden_key() {
        // Changing this digest changes every key users have: bump KEY_VERSION deliberately.
        assert_eq!(
            sample().key().as_str(),
            "de939b8e898781ebe679a53d15007f306602c2da45cbb3be0da095d07715731d"
        );
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let mut m = InputManifest::default();
        m.deps.insert("base@linux/arm64", "sha256:0123".into());
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abc".into());
        Arc::make_mut(&mut m.settings).insert("platform", "linux/arm64".into());
        Arc::make_mut(&mut m.settings).insert("kind", "image".into());
        assert_eq!(m.key(), sample().key());
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = sample().key();
        let mut m = sample();
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abd".into());
        assert_ne!(m.key(), base);
        let mut m = sample();
        Arc::make_mut(&mut m.settings).insert("args.X", String::new());
        assert_ne!(m.key(), base);
        let mut m = sample();
        m.deps.insert("base@linux/arm64", "sha256:0124".into());
        assert_ne!(m.key(), base);
        // Moving a value between sections is a different input, not a collision.
        let mut a = InputManifest::default();
        Arc::make_mut(&mut a.settings).insert("x", "y".into());
        let mut b = InputManifest::default();
        Arc::make_mut(&mut b.files).insert("x", "y".into());
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn golden_outputs_digest() {
        assert_eq!(
            files_digest(&SortedMap::new()),
            "blake3:a9656c5478bc135e0bb794b5b8b2b2908f852cb5f75ca2bcb894c3abbcca263d"
        );
    }
}
