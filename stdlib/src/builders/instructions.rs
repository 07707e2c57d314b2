//! What a builder's declared [`Capabilities`] leave out of a Dockerfile: its typed instructions
//! (read by [`hephy_dockerfile`]) held against what the builder says it builds, each at its
//! place in the text, for `check`.

use hephy_dockerfile::{self as dockerfile, Command};

use crate::builders::oci::build::{healthcheck, is_remote, parse_chmod};
use crate::builders::{Builder, Capabilities, Frontend};

/// Something a builder cannot build in a Dockerfile, at its place in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported {
    /// Where, in the Dockerfile's text.
    pub(crate) span: std::ops::Range<usize>,
    /// What.
    pub(crate) what: Cannot,
}

/// What a builder cannot build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Cannot {
    /// `RUN` (or `ONBUILD RUN`) under a builder that runs no commands.
    #[error("the {builder} builder does not run commands (`{what}`)")]
    Runs {
        /// The builder.
        builder: Builder,
        /// The instruction.
        what: &'static str,
    },
    /// The text does not read as a Dockerfile.
    #[error(transparent)]
    Parse(#[from] dockerfile::ParseError),
    /// `# syntax=` names a frontend other than the standard one, which the builder refuses.
    #[error(
        "`# syntax={frontend}` names a custom frontend, which only BuildKit runs; the {builder} builder would read the file as a standard Dockerfile"
    )]
    Frontend {
        /// The builder.
        builder: Builder,
        /// The frontend named.
        frontend: String,
    },
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// Whether `capabilities` leave anything of a Dockerfile's instructions out, so that
/// [`unsupported`] has something to find.
pub(crate) fn limited(capabilities: &Capabilities) -> bool {
    !capabilities.run
        || capabilities.frontend == Frontend::Refuses
        || capabilities.copy_flags.is_some()
        || !capabilities.add_url
        || capabilities.interprets
}

