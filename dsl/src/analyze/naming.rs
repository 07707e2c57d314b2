//! The `naming` block: a preset and the templates of repositories, platform, manifest and
//! extra tags.

use super::*;

impl Analyzer<'_> {
    pub(super) fn naming(&mut self, draft: Option<&crate::document::NamingDraft>) -> Naming {
        let Some(draft) = draft else { return Naming::standard() };
        let mut naming =
            match draft.preset.as_ref().map(|p| p.as_str()) {
                None | Some("standard") => Naming::standard(),
                Some("kaniko-builder") => Naming::kaniko_builder(),
                Some(other) => {
                    let preset = draft.preset.as_ref().map_or((0, 0).into(), |p| p.span);
                    self.sink.push(
                        Problem::new(Code::InvalidValue, format!("unknown naming preset `{other}`"))
                            .label(preset, "no such preset")
                            .maybe_help(did_you_mean(other, ["standard", "kaniko-builder"]).or_else(|| {
                                Some("the presets are `standard` and `kaniko-builder`".to_owned())
                            })),
                    );
                    Naming::standard()
                }
            };
        if let Some(t) = &draft.repository {
            naming.repository = self.template(t, &[]);
        }
        if let Some(t) = &draft.platform {
            naming.platform = Some(self.template(t, &["arch", "platform"]));
        }
        if let Some(t) = &draft.manifest {
            naming.manifest = Some(self.template(t, &[]));
        }
        if let Some(t) = &draft.tag {
            naming.tag = self.template(t, &["tag"]);
        }
        naming
    }

    /// A template's text, each placeholder of it (each alternative of `{a|b}`) checked to be one
    /// of the common ones or of `extra`.
    pub(super) fn template(&mut self, text: &Text, extra: &[&str]) -> String {
        let mut rest = text.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            let group = &rest[open + 1..open + close];
            if let Some(word) = group.split('|').find(|w| !COMMON.contains(w) && !extra.contains(w)) {
                let mut known: Vec<&str> = COMMON.to_vec();
                known.extend(extra);
                self.sink.push(
                    Problem::new(Code::InvalidValue, format!("`{{{word}}}` cannot be used here"))
                        .label(text.span, "in this template")
                        .help(format!(
                            "this template may use {}",
                            known.iter().map(|k| format!("{{{k}}}")).collect::<Vec<_>>().join(", ")
                        )),
                );
            }
            rest = &rest[open + close + 1..];
        }
        text.value.clone()
    }

    /// Labels or annotations: names of printable characters without spaces or `=`, each once;
    /// values are templates (with `{source}` and `{created}`).
    pub(super) fn metadata(&mut self, pairs: &[(Text, Text)], what: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, value) in pairs {
            if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control() || c == '=') {
                self.sink.push(
                    Problem::new(Code::InvalidName, format!("`{}` is not a valid {what} name", key.value))
                        .label(key.span, "invalid name")
                        .help("use a reverse-DNS name without spaces or `=`, e.g. `org.opencontainers.image.source`"),
                );
                continue;
            }
            let value = self.template(value, &["source", "created"]);
            if out.insert(key.value.clone(), value).is_some() {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("{what} `{}` is given twice", key.value))
                        .label(key.span, "given again here")
                        .help("keep one of them"),
                );
            }
        }
        out
    }
}

/// The placeholders every naming template (and a tag) may use.
pub(super) const COMMON: &[&str] = &[
    "registry",
    "name",
    "date",
    "target",
    "ref",
    "commit",
    "short_commit",
    "key",
    "branch",
    "-branch",
    "-ref",
    "git_tag",
    "version",
    "major",
    "minor",
    "patch",
];
