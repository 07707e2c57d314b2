//! The bad-input corpus: every graph under `tests/bad/` (malformed or hostile, in both
//! syntaxes) is rejected by `hephy check` with exit 2 and diagnostics — pointing into the file
//! wherever the problem has a place — and never a panic. Each answer is an insta snapshot.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Files whose problem has no place in them to point at.
const NO_POSITION: &[&str] = &["empty.kdl", "empty.yaml", "only_comments.kdl", "only_comments.yaml"];

#[test]
fn every_bad_graph_is_rejected_with_a_diagnostic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".kdl") || name.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 120, "the corpus has {} graphs", files.len());
    let mut slowest = (Duration::ZERO, String::new());
    for file in &files {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_hephy"))
            .args(["check", "-f", file])
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env("HEPHY_OFFLINE", "1")
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        let took = started.elapsed();
        if took > slowest.0 {
            slowest = (took, file.clone());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{file} must fail with exit 2:\n{stderr}");
        assert!(output.stdout.is_empty(), "{file}: nothing on stdout");
        assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{file}:\n{stderr}");
        assert!(stderr.contains("hephy::"), "{file} has no diagnostic code:\n{stderr}");
        if !NO_POSITION.contains(&file.as_str()) {
            assert!(
                stderr.contains(&format!("╭─[{file}:")),
                "{file}: the diagnostic points at no place:\n{stderr}"
            );
        }
        // A hang guard, not a benchmark: every file takes milliseconds.
        assert!(took < Duration::from_secs(10), "{file} took {took:?}");
        insta::assert_snapshot!(format!("bad_{}", file.replace('.', "_")), stderr);
    }
    eprintln!("{} bad graphs rejected; slowest {} in {:?}", files.len(), slowest.1, slowest.0);
}
