//! `hephy explain` after a rebuild: a node fresh now is explained by the run that last built it
//! (named), `--run last`, each cause named once; the plan's words (`fresh`, `build`, `push`) in
//! `plan`, `explain` and `graph`; `plan --changed`.

mod common;

use common::Repo;
use serde_json::Value;

/// Two images for two platforms, `tool` built FROM `curl`, which copies `curl/data.txt`.
fn curl_and_tool() -> Repo {
    Repo::new()
        .file(
            "hephy.kdl",
            r#"platforms "linux/amd64" "linux/arm64"
image "curl" {
    context "curl"
}
image "tool" {
    context "tool"
    from "curl" arg="BASE"
}
"#,
        )
        .file("curl/Dockerfile", "FROM scratch\nCOPY data.txt /data.txt\n")
        .file("curl/data.txt", "v1\n")
        .file("tool/Dockerfile", "ARG BASE\nFROM ${BASE}\nCOPY t.txt /t.txt\n")
        .file("tool/t.txt", "t\n")
}

fn ok(repo: &Repo, args: &[&str]) -> String {
    let run = repo.run(args);
    assert_eq!(run.code, 0, "hephy {args:?}: {}{}", run.stdout, run.stderr);
    run.stdout
}

/// The issue's steps: `echo v2 > curl/data.txt; hephy run; hephy explain tool@linux/amd64`
/// names `curl/data.txt` and the run that rebuilt it, without `--run`.
#[test]
fn explain_names_the_cause_of_the_last_build_without_run() {
    let repo = curl_and_tool();
    ok(&repo, &["run"]);
    repo.write("curl/data.txt", "v2\n");
    ok(&repo, &["run"]);
    let why = ok(&repo, &["explain", "tool@linux/amd64"]);
    assert!(
        why.starts_with("tool@linux/amd64 is fresh (key ")
            && why.contains("; it was built in run 2 (")
            && why.contains("because its dependency curl@linux/amd64 was rebuilt\n"),
        "{why}"
    );
    assert!(why.contains("\n  curl@linux/amd64 was rebuilt because curl/data.txt changed (blake3 "), "{why}");

    let json: Value =
        serde_json::from_str(&ok(&repo, &["explain", "tool@linux/amd64", "--format", "json"])).expect("json");
    assert_eq!(json[0]["action"], "fresh", "{json}");
    let last = &json[0]["last_build"];
    assert_eq!(last["run"], 2, "{json}");
    assert_eq!(last["action"], "build", "{json}");
    assert_eq!(last["causes"][0]["node"], "curl@linux/amd64", "{json}");
    assert_eq!(last["causes"][0]["reasons"][0]["path"], "curl/data.txt", "{json}");

    // A run that built nothing since does not hide it.
    ok(&repo, &["run"]);
    assert!(ok(&repo, &["explain", "tool@linux/amd64"]).contains("built in run 2 "), "after a fresh run");
}

