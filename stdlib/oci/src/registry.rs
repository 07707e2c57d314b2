//! A small client of the OCI distribution API (the registry protocol): manifests and blobs, by
//! tag or digest, with the registries' token and basic authentication, credentials as users
//! keep them ([`crate::credentials`]), and retries of transient failures. A failure is a
//! [`RegistryError`]: the operation, the URL, and what happened (the HTTP status as a number);
//! retries decide on those, never on the message's text.
//!
//! It is what lets hephy publish images, indexes and tags itself (a tag is a manifest PUT, as
//! `crane tag` does) and what the built-in `oci` builder pulls base images with. Loopback
//! registries are spoken to over plain HTTP, every other one over HTTPS.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use ureq::Agent;
use ureq::http::{Response, StatusCode};

use crate::credentials::{self, Credential, HelperFailure};
use crate::layout::{hex, valid_digest};
use hephy_os::stop::{Stop, Stopped};

/// What a request to a registry was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ReadManifest,
    LookUpManifest,
    WriteManifest,
    DownloadBlob,
    LookUpBlob,
    StartUpload,
    UploadBlob,
    Authenticate,
    ListTags,
    DeleteManifest,
}

impl Operation {
    fn describe(self) -> &'static str {
        match self {
            Operation::ReadManifest => "reading the manifest",
            Operation::LookUpManifest => "looking up the manifest",
            Operation::WriteManifest => "writing a manifest",
            Operation::DownloadBlob => "downloading a blob",
            Operation::LookUpBlob => "looking up a blob",
            Operation::StartUpload => "starting a blob upload",
            Operation::UploadBlob => "uploading a blob",
            Operation::Authenticate => "authenticating",
            Operation::ListTags => "listing the tags",
            Operation::DeleteManifest => "deleting a manifest",
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The registry answered with this HTTP status (and its own message, if it gave one).
    Status { status: u16, message: String },
    /// No answer: the connection was refused, reset or timed out.
    Transport(String),
    /// An answer hephy cannot use (a wrong digest, no upload location, an unreadable body).
    Answer(String),
    /// A success whose content is not what was asked for: a sign-in page, a proxy's web app,
    /// anything that is not the registry's answer (`content_type` as the server named it,
    /// empty when it named none; `wanted`: "an image manifest", "a blob").
    NotWhatWasAsked { content_type: String, wanted: &'static str },
    /// The run was cancelled or the node's time ran out during the transfer.
    Stopped(Stopped),
    /// Something on this machine (a file that cannot be read or written).
    Local(String),
    /// The registry's authentication challenge could not be answered.
    Auth(Box<AuthError>),
}

/// A failed registry request: what it was doing, where, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub operation: Operation,
    pub url: String,
    pub cause: Cause,
}

impl RegistryError {
    fn new(operation: Operation, url: &str, cause: Cause) -> RegistryError {
        RegistryError { operation, url: url.to_owned(), cause }
    }

    /// The HTTP status the registry answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self.cause {
            Cause::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// Whether the same request may succeed if sent again: no answer, a server error, or
    /// "too many requests".
    pub fn is_retryable(&self) -> bool {
        match &self.cause {
            Cause::Transport(_) => true,
            Cause::Status { status, .. } => *status >= 500 || *status == 429,
            Cause::Answer(_)
            | Cause::NotWhatWasAsked { .. }
            | Cause::Stopped(_)
            | Cause::Local(_)
            | Cause::Auth(_) => false,
        }
    }

