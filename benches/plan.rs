//! `cargo bench --bench plan`: hephy's performance goals, each measured side by side with its
//! peer in one run (this machine is noisy; ratios are what we compare). Figures go into notes
//! and the README, never into test assertions. Each goal's line prints hephy, its peer, the
//! ratio and the goal.
//!
//! 1. `stages`: parse, lower, compile and plan time for a synthetic graph of N images;
//! 2. `hash`: cold hashing vs `find | xargs -P2 b3sum` on 20,000 × 50 KiB and 100,000 × 2 KiB files;
//! 3. `noop`: a no-op `hephy plan` of N tasks naming their two files vs `ninja -n` on N edges of
//!    the same shape, and `hephy plan` after touching one file near the root;
//! 4. `image`: `hephy plan` of a built graph of M images × 2 platforms (3·M nodes; built-in `oci`
//!    builder, `FROM scratch` or an earlier image + `COPY`) after one leaf file changed vs
//!    `ninja -n` on 3·M edges after touching one input (goal ≤ 2.0×), both after a plain plan
//!    and after a `hephy run` that built the previous change; and the same graph planned in full
//!    (the stamp removed), its document as read reused from the state folder or parsed;
//! 5. `globs`: a no-op `hephy plan` of N tasks with globbed inputs (`inputs "imgI/**"`), as
//!    text (goal ≤ 0.5×) and as `--format json` (goal ≤ 0.5×), vs `ninja -n` on N edges;
//! 6. `million`: in-memory lowering and planning overhead (parse excluded) for 1,000,000 nodes.
//!
//! The hephy side of 3–5 is the real binary (`target/release/hephy` under `cargo bench`) run as
//! a process, as ninja is; hephy and ninja alternate, best of R each. With
//! `HEPHY_BENCH_BASELINE=EXE` (another build, such as main's, copied out of `target/`),
//! sections 4 and 5 also time that binary in the same run, alternating, on a copy of the graph:
//! before and after side by side.
//!
//! `HEPHY_BENCH_IMAGES` (default 10,000) sets N, `HEPHY_BENCH_IMAGE_GRAPH` (default 1,000) M;
//! `HEPHY_BENCH_ONLY=stages,hash,noop,image,globs,million` picks sections
//! (`HEPHY_BENCH_MILLION_NODES` resizes the last); `HEPHY_BENCH_RUNS` sets R (default 5). b3sum
//! and ninja come from Debian (`apt-get install b3sum ninja-build`); a section whose peer is
//! missing says so and measures hephy alone.

#[path = "synthetic.rs"]
mod synthetic;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hephy_dsl::{SourceFile, Syntax};
use hephy_engine::{Exclusions, PlanOptions, Snapshot, StatCache};

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
    format!("{:>8.1} ms", d.as_secs_f64() * 1000.0)
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn shell(dir: &Path, script: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new("sh").args(["-c", script]).current_dir(dir).stdout(Stdio::null()).status();
    assert!(status.is_ok_and(|s| s.success()), "`{script}` failed");
    start.elapsed()
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = env_usize("HEPHY_BENCH_IMAGES").unwrap_or(if quick { 200 } else { 10_000 });
    let m = env_usize("HEPHY_BENCH_IMAGE_GRAPH").unwrap_or(if quick { 20 } else { 1_000 });
    let only = std::env::var("HEPHY_BENCH_ONLY")
        .unwrap_or_else(|_| "stages,hash,noop,image,globs,million".to_owned());
    let runs = env_usize("HEPHY_BENCH_RUNS").unwrap_or(if quick { 1 } else { 5 }).max(1);
    if only.contains("stages") {
        stages(n, runs);
    }
    if only.contains("hash") && !quick {
        hashing(runs);
    }
    if only.contains("noop") {
        noop(n, runs);
    }
    if only.contains("image") {
        image(m, runs);
    }
    if only.contains("globs") {
        globs(n, runs);
    }
    if only.contains("million") && !quick {
        million();
    }
}

