//! The language's key table ([`hephy_dsl::KEYS`]) against the build key: every image key the
//! table marks [`Hash::Hashed`] changes the keys of the image's nodes when its value changes,
//! and every key marked [`Hash::Unhashed`] changes none. A key the engine forgets to hash (or
//! hashes though the table says it must not) fails here, by name.

use std::collections::BTreeMap;
use std::path::Path;

use hephy_dsl::{Construct, Hash, KEYS, Key, Kind, SourceFile, Syntax};

use crate::{Action, BaseImages, ContextReads, Exclusions, PlanOptions, Snapshot, StatCache, Upstreams};

/// The repository every `git` sample names, and the commits its refs resolve to.
const REPO: &str = "https://git.example/app.git";
const OTHER_REPO: &str = "https://git.example/other.git";

/// Two image bodies (YAML flow-map entries, without braces) that differ only in `key`'s value.
/// Keys whose value must be one of a few words, or must name something, have their own; any
/// other key gets a generic pair from its kind, so a new plain key needs no line here.
fn samples(key: &Key) -> Option<(String, String)> {
    let name = key.yaml?;
    let with = |rest: &str, a: &str, b: &str| {
        let lead = if rest.is_empty() { String::new() } else { format!("{rest}, ") };
        Some((format!("{lead}{name}: {a}"), format!("{lead}{name}: {b}")))
    };
    let ctx = "context: ctx";
    match name {
        "context" => with("", "ctx", "ctx2"),
        "compression" => with("context: ctx, builder: oci", "gzip", "zstd"),
        "git" => with("", REPO, OTHER_REPO),
        "ref" => with(&format!("git: {REPO}"), "main", "v1"),
        "dockerfile" => with(ctx, "Dockerfile", "Dockerfile.other"),
        "builder" => with(ctx, "buildah", "kaniko"),
        "timeout" => with(ctx, "1h", "2h"),
        "secrets" => with(ctx, "[S1]", "[S2]"),
        "target" => with(ctx, "a", "b"),
        "targets" => with(ctx, "[a]", "[b]"),
        "platforms" => with(ctx, "[linux/amd64]", "[linux/arm64]"),
        "from" => with(ctx, "{ base: { arg: BASE } }", "{ base: { arg: OTHER } }"),
        "after" => with(ctx, "[base]", "[base2]"),
        "ko" => with("context: ctx, builder: ko", "{ import-path: ./a }", "{ import-path: ./b }"),
        "ko-env" => with("context: ctx, builder: ko", "{ A: x }", "{ A: y }"),
        "inherits" => with(ctx, "[t1]", "[t2]"),
        "repository" => with(ctx, "\"{registry}/x\"", "\"{registry}/y\""),
        "mirrors" => with(ctx, "[m1.example]", "[m2.example]"),
        "build-contexts" => with(ctx, "{ c: { path: d1 } }", "{ c: { path: d2 } }"),
        "sign" => with(ctx, "{ key: k1.key }", "{ key: k2.key }"),
        _ => match key.kind {
            Kind::Text => with(ctx, "a", "b"),
            Kind::Texts => with(ctx, "[a]", "[b]"),
            Kind::Flag => with(ctx, "true", "false"),
            Kind::Integer => with(ctx, "1", "2"),
            Kind::Pairs | Kind::Metadata => with(ctx, "{ A: a }", "{ A: b }"),
            Kind::NamedLists => with(ctx, "{ V: [a] }", "{ V: [b] }"),
            Kind::Block(_) | Kind::Named(_) | Kind::Dependencies(_) => None,
        },
    }
}

/// The folder every sample graph is read in: contexts, Dockerfiles, secrets and keys they name.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("folder");
        std::fs::write(path, text).expect("write");
    };
    let dockerfile = "ARG BASE=scratch\nFROM scratch AS a\nCOPY x /x\nFROM scratch AS b\nCOPY x /x\n";
    for ctx in ["ctx", "ctx2", "base", "base2"] {
        write(&format!("{ctx}/Dockerfile"), dockerfile);
        write(&format!("{ctx}/x"), ctx);
    }
    write("ctx/Dockerfile.other", "FROM scratch AS a\nFROM scratch AS b\nCOPY x /y\n");
    write("d1/f", "one");
    write("d2/f", "two");
    write("s1.txt", "first secret");
    write("s2.txt", "second secret");
    write("k1.key", "first key");
    write("k2.key", "second key");
    dir
}

/// The graph with image `app` written as `body`: a registry (so destinations count), two
/// secrets, two identical templates and two images `app` may depend on.
fn graph(body: &str) -> String {
    format!(
        "registry: reg.example/team\n\
         secrets:\n  S1: {{ file: s1.txt }}\n  S2: {{ file: s2.txt }}\n\
         templates:\n  t1: {{ args: {{ T: same }} }}\n  t2: {{ args: {{ T: same }} }}\n\
         images:\n  base: {{ context: base }}\n  base2: {{ context: base2, args: {{ B: two }} }}\n  \
         app: {{ {body} }}\n"
    )
}

/// What the language says against `text`, if it does not lower.
fn refused(dir: &Path, text: &str) -> Option<String> {
    let source = SourceFile::new(dir.join("hephy.yaml"), Syntax::Yaml, text);
    let lowered = hephy_dsl::read(&source).and_then(|doc| hephy_dsl::lower(doc, &source, dir));
    let problems = lowered.err()?;
    Some(problems.iter().map(|p| p.message().to_owned()).collect::<Vec<_>>().join("; "))
}

