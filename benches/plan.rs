//! `cargo bench --bench plan`: parse, lower, compile and plan time for synthetic graphs of
//! 10,000 images (KDL and YAML). Prints a table; figures go into notes and the README, never
//! into test assertions. `HEPHY_BENCH_IMAGES=50000` changes the size.

#[path = "synthetic.rs"]
mod synthetic;

use std::time::{Duration, Instant};

use hephy_dsl::{SourceFile, Syntax};

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let value = f();
        best = best.min(start.elapsed());
        last = Some(value);
    }
    (best, last.expect("at least one run"))
}

fn ms(d: Duration) -> String {
    format!("{:>9.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run small then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("HEPHY_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 200 } else { 10_000 });
    let runs = if quick { 1 } else { 5 };
    let dir = tempfile::tempdir().expect("temp dir");
    synthetic::write_contexts(dir.path(), n);
    let graph = synthetic::generate(n, 42);
    println!("hephy plan benchmark: {n} images × 2 platforms, best of {runs}");
    println!(
        "{:<6} {:>12} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "syntax", "parse", "lower", "compile", "plan", "total", "nodes"
    );
    for (syntax, text) in [(Syntax::Kdl, &graph.kdl), (Syntax::Yaml, &graph.yaml)] {
        let name = if syntax == Syntax::Kdl { "hephy.kdl" } else { "hephy.yaml" };
        let source = SourceFile::new(dir.path().join(name), syntax, text.as_str());
        let (parse, _) = best_of(runs, || hephy_dsl::read(&source).expect("synthetic graph reads"));
        let (lower, model) = best_of(runs, || {
            let doc = hephy_dsl::read(&source).expect("reads");
            let start = Instant::now();
            let model = hephy_dsl::lower(doc, &source, dir.path()).expect("synthetic graph is valid");
            (start.elapsed(), model)
        });
        let lower_time = lower.min(model.0);
        let model = model.1;
        let (compile, graph) = best_of(runs, || hephy_engine::compile(&model));
        let (plan, _) = best_of(runs, || hephy_engine::plan(&graph));
        let total = parse + lower_time + compile + plan;
        println!(
            "{:<6} {} {} {} {} {} {:>8}",
            syntax.to_string(),
            ms(parse),
            ms(lower_time),
            ms(compile),
            ms(plan),
            ms(total),
            graph.len()
        );
    }
}
