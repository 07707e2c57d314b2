//! [`SortedMap`]: the string map of input manifests, as one sorted vector.
//!
//! A manifest holds a handful of settings and usually one or two dependencies; a `BTreeMap`
//! spends a 500-byte node on each, which at a million nodes is most of a plan's memory (and its
//! page faults). This keeps the entries in key order in one allocation, with the part of the
//! map API the engine uses, and (de)serializes as a JSON object like the map it replaces, so
//! stored manifests read the same. Keys and values are `Cow<'static, str>`: setting names like
//! `kind`, and values like `task` or `[]`, are the same text in every node, and cost nothing
//! to store.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;

/// Text that is either fixed (no allocation) or owned.
pub type Text = Cow<'static, str>;

/// String keys to string values, in key order, each key once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SortedMap(Vec<(Text, Text)>);

impl SortedMap {
    /// An empty map.
    pub fn new() -> SortedMap {
        SortedMap(Vec::new())
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> SortedMap {
        SortedMap(Vec::with_capacity(n))
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: impl Into<Text>, value: impl Into<Text>) -> Option<Text> {
        let (key, value) = (key.into(), value.into());
        match self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key.as_ref())) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (key, value));
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let at = self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        Some(&self.0[at].1)
    }

    /// Keeps the entries `keep` says yes to (their order stays sorted).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(lend)
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for SortedMap {
    /// Like collecting into a `BTreeMap`: of repeated keys, the last value stays.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> SortedMap {
        let mut entries: Vec<(Text, Text)> =
            iter.into_iter().map(|(k, v)| (Cow::Owned(k), Cow::Owned(v))).collect();
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable, so equal keys keep their order and the last one is kept below.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut deduped: Vec<(Text, Text)> = Vec::with_capacity(entries.len());
            for entry in entries {
                match deduped.last_mut() {
                    Some(last) if last.0 == entry.0 => *last = entry,
                    _ => deduped.push(entry),
                }
            }
            entries = deduped;
        }
        SortedMap(entries)
    }
}

/// An entry as the map lends it.
type Lent<'a> = (&'a str, &'a str);

fn lend<'a>(entry: &'a (Text, Text)) -> Lent<'a> {
    (entry.0.as_ref(), entry.1.as_ref())
}

impl<'a> IntoIterator for &'a SortedMap {
    type Item = Lent<'a>;
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Text, Text)>, fn(&'a (Text, Text)) -> Lent<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(lend)
    }
}

impl fmt::Debug for SortedMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for SortedMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for SortedMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SortedMap, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = SortedMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings to strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<SortedMap, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
                while let Some(entry) = access.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(entries.into_iter().collect())
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever is inserted or collected, it behaves as the `BTreeMap` it replaces, and
        /// serializes identically.
        #[test]
        fn behaves_as_a_btreemap(pairs in proptest::collection::vec(("[a-d]{0,2}", "[x-z]{0,2}"), 0..24)) {
            let mut ours = SortedMap::new();
            let mut theirs = BTreeMap::new();
            for (k, v) in &pairs {
                prop_assert_eq!(ours.insert(k.clone(), v.clone()).map(Cow::into_owned), theirs.insert(k.clone(), v.clone()));
            }
            let collected: SortedMap = pairs.iter().cloned().collect();
            prop_assert_eq!(&collected, &ours);
            prop_assert!(ours.iter().eq(theirs.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
            prop_assert_eq!(ours.len(), theirs.len());
            for (k, _) in &pairs {
                prop_assert_eq!(ours.get(k), theirs.get(k).map(String::as_str));
            }
            let json = serde_json::to_string(&ours).unwrap_or_default();
            prop_assert_eq!(&json, &serde_json::to_string(&theirs).unwrap_or_default());
            let back: SortedMap = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, ours);
        }
    }
}
