//! The no-op plan's stamp (`.hephy/plan.stamp`): a plan that finds everything fresh is answered
//! from it next time — and every kind of change still reaches the ordinary plan: a file's
//! content, a new file (also in a folder that was empty), a `.dockerignore` that ignores itself,
//! a deleted task output, a new file deep under a glob, the graph file, a run in between.
//! Scenarios run side by side: each waits out the two-second racy window once.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::time::Duration;

use common::Repo;

fn building(repo: &Repo, file: &str) -> Vec<String> {
    let plan = repo.run(&["plan", "--format", "json", "-f", file]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let json = plan.json();
    json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["action"] == "build")
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Builds everything, waits out the racy window, and plans once more to leave a stamp.
fn stamped(repo: &Repo, file: &str) {
    let run = repo.run(&["run", "-f", file]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    std::thread::sleep(Duration::from_millis(2100));
    let slow = repo.run(&["plan", "-f", file]);
    assert!(repo.path().join(".hephy/plan.stamp").is_file(), "an all-fresh plan leaves a stamp");
    let fast = repo.run(&["plan", "-f", file]);
    assert_eq!(slow.stdout, fast.stdout, "the stamp answers exactly what the plan said");
    let json_slow = repo.run(&["plan", "--format", "json", "-f", file]).stdout;
    assert_eq!(repo.run(&["plan", "--format", "json", "-f", file]).stdout, json_slow);
    assert!(building(repo, file).is_empty());
}

fn quickstart() -> Repo {
    let repo = Repo::example("quickstart");
    // Shapes the stamp must watch: a folder that is empty now, a .dockerignore that ignores
    // itself.
    std::fs::create_dir_all(repo.path().join("web/site/later")).unwrap();
    repo.write("docs/.dockerignore", ".dockerignore\n");
    repo
}

fn tasks() -> Repo {
    Repo::example("tasks")
}

#[test]
fn every_change_reaches_the_ordinary_plan() {
    type Scenario = (&'static str, fn() -> Repo, &'static str, fn(&Repo), &'static [&'static str]);
    let scenarios: Vec<Scenario> = vec![
        (
            "content",
            quickstart,
            "hephy.kdl",
            |r| r.write("base/rootfs/etc/os-release", "ID=changed\n"),
            &[
                "base@linux/amd64",
                "base@linux/arm64",
                "base",
                "base:latest",
                "web@linux/amd64",
                "web@linux/arm64",
                "web",
                "web:latest",
            ],
        ),
        (
            "new file",
            quickstart,
            "hephy.kdl",
            |r| r.write("web/site/new.html", "new\n"),
            &["web@linux/amd64", "web@linux/arm64", "web", "web:latest"],
        ),
        (
            "new file in an empty folder",
            quickstart,
            "hephy.kdl",
            |r| r.write("web/site/later/x.html", "x\n"),
            &["web@linux/amd64", "web@linux/arm64", "web", "web:latest"],
        ),
        (
            "a self-ignoring .dockerignore",
            quickstart,
            "hephy.yaml",
            |r| r.write("docs/.dockerignore", ".dockerignore\npages/usage.md\n"),
            &["docs@linux/amd64", "docs@linux/arm64", "docs", "docs:latest"],
        ),
        (
            "the graph file",
            quickstart,
            "hephy.kdl",
            |r| {
                let graph = std::fs::read_to_string(r.path().join("hephy.kdl")).unwrap();
                r.write(
                    "hephy.kdl",
                    &graph.replace(
                        "image \"docs\" {\n    context \"docs\"\n    tags \"latest\"",
                        "image \"docs\" {\n    context \"docs\"\n    tags \"latest\" \"v2\"",
                    ),
                );
            },
            &["docs:v2"],
        ),
        (
            "a deleted output",
            tasks,
            "hephy.kdl",
            |r| std::fs::remove_file(r.path().join("dist/app.tar")).unwrap(),
            &["package"],
        ),
        (
            "a new file deep under a glob",
            tasks,
            "hephy.kdl",
            |r| r.write("src/deep/er/file.txt", "x\n"),
            &["package", "test"],
        ),
        (
            "a run in between",
            tasks,
            "hephy.kdl",
            |r| {
                r.write("src/hello.txt", "changed\n");
                assert_eq!(r.run(&["run", "-f", "hephy.kdl"]).code, 0);
                r.write("src/hello.txt", "changed again\n");
            },
            &["package", "test"],
        ),
    ];
    std::thread::scope(|scope| {
        for (name, make, file, change, expected) in scenarios {
            scope.spawn(move || {
                let repo = make();
                stamped(&repo, file);
                change(&repo);
                let mut got = building(&repo, file);
                got.sort();
                let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
                expected.sort();
                assert_eq!(got, expected, "{name}");
            });
        }
    });
}

#[test]
fn selections_and_stale_plans_leave_no_stamp() {
    let repo = tasks();
    std::thread::sleep(Duration::from_millis(2100));
    // Nothing built yet: nothing to stamp.
    assert_eq!(repo.run(&["plan", "-f", "hephy.kdl"]).code, 0);
    assert!(!repo.path().join(".hephy/plan.stamp").exists());
    assert_eq!(repo.run(&["run", "-f", "hephy.kdl"]).code, 0);
    std::thread::sleep(Duration::from_millis(2100));
    // A forced plan is not the plain plan.
    let forced = repo.run(&["plan", "--force", "lint", "--format", "json", "-f", "hephy.kdl"]).json();
    assert!(forced["nodes"].as_array().unwrap().iter().any(|n| n["action"] == "build"));
    assert!(!repo.path().join(".hephy/plan.stamp").exists());
    assert_eq!(repo.run(&["plan", "-f", "hephy.kdl"]).code, 0);
    assert!(repo.path().join(".hephy/plan.stamp").exists());
    // With the stamp in place, a forced plan still forces.
    let forced = repo.run(&["plan", "--force", "lint", "--format", "json", "-f", "hephy.kdl"]).json();
    assert!(forced["nodes"].as_array().unwrap().iter().any(|n| n["action"] == "build"));
}

#[test]
fn a_run_with_nothing_to_do_is_answered_from_the_stamp_and_keeps_it() {
    let repo = Repo::example("quickstart");
    stamped(&repo, "hephy.kdl");
    let fast = [("HEPHY_TIMINGS", "1")];
    // The plan was answered from the stamp…
    let plan = repo.run_with(&["plan", "-f", "hephy.kdl"], &fast);
    assert!(plan.stderr.contains("unchanged since the last plan"), "{}", plan.stderr);
    // …and so is a run: recorded, all fresh, saying where the images are.
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("0 of 12 nodes to build"), "{}", run.stdout);
    assert!(run.stdout.contains("oci:.hephy/oci:web"), "{}", run.stdout);
    let json = repo.run(&["run", "--format", "json", "-f", "hephy.kdl"]).json();
    assert_eq!(json["built"], 0);
    assert_eq!(json["fresh"], 12);
    assert_eq!(json["results"]["web@linux/arm64"], "fresh");
    let log = repo.run(&["log", "--format", "json", "-f", "hephy.kdl"]).json();
    assert!(log.as_array().unwrap().len() >= 3, "{log}");
    // Runs that built nothing keep the stamp: the next plan is still answered from it.
    let plan = repo.run_with(&["plan", "-f", "hephy.kdl"], &fast);
    assert!(plan.stderr.contains("unchanged since the last plan"), "{}", plan.stderr);
    // A change is built, by the ordinary run.
    repo.write("web/site/index.html", "<h1>changed</h1>\n");
    let run = repo.run(&["run", "--format", "json", "-f", "hephy.kdl"]).json();
    assert_eq!(run["results"]["web@linux/amd64"], "built");
    assert_eq!(run["results"]["base@linux/amd64"], "fresh");
}
