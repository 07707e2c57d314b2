//! Publishing: tags from git and the plan (`{commit}`, `{short_commit}`, `{branch}`, `{git_tag}`
//! and its semver parts, `{date}` fixed by `HEPHY_DATE`), pushed to real registries on 127.0.0.1
//! and read back with skopeo.

mod common;

use common::registry::Registry;
use common::{Repo, git};

/// A git repository with one image built by the built-in builder (no tool needed to build),
/// pushing to `registry`, with the graph's `lines` added; committed on `main`.
fn repo_pushing_to(registry: &str, lines: &str) -> Repo {
    let repo = Repo::new()
        .online()
        .file("app/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n")
        .file("app/hello.txt", "hello\n")
        .file(".gitignore", ".hephy/\n")
        .file(
            "hephy.kdl",
            &format!(
                "registry \"{registry}/team\"\nplatforms \"linux/amd64\" \"linux/arm64\"\n\
                 {lines}\nimage \"app\" {{\n    context \"app\"\n    builder \"oci\"\n    tags \"latest\" \"v1.2.3\"\n}}\n"
            ),
        );
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "init"]);
    repo
}

/// The regression of `{commit}` on a local context: it pushed `latest-` and `v1.2.3-` while the
/// summary printed `latest, v1.2.3`. It is the graph repository's HEAD, in the registry and in
/// the summary alike; `-dirty` once the context has uncommitted changes.
#[test]
#[ignore = "needs docker-registry and skopeo (installed by .ci/run)"]
fn commit_of_a_local_context_is_the_head_of_the_graph_repository() {
    common::require(&["docker-registry", "skopeo"], "apt-get install docker-registry skopeo");
    let registry = Registry::start();
    let repo = repo_pushing_to(&registry.address(), "naming tag=\"{tag}-{commit}\"");
    let head = git(repo.path(), &["rev-parse", "HEAD"]);

    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut tags = registry.tags("team/app");
    tags.retain(|t| !t.starts_with("hephy-"));
    tags.sort();
    assert_eq!(tags, [format!("latest-{head}"), format!("v1.2.3-{head}")]);
    assert!(run.stdout.contains(&format!("tags: latest-{head}, v1.2.3-{head}")), "{}", run.stdout);

    // An uncommitted change in the context: the build reruns and its tags say `-dirty`.
    repo.write("app/hello.txt", "hello, again\n");
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        registry.tags("team/app").contains(&format!("latest-{head}-dirty")),
        "{:?}",
        registry.tags("team/app")
    );
    assert!(run.stdout.contains(&format!("latest-{head}-dirty")), "{}", run.stdout);
}

