//! Every diagnostic of the language, in both syntaxes: exit code 2, the same codes from KDL and
//! YAML, and the whole rendered report pinned by an insta snapshot (file, line, caret, help).

mod common;

use common::Repo;

struct Case {
    name: &'static str,
    /// Folders to create with a Dockerfile in each.
    contexts: &'static [&'static str],
    kdl: &'static str,
    yaml: &'static str,
    /// The codes expected, in order.
    codes: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "unknown_top_level_key",
        contexts: &["curl"],
        kdl: "platfroms \"linux/amd64\"\nimage \"curl\" {\n    context \"curl\"\n}\n",
        yaml: "platfroms: [linux/amd64]\nimages:\n  curl:\n    context: curl\n",
        codes: &["hephy::unknown_key"],
    },
    Case {
        name: "unknown_image_key",
        contexts: &["curl"],
        kdl: "image \"curl\" {\n    context \"curl\"\n    tgas \"latest\"\n}\n",
        yaml: "images:\n  curl:\n    context: curl\n    tgas: [latest]\n",
        codes: &["hephy::unknown_key"],
    },
    Case {
        name: "wrong_type",
        contexts: &["curl"],
        kdl: "executor \"amd64\" platform=\"linux/amd64\" jobs=\"two\"\nimage \"curl\" {\n    context \"curl\"\n    platforms \"linux/amd64\"\n    tags 1.10\n}\n",
        yaml: "executors:\n  amd64: { platform: linux/amd64, jobs: two }\nimages:\n  curl:\n    context: curl\n    platforms: [linux/amd64]\n    tags: { latest: yes }\n",
        codes: &["hephy::wrong_type", "hephy::wrong_type"],
    },
    Case {
        name: "duplicate_name",
        contexts: &["curl"],
        kdl: "image \"curl\" {\n    context \"curl\"\n}\ntask \"curl\" {\n    run \"true\"\n}\n",
        yaml: "images:\n  curl:\n    context: curl\ntasks:\n  curl:\n    run: [\"true\"]\n",
        codes: &["hephy::duplicate_name"],
    },
    Case {
        name: "unknown_dependency",
        contexts: &["curl", "tool"],
        kdl: "image \"curl\" {\n    context \"curl\"\n}\nimage \"tool\" {\n    context \"tool\"\n    from \"crul\" arg=\"BASE\"\n}\n",
        yaml: "images:\n  curl:\n    context: curl\n  tool:\n    context: tool\n    from: { crul: { arg: BASE } }\n",
        codes: &["hephy::unknown_dependency"],
    },
    Case {
        name: "cycle",
        contexts: &["a", "b", "c"],
        kdl: "image \"a\" {\n    context \"a\"\n    after \"b\"\n}\nimage \"b\" {\n    context \"b\"\n    after \"c\"\n}\nimage \"c\" {\n    context \"c\"\n    after \"a\"\n}\n",
        yaml: "images:\n  a:\n    context: a\n    after: [b]\n  b:\n    context: b\n    after: [c]\n  c:\n    context: c\n    after: [a]\n",
        codes: &["hephy::cycle"],
    },
    Case {
        name: "self_dependency",
        contexts: &[],
        kdl: "task \"t\" {\n    run \"true\"\n    after \"t\"\n}\n",
        yaml: "tasks:\n  t:\n    run: [\"true\"]\n    after: [t]\n",
        codes: &["hephy::cycle"],
    },
    Case {
        name: "invalid_platform",
        contexts: &["curl"],
        kdl: "platforms \"linux/x86_64\" \"linux\"\nimage \"curl\" {\n    context \"curl\"\n}\n",
        yaml: "platforms: [linux/x86_64, linux]\nimages:\n  curl:\n    context: curl\n",
        codes: &["hephy::invalid_platform", "hephy::invalid_platform"],
    },
    Case {
        name: "missing_platform",
        contexts: &["curl", "tool"],
        kdl: "platforms \"linux/amd64\" \"linux/arm64\"\nimage \"curl\" {\n    context \"curl\"\n    platforms \"linux/amd64\"\n}\nimage \"tool\" {\n    context \"tool\"\n    from \"curl\" arg=\"BASE\"\n}\n",
        yaml: "platforms: [linux/amd64, linux/arm64]\nimages:\n  curl:\n    context: curl\n    platforms: [linux/amd64]\n  tool:\n    context: tool\n    from: { curl: { arg: BASE } }\n",
        codes: &["hephy::missing_platform"],
    },
    Case {
        name: "path_escapes",
        contexts: &[],
        kdl: "image \"curl\" {\n    context \"../outside\"\n}\n",
        yaml: "images:\n  curl:\n    context: ../outside\n",
        codes: &["hephy::path_escapes"],
    },
    Case {
        name: "missing_context",
        contexts: &[],
        kdl: "image \"curl\" {\n    context \"curl\"\n}\n",
        yaml: "images:\n  curl:\n    context: curl\n",
        codes: &["hephy::missing_path"],
    },
    Case {
        name: "missing_dockerfile",
        contexts: &["curl"],
        kdl: "image \"curl\" {\n    context \"curl\"\n    dockerfile \"build/Dockerfile\"\n}\n",
        yaml: "images:\n  curl:\n    context: curl\n    dockerfile: build/Dockerfile\n",
        codes: &["hephy::missing_path"],
    },
    Case {
        name: "no_executor",
        contexts: &["curl"],
        kdl: "executor \"amd64\" platform=\"linux/amd64\"\nimage \"curl\" {\n    context \"curl\"\n    platforms \"linux/amd64\" \"linux/arm64\"\n}\n",
        yaml: "executors:\n  amd64: { platform: linux/amd64 }\nimages:\n  curl:\n    context: curl\n    platforms: [linux/amd64, linux/arm64]\n",
        codes: &["hephy::no_executor"],
    },
    Case {
        name: "from_needs_arg_and_image",
        contexts: &["curl", "tool"],
        kdl: "task \"lint\" {\n    run \"true\"\n}\nimage \"curl\" {\n    context \"curl\"\n    from \"lint\" arg=\"X\"\n}\nimage \"tool\" {\n    context \"tool\"\n    from \"curl\"\n}\n",
        yaml: "tasks:\n  lint:\n    run: [\"true\"]\nimages:\n  curl:\n    context: curl\n    from: { lint: { arg: X } }\n  tool:\n    context: tool\n    from: { curl: {} }\n",
        codes: &["hephy::wrong_type", "hephy::missing"],
    },
    Case {
        name: "no_context",
        contexts: &[],
        kdl: "image \"curl\" {\n    tags \"latest\"\n}\n",
        yaml: "images:\n  curl:\n    tags: [latest]\n",
        codes: &["hephy::missing"],
    },
    Case {
        name: "task_without_command",
        contexts: &[],
        kdl: "task \"lint\" {\n    inputs \"*.sh\"\n}\n",
        yaml: "tasks:\n  lint:\n    inputs: [\"*.sh\"]\n",
        codes: &["hephy::missing"],
    },
    Case {
        name: "invalid_name_and_tag",
        contexts: &["curl"],
        kdl: "image \"my.curl\" {\n    context \"curl\"\n    tags \"-latest\"\n}\n",
        yaml: "images:\n  my.curl:\n    context: curl\n    tags: [-latest]\n",
        codes: &["hephy::invalid_name", "hephy::invalid_value"],
    },
    Case {
        name: "unknown_schedule_entry",
        contexts: &["curl"],
        kdl: "image \"curl\" {\n    context \"curl\"\n}\nschedule \"weekly\" {\n    rebuild \"curl\" \"kaniko\"\n}\n",
        yaml: "images:\n  curl:\n    context: curl\nschedules:\n  weekly:\n    rebuild: [curl, kaniko]\n",
        codes: &["hephy::unknown_dependency"],
    },
    Case {
        name: "unknown_group_member",
        contexts: &["curl"],
        kdl: "image \"curl\" {\n    context \"curl\"\n}\ngroup \"release\" {\n    members \"curl\" \"crul\"\n}\ngroup \"all\" {\n    members \"relase\"\n}\n",
        yaml: "images:\n  curl:\n    context: curl\ngroups:\n  release: [curl, crul]\n  all: [relase]\n",
        codes: &["hephy::unknown_dependency", "hephy::unknown_dependency"],
    },
    Case {
        name: "group_name_clashes_with_image",
        contexts: &["curl"],
        kdl: "image \"curl\" {\n    context \"curl\"\n}\ngroup \"curl\" {\n    members \"curl\"\n}\n",
        yaml: "images:\n  curl:\n    context: curl\ngroups:\n  curl: [curl]\n",
        codes: &["hephy::duplicate_name"],
    },
    Case {
        name: "builder_cannot_run_mount",
        contexts: &[],
        kdl: "registry \"127.0.0.1:5000/team\"\nimage \"app\" {\n    context \"app\"\n    builder \"kaniko\"\n}\n",
        yaml: "registry: 127.0.0.1:5000/team\nimages:\n  app:\n    context: app\n    builder: kaniko\n",
        codes: &["hephy::invalid_value"],
    },
    Case {
        name: "oci_builder_cannot_run",
        contexts: &[],
        kdl: "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n",
        yaml: "images:\n  app:\n    context: app\n    builder: oci\n",
        codes: &["hephy::invalid_value"],
    },
    Case {
        name: "executor_builds_in_two_places",
        contexts: &["app"],
        kdl: "executor \"arm\" platform=\"linux/arm64\" ssh=\"builder@arm.example.com\" buildkit=\"tcp://bk:1234\"\nimage \"app\" {\n    context \"app\"\n    platforms \"linux/arm64\"\n}\n",
        yaml: "executors:\n  arm: { platform: linux/arm64, ssh: builder@arm.example.com, buildkit: \"tcp://bk:1234\" }\nimages:\n  app:\n    context: app\n    platforms: [linux/arm64]\n",
        codes: &["hephy::invalid_value"],
    },
    Case {
        name: "executor_addresses",
        contexts: &["app"],
        kdl: "executor \"a\" platform=\"linux/amd64\" ssh=\"-oProxyCommand=evil\"\nexecutor \"b\" platform=\"linux/arm64\" kubernetes=\"Builds\"\nimage \"app\" {\n    context \"app\"\n}\n",
        yaml: "executors:\n  a: { platform: linux/amd64, ssh: \"-oProxyCommand=evil\" }\n  b: { platform: linux/arm64, kubernetes: Builds }\nimages:\n  app:\n    context: app\n",
        codes: &["hephy::invalid_value", "hephy::invalid_value"],
    },
    Case {
        name: "ssh_executor_runs_only_the_oci_builder",
        contexts: &["app"],
        kdl: "registry \"127.0.0.1:5000/team\"\nexecutor \"arm\" platform=\"linux/arm64\" ssh=\"builder@arm.example.com\"\nimage \"app\" {\n    context \"app\"\n    builder \"buildah\"\n    platforms \"linux/arm64\"\n}\n",
        yaml: "registry: 127.0.0.1:5000/team\nexecutors:\n  arm: { platform: linux/arm64, ssh: builder@arm.example.com }\nimages:\n  app:\n    context: app\n    builder: buildah\n    platforms: [linux/arm64]\n",
        codes: &["hephy::invalid_value"],
    },
    Case {
        name: "unknown_secret",
        contexts: &["app"],
        kdl: "secret \"NPM_TOKEN\" env=\"NPM_TOKEN\"\nimage \"app\" {\n    context \"app\"\n    builder \"buildah\"\n    secrets \"NPM_TOKN\"\n}\n",
        yaml: "secrets:\n  NPM_TOKEN: { env: NPM_TOKEN }\nimages:\n  app:\n    context: app\n    builder: buildah\n    secrets: [NPM_TOKN]\n",
        codes: &["hephy::unknown_dependency"],
    },
    Case {
        name: "secret_for_a_builder_without_secrets",
        contexts: &["app"],
        kdl: "secret \"NPM_TOKEN\" file=\"token\"\nimage \"app\" {\n    context \"app\"\n    secrets \"NPM_TOKEN\"\n}\n",
        yaml: "secrets:\n  NPM_TOKEN: { file: token }\nimages:\n  app:\n    context: app\n    secrets: [NPM_TOKEN]\n",
        codes: &["hephy::invalid_value"],
    },
    Case {
        name: "unknown_builder",
        contexts: &["app"],
        kdl: "image \"app\" {\n    context \"app\"\n    builder \"kanico\"\n}\n",
        yaml: "images:\n  app:\n    context: app\n    builder: kanico\n",
        codes: &["hephy::invalid_value"],
    },
    Case {
        name: "target_without_stage",
        contexts: &["app"],
        kdl: "image \"app\" {\n    context \"app\"\n    targets \"debug\"\n}\n",
        yaml: "images:\n  app:\n    context: app\n    targets: [debug]\n",
        codes: &["hephy::unknown_dependency"],
    },
    Case {
        name: "naming_template_placeholder",
        contexts: &["app"],
        kdl: "naming \"kaniko-builder\" manifest=\"{name}-{arch}\"\nimage \"app\" {\n    context \"app\"\n}\n",
        yaml: "naming: { preset: kaniko-builder, manifest: \"{name}-{arch}\" }\nimages:\n  app:\n    context: app\n",
        codes: &["hephy::invalid_value"],
    },
    Case {
        name: "tag_template_renders_empty_untagged",
        contexts: &["app"],
        kdl: "registry \"r.example.com\"\nnaming manifest=\"{git_tag}\"\nimage \"app\" {\n    context \"app\"\n    tags \"latest\" \"{major}.{minor}\"\n}\n",
        yaml: "registry: r.example.com\nnaming: { manifest: \"{git_tag}\" }\nimages:\n  app:\n    context: app\n    tags: [latest, \"{major}.{minor}\"]\n",
        codes: &["hephy::invalid_value", "hephy::invalid_value"],
    },
    Case {
        name: "annotations_need_a_builder_that_writes_them",
        contexts: &["app"],
        kdl: "image \"app\" {\n    context \"app\"\n    builder \"kaniko\"\n    labels \"bad name\"=\"x\"\n    annotations \"org.opencontainers.image.revision\"=\"{commit}\"\n}\n",
        yaml: "images:\n  app:\n    context: app\n    builder: kaniko\n    labels: { \"bad name\": x }\n    annotations: { org.opencontainers.image.revision: \"{commit}\" }\n",
        codes: &["hephy::invalid_name", "hephy::invalid_value"],
    },
    Case {
        name: "several_problems_at_once",
        contexts: &["a", "b"],
        kdl: "platforms \"linux/amd64\"\nimage \"a\" {\n    context \"a\"\n    after \"b\"\n    platfroms \"linux/arm64\"\n}\nimage \"b\" {\n    context \"b\"\n    after \"a\" \"zzz\"\n}\n",
        yaml: "platforms: [linux/amd64]\nimages:\n  a:\n    context: a\n    after: [b]\n    platfroms: [linux/arm64]\n  b:\n    context: b\n    after: [a, zzz]\n",
        codes: &["hephy::unknown_key", "hephy::cycle", "hephy::unknown_dependency"],
    },
];

