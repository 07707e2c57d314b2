//! Crash consistency, for real: `hephy run` on a graph of tasks is killed with SIGKILL at
//! random moments, again and again. After every kill the state opens, SQLite's integrity check
//! says `ok`, every node the killed run reported finished is still fresh, and the next run
//! finishes the rest. And Ctrl-C (SIGINT) leaves no child process behind.
//!
//! `HEPHY_CRASH_ITERATIONS` sets the number of kills (CI: the default below).

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Repo;
use hephy_engine::State;

mod common;

/// A small xorshift generator: the test needs no crate for a few random numbers.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 30 tasks in five layers; each sleeps a little and writes its output file.
fn graph() -> String {
    let mut out = String::new();
    for layer in 0..5 {
        for i in 0..6 {
            let name = format!("t{layer}{i}");
            let after = if layer == 0 {
                String::new()
            } else {
                format!("    after \"t{}{}\" \"t{}{}\"\n", layer - 1, i, layer - 1, (i + 1) % 6)
            };
            let sleep = format!("0.0{}", (layer * 6 + i) % 9 + 1);
            out.push_str(&format!(
                "task \"{name}\" {{\n    run \"sh\" \"-c\" \"sleep {sleep}; mkdir -p out; cat seed.txt > out/{name}.txt\"\n    inputs \"seed.txt\"\n    outputs \"out/{name}.txt\"\n{after}}}\n"
            ));
        }
    }
    out
}

fn plan_fresh(repo: &Repo) -> BTreeSet<String> {
    let plan = repo.run(&["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    plan.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["action"] == "fresh")
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

fn integrity(dir: &Path) {
    let state = State::open(&dir.join(".hephy")).expect("the state opens after a kill");
    assert_eq!(state.integrity_check().expect("integrity check runs"), "ok");
}

#[test]
fn sigkill_at_random_moments_loses_nothing_that_finished() {
    let iterations: usize =
        std::env::var("HEPHY_CRASH_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(20);
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test: {iterations} kills, seed {seed}");
    let mut random = Random(seed);
    let repo = Repo::new().file("hephy.kdl", &graph()).file("seed.txt", "0\n");
    let mut reported_total = 0;
    for iteration in 0..iterations {
        // A new seed file makes every task stale again.
        repo.write("seed.txt", &format!("{iteration}\n"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hephy"))
            .args(["run", "-j", "4"])
            .current_dir(repo.path())
            .env("NO_COLOR", "1")
            .env("HEPHY_OFFLINE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(random.next() % 600));
        let _ = child.kill();
        let _ = child.wait();
        let mut stdout = String::new();
        child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        let reported: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("built "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        reported_total += reported.len();
        integrity(repo.path());
        let fresh = plan_fresh(&repo);
        for node in &reported {
            assert!(
                fresh.contains(*node),
                "iteration {iteration}: {node} was reported built, but is not fresh"
            );
        }
        // The next run finishes the rest, and then everything is fresh.
        let finish = repo.run(&["run", "--format", "json"]);
        assert_eq!(finish.code, 0, "iteration {iteration}: {}", finish.stderr);
        let results = finish.json()["results"].clone();
        for node in &reported {
            assert_eq!(results[*node], "fresh", "iteration {iteration}: {node} was redone");
        }
        assert_eq!(plan_fresh(&repo).len(), 30, "iteration {iteration}: not everything is fresh");
        integrity(repo.path());
    }
    eprintln!(
        "crash test: {iterations} kills, {reported_total} nodes reported finished before a kill, none lost"
    );
}

/// Every process whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) && !text.contains("cargo") {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn ctrl_c_leaves_no_child_behind() {
    // The sleeps' own argv carries the marker: a unique duration.
    let marker = format!("3001.{}", std::process::id());
    let mut graph = String::new();
    for i in 0..4 {
        graph.push_str(&format!(
            "task \"sleeper{i}\" {{\n    run \"sh\" \"-c\" \"sleep {marker} & sleep {marker} & wait\"\n}}\n"
        ));
    }
    let repo = Repo::new().file("hephy.kdl", &graph);
    let child = Command::new(env!("CARGO_BIN_EXE_hephy"))
        .args(["run", "-j", "4"])
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Four shells and eight sleeps.
    while processes_with(&marker).len() < 12 {
        assert!(started.elapsed() < Duration::from_secs(20), "the tasks did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let left = processes_with(&marker);
    assert!(left.is_empty(), "left behind: {left:?}");
    let run = repo.run(&["log", "--format", "json"]);
    assert_eq!(run.code, 0);
}
