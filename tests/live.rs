//! The live view as a person sees it: `hephy run` in a real terminal (a tmux pane of fixed
//! size), the screen read while it runs and after: the overall count, each running node with
//! its executor, elapsed time and last line of output, the ETA from past runs, the closing
//! summary (slowest nodes, critical path, where to ask why), and an interrupted run told the
//! same way by the terminal, `hephy log` and `hephy explain --run`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Repo;

/// A tmux server of this test's own (its own socket), killed on drop.
struct Terminal {
    socket: String,
}

impl Terminal {
    fn start(dir: &Path, command: &str) -> Terminal {
        common::require(&["tmux"], "apt-get install tmux");
        // A server of its own per terminal: a second one never meets the first shutting down.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("hephy-live-{}-{n}", std::process::id());
        let terminal = Terminal { socket };
        let status = Command::new("tmux")
            .args([
                "-L",
                &terminal.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "-c",
            ])
            .arg(dir)
            .args(["sh", "-c", &format!("trap : INT; {command}; echo \"exit=$?\"; sleep 600")])
            .env("NO_COLOR", "1")
            .env("HEPHY_OFFLINE", "1")
            .env("TERM", "xterm-256color")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        terminal
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits (at most 60 s) until the screen satisfies `test`; returns that screen.
    fn wait_for(&self, what: &str, test: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if test(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited for {what}; the screen shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &str) {
        let status =
            Command::new("tmux").args(["-L", &self.socket, "send-keys", keys]).status().expect("send-keys");
        assert!(status.success());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

fn hephy() -> String {
    assert_cmd::cargo::cargo_bin("hephy").display().to_string()
}

/// `prep` quick; `compile` prints its steps, the last one held until `go` exists; `package`
/// after it.
fn pipeline() -> Repo {
    Repo::new().file(
        "hephy.kdl",
        r#"task "prep" {
    run "sh" "-c" "echo prepared"
}
task "compile" {
    run "sh" "-c" "echo step 1 of 3; sleep 0.3; echo step 2 of 3; while [ ! -e go ]; do sleep 0.05; done; sleep 0.2; echo step 3 of 3"
    after "prep"
}
task "package" {
    run "sh" "-c" "sleep 0.2; echo packaged"
    after "compile"
}
"#,
    )
}

#[test]
#[ignore = "needs tmux (installed by .ci/run)"]
fn the_live_view_shows_progress_then_a_summary_with_the_critical_path() {
    let repo = pipeline();
    let term = Terminal::start(repo.path(), &format!("{} run", hephy()));
    let running = term.wait_for("compile's second step", |s| s.contains("step 2 of 3"));
    let line = running.lines().find(|l| l.contains("step 2 of 3")).unwrap_or_default().to_owned();
    assert!(
        line.contains("[local] compile"),
        "the running line names executor and node: {line:?}\n{running}"
    );
    assert!(line.contains('s'), "and its elapsed time: {line:?}");
    assert!(running.contains("1/3 built, 1 running"), "the overall count:\n{running}");
    assert!(running.contains("✓ prep"), "finished nodes scroll above:\n{running}");
    std::fs::write(repo.path().join("go"), "").expect("release compile");

    let done = term.wait_for("the end of the run", |s| s.contains("exit="));
    assert!(done.contains("exit=0"), "{done}");
    assert!(done.contains("done run 1: 3 built, 0 fresh"), "{done}");
    assert!(done.contains("critical path:  prep → compile → package"), "{done}");
    assert!(done.contains("slowest:        compile"), "{done}");
    assert!(done.contains("hephy explain compile --run 1"), "{done}");
    assert!(!done.contains("running"), "no progress line is left on the screen:\n{done}");
    drop(term);

    // Run again, forced: the view now knows how long each node took, and shows an ETA.
    std::fs::remove_file(repo.path().join("go")).expect("hold compile again");
    let term = Terminal::start(repo.path(), &format!("{} run --force prep compile package", hephy()));
    let again = term.wait_for("compile's second step", |s| s.contains("step 2 of 3"));
    assert!(again.contains("ETA "), "an ETA from the last run's times:\n{again}");
    std::fs::write(repo.path().join("go"), "").expect("release compile");
    term.wait_for("the end of the run", |s| s.contains("exit=0"));
}

#[test]
#[ignore = "needs tmux (installed by .ci/run)"]
fn an_interrupted_run_is_told_the_same_way_everywhere() {
    let repo = pipeline();
    let term = Terminal::start(repo.path(), &format!("{} run", hephy()));
    term.wait_for("compile's second step", |s| s.contains("step 2 of 3"));
    term.keys("C-c");
    let screen = term.wait_for("the end of the run", |s| s.contains("exit="));
    assert!(screen.contains("exit=130"), "{screen}");
    assert!(
        screen.contains("interrupted run 1: 1 built, 0 fresh, 2 cancelled"),
        "compile was stopped and package never started: both cancelled\n{screen}"
    );
    assert!(!screen.contains("running"), "no stale progress line:\n{screen}");

    let log = repo.run(&["log"]);
    assert!(log.stdout.contains("interrupted") && log.stdout.contains("2 cancelled"), "{}", log.stdout);
    assert!(log.stdout.contains("1 built"), "{}", log.stdout);
    let explain = repo.run(&["explain", "package", "--run", "1"]);
    assert!(
        explain.stdout.contains("package was not finished: the run was interrupted"),
        "{}",
        explain.stdout
    );
    let explain = repo.run(&["explain", "prep", "--run", "1"]);
    assert!(explain.stdout.contains("prep was built because it had never been built"), "{}", explain.stdout);
    // The next run redoes what did not finish, and only that.
    let next = repo.run(&["plan", "--format", "json"]).json();
    let build: Vec<&str> = next["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["action"] != "fresh")
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(build, ["compile", "package"]);
}
