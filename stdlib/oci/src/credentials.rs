//! Registry credentials as users already keep them: Docker's `config.json` (in `DOCKER_CONFIG`,
//! else `~/.docker`), its `auths` (a base64 `user:password`), and `credHelpers`/`credsStore`
//! answered by a `docker-credential-<helper> get` executable (`ecr-login`, `gcloud`, `pass`…).
//!
//! A credential is held in memory for the run and sent only to the registry it belongs to (or
//! its token realm); it is never printed, logged or stored. Neither is what a failing helper
//! printed (it may hold a token): a failure says the helper, its exit status, and how to ask it
//! by hand. A helper that hung or failed slowly is remembered, by helper and server, in a small
//! file of the state folder ([`remember_failures_in`]) for [`REMEMBERED_FOR`], so later
//! processes do not wait for it again.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
/// remembered (see [`helper_failure`]) and never asked again by this process (nor, when it
/// hung or failed slowly, by a later one for [`REMEMBERED_FOR`]: [`remember_failures_in`]).
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

/// Why a credential helper gave no login. What the helper printed is never kept: it may hold a
/// token.
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
        /// The server it was asked about.
        server: String,
        /// Its exit status.
        status: Option<i32>,
    },
    /// It did not answer in time and was stopped, with every process it started.
    TimedOut {
        /// The program.
        program: String,
        /// The server it was asked about.
        server: String,
        /// How long it was given.
        after: Duration,
    },
    /// It answered something that is not a login.
    BadAnswer {
        /// The program.
        program: String,
        /// The server it was asked about.
        server: String,
    },
    /// It failed so in an earlier process, `ago`, and is not asked again before `left` has
    /// passed, or `file` (the memory) is removed.
    Earlier {
        /// How it failed then.
        failure: Box<HelperFailure>,
        /// How long ago.
        ago: Duration,
        /// How long until it is asked again.
        left: Duration,
        /// The file that remembers it.
        file: PathBuf,
    },
}

impl HelperFailure {
    /// The failure without when it happened.
    fn headline(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelperFailure::NotStarted { program, error } => {
                write!(f, "the credential helper `{program}` could not be started: {error}")
            }
            HelperFailure::Failed { program, status: Some(code), .. } => {
                write!(f, "the credential helper `{program}` exited with status {code}")
            }
            HelperFailure::Failed { program, status: None, .. } => {
                write!(f, "the credential helper `{program}` was killed by a signal")
            }
            HelperFailure::TimedOut { program, after, .. } => write!(
                f,
                "the credential helper `{program}` did not answer within {} and was stopped",
                humantime::format_duration(*after)
            ),
            HelperFailure::BadAnswer { program, .. } => {
                write!(f, "the credential helper `{program}` answered something that is not a login")
            }
            HelperFailure::Earlier { failure, .. } => failure.headline(f),
        }
    }

    /// How to see for oneself what the helper says: the command that asks it by hand.
    fn by_hand(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelperFailure::NotStarted { .. } => Ok(()),
            HelperFailure::Failed { program, server, .. }
            | HelperFailure::TimedOut { program, server, .. }
            | HelperFailure::BadAnswer { program, server } => {
                let what = match self {
                    HelperFailure::TimedOut { .. } => "what it waits for",
                    _ => "what it says",
                };
                write!(
                    f,
                    "; its output is not shown, as it may hold a secret: to see {what}, run `printf '%s\\n' {} | {program} get`",
                    shell_quoted(server)
                )
            }
            HelperFailure::Earlier { failure, .. } => failure.by_hand(f),
        }
    }
}

impl std::fmt::Display for HelperFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.headline(f)?;
        if let HelperFailure::Earlier { ago, left, file, .. } = self {
            let seconds = |d: &Duration| humantime::format_duration(Duration::from_secs(d.as_secs().max(1)));
            write!(
                f,
                " in a run {} ago, and is asked again in {} (or once `{}` is removed)",
                seconds(ago),
                seconds(left),
                file.display()
            )?;
        }
        self.by_hand(f)
    }
}

/// `text` as one word of a POSIX shell: in single quotes, each of its own written `'\''`.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
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
            Err(
                failure @ (HelperFailure::TimedOut { .. }
                | HelperFailure::NotStarted { .. }
                | HelperFailure::Earlier { .. }),
            ) => {
                return Err(failure);
            }
            Err(failure) => last = Some(failure),
        }
    }
    last.map_or(Ok(None), Err)
}

