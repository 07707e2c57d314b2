//! Why in-process work for a node must stop now: the run was cancelled (Ctrl-C), or the node's
//! `timeout` has passed. Child processes are stopped by whoever started them; work hephy does
//! itself (writing layers, registry transfers) asks a [`Stop`] between chunks.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The conditions that end a node's in-process work early.
#[derive(Debug, Clone, Copy)]
pub struct Stop<'a> {
    cancel: &'a AtomicBool,
    /// When the node's time is up, and its `timeout`.
    deadline: Option<(Instant, Duration)>,
}

/// Why work was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The run was cancelled.
    Cancelled,
    /// The node ran past its `timeout`.
    TimedOut(Duration),
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::Cancelled => f.write_str("stopped: the run was cancelled"),
            Stopped::TimedOut(timeout) => {
                write!(f, "stopped: it ran past its timeout of {}", humantime::format_duration(*timeout))
            }
        }
    }
}

impl std::error::Error for Stopped {}

impl From<Stopped> for std::io::Error {
    fn from(stopped: Stopped) -> std::io::Error {
        std::io::Error::other(stopped)
    }
}

/// Never set: work that nothing can stop (tests, planning).
static NEVER: AtomicBool = AtomicBool::new(false);

impl Stop<'static> {
    /// A stop that never comes.
    pub fn never() -> Stop<'static> {
        Stop { cancel: &NEVER, deadline: None }
    }
}

impl<'a> Stop<'a> {
    /// A stop on `cancel` and, when given, a deadline (the instant, and the `timeout` it ends).
    pub fn new(cancel: &'a AtomicBool, deadline: Option<(Instant, Duration)>) -> Stop<'a> {
        Stop { cancel, deadline }
    }

    /// A stop on `cancel` and, when given, `timeout` from now.
    pub fn after(cancel: &'a AtomicBool, timeout: Option<Duration>) -> Stop<'a> {
        Stop { cancel, deadline: timeout.map(|t| (Instant::now() + t, t)) }
    }

    /// `Err` when the work must stop now.
    pub fn check(&self) -> Result<(), Stopped> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(Stopped::Cancelled);
        }
        match self.deadline {
            Some((at, timeout)) if Instant::now() >= at => Err(Stopped::TimedOut(timeout)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_says_why() {
        let cancel = AtomicBool::new(false);
        assert_eq!(Stop::after(&cancel, None).check(), Ok(()));
        let timed = Stop::after(&cancel, Some(Duration::ZERO));
        assert_eq!(timed.check(), Err(Stopped::TimedOut(Duration::ZERO)));
        cancel.store(true, Ordering::SeqCst);
        assert_eq!(Stop::after(&cancel, None).check(), Err(Stopped::Cancelled));
        assert_eq!(Stopped::Cancelled.to_string(), "stopped: the run was cancelled");
    }
}