fn check(case: &Case, file: &str, text: &str) -> String {
    let mut repo = Repo::new().file(file, text);
    if case.name == "builder_cannot_run_mount" {
        repo = repo.file(
            "app/Dockerfile",
            "FROM scratch AS build\nRUN --mount=type=cache,target=/cache \\\n    make\n",
        );
    }
    if case.name == "oci_builder_cannot_run" {
        repo = repo.file("app/Dockerfile", "FROM scratch\nCOPY . /src\nRUN make -C /src\n");
    }
    for context in case.contexts {
        repo = repo.context(context);
    }
    let run = repo.run(&["check", "-f", file]);
    assert_eq!(run.code, 2, "{} ({file}) must fail with exit 2:\n{}", case.name, run.stderr);
    assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let mut codes = run.codes();
    codes.sort();
    let mut expected: Vec<String> = case.codes.iter().map(|c| (*c).to_owned()).collect();
    expected.sort();
    assert_eq!(codes, expected, "{} ({file}):\n{}", case.name, run.stderr);
    run.stderr
}

#[test]
fn every_diagnostic_in_both_syntaxes() {
    for case in CASES {
        let kdl = check(case, "hephy.kdl", case.kdl);
        let yaml = check(case, "hephy.yaml", case.yaml);
        // The graph file's line, or the Dockerfile's (what a builder cannot build in it).
        assert!(kdl.contains("hephy.kdl:") || kdl.contains("Dockerfile:"), "names the file and line:\n{kdl}");
        assert!(
            yaml.contains("hephy.yaml:") || yaml.contains("Dockerfile:"),
            "names the file and line:\n{yaml}"
        );
        insta::assert_snapshot!(format!("{}_kdl", case.name), kdl);
        insta::assert_snapshot!(format!("{}_yaml", case.name), yaml);
    }
}

