//! Renders the language's problems on stderr, with miette's graphical handler.

use std::io::Write;

use hephy_dsl::Problems;
use miette::{GraphicalReportHandler, GraphicalTheme};

/// The width diagnostics wrap at when stderr is not a terminal (stable for logs and snapshots).
const PLAIN_WIDTH: usize = 100;

/// Prints every problem, then a one-line summary.
pub(crate) fn report(problems: &Problems, color: bool) {
    // Nothing a graph file holds reaches the terminal raw, and no line is too long to show.
    let problems = &problems.printable();
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let width = if color { terminal_width().unwrap_or(PLAIN_WIDTH) } else { PLAIN_WIDTH };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for problem in problems.iter() {
        let _ = handler.render_report(&mut out, problem);
        out.push('\n');
    }
    let n = problems.len();
    if n > 1 {
        out.push_str(&format!("error: {} has {n} problems\n", problems.file()));
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// Prints warnings (problems that stop nothing), with no summary line.
pub(crate) fn warn(problems: &Problems, color: bool) {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let width = if color { terminal_width().unwrap_or(PLAIN_WIDTH) } else { PLAIN_WIDTH };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for problem in problems.iter() {
        let _ = handler.render_report(&mut out, problem);
        out.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

fn terminal_width() -> Option<usize> {
    std::env::var("COLUMNS").ok()?.parse().ok()
}
