//! External named contexts (`build-context "NAME" image=… | path=… | git=… | oci-layout=…`):
//! an image context is the registry's image pinned by digest (oci and buildah, a registry on
//! 127.0.0.1), whose moved tag rebuilds with `--refresh`; a folder's and a git repository's
//! files reach `COPY --from=NAME` and the key; an OCI layout's manifest digest is keyed; `check`
//! says which one a `FROM` names and proposes no edit that makes a cycle.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use common::layers::{push_layers, tar_of};
use common::registry::Registry;
use common::{Repo, git};
use serde_json::Value;

fn layers(manifest: &str) -> Vec<String> {
    let m: Value = serde_json::from_str(manifest).unwrap();
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect()
}

/// The image manifest (not an index) pushed under a key (a `hephy-` tag of `repository` or a
/// cache record) last.
fn build_of(registry: &Registry, repository: &str, seen: &mut Vec<String>) -> String {
    let tags: Vec<String> =
        registry.keyed(repository, "team/hephy-cache").into_iter().filter(|t| !seen.contains(t)).collect();
    seen.extend(tags.iter().cloned());
    let mut builds: Vec<String> = tags
        .iter()
        .map(|t| registry.raw(&format!("{repository}{t}")))
        .filter(|raw| raw.contains("\"layers\""))
        .collect();
    // A build pushed under its key tag is recorded too: one manifest, named twice.
    builds.sort();
    builds.dedup();
    assert_eq!(builds.len(), 1, "{repository}: {tags:?}");
    builds[0].clone()
}

/// Pushes `upstream/base:1` holding one file, `hello.txt`, with `text`; returns its layer's digest.
fn push_base(registry: &Registry, dir: &std::path::Path, text: &str) -> String {
    let reference = format!("{}/upstream/base:1", registry.address());
    push_layers(dir, &reference, &[tar_of(&[("hello.txt", tar::EntryType::Regular, text)])]);
    layers(&registry.raw("upstream/base:1"))[0].clone()
}

fn plan(repo: &Repo, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "--format", "json"];
    args.extend_from_slice(extra);
    let run = repo.run(&args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run.json()
}

