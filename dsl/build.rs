//! The identity of this build of the language's readers: blake3 of every source file of the
//! crate (path and bytes, in path order) and of the workspace's `Cargo.lock` where there is one
//! (the versions of the parsers it uses). A stored document as read (`src/stored.rs`) is keyed
//! by it, so a document kept by another build of hephy, whose drafts or readers may differ, is
//! never reused.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => files(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let src = manifest.join("src");
    let lock = manifest.join("../Cargo.lock");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    let mut paths = Vec::new();
    files(&src, &mut paths);
    paths.push(manifest.join("Cargo.toml"));
    paths.sort();
    let mut hasher = blake3::Hasher::new();
    for path in paths.iter().chain(std::iter::once(&lock)) {
        let Ok(bytes) = std::fs::read(path) else { continue };
        let name = path.strip_prefix(&manifest).unwrap_or(path);
        hasher.update(name.as_os_str().as_encoded_bytes());
        hasher.update(&[0]);
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let id = hasher.finalize().to_hex();
    std::fs::write(out.join("source_id.rs"), format!("\"{id}\"\n")).expect("OUT_DIR is writable");
}
