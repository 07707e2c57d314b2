//! Registry credentials as users already keep them: Docker's `config.json` (in `DOCKER_CONFIG`,
//! else `~/.docker`), its `auths` (a base64 `user:password`), and `credHelpers`/`credsStore`
//! answered by a `docker-credential-<helper> get` executable (`ecr-login`, `gcloud`, `pass`…).
//!
//! A credential is held in memory for the run and sent only to the registry it belongs to (or
//! its token realm); it is never printed, logged or stored.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// A login for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
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

/// The credential for `host`, if the user has one configured. A helper that fails or hangs is
/// remembered (see [`helper_failure`]) and never asked again by this process.
pub fn lookup(host: &str) -> Option<Credential> {
    let text = std::fs::read(config_path()?).ok()?;
    let config: Value = serde_json::from_slice(&text).ok()?;
    match from_config(&config, host, HELPER_PREFIX) {
        Ok(found) => found,
        Err(failure) => {
            FAILURES.lock().unwrap_or_else(PoisonError::into_inner).insert(host.to_owned(), failure);
            None
        }
    }
}

/// Why the credential helper configured for `host` gave no login, if it failed (for the message
/// of a registry that then refuses: the helper's own words, not "none is configured").
pub fn helper_failure(host: &str) -> Option<HelperFailure> {
    FAILURES.lock().unwrap_or_else(PoisonError::into_inner).get(host).cloned()
}

/// How credential helpers are called: `docker-credential-<name>`, found on `PATH`.
const HELPER_PREFIX: &str = "docker-credential-";

/// How long a helper may take to answer. One that waits for something that never comes (a
/// passphrase prompt with no terminal, a dead agent) is stopped with everything it started, and
/// the registry is asked without a login, which says what it refuses.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the answer of a helper that has exited is waited for: something it started in
/// another session may hold its stdout open.
const ANSWER_GRACE: Duration = Duration::from_millis(500);

/// Why a credential helper gave no login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperFailure {
    /// It could not be started (not on `PATH`, not executable).
    NotStarted {
        /// The program, `docker-credential-<name>`.
        program: String,
        /// The OS error.
        error: String,
    },
    /// It exited unsuccessfully (`status`: `None` when killed by a signal).
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: Option<i32>,
        /// What it said on stderr (or, failing that, stdout), trimmed and shortened.
        said: String,
    },
    /// It did not answer in time and was stopped, with every process it started.
    TimedOut {
        /// The program.
        program: String,
        /// How long it was given.
        after: Duration,
    },
    /// It answered something that is not a login.
    BadAnswer {
        /// The program.
        program: String,
    },
}

impl std::fmt::Display for HelperFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelperFailure::NotStarted { program, error } => {
                write!(f, "the credential helper `{program}` could not be started: {error}")
            }
            HelperFailure::Failed { program, status, said } => {
                match status {
                    Some(code) => write!(f, "the credential helper `{program}` exited with status {code}")?,
                    None => write!(f, "the credential helper `{program}` was killed by a signal")?,
                }
                if said.is_empty() { Ok(()) } else { write!(f, ": {said}") }
            }
            HelperFailure::TimedOut { program, after } => write!(
                f,
                "the credential helper `{program}` did not answer within {} and was stopped",
                humantime::format_duration(*after)
            ),
            HelperFailure::BadAnswer { program } => {
                write!(f, "the credential helper `{program}` answered something that is not a login")
            }
        }
    }
}

/// What each helper answered for each server, asked once per process.
type Asked = HashMap<(String, String), Result<Credential, HelperFailure>>;

/// Helpers' answers (and failures), so a failing or hanging helper costs its time once.
static ASKED: LazyLock<Mutex<Asked>> = LazyLock::new(Mutex::default);

/// The last helper failure for each registry host.
static FAILURES: LazyLock<Mutex<HashMap<String, HelperFailure>>> = LazyLock::new(Mutex::default);

