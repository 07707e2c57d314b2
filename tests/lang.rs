//! Variables, templates, matrices, `--set` and `hephy show`, end to end, in both syntaxes.

mod common;

use common::Repo;

const KDL: &str = r#"
variables VERSION="1.0" FLAVOR="slim"
platforms "linux/amd64"
template "common" {
    tags "latest" "${VERSION}"
}
template "service" {
    inherits "common"
    from "base" arg="BASE"
    args FLAVOR="${FLAVOR}"
}
image "base" {
    inherits "common"
    context "base"
}
image "${service}-${variant}" {
    matrix {
        service "nova" "glance"
        variant "api" "worker"
    }
    inherits "service"
    context "services/${service}"
    args VARIANT="${variant}"
}
"#;

const YAML: &str = r#"
variables: { VERSION: "1.0", FLAVOR: slim }
platforms: [linux/amd64]
templates:
  common:
    tags: [latest, "${VERSION}"]
  service:
    inherits: [common]
    from: { base: { arg: BASE } }
    args: { FLAVOR: "${FLAVOR}" }
images:
  base:
    inherits: [common]
    context: base
  ${service}-${variant}:
    matrix:
      service: [nova, glance]
      variant: [api, worker]
    inherits: [service]
    context: services/${service}
    args: { VARIANT: "${variant}" }
"#;

/// What the two files above mean, written out by hand.
fn expanded() -> String {
    let mut text = String::from(
        "platforms \"linux/amd64\"\nimage \"base\" {\n    context \"base\"\n    tags \"latest\" \"1.0\"\n}\n",
    );
    for service in ["nova", "glance"] {
        for variant in ["api", "worker"] {
            text.push_str(&format!(
                "image \"{service}-{variant}\" {{\n    context \"services/{service}\"\n    tags \"latest\" \"1.0\"\n    from \"base\" arg=\"BASE\"\n    args FLAVOR=\"slim\" VARIANT=\"{variant}\"\n}}\n"
            ));
        }
    }
    text
}

fn repo() -> Repo {
    Repo::new()
        .context("base")
        .context("services/nova")
        .context("services/glance")
        .file("hephy.kdl", KDL)
        .file("hephy.yaml", YAML)
        .file("expanded.kdl", &expanded())
}

