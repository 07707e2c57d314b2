//! The document as read (stage one's [`Document`]), kept between commands so that a graph file
//! that did not change is not parsed again. The document is a pure function of the file's bytes
//! and syntax, and of the build of the readers: reusing it changes neither what the graph means
//! nor which diagnostics are shown (expansion and analysis, which look at the disk, run every
//! time).
//!
//! Owns the entry's format and its key; where the entry is kept, and the secret that vouches for
//! it, are the caller's ([`DocumentStore`]: the graph's state folder and a key of the user's, in
//! the standard library). An entry is [`MAGIC`], the key (blake3 of [`FORMAT`], this build's
//! identity — [`SOURCE_ID`], blake3 of the crate's sources and the workspace's manifest and lock, so
//! another build's drafts or readers never decode an entry —, the syntax and the file's bytes),
//! blake3 keyed with the store's secret over the key and the rest, then the document in postcard.
//! An entry the secret does not vouch for (one a repository committed into its state folder,
//! another user's, a damaged one) is never reused: a document that is not the file's would
//! otherwise decide what the graph runs. Only a document read without problems is kept; an
//! entry that is missing, of other bytes or another build, truncated, damaged, unvouched or
//! undecodable is a miss ([`Miss`]), never an error.

use std::io;

use crate::diagnostic::Sink;
use crate::document::Document;
use crate::source::{SourceFile, Syntax};

/// The version of the entry's layout (magic, key, seal, payload): raise it when that changes.
/// The drafts and the readers are in the key already ([`SOURCE_ID`]).
pub(crate) const FORMAT: u32 = 2;

/// What every entry starts with.
const MAGIC: &[u8] = b"hephy document\n";

/// This build's identity (`build.rs`): blake3 of the crate's sources and manifest and the
/// workspace's `Cargo.toml` and `Cargo.lock`.
pub(crate) const SOURCE_ID: &str = include!(concat!(env!("OUT_DIR"), "/source_id.rs"));

/// Where the document read from one graph file is kept between commands: its bytes only (their
/// format and key are this module's).
pub trait DocumentStore {
    /// The entry's bytes; an error when there is none (`NotFound`) or it cannot be read (the
    /// store never reads one through a symbolic link).
    fn fetch(&self) -> io::Result<Vec<u8>>;

    /// Replaces the entry with `bytes`, atomically; best effort (a store that cannot write
    /// keeps nothing, and the next command parses again).
    fn keep(&self, bytes: &[u8]);

    /// The secret that seals the entries this store keeps (blake3's keyed hash over an
    /// entry's key and document): one nobody who can write the store's entries but not run as
    /// its user can know, so an entry written elsewhere is never taken for one of its own.
    fn secret(&self) -> &[u8; 32];
}

/// How the document of one load was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Decoded from the store's entry: the file was not parsed.
    Reused,
    /// Parsed, for this reason.
    Parsed(Miss),
}

/// Why a stored document was not reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No store was given (a command without a state folder).
    NoStore,
    /// The store has no entry.
    NoEntry,
    /// The entry is of other bytes, another syntax or another hephy.
    Stale,
    /// The entry cannot be read or decoded (not an entry, truncated, damaged, refused).
    Unreadable,
}

impl Reuse {
    /// The name of the parse step in `HEPHY_TIMINGS`: `parse`, `parse (reused)`, or why the
    /// entry was not reused.
    pub fn lap(self) -> &'static str {
        match self {
            Reuse::Reused => "parse (reused)",
            Reuse::Parsed(Miss::NoStore) => "parse",
            Reuse::Parsed(Miss::NoEntry) => "parse (no entry)",
            Reuse::Parsed(Miss::Stale) => "parse (stale)",
            Reuse::Parsed(Miss::Unreadable) => "parse (bad entry)",
        }
    }
}

/// Stage one with `store`: the stored document when its key is this file's, else the file
/// parsed (and, read without problems, kept).
pub(crate) fn read(
    source: &SourceFile,
    sink: &mut Sink,
    store: Option<&dyn DocumentStore>,
) -> (Option<Document>, Reuse) {
    let Some(store) = store else {
        return (crate::read_into(source, sink), Reuse::Parsed(Miss::NoStore));
    };
    let key = key(source);
    let miss = match store.fetch() {
        Ok(bytes) => match decode(&bytes, &key, store.secret()) {
            Ok(document) => return (Some(document), Reuse::Reused),
            Err(miss) => miss,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Miss::NoEntry,
        Err(_) => Miss::Unreadable,
    };
    let before = sink.len();
    let document = crate::read_into(source, sink);
    if let Some(document) = &document
        && sink.len() == before
        && let Some(bytes) = encode(&key, document, store.secret())
    {
        store.keep(&bytes);
    }
    (document, Reuse::Parsed(miss))
}

/// The key of `source`'s document: blake3 of the layout's version, this build's identity, the
/// syntax and the text.
fn key(source: &SourceFile) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&FORMAT.to_le_bytes());
    hasher.update(SOURCE_ID.as_bytes());
    hasher.update(&[0]);
    hasher.update(match source.syntax() {
        Syntax::Kdl => b"kdl",
        Syntax::Yaml => b"yaml",
    });
    hasher.update(&[0]);
    hasher.update(source.text().as_bytes());
    hasher.finalize()
}

