//! `hephy run`, `plan`, `explain` and `log` on real task graphs: real files, real processes,
//! real SQLite state.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::Repo;
use serde_json::{Value, json};

/// Three tasks: `gen` counts the lines of `in.txt` into `out/count.txt`; `use` (after `gen`)
/// copies that count; `other` reads `other.txt`.
fn pipeline() -> Repo {
    Repo::new().file("in.txt", "a\nb\n").file("other.txt", "x\n").file(
        "hephy.kdl",
        r#"task "gen" {
    run "sh" "-c" "mkdir -p out && wc -l < in.txt > out/count.txt"
    inputs "in.txt"
    outputs "out/count.txt"
}
task "use" {
    run "sh" "-c" "cp out/count.txt out/used.txt"
    outputs "out/used.txt"
    after "gen"
}
task "other" {
    run "sh" "-c" "cat other.txt > /dev/null"
    inputs "other.txt"
}
"#,
    )
}

fn plan(repo: &Repo) -> Value {
    let run = repo.run(&["plan", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

fn node<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap_or_else(|| panic!("no {id}"))
}

fn actions(plan: &Value) -> BTreeMap<String, String> {
    plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n["action"].as_str().unwrap().to_owned()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[test]
fn second_run_builds_nothing() {
    let repo = pipeline();
    let first = repo.run(&["run", "--format", "json"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(first.results(), map(&[("gen", "built"), ("other", "built"), ("use", "built")]));
    assert_eq!(std::fs::read_to_string(repo.path().join("out/used.txt")).unwrap().trim(), "2");
    let second = repo.run(&["run", "--format", "json"]);
    assert_eq!(second.code, 0);
    assert_eq!(second.results(), map(&[("gen", "fresh"), ("other", "fresh"), ("use", "fresh")]));
    assert_eq!(second.json()["built"], 0);
    assert!(plan(&repo)["nodes"].as_array().unwrap().iter().all(|n| n["action"] == "fresh"));
}

/// A node recorded under another key (as by an older key encoding) whose inputs are the same
/// today stays fresh; the run gives it today's key.
#[test]
fn a_node_recorded_under_another_key_with_the_same_inputs_stays_fresh() {
    let repo = pipeline();
    assert_eq!(repo.run(&["run"]).code, 0);
    let db = rusqlite::Connection::open(repo.path().join(".hephy/state.db")).unwrap();
    let keys = |db: &rusqlite::Connection| -> BTreeMap<String, String> {
        let mut stmt = db.prepare("SELECT id, key FROM nodes").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    let today = keys(&db);
    db.execute("UPDATE nodes SET key = ?1", [&"0".repeat(64)]).unwrap();
    let planned = plan(&repo);
    assert!(planned["nodes"].as_array().unwrap().iter().all(|n| n["action"] == "fresh"), "{planned}");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.results(), map(&[("gen", "fresh"), ("other", "fresh"), ("use", "fresh")]));
    assert_eq!(keys(&db), today);
    // A changed input is still a change: only the nodes whose inputs are the same were rekeyed.
    db.execute("UPDATE nodes SET key = ?1", [&"0".repeat(64)]).unwrap();
    repo.write("other.txt", "y\n");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.results(), map(&[("gen", "fresh"), ("other", "built"), ("use", "fresh")]));
}

#[test]
fn only_the_changed_node_and_its_dependents_rebuild_and_explain_names_the_file() {
    let repo = pipeline();
    assert_eq!(repo.run(&["run"]).code, 0);
    repo.write("in.txt", "a\nb\nc\n");
    let plan = plan(&repo);
    assert_eq!(actions(&plan), map(&[("gen", "build"), ("other", "fresh"), ("use", "build")]));
    let gen_reasons = &node(&plan, "gen")["reasons"];
    assert_eq!(gen_reasons.as_array().unwrap().len(), 1);
    assert_eq!(gen_reasons[0]["kind"], "input_changed");
    assert_eq!(gen_reasons[0]["path"], "in.txt");
    assert_ne!(gen_reasons[0]["old"], gen_reasons[0]["new"]);
    assert_eq!(node(&plan, "use")["reasons"], json!([{"kind": "dependency_rebuilt", "node": "gen"}]));

    let explain = repo.run(&["explain", "use"]);
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    assert!(
        explain.stdout.starts_with("use rebuilds because its dependency gen rebuilds\n"),
        "{}",
        explain.stdout
    );
    assert!(
        explain.stdout.contains("\n  gen rebuilds because in.txt changed (blake3 "),
        "{}",
        explain.stdout
    );
    let fresh = repo.run(&["explain", "other"]);
    assert!(
        fresh.stdout.starts_with("other is fresh (key ")
            && fresh.stdout.contains("; it was built in run 1 ("),
        "{}",
        fresh.stdout
    );

    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.results(), map(&[("gen", "built"), ("other", "fresh"), ("use", "built")]));
    let past = repo.run(&["explain", "use", "--run", "2", "--format", "json"]).json();
    assert_eq!(past[0]["causes"][0]["node"], "gen");
    assert_eq!(past[0]["causes"][0]["reasons"][0]["path"], "in.txt");
}

#[test]
fn a_dependency_rebuilt_to_the_same_output_cuts_off_its_dependents() {
    let repo = pipeline();
    assert_eq!(repo.run(&["run"]).code, 0);
    // Same number of lines: `gen` reruns, writes the same count; `use` need not rerun.
    repo.write("in.txt", "x\ny\n");
    assert_eq!(actions(&plan(&repo))["use"], "build", "planned: the dependency rebuilds");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.results(), map(&[("gen", "built"), ("other", "fresh"), ("use", "cutoff")]));
    assert!(plan(&repo)["nodes"].as_array().unwrap().iter().all(|n| n["action"] == "fresh"));
}

#[test]
fn settings_outputs_force_and_schedules_are_reasons() {
    let repo = pipeline();
    assert_eq!(repo.run(&["run"]).code, 0);
    std::fs::remove_file(repo.path().join("out/used.txt")).unwrap();
    let plan_now = plan(&repo);
    assert_eq!(node(&plan_now, "use")["reasons"], json!([{"kind": "output_missing"}]));
    let forced = repo.run(&["plan", "--format", "json", "--force", "other"]).json();
    assert_eq!(node(&forced, "other")["reasons"], json!([{"kind": "forced"}]));
    let unknown = repo.run(&["plan", "--force", "othre"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("did you mean `other`?"), "{}", unknown.stderr);

    repo.write(
        "hephy.kdl",
        &(std::fs::read_to_string(repo.path().join("hephy.kdl"))
            .unwrap()
            .replace("cat other.txt", "cat  other.txt")
            + "schedule \"weekly\" {\n    rebuild \"gen\"\n}\n"),
    );
    let plan_now = plan(&repo);
    let reason = &node(&plan_now, "other")["reasons"][0];
    assert_eq!(reason["kind"], "setting_changed");
    assert_eq!(reason["field"], "run");
    let scheduled = repo.run(&["plan", "--format", "json", "--schedule", "weekly"]).json();
    assert_eq!(node(&scheduled, "gen")["reasons"], json!([{"kind": "scheduled", "schedule": "weekly"}]));
    assert_eq!(node(&scheduled, "use")["reasons"][0], json!({"kind": "dependency_rebuilt", "node": "gen"}));
}

#[test]
fn a_failure_skips_its_dependents_and_nothing_else() {
    let repo = Repo::new().file(
        "hephy.yaml",
        "tasks:\n  bad: { run: [sh, -c, \"echo broken >&2; exit 3\"] }\n  after-bad: { run: [\"true\"], after: [bad] }\n  fine: { run: [\"true\"] }\n",
    );
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.results(), map(&[("after-bad", "skipped"), ("bad", "failed"), ("fine", "built")]));
    let log = std::fs::read_to_string(repo.path().join(".hephy/logs/1/bad.log")).unwrap();
    assert_eq!(log, "broken\n");
    let text = repo.run(&["run"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("failed  bad: `sh -c echo broken >&2; exit 3` exited with status 3"),
        "{}",
        text.stdout
    );
    let plan = plan(&repo);
    assert_eq!(node(&plan, "bad")["reasons"], json!([{"kind": "never_built"}, {"kind": "last_run_failed"}]));
    // explain says what went wrong last time.
    let explain = repo.run(&["explain", "bad"]);
    assert!(
        explain.stdout.contains("run 2 failed: `sh -c echo broken >&2; exit 3` exited with status 3: broken"),
        "{}",
        explain.stdout
    );
    let missing = Repo::new().file("hephy.yaml", "tasks:\n  t: { run: [no-such-program-hephy] }\n");
    let run = missing.run(&["run"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("cannot start `no-such-program-hephy`"), "{}", run.stdout);
}

#[test]
fn image_builds_that_cannot_run_fail_cleanly_and_skip_their_dependents() {
    // A base that cannot be pulled (nothing listens on port 1), and an upstream ref that cannot
    // be resolved (offline, never fetched): both fail with a message; what needs them is skipped.
    let repo = Repo::new()
        .file("broken/Dockerfile", "FROM 127.0.0.1:1/none/such:tag\n")
        .file("on-top/Dockerfile", "ARG BASE\nFROM ${BASE}\n")
        .file(
            "hephy.kdl",
            "platforms \"linux/amd64\"\nimage \"broken\" {\n    context \"broken\"\n}\nimage \"on-top\" {\n    context \"on-top\"\n    from \"broken\" arg=\"BASE\"\n    tags \"latest\"\n}\nimage \"upstream\" {\n    git \"https://example.invalid/repo.git\" ref=\"v1\"\n}\n",
        );
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let results = run.results();
    assert_eq!(results["broken@linux/amd64"], "failed");
    assert_eq!(results["on-top@linux/amd64"], "skipped");
    assert_eq!(results["on-top:latest"], "skipped");
    assert_eq!(results["upstream@linux/amd64"], "failed");
    let text = repo.run(&["run"]);
    assert!(
        text.stdout.contains(
            "cannot resolve `v1` of https://example.invalid/repo.git: offline, and never fetched here"
        ),
        "{}",
        text.stdout
    );
    assert!(!run.stderr.contains("panicked"));
}

#[test]
fn dependency_outputs_reach_tasks_in_the_environment() {
    let repo = Repo::new().file(
        "hephy.kdl",
        "task \"a\" {\n    run \"true\"\n}\ntask \"b\" {\n    run \"sh\" \"-c\" \"echo $HEPHY_DEP_A > seen.txt\"\n    after \"a\"\n}\n",
    );
    assert_eq!(repo.run(&["run"]).code, 0);
    let seen = std::fs::read_to_string(repo.path().join("seen.txt")).unwrap();
    assert!(seen.starts_with("blake3:"), "{seen}");
}

#[test]
fn log_lists_runs() {
    let repo = pipeline();
    assert_eq!(repo.run(&["run"]).code, 0);
    assert_eq!(repo.run(&["run"]).code, 0);
    let log = repo.run(&["log", "--format", "json"]).json();
    assert_eq!(log[0]["id"], 2);
    assert_eq!(log[0]["counts"], json!({"fresh": 3}));
    assert_eq!(log[1]["counts"], json!({"built": 3}));
    assert_eq!(log[1]["status"], "ok");
}

fn spawn_run(repo: &Repo, args: &[&str]) -> std::process::Child {
    Command::cargo_bin("hephy")
        .unwrap()
        .arg("run")
        .args(args)
        .current_dir(repo.path())
        .stdout(Stdio::null())
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

#[test]
fn concurrent_runs_serialize_and_plans_never_block() {
    let repo = Repo::new().file("hephy.kdl", "task \"slow\" {\n    run \"sleep\" \"1\"\n}\n");
    let mut first = spawn_run(&repo, &[]);
    wait_for("the first run to take the lock", || {
        repo.path().join(".hephy/lock").exists() && repo.run(&["log"]).stdout.contains("running")
    });
    let second = repo.run(&["run", "--lock-timeout", "0.1"]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains(&format!("(pid {})", first.id())), "{}", second.stderr);
    let plan_start = Instant::now();
    assert_eq!(repo.run(&["plan"]).code, 0, "plan works while a run holds the lock");
    assert!(plan_start.elapsed() < Duration::from_secs(1));
    let third = repo.run(&["run", "--lock-timeout", "30", "--format", "json"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.results(), map(&[("slow", "fresh")]), "waited, then found it built");
    assert!(first.wait().unwrap().success());
}

#[test]
fn kill_9_loses_no_finished_node() {
    // Eight independent tasks of 0.3 s each, one at a time; kill the run after a few finish.
    let mut kdl = String::new();
    for i in 0..8 {
        kdl.push_str(&format!(
            "task \"t{i}\" {{\n    run \"sh\" \"-c\" \"sleep 0.3; echo {i} > t{i}.out\"\n}}\n"
        ));
    }
    let repo = Repo::new().file("hephy.kdl", &kdl);
    let mut child = spawn_run(&repo, &["--jobs", "1"]);
    wait_for("three tasks to finish", || {
        (0..8).filter(|i| repo.path().join(format!("t{i}.out")).exists()).count() >= 3
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let after_kill = plan(&repo);
    let fresh: Vec<String> =
        actions(&after_kill).into_iter().filter(|(_, a)| a == "fresh").map(|(id, _)| id).collect();
    assert!(fresh.len() >= 2, "finished nodes were recorded: {fresh:?}");
    let rerun = repo.run(&["run", "--format", "json"]);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let log = repo.run(&["log", "--format", "json"]).json();
    assert_eq!(log[1]["status"], "killed", "the killed run is said to be, not `running` forever");
    for (id, result) in rerun.results() {
        if fresh.contains(&id) {
            assert_eq!(result, "fresh", "{id} finished before the kill and must not rebuild");
        } else {
            assert_eq!(result, "built", "{id} did not finish and must be built");
        }
    }
}

fn alive(pid: &str) -> bool {
    // A zombie has exited; only its parent has yet to reap it.
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

#[test]
fn ctrl_c_stops_children_records_what_finished_and_exits_130() {
    let repo = Repo::new().file(
        "hephy.kdl",
        "task \"quick\" {\n    run \"true\"\n}\ntask \"slow\" {\n    run \"sh\" \"-c\" \"sleep 30 & echo $! > bg.pid; echo $$ > sh.pid; wait\"\n    after \"quick\"\n}\ntask \"later\" {\n    run \"true\"\n    after \"slow\"\n}\n",
    );
    let mut child = spawn_run(&repo, &[]);
    wait_for("the slow task to start", || {
        repo.path().join("bg.pid").exists() && repo.path().join("sh.pid").exists()
    });
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130));
    for file in ["bg.pid", "sh.pid"] {
        let pid = std::fs::read_to_string(repo.path().join(file)).unwrap();
        wait_for("the task's processes to end", || !alive(&pid));
    }
    let plan = plan(&repo);
    assert_eq!(actions(&plan), map(&[("later", "build"), ("quick", "fresh"), ("slow", "build")]));
    assert_eq!(node(&plan, "slow")["reasons"], json!([{"kind": "never_built"}]), "cancelled is not failed");
    let log = repo.run(&["log", "--format", "json"]).json();
    assert_eq!(log[0]["status"], "interrupted");
    // The node stopped halfway is `stopped`, the one that never started `cancelled`, as the
    // run said.
    assert_eq!(log[0]["counts"], json!({"built": 1, "stopped": 1, "cancelled": 1}));
}

#[test]
fn executors_run_their_platform_with_at_most_jobs_at_once() {
    let mut kdl = String::from(
        "executor \"amd64\" platform=\"linux/amd64\" jobs=2\nexecutor \"arm64\" platform=\"linux/arm64\" jobs=1\n",
    );
    for i in 0..4 {
        kdl.push_str(&format!(
            "task \"t{i}\" {{\n    run \"sh\" \"-c\" \"echo $(date +%s%N) > t{i}-$(basename $HEPHY_PLATFORM).start; sleep 0.3; echo $(date +%s%N) > t{i}-$(basename $HEPHY_PLATFORM).end\"\n    platforms \"linux/amd64\" \"linux/arm64\"\n}}\n"
        ));
    }
    let repo = Repo::new().file("hephy.kdl", &kdl);
    let run = repo.run(&["run", "--jobs", "8"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("start   t0@linux/amd64 on amd64"), "{}", run.stdout);
    assert!(run.stdout.contains("start   t0@linux/arm64 on arm64"), "{}", run.stdout);
    for (arch, jobs) in [("amd64", 2), ("arm64", 1)] {
        let read = |i: usize, end: &str| -> u128 {
            std::fs::read_to_string(repo.path().join(format!("t{i}-{arch}.{end}")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let spans: Vec<(u128, u128)> = (0..4).map(|i| (read(i, "start"), read(i, "end"))).collect();
        let most =
            spans.iter().map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count()).max().unwrap();
        assert_eq!(most, jobs, "{arch}: at most {jobs} at once, and the executor was used fully");
    }
}

#[test]
fn dockerignored_files_do_not_change_an_images_key() {
    let repo = Repo::new()
        .file("app/Dockerfile", "FROM scratch\nCOPY main.txt /\n")
        .file("app/.dockerignore", "*.md\n")
        .file("app/main.txt", "one\n")
        .file("app/NOTES.md", "notes\n")
        .file("hephy.yaml", "platforms: [linux/amd64]\nimages:\n  app: { context: app }\n");
    let key = |repo: &Repo| node(&plan(repo), "app@linux/amd64")["key"].as_str().unwrap().to_owned();
    let before = key(&repo);
    repo.write("app/NOTES.md", "more notes\n");
    assert_eq!(key(&repo), before, "an ignored file is not an input");
    repo.write("app/main.txt", "two\n");
    assert_ne!(key(&repo), before, "a context file is an input");
    let after = key(&repo);
    repo.write("app/Dockerfile", "FROM scratch\nCOPY main.txt /main\n");
    assert_ne!(key(&repo), after, "the Dockerfile is an input");
}
