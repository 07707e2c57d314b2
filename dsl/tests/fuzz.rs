//! Property-based fuzzing of both front-ends (proptest, on stable Rust: `cargo fuzz` needs a
//! nightly toolchain, which these machines cannot fetch). Arbitrary text, and valid graphs
//! mutated byte by byte, go through the whole load (syntax, shape, meaning) and every
//! diagnostic is rendered as users see it: nothing may panic, and every label must point inside
//! the text. `PROPTEST_CASES` sets the number of cases (CI: the default below; by hand: more).

use std::path::Path;

use hephy_dsl::{SourceFile, Syntax};
use miette::{GraphicalReportHandler, GraphicalTheme};
use proptest::prelude::*;

const KDL_SEED: &str = include_str!("../../examples/kaniko-builder/hephy.kdl");
const YAML_SEED: &str = include_str!("../../examples/kaniko-builder/graph.yaml");

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1500)
}

/// Loads `text` as a graph and renders every problem; panics are the failures looked for.
fn load(text: &str, syntax: Syntax) {
    let name = match syntax {
        Syntax::Kdl => "fuzz.kdl",
        Syntax::Yaml => "fuzz.yaml",
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kaniko-builder");
    let Err(problems) = hephy_dsl::parse(SourceFile::new(name, syntax, text), &root) else { return };
    for problem in problems.iter() {
        if let Some(span) = problem.primary_span() {
            assert!(span.offset() + span.len() <= text.len(), "a label past the end: {span:?} in {text:?}");
        }
    }
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor());
    let mut out = String::new();
    handler.render_report(&mut out, &problems).expect("renders");
    assert!(!out.is_empty());
}

/// Edits of a text: (position, byte to insert or `None` to delete).
fn mutations() -> impl Strategy<Value = Vec<(usize, Option<u8>)>> {
    let byte = prop_oneof![
        Just(b'{'),
        Just(b'}'),
        Just(b'"'),
        Just(b'\n'),
        Just(b' '),
        Just(b':'),
        Just(b'-'),
        Just(b'['),
        Just(b']'),
        Just(b'&'),
        Just(b'*'),
        Just(b'#'),
        Just(b'\\'),
        Just(b'='),
        any::<u8>(),
    ];
    prop::collection::vec((any::<usize>(), prop::option::of(byte)), 1..12)
}

fn mutate(seed: &str, edits: &[(usize, Option<u8>)]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for &(at, byte) in edits {
        let at = at % (bytes.len() + 1);
        match byte {
            Some(b) => bytes.insert(at, b),
            None if at < bytes.len() => {
                bytes.remove(at);
            }
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn kdl_text_never_panics(text in ".{0,400}") {
        load(&text, Syntax::Kdl);
    }

    #[test]
    fn yaml_text_never_panics(text in ".{0,400}") {
        load(&text, Syntax::Yaml);
    }

    #[test]
    fn mutated_kdl_graphs_never_panic(edits in mutations()) {
        load(&mutate(KDL_SEED, &edits), Syntax::Kdl);
    }

    #[test]
    fn mutated_yaml_graphs_never_panic(edits in mutations()) {
        load(&mutate(YAML_SEED, &edits), Syntax::Yaml);
    }
}
