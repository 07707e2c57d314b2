//! Secrets: a value from the environment or a file reaches a task in its environment and a
//! buildah build as a secret mount — and nowhere else: not argv, logs, plan, JSON, state, nor
//! the image. Only a keyed fingerprint enters the key, so a changed secret rebuilds.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::path::Path;

use common::Repo;
use common::registry::sha256;

/// The hex sha256 of a secret: what the graphs compare with, so no file of the test holds it.
fn hash(secret: &str) -> String {
    sha256(secret).trim_start_matches("sha256:").to_owned()
}

const ENV_SECRET: &str = "s3cr3t-env-value-8f2c";
const FILE_SECRET: &str = "f1le-secret-value-47aa";

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                stack.push(entry.path());
            }
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

fn assert_nowhere(repo: &Repo, outputs: &[String]) {
    for secret in [ENV_SECRET, FILE_SECRET] {
        for output in outputs {
            assert!(!output.contains(secret), "a secret was printed:\n{output}");
        }
        let leaked: Vec<String> = files_containing(&repo.path().join(".hephy"), secret);
        assert!(leaked.is_empty(), "a secret was written to {leaked:?}");
    }
}

#[test]
fn task_secrets_reach_the_task_and_nothing_else() {
    let repo = Repo::new().file("token.txt", &format!("{FILE_SECRET}\n")).file(
        "hephy.kdl",
        &format!(
            "secret \"TOKEN\" env=\"HEPHY_TEST_TOKEN\"\nsecret \"FILE_TOKEN\" file=\"token.txt\"\ntask \"publish\" {{\n    run \"sh\" \"-c\" \"test $(printf %s \\\"$TOKEN\\\" | sha256sum | cut -c1-64) = {} && test $(printf %s \\\"$FILE_TOKEN\\\" | sha256sum | cut -c1-64) = {} && echo published > out.txt\"\n    outputs \"out.txt\"\n    secrets \"TOKEN\" \"FILE_TOKEN\"\n}}\n",
            hash(ENV_SECRET),
            hash(FILE_SECRET)
        ),
    );
    let env = [("HEPHY_TEST_TOKEN", ENV_SECRET)];
    let mut outputs = Vec::new();
    for args in [
        &["plan", "--format", "json"][..],
        &["plan"],
        &["run", "-v"],
        &["run", "--format", "json"],
        &["explain", "publish", "--format", "json"],
        &["log", "--format", "json"],
        &["graph", "--format", "json"],
        &["ci", "gitlab", "--static"],
    ] {
        let run = repo.run_with(args, &env);
        assert!(run.code == 0, "{args:?}: {}", run.stderr);
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    assert_eq!(std::fs::read_to_string(repo.path().join("out.txt")).unwrap(), "published\n");
    assert_nowhere(&repo, &outputs);

    // A new value rebuilds, naming the secret, not its value.
    let changed = repo.run_with(&["plan", "--format", "json"], &[("HEPHY_TEST_TOKEN", "another-value-91")]);
    assert!(changed.stdout.contains("\"field\": \"secret.TOKEN\""), "{}", changed.stdout);
    assert!(!changed.stdout.contains("another-value-91"));
    // No value at all: the task cannot run, and says which secret is missing.
    let missing = repo.run(&["run", "--force", "publish"]);
    assert_eq!(missing.code, 1, "{}", missing.stdout);
    assert!(missing.stdout.contains("HEPHY_TEST_TOKEN"), "{}", missing.stdout);
}

#[test]
#[ignore = "needs buildah, skopeo, docker-registry and busybox-static (installed by .ci/run)"]
fn build_secrets_are_mounted_never_passed() {
    common::registry::require_image_tools();
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "this test needs /bin/busybox: apt-get install busybox-static (.ci/run installs it)"
    );
    let repo = Repo::new()
        .file("token.txt", FILE_SECRET)
        .file(
            "app/Dockerfile",
            &format!(
                "FROM scratch\nCOPY busybox /bin/busybox\nRUN --mount=type=secret,id=TOKEN --mount=type=secret,id=FILE_TOKEN [\"/bin/busybox\", \"sh\", \"-c\", \"test $(/bin/busybox sha256sum /run/secrets/TOKEN | /bin/busybox cut -c1-64) = {} && test $(/bin/busybox sha256sum /run/secrets/FILE_TOKEN | /bin/busybox cut -c1-64) = {} && echo checked > /checked\"]\n",
                hash(ENV_SECRET),
                hash(FILE_SECRET)
            ),
        )
        .file(
            "hephy.kdl",
            "platforms \"linux/amd64\"\nsecret \"TOKEN\" env=\"HEPHY_TEST_TOKEN\"\nsecret \"FILE_TOKEN\" file=\"token.txt\"\nimage \"app\" {\n    context \"app\"\n    builder \"buildah\"\n    secrets \"TOKEN\" \"FILE_TOKEN\"\n}\n",
        );
    std::fs::copy(busybox, repo.path().join("app/busybox")).unwrap();
    let env = [("HEPHY_TEST_TOKEN", ENV_SECRET)];
    let mut outputs = Vec::new();
    for args in
        [&["plan", "--format", "json"][..], &["run", "-v"], &["explain", "app"], &["log", "--format", "json"]]
    {
        let run = repo.run_with(args, &env);
        assert!(run.code == 0, "{args:?}: {}\n{}", run.stdout, run.stderr);
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    // The build checked the mounted values (its RUN fails otherwise) and left its mark.
    let log = std::fs::read_to_string(repo.path().join(".hephy/logs/1/app@linux_amd64.log")).unwrap();
    assert!(log.contains("--secret id=TOKEN,src="), "{log}");
    assert!(!log.contains("--build-arg TOKEN"), "{log}");
    assert!(
        !files_containing(&repo.path().join(".hephy/buildah"), "checked").is_empty(),
        "the RUN did not run"
    );
    // Nothing holds a value: outputs, logs, the state, buildah's storage (the image's layers).
    assert_nowhere(&repo, &outputs);
    // The build's temporary secret files are gone.
    let temp = std::env::temp_dir();
    let left: Vec<String> = std::fs::read_dir(&temp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hephy-secret-"))
        .filter(|n| {
            files_containing(&temp.join(n), ENV_SECRET).len()
                + files_containing(&temp.join(n), FILE_SECRET).len()
                > 0
        })
        .collect();
    assert!(left.is_empty(), "secret files left behind: {left:?}");
}
