//! Registry credentials as users already keep them: Docker's `config.json` (in `DOCKER_CONFIG`,
//! else `~/.docker`), its `auths` (a base64 `user:password`), and `credHelpers`/`credsStore`
//! answered by a `docker-credential-<helper> get` executable (`ecr-login`, `gcloud`, `pass`…).
//!
//! A credential is held in memory for the run and sent only to the registry it belongs to (or
//! its token realm); it is never printed, logged or stored.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// A login for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    pub(crate) username: String,
    pub(crate) secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("username", &self.username).field("secret", &"<hidden>").finish()
    }
}

fn config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
        _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json")),
    }
}

/// The names `host` may be filed under in `config.json`.
fn keys(host: &str) -> Vec<String> {
    if host == "docker.io" {
        vec![
            "https://index.docker.io/v1/".to_owned(),
            "index.docker.io".to_owned(),
            "docker.io".to_owned(),
            "registry-1.docker.io".to_owned(),
        ]
    } else {
        vec![
            host.to_owned(),
            format!("https://{host}"),
            format!("http://{host}"),
            format!("https://{host}/v1/"),
        ]
    }
}

/// The credential for `host`, if the user has one configured.
pub(crate) fn lookup(host: &str) -> Option<Credential> {
    let text = std::fs::read(config_path()?).ok()?;
    let config: Value = serde_json::from_slice(&text).ok()?;
    from_config(&config, host, HELPER_PREFIX)
}

/// How credential helpers are called: `docker-credential-<name>`, found on `PATH`.
const HELPER_PREFIX: &str = "docker-credential-";

/// How long a helper may take to answer. One that waits for something that never comes (a
/// passphrase prompt with no terminal, a dead agent) is stopped, and the registry is asked
/// without a login, which says what it refuses.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

fn from_config(config: &Value, host: &str, helper_prefix: &str) -> Option<Credential> {
    let keys = keys(host);
    for key in &keys {
        if let Some(helper) = config["credHelpers"][key.as_str()].as_str() {
            return from_helper(helper_prefix, helper, key, HELPER_TIMEOUT);
        }
    }
    for key in &keys {
        let entry = &config["auths"][key.as_str()];
        if let Some(auth) = entry["auth"].as_str() {
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (username, secret) = text.split_once(':')?;
            return Some(Credential { username: username.to_owned(), secret: secret.to_owned() });
        }
        if let Some(token) = entry["identitytoken"].as_str() {
            return Some(Credential { username: "<token>".to_owned(), secret: token.to_owned() });
        }
    }
    let store = config["credsStore"].as_str()?;
    keys.iter().find_map(|key| from_helper(helper_prefix, store, key, HELPER_TIMEOUT))
}

/// Asks `docker-credential-<helper>` for `server`'s credential (the helper protocol: the server
/// on stdin, `{"Username", "Secret"}` on stdout), giving it `timeout` to answer.
fn from_helper(prefix: &str, helper: &str, server: &str, timeout: Duration) -> Option<Credential> {
    if !helper.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return None;
    }
    let mut child = Command::new(format!("{prefix}{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let fed = child.stdin.take().map(|mut stdin| stdin.write_all(server.as_bytes()));
    // The answer is read beside the wait, so a helper that fills the pipe is not stuck.
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut answer = Vec::new();
        stdout.read_to_end(&mut answer).map(|_| answer)
    });
    // Stopped: the reader is left to end with the pipe (something the helper started may
    // hold it open).
    let status = wait_until(&mut child, Instant::now() + timeout)?;
    let answer = reader.join().ok()?.ok()?;
    if fed.is_none_or(|f| f.is_err()) || !status.success() {
        return None;
    }
    let answer: Value = serde_json::from_slice(&answer).ok()?;
    Some(Credential {
        username: answer["Username"].as_str()?.to_owned(),
        secret: answer["Secret"].as_str()?.to_owned(),
    })
}

/// Waits for `child` until `deadline`; past it, kills it (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    let exited = crate::process::exit_watch(child.id());
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {}
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
        crate::process::wait_for_exit(exited.as_ref(), pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auths_hold_base64_logins() {
        let config = json!({"auths": {"registry.example.com": {"auth": "dXNlcjpwYTpzcw=="}}});
        let c = from_config(&config, "registry.example.com", HELPER_PREFIX).unwrap();
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("user", "pa:ss"));
        assert!(from_config(&config, "other.example.com", HELPER_PREFIX).is_none());
        assert!(!format!("{c:?}").contains("pa:ss"), "a secret is never printed");
        let hub = json!({"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="}}});
        assert!(from_config(&hub, "docker.io", HELPER_PREFIX).is_some());
    }

    #[test]
    fn helpers_are_asked_through_the_helper_protocol() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-hephytest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = registry.example.com ] || exit 1\necho '{\"ServerURL\":\"x\",\"Username\":\"AWS\",\"Secret\":\"s3cr3t\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prefix = format!("{}/docker-credential-", dir.path().display());
        let config = json!({"credHelpers": {"registry.example.com": "hephytest"}});
        let c = from_config(&config, "registry.example.com", &prefix).unwrap();
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("AWS", "s3cr3t"));
        assert!(from_config(&json!({"credsStore": "hephytest"}), "other.example.com", &prefix).is_none());
        assert!(from_config(&json!({"credsStore": "../evil"}), "registry.example.com", &prefix).is_none());
    }

    #[test]
    fn a_helper_that_never_answers_is_stopped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-stuck");
        // `exec`, so the helper's pid is the sleeping process itself.
        std::fs::write(&helper, "#!/bin/sh\nread server\nexec sleep 600\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prefix = format!("{}/docker-credential-", dir.path().display());
        let answer = from_helper(&prefix, "stuck", "registry.example.com", Duration::from_millis(200));
        assert!(answer.is_none());
    }
}
