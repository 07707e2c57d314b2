//! The job: one node handed to the [`Work`], with everything it may use and what it may send
//! back (after cargo's job queue: the job, the job's state, and the drain loop in `run.rs`).
//!
//! Owns [`Job`] (the node, its dependencies' outputs, its key and log, and the two conditions
//! that end its work early: the run's [`Cancel`] token and the node's [`Deadline`]), the
//! [`Outcome`] the work returns (built, failed with a typed [`NodeError`], timed out, or
//! cancelled), and the [`Message`]s a running job sends to the scheduler. Nothing here is a
//! thread-local or a global: a job's stop conditions travel with it, down to the processes it
//! starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use petgraph::graph::NodeIndex;

use crate::graph::Node;
use crate::key::Key;

/// A run's cancellation: set once (Ctrl-C, SIGTERM, SIGHUP, or the caller), seen by the
/// scheduler, which starts nothing more, and by every job, which stops its work.
///
/// Clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token not cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels the run.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for what sets it from outside (a signal handler) or reads it while
    /// borrowing it (in-process work's stop checks).
    pub fn flag(&self) -> &Arc<AtomicBool> {
        &self.0
    }
}

/// When a node's work must be done: its `timeout` counted from the moment it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        // A timeout too long to add is no deadline in practice: the furthest instant there is.
        let at = Instant::now().checked_add(timeout).unwrap_or_else(|| far_future(Instant::now()));
        Deadline { at, timeout }
    }

    /// The instant the time is up.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The node's `timeout` it ends.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the time is up.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// An instant as far ahead of `now` as the clock allows (about a century is plenty).
fn far_future(now: Instant) -> Instant {
    now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)).unwrap_or(now)
}

/// One node handed to [`Work`].
#[derive(Debug)]
pub struct Job<'a> {
    /// The node.
    pub node: &'a Node,
    /// The graph's folder (the working directory of tasks).
    pub root: &'a Path,
    /// The run's id.
    pub run_id: i64,
    /// Each dependency's node and output digest.
    pub deps: Vec<(&'a Node, String)>,
    /// Per dependency (in the order of `deps`): its planned key and reasons, and its own
    /// dependencies' outputs (an index's provenance names what each platform was built from).
    pub details: Vec<DepDetail<'a>>,
    /// The key the node is built with.
    pub key: &'a Key,
    /// Where the node's output log goes.
    pub log: PathBuf,
    /// The run's cancellation: once set, stop, terminating children.
    pub cancel: Cancel,
    /// When the node's `timeout` is up, if it has one: stop then, terminating children.
    pub deadline: Option<Deadline>,
    /// Forward output lines as [`Message::Output`] (`-v`).
    pub verbose: bool,
    /// Where to send output lines.
    pub events: mpsc::Sender<Message>,
}

/// What a run knows of one dependency of a job beyond its output.
#[derive(Debug, Clone)]
pub struct DepDetail<'a> {
    /// Its key as planned.
    pub key: Key,
    /// Why the plan built it (empty when it was fresh).
    pub reasons: crate::plan::Reasons,
    /// Its own dependencies' nodes and outputs.
    pub deps: Vec<(&'a Node, String)>,
}

impl Job<'_> {
    /// Sends one line of the node's output to the reporter (when verbose).
    pub fn output_line(&self, line: String) {
        if self.verbose {
            let _ = self.events.send(Message::Output { node: self.node.id.to_string(), line });
        }
    }

    /// Why the job must stop now, if it must: the run was cancelled, or its deadline passed.
    pub fn stop_now(&self) -> Option<StopCause> {
        if self.cancel.is_cancelled() {
            Some(StopCause::Cancelled)
        } else {
            self.deadline.filter(Deadline::passed).map(|d| StopCause::TimedOut(d.timeout()))
        }
    }
}

/// Why a job was stopped before its work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The run was cancelled.
    Cancelled,
    /// The node ran past its `timeout` (this long).
    TimedOut(Duration),
}

