//! The dsl's diagnostics, in-process: every graph of the bad corpus (`tests/bad/` at the
//! workspace root) read and analyzed by `hephy_dsl::parse`, its problems rendered as miette
//! draws them (unicode, no colour, 100 columns), one insta snapshot per file. The binary's
//! `tests/bad.rs` covers the same files end to end, with the builders' checks added.

use std::path::Path;

use hephy_dsl::{SourceFile, Syntax};
use miette::{GraphicalReportHandler, GraphicalTheme};

fn render(problems: &hephy_dsl::Problems) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for problem in problems.iter() {
        handler.render_report(&mut out, problem).expect("rendering into a string");
    }
    out
}

#[test]
fn every_bad_graph_has_its_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bad");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("the bad corpus")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".kdl") || name.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 120, "the corpus has {} graphs", files.len());
    let mut passed = Vec::new();
    for file in &files {
        let bytes = std::fs::read(dir.join(file)).expect("a graph");
        let Ok(text) = String::from_utf8(bytes) else { continue };
        let syntax = Syntax::from_path(Path::new(file)).expect("a graph file name");
        let source = SourceFile::new(Path::new(file), syntax, text);
        let rendered = match hephy_dsl::parse(source, &dir) {
            Ok(_) => {
                // Refused by a later stage (the builders' checks): nothing for the dsl to say.
                passed.push(file.as_str());
                String::from("(no problem found by the dsl)\n")
            }
            Err(problems) => render(&problems),
        };
        insta::assert_snapshot!(file.replace('.', "_"), rendered);
    }
    assert!(passed.len() < files.len() / 4, "the dsl passes too many bad graphs: {passed:?}");
}
