//! An independent verifier of cosign signatures, written from cosign's published signature
//! spec (sigstore/cosign `specs/SIGNATURE_SPEC.md`, tag-based discovery): the tests that sign
//! (`signing.rs`, `supply.rs`) check hephy's signatures with it, never with hephy's own code.
//! The signature is checked twice, with the `p256` crate and with `openssl dgst -verify`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;

use super::registry::Registry;

/// A plain HTTP/1.0 GET on the loopback registry: the status line and the body.
pub fn http_get(registry: &Registry, path: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", registry.port)).expect("connect");
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n\r\n",
        registry.address()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("headers end");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    (head.lines().next().unwrap_or_default().to_owned(), response[split + 4..].to_vec())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `openssl ARGS`, feeding `input`; its stdout, or the failure.
pub fn openssl(args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child.stdin.take().expect("stdin").write_all(input).expect("write");
    let output = child.wait_with_output().expect("openssl");
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The independent verifier: whether some signature stored (by cosign's tag-based discovery)
/// for manifest `digest` of `repository` verifies with the public key `public_pem` over its
/// payload, and the payload names `digest` as a cosign container image signature.
pub fn verified_by_the_spec(registry: &Registry, repository: &str, digest: &str, public_pem: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    // Tag-based discovery: `sha256-<hex>.sig` in the same repository.
    let (status, _) = http_get(registry, &format!("/v2/{repository}/manifests/sha256-{hex}.sig"));
    if !status.contains(" 200 ") {
        return false;
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&registry.raw(&format!("{repository}:sha256-{hex}.sig")))
            .expect("manifest JSON");
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(public_pem).expect("cosign.pub is a P-256 key");
    let scratch = tempfile::tempdir().expect("dir");
    std::fs::write(scratch.path().join("cosign.pub"), public_pem).expect("write key");
    let mut any = false;
    for layer in manifest["layers"].as_array().expect("layers") {
        assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
        let blob = layer["digest"].as_str().expect("layer digest");
        let (status, payload) = http_get(registry, &format!("/v2/{repository}/blobs/{blob}"));
        assert!(status.contains(" 200 "), "payload {blob}: {status}");
        assert_eq!(format!("sha256:{}", sha256_hex(&payload)), blob, "the payload is the blob named");
        let signature = BASE64
            .decode(
                layer["annotations"]["dev.cosignproject.cosign/signature"]
                    .as_str()
                    .expect("signature annotation"),
            )
            .expect("base64 signature");
        // ECDSA P-256 over the payload's SHA-256, the signature ASN.1 DER.
        let by_p256 =
            p256::ecdsa::Signature::from_der(&signature).is_ok_and(|s| key.verify(&payload, &s).is_ok());
        std::fs::write(scratch.path().join("payload"), &payload).expect("write payload");
        std::fs::write(scratch.path().join("signature"), &signature).expect("write signature");
        let dir = scratch.path().display().to_string();
        let by_openssl = openssl(
            &[
                "dgst",
                "-sha256",
                "-verify",
                &format!("{dir}/cosign.pub"),
                "-signature",
                &format!("{dir}/signature"),
                &format!("{dir}/payload"),
            ],
            b"",
        )
        .is_ok();
        assert_eq!(by_p256, by_openssl, "p256 and openssl agree on a signature");
        let claims: serde_json::Value = serde_json::from_slice(&payload).expect("payload JSON");
        let names_it = claims["critical"]["image"]["docker-manifest-digest"] == digest
            && claims["critical"]["type"] == "cosign container image signature"
            && claims["critical"]["identity"]["docker-reference"]
                == format!("{}/{repository}", registry.address());
        any |= by_p256 && names_it;
    }
    any
}
