//! Renderers of a run's events: a live terminal view (indicatif), a line log for pipes and CI,
//! and a JSON summary. The engine emits [`Event`]s; only this module prints them.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hephy_engine::{Event, Reporter, SkipReason, Summary};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use std::borrow::Cow;

use crate::style::{Style, clean_line};

fn secs(d: Duration) -> String {
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// An image's digest, shortened, for the line that says it was built (tasks' outputs are
/// digests of files, not worth a column).
fn digest_suffix(output: &str) -> String {
    if output.starts_with("sha256:") { format!("  {}", digests(output, false)) } else { String::new() }
}

/// `text` with each whole digest (`sha256:` and 64 hex digits) cut to 12 hex digits and `…`
/// (`sha256:7967ab…`), unless `wide`: 64 digits wrap every line of a 120-column terminal.
pub(crate) fn digests(text: &str, wide: bool) -> Cow<'_, str> {
    static WHOLE: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"sha256:([0-9a-f]{12})[0-9a-f]{52}").ok());
    match &*WHOLE {
        Some(whole) if !wide => whole.replace_all(text, "sha256:${1}…"),
        _ => Cow::Borrowed(text),
    }
}

fn skip_text(reason: &SkipReason) -> String {
    match reason {
        SkipReason::Fresh => "fresh".to_owned(),
        SkipReason::CutOff => "fresh (dependencies rebuilt to the same output)".to_owned(),
        SkipReason::Cached => "cached in the registry".to_owned(),
        SkipReason::DependencyFailed { node } => format!("skipped: dependency {node} failed"),
        SkipReason::Cancelled => "not run: the run stopped".to_owned(),
        SkipReason::Stopped => "stopped: the run was interrupted while it ran".to_owned(),
    }
}

/// What an interrupted run is doing until its running nodes stop.
fn stopping_text(running: usize) -> String {
    match running {
        1 => "stopping the 1 running node".to_owned(),
        n => format!("stopping the {n} running nodes"),
    }
}

fn summary_text(s: &Summary, style: Style) -> String {
    let mut parts = vec![format!("{} built", s.built), format!("{} fresh", s.fresh)];
    if s.failed > 0 {
        parts.push(style.red(&format!("{} failed", s.failed)));
    }
    if s.skipped > 0 {
        parts.push(format!("{} skipped", s.skipped));
    }
    if s.stopped > 0 {
        parts.push(format!("{} stopped", s.stopped));
    }
    if s.cancelled > 0 {
        parts.push(format!("{} cancelled", s.cancelled));
    }
    let head = if s.interrupted {
        "interrupted"
    } else if s.failed > 0 {
        "failed"
    } else {
        "done"
    };
    let mut text =
        format!("{} run {}: {} in {}\n", style.bold(head), s.run_id, parts.join(", "), secs(s.duration));
    for tag in &s.stale {
        text.push_str(&format!(
            "{} {} still names the previous index; the next run fixes it\n",
            style.red("stale:"),
            clean_line(tag)
        ));
    }
    text
}

/// The median of the durations of each kind (`task`, `image`, …): what a node of that kind
/// never built is expected to take.
pub(crate) fn medians_by_kind<'k>(
    durations: impl Iterator<Item = (&'k str, Duration)>,
) -> HashMap<&'k str, Duration> {
    let mut by_kind: HashMap<&str, Vec<Duration>> = HashMap::new();
    for (kind, duration) in durations {
        by_kind.entry(kind).or_default().push(duration);
    }
    by_kind
        .into_iter()
        .map(|(kind, mut all)| {
            all.sort_unstable();
            (kind, all[all.len() / 2])
        })
        .collect()
}

/// What the renderers know of a run before it starts: the nodes to build, how long each took
/// last time (for the ETA), their dependencies (for the critical path), and the parallelism.
#[derive(Debug, Default, Clone)]
pub(crate) struct Context {
    /// Nodes planned to build, with the time each is expected to take: its last recorded build
    /// time, else the median of its kind's; none when neither is known.
    pub(crate) planned: Vec<(String, Option<Duration>)>,
    /// Node id → the ids of its dependencies, for the nodes to build.
    pub(crate) deps: HashMap<String, Vec<String>>,
    /// The most nodes running at once.
    pub(crate) jobs: usize,
}

