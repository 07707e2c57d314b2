//! Renderers of a run's events: a live terminal view (indicatif), a line log for pipes and CI,
//! and a JSON summary. The engine emits [`Event`]s; only this module prints them.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use hephy_engine::{Event, Reporter, SkipReason, Summary};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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
    match output.strip_prefix("sha256:") {
        Some(hex) => format!("  sha256:{}", hex.get(..12).unwrap_or(hex)),
        None => String::new(),
    }
}

fn skip_text(reason: &SkipReason) -> String {
    match reason {
        SkipReason::Fresh => "fresh".to_owned(),
        SkipReason::CutOff => "fresh (dependencies rebuilt to the same output)".to_owned(),
        SkipReason::Cached => "cached in the registry".to_owned(),
        SkipReason::DependencyFailed { node } => format!("skipped: dependency {node} failed"),
        SkipReason::Cancelled => "not run: the run stopped".to_owned(),
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
    let head = if s.interrupted {
        "interrupted"
    } else if s.failed > 0 {
        "failed"
    } else {
        "done"
    };
    format!("{} run {}: {} in {}\n", style.bold(head), s.run_id, parts.join(", "), secs(s.duration))
}

/// One line per event, for logs and pipes.
pub(crate) struct Lines {
    style: Style,
}

impl Lines {
    pub(crate) fn new(style: Style) -> Lines {
        Lines { style }
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
        let text = match event {
            Event::Started { run_id, to_build, total } => {
                format!("run {run_id}: {to_build} of {total} nodes to build\n")
            }
            Event::NodeStarted { node, executor } => format!("{}  {node} on {executor}\n", s.cyan("start ")),
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
            Event::NodeSkipped { node, reason } => {
                format!("{}  {node}: {}\n", s.dim("skip  "), skip_text(reason))
            }
            Event::Finished(summary) => summary_text(summary, s),
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// A live view on a terminal: a spinner per running node with its executor and elapsed time,
/// finished nodes printed above, a summary at the end.
pub(crate) struct Live {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    style: Style,
}

impl Live {
    pub(crate) fn new(style: Style) -> Live {
        Live { multi: MultiProgress::new(), bars: HashMap::new(), style }
    }

    fn println(&self, text: &str) {
        let _ = self.multi.println(text.trim_end());
    }
}

impl Reporter for Live {
    fn event(&mut self, event: &Event) {
        let s = self.style;
        let event = &*cleaned(event);
        match event {
            Event::Started { run_id, to_build, total } => {
                self.println(&format!("run {run_id}: {to_build} of {total} nodes to build"));
            }
            Event::NodeStarted { node, executor } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                let template = ProgressStyle::with_template("{spinner} {prefix:.cyan} {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(template);
                bar.set_prefix(format!("[{executor}]"));
                bar.set_message(node.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bars.insert(node.clone(), bar);
            }
            Event::Output { node, line } => self.println(&format!("{} {line}", s.dim(&format!("{node} |")))),
            Event::NodeBuilt { node, duration, output } => {
                if let Some(bar) = self.bars.remove(node) {
                    bar.finish_and_clear();
                }
                let detail = format!("{}{}", secs(*duration), digest_suffix(output));
                self.println(&format!("{} {node} {}", s.green("✓"), s.dim(&detail)));
            }
            Event::NodeFailed { node, message, log, .. } => {
                if let Some(bar) = self.bars.remove(node) {
                    bar.finish_and_clear();
                }
                self.println(&format!("{} {node}: {message}\n    log: {}", s.red("✗"), log.display()));
            }
            Event::NodeSkipped { reason: SkipReason::Fresh, .. } => {}
            Event::NodeSkipped { node, reason } => {
                self.println(&format!("{} {node}: {}", s.dim("–"), skip_text(reason)))
            }
            Event::Finished(summary) => {
                for (_, bar) in self.bars.drain() {
                    bar.finish_and_clear();
                }
                self.println(&summary_text(summary, s));
            }
        }
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
