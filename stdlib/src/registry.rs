//! A small client of the OCI distribution API (the registry protocol): manifests and blobs, by
//! tag or digest, with the registries' token and basic authentication, credentials as users
//! keep them ([`crate::credentials`]), and retries of transient failures.
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

use crate::credentials::{self, Credential};
use crate::oci::layout::{hex, valid_digest};

/// The manifest media types hephy asks for and understands.
pub(crate) const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// An image reference: `host/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The registry's host (and port), `docker.io` for Docker Hub.
    pub(crate) host: String,
    /// The repository (`library/alpine`).
    pub(crate) repository: String,
    /// The tag.
    pub(crate) tag: Option<String>,
    /// The digest.
    pub(crate) digest: Option<String>,
}

impl Reference {
    /// Parses `text` with Docker's rules (`alpine` is `docker.io/library/alpine:latest`).
    pub(crate) fn parse(text: &str) -> Result<Reference, String> {
        let bad = |why: &str| format!("`{text}` is not an image reference: {why}");
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) if valid_digest(digest) => (rest, Some(digest.to_owned())),
            Some(_) => return Err(bad("the part after `@` is not a sha256 digest")),
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
            return Err(bad("a repository is lower-case letters, digits and `._-`, separated by `/`"));
        }
        if let Some(tag) = &tag
            && (tag.is_empty()
                || tag.len() > 128
                || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                || tag.starts_with(['.', '-']))
        {
            return Err(bad("a tag is up to 128 letters, digits and `._-`"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        Ok(Reference { host, repository, tag, digest })
    }

    /// The digest if there is one, else the tag.
    pub(crate) fn version(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

/// A fetched manifest (an image manifest or an index).
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    /// Its media type.
    pub(crate) media_type: String,
    /// Its bytes, exactly as the registry holds them.
    pub(crate) bytes: Vec<u8>,
    /// `sha256:` of the bytes.
    pub(crate) digest: String,
}

/// A request body that can be sent again after an authentication round trip.
#[derive(Clone, Copy)]
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A registry client, shared by every node of a run.
#[derive(Debug)]
pub(crate) struct Client {
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
    pub(crate) fn new() -> Client {
        Client::with_attempts(ATTEMPTS)
    }

    /// A client that tries each request once (lookups that may simply go without).
    pub(crate) fn once_only() -> Client {
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
        let scheme = if crate::reference::insecure(Some(host)) { "http" } else { "https" };
        format!("{scheme}://{api}")
    }

    fn credential(&self, host: &str) -> Option<Credential> {
        let mut map = self.credentials.lock().ok()?;
        map.entry(host.to_owned()).or_insert_with(|| credentials::lookup(host)).clone()
    }

    /// Sends one request, answering an authentication challenge once and retrying transient
    /// failures.
    fn send(
        &self,
        method: &str,
        url: &str,
        reference: &Reference,
        push: bool,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response<ureq::Body>, String> {
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
                    let token = self.authenticate(&reference.host, &challenge, &scope)?;
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
                Err(_) if attempt < self.attempts => {
                    backoff(attempt);
                    attempt += 1;
                }
                Err(e) => return Err(format!("{method} {url}: {e}")),
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
    ) -> Result<Response<ureq::Body>, String> {
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
            ("POST", Body::Empty) => with_headers!(self.agent.post(url)).send_empty(),
            ("PUT", Body::Empty) => with_headers!(self.agent.put(url)).send_empty(),
            ("PUT", Body::Bytes(bytes)) => with_headers!(self.agent.put(url)).send(bytes),
            ("PUT", Body::File(path)) => {
                let file = File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                with_headers!(self.agent.put(url)).send(file)
            }
            _ => return Err(format!("unsupported request {method}")),
        };
        result.map_err(|e| e.to_string())
    }

    /// Answers a `WWW-Authenticate` challenge: a bearer token from the realm (anonymous, or
    /// with the user's credential), or the credential itself for basic authentication.
    fn authenticate(&self, host: &str, challenge: &str, scope: &str) -> Result<String, String> {
        let credential = self.credential(host);
        let basic = credential.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.secret))
            )
        });
        let lower = challenge.to_ascii_lowercase();
        if lower.starts_with("basic") {
            return basic.ok_or_else(|| match credentials::helper_failure(host) {
                Some(failure) => format!("{host} asks for a login and {failure}"),
                None => format!(
                    "{host} asks for a login and none is configured (add it with `docker login {host}`)"
                ),
            });
        }
        if !lower.starts_with("bearer") {
            return Err(format!("{host} asks for an authentication hephy does not speak: `{challenge}`"));
        }
        let params = challenge_params(&challenge[6..]);
        let realm = params.get("realm").ok_or_else(|| format!("{host}'s token challenge names no realm"))?;
        let mut request = self.agent.get(realm).query("scope", scope);
        if let Some(service) = params.get("service") {
            request = request.query("service", service);
        }
        if let Some(basic) = &basic {
            request = request.header("Authorization", basic);
        }
        let mut response = request.call().map_err(|e| format!("asking {realm} for a token: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "{realm} refused a token for `{scope}` ({}){}",
                response.status(),
                match (&basic, credentials::helper_failure(host)) {
                    (Some(_), _) => String::new(),
                    (None, Some(failure)) => format!("; {failure}"),
                    (None, None) => "; no credentials are configured for this registry".to_owned(),
                }
            ));
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| format!("{realm} answered no token: {e}"))?;
        let body: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{realm} answered no token: {e}"))?;
        body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("{realm} answered no token"))
    }

    /// A GET or HEAD of the manifest `reference` names, accepting every type hephy reads.
    fn ask_manifest(
        &self,
        method: &str,
        reference: &Reference,
    ) -> Result<(String, Response<ureq::Body>), String> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            Client::base(&reference.host),
            reference.repository,
            reference.version()
        );
        let accept = MANIFEST_TYPES.join(", ");
        let response = self.send(method, &url, reference, false, &[("Accept", &accept)], Body::Empty)?;
        Ok((url, response))
    }

    /// The manifest `reference` names (by digest, else tag).
    pub(crate) fn manifest(&self, reference: &Reference) -> Result<Manifest, String> {
        let (url, mut response) = self.ask_manifest("GET", reference)?;
        let status = response.status();
        if !status.is_success() {
            return Err(failure("reading the manifest", &url, &mut response));
        }
        let media_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .unwrap_or_default();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| format!("reading {url}: {e}"))?;
        let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        if let Some(expected) = &reference.digest
            && *expected != digest
        {
            return Err(format!("{url} answered a manifest whose digest is {digest}"));
        }
        let media_type = if media_type.is_empty() || !MANIFEST_TYPES.contains(&media_type.as_str()) {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
                .unwrap_or(media_type)
        } else {
            media_type
        };
        Ok(Manifest { media_type, bytes, digest })
    }

    /// The digest `reference` resolves to, or `None` when the registry has no such manifest.
    pub(crate) fn resolve(&self, reference: &Reference) -> Result<Option<String>, String> {
        let (url, mut response) = self.ask_manifest("HEAD", reference)?;
        match response.status() {
            s if s.is_success() => {
                match response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()) {
                    Some(digest) if valid_digest(digest) => Ok(Some(digest.to_owned())),
                    // Some registries leave the header off a HEAD: ask for the bytes.
                    _ => self.manifest(reference).map(|m| Some(m.digest)),
                }
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(failure("looking up the manifest", &url, &mut response)),
        }
    }

    /// Downloads blob `digest` of `reference`'s repository into `out`, checking its digest.
    pub(crate) fn blob(&self, reference: &Reference, digest: &str, out: &mut File) -> Result<(), String> {
        let url = format!("{}/v2/{}/blobs/{digest}", Client::base(&reference.host), reference.repository);
        let mut response = self.send("GET", &url, reference, false, &[], Body::Empty)?;
        if !response.status().is_success() {
            return Err(failure("downloading a blob", &url, &mut response));
        }
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buffer).map_err(|e| format!("downloading {url}: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n]).map_err(|e| format!("saving {url}: {e}"))?;
        }
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        if got == digest { Ok(()) } else { Err(format!("{url} sent a blob whose digest is {got}")) }
    }

    /// Whether `reference`'s repository has blob `digest`.
    fn has_blob(&self, reference: &Reference, digest: &str) -> Result<bool, String> {
        let url = format!("{}/v2/{}/blobs/{digest}", Client::base(&reference.host), reference.repository);
        let mut response = self.send("HEAD", &url, reference, true, &[], Body::Empty)?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(failure("looking up a blob", &url, &mut response)),
        }
    }

    /// Uploads the file `path` as blob `digest` (unless the repository has it).
    pub(crate) fn push_blob(&self, reference: &Reference, digest: &str, path: &Path) -> Result<(), String> {
        // An upload racing another of the same blob (another process) may be refused as
        // invalid: look again, and upload again.
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            match self.push_blob_once(reference, digest, path) {
                Err(e) if attempt < 3 && e.contains("400") => {
                    std::thread::sleep(Duration::from_millis(300 * attempt));
                }
                other => return other,
            }
        }
    }

    fn push_blob_once(&self, reference: &Reference, digest: &str, path: &Path) -> Result<(), String> {
        if self.has_blob(reference, digest)? {
            return Ok(());
        }
        let base = Client::base(&reference.host);
        let url = format!("{base}/v2/{}/blobs/uploads/", reference.repository);
        let mut response = self.send("POST", &url, reference, true, &[], Body::Empty)?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(failure("starting a blob upload", &url, &mut response));
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("{url} gave no upload location"))?;
        let location =
            if location.starts_with('/') { format!("{base}{location}") } else { location.to_owned() };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let mut response = self.send(
            "PUT",
            &put,
            reference,
            true,
            &[("Content-Type", "application/octet-stream")],
            Body::File(path),
        )?;
        if response.status() != StatusCode::CREATED {
            return Err(failure("uploading a blob", &url, &mut response));
        }
        Ok(())
    }

    /// Puts `bytes` (of `media_type`) as the manifest `tag_or_digest` of `reference`'s
    /// repository; returns its digest.
    pub(crate) fn push_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, String> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            Client::base(&reference.host),
            reference.repository
        );
        let mut response =
            self.send("PUT", &url, reference, true, &[("Content-Type", media_type)], Body::Bytes(bytes))?;
        if response.status() != StatusCode::CREATED {
            return Err(failure("writing a manifest", &url, &mut response));
        }
        Ok(format!("sha256:{}", hex(&Sha256::digest(bytes))))
    }
}

fn backoff(attempt: u32) {
    std::thread::sleep(Duration::from_millis(500 * u64::from(attempt * attempt + attempt - 1)));
}

/// What went wrong with a request, with the registry's own error message when it gave one.
fn failure(what: &str, url: &str, response: &mut Response<ureq::Body>) -> String {
    let status = response.status();
    let text = response.body_mut().with_config().limit(64 << 10).read_to_string().unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
    format!("{what} at {url} failed with {status}{detail}")
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

#[cfg(test)]
mod tests {
    use super::*;

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
