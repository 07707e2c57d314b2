//! `hephy import --from bake` on four bake files written the way projects write them (a matrix
//! over services, a shared base target, a cross-compiler used with `$BUILDPLATFORM`, the JSON
//! form, `inherits` three deep, functions, variables from the environment): the graph checks
//! and plans identically in KDL and YAML, and the plan's edges are exactly the bake file's
//! `target:` contexts.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Repo;
use serde_json::Value;

fn host() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// Imports `file` of the fixture `name` in both syntaxes, checks both, and returns the plan
/// (the same bytes for both) and the warnings.
fn import(name: &str, file: &str, env: &[(&str, &str)]) -> (Repo, Value, String) {
    import_with(name, file, env, &[])
}

/// [`import`], with more flags of `hephy import` (`--env-frozen`).
fn import_with(name: &str, file: &str, env: &[(&str, &str)], flags: &[&str]) -> (Repo, Value, String) {
    let repo = Repo::copy_of(&format!("tests/fixtures/{name}"));
    let args = |more: &[&'static str]| -> Vec<String> {
        ["import", "--from", "bake", file].iter().chain(more).chain(flags).map(|s| (*s).to_owned()).collect()
    };
    let args_kdl = args(&["-o", "hephy.kdl"]);
    let args_kdl: Vec<&str> = args_kdl.iter().map(String::as_str).collect();
    let kdl = repo.run_with(&args_kdl, env);
    assert_eq!(kdl.code, 0, "{}", kdl.stderr);
    let args_yaml = args(&["--format", "yaml", "-o", "hephy.yaml"]);
    let args_yaml: Vec<&str> = args_yaml.iter().map(String::as_str).collect();
    let yaml = repo.run_with(&args_yaml, env);
    assert_eq!(yaml.code, 0, "{}", yaml.stderr);
    assert_eq!(kdl.stderr, yaml.stderr, "the same warnings in both syntaxes");
    assert!(!kdl.stderr.contains("imported commented out"), "every target imports:\n{}", kdl.stderr);
    for graph in ["hephy.kdl", "hephy.yaml"] {
        let text = std::fs::read_to_string(repo.path().join(graph)).unwrap();
        repo.write(
            graph,
            &format!(
                "{}{text}",
                if graph.ends_with("kdl") {
                    "registry \"127.0.0.1:5000/team\"\n"
                } else {
                    "registry: 127.0.0.1:5000/team\n"
                }
            ),
        );
        let check = repo.run(&["check", "-f", graph]);
        assert_eq!(check.code, 0, "{graph}: {}\n{text}", check.stderr);
    }
    let plan = |graph: &str| {
        let run = repo.run(&["plan", "-f", graph, "--format", "json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout
    };
    let kdl_plan = plan("hephy.kdl");
    assert_eq!(plan("hephy.yaml"), kdl_plan, "{name}: both syntaxes plan the same");
    (repo, serde_json::from_str(&kdl_plan).unwrap(), kdl.stderr)
}

/// Every image build's image dependencies, as `(image, platform) → {dep@platform}`.
fn image_edges(plan: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let nodes = plan["nodes"].as_array().unwrap();
    let is_image = |id: &str| nodes.iter().any(|n| n["id"] == id && n["kind"] == "image");
    nodes
        .iter()
        .filter(|n| n["kind"] == "image")
        .map(|n| {
            let deps = n["deps"].as_array().unwrap().iter().filter_map(Value::as_str).filter(|d| is_image(d));
            (n["id"].as_str().unwrap().to_owned(), deps.map(str::to_owned).collect())
        })
        .collect()
}

/// What the bake file's `target:` contexts say: each build of `dependent` needs `dep`'s build
/// for the same platform, or (`FROM --platform=$BUILDPLATFORM`) for the build machine's.
fn expected(plan: &Value, contexts: &[(&str, &str, bool)]) -> BTreeMap<String, BTreeSet<String>> {
    // A node id is `image@platform`, or `image.target@platform` for a target.
    let prefixes: BTreeMap<String, String> = image_edges(plan)
        .keys()
        .map(|id| {
            let prefix = id.split_once('@').unwrap().0;
            (prefix.split('.').next().unwrap().to_owned(), prefix.to_owned())
        })
        .collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for id in image_edges(plan).keys() {
        let (prefix, platform) = id.split_once('@').unwrap();
        let image = prefix.split('.').next().unwrap();
        let deps = contexts
            .iter()
            .filter(|(dependent, _, _)| *dependent == image)
            .map(|(_, dep, build)| {
                format!("{}@{}", prefixes[*dep], if *build { host() } else { platform.to_owned() })
            })
            .collect();
        out.insert(id.clone(), deps);
    }
    out
}

/// `plan --group GROUP` plans exactly the nodes of the images `targets` (what the bake group
/// names) and everything they depend on, as the whole plan's edges say, in both syntaxes.
fn check_group(repo: &Repo, plan: &Value, group: &str, targets: &[&str]) {
    let nodes = plan["nodes"].as_array().unwrap();
    let mut want: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<&str> = nodes
        .iter()
        .filter(|n| targets.contains(&n["name"].as_str().unwrap()))
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(!stack.is_empty(), "group `{group}`: no node of {targets:?}");
    while let Some(id) = stack.pop() {
        if want.insert(id.to_owned()) {
            let node = nodes.iter().find(|n| n["id"] == id).unwrap();
            stack.extend(node["deps"].as_array().unwrap().iter().filter_map(Value::as_str));
        }
    }
    for graph in ["hephy.kdl", "hephy.yaml"] {
        let run = repo.run(&["plan", "-f", graph, "--group", group, "--format", "json"]);
        assert_eq!(run.code, 0, "{graph}: {}", run.stderr);
        let got: BTreeSet<String> =
            run.json()["order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        assert_eq!(got, want, "{graph}: `--group {group}` plans the group's targets and their dependencies");
    }
}

fn images(plan: &Value) -> BTreeSet<String> {
    image_edges(plan).keys().map(|id| id.split(['@', '.']).next().unwrap().to_owned()).collect()
}

#[test]
fn services_matrix_with_a_shared_base_and_a_cross_compiler() {
    let (repo, plan, warnings) = import("bake-services", "docker-bake.hcl", &[]);
    let services = ["api", "worker", "scheduler", "gateway", "auth", "billing", "search", "notify"];
    let mut contexts: Vec<(String, &str, bool)> = Vec::new();
    for s in services {
        contexts.push((format!("svc-{s}"), "base", false));
        contexts.push((format!("svc-{s}"), "xx", true));
    }
    for t in ["tools", "debug"] {
        contexts.push((t.to_owned(), "base", false));
        contexts.push((t.to_owned(), "svc-api", false));
    }
    let contexts: Vec<(&str, &str, bool)> = contexts.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
    assert_eq!(images(&plan).len(), 12, "{:?}", images(&plan));
    assert_eq!(image_edges(&plan), expected(&plan, &contexts));
    // What has no equivalent is named, never dropped silently.
    for word in ["`cache-from`", "`cache-to`", "`output`"] {
        assert!(warnings.contains(word), "no warning names {word}:\n{warnings}");
    }
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    // Labels import; the repository is the tags' (a template over the bake variable).
    assert!(!warnings.contains("`labels`"), "{warnings}");
    assert!(kdl.contains("labels org.opencontainers.image.source=\"https://example.com/shop\""), "{kdl}");
    assert!(kdl.contains("variables REGISTRY=\"registry.example.com/shop\" TAG=\"dev\""), "{kdl}");
    assert!(kdl.contains("repository \"${REGISTRY}/api\""), "{kdl}");
    assert!(kdl.contains("tags \"${TAG}\" \"latest\""), "{kdl}");
    // Matrix values and functions reach the args; groups are groups (one naming another).
    assert!(kdl.contains("SERVICE=\"billing\" VERSION=\"DEV\""), "{kdl}");
    assert!(kdl.contains("group \"default\" {\n    members \"services\" \"tools\"\n}"), "{kdl}");
    let svc: Vec<String> = services.iter().map(|s| format!("svc-{s}")).collect();
    let svc: Vec<&str> = svc.iter().map(String::as_str).collect();
    check_group(&repo, &plan, "services", &svc);
    check_group(&repo, &plan, "default", &[svc.as_slice(), &["tools"]].concat());
}

#[test]
fn a_monorepo_in_bakes_json_form() {
    let (repo, plan, warnings) = import("bake-monorepo", "docker-bake.json", &[("TAG", "v7")]);
    let mut contexts: Vec<(&str, &str, bool)> = vec![
        ("runtime-node", "base-os", false),
        ("runtime-python", "base-os", false),
        ("build-node", "runtime-node", false),
        ("e2e", "web", false),
        ("e2e", "api", false),
    ];
    for app in ["web", "admin", "docs"] {
        contexts.push((app, "runtime-node", false));
        contexts.push((app, "build-node", false));
    }
    for app in ["api", "worker", "ml", "cron"] {
        contexts.push((app, "runtime-python", false));
    }
    assert_eq!(images(&plan).len(), 12);
    assert_eq!(image_edges(&plan), expected(&plan, &contexts));
    for word in ["`attest`", "`cache-from`"] {
        assert!(warnings.contains(word), "no warning names {word}:\n{warnings}");
    }
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    assert!(kdl.contains("secret \"NPM_TOKEN\" env=\"NPM_TOKEN\""), "{kdl}");
    // `TAG` stays a variable (its default), though the environment sets it; `--env-frozen`
    // writes the environment's value.
    assert!(kdl.contains("tags \"${TAG}\""), "{kdl}");
    assert!(kdl.contains("TAG=\"latest\"") && !kdl.contains("v7"), "{kdl}");
    assert!(kdl.contains("labels org.opencontainers.image.title=\"web\""), "{kdl}");
    let frozen =
        repo.run_with(&["import", "--from", "bake", "docker-bake.json", "--env-frozen"], &[("TAG", "v7")]);
    assert_eq!(frozen.code, 0, "{}", frozen.stderr);
    assert!(frozen.stdout.contains("tags \"v7\"") && !frozen.stdout.contains("${TAG}"), "{}", frozen.stdout);
    assert!(kdl.contains("NODE_VERSION=\"20\""), "{kdl}");
    check_group(&repo, &plan, "default", &["web", "admin", "docs", "api", "worker", "ml", "cron"]);
    check_group(&repo, &plan, "runtimes", &["runtime-node", "runtime-python"]);
}

#[test]
fn a_toolchain_with_stages_as_targets_inherits_and_functions() {
    let (repo, plan, warnings) = import("bake-toolchain", "docker-bake.hcl", &[("VERSION", "2.0.0")]);
    let contexts = [
        ("deps", "toolchain", false),
        ("compile-cli", "deps", false),
        ("compile-server", "deps", false),
        ("compile-agent", "deps", false),
        ("cli", "runtime", false),
        ("cli", "compile-cli", false),
        ("server", "runtime", false),
        ("server", "compile-server", false),
        ("agent", "runtime", false),
        ("agent", "compile-agent", false),
        ("lint", "deps", false),
        ("test", "deps", false),
        ("bench", "deps", false),
    ];
    assert_eq!(images(&plan).len(), 12, "{:?}", images(&plan));
    assert_eq!(image_edges(&plan), expected(&plan, &contexts));
    assert!(warnings.contains("`_builder`: only inherited from"), "{warnings}");
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    // join(), replace(), lower() and a variable whose default uses others: the environment is
    // not read; what keeps a variable as it is stays a template over it (a variable whose default
    // uses others is written as that template), what a function changes is its default's value.
    assert!(kdl.contains("variables VERSION=\"0.1.0\" CHANNEL=\"stable\""), "{kdl}");
    assert!(kdl.contains("tags \"${VERSION}\" \"latest\""), "{kdl}");
    assert!(kdl.contains("tags \"0.1.0-stable\""), "{kdl}");
    assert!(kdl.contains("COMPONENT=\"agent\" VERSION=\"${VERSION}-${CHANNEL}\""), "{kdl}");
    assert!(kdl.contains("repository \"ghcr.io/acme/cli\""), "{kdl}");
    check_group(&repo, &plan, "default", &["cli", "server", "agent"]);
}

#[test]
fn distros_on_a_two_axis_matrix_with_cross_compilers() {
    let (repo, plan, _) = import("bake-distros", "docker-bake.hcl", &[]);
    let mut contexts: Vec<(String, String, bool)> = Vec::new();
    for d in ["alpine", "debian"] {
        contexts.push((format!("cross-{d}"), format!("os-{d}"), false));
        for f in ["slim", "full"] {
            contexts.push((format!("runtime-{d}-{f}"), format!("os-{d}"), false));
            contexts.push((format!("runtime-{d}-{f}"), format!("cross-{d}"), true));
        }
        contexts.push((format!("sdk-{d}"), format!("runtime-{d}-full"), false));
        contexts.push((format!("sdk-{d}"), format!("cross-{d}"), true));
        contexts.push((format!("tests-{d}"), format!("sdk-{d}"), false));
    }
    let contexts: Vec<(&str, &str, bool)> =
        contexts.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), *c)).collect();
    assert_eq!(images(&plan).len(), 12, "{:?}", images(&plan));
    assert_eq!(image_edges(&plan), expected(&plan, &contexts));
    // `runtime` and `sdk` are matrix targets: the group means every target of each.
    let members =
        ["runtime-alpine-slim", "runtime-alpine-full", "runtime-debian-slim", "runtime-debian-full"];
    check_group(&repo, &plan, "default", &[members.as_slice(), &["sdk-alpine", "sdk-debian"]].concat());
}

