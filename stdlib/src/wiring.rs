//! Dependency wiring: does each local Dockerfile use what the graph gives it, and does it take
//! nothing from the graph that the graph does not give it?
//!
//! Takes the facts wiring needs from [`hephy_dockerfile`]'s instructions (`ARG` names,
//! `FROM [--platform=…] IMAGE [AS NAME]`, `COPY --from=NAME`, and where each `$NAME` is used),
//! with byte spans. Problems point into the Dockerfile (its text is the diagnostic's source).

use std::sync::Arc;

use hephy_dockerfile::Command;
use hephy_dsl::{Code, DependencyKind, Engine, FromPlatform, Image, ImageSource, Model, Problem};
use miette::SourceSpan;

use crate::builders;

/// A word of a Dockerfile and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    text: String,
    span: (usize, usize),
}

impl Word {
    fn span(&self) -> SourceSpan {
        (self.span.0, self.span.1 - self.span.0).into()
    }
}

/// A `FROM` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FromLine {
    image: Word,
    /// The `--platform=` value, as written (`$BUILDPLATFORM`).
    platform: Option<String>,
    alias: Option<String>,
}

/// What wiring needs of a Dockerfile.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Facts {
    /// Every `ARG NAME` (before and after the first `FROM`).
    args: Vec<Word>,
    froms: Vec<FromLine>,
    /// Every `COPY --from=NAME`: the name.
    copies: Vec<Word>,
    /// Every `RUN --mount=…,from=NAME`: the name (a named context a build reads, too).
    mounts: Vec<String>,
    /// The text after the keyword of every instruction but `ARG` and `ONBUILD`: where
    /// variables are used.
    words: Vec<Word>,
}

impl From<&hephy_dockerfile::Word> for Word {
    fn from(word: &hephy_dockerfile::Word) -> Word {
        Word { text: word.text.clone(), span: (word.span.start, word.span.end) }
    }
}

/// The wiring facts of `text`, as [`hephy_dockerfile`] reads it; `None` when it does not read
/// (the builder checks say why).
fn facts(text: &str) -> Option<Facts> {
    let dockerfile = hephy_dockerfile::parse(text).ok()?;
    let mut facts = Facts::default();
    for instruction in &dockerfile.instructions {
        let mut uses_of = |i: &hephy_dockerfile::Instruction| {
            facts.words.push(Word { text: i.original.clone(), span: (i.span.start, i.span.end) });
        };
        match &instruction.command {
            Command::Arg(args) => facts.args.extend(args.iter().map(|a| Word::from(&a.name))),
            Command::From { image, platform, alias } => {
                uses_of(instruction);
                facts.froms.push(FromLine {
                    image: image.into(),
                    platform: platform.as_ref().map(|p| p.text.clone()),
                    alias: alias.as_ref().map(|a| a.text.clone()),
                });
            }
            Command::Copy(copy) => {
                uses_of(instruction);
                facts.copies.extend(copy.from.as_ref().map(Word::from));
            }
            Command::Onbuild(_) => {}
            Command::Run(_) => {
                uses_of(instruction);
                facts.mounts.extend(mounted_from(instruction));
            }
            _ => uses_of(instruction),
        }
    }
    Some(facts)
}

/// The `from=` of each `--mount` of a `RUN` (`--mount=type=cache,from=tools,target=/t`).
fn mounted_from(instruction: &hephy_dockerfile::Instruction) -> Vec<String> {
    instruction
        .flags
        .iter()
        .filter(|f| f.name == "mount")
        .filter_map(|f| f.value.as_ref())
        .filter_map(|v| {
            v.text.split(',').find_map(|field| field.trim().strip_prefix("from=").map(str::to_owned))
        })
        .collect()
}

/// Whether `word` uses variable `name` (`$NAME`, `${NAME}`, `${NAME:-…}`).
fn uses(word: &str, name: &str) -> bool {
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let inner = rest.strip_prefix('{').unwrap_or(rest);
        if let Some(after) = inner.strip_prefix(name)
            && !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            return true;
        }
    }
    false
}

