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
///
/// v2 (v1 wrote every length as eight bytes and a pending dependency as `pending:<hex key>`):
/// lengths and counts are LEB128 varints and a dependency's value is tagged, `o` + its output
/// or `p` + the 32 bytes of its key. The same inputs, in half the bytes: a typical key is two
/// blake3 blocks instead of five, and planning computes one per node.
pub const KEY_VERSION: &str = "hephy-key-v2";

/// The inputs of one node, by name, as recorded with each successful build.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputManifest {
    /// Normalized settings: `kind`, `builder`, `platform`, `args.NAME`, `run`, … → value.
    pub settings: SortedMap,
    /// Input files (relative to the graph's folder) → digest (`f:`/`x:` + blake3, `l:` + target).
    /// Shared (`Arc`): every platform of an image has the same context.
    pub files: Arc<SortedMap>,
    /// Dependency node id → its output digest (or `pending:<key>` while it has yet to be rebuilt).
    pub deps: SortedMap,
    /// Facts kept to explain changes but not part of the key (`git.ref`: the key holds the
    /// commit it resolved to, not the ref).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A node's key: the blake3 digest of its canonical input encoding, shown as hex.
///
/// Held as its 32 bytes (no allocation, no hex until shown): planning makes one per node. A
/// stored key that is not 64 hex digits (damaged: hephy writes none) reads as the zero key,
/// which equals no key hephy computes, so its node simply rebuilds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key([u8; 32]);

impl Key {
    /// The zero key: what a damaged stored key reads as, and a placeholder. No computed key
    /// equals it.
    pub(crate) const ZERO: Key = Key([0; 32]);

    /// The key as hex.
    pub fn hex(&self) -> ArrayString<64> {
        blake3::Hash::from_bytes(self.0).to_hex()
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> ArrayString<12> {
        let mut short = ArrayString::new();
        short.push_str(&self.hex()[..12]);
        short
    }

    /// Reads a stored key.
    pub fn from_hex(hex: &str) -> Key {
        blake3::Hash::from_hex(hex).map_or(Key::ZERO, |hash| Key(*hash.as_bytes()))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.hex())
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hex())
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        let hex = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Key::from_hex(&hex))
    }
}

/// What a dependency contributes to its dependent's key, without making it a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepValue<'a> {
    /// Its output digest (or nothing yet: empty).
    Output(&'a str),
    /// `pending:<key>`: it has yet to be rebuilt, with this key.
    Pending(Key),
}

impl<'a> DepValue<'a> {
    const PENDING: &'static str = "pending:";

    /// The value a manifest's `deps` map holds, read back (the inverse of `Display`).
    fn parse(value: &'a str) -> DepValue<'a> {
        match value.strip_prefix(Self::PENDING).and_then(|hex| blake3::Hash::from_hex(hex).ok()) {
            Some(hash) => DepValue::Pending(Key(*hash.as_bytes())),
            None => DepValue::Output(value),
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

/// A value as the encoding writes it.
trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

impl Encode for &str {
    fn encode(&self, out: &mut Vec<u8>) {
        put(out, self.as_bytes());
    }
}

impl Encode for DepValue<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            DepValue::Output(output) => {
                out.push(b'o');
                put(out, output.as_bytes());
            }
            DepValue::Pending(key) => {
                out.push(b'p');
                out.extend_from_slice(&key.0);
            }
        }
    }
}

/// A length or a count, as an LEB128 varint (one byte below 128).
fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

// The encoding is written into one buffer and hashed at once: blake3 is the same either way,
// and one call is several times faster than a call per length prefix.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A section: its tag, its entry count, then each entry's name and value, names in order.
fn section<'a, V: Encode>(out: &mut Vec<u8>, tag: u8, entries: impl ExactSizeIterator<Item = (&'a str, V)>) {
    out.push(tag);
    varint(out, entries.len() as u64);
    let mut last: Option<&str> = None;
    for (name, value) in entries {
        debug_assert!(last.is_none_or(|l| l < name), "entries out of order");
        last = Some(name);
        put(out, name.as_bytes());
        value.encode(out);
    }
}