/// `HEPHY_DATE` fixes `{date}`; a malformed one is an input error (exit 2) saying so.
#[test]
fn hephy_date_is_checked() {
    let repo = Repo::new().file("app/Dockerfile", "FROM scratch\n").file(
        "hephy.kdl",
        "registry \"127.0.0.1:1/team\"\nnaming manifest=\"{date}\"\nimage \"app\" {\n    context \"app\"\n}\n",
    );
    let run = repo.run_with(&["plan", "-f", "hephy.kdl"], &[("HEPHY_DATE", "2026-01-31")]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("`HEPHY_DATE` is `2026-01-31`, not a UTC date written `YYYYMMDD`"),
        "{}",
        run.stderr
    );
    let run = repo.run_with(&["check", "-f", "hephy.kdl"], &[("HEPHY_DATE", "20260131")]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

/// `skopeo ARGS` against a plain-HTTP registry; its stdout.
/// The platform manifests of an index, after checking it holds one attestation manifest (the
/// provenance hephy writes when pushing, BuildKit's layout) for each of them.
fn platform_entries(index: &serde_json::Value) -> Vec<&serde_json::Value> {
    let (attestations, platforms): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .partition(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest");
    for platform in &platforms {
        assert!(
            attestations
                .iter()
                .any(|a| a["annotations"]["vnd.docker.reference.digest"] == platform["digest"]
                    && a["platform"]["os"] == "unknown"),
            "no attestation manifest of {platform}: {index}"
        );
    }
    assert_eq!(attestations.len(), platforms.len(), "{index}");
    platforms
}

fn skopeo(args: &[&str]) -> String {
    let output = std::process::Command::new("skopeo").args(args).output().expect("run skopeo");
    assert!(output.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// One two-platform image pushed to two registries (the graph's `registry` and a mirror), under
/// its own repository, with labels, annotations and tags from git on a tagged commit; each
/// registry is read back with skopeo. An index deleted from the mirror alone is pushed again.
#[test]
#[ignore = "needs docker-registry, skopeo (installed by .ci/run)"]
fn one_image_goes_to_two_registries_with_annotations_labels_and_git_tags() {
    common::require(&["docker-registry", "skopeo"], "apt-get install docker-registry skopeo");
    let (primary, mirror) = (Registry::start(), Registry::start());
    let lines = format!(
        "mirrors \"{}/mirror\"\n\
         annotations \"org.opencontainers.image.source\"=\"{{source}}\" \"org.opencontainers.image.revision\"=\"{{commit}}\" \"org.opencontainers.image.created\"=\"{{created}}\"\n",
        mirror.address()
    );
    let repo = repo_pushing_to(&primary.address(), &lines);
    repo.write(
        "hephy.kdl",
        &std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap().replace(
            "    tags \"latest\" \"v1.2.3\"\n",
            "    repository \"{registry}/apps/{name}\"\n\
             \x20   labels \"org.example.team\"=\"platform\" \"org.opencontainers.image.version\"=\"{version|short_commit}\"\n\
             \x20   tags \"latest\" \"{short_commit}\" \"{branch}-{date}\" \"{git_tag|short_commit}\" \"{version|short_commit}\" \"{major|short_commit}\"\n",
        ),
    );
    git(repo.path(), &["remote", "add", "origin", "git@github.com:example/app.git"]);
    git(repo.path(), &["commit", "-q", "-am", "publish"]);
    git(repo.path(), &["tag", "v1.4.2"]);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    let env = [("HEPHY_DATE", "20260131"), ("HEPHY_BRANCH", "main")];

    let run = repo.run_with(&["run", "-f", "hephy.kdl"], &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut expected_tags = ["1", "1.4.2", &head[..12], "latest", "main-20260131", "v1.4.2"];
    expected_tags.sort_unstable();
    let want_annotations = serde_json::json!({
        "org.opencontainers.image.source": "https://github.com/example/app",
        "org.opencontainers.image.revision": head,
        "org.opencontainers.image.created": "2026-01-31T00:00:00Z",
    });
    let mut index_digests = Vec::new();
    for repository in
        [format!("{}/team/apps/app", primary.address()), format!("{}/mirror/apps/app", mirror.address())]
    {
        let listed = json(&skopeo(&["list-tags", "--tls-verify=false", &format!("docker://{repository}")]));
        let mut tags: Vec<&str> = listed["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str())
            .filter(|t| !t.starts_with("hephy-"))
            .collect();
        tags.sort_unstable();
        assert_eq!(tags, expected_tags, "{repository}");

        let raw =
            skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{repository}:latest")]);
        let index = json(&raw);
        assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json", "{repository}");
        assert_eq!(index["annotations"], want_annotations, "{repository}");
        let manifests = platform_entries(&index);
        let archs: Vec<&str> =
            manifests.iter().filter_map(|m| m["platform"]["architecture"].as_str()).collect();
        assert_eq!(archs, ["amd64", "arm64"], "{repository}");
        for entry in manifests {
            let at = format!("docker://{repository}@{}", entry["digest"].as_str().unwrap());
            let manifest = json(&skopeo(&["inspect", "--raw", "--tls-verify=false", &at]));
            assert_eq!(manifest["annotations"], want_annotations, "{at}");
            let config = json(&skopeo(&["inspect", "--config", "--raw", "--tls-verify=false", &at]));
            assert_eq!(config["config"]["Labels"]["org.example.team"], "platform", "{at}");
            assert_eq!(config["config"]["Labels"]["org.opencontainers.image.version"], "1.4.2", "{at}");
        }
        index_digests.push(common::registry::sha256(&raw));
    }
    assert_eq!(index_digests[0], index_digests[1], "both registries hold the same index");
    assert!(run.stdout.contains("tags: latest"), "{}", run.stdout);
    assert!(run.stdout.contains("v1.4.2") && run.stdout.contains("main-20260131"), "{}", run.stdout);

    // Nothing to do again (past the racy window of file times, so a no-op plan could leave a
    // stamp, which must not hide the next day's tag); then the mirror loses the index (and so its tags): only the
    // mirror's copy is missing, and the index and its tags are pushed again.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    repo.run_with(&["plan", "-f", "hephy.kdl"], &env);
    let plan = repo.run_with(&["plan", "--format", "json", "-f", "hephy.kdl"], &env).json();
    let building: Vec<&serde_json::Value> =
        plan["nodes"].as_array().unwrap().iter().filter(|n| n["action"] != "skip").collect();
    assert!(building.is_empty(), "{building:?}");
    // Another day: only the tag that says the date is pushed again (to both registries).
    let next_day = [("HEPHY_DATE", "20260201"), ("HEPHY_BRANCH", "main")];
    let plan = repo.run_with(&["plan", "--format", "json", "-f", "hephy.kdl"], &next_day).json();
    let building: Vec<&str> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["action"] != "skip")
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(building, ["app:{branch}-{date}"], "{plan}");
    let run = repo.run_with(&["run", "-f", "hephy.kdl"], &next_day);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for registry in [&primary, &mirror] {
        let listed = skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!(
                "docker://{}/{}",
                registry.address(),
                if registry.port == primary.port { "team/apps/app" } else { "mirror/apps/app" }
            ),
        ]);
        assert!(listed.contains("main-20260201"), "{listed}");
    }
    let mirrored = format!("docker://{}/mirror/apps/app@{}", mirror.address(), index_digests[1]);
    skopeo(&["delete", "--tls-verify=false", &mirrored]);
    let plan = repo.run_with(&["plan", "--format", "json", "-f", "hephy.kdl"], &env).json();
    let app = plan["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "app").expect("the index node");
    assert_eq!(app["reasons"], serde_json::json!([{"kind": "output_missing"}]), "{plan}");
    let run = repo.run_with(&["run", "-f", "hephy.kdl"], &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/mirror/apps/app:v1.4.2", mirror.address()),
    ]);
    assert_eq!(common::registry::sha256(&raw), index_digests[0]);
}

/// The same with buildah: `--label` and `--annotation` on the build, one push per registry.
#[test]
#[ignore = "needs buildah, skopeo and docker-registry (installed by .ci/run)"]
fn buildah_builds_carry_labels_and_annotations_to_both_registries() {
    common::registry::require_image_tools();
    let (primary, mirror) = (Registry::start(), Registry::start());
    let lines = format!(
        "mirrors \"{}/mirror\"\nlabels \"org.example.team\"=\"platform\"\nannotations \"org.opencontainers.image.revision\"=\"{{commit}}\"\n",
        mirror.address()
    );
    let repo = repo_pushing_to(&primary.address(), &lines);
    repo.write(
        "hephy.kdl",
        &std::fs::read_to_string(repo.path().join("hephy.kdl"))
            .unwrap()
            .replace("builder \"oci\"", "builder \"buildah\""),
    );
    git(repo.path(), &["commit", "-q", "-am", "buildah"]);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for repository in [format!("{}/team/app", primary.address()), format!("{}/mirror/app", mirror.address())]
    {
        let index = json(&skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{repository}:v1.2.3"),
        ]));
        assert_eq!(index["annotations"]["org.opencontainers.image.revision"], head.as_str(), "{repository}");
        for entry in platform_entries(&index) {
            let at = format!("docker://{repository}@{}", entry["digest"].as_str().unwrap());
            let manifest = json(&skopeo(&["inspect", "--raw", "--tls-verify=false", &at]));
            assert_eq!(manifest["annotations"]["org.opencontainers.image.revision"], head.as_str(), "{at}");
            let config = json(&skopeo(&["inspect", "--config", "--raw", "--tls-verify=false", &at]));
            assert_eq!(config["config"]["Labels"]["org.example.team"], "platform", "{at}");
        }
    }
}

/// Credentials are per registry: a mirror that asks for a login gets the one `config.json`
/// keeps for its host, and the registry that asks for none is spoken to without.
#[test]
#[ignore = "needs docker-registry, skopeo and htpasswd (installed by .ci/run)"]
fn each_registry_gets_its_own_login() {
    common::require(
        &["docker-registry", "skopeo", "htpasswd"],
        "apt-get install docker-registry skopeo apache2-utils",
    );
    let primary = Registry::start();
    let mirror = Registry::start_with_login("alice", "mirror-secret");
    // The image's own `mirrors` (the graph has none).
    let repo = repo_pushing_to(&primary.address(), "");
    repo.write(
        "hephy.kdl",
        &std::fs::read_to_string(repo.path().join("hephy.kdl")).unwrap().replace(
            "    builder \"oci\"\n",
            &format!("    builder \"oci\"\n    mirrors \"{}/mirror\"\n", mirror.address()),
        ),
    );
    git(repo.path(), &["commit", "-q", "-am", "mirror"]);
    let config = tempfile::tempdir().unwrap();
    let docker_config = config.path().display().to_string();
    let run = repo.run_with(&["run", "-f", "hephy.kdl"], &[("DOCKER_CONFIG", &docker_config)]);
    assert_eq!(run.code, 1, "without a login the mirror refuses the push:\n{}", run.stdout);
    assert!(run.stdout.contains("asks for a login and none is configured"), "{}", run.stdout);

    // base64 of `alice:mirror-secret`, as `docker login` writes it.
    let auth = "YWxpY2U6bWlycm9yLXNlY3JldA==";
    std::fs::write(
        config.path().join("config.json"),
        format!("{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}", mirror.address()),
    )
    .unwrap();
    let run = repo.run_with(&["run", "-f", "hephy.kdl"], &[("DOCKER_CONFIG", &docker_config)]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let at = |registry: &Registry, path: &str| format!("docker://{}/{path}:latest", registry.address());
    let primary_index = skopeo(&["inspect", "--raw", "--tls-verify=false", &at(&primary, "team/app")]);
    let mirror_index = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:mirror-secret",
        &at(&mirror, "mirror/app"),
    ]);
    assert_eq!(primary_index, mirror_index);
}