fn from_config(config: &Value, host: &str, helper_prefix: &str) -> Result<Option<Credential>, HelperFailure> {
    let keys = keys(host);
    for key in &keys {
        if let Some(helper) = config["credHelpers"][key.as_str()].as_str() {
            return asked(helper_prefix, helper, key, HELPER_TIMEOUT).map(Some);
        }
    }
    for key in &keys {
        let entry = &config["auths"][key.as_str()];
        if let Some(auth) = entry["auth"].as_str() {
            let Some((username, secret)) = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|decoded| String::from_utf8(decoded).ok())
                .and_then(|text| text.split_once(':').map(|(u, s)| (u.to_owned(), s.to_owned())))
            else {
                return Ok(None);
            };
            return Ok(Some(Credential { username, secret }));
        }
        if let Some(token) = entry["identitytoken"].as_str() {
            return Ok(Some(Credential { username: "<token>".to_owned(), secret: token.to_owned() }));
        }
    }
    let Some(store) = config["credsStore"].as_str() else { return Ok(None) };
    // The store is asked under each name the host may be filed under; one that hangs is not
    // asked again, and when none has a login, the last answer says why.
    let mut last = None;
    for key in &keys {
        match asked(helper_prefix, store, key, HELPER_TIMEOUT) {
            Ok(credential) => return Ok(Some(credential)),
            Err(failure @ (HelperFailure::TimedOut { .. } | HelperFailure::NotStarted { .. })) => {
                return Err(failure);
            }
            Err(failure) => last = Some(failure),
        }
    }
    last.map_or(Ok(None), Err)
}

/// [`from_helper`], once per process for each helper and server.
fn asked(prefix: &str, helper: &str, server: &str, timeout: Duration) -> Result<Credential, HelperFailure> {
    let id = (format!("{prefix}{helper}"), server.to_owned());
    if let Some(answer) = ASKED.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
        return answer.clone();
    }
    let answer = from_helper(prefix, helper, server, timeout);
    ASKED.lock().unwrap_or_else(PoisonError::into_inner).insert(id, answer.clone());
    answer
}

/// At most this much of what a failing helper said is repeated.
const SAID_LIMIT: usize = 500;

/// Asks `docker-credential-<helper>` for `server`'s credential (the helper protocol: the server
/// on stdin, `{"Username", "Secret"}` on stdout), giving it `timeout` to answer. It runs in a
/// process group of its own, killed whole when it fails or runs out of time.
fn from_helper(
    prefix: &str,
    helper: &str,
    server: &str,
    timeout: Duration,
) -> Result<Credential, HelperFailure> {
    let program = format!("{prefix}{helper}");
    let shown = format!("{HELPER_PREFIX}{helper}");
    if !helper.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(HelperFailure::NotStarted { program: shown, error: "not a helper name".to_owned() });
    }
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| HelperFailure::NotStarted { program: shown.clone(), error: e.to_string() })?;
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let fed = child.stdin.take().map(|mut stdin| stdin.write_all(server.as_bytes()));
    // Both streams are read beside the wait, so a helper that fills a pipe is not stuck, and
    // through a channel, so something that outlives the helper cannot hold this lookup.
    let read = |stream: Option<Box<dyn Read + Send>>| {
        let (sender, receiver) = std::sync::mpsc::channel();
        if let Some(mut stream) = stream {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = stream.by_ref().take(1 << 20).read_to_end(&mut bytes);
                let _ = sender.send(bytes);
            });
        }
        receiver
    };
    let stdout = read(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let stderr = read(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let status = wait_until(&mut child, Instant::now() + timeout);
    // A helper that hung or failed takes whatever it started in its group with it (one that
    // answered may have started an agent meant to outlive it).
    let stop_group = || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    };
    let Some(status) = status else {
        stop_group();
        return Err(HelperFailure::TimedOut { program: shown, after: timeout });
    };
    if !status.success() {
        stop_group();
    }
    let answer = stdout.recv_timeout(ANSWER_GRACE).unwrap_or_default();
    if !status.success() || fed.is_none_or(|f| f.is_err()) {
        let errors = stderr.recv_timeout(ANSWER_GRACE).unwrap_or_default();
        // Helpers say why on stderr, or (docker's own) on stdout; never repeat an answer that
        // looks like a login.
        let said =
            if errors.iter().any(|b| !b.is_ascii_whitespace()) || answer.windows(6).any(|w| w == b"Secret") {
                errors
            } else {
                answer
            };
        let said = String::from_utf8_lossy(&said);
        let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
        let said = match said.char_indices().nth(SAID_LIMIT) {
            Some((at, _)) => format!("{}…", &said[..at]),
            None => said,
        };
        return Err(HelperFailure::Failed { program: shown, status: status.code(), said });
    }
    let bad = || HelperFailure::BadAnswer { program: shown.clone() };
    let answer: Value = serde_json::from_slice(&answer).map_err(|_| bad())?;
    Ok(Credential {
        username: answer["Username"].as_str().ok_or_else(bad)?.to_owned(),
        secret: answer["Secret"].as_str().ok_or_else(bad)?.to_owned(),
    })
}