#[test]
fn syntax_errors_point_into_the_file() {
    let kdl = Repo::new().file("hephy.kdl", "image \"curl\" {\n    context \"curl\n}\n").run(&[
        "check",
        "-f",
        "hephy.kdl",
    ]);
    assert_eq!(kdl.code, 2);
    assert!(kdl.codes().iter().all(|c| c == "hephy::syntax"), "{}", kdl.stderr);
    insta::assert_snapshot!("syntax_kdl", kdl.stderr);
    let yaml = Repo::new().file("hephy.yaml", "images:\n  curl:\n    context: curl\n   tags: [x\n").run(&[
        "check",
        "-f",
        "hephy.yaml",
    ]);
    assert_eq!(yaml.code, 2);
    assert_eq!(yaml.codes(), ["hephy::syntax"], "{}", yaml.stderr);
    insta::assert_snapshot!("syntax_yaml", yaml.stderr);
}

#[test]
fn design_sketch_parses_and_reports_the_platform_it_lacks() {
    // The sketch in the design notes builds curl for amd64 only, yet manifest-tool (for both
    // default platforms) is built FROM it: a compile-time error, as the design rules say.
    let repo = Repo::new().context("curl").context("manifest-tool").file(
        "hephy.kdl",
        r#"registry "registry.example.com/platform"
platforms "linux/amd64" "linux/arm64"

executor "amd64" platform="linux/amd64" jobs=2
executor "arm64" platform="linux/arm64" jobs=1

image "curl" {
    context "curl"
    platforms "linux/amd64"
    tags "latest"
}

image "manifest-tool" {
    context "manifest-tool"
    from "curl" arg="BASE"        // build after curl; pass its reference as --build-arg BASE=…
    tags "latest"
}

image "kaniko" {
    git "https://github.com/chainguard-dev/kaniko" ref="v1.25.3"
    dockerfile "deploy/Dockerfile"
    targets "executor" "debug" "warmer"
    tags "latest" "v1.25.3"
}

task "lint" {
    run "hadolint" "curl/Dockerfile"
    inputs "curl/Dockerfile"
}

schedule "weekly" {
    rebuild "curl" "kaniko"
}
"#,
    );
    let run = repo.run(&["check", "-f", "hephy.kdl"]);
    assert_eq!(run.codes(), ["hephy::missing_platform"], "{}", run.stderr);
    repo.write(
        "hephy.yaml",
        "registry: registry.example.com/platform\nplatforms: [linux/amd64, linux/arm64]\nimages:\n  curl: { context: curl, platforms: [linux/amd64], tags: [latest] }\n  manifest-tool:\n    context: manifest-tool\n    from: { curl: { arg: BASE } }\n    tags: [latest]\n",
    );
    let run = repo.run(&["check", "-f", "hephy.yaml"]);
    assert_eq!(run.codes(), ["hephy::missing_platform"], "{}", run.stderr);
}