/// `--run last` is the newest run; a number still works; anything else is a usage error.
#[test]
fn run_last_explains_the_newest_run() {
    let repo = curl_and_tool();
    ok(&repo, &["run"]);
    repo.write("curl/data.txt", "v2\n");
    ok(&repo, &["run"]);
    let last = ok(&repo, &["explain", "curl@linux/arm64", "--run", "last"]);
    assert!(last.starts_with("curl@linux/arm64 was rebuilt because curl/data.txt changed"), "{last}");
    assert_eq!(last, ok(&repo, &["explain", "curl@linux/arm64", "--run", "2"]));
    let bad = repo.run(&["explain", "curl", "--run", "latest"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("expected `last` or a run number"), "{}", bad.stderr);
    // The newest run built nothing: it says where to look.
    ok(&repo, &["run"]);
    let fresh = repo.run(&["explain", "curl@linux/arm64", "--run", "last"]);
    assert_eq!(fresh.code, 2, "{}", fresh.stdout);
    assert!(fresh.stderr.contains("run 3 built nothing of `curl@linux/arm64`"), "{}", fresh.stderr);
}

/// An image's nodes share causes: each node is explained once, later mentions say
/// `(see above)`; the 4 nodes of `tool` and `curl` take one line each plus the manifest's.
#[test]
fn the_cause_tree_names_each_cause_once() {
    let repo = curl_and_tool();
    ok(&repo, &["run"]);
    repo.write("curl/data.txt", "v2\n");
    let now = ok(&repo, &["explain", "tool"]);
    ok(&repo, &["run"]);
    let past = ok(&repo, &["explain", "tool", "--run", "2"]);
    for text in [&now, &past] {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        for node in ["curl@linux/amd64", "curl@linux/arm64", "tool@linux/amd64", "tool@linux/arm64"] {
            let explained = lines.iter().filter(|l| l.trim_start().starts_with(&format!("{node} "))).count();
            let repeated = lines.iter().filter(|l| l.contains(node) && l.ends_with("(see above)")).count();
            assert_eq!((explained - repeated, node), (1, node), "{text}");
        }
    }
    assert!(past.contains("\n  tool@linux/amd64 was rebuilt (see above)\n"), "{past}");
    let json: Value =
        serde_json::from_str(&ok(&repo, &["explain", "tool", "--run", "2", "--format", "json"]))
            .expect("json");
    let manifest = json.as_array().expect("list").iter().find(|e| e["node"] == "tool").expect("tool");
    assert_eq!(manifest["action"], "push", "{json}");
    assert_eq!(manifest["causes"][0]["repeated"], true, "{json}");
    assert_eq!(manifest["causes"][0]["causes"], serde_json::json!([]), "{json}");
}

/// `plan`, `explain` and `graph` say `fresh` for a fresh node (never `skip`), `build` for an
/// image and `push` for a manifest; `graph` JSON fills `last_result` for built nodes, also
/// after a run that found them fresh.
#[test]
fn one_vocabulary_in_plan_explain_and_graph() {
    let repo = curl_and_tool();
    let plan: Value = serde_json::from_str(&ok(&repo, &["plan", "--format", "json"])).expect("json");
    let actions: Vec<(&str, &str)> = plan["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n["action"].as_str().expect("action")))
        .collect();
    assert!(
        actions.contains(&("curl@linux/amd64", "build")) && actions.contains(&("curl", "push")),
        "{actions:?}"
    );
    ok(&repo, &["run"]);
    ok(&repo, &["run"]);
    for args in [
        &["plan", "--format", "json"][..],
        &["explain", "tool", "--format", "json"],
        &["graph", "--format", "json"],
    ] {
        let out = ok(&repo, args);
        assert!(!out.contains("\"skip\""), "{args:?}: {out}");
        assert!(out.contains("\"fresh\""), "{args:?}: {out}");
    }
    let table = ok(&repo, &["plan"]);
    assert!(table.contains("\n  fresh   curl@linux/amd64") && !table.contains("skip"), "{table}");
    let graph: Value = serde_json::from_str(&ok(&repo, &["graph", "--format", "json"])).expect("json");
    for node in graph["nodes"].as_array().expect("nodes") {
        assert_eq!(node["plan"]["last_result"], "built", "{node}");
    }
}

/// `plan --changed` shows only what will run, in the table and in JSON.
#[test]
fn plan_changed_shows_only_what_will_run() {
    let repo = curl_and_tool()
        .file("other/Dockerfile", "FROM scratch\nCOPY o.txt /o.txt\n")
        .file("other/o.txt", "o\n");
    let graph = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("graph");
    repo.write("hephy.kdl", &format!("{graph}image \"other\" {{\n    context \"other\"\n}}\n"));
    ok(&repo, &["run"]);
    repo.write("tool/t.txt", "t2\n");
    let table = ok(&repo, &["plan", "--changed"]);
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("  ") && !l.contains("ACTION")).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows.iter().all(|r| r.contains("tool")), "{table}");
    let json: Value =
        serde_json::from_str(&ok(&repo, &["plan", "--changed", "--format", "json"])).expect("json");
    let ids: Vec<&str> =
        json["nodes"].as_array().expect("nodes").iter().map(|n| n["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["tool@linux/amd64", "tool@linux/arm64", "tool"]);
    assert_eq!(json["order"].as_array().expect("order").len(), 3);
    // The whole plan is still there without the flag.
    assert!(ok(&repo, &["plan"]).contains("9 nodes: 3 to build, 6 fresh"));
}

/// A node cut off during a run (its dependency rebuilt to the same output) is `fresh` in the
/// run's lines and in `explain --run`, not a skip.
#[test]
fn a_cut_off_node_is_fresh_in_the_run_and_its_explanation() {
    let repo = Repo::new().file("in.txt", "a\nb\n").file(
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
"#,
    );
    ok(&repo, &["run"]);
    repo.write("in.txt", "x\ny\n");
    let run = ok(&repo, &["run"]);
    assert!(run.contains("fresh   use: its dependencies rebuilt to the same output\n"), "{run}");
    assert!(!run.contains("skip"), "{run}");
    let why = ok(&repo, &["explain", "use", "--run", "last"]);
    assert_eq!(why, "use was fresh: its dependencies rebuilt to the same outputs\n");
}
