//! Thousands of images with random dependencies: both syntaxes plan identically, and the order
//! puts every dependency before its dependents on each platform.

mod common;

#[path = "../benches/synthetic.rs"]
mod synthetic;

use common::Repo;

#[test]
fn synthetic_graph_of_2000_images_plans_the_same_in_both_syntaxes() {
    let n = 2000;
    let graph = synthetic::generate(n, 7);
    let repo = Repo::new().file("hephy.kdl", &graph.kdl).file("hephy.yaml", &graph.yaml);
    synthetic::write_contexts(repo.path(), n);
    let kdl = repo.run(&["plan", "-f", "hephy.kdl", "--format", "json"]);
    let yaml = repo.run(&["plan", "-f", "hephy.yaml", "--format", "json"]);
    assert_eq!(kdl.code, 0, "{}", kdl.stderr);
    assert_eq!(kdl.stdout, yaml.stdout);
    let plan = kdl.json();
    let order: Vec<&str> = plan["order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    // builds + manifest + tag per image
    assert_eq!(order.len(), n * 4);
    let position: std::collections::HashMap<&str, usize> =
        order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for (i, deps) in graph.deps.iter().enumerate() {
        for platform in ["linux/amd64", "linux/arm64"] {
            let me = position[format!("img{i}@{platform}").as_str()];
            for j in deps {
                assert!(
                    position[format!("img{j}@{platform}").as_str()] < me,
                    "img{j} before img{i} on {platform}"
                );
            }
        }
    }
}
