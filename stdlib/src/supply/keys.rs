//! cosign's key files: the encrypted private key `cosign generate-key-pair` writes (PEM
//! `ENCRYPTED SIGSTORE PRIVATE KEY`, or the older `ENCRYPTED COSIGN PRIVATE KEY`, whose body is
//! go-securesystemslib's `encrypted` JSON: scrypt derives a NaCl secretbox key from the
//! password, the box holds the PKCS#8 DER of an ECDSA P-256 key) and the public key PEM
//! (`PUBLIC KEY`, PKIX). Generating a pair, reading either half, a key's fingerprint.
//!
//! The private key is never printed: [`SigningKey`]'s `Debug` shows its fingerprint only, the
//! decrypted bytes are wiped when dropped, and no error quotes the password or the key.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key as BoxKey, Nonce, XSalsa20Poly1305};
use hephy_oci::layout::hex;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256};

/// The environment variable the password is read from, as cosign reads it.
pub const PASSWORD_VARIABLE: &str = "COSIGN_PASSWORD";

/// The PEM type `cosign generate-key-pair` writes.
const SIGSTORE_TYPE: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM type older cosign releases wrote; still read.
const COSIGN_TYPE: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// The public key's PEM type.
const PUBLIC_TYPE: &str = "PUBLIC KEY";

/// The scrypt parameters hephy writes: securesystemslib's "legacy" set (N = 2^15, r = 8,
/// p = 1), the one every cosign release reads.
const WRITE_LOG_N: u8 = 15;
/// The scrypt parameter sets go-securesystemslib accepts when it decrypts (N, r, p): legacy,
/// standard, OWASP. Anything else is refused, as cosign refuses it.
const ACCEPTED_PARAMS: [(u64, u32, u32); 3] = [(32_768, 8, 1), (65_536, 8, 1), (131_072, 8, 1)];
/// The salt's length, as securesystemslib makes it.
const SALT_LEN: usize = 32;
/// The secretbox nonce's length.
const NONCE_LEN: usize = 24;

/// A key file that cannot be read, written or used, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read the key `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file cannot be written.
    #[error("cannot write the key `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is already there.
    #[error("`{path}` already exists; hephy does not overwrite a key")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no PEM block of the kind wanted.
    #[error("`{path}` holds no `{wanted}` PEM block{found}", found = found.as_ref().map(|f| format!(" (it holds `{f}`)")).unwrap_or_default())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// The PEM type wanted.
        wanted: &'static str,
        /// The PEM type found, if any.
        found: Option<String>,
    },
    /// The encrypted key's body is not cosign's JSON, or a field of it is wrong.
    #[error("`{path}` is not a cosign key: {problem}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, without any of the key's bytes.
        problem: String,
    },
    /// The password does not open the key.
    #[error("the password does not decrypt `{path}`")]
    WrongPassword {
        /// The file.
        path: PathBuf,
    },
    /// The key is not an ECDSA P-256 key.
    #[error("`{path}` is not an ECDSA P-256 key; hephy signs with P-256 keys only")]
    NotP256 {
        /// The file.
        path: PathBuf,
    },
    /// No password was given.
    #[error("no password for the key: `{PASSWORD_VARIABLE}` is not set")]
    NoPassword,
    /// The system's random source failed.
    #[error("the system's random source failed: {0}")]
    Random(String),
    /// Sealing a key failed (a bug, never the user's input).
    #[error("cannot seal the key: {0}")]
    Seal(String),
}

impl KeyError {
    /// The fix to show the user.
    pub fn help(&self) -> Option<String> {
        match self {
            KeyError::Exists { .. } => {
                Some("move the old key away, or generate into another folder".to_owned())
            }
            KeyError::NotPem { wanted, .. } if *wanted == PUBLIC_TYPE => {
                Some("give the public half, `cosign.pub`, as `cosign generate-key-pair` writes it".to_owned())
            }
            KeyError::NotPem { .. } => Some(
                "give an encrypted key as `cosign generate-key-pair` or `hephy key generate` writes it; \
                 `cosign import-key-pair` converts other PEM keys"
                    .to_owned(),
            ),
            KeyError::WrongPassword { .. } | KeyError::NoPassword => {
                Some(format!("set `{PASSWORD_VARIABLE}` to the password the key was made with"))
            }
            KeyError::NotP256 { .. } => {
                Some("make a P-256 key with `hephy key generate` or `cosign generate-key-pair`".to_owned())
            }
            _ => None,
        }
    }
}