/// The seal of an entry: blake3 keyed with `secret` over its key and its document.
fn seal(secret: &[u8; 32], key: &blake3::Hash, payload: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(secret);
    hasher.update(key.as_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The entry of `document` under `key` (`None` if postcard cannot encode it).
fn encode(key: &blake3::Hash, document: &Document, secret: &[u8; 32]) -> Option<Vec<u8>> {
    let payload = postcard::to_stdvec(document).ok()?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 2 * blake3::OUT_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(seal(secret, key, &payload).as_bytes());
    bytes.extend_from_slice(&payload);
    Some(bytes)
}

/// The document in `bytes` when they are an entry under `key`, whole and undamaged.
fn decode(bytes: &[u8], key: &blake3::Hash, secret: &[u8; 32]) -> Result<Document, Miss> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(Miss::Unreadable)?;
    let (stored, rest) = rest.split_at_checked(blake3::OUT_LEN).ok_or(Miss::Unreadable)?;
    if stored != key.as_bytes() {
        return Err(Miss::Stale);
    }
    let (sealed, payload) = rest.split_at_checked(blake3::OUT_LEN).ok_or(Miss::Unreadable)?;
    // `blake3::Hash`'s equality takes constant time.
    if blake3::Hash::from_bytes(sealed.try_into().map_err(|_| Miss::Unreadable)?)
        != seal(secret, key, payload)
    {
        return Err(Miss::Unreadable);
    }
    match postcard::take_from_bytes::<Document>(payload) {
        Ok((document, [])) => Ok(document),
        _ => Err(Miss::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::path::Path;

    use super::*;

    /// A store in memory: the entry's bytes, and how often it was written.
    #[derive(Default)]
    struct Memory {
        entry: RefCell<Option<Vec<u8>>>,
        kept: RefCell<usize>,
        secret: [u8; 32],
    }

    impl DocumentStore for Memory {
        fn fetch(&self) -> io::Result<Vec<u8>> {
            self.entry.borrow().clone().ok_or_else(|| io::ErrorKind::NotFound.into())
        }

        fn keep(&self, bytes: &[u8]) {
            *self.entry.borrow_mut() = Some(bytes.to_vec());
            *self.kept.borrow_mut() += 1;
        }

        fn secret(&self) -> &[u8; 32] {
            &self.secret
        }
    }

    fn source(name: &str) -> SourceFile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good").join(name);
        let text = std::fs::read_to_string(&path).expect("a good graph");
        let syntax = Syntax::from_path(&path).expect("kdl or yaml");
        SourceFile::new(path, syntax, text)
    }

    fn read_with(source: &SourceFile, store: &Memory) -> (Option<Document>, Reuse) {
        let mut sink = Sink::default();
        let read = read(source, &mut sink, Some(store));
        assert!(sink.is_empty(), "{name} reads without problems", name = source.path().display());
        read
    }

    /// Every good graph, in both syntaxes (every construct: `every-key`, templates and
    /// matrices: `reuse`), comes back from its entry equal to the document parsed, and the
    /// second read is the entry's.
    #[test]
    fn documents_round_trip_through_their_entries() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("tests/good")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.iter().any(|n| n.ends_with(".kdl")) && names.iter().any(|n| n.ends_with(".yaml")));
        for name in &names {
            let source = source(name);
            let parsed = crate::read(&source).expect("a good graph reads");
            let store = Memory::default();
            let (first, how) = read_with(&source, &store);
            assert_eq!(how, Reuse::Parsed(Miss::NoEntry), "{name}");
            assert_eq!(first.as_ref(), Some(&parsed), "{name}");
            assert_eq!(*store.kept.borrow(), 1, "{name}: kept");
            let (second, how) = read_with(&source, &store);
            assert_eq!(how, Reuse::Reused, "{name}");
            assert_eq!(second.as_ref(), Some(&parsed), "{name}: the entry decodes to the parsed document");
            assert_eq!(*store.kept.borrow(), 1, "{name}: a reused entry is not written again");
        }
    }

    /// An entry sealed with another secret (a repository's committed state folder, another
    /// user's) is not reused, even with this file's key and a well-formed document: its
    /// document is not taken for the file's. And the build's identity is in the key.
    #[test]
    fn an_entry_another_secret_sealed_is_not_reused() {
        let good = source("every-key.kdl");
        let other = source("every-key.yaml");
        let theirs = Memory { secret: [7; 32], ..Memory::default() };
        read_with(&good, &theirs);
        let forged = {
            // Their entry of this very file, its document swapped for another graph's and
            // sealed again with their secret.
            let entry = theirs.entry.borrow().clone().expect("kept");
            let key = key(&good);
            let document = crate::read(&other).expect("reads");
            let resealed = encode(&key, &document, &[7; 32]).expect("encodes");
            assert_eq!(&resealed[..MAGIC.len() + blake3::OUT_LEN], &entry[..MAGIC.len() + blake3::OUT_LEN]);
            resealed
        };
        let mine = Memory::default();
        for entry in [theirs.entry.borrow().clone().expect("kept"), forged] {
            *mine.entry.borrow_mut() = Some(entry);
            let (document, how) = read_with(&good, &mine);
            assert_eq!(how, Reuse::Parsed(Miss::Unreadable));
            assert_eq!(document, crate::read(&good).ok(), "the document is the file's");
            assert_eq!(read_with(&good, &mine).1, Reuse::Reused, "replaced by an entry of its own");
        }
        // My own entry of another file, relabelled with this file's key: the seal covers the
        // key too.
        let mut relabelled = Memory::default();
        read_with(&other, &relabelled);
        let mut entry = relabelled.entry.borrow().clone().expect("kept");
        entry[MAGIC.len()..MAGIC.len() + blake3::OUT_LEN].copy_from_slice(key(&good).as_bytes());
        relabelled.entry = RefCell::new(Some(entry));
        let (document, how) = read_with(&good, &relabelled);
        assert_eq!(how, Reuse::Parsed(Miss::Unreadable), "relabelled");
        assert_eq!(document, crate::read(&good).ok());
        assert_eq!(SOURCE_ID.len(), 64, "blake3 in hex: {SOURCE_ID}");
        assert!(SOURCE_ID.bytes().all(|b| b.is_ascii_hexdigit()), "{SOURCE_ID}");
    }

    /// An entry of other bytes is stale and replaced; a damaged, truncated or foreign one is a
    /// miss, parsed and replaced; a file with problems is never kept.
    #[test]
    fn entries_that_do_not_fit_are_misses() {
        let good = source("every-key.kdl");
        let store = Memory::default();
        read_with(&good, &store);
        let entry = store.entry.borrow().clone().expect("kept");
        let edited = SourceFile::new(good.path(), Syntax::Kdl, format!("{}\n", good.text()));
        assert_eq!(read_with(&edited, &store).1, Reuse::Parsed(Miss::Stale));
        assert_eq!(read_with(&edited, &store).1, Reuse::Reused, "the edited file's entry replaced it");
        let as_yaml = SourceFile::new("hephy.yaml", Syntax::Yaml, good.text());
        let mut sink = Sink::default();
        assert_eq!(read(&as_yaml, &mut sink, Some(&store)).1, Reuse::Parsed(Miss::Stale), "another syntax");
        let damaged = [
            entry[..entry.len() - 1].to_vec(),
            [entry.as_slice(), b"x"].concat(),
            entry[..MAGIC.len() + 8].to_vec(),
            b"garbage".to_vec(),
            Vec::new(),
            {
                let mut flipped = entry.clone();
                let last = flipped.len() - 3;
                flipped[last] ^= 0xff;
                flipped
            },
        ];
        for (i, bytes) in damaged.into_iter().enumerate() {
            *store.entry.borrow_mut() = Some(bytes);
            let (document, how) = read_with(&good, &store);
            assert_eq!(how, Reuse::Parsed(Miss::Unreadable), "{i}");
            assert_eq!(document, crate::read(&good).ok(), "{i}: the document is the file's");
            assert_eq!(read_with(&good, &store).1, Reuse::Reused, "{i}: replaced by a good entry");
        }
        let broken = SourceFile::new("hephy.kdl", Syntax::Kdl, "image \"a\" {\n    contxt \"a\"\n}\n");
        let store = Memory::default();
        let mut sink = Sink::default();
        let (_, how) = read(&broken, &mut sink, Some(&store));
        assert_eq!(how, Reuse::Parsed(Miss::NoEntry));
        assert!(!sink.is_empty(), "an unknown key is a problem");
        assert_eq!(*store.kept.borrow(), 0, "a document read with problems is not kept");
    }
}
