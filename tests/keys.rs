//! An image's key covers its Dockerfile, its ignore file and only the context paths its
//! `COPY`/`ADD` sources and `RUN --mount=type=bind` mounts can match (per platform, args
//! expanded), as BuildKit's cache does: a README no instruction copies is no input. `COPY .`, or
//! a source that cannot be known before the build, keeps the whole context.

mod common;

use std::collections::BTreeMap;

use common::Repo;

/// Each node's key in the plan of `repo`'s graph (`hephy plan --format json`).
fn keys(repo: &Repo) -> BTreeMap<String, String> {
    let run = repo.run(&["plan", "--format", "json"]);
    assert_eq!(run.code, 0, "plan failed: {}", run.stderr);
    let plan = run.json();
    plan["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id").to_owned(), n["key"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// The ids of the nodes whose key differs between `before` and `after`.
fn moved(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    before.iter().filter(|(id, key)| after.get(*id) != Some(*key)).map(|(id, _)| id.clone()).collect()
}

fn append(repo: &Repo, path: &str, text: &str) {
    let old = std::fs::read_to_string(repo.path().join(path)).unwrap_or_default();
    repo.write(path, &format!("{old}{text}"));
}

/// The kaniko-builder example as it is: its images' keys do not move when a file its
/// Dockerfiles never copy changes (a README, a changelog beside `curlrc`), and curl's move
/// with `curlrc`, which `COPY curlrc …` reads.
#[test]
fn the_kaniko_builder_example_keys_only_the_files_its_dockerfiles_copy() {
    let repo = Repo::example("kaniko-builder");
    // Not excluded by curl's `.dockerignore` (`*.md`): only the key's precision leaves it out.
    repo.write("curl/CHANGELOG", "1.0: first\n");
    repo.write("manifest-tool/NOTES.txt", "how the archive is unpacked\n");
    let before = keys(&repo);
    append(&repo, "curl/README.md", "\nMore words.\n");
    append(&repo, "curl/CHANGELOG", "1.1: retries\n");
    append(&repo, "manifest-tool/NOTES.txt", "and why\n");
    repo.write("curl/scratch.txt", "a new file no COPY reads\n");
    assert_eq!(moved(&before, &keys(&repo)), Vec::<String>::new(), "no key covers those files");
    append(&repo, "curl/curlrc", "retry = 9\n");
    let after = keys(&repo);
    let moved = moved(&before, &after);
    assert!(
        moved.contains(&"curl@linux/amd64".to_owned()) && moved.contains(&"curl@linux/arm64".to_owned()),
        "curl copies curlrc: {moved:?}"
    );
    assert!(moved.iter().all(|id| !id.starts_with("kaniko")), "kaniko reads none of it: {moved:?}");
}

/// The graph of the kaniko-builder example without what needs the network (alpine, the
/// release download, the upstream kaniko repository, hadolint, the registry), built by the
/// built-in builder: `curl` from `scratch` with its `COPY curlrc`, `manifest-tool` from curl.
fn kaniko_builder_offline() -> Repo {
    let repo = Repo::example("kaniko-builder");
    std::fs::remove_file(repo.path().join("graph.yaml")).expect("one graph file");
    repo.write(
        "hephy.kdl",
        "platforms \"linux/amd64\" \"linux/arm64\"\nbuilder \"oci\"\n\
         image \"curl\" {\n    context \"curl\"\n    tags \"latest\"\n}\n\
         image \"manifest-tool\" {\n    context \"manifest-tool\"\n    from \"curl\" arg=\"BASE\"\n    \
         args MANIFEST_TOOL_VERSION=\"2.1.7\"\n    tags \"latest\"\n}\n",
    );
    // The example's Dockerfiles, their `FROM alpine` and `RUN`s left out (each a line, or
    // continued lines).
    for path in ["curl/Dockerfile", "manifest-tool/Dockerfile"] {
        let text = std::fs::read_to_string(repo.path().join(path)).expect("the example's Dockerfile");
        let mut kept = String::new();
        let mut in_run = false;
        for line in text.lines() {
            if line.starts_with("RUN ") || in_run {
                in_run = line.ends_with('\\');
                continue;
            }
            kept.push_str(&line.replace("FROM docker.io/library/alpine:3.20", "FROM scratch"));
            kept.push('\n');
        }
        assert!(!kept.contains("RUN") && text.contains("RUN"), "{path}: {kept}");
        repo.write(path, &kept);
    }
    repo.write("curl/CHANGELOG", "1.0: first\n");
    repo
}

/// Built once, editing a README (or any file no `COPY` reads) plans nothing, and a second run
/// builds nothing; editing the copied `curlrc` rebuilds curl and manifest-tool on it, and
/// `explain` names the file.
#[test]
fn a_readme_no_copy_reads_plans_nothing_and_a_copied_file_rebuilds() {
    let repo = kaniko_builder_offline();
    let first = repo.run(&["run"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let again = repo.run(&["run", "--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.results().values().all(|r| r == "fresh"), "{}", again.stdout);

    append(&repo, "curl/README.md", "\nMore words.\n");
    append(&repo, "curl/CHANGELOG", "1.1: retries\n");
    let plan = repo.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("0 to build, 8 fresh"), "{}", plan.stdout);
    let json = repo.run(&["plan", "--format", "json"]).json();
    assert!(json["nodes"].as_array().expect("nodes").iter().all(|n| n["action"] == "fresh"), "{json}");
    let second = repo.run(&["run", "--format", "json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.results().values().all(|r| r == "fresh"), "{}", second.stdout);

    append(&repo, "curl/curlrc", "retry = 9\n");
    let plan = repo.run(&["plan"]);
    assert!(plan.stdout.contains("8 to build, 0 fresh"), "{}", plan.stdout);
    let why = repo.run(&["explain", "curl@linux/amd64"]);
    assert!(why.stdout.contains("curl/curlrc changed"), "{}{}", why.stdout, why.stderr);
    let dependent = repo.run(&["explain", "manifest-tool@linux/arm64"]);
    assert!(dependent.stdout.contains("curl/curlrc"), "{}{}", dependent.stdout, dependent.stderr);
    let third = repo.run(&["run", "--format", "json"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    let results = third.results();
    for id in
        ["curl@linux/amd64", "curl@linux/arm64", "manifest-tool@linux/amd64", "manifest-tool@linux/arm64"]
    {
        assert_eq!(results.get(id).map(String::as_str), Some("built"), "{id}: {}", third.stdout);
    }
}

/// A source per platform (`TARGETARCH`): a file of one platform moves that platform's key only.
#[test]
fn a_source_per_platform_moves_that_platforms_key() {
    let repo = Repo::new()
        .file(
            "hephy.kdl",
            "platforms \"linux/amd64\" \"linux/arm64\"\nimage \"app\" {\n    context \"app\"\n}\n",
        )
        .file("app/Dockerfile", "FROM scratch\nARG TARGETARCH\nCOPY bin/${TARGETARCH}/ /usr/bin/\n")
        .file("app/bin/amd64/app", "amd64\n")
        .file("app/bin/arm64/app", "arm64\n");
    let before = keys(&repo);
    append(&repo, "app/bin/arm64/app", "again\n");
    assert_eq!(moved(&before, &keys(&repo)), ["app", "app@linux/arm64"], "the arm64 build and the index");
}

/// `RUN --mount=type=bind` of a context folder reads it; a file beside it is no input.
#[test]
fn a_bind_mount_of_the_context_is_an_input() {
    let repo = Repo::new()
        .file(
            "hephy.kdl",
            "platforms \"linux/amd64\"\nimage \"app\" {\n    context \"app\"\n    builder \"buildah\"\n}\n",
        )
        .file(
            "app/Dockerfile",
            "FROM scratch\nRUN --mount=type=bind,source=scripts,target=/s [\"/s/build\"]\n",
        )
        .file("app/scripts/build", "#!/bin/sh\n")
        .file("app/notes.txt", "x\n");
    let before = keys(&repo);
    append(&repo, "app/notes.txt", "y\n");
    assert_eq!(moved(&before, &keys(&repo)), Vec::<String>::new());
    append(&repo, "app/scripts/build", "echo built\n");
    assert_eq!(moved(&before, &keys(&repo)), ["app", "app@linux/amd64"]);
}

/// `COPY .`, or a source whose variable only the base image could set, keeps the whole context.
#[test]
fn copy_dot_or_an_unknown_variable_keeps_the_whole_context() {
    for dockerfile in ["FROM scratch\nCOPY . /app\n", "FROM alpine:3.20\nCOPY $DIR /app\n"] {
        let repo = Repo::new()
            .file("hephy.kdl", "platforms \"linux/amd64\"\nimage \"app\" {\n    context \"app\"\n}\n")
            .file("app/Dockerfile", dockerfile)
            .file("app/README", "x\n");
        let before = keys(&repo);
        append(&repo, "app/README", "y\n");
        assert_eq!(moved(&before, &keys(&repo)), ["app", "app@linux/amd64"], "{dockerfile}");
    }
}

/// A graph image whose `ONBUILD COPY` runs in the builds on it: those keep the whole context.
#[test]
fn a_graph_base_with_an_onbuild_copy_keeps_the_whole_context() {
    let repo = Repo::new()
        .file(
            "hephy.kdl",
            "platforms \"linux/amd64\"\nimage \"base\" {\n    context \"base\"\n}\n\
             image \"app\" {\n    context \"app\"\n    from \"base\" arg=\"BASE\"\n}\n",
        )
        .file("base/Dockerfile", "FROM scratch\nONBUILD COPY . /src\n")
        .file("app/Dockerfile", "ARG BASE\nFROM ${BASE}\nCOPY app.conf /etc/\n")
        .file("app/app.conf", "x\n")
        .file("app/README", "x\n");
    let before = keys(&repo);
    append(&repo, "app/README", "y\n");
    assert_eq!(moved(&before, &keys(&repo)), ["app", "app@linux/amd64"]);
}
