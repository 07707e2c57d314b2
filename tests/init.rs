//! The first five minutes: `hephy init` in a folder of Dockerfiles writes a graph that checks,
//! plans with the inferred edges and builds; `-f` before the command; `--force a b`.

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
        .filter(|n| n["action"] != "fresh")
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert!(built.iter().any(|n| n.starts_with("curl@")), "{built:?}");
    assert!(built.iter().any(|n| n.starts_with("docs-site@")), "{built:?}");
    assert!(built.iter().any(|n| n.starts_with("tool@")), "curl's dependents follow: {built:?}");
}

/// The image-to-image edges of the graph a file describes, from `hephy graph --format json`:
/// `dependency -> dependent`, by image name, platforms folded.
fn graph_edges(repo: &Repo, file: &str) -> std::collections::BTreeSet<String> {
    let run = repo.run(&["-f", file, "graph", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    let image = |id: &str| id.split_once('@').map(|(name, _)| name.to_owned());
    json["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|edge| {
            let from = image(edge[0].as_str()?)?;
            let to = image(edge[1].as_str()?)?;
            Some(format!("{from} -> {to}"))
        })
        .collect()
}

/// `init` in `dir` (relative to the repository) in both syntaxes: the graph it writes passes
/// `check`, and its edges are `expected`. Returns each syntax's text and `init`'s stderr.
fn init_in(repo: &Repo, dir: &str, expected: &[&str], build: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (format, file) in [("kdl", "hephy.kdl"), ("yaml", "hephy.yaml")] {
        let path = format!("{dir}/{file}");
        let init = repo.run(&["init", dir, "--format", format]);
        assert_eq!(init.code, 0, "{}", init.stderr);
        let text = std::fs::read_to_string(repo.path().join(&path)).expect("graph written");
        let check = repo.run(&["-f", &path, "check"]);
        assert_eq!(check.code, 0, "{text}\n{}", check.stderr);
        let edges = graph_edges(repo, &path);
        let expected: std::collections::BTreeSet<String> = expected.iter().map(|e| (*e).to_owned()).collect();
        assert_eq!(edges, expected, "{text}");
        if build {
            // Offline (HEPHY_OFFLINE=1): a base that was not wired to the graph's build would be
            // pulled from a registry and fail.
            let run = repo.run(&["-f", &path, "run"]);
            assert_eq!(run.code, 0, "{text}\n{}\n{}", run.stdout, run.stderr);
        }
        std::fs::remove_file(repo.path().join(&path)).expect("remove the graph");
        out.push((text, init.stderr));
    }
    out
}

#[test]
fn init_follows_arg_defaults_through_other_args_and_registry_prefixes() {
    // A layered image family (invented): `ARG HOST`, `ARG TEAM`,
    // `ARG PARENT=$HOST/$TEAM/NAME`, `FROM $PARENT`; and a reference split in two.
    let chained = |base: &str, file: &str| {
        format!(
            "ARG HOST=registry.example.net\nARG TEAM=lattice\nARG PARENT=$HOST/$TEAM/{base}\nFROM $PARENT\nCOPY {file} /{file}\n"
        )
    };
    let repo = Repo::new()
        .file("images/root-layer/Dockerfile", "FROM scratch\nCOPY f.txt /f.txt\n")
        .file("images/root-layer/f.txt", "f\n")
        .file("images/app-layer/Dockerfile", &chained("root-layer", "b.txt"))
        .file("images/app-layer/b.txt", "b\n")
        .file("images/shell-layer/Dockerfile", &chained("app-layer", "m.txt"))
        .file("images/shell-layer/m.txt", "m\n")
        .file(
            "images/stats-layer/Dockerfile",
            "ARG HOST=ghcr.io\nARG TEAM=acme\nARG PARENT_REPO=${HOST}/${TEAM}/shell-layer\nARG PARENT_TAG=2031-02-03\nFROM ${PARENT_REPO}:${PARENT_TAG}\nCOPY s.txt /s.txt\n",
        )
        .file("images/stats-layer/s.txt", "s\n");
    let written = init_in(
        &repo,
        ".",
        &["root-layer -> app-layer", "app-layer -> shell-layer", "shell-layer -> stats-layer"],
        true,
    );
    let (kdl, stderr) = &written[0];
    assert!(kdl.contains(r#"from "root-layer" arg="PARENT""#), "{kdl}");
    assert!(kdl.contains(r#"from "shell-layer" arg="PARENT_TAG" registry-arg="PARENT_REPO""#), "{kdl}");
    assert!(kdl.contains("// line 4: `FROM $PARENT` is image `app-layer`"), "{kdl}");
    assert!(
        stderr.contains("inferred: `[REGISTRY/][OWNER/]NAME[:TAG]` → folder `NAME/` (3 edge(s))"),
        "{stderr}"
    );
    let (yaml, _) = &written[1];
    assert!(yaml.contains("arg: PARENT"), "{yaml}");
}

#[test]
fn init_matches_tags_to_suite_and_variant_folders() {
    // A repository of suites and variants (invented): `FROM stackbase:granite-net` is built in
    // `granite/net/` of the repository named `stackbase`.
    let repo = Repo::new()
        .file("stackbase/granite/net/Dockerfile", "FROM scratch\nCOPY a /a\n")
        .file("stackbase/granite/net/a", "a\n")
        .file("stackbase/granite/vcs/Dockerfile", "FROM stackbase:granite-net\nCOPY b /b\n")
        .file("stackbase/granite/vcs/b", "b\n")
        .file("stackbase/granite/Dockerfile", "FROM stackbase:granite-vcs\nCOPY c /c\n")
        .file("stackbase/granite/c", "c\n")
        .file("stackbase/basalt/net/Dockerfile", "FROM scratch\nCOPY a /a\n")
        .file("stackbase/basalt/net/a", "a\n")
        .file("stackbase/basalt/vcs/Dockerfile", "FROM stackbase:basalt-net\nCOPY b /b\n")
        .file("stackbase/basalt/vcs/b", "b\n");
    let written = init_in(
        &repo,
        "stackbase",
        &["granite-net -> granite-vcs", "granite-vcs -> granite", "basalt-net -> basalt-vcs"],
        true,
    );
    let (kdl, stderr) = &written[0];
    assert!(kdl.contains(r#"from "granite-net" context="stackbase:granite-net""#), "{kdl}");
    let rule = "`[REGISTRY/][OWNER/]REPOSITORY:SUITE-VARIANT` → folder `SUITE/VARIANT/` (REPOSITORY the repository's folder name)";
    assert!(kdl.contains(rule), "{kdl}");
    assert!(stderr.contains(rule), "{stderr}");

    // `org/NAME:SUITE-VARIANT` built in `NAME/SUITE/VARIANT/`, nested names from the path.
    let repo = Repo::new()
        .file("python/3.12/slim/Dockerfile", "FROM scratch\nCOPY a /a\n")
        .file("python/3.12/slim/a", "a\n")
        .file("python/3.12/dev/Dockerfile", "FROM ghcr.io/acme/python:3.12-slim\nCOPY b /b\n")
        .file("python/3.12/dev/b", "b\n")
        .file("node/22/Dockerfile", "FROM scratch\nCOPY a /a\n")
        .file("node/22/a", "a\n")
        .file("node/22-tools/Dockerfile", "FROM acme/node:22\nCOPY b /b\n")
        .file("node/22-tools/b", "b\n");
    let written =
        init_in(&repo, ".", &["python-3-12-slim -> python-3-12-dev", "node-22 -> node-22-tools"], true);
    let (kdl, _) = &written[0];
    assert!(kdl.contains(r#"from "python-3-12-slim" context="ghcr.io/acme/python:3.12-slim""#), "{kdl}");
}

#[test]
fn init_wires_a_sibling_from_as_a_named_context_and_never_a_cycle() {
    let repo = Repo::new()
        .file("base/Dockerfile", "FROM scratch\nCOPY base.txt /base.txt\n")
        .file("base/base.txt", "base\n")
        .file("app/Dockerfile", "FROM base\nCOPY app.txt /app.txt\n")
        .file("app/app.txt", "app\n")
        .file("tools/Dockerfile", "FROM scratch\nCOPY --from=base /base.txt /tools.txt\n")
        .file("cross/Dockerfile", "FROM --platform=$BUILDPLATFORM base AS build\nFROM scratch\nCOPY --from=build /base.txt /cross.txt\n");
    let written = init_in(&repo, ".", &["base -> app", "base -> cross", "base -> tools"], true);
    let (kdl, _) = &written[0];
    assert!(kdl.contains(r#"from "base" context="base""#), "{kdl}");
    assert!(kdl.contains(r#"from "base" context="base" platform="build""#), "{kdl}");
    let (yaml, _) = &written[1];
    assert!(yaml.contains("context: base"), "{yaml}");

    // A folder whose Dockerfile builds on the registry image of its own name, and two that
    // name each other: no cycle, and no name an unwired `FROM` would take for the graph's.
    let repo = Repo::new()
        .file("alpine/Dockerfile", "FROM alpine\nRUN true\n")
        .file("a/Dockerfile", "FROM b\n")
        .file("b/Dockerfile", "FROM a\n");
    let written = init_in(&repo, ".", &["b -> a-image"], false);
    let (kdl, stderr) = &written[0];
    assert!(kdl.contains(r#"image "alpine-image""#), "{kdl}");
    assert!(kdl.contains("a Dockerfile's `FROM alpine` here means the registry's `alpine`"), "{kdl}");
    assert!(kdl.contains("not wired (a cycle)"), "{kdl}");
    assert!(stderr.contains("not wired (a cycle)"), "{stderr}");
}

#[test]
fn init_writes_an_ambiguous_match_as_a_comment_with_its_candidates() {
    let repo = Repo::new()
        .file("team-a/base/Dockerfile", "FROM scratch\n")
        .file("team\"b\n*/ #x/base/Dockerfile", "FROM scratch\n")
        .file("app/Dockerfile", "ARG BASE=ghcr.io/acme/base\nFROM ${BASE}\n");
    let written = init_in(&repo, ".", &[], false);
    for (text, stderr) in &written {
        assert!(text.contains("`FROM ${BASE}` may be image `team-b-x-base` (`team\"b\\n*/ #x/base/Dockerfile`) or `team-a-base` (`team-a/base/Dockerfile`)"), "{text}");
        assert!(!text.contains("from \"team"), "an ambiguous match is never wired:\n{text}");
        assert!(text.contains("not wired"), "{text}");
        assert!(stderr.contains("warning: `app`: line 2: `FROM ${BASE}` may be image"), "{stderr}");
        assert!(stderr.lines().all(|l| !l.starts_with("*/")), "{stderr}");
    }
}

/// `init` writes a commented `platforms` line (which, uncommented, is the graph's syntax), a
/// YAML graph's first line names the schema it writes beside it (what `hephy schema` prints),
/// `.hephy/` is added to a `.gitignore` that lacks it (once), and without one `init` says how.
#[test]
fn init_writes_platforms_the_schema_line_and_offers_the_gitignore_entry() {
    for (format, file, comment) in [("kdl", "hephy.kdl", "// "), ("yaml", "hephy.yaml", "# ")] {
        let repo = repository();
        let init = repo.run(&["init", "--format", format]);
        assert_eq!(init.code, 0, "{}", init.stderr);
        assert!(init.stdout.contains("added `.hephy/` to .gitignore"), "{}", init.stdout);
        assert_eq!(
            std::fs::read_to_string(repo.path().join(".gitignore")).expect("read"),
            "vendor/\n# hephy's state (`hephy init`)\n.hephy/\n"
        );
        let text = std::fs::read_to_string(repo.path().join(file)).expect("graph written");
        let platforms = text
            .lines()
            .find(|l| l.starts_with(&format!("{comment}platforms")))
            .unwrap_or_else(|| panic!("no commented platforms line:\n{text}"));
        if format == "yaml" {
            assert_eq!(
                text.lines().next(),
                Some("# yaml-language-server: $schema=hephy.schema.json"),
                "{text}"
            );
            let schema =
                std::fs::read_to_string(repo.path().join("hephy.schema.json")).expect("schema written");
            assert_eq!(schema, repo.run(&["schema"]).stdout);
        } else {
            assert!(
                !text.contains("yaml-language-server") && !repo.path().join("hephy.schema.json").exists()
            );
        }
        // Uncommented, the line is the graph's own: every image builds for both platforms.
        let uncommented = text.replacen(platforms, &platforms[comment.len()..], 1);
        repo.write(file, &uncommented);
        let plan = repo.run(&["plan", "--format", "json"]);
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        let ids = plan.stdout;
        assert!(ids.contains("\"curl@linux/amd64\"") && ids.contains("\"curl@linux/arm64\""), "{ids}");
        // A second init elsewhere in the same repository does not add the entry again.
        std::fs::remove_file(repo.path().join(file)).expect("remove");
        let again = repo.run(&["init", "--format", format]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(!again.stdout.contains(".gitignore"), "{}", again.stdout);
        assert_eq!(
            std::fs::read_to_string(repo.path().join(".gitignore")).expect("read").matches(".hephy/").count(),
            1
        );
    }
    let bare = Repo::new().file("app/Dockerfile", "FROM scratch\n");
    let init = bare.run(&["init"]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    assert!(init.stdout.contains("`echo .hephy/ >> .gitignore` keeps it out of git"), "{}", init.stdout);
    assert!(!bare.path().join(".gitignore").exists(), "init creates no .gitignore");
}
