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
        const COMMON: &[&str] =
            &["registry", "name", "date", "target", "ref", "commit", "key", "branch", "-branch"];
        let mut check = |text: &Text, extra: &[&str]| -> String {
            let mut rest = text.as_str();
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}') else { break };
                let word = &rest[open + 1..open + close];
                if !COMMON.contains(&word) && !extra.contains(&word) {
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
        };
        if let Some(t) = &draft.repository {
            naming.repository = check(t, &[]);
        }
        if let Some(t) = &draft.platform {
            naming.platform = Some(check(t, &["arch", "platform"]));
        }
        if let Some(t) = &draft.manifest {
            naming.manifest = Some(check(t, &[]));
        }
        if let Some(t) = &draft.tag {
            naming.tag = check(t, &["tag"]);
        }
        naming
    }
}