    /// Whether this is how distribution refuses a write that raced another process's upload
    /// of the same blob (a blob not yet visible: 400 or 404), which pushing again settles.
    pub fn is_upload_race(&self) -> bool {
        matches!(
            (self.operation, self.status()),
            (Operation::UploadBlob, Some(400)) | (Operation::WriteManifest, Some(400 | 404))
        )
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, url) = (self.operation.describe(), &self.url);
        match &self.cause {
            Cause::Status { status, message } => {
                let reason = StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
                write!(f, "{what} at {url} failed with {status}{reason}{detail}")
            }
            Cause::Transport(e) => write!(f, "{what} at {url} failed: {e}"),
            Cause::Answer(e) | Cause::Local(e) => write!(f, "{what} at {url}: {e}"),
            Cause::NotWhatWasAsked { content_type, wanted } => write!(
                f,
                "{what} at {url}: the answer ({}) is not {wanted}; a proxy or a sign-in page may be answering in the registry's place",
                shown_type(content_type)
            ),
            Cause::Auth(e) => write!(f, "{what} at {url}: {e}"),
            Cause::Stopped(stopped) => write!(f, "{what} at {url} was {stopped}"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// The manifest media types hephy asks for and understands.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// An image reference: `host/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry's host (and port), `docker.io` for Docker Hub.
    pub host: String,
    /// The repository (`library/alpine`).
    pub repository: String,
    /// The tag.
    pub tag: Option<String>,
    /// The digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `text` with Docker's rules (`alpine` is `docker.io/library/alpine:latest`).
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let bad = |why: BadReference| ReferenceError { text: text.to_owned(), why };
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) if valid_digest(digest) => (rest, Some(digest.to_owned())),
            Some(_) => return Err(bad(BadReference::Digest)),
            None => (text, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag.to_owned())),
            _ => (rest, None),
        };
        let (host, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let repository = if host == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(BadReference::Repository));
        }
        if let Some(tag) = &tag
            && (tag.is_empty()
                || tag.len() > 128
                || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                || tag.starts_with(['.', '-']))
        {
            return Err(bad(BadReference::Tag));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        Ok(Reference { host, repository, tag, digest })
    }

    /// The digest if there is one, else the tag.
    pub fn version(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

/// Text that is not an image reference, and which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an image reference: {why}")]
pub struct ReferenceError {
    /// The text.
    pub text: String,
    /// What is wrong with it.
    pub why: BadReference,
}

/// The part of a reference that breaks the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadReference {
    /// After `@`.
    #[error("the part after `@` is not a sha256 digest")]
    Digest,
    /// The repository path.
    #[error("a repository is lower-case letters, digits and `._-`, separated by `/`")]
    Repository,
    /// The tag.
    #[error("a tag is up to 128 letters, digits and `._-`")]
    Tag,
}

/// Why a registry's authentication challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Basic authentication, and no credential for the host; `helper` says why a credential
    /// helper gave none, when one was asked.
    #[error("{host} asks for a login and {}", match helper { Some(failure) => failure.to_string(), None => format!("none is configured (add it with `docker login {host}`)") })]
    NoLogin {
        /// The registry host.
        host: String,
        /// Why the credential helper gave none, if one failed.
        helper: Option<HelperFailure>,
    },
    /// A scheme other than basic and bearer.
    #[error("{host} asks for an authentication hephy does not speak: `{challenge}`")]
    Unsupported {
        /// The registry host.
        host: String,
        /// The `WWW-Authenticate` header.
        challenge: String,
    },
    /// A bearer challenge without a realm.
    #[error("{host}'s token challenge names no realm")]
    NoRealm {
        /// The registry host.
        host: String,
    },
    /// The token realm did not answer.
    #[error("asking {realm} for a token: {message}")]
    Unreachable {
        /// The token service's URL.
        realm: String,
        /// The transport's error.
        message: String,
    },
    /// The token realm refused, with this HTTP status.
    #[error("{realm} refused a token for `{scope}` ({}){}", StatusCode::from_u16(*status).map_or_else(|_| status.to_string(), |s| s.to_string()), match login { Login::Sent => String::new(), Login::HelperFailed(failure) => format!("; {failure}"), Login::None => "; no credentials are configured for this registry".to_owned() })]
    Refused {
        /// The token service's URL.
        realm: String,
        /// The scope asked for.
        scope: String,
        /// The HTTP status.
        status: u16,
        /// What login went with the request.
        login: Login,
    },
    /// The token realm answered something that holds no token.
    #[error("{realm} answered no token{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    NoToken {
        /// The token service's URL.
        realm: String,
        /// What was wrong with the answer.
        detail: Option<String>,
    },
}

/// What login a token request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The user's credential.
    Sent,
    /// None: the credential helper configured for the host failed.
    HelperFailed(HelperFailure),
    /// None: none is configured.
    None,
}

/// A fetched manifest (an image manifest or an index).
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its media type.
    pub media_type: String,
    /// Its bytes, exactly as the registry holds them.
    pub bytes: Vec<u8>,
    /// `sha256:` of the bytes.
    pub digest: String,
}

/// A request body that can be sent again after an authentication round trip.
#[derive(Clone, Copy)]
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
}

/// The most bytes of a blob sent in one request: between two, the upload asks its [`Stop`].
const UPLOAD_CHUNK: u64 = 16 << 20;

/// A registry client, shared by every node of a run.
#[derive(Debug)]
pub struct Client {
    agent: Agent,
    /// Bearer tokens by (host, scope).
    tokens: Mutex<HashMap<(String, String), String>>,
    /// Credentials by host, looked up once.
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    /// Attempts of one request.
    attempts: u32,
}

