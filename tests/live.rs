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
use common::proxy::{Fault, Hold, Proxy};
use common::registry::Registry;

/// A tmux server of this test's own (its own socket), killed on drop.
struct Terminal {
    socket: String,
}

impl Terminal {
    fn start(dir: &Path, command: &str) -> Terminal {
        Terminal::start_with(dir, command, true)
    }

    /// A terminal whose `hephy` may reach the graph's registry (a loopback one the test started).
    fn start_online(dir: &Path, command: &str) -> Terminal {
        Terminal::start_with(dir, command, false)
    }

    fn start_with(dir: &Path, command: &str, offline: bool) -> Terminal {
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
            .env("HEPHY_OFFLINE", if offline { "1" } else { "0" })
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
    assert!(
        running.contains("1 running, ETA unknown"),
        "nothing was ever built: no time to go by, and never `0.0s`\n{running}"
    );
    // compile runs 3 s this time (its line shows its elapsed seconds): the next ETA's base.
    term.wait_for("compile at 3 s", |s| {
        s.lines().any(|l| l.contains("[local] compile") && l.contains(" 3s "))
    });
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
    // compile took over 3 s last time and has run about 0.3 s: some 2.5 s or more are left.
    let eta = |screen: &str| {
        screen
            .split("ETA ")
            .nth(1)
            .and_then(|rest| rest.split('s').next())
            .and_then(|n| n.trim().parse::<f64>().ok())
    };
    let first = eta(&again);
    assert!(first.is_some_and(|eta| eta > 1.5), "an ETA from the last run's times:\n{again}");
    // It counts down while compile runs, with no event in between.
    term.wait_for("the ETA to count down", |s| eta(s).is_some_and(|now| Some(now + 0.5) < first));
    std::fs::write(repo.path().join("go"), "").expect("release compile");
    term.wait_for("the end of the run", |s| s.contains("exit=0"));
}

#[test]
#[ignore = "needs tmux (installed by .ci/run)"]
fn an_interrupted_run_is_told_the_same_way_everywhere() {
    let repo = pipeline();
    // Afterwards the shell says whether hephy left the terminal's echo of `^C` off.
    let command =
        format!("{} run; s=$?; stty -a | grep -q -- -echoctl && echo ECHOCTL-LEFT-OFF; (exit $s)", hephy());
    let term = Terminal::start(repo.path(), &command);
    term.wait_for("compile's second step", |s| s.contains("step 2 of 3"));
    term.keys("C-c");
    let screen = term.wait_for("the end of the run", |s| s.contains("exit="));
    assert!(screen.contains("exit=130"), "{screen}");
    assert!(
        screen.contains("interrupted run 1: 1 built, 0 fresh, 1 stopped, 1 cancelled"),
        "compile was stopped halfway and package never started\n{screen}"
    );
    assert!(screen.contains("– compile: stopped: the run was interrupted while it ran"), "{screen}");
    assert!(!screen.contains("compile: not run"), "compile did run, halfway:\n{screen}");
    assert!(!screen.contains("running"), "no stale progress line:\n{screen}");
    assert!(!screen.contains("[local]"), "no running node's line is left (nor a `^C`):\n{screen}");
    assert!(!screen.contains("^C"), "{screen}");
    assert!(!screen.contains("ECHOCTL-LEFT-OFF"), "the terminal is as it was:\n{screen}");

    let log = repo.run(&["log"]);
    assert!(log.stdout.contains("interrupted") && log.stdout.contains("1 cancelled"), "{}", log.stdout);
    assert!(log.stdout.contains("1 built") && log.stdout.contains("1 stopped"), "{}", log.stdout);
    let explain = repo.run(&["explain", "compile", "--run", "1"]);
    assert!(
        explain.stdout.contains("compile was stopped halfway: the run was interrupted"),
        "{}",
        explain.stdout
    );
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

/// The digest of `repository:tag` in `registry` (`sha256:…`): that of its manifest's bytes.
fn digest_of(registry: &Registry, reference: &str) -> String {
    common::registry::sha256(&registry.raw(reference))
}

/// Ctrl-C while an index is being pushed: the push completes, its tag never starts, and the run
/// names the tag left on the previous index; the next run moves it, and builds nothing else.
#[test]
#[ignore = "needs tmux, docker-registry and skopeo (installed by .ci/run)"]
fn a_run_interrupted_between_an_index_and_its_tags_says_so_and_the_next_run_fixes_it() {
    common::registry::require_image_tools();
    let registry = Registry::start();
    let hold = Hold::new("qs/docs");
    let proxy = Proxy::start(registry.port, Fault::HoldIndexes(hold));
    let repo = Repo::quickstart_pushing_to(&proxy.address(), "");
    // Run 1, whole: docs:latest names docs' first index.
    hold.release();
    let first = repo.run(&["run"]);
    assert!(first.stdout.contains("done run 1:"), "{}{}", first.stdout, first.stderr);
    // The closing list of images gives short digests: 12 hex digits and `…`.
    let short = regex::Regex::new(r"/qs/docs@sha256:[0-9a-f]{12}… ").expect("regex");
    assert!(short.is_match(&first.stdout), "{}", first.stdout);
    assert!(!regex::Regex::new("[0-9a-f]{64}").expect("regex").is_match(&first.stdout), "{}", first.stdout);
    let before = digest_of(&registry, "qs/docs:latest");

    // Run 2 rebuilds docs only; its index push is held until the terminal's Ctrl-C.
    hold.arm();
    repo.write("docs/pages/changed.html", "<p>changed</p>\n");
    let term = Terminal::start_online(repo.path(), &format!("{} run", hephy()));
    let start = Instant::now();
    while !hold.holding() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "docs' index push never came:\n{}",
            term.screen()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    term.keys("C-c");
    // hephy has seen the interruption (and launches nothing more) before the push completes.
    term.wait_for("the interruption noted", |s| s.contains("interrupted: stopping the 1 running node"));
    hold.release();
    let screen = term.wait_for("the end of the run", |s| s.contains("exit="));
    assert!(screen.contains("exit=130"), "{screen}");
    assert!(
        screen.contains("stale: docs:latest still names the previous index; the next run fixes it"),
        "{screen}"
    );
    assert!(!screen.contains("✓ docs:latest"), "no tag node starts after the cancel:\n{screen}");
    assert_eq!(digest_of(&registry, "qs/docs:latest"), before, "docs:latest was not moved");
    let log = std::fs::read_to_string(repo.path().join(".hephy/logs/2/docs.log")).expect("docs' log");
    let pushed = log
        .split_whitespace()
        .skip_while(|w| *w != "index")
        .nth(1)
        .expect("the log names the index")
        .to_owned();
    assert_ne!(before, pushed, "run 2 pushed a new index");
    drop(term);

    // Run 3 moves the tag, and does nothing else.
    hold.release();
    let plan = repo.run(&["plan", "--format", "json"]).json();
    let build: Vec<&str> = plan["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["action"] != "fresh")
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(build, ["docs:latest"]);
    let third = repo.run(&["run", "--format", "json"]);
    assert_eq!(third.json()["built"], 1, "{}{}", third.stdout, third.stderr);
    assert_eq!(digest_of(&registry, "qs/docs:latest"), pushed, "docs:latest names run 2's index");
    // Nothing left to do: the list of images again, short, and whole with `--wide`.
    let fourth = repo.run(&["run"]);
    assert!(short.is_match(&fourth.stdout), "{}", fourth.stdout);
    let wide = repo.run(&["run", "--wide"]);
    let whole = format!("/qs/docs{}", &pushed.replacen("sha256:", "@sha256:", 1));
    assert!(wide.stdout.contains(&format!("{whole} ")), "{whole}:\n{}", wide.stdout);
}
