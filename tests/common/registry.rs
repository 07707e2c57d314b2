//! A real registry (`docker-registry`, distribution v2) on 127.0.0.1, started per test and
//! stopped by its guard; and the tools image tests need.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One of hephy's cache records, as `Registry::records` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// Its tag in the cache repository (`hephy-<key>`).
    pub tag: String,
    /// The node it records.
    pub node: String,
    /// The repository the node's output was pushed to (`HOST/PATH`).
    pub repository: String,
    /// The output's digest there.
    pub digest: String,
    /// The node's whole key.
    pub key: String,
}

/// A running registry; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// A registry that wants this basic-auth login (`htpasswd`, from apache2-utils, makes the
    /// bcrypt file).
    pub fn start_with_login(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let auth = match login {
            Some((user, password)) => {
                let out =
                    Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("run htpasswd");
                assert!(out.status.success(), "htpasswd failed");
                std::fs::write(dir.path().join("htpasswd"), out.stdout).expect("write htpasswd");
                format!(
                    "auth: {{htpasswd: {{realm: hephy-test, path: {}}}}}\n",
                    dir.path().join("htpasswd").display()
                )
            }
            None => String::new(),
        };
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let config: PathBuf = dir.path().join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .expect("write config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, port, _dir: dir };
        let start = Instant::now();
        while !registry.ready() {
            assert!(start.elapsed() < Duration::from_secs(10), "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port);
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && (response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.0 401"))
    }

    /// The tags of `repository` (empty when it does not exist).
    pub fn tags(&self, repository: &str) -> Vec<String> {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return Vec::new() };
        let request =
            format!("GET /v2/{repository}/tags/list HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port);
        let mut response = String::new();
        if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut response).is_err() {
            return Vec::new();
        }
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["tags"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    }

    /// hephy's cache records in the cache repository `cache` (`PREFIX/hephy-cache`), each
    /// read back by its tag: (tag, the annotations `node`, `repository`, `digest`, `key`).
    /// buildah's layer cache shares the repository: its tags (64 hex digits) are not records.
    pub fn records(&self, cache: &str) -> Vec<CacheRecord> {
        let mut out: Vec<CacheRecord> = self
            .tags(cache)
            .into_iter()
            .filter(|tag| tag.starts_with("hephy-"))
            .map(|tag| {
                let raw: serde_json::Value =
                    serde_json::from_str(&self.raw(&format!("{cache}:{tag}"))).expect("a record is JSON");
                assert_eq!(raw["artifactType"], "application/vnd.hephy.cache.record.v1", "{raw}");
                let a = |k: &str| {
                    raw["annotations"][format!("dev.hephy.cache.{k}")].as_str().unwrap_or_default().to_owned()
                };
                CacheRecord {
                    tag,
                    node: a("node"),
                    repository: a("repository"),
                    digest: a("digest"),
                    key: a("key"),
                }
            })
            .collect();
        out.sort_by(|a, b| a.tag.cmp(&b.tag));
        out
    }

    /// Every manifest hephy pushed to `repository` under a key: its `hephy-` tags (builders that
    /// push themselves tag their builds so) and the outputs in it its cache records in `cache`
    /// name; each as what follows the repository's name (`:hephy-…`, `@sha256:…`).
    pub fn keyed(&self, repository: &str, cache: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .tags(repository)
            .into_iter()
            .filter(|t| t.starts_with("hephy-"))
            .map(|t| format!(":{t}"))
            .collect();
        let suffix = format!("/{repository}");
        for record in self.records(cache) {
            if record.repository.ends_with(&suffix) && !out.contains(&format!("@{}", record.digest)) {
                out.push(format!("@{}", record.digest));
            }
        }
        out
    }

    /// `skopeo inspect --raw` of a reference in this registry.
    pub fn raw(&self, reference: &str) -> String {
        let output = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{reference}", self.address()))
            .output()
            .expect("run skopeo");
        assert!(
            output.status.success(),
            "skopeo inspect {reference}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Panics unless the image tools are installed: the tests that call this are `#[ignore]`d, so
/// they run only when asked for (`cargo test -- --include-ignored`, as `.ci/run` does), and then
/// a missing tool is a failure, never a skip.
pub fn require_image_tools() {
    crate::common::require(
        &["buildah", "skopeo", "docker-registry"],
        "apt-get install buildah skopeo docker-registry",
    );
}

/// The sha256 digest of some bytes, as the registry names manifests.
pub fn sha256(text: &str) -> String {
    let mut child =
        Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let output = child.wait_with_output().expect("sha256sum");
    format!("sha256:{}", String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or(""))
}