/// The password from `COSIGN_PASSWORD` (an empty value is an empty password, as cosign takes it).
pub fn password_from_env() -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use std::os::unix::ffi::OsStringExt as _;
    std::env::var_os(PASSWORD_VARIABLE).map(|v| Zeroizing::new(v.into_vec())).ok_or(KeyError::NoPassword)
}

/// An ECDSA P-256 private key, as cosign keeps it. Its `Debug` shows its fingerprint only.
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<SigningKey, KeyError> {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
            // A 32-byte string is a valid scalar but for a chance of about 2^-32.
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(bytes.as_ref()) {
                return Ok(SigningKey { key });
            }
        }
    }

    /// Reads the encrypted key at `path` and decrypts it with `password`.
    pub fn load(path: &Path, password: &[u8]) -> Result<SigningKey, KeyError> {
        let text = std::fs::read(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
        SigningKey::from_encrypted_pem(&text, password, path)
    }

    /// Decrypts a key file's bytes; `path` only names it in errors.
    pub fn from_encrypted_pem(text: &[u8], password: &[u8], path: &Path) -> Result<SigningKey, KeyError> {
        let block = pem_block(text, &[SIGSTORE_TYPE, COSIGN_TYPE]).map_err(|found| KeyError::NotPem {
            path: path.to_owned(),
            wanted: SIGSTORE_TYPE,
            found,
        })?;
        let der = decrypt(&block, password, path)?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&der)
            .map_err(|_| KeyError::NotP256 { path: path.to_owned() })?;
        Ok(SigningKey { key })
    }

    /// The key encrypted with `password` as `cosign generate-key-pair` writes it: PEM
    /// `ENCRYPTED SIGSTORE PRIVATE KEY` over securesystemslib's JSON.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String, KeyError> {
        let der = self.key.to_pkcs8_der().map_err(|e| KeyError::Seal(format!("PKCS#8: {e}")))?;
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut salt).map_err(|e| KeyError::Random(e.to_string()))?;
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let params = scrypt::Params::new(WRITE_LOG_N, 8, 1)
            .map_err(|e| KeyError::Seal(format!("scrypt parameters: {e}")))?;
        let mut box_key = Zeroizing::new([0u8; 32]);
        scrypt::scrypt(password, &salt, &params, box_key.as_mut())
            .map_err(|e| KeyError::Seal(format!("scrypt: {e}")))?;
        let cipher = XSalsa20Poly1305::new(BoxKey::from_slice(box_key.as_ref()));
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), der.as_bytes())
            .map_err(|_| KeyError::Seal("secretbox".to_owned()))?;
        // The fields in the order Go's encoding/json writes securesystemslib's structs.
        let json = format!(
            r#"{{"kdf":{{"name":"scrypt","params":{{"N":{},"r":8,"p":1}},"salt":"{}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{}"}},"ciphertext":"{}"}}"#,
            1u64 << WRITE_LOG_N,
            BASE64.encode(salt),
            BASE64.encode(nonce),
            BASE64.encode(&sealed),
        );
        Ok(pem_encode(SIGSTORE_TYPE, json.as_bytes()))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey { key: *self.key.verifying_key() }
    }

    /// The public half as `cosign.pub` holds it.
    pub fn public_pem(&self) -> String {
        self.public().pem()
    }

    /// The public half's fingerprint (see [`PublicKey::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        self.public().fingerprint()
    }

    /// The ASN.1 DER ECDSA signature of `message` (over its SHA-256, RFC 6979 nonces: the same
    /// key and message give the same signature), as cosign stores it.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: DerSignature = self.key.sign(message);
        signature.as_bytes().to_vec()
    }
}

