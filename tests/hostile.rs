//! A hostile (or unlucky) repository against the real binary: FIFOs and devices among the
//! inputs are refused, not read; a symlink swapped in during builds never puts a host file into
//! a layer; no input makes a diagnostic panic or balloon; no escape sequence a graph, a file
//! name or a task carries reaches the terminal; credential helpers that fail or hang are
//! reported as what they are, and stopped with everything they started.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Repo, run_within};

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn fifos_and_devices_among_the_inputs_are_refused_not_read() {
    let repo = Repo::new()
        .file("app/Dockerfile", "FROM scratch\nCOPY . /\n")
        .file("src/main.c", "int main(){}\n")
        .file(
            "hephy.kdl",
            "image \"app\" {\n    context \"app\"\n    platforms \"linux/amd64\"\n}\ntask \"t\" {\n    run \"true\"\n    inputs \"src\"\n}\n",
        );
    mkfifo(&repo.path().join("app/pipe"));
    // `/dev/zero`'s own numbers: reading it never ends.
    let status =
        Command::new("mknod").arg(repo.path().join("src/zero")).args(["c", "1", "5"]).status().unwrap();
    assert!(status.success(), "mknod (the test needs root, as CI has)");
    let plan = run_within(&repo, &["plan"], &[], Duration::from_secs(20));
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("`app/pipe` is a FIFO (named pipe)"), "{}", plan.stdout);
    assert!(plan.stdout.contains("`src/zero` is a character device"), "{}", plan.stdout);
    let run = run_within(&repo, &["run"], &[], Duration::from_secs(20));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("is a FIFO (named pipe)"), "{}", run.stdout);
    assert!(run.stdout.contains("`src/zero` is a character device"), "{}", run.stdout);

    // A FIFO as the Dockerfile, or as a `.dockerignore`: refused too, never waited on.
    let repo = Repo::new()
        .file("app/main.txt", "x\n")
        .file("hephy.yaml", "images:\n  app: { context: app, platforms: [linux/amd64] }\n");
    mkfifo(&repo.path().join("app/Dockerfile"));
    let check = run_within(&repo, &["plan"], &[], Duration::from_secs(20));
    assert_ne!(check.code, 101, "{}", check.stderr);
    let repo = Repo::new()
        .file("app/Dockerfile", "FROM scratch\n")
        .file("hephy.yaml", "images:\n  app: { context: app, platforms: [linux/amd64] }\n");
    mkfifo(&repo.path().join("app/.dockerignore"));
    let plan = run_within(&repo, &["plan"], &[], Duration::from_secs(20));
    assert!(plan.stdout.contains("app/.dockerignore"), "{}{}", plan.stdout, plan.stderr);
}

#[test]
fn an_ignore_file_linking_out_of_the_context_is_refused_and_nothing_of_it_quoted() {
    // A pattern file outside the context whose text a pattern error would quote.
    let repo = Repo::new()
        .file("outside/secret", "[SECRET-7d2e\n")
        .file("app/Dockerfile", "FROM scratch\nCOPY . /\n")
        .file("app/a.txt", "a\n")
        .file("hephy.yaml", "images:\n  app: { context: app, platforms: [linux/amd64], builder: oci }\n");
    for name in ["app/.dockerignore", "app/Dockerfile.dockerignore"] {
        std::os::unix::fs::symlink("../outside/secret", repo.path().join(name)).unwrap();
        let plan = run_within(&repo, &["plan"], &[], Duration::from_secs(20));
        let all = format!("{}{}", plan.stdout, plan.stderr);
        assert!(all.contains(&format!("`{name}` is a symbolic link that leads out of `app`")), "{all}");
        assert!(!all.contains("SECRET"), "nothing of the file it points at is quoted:\n{all}");
        let run = run_within(&repo, &["run"], &[], Duration::from_secs(20));
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        assert!(!format!("{}{}", run.stdout, run.stderr).contains("SECRET"));
        std::fs::remove_file(repo.path().join(name)).unwrap();
    }
}

/// Every byte of every blob of the layout at `dir`, gzip layers decompressed.
fn layout_bytes(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir.join("blobs/sha256")) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let raw = std::fs::read(entry.path()).unwrap_or_default();
        if raw.starts_with(&[0x1f, 0x8b]) {
            let unzipped = Command::new("gzip").arg("-dc").arg(entry.path()).output().unwrap();
            out.push(unzipped.stdout);
        }
        out.push(raw);
    }
    out
}