/// What `builder`, which can do `capabilities`, cannot build in `text`: its read errors, a custom
/// frontend it refuses, `RUN` when it runs none, `COPY`/`ADD` flags it does not take, `ADD` of a
/// URL when it downloads nothing; and when hephy interprets the file itself
/// ([`Capabilities::interprets`]), what its interpreter rejects (an instruction before the first
/// `FROM` other than `ARG`, a `HEALTHCHECK` it cannot read, a `--chmod` that is no mode).
pub(crate) fn unsupported(text: &str, builder: Builder, capabilities: &Capabilities) -> Vec<Unsupported> {
    let (parsed, errors) = dockerfile::parse_all(text);
    let mut out: Vec<Unsupported> =
        errors.into_iter().map(|e| Unsupported { span: e.span.clone(), what: Cannot::Parse(e) }).collect();
    if capabilities.frontend == Frontend::Refuses
        && let Some(syntax) = parsed.syntax.as_ref().filter(|s| !dockerfile::is_standard_syntax(&s.text))
    {
        out.push(Unsupported {
            span: syntax.span.clone(),
            what: Cannot::Frontend { builder, frontend: syntax.text.clone() },
        });
    }
    let interprets = capabilities.interprets;
    let mut seen_from = false;
    for i in &parsed.instructions {
        let span = i.keyword_span();
        let whole = i.span.clone();
        let mut push = |span: &std::ops::Range<usize>, message: String| {
            out.push(Unsupported { span: span.clone(), what: Cannot::Other(message) });
        };
        match &i.command {
            Command::From { .. } => seen_from = true,
            Command::Arg(_) => {}
            _ if !seen_from && interprets => {
                push(&span, "only `ARG` may come before the first `FROM`".to_owned());
            }
            _ => {}
        }
        match &i.command {
            Command::Run(_) if !capabilities.run => {
                out.push(Unsupported { span: span.clone(), what: Cannot::Runs { builder, what: "RUN" } });
            }
            Command::Onbuild(trigger) if trigger.runs() && !capabilities.run => {
                out.push(Unsupported {
                    span: whole.clone(),
                    what: Cannot::Runs { builder, what: "ONBUILD RUN" },
                });
            }
            Command::Healthcheck(_) if interprets => {
                if let Err(e) = healthcheck(i) {
                    push(&whole, e.to_string());
                }
            }
            Command::Copy(copy) | Command::Add(copy) => {
                if interprets
                    && let Some(m) = copy.chmod.as_ref().map(|m| &m.text).filter(|m| !m.contains('$'))
                    && let Err(e) = parse_chmod(m)
                {
                    push(&whole, e.to_string());
                }
                if let Some(taken) = capabilities.copy_flags {
                    for flag in i.flags.iter().filter(|f| !taken.contains(&f.name.as_str())) {
                        push(
                            &flag.span,
                            format!(
                                "`{} --{}` is not supported by the {builder} builder",
                                i.keyword(),
                                flag.name
                            ),
                        );
                    }
                }
                if matches!(i.command, Command::Add(_)) && !capabilities.add_url {
                    for source in copy.sources().iter().filter(|s| is_remote(&s.text)) {
                        push(
                            &whole,
                            format!("the {builder} builder does not download (`ADD {}`)", source.text),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::capabilities;

    const DOCKERFILE: &str = "# syntax=docker/dockerfile-upstream:master\nFROM alpine AS base\nRUN --mount=type=cache,target=/c make\nCOPY --parents a/ /b/\nADD https://example.com/x /x\nONBUILD RUN true\n";

    fn found(builder: Builder, caps: &Capabilities) -> Vec<String> {
        unsupported(DOCKERFILE, builder, caps).into_iter().map(|u| u.what.to_string()).collect()
    }

    /// A builder that declares everything is held to nothing; the built-in one to exactly what
    /// its capabilities leave out, each named after it.
    #[test]
    fn what_is_found_follows_the_declared_capabilities() {
        for builder in [Builder::Buildah, Builder::Buildkit, Builder::Buildx, Builder::Kaniko] {
            let caps = capabilities(builder).expect("a builder");
            assert!(!limited(&caps), "{builder}");
            assert_eq!(found(builder, &caps), Vec::<String>::new(), "{builder}");
        }
        let oci = capabilities(Builder::Oci).expect("a builder");
        assert!(limited(&oci));
        assert_eq!(
            found(Builder::Oci, &oci),
            [
                "`# syntax=docker/dockerfile-upstream:master` names a custom frontend, which only BuildKit runs; the oci builder would read the file as a standard Dockerfile",
                "the oci builder does not run commands (`RUN`)",
                "`COPY --parents` is not supported by the oci builder",
                "the oci builder does not download (`ADD https://example.com/x`)",
                "the oci builder does not run commands (`ONBUILD RUN`)",
            ]
        );
    }

    /// Each capability alone decides its instructions: a builder declaring all but one is held
    /// to that one, under its own name (how a new builder's limits reach `check`).
    #[test]
    fn one_missing_capability_finds_its_instructions_only() {
        let full = capabilities(Builder::Buildah).expect("a builder");
        let no_run = Capabilities { run: false, ..full };
        assert_eq!(
            found(Builder::Kaniko, &no_run),
            [
                "the kaniko builder does not run commands (`RUN`)",
                "the kaniko builder does not run commands (`ONBUILD RUN`)"
            ]
        );
        let few_flags = Capabilities { copy_flags: Some(&["from", "chown"]), ..full };
        assert_eq!(
            found(Builder::Kaniko, &few_flags),
            ["`COPY --parents` is not supported by the kaniko builder"]
        );
        let no_download = Capabilities { add_url: false, ..full };
        assert_eq!(
            found(Builder::Kaniko, &no_download),
            ["the kaniko builder does not download (`ADD https://example.com/x`)"]
        );
        let refuses = Capabilities { frontend: Frontend::Refuses, ..full };
        assert_eq!(found(Builder::Kaniko, &refuses).len(), 1);
    }
}