/// Attempts of one request before it fails; transient failures (connection errors, 5xx, 429)
/// are retried after 0.5 s and 1.5 s.
const ATTEMPTS: u32 = 3;

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl Client {
    /// A client with hephy's timeouts (10 s to connect, 60 s for a response to start) that
    /// retries transient failures.
    pub fn new() -> Client {
        Client::with_attempts(ATTEMPTS)
    }

    /// A client that tries each request once (lookups that may simply go without).
    pub fn once_only() -> Client {
        Client::with_attempts(1)
    }

    fn with_attempts(attempts: u32) -> Client {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("hephy/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            agent,
            tokens: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
            attempts,
        }
    }

    fn base(host: &str) -> String {
        let api = if host == "docker.io" { "registry-1.docker.io" } else { host };
        let scheme = if insecure(Some(host)) { "http" } else { "https" };
        format!("{scheme}://{api}")
    }

    fn credential(&self, host: &str) -> Option<Credential> {
        let mut map = self.credentials.lock().ok()?;
        map.entry(host.to_owned()).or_insert_with(|| credentials::lookup(host)).clone()
    }

    /// Sends one request, answering an authentication challenge once and retrying transient
    /// failures.
    #[expect(clippy::too_many_arguments, reason = "one request's every part, named at each call")]
    fn send(
        &self,
        operation: Operation,
        method: &str,
        url: &str,
        reference: &Reference,
        push: bool,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let scope =
            format!("repository:{}:{}", reference.repository, if push { "pull,push" } else { "pull" });
        let token_key = (reference.host.clone(), scope.clone());
        let mut attempt = 1;
        let mut challenged = false;
        loop {
            let token = self.tokens.lock().ok().and_then(|t| t.get(&token_key).cloned());
            let authorization = match token {
                Some(token) if token.starts_with("Basic ") => Some(token),
                Some(token) => Some(format!("Bearer {token}")),
                None => None,
            };
            let result = self.once(method, url, headers, authorization.as_deref(), body);
            match result {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !challenged => {
                    challenged = true;
                    let challenge = response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let token = self.authenticate(&reference.host, &challenge, &scope).map_err(|e| {
                        RegistryError::new(Operation::Authenticate, url, Cause::Auth(Box::new(e)))
                    })?;
                    if let Ok(mut tokens) = self.tokens.lock() {
                        tokens.insert(token_key.clone(), token);
                    }
                }
                Ok(response)
                    if attempt < self.attempts
                        && (response.status().is_server_error()
                            || response.status() == StatusCode::TOO_MANY_REQUESTS) =>
                {
                    backoff(attempt);
                    attempt += 1;
                }
                Ok(response) => return Ok(response),
                Err(cause) => {
                    let error = RegistryError::new(operation, url, cause);
                    if attempt < self.attempts && error.is_retryable() {
                        backoff(attempt);
                        attempt += 1;
                    } else {
                        return Err(error);
                    }
                }
            }
        }
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        authorization: Option<&str>,
        body: Body<'_>,
    ) -> Result<Response<ureq::Body>, Cause> {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = authorization {
            all.push(("Authorization", a));
        }
        macro_rules! with_headers {
            ($builder:expr) => {{
                let mut b = $builder;
                for (k, v) in &all {
                    b = b.header(*k, *v);
                }
                b
            }};
        }
        let result = match (method, body) {
            ("GET", _) => with_headers!(self.agent.get(url)).call(),
            ("HEAD", _) => with_headers!(self.agent.head(url)).call(),
            ("DELETE", _) => with_headers!(self.agent.delete(url)).call(),
            ("POST", Body::Empty) => with_headers!(self.agent.post(url)).send_empty(),
            ("PUT", Body::Empty) => with_headers!(self.agent.put(url)).send_empty(),
            ("PUT", Body::Bytes(bytes)) => with_headers!(self.agent.put(url)).send(bytes),
            ("PATCH", Body::Bytes(bytes)) => with_headers!(self.agent.patch(url)).send(bytes),
            _ => return Err(Cause::Local(format!("unsupported request {method}"))),
        };
        result.map_err(|e| Cause::Transport(e.to_string()))
    }

    /// Answers a `WWW-Authenticate` challenge: a bearer token from the realm (anonymous, or
    /// with the user's credential), or the credential itself for basic authentication.
    fn authenticate(&self, host: &str, challenge: &str, scope: &str) -> Result<String, AuthError> {
        let credential = self.credential(host);
        let basic = credential.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.secret))
            )
        });
        let lower = challenge.to_ascii_lowercase();
        if lower.starts_with("basic") {
            return basic.ok_or_else(|| AuthError::NoLogin {
                host: host.to_owned(),
                helper: credentials::helper_failure(host),
            });
        }
        if !lower.starts_with("bearer") {
            return Err(AuthError::Unsupported { host: host.to_owned(), challenge: challenge.to_owned() });
        }
        let params = challenge_params(&challenge[6..]);
        let realm = params.get("realm").ok_or_else(|| AuthError::NoRealm { host: host.to_owned() })?;
        let mut request = self.agent.get(realm).query("scope", scope);
        if let Some(service) = params.get("service") {
            request = request.query("service", service);
        }
        if let Some(basic) = &basic {
            request = request.header("Authorization", basic);
        }
        let mut response = request
            .call()
            .map_err(|e| AuthError::Unreachable { realm: realm.clone(), message: e.to_string() })?;
        if !response.status().is_success() {
            return Err(AuthError::Refused {
                realm: realm.clone(),
                scope: scope.to_owned(),
                status: response.status().as_u16(),
                login: match (&basic, credentials::helper_failure(host)) {
                    (Some(_), _) => Login::Sent,
                    (None, Some(failure)) => Login::HelperFailed(failure),
                    (None, None) => Login::None,
                },
            });
        }
        let content_type = content_type(&response);
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| AuthError::NoToken { realm: realm.clone(), detail: Some(e.to_string()) })?;
        // What a sign-in page or a proxy answers is named by its type, not by where JSON
        // reading stopped.
        let body: serde_json::Value = serde_json::from_str(&text).map_err(|_| AuthError::NoToken {
            realm: realm.clone(),
            detail: Some(format!("the answer ({}) is not JSON", shown_type(&content_type))),
        })?;
        body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| AuthError::NoToken { realm: realm.clone(), detail: None })
    }

    /// A GET or HEAD of the manifest `reference` names, accepting every type hephy reads.
    fn ask_manifest(
        &self,
        operation: Operation,
        method: &str,
        reference: &Reference,
    ) -> Result<(String, Response<ureq::Body>), RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            Client::base(&reference.host),
            reference.repository,
            reference.version()
        );
        let accept = MANIFEST_TYPES.join(", ");
        let response =
            self.send(operation, method, &url, reference, false, &[("Accept", &accept)], Body::Empty)?;
        Ok((url, response))
    }

    /// The manifest `reference` names (by digest, else tag).
    pub fn manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        let op = Operation::ReadManifest;
        let (url, mut response) = self.ask_manifest(op, "GET", reference)?;
        let status = response.status();
        if !status.is_success() {
            return Err(failure(op, &url, &mut response));
        }
        let content_type = content_type(&response);
        let named = named_digest(&response);
        let bytes = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| RegistryError::new(op, &url, Cause::Transport(e.to_string())))?;
        // Believed only when it is a manifest, with the digest asked for and the one named.
        let media_type = manifest_type(&content_type, &bytes).ok_or_else(|| {
            RegistryError::new(
                op,
                &url,
                Cause::NotWhatWasAsked { content_type: content_type.clone(), wanted: "an image manifest" },
            )
        })?;
        let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        if let Some(expected) = &reference.digest
            && *expected != digest
        {
            let why = format!("the registry answered a manifest whose digest is {digest}");
            return Err(RegistryError::new(op, &url, Cause::Answer(why)));
        }
        if let Some(named) = named
            && named != digest
        {
            let why =
                format!("the registry named the manifest {named} but sent one whose digest is {digest}");
            return Err(RegistryError::new(op, &url, Cause::Answer(why)));
        }
        Ok(Manifest { media_type, bytes, digest })
    }

    /// The digest `reference` resolves to, or `None` when the registry has no such manifest.
    pub fn resolve(&self, reference: &Reference) -> Result<Option<String>, RegistryError> {
        let op = Operation::LookUpManifest;
        let (url, mut response) = self.ask_manifest(op, "HEAD", reference)?;
        match response.status() {
            s if s.is_success() => {
                // A HEAD is believed when it names a manifest type and a digest; anything else
                // (some registries leave the header off; a sign-in page answers `200` to every
                // URL) is asked for the bytes, which are checked.
                match named_digest(&response) {
                    Some(digest) if MANIFEST_TYPES.contains(&content_type(&response).as_str()) => {
                        Ok(Some(digest))
                    }
                    _ => self.manifest(reference).map(|m| Some(m.digest)),
                }
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(failure(op, &url, &mut response)),
        }
    }

    /// Downloads blob `digest` of `reference`'s repository into `out`, checking its digest, and
    /// `stop` between chunks.
    pub fn blob(
        &self,
        reference: &Reference,
        digest: &str,
        out: &mut File,
        stop: &Stop<'_>,
    ) -> Result<(), RegistryError> {
        let op = Operation::DownloadBlob;
        let url = format!("{}/v2/{}/blobs/{digest}", Client::base(&reference.host), reference.repository);
        let mut response = self.send(op, "GET", &url, reference, false, &[], Body::Empty)?;
        if !response.status().is_success() {
            return Err(failure(op, &url, &mut response));
        }
        let fail = |cause| RegistryError::new(op, &url, cause);
        let content_type = content_type(&response);
        if is_page(&content_type) {
            return Err(fail(Cause::NotWhatWasAsked { content_type, wanted: "a blob" }));
        }
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            stop.check().map_err(|s| fail(Cause::Stopped(s)))?;
            let n = reader.read(&mut buffer).map_err(|e| fail(Cause::Transport(e.to_string())))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n]).map_err(|e| fail(Cause::Local(format!("cannot save it: {e}"))))?;
        }
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        if got == digest {
            Ok(())
        } else {
            Err(fail(Cause::Answer(format!("the registry sent a blob whose digest is {got}"))))
        }
    }

    /// Whether `reference`'s repository has blob `digest`.
    pub fn has_blob(&self, reference: &Reference, digest: &str) -> Result<bool, RegistryError> {
        let op = Operation::LookUpBlob;
        let url = format!("{}/v2/{}/blobs/{digest}", Client::base(&reference.host), reference.repository);
        let mut response = self.send(op, "HEAD", &url, reference, true, &[], Body::Empty)?;
        match response.status() {
            // Believed unless it names another blob or is a web page.
            s if s.is_success() => match named_digest(&response) {
                Some(named) if named != digest => Err(RegistryError::new(
                    op,
                    &url,
                    Cause::Answer(format!("the registry named the blob {named}")),
                )),
                Some(_) => Ok(true),
                None if is_page(&content_type(&response)) => Err(RegistryError::new(
                    op,
                    &url,
                    Cause::NotWhatWasAsked { content_type: content_type(&response), wanted: "a blob" },
                )),
                None => Ok(true),
            },
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(failure(op, &url, &mut response)),
        }
    }

    /// Uploads the file `path` as blob `digest` (unless the repository has it); whether it
    /// uploaded. `stop` is asked between chunks of the upload.
    pub fn push_blob(
        &self,
        reference: &Reference,
        digest: &str,
        path: &Path,
        stop: &Stop<'_>,
    ) -> Result<bool, RegistryError> {
        // An upload racing another of the same blob (another process) may be refused as
        // invalid: look again, and upload again.
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            match self.push_blob_once(reference, digest, path, stop) {
                Err(e) if attempt < 3 && e.is_upload_race() => {
                    std::thread::sleep(Duration::from_millis(300 * attempt));
                }
                other => return other,
            }
        }
    }

    fn push_blob_once(
        &self,
        reference: &Reference,
        digest: &str,
        path: &Path,
        stop: &Stop<'_>,
    ) -> Result<bool, RegistryError> {
        if self.has_blob(reference, digest)? {
            return Ok(false);
        }
        let base = Client::base(&reference.host);
        let url = format!("{base}/v2/{}/blobs/uploads/", reference.repository);
        let op = Operation::StartUpload;
        let mut response = self.send(op, "POST", &url, reference, true, &[], Body::Empty)?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(failure(op, &url, &mut response));
        }
        let location =
            response.headers().get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| {
                RegistryError::new(op, &url, Cause::Answer("no upload location".to_owned()))
            })?;
        let mut location =
            if location.starts_with('/') { format!("{base}{location}") } else { location.to_owned() };
        // In chunks: PATCHes of all but the last, then the PUT with the last, asking `stop`
        // before each (a small blob is one PUT).
        let op = Operation::UploadBlob;
        let local = |e: std::io::Error| {
            RegistryError::new(op, &url, Cause::Local(format!("cannot read `{}`: {e}", path.display())))
        };
        let mut file = File::open(path).map_err(local)?;
        let size = file.metadata().map_err(local)?.len();
        let mut chunk = Vec::new();
        let mut start: u64 = 0;
        loop {
            stop.check().map_err(|s| RegistryError::new(op, &url, Cause::Stopped(s)))?;
            let length = (size - start).min(UPLOAD_CHUNK);
            chunk.clear();
            (&mut file).take(length).read_to_end(&mut chunk).map_err(local)?;
            if chunk.len() as u64 != length {
                return Err(local(std::io::Error::other("the file changed while it was read")));
            }
            let octets = ("Content-Type", "application/octet-stream");
            if start + length == size {
                let separator = if location.contains('?') { '&' } else { '?' };
                let put = format!("{location}{separator}digest={digest}");
                let mut response =
                    self.send(op, "PUT", &put, reference, true, &[octets], Body::Bytes(&chunk))?;
                if response.status() != StatusCode::CREATED {
                    return Err(failure(op, &url, &mut response));
                }
                return Ok(true);
            }
            let range = format!("{start}-{}", start + length - 1);
            let headers = [octets, ("Content-Range", range.as_str())];
            let mut response =
                self.send(op, "PATCH", &location, reference, true, &headers, Body::Bytes(&chunk))?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(failure(op, &url, &mut response));
            }
            let next = response.headers().get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| {
                RegistryError::new(op, &url, Cause::Answer("no upload location after a chunk".to_owned()))
            })?;
            location = if next.starts_with('/') { format!("{base}{next}") } else { next.to_owned() };
            start += length;
        }
    }

    /// Every tag of `reference`'s repository (none when the repository does not exist), page
    /// by page as the registry's `Link` header leads.
    pub fn tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        let op = Operation::ListTags;
        let base = Client::base(&reference.host);
        let mut url = format!("{base}/v2/{}/tags/list?n=1000", reference.repository);
        let mut out = Vec::new();
        loop {
            let mut response = self.send(op, "GET", &url, reference, false, &[], Body::Empty)?;
            match response.status() {
                StatusCode::NOT_FOUND => return Ok(out),
                s if s.is_success() => {}
                _ => return Err(failure(op, &url, &mut response)),
            }
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split(';').next())
                .map(|l| l.trim().trim_start_matches('<').trim_end_matches('>').to_owned());
            let text = response
                .body_mut()
                .with_config()
                .limit(16 << 20)
                .read_to_string()
                .map_err(|e| RegistryError::new(op, &url, Cause::Transport(e.to_string())))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| RegistryError::new(op, &url, Cause::Answer(format!("not a tag list: {e}"))))?;
            out.extend(
                value["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)),
            );
            match next {
                Some(next) if next.starts_with('/') && !next.starts_with("//") => {
                    url = format!("{base}{next}")
                }
                // The next page elsewhere: the credentials of this registry are never sent to
                // another host, so it is refused rather than followed.
                Some(next)
                    if !next.is_empty()
                        && next.strip_prefix(base.as_str()).is_some_and(|r| r.starts_with('/')) =>
                {
                    url = next;
                }
                Some(next) if !next.is_empty() => {
                    return Err(RegistryError::new(
                        op,
                        &url,
                        Cause::Answer(format!(
                            "the next page of tags is on another host (`{next}`): not followed"
                        )),
                    ));
                }
                _ => return Ok(out),
            }
        }
    }

    /// Deletes the manifest `digest` from `reference`'s repository (and with it every tag that
    /// names it); whether it was there. The registry must allow deletes.
    pub fn delete_manifest(&self, reference: &Reference, digest: &str) -> Result<bool, RegistryError> {
        let op = Operation::DeleteManifest;
        let url = format!("{}/v2/{}/manifests/{digest}", Client::base(&reference.host), reference.repository);
        let mut response = self.send(op, "DELETE", &url, reference, true, &[], Body::Empty)?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(failure(op, &url, &mut response)),
        }
    }

    /// Puts `bytes` (of `media_type`) as the manifest `tag_or_digest` of `reference`'s
    /// repository; returns its digest.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            Client::base(&reference.host),
            reference.repository
        );
        let op = Operation::WriteManifest;
        let headers = [("Content-Type", media_type)];
        let mut response = self.send(op, "PUT", &url, reference, true, &headers, Body::Bytes(bytes))?;
        if response.status() != StatusCode::CREATED {
            return Err(failure(op, &url, &mut response));
        }
        let digest = format!("sha256:{}", hex(&Sha256::digest(bytes)));
        match named_digest(&response) {
            Some(named) if named != digest => Err(RegistryError::new(
                op,
                &url,
                Cause::Answer(format!("the registry stored the manifest {digest} as {named}")),
            )),
            _ => Ok(digest),
        }
    }
}