/// The wiring problems (errors and warnings) of one image's local Dockerfile.
pub(crate) fn check(model: &Model, image: &Image) -> Vec<Problem> {
    let builder = image.builder;
    let Some(capabilities) = builders::capabilities(builder).filter(|c| c.dockerfile) else {
        return Vec::new();
    };
    if !capabilities.named_contexts
        && let Some(dep) =
            image.deps.iter().find(|d| matches!(&d.kind, DependencyKind::From { context: Some(_), .. }))
    {
        return vec![Problem::new(
            Code::InvalidValue,
            format!("{builder} takes no named build contexts, so `{}` cannot be given `{}` as one", image.name.value, dep.name.value),
        )
        .label(dep.name.span, "a named context")
        .label(image.name.span, format!("built with {builder}"))
        .help("build it with buildah, buildkit, buildx or oci, or pass the reference as a build arg (`arg=`)")];
    }
    if let Some(context) =
        image.build_contexts.iter().find(|c| !capabilities.context_kinds.contains(&c.source.kind()))
    {
        let kind = context.source.kind();
        let takers: Vec<&str> = hephy_dsl::Builder::ALL
            .into_iter()
            .filter(|b| builders::capabilities(*b).is_some_and(|c| c.context_kinds.contains(&kind)))
            .map(hephy_dsl::Builder::name)
            .collect();
        return vec![
            Problem::new(
                Code::InvalidValue,
                format!(
                    "{builder} takes no `{kind}` build context, so `{}` cannot be given `{}`",
                    image.name.value, context.name.value
                ),
            )
            .label(context.name.span, format!("a `{kind}` context"))
            .label(image.name.span, format!("built with {builder}"))
            .help(format!("build it with {}", takers.join(", "))),
        ];
    }
    let context_dep = image
        .deps
        .iter()
        .find(|d| matches!(&d.kind, DependencyKind::From { context: Some(_), .. }))
        .map(|d| &d.name)
        .or_else(|| image.build_contexts.first().map(|c| &c.name));
    if let Some(dep) = context_dep
        && let Some(executor) = model.executors.iter().find(|e| {
            matches!(e.engine, Some(Engine::Kubernetes(_))) && image.platforms.contains(&e.platform)
        })
    {
        return vec![Problem::new(
            Code::InvalidValue,
            format!(
                "`{}` is given `{}` as a named context, and executor `{}` builds with kaniko, which takes none",
                image.name.value, dep.value, executor.name.value
            ),
        )
        .label(dep.span, "a named context")
        .label(executor.name.span, "builds with kaniko")
        .help("build it on a local, ssh or BuildKit executor, or pass the reference as a build arg (`arg=`)")];
    }
    if let Some(context) = image.build_contexts.first()
        && let Some(executor) = model
            .executors
            .iter()
            .find(|e| matches!(e.engine, Some(Engine::Ssh(_))) && image.platforms.contains(&e.platform))
    {
        return vec![Problem::new(
            Code::InvalidValue,
            format!(
                "`{}` is given the build context `{}`, and executor `{}` builds over ssh, which is not given external contexts yet",
                image.name.value, context.name.value, executor.name.value
            ),
        )
        .label(context.name.span, "an external context")
        .label(executor.name.span, "builds over ssh")
        .help("build it on a local or BuildKit executor, or give the context as a graph image (`from … context=`)")];
    }
    let ImageSource::Context { .. } = &image.source else { return Vec::new() };
    // Never read through a link out of the graph's folder (the language's checks report it).
    let Some(Ok(local)) = builders::dockerfile::local(&model.root, image) else { return Vec::new() };
    let shown = local.shown;
    let source: Arc<str> = local.text;
    let Some(facts) = facts(&source) else { return Vec::new() };
    let name = &image.name.value;
    let mut problems = Vec::new();
    let start: SourceSpan = facts.froms.first().map_or((0, 0).into(), |f| f.image.span());
    // Stage names shadow graph images for later lines (a context of that name overrides it).
    let mut stages: Vec<&str> = Vec::new();
    let context_of = |word: &str| {
        image.deps.iter().find_map(|d| match &d.kind {
            DependencyKind::From { context: Some(c), platform, .. } if c == word => {
                Some((&d.name.value, *platform))
            }
            _ => None,
        })
    };
    let is_graph_image = |word: &str| model.images.iter().any(|i| i.name.value == word);
    let unwired = |word: &Word, how: &str| {
        let problem = Problem::new(
            Code::UnknownDependency,
            format!(
                "`{how}{}` in `{shown}` names image `{}` of the graph, but `{name}` does not depend on it",
                word.text, word.text
            ),
        )
        .label(
            word.span(),
            "built by the graph, not wired to this build: the registry image of that name is used",
        );
        let registry = format!("docker.io/library/{}", word.text);
        let help = if depends_on(model, &word.text, name) {
            // `from` would make a cycle (`ubuntu` built `FROM ubuntu`): only the registry image
            // can be meant.
            let why = if word.text == *name {
                format!(
                    "an image cannot be built on itself, so `{name}` means the registry's `{0}`",
                    word.text
                )
            } else {
                format!("`{0}` is built on `{name}`, so `from \"{0}\"` would make a cycle", word.text)
            };
            crate::check::in_syntax(
                model,
                format!(
                    "{why}: name the registry image with `build-context \"{0}\" image=\"{registry}:TAG\"` on image `{name}`, or write it in full in the Dockerfile",
                    word.text
                ),
                format!(
                    "{why}: name the registry image with `build-contexts: {{ {0}: {{ image: \"{registry}:TAG\" }} }}` on image `{name}`, or write it in full in the Dockerfile",
                    word.text
                ),
            )
        } else {
            crate::check::in_syntax(
                model,
                format!(
                    "add `from \"{0}\" context=\"{0}\"` to image `{name}` so it builds on the graph's `{0}` by digest; for the registry image of that name, add `build-context \"{0}\" image=\"{registry}:TAG\"` or write it in full in the Dockerfile",
                    word.text
                ),
                format!(
                    "add `from: {{ {0}: {{ context: {0} }} }}` to image `{name}` so it builds on the graph's `{0}` by digest; for the registry image of that name, add `build-contexts: {{ {0}: {{ image: \"{registry}:TAG\" }} }}` or write it in full in the Dockerfile",
                    word.text
                ),
            )
        };
        problem.help(help).in_source(&shown, Arc::clone(&source))
    };
    // A `FROM NAME` that names an external context while the graph has an image `NAME`: said,
    // so nobody takes it for the graph's image.
    let shadowed = |word: &Word, how: &str| {
        let context = image.build_context(&word.text)?;
        if !is_graph_image(&word.text) {
            return None;
        }
        let what = match &context.source {
            hephy_dsl::ContextSource::Image { reference } => format!("the registry image `{reference}`"),
            hephy_dsl::ContextSource::Path(dir) => format!("the folder `{}`", dir.display()),
            hephy_dsl::ContextSource::Git { url, .. } => format!("the git repository `{url}`"),
            hephy_dsl::ContextSource::OciLayout { path, reference } => {
                format!("`{reference}` of the OCI layout `{}`", path.display())
            }
        };
        Some(
            Problem::new(
                Code::UnknownDependency,
                format!(
                    "`{how}{0}` in `{shown}` names the build context `{0}` ({what}), not the graph's image `{0}`",
                    word.text
                ),
            )
            .label(word.span(), format!("the build context `{}`", word.text))
            .help(crate::check::in_syntax(
                model,
                format!(
                    "to build on the graph's `{0}`, replace the `build-context \"{0}\"` with `from \"{0}\" context=\"{0}\"`",
                    word.text
                ),
                format!(
                    "to build on the graph's `{0}`, replace the build context `{0}` with `from: {{ {0}: {{ context: {0} }} }}`",
                    word.text
                ),
            ))
            .in_source(&shown, Arc::clone(&source))
            .warning(),
        )
    };
    for from in &facts.froms {
        let word = &from.image;
        let known_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&word.text));
        if let Some((dep, platform)) = context_of(&word.text) {
            let wants_build = from.platform.as_deref().is_some_and(|p| uses(p, "BUILDPLATFORM"));
            if wants_build && platform == FromPlatform::Same {
                problems.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("`FROM --platform=$BUILDPLATFORM {}` in `{shown}` runs on the build machine, but `{name}` is given `{dep}`'s build for the target platform", word.text),
                    )
                    .label(word.span(), "wants the build platform's image")
                    .help(crate::check::in_syntax(
                        model,
                        format!("add `platform=\"build\"` to `from \"{dep}\"`"),
                        format!("add `platform: build` to `from: {{ {dep}: … }}`"),
                    ))
                    .in_source(&shown, Arc::clone(&source)),
                );
            } else if !wants_build && platform == FromPlatform::Build {
                problems.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("`FROM {}` in `{shown}` builds for the target platform, but `{name}` is given `{dep}`'s build for the build platform", word.text),
                    )
                    .label(word.span(), "no `--platform=$BUILDPLATFORM` here")
                    .help(crate::check::in_syntax(
                        model,
                        format!("remove `platform=\"build\"` from `from \"{dep}\"`, or write `FROM --platform=$BUILDPLATFORM {}`", word.text),
                        format!("remove `platform: build` from `from: {{ {dep}: … }}`, or write `FROM --platform=$BUILDPLATFORM {}`", word.text),
                    ))
                    .in_source(&shown, Arc::clone(&source)),
                );
            }
        } else if known_stage || word.text.contains('$') {
        } else if let Some(context) = image.build_context(&word.text) {
            // buildah 1.28 too reads `FROM NAME` of a folder context as a registry image's name.
            if matches!(builder, hephy_dsl::Builder::Oci | hephy_dsl::Builder::Buildah)
                && matches!(
                    context.source,
                    hephy_dsl::ContextSource::Path(_) | hephy_dsl::ContextSource::Git { .. }
                )
            {
                problems.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("`FROM {}` in `{shown}` builds on a folder, which {builder} does not", word.text),
                    )
                    .label(word.span(), format!("the `{}` build context is a folder", context.source.kind()))
                    .help(format!("copy from it (`COPY --from={} …`) on another base, or build `{name}` with buildkit or buildx", word.text))
                    .in_source(&shown, Arc::clone(&source)),
                );
            }
            problems.extend(shadowed(word, "FROM "));
        } else if is_graph_image(&word.text) {
            problems.push(unwired(word, "FROM "));
        }
        if let Some(alias) = &from.alias {
            stages.push(alias);
        }
    }
    let stage_names: Vec<&str> = facts.froms.iter().filter_map(|f| f.alias.as_deref()).collect();
    for copy in &facts.copies {
        let stage = copy.text.parse::<usize>().is_ok()
            || stage_names.iter().any(|s| s.eq_ignore_ascii_case(&copy.text));
        if stage || context_of(&copy.text).is_some() {
        } else if image.build_context(&copy.text).is_some() {
            problems.extend(shadowed(copy, "COPY --from="));
        } else if is_graph_image(&copy.text) {
            problems.push(unwired(copy, "COPY --from="));
        }
    }
    for dep in &image.deps {
        let DependencyKind::From { arg, registry_arg, context, .. } = &dep.kind else { continue };
        for arg in arg.iter().chain(registry_arg) {
            match facts.args.iter().find(|a| a.text == *arg) {
                None => problems.push(
                    Problem::new(
                        Code::Missing,
                        format!("`{shown}` never declares `ARG {arg}`, which `{name}` passes `{}`'s reference in", dep.name.value),
                    )
                    .label(start, format!("no `ARG {arg}` before or in this stage"))
                    .help(format!("declare it before the `FROM` that uses it (`ARG {arg}` / `FROM ${{{arg}}}`), or use `context=` for a Dockerfile that says `FROM {}`", dep.name.value))
                    .in_source(&shown, Arc::clone(&source)),
                ),
                Some(declared) if !facts.words.iter().any(|w| uses(&w.text, arg)) => problems.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!("`{shown}` declares `ARG {arg}` but never uses it: `{name}`'s dependency `{}` is not built on", dep.name.value),
                    )
                    .label(declared.span(), "declared, never used")
                    .help(format!("use it (`FROM ${{{arg}}}`), or make `{}` an `after` dependency", dep.name.value))
                    .in_source(&shown, Arc::clone(&source))
                    .warning(),
                ),
                Some(_) => {}
            }
        }
        if let Some(context) = context {
            let used = facts.froms.iter().any(|f| f.image.text == *context)
                || facts.copies.iter().any(|c| c.text == *context)
                || facts.mounts.iter().any(|m| m == context);
            if !used {
                problems.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!("`{shown}` never uses the named context `{context}` that `{name}` is given (`{}`)", dep.name.value),
                    )
                    .label(start, format!("no `FROM {context}` or `COPY --from={context}`"))
                    .help(format!("build on it (`FROM {context}`), or make `{}` an `after` dependency", dep.name.value))
                    .in_source(&shown, Arc::clone(&source))
                    .warning(),
                );
            }
        }
    }
    for context in &image.build_contexts {
        let name_of = &context.name.value;
        let used = facts.froms.iter().any(|f| f.image.text == *name_of)
            || facts.copies.iter().any(|c| c.text == *name_of);
        if !used {
            problems.push(
                Problem::new(
                    Code::UnknownDependency,
                    format!("`{shown}` never uses the build context `{name_of}` that `{name}` is given"),
                )
                .label(start, format!("no `FROM {name_of}` or `COPY --from={name_of}`"))
                .help(format!(
                    "use it (`FROM {name_of}` or `COPY --from={name_of}`), or remove the `build-context`"
                ))
                .in_source(&shown, Arc::clone(&source))
                .warning(),
            );
        }
    }
    problems
}

