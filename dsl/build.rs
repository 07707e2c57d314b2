//! The identity of this build of the language's readers: blake3 of every source file of the
//! crate and its manifest (path and bytes, in path order), and of the workspace's `Cargo.toml`
//! and `Cargo.lock` where it is built in the workspace (the parsers' versions and features). A stored document as read (`src/stored.rs`) is keyed
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
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let mut paths = Vec::new();
    files(&src, &mut paths);
    paths.push(manifest.join("Cargo.toml"));
    paths.sort();
    // The workspace's manifest and lock (the parsers' versions and features), where this is
    // built in the workspace.
    for workspace in ["../Cargo.toml", "../Cargo.lock"] {
        let path = manifest.join(workspace);
        if path.is_file() {
            println!("cargo:rerun-if-changed={workspace}");
            paths.push(path);
        }
    }
    let mut hasher = blake3::Hasher::new();
    for path in &paths {
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
