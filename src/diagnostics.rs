//! Renders the language's problems on stderr, with miette's graphical handler.

use std::io::Write;

use hephy_dsl::Problems;
use miette::{GraphicalReportHandler, GraphicalTheme};

/// The width diagnostics wrap at when stderr is not a terminal (stable for logs and snapshots).
const PLAIN_WIDTH: usize = 100;

/// The problems (and, apart, the warnings) drawn in full; the rest are counted, so a file of
/// thousands of mistakes gives a page to read, not megabytes (SPEC, "Limits").
const SHOWN: usize = 50;

/// Prints the first [`SHOWN`] problems, then a one-line summary that counts them all.
pub(crate) fn report(problems: &Problems, color: bool) {
    // Nothing a graph file holds reaches the terminal raw, and no line is too long to show.
    let problems = &problems.printable();
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let width = if color { terminal_width().unwrap_or(PLAIN_WIDTH) } else { PLAIN_WIDTH };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for problem in problems.iter().take(SHOWN) {
        let _ = handler.render_report(&mut out, problem);
        out.push('\n');
    }
    let n = problems.len();
    if n > SHOWN {
        out.push_str(&format!("… and {} more problems, not shown: fix these first\n", n - SHOWN));
    }
    if n > 1 {
        out.push_str(&format!("error: {} has {n} problems\n", problems.file()));
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// Prints the first [`SHOWN`] warnings (problems that stop nothing), and how many more.
pub(crate) fn warn(problems: &Problems, color: bool) {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let width = if color { terminal_width().unwrap_or(PLAIN_WIDTH) } else { PLAIN_WIDTH };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for problem in problems.iter().take(SHOWN) {
        let _ = handler.render_report(&mut out, problem);
        out.push('\n');
    }
    if problems.len() > SHOWN {
        out.push_str(&format!("… and {} more warnings, not shown\n", problems.len() - SHOWN));
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

fn terminal_width() -> Option<usize> {
    std::env::var("COLUMNS").ok()?.parse().ok()
}
