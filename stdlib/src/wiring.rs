//! Dependency wiring: does each local Dockerfile use what the graph gives it, and does it take
//! nothing from the graph that the graph does not give it?
//!
//! Reads only the facts wiring needs (`ARG` names, `FROM [--platform=…] IMAGE [AS NAME]`,
//! `COPY|ADD --from=NAME`, and where each `$NAME` is used), with byte spans, through its own
//! small line reader, so it does not depend on how the builders read Dockerfiles. Problems point
//! into the Dockerfile (its text is the diagnostic's source).

use std::sync::Arc;

use hephy_dsl::{Code, DependencyKind, Engine, FromPlatform, Image, ImageSource, Model, Problem};
use miette::SourceSpan;

use crate::builders::{self, Builder};

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
    /// Every `COPY --from=NAME` / `ADD --from=NAME`: the name.
    copies: Vec<Word>,
    /// Every word of every instruction but `ARG`: where variables are used.
    words: Vec<Word>,
}

/// One instruction: its words (the keyword first), each with its span in the text.
fn instructions(text: &str) -> Vec<Vec<Word>> {
    let mut out = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        // A comment line, also inside a continued instruction.
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        let continued = body.trim_end().ends_with('\\');
        let content = if continued { &body[..body.trim_end().len() - 1] } else { body };
        let mut at = 0;
        for piece in content.split(|c: char| c.is_ascii_whitespace()) {
            if !piece.is_empty() {
                current.push(Word { text: piece.to_owned(), span: (start + at, start + at + piece.len()) });
            }
            at += piece.len() + 1;
        }
        if !continued && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn facts(text: &str) -> Facts {
    let mut facts = Facts::default();
    for words in instructions(text) {
        let Some((keyword, rest)) = words.split_first() else { continue };
        match keyword.text.to_ascii_uppercase().as_str() {
            "ARG" => {
                for w in rest {
                    let name = w.text.split('=').next().unwrap_or_default();
                    facts.args.push(Word { text: name.to_owned(), span: (w.span.0, w.span.0 + name.len()) });
                }
            }
            "FROM" => {
                let mut platform = None;
                let mut rest = rest.iter().peekable();
                while let Some(flag) = rest.next_if(|w| w.text.starts_with("--")) {
                    if let Some(value) = flag.text.strip_prefix("--platform=") {
                        platform = Some(value.to_owned());
                    }
                }
                let Some(image) = rest.next() else { continue };
                let alias = match (rest.next(), rest.next()) {
                    (Some(a), Some(name)) if a.text.eq_ignore_ascii_case("as") => Some(name.text.clone()),
                    _ => None,
                };
                facts.words.extend(words.iter().skip(1).cloned());
                facts.froms.push(FromLine { image: image.clone(), platform, alias });
            }
            "COPY" | "ADD" => {
                for w in rest.iter().take_while(|w| w.text.starts_with("--")) {
                    if let Some(name) = w.text.strip_prefix("--from=") {
                        let at = w.span.0 + "--from=".len();
                        facts.copies.push(Word { text: name.to_owned(), span: (at, at + name.len()) });
                    }
                }
                facts.words.extend(rest.iter().cloned());
            }
            _ => facts.words.extend(rest.iter().cloned()),
        }
    }
    facts
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
    if !builders::capabilities(builder).is_some_and(|c| c.dockerfile) {
        return Vec::new();
    }
    if builder == Builder::Kaniko
        && let Some(dep) =
            image.deps.iter().find(|d| matches!(&d.kind, DependencyKind::From { context: Some(_), .. }))
    {
        return vec![Problem::new(
            Code::InvalidValue,
            format!("kaniko takes no named build contexts, so `{}` cannot be given `{}` as one", image.name.value, dep.name.value),
        )
        .label(dep.name.span, "a named context")
        .label(image.name.span, "built with kaniko")
        .help("build it with buildah, buildkit, buildx or oci, or pass the reference as a build arg (`arg=`)")];
    }
    let context_dep =
        image.deps.iter().find(|d| matches!(&d.kind, DependencyKind::From { context: Some(_), .. }));
    if let Some(dep) = context_dep
        && let Some(executor) = model.executors.iter().find(|e| {
            matches!(e.engine, Some(Engine::Kubernetes(_))) && image.platforms.contains(&e.platform)
        })
    {
        return vec![Problem::new(
            Code::InvalidValue,
            format!(
                "`{}` is given `{}` as a named context, and executor `{}` builds with kaniko, which takes none",
                image.name.value, dep.name.value, executor.name.value
            ),
        )
        .label(dep.name.span, "a named context")
        .label(executor.name.span, "builds with kaniko")
        .help("build it on a local, ssh or BuildKit executor, or pass the reference as a build arg (`arg=`)")];
    }
    let ImageSource::Context { dir } = &image.source else { return Vec::new() };
    let path = model.root.join(dir).join(&image.dockerfile);
    let Ok(bytes) = hephy_engine::read_shared(&path) else { return Vec::new() };
    let Ok(text) = std::str::from_utf8(&bytes) else { return Vec::new() };
    let shown = hephy_engine::join(dir, &image.dockerfile);
    let source: Arc<str> = Arc::from(text);
    let facts = facts(text);
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
        Problem::new(
            Code::UnknownDependency,
            format!("`{how}{}` in `{shown}` names image `{}` of the graph, but `{name}` does not depend on it", word.text, word.text),
        )
        .label(word.span(), "built by the graph, not wired to this build")
        .help(format!(
            "add `from \"{0}\" context=\"{0}\"` to image `{name}` (YAML: `from: {{ {0}: {{ context: {0} }} }}`) so it builds on the graph's `{0}` by digest; for a registry image of that name, write it in full (`docker.io/library/{0}`)",
            word.text
        ))
        .in_source(&shown, Arc::clone(&source))
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
                    .help(format!("add `platform=\"build\"` to `from \"{dep}\"` (YAML: `platform: build`)"))
                    .in_source(&shown, Arc::clone(&source)),
                );
            } else if !wants_build && platform == FromPlatform::Build {
                problems.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("`FROM {}` in `{shown}` builds for the target platform, but `{name}` is given `{dep}`'s build for the build platform", word.text),
                    )
                    .label(word.span(), "no `--platform=$BUILDPLATFORM` here")
                    .help(format!("remove `platform=\"build\"` from `from \"{dep}\"`, or write `FROM --platform=$BUILDPLATFORM {}`", word.text))
                    .in_source(&shown, Arc::clone(&source)),
                );
            }
        } else if !known_stage && !word.text.contains('$') && is_graph_image(&word.text) {
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
        if !stage && context_of(&copy.text).is_none() && is_graph_image(&copy.text) {
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
                || facts.copies.iter().any(|c| c.text == *context);
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
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_args_froms_and_copies_with_spans() {
        let text = "# syntax=docker/dockerfile:1\nARG BASE=x \\\n    OTHER\nFROM --platform=$BUILDPLATFORM xx AS cross\nFROM ${BASE}\nCOPY --from=cross --chown=1 /a /b\nRUN echo $OTHER\n";
        let f = facts(text);
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