fn backoff(attempt: u32) {
    std::thread::sleep(Duration::from_millis(500 * u64::from(attempt * attempt + attempt - 1)));
}

/// A request the registry answered with an unexpected status, with its own error message when
/// it gave one.
fn failure(operation: Operation, url: &str, response: &mut Response<ureq::Body>) -> RegistryError {
    let status = response.status().as_u16();
    let content_type = content_type(response);
    let text = response.body_mut().with_config().limit(64 << 10).read_to_string().unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            // Not the registry's JSON: say what it was, never where JSON reading stopped.
            if content_type.is_empty() || content_type.contains("json") {
                String::new()
            } else {
                format!("the answer ({}) is not the registry's", shown_type(&content_type))
            }
        });
    RegistryError::new(operation, url, Cause::Status { status, message })
}

/// The media type a response names (`text/html` of `text/html; charset=utf-8`), empty when it
/// names none.
fn content_type(response: &Response<ureq::Body>) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The digest a response names in `Docker-Content-Digest`, if it names a valid one.
fn named_digest(response: &Response<ureq::Body>) -> Option<String> {
    response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| valid_digest(d))
        .map(str::to_owned)
}

/// A content type as a message shows it: in backticks, at most 100 characters.
fn shown_type(content_type: &str) -> String {
    if content_type.is_empty() {
        "no content type".to_owned()
    } else {
        format!("`{}`", content_type.chars().take(100).collect::<String>())
    }
}