/// [`from_helper`], once per process for each helper and server, and not at all while the
/// memory of the state folder (if [`remember_failures_in`] named one) holds a failure of it.
fn asked(prefix: &str, helper: &str, server: &str, timeout: Duration) -> Result<Credential, HelperFailure> {
    let id = (format!("{prefix}{helper}"), server.to_owned());
    if let Some(answer) = ASKED.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
        return answer.clone();
    }
    let memory = MEMORY.get().map(|dir| dir.join(MEMORY_FILE));
    let answer = ask(memory.as_deref(), prefix, helper, server, timeout);
    ASKED.lock().unwrap_or_else(PoisonError::into_inner).insert(id, answer.clone());
    answer
}

/// [`from_helper`], unless `memory` (the file) remembers a failure of the helper for `server`;
/// a failure that cost time is remembered there.
fn ask(
    memory: Option<&Path>,
    prefix: &str,
    helper: &str,
    server: &str,
    timeout: Duration,
) -> Result<Credential, HelperFailure> {
    let program = format!("{HELPER_PREFIX}{helper}");
    if let Some(earlier) = memory.and_then(|file| remembered(file, &program, server, SystemTime::now())) {
        return Err(earlier);
    }
    let started = Instant::now();
    let answer = from_helper(prefix, helper, server, timeout);
    if let (Some(file), Err(failure)) = (memory, &answer)
        && (matches!(failure, HelperFailure::TimedOut { .. }) || started.elapsed() >= WORTH_REMEMBERING)
    {
        remember(file, failure, SystemTime::now());
    }
    answer
}

/// Where helpers' failures are remembered across processes: a file in this folder (hephy's
/// state folder). The first call of a process decides; without one, a failure is remembered
/// by the process alone.
pub fn remember_failures_in(dir: &Path) {
    let _ = MEMORY.set(dir.to_path_buf());
}

/// The folder [`remember_failures_in`] named.
static MEMORY: OnceLock<PathBuf> = OnceLock::new();

/// The memory's file in that folder: `{"failures": [{program, server, at, failure}]}`, never a
/// credential nor anything a helper printed.
const MEMORY_FILE: &str = "credential-helpers.json";

/// How long a helper's failure is remembered: a helper waiting for a keychain or an agent is
/// not waited for by every plan, and is asked again soon after it is fixed.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(10 * 60);

/// A failure that took this long (or a timeout) is remembered; a quick one costs nothing to
/// see again, and is seen fixed at once.
const WORTH_REMEMBERING: Duration = Duration::from_secs(1);

/// The failure `file` remembers of `program` for `server`, if it is younger than
/// [`REMEMBERED_FOR`] at `now` (one from the future, a clock set back, is not believed).
fn remembered(file: &Path, program: &str, server: &str, now: SystemTime) -> Option<HelperFailure> {
    let now = now.duration_since(UNIX_EPOCH).ok()?;
    let memory = read_memory(file)?;
    memory["failures"].as_array()?.iter().rev().find_map(|entry| {
        if entry["program"].as_str()? != program || entry["server"].as_str()? != server {
            return None;
        }
        let ago = now.checked_sub(Duration::from_secs(entry["at"].as_u64()?))?;
        let left = REMEMBERED_FOR.checked_sub(ago).filter(|left| !left.is_zero())?;
        let (program, server) = (program.to_owned(), server.to_owned());
        let failure = match entry["failure"].as_str()? {
            "timed-out" => HelperFailure::TimedOut {
                program,
                server,
                after: Duration::from_millis(entry["after_ms"].as_u64()?),
            },
            "exited" => HelperFailure::Failed {
                program,
                server,
                status: entry["status"].as_i64().and_then(|s| i32::try_from(s).ok()),
            },
            "bad-answer" => HelperFailure::BadAnswer { program, server },
            _ => return None,
        };
        Some(HelperFailure::Earlier { failure: Box::new(failure), ago, left, file: file.to_path_buf() })
    })
}