/// How long each finished node took in this run, and the run's closing lines: the slowest
/// nodes, the critical path, and where to ask why.
#[derive(Debug, Default)]
struct Timings {
    took: HashMap<String, Duration>,
}

impl Timings {
    fn note(&mut self, event: &Event) {
        match event {
            Event::NodeBuilt { node, duration, .. } | Event::NodeFailed { node, duration, .. } => {
                self.took.insert(node.clone(), *duration);
            }
            _ => {}
        }
    }

    /// The longest chain of dependencies by this run's times: what bounded the run.
    fn critical_path(&self, context: &Context) -> Vec<(String, Duration)> {
        let mut best: HashMap<&str, (Duration, Option<&str>)> = HashMap::new();
        fn walk<'a>(
            id: &'a str,
            context: &'a Context,
            took: &HashMap<String, Duration>,
            best: &mut HashMap<&'a str, (Duration, Option<&'a str>)>,
            depth: usize,
        ) -> Duration {
            if let Some((d, _)) = best.get(id) {
                return *d;
            }
            let own = took.get(id).copied().unwrap_or_default();
            let mut longest = (Duration::ZERO, None);
            if depth < 10_000 {
                for dep in context.deps.get(id).into_iter().flatten() {
                    let d = walk(dep, context, took, best, depth + 1);
                    if d > longest.0 {
                        longest = (d, Some(dep.as_str()));
                    }
                }
            }
            best.insert(id, (own + longest.0, longest.1));
            own + longest.0
        }
        let mut end: Option<(&str, Duration)> = None;
        for id in self.took.keys() {
            let d = walk(id, context, &self.took, &mut best, 0);
            if end.is_none_or(|(e, longest)| d > longest || (d == longest && id.as_str() < e)) {
                end = Some((id.as_str(), d));
            }
        }
        let mut path = Vec::new();
        let mut at = end.map(|(id, _)| id);
        while let Some(id) = at {
            if let Some(d) = self.took.get(id) {
                path.push((id.to_owned(), *d));
            }
            at = best.get(id).and_then(|(_, next)| *next);
        }
        path.reverse();
        path
    }

    fn epilogue(&self, summary: &Summary, context: &Context, style: Style) -> String {
        let mut out = String::new();
        if self.took.is_empty() {
            return out;
        }
        let mut slowest: Vec<(&String, &Duration)> = self.took.iter().collect();
        slowest.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let shown: Vec<String> =
            slowest.iter().take(3).map(|(id, d)| format!("{id} {}", secs(**d))).collect();
        out.push_str(&format!("{}  {}\n", style.dim("slowest:      "), shown.join(", ")));
        let path = self.critical_path(context);
        if path.len() > 1 {
            let total: Duration = path.iter().map(|(_, d)| *d).sum();
            let chain: Vec<&str> = path.iter().map(|(id, _)| id.as_str()).collect();
            out.push_str(&format!(
                "{}  {} ({})\n",
                style.dim("critical path:"),
                chain.join(" → "),
                secs(total)
            ));
        }
        if let Some((id, _)) = slowest.first() {
            out.push_str(&format!(
                "{}  hephy explain {} --run {}\n",
                style.dim("why built:    "),
                shell_word(id),
                summary.run_id
            ));
        }
        out
    }
}

/// `id` as one shell word (node ids may hold `:` and `@`, which need no quotes; anything odd is
/// single-quoted).
fn shell_word(id: &str) -> String {
    if id.chars().all(|c| c.is_ascii_alphanumeric() || "@/:._-".contains(c)) {
        id.to_owned()
    } else {
        format!("'{}'", id.replace('\'', "'\\''"))
    }
}

/// One line per event, for logs and pipes.
pub(crate) struct Lines {
    style: Style,
    context: Context,
    timings: Timings,
    verbose: bool,
}

impl Lines {
    pub(crate) fn new(style: Style, context: Context, verbose: bool) -> Lines {
        Lines { style, context, timings: Timings::default(), verbose }
    }
}