#[test]
fn groups_that_cannot_import_whole_are_named_in_warnings() {
    let repo = Repo::new().file("Dockerfile", "FROM scratch\n").file(
        "docker-bake.hcl",
        r#"
group "default" { targets = ["a", "loop", "_common", "nope", "m"] }
group "loop" { targets = ["default"] }
group "a" { targets = ["a"] }
target "_common" { context = "." }
target "a" { inherits = ["_common"] }
target "m" {
  matrix = { v = ["1", "2"] }
  name = "m-${v}"
  context = "."
}
"#,
    );
    for (format, graph) in [("kdl", "hephy.kdl"), ("yaml", "hephy.yaml")] {
        let run = repo.run(&["import", "--from", "bake", "docker-bake.hcl", "--format", format, "-o", graph]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        for warning in [
            "group `default`: `loop` contains this group: left out (a cycle)",
            "group `default`: `_common` is only inherited from: left out",
            "group `default`: `nope` names no target or group of the file: left out",
            "group `a`: a target has the same name",
        ] {
            assert!(run.stderr.contains(warning), "no warning `{warning}`:\n{}", run.stderr);
        }
        let check = repo.run(&["check", "-f", graph]);
        assert_eq!(check.code, 0, "{graph}: {}", check.stderr);
        // `a` is the image; `m` is the matrix target's every target.
        let plan = repo.run(&["plan", "-f", graph, "--group", "default", "--format", "json", "--offline"]);
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        let names: BTreeSet<String> = plan.json()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, BTreeSet::from(["a".to_owned(), "m-1".to_owned(), "m-2".to_owned()]), "{graph}");
    }
}