/// The memory in `file`, read only when it is a regular file (at most 1 MiB) reached through no
/// link: a FIFO or a link put in its place is not read.
fn read_memory(file: &Path) -> Option<Value> {
    let dir = std::fs::File::open(file.parent()?).ok()?;
    let mut text = Vec::new();
    hephy_os::open::open_beneath(&dir, Path::new(file.file_name()?))
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut text)
        .ok()?;
    serde_json::from_slice(&text).ok()
}

/// Adds `failure` at `now` to the memory `file` (written whole, then renamed into place),
/// dropping what it held of the same helper and server and what is too old to be believed.
/// A memory that cannot be written only costs a later process the wait.
fn remember(file: &Path, failure: &HelperFailure, now: SystemTime) {
    let Ok(now) = now.duration_since(UNIX_EPOCH) else { return };
    let (kind, program, server) = match failure {
        HelperFailure::TimedOut { program, server, .. } => ("timed-out", program, server),
        HelperFailure::Failed { program, server, .. } => ("exited", program, server),
        HelperFailure::BadAnswer { program, server } => ("bad-answer", program, server),
        HelperFailure::NotStarted { .. } | HelperFailure::Earlier { .. } => return,
    };
    let mut entry = serde_json::json!({
        "program": program,
        "server": server,
        "at": now.as_secs(),
        "failure": kind,
    });
    match failure {
        HelperFailure::TimedOut { after, .. } => {
            entry["after_ms"] = u64::try_from(after.as_millis()).unwrap_or(u64::MAX).into();
        }
        HelperFailure::Failed { status, .. } => entry["status"] = (*status).into(),
        _ => {}
    }
    let old = read_memory(file).unwrap_or_default();
    let mut failures: Vec<Value> = old["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| !(e["program"] == entry["program"] && e["server"] == entry["server"]))
        .filter(|e| {
            e["at"].as_u64().is_some_and(|at| {
                now.checked_sub(Duration::from_secs(at)).is_some_and(|ago| ago < REMEMBERED_FOR)
            })
        })
        .cloned()
        .collect();
    failures.push(entry);
    let Some(dir) = file.parent() else { return };
    let _ = std::fs::create_dir_all(dir);
    let Ok(mut scratch) = tempfile::NamedTempFile::new_in(dir) else { return };
    let text = serde_json::json!({ "failures": failures }).to_string();
    if scratch.write_all(text.as_bytes()).is_ok() {
        let _ = scratch.persist(file);
    }
}

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
    let group = child.id();
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
        hephy_os::signal::kill_group(group, hephy_os::signal::Kill::Kill);
    };
    let Some(status) = status else {
        stop_group();
        return Err(HelperFailure::TimedOut { program: shown, server: server.to_owned(), after: timeout });
    };
    if !status.success() {
        stop_group();
    }
    let answer = stdout.recv_timeout(ANSWER_GRACE).unwrap_or_default();
    // What it printed on stderr (or, docker's own helpers, on stdout when failing) may hold a
    // token: it was read, so the helper is not stuck on a full pipe, and is dropped unseen.
    drop(stderr);
    if !status.success() || fed.is_none_or(|f| f.is_err()) {
        return Err(HelperFailure::Failed {
            program: shown,
            server: server.to_owned(),
            status: status.code(),
        });
    }
    let bad = || HelperFailure::BadAnswer { program: shown.clone(), server: server.to_owned() };
    let answer: Value = serde_json::from_slice(&answer).map_err(|_| bad())?;
    Ok(Credential {
        username: answer["Username"].as_str().ok_or_else(bad)?.to_owned(),
        secret: answer["Secret"].as_str().ok_or_else(bad)?.to_owned(),
    })
}

