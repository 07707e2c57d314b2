//! `compression` for the built-in builder's layers: gzip by default, zstd when asked, in both
//! syntaxes; part of the key; refused for another builder or an unknown name.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use common::Repo;

fn layer_media_types(repo: &Repo) -> Vec<String> {
    let layout = repo.path().join(".hephy/oci");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let digest = entry["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(digest)).unwrap())
                .unwrap();
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            out.push(layer["mediaType"].as_str().unwrap().to_owned());
        }
    }
    out
}

#[test]
fn zstd_layers_in_both_syntaxes_and_a_changed_key() {
    let kdl = "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n";
    let repo = Repo::new()
        .file("app/Dockerfile", "FROM scratch\nCOPY a.txt /a.txt\n")
        .file("app/a.txt", "hello\n")
        .file("hephy.kdl", kdl);
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(layer_media_types(&repo), ["application/vnd.oci.image.layer.v1.tar+gzip"]);

    repo.write("hephy.kdl", &kdl.replace("builder \"oci\"", "builder \"oci\"\n    compression \"zstd\""));
    let plan = repo.run(&["plan", "--format", "json"]);
    assert!(plan.stdout.contains("\"compression\""), "the setting is named as a change: {}", plan.stdout);
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.results().values().all(|r| r == "built"), "the new key rebuilds: {}", run.stdout);
    assert_eq!(layer_media_types(&repo), ["application/vnd.oci.image.layer.v1.tar+zstd"]);

    std::fs::remove_file(repo.path().join("hephy.kdl")).unwrap();
    repo.write("hephy.yaml", "images:\n  app: { context: app, builder: oci, compression: zstd }\n");
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(layer_media_types(&repo), ["application/vnd.oci.image.layer.v1.tar+zstd"]);
}

#[test]
fn unknown_compressions_and_other_builders_are_refused_at_check() {
    let repo = Repo::new()
        .context("app")
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n    compression \"zstandard\"\n}\n");
    let check = repo.run(&["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("unknown compression `zstandard`"), "{}", check.stderr);
    repo.write(
        "hephy.kdl",
        "image \"app\" {\n    context \"app\"\n    builder \"buildah\"\n    compression \"zstd\"\n}\n",
    );
    let check = repo.run(&["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("`compression` is for the built-in `oci` builder"), "{}", check.stderr);
}
