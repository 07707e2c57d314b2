//! Terminal styling for human output: ANSI colours when the stream is a terminal and colour is
//! wanted (`NO_COLOR` is honoured), plain text otherwise.

use std::io::IsTerminal;

/// Whether to colour, decided once per stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    color: bool,
    /// The columns tables must fit in; `None`: as wide as their cells.
    width: Option<usize>,
}

impl Style {
    pub(crate) fn for_stdout(always: bool, never: bool) -> Style {
        let auto = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Style { color: always || (!never && auto), width: None }
    }

    /// The same style for tables that must fit in `width` columns (`None`: any width).
    pub(crate) fn fitting(self, width: Option<usize>) -> Style {
        Style { width, ..self }
    }

    /// The columns tables must fit in, if any.
    pub(crate) fn width(self) -> Option<usize> {
        self.width
    }

    /// Whether it paints.
    pub(crate) fn color(self) -> bool {
        self.color
    }

    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub(crate) fn green(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub(crate) fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub(crate) fn red(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub(crate) fn cyan(self, text: &str) -> String {
        self.paint("36", text)
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
}

/// The width human tables should fit: `COLUMNS` when set, else the terminal's when stdout is
/// one; `None` (as wide as the cells) for pipes and files, so what programs read is whole.
pub(crate) fn stdout_width() -> Option<usize> {
    let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok());
    columns
        .or_else(|| {
            std::io::stdout()
                .is_terminal()
                .then(|| console::Term::stdout().size_checked().map(|(_, cols)| usize::from(cols)))
                .flatten()
        })
        .filter(|&w| w > 0)
}

/// How many columns `line` takes on a terminal: its characters less ANSI colour sequences.
pub(crate) fn visible_width(line: &str) -> usize {
    let mut width = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for end in chars.by_ref() {
                if end.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

pub(crate) fn stderr_wants_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` as it may reach a terminal: control characters (ESC, BEL, OSC…; newlines and tabs
/// excepted) escaped, so nothing a graph, a file name or a task's output holds acts on it
/// ([`hephy_dsl::escape::terminal`]).
pub(crate) fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    hephy_dsl::escape::terminal(text)
}

/// [`clean`] for one cell or line: newlines and tabs escaped too.
pub(crate) fn clean_line(text: &str) -> std::borrow::Cow<'_, str> {
    hephy_dsl::escape::terminal_line(text)
}