fn stages(n: usize, runs: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    synthetic::write_contexts(dir.path(), n);
    let graph = synthetic::generate(n, 42);
    println!("\n## stages: {n} images × 2 platforms, best of {runs}");
    println!(
        "{:<6} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8}",
        "syntax", "parse", "lower", "compile", "hash", "plan", "total", "nodes"
    );
    for (syntax, text) in [(Syntax::Kdl, &graph.kdl), (Syntax::Yaml, &graph.yaml)] {
        let name = if syntax == Syntax::Kdl { "hephy.kdl" } else { "hephy.yaml" };
        let source = SourceFile::new(dir.path().join(name), syntax, text.as_str());
        let (parse, _) = best_of(runs, || hephy_dsl::read(&source).expect("synthetic graph reads"));
        let mut lower = Duration::MAX;
        let mut model = None;
        for _ in 0..runs {
            let doc = hephy_dsl::read(&source).expect("reads");
            let start = Instant::now();
            model = Some(hephy_dsl::lower(doc, &source, dir.path()).expect("synthetic graph is valid"));
            lower = lower.min(start.elapsed());
        }
        let model = model.expect("lowered");
        let (compile, graph) = best_of(runs, || hephy_engine::compile(&model));
        let (hash, inputs) = best_of(runs, || cold_inputs(&model, &graph));
        let (plan, _) = best_of(runs, || {
            hephy_engine::plan(&graph, &inputs, &Snapshot::default(), &PlanOptions::default())
        });
        let total = parse + lower + compile + hash + plan;
        println!(
            "{:<6} {} {} {} {} {} {} {:>8}",
            syntax.to_string(),
            ms(parse),
            ms(lower),
            ms(compile),
            ms(hash),
            ms(plan),
            ms(total),
            graph.len()
        );
    }
    println!("(hash: cold, no stat cache: every context file read once)");
}