/// Waits for `child` until `deadline`; past it, kills it (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    let exited = hephy_os::exit::exit_watch(child.id());
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
        hephy_os::exit::wait_for_exit(exited.as_ref(), pause);
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
        std::fs::write(&failing, "#!/bin/sh\necho 'keychain locked: token=ghp_s3cr3t' >&2\nexit 4\n")
            .unwrap();
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
            "the credential helper `docker-credential-fails` exited with status 4; its output is not shown, as it may hold a secret: to see what it says, run `printf '%s\\n' 'registry.example.com' | docker-credential-fails get`"
        );
        // Asked once: a second lookup answers from memory, at once.
        let first = asked(&prefix, "hangs", "hung.example.com", Duration::from_millis(300));
        let again = Instant::now();
        let second = asked(&prefix, "hangs", "hung.example.com", Duration::from_millis(300));
        assert_eq!(first, second);
        assert!(again.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_hung_helper_is_remembered_for_a_while_by_later_processes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-slow");
        std::fs::write(&helper, "#!/bin/sh\nexec sleep 600\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prefix = format!("{}/docker-credential-", dir.path().display());
        let memory = dir.path().join("state").join(MEMORY_FILE);
        let first = ask(Some(&memory), &prefix, "slow", "registry.example.com", Duration::from_millis(200));
        assert!(matches!(first, Err(HelperFailure::TimedOut { .. })), "{first:?}");
        // As another process would: not asked, answered from the memory at once.
        let started = Instant::now();
        let second = ask(Some(&memory), &prefix, "slow", "registry.example.com", Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
        let Err(HelperFailure::Earlier { failure, left, .. }) = &second else { panic!("{second:?}") };
        assert!(
            matches!(**failure, HelperFailure::TimedOut { after, .. } if after == Duration::from_millis(200))
        );
        assert!(*left > Duration::from_secs(9 * 60), "{left:?}");
        let text = second.unwrap_err().to_string();
        assert!(text.starts_with("the credential helper `docker-credential-slow` did not answer within 200ms and was stopped in a run 1s ago, and is asked again in "), "{text}");
        assert!(text.contains(&format!("(or once `{}` is removed)", memory.display())), "{text}");
        // Another server is asked; the memory keeps no more than failures.
        let stored = std::fs::read_to_string(&memory).unwrap();
        assert!(stored.contains("\"timed-out\"") && !stored.contains("Secret"), "{stored}");
        let program = "docker-credential-slow";
        assert!(remembered(&memory, program, "other.example.com", SystemTime::now()).is_none());
        // Past its time, or from the future (a clock set back), a failure is not believed.
        let later = SystemTime::now() + REMEMBERED_FOR + Duration::from_secs(1);
        assert!(remembered(&memory, program, "registry.example.com", later).is_none());
        let earlier = SystemTime::now() - Duration::from_secs(3600);
        assert!(remembered(&memory, program, "registry.example.com", earlier).is_none());
        // A quick failure is not remembered: it costs nothing to see again, and is seen fixed.
        let failing = dir.path().join("docker-credential-quick");
        std::fs::write(&failing, "#!/bin/sh\nexit 3\n").unwrap();
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
        let quick = ask(Some(&memory), &prefix, "quick", "registry.example.com", Duration::from_secs(5));
        assert!(matches!(quick, Err(HelperFailure::Failed { status: Some(3), .. })), "{quick:?}");
        assert!(
            remembered(&memory, "docker-credential-quick", "registry.example.com", SystemTime::now())
                .is_none()
        );
        // A slow failure is, with its status.
        let slow = HelperFailure::Failed {
            program: "docker-credential-pass".to_owned(),
            server: "it's.example.com".to_owned(),
            status: Some(1),
        };
        remember(&memory, &slow, SystemTime::now());
        let again = remembered(&memory, "docker-credential-pass", "it's.example.com", SystemTime::now());
        assert!(
            matches!(&again, Some(HelperFailure::Earlier { failure, .. }) if **failure == slow),
            "{again:?}"
        );
        assert!(
            again
                .unwrap()
                .to_string()
                .ends_with(r"run `printf '%s\n' 'it'\''s.example.com' | docker-credential-pass get`")
        );
        assert!(remembered(&memory, program, "registry.example.com", SystemTime::now()).is_some(), "kept");
        // A link or a FIFO in its place is not read (nor waited on), and is replaced.
        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::rename(&memory, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &memory).unwrap();
        assert!(remembered(&memory, program, "registry.example.com", SystemTime::now()).is_none());
        std::fs::remove_file(&memory).unwrap();
        assert!(Command::new("mkfifo").arg(&memory).status().unwrap().success());
        assert!(remembered(&memory, program, "registry.example.com", SystemTime::now()).is_none());
        remember(&memory, &slow, SystemTime::now());
        assert!(std::fs::symlink_metadata(&memory).unwrap().is_file());
        assert!(
            remembered(&memory, "docker-credential-pass", "it's.example.com", SystemTime::now()).is_some()
        );
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
