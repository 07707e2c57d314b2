//! `hephy import` on a fixture repository in the kaniko-builder layout: the graph it writes is
//! accepted by `check`, and plans exactly like the hand-written expected graph.

mod common;

use common::Repo;

fn fixture() -> Repo {
    Repo::copy_of("tests/fixtures/kaniko-builder-layout")
}

fn plan(repo: &Repo, file: &str) -> String {
    let run = repo.run(&["plan", "-f", file, "--format", "json"]);
    assert_eq!(run.code, 0, "{file}: {}", run.stderr);
    run.stdout
}

#[test]
fn the_imported_graph_plans_like_the_hand_written_one() {
    let repo = fixture();
    let kdl = repo.run(&["import", ".", "-o", "hephy.kdl"]);
    assert_eq!(kdl.code, 0, "{}", kdl.stderr);
    // What it could not carry over is said, not dropped silently.
    assert_eq!(kdl.stderr, "warning: legacy/build-config.yaml: unknown key `notify_slack`: left out\n");
    // With a registry set (as a user would), the naming convention enters the keys too.
    for file in ["hephy.kdl", "expected.kdl"] {
        let text = std::fs::read_to_string(repo.path().join(file)).expect("read");
        repo.write(file, &format!("registry \"127.0.0.1:5000/images\"\n{text}"));
    }
    let check = repo.run(&["check", "-f", "hephy.kdl"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let expected = plan(&repo, "expected.kdl");
    assert_eq!(plan(&repo, "hephy.kdl"), expected);
    // manifest-tool was found to build FROM curl, per platform, through the two args.
    let json: serde_json::Value = serde_json::from_str(&expected).expect("json");
    let tool = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == "manifest-tool@linux/arm64")
        .expect("node");
    assert_eq!(tool["deps"], serde_json::json!(["curl@linux/arm64"]));

    let yaml = repo.run(&["import", ".", "--format", "yaml", "-o", "hephy.yaml"]);
    assert_eq!(yaml.code, 0, "{}", yaml.stderr);
    let text = std::fs::read_to_string(repo.path().join("hephy.yaml")).expect("read");
    repo.write("hephy.yaml", &format!("registry: 127.0.0.1:5000/images\n{text}"));
    assert_eq!(plan(&repo, "hephy.yaml"), expected, "both syntaxes mean the same");
}

#[test]
fn a_folder_without_the_layout_is_an_error() {
    let repo = Repo::new().file("README.md", "nothing here\n");
    let run = repo.run(&["import", "."]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("has no folder with a `build-config.yaml`"), "{}", run.stderr);
}
