//! hephy's local OCI image layout (`.hephy/oci`): content-addressed blobs and an `index.json`
//! naming the images built here, readable by skopeo (`oci:.hephy/oci:NAME`) and umoci.
//!
//! Blobs are written to a temporary file and renamed into place, so a crash never leaves a
//! half-written blob under its digest; `index.json` is rewritten the same way, one writer at a
//! time, its entries sorted by name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The annotation that names an entry of `index.json`.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor: what a manifest says about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Descriptor {
    /// Its media type.
    pub(crate) media_type: String,
    /// `sha256:<hex>`.
    pub(crate) digest: String,
    /// Its size in bytes.
    pub(crate) size: u64,
}

impl Descriptor {
    /// The descriptor of `bytes`.
    pub(crate) fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor { media_type: media_type.to_owned(), digest: sha256(bytes), size: bytes.len() as u64 }
    }

    /// As JSON.
    pub(crate) fn json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `digest` is a well-formed `sha256:` digest (it becomes a file name).
pub(crate) fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An OCI image layout on disk.
#[derive(Debug)]
pub(crate) struct Layout {
    dir: PathBuf,
    index: Mutex<()>,
}

impl Layout {
    /// The layout at `dir` (created on first write).
    pub(crate) fn new(dir: PathBuf) -> Layout {
        Layout { dir, index: Mutex::new(()) }
    }

    /// Its folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn init(&self) -> Result<(), String> {
        let blobs = self.dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| format!("cannot create `{}`: {e}", blobs.display()))?;
        let marker = self.dir.join("oci-layout");
        if !marker.exists() {
            write_atomically(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(())
    }

    /// Where the blob `digest` lives.
    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs").join("sha256").join(hex)
    }

    /// Whether the blob `digest` is here.
    pub(crate) fn has(&self, digest: &str) -> bool {
        valid_digest(digest) && self.blob_path(digest).is_file()
    }

    /// The bytes of blob `digest`, if it is here.
    pub(crate) fn read(&self, digest: &str) -> Option<Vec<u8>> {
        if !valid_digest(digest) {
            return None;
        }
        fs::read(self.blob_path(digest)).ok()
    }

    /// Stores `bytes` as a blob of `media_type`.
    pub(crate) fn put(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, String> {
        let descriptor = Descriptor::of(media_type, bytes);
        if !self.has(&descriptor.digest) {
            self.init()?;
            write_atomically(&self.blob_path(&descriptor.digest), bytes)?;
        }
        Ok(descriptor)
    }

    /// Moves the finished file `from` (whose digest is `digest`) into the layout.
    pub(crate) fn adopt(&self, from: &Path, digest: &str) -> Result<(), String> {
        self.init()?;
        let to = self.blob_path(digest);
        fs::rename(from, &to).map_err(|e| format!("cannot move a blob into `{}`: {e}", to.display()))
    }

    /// A temporary file inside the layout (so a rename into place never crosses devices).
    pub(crate) fn temp(&self) -> Result<tempfile::NamedTempFile, String> {
        self.init()?;
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(self.dir.join("blobs").join("sha256"))
            .map_err(|e| format!("cannot create a file in `{}`: {e}", self.dir.display()))
    }

    /// Names `descriptor` `name` in `index.json` (replacing what had that name), with extra
    /// fields (a platform) merged into its entry.
    pub(crate) fn name(
        &self,
        name: &str,
        descriptor: &Descriptor,
        extra: Option<&Value>,
    ) -> Result<(), String> {
        let _one_writer = self.index.lock().map_err(|_| "the layout's lock was poisoned".to_owned())?;
        self.init()?;
        let path = self.dir.join("index.json");
        let mut entries: Vec<Value> = fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|index| index.get("manifests").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        entries.retain(|entry| entry["annotations"][REF_NAME].as_str() != Some(name));
        let mut entry = descriptor.json();
        if let Some(Value::Object(fields)) = extra
            && let Value::Object(map) = &mut entry
        {
            for (k, v) in fields {
                map.insert(k.clone(), v.clone());
            }
        }
        entry["annotations"] = json!({ REF_NAME: name });
        entries.push(entry);
        entries.sort_by(|a, b| {
            a["annotations"][REF_NAME]
                .as_str()
                .unwrap_or("")
                .cmp(b["annotations"][REF_NAME].as_str().unwrap_or(""))
        });
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| e.to_string())?;
        write_atomically(&path, &bytes)
    }

    /// The descriptor named `name` in `index.json`.
    #[cfg(test)]
    pub(crate) fn named(&self, name: &str) -> Option<Descriptor> {
        let bytes = fs::read(self.dir.join("index.json")).ok()?;
        let index: Value = serde_json::from_slice(&bytes).ok()?;
        let entry = index["manifests"]
            .as_array()?
            .iter()
            .find(|entry| entry["annotations"][REF_NAME].as_str() == Some(name))?;
        Some(Descriptor {
            media_type: entry["mediaType"].as_str()?.to_owned(),
            digest: entry["digest"].as_str()?.to_owned(),
            size: entry["size"].as_u64()?,
        })
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| format!("cannot write `{}`: {e}", path.display());
    let mut file = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.as_file().sync_data().map_err(fail)?;
    file.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed_and_names_replace() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("oci"));
        let a = layout.put("application/octet-stream", b"hello").unwrap();
        assert_eq!(a.digest, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(layout.read(&a.digest).unwrap(), b"hello");
        let b = layout.put("application/octet-stream", b"world").unwrap();
        layout.name("x", &a, None).unwrap();
        layout.name("a", &b, Some(&json!({"platform": {"os": "linux"}}))).unwrap();
        layout.name("x", &b, None).unwrap();
        assert_eq!(layout.named("x"), Some(b.clone()));
        let index: Value =
            serde_json::from_slice(&fs::read(dir.path().join("oci/index.json")).unwrap()).unwrap();
        let names: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["annotations"][REF_NAME].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "x"]);
        assert_eq!(index["manifests"][0]["platform"]["os"], "linux");
        assert!(dir.path().join("oci/oci-layout").is_file());
        assert!(!layout.has("sha256:../../etc"));
    }
}
