//! Running one external command for a node: argv only (no shell), in a process group of its
//! own so cancellation reaches every descendant, stdout and stderr teed to the node's log (and
//! to the reporter with `-v`). Each command carries a mark in its environment that whatever
//! it starts inherits; when it ends, every process still carrying the mark is stopped, so no
//! daemon it started (in a session of its own, its output redirected) outlives the node.

use std::fs::{self, File};

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hephy_engine::Job;
use hephy_os::exit::exit_watch;
use hephy_os::signal::{Kill, kill_group, kill_process};

/// How long a cancelled command gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

/// How long the output of a command that has exited is still read: what it started and left
/// running outside its process group (a `setsid` daemon) and that keeps its output open is then
/// stopped, so it cannot hold the node, the run, a cancel or a timeout.
const AFTER_EXIT: Duration = Duration::from_secs(1);

/// The most output one command may write (`HEPHY_MAX_OUTPUT_BYTES`, default 256 MiB) before it
/// is stopped: a builder that prints gigabytes fails its node instead of filling the disk.
fn max_output() -> u64 {
    std::env::var("HEPHY_MAX_OUTPUT_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(256 << 20)
}

/// `job`'s stop, for work hephy does itself: its run's cancellation and its node's deadline,
/// both carried by the job.
pub(crate) fn stop<'a>(job: &'a Job<'_>) -> hephy_os::stop::Stop<'a> {
    hephy_os::stop::Stop::new(job.cancel.flag(), job.deadline.map(|d| (d.at(), d.timeout())))
}

/// A node's log file, shared by the commands it runs (one at a time, on the node's thread).
#[derive(Debug)]
pub(crate) struct Log(File);

impl Log {
    /// Creates the job's log file (and its folder).
    pub(crate) fn create(job: &Job<'_>) -> Result<Log, LogError> {
        if let Some(parent) = job.log.parent() {
            fs::create_dir_all(parent)
                .map_err(|source| LogError::Folder { path: parent.to_path_buf(), source })?;
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&job.log)
            .map_err(|source| LogError::File { path: job.log.clone(), source })?;
        Ok(Log(file))
    }

    /// The last non-empty line the commands wrote (for failure messages).
    fn last_line(&self) -> Option<String> {
        let mut file = &self.0;
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
        let mut file = &self.0;
        file.seek(SeekFrom::Start(0)).ok()?;
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        text.lines().rev().find_map(|l| l.strip_prefix(prefix)).map(|rest| rest.trim().to_owned())
    }

    /// Appends a line of hephy's own (the command about to run, say).
    pub(crate) fn note(&self, line: &str) {
        let _ = writeln!(&self.0, "{line}");
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

/// Why a command did not succeed; its text is what the node's failure says.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandFailed {
    /// It could not be started.
    #[error("cannot start `{program}`: {source}")]
    NotStarted {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Its exit status could not be had.
    #[error("lost track of `{shown}`: {source}")]
    Lost {
        /// The command line.
        shown: String,
        /// Why.
        source: std::io::Error,
    },
    /// hephy stopped it: past the node's `timeout`, or too much output.
    #[error("`{shown}` {why} and was stopped")]
    Stopped {
        /// The command line.
        shown: String,
        /// Why.
        why: Stopped,
    },
    /// The run was cancelled while it ran.
    #[error("`{shown}` was stopped: the run was cancelled")]
    Cancelled {
        /// The command line.
        shown: String,
    },
    /// It succeeded, but what hephy wrote to its stdin failed.
    #[error("feeding `{program}` failed: {source}")]
    Feed {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited with a failure status (`None`: killed by a signal).
    #[error("`{shown}` {}{}", match exit_code { Some(code) => format!("exited with status {code}"), None => "was killed by a signal".to_owned() }, last_line.as_ref().map(|l| format!(": {l}")).unwrap_or_default())]
    Exited {
        /// The command line.
        shown: String,
        /// Its exit status, when it exited on its own.
        exit_code: Option<i32>,
        /// The last line it wrote, if any.
        last_line: Option<String>,
    },
}

/// Why hephy stopped a command that was still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// It ran past the node's `timeout`.
    Timeout(Duration),
    /// It printed more than the output limit.
    Output(u64),
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Timeout(timeout) => {
                write!(f, "ran past its timeout of {}", humantime::format_duration(*timeout))
            }
            Stopped::Output(limit) => write!(f, "printed more than {} of output", bytes(*limit)),
        }
    }
}

/// A node's log that could not be created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    /// Its folder.
    #[error("cannot create the log folder `{}`: {source}", path.display())]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file.
    #[error("cannot create the log `{}`: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The longest line kept whole: output without newlines is cut into pieces this long.
const LONGEST_LINE: usize = 1 << 20;

/// One output stream of a command, read as it becomes readable and cut into whole lines.
struct Lines<R> {
    /// The stream, until its end.
    source: Option<R>,
    /// What has been read of the line not yet ended.
    pending: Vec<u8>,
}

impl<R: Read + AsFd> Lines<R> {
    fn new(source: Option<R>) -> Lines<R> {
        Lines { source, pending: Vec::new() }
    }

    fn is_done(&self) -> bool {
        self.source.is_none()
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.source.as_ref().map(AsFd::as_fd)
    }

    /// What the stream is, as `/proc/PID/fd` links name it (`pipe:[INODE]`).
    fn link(&self) -> Option<std::path::PathBuf> {
        let fd = self.fd()?;
        fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))).ok()
    }

    /// Stops reading: what is still pending is the last line.
    fn close(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
        self.source = None;
    }

    /// Reads what the stream has (it is readable, so this does not block) and hands `emit`
    /// each line it completes; at the stream's end, the last line, ended or not.
    fn read(&mut self, buffer: &mut [u8], emit: &mut impl FnMut(&[u8])) {
        let Some(source) = &mut self.source else { return };
        match source.read(buffer) {
            Ok(0) => {
                if !self.pending.is_empty() {
                    emit(&self.pending);
                    self.pending.clear();
                }
                self.source = None;
            }
            Ok(n) => {
                self.pending.extend_from_slice(&buffer[..n]);
                let mut start = 0;
                loop {
                    let rest = &self.pending[start..];
                    let window = &rest[..rest.len().min(LONGEST_LINE)];
                    let end = match window.iter().position(|&b| b == b'\n') {
                        Some(newline) => newline + 1,
                        None if window.len() == LONGEST_LINE => LONGEST_LINE,
                        None => break,
                    };
                    emit(&rest[..end]);
                    start += end;
                }
                self.pending.drain(..start);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => self.source = None,
        }
    }
}