/// The plan's nodes and their keys, without the graph file's name.
fn plan(repo: &Repo, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["plan", "--format", "json"];
    all.extend_from_slice(args);
    let run = repo.run_with(&all, env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut json = run.json();
    json.as_object_mut().map(|o| o.remove("graph"));
    json
}

fn tags(plan: &serde_json::Value) -> Vec<String> {
    plan["order"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|id| id.as_str())
        .filter(|id| id.contains(':'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn both_syntaxes_plan_like_the_hand_expanded_graph() {
    let repo = repo();
    let by_hand = plan(&repo, &["-f", "expanded.kdl"], &[]);
    assert_eq!(
        by_hand["order"].as_array().expect("a list").len(),
        5 * 4,
        "5 images × (build, manifest, 2 tags)"
    );
    assert_eq!(plan(&repo, &["-f", "hephy.kdl"], &[]), by_hand);
    assert_eq!(plan(&repo, &["-f", "hephy.yaml"], &[]), by_hand);
}

#[test]
fn set_and_the_environment_override_variables_and_image_settings() {
    let repo = repo();
    for file in ["hephy.kdl", "hephy.yaml"] {
        let env = plan(&repo, &["-f", file], &[("HEPHY_VAR_VERSION", "2.0")]);
        assert!(tags(&env).contains(&"nova-api:2.0".to_owned()), "{file}: {:?}", tags(&env));
        let set = plan(&repo, &["-f", file, "--set", "VERSION=3.0"], &[("HEPHY_VAR_VERSION", "2.0")]);
        assert!(tags(&set).contains(&"nova-api:3.0".to_owned()), "--set beats the environment");
        assert!(!tags(&set).iter().any(|t| t.ends_with(":2.0")));
        let one = plan(&repo, &["-f", file, "--set", "image.glance-worker.tags=edge"], &[]);
        let glance: Vec<String> =
            tags(&one).into_iter().filter(|t| t.starts_with("glance-worker:")).collect();
        assert_eq!(glance, ["glance-worker:edge"], "{file}");
        assert!(tags(&one).contains(&"nova-api:latest".to_owned()), "other images keep theirs");
    }
}

#[test]
fn bad_set_arguments_are_usage_errors_with_help() {
    let repo = repo();
    let unknown = repo.run(&["plan", "-f", "hephy.kdl", "--set", "VERSON=2"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("did you mean `VERSION`?"), "{}", unknown.stderr);
    let field = repo.run(&["check", "-f", "hephy.yaml", "--set", "image.nova-api.lables=x"]);
    assert_eq!(field.code, 2);
    assert!(
        field.stderr.contains("`context`, `dockerfile`"),
        "the settable fields are listed:\n{}",
        field.stderr
    );
    let image = repo.run(&["check", "-f", "hephy.yaml", "--set", "image.nova-apj.tags=x"]);
    assert_eq!(image.code, 2);
    assert!(image.stderr.contains("did you mean `nova-api`?"), "{}", image.stderr);
}

#[test]
fn show_prints_each_setting_with_its_origin() {
    let repo = repo();
    for file in ["hephy.kdl", "hephy.yaml"] {
        let run = repo.run_with(&["show", "nova-worker", "-f", file, "--set", "FLAVOR=full"], &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let line = |field: &str| {
            run.stdout
                .lines()
                .find(|l| l.trim_start().starts_with(field))
                .unwrap_or_else(|| panic!("no `{field}` in:\n{}", run.stdout))
                .to_owned()
        };
        assert!(line("templates").contains("common → service"), "{}", run.stdout);
        assert!(line("matrix").contains("service=nova variant=worker"), "{}", run.stdout);
        assert!(
            line("context").contains("services/nova") && line("context").contains("image,"),
            "{}",
            run.stdout
        );
        assert!(line("tags").contains("template common"), "{}", run.stdout);
        assert!(line("args.FLAVOR").contains("full") && line("args.FLAVOR").contains("template service"));
        assert!(run.stdout.contains("FLAVOR=full (--set)"), "{}", run.stdout);
        let json = repo.run(&["show", "nova-worker", "-f", file, "--format", "json"]).json();
        let tags = json["settings"]
            .as_array()
            .expect("a list")
            .iter()
            .find(|s| s["field"] == "tags")
            .expect("tags")
            .clone();
        assert_eq!(tags["origin"], serde_json::json!({"kind": "template", "name": "common"}));
        assert_eq!(tags["line"], if file == "hephy.kdl" { 5 } else { 6 });
    }
    let set = repo.run(&[
        "show",
        "nova-worker",
        "-f",
        "hephy.kdl",
        "--set",
        "image.nova-worker.tags=edge",
        "--format",
        "json",
    ]);
    let tags =
        set.json()["settings"].as_array().expect("settings").iter().find(|s| s["field"] == "tags").cloned();
    assert_eq!(
        tags.map(|t| (t["value"].clone(), t["origin"].clone())),
        Some(("edge".into(), serde_json::json!({"kind": "set"})))
    );
    let missing = repo.run(&["show", "nova-wroker", "-f", "hephy.kdl"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("did you mean `nova-worker`?"), "{}", missing.stderr);
}

/// The no-op plan's stamp records the graph file, not the overrides: a plan with `--set` must
/// not be answered from it.
#[test]
fn an_override_is_never_answered_from_the_no_op_stamp() {
    let repo = repo();
    std::fs::remove_file(repo.path().join("hephy.yaml")).expect("remove");
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A fresh plan leaves its stamp (the files were written more than two seconds before it
    // only if the machine is slow: plan twice so that the second one can be answered from it).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(repo.run(&["plan"]).code, 0);
    let set = plan(&repo, &["--set", "VERSION=9"], &[]);
    assert!(tags(&set).contains(&"nova-api:9".to_owned()), "{:?}", tags(&set));
    let env = plan(&repo, &[], &[("HEPHY_VAR_VERSION", "8")]);
    assert!(tags(&env).contains(&"nova-api:8".to_owned()), "{:?}", tags(&env));
}

/// Generated CI jobs run `hephy run -f FILE` without the generator's `--set`: refused, with the
/// environment as the way that reaches every job.
#[test]
fn ci_refuses_set() {
    let repo = repo().file("registry.kdl", &format!("registry \"registry.example.com/p\"\n{KDL}"));
    let run = repo.run(&["ci", "gitlab", "-f", "registry.kdl", "--set", "VERSION=2"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("HEPHY_VAR_NAME"), "{}", run.stderr);
    let env =
        repo.run_with(&["ci", "gitlab", "--static", "-f", "registry.kdl"], &[("HEPHY_VAR_VERSION", "2")]);
    assert_eq!(env.code, 0, "{}", env.stderr);
    assert!(env.stdout.contains("nova-api:2"), "{}", env.stdout);
}