#[test]
fn hostile_inputs_never_panic() {
    let inputs: &[(&str, &[u8])] = &[
        ("hephy.kdl", b""),
        ("hephy.yaml", b""),
        ("hephy.kdl", b"\xff\xfe image"),
        ("hephy.yaml", b"images:\n  \xff: {}\n"),
        ("hephy.yaml", b"a: &a [*a]\n"),
        ("hephy.yaml", b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"),
        ("hephy.yaml", b"- just\n- a list\n"),
        ("hephy.yaml", b"images: 42\n"),
        ("hephy.yaml", b"images:\n  x:\n"),
        ("hephy.kdl", b"image\n"),
        ("hephy.kdl", b"image \"x\" \"y\" { context; }\n"),
        ("hephy.kdl", b"image #null\ntask 1\n"),
        ("hephy.yaml", b"---\nimages: {}\n---\nimages: {}\n"),
    ];
    for (file, bytes) in inputs {
        let repo = Repo::new();
        std::fs::write(repo.path().join(file), bytes).unwrap();
        let run = repo.run(&["check", "-f", file]);
        assert!(run.code == 0 || run.code == 2, "{file} {bytes:?}: exit {}\n{}", run.code, run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let deep = format!("a: {}{}\n", "[".repeat(500), "]".repeat(500));
    let run = Repo::new().file("hephy.yaml", &deep).run(&["check", "-f", "hephy.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn problems_of_every_stage_are_reported_in_one_run() {
    // A cycle (the language's) and a RUN under the built-in builder (the builder's check) do not
    // depend on each other: both are reported at once, not the second after the first is fixed.
    let repo = Repo::new()
        .file("a/Dockerfile", "FROM scratch\nRUN echo hi\n")
        .file("b/Dockerfile", "FROM scratch\n")
        .file(
            "hephy.kdl",
            "image \"a\" {\n    context \"a\"\n    builder \"oci\"\n    after \"b\"\n}\nimage \"b\" {\n    context \"b\"\n    after \"a\"\n}\n",
        );
    let run = repo.run(&["check"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.codes(), ["hephy::cycle", "hephy::invalid_value"], "{}", run.stderr);
    assert!(run.stderr.contains("has 2 problems"), "{}", run.stderr);
}

/// A help is written in the syntax of the file it is about: the same mistakes (an image without
/// a source, a task without a command, `from` a task, an unknown key) get KDL hints in KDL and
/// YAML hints in YAML, and a YAML key is a "key", never a "node".
#[test]
fn hints_are_in_the_syntax_of_the_file() {
    let kdl = "image \"curl\" {\n    tgas \"x\"\n}\ntask \"t\" {\n}\nimage \"app\" {\n    context \"app\"\n    from \"t\" arg=\"B\"\n}\n";
    let yaml = "images:\n  curl:\n    tgas: [x]\n  app:\n    context: app\n    from: { t: { arg: B } }\ntasks:\n  t: {}\n";
    let repo = Repo::new()
        .file("app/Dockerfile", "ARG B\nFROM ${B}\n")
        .file("hephy.kdl", kdl)
        .file("hephy.yaml", yaml);
    let k = repo.run(&["check", "-f", "hephy.kdl"]);
    let y = repo.run(&["check", "-f", "hephy.yaml"]);
    assert_eq!((k.code, y.code), (2, 2), "{}{}", k.stderr, y.stderr);
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (k, y) = (words(&k.stderr), words(&y.stderr));
    for (kdl_help, yaml_help) in [
        ("add `context \"curl\"`", "add `context: curl`"),
        ("add `run \"program\" \"arg\"…`", "add `run: [program, arg]`"),
        ("use `after \"t\"` to run after a task", "use `after: [t]` to run after a task"),
    ] {
        assert!(k.contains(kdl_help) && !k.contains(yaml_help), "KDL: {kdl_help}: {k}");
        assert!(y.contains(yaml_help) && !y.contains(kdl_help), "YAML: {yaml_help}: {y}");
    }
    assert!(!k.contains("(YAML)") && !y.contains("(KDL)"), "{k}\n{y}");
    assert!(y.contains("unknown key `tgas`") && !y.contains("unknown node"), "{y}");
}