/// Whether a content type is a web page's, never a registry's.
fn is_page(content_type: &str) -> bool {
    content_type == "text/html" || content_type == "application/xhtml+xml"
}

/// The media type of `bytes` answered as `content_type` when they are a manifest hephy reads:
/// the content type if it is one of [`MANIFEST_TYPES`] and the bytes are a JSON object, else
/// the object's own `mediaType`, else (OCI lets `mediaType` be left out) an index by its
/// `manifests`, an image by its `config` and `layers`. `None`: not a manifest.
fn manifest_type(content_type: &str, bytes: &[u8]) -> Option<String> {
    use serde::de::IgnoredAny;
    /// What tells a manifest's type: the fields, not their descriptors.
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u64>,
        manifests: Option<Vec<IgnoredAny>>,
        layers: Option<Vec<IgnoredAny>>,
    }
    let object = serde_json::from_slice::<HashMap<String, IgnoredAny>>(bytes).ok()?;
    if MANIFEST_TYPES.contains(&content_type) {
        return Some(content_type.to_owned());
    }
    // Fields of another shape than a manifest's: not one.
    let shape = serde_json::from_slice::<Shape>(bytes).ok()?;
    if object.contains_key("mediaType") {
        return shape.media_type.filter(|named| MANIFEST_TYPES.contains(&named.as_str()));
    }
    if shape.schema_version != Some(2) {
        return None;
    }
    if shape.manifests.is_some() {
        Some(MANIFEST_TYPES[0].to_owned())
    } else if object.contains_key("config") && shape.layers.is_some() {
        Some(MANIFEST_TYPES[1].to_owned())
    } else {
        None
    }
}

