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