/// An ECDSA P-256 public key (`cosign.pub`).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("fingerprint", &self.fingerprint()).finish()
    }
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM file.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
        PublicKey::from_pem(&text, path)
    }

    /// Reads a `PUBLIC KEY` PEM's bytes; `path` only names it in errors.
    pub fn from_pem(text: &[u8], path: &Path) -> Result<PublicKey, KeyError> {
        let block = pem_block(text, &[PUBLIC_TYPE]).map_err(|found| KeyError::NotPem {
            path: path.to_owned(),
            wanted: PUBLIC_TYPE,
            found,
        })?;
        let key = VerifyingKey::from_public_key_der(&block)
            .map_err(|_| KeyError::NotP256 { path: path.to_owned() })?;
        Ok(PublicKey { key })
    }

    /// The PEM text (`-----BEGIN PUBLIC KEY-----`, PKIX DER, lines of 64), as cosign writes it.
    pub fn pem(&self) -> String {
        pem_encode(PUBLIC_TYPE, &self.der())
    }

    /// The PKIX (SubjectPublicKeyInfo) DER.
    pub fn der(&self) -> Vec<u8> {
        self.key.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// `sha256:` and the hex SHA-256 of the PKIX DER: names a key in state and keys without
    /// revealing anything of the private half.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(self.der())))
    }

    /// Whether `signature` (ASN.1 DER) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_der(signature).is_ok_and(|s| self.key.verify(message, &s).is_ok())
    }
}

/// The files a generated pair was written to.
#[derive(Debug, Clone)]
pub struct GeneratedPair {
    /// `DIR/cosign.key`.
    pub private: PathBuf,
    /// `DIR/cosign.pub`.
    pub public: PathBuf,
    /// The new key's fingerprint.
    pub fingerprint: String,
}

/// Generates a key pair into `dir/cosign.key` (mode 0600) and `dir/cosign.pub` (creating
/// `dir`), the private key encrypted with `password`; refuses to overwrite either file.
pub fn generate_pair(dir: &Path, password: &[u8]) -> Result<GeneratedPair, KeyError> {
    let private = dir.join("cosign.key");
    let public = dir.join("cosign.pub");
    for path in [&private, &public] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write { path: dir.to_owned(), source })?;
    let key = SigningKey::generate()?;
    let encrypted = key.to_encrypted_pem(password)?;
    write_new(&private, encrypted.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, key.public_pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    Ok(GeneratedPair { private, public, fingerprint: key.fingerprint() })
}

/// Creates `path` (never through an existing file or link) with `mode` and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists { path: path.to_owned() }
        } else {
            KeyError::Write { path: path.to_owned(), source }
        }
    };
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(error)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(error)
}

/// Opens securesystemslib's `encrypted` JSON with `password`: the PKCS#8 DER inside.
fn decrypt(body: &[u8], password: &[u8], path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bad = |problem: &str| KeyError::Malformed { path: path.to_owned(), problem: problem.to_owned() };
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("its body is not the JSON of an encrypted key"))?;
    let text = |pointer: &str| json.pointer(pointer).and_then(serde_json::Value::as_str);
    let bytes = |pointer: &str, what: &str| {
        text(pointer)
            .and_then(|t| BASE64.decode(t).ok())
            .ok_or_else(|| bad(&format!("`{what}` is missing or not base64")))
    };
    match text("/kdf/name") {
        Some("scrypt") => {}
        Some(other) => return Err(bad(&format!("unknown key derivation `{}`", clip(other)))),
        None => return Err(bad("`kdf.name` is missing")),
    }
    match text("/cipher/name") {
        Some("nacl/secretbox") => {}
        Some(other) => return Err(bad(&format!("unknown cipher `{}`", clip(other)))),
        None => return Err(bad("`cipher.name` is missing")),
    }
    let number =
        |name: &str| json.pointer(&format!("/kdf/params/{name}")).and_then(serde_json::Value::as_u64);
    let (n, r, p) = (number("N"), number("r"), number("p"));
    let params = ACCEPTED_PARAMS
        .iter()
        .find(|(an, ar, ap)| Some(*an) == n && Some(u64::from(*ar)) == r && Some(u64::from(*ap)) == p)
        .ok_or_else(|| {
            bad("unsupported scrypt parameters (cosign reads N 32768, 65536 or 131072 with r 8, p 1)")
        })?;
    let salt = bytes("/kdf/salt", "kdf.salt")?;
    let nonce = bytes("/cipher/nonce", "cipher.nonce")?;
    let ciphertext = bytes("/ciphertext", "ciphertext")?;
    if nonce.len() != NONCE_LEN {
        return Err(bad("`cipher.nonce` is not 24 bytes"));
    }
    let log_n = params.0.trailing_zeros() as u8;
    let params =
        scrypt::Params::new(log_n, params.1, params.2).map_err(|_| bad("unsupported scrypt parameters"))?;
    let mut box_key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, &salt, &params, box_key.as_mut())
        .map_err(|_| bad("unsupported scrypt parameters"))?;
    let cipher = XSalsa20Poly1305::new(BoxKey::from_slice(box_key.as_ref()));
    cipher
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| KeyError::WrongPassword { path: path.to_owned() })
}