#[test]
fn a_symlink_swapped_in_during_builds_never_puts_a_host_file_into_a_layer() {
    const SECRET: &str = "HOST-SECRET-4f1c";
    let host = tempfile::tempdir().unwrap();
    let repo = Repo::new()
        .file("app/Dockerfile", "FROM scratch\nCOPY data /data\n")
        .file("hephy.yaml", "images:\n  app: { context: app, platforms: [linux/amd64] }\n");
    for i in 0..200 {
        repo.write(&format!("app/data/f{i:03}"), "repository content\n");
        std::fs::write(host.path().join(format!("f{i:03}")), format!("{SECRET}\n")).unwrap();
    }
    // Swap `app/data` for a link to the host folder and back, as fast as it goes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = std::sync::Arc::clone(&stop);
        let data = repo.path().join("app/data");
        let aside = repo.path().join("app/data.real");
        let target = host.path().to_path_buf();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::fs::rename(&data, &aside).unwrap();
                std::os::unix::fs::symlink(&target, &data).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                std::fs::remove_file(&data).unwrap();
                std::fs::rename(&aside, &data).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                swaps += 1;
            }
            swaps
        })
    };
    let mut leaked = Vec::new();
    let mut built = 0;
    for i in 0..40 {
        // A new input each time, so each run builds.
        repo.write("app/round.txt", &i.to_string());
        let run = run_within(&repo, &["run"], &[], Duration::from_secs(60));
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        if run.code == 0 {
            built += 1;
        }
        if layout_bytes(&repo.path().join(".hephy/oci"))
            .iter()
            .any(|blob| blob.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()))
        {
            leaked.push(i);
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let swaps = swapper.join().unwrap();
    assert!(leaked.is_empty(), "a host file reached a layer in round {leaked:?} ({swaps} swaps)");
    eprintln!("40 racing builds ({built} built, {swaps} swaps): no host file in any blob");
}

#[test]
fn no_input_makes_a_diagnostic_panic_or_balloon() {
    // A 65,535-character key: the label of the next one starts past the column miette can show.
    let key = "k".repeat(65_535);
    let repo = Repo::new()
        .context("app")
        .file("hephy.yaml", &format!("images:\n  app: {{ context: app, {key}: 1, zzz: 2 }}\n"));
    let check = run_within(&repo, &["check"], &[], Duration::from_secs(60));
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(!check.stderr.contains("panicked"), "{}", check.stderr);
    assert!(check.stderr.len() < 12_000, "{} bytes", check.stderr.len());
    insta::assert_snapshot!("long_key", check.stderr);

    // A 5 MB bad value: the diagnostic shows a window of it, not all of it (several times).
    let value = "x".repeat(5_000_000);
    let repo = Repo::new()
        .context("app")
        .file("hephy.yaml", &format!("platforms: [\"linux/{value}\"]\nimages:\n  app: {{ context: app }}\n"));
    let check = run_within(&repo, &["check"], &[], Duration::from_secs(60));
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.len() < 8_000, "{} bytes", check.stderr.len());
    insta::assert_snapshot!("huge_value", check.stderr);
}

#[test]
fn no_escape_sequence_reaches_the_terminal() {
    let osc = "\u{1b}]0;pwned\u{7}";
    let repo = Repo::new().file("src/plain", "x\n").file(
        "hephy.yaml",
        "tasks:\n  t:\n    run: [sh, -c, \"printf '\\\\033[2J\\\\033]0;owned\\\\007\\\\n'; exit $X\", \"\\e[31m\"]\n    env: { X: \"0\" }\n    inputs: [src]\n",
    );
    let run = run_within(&repo, &["run", "--verbose"], &[], Duration::from_secs(20));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    repo.write(&format!("src/a{osc}b"), "x\n");
    let plan = run_within(&repo, &["plan"], &[], Duration::from_secs(20));
    let explain = run_within(&repo, &["explain", "t"], &[], Duration::from_secs(20));
    repo.write(
        "hephy.yaml",
        &std::fs::read_to_string(repo.path().join("hephy.yaml")).unwrap().replace("\"0\"", "\"3\""),
    );
    let failed = run_within(&repo, &["run", "--verbose"], &[], Duration::from_secs(20));
    assert_eq!(failed.code, 1, "{}{}", failed.stdout, failed.stderr);
    for (what, out) in [("run", &run), ("plan", &plan), ("explain", &explain), ("failed run", &failed)] {
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(!text.contains(['\u{1b}', '\u{7}']), "{what} printed a raw escape sequence:\n{text:?}");
    }
    assert!(plan.stdout.contains("src/a\\u{1b}]0;pwned\\u{7}b"), "{}", plan.stdout);
    assert!(explain.stdout.contains("src/a\\u{1b}]0;pwned\\u{7}b"), "{}", explain.stdout);
    assert!(failed.stdout.contains("\\u{1b}[31m"), "the argv, escaped: {}", failed.stdout);
    assert!(failed.stdout.contains("\\u{1b}[2J"), "the task's output, escaped: {}", failed.stdout);
}