/// The event with every text it carries (node names, messages, a task's output) made safe for
/// a terminal.
fn cleaned(event: &Event) -> Cow<'_, Event> {
    let c = |text: &str| clean_line(text).into_owned();
    let changed = match event {
        Event::NodeStarted { node, executor } => Event::NodeStarted { node: c(node), executor: c(executor) },
        Event::Output { node, line } => Event::Output { node: c(node), line: c(line) },
        Event::NodeBuilt { node, duration, output } => {
            Event::NodeBuilt { node: c(node), duration: *duration, output: c(output) }
        }
        Event::NodeFailed { node, message, log, .. } => {
            let mut failed = event.clone();
            if let Event::NodeFailed { node: n, message: m, log: l, .. } = &mut failed {
                *n = c(node);
                *m = c(message);
                *l = c(&log.display().to_string()).into();
            }
            failed
        }
        Event::NodeSkipped { node, reason } => {
            let reason = match reason {
                SkipReason::DependencyFailed { node } => SkipReason::DependencyFailed { node: c(node) },
                other => other.clone(),
            };
            Event::NodeSkipped { node: c(node), reason }
        }
        _ => return Cow::Borrowed(event),
    };
    Cow::Owned(changed)
}

impl Reporter for Lines {
    fn event(&mut self, event: &Event) {
        let s = self.style;
        let event = &*cleaned(event);
        self.timings.note(event);
        let text = match event {
            Event::Started { run_id, to_build, total } => {
                format!("run {run_id}: {to_build} of {total} nodes to build\n")
            }
            Event::NodeStarted { node, executor } => format!("{}  {node} on {executor}\n", s.cyan("start ")),
            Event::Output { .. } if !self.verbose => return,
            Event::Output { node, line } => format!("{}  {line}\n", s.dim(&format!("{node} |"))),
            Event::NodeBuilt { node, duration, output } => {
                format!(
                    "{}  {node} in {}{}\n",
                    s.green("built "),
                    secs(*duration),
                    s.dim(&digest_suffix(output))
                )
            }
            Event::NodeFailed { node, message, log, .. } => {
                format!("{}  {node}: {message} (log: {})\n", s.red("failed"), log.display())
            }
            Event::NodeSkipped { reason: SkipReason::Fresh, .. } => return,
            Event::Interrupted { running } => {
                format!("{}  {}\n", s.red("interrupted"), stopping_text(*running))
            }
            // Fresh after all: said in the plan's word, not as a skip.
            Event::NodeSkipped { node, reason: SkipReason::CutOff } => {
                format!("{}  {node}: its dependencies rebuilt to the same output\n", s.green("fresh "))
            }
            Event::NodeSkipped { node, reason } => {
                format!("{}  {node}: {}\n", s.dim("skip  "), skip_text(reason))
            }
            Event::Finished(summary) => {
                format!("{}{}", summary_text(summary, s), self.timings.epilogue(summary, &self.context, s))
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// `hephy run -q`: each failure and the summary line, nothing else.
pub(crate) struct Quiet {
    style: Style,
}

impl Quiet {
    pub(crate) fn new(style: Style) -> Quiet {
        Quiet { style }
    }
}

impl Reporter for Quiet {
    fn event(&mut self, event: &Event) {
        let s = self.style;
        let event = &*cleaned(event);
        let text = match event {
            Event::NodeFailed { node, message, log, .. } => {
                format!("{}  {node}: {message} (log: {})\n", s.red("failed"), log.display())
            }
            Event::Finished(summary) => summary_text(summary, s),
            _ => return,
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// The terminal with its echo of control characters turned off while the live view draws:
/// Ctrl-C's `^C`, echoed where the cursor stands, shifts the view's lines by one and leaves a
/// stale one behind. Restored when dropped.
struct QuietControls {
    saved: Option<rustix::termios::Termios>,
}

impl QuietControls {
    fn on_stdout() -> QuietControls {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdout = std::io::stdout();
        let Ok(saved) = tcgetattr(&stdout) else { return QuietControls { saved: None } };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHOCTL);
        let changed = tcsetattr(&stdout, OptionalActions::Now, &quiet).is_ok();
        QuietControls { saved: changed.then_some(saved) }
    }

    fn restore(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ =
                rustix::termios::tcsetattr(std::io::stdout(), rustix::termios::OptionalActions::Now, &saved);
        }
    }
}

impl Drop for QuietControls {
    fn drop(&mut self) {
        self.restore();
    }
}

/// When the run is expected to end, as the status line counts down to it between events.
#[derive(Debug, Clone, Copy, Default)]
struct EtaClock {
    /// The expected end; none when unknown.
    end: Option<Instant>,
    /// Whether something runs.
    running: bool,
    /// Whether the ETA is shown at all (not once the run is interrupted).
    shown: bool,
}

impl EtaClock {
    /// `, ETA 1m20s`; `, ETA unknown` when no end is known or it has passed while work runs
    /// (never `0.0s`); nothing when nothing runs and nothing is left.
    fn text(&self) -> String {
        if !self.shown {
            return String::new();
        }
        match self.end {
            Some(_) if !self.running => String::new(),
            Some(end) => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    ", ETA unknown".to_owned()
                } else {
                    format!(", ETA {}", secs(left.max(Duration::from_millis(100))))
                }
            }
            None => ", ETA unknown".to_owned(),
        }
    }
}

/// A node running in the live view.
struct Running {
    bar: ProgressBar,
    started: Instant,
}

/// When `id` (a node left to build) is expected to finish: its time left after its
/// dependencies' (those left) finish. Zero for a node not left.
fn chain<'c>(
    id: &'c str,
    left: &HashMap<&str, Duration>,
    context: &'c Context,
    finish: &mut HashMap<&'c str, Duration>,
    depth: usize,
) -> Duration {
    let Some(own) = left.get(id).copied() else { return Duration::ZERO };
    if let Some(done) = finish.get(id) {
        return *done;
    }
    let mut after = Duration::ZERO;
    if depth < 10_000 {
        for dep in context.deps.get(id).into_iter().flatten() {
            after = after.max(chain(dep, left, context, finish, depth + 1));
        }
    }
    finish.insert(id, own + after);
    own + after
}

/// A live view on a terminal: finished nodes scroll above; below them a line per running node
/// (executor, node, elapsed time, its last line of output) and, last, the run's count and ETA.
pub(crate) struct Live {
    multi: MultiProgress,
    status: ProgressBar,
    running: HashMap<String, Running>,
    style: Style,
    context: Context,
    timings: Timings,
    to_build: usize,
    built: usize,
    failed: usize,
    /// Nodes that finished this run, for the ETA (what is left is planned minus these).
    finished: std::collections::HashSet<String>,
    /// Set when the run was interrupted, with how many nodes were running then.
    interrupted: Option<usize>,
    /// The expected end, which the status line counts down to at each tick.
    clock: Arc<Mutex<EtaClock>>,
    /// The terminal's echo of `^C`, off while the view draws (from `Started` to `Finished`).
    controls: QuietControls,
}

impl Live {
    pub(crate) fn new(style: Style, context: Context) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let status = multi.add(ProgressBar::new_spinner());
        let clock = Arc::new(Mutex::new(EtaClock::default()));
        let shared = Arc::clone(&clock);
        let template = ProgressStyle::with_template("{spinner:.dim} {msg}{eta_left}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key("eta_left", move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let text = shared.lock().map(|clock| clock.text()).unwrap_or_default();
                let _ = out.write_str(&text);
            });
        status.set_style(template);
        Live {
            multi,
            status,
            running: HashMap::new(),
            style,
            context,
            timings: Timings::default(),
            to_build: 0,
            built: 0,
            failed: 0,
            finished: std::collections::HashSet::new(),
            interrupted: None,
            clock,
            controls: QuietControls { saved: None },
        }
    }