/// The `key="value"` pairs of an authentication challenge.
fn challenge_params(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((value, after)) => (value.to_owned(), after),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((value, after)) => (value.trim().to_owned(), after),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.insert(key, value);
        rest = after.trim_start_matches([',', ' ']);
    }
    out
}

/// Whether the registry is spoken to over plain HTTP: a loopback address.
pub fn insecure(registry: Option<&str>) -> bool {
    registry.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http() {
        assert!(insecure(Some("127.0.0.1:5000/team")));
        assert!(insecure(Some("localhost:5000")));
        assert!(!insecure(Some("registry.example.com/platform")));
        assert!(!insecure(None));
    }

    #[test]
    fn references_follow_dockers_rules() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.version()),
            ("docker.io", "library/alpine", "latest")
        );
        let r = Reference::parse("127.0.0.1:5000/team/curl:1.2").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.version()),
            ("127.0.0.1:5000", "team/curl", "1.2")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost:5000/curl@{digest}")).unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_deref(), r.version()), ("curl", None, digest.as_str()));
        assert!(Reference::parse("Alpine").is_err());
        assert!(Reference::parse("alpine@sha256:short").is_err());
        assert!(Reference::parse("alpine:bad$tag").is_err());
        let bad = Reference::parse("alpine:bad$tag").expect_err("a bad tag");
        assert_eq!(bad.why, BadReference::Tag);
        assert_eq!(
            bad.to_string(),
            "`alpine:bad$tag` is not an image reference: a tag is up to 128 letters, digits and `._-`"
        );
    }

    #[test]
    fn retries_decide_on_the_status_not_the_text() {
        // A port, an upload id and a digest full of `400`, and a status that is not 400.
        let url = "http://127.0.0.1:5400/v2/a/blobs/uploads/400-400?digest=sha256:4000400";
        let not_found = RegistryError::new(
            Operation::UploadBlob,
            url,
            Cause::Status { status: 404, message: "blob upload unknown 400".to_owned() },
        );
        assert!(not_found.to_string().contains("400"), "the text has `400` in it");
        assert!(!not_found.is_upload_race(), "an upload answered 404 is not a race");
        assert!(!not_found.is_retryable());
        let refused =
            RegistryError::new(Operation::UploadBlob, url, Cause::Transport("connection refused".into()));
        assert!(!refused.is_upload_race() && refused.is_retryable(), "no answer: sent again, not re-pushed");
        let stopped = RegistryError::new(Operation::UploadBlob, url, Cause::Stopped(Stopped::Cancelled));
        assert!(!stopped.is_retryable() && !stopped.is_upload_race());
        // The same URL with the statuses that do mean something.
        let status = |operation, status| {
            RegistryError::new(operation, url, Cause::Status { status, message: String::new() })
        };
        assert!(status(Operation::UploadBlob, 400).is_upload_race());
        assert!(status(Operation::WriteManifest, 404).is_upload_race());
        assert!(!status(Operation::ReadManifest, 400).is_upload_race());
        assert!(status(Operation::ReadManifest, 503).is_retryable());
        assert!(status(Operation::ReadManifest, 429).is_retryable());
        assert!(!status(Operation::ReadManifest, 403).is_retryable());
        assert_eq!(
            status(Operation::WriteManifest, 400).to_string(),
            format!("writing a manifest at {url} failed with 400 Bad Request")
        );
    }

    /// A server on 127.0.0.1 that answers every request with `answer(method, path)`: the
    /// status, the content type and the body (one request per connection).
    fn serve(answer: fn(&str, &str) -> (u16, &'static str, Vec<u8>)) -> String {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut parts = request.split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let (status, content_type, body) = answer(method, path);
                let mut stream = stream;
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                if method != "HEAD" {
                    let _ = stream.write_all(&body);
                }
            }
        });
        address
    }

    const PAGE: &str = "<html><body>Sign in to the hotel network</body></html>";

    #[test]
    fn a_sign_in_page_is_not_believed() {
        let address = serve(|_, _| (200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec()));
        let client = Client::once_only();
        let reference = Reference::parse(&format!("{address}/qs/web:hephy-1234")).unwrap();
        let error = client.resolve(&reference).expect_err("a page is not a manifest");
        assert_eq!(
            error.cause,
            Cause::NotWhatWasAsked { content_type: "text/html".to_owned(), wanted: "an image manifest" }
        );
        let text = error.to_string();
        assert!(text.contains(&format!("http://{address}/v2/qs/web/manifests/hephy-1234")), "{text}");
        assert!(text.contains("the answer (`text/html`) is not an image manifest"), "{text}");
        // By digest too: the page's own digest matches, its type does not.
        let page = format!("sha256:{}", hex(&Sha256::digest(PAGE.as_bytes())));
        let by_digest = Reference::parse(&format!("{address}/qs/web@{page}")).unwrap();
        assert!(
            matches!(client.manifest(&by_digest), Err(e) if matches!(e.cause, Cause::NotWhatWasAsked { .. }))
        );
        // A blob lookup is not "present" because a page answered.
        let blob = client.has_blob(&reference, &page).expect_err("a page is not a blob");
        assert!(blob.to_string().contains("the answer (`text/html`) is not a blob"), "{blob}");
        assert!(!blob.is_retryable());
        // A write answered `200` with the page, where the registry answers `201`.
        let put = client.push_manifest(&reference, "v1", MANIFEST_TYPES[1], b"{}").expect_err("not stored");
        assert_eq!(
            put.to_string(),
            format!(
                "writing a manifest at http://{address}/v2/qs/web/manifests/v1 failed with 200 OK: the answer (`text/html`) is not the registry's"
            )
        );
    }

    #[test]
    fn manifests_are_believed_by_type_and_digest() {
        let address = serve(|_, path| {
            let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
            match path {
                // No content type, no mediaType: an OCI index all the same.
                p if p.ends_with("/bare") => {
                    (200, "application/octet-stream", br#"{"schemaVersion":2,"manifests":[]}"#.to_vec())
                }
                p if p.ends_with("/json") => (200, "application/json", br#"{"errors":[]}"#.to_vec()),
                _ => (200, "application/vnd.oci.image.index.v1+json", manifest.to_vec()),
            }
        });
        let client = Client::once_only();
        let parse = |tag: &str| Reference::parse(&format!("{address}/qs/web:{tag}")).unwrap();
        let found = client.manifest(&parse("latest")).unwrap();
        assert_eq!(found.media_type, "application/vnd.oci.image.index.v1+json");
        assert_eq!(client.resolve(&parse("latest")).unwrap(), Some(found.digest));
        assert_eq!(client.manifest(&parse("bare")).unwrap().media_type, MANIFEST_TYPES[0]);
        let json = client.manifest(&parse("json")).expect_err("JSON that is no manifest");
        assert!(
            json.to_string().contains("the answer (`application/json`) is not an image manifest"),
            "{json}"
        );
    }

    #[test]
    fn a_token_realm_answering_a_page_says_so() {
        let address = serve(|_, path| {
            if path.starts_with("/token") {
                (200, "text/html", PAGE.as_bytes().to_vec())
            } else {
                (401, "application/json", Vec::new())
            }
        });
        let client = Client::once_only();
        let realm = format!("http://{address}/token");
        let error = client
            .authenticate(&address, &format!("Bearer realm=\"{realm}\",service=\"x\""), "repository:a:pull")
            .expect_err("a page holds no token");
        assert_eq!(
            error.to_string(),
            format!("{realm} answered no token: the answer (`text/html`) is not JSON")
        );
    }

    #[test]
    fn challenges_are_read() {
        let p = challenge_params(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/alpine:pull");
    }
}