/// Every node's key when `text` is planned from nothing, by node id.
fn keys(dir: &Path, text: &str) -> BTreeMap<String, String> {
    let source = SourceFile::new(dir.join("hephy.yaml"), Syntax::Yaml, text);
    let doc = hephy_dsl::read(&source).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    let model = hephy_dsl::lower(doc, &source, dir).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    let graph = crate::compile(&model);
    // The builder's identity names the builder, as the standard library's does.
    let identity = |_: &crate::Node, definition: Option<hephy_dsl::Definition<'_>>| match definition {
        Some(hephy_dsl::Definition::Image(image)) => format!("{}/1", image.builder).into(),
        _ => "task/1".into(),
    };
    let mut upstreams = Upstreams::new();
    // Both repositories at one commit, so only what names them can tell them apart.
    for (url, reference, commit) in
        [(REPO, "HEAD", "c0"), (OTHER_REPO, "HEAD", "c0"), (REPO, "main", "c1"), (REPO, "v1", "c2")]
    {
        upstreams.insert((url.to_owned(), reference.to_owned()), Ok(commit.to_owned()));
    }
    let inputs = crate::gather(
        &model,
        &graph,
        &identity,
        &|_: &crate::Node, _: Option<hephy_dsl::Definition<'_>>| ContextReads::Whole,
        &upstreams,
        &BaseImages::new(),
        &StatCache::new(),
        &Exclusions::default(),
    );
    let plan = crate::plan(&graph, &inputs, &Snapshot::default(), &PlanOptions::default());
    plan.steps
        .iter()
        .map(|step| {
            assert_eq!(step.action, Action::Build);
            (graph.node(step.node).id.to_string(), step.key.to_string())
        })
        .collect()
}

/// Each image key of the table, hashed or declared unhashed, is as its row says.
#[test]
fn every_image_key_is_hashed_or_declared_unhashed() {
    let dir = folder();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for key in KEYS.iter().filter(|k| k.construct == Construct::Image) {
        if key.hash == Hash::Expanded {
            continue;
        }
        let Some((a, b)) = samples(key) else {
            wrong.push(format!(
                "`{}`: no sample values; give it a pair in `samples`",
                key.yaml.unwrap_or("?")
            ));
            continue;
        };
        let name = key.yaml.unwrap_or_default();
        // A key with checks of its own may refuse the generic samples of its kind.
        if let Some(problems) = [&a, &b].into_iter().find_map(|body| refused(dir.path(), &graph(body))) {
            wrong.push(format!(
                "`{name}`: its samples do not lower ({problems}); give it a pair in `samples`"
            ));
            continue;
        }
        let (before, after) = (keys(dir.path(), &graph(&a)), keys(dir.path(), &graph(&b)));
        match key.hash {
            Hash::Hashed if before == after => {
                wrong.push(format!("`{name}` is marked hashed, but `{a}` and `{b}` give the same keys"));
            }
            Hash::Unhashed(why) if before != after => {
                wrong.push(format!(
                    "`{name}` is marked unhashed ({why}), but `{a}` and `{b}` give other keys"
                ));
            }
            _ => {}
        }
        checked += 1;
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(checked >= 25, "only {checked} image keys checked");
}

/// The expanded keys leave nothing of their own: two templates of the same settings give the
/// same keys whichever is inherited.
#[test]
fn inheriting_either_of_two_equal_templates_keys_alike() {
    let dir = folder();
    let inherits = KEYS.iter().find(|k| k.construct == Construct::Image && k.yaml == Some("inherits"));
    let Some((a, b)) = inherits.and_then(samples) else { panic!("`inherits` has a row and samples") };
    assert_eq!(keys(dir.path(), &graph(&a)), keys(dir.path(), &graph(&b)));
}

/// Graphs that between them write every image key, each value away from its default, and one
/// that writes none it need not: their nodes' keys as recorded before the keys' lowering and
/// hashing were driven by the rows of the language's table. A key must never change (a state on
/// disk would rebuild): this fails on any byte of any node's key.
#[test]
fn the_keys_of_every_image_key_stay_as_recorded() {
    let dir = folder();
    let bodies = [
        ("defaults", "context: ctx".to_owned()),
        (
            "oci",
            "context: ctx, dockerfile: Dockerfile.other, builder: oci, compression: zstd, timeout: 1h, \
             secrets: [S1, S2], targets: [a, b], args: { X: y, Z: w }, \
             tags: [v1, latest], from: { base: { arg: BASE } }, \
             after: [base2], labels: { A: a }, annotations: { B: b }, repository: \"{registry}/x\", \
             mirrors: [m1.example, m2.example], build-contexts: { c: { path: d1 } }, \
             sign: { key: k1.key }, sbom: true, provenance: false"
                .to_owned(),
        ),
        ("oci-gzip", "context: ctx, builder: oci, compression: gzip, target: a".to_owned()),
        (
            "git",
            format!(
                "git: {REPO}, ref: main, context: sub, dockerfile: D2, builder: buildah, \
                 repository: \"{{registry}}/g\", mirrors: [m1.example], tags: [v2], secrets: [S1]"
            ),
        ),
        ("git-head", format!("git: {OTHER_REPO}, builder: kaniko")),
        (
            "ko",
            "context: ctx, builder: ko, platforms: [linux/amd64, linux/arm64], ko: { import-path: ./a, base-image: b.example/x, ldflags: -s }, \
             ko-env: { A: x }"
                .to_owned(),
        ),
    ];
    let mut shown = String::new();
    for (name, body) in bodies {
        shown.push_str(&format!("{name}:\n"));
        // One platform for the graph, so the keys are the same on any host.
        let text = format!("platforms: [linux/amd64]\n{}", graph(&body));
        for (node, key) in keys(dir.path(), &text) {
            shown.push_str(&format!("  {node} {key}\n"));
        }
    }
    insta::assert_snapshot!(shown);
}