fn write_tree(root: &Path, files: usize, size: usize) {
    let mut content = vec![0u8; size];
    for i in 0..files {
        let dir = root.join(format!("d{}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        for (j, b) in content.iter_mut().enumerate().take(64) {
            *b = u8::try_from((i * 31 + j) % 251).unwrap_or(0);
        }
        std::fs::write(dir.join(format!("f{i}")), &content).expect("write");
    }
}

fn hashing(runs: usize) {
    println!("\n## cold hashing vs `find | xargs -0 -P2 -n2000 b3sum --num-threads 1`, best of {runs}");
    let b3sum = have("b3sum");
    for (files, size) in [(20_000usize, 50 * 1024usize), (100_000, 2 * 1024)] {
        let dir = tempfile::tempdir().expect("temp dir");
        write_tree(dir.path(), files, size);
        let paths: BTreeSet<String> = (0..files).map(|i| format!("d{}/f{i}", i / 1000)).collect();
        let bytes = (files * size) as f64;
        let peer = b3sum.then(|| {
            let script = "find . -type f -print0 | xargs -0 -P2 -n2000 b3sum --num-threads 1 > /dev/null";
            shell(dir.path(), script);
            best_of(runs, || shell(dir.path(), script)).0
        });
        let (ours, hashed) = best_of(runs, || hephy_engine::hash_all(dir.path(), &paths, &StatCache::new()));
        assert_eq!(hashed.read, files);
        let rate = |d: Duration| {
            format!(
                "{:>6.2} GB/s {:>8.0} files/s",
                bytes / d.as_secs_f64() / 1e9,
                files as f64 / d.as_secs_f64()
            )
        };
        print!("{files:>7} × {:>3} KiB: hephy {} ({})", size / 1024, ms(ours), rate(ours));
        match peer {
            Some(peer) => println!(
                "; b3sum {} ({}); hephy throughput = {:.2}× b3sum's",
                ms(peer),
                rate(peer),
                peer.as_secs_f64() / ours.as_secs_f64()
            ),
            None => println!("; b3sum not installed"),
        }
    }
}

/// A YAML graph of one task per entry of `deps` (`tI`, after the tasks it names), each with the
/// inputs `inputs(I)` gives (a YAML flow list).
fn tasks_yaml(deps: &[Vec<usize>], inputs: impl Fn(usize) -> String) -> String {
    let mut yaml = String::from("tasks:\n");
    for (i, deps) in deps.iter().enumerate() {
        yaml.push_str(&format!("  t{i}: {{ run: [\"true\"], inputs: {}", inputs(i)));
        if !deps.is_empty() {
            let names: Vec<String> = deps.iter().map(|j| format!("t{j}")).collect();
            yaml.push_str(&format!(", after: [{}]", names.join(", ")));
        }
        yaml.push_str(" }\n");
    }
    yaml
}

fn noop(n: usize, runs: usize) {
    println!(
        "\n## no-op plan: {n} tasks with two input files each (a Dockerfile and one file), all fresh, best of {runs}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    synthetic::write_contexts(root, n);
    let graph = synthetic::generate(n, 42);
    let yaml = tasks_yaml(&graph.deps, |i| format!("[img{i}/Dockerfile, img{i}/app.txt]"));
    std::fs::write(root.join("hephy.yaml"), &yaml).expect("write");
    let hephy = env!("CARGO_BIN_EXE_hephy");
    let hephy_run = |args: &[&str]| {
        let status = Command::new(hephy)
            .args(args)
            .current_dir(root)
            .stdout(Stdio::null())
            .status()
            .expect("run hephy");
        assert!(status.success());
    };
    let setup = Instant::now();
    hephy_run(&["run", "--format", "json"]);
    println!("setup: hephy run of {n} tasks took {}", ms(setup.elapsed()));
    std::thread::sleep(Duration::from_millis(2100)); // past the stat cache's racy window
    hephy_run(&["plan"]); // fills the stat cache
    let ninja = have("ninja").then(|| {
        let mut text = String::from("rule stamp\n  command = touch $out\n");
        for i in 0..n {
            text.push_str(&format!("build stamps/img{i}: stamp img{i}/Dockerfile img{i}/app.txt\n"));
        }
        std::fs::write(root.join("build.ninja"), text).expect("write build.ninja");
        std::fs::create_dir_all(root.join("stamps")).expect("mkdir");
        shell(root, "ninja -j4 > /dev/null");
        best_of(runs, || shell(root, "ninja -n > /dev/null")).0
    });
    match ninja {
        Some(ninja) => println!("ninja -n ({n} edges, up to date): {}", ms(ninja)),
        None => println!("ninja not installed: hephy alone"),
    }
    let (noop, ()) = best_of(runs, || hephy_run(&["plan"]));
    let touched = root.join("img0/app.txt");
    let (touch, ()) = best_of(runs, || {
        let text = std::fs::read_to_string(&touched).unwrap_or_default();
        std::fs::write(&touched, format!("{text}.")).expect("touch");
        hephy_run(&["plan"]);
    });
    print!(
        "hephy plan: no-op {} ; after touching img0/app.txt (a root of the DAG) {} = {:.2}× no-op",
        ms(noop),
        ms(touch),
        touch.as_secs_f64() / noop.as_secs_f64()
    );
    match ninja {
        Some(ninja) => println!("; no-op = {:.2}× ninja -n", noop.as_secs_f64() / ninja.as_secs_f64()),
        None => println!(),
    }
}

/// A hephy binary (`target/release/hephy` under `cargo bench`, or the baseline's), run as a
/// process in a graph's folder.
struct Hephy<'a> {
    exe: PathBuf,
    root: &'a Path,
}

impl<'a> Hephy<'a> {
    fn new(root: &'a Path) -> Hephy<'a> {
        Hephy { exe: PathBuf::from(env!("CARGO_BIN_EXE_hephy")), root }
    }

    /// With `HEPHY_BENCH_BASELINE=EXE` (another build of hephy, say main's), that binary in a
    /// copy of `root` at `copy` (its own stamp: a stamp names the binary that wrote it),
    /// planned once there to leave it.
    fn baseline(root: &Path, copy: &'a Path) -> Option<Hephy<'a>> {
        let exe = PathBuf::from(std::env::var_os("HEPHY_BENCH_BASELINE")?);
        let status = Command::new("cp").arg("-a").arg(root).arg(copy).status();
        assert!(status.is_ok_and(|s| s.success()), "copy {} for the baseline", root.display());
        let baseline = Hephy { exe, root: copy };
        std::thread::sleep(Duration::from_millis(2100)); // past the racy window of the copy
        baseline.time(&["plan"]);
        Some(baseline)
    }

    /// Runs `hephy ARGS` to its end (its output discarded); its wall time.
    fn time(&self, args: &[&str]) -> Duration {
        let start = Instant::now();
        let status = Command::new(&self.exe)
            .args(args)
            .current_dir(self.root)
            .stdout(Stdio::null())
            .status()
            .expect("run hephy");
        let took = start.elapsed();
        assert!(status.success(), "`{} {}` failed", self.exe.display(), args.join(" "));
        took
    }
}

/// `build.ninja` in `root` from `edges` (`(output, inputs)`), every edge built once.
fn ninja_built(root: &Path, edges: &[(String, Vec<String>)]) {
    let mut text = String::from("rule stamp\n  command = touch $out\n");
    for (output, inputs) in edges {
        text.push_str(&format!("build {output}: stamp {}\n", inputs.join(" ")));
    }
    std::fs::write(root.join("build.ninja"), text).expect("write build.ninja");
    std::fs::create_dir_all(root.join("stamps")).expect("mkdir");
    shell(root, "ninja -j4 > /dev/null");
}

/// Alternates `ninja -n` (when `ninja`) and each of `ours`, `runs` times: the best of each.
fn side_by_side(
    root: &Path,
    runs: usize,
    ninja: bool,
    mut ours: Vec<Box<dyn FnMut() -> Duration + '_>>,
) -> (Option<Duration>, Vec<Duration>) {
    let mut peer = ninja.then_some(Duration::MAX);
    let mut best = vec![Duration::MAX; ours.len()];
    for _ in 0..runs {
        if let Some(peer) = &mut peer {
            *peer = (*peer).min(shell(root, "ninja -n > /dev/null"));
        }
        for (best, f) in best.iter_mut().zip(&mut ours) {
            *best = (*best).min(f());
        }
    }
    (peer, best)
}

/// One goal's line: hephy, `ninja -n`, the ratio and the goal (a ratio at most `goal`).
fn goal_line(what: &str, ours: Duration, peer: Option<Duration>, goal: f64) {
    match peer {
        Some(peer) => {
            let ratio = ours.as_secs_f64() / peer.as_secs_f64();
            let verdict = if ratio <= goal { "met" } else { "NOT met" };
            println!(
                "{what:<46} hephy {} | ninja -n {} | {ratio:>5.2}× ninja -n | goal ≤ {goal:.1}×: {verdict}",
                ms(ours),
                ms(peer)
            );
        }
        None => println!("{what:<46} hephy {} | ninja not installed | goal ≤ {goal:.1}× ninja -n", ms(ours)),
    }
}

/// The touched image graph: `m` images × 2 platforms (and an index each: 3·m nodes) built by
/// the built-in `oci` builder into the local layout, then one leaf image's file changed.
fn image(m: usize, runs: usize) {
    println!(
        "\n## touched image graph: {m} images × 2 platforms ({} nodes, built-in `oci` builder, built), one leaf file changed, best of {runs}",
        3 * m
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    synthetic::write_contexts(root, m);
    let deps = synthetic::generate(m, 42).deps;
    std::fs::write(root.join("hephy.kdl"), synthetic::local_images(&deps)).expect("write");
    let hephy = Hephy::new(root);
    println!("setup: hephy run of {m} images took {}", ms(hephy.time(&["run", "--format", "json"])));
    std::thread::sleep(Duration::from_millis(2100)); // past the stat cache's racy window
    hephy.time(&["plan"]); // fills the stat cache, leaves the stamp
    let copy = tempfile::tempdir().expect("temp dir");
    let copied = copy.path().join("graph");
    let baseline = Hephy::baseline(root, &copied);
    let ninja = have("ninja");
    if ninja {
        // The same shape: an edge per platform build (its two files and its base's build),
        // and one per index (its two platform builds).
        let mut edges = Vec::with_capacity(3 * m);
        for (i, mine) in deps.iter().enumerate() {
            for platform in ["amd64", "arm64"] {
                let mut inputs = vec![format!("img{i}/Dockerfile"), format!("img{i}/app.txt")];
                inputs.extend(mine.iter().map(|j| format!("stamps/img{j}-{platform}")));
                edges.push((format!("stamps/img{i}-{platform}"), inputs));
            }
            edges.push((
                format!("stamps/img{i}"),
                vec![format!("stamps/img{i}-amd64"), format!("stamps/img{i}-arm64")],
            ));
        }
        ninja_built(root, &edges);
    }
    // A leaf: nothing is built on the last image (dependencies point to earlier ones).
    let leaf = format!("img{}/app.txt", m - 1);
    let touched = |hephy: &Hephy<'_>| {
        let path = hephy.root.join(&leaf);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, format!("{text}.")).expect("touch");
        hephy.time(&["plan"])
    };
    let mut ours: Vec<Box<dyn FnMut() -> Duration>> = vec![Box::new(|| touched(&hephy))];
    if let Some(baseline) = &baseline {
        ours.push(Box::new(|| touched(baseline)));
    }
    let (peer, best) = side_by_side(root, runs, ninja, ours);
    let what = format!("`hephy plan` after changing {leaf}");
    goal_line(&what, best[0], peer, 2.0);
    if let Some(&before) = best.get(1) {
        goal_line(&format!("{what} (baseline)"), before, peer, 2.0);
    }
    // The everyday loop: a change built by `hephy run`, then the next change planned (the
    // plan after a run that built something: no plain plan in between).
    let after_run = |hephy: &Hephy<'_>| {
        let path = hephy.root.join(&leaf);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, format!("{text}.")).expect("touch");
        hephy.time(&["run", "--format", "json"]);
        std::fs::write(&path, format!("{text}..")).expect("touch");
        hephy.time(&["plan"])
    };
    let mut ours: Vec<Box<dyn FnMut() -> Duration>> = vec![Box::new(|| after_run(&hephy))];
    if let Some(baseline) = &baseline {
        ours.push(Box::new(|| after_run(baseline)));
    }
    let (peer, best) = side_by_side(root, runs, ninja, ours);
    let what = "the same, after `hephy run` built the last change";
    goal_line(what, best[0], peer, 2.0);
    if let Some(&before) = best.get(1) {
        goal_line(&format!("{what} (baseline)"), before, peer, 2.0);
    }
    // Planned in full: the stamp removed, so the graph must be loaded. Its document as read is
    // reused from the state folder (`documents/`), or parsed (the entry removed too; the
    // baseline always parses).
    let in_full = |hephy: &Hephy<'_>, parse: bool| {
        let state = hephy.root.join(".hephy");
        let _ = std::fs::remove_file(state.join("plan.stamp"));
        if parse {
            let _ = std::fs::remove_dir_all(state.join("documents"));
        }
        hephy.time(&["plan"])
    };
    let mut ours: Vec<Box<dyn FnMut() -> Duration>> =
        vec![Box::new(|| in_full(&hephy, false)), Box::new(|| in_full(&hephy, true))];
    if let Some(baseline) = &baseline {
        ours.push(Box::new(|| in_full(baseline, true)));
    }
    let (peer, best) = side_by_side(root, runs, ninja, ours);
    figure_line("`hephy plan` in full (no stamp), document reused", best[0], peer);
    figure_line("the same, the graph file parsed", best[1], peer);
    if let Some(&before) = best.get(2) {
        figure_line("the same, parsed (baseline)", before, peer);
    }
}