/// Why a node's work failed: the typed error its work returned (a builder's, a registry's, a
/// command's), kept whole until the edge renders it ([`NodeError::render`]: the error and each
/// cause it does not already name).
#[derive(Debug, Clone)]
pub struct NodeError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl NodeError {
    /// The failure `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> NodeError {
        NodeError(Arc::new(error))
    }

    /// The error.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The error as `E`, if it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }

    /// The error and its causes, outermost first (through an [`std::io::Error`] that wraps
    /// another error too).
    pub fn chain(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let first: &(dyn std::error::Error + 'static) = &*self.0;
        std::iter::successors(Some(first), |e| {
            // An `io::Error` made from another error says its message but gives that error's
            // source, not the error itself: step into it.
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| -> &(dyn std::error::Error + 'static) { inner })
                .or_else(|| e.source())
        })
    }

    /// The failure for people: the error's message, then each cause it does not already say
    /// (`: cause`), as the run's history and its reporters show it.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for error in self.chain() {
            let said = error.to_string();
            if text.is_empty() {
                text = said;
            } else if !said.is_empty() && !text.contains(&said) {
                text.push_str(": ");
                text.push_str(&said);
            }
        }
        text
    }
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for NodeError {
    fn from(error: E) -> NodeError {
        NodeError::new(error)
    }
}

/// How a node's work ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It succeeded with this output digest (an image digest, or the digest of a task's
    /// outputs).
    Built(String),
    /// It failed.
    Failed(NodeError),
    /// It was stopped at its [`Deadline`]: a failure, recorded with what stopping it said.
    TimedOut(NodeError),
    /// It was stopped because the run was cancelled: not a failure, the next run redoes it.
    /// Recorded with what stopping it said.
    Cancelled(NodeError),
}

impl Outcome {
    /// A failure: `error`.
    pub fn failed(error: impl Into<NodeError>) -> Outcome {
        Outcome::Failed(error.into())
    }

    /// The outcome of `result`: built with its output, or failed with its error.
    pub fn of<E: Into<NodeError>>(result: Result<String, E>) -> Outcome {
        match result {
            Ok(output) => Outcome::Built(output),
            Err(error) => Outcome::Failed(error.into()),
        }
    }
}

/// What nodes do. Implemented by `hephy-stdlib` (tasks run processes; images call builders).
pub trait Work: Sync {
    /// Does `job`'s work, blocking until it is done, failed, past its deadline or cancelled.
    fn execute(&self, job: &Job<'_>) -> Outcome;
}

/// Messages from worker threads to the scheduler.
#[derive(Debug)]
pub enum Message {
    /// A line of output.
    Output {
        /// The node id.
        node: String,
        /// The line.
        line: String,
    },
    /// A node finished.
    Done {
        /// The node.
        index: NodeIndex,
        /// How it ended.
        outcome: Outcome,
        /// How long it took.
        duration: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot push `app`")]
    struct Push {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read `{path}`: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    /// A failure renders with each cause its message does not already say, through an
    /// `io::Error` that wraps another error.
    #[test]
    fn a_failure_renders_with_its_causes_once() {
        let error = NodeError::new(Push { source: std::io::Error::other(Refused) });
        assert_eq!(error.render(), "cannot push `app`: connection refused");
        assert!(error.chain().any(|e| e.is::<Refused>()));
        let error = NodeError::new(Read { path: "a".to_owned(), source: std::io::Error::other("gone") });
        assert_eq!(error.render(), "cannot read `a`: gone");
    }

    /// A deadline passes once its timeout has; clones of a cancel token share their flag.
    #[test]
    fn deadlines_pass_and_tokens_are_shared() {
        assert!(Deadline::after(Duration::ZERO).passed());
        let later = Deadline::after(Duration::from_secs(3600));
        assert!(!later.passed());
        assert_eq!(later.timeout(), Duration::from_secs(3600));
        assert!(!Deadline::after(Duration::MAX).passed());
        let cancel = Cancel::new();
        let seen = cancel.clone();
        assert!(!seen.is_cancelled());
        cancel.cancel();
        assert!(seen.is_cancelled());
    }
}