/// A `docker-credential-<name>` script in a folder of its own.
fn helper(name: &str, script: &str) -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    let path = bin.path().join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

#[test]
#[ignore = "needs docker-registry and htpasswd (installed by .ci/run)"]
fn credential_helpers_that_fail_or_hang_say_so_and_leave_nothing_behind() {
    let registry = common::registry::Registry::start_with_login("alice", "wonder-land-7e1b");
    let config = tempfile::tempdir().unwrap();
    let docker_config = config.path().display().to_string();
    std::fs::write(
        config.path().join("config.json"),
        format!("{{\"credHelpers\": {{\"{}\": \"hephytest\"}}}}", registry.address()),
    )
    .unwrap();

    // A helper that fails: its status and how to ask it by hand, not "no login configured",
    // and never what it printed, which may hold a token.
    let token = "ghp_0123456789abcdefTOKEN";
    let bin = helper(
        "hephytest",
        &format!("#!/bin/sh\necho 'keychain is locked; token {token}' >&2\necho '{token}'\nexit 4\n"),
    );
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let repo = Repo::quickstart_pushing_to(&registry.address(), "");
    let run = repo.run_with(&["run"], &[("DOCKER_CONFIG", &docker_config), ("PATH", &path)]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!("the credential helper `docker-credential-hephytest` exited with status 4; its output is not shown, as it may hold a secret: to see what it says, run `printf '%s\\n' '{}' | docker-credential-hephytest get`", registry.address())),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("none is configured"), "{}", run.stdout);
    assert!(!run.stdout.contains(token) && !run.stderr.contains(token), "{}{}", run.stdout, run.stderr);
    let state = std::fs::read(repo.path().join(".hephy/state.db")).unwrap();
    assert!(
        !state.windows(token.len()).any(|w| w == token.as_bytes()),
        "the helper's output is in the state"
    );
    for entry in std::fs::read_dir(repo.path().join(".hephy/logs/1")).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!text.contains(token), "the helper's output is in {}", entry.path().display());
    }

    // A helper that hangs, with a child of its own: stopped at 30 s with its child, asked once
    // per process however many lookups need it, and not again by later ones for a while.
    let marker = tempfile::tempdir().unwrap();
    let child_pid = marker.path().join("child.pid");
    let bin =
        helper("hephytest", &format!("#!/bin/sh\nsleep 600 &\necho $! > {}\nwait\n", child_pid.display()));
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let repo = Repo::quickstart_pushing_to(&registry.address(), "").online();
    let started = Instant::now();
    let plan = run_within(
        &repo,
        &["plan"],
        &[("DOCKER_CONFIG", &docker_config), ("PATH", &path), ("HEPHY_OFFLINE", "0")],
        Duration::from_secs(120),
    );
    let took = started.elapsed();
    let pid = std::fs::read_to_string(&child_pid).unwrap();
    let survived = alive(&pid);
    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    assert!(!survived, "the helper's child outlived it");
    assert!(took < Duration::from_secs(50), "plan took {took:?}: the helper was waited for more than once");
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stderr.contains("did not answer within 30s and was stopped"), "{}", plan.stderr);
    std::fs::remove_file(&child_pid).unwrap();

    // The next plan does not wait: the helper's timeout is remembered in the state folder.
    let started = Instant::now();
    let plan = run_within(
        &repo,
        &["plan"],
        &[("DOCKER_CONFIG", &docker_config), ("PATH", &path), ("HEPHY_OFFLINE", "0")],
        Duration::from_secs(120),
    );
    let took = started.elapsed();
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(took < Duration::from_secs(15), "plan took {took:?}: the hung helper was waited for again");
    assert!(!child_pid.exists(), "the helper was asked again");
    assert!(
        plan.stderr.contains("did not answer within 30s and was stopped in a run ")
            && plan.stderr.contains("(or once `./.hephy/credential-helpers.json` is removed)"),
        "{}",
        plan.stderr
    );

    // A run asks the registry while planning and again for every push: no wait at all.
    let started = Instant::now();
    let run = run_within(
        &repo,
        &["run"],
        &[("DOCKER_CONFIG", &docker_config), ("PATH", &path), ("HEPHY_OFFLINE", "0")],
        Duration::from_secs(300),
    );
    let took = started.elapsed();
    eprintln!("run with a hung helper remembered: {took:?}, exit {}", run.code);
    assert!(!child_pid.exists(), "the helper was asked again");
    assert!(took < Duration::from_secs(50), "run took {took:?}: the helper was waited for");
    assert!(run.stdout.contains("did not answer within 30s and was stopped in a run "), "{}", run.stdout);
}

