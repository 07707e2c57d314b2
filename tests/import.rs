//! `hephy import` of kaniko-builder repositories: the graph it writes is accepted by `check` and
//! plans exactly like the hand-written expected graph, in KDL and YAML alike; every layout
//! (fixtures, hand-made odd ones, generated ones) imports into a graph that checks and plans the
//! same in both syntaxes; and the imported naming pushes the layout's references.

mod common;

use common::registry::{Registry, sha256};
use common::{Repo, git};
use proptest::prelude::*;

fn fixture() -> Repo {
    Repo::copy_of("tests/fixtures/kaniko-builder-layout")
}

fn plan(repo: &Repo, file: &str) -> String {
    let run = repo.run(&["plan", "-f", file, "--format", "json"]);
    assert_eq!(run.code, 0, "{file}: {}", run.stderr);
    run.stdout
}

/// Imports `repo` in both syntaxes (with `registry` prepended, as a user would set it), checks
/// both and returns their plans, which must be the same bytes.
fn import_both(repo: &Repo, registry: &str) -> (String, String) {
    let kdl = repo.run(&["import", ".", "-o", "hephy.kdl"]);
    if kdl.code == 2 && kdl.stderr.contains("imports into an image that builds, and a graph needs one") {
        // Nothing to build (every folder turned off or unusable): no graph is written.
        assert!(!repo.path().join("hephy.kdl").exists());
        return (String::from("{\"nodes\": []}"), kdl.stderr);
    }
    assert_eq!(kdl.code, 0, "{}", kdl.stderr);
    let yaml = repo.run(&["import", ".", "--format", "yaml", "-o", "hephy.yaml"]);
    assert_eq!(yaml.code, 0, "{}", yaml.stderr);
    assert_eq!(kdl.stderr, yaml.stderr, "the same warnings in both syntaxes");
    let text = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("read");
    repo.write("hephy.kdl", &format!("registry \"{registry}\"\n{text}"));
    let text = std::fs::read_to_string(repo.path().join("hephy.yaml")).expect("read");
    repo.write("hephy.yaml", &format!("registry: {registry}\n{text}"));
    for file in ["hephy.kdl", "hephy.yaml"] {
        let check = repo.run(&["check", "-f", file]);
        let graph = std::fs::read_to_string(repo.path().join(file)).unwrap_or_default();
        assert_eq!(check.code, 0, "{file} does not check:\n{}\n{graph}", check.stderr);
    }
    let plan_kdl = plan(repo, "hephy.kdl");
    assert_eq!(plan(repo, "hephy.yaml"), plan_kdl, "both syntaxes plan the same");
    (plan_kdl, kdl.stderr)
}