/// Whether image `from` is image `to`, or is built (through `from` and `after`) on it.
fn depends_on(model: &Model, from: &str, to: &str) -> bool {
    let mut stack = vec![from];
    let mut seen = std::collections::HashSet::new();
    while let Some(name) = stack.pop() {
        if name == to {
            return true;
        }
        if !seen.insert(name) {
            continue;
        }
        if let Some(definition) = model.definition(name) {
            stack.extend(definition.deps().iter().map(|d| d.name.value.as_str()));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_args_froms_and_copies_with_spans() {
        let text = "# syntax=docker/dockerfile:1\nARG BASE=x \\\n    OTHER\nFROM --platform=$BUILDPLATFORM xx AS cross\nFROM ${BASE}\nCOPY --from=cross --chown=1 /a /b\nRUN echo $OTHER\n";
        let f = facts(text).expect("a Dockerfile");
        assert_eq!(f.args.iter().map(|a| a.text.as_str()).collect::<Vec<_>>(), ["BASE", "OTHER"]);
        assert_eq!(&text[f.args[1].span.0..f.args[1].span.1], "OTHER");
        assert_eq!(f.froms.len(), 2);
        assert_eq!(f.froms[0].image.text, "xx");
        assert_eq!(f.froms[0].platform.as_deref(), Some("$BUILDPLATFORM"));
        assert_eq!(f.froms[0].alias.as_deref(), Some("cross"));
        assert_eq!(&text[f.froms[0].image.span.0..f.froms[0].image.span.1], "xx");
        assert_eq!(f.copies[0].text, "cross");
        assert_eq!(&text[f.copies[0].span.0..f.copies[0].span.1], "cross");
        assert!(f.words.iter().any(|w| uses(&w.text, "OTHER")));
        assert!(f.words.iter().any(|w| uses(&w.text, "BASE")));
    }

    /// A named context a `RUN --mount=…,from=NAME` reads is a use of it (one flag or several).
    #[test]
    fn run_mounts_name_what_they_read() {
        let text = "FROM base\nRUN --mount=type=cache,target=/c --mount=type=bind,from=neutron-source,target=/src make\nRUN --mount=from=tools,target=/t true\n";
        let f = facts(text).expect("a Dockerfile");
        assert_eq!(f.mounts, ["neutron-source", "tools"]);
    }

    #[test]
    fn a_byte_order_mark_and_crlf_read_as_buildkit_reads_them() {
        let text = "\u{feff}ARG BASE\r\nFROM ${BASE} AS x\r\nCOPY --from=x \\\r\n  /a /b\r\n";
        let f = facts(text).expect("a Dockerfile");
        assert_eq!(f.args.iter().map(|a| a.text.as_str()).collect::<Vec<_>>(), ["BASE"]);
        assert_eq!(&text[f.args[0].span.0..f.args[0].span.1], "BASE");
        assert_eq!(f.froms[0].alias.as_deref(), Some("x"));
        assert_eq!(&text[f.copies[0].span.0..f.copies[0].span.1], "x");
        assert!(f.words.iter().any(|w| uses(&w.text, "BASE")));
    }

    #[test]
    fn variable_use_is_exact() {
        assert!(uses("${BASE}", "BASE"));
        assert!(uses("$BASE", "BASE"));
        assert!(uses("${BASE:-x}", "BASE"));
        assert!(uses("a/${REG}:${TAG}", "TAG"));
        assert!(!uses("$BASE_IMAGE", "BASE"));
        assert!(!uses("BASE", "BASE"));
    }
}