#[test]
fn a_registry_answering_a_web_page_is_not_believed() {
    // A captive portal (or a proxy serving a web app) in the registry's place: `200` and the
    // same HTML page for every request.
    let portal = common::portal::Portal::start();
    let page = common::registry::sha256(common::portal::PAGE);
    let repo = Repo::quickstart_pushing_to(&portal.address(), "");
    let plan = repo.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("12 nodes: 12 to build, 0 fresh"), "{}", plan.stdout);
    let url = format!("at http://{}/v2/qs/", portal.address());
    assert!(plan.stderr.contains(&url), "the warning names the URL: {}", plan.stderr);
    assert!(plan.stderr.contains("the answer (`text/html`) is not an image manifest"), "{}", plan.stderr);
    assert!(!plan.stderr.contains("expected value"), "{}", plan.stderr);

    // Fresh state: nothing is "cached", nothing is green; pushing says what answered.
    let run = repo.run(&["run"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("cached in the registry"), "{}", run.stdout);
    assert!(run.stdout.contains("0 built, 0 fresh"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&url) && run.stdout.contains("the answer (`text/html`) is not a blob"),
        "{}",
        run.stdout
    );
    let state = std::fs::read(repo.path().join(".hephy/state.db")).unwrap();
    let hex = page.trim_start_matches("sha256:");
    assert!(!state.windows(hex.len()).any(|w| w == hex.as_bytes()), "the page's digest was recorded");

    // A base image pulled through it: the URL and the type, not where JSON reading stopped.
    let pull = Repo::new()
        .online()
        .file("app/Dockerfile", &format!("FROM {}/lib/alpine:3\nCOPY hi /hi\n", portal.address()))
        .file("app/hi", "hi\n")
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n}\n");
    let run = pull.run(&["run"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!("reading the manifest at http://{}/v2/lib/alpine/manifests/3: the answer (`text/html`) is not an image manifest", portal.address())),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("expected value"), "{}", run.stdout);
}

#[test]
fn inputs_reached_through_a_linked_folder_are_hashed_only_while_it_stays_inside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "host\n").unwrap();
    let repo = Repo::new()
        .file("real/lib/a.c", "int a;\n")
        .file("hephy.yaml", "tasks:\n  t: { run: [\"true\"], inputs: [vendor/lib/a.c, out/secret.txt] }\n");
    std::os::unix::fs::symlink("real", repo.path().join("vendor")).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path().join("out")).unwrap();
    let key = |repo: &Repo| {
        let plan = run_within(repo, &["plan", "--format", "json"], &[], Duration::from_secs(20));
        let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
        json["nodes"][0]["key"].as_str().unwrap().to_owned()
    };
    let before = key(&repo);
    repo.write("real/lib/a.c", "int b;\n");
    assert_ne!(key(&repo), before, "a file reached through a linked folder inside is an input");
    let before = key(&repo);
    std::fs::write(outside.path().join("secret.txt"), "changed on the host\n").unwrap();
    assert_eq!(key(&repo), before, "a file outside, reached through a link, is never read");
}