#[test]
fn the_imported_graph_plans_like_the_hand_written_one() {
    let repo = fixture();
    let (plan_kdl, warnings) = import_both(&repo, "127.0.0.1:5000/images");
    // What it could not carry over is said, not dropped silently.
    assert_eq!(
        warnings,
        "warning: ko-upstream/build-config.yaml: unknown key `ko_config.sbom`: left out (hephy's ko builder takes `import_path`, `base_image`, `env`, `ldflags`)\n\
         warning: legacy/build-config.yaml: unknown key `notify_slack`: left out\n\
         warning: old-tool: its build is turned off (old-tool/disabled-build-config.yaml): imported commented out\n\
         warning: app/build-config.yaml: build arg `CURL_TAG=latest` left out: the graph passes `CURL_TAG` the reference of the `curl` it builds\n"
    );
    let text = std::fs::read_to_string(repo.path().join("expected.kdl")).expect("read");
    repo.write("expected.kdl", &format!("registry \"127.0.0.1:5000/images\"\n{text}"));
    let expected = plan(&repo, "expected.kdl");
    assert_eq!(plan_kdl, expected);
    // manifest-tool was found to build FROM curl, per platform, through the two args.
    let json: serde_json::Value = serde_json::from_str(&expected).expect("json");
    let node = |id: &str| {
        json["nodes"].as_array().expect("nodes").iter().find(|n| n["id"] == id).cloned().expect("node")
    };
    assert_eq!(node("manifest-tool@linux/arm64")["deps"], serde_json::json!(["curl@linux/arm64"]));
    assert_eq!(node("app@linux/amd64")["deps"], serde_json::json!(["curl@linux/amd64"]));
    // Each architecture's builds run on the runners `.gitlab-ci.yml` gives its build job.
    assert_eq!(node("curl@linux/arm64")["executor"], "arm64");
    assert_eq!(node("curl@linux/amd64")["executor"], "amd64");
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("read");
    assert!(
        kdl.contains("executor \"arm64\" platform=\"linux/arm64\" gitlab-tags=\"$CICD_TAG_ARM64\""),
        "{kdl}"
    );
    assert!(kdl.contains("    refresh\n"), "the weekly schedule refreshes external bases:\n{kdl}");
    // The turned-off folder is in the graph only as a comment, and out of the schedule.
    let kdl = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("read");
    assert!(kdl.contains("/-image \"old-tool\""), "{kdl}");
    assert!(
        kdl.contains(
            "// rebuild-weekly.txt names `old-tool`, kept out of the schedule: its build is turned off"
        ),
        "{kdl}"
    );
    let yaml = std::fs::read_to_string(repo.path().join("hephy.yaml")).expect("read");
    assert!(yaml.contains("  # old-tool:"), "{yaml}");
    assert!(
        !json["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["id"].as_str().unwrap_or("").starts_with("old-tool"))
    );
}

#[test]
fn a_folder_without_the_layout_is_an_error() {
    let repo = Repo::new().file("README.md", "nothing here\n");
    let run = repo.run(&["import", "."]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("has no folder with a `build-config.yaml`"), "{}", run.stderr);
}

/// A folder's name is quoted in comments of the graph and in warnings: one holding a line end
/// KDL or YAML knows (CR, NEL, VT, FF, U+2028, U+2029) or a terminal control cannot end the
/// comment and write a task, nor reach the terminal raw.
#[test]
fn folder_names_cannot_end_a_comment_and_write_a_task() {
    let mut repo = Repo::new()
        .file("ok/build-config.yaml", "use_local_context: true\n")
        .file("ok/Dockerfile", "FROM scratch\n");
    for end in ["\r", "\u{85}", "\u{b}", "\u{c}", "\u{2028}", "\u{2029}"] {
        for payload in ["task \"pwn\" { run \"touch\" \"PWNED\" }", "tasks: {pwn: {run: [touch, PWNED]}}"] {
            let folder = format!("x{end}{payload}{end}\u{1b}[2J");
            repo = repo
                .file(&format!("{folder}/disabled-build-config.yaml"), "use_local_context: true\n")
                .file(&format!("{folder}/Dockerfile"), "FROM scratch\n");
        }
    }
    for (format, graph) in [("kdl", "hephy.kdl"), ("yaml", "hephy.yaml")] {
        let import = repo.run(&["import", ".", "--format", format, "-o", graph]);
        assert_eq!(import.code, 0, "{}", import.stderr);
        let raw = |c: char| c.is_control() && c != '\n' || matches!(c, '\u{2028}' | '\u{2029}');
        assert!(!import.stderr.chars().any(raw), "no control reaches the terminal:\n{:?}", import.stderr);
        let text = std::fs::read_to_string(repo.path().join(graph)).expect("the graph");
        assert!(text.contains("PWNED") && !text.chars().any(raw), "{graph}:\n{text:?}");
        let check = repo.run(&["check", "-f", graph]);
        assert_eq!(check.code, 0, "{}\n{text}", check.stderr);
        let nodes = repo.run(&["graph", "-f", graph, "--format", "json"]).json();
        let names: std::collections::BTreeSet<&str> =
            nodes["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["name"].as_str()).collect();
        assert_eq!(names, std::collections::BTreeSet::from(["ok"]), "{graph}: no task:\n{text}");
    }
}

/// Odd layouts real repositories have: each still imports into a graph that checks and plans
/// the same in both syntaxes, and what could not be carried over is said.
#[test]
fn odd_layouts_import_into_graphs_that_check() {
    struct Case {
        files: &'static [(&'static str, &'static str)],
        warns: &'static [&'static str],
        nodes: &'static [&'static str],
    }
    let cases = [
        // Every folder turned off: an empty graph, still valid.
        Case {
            files: &[
                ("a/disabled-build-config.yaml", "use_local_context: true\n"),
                ("a/Dockerfile", "FROM scratch\n"),
            ],
            warns: &["no folder of `.` imports into an image that builds"],
            nodes: &[],
        },
        // A plain `FROM base` is wired as the named context `base` (said, since it changes what
        // is built on), and `COPY --from=base` too.
        Case {
            files: &[
                ("base/build-config.yaml", "use_local_context: true\n"),
                ("base/Dockerfile", "FROM scratch\nCOPY a /\n"),
                ("app/build-config.yaml", "use_local_context: true\n"),
                ("app/Dockerfile", "FROM base\nCOPY --from=base /a /b\n"),
            ],
            warns: &["`app/Dockerfile` says `FROM base`: imported as the named context `base`"],
            nodes: &["app@linux/amd64<-base@linux/amd64", "base@linux/amd64"],
        },
        // A local folder without a Dockerfile, a target that is no stage, and bad values.
        Case {
            files: &[
                ("nodf/build-config.yaml", "use_local_context: true\n"),
                ("staged/build-config.yaml", "use_local_context: true\ntarget: release\n"),
                ("staged/Dockerfile", "FROM scratch AS build\n"),
                (
                    "bad/build-config.yaml",
                    "use_local_context: yes\nplatforms: [linux/x86_64, linux/arm64]\nadditional_tags: [\"-x\", ok]\nbuild_args: [\"1X=2\", \"Y=3\", \"Y=4\"]\n",
                ),
                ("bad/Dockerfile", "FROM scratch\n"),
            ],
            warns: &[
                "nodf: `nodf/Dockerfile` cannot be read: imported commented out",
                "staged: `staged/Dockerfile` has no stage `release`: imported commented out",
                "bad/build-config.yaml: platform `linux/x86_64` left out",
                "bad/build-config.yaml: `-x` is not a valid image tag: left out",
                "bad/build-config.yaml: `1X` is not a build arg name: left out",
                "bad/build-config.yaml: build arg `Y` is given twice: the last is kept",
            ],
            nodes: &["bad@linux/arm64"],
        },
        // `use_local_context: false` without an upstream; an upstream without a ref; a
        // dependency on a turned-off folder (its dependent is left out with the reason).
        Case {
            files: &[
                ("self/build-config.yaml", "use_local_context: false\n"),
                ("self/Dockerfile", "FROM scratch\n"),
                ("up/build-config.yaml", "upstream_repo: https://example.com/up.git\nupstream_ref: \"\"\n"),
                ("off/disabled-build-config.yaml", "use_local_context: true\n"),
                ("off/Dockerfile", "FROM scratch\n"),
                ("user/build-config.yaml", "use_local_context: true\n"),
                ("user/Dockerfile", "ARG ECR_REGISTRY\nARG OFF_TAG\nFROM ${ECR_REGISTRY}:${OFF_TAG}\n"),
            ],
            warns: &[
                "self/build-config.yaml: `use_local_context: false` without `upstream_repo`: built from the folder",
                "user/Dockerfile: `${ECR_REGISTRY}:${OFF_TAG}` names no image of the repository that is built (`OFF`)",
            ],
            nodes: &["self@linux/amd64", "up@linux/amd64", "user@linux/amd64"],
        },
    ];
    for (n, case) in cases.iter().enumerate() {
        let mut repo = Repo::new();
        for (path, text) in case.files {
            repo = repo.file(path, text);
        }
        let (plan, warnings) = import_both(&repo, "127.0.0.1:5000/images");
        for warn in case.warns {
            assert!(warnings.contains(warn), "case {n}: no warning `{warn}` in\n{warnings}");
        }
        let json: serde_json::Value = serde_json::from_str(&plan).expect("json");
        let mut builds: Vec<String> = json["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["kind"] == "image")
            .map(|n| {
                let deps: Vec<&str> =
                    n["deps"].as_array().expect("deps").iter().filter_map(|d| d.as_str()).collect();
                let id = n["id"].as_str().unwrap_or_default();
                if deps.is_empty() { id.to_owned() } else { format!("{id}<-{}", deps.join(",")) }
            })
            .collect();
        builds.sort();
        assert_eq!(builds, case.nodes, "case {n}");
    }
}

/// A folder of a generated layout.
#[derive(Debug, Clone)]
struct Folder {
    local: Option<bool>,
    upstream: Option<(u8, Option<String>)>,
    target: Option<String>,
    ko: bool,
    disabled: bool,
    platforms: Vec<&'static str>,
    tags: Vec<String>,
    /// Indexes of earlier folders its Dockerfile builds on (args or plain `FROM`).
    deps: Vec<(usize, bool)>,
    weekly: bool,
}

fn folder() -> impl Strategy<Value = Folder> {
    (
        prop::option::of(any::<bool>()),
        prop::option::of((
            0u8..3,
            prop::option::of(prop_oneof![
                Just("v1.2.3 # pinned".to_owned()),
                Just("main".to_owned()),
                Just("\"release-1 # branch\"".to_owned()),
                Just("0123456789abcdef0123456789abcdef01234567".to_owned()),
            ]),
        )),
        prop::option::of(prop_oneof![
            Just(String::new()),
            Just("release".to_owned()),
            Just("missing".to_owned())
        ]),
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::sample::subsequence(vec!["linux/amd64", "linux/arm64", "linux/x86_64"], 0..=3),
        prop::collection::vec(
            prop_oneof![Just("latest".to_owned()), Just("v1".to_owned()), Just("-bad".to_owned())],
            0..3,
        ),
        prop::collection::vec((0usize..8, any::<bool>()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(local, upstream, target, ko, disabled, platforms, tags, deps, weekly)| Folder {
            local,
            upstream,
            target,
            ko,
            disabled,
            platforms,
            tags,
            deps,
            weekly,
        })
}

fn write_layout(repo: Repo, folders: &[Folder]) -> Repo {
    let mut repo = repo;
    let mut weekly = String::new();
    for (i, f) in folders.iter().enumerate() {
        let name = format!("img-{i}");
        let mut config = String::new();
        if let Some(local) = f.local {
            config.push_str(&format!("use_local_context: {local}\n"));
        }
        if let Some((n, reference)) = &f.upstream {
            config.push_str(&format!("upstream_repo: https://example.com/repo-{n}.git\n"));
            if let Some(r) = reference {
                config.push_str(&format!("upstream_ref: {r}\n"));
            }
        }
        if let Some(t) = &f.target {
            config.push_str(&format!("target: \"{t}\"\n"));
        }
        if f.ko {
            config.push_str("build_backend: ko\nko_config:\n  import_path: ./cmd/x\n  env: [CGO_ENABLED=0]\n  ldflags: [-s, -w]\n");
        }
        if !f.platforms.is_empty() {
            config.push_str(&format!("platforms: [{}]\n", f.platforms.join(", ")));
        }
        if !f.tags.is_empty() {
            config.push_str(&format!("additional_tags: [\"{}\"]\n", f.tags.join("\", \"")));
        }
        let file = if f.disabled { "disabled-build-config.yaml" } else { "build-config.yaml" };
        repo = repo.file(&format!("{name}/{file}"), &config);
        let mut dockerfile = String::from("ARG ECR_REGISTRY\n");
        let mut froms = String::new();
        for (dep, plain) in &f.deps {
            if *dep >= i {
                continue;
            }
            if *plain {
                froms.push_str(&format!("FROM img-{dep} AS from{dep}\n"));
            } else {
                dockerfile.push_str(&format!("ARG IMG_{dep}_TAG\n"));
                froms.push_str(&format!("FROM ${{ECR_REGISTRY}}:${{IMG_{dep}_TAG}} AS from{dep}\n"));
            }
        }
        dockerfile.push_str(&froms);
        dockerfile.push_str("FROM scratch AS release\nCOPY a /\n");
        // Some folders (ko builds, upstream ones) have no Dockerfile of their own.
        if !(f.ko || (f.upstream.is_some() && i % 2 == 0)) {
            repo = repo.file(&format!("{name}/Dockerfile"), &dockerfile).file(&format!("{name}/a"), "a\n");
        }
        if f.weekly {
            weekly.push_str(&format!("{name}\n"));
        }
    }
    repo.file("rebuild-weekly.txt", &weekly)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever a layout holds, the graph `import` writes checks and plans, identically in
    /// KDL and YAML.
    #[test]
    fn every_generated_layout_imports_into_a_graph_that_checks(folders in prop::collection::vec(folder(), 1..7)) {
        let repo = write_layout(Repo::new(), &folders);
        import_both(&repo, "127.0.0.1:5000/images");
    }
}

/// The imported naming pushes what the layout's CI pushed: `{dir}-{DATE}-{arch}` on `main`,
/// `{dir}-{DATE}-{branch}-{arch}` on another branch, `{dir}-{tag}` for additional tags.
#[test]
#[ignore = "needs buildah, skopeo, docker-registry (installed by .ci/run)"]
fn the_imported_graph_pushes_the_layouts_references() {
    let registry = Registry::start();
    // An upstream repository on its `main` branch (the layout's CI tags its builds
    // `test-app-DATE-main-amd64`: the upstream ref is in the tag).
    let upstream = tempfile::tempdir().expect("a temporary folder");
    git(upstream.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(upstream.path().join("Dockerfile"), "FROM scratch\nCOPY app.txt /\n").expect("write");
    std::fs::write(upstream.path().join("app.txt"), "app\n").expect("write");
    git(upstream.path(), &["add", "."]);
    git(upstream.path(), &["commit", "-q", "-m", "one"]);
    let repo = Repo::new()
        .online()
        .file(
            "test-app/build-config.yaml",
            &format!(
                "upstream_repo: file://{}\nupstream_ref: main\nplatforms: [linux/amd64]\n",
                upstream.path().display()
            ),
        )
        .file(
            "hello/build-config.yaml",
            "use_local_context: true\nplatforms: [linux/amd64]\nadditional_tags: [latest]\n",
        )
        .file("hello/Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
        .file("hello/hello.txt", "hello\n");
    let import = repo.run(&["import", ".", "-o", "hephy.kdl"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    let text = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("read");
    repo.write("hephy.kdl", &format!("registry \"{}/images\"\n{text}", registry.address()));
    let date = {
        let out = std::process::Command::new("date").args(["-u", "+%Y%m%d"]).output().expect("date");
        String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
    };
    let main = repo.run_with(&["run"], &[("HEPHY_BRANCH", "main")]);
    assert_eq!(main.code, 0, "{}\n{}", main.stdout, main.stderr);
    let build = registry.raw(&format!("images:hello-{date}-amd64"));
    assert_eq!(
        sha256(&registry.raw(&format!("images:hello-{date}"))),
        sha256(&registry.raw("images:hello-latest"))
    );
    let branch =
        repo.run_with(&["run", "--force", "hello@linux/amd64"], &[("HEPHY_BRANCH", "feature/Faster-Builds")]);
    assert_eq!(branch.code, 0, "{}\n{}", branch.stdout, branch.stderr);
    let on_branch = registry.raw(&format!("images:hello-{date}-feature-faster-builds-amd64"));
    assert_eq!(sha256(&on_branch), sha256(&build), "the same build, named for its branch");
    // The upstream build is named for its upstream ref, on `main` and on any other branch.
    let upstream_build = registry.raw(&format!("images:test-app-{date}-main-amd64"));
    assert!(upstream_build.contains("layers"), "{upstream_build}");
    let branch = repo.run_with(&["run", "--force", "test-app@linux/amd64"], &[("HEPHY_BRANCH", "feature/x")]);
    assert_eq!(branch.code, 0, "{}\n{}", branch.stdout, branch.stderr);
    assert_eq!(sha256(&registry.raw(&format!("images:test-app-{date}-main-amd64"))), sha256(&upstream_build));
}
