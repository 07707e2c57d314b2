//! The no-op plan's stamp (`.hephy/plan.stamp`): a plan that finds everything fresh is answered
//! from it next time — and every kind of change still reaches the ordinary plan: a file's
//! content, a new file (also in a folder that was empty), a `.dockerignore` that ignores itself,
//! a deleted task output, a new file deep under a glob, the graph file, a run in between.
//! When only input files' contents changed, the text plan comes from the stamp's memo: it is
//! compared with the full plan, scenario by scenario and over random changes to a random graph.
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
        .filter(|n| n["action"] != "fresh")
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
            "graph.yaml",
            |r| r.write("docs/.dockerignore", ".dockerignore\npages/usage.md\n"),
            &["docs@linux/amd64", "docs@linux/arm64", "docs", "docs:latest"],
        ),
        (
            "the Dockerfile's own ignore file, new",
            quickstart,
            "graph.yaml",
            |r| r.write("docs/Dockerfile.dockerignore", "Dockerfile.dockerignore\npages/usage.md\n"),
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
    assert!(forced["nodes"].as_array().unwrap().iter().any(|n| n["action"] != "fresh"));
    assert!(!repo.path().join(".hephy/plan.stamp").exists());
    assert_eq!(repo.run(&["plan", "-f", "hephy.kdl"]).code, 0);
    assert!(repo.path().join(".hephy/plan.stamp").exists());
    // With the stamp in place, a forced plan still forces.
    let forced = repo.run(&["plan", "--force", "lint", "--format", "json", "-f", "hephy.kdl"]).json();
    assert!(forced["nodes"].as_array().unwrap().iter().any(|n| n["action"] != "fresh"));
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

/// A run that builds an image graph leaves the stamp of the plan after it (when its inputs are
/// out of the racy window): the next plan after an edit to a context file is worked out from
/// the memo (the touched image, its manifest and what is built `from` it), and prints exactly
/// what the full plan prints.
#[test]
fn a_touched_image_graph_after_a_run_is_replanned_from_the_memo_as_in_full() {
    let repo = quickstart();
    std::thread::sleep(Duration::from_millis(2100));
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("12 of 12 nodes to build"), "{}", run.stdout);
    assert!(repo.path().join(".hephy/plan.stamp").is_file(), "a run that built everything leaves a stamp");
    repo.write("base/rootfs/etc/os-release", "ID=changed\n");
    let quick = repo.run_with(&["plan", "-f", "hephy.kdl"], &[("HEPHY_TIMINGS", "1")]);
    assert!(quick.stderr.contains("replanned from the memo"), "{}", quick.stderr);
    let _ = std::fs::remove_file(repo.path().join(".hephy/plan.stamp"));
    let full = repo.run(&["plan", "-f", "hephy.kdl"]);
    assert_eq!((quick.code, &quick.stdout), (full.code, &full.stdout), "as the full plan");
    // Each node's action, by its id (the first two columns of the table).
    let action = |id: &str| {
        full.stdout.lines().find_map(|l| {
            let mut columns = l.split_whitespace();
            let action = columns.next()?;
            (columns.next()? == id).then(|| action.to_owned())
        })
    };
    for id in ["base@linux/amd64", "base", "web@linux/arm64", "web:latest"] {
        assert_ne!(action(id).as_deref(), Some("fresh"), "{id} rebuilds:\n{}", full.stdout);
        assert!(action(id).is_some(), "{id} is in the plan:\n{}", full.stdout);
    }
    assert_eq!(action("docs").as_deref(), Some("fresh"), "{}", full.stdout);
}

/// Saves `path` as many editors do: a new file beside it, renamed over it (its folder's times
/// change, its entries do not).
fn save_by_rename(repo: &Repo, path: &str, text: &str) {
    let temp = format!("{path}.saving");
    repo.write(&temp, text);
    std::fs::rename(repo.path().join(&temp), repo.path().join(path)).unwrap();
}

/// What answered a plan, from the step `HEPHY_TIMINGS` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    /// The stored output: nothing the plan depends on changed.
    Unchanged,
    /// The memo: only input files' contents changed.
    Memo,
    /// The full plan.
    Full,
}