/// The characters a KDL or YAML reader ends a line (and so a comment) at, besides LF, as HCL
/// escapes, and the terminal's ESC and BEL.
const LINE_ENDS: [&str; 6] = ["\\r", "\\u0085", "\\u000b", "\\u000c", "\\u2028", "\\u2029"];

/// A bake value copied into a comment of the imported graph cannot end the comment and write a
/// node that runs (KDL ends a comment at CR, NEL, VT, FF, U+2028 and U+2029; YAML at CR), and
/// none reaches the terminal raw: the graph holds exactly the bake file's images, and neither it
/// nor the warnings hold a control character.
#[test]
fn bake_values_cannot_end_a_comment_and_write_a_task() {
    let mut values: Vec<String> = Vec::new();
    for end in LINE_ENDS {
        values.push(format!(r#"x{end}task \"pwn\" {{ run \"touch\" \"PWNED\" }}{end}// "#));
        values.push(format!(r#"x{end}tasks: {{pwn: {{run: [touch, PWNED]}}}}{end}# "#));
    }
    values.push(r"x\u001b]0;title\u0007\u001b[2J".to_owned());
    let list = values.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ");
    // A tag with a `:` is `repository:tag`, and a bad tag would comment the image out.
    let tags = values.iter().filter(|v| !v.contains(':')).map(|v| format!("\"{v}\"")).collect::<Vec<_>>();
    let tags = tags.join(", ");
    let args =
        values.iter().enumerate().map(|(i, v)| format!("A{i} = \"{v}\"")).collect::<Vec<_>>().join("\n    ");
    let contexts =
        values.iter().map(|v| format!("\"{v}\" = \"docker-image://{v}\"")).collect::<Vec<_>>().join("\n    ");
    let mut bake = format!(
        "target \"app\" {{\n  context = \"app\"\n  tags = [{tags}]\n  args = {{\n    {args}\n  }}\n  contexts = {{\n    {contexts}\n  }}\n  cache-from = [{list}]\n  ssh = [{list}]\n}}\ngroup \"all\" {{\n  targets = [\"app\", {list}]\n}}\n"
    );
    for (i, v) in values.iter().enumerate() {
        bake.push_str(&format!(
            "target \"{v}\" {{\n  context = \"app\"\n}}\ngroup \"g{i}{v}\" {{\n  targets = [\"{v}\"]\n}}\n"
        ));
    }
    let repo = Repo::new().file("app/Dockerfile", "FROM scratch\n").file("docker-bake.hcl", &bake);
    for (format, graph) in [("kdl", "hephy.kdl"), ("yaml", "hephy.yaml")] {
        let import =
            repo.run(&["import", "--from", "bake", "docker-bake.hcl", "--format", format, "-o", graph]);
        assert_eq!(import.code, 0, "{}", import.stderr);
        assert!(
            import.stderr.contains("task \"pwn\""),
            "the values are quoted in warnings:\n{}",
            import.stderr
        );
        let raw = |c: char| c.is_control() && c != '\n' || matches!(c, '\u{2028}' | '\u{2029}');
        assert!(
            !import.stderr.chars().any(raw),
            "no control character reaches the terminal:\n{:?}",
            import.stderr
        );
        let text = std::fs::read_to_string(repo.path().join(graph)).unwrap();
        assert!(text.contains("PWNED"), "the values are kept, escaped, in comments:\n{text}");
        assert!(!text.chars().any(raw), "{graph} holds no raw line end but LF:\n{text:?}");
        let check = repo.run(&["check", "-f", graph]);
        assert_eq!(check.code, 0, "{}\n{text}", check.stderr);
        let nodes = repo.run(&["graph", "-f", graph, "--format", "json"]).json();
        let names: BTreeSet<&str> =
            nodes["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, BTreeSet::from(["app"]), "{graph}: only the bake file's image, no task:\n{text}");
    }
}

/// A huge name is quoted cut short in warnings: a 200,000-character target name does not make
/// hundreds of kilobytes of them.
#[test]
fn a_huge_target_name_is_quoted_cut_short() {
    let name = "a".repeat(200_000);
    let repo = Repo::new().file("app/Dockerfile", "FROM scratch\n").file(
        "docker-bake.hcl",
        &format!(
            "target \"{name}\" {{\n  context = \"app\"\n}}\ntarget \"ok\" {{\n  context = \"app\"\n}}\n"
        ),
    );
    let import = repo.run(&["import", "--from", "bake", "docker-bake.hcl", "-o", "hephy.kdl"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(import.stderr.contains("aaa…"), "the name is cut with an ellipsis:\n{}", import.stderr);
    assert!(import.stderr.len() < 4_000, "{} bytes of warnings", import.stderr.len());
}

/// bake's own rules, as buildx evaluates them: `null` is "not set" (the inherited value stays,
/// in a map too, and no warning), `local` and `BAKE_LOCAL_PLATFORM` are the host's platform (the
/// graph's default), empty strings leave lists, `BAKE_CMD_CONTEXT` is the bake file's folder, a
/// matrix without `name` is one target, top-level attributes are values, a field hephy does not
/// use that fails to evaluate drops only itself, labels and annotations import, and the
/// repository is the tags'.
#[test]
fn null_local_empty_strings_and_unused_fields_as_buildx_reads_them() {
    let bake = r#"
REPO = "ghcr.io/acme"
variable "EXTRA" { default = "" }
target "_common" {
  platforms = ["linux/amd64", "linux/arm64"]
  args = { A = "1", B = "2" }
  labels = { "org.opencontainers.image.vendor" = "acme" }
  annotations = ["index,manifest:org.opencontainers.image.description=tools"]
}
target "app" {
  inherits = ["_common"]
  context = BAKE_CMD_CONTEXT
  platforms = null
  args = { A = null, C = null }
  tags = ["${REPO}/app:1", "", EXTRA]
  cache-from = [undefined_function("x")]
  labels = { "org.opencontainers.image.title" = "app", "org.opencontainers.image.vendor" = null }
}
target "host" {
  context = "."
  platforms = ["local"]
  tags = ["${REPO}/host:1"]
}
target "host2" {
  context = "."
  platforms = [BAKE_LOCAL_PLATFORM]
}
target "one" {
  context = "."
  matrix = { v = ["a", "b"] }
  args = { V = v }
}
"#;
    let repo =
        Repo::new().file("Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n").file("docker-bake.hcl", bake);
    let import = repo.run(&["import", "--from", "bake", "docker-bake.hcl", "-o", "hephy.kdl"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    let image = |name: &str| {
        let start =
            kdl.find(&format!("image \"{name}\" {{")).unwrap_or_else(|| panic!("no `{name}`:\n{kdl}"));
        kdl[start..start + kdl[start..].find("\n}").unwrap()].to_owned()
    };
    let app = image("app");
    assert!(app.contains("context \".\""), "{app}");
    assert!(app.contains("args A=\"1\" B=\"2\"\n"), "null inherits, and C is not set:\n{app}");
    assert!(app.contains("platforms \"linux/amd64\" \"linux/arm64\""), "null inherits:\n{app}");
    assert!(app.contains("tags \"1\"\n"), "empty strings are dropped:\n{app}");
    assert!(app.contains("repository \"ghcr.io/acme/app\""), "{app}");
    assert!(app.contains("org.opencontainers.image.vendor=\"acme\""), "null inherits a label:\n{app}");
    assert!(app.contains("org.opencontainers.image.title=\"app\""), "{app}");
    assert!(app.contains("annotations org.opencontainers.image.description=\"tools\""), "{app}");
    assert!(!import.stderr.contains("has no value"), "a null arg is not set, silently:\n{}", import.stderr);
    assert!(
        import.stderr.contains("target `app`: `cache-from` cannot be evaluated")
            && import.stderr.contains("hephy does not use it"),
        "{}",
        import.stderr
    );
    for host in ["host", "host2"] {
        let image = image(host);
        assert!(!image.contains("platforms"), "`local` is the host's, the graph's default:\n{image}");
    }
    assert!(
        image("host").contains("repository \"ghcr.io/acme/host\""),
        "one target's repository is its tag's"
    );
    // A matrix without `name`: every combination is the label's target, the last one's values.
    assert!(image("one").contains("args V=\"b\""), "{kdl}");
    assert_eq!(kdl.matches("image \"one").count(), 1, "{kdl}");
    let check = repo.run(&["check", "-f", "hephy.kdl"]);
    assert_eq!(check.code, 0, "{}\n{kdl}", check.stderr);
    let plan = repo.run(&["plan", "-f", "hephy.kdl", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let host_nodes: Vec<String> = serde_json::from_str::<Value>(&plan.stdout).unwrap()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["name"] == "host" && n["kind"] == "image")
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(host_nodes, [format!("host@{}", host())]);
}

/// Bake variables stay variables: a CI that sets one per branch still can (`HEPHY_VAR_TAG`,
/// `--set`), and no environment value lands in the file unless `--env-frozen` asks for it.
#[test]
fn variables_stay_variables_and_the_environment_is_written_only_when_frozen() {
    let bake = r#"
variable "TAG" { default = "dev" }
variable "HTTP_PROXY" { default = "" }
target "app" {
  context = "."
  tags = ["ghcr.io/acme/app:${TAG}"]
  args = { HTTP_PROXY = HTTP_PROXY, TAG_UPPER = upper(TAG) }
}
"#;
    let repo =
        Repo::new().file("Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n").file("docker-bake.hcl", bake);
    let env = [("TAG", "pr-12"), ("HTTP_PROXY", "http://user:s3cret@proxy:3128")];
    let import = repo.run_with(&["import", "--from", "bake", "docker-bake.hcl", "-o", "hephy.kdl"], &env);
    assert_eq!(import.code, 0, "{}", import.stderr);
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    assert!(!kdl.contains("s3cret") && !kdl.contains("pr-12"), "no environment value:\n{kdl}");
    assert!(kdl.contains("variables TAG=\"dev\" HTTP_PROXY=\"\""), "{kdl}");
    assert!(kdl.contains("tags \"${TAG}\""), "{kdl}");
    assert!(kdl.contains("HTTP_PROXY=\"${HTTP_PROXY}\""), "{kdl}");
    // What a function changed is the default's value (it cannot follow the variable), said.
    assert!(kdl.contains("TAG_UPPER=\"DEV\""), "{kdl}");
    assert!(
        import.stderr.contains("target `app`: `args` uses `TAG` through a function or condition"),
        "{}",
        import.stderr
    );
    let registry = format!("registry \"127.0.0.1:5000/team\"\n{kdl}");
    repo.write("hephy.kdl", &registry);
    let plan = repo.run_with(&["plan", "--format", "json"], &[("HEPHY_VAR_TAG", "pr-12")]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("app:pr-12"), "the CI's tag:\n{}", plan.stdout);
    let frozen = repo.run_with(&["import", "--from", "bake", "docker-bake.hcl", "--env-frozen"], &env);
    assert_eq!(frozen.code, 0, "{}", frozen.stderr);
    assert!(
        frozen.stdout.contains("tags \"pr-12\"") && frozen.stdout.contains("s3cret"),
        "{}",
        frozen.stdout
    );
    assert!(!frozen.stdout.contains("variables"), "{}", frozen.stdout);
    // The flag is the bake import's: a kaniko-builder import refuses it.
    let refused = repo.run(&["import", "--env-frozen", "."]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("`--env-frozen` is for bake files"), "{}", refused.stderr);
}

/// The messages: a parent that exists but was left out is named with why (not "unknown"); a
/// context a `RUN --mount=…,from=NAME` reads is used; an image built on a named context hephy
/// cannot represent is commented out with the reason (never re-based on a registry image of
/// that name); and when nothing imports, every warning is printed and the error says what
/// failed where.
#[test]
fn messages_say_what_failed_where() {
    let bake = r#"
target "java_base" {
  context = "base"
  tags = [undefined_function()]
}
target "app" {
  inherits = ["java_base"]
}
target "orphan" {
  inherits = ["nowhere"]
  context = "tool"
}
target "tool" {
  context = "tool"
  contexts = { src = "target:orphan" }
}
target "ext" {
  context = "ext"
  contexts = { ubuntu = "docker-image://ubuntu:noble-20250529" }
}
group "default" {
  targets = ["java_base", "ext"]
}
"#;
    let repo = Repo::new()
        .file("base/Dockerfile", "FROM scratch\n")
        .file("tool/Dockerfile", "FROM busybox\nRUN --mount=type=bind,from=src,target=/src true\n")
        .file("ext/Dockerfile", "FROM ubuntu\nRUN true\n")
        .file("docker-bake.hcl", bake);
    let import = repo.run(&["import", "--from", "bake", "docker-bake.hcl", "-o", "hephy.kdl"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    let err = &import.stderr;
    assert!(err.contains("target `java_base`: `tags` cannot be evaluated"), "{err}");
    assert!(err.contains("target `app`: it inherits `java_base`, which is left out"), "{err}");
    assert!(!err.contains("inherits unknown"), "{err}");
    assert!(
        err.contains("group `default`: target `java_base` is left out (`tags` cannot be evaluated"),
        "{err}"
    );
    assert!(
        err.contains("target `orphan`: inherits `nowhere`, which no target of the file is named"),
        "{err}"
    );
    // An external named context the Dockerfile reads is a `build-context`: the image builds on
    // what the bake file means, not on the registry's `ubuntu`.
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    assert!(kdl.contains("image \"ext\"") && !kdl.contains("/-image \"ext\""), "{kdl}");
    assert!(kdl.contains("build-context \"ubuntu\" image=\"ubuntu:noble-20250529\""), "{kdl}");
    assert!(kdl.contains("from \"orphan\" context=\"src\""), "{kdl}");
    let check = repo.run(&["check", "-f", "hephy.kdl"]);
    assert!(!check.stderr.contains("never uses"), "`RUN --mount=…,from=src` uses it:\n{}", check.stderr);

    // A `target:` context naming no target, read by `FROM`: commented out, never re-based.
    repo.write(
        "docker-bake.hcl",
        "target \"gone\" {\n  context = \"ext\"\n  contexts = { ubuntu = \"target:nothere\" }\n}\ntarget \"ok\" {\n  context = \"base\"\n}\n",
    );
    let import = repo.run(&["import", "--from", "bake", "docker-bake.hcl", "-o", "hephy.kdl"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(
        import.stderr.contains("target `gone`: its named context `ubuntu` = `target:nothere` cannot be wired: no target of the file is named `nothere`"),
        "{}",
        import.stderr
    );
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    assert!(kdl.contains("/-image \"gone\""), "{kdl}");

    // An inline Dockerfile: commented out (built without it, the context's Dockerfile would be).
    repo.write(
        "docker-bake.hcl",
        "target \"inline\" {\n  context = \"base\"\n  dockerfile-inline = \"FROM alpine\\n\"\n}\ntarget \"ok\" {\n  context = \"base\"\n}\n",
    );
    let import = repo.run(&["import", "--from", "bake", "docker-bake.hcl", "-o", "hephy.kdl"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(
        import.stderr.contains("target `inline`: its Dockerfile is inline (`dockerfile-inline`)"),
        "{}",
        import.stderr
    );
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    assert!(kdl.contains("/-image \"inline\""), "{kdl}");

    // Nothing imports: the warnings, then an error naming each target and why.
    repo.write("docker-bake.hcl", "target \"a\" {\n  context = \"ext\"\n  contexts = { ubuntu = \"target:b\" }\n}\ntarget \"b\" {\n  context = \"base\"\n  dockerfile = nope()\n}\n");
    let failed = repo.run(&["import", "--from", "bake", "docker-bake.hcl"]);
    assert_eq!(failed.code, 2, "{}", failed.stderr);
    let err = &failed.stderr;
    assert!(err.contains("warning: target `b`: `dockerfile` cannot be evaluated"), "{err}");
    assert!(err.contains("no target of `docker-bake.hcl` imports into an image that builds"), "{err}");
    assert!(err.contains("target `a`: its named context `ubuntu`"), "{err}");
    assert!(err.contains("target `b`: `dockerfile` cannot be evaluated"), "{err}");
    assert!(!err.contains("defines no images"), "{err}");
}

/// A bake file with `null` variable defaults and args, `platforms = ["local"]`, conditionals
/// over variables and several parents (tests/fixtures/bake/null-args-and-local/README). It imports
/// whole, passes `check`, has no edges (it has no `target:` contexts), and says nothing of null
/// args.
#[test]
fn null_args_local_platforms_and_several_parents_import_whole() {
    let (repo, plan, warnings) = import("bake/null-args-and-local", "docker-bake.hcl", &[]);
    assert_eq!(image_edges(&plan), expected(&plan, &[]));
    let want = [
        "cli",
        "cli-all",
        "clippy",
        "deny",
        "deps-outdated",
        "dist",
        "e2e",
        "e2e-base",
        "fmt-check",
        "lockfile-check",
        "lockfile-refresh",
        "manpages",
        "manpages-check",
        "release-meta",
        "runtime",
        "runtime-all",
        "runtime-load",
        "sbom",
        "unit-tests",
    ];
    assert_eq!(images(&plan), want.iter().map(|s| (*s).to_owned()).collect(), "every target but `_defaults`");
    assert!(!warnings.contains("has no value"), "{warnings}");
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    let image = |name: &str| {
        let start =
            kdl.find(&format!("image \"{name}\" {{")).unwrap_or_else(|| panic!("no `{name}`:\n{kdl}"));
        kdl[start..start + kdl[start..].find("\n}").unwrap()].to_owned()
    };
    // `local` alone is the host's platform, inherited by `runtime` and `runtime-load`.
    for name in ["cli", "runtime", "runtime-load"] {
        assert!(!image(name).contains("platforms"), "{}", image(name));
    }
    assert!(image("cli-all").contains("\"linux/riscv64\""), "{}", image("cli-all"));
    assert!(image("dist").contains("\"linux/riscv64\""), "{}", image("dist"));
    // The tags of `release-meta`, the first parent.
    assert!(image("runtime").contains("repository \"docker.io/example/tallyctl\""), "{}", image("runtime"));
    // `null` args are not set: `RUST_TOOLCHAIN` is the Dockerfile's default, and so is the
    // conditional's `null` (`EXTRA_RUSTFLAGS`).
    assert!(!image("clippy").contains("RUST_TOOLCHAIN"), "{}", image("clippy"));
    assert!(image("clippy").contains("PEDANTIC=\"yes\""), "{}", image("clippy"));
    assert!(!image("e2e").contains("EXTRA_RUSTFLAGS"), "{}", image("e2e"));
    assert!(!image("e2e").contains("FIXTURE_SERVER_VERSION"), "{}", image("e2e"));
    assert!(image("e2e").contains("PKG_MIRROR=\"${PKG_MIRROR}\""), "{}", image("e2e"));
    check_group(&repo, &plan, "default", &["cli"]);
}

/// A bake file written with user functions (one a variable's default calls, on a variable
/// declared after it; one with variadic params) and the standard functions real files call:
/// `can`, `try`, `regex`, `regex_replace`, `formatdate`, `md5`, `substr`, `distinct`,
/// `flatten`, `merge`, `sanitize`. Every target imports, with the values buildx computes.
#[test]
fn user_functions_and_the_standard_library_evaluate_as_buildx_does() {
    // The environment's `VERSION`, written as a literal (`--env-frozen`).
    let (repo, plan, warnings) =
        import_with("bake-functions", "docker-bake.hcl", &[("VERSION", "v2.3.0-rc.2")], &["--env-frozen"]);
    assert_eq!(images(&plan), BTreeSet::from(["app".to_owned(), "base".to_owned()]));
    assert_eq!(image_edges(&plan), expected(&plan, &[("app", "base", false)]));
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    // short("v2.3.0-rc.2") = "2.3"; substr(md5(VERSION), 0, 8); `latest` once (distinct).
    assert!(kdl.contains("tags \"2.3\" \"7c147287\" \"latest\"\n"), "{kdl}");
    assert!(kdl.contains("tags \"2.3\"\n"), "{kdl}");
    assert!(kdl.contains("args BUILD_DATE=\"20240305\" CHANNEL=\"testing\""), "{kdl}");
    assert!(
        kdl.contains("args BUILD_DATE=\"20240305\" REVISION=\"7c147287\" VERSION=\"v2.3.0-rc.2\""),
        "{kdl}"
    );
    assert!(kdl.contains("platforms \"linux/amd64\" \"linux/arm64\""), "{kdl}");
    // The repository from `sanitize("my/base")`.
    assert!(kdl.contains("repository \"example.com/org/my_base\""), "{kdl}");
    // `cache-from` has no equivalent, and its `try` evaluated.
    assert!(warnings.contains("type=registry,ref=example.com/org/cache:main"), "{warnings}");
    assert!(!warnings.contains("function"), "{warnings}");
    check_group(&repo, &plan, "default", &["app"]);
}

/// A bake file of cross-compiling helpers (tests/fixtures/bake/cross-helpers/README): a user
/// function in `tags` and `cache-from`, `null` defaults, `docker-image://scratch` contexts,
/// `target:` contexts read with `FROM --platform=$BUILDPLATFORM`, matrices with `name`, parents
/// named `_…`. Every target imports but `ci-tags`, which truly cannot build: it is a tags-only
/// target for a CI metadata step, with no context of its own, so it builds the repository root,
/// which has no Dockerfile (`docker buildx bake ci-tags` fails the same way). The graph passes
/// `check`, and its edges are exactly the `target:` contexts.
#[test]
fn cross_helpers_import_whole_with_user_functions_and_image_contexts() {
    let repo = Repo::copy_of("tests/fixtures/bake/cross-helpers");
    for (format, graph) in [("kdl", "hephy.kdl"), ("yaml", "hephy.yaml")] {
        let import =
            repo.run(&["import", "--from", "bake", "docker-bake.hcl", "--format", format, "-o", graph]);
        assert_eq!(import.code, 0, "{}", import.stderr);
        let out: Vec<&str> = import.stderr.lines().filter(|l| l.contains("imported commented out")).collect();
        assert_eq!(out.len(), 1, "{}", import.stderr);
        assert!(
            out[0].starts_with("warning: target `ci-tags`: it would not pass `check` (Dockerfile `./Dockerfile` does not exist)"),
            "{}",
            out[0]
        );
        assert!(!import.stderr.contains("function"), "`toolTags` evaluates:\n{}", import.stderr);
        // … in `cache-from` too (no equivalent, its value in the warning), indexed and joined.
        assert!(
            import.stderr.contains(
                "`cache-from` = [\"type=registry,ref=example/crossbow:assembler-3.1-linux-riscv64-static\"]"
            ),
            "{}",
            import.stderr
        );
        let text = std::fs::read_to_string(repo.path().join(graph)).unwrap();
        let registry =
            if format == "kdl" { "registry \"127.0.0.1:5000/t\"\n" } else { "registry: 127.0.0.1:5000/t\n" };
        repo.write(graph, &format!("{registry}{text}"));
        let check = repo.run(&["check", "-f", graph]);
        assert_eq!(check.code, 0, "{graph}: {}\n{text}", check.stderr);
    }
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    assert!(kdl.contains("build-context \"extras\" image=\"scratch\""), "{kdl}");
    assert!(kdl.contains("build-context \"macho\" image=\"scratch\""), "{kdl}");
    // `toolTags(…)` made the tags, over the variable its caller passed it; the repository is
    // the tags'.
    assert!(
        kdl.contains("tags \"assembler-${ASM_VERSION}-linux-amd64-static\" \"assembler-linux-amd64-static\""),
        "{kdl}"
    );
    // (Literal: docker's `docker.io/` prefix depends on what `REPO` holds.)
    assert!(kdl.contains("repository \"docker.io/example/crossbow\""), "{kdl}");
    let plan = |graph: &str| {
        let run = repo.run(&["plan", "-f", graph, "--format", "json", "--offline"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout
    };
    let kdl_plan = plan("hephy.kdl");
    assert_eq!(plan("hephy.yaml"), kdl_plan, "both syntaxes plan the same");
    let plan: Value = serde_json::from_str(&kdl_plan).unwrap();
    // Every target that says `"example/crossbow" = "target:helpers"` (itself or through
    // `_toolchain`): built on `helpers` for the build machine
    // (`FROM --platform=$BUILDPLATFORM example/crossbow`), but `workbench`, whose Dockerfile
    // never reads it (same platform).
    let names = images(&plan);
    let mut contexts: Vec<(&str, &str, bool)> = names
        .iter()
        .filter(|n| {
            n.starts_with("assembler-")
                || n.starts_with("linker-")
                || n.starts_with("macho-")
                || ["fatbin", "signer", "unwinder", "cxx-runtime"].contains(&n.as_str())
        })
        .map(|n| (n.as_str(), "helpers", true))
        .collect();
    contexts.push(("workbench", "helpers", false));
    assert_eq!(contexts.iter().filter(|c| c.0.starts_with("assembler-")).count(), 6, "{names:?}");
    assert_eq!(contexts.iter().filter(|c| c.0.starts_with("linker-")).count(), 4, "{names:?}");
    assert_eq!(contexts.len(), 17, "{names:?}");
    assert_eq!(image_edges(&plan), expected(&plan, &contexts));
}

/// External named contexts import as `build-context` nodes, each of its kind: a registry image,
/// a folder (`./src`, `cwd://`), a git URL at a ref and folder, an OCI layout at a tag (built
/// with buildx, which reads one; buildah does not). One the Dockerfile never reads is left out
/// with a warning; a folder that leaves the graph's folder comments its image out with the
/// reason. The graph passes `check`.
#[test]
fn external_named_contexts_become_build_contexts() {
    let bake = r#"
target "app" {
  context = "app"
  contexts = {
    ubuntu = "docker-image://ubuntu:noble-20250529"
    src = "./src"
    tools = "https://github.com/org/tools.git#v1.2:sub"
    vendor = "oci-layout://vendor/layout:v1"
    unread = "docker-image://alpine:3.20"
  }
}
target "plain" {
  context = "app2"
  contexts = { src = "cwd://src" }
}
target "up" {
  context = "app2"
  contexts = { src = "../src" }
}
"#;
    let repo = Repo::new()
        .file("app/Dockerfile", "FROM ubuntu\nCOPY --from=src /a /a\nCOPY --from=tools /b /b\nCOPY --from=vendor /c /c\nRUN true\n")
        .file("app2/Dockerfile", "FROM scratch\nCOPY --from=src /a /a\n")
        .file("src/a", "a\n")
        .file("vendor/layout/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}\n")
        .file("vendor/layout/index.json", "{\"schemaVersion\":2,\"manifests\":[]}\n")
        .file("docker-bake.hcl", bake);
    for (format, graph) in [("kdl", "hephy.kdl"), ("yaml", "hephy.yaml")] {
        let import =
            repo.run(&["import", "--from", "bake", "docker-bake.hcl", "--format", format, "-o", graph]);
        assert_eq!(import.code, 0, "{}", import.stderr);
        assert!(
            import
                .stderr
                .contains("context `unread` = `docker-image://alpine:3.20`: its Dockerfile never reads it"),
            "{}",
            import.stderr
        );
        assert!(import.stderr.contains("target `up`: it would not pass `check` (build context path `../src` leaves the graph's folder)"), "{}", import.stderr);
        let check = repo.run(&["check", "-f", graph]);
        assert_eq!(check.code, 0, "{graph}: {}", check.stderr);
    }
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    for line in [
        "build-context \"src\" path=\"src\"",
        "build-context \"tools\" git=\"https://github.com/org/tools.git\" ref=\"v1.2\" dir=\"sub\"",
        "build-context \"ubuntu\" image=\"ubuntu:noble-20250529\"",
        "build-context \"vendor\" oci-layout=\"vendor/layout\" ref=\"v1\"",
        "builder \"buildx\"",
    ] {
        assert!(kdl.contains(line), "no `{line}`:\n{kdl}");
    }
    assert!(!kdl.contains("build-context \"unread\""), "{kdl}");
    assert!(kdl.contains("image \"plain\"") && !kdl.contains("/-image \"plain\""), "{kdl}");
    let yaml = std::fs::read_to_string(repo.path().join("hephy.yaml")).unwrap();
    assert!(yaml.contains("build-contexts:"), "{yaml}");
}
