//! Test support: models and inputs from graph text, for unit tests that need a real graph.

/// The model of the YAML graph `text`, read from a graph file in a temporary folder (kept
/// alive by the returned guard).
pub(crate) fn yaml_model(text: &str) -> (tempfile::TempDir, hephy_dsl::Model) {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = hephy_dsl::SourceFile::new(dir.path().join("hephy.yaml"), hephy_dsl::Syntax::Yaml, text);
    let doc = hephy_dsl::read(&source).expect("reads");
    let model = hephy_dsl::lower(doc, &source, dir.path()).expect("valid");
    (dir, model)
}

/// The inputs of `graph`'s nodes as planning sees them, with the builder identity `test/1`,
/// no upstream or base image resolved, and no stat cache.
pub(crate) fn test_inputs(model: &hephy_dsl::Model, graph: &crate::Graph) -> crate::Inputs {
    let identity = |_: &crate::Node, _: Option<hephy_dsl::Definition<'_>>| "test/1".into();
    crate::gather(
        model,
        graph,
        &identity,
        &|_: &crate::Node, _: Option<hephy_dsl::Definition<'_>>| crate::ContextReads::Whole,
        &crate::Upstreams::new(),
        &crate::BaseImages::new(),
        &crate::StatCache::new(),
        &crate::Exclusions::default(),
    )
}