thread_local! {
    /// The encoding's buffer, reused: planning computes a key per node on every thread.
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl InputManifest {
    /// The key: length-prefixed sections in a fixed order, maps in key order (so insertion order
    /// never matters), behind the version string.
    pub fn key(&self) -> Key {
        let deps = self.deps.iter().map(|(id, value)| (id, DepValue::parse(value)));
        hash(|out| section(out, b's', self.settings.iter()), &self.files, deps)
    }
}

/// A node's settings as its key encodes them (the `s` section), made once per node: each key
/// copies the bytes, and [`EncodedSettings::decode`] spells the map out again when a change is
/// named or a build recorded. A million nodes' settings take a sixth of the memory their maps
/// would.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct EncodedSettings(Box<[u8]>);

impl EncodedSettings {
    /// Encodes `settings`.
    pub(crate) fn new(settings: &SortedMap) -> EncodedSettings {
        EncodedSettings::of(settings.into_iter())
    }

    /// Encodes entries given in name order, each name once, into bytes of their size (one byte
    /// per length and count: the usual case).
    fn of<'x>(entries: impl ExactSizeIterator<Item = (&'x str, &'x str)> + Clone) -> EncodedSettings {
        let mut out =
            Vec::with_capacity(2 + entries.clone().map(|(k, v)| 2 + k.len() + v.len()).sum::<usize>());
        section(&mut out, b's', entries);
        EncodedSettings(out.into_boxed_slice())
    }

    /// Encodes settings given in any order; of a name given twice, the value given last stays
    /// (as inserting them into a map would). `entries` is left sorted.
    pub(crate) fn from_unsorted<N: AsRef<str>, V: AsRef<str>>(entries: &mut Vec<(N, V)>) -> EncodedSettings {
        // Stable, so a repeated name's values keep their order; each later one then replaces
        // the one kept before it.
        entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        entries.dedup_by(|later, kept| {
            let repeated = later.0.as_ref() == kept.0.as_ref();
            if repeated {
                std::mem::swap(later, kept);
            }
            repeated
        });
        EncodedSettings::of(entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }

    /// The map again.
    pub(crate) fn decode(&self) -> SortedMap {
        fn count(bytes: &mut &[u8]) -> Option<usize> {
            let mut n: u64 = 0;
            for shift in (0..64).step_by(7) {
                let (&byte, rest) = bytes.split_first()?;
                *bytes = rest;
                n |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return usize::try_from(n).ok();
                }
            }
            None
        }
        fn text(bytes: &mut &[u8]) -> Option<String> {
            let len = count(bytes)?;
            let (text, rest) = bytes.split_at_checked(len)?;
            *bytes = rest;
            String::from_utf8(text.to_vec()).ok()
        }
        // Only `new` makes these bytes, so they always decode; were they cut short, the map
        // would hold what came before (and the key, made from the bytes, stays right).
        let mut bytes = self.0.get(1..).unwrap_or_default();
        let entries = count(&mut bytes).unwrap_or(0);
        let mut map = SortedMap::with_capacity(entries.min(bytes.len()));
        for _ in 0..entries {
            let Some((name, value)) = text(&mut bytes).zip(text(&mut bytes)) else { break };
            map.insert(name, value);
        }
        map
    }
}

impl Default for EncodedSettings {
    fn default() -> EncodedSettings {
        EncodedSettings::new(&SortedMap::new())
    }
}

impl fmt::Debug for EncodedSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.decode().fmt(f)
    }
}

/// The key of a node with these settings, files and dependencies, the dependencies given in
/// id order (as [`crate::Graph::deps`] lists them) instead of as a map: planning computes a key
/// per node without building its map of dependencies. The same inputs give the same key as
/// [`InputManifest::key`].
pub(crate) fn key_of<'a>(
    settings: &EncodedSettings,
    files: &SortedMap,
    deps: impl ExactSizeIterator<Item = (&'a str, DepValue<'a>)>,
) -> Key {
    hash(|out| out.extend_from_slice(&settings.0), files, deps)
}

/// The key, its settings section written by `settings`.
fn hash<'a>(
    settings: impl FnOnce(&mut Vec<u8>),
    files: &SortedMap,
    deps: impl ExactSizeIterator<Item = (&'a str, DepValue<'a>)>,
) -> Key {
    ENCODED.with(|out| {
        let mut out = out.borrow_mut();
        out.clear();
        put(&mut out, KEY_VERSION.as_bytes());
        settings(&mut out);
        section(&mut out, b'f', files.iter());
        section(&mut out, b'd', deps);
        Key(*blake3::hash(&out).as_bytes())
    })
}

