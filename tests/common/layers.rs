//! Tars and images written by hand, entry by entry, for what no tool would make: layers with
//! hardlinks across them, whiteouts, and hostile entries (`../` names, loops, devices), pushed
//! to the loopback registry with skopeo.

use std::path::Path;
use std::process::Command;

/// A tar of `(name, kind, data)` entries (a link's data is its target), owned by root, mode
/// 0755; names are written as they are, `..` and leading `/` included.
pub fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let linked = matches!(kind, tar::EntryType::Link | tar::EntryType::Symlink);
        if linked {
            header.set_link_name(data).expect("a link name");
        }
        header.set_size(if linked { 0 } else { data.len() as u64 });
        let raw = &mut header.as_old_mut().name;
        assert!(name.len() < raw.len(), "a short name: {name}");
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        let body: &[u8] = if linked { &[] } else { data.as_bytes() };
        tar.append(&header, body).expect("append");
    }
    tar.into_inner().expect("finish the tar")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes an image of `layers` (uncompressed tars, bottom first; linux/amd64) into an OCI
/// layout under `dir` and copies it to `reference` (`host:port/name:tag`) with skopeo.
pub fn push_layers(dir: &Path, reference: &str, layers: &[Vec<u8>]) {
    let layout = dir.join(format!("layout-{}", sha256_hex(reference.as_bytes())));
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout folder");
    let put = |bytes: &[u8]| {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).expect("write a blob");
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, tar).expect("gzip");
        let (digest, size) = put(&gz.finish().expect("gzip"));
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size
        }));
        diff_ids.push(format!("sha256:{}", sha256_hex(tar)));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Env": ["PATH=/usr/bin:/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).expect("json"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size
        },
        "layers": descriptors,
    });
    let (digest, size) = put(&serde_json::to_vec(&manifest).expect("json"));
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
            "annotations": { "org.opencontainers.image.ref.name": "x" }
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).expect("json")).expect("index");
    let output = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:x", layout.display()))
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(output.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&output.stderr));
}
