//! Running one external command for a node: argv only (no shell), in a process group of its
//! own so cancellation reaches every descendant, stdout and stderr teed to the node's log (and
//! to the reporter with `-v`).

use std::fs::{self, File};

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hephy_engine::Job;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a cancelled command gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

/// The most output one command may write (`HEPHY_MAX_OUTPUT_BYTES`, default 256 MiB) before it
/// is stopped: a builder that prints gigabytes fails its node instead of filling the disk.
fn max_output() -> u64 {
    std::env::var("HEPHY_MAX_OUTPUT_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(256 << 20)
}

thread_local! {
    /// The node this thread is working for must be done by then (its `timeout`).
    static DEADLINE: std::cell::Cell<Option<(Instant, Duration)>> = const { std::cell::Cell::new(None) };
}

/// Runs `work` with every command it starts stopped once `timeout` has passed from now.
pub(crate) fn with_timeout<T>(timeout: Option<Duration>, work: impl FnOnce() -> T) -> T {
    let previous = DEADLINE.with(|d| d.replace(timeout.map(|t| (Instant::now() + t, t))));
    let out = work();
    DEADLINE.with(|d| d.set(previous));
    out
}

/// A node's log file, shared by the commands it runs.
#[derive(Debug, Clone)]
pub(crate) struct Log(Arc<Mutex<File>>);

impl Log {
    /// Creates the job's log file (and its folder).
    pub(crate) fn create(job: &Job<'_>) -> Result<Log, String> {
        if let Some(parent) = job.log.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create the log folder `{}`: {e}", parent.display()))?;
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&job.log)
            .map_err(|e| format!("cannot create the log `{}`: {e}", job.log.display()))?;
        Ok(Log(Arc::new(Mutex::new(file))))
    }

    /// The last non-empty line the commands wrote (for failure messages).
    fn last_line(&self) -> Option<String> {
        let mut file = self.0.lock().ok()?;
        let len = file.metadata().ok()?.len();
        let start = len.saturating_sub(4096);
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        let text = String::from_utf8_lossy(&tail);
        let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("$ "))?;
        Some(line.chars().take(300).collect())
    }

    /// The rest of the last line that starts with `prefix` (a marker a command printed).
    pub(crate) fn marker(&self, prefix: &str) -> Option<String> {
        let mut file = self.0.lock().ok()?;
        file.seek(SeekFrom::Start(0)).ok()?;
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        text.lines().rev().find_map(|l| l.strip_prefix(prefix)).map(|rest| rest.trim().to_owned())
    }

    /// Appends a line of hephy's own (the command about to run, say).
    pub(crate) fn note(&self, line: &str) {
        if let Ok(mut file) = self.0.lock() {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// A byte count for people: `256 MiB`, `1000 bytes`.
fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) { format!("{} MiB", n >> 20) } else { format!("{n} bytes") }
}