#[test]
fn a_dockerfile_linked_out_of_the_repository_is_refused_and_never_quoted() {
    let outside = tempfile::tempdir().unwrap();
    let shadow = outside.path().join("shadow");
    std::fs::write(&shadow, "root:*:20228:0:99999:7:::SECRET-FROM-THE-HOST\n").unwrap();
    for (target, secret) in [
        (shadow.display().to_string(), "SECRET-FROM-THE-HOST"),
        ("/proc/self/environ".to_owned(), "CI-JOB-TOKEN-1234"),
    ] {
        for builder in ["oci", "buildah"] {
            let repo = Repo::new().file(
                "hephy.kdl",
                &format!("image \"app\" {{\n    context \"app\"\n    builder \"{builder}\"\n    platforms \"linux/amd64\"\n}}\n"),
            );
            std::fs::create_dir_all(repo.path().join("app")).unwrap();
            std::os::unix::fs::symlink(&target, repo.path().join("app/Dockerfile")).unwrap();
            for command in ["check", "plan", "run"] {
                let run = run_within(
                    &repo,
                    &[command],
                    &[("HEPHY_TEST_TOKEN", "CI-JOB-TOKEN-1234")],
                    Duration::from_secs(30),
                );
                let all = format!("{}{}", run.stdout, run.stderr);
                assert_eq!(run.code, 2, "{command} ({builder}, {target}): {all}");
                assert!(all.contains("leads outside the graph's folder"), "{command}: {all}");
                assert!(!all.contains(secret), "`{command}` quoted the linked file ({target}): {all}");
                assert!(!all.contains("20228"), "`{command}` quoted the linked file: {all}");
            }
        }
    }
}

#[test]
fn a_fifo_dockerfile_is_called_what_it_is() {
    let repo = Repo::new()
        .file("app/main.txt", "x\n")
        .file("hephy.yaml", "images:\n  app: { context: app, platforms: [linux/amd64] }\n");
    mkfifo(&repo.path().join("app/Dockerfile"));
    let check = run_within(&repo, &["check"], &[], Duration::from_secs(20));
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("`app/Dockerfile` is a FIFO (named pipe), not a file"), "{}", check.stderr);
    assert!(!check.stderr.contains("does not exist"), "{}", check.stderr);
}

#[test]
fn a_long_dockerfile_is_checked_in_linear_time_and_bounded() {
    let graph =
        "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n    platforms \"linux/amd64\"\n}\n";
    // 40,000 one-line instructions (half a megabyte): refused at the bound, at once.
    let repo = Repo::new()
        .file("hephy.kdl", graph)
        .file("app/Dockerfile", &format!("FROM scratch\n{}", "LABEL some.label=value\n".repeat(40_000)));
    let start = Instant::now();
    let check = run_within(&repo, &["check"], &[], Duration::from_secs(30));
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("has more than 10000"), "{}", check.stderr);
    assert!(check.stderr.contains("line 10001"), "{}", check.stderr);
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    // Just under the bound, every line a problem for the oci builder: a few are shown, quickly.
    let repo = Repo::new()
        .file("hephy.kdl", graph)
        .file("app/Dockerfile", &format!("FROM scratch\n{}", "RUN true\n".repeat(9_999)));
    let start = Instant::now();
    let check = run_within(&repo, &["check"], &[], Duration::from_secs(30));
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert_eq!(check.stderr.matches("does not run commands").count(), 10, "{}", check.stderr);
    assert!(check.stderr.contains("9989 more such problems"), "{}", check.stderr);
    assert!(check.stderr.len() < 40_000, "{} bytes", check.stderr.len());
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}

#[test]
fn a_custom_frontend_is_refused_by_the_oci_builder() {
    let repo = Repo::new()
        .file(
            "hephy.kdl",
            "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n    platforms \"linux/amd64\"\n}\n",
        )
        .file("app/Dockerfile", "# syntax=example.com/my/frontend:1\nFROM scratch\nCOPY a /a\n")
        .file("app/a", "a\n");
    let check = run_within(&repo, &["check"], &[], Duration::from_secs(20));
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(
        check.stderr.contains("`# syntax=example.com/my/frontend:1` names a custom frontend"),
        "{}",
        check.stderr
    );
    assert!(check.stderr.contains("builder \"buildkit\""), "{}", check.stderr);
    // buildah reads the file itself and ignores the line: a warning, the check passes.
    repo.write(
        "hephy.kdl",
        "image \"app\" {\n    context \"app\"\n    builder \"buildah\"\n    platforms \"linux/amd64\"\n}\n",
    );
    let check = run_within(&repo, &["check"], &[], Duration::from_secs(20));
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stderr.contains("asks for the frontend `example.com/my/frontend:1`"), "{}", check.stderr);
    // The standard frontend, any version, is what the reader follows: no word about it.
    repo.write("app/Dockerfile", "# syntax=docker/dockerfile:1.7\nFROM scratch\nCOPY a /a\n");
    let check = run_within(&repo, &["check"], &[], Duration::from_secs(20));
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(!check.stderr.contains("frontend"), "{}", check.stderr);
}
