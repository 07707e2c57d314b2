//! Signals, children and timeouts, against a real `hephy run` child: SIGTERM and SIGHUP (what
//! CI cancellation and a closed terminal send) stop every task process like Ctrl-C and record
//! the run as interrupted; a task that leaves a `setsid` daemon holding its output open does
//! not hold the run, a cancel or a timeout.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::Repo;

fn spawn_run(repo: &Repo) -> Child {
    Command::cargo_bin("hephy")
        .unwrap()
        .args(["run", "--format", "json"])
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The child's exit code, failing (and killing it) when it takes longer than `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`hephy run` still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: &str) -> bool {
    // A zombie has exited; only its parent has yet to reap it.
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

fn pid_in(repo: &Repo, file: &str) -> String {
    std::fs::read_to_string(repo.path().join(file)).unwrap().trim().to_owned()
}

/// Kills what a test left running, if the fix it checks is missing.
fn kill(pid: &str) {
    let _ = Command::new("kill").args(["-KILL", pid]).status();
}

#[test]
fn sigterm_and_sighup_stop_every_task_and_record_the_run_interrupted() {
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let repo = Repo::new().file(
            "hephy.kdl",
            "task \"slow\" {\n    run \"sh\" \"-c\" \"sleep 300 & echo $! > bg.pid; echo $$ > sh.pid; wait\"\n}\ntask \"other\" {\n    run \"sh\" \"-c\" \"echo $$ > other.pid; exec sleep 300\"\n}\n",
        );
        let mut child = spawn_run(&repo);
        wait_for("the tasks to start", || {
            ["bg.pid", "sh.pid", "other.pid"].iter().all(|f| repo.path().join(f).exists())
        });
        let status =
            Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exited = exit_within(&mut child, Duration::from_secs(20));
        let pids: Vec<String> = ["bg.pid", "sh.pid", "other.pid"].iter().map(|f| pid_in(&repo, f)).collect();
        // Give the kernel a moment to reap what was killed.
        std::thread::sleep(Duration::from_millis(200));
        let left: Vec<&String> = pids.iter().filter(|p| alive(p)).collect();
        for pid in &left {
            kill(pid);
        }
        assert_eq!(exited, Some(code), "SIG{signal}: exit 128 + the signal's number");
        assert!(left.is_empty(), "SIG{signal} left task processes behind: {left:?}");
        let log = repo.run(&["log", "--format", "json"]).json();
        assert_eq!(log[0]["status"], "interrupted", "SIG{signal}: {log}");
    }
}

/// A task whose shell starts a daemon in a session of its own that keeps the task's stdout
/// open, then (with `then`) goes on.
fn daemon_task(then: &str) -> Repo {
    Repo::new().file(
        "hephy.kdl",
        &format!(
            "task \"daemon\" {{\n    run \"sh\" \"-c\" \"setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' & echo $$ > sh.pid; {then}\"\n    timeout \"3s\"\n}}\n"
        ),
    )
}

#[test]
fn a_setsid_daemon_holding_the_output_does_not_hold_the_run() {
    // The task itself finishes: the node is built, the daemon stopped, the run over quickly.
    let repo = daemon_task("sleep 0.2; echo done");
    let mut child = spawn_run(&repo);
    let code = exit_within(&mut child, Duration::from_secs(20));
    let daemon = pid_in(&repo, "daemon.pid");
    std::thread::sleep(Duration::from_millis(200));
    let survived = alive(&daemon);
    kill(&daemon);
    assert_eq!(code, Some(0));
    assert!(!survived, "the daemon outlived its task");
    let log = repo.run(&["log", "--format", "json"]).json();
    assert_eq!(log[0]["status"], "ok", "{log}");

    // Ctrl-C while the task runs: the run stops at once, interrupted.
    let repo = daemon_task("exec sleep 300");
    let mut child = spawn_run(&repo);
    wait_for("the daemon to start", || {
        repo.path().join("daemon.pid").exists() && repo.path().join("sh.pid").exists()
    });
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = exit_within(&mut child, Duration::from_secs(20));
    let daemon = pid_in(&repo, "daemon.pid");
    std::thread::sleep(Duration::from_millis(200));
    let survived = alive(&daemon);
    kill(&daemon);
    assert_eq!(code, Some(130));
    assert!(!survived, "the daemon outlived the cancelled run");
    let log = repo.run(&["log", "--format", "json"]).json();
    assert_eq!(log[0]["status"], "interrupted", "{log}");

    // A timeout: the node fails at its timeout, not when the daemon exits.
    let repo = daemon_task("exec sleep 300");
    let started = Instant::now();
    let mut child = spawn_run(&repo);
    let code = exit_within(&mut child, Duration::from_secs(20));
    let daemon = pid_in(&repo, "daemon.pid");
    std::thread::sleep(Duration::from_millis(200));
    let survived = alive(&daemon);
    kill(&daemon);
    assert_eq!(code, Some(1), "the node failed");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(!survived, "the daemon outlived the timeout");
    let output = child.wait_with_output().unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["results"]["daemon"], "failed", "{summary}");
}
