//! Named build contexts (`from "base" context="base"`): an unmodified Dockerfile that says
//! `FROM base` builds on the graph's `base` by digest (oci and buildah, against a registry on
//! 127.0.0.1); `check` reports miswiring with a span in the Dockerfile; cross-compilers depend
//! on the build platform's image; one image's several targets feed different dependents.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use common::Repo;
use common::registry::Registry;
use serde_json::Value;

/// Every image build's dependencies in a plan: `id <- dep,dep`.
fn edges(repo: &Repo, file: &str) -> Vec<String> {
    let run = repo.run(&["plan", "-f", file, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let mut out: Vec<String> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "image")
        .map(|n| {
            let deps: Vec<&str> = n["deps"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            format!("{} <- {}", n["id"].as_str().unwrap(), deps.join(","))
        })
        .collect();
    out.sort();
    out
}

fn layers(manifest: &str) -> Vec<String> {
    let m: Value = serde_json::from_str(manifest).unwrap();
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect()
}

fn builds_from_base_by_digest(builder: &str) {
    let registry = Registry::start();
    let repo = Repo::new()
        .online()
        .file("base/hello.txt", "hello\n")
        .file("base/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n")
        .file("app/app.txt", "app\n")
        // Unmodified: no ARG, a plain name as BuildKit's named contexts expect.
        .file("app/Dockerfile", "FROM base\nCOPY app.txt /app.txt\n")
        .file(
            "hephy.kdl",
            &format!(
                "registry \"{}/team\"\nplatforms \"linux/amd64\"\nbuilder \"{builder}\"\n\nimage \"base\" {{\n    context \"base\"\n}}\n\nimage \"app\" {{\n    context \"app\"\n    from \"base\" context=\"base\"\n}}\n",
                registry.address()
            ),
        );
    let run = repo.run(&["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Builds and indexes are pushed under a key (a `hephy-<key>` tag or a cache record): the
    // digest of the one build (a manifest with layers) not seen before.
    let mut seen: Vec<String> = Vec::new();
    let mut outputs = || {
        let mut digest = |repository: &str| {
            let tags: Vec<String> = registry
                .keyed(repository, "team/hephy-cache")
                .into_iter()
                .filter(|t| !seen.contains(t))
                .collect();
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
            common::registry::sha256(&builds[0])
        };
        (digest("team/base"), digest("team/app"))
    };
    let (base, app) = outputs();
    let base_layers = layers(&registry.raw(&format!("team/base@{base}")));
    let app_layers = layers(&registry.raw(&format!("team/app@{app}")));
    assert_eq!(app_layers.len(), 2, "{app_layers:?}");
    assert_eq!(
        app_layers[0], base_layers[0],
        "app is built on the graph's base, not on docker.io/library/base"
    );
    // The dependency is named by digest: a changed base rebuilds app on the new digest.
    repo.write("base/hello.txt", "hello again\n");
    let again = repo.run(&["run", "--format", "json"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(again.results()["app@linux/amd64"], "built");
    let (base2, app2) = outputs();
    assert_ne!(base2, base);
    let app_layers = layers(&registry.raw(&format!("team/app@{app2}")));
    assert_eq!(app_layers[0], layers(&registry.raw(&format!("team/base@{base2}")))[0]);
    if builder == "buildah" {
        // The second run's logs (`.hephy/logs/2/…`): app's build names base's new digest.
        let logs = std::fs::read_dir(repo.path().join(".hephy/logs/2")).unwrap();
        let text: String =
            logs.filter_map(Result::ok).filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect();
        let wanted = format!("--build-context base=docker-image://{}/team/base@{base2}", registry.address());
        assert!(text.contains(&wanted), "no `{wanted}` in the logs:\n{text}");
    }
}

#[test]
#[ignore = "needs skopeo, docker-registry (installed by .ci/run)"]
fn from_base_builds_on_the_graphs_base_by_digest_with_oci() {
    builds_from_base_by_digest("oci");
}

#[test]
#[ignore = "needs buildah, skopeo, docker-registry (installed by .ci/run)"]
fn from_base_builds_on_the_graphs_base_by_digest_with_buildah() {
    builds_from_base_by_digest("buildah");
}

fn two_images(app_dockerfile: &str, kdl_from: &str, yaml_from: &str) -> Repo {
    Repo::new()
        .file("base/Dockerfile", "FROM scratch\nCOPY a /\n")
        .file("base/a", "a\n")
        .file("app/Dockerfile", app_dockerfile)
        .file("app/a", "a\n")
        .file(
            "hephy.kdl",
            &format!("image \"base\" {{\n    context \"base\"\n}}\nimage \"app\" {{\n    context \"app\"\n{kdl_from}}}\n"),
        )
        .file(
            "hephy.yaml",
            &format!("images:\n  base: {{ context: base }}\n  app:\n    context: app\n{yaml_from}"),
        )
}

#[test]
fn a_graph_image_named_in_from_without_an_edge_fails_check_in_the_dockerfile() {
    let repo = two_images("FROM scratch AS files\nCOPY a /\nFROM base\nCOPY --from=base /a /b\n", "", "");
    for file in ["hephy.kdl", "hephy.yaml"] {
        let run = repo.run(&["check", "-f", file]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        insta::assert_snapshot!(format!("from_a_graph_image_without_an_edge_{file}"), run.stderr);
    }
}

#[test]
fn an_injected_arg_the_dockerfile_never_declares_fails_check_in_the_dockerfile() {
    let repo = two_images(
        "FROM scratch\nCOPY a /\n",
        "    from \"base\" arg=\"BASE\"\n",
        "    from: { base: { arg: BASE } }\n",
    );
    for file in ["hephy.kdl", "hephy.yaml"] {
        let run = repo.run(&["check", "-f", file]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        insta::assert_snapshot!(format!("arg_never_declared_{file}"), run.stderr);
    }
}

#[test]
fn a_dependency_the_dockerfile_never_uses_is_a_warning() {
    let repo = two_images(
        "ARG BASE\nFROM scratch\nCOPY a /\n",
        "    from \"base\" arg=\"BASE\"\n",
        "    from: { base: { arg: BASE } }\n",
    );
    for file in ["hephy.kdl", "hephy.yaml"] {
        let run = repo.run(&["check", "-f", file]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        insta::assert_snapshot!(format!("arg_never_used_{file}"), run.stderr);
    }
    let wired = two_images(
        "FROM base\nCOPY a /\n",
        "    from \"base\" context=\"base\"\n",
        "    from: { base: { context: base } }\n",
    );
    for file in ["hephy.kdl", "hephy.yaml"] {
        let run = wired.run(&["check", "-f", file]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stderr, "", "well wired: nothing to say");
    }
}

/// `FROM --platform=$BUILDPLATFORM xx`: the dependent's build for every target platform uses
/// `xx` built for the platform of the machine that builds (the host, with no executors; each
/// declared executor builds its own platform natively).
#[test]
fn a_cross_compiler_is_the_build_platforms_image() {
    let host = {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        format!("linux/{arch}")
    };
    let dockerfile =
        "FROM --platform=$BUILDPLATFORM xx AS build\nCOPY a /\nFROM scratch\nCOPY --from=build /a /a\n";
    let repo = Repo::new()
        .file("xx/Dockerfile", "FROM scratch\nCOPY a /\n")
        .file("xx/a", "a\n")
        .file("app/Dockerfile", dockerfile)
        .file("app/a", "a\n")
        .file(
            "hephy.kdl",
            "platforms \"linux/amd64\" \"linux/arm64\"\nimage \"xx\" {\n    context \"xx\"\n}\nimage \"app\" {\n    context \"app\"\n    from \"xx\" context=\"xx\" platform=\"build\"\n}\n",
        )
        .file(
            "hephy.yaml",
            "platforms: [linux/amd64, linux/arm64]\nimages:\n  xx: { context: xx }\n  app:\n    context: app\n    from: { xx: { context: xx, platform: build } }\n",
        );
    let expected = vec![
        format!("app@linux/amd64 <- xx@{host}"),
        format!("app@linux/arm64 <- xx@{host}"),
        "xx@linux/amd64 <- ".to_owned(),
        "xx@linux/arm64 <- ".to_owned(),
    ];
    assert_eq!(edges(&repo, "hephy.kdl"), expected);
    assert_eq!(edges(&repo, "hephy.yaml"), expected);
    // Declared executors build natively: the build platform is the target's.
    let text = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    repo.write(
        "native.kdl",
        &format!("executor \"a\" platform=\"linux/amd64\"\nexecutor \"b\" platform=\"linux/arm64\"\n{text}"),
    );
    assert_eq!(
        edges(&repo, "native.kdl"),
        [
            "app@linux/amd64 <- xx@linux/amd64",
            "app@linux/arm64 <- xx@linux/arm64",
            "xx@linux/amd64 <- ",
            "xx@linux/arm64 <- "
        ]
    );
    // Without `platform="build"`, check says the Dockerfile wants the build platform's image.
    repo.write("same.kdl", &text.replace(" platform=\"build\"", ""));
    let run = repo.run(&["check", "-f", "same.kdl"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("add `platform=\"build\"` to `from \"xx\"`"), "{}", run.stderr);
    assert!(run.stderr.contains("app/Dockerfile:1:32"), "{}", run.stderr);
}

/// A builder Dockerfile with stages `a` and `b`, each consumed by another image, as a named
/// context: one image with two targets, no split.
#[test]
fn several_targets_of_one_image_feed_different_dependents() {
    let repo = Repo::new()
        .file("builder/Dockerfile", "FROM scratch AS a\nCOPY a /a\nFROM scratch AS b\nCOPY a /b\n")
        .file("builder/a", "a\n")
        .file("one/Dockerfile", "FROM a\n")
        .file("two/Dockerfile", "FROM scratch\nCOPY --from=b /b /b\n")
        .file("both/Dockerfile", "FROM a\nCOPY --from=b /b /b\n")
        .file(
            "hephy.kdl",
            "image \"builder\" {\n    context \"builder\"\n    targets \"a\" \"b\"\n}\n\
             image \"one\" {\n    context \"one\"\n    from \"builder\" target=\"a\" context=\"a\"\n}\n\
             image \"two\" {\n    context \"two\"\n    from \"builder\" target=\"b\" context=\"b\"\n}\n\
             image \"both\" {\n    context \"both\"\n    from \"builder\" target=\"a\" context=\"a\"\n    from \"builder\" target=\"b\" context=\"b\"\n}\n",
        )
        .file(
            "hephy.yaml",
            "images:\n  builder: { context: builder, targets: [a, b] }\n\
             \x20 one: { context: one, from: { builder: { target: a, context: a } } }\n\
             \x20 two: { context: two, from: { builder: { target: b, context: b } } }\n\
             \x20 both:\n    context: both\n    from: { builder: [{ target: a, context: a }, { target: b, context: b }] }\n",
        );
    let host = {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        format!("linux/{arch}")
    };
    let mut expected = vec![
        format!("both@{host} <- builder.a@{host},builder.b@{host}"),
        format!("builder.a@{host} <- "),
        format!("builder.b@{host} <- "),
        format!("one@{host} <- builder.a@{host}"),
        format!("two@{host} <- builder.b@{host}"),
    ];
    expected.sort();
    for file in ["hephy.kdl", "hephy.yaml"] {
        let check = repo.run(&["check", "-f", file]);
        assert_eq!(check.code, 0, "{}", check.stderr);
        assert_eq!(edges(&repo, file), expected, "{file}");
    }
}

/// kaniko takes no named contexts: neither the kaniko builder nor a Kubernetes executor (whose
/// builds are kaniko Jobs) may be given one, or `FROM base` would silently mean a registry image.
#[test]
fn kaniko_is_given_no_named_context() {
    let repo = two_images("FROM base\nCOPY a /\n", "    from \"base\" context=\"base\"\n", "");
    let text = std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap();
    repo.write("kaniko.kdl", &format!("registry \"127.0.0.1:5000/team\"\nbuilder \"kaniko\"\n{text}"));
    let run = repo.run(&["check", "-f", "kaniko.kdl"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("kaniko takes no named build contexts"), "{}", run.stderr);
    repo.write(
        "kubernetes.kdl",
        &format!("registry \"127.0.0.1:5000/team\"\nbuilder \"buildah\"\nexecutor \"k\" platform=\"{}\" kubernetes=\"builds\"\n{text}", host()),
    );
    let run = repo.run(&["check", "-f", "kubernetes.kdl"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("executor `k` builds with kaniko, which takes"), "{}", run.stderr);
}

fn host() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}