/// Waits up to `pause` for either stream to be readable or (`running`) the command to exit;
/// says which streams are readable (or at their end).
fn wait_for_output<A: Read + AsFd, B: Read + AsFd>(
    stdout: &Lines<A>,
    stderr: &Lines<B>,
    exited: Option<&std::os::fd::OwnedFd>,
    running: bool,
    pause: Duration,
) -> (bool, bool) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let timeout = Timespec {
        tv_sec: pause.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: pause.subsec_nanos().into(),
    };
    let (out, err) = (stdout.fd(), stderr.fd());
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
    let mut at = [None, None];
    for (slot, fd) in [out, err].into_iter().enumerate() {
        if let Some(fd) = fd {
            at[slot] = Some(fds.len());
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
        }
    }
    if let (true, Some(pidfd)) = (running, exited) {
        fds.push(PollFd::new(pidfd, PollFlags::IN));
    }
    if fds.is_empty() {
        std::thread::sleep(pause);
        return (false, false);
    }
    if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
        // Interrupted (or failing): the caller looks again, without spinning.
        std::thread::sleep(pause);
        return (false, false);
    }
    // Readable, at its end, or failed: a read says which.
    let ready = |slot: usize| at[slot].is_some_and(|i| !fds[i].revents().is_empty());
    (ready(0), ready(1))
}

/// What `/proc/PID/stat` says of a process: its process group, its session, and when it
/// started (clock ticks since boot).
fn proc_stat(pid: u32) -> Option<(i32, i32, u64)> {
    // `pid (comm) state ppid pgrp session … starttime (22nd)`: the name may hold anything, but
    // nothing after the last `)` is the name.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Stops every other process that holds one of `streams` open (a daemon a command started in a
/// session of its own), with the rest of its session, or of its process group when it shares
/// hephy's session. Only processes started since `since` (the command's own start) are
/// touched: nothing older can be something the command started. Says which processes held them.
fn stop_holders(streams: &[Option<std::path::PathBuf>], since: u64) -> Vec<i32> {
    let streams: Vec<&std::path::PathBuf> = streams.iter().flatten().collect();
    let me = std::process::id();
    let Some((my_group, my_session, _)) = proc_stat(me) else { return Vec::new() };
    let processes: Vec<(u32, (i32, i32, u64))> = fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&pid| pid != me)
                .filter_map(|pid| Some((pid, proc_stat(pid)?)))
                .filter(|(_, (_, _, started))| *started >= since)
                .collect()
        })
        .unwrap_or_default();
    let holds = |pid: u32| {
        fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| fs::read_link(fd.path()).is_ok_and(|link| streams.contains(&&link)))
        })
    };
    let signal = |pid: u32| {
        kill_process(pid, Kill::Kill);
    };
    let holders: Vec<(u32, i32, i32)> = processes
        .iter()
        .filter(|(pid, _)| holds(*pid))
        .map(|(pid, (group, session, _))| (*pid, *group, *session))
        .collect();
    for &(holder, group, session) in &holders {
        if session != my_session {
            processes.iter().filter(|(_, (_, s, _))| *s == session).for_each(|(pid, _)| signal(*pid));
        } else if group != my_group {
            processes.iter().filter(|(_, (g, _, _))| *g == group).for_each(|(pid, _)| signal(*pid));
        }
        signal(holder);
    }
    holders.into_iter().filter_map(|(pid, _, _)| i32::try_from(pid).ok()).collect()
}

