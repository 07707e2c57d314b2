//! cosign-compatible keys and signatures, end to end: `hephy key generate` writes a key that
//! decrypts by cosign's documented format with this test's own code; images pushed to a real
//! registry on 127.0.0.1 are signed through `hephy_stdlib::supply::sign` and checked by a
//! verifier written here from cosign's published signature spec (sigstore/cosign
//! `specs/SIGNATURE_SPEC.md`), then by `hephy verify`.
//!
//! Why not cosign or skopeo as the verifier: cosign is not packaged for Debian and cannot be
//! installed here, and Debian's skopeo 1.9 is built with sigstore disabled (its
//! `sigstoreSigned` policies fail with "Debian-local change: sigstore disabled"). So the test
//! reads the `.sig` manifest with `skopeo inspect --raw` and the payload over plain HTTP, and
//! checks the signature twice, with the `p256` crate and with `openssl dgst -verify`; the key
//! file is opened with `openssl kdf` (scrypt) and `crypto_secretbox`, and its public half
//! derived with `openssl pkey`.

mod common;

use common::cosign::{http_get, openssl, verified_by_the_spec};

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::Repo;
use common::registry::Registry;
use crypto_secretbox::aead::{Aead, KeyInit};

const PASSWORD: &str = "correct horse battery staple";

fn require_tools() {
    common::require(
        &["docker-registry", "skopeo", "openssl"],
        "apt-get install docker-registry skopeo openssl",
    );
}

/// The digests of an index and its platform manifests.
fn index_and_platforms(registry: &Registry, reference: &str) -> (String, Vec<String>) {
    let raw = registry.raw(reference);
    let index: serde_json::Value = serde_json::from_str(&raw).expect("index JSON");
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        // BuildKit's attestation manifests (provenance is on when pushing) are signed through
        // the index, not one by one.
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] != "attestation-manifest")
        .map(|m| m["digest"].as_str().expect("digest").to_owned())
        .collect();
    (common::registry::sha256(&raw), platforms)
}

