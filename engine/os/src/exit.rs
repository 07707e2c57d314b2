//! Waiting for a child process to exit without busy polling: a pidfd (Linux 5.3+) becomes
//! readable when the process exits; without one, a plain sleep.

use std::time::Duration;

/// Something that becomes readable when process `pid` exits (a pidfd, Linux 5.3+), for
/// [`wait_for_exit`]; `None` where the kernel has none.
pub fn exit_watch(pid: u32) -> Option<std::os::fd::OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Waits up to `pause` for the process behind `pidfd` to exit (returning early when it does),
/// or sleeps `pause` without one.
pub fn wait_for_exit(pidfd: Option<&std::os::fd::OwnedFd>, pause: Duration) {
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
