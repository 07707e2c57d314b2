//! Keys: the blake3 digest of everything a node's result depends on.
//!
//! Owns [`InputManifest`] (every input by name: settings, files, dependency outputs — kept so
//! that changes can be named) and its canonical, versioned encoding into a [`Key`]. The encoding
//! is pinned by golden tests: changing a golden digest is a deliberate, versioned decision
//! (bump [`KEY_VERSION`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrayvec::ArrayString;

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
///
/// Held inline (no allocation): planning makes one per node. A stored key longer than 64
/// characters (damaged: hephy makes none) reads as the empty key; like any stored key hephy did
/// not make, it equals no key hephy computes, so its node simply rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(ArrayString<64>);

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
    pub fn from_hex(hex: &str) -> Key {
        Key(ArrayString::from(hex).unwrap_or_default())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        let hex = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Key::from_hex(&hex))
    }
}

/// What a dependency contributes to its dependent's key, without making it a string (a
/// setting's or a file's value is written as an `Output`: the same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepValue<'a> {
    /// Its output digest (or nothing yet: empty).
    Output(&'a str),
    /// `pending:<key>`: it has yet to be rebuilt, with this key.
    Pending(&'a Key),
}

impl DepValue<'_> {
    const PENDING: &'static str = "pending:";

    fn len(&self) -> usize {
        match self {
            DepValue::Output(output) => output.len(),
            DepValue::Pending(key) => Self::PENDING.len() + key.as_str().len(),
        }
    }

    /// Length-prefixed, as [`put`] writes a string: the same bytes as `put(self.to_string())`.
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        match self {
            DepValue::Output(output) => out.extend_from_slice(output.as_bytes()),
            DepValue::Pending(key) => {
                out.extend_from_slice(Self::PENDING.as_bytes());
                out.extend_from_slice(key.as_str().as_bytes());
            }
        }
    }
}

impl fmt::Display for DepValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepValue::Output(output) => f.write_str(output),
            DepValue::Pending(key) => write!(f, "{}{key}", Self::PENDING),
        }
    }
}

// The encoding is written into one buffer and hashed at once: blake3 is the same either way,
// and one call is several times faster than a call per length prefix.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn section(out: &mut Vec<u8>, tag: u8, map: &SortedMap) {
    entries(out, tag, map.iter().map(|(k, v)| (k, DepValue::Output(v))));
}

/// A section: its tag, its entry count, then each entry's name and value, names in order.
fn entries<'a>(out: &mut Vec<u8>, tag: u8, entries: impl ExactSizeIterator<Item = (&'a str, DepValue<'a>)>) {
    out.push(tag);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    let mut last: Option<&str> = None;
    for (name, value) in entries {
        debug_assert!(last.is_none_or(|l| l < name), "entries out of order");
        last = Some(name);
        put(out, name.as_bytes());
        value.put(out);
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
        key_of(&self.settings, &self.files, self.deps.iter().map(|(id, value)| (id, DepValue::Output(value))))
    }
}

/// The key of a manifest with these settings, files and dependencies, the dependencies given in
/// id order (as [`crate::Graph::deps`] lists them) instead of as a map: planning computes a key
/// per node without building its map of dependencies. The same inputs give the same key as
/// [`InputManifest::key`].
pub(crate) fn key_of<'a>(
    settings: &SortedMap,
    files: &SortedMap,
    deps: impl ExactSizeIterator<Item = (&'a str, DepValue<'a>)>,
) -> Key {
    ENCODED.with(|out| {
        let mut out = out.borrow_mut();
        out.clear();
        put(&mut out, KEY_VERSION.as_bytes());
        section(&mut out, b's', settings);
        section(&mut out, b'f', files);
        entries(&mut out, b'd', deps);
        Key(blake3::hash(&out).to_hex())
    })
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
        Arc::make_mut(&mut m.settings).insert("kind", "image");
        Arc::make_mut(&mut m.settings).insert("platform", "linux/arm64");
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abc");
        m.deps.insert("base@linux/arm64", "sha256:0123");
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
        m.deps.insert("base@linux/arm64", "sha256:0123");
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abc");
        Arc::make_mut(&mut m.settings).insert("platform", "linux/arm64");
        Arc::make_mut(&mut m.settings).insert("kind", "image");
        assert_eq!(m.key(), sample().key());
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = sample().key();
        let mut m = sample();
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abd");
        assert_ne!(m.key(), base);
        let mut m = sample();
        Arc::make_mut(&mut m.settings).insert("args.X", String::new());
        assert_ne!(m.key(), base);
        let mut m = sample();
        m.deps.insert("base@linux/arm64", "sha256:0124");
        assert_ne!(m.key(), base);
        // Moving a value between sections is a different input, not a collision.
        let mut a = InputManifest::default();
        Arc::make_mut(&mut a.settings).insert("x", "y");
        let mut b = InputManifest::default();
        Arc::make_mut(&mut b.files).insert("x", "y");
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn stored_keys_read_back() {
        let key = sample().key();
        assert_eq!(Key::from_hex(key.as_str()), key);
        let json = serde_json::to_string(&key).expect("encodes");
        assert_eq!(serde_json::from_str::<Key>(&json).expect("decodes"), key);
        // Too long to be a key: it reads as the empty key, which no computed key equals.
        let damaged = Key::from_hex(&format!("{}0", key.as_str()));
        assert_eq!(damaged.as_str(), "");
        assert_ne!(damaged, key);
    }

    #[test]
    fn golden_outputs_digest() {
        assert_eq!(
            files_digest(&SortedMap::new()),
            "blake3:a9656c5478bc135e0bb794b5b8b2b2908f852cb5f75ca2bcb894c3abbcca263d"
        );
    }
}
