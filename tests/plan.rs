//! `hephy plan` and `hephy graph` on the real examples, in both syntaxes.

mod common;

use common::Repo;
use serde_json::Value;

fn plan_json(repo: &Repo, file: &str) -> Value {
    let run = repo.run(&["plan", "-f", file, "--format", "json"]);
    assert_eq!(run.code, 0, "plan failed: {}", run.stderr);
    run.json()
}

fn position(plan: &Value, id: &str) -> usize {
    plan["order"]
        .as_array()
        .expect("order is a list")
        .iter()
        .position(|v| v == id)
        .unwrap_or_else(|| panic!("{id} not planned"))
}

#[test]
fn kaniko_builder_plans_identically_from_kdl_and_yaml() {
    let repo = Repo::example("kaniko-builder");
    let kdl = repo.run(&["plan", "-f", "hephy.kdl", "--format", "json"]);
    let yaml = repo.run(&["plan", "-f", "graph.yaml", "--format", "json"]);
    assert_eq!(kdl.code, 0, "{}", kdl.stderr);
    assert_eq!(yaml.code, 0, "{}", yaml.stderr);
    assert_eq!(kdl.stdout, yaml.stdout, "the two syntaxes must mean the same");
}

#[test]
fn tasks_example_plans_identically_from_kdl_and_yaml() {
    let repo = Repo::example("tasks");
    assert_eq!(plan_json(&repo, "hephy.kdl"), plan_json(&repo, "graph.yaml"));
}

#[test]
fn dependency_builds_come_first_on_each_platform() {
    let repo = Repo::example("kaniko-builder");
    let plan = plan_json(&repo, "hephy.kdl");
    for platform in ["linux/amd64", "linux/arm64"] {
        let curl = position(&plan, &format!("curl@{platform}"));
        let tool = position(&plan, &format!("manifest-tool@{platform}"));
        assert!(curl < tool, "curl@{platform} must come before manifest-tool@{platform}");
        let node = plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == format!("manifest-tool@{platform}"))
            .unwrap();
        assert_eq!(node["deps"], serde_json::json!([format!("curl@{platform}")]), "same-platform dependency");
        assert_eq!(node["inject"]["BASE"], format!("curl@{platform}"));
        assert_eq!(node["executor"], platform.trim_start_matches("linux/"));
    }
}

#[test]
fn every_node_is_built_because_it_never_was() {
    let repo = Repo::example("kaniko-builder");
    let plan = plan_json(&repo, "graph.yaml");
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), plan["order"].as_array().unwrap().len());
    for node in nodes {
        assert_ne!(node["action"], "fresh");
        let reasons = node["reasons"].as_array().expect("reasons");
        if node["kind"] == "image" && node["name"] == "kaniko" {
            // Its upstream ref cannot be resolved offline before a first fetch: said, not hidden.
            assert_eq!(reasons[0]["kind"], "inputs_unreadable", "{}", node["id"]);
            assert!(reasons[0]["message"].as_str().expect("text").contains("offline"), "{}", node["id"]);
            assert_eq!(reasons[1], serde_json::json!({"kind": "never_built"}));
        } else {
            assert_eq!(node["reasons"], serde_json::json!([{"kind": "never_built"}]), "{}", node["id"]);
        }
        let kind = node["kind"].as_str().unwrap();
        assert!(["image", "manifest", "tag", "task"].contains(&kind));
        match kind {
            "image" => assert!(node["platform"].is_string(), "{}", node["id"]),
            "manifest" | "tag" => assert!(node["platform"].is_null(), "{}", node["id"]),
            _ => {}
        }
    }
}

#[test]
fn kaniko_targets_expand_to_builds_manifests_and_tags() {
    let repo = Repo::example("kaniko-builder");
    let plan = plan_json(&repo, "hephy.kdl");
    for target in ["executor", "debug", "warmer"] {
        let manifest = position(&plan, &format!("kaniko.{target}"));
        for platform in ["linux/amd64", "linux/arm64"] {
            assert!(position(&plan, &format!("kaniko.{target}@{platform}")) < manifest);
        }
        for tag in ["latest", "v1.25.3"] {
            assert!(manifest < position(&plan, &format!("kaniko.{target}:{tag}")));
        }
    }
}