/// A figure with no goal: hephy, and `ninja -n` and the ratio for scale.
fn figure_line(what: &str, ours: Duration, peer: Option<Duration>) {
    match peer {
        Some(peer) => println!(
            "{what:<46} hephy {} | ninja -n {} | {:>5.2}× ninja -n",
            ms(ours),
            ms(peer),
            ours.as_secs_f64() / peer.as_secs_f64()
        ),
        None => println!("{what:<46} hephy {} | ninja not installed", ms(ours)),
    }
}

/// The no-op plans of `n` tasks whose inputs are globs (`imgI/**`: a Dockerfile and one
/// file), all fresh: as text and as JSON.
fn globs(n: usize, runs: usize) {
    println!(
        "\n## no-op plan: {n} tasks with globbed inputs (`inputs \"imgI/**\"`), all fresh, best of {runs}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    synthetic::write_contexts(root, n);
    let graph = synthetic::generate(n, 42);
    let yaml = tasks_yaml(&graph.deps, |i| format!("[\"img{i}/**\"]"));
    std::fs::write(root.join("hephy.yaml"), &yaml).expect("write");
    let hephy = Hephy::new(root);
    println!("setup: hephy run of {n} tasks took {}", ms(hephy.time(&["run", "--format", "json"])));
    std::thread::sleep(Duration::from_millis(2100)); // past the stat cache's racy window
    hephy.time(&["plan"]); // fills the stat cache, leaves the stamp
    let copy = tempfile::tempdir().expect("temp dir");
    let copied = copy.path().join("graph");
    let baseline = Hephy::baseline(root, &copied);
    let ninja = have("ninja");
    if ninja {
        let edges: Vec<(String, Vec<String>)> = (0..n)
            .map(|i| {
                (format!("stamps/img{i}"), vec![format!("img{i}/Dockerfile"), format!("img{i}/app.txt")])
            })
            .collect();
        ninja_built(root, &edges);
    }
    let mut ours: Vec<Box<dyn FnMut() -> Duration>> =
        vec![Box::new(|| hephy.time(&["plan"])), Box::new(|| hephy.time(&["plan", "--format", "json"]))];
    if let Some(baseline) = &baseline {
        ours.push(Box::new(|| baseline.time(&["plan"])));
        ours.push(Box::new(|| baseline.time(&["plan", "--format", "json"])));
    }
    let (peer, best) = side_by_side(root, runs, ninja, ours);
    goal_line("no-op `hephy plan`, globbed inputs", best[0], peer, 0.5);
    goal_line("no-op `hephy plan --format json`, same graph", best[1], peer, 0.5);
    if let &[text, json] = &best[2..] {
        goal_line("no-op `hephy plan`, globbed inputs (baseline)", text, peer, 0.5);
        goal_line("no-op `hephy plan --format json` (baseline)", json, peer, 0.5);
    }
}

/// This process's resident memory, from `/proc/self/statm` (0 where there is none).
fn resident_mib() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    pages * 4096 / (1024 * 1024)
}