/// Waits for `child` until `deadline`; past it, kills it (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    let exited = crate::exit::exit_watch(child.id());
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
        crate::exit::wait_for_exit(exited.as_ref(), pause);
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
        let c = from_config(&config, "registry.example.com", HELPER_PREFIX).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("user", "pa:ss"));
        assert!(from_config(&config, "other.example.com", HELPER_PREFIX).unwrap().is_none());
        assert!(!format!("{c:?}").contains("pa:ss"), "a secret is never printed");
        let hub = json!({"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="}}});
        assert!(from_config(&hub, "docker.io", HELPER_PREFIX).unwrap().is_some());
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
        let c = from_config(&config, "registry.example.com", &prefix).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("AWS", "s3cr3t"));
        assert!(matches!(
            from_config(&json!({"credsStore": "hephytest"}), "other.example.com", &prefix),
            Err(HelperFailure::Failed { status: Some(1), .. })
        ));
        assert!(matches!(
            from_config(&json!({"credsStore": "../evil"}), "registry.example.com", &prefix),
            Err(HelperFailure::NotStarted { .. })
        ));
    }

    #[test]
    fn a_hung_helper_is_stopped_with_its_children_and_a_failing_one_says_why() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let helper = dir.path().join("docker-credential-hangs");
        std::fs::write(&helper, format!("#!/bin/sh\nsleep 600 &\necho $! > {}\nwait\n", pid_file.display()))
            .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let failing = dir.path().join("docker-credential-fails");
        std::fs::write(&failing, "#!/bin/sh\necho 'keychain locked' >&2\nexit 4\n").unwrap();
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prefix = format!("{}/docker-credential-", dir.path().display());
        let started = Instant::now();
        let answer = from_helper(&prefix, "hangs", "registry.example.com", Duration::from_millis(300));
        assert!(matches!(answer, Err(HelperFailure::TimedOut { .. })), "{answer:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        let alive = stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'));
        assert!(!alive, "the helper's child outlived it");
        let failed =
            from_helper(&prefix, "fails", "registry.example.com", Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            failed.to_string(),
            "the credential helper `docker-credential-fails` exited with status 4: keychain locked"
        );
        // Asked once: a second lookup answers from memory, at once.
        let first = asked(&prefix, "hangs", "hung.example.com", Duration::from_millis(300));
        let again = Instant::now();
        let second = asked(&prefix, "hangs", "hung.example.com", Duration::from_millis(300));
        assert_eq!(first, second);
        assert!(again.elapsed() < Duration::from_secs(1));
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
        assert!(matches!(answer, Err(HelperFailure::TimedOut { .. })), "{answer:?}");
    }
}