/// The output digest of a set of files (a task's declared outputs): blake3 over path and digest
/// of each, in path order. No files gives a fixed digest.
///
/// Its own encoding (`hephy-outputs-v1`, every length as eight little-endian bytes), kept apart
/// from the key's: a recorded output is compared with the digest of the files as they are now.
pub fn files_digest(files: &SortedMap) -> String {
    fn put64(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let size = 33 + files.iter().map(|(k, v)| 16 + k.len() + v.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    put64(&mut out, b"hephy-outputs-v1");
    out.push(b'o');
    out.extend_from_slice(&(files.len() as u64).to_le_bytes());
    for (path, digest) in files {
        put64(&mut out, path.as_bytes());
        put64(&mut out, digest.as_bytes());
    }
    format!("blake3:{}", blake3::hash(&out).to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InputManifest {
        let mut m = InputManifest::default();
        m.settings.insert("kind", "image");
        m.settings.insert("platform", "linux/arm64");
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abc");
        m.deps.insert("base@linux/arm64", "sha256:0123");
        m
    }

    #[test]
    fn golden_key() {
        // Changing this digest changes every key users have: bump KEY_VERSION deliberately.
        assert_eq!(
            sample().key().hex().as_str(),
            "285359c1dd42e6c6d5ac6be5b2b02143e21c10a9e260542df494aae3c5d35d80"
        );
    }

    /// The bytes behind the golden key, spelt out: what SPEC.md describes.
    #[test]
    fn encoding_is_as_documented() {
        // Each text behind its length (all below 128 here: one byte).
        let texts = |out: &mut Vec<u8>, parts: &[&str]| {
            for part in parts {
                out.push(part.len() as u8);
                out.extend_from_slice(part.as_bytes());
            }
        };
        let mut expected = Vec::new();
        texts(&mut expected, &["hephy-key-v2"]);
        expected.extend(b"s\x02");
        texts(&mut expected, &["kind", "image", "platform", "linux/arm64"]);
        expected.extend(b"f\x01");
        texts(&mut expected, &["curl/Dockerfile", "f:abc"]);
        expected.extend(b"d\x01");
        texts(&mut expected, &["base@linux/arm64"]);
        expected.push(b'o');
        texts(&mut expected, &["sha256:0123"]);
        assert_eq!(sample().key(), Key(*blake3::hash(&expected).as_bytes()));
        // A count or a length of 128 or more takes more than one byte.
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    /// Encoded settings decode to the map they were made from, and key the same.
    #[test]
    fn encoded_settings_decode() {
        let mut settings = SortedMap::new();
        settings.insert("run", "[\"true\"]");
        settings.insert("env.LONG", "x".repeat(300));
        settings.insert("kind", "task");
        settings.insert("é", "");
        let encoded = EncodedSettings::new(&settings);
        assert_eq!(encoded.decode(), settings);
        // In any order, a repeated name keeping its last value, as a map would.
        let mut unsorted = vec![("run", "[]"), ("kind", "task"), ("é", ""), ("run", "[\"true\"]")];
        unsorted.push(("env.LONG", settings.get("env.LONG").unwrap_or_default()));
        assert_eq!(EncodedSettings::from_unsorted(&mut unsorted), encoded);
        assert_eq!(EncodedSettings::default().decode(), SortedMap::new());
        let manifest = InputManifest { settings: settings.clone(), ..InputManifest::default() };
        assert_eq!(key_of(&encoded, &SortedMap::new(), std::iter::empty()), manifest.key());
    }

    /// A dependency still to be rebuilt enters the key as its key's bytes; in a manifest it
    /// is spelt `pending:<hex>`, which reads back as the same key.
    #[test]
    fn golden_key_with_a_pending_dependency() {
        let mut m = sample();
        m.deps.insert("curl@linux/arm64", format!("pending:{}", sample().key()));
        assert_eq!(
            m.key().hex().as_str(),
            "e38547f3655ccf82b226e9a23c679183901644660cd14f91c4bd1139fb1704f6"
        );
        let pending = DepValue::parse(m.deps.get("curl@linux/arm64").unwrap_or_default());
        assert_eq!(pending, DepValue::Pending(sample().key()));
        // An output is never taken for a pending key, nor a damaged pending value.
        assert_eq!(DepValue::parse("sha256:0123"), DepValue::Output("sha256:0123"));
        assert_eq!(DepValue::parse("pending:zz"), DepValue::Output("pending:zz"));
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let mut m = InputManifest::default();
        m.deps.insert("base@linux/arm64", "sha256:0123");
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abc");
        m.settings.insert("platform", "linux/arm64");
        m.settings.insert("kind", "image");
        assert_eq!(m.key(), sample().key());
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = sample().key();
        let mut m = sample();
        Arc::make_mut(&mut m.files).insert("curl/Dockerfile", "f:abd");
        assert_ne!(m.key(), base);
        let mut m = sample();
        m.settings.insert("args.X", String::new());
        assert_ne!(m.key(), base);
        let mut m = sample();
        m.deps.insert("base@linux/arm64", "sha256:0124");
        assert_ne!(m.key(), base);
        // Moving a value between sections is a different input, not a collision.
        let mut a = InputManifest::default();
        a.settings.insert("x", "y");
        let mut b = InputManifest::default();
        Arc::make_mut(&mut b.files).insert("x", "y");
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn stored_keys_read_back() {
        let key = sample().key();
        assert_eq!(Key::from_hex(&key.hex()), key);
        let json = serde_json::to_string(&key).expect("encodes");
        assert_eq!(serde_json::from_str::<Key>(&json).expect("decodes"), key);
        // Too long to be a key: it reads as the zero key, which no computed key equals.
        let damaged = Key::from_hex(&format!("{key}0"));
        assert_eq!(damaged, Key::ZERO);
        assert_ne!(damaged, key);
    }

    #[test]
    fn golden_outputs_digest() {
        assert_eq!(
            files_digest(&SortedMap::new()),
            "blake3:a9656c5478bc135e0bb794b5b8b2b2908f852cb5f75ca2bcb894c3abbcca263d"
        );
        // Pinned apart from the key's encoding: recorded outputs stay comparable.
        let mut files = SortedMap::new();
        files.insert("out/a", "f:0123");
        files.insert("out/b.bin", "x:4567");
        assert_eq!(
            files_digest(&files),
            "blake3:9668a1134b32b5640c61e2f39d07d569bbc4cfe53ee94bd4a33de5a5606bc477"
        );
    }
}
