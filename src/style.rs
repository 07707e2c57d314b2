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

/// How many columns `line` takes on a terminal: its text less ANSI colour sequences, measured
/// as terminals lay it out (a CJK character takes two columns, a combining mark none).
pub(crate) fn visible_width(line: &str) -> usize {
    let mut width = 0;
    let mut rest = line;
    while let Some(start) = rest.find('\x1b') {
        width += unicode_width::UnicodeWidthStr::width(&rest[..start]);
        // The sequence runs to its final letter (`ESC [ 1 ; 32 m`).
        let after = &rest[start + 1..];
        rest = after.find(|c: char| c.is_ascii_alphabetic()).map_or("", |end| &after[end + 1..]);
    }
    width + unicode_width::UnicodeWidthStr::width(rest)
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

#[cfg(test)]
mod tests {
    use super::visible_width;

    /// Terminal columns, not characters: wide characters take two, combining marks none,
    /// colour sequences nothing.
    #[test]
    fn widths_are_terminal_columns() {
        assert_eq!(visible_width("plan"), 4);
        assert_eq!(visible_width("漢字"), 4, "two wide characters");
        assert_eq!(visible_width("e\u{301}"), 1, "an e and a combining acute accent");
        assert_eq!(visible_width("\x1b[1m漢字\x1b[0m e\u{301}"), 6, "colours take no columns");
        assert_eq!(visible_width("ab\x1b[3"), 2, "a sequence cut off at the end");
        assert_eq!(visible_width(""), 0);
    }
}