/// Decrypts `cosign.key` by cosign's documented format (go-securesystemslib `encrypted`):
/// base64 JSON in the PEM, scrypt(password, salt, N=32768, r=8, p=1) → 32-byte secretbox
/// key (here by `openssl kdf`), NaCl secretbox (XSalsa20-Poly1305) → PKCS#8 DER.
fn decrypt_by_the_spec(pem: &str, password: &str) -> Result<Vec<u8>, String> {
    let mut lines = pem.lines();
    assert_eq!(lines.next(), Some("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    let body: String = lines.take_while(|l| !l.starts_with("-----END")).collect();
    let json: serde_json::Value =
        serde_json::from_slice(&BASE64.decode(body).expect("base64")).expect("JSON");
    assert_eq!(json["kdf"]["name"], "scrypt");
    assert_eq!(json["kdf"]["params"], serde_json::json!({"N": 32768, "r": 8, "p": 1}));
    assert_eq!(json["cipher"]["name"], "nacl/secretbox");
    let field = |v: &serde_json::Value| BASE64.decode(v.as_str().expect("a string")).expect("base64");
    let salt: String = field(&json["kdf"]["salt"]).iter().map(|b| format!("{b:02x}")).collect();
    let derived = openssl(
        &[
            "kdf",
            "-binary",
            "-keylen",
            "32",
            "-kdfopt",
            &format!("pass:{password}"),
            "-kdfopt",
            &format!("hexsalt:{salt}"),
            "-kdfopt",
            "n:32768",
            "-kdfopt",
            "r:8",
            "-kdfopt",
            "p:1",
            "SCRYPT",
        ],
        b"",
    )?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(&derived).expect("32-byte key");
    let nonce = field(&json["cipher"]["nonce"]);
    assert_eq!(nonce.len(), 24);
    cipher
        .decrypt(crypto_secretbox::Nonce::from_slice(&nonce), field(&json["ciphertext"]).as_slice())
        .map_err(|_| "the box does not open".to_owned())
}

#[test]
#[ignore = "needs openssl"]
fn a_generated_key_decrypts_by_cosigns_format_and_its_public_half_is_cosign_pub() {
    common::require(&["openssl"], "apt-get install openssl");
    let repo = Repo::new();
    let run = repo.run_with(&["key", "generate", "keys"], &[("COSIGN_PASSWORD", PASSWORD)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    let private = std::fs::read_to_string(repo.path().join("keys/cosign.key")).expect("cosign.key");
    let public = std::fs::read_to_string(repo.path().join("keys/cosign.pub")).expect("cosign.pub");

    let der = decrypt_by_the_spec(&private, PASSWORD).expect("decrypts with the password");
    assert!(decrypt_by_the_spec(&private, "wrong").is_err(), "a wrong password opens nothing");
    // The PKCS#8 key's public half, as openssl derives it, is cosign.pub.
    let derived =
        openssl(&["pkey", "-inform", "DER", "-pubout"], &der).expect("openssl reads the PKCS#8 key");
    assert_eq!(String::from_utf8(derived).expect("PEM"), public);
    let text = openssl(&["pkey", "-inform", "DER", "-noout", "-text"], &der).expect("openssl reads it");
    assert!(String::from_utf8_lossy(&text).contains("prime256v1"), "a P-256 key");

    // Never over an existing key; no password is a usage error.
    let again = repo.run_with(&["key", "generate", "keys"], &[("COSIGN_PASSWORD", "other")]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(repo.path().join("keys/cosign.key")).expect("key"), private);
    let none = Command::new(env!("CARGO_BIN_EXE_hephy"))
        .args(["key", "generate", "other"])
        .current_dir(repo.path())
        .env_remove("COSIGN_PASSWORD")
        .env("NO_COLOR", "1")
        .output()
        .expect("run hephy");
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("COSIGN_PASSWORD"));
}

#[test]
#[ignore = "needs docker-registry, skopeo and openssl"]
fn signed_images_verify_by_cosigns_spec_and_an_unsigned_copy_does_not() {
    require_tools();
    let registry = Registry::start();
    let repo = Repo::quickstart_pushing_to(&registry.address(), "");
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{run:?}");
    let generated = repo.run_with(&["key", "generate", "keys"], &[("COSIGN_PASSWORD", PASSWORD)]);
    assert_eq!(generated.code, 0, "{generated:?}");
    let public_pem = std::fs::read_to_string(repo.path().join("keys/cosign.pub")).expect("cosign.pub");

    // Sign qs/base's index and each platform manifest through the library.
    use hephy_stdlib::supply::{keys, sign};
    let key =
        keys::SigningKey::load(&repo.path().join("keys/cosign.key"), PASSWORD.as_bytes()).expect("load key");
    let client = hephy_oci::registry::Client::new();
    let base =
        hephy_oci::registry::Reference::parse(&format!("{}/qs/base", registry.address())).expect("ref");
    let (index, platforms) = index_and_platforms(&registry, "qs/base:latest");
    assert_eq!(platforms.len(), 2);
    for digest in std::iter::once(&index).chain(&platforms) {
        assert!(!verified_by_the_spec(&registry, "qs/base", digest, &public_pem), "not signed yet");
        let stored = sign::sign(&client, &base, digest, &key).expect("sign");
        assert!(stored.added);
        assert!(verified_by_the_spec(&registry, "qs/base", digest, &public_pem), "signed: {digest}");
        assert!(sign::signature_present(&client, &base, digest, &key.public()).expect("present"));
        // Signing again adds nothing.
        assert!(!sign::sign(&client, &base, digest, &key).expect("sign again").added);
    }

    // A second key's signature is appended beside the first, as cosign appends; both verify.
    let other = keys::SigningKey::generate().expect("second key");
    sign::sign(&client, &base, &index, &other).expect("second signature");
    let hex = index.strip_prefix("sha256:").expect("sha256");
    let sig: serde_json::Value =
        serde_json::from_str(&registry.raw(&format!("qs/base:sha256-{hex}.sig"))).expect("JSON");
    assert_eq!(sig["layers"].as_array().expect("layers").len(), 2);
    assert!(verified_by_the_spec(&registry, "qs/base", &index, &public_pem));
    assert!(verified_by_the_spec(&registry, "qs/base", &index, &other.public_pem()));

    // The same image copied to another repository, without its signatures, does not verify.
    let copied = Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{}/qs/base:latest", registry.address()))
        .arg(format!("docker://{}/qs/copy:latest", registry.address()))
        .output()
        .expect("skopeo copy");
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    let (copy_index, copy_platforms) = index_and_platforms(&registry, "qs/copy:latest");
    assert_eq!(copy_index, index, "the copy is the same image");
    for digest in std::iter::once(&copy_index).chain(&copy_platforms) {
        assert!(!verified_by_the_spec(&registry, "qs/copy", digest, &public_pem));
    }
    // A key that signed nothing verifies nothing.
    let stranger = keys::SigningKey::generate().expect("key").public_pem();
    assert!(!verified_by_the_spec(&registry, "qs/base", &index, &stranger));

    // `hephy verify` passes and fails the same cases.
    let image = format!("{}/qs/base:latest", registry.address());
    let ok = repo.run(&["verify", &image, "--key", "keys/cosign.pub"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(ok.stdout.lines().filter(|l| l.starts_with("verified ")).count(), 3, "{}", ok.stdout);
    assert!(ok.stdout.contains("linux/amd64") && ok.stdout.contains("linux/arm64"), "{}", ok.stdout);
    let by_digest = repo.run(&[
        "verify",
        &format!("{}/qs/base@{}", registry.address(), platforms[0]),
        "--key",
        "keys/cosign.pub",
    ]);
    assert_eq!(by_digest.code, 0, "{by_digest:?}");
    let copy =
        repo.run(&["verify", &format!("{}/qs/copy:latest", registry.address()), "--key", "keys/cosign.pub"]);
    assert_eq!(copy.code, 1, "{copy:?}");
    assert!(copy.stdout.contains("unsigned"), "{}", copy.stdout);
    assert!(copy.stderr.contains("is not signed by"), "{}", copy.stderr);
    let web =
        repo.run(&["verify", &format!("{}/qs/web:latest", registry.address()), "--key", "keys/cosign.pub"]);
    assert_eq!(web.code, 1, "an image never signed: {web:?}");
    std::fs::write(repo.path().join("stranger.pub"), &stranger).expect("write");
    let wrong = repo.run(&["verify", &image, "--key", "stranger.pub"]);
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stdout.contains("does not verify with this key"), "{}", wrong.stdout);
    // Bad input is exit 2: a key that is no public key, an image that is no reference.
    let not_a_key = repo.run(&["verify", &image, "--key", "keys/cosign.key"]);
    assert_eq!(not_a_key.code, 2, "{not_a_key:?}");
    assert!(not_a_key.stderr.contains("PUBLIC KEY"), "{}", not_a_key.stderr);
    let bad = repo.run(&["verify", "Not An Image", "--key", "keys/cosign.pub"]);
    assert_eq!(bad.code, 2, "{bad:?}");

    // A platform manifest whose signature is gone fails the index's verification.
    let platform_hex = platforms[1].strip_prefix("sha256:").expect("sha256");
    let deleted = Command::new("skopeo")
        .args(["delete", "--tls-verify=false"])
        .arg(format!("docker://{}/qs/base:sha256-{platform_hex}.sig", registry.address()))
        .output()
        .expect("skopeo delete");
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    assert!(!sign::signature_present(&client, &base, &platforms[1], &key.public()).expect("asked"));
    let partly = repo.run(&["verify", &image, "--key", "keys/cosign.pub"]);
    assert_eq!(partly.code, 1, "{partly:?}");
    assert_eq!(partly.stdout.lines().filter(|l| l.starts_with("unsigned ")).count(), 1, "{}", partly.stdout);
}

/// The registry answers the OCI 1.1 referrers API or not: SPEC says hephy writes no referrers
/// because this one does not.
#[test]
#[ignore = "needs docker-registry"]
fn the_test_registry_has_no_referrers_api() {
    common::require(&["docker-registry"], "apt-get install docker-registry");
    let registry = Registry::start();
    let (status, _) = http_get(&registry, &format!("/v2/qs/base/referrers/sha256:{}", "0".repeat(64)));
    // The OCI 1.1 distribution spec: a registry that supports the API never answers 404.
    assert!(status.contains(" 404 "), "{status}");
}