fn action(plan: &Value, id: &str) -> String {
    plan["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap()["action"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn image_context_builds_on_the_registry_image(builder: &str) {
    let registry = Registry::start();
    let scratch = tempfile::tempdir().unwrap();
    let first = push_base(&registry, scratch.path(), "hello\n");
    let repo = Repo::new()
        .online()
        .file("app/app.txt", "app\n")
        // Unmodified: `FROM base` as a bake file's `contexts = { base = "docker-image://…" }` means it.
        .file("app/Dockerfile", "FROM base\nCOPY app.txt /app.txt\n")
        .file(
            "hephy.kdl",
            &format!(
                "registry \"{0}/team\"\nplatforms \"linux/amd64\"\nbuilder \"{builder}\"\n\nimage \"app\" {{\n    context \"app\"\n    build-context \"base\" image=\"{0}/upstream/base:1\"\n}}\n",
                registry.address()
            ),
        );
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut seen = Vec::new();
    let app = layers(&build_of(&registry, "team/app", &mut seen));
    assert_eq!(app.len(), 2, "{app:?}");
    assert_eq!(app[0], first, "app is built on the registry's upstream/base:1, by digest");

    // The tag moves: nothing changes until the bases are refreshed, then app rebuilds on it.
    let second = push_base(&registry, scratch.path(), "hello again\n");
    assert_ne!(first, second);
    assert_eq!(action(&plan(&repo, &[]), "app@linux/amd64"), "fresh");
    assert_eq!(action(&plan(&repo, &["--refresh"]), "app@linux/amd64"), "build");
    let run = repo.run(&["run", "--refresh", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.results()["app@linux/amd64"], "built");
    let app = layers(&build_of(&registry, "team/app", &mut seen));
    assert_eq!(app[0], second, "rebuilt on the moved tag's new digest");
}

#[test]
#[ignore = "needs skopeo, docker-registry (installed by .ci/run)"]
fn an_image_context_builds_on_the_registry_image_by_digest_with_oci() {
    image_context_builds_on_the_registry_image("oci");
}

#[test]
#[ignore = "needs buildah, skopeo, docker-registry (installed by .ci/run)"]
fn an_image_context_builds_on_the_registry_image_by_digest_with_buildah() {
    image_context_builds_on_the_registry_image("buildah");
}

/// An image copying `a.txt` from the named context `src`, given as `source` (a KDL property).
fn copies_from(source: &str, builder: &str) -> Repo {
    Repo::new()
        .file("app/Dockerfile", "FROM scratch\nCOPY --from=src a.txt /a.txt\n")
        .file("src/a.txt", "a\n")
        .file("src/skip.txt", "not copied\n")
        .file("src/.dockerignore", "skip.txt\n")
        .file(
            "hephy.kdl",
            &format!(
                "platforms \"linux/amd64\"\nbuilder \"{builder}\"\n\nimage \"app\" {{\n    context \"app\"\n    build-context \"src\" {source}\n}}\n"
            ),
        )
}

/// The manifest of the image `app` last built into hephy's own layout, and the layout's blobs.
fn app_manifest(repo: &Repo) -> (Value, std::path::PathBuf) {
    let layout = repo.path().join(".hephy/oci");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let blobs = layout.join("blobs/sha256");
    let manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "app.linux-amd64")
        .unwrap();
    let digest = manifest["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    (serde_json::from_slice(&std::fs::read(blobs.join(digest)).unwrap()).unwrap(), blobs)
}

/// The file `path` of the image `app`'s last layer, built into hephy's own layout.
fn file_in_app(repo: &Repo, path: &str) -> String {
    let (manifest, blobs) = app_manifest(repo);
    let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_owned();
    let reader = flate2::read::GzDecoder::new(
        std::fs::File::open(blobs.join(layer.trim_start_matches("sha256:"))).unwrap(),
    );
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy().trim_start_matches('/') == path {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            return text;
        }
    }
    panic!("no `{path}` in app's last layer")
}

#[test]
fn a_folder_context_is_copied_from_and_its_files_are_the_key() {
    let repo = copies_from("path=\"src\"", "oci");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(file_in_app(&repo, "a.txt"), "a\n");
    assert_eq!(action(&plan(&repo, &[]), "app@linux/amd64"), "fresh");
    // A file its `.dockerignore` leaves out is no input (BuildKit reads a named local
    // context's own `.dockerignore`).
    repo.write("src/skip.txt", "still not copied\n");
    assert_eq!(action(&plan(&repo, &[]), "app@linux/amd64"), "fresh");
    // A file of the folder changes: app rebuilds, and `explain` names the file.
    repo.write("src/a.txt", "b\n");
    assert_eq!(action(&plan(&repo, &[]), "app@linux/amd64"), "build");
    let explain = repo.run(&["explain", "app"]);
    assert!(explain.stdout.contains("src/a.txt changed"), "{}\n{}", explain.stdout, explain.stderr);
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(file_in_app(&repo, "a.txt"), "b\n");
}

#[test]
fn a_git_context_is_its_commit() {
    let up = tempfile::tempdir().unwrap();
    git(up.path(), &["init", "-q"]);
    std::fs::create_dir_all(up.path().join("sub")).unwrap();
    std::fs::write(up.path().join("sub/a.txt"), "one\n").unwrap();
    git(up.path(), &["add", "."]);
    git(up.path(), &["commit", "-q", "-m", "one"]);
    let url = format!("file://{}", up.path().display());
    let repo = copies_from(&format!("git=\"{url}\" ref=\"main\" dir=\"sub\""), "oci").online();
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(file_in_app(&repo, "a.txt"), "one\n");
    assert!(repo.path().join(".hephy/git").is_dir(), "checked out under .hephy/git");
    assert_eq!(action(&plan(&repo, &[]), "app@linux/amd64"), "fresh");
    // The branch moves: app rebuilds on the new commit.
    std::fs::write(up.path().join("sub/a.txt"), "two\n").unwrap();
    git(up.path(), &["commit", "-q", "-am", "two"]);
    let commit = git(up.path(), &["rev-parse", "HEAD"]);
    assert_eq!(action(&plan(&repo, &[]), "app@linux/amd64"), "build");
    let explain = repo.run(&["explain", "app"]);
    assert!(explain.stdout.contains(&commit[..12]), "{}\n{}", explain.stdout, explain.stderr);
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(file_in_app(&repo, "a.txt"), "two\n");
}

#[test]
#[ignore = "needs skopeo, docker-registry (installed by .ci/run)"]
fn an_oci_layout_context_is_its_manifest_digest() {
    let registry = Registry::start();
    let repo =
        Repo::new().file("app/Dockerfile", "FROM vendor\nCOPY a.txt /a.txt\n").file("app/a.txt", "a\n");
    let reference = format!("{}/vendor:1", registry.address());
    push_layers(
        &repo.path().join("vendor"),
        &reference,
        &[tar_of(&[("v.txt", tar::EntryType::Regular, "v1\n")])],
    );
    let layout = std::fs::read_dir(repo.path().join("vendor")).unwrap().next().unwrap().unwrap().file_name();
    let layout = format!("vendor/{}", layout.to_string_lossy());
    let graph = |builder: &str| {
        format!(
            "platforms \"linux/amd64\"\nbuilder \"{builder}\"\n\nimage \"app\" {{\n    context \"app\"\n    build-context \"vendor\" oci-layout=\"{layout}\" ref=\"x\"\n}}\n"
        )
    };
    // buildah 1.28 reads `oci-layout://` as a folder's name: `check` says so, and who can.
    repo.write("hephy.kdl", &graph("buildah"));
    let check = repo.run(&["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("buildah takes no `oci-layout` build context"), "{}", check.stderr);
    assert!(check.stderr.contains("build it with oci, buildkit, buildx"), "{}", check.stderr);
    // The oci builder builds on the layout's image, read from the layout.
    repo.write("hephy.kdl", &graph("oci"));
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let layout_manifest = |repo: &Repo| {
        let dir = repo.path().join(&layout);
        let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        let digest =
            index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
        serde_json::from_slice::<Value>(&std::fs::read(dir.join("blobs/sha256").join(digest)).unwrap())
            .unwrap()
    };
    let (app, _) = app_manifest(&repo);
    assert_eq!(app["layers"].as_array().unwrap().len(), 2, "{app}");
    assert_eq!(
        app["layers"][0]["digest"],
        layout_manifest(&repo)["layers"][0]["digest"],
        "built on the layout's image"
    );
    assert_eq!(file_in_app(&repo, "a.txt"), "a\n");
    let key = |plan: &Value| {
        plan["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "app@linux/amd64").unwrap()["key"]
            .clone()
    };
    let before = key(&plan(&repo, &[]));
    assert_eq!(action(&plan(&repo, &[]), "app@linux/amd64"), "fresh", "the same layout, nothing to do");
    // The layout's `x` now names another image: the key moves.
    let _ = std::fs::remove_dir_all(repo.path().join("vendor"));
    push_layers(
        &repo.path().join("vendor"),
        &reference,
        &[tar_of(&[("v.txt", tar::EntryType::Regular, "v2\n")])],
    );
    assert_ne!(key(&plan(&repo, &[])), before, "the manifest digest moved");
    let explain = repo.run(&["explain", "app"]);
    assert!(explain.stdout.contains("build-context.vendor.digest"), "{}\n{}", explain.stdout, explain.stderr);
}

fn check_of(repo: &Repo) -> String {
    let run = repo.run(&["check"]);
    format!("exit {}\n{}", run.code, run.stderr)
}

#[test]
fn check_says_a_from_names_the_build_context_not_the_graph_image() {
    let repo = Repo::new()
        .file("ubuntu/Dockerfile", "FROM scratch\nCOPY a /\n")
        .file("ubuntu/a", "a\n")
        .file("app/Dockerfile", "FROM ubuntu\nCOPY a /\n")
        .file("app/a", "a\n")
        .file(
            "hephy.kdl",
            "platforms \"linux/amd64\"\n\nimage \"ubuntu\" {\n    context \"ubuntu\"\n}\n\nimage \"app\" {\n    context \"app\"\n    build-context \"ubuntu\" image=\"docker.io/library/ubuntu:noble-20250529\"\n}\n",
        );
    insta::assert_snapshot!(check_of(&repo));
}

#[test]
fn an_image_built_from_its_own_name_is_told_no_edit_that_makes_a_cycle() {
    // `ubuntu` says `FROM ubuntu`: `from "ubuntu"` would be a cycle, so the help names the
    // registry image instead.
    let repo = Repo::new()
        .file("ubuntu/Dockerfile", "FROM ubuntu\nCOPY a /\n")
        .file("ubuntu/a", "a\n")
        .file("hephy.kdl", "platforms \"linux/amd64\"\n\nimage \"ubuntu\" {\n    context \"ubuntu\"\n}\n");
    let before = check_of(&repo);
    insta::assert_snapshot!(before);
    assert!(!before.contains("from \"ubuntu\" context"), "{before}");
    // The edit it proposes passes `check`.
    repo.write(
        "hephy.kdl",
        "platforms \"linux/amd64\"\n\nimage \"ubuntu\" {\n    context \"ubuntu\"\n    build-context \"ubuntu\" image=\"docker.io/library/ubuntu:noble\"\n}\n",
    );
    let after = repo.run(&["check"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
}

#[test]
fn the_oci_builder_is_not_built_from_a_folder() {
    let repo = Repo::new()
        .file("app/Dockerfile", "FROM src\n")
        .file("src/a.txt", "a\n")
        .file(
            "hephy.yaml",
            "platforms: [linux/amd64]\nbuilder: oci\nimages:\n  app:\n    context: app\n    build-contexts:\n      src: { path: src }\n",
        );
    insta::assert_snapshot!(check_of(&repo));
}
