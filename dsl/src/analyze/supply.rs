//! The supply-chain settings: `sign key=…` (the key file must exist), `sbom`, `provenance`.

use super::*;
use crate::document::SignDraft;
use crate::model::Signing;

impl Analyzer<'_> {
    /// `sign key="…"`: the key file, relative to the graph's folder, must be a file.
    pub(super) fn signing(&mut self, sign: &SignDraft) -> Option<Signing> {
        let key = sign.key.as_ref()?;
        if key.value.trim().is_empty() {
            self.sink.push(
                Problem::new(Code::InvalidValue, "`sign` names no key file")
                    .label(key.span, "an empty path")
                    .help("write `sign key=\"cosign.key\"` (make one with `hephy key generate`)"),
            );
            return None;
        }
        let path = self.root.join(&key.value);
        if !path.is_file() {
            let what = if path.exists() { "is not a file" } else { "does not exist" };
            self.sink.push(
                Problem::new(Code::MissingPath, format!("signing key `{}` {what}", key.value))
                    .label(key.span, "no such key file")
                    .help(
                        "the key is cosign's private key file, relative to the graph file: make one \
                         with `hephy key generate` (or `cosign generate-key-pair`), or fix the path",
                    ),
            );
            return None;
        }
        Some(Signing { key: path, written: key.value.clone() })
    }
}

#[cfg(test)]
mod tests {
    use crate::source::{SourceFile, Syntax};

    fn load(dir: &std::path::Path, text: &str, syntax: Syntax) -> Result<crate::Model, crate::Problems> {
        let name = if syntax == Syntax::Kdl { "hephy.kdl" } else { "hephy.yaml" };
        crate::parse(SourceFile::new(dir.join(name), syntax, text), dir)
    }

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a folder");
        std::fs::create_dir(dir.path().join("app")).expect("app");
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\n").expect("Dockerfile");
        std::fs::write(dir.path().join("cosign.key"), "key").expect("key");
        std::fs::write(dir.path().join("other.key"), "key").expect("key");
        dir
    }

    /// The graph's settings are every image's; an image's own win; provenance is on by default
    /// only with a registry.
    #[test]
    fn image_settings_go_over_the_graphs_in_both_syntaxes() {
        let dir = folder();
        let kdl = "registry \"127.0.0.1:5000\"\nsign key=\"cosign.key\"\nsbom #true\n\
                   image \"app\" {\n    context \"app\"\n}\n\
                   image \"b\" {\n    context \"app\"\n    sign key=\"other.key\"\n    sbom #false\n    provenance #false\n}\n";
        let yaml = "registry: 127.0.0.1:5000\nsign: { key: cosign.key }\nsbom: true\nimages:\n  \
                    app: { context: app }\n  b: { context: app, sign: { key: other.key }, sbom: false, provenance: false }\n";
        for (text, syntax) in [(kdl, Syntax::Kdl), (yaml, Syntax::Yaml)] {
            let model = load(dir.path(), text, syntax).expect("a good graph");
            let (app, b) = (&model.images[0].publish, &model.images[1].publish);
            assert_eq!(app.sign.as_ref().map(|s| s.key.clone()), Some(dir.path().join("cosign.key")));
            assert!(app.sbom && app.provenance, "{syntax:?}");
            assert_eq!(b.sign.as_ref().map(|s| s.written.as_str()), Some("other.key"));
            assert!(!b.sbom && !b.provenance, "{syntax:?}");
        }
        let unpushed =
            load(dir.path(), "image \"app\" {\n    context \"app\"\n}\n", Syntax::Kdl).expect("good");
        assert!(!unpushed.images[0].publish.provenance);
    }

    /// A key file that does not exist is an error at its path, saying how to make one.
    #[test]
    fn a_missing_key_file_is_named_at_its_span() {
        let dir = folder();
        let text = "sign key=\"missing.key\"\nimage \"app\" {\n    context \"app\"\n}\n";
        let problems = load(dir.path(), text, Syntax::Kdl).expect_err("no such key");
        let problem = problems.iter().next().expect("one problem");
        assert_eq!(problem.message(), "signing key `missing.key` does not exist");
        let span = problem.primary_span().expect("a span");
        assert_eq!(&text[span.offset()..span.offset() + span.len()], "\"missing.key\"");
        let help = miette::Diagnostic::help(problem).map(|h| h.to_string()).unwrap_or_default();
        assert!(help.contains("hephy key generate"), "{help}");
    }

    /// `sbom` takes a boolean; `sign` needs its key.
    #[test]
    fn wrong_shapes_are_refused() {
        let dir = folder();
        for (text, syntax, message) in [
            ("sbom \"yes\"\n", Syntax::Kdl, "expected `#true` or `#false`, found a string"),
            ("sign\n", Syntax::Kdl, "`sign` needs `key`"),
            ("sbom: [a]\n", Syntax::Yaml, "`sbom` is `true` or `false`"),
            ("sign: {}\n", Syntax::Yaml, "`sign` needs `key`"),
        ] {
            let problems = load(dir.path(), text, syntax).expect_err(text);
            assert!(problems.iter().any(|p| p.message() == message), "{text}: {problems:?}");
        }
    }
}
