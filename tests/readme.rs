//! The README works as written: its commands, run against a copy of the checkout's examples,
//! do and print what it says.

mod common;

use std::path::Path;
use std::process::Command;

use common::Repo;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md")
}

/// A copy of the checkout's `examples/` in a temporary folder, as a fresh clone has them.
fn checkout() -> Repo {
    let repo = Repo::new();
    std::fs::create_dir_all(repo.path().join("examples")).expect("examples folder");
    for example in ["quickstart", "tasks", "kaniko-builder"] {
        let copy = Repo::example(example);
        let status = Command::new("cp")
            .arg("-a")
            .arg(copy.path())
            .arg(repo.path().join("examples").join(example))
            .status()
            .expect("cp");
        assert!(status.success());
    }
    repo
}

/// Runs a README shell line (`$ …`) with `hephy` on `PATH`, in `dir`.
fn shell(dir: &Path, line: &str) -> (i32, String) {
    let bin = assert_cmd::cargo::cargo_bin("hephy");
    let path = format!(
        "{}:{}",
        bin.parent().expect("bin folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .env_remove("COLUMNS")
        .output()
        .expect("sh");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn the_quickstart_command_builds_where_the_readme_says_and_a_second_run_builds_nothing() {
    let text = readme();
    let step = text
        .lines()
        .find(|l| l.starts_with("cargo fetch && cargo run --release -- "))
        .expect("the README's step 1");
    let args = step.split("cargo run --release -- ").nth(1).expect("hephy's arguments");
    let repo = checkout();
    let (code, out) = shell(repo.path(), &format!("hephy {args}"));
    assert_eq!(code, 0, "{out}");
    // The README says the images are in this layout, and names an image in it.
    assert!(text.contains("an OCI image layout in `examples/quickstart/.hephy/oci`"));
    let index = repo.path().join("examples/quickstart/.hephy/oci/index.json");
    let index = std::fs::read_to_string(index).expect("the layout the README names");
    assert!(index.contains("\"web:latest\""), "{index}");
    let (code, out) = shell(repo.path(), &format!("hephy {args} --format json"));
    assert_eq!(code, 0);
    assert!(out.contains("\"built\": 0"), "{out}");
    // One graph per example folder: every command works there without `-f`.
    let (code, out) = shell(&repo.path().join("examples/quickstart"), "hephy log");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("run 2"), "{out}");
}

#[test]
fn the_explain_example_prints_what_the_readme_shows() {
    let text = readme();
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("$ cd examples/tasks"))
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(block.len() >= 3, "the README's explain example");
    let repo = checkout();
    let mut dir = repo.path().to_path_buf();
    let mut expected = String::new();
    let mut got = String::new();
    for line in &block {
        match line.strip_prefix("$ ") {
            Some(command) => {
                let command = command.split("  #").next().unwrap_or(command).trim();
                let command = match command.strip_prefix("cd examples/tasks && ") {
                    Some(rest) => {
                        dir = dir.join("examples/tasks");
                        rest
                    }
                    None => command,
                };
                let (code, out) = shell(&dir, command);
                assert_eq!(code, 0, "{command}: {out}");
                if command.contains("explain") {
                    got.push_str(&out);
                }
            }
            None => {
                expected.push_str(line);
                expected.push('\n');
            }
        }
    }
    assert_eq!(got, expected);
}
