//! `cargo bench --bench lang`: the 200-image repository of `tests/fixtures/lang-200`, written
//! with variables, templates and matrices (`hephy.kdl`, `hephy.yaml`) against the same graph
//! written out by hand (`expanded.kdl`): the goal is a plan within 1.2× the expanded form's.
//!
//! Two measures, best of N each (this machine is noisy; the ratio is what counts): loading in
//! process (read → expand → lower: where expansion costs), and a whole `hephy plan --format
//! json` run of the binary (parse, checks, compile, hashing, plan; offline, own state folder).
//! Figures go into notes and the README, never into test assertions.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hephy_dsl::{SourceFile, Syntax};

const FILES: [(&str, Syntax); 3] =
    [("expanded.kdl", Syntax::Kdl), ("hephy.kdl", Syntax::Kdl), ("hephy.yaml", Syntax::Yaml)];

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed());
    }
    best
}

fn ms(d: Duration) -> String {
    format!("{:>8.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 2 } else { 30 };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lang-200");
    println!("\n## the 200-image repository: compact forms against the expanded one, best of {runs}");
    println!("{:<13} {:>6} {:>11} {:>8} {:>11} {:>8}", "file", "lines", "load", "ratio", "plan", "ratio");
    let mut base: Option<(Duration, Duration)> = None;
    for (name, syntax) in FILES {
        let path = fixture.join(name);
        let text = std::fs::read_to_string(&path).expect("read the fixture");
        let source = SourceFile::new(path.clone(), syntax, text.as_str());
        let load = best_of(runs, || {
            let doc = hephy_dsl::read(&source).expect("reads");
            hephy_dsl::lower(doc, &source, &fixture).expect("valid");
        });
        let state = tempfile::tempdir().expect("temp dir");
        let plan = || {
            let status = Command::new(env!("CARGO_BIN_EXE_hephy"))
                .args(["plan", "--format", "json", "-f"])
                .arg(&path)
                .arg("--state")
                .arg(state.path())
                .env("HEPHY_OFFLINE", "1")
                .stdout(Stdio::null())
                .status();
            assert!(status.is_ok_and(|s| s.success()), "hephy plan -f {name} failed");
        };
        plan();
        let plan = best_of(runs, plan);
        let (load_base, plan_base) = *base.get_or_insert((load, plan));
        println!(
            "{:<13} {:>6} {} {:>7.2}× {} {:>7.2}×",
            name,
            text.lines().count(),
            ms(load),
            load.as_secs_f64() / load_base.as_secs_f64(),
            ms(plan),
            plan.as_secs_f64() / plan_base.as_secs_f64()
        );
    }
}