/// At most 40 characters of a value from a file, for an error.
fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// The body of the first PEM block whose type is one of `types`; else the type of the first
/// block there is (`None`: no PEM block at all).
fn pem_block(text: &[u8], types: &[&str]) -> Result<Vec<u8>, Option<String>> {
    let text = String::from_utf8_lossy(text);
    let mut first_found = None;
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(kind) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
            continue;
        };
        let end = format!("-----END {kind}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            // Go's pem.Decode allows headers (`Name: value`) before the body; none are meaningful here.
            if !line.contains(':') {
                body.push_str(line);
            }
        }
        if closed && types.contains(&kind) {
            return BASE64.decode(body.as_bytes()).map_err(|_| Some(kind.to_owned()));
        }
        first_found.get_or_insert_with(|| clip(kind));
    }
    Err(first_found)
}

/// A PEM block as Go's `pem.EncodeToMemory` writes it: base64 in lines of 64, a final newline.
fn pem_encode(kind: &str, bytes: &[u8]) -> String {
    let body = BASE64.encode(bytes);
    let mut out = format!("-----BEGIN {kind}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {kind}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::LineEnding;

    /// cosign's own test key (`pkg/cosign/keys_test.go`, `pemsigstorekey`, password `hello`),
    /// written by cosign: an existing key must load unchanged.
    const COSIGN_SIGSTORE_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
";

    /// cosign's own test key of the older label (`pemcosigneckey`, password `hello`, scrypt
    /// N = 65536): cosign itself cannot parse it as PKCS#8 (its test expects that error).
    const COSIGN_EC_KEY_NOT_PKCS8: &str = "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
REMOVED-COPIED-KEY-LINE
WS9rPSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----
";

    fn here() -> &'static Path {
        Path::new("cosign.key")
    }

    #[test]
    fn cosigns_own_key_loads_and_signs() {
        let key = SigningKey::from_encrypted_pem(COSIGN_SIGSTORE_KEY.as_bytes(), b"hello", here())
            .expect("cosign's test key loads");
        let public = PublicKey::from_pem(key.public_pem().as_bytes(), Path::new("cosign.pub")).expect("pem");
        let signature = key.sign(b"payload");
        assert!(public.verifies(b"payload", &signature));
        assert!(!public.verifies(b"another payload", &signature));
    }

    #[test]
    fn a_wrong_password_is_an_error_that_names_the_file_not_the_key() {
        let error = SigningKey::from_encrypted_pem(COSIGN_SIGSTORE_KEY.as_bytes(), b"hellO", here())
            .expect_err("a wrong password must not open the key");
        assert!(matches!(error, KeyError::WrongPassword { .. }), "{error:?}");
        assert_eq!(error.to_string(), "the password does not decrypt `cosign.key`");
        assert!(error.help().is_some_and(|h| h.contains("COSIGN_PASSWORD")));
    }

    #[test]
    fn a_key_that_is_not_pkcs8_p256_is_refused() {
        let error = SigningKey::from_encrypted_pem(COSIGN_EC_KEY_NOT_PKCS8.as_bytes(), b"hello", here())
            .expect_err("not PKCS#8");
        assert!(matches!(error, KeyError::NotP256 { .. }), "{error:?}");
    }

    #[test]
    fn other_files_are_clear_errors() {
        let public = SigningKey::generate().expect("key").public_pem();
        let error = SigningKey::from_encrypted_pem(public.as_bytes(), b"", here()).expect_err("a public key");
        assert_eq!(
            error.to_string(),
            "`cosign.key` holds no `ENCRYPTED SIGSTORE PRIVATE KEY` PEM block (it holds `PUBLIC KEY`)"
        );
        let error = SigningKey::from_encrypted_pem(b"hello", b"", here()).expect_err("not PEM");
        assert_eq!(error.to_string(), "`cosign.key` holds no `ENCRYPTED SIGSTORE PRIVATE KEY` PEM block");
        let garbage = pem_encode(SIGSTORE_TYPE, br#"{"kdf":{"name":"argon2"}}"#);
        let error = SigningKey::from_encrypted_pem(garbage.as_bytes(), b"", here()).expect_err("argon2");
        assert_eq!(error.to_string(), "`cosign.key` is not a cosign key: unknown key derivation `argon2`");
        let strong = pem_encode(
            SIGSTORE_TYPE,
            br#"{"kdf":{"name":"scrypt","params":{"N":1024,"r":8,"p":1},"salt":""},"cipher":{"name":"nacl/secretbox","nonce":""},"ciphertext":""}"#,
        );
        let error = SigningKey::from_encrypted_pem(strong.as_bytes(), b"", here()).expect_err("N 1024");
        assert!(error.to_string().contains("unsupported scrypt parameters"), "{error}");
    }

    /// Decrypts a key by cosign's documented format with code of its own: the PEM's base64
    /// body is JSON; scrypt(password, salt, N=32768, r=8, p=1, 32 bytes) is the NaCl
    /// secretbox key; the box (16-byte Poly1305 tag, then XSalsa20 ciphertext) opens to
    /// PKCS#8 DER.
    fn decrypt_by_the_spec(pem: &str, password: &[u8]) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let json: serde_json::Value =
            serde_json::from_slice(&BASE64.decode(body).expect("base64")).expect("json");
        assert_eq!(json["kdf"]["name"], "scrypt");
        assert_eq!(json["kdf"]["params"], serde_json::json!({"N": 32768, "r": 8, "p": 1}));
        assert_eq!(json["cipher"]["name"], "nacl/secretbox");
        let field = |v: &serde_json::Value| BASE64.decode(v.as_str().expect("string")).expect("base64");
        let salt = field(&json["kdf"]["salt"]);
        assert_eq!(salt.len(), 32);
        let mut box_key = [0u8; 32];
        scrypt::scrypt(password, &salt, &scrypt::Params::new(15, 8, 1).expect("params"), &mut box_key)
            .expect("scrypt");
        XSalsa20Poly1305::new(BoxKey::from_slice(&box_key))
            .decrypt(
                Nonce::from_slice(&field(&json["cipher"]["nonce"])),
                field(&json["ciphertext"]).as_slice(),
            )
            .expect("the box opens")
    }

    #[test]
    fn round_trip_by_the_documented_format() {
        let dir = tempfile::tempdir().expect("dir");
        let pair = generate_pair(dir.path(), b"s3cret").expect("generate");
        let private = std::fs::read_to_string(&pair.private).expect("key");
        let public = std::fs::read_to_string(&pair.public).expect("pub");
        assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(private.lines().all(|l| l.len() <= 64));
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&pair.private).expect("meta").permissions().mode() & 0o777, 0o600);

        let der = decrypt_by_the_spec(&private, b"s3cret");
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&der).expect("PKCS#8 P-256");
        assert_eq!(key.verifying_key().to_public_key_pem(LineEnding::LF).expect("pem"), public);

        let loaded = SigningKey::load(&pair.private, b"s3cret").expect("load");
        assert_eq!(loaded.public_pem(), public);
        assert_eq!(PublicKey::load(&pair.public).expect("pub").fingerprint(), pair.fingerprint);
        assert!(!format!("{loaded:?}").contains(&BASE64.encode(&der)));

        let again = generate_pair(dir.path(), b"other").expect_err("no overwrite");
        assert!(matches!(again, KeyError::Exists { .. }));
        assert_eq!(std::fs::read_to_string(&pair.private).expect("key"), private);
    }

    #[test]
    fn fingerprints_differ_and_name_no_secret() {
        let a = SigningKey::generate().expect("a");
        let b = SigningKey::generate().expect("b");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(a.fingerprint().starts_with("sha256:") && a.fingerprint().len() == 71);
    }
}