/// A command as one line, for logs and messages.
pub(crate) fn shown(command: &Command) -> String {
    std::iter::once(command.get_program().to_string_lossy().into_owned())
        .chain(command.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a command reads on stdin: written by a thread of its own while the command runs.
pub(crate) type Feed = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) struct CommandFailed {
    /// What failed, for people.
    pub(crate) message: String,
    /// Its exit status, when it exited on its own.
    pub(crate) exit_code: Option<i32>,
    /// The last line it wrote, if any.
    pub(crate) last_line: Option<String>,
}

impl CommandFailed {
    fn new(message: String) -> CommandFailed {
        CommandFailed { message, exit_code: None, last_line: None }
    }
}

/// Something that becomes readable when process `pid` exits (a pidfd, Linux 5.3+), for
/// [`wait_for_exit`]; `None` where the kernel has none.
pub(crate) fn exit_watch(pid: u32) -> Option<std::os::fd::OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Waits up to `pause` for the process behind `pidfd` to exit (returning early when it does),
/// or sleeps `pause` without one.
pub(crate) fn wait_for_exit(pidfd: Option<&std::os::fd::OwnedFd>, pause: Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    if let Some(fd) = pidfd {
        let timeout = Timespec {
            tv_sec: pause.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: pause.subsec_nanos().into(),
        };
        // Readable once it has exited; an interrupted or failed poll falls back to the sleep.
        if rustix::event::poll(&mut [PollFd::new(fd, PollFlags::IN)], Some(&timeout)).is_ok() {
            return;
        }
    }
    std::thread::sleep(pause);
}

/// Runs `command` to completion. `Err` says what failed, for people.
pub(crate) fn run(command: Command, job: &Job<'_>, log: &Log) -> Result<(), String> {
    run_fed(command, job, log, None).map_err(|e| e.message)
}

/// Runs `command` to completion with `feed` writing its stdin (closed when the feed returns).
pub(crate) fn run_fed(
    mut command: Command,
    job: &Job<'_>,
    log: &Log,
    feed: Option<Feed>,
) -> Result<(), CommandFailed> {
    let program = command.get_program().to_string_lossy().into_owned();
    let shown = shown(&command);
    let stdin = if feed.is_some() { Stdio::piped() } else { Stdio::null() };
    command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child =
        command.spawn().map_err(|e| CommandFailed::new(format!("cannot start `{program}`: {e}")))?;
    let feeder = match (feed, child.stdin.take()) {
        (Some(feed), Some(mut input)) => Some(std::thread::spawn(move || feed(&mut input))),
        _ => None,
    };
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let limit = max_output();
    let streams = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    let readers: Vec<_> = streams
        .into_iter()
        .flatten()
        .map(|stream| {
            let log = log.clone();
            let events = job.events.clone();
            let node = job.node.id.to_string();
            let verbose = job.verbose;
            let written = Arc::clone(&written);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                // A line is at most 1 MiB here: output without newlines cannot grow it forever.
                while (&mut reader).take(1 << 20).read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let total = written.fetch_add(line.len() as u64, Ordering::SeqCst) + line.len() as u64;
                    if total > limit {
                        // Keep draining so the command is not blocked on a full pipe; it is
                        // stopped below.
                        line.clear();
                        continue;
                    }
                    if let Ok(mut file) = log.0.lock() {
                        let _ = file.write_all(&line);
                    }
                    if verbose {
                        let text = String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_owned();
                        let _ = events.send(hephy_engine::Message::Output { node: node.clone(), line: text });
                    }
                    line.clear();
                }
            })
        })
        .collect();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let deadline = DEADLINE.with(std::cell::Cell::get);
    let mut terminated_at: Option<Instant> = None;
    let mut stopped_because: Option<String> = None;
    // Its exit wakes the wait below at once where the kernel gives a pidfd (Linux 5.3+);
    // elsewhere the wait is a sleep, short at first (most commands of a build graph are short).
    let exited = exit_watch(child.id());
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if stopped_because.is_none() {
            if let Some((at, timeout)) = deadline
                && Instant::now() >= at
            {
                stopped_because =
                    Some(format!("ran past its timeout of {}", humantime::format_duration(timeout)));
            } else if written.load(Ordering::SeqCst) > limit {
                stopped_because = Some(format!("printed more than {} of output", bytes(limit)));
            }
        }
        if job.cancel.load(Ordering::SeqCst) || stopped_because.is_some() {
            match terminated_at {
                None => {
                    let _ = killpg(pid, Signal::SIGTERM);
                    terminated_at = Some(Instant::now());
                }
                Some(at) if at.elapsed() > GRACE => {
                    let _ = killpg(pid, Signal::SIGKILL);
                }
                Some(_) => {}
            }
        }
        wait_for_exit(exited.as_ref(), pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    // Whatever the command left running in its group goes with it.
    let _ = killpg(pid, Signal::SIGKILL);
    for reader in readers {
        let _ = reader.join();
    }
    // A feed that failed for its own reasons (an unreadable file) says so; one cut off because
    // the command went away is the command's failure, reported below.
    let fed = feeder.map(|f| f.join());
    let status = status.map_err(|e| CommandFailed::new(format!("lost track of `{shown}`: {e}")))?;
    if let Some(why) = stopped_because {
        log.note(&format!("hephy: `{shown}` {why}; stopped"));
        return Err(CommandFailed::new(format!("`{shown}` {why} and was stopped")));
    }
    if status.success()
        && let Some(Ok(Err(e))) = fed
    {
        return Err(CommandFailed::new(format!("feeding `{program}` failed: {e}")));
    }
    if terminated_at.is_some() {
        return Err(CommandFailed::new(format!("`{shown}` was stopped: the run was cancelled")));
    }
    if status.success() {
        return Ok(());
    }
    let how = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    };
    let last_line = log.last_line();
    let message = match &last_line {
        Some(line) => format!("`{shown}` {how}: {line}"),
        None => format!("`{shown}` {how}"),
    };
    Err(CommandFailed { message, exit_code: status.code(), last_line })
}