    fn println(&self, text: &str) {
        let _ = self.multi.println(text.trim_end());
    }

    /// What is left to do, from past build times: the remaining nodes' expected times (the
    /// running ones less what they have run) over the parallelism, or the longest chain of
    /// them when that is longer. None (`ETA unknown`) when a node left has no expected time, or
    /// a running one has run past it.
    fn eta(&self) -> Option<Duration> {
        let mut left: HashMap<&str, Duration> = HashMap::new();
        for (id, expected) in &self.context.planned {
            if self.finished.contains(id) {
                continue;
            }
            let expected = (*expected)?;
            let ran = self.running.get(id).map(|r| r.started.elapsed()).unwrap_or_default();
            if ran > expected {
                return None;
            }
            left.insert(id, expected - ran);
        }
        let total: Duration = left.values().sum();
        let nodes = u32::try_from(left.len()).unwrap_or(u32::MAX).max(1);
        let parallel = u32::try_from(self.context.jobs.max(1)).unwrap_or(1).min(nodes);
        // Each node's finish: its own time after its slowest unfinished dependency's finish.
        let mut finish: HashMap<&str, Duration> = HashMap::new();
        let mut longest = Duration::ZERO;
        for (id, _) in &self.context.planned {
            longest = longest.max(chain(id, &left, &self.context, &mut finish, 0));
        }
        Some((total / parallel).max(longest))
    }

