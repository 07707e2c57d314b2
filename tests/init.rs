//! The first five minutes: `hephy init` in a folder of Dockerfiles writes a graph that checks,
//! plans with the inferred edges and builds; `-f` before the command; `--force a b`;
//! completions and the man page.

mod common;

use common::Repo;

fn repository() -> Repo {
    Repo::new()
        .file("curl/Dockerfile", "FROM scratch\nCOPY hello.txt /etc/curl/hello.txt\n")
        .file("curl/hello.txt", "hello\n")
        .file("tool/Dockerfile", "ARG BASE=curl:latest\nFROM ${BASE}\nCOPY tool.txt /tool.txt\n")
        .file("tool/tool.txt", "tool\n")
        .file("tool/Dockerfile.debug", "ARG BASE=curl\nFROM $BASE\nCOPY tool.txt /debug.txt\n")
        .file("docs/site.Dockerfile", "FROM scratch\nCOPY . /srv/\n")
        .file("vendor/.gitignore", "\n")
        .file(".gitignore", "vendor/\n")
        .file("vendor/skipped/Dockerfile", "FROM scratch\n")
}

/// The plan's edges as `dependency -> node` strings, per image node.
fn edges(run: &common::Run) -> Vec<String> {
    let json = run.json();
    let mut out = Vec::new();
    for node in json["nodes"].as_array().expect("nodes") {
        let id = node["id"].as_str().expect("node id");
        for need in node["deps"].as_array().into_iter().flatten() {
            out.push(format!("{} -> {id}", need.as_str().expect("need")));
        }
    }
    out
}

#[test]
fn init_writes_a_graph_that_checks_plans_and_builds() {
    for (format, file) in [("kdl", "hephy.kdl"), ("yaml", "hephy.yaml")] {
        let repo = repository();
        let init = repo.run(&["init", "--format", format]);
        assert_eq!(init.code, 0, "{}", init.stderr);
        assert!(init.stdout.contains(&format!("wrote {file}: 4 image(s)")), "{}", init.stdout);
        let text = std::fs::read_to_string(repo.path().join(file)).expect("graph written");
        assert!(!text.contains("skipped"), "a git-ignored Dockerfile became an image:\n{text}");

        assert_eq!(repo.run(&["check"]).code, 0);
        let plan = repo.run(&["plan", "--format", "json"]);
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        let edges = edges(&plan);
        let host = edges.iter().find(|e| e.starts_with("curl@")).expect("an edge from curl").clone();
        let platform = host.split_once('@').and_then(|(_, rest)| rest.split_once(' ')).expect("platform").0;
        for dependent in ["tool", "tool-debug"] {
            let edge = format!("curl@{platform} -> {dependent}@{platform}");
            assert!(edges.contains(&edge), "missing {edge} in {edges:#?}");
        }
        assert!(!edges.iter().any(|e| e.ends_with(&format!("docs-site@{platform}"))), "{edges:#?}");

        let run = repo.run(&["run"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("tool-debug"), "{}", run.stdout);
        assert_eq!(repo.run(&["run", "--format", "json"]).json()["built"], 0);

        // Never over an existing graph.
        let again = repo.run(&["init"]);
        assert_eq!(again.code, 2);
        assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    }
}

#[test]
fn init_in_a_folder_without_dockerfiles_says_so() {
    let repo = Repo::new().file("README.md", "nothing to build\n");
    let run = repo.run(&["init"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no Dockerfile under"), "{}", run.stderr);
}

#[test]
fn the_file_may_come_before_the_command_and_force_takes_several_nodes() {
    let repo = repository();
    assert_eq!(repo.run(&["init", "--format", "yaml"]).code, 0);
    std::fs::rename(repo.path().join("hephy.yaml"), repo.path().join("images.yaml")).expect("rename");
    assert_eq!(repo.run(&["-f", "images.yaml", "run"]).code, 0);
    let plan = repo.run(&["-f", "images.yaml", "plan", "--force", "curl", "docs-site", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let json = plan.json();
    let built: Vec<&str> = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["action"] == "build")
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert!(built.iter().any(|n| n.starts_with("curl@")), "{built:?}");
    assert!(built.iter().any(|n| n.starts_with("docs-site@")), "{built:?}");
    assert!(built.iter().any(|n| n.starts_with("tool@")), "curl's dependents follow: {built:?}");
}
