//! Sending a signal to a process, or to every process of a process group: hephy's commands and
//! credential helpers run in groups of their own, so stopping one stops what it started too.
//! The one place hephy kills processes; a pid that could name more than intended (0: our own
//! group, 1: every process we may signal, a negative one) is refused, never signalled.

use rustix::process::{Pid, Signal};

/// A signal hephy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// `SIGTERM`: asked to stop, with time to clean up.
    Terminate,
    /// `SIGKILL`: stopped now.
    Kill,
}

impl Kill {
    fn signal(self) -> Signal {
        match self {
            Kill::Terminate => Signal::TERM,
            Kill::Kill => Signal::KILL,
        }
    }
}

/// The pid `pid` names when it names one other process: never 0 or 1, nor one that does not
/// fit.
fn target(pid: u32) -> Option<Pid> {
    let raw = i32::try_from(pid).ok().filter(|&p| p > 1)?;
    Pid::from_raw(raw)
}

/// Sends `kill` to the process group `group` (a child started with `process_group(0)` leads
/// the group of its own pid). `false` when it was not sent: the group is gone, or `group`
/// could name more than one group (0, 1).
pub fn kill_group(group: u32, kill: Kill) -> bool {
    target(group).is_some_and(|pid| rustix::process::kill_process_group(pid, kill.signal()).is_ok())
}

/// Sends `kill` to the process `pid` alone. `false` when it was not sent: the process is gone,
/// or `pid` could name more than one process (0, 1).
pub fn kill_process(pid: u32, kill: Kill) -> bool {
    target(pid).is_some_and(|pid| rustix::process::kill_process(pid, kill.signal()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;
    use std::process::Command;

    #[test]
    fn a_group_is_stopped_whole_and_no_wide_pid_is_signalled() {
        // A shell that starts a sleeper in its own group, then waits for it.
        let mut child =
            Command::new("sh").args(["-c", "sleep 30 & wait"]).process_group(0).spawn().expect("sh starts");
        let group = child.id();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(kill_group(group, Kill::Kill), "the group is signalled");
        let status = child.wait().expect("waits");
        assert!(!status.success(), "killed: {status:?}");
        for wide in [0, 1, u32::MAX] {
            assert!(!kill_group(wide, Kill::Terminate), "{wide} is refused");
            assert!(!kill_process(wide, Kill::Terminate), "{wide} is refused");
        }
    }

    #[test]
    fn one_process_is_stopped() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep starts");
        assert!(kill_process(child.id(), Kill::Terminate));
        assert!(!child.wait().expect("waits").success());
    }
}