#[test]
fn plan_text_is_an_aligned_table() {
    let repo = Repo::example("kaniko-builder");
    // One graph file per example folder: no `-f` needed (the YAML twin is `graph.yaml`).
    let run = repo.run(&["plan"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.replacen("plan hephy.kdl", "plan FILE", 1),
        repo.run(&["plan", "-f", "graph.yaml"]).stdout.replacen("plan graph.yaml", "plan FILE", 1)
    );
    insta::assert_snapshot!("plan_text_kaniko_builder", run.stdout);
}

#[test]
fn graph_exports_dot_mermaid_and_json() {
    let repo = Repo::example("kaniko-builder");
    let dot = repo.run(&["graph", "-f", "hephy.kdl", "--format", "dot"]);
    assert_eq!(dot.code, 0);
    assert!(dot.stdout.starts_with("digraph hephy {"));
    assert!(dot.stdout.contains("\"curl@linux/arm64\" -> \"manifest-tool@linux/arm64\";"));
    let mermaid = repo.run(&["graph", "-f", "hephy.kdl", "--format", "mermaid"]);
    assert_eq!(mermaid.code, 0);
    assert!(mermaid.stdout.starts_with("flowchart LR\n"));
    let json = repo.run(&["graph", "-f", "graph.yaml", "--format", "json"]).json();
    let edges = json["edges"].as_array().unwrap();
    assert!(edges.contains(&serde_json::json!(["curl@linux/amd64", "manifest-tool@linux/amd64"])));
    assert!(!edges.contains(&serde_json::json!(["curl@linux/amd64", "manifest-tool@linux/arm64"])));
    assert_eq!(json["nodes"].as_array().unwrap().len(), 24);
}

/// A changed file whose name holds a line end, quotes and markup is named in the plan's
/// reasons, and those stay inside their label: the Mermaid chart has its two nodes and one edge,
/// a line each, and the name shows as written (entity codes), in DOT as one tooltip string.
#[test]
fn graph_exports_keep_hostile_names_inside_their_labels() {
    let name = "\"q\"<!--\nn9[\"pwn\"]#";
    let repo = Repo::new()
        .file("hephy.kdl", "image \"web\" {\n    context \"web\"\n    platforms \"linux/amd64\"\n}\n")
        .file("web/Dockerfile", "FROM scratch\nCOPY . /\n")
        .file(&format!("web/{name}"), "a\n");
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    repo.write(&format!("web/{name}"), "b\n");
    let mermaid = repo.run(&["graph", "--format", "mermaid"]);
    assert_eq!(mermaid.code, 0, "{}", mermaid.stderr);
    let lines: Vec<&str> = mermaid.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "the header, two nodes, one edge:\n{}", mermaid.stdout);
    assert!(
        lines[3].starts_with("  n0[\"") && lines[4].starts_with("  n1[[\"") && lines[5] == "  n0 --> n1",
        "{}",
        mermaid.stdout
    );
    assert!(
        lines[3].contains("web/#34;q#34;#60;!--<br/>n9[#34;pwn#34;]#35; changed"),
        "the name as written, in entity codes: {}",
        lines[3]
    );
    let dot = repo.run(&["graph", "--format", "dot"]);
    assert_eq!(dot.code, 0, "{}", dot.stderr);
    assert!(dot.stdout.contains(r#"tooltip="web/\"q\"<!--\nn9[\"pwn\"]# changed"#), "{}", dot.stdout);
}

#[test]
fn check_reports_ok_and_counts_nodes() {
    let repo = Repo::example("tasks");
    let run = repo.run(&["check", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(": ok ("), "{}", run.stdout);
}

#[test]
fn default_file_is_found_in_the_current_folder() {
    let repo = Repo::new()
        .context("app")
        .file("hephy.yaml", "images:\n  app: { context: app, platforms: [linux/amd64] }\n");
    let run = repo.run(&["plan", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["order"], serde_json::json!(["app@linux/amd64", "app"]));
    let empty = Repo::new();
    let run = empty.run(&["check"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no graph file here"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let repo = Repo::new();
    assert_eq!(repo.run(&["plan", "--format", "yaml"]).code, 2);
    assert_eq!(repo.run(&["frobnicate"]).code, 2);
    assert_eq!(repo.run(&["check", "-f", "missing.kdl"]).code, 2);
    assert_eq!(repo.run(&["check", "-f", "graph.toml"]).code, 2);
}

#[test]
fn order_is_deterministic_whatever_the_declaration_order() {
    let forward = Repo::new().context("a").context("b").context("c").file(
        "hephy.kdl",
        "platforms \"linux/amd64\"\nimage \"c\" { context \"c\"; after \"a\"; }\nimage \"b\" { context \"b\"; }\nimage \"a\" { context \"a\"; }\n",
    );
    let backward = Repo::new().context("a").context("b").context("c").file(
        "hephy.kdl",
        "platforms \"linux/amd64\"\nimage \"a\" { context \"a\"; }\nimage \"b\" { context \"b\"; }\nimage \"c\" { context \"c\"; after \"a\"; }\n",
    );
    let f = plan_json(&forward, "hephy.kdl");
    assert_eq!(f["order"], plan_json(&backward, "hephy.kdl")["order"]);
    assert_eq!(
        f["order"],
        serde_json::json!(["a@linux/amd64", "a", "b@linux/amd64", "b", "c@linux/amd64", "c"])
    );
}

#[test]
fn the_plan_table_fits_the_terminal_and_wide_shows_everything() {
    let repo = Repo::example("kaniko-builder");
    let narrow = repo.run_with(&["plan"], &[("COLUMNS", "100")]);
    assert_eq!(narrow.code, 0, "{}", narrow.stderr);
    let widest = narrow.stdout.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 100, "a line of {widest} columns:\n{}", narrow.stdout);
    assert!(narrow.stdout.contains('…') && narrow.stdout.contains("`--wide` shows all"), "{}", narrow.stdout);
    // Every node is still there, whole in the NODE column.
    let whole = repo.run(&["plan"]);
    assert_eq!(narrow.stdout.lines().count(), whole.stdout.lines().count() + 2);
    for line in whole.stdout.lines().skip(3) {
        let node = line.split_whitespace().nth(1).expect("a node column");
        assert!(narrow.stdout.contains(&format!(" {node} ")), "{node} missing");
    }
    // `--wide`, or a pipe (no COLUMNS, no terminal): nothing shortened.
    let wide = repo.run_with(&["plan", "--wide"], &[("COLUMNS", "100")]);
    assert_eq!(wide.stdout, whole.stdout);
    assert!(!whole.stdout.contains('…'));
    // The stamp keeps the whole table: a narrow terminal after it still gets a fitted one.
    let again = repo.run_with(&["plan"], &[("COLUMNS", "100")]);
    assert_eq!(again.stdout, narrow.stdout);
}
