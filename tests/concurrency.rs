//! Several `hephy run` and `hephy plan` processes on one state at once: runs take turns (each
//! node is built exactly once in all), plans never wait for a run, and the state stays
//! consistent.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Repo;
use hephy_engine::State;

fn hephy(repo: &Repo, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hephy"));
    command
        .args(args)
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn runs_serialize_plans_never_block_and_the_state_stays_consistent() {
    let mut graph = String::new();
    for i in 0..8 {
        graph.push_str(&format!(
            "task \"t{i}\" {{\n    run \"sh\" \"-c\" \"sleep 0.3; mkdir -p out; echo {i} > out/t{i}\"\n    outputs \"out/t{i}\"\n}}\n"
        ));
    }
    let repo = Repo::new().file("hephy.kdl", &graph);
    // The state exists before the race (as it does after any first plan).
    assert_eq!(repo.run(&["plan"]).code, 0);
    let runs: Vec<_> = (0..3)
        .map(|_| {
            hephy(&repo, &["run", "-j", "2", "--lock-timeout", "120", "--format", "json"]).spawn().unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    // While the runs hold the lock in turn, plans answer at once.
    let mut plan_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let plan = hephy(&repo, &["plan", "--format", "json"]).output().unwrap();
        plan_times.push(started.elapsed());
        assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
        let _: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    }
    let mut built = 0;
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        built += summary["built"].as_u64().unwrap();
    }
    // Every node was built exactly once: the runs took turns, the later ones found it fresh.
    assert_eq!(built, 8);
    // The runs together take over 1 s (8 × 0.3 s on 2 slots); every plan returned long before.
    let slowest_plan = plan_times.iter().max().unwrap();
    assert!(*slowest_plan < Duration::from_secs(5), "a plan waited {slowest_plan:?}");
    let state = State::open(&repo.path().join(".hephy")).unwrap();
    assert_eq!(state.integrity_check().unwrap(), "ok");
    let runs = state.runs(10).unwrap();
    assert_eq!(runs.len(), 3);
    for run in &runs {
        assert!(run.finished_at.is_some(), "run {} never finished: {}", run.id, run.status);
        assert_ne!(run.status.as_str(), "running", "run {}", run.id);
    }
}