    fn update_status(&self) {
        if self.interrupted.is_some() {
            if let Ok(mut clock) = self.clock.lock() {
                clock.shown = false;
            }
            let text = format!("{} {}", self.style.red("interrupted:"), stopping_text(self.running.len()));
            self.status.set_message(text);
            return;
        }
        let mut parts = vec![format!("{}/{} built", self.built, self.to_build)];
        parts.push(format!("{} running", self.running.len()));
        if self.failed > 0 {
            parts.push(self.style.red(&format!("{} failed", self.failed)));
        }
        if let Ok(mut clock) = self.clock.lock() {
            *clock = EtaClock {
                end: self.eta().map(|eta| Instant::now() + eta),
                running: !self.running.is_empty(),
                shown: true,
            };
        }
        self.status.set_message(parts.join(", "));
    }

    fn finish(&mut self, node: &str) {
        if let Some(running) = self.running.remove(node) {
            running.bar.finish_and_clear();
            self.multi.remove(&running.bar);
        }
        self.finished.insert(node.to_owned());
    }
}

impl Reporter for Live {
    fn event(&mut self, event: &Event) {
        let s = self.style;
        let event = &*cleaned(event);
        self.timings.note(event);
        match event {
            Event::Started { run_id, to_build, total } => {
                self.to_build = *to_build;
                self.controls.restore();
                self.controls = QuietControls::on_stdout();
                self.println(&format!("run {run_id}: {to_build} of {total} nodes to build"));
                self.status.enable_steady_tick(Duration::from_millis(100));
            }
            Event::NodeStarted { node, executor } => {
                let bar = self.multi.insert_before(&self.status, ProgressBar::new_spinner());
                let template =
                    ProgressStyle::with_template("{spinner} {prefix:.cyan} {elapsed:>4.dim} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(template);
                bar.set_prefix(format!("[{executor}] {node}"));
                bar.enable_steady_tick(Duration::from_millis(100));
                self.running.insert(node.clone(), Running { bar, started: Instant::now() });
            }
            Event::Output { node, line } => {
                if let Some(running) = self.running.get(node) {
                    running.bar.set_message(s.dim(line.trim()));
                }
            }
            Event::NodeBuilt { node, duration, output } => {
                self.finish(node);
                self.built += 1;
                let detail = format!("{}{}", secs(*duration), digest_suffix(output));
                self.println(&format!("{} {node} {}", s.green("✓"), s.dim(&detail)));
            }
            Event::NodeFailed { node, message, log, .. } => {
                self.finish(node);
                self.failed += 1;
                self.println(&format!("{} {node}: {message}\n    log: {}", s.red("✗"), log.display()));
            }
            Event::NodeSkipped { node, reason: SkipReason::Fresh } => {
                self.finished.insert(node.clone());
            }
            Event::NodeSkipped { node, reason } => {
                self.finish(node);
                self.println(&format!("{} {node}: {}", s.dim("–"), skip_text(reason)));
            }
            Event::Interrupted { running } => {
                self.interrupted = Some(*running);
            }
            Event::Finished(summary) => {
                for (_, running) in self.running.drain() {
                    running.bar.finish_and_clear();
                    self.multi.remove(&running.bar);
                }
                self.status.finish_and_clear();
                self.multi.remove(&self.status);
                let _ = self.multi.clear();
                self.controls.restore();
                let text = format!(
                    "{}{}",
                    summary_text(summary, s),
                    self.timings.epilogue(summary, &self.context, s)
                );
                // Past the progress bars: plain output, so nothing of the live view is left.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                return;
            }
        }
        self.update_status();
    }
}

/// Prints nothing while running; the summary as JSON at the end.
pub(crate) struct Json;

impl Reporter for Json {
    fn event(&mut self, event: &Event) {
        if let Event::Finished(summary) = event {
            let mut text = serde_json::to_string_pretty(summary).unwrap_or_default();
            text.push('\n');
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
    }
}
