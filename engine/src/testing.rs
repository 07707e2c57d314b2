//! Test support: models from graph text, for unit tests that need a real graph.

/// The model of the YAML graph `text`, read from a graph file in a temporary folder (kept
/// alive by the returned guard).
pub(crate) fn yaml_model(text: &str) -> (tempfile::TempDir, hephy_dsl::Model) {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = hephy_dsl::SourceFile::new(dir.path().join("hephy.yaml"), hephy_dsl::Syntax::Yaml, text);
    let doc = hephy_dsl::read(&source).expect("reads");
    let model = hephy_dsl::lower(doc, &source, dir.path()).expect("valid");
    (dir, model)
}