/// Every node's inputs, with nothing known beforehand: no stat cache (every file is read), no
/// upstream or base image resolved.
fn cold_inputs(model: &hephy_dsl::Model, graph: &hephy_engine::Graph) -> hephy_engine::Inputs {
    hephy_engine::gather(
        model,
        graph,
        &hephy_stdlib::builder_identity,
        &|node: &hephy_engine::Node, definition: Option<hephy_dsl::Definition<'_>>| {
            hephy_stdlib::context_reads(model, node, definition)
        },
        &hephy_engine::Upstreams::new(),
        &hephy_engine::BaseImages::new(),
        &StatCache::new(),
        &Exclusions::default(),
    )
}

fn million() {
    // Tasks without files, so the figure is the engine's own: compile, key, plan.
    // `HEPHY_BENCH_MILLION_NODES` sets another size (for a profiler, say).
    let n = std::env::var("HEPHY_BENCH_MILLION_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000usize);
    println!("\n## in-memory planning, {n} nodes (parse excluded)");
    let mut yaml = String::from("tasks:\n");
    for i in 0..n {
        yaml.push_str(&format!("  t{i}: {{ run: [\"true\"]"));
        if i > 0 {
            // A pseudo-random earlier task (Knuth's multiplicative hash), so fan-in varies.
            yaml.push_str(&format!(", after: [t{}]", (i.wrapping_mul(2_654_435_761) >> 8) % i));
        }
        yaml.push_str(" }\n");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let source = SourceFile::new(dir.path().join("hephy.yaml"), Syntax::Yaml, yaml.as_str());
    let doc = hephy_dsl::read(&source).expect("reads");
    let start = Instant::now();
    let model = hephy_dsl::lower(doc, &source, dir.path()).expect("valid");
    let lower = start.elapsed();
    let start = Instant::now();
    let graph = hephy_engine::compile(&model);
    let compile = start.elapsed();
    let start = Instant::now();
    let inputs = cold_inputs(&model, &graph);
    let gather = start.elapsed();
    let start = Instant::now();
    let plan = hephy_engine::plan(&graph, &inputs, &Snapshot::default(), &PlanOptions::default());
    let planning = start.elapsed();
    assert_eq!(plan.steps.len(), n);
    println!(
        "lower {} ; compile (DAG + order) {} ; inputs {} ; plan (keys, reasons) {} ; engine total {} ; resident {} MiB",
        ms(lower),
        ms(compile),
        ms(gather),
        ms(planning),
        ms(compile + gather + planning),
        resident_mib()
    );
}