/// The environment variable every command hephy starts carries, set to a value of its own
/// ([`mark`]): what the command starts inherits it, even a daemon that leaves the command's
/// process group and session (`setsid … &`), so what is left running when the command ends is
/// found by it (as Jenkins' process tree killer finds a build's processes by `BUILD_ID`).
const MARK: &str = "HEPHY_COMMAND";

/// A value for [`MARK`] no other command of any hephy process has: this process's pid, its
/// start, and a count.
fn mark() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let me = std::process::id();
    let started = proc_stat(me).map_or(0, |(_, _, ticks)| ticks);
    format!("{me}.{started}.{}", COUNT.fetch_add(1, Ordering::SeqCst))
}

/// Stops (SIGKILL) every process that carries `mark` in its environment and started since
/// `since` (the command's own start): what the command left running, detached or not. Looks
/// again until none is left (one may have forked meanwhile). Says which were stopped.
fn stop_marked(mark: &str, since: u64) -> Vec<u32> {
    let needle = format!("{MARK}={mark}");
    let me = std::process::id();
    let mut stopped = Vec::new();
    for _ in 0..20 {
        let marked: Vec<u32> = fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                    .filter(|&pid| pid != me)
                    .filter(|&pid| proc_stat(pid).is_some_and(|(_, _, started)| started >= since))
                    .filter(|&pid| {
                        // A zombie's environment reads empty: it is gone already.
                        fs::read(format!("/proc/{pid}/environ"))
                            .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if marked.is_empty() {
            break;
        }
        for &pid in &marked {
            kill_process(pid, Kill::Kill);
        }
        for pid in marked {
            if !stopped.contains(&pid) {
                stopped.push(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stopped
}

/// Runs `command` to completion.
pub(crate) fn run(command: Command, job: &Job<'_>, log: &Log) -> Result<(), CommandFailed> {
    run_fed(command, job, log, None)
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
    let mark = mark();
    command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).env(MARK, &mark);
    let mut child =
        command.spawn().map_err(|source| CommandFailed::NotStarted { program: program.clone(), source })?;
    let feeder = match (feed, child.stdin.take()) {
        (Some(feed), Some(mut input)) => Some(std::thread::spawn(move || feed(&mut input))),
        _ => None,
    };
    let limit = max_output();
    let written = std::cell::Cell::new(0u64);
    let node = job.node.id.to_string();
    // Each whole line goes to the log (and to the reporter with `-v`); past the output limit,
    // lines are read and dropped, so the command is not blocked on a full pipe until it is
    // stopped below.
    let mut emit = |line: &[u8]| {
        written.set(written.get() + line.len() as u64);
        if written.get() > limit {
            return;
        }
        let _ = (&log.0).write_all(line);
        if job.verbose {
            let text = String::from_utf8_lossy(line).trim_end_matches(['\n', '\r']).to_owned();
            let _ = job.events.send(hephy_engine::Message::Output { node: node.clone(), line: text });
        }
    };
    let mut stdout = Lines::new(child.stdout.take());
    let mut stderr = Lines::new(child.stderr.take());
    let mut buffer = vec![0u8; 64 * 1024];
    // The child leads a group of its own (`process_group(0)`): its pid names the group.
    let group = child.id();
    let mut terminated_at: Option<Instant> = None;
    let mut stopped_because: Option<Stopped> = None;
    // One thread reads both streams and sees the exit: a poll over the two pipes and, where
    // the kernel gives one (Linux 5.3+), a pidfd that becomes readable when the command exits.
    // The poll's timeout (short at first: most commands of a build graph are short) bounds
    // how late a timeout, a cancel or the output limit is acted on.
    // When it started, so what holds its output after it exits is known to be younger.
    let started = proc_stat(child.id()).map_or(0, |(_, _, ticks)| ticks);
    let mut exited = exit_watch(child.id());
    let mut pause = Duration::from_micros(200);
    let mut status: Option<std::io::Result<std::process::ExitStatus>> = None;
    let mut exited_at: Option<Instant> = None;
    loop {
        if status.is_none() {
            match child.try_wait() {
                Ok(Some(done)) => status = Some(Ok(done)),
                Ok(None) => {}
                Err(e) => status = Some(Err(e)),
            }
            if status.is_some() {
                // Whatever the command left running in its group goes with it; what it wrote
                // is still read below, to the end of both streams.
                kill_group(group, Kill::Kill);
                exited = None;
                exited_at = Some(Instant::now());
            }
        }
        if status.is_some() && stdout.is_done() && stderr.is_done() {
            break;
        }
        if exited_at.is_some_and(|at| at.elapsed() > AFTER_EXIT) {
            // Something it started outside its group still holds its output: stop that too.
            let held = stop_holders(&[stdout.link(), stderr.link()], started);
            stdout.close(&mut emit);
            stderr.close(&mut emit);
            let held: Vec<String> = held.iter().map(ToString::to_string).collect();
            log.note(&format!(
                "hephy: `{shown}` exited, but what it started kept its output open (pid {}); stopped",
                held.join(", ")
            ));
            break;
        }
        if status.is_none() {
            if stopped_because.is_none() {
                if let Some(deadline) = job.deadline
                    && deadline.passed()
                {
                    stopped_because = Some(Stopped::Timeout(deadline.timeout()));
                } else if written.get() > limit {
                    stopped_because = Some(Stopped::Output(limit));
                }
            }
            if job.cancel.is_cancelled() || stopped_because.is_some() {
                match terminated_at {
                    None => {
                        kill_group(group, Kill::Terminate);
                        terminated_at = Some(Instant::now());
                    }
                    Some(at) if at.elapsed() > GRACE => {
                        kill_group(group, Kill::Kill);
                    }
                    Some(_) => {}
                }
            }
        }
        let (out_ready, err_ready) =
            wait_for_output(&stdout, &stderr, exited.as_ref(), status.is_none(), pause);
        if out_ready {
            stdout.read(&mut buffer, &mut emit);
        }
        if err_ready {
            stderr.read(&mut buffer, &mut emit);
        }
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    // What it started and left running, however detached (`setsid`, output redirected), goes
    // with it: nothing a command starts outlives its node.
    let left = stop_marked(&mark, started);
    if !left.is_empty() {
        let left: Vec<String> = left.iter().map(ToString::to_string).collect();
        log.note(&format!("hephy: `{shown}` left processes running (pid {}); stopped", left.join(", ")));
    }
    let status = status.unwrap_or_else(|| Err(std::io::Error::other("no exit status")));
    // A feed that failed for its own reasons (an unreadable file) says so; one cut off because
    // the command went away is the command's failure, reported below.
    let fed = feeder.map(|f| f.join());
    let status = status.map_err(|source| CommandFailed::Lost { shown: shown.clone(), source })?;
    if let Some(why) = stopped_because {
        log.note(&format!("hephy: `{shown}` {why}; stopped"));
        return Err(CommandFailed::Stopped { shown, why });
    }
    if status.success()
        && let Some(Ok(Err(source))) = fed
    {
        return Err(CommandFailed::Feed { program, source });
    }
    if terminated_at.is_some() {
        return Err(CommandFailed::Cancelled { shown });
    }
    if status.success() {
        return Ok(());
    }
    Err(CommandFailed::Exited { shown, exit_code: status.code(), last_line: log.last_line() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output read in whatever pieces the pipe gives comes out as whole lines; a line longer
    /// than the longest kept is cut at it; the last line is kept at the end, ended or not.
    #[test]
    fn lines_are_whole_however_the_output_arrives() {
        let (reader, mut writer) = std::io::pipe().expect("a pipe");
        let long = "x".repeat(LONGEST_LINE + 10);
        let writing = std::thread::spawn(move || {
            for piece in ["first li", "ne\nsecond line\nthi", "rd\n", &long, "\nno newline at the end"] {
                writer.write_all(piece.as_bytes()).expect("writes");
                writer.flush().expect("flushes");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let mut lines = Lines::new(Some(reader));
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut buffer = vec![0u8; 4096];
        while !lines.is_done() {
            lines.read(&mut buffer, &mut |line: &[u8]| got.push(line.to_vec()));
        }
        writing.join().expect("wrote");
        let text: Vec<String> = got.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        assert_eq!(text[..3], ["first line\n", "second line\n", "third\n"]);
        assert_eq!(text[3], "x".repeat(LONGEST_LINE));
        assert_eq!(text[4], format!("{}\n", "x".repeat(10)));
        assert_eq!(text[5], "no newline at the end");
        assert_eq!(text.len(), 6);
    }
}
