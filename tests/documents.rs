//! The graph file's document as read, kept in the state folder (`.hephy/documents/`) and reused
//! while the file is unchanged: each command that loads the graph says in `HEPHY_TIMINGS` how
//! it had the document (`parse (reused)`, or why it parsed). An edited file plans its new
//! content; a damaged entry is parsed over and replaced; an entry that is a symbolic link is
//! neither read nor written through, and the state folder holding it is refused as before.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::path::PathBuf;

use common::{Repo, Run};

const TIMINGS: [(&str, &str); 1] = [("HEPHY_TIMINGS", "1")];

/// How the command's load had the document, from its `HEPHY_TIMINGS` lines.
fn parse_lap(run: &Run) -> String {
    let laps: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("timing: "))
        .filter(|l| l.starts_with("parse"))
        .map(|l| l.rsplit_once(char::is_whitespace).map_or(l, |(what, _)| what).trim_end())
        .map(|l| l.rsplit_once(char::is_whitespace).map_or(l, |(what, _)| what).trim_end())
        .collect();
    assert_eq!(laps.len(), 1, "one parse step:\n{}", run.stderr);
    laps[0].to_owned()
}

/// The ids of the plan's nodes.
fn planned(run: &Run) -> Vec<String> {
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    json["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect()
}

/// The one entry in `.hephy/documents/`.
fn entry(repo: &Repo) -> PathBuf {
    let entries: Vec<PathBuf> =
        std::fs::read_dir(repo.path().join(".hephy/documents")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "one entry per graph file: {entries:?}");
    entries.into_iter().next().unwrap()
}

/// Each syntax: a plan keeps the document, and the commands after it that load the graph
/// (`graph`, `plan`, `explain`, `run`) reuse it; an edit is planned, never a stale document.
#[test]
fn an_unchanged_graph_file_is_parsed_once() {
    for file in ["hephy.kdl", "graph.yaml"] {
        let repo = Repo::example("tasks");
        let plan = |args: &[&str]| repo.run_with(&[&["plan", "-f", file], args].concat(), &TIMINGS);
        let first = plan(&["--format", "json"]);
        assert_eq!(parse_lap(&first), "parse (no entry)", "{file}");
        assert_eq!(planned(&first), ["lint", "test", "package"], "{file}");
        for args in [
            &["graph", "-f", file, "--format", "json"][..],
            &["plan", "-f", file, "--format", "json"],
            &["explain", "package", "-f", file],
        ] {
            let again = repo.run_with(args, &TIMINGS);
            assert_eq!(again.code, 0, "{file} {args:?}: {}", again.stderr);
            assert_eq!(parse_lap(&again), "parse (reused)", "{file} {args:?}");
        }
        assert_eq!(planned(&plan(&["--format", "json"])), planned(&first), "{file}: the same plan");
        let run = repo.run_with(&["run", "-f", file], &TIMINGS);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        assert_eq!(parse_lap(&run), "parse (reused)", "{file}");

        // An edit: the new content is planned, and its document kept in place of the old.
        let text = std::fs::read_to_string(repo.path().join(file)).unwrap();
        let added = if file.ends_with(".kdl") {
            format!("{text}\ntask \"later\" {{\n    run \"true\"\n}}\n")
        } else {
            text.replace("tasks:\n", "tasks:\n  later:\n    run: [\"true\"]\n")
        };
        assert_ne!(added, text, "{file}: edited");
        repo.write(file, &added);
        let edited = plan(&["--format", "json"]);
        assert_eq!(parse_lap(&edited), "parse (stale)", "{file}");
        assert!(planned(&edited).contains(&"later".to_owned()), "{file}: {}", edited.stdout);
        let after = plan(&["--format", "json"]);
        assert_eq!(parse_lap(&after), "parse (reused)", "{file}");
        assert_eq!(planned(&after), planned(&edited), "{file}");
        entry(&repo);
        // Back to the first text: stale again (one entry per file), and planned as at first.
        repo.write(file, &text);
        let back = plan(&["--format", "json"]);
        assert_eq!(parse_lap(&back), "parse (stale)", "{file}");
        assert!(!planned(&back).contains(&"later".to_owned()), "{file}: {}", back.stdout);
    }
}

/// A damaged entry is a miss: the file is parsed, the plan is the file's, and the entry is
/// written anew.
#[test]
fn a_damaged_entry_is_parsed_over_and_replaced() {
    let repo = Repo::example("tasks");
    let plan = || repo.run_with(&["plan", "--format", "json"], &TIMINGS);
    let first = plan();
    let entry = entry(&repo);
    let good = std::fs::read(&entry).unwrap();
    for damaged in [b"garbage".to_vec(), good[..good.len() / 2].to_vec(), Vec::new()] {
        std::fs::write(&entry, &damaged).unwrap();
        let again = plan();
        assert_eq!(parse_lap(&again), "parse (bad entry)");
        assert_eq!(planned(&again), planned(&first));
        assert_eq!(std::fs::read(&entry).unwrap(), good, "the entry is written anew");
        assert_eq!(parse_lap(&plan()), "parse (reused)");
    }
}

/// An entry replaced by a symbolic link (to a copy of the good entry, outside the state
/// folder) is not read, and not written through; the state folder holding a link is refused,
/// as it always was.
#[test]
fn an_entry_that_is_a_link_is_not_followed() {
    let repo = Repo::example("tasks");
    repo.run(&["plan"]);
    let entry = entry(&repo);
    let outside = repo.path().join("elsewhere");
    std::fs::copy(&entry, &outside).unwrap();
    std::fs::write(repo.path().join("garbage"), "garbage").unwrap();
    for target in [&outside, &repo.path().join("garbage")] {
        let before = std::fs::read(target).unwrap();
        std::fs::remove_file(&entry).unwrap();
        std::os::unix::fs::symlink(target, &entry).unwrap();
        let graph = repo.run_with(&["graph", "--format", "json"], &TIMINGS);
        assert_eq!(parse_lap(&graph), "parse (bad entry)", "{}", graph.stderr);
        assert_eq!(graph.code, 2, "{}", graph.stderr);
        assert!(graph.stderr.contains("is a symbolic link"), "{}", graph.stderr);
        assert_eq!(std::fs::read(target).unwrap(), before, "nothing written through the link");
        assert!(std::fs::symlink_metadata(&entry).unwrap().file_type().is_symlink());
    }
    // Without the link, the entry is kept again and reused.
    std::fs::remove_file(&entry).unwrap();
    assert_eq!(parse_lap(&repo.run_with(&["plan"], &TIMINGS)), "parse (no entry)");
    assert_eq!(parse_lap(&repo.run_with(&["graph"], &TIMINGS)), "parse (reused)");
}

/// An entry sealed with another secret (what a repository commits into its state folder, or
/// another user's cache made) is not reused: the file is parsed and its own entry replaces it.
/// The secret is the user's, in the cache folder (`XDG_CACHE_HOME`), made once.
#[test]
fn an_entry_sealed_elsewhere_is_not_reused() {
    let repo = Repo::example("tasks");
    let theirs = tempfile::tempdir().unwrap();
    let mine = tempfile::tempdir().unwrap();
    let with = |cache: &std::path::Path| {
        let cache = cache.to_str().unwrap().to_owned();
        repo.run_with(&["plan", "--format", "json"], &[TIMINGS[0], ("XDG_CACHE_HOME", cache.as_str())])
    };
    let first = with(theirs.path());
    assert_eq!(parse_lap(&first), "parse (no entry)");
    assert_eq!(parse_lap(&with(theirs.path())), "parse (reused)", "their own entry is theirs to reuse");
    let sealed_by_them = std::fs::read(entry(&repo)).unwrap();
    let again = with(mine.path());
    assert_eq!(parse_lap(&again), "parse (bad entry)", "{}", again.stderr);
    assert_eq!(planned(&again), planned(&first));
    assert_ne!(std::fs::read(entry(&repo)).unwrap(), sealed_by_them, "replaced by one of mine");
    assert_eq!(parse_lap(&with(mine.path())), "parse (reused)");
    assert_eq!(std::fs::metadata(mine.path().join("hephy/document.key")).unwrap().len(), 32);
}