/// After input files' contents change, the text plan is worked out from the stamp's memo. It
/// must print exactly what the full plan prints; whatever the memo cannot answer (a changed
/// output, Dockerfile or `.dockerignore`, a new file, the same bytes written again) must be
/// answered otherwise, and correctly (a Dockerfile the check now rejects: exit 2 either way).
#[test]
fn changed_inputs_are_replanned_from_the_memo_exactly_as_in_full() {
    type Scenario = (&'static str, fn() -> Repo, &'static str, fn(&Repo), Answered);
    let scenarios: Vec<Scenario> = vec![
        (
            "a file at the root of the graph",
            quickstart,
            "hephy.kdl",
            |r| r.write("base/rootfs/etc/os-release", "ID=changed\n"),
            Answered::Memo,
        ),
        (
            "files of two images",
            quickstart,
            "graph.yaml",
            |r| {
                r.write("web/site/index.html", "<p>changed</p>\n");
                r.write("docs/pages/usage.md", "changed\n");
            },
            Answered::Memo,
        ),
        (
            "the same bytes written again",
            quickstart,
            "hephy.kdl",
            |r| {
                let text = std::fs::read_to_string(r.path().join("web/site/style.css")).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                r.write("web/site/style.css", &text);
            },
            Answered::Unchanged,
        ),
        (
            "a Dockerfile (checked and scanned for base images, not only hashed)",
            quickstart,
            "hephy.kdl",
            |r| {
                let text = std::fs::read_to_string(r.path().join("web/Dockerfile")).unwrap();
                r.write("web/Dockerfile", &format!("{text}RUN true\n"));
            },
            Answered::Full,
        ),
        (
            "a .dockerignore (it shapes the context)",
            quickstart,
            "hephy.kdl",
            |r| {
                let text = std::fs::read_to_string(r.path().join("web/.dockerignore")).unwrap();
                r.write("web/.dockerignore", &format!("{text}site/style.css\n"));
            },
            Answered::Full,
        ),
        (
            "a file saved by renaming a new one over it",
            quickstart,
            "hephy.kdl",
            |r| save_by_rename(r, "web/site/index.html", "<p>saved by rename</p>\n"),
            Answered::Memo,
        ),
        (
            "the same bytes saved by rename",
            quickstart,
            "hephy.kdl",
            |r| {
                let text = std::fs::read_to_string(r.path().join("web/site/style.css")).unwrap();
                save_by_rename(r, "web/site/style.css", &text);
            },
            Answered::Unchanged,
        ),
        ("a task's input", tasks, "hephy.kdl", |r| r.write("src/hello.txt", "changed\n"), Answered::Memo),
        ("a task's output", tasks, "hephy.kdl", |r| r.write("dist/app.tar", "not a tar\n"), Answered::Full),
        ("a new file", tasks, "hephy.kdl", |r| r.write("src/new.txt", "new\n"), Answered::Full),
    ];
    std::thread::scope(|scope| {
        for (name, make, file, change, expected) in scenarios {
            scope.spawn(move || {
                let repo = make();
                stamped(&repo, file);
                let unchanged = repo.run(&["plan", "-f", file]).stdout;
                change(&repo);
                let quick = repo.run_with(&["plan", "-f", file], &[("HEPHY_TIMINGS", "1")]);
                let answered = if quick.stderr.contains("replanned from the memo") {
                    Answered::Memo
                } else if quick.stderr.contains("unchanged since the last plan") {
                    Answered::Unchanged
                } else {
                    Answered::Full
                };
                assert_eq!(answered, expected, "{name}: {}", quick.stderr);
                // The full plan, with no stamp to answer from.
                let _ = std::fs::remove_file(repo.path().join(".hephy/plan.stamp"));
                let full = repo.run(&["plan", "-f", file]);
                assert_eq!(
                    (quick.code, &quick.stdout),
                    (full.code, &full.stdout),
                    "{name}: as the full plan"
                );
                if expected == Answered::Unchanged {
                    assert_eq!(quick.stdout, unchanged, "{name}");
                } else if full.code == 0 {
                    assert!(full.stdout.contains("build "), "{name}: something builds\n{}", full.stdout);
                }
            });
        }
    });
}

/// A pseudo-random graph of tasks sharing input files, changed round after round: each time the
/// memo's plan must be the full plan (made in a copy of the repository without the stamp).
#[test]
fn random_changes_are_replanned_from_the_memo_exactly_as_in_full() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % n as u64).unwrap()
    };
    let (tasks, files) = (40, 16);
    let repo = Repo::new();
    let mut graph = String::from("tasks:\n");
    for t in 0..tasks {
        let mut inputs: Vec<String> = (0..1 + next(3)).map(|_| format!("in/f{}.txt", next(files))).collect();
        inputs.sort();
        inputs.dedup();
        graph.push_str(&format!("  t{t}: {{ run: [\"true\"], inputs: [{}]", inputs.join(", ")));
        if t > 0 {
            let mut after: Vec<String> = (0..next(3)).map(|_| format!("t{}", next(t))).collect();
            after.sort();
            after.dedup();
            if !after.is_empty() {
                graph.push_str(&format!(", after: [{}]", after.join(", ")));
            }
        }
        graph.push_str(" }\n");
    }
    repo.write("hephy.yaml", &graph);
    for f in 0..files {
        repo.write(&format!("in/f{f}.txt"), &format!("file {f}\n"));
    }
    stamped(&repo, "hephy.yaml");
    for round in 0..6 {
        for _ in 0..1 + next(3) {
            let f = next(files);
            // Now and then a file gets its first content back: no longer a change.
            let text =
                if next(4) == 0 { format!("file {f}\n") } else { format!("file {f}, round {round}\n") };
            repo.write(&format!("in/f{f}.txt"), &text);
        }
        let quick = repo.run_with(&["plan", "-f", "hephy.yaml"], &[("HEPHY_TIMINGS", "1")]);
        assert!(
            quick.stderr.contains("from the memo") || quick.stderr.contains("unchanged since"),
            "round {round}: {}",
            quick.stderr
        );
        let copy = Repo::new();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", repo.path().display()))
            .arg(copy.path())
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::remove_file(copy.path().join(".hephy/plan.stamp")).unwrap();
        let full = copy.run(&["plan", "-f", "hephy.yaml"]);
        assert_eq!(quick.stdout, full.stdout, "round {round}");
    }
}
