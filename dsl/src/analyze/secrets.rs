//! Secrets: declared once from `env` or `file`, used by name.

use super::*;

impl Analyzer<'_> {
    /// The graph's secrets: each named like an environment variable, from one `env` or `file`.
    pub(super) fn secrets(&mut self, doc: &Document) -> Vec<Secret> {
        let mut out: Vec<Secret> = Vec::new();
        for draft in &doc.secrets {
            let name = &draft.name;
            if !env_name(name) {
                self.sink.push(
                    Problem::new(Code::InvalidValue, format!("`{}` is not a secret name", name.value))
                        .label(name.span, "letters, digits and `_`, not starting with a digit")
                        .help("name it like an environment variable: `NPM_TOKEN`"),
                );
                continue;
            }
            if let Some(first) = out.iter().find(|s| s.name.value == name.value) {
                self.duplicate(name, first.name.span, "secret");
                continue;
            }
            let source = match (&draft.env, &draft.file) {
                (Some(env), None) if env_name(env) => SecretSource::Env(env.value.clone()),
                (Some(env), None) => {
                    self.sink.push(
                        Problem::new(
                            Code::InvalidValue,
                            format!("`{}` is not an environment variable name", env.value),
                        )
                        .label(env.span, "letters, digits and `_`")
                        .help_for("write `env=\"NPM_TOKEN\"`", "write `env: NPM_TOKEN`"),
                    );
                    continue;
                }
                (None, Some(file)) if !file.value.is_empty() => {
                    SecretSource::File(self.root.join(&file.value))
                }
                _ => {
                    self.sink.push(
                        Problem::new(
                            Code::Missing,
                            format!("secret `{}` needs exactly one of `env` and `file`", name.value),
                        )
                        .label(name.span, "where does its value come from?")
                        .help_for(
                            "write `secret \"NPM_TOKEN\" env=\"NPM_TOKEN\"` or `file=\"path/to/token\"`",
                            "write `secrets: { NPM_TOKEN: { env: NPM_TOKEN } }` or `{ file: path/to/token }`",
                        ),
                    );
                    continue;
                }
            };
            out.push(Secret { name: name.clone(), source });
        }
        out
    }

    /// The secret names an image or task uses, each declared.
    pub(super) fn secret_uses(&mut self, uses: &[Text], secrets: &[Secret]) -> Vec<String> {
        let mut out = Vec::new();
        for name in uses {
            if secrets.iter().any(|s| s.name.value == name.value) {
                if !out.contains(&name.value) {
                    out.push(name.value.clone());
                }
            } else {
                let help =
                    self.sink.suggest(name, secrets.iter().map(|s| s.name.value.as_str())).unwrap_or_else(
                        || format!("declare it: `secret \"{}\" env=\"{}\"`", name.value, name.value),
                    );
                self.sink.push(
                    Problem::new(Code::UnknownDependency, format!("unknown secret `{}`", name.value))
                        .label(name.span, "not declared")
                        .help(help),
                );
            }
        }
        out
    }
}
