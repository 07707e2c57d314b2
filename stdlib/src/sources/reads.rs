//! What of its build context an image's build reads, from its Dockerfile, as BuildKit's
//! `dockerfile2llb` works it out (`ctxPaths`, then `FollowPaths`): the sources of every `COPY`
//! and `ADD` without `--from`, and of every `RUN --mount=type=bind` without `from=`, in the
//! stages the target reaches, their words substituted with the image's args, the ARG defaults
//! and `ENV`s in scope, and the platform's automatic `TARGETARCH` and friends. The engine keys
//! an image on those paths alone ([`hephy_engine::ContextReads`]), so a README no instruction
//! copies is no input.
//!
//! Whatever cannot be known before the build is the whole context: a builder that reads no
//! Dockerfile (ko, spin), a Dockerfile that does not parse or names a custom frontend, a source
//! that is the context's root (`COPY . …`), or a word with a variable whose value is not known
//! now (a base image's `ENV`, an injected dependency's reference, `BUILDARCH`).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use hephy_dockerfile::{Command, Dockerfile, Instruction};
use hephy_dsl::{Definition, Image, Model, Platform};
use hephy_engine::{ContextReads, Node, NodeKind, ReadPath};

/// Each local image's Dockerfile as parsed, by path: the platforms of an image parse it once
/// (`None`: it could not be read or parsed).
#[derive(Debug, Default)]
pub(crate) struct Parsed(Mutex<HashMap<PathBuf, Option<Arc<Dockerfile>>>>);

impl Parsed {
    fn get(&self, model: &Model, image: &Image) -> Option<Arc<Dockerfile>> {
        let hephy_dsl::ImageSource::Context { dir } = &image.source else { return None };
        let path = model.root.join(dir).join(&image.dockerfile);
        if let Some(known) = self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&path) {
            return known.clone();
        }
        // Read through the bytes the hashing shares (`read_shared`): the file is read once.
        let parsed = crate::builders::dockerfile::local(&model.root, image)
            .and_then(Result::ok)
            .and_then(|local| hephy_dockerfile::parse(&local.text).ok())
            .map(Arc::new);
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(path, parsed.clone());
        parsed
    }
}

/// What of its context `node` reads (its image's Dockerfile parsed anew; the resolver keeps
/// the parses for a plan).
pub fn context_reads(model: &Model, node: &Node, definition: Option<Definition<'_>>) -> ContextReads {
    reads(model, node, definition, &Parsed::default())
}

/// [`context_reads`] with the Dockerfiles parsed so far.
pub(crate) fn reads(
    model: &Model,
    node: &Node,
    definition: Option<Definition<'_>>,
    parsed: &Parsed,
) -> ContextReads {
    let Some(Definition::Image(image)) = definition else { return ContextReads::Whole };
    if node.kind != NodeKind::Image || !image.builder.reads_dockerfile() {
        return ContextReads::Whole;
    }
    let Some(dockerfile) = parsed.get(model, image) else { return ContextReads::Whole };
    if bases_trigger_reads(model, image, parsed) {
        return ContextReads::Whole;
    }
    if dockerfile.syntax.as_ref().is_some_and(|s| !hephy_dockerfile::is_standard_syntax(&s.text)) {
        // A custom frontend may read the context as it likes.
        return ContextReads::Whole;
    }
    // The build args the builders pass: the image's own, and each dependency's reference
    // (known only once it is built).
    let mut args: HashMap<&str, Value> =
        image.args.iter().map(|(k, v)| (k.as_str(), Value::Known(v.clone()))).collect();
    for arg in node.inject.keys().map(String::as_str).chain(node.inject_registry.values().map(String::as_str))
    {
        args.insert(arg, Value::Unknown);
    }
    match evaluate(&dockerfile, &args, node.platform.as_ref(), node.target.as_deref()) {
        Some(paths) => ContextReads::of(paths),
        None => ContextReads::Whole,
    }
}

/// Whether an image of the graph that `image` is built from (or given as a named context) has
/// an `ONBUILD` trigger that may read the context, which runs in `image`'s build (a base
/// outside the graph is not seen: SPEC's "Keys and inputs" says so).
fn bases_trigger_reads(model: &Model, image: &Image, parsed: &Parsed) -> bool {
    image.deps.iter().filter(|d| matches!(d.kind, hephy_dsl::DependencyKind::From { .. })).any(|dep| {
        let Some(base) = model.images.iter().find(|i| i.name.value == dep.name.value) else { return false };
        let Some(dockerfile) = parsed.get(model, base) else {
            // Its Dockerfile is not read here (a git source, a builder without one): unknown.
            return base.builder.reads_dockerfile();
        };
        dockerfile.instructions.iter().any(|i| match &i.command {
            Command::Onbuild(trigger) => match &trigger.command {
                Command::Copy(copy) => copy.from.is_none(),
                Command::Add(_) => true,
                Command::Run(_) => trigger.flag("mount").is_some(),
                _ => false,
            },
            _ => false,
        })
    })
}

/// A variable's value, or that it has one not known before the build.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Known(String),
    Unknown,
}

/// The variables an instruction sees.
#[derive(Debug, Clone, Default)]
struct Scope {
    vars: HashMap<String, Value>,
    /// The stage starts from an image whose `ENV` is not known: any other name may be set.
    open: bool,
}

impl Scope {
    fn get(&self, name: &str) -> Option<Value> {
        self.vars.get(name).cloned().or_else(|| self.open.then_some(Value::Unknown))
    }
}

/// Another stage a stage reads from (its base, `COPY --from`, a mount's `from=`).
#[derive(Debug, Clone, Copy)]
enum Dep {
    Stage(usize),
    /// A `from` whose value is not known: any earlier stage.
    Earlier,
}

#[derive(Debug, Default)]
struct Stage {
    name: Option<String>,
    scope: Scope,
    deps: Vec<Dep>,
    reads: Vec<ReadPath>,
    /// It reads something not known now: the whole context.
    whole: bool,
}

/// `text` with its variables substituted from `lookup` (as a shell word, or for a JSON-form
/// word variables only); `None` when one has no value known now, or the word is malformed
/// (the build fails on it: any key is as good).
fn substitute(
    text: &str,
    escape: char,
    json: bool,
    lookup: &dyn Fn(&str) -> Option<Value>,
) -> Option<String> {
    let unknown = Cell::new(false);
    let vars = |name: &str| match lookup(name) {
        Some(Value::Known(value)) => Some(value),
        Some(Value::Unknown) => {
            unknown.set(true);
            None
        }
        None => None,
    };
    let out = if json {
        hephy_dockerfile::expand(text, escape, &vars)
    } else {
        hephy_dockerfile::word(text, escape, &vars)
    };
    out.ok().filter(|_| !unknown.get())
}

/// BuildKit's automatic platform args for `platform` (`BUILD…`: the machine that builds, not
/// known now).
fn automatic(platform: Option<&Platform>) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for name in ["BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT"] {
        out.insert(name.to_owned(), Value::Unknown);
    }
    let known = |value: &str| platform.map_or(Value::Unknown, |_| Value::Known(value.to_owned()));
    let p = platform.cloned();
    let p = p.as_ref();
    out.insert("TARGETPLATFORM".to_owned(), known(&p.map(ToString::to_string).unwrap_or_default()));
    out.insert("TARGETOS".to_owned(), known(p.map(Platform::os).unwrap_or_default()));
    out.insert("TARGETARCH".to_owned(), known(p.map(Platform::arch).unwrap_or_default()));
    out.insert("TARGETVARIANT".to_owned(), known(p.and_then(Platform::variant).unwrap_or_default()));
    out
}

/// The context paths `dockerfile` reads when built for `platform` and `target` with `args`;
/// `None` when the whole context is (or cannot be told from it).
fn evaluate(
    dockerfile: &Dockerfile,
    args: &HashMap<&str, Value>,
    platform: Option<&Platform>,
    target: Option<&str>,
) -> Option<Vec<ReadPath>> {
    let escape = dockerfile.escape;
    let mut global = automatic(platform);
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in &dockerfile.instructions {
        match (&instruction.command, stages.len()) {
            (Command::From { image, alias, .. }, _) => {
                let base = substitute(&image.text, escape, false, &|n| global.get(n).cloned());
                let mut stage =
                    Stage { name: alias.as_ref().map(|a| a.text.to_ascii_lowercase()), ..Stage::default() };
                match base.as_deref().and_then(|b| stage_named(&stages, b)) {
                    Some(earlier) => {
                        stage.scope = stages[earlier].scope.clone();
                        stage.deps.push(Dep::Stage(earlier));
                    }
                    None if base.as_deref() == Some("scratch") => {}
                    // A value not known before the build (`FROM build-${BUILDARCH}`): it may
                    // name any earlier stage, so each is reached, as `COPY --from=$X` is.
                    None if base.is_none() => {
                        stage.scope.open = true;
                        stage.deps.push(Dep::Earlier);
                    }
                    // An image (external, a graph image, a named context): its ENV is not known.
                    None => stage.scope.open = true,
                }
                stages.push(stage);
            }
            (Command::Arg(list), 0) => {
                for arg in list {
                    let value = match (args.get(arg.name.text.as_str()), &arg.default) {
                        (Some(given), _) => Some(given.clone()),
                        (None, Some(default)) => Some(
                            substitute(&default.text, escape, false, &|n| global.get(n).cloned())
                                .map_or(Value::Unknown, Value::Known),
                        ),
                        (None, None) => None,
                    };
                    if let Some(value) = value {
                        global.insert(arg.name.text.clone(), value);
                    }
                }
            }
            (_, 0) => {}
            (_, n) => {
                let (earlier, current) = stages.split_at_mut(n - 1);
                dispatch(&mut current[0], earlier, instruction, escape, args, &global)?;
            }
        }
    }
    let target = match target {
        Some(name) => stage_named(&stages, name)?,
        None => stages.len().checked_sub(1)?,
    };
    let mut reached = HashSet::new();
    let mut todo = vec![target];
    while let Some(at) = todo.pop() {
        if !reached.insert(at) {
            continue;
        }
        for dep in &stages[at].deps {
            match *dep {
                Dep::Stage(i) => todo.push(i),
                Dep::Earlier => todo.extend(0..at),
            }
        }
    }
    let mut out = Vec::new();
    for at in reached {
        let stage = &stages[at];
        if stage.whole {
            return None;
        }
        out.extend(stage.reads.iter().cloned());
    }
    Some(out)
}

/// The stage `name` names: an earlier stage's name (case-insensitive) or index.
fn stage_named(stages: &[Stage], name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| name.parse::<usize>().ok().filter(|i| *i < stages.len()))
}

/// What one instruction of `stage` reads of the context, and how it changes the scope;
/// `None` when the Dockerfile cannot be followed (the build fails on it).
fn dispatch(
    stage: &mut Stage,
    earlier: &[Stage],
    instruction: &Instruction,
    escape: char,
    args: &HashMap<&str, Value>,
    global: &HashMap<String, Value>,
) -> Option<()> {
    match &instruction.command {
        Command::Arg(list) => {
            for arg in list {
                let name = arg.name.text.as_str();
                let value = match (args.get(name), &arg.default) {
                    (Some(given), _) => Some(given.clone()),
                    (None, Some(default)) => Some(
                        substitute(&default.text, escape, false, &|n| stage.scope.get(n))
                            .map_or(Value::Unknown, Value::Known),
                    ),
                    // Declared bare: the global value, if there is one (automatic args too).
                    (None, None) => global.get(name).cloned(),
                };
                if let Some(value) = value {
                    stage.scope.vars.insert(name.to_owned(), value);
                }
            }
        }
        Command::Env => {
            let unknown = Cell::new(false);
            let scope = &stage.scope;
            let vars = |name: &str| match scope.get(name) {
                Some(Value::Known(value)) => Some(value),
                Some(Value::Unknown) => {
                    unknown.set(true);
                    None
                }
                None => None,
            };
            let pairs = hephy_dockerfile::pairs(&instruction.args, escape, &vars, "ENV").ok()?;
            let unknown = unknown.get();
            if unknown {
                // A name may itself be what is not known: any name may be set from now on.
                stage.scope.open = true;
            }
            for (key, value) in pairs {
                stage.scope.vars.insert(key, if unknown { Value::Unknown } else { Value::Known(value) });
            }
        }
        Command::Copy(copy) | Command::Add(copy) => {
            let add = matches!(instruction.command, Command::Add(_));
            let lookup = |n: &str| stage.scope.get(n);
            if let Some(from) = &copy.from {
                let dep = substitute(&from.text, escape, false, &lookup)
                    .map_or(Some(Dep::Earlier), |name| stage_named(earlier, &name).map(Dep::Stage));
                stage.deps.extend(dep);
                return Some(());
            }
            let exclude: Option<Vec<String>> = instruction
                .flags
                .iter()
                .filter(|f| f.name == "exclude")
                .map(|f| substitute(&f.value.as_ref()?.text, escape, false, &lookup))
                .collect();
            let exclude = exclude.unwrap_or_default();
            let mut reads = Vec::new();
            let mut whole = false;
            for source in copy.sources() {
                if source.text.starts_with("<<") {
                    continue;
                }
                match substitute(&source.text, escape, copy.json, &lookup) {
                    Some(path) if add && (path.contains("://") || path.starts_with("git@")) => {}
                    Some(path) => reads.push(ReadPath { pattern: path, exclude: exclude.clone() }),
                    None => whole = true,
                }
            }
            stage.reads.extend(reads);
            stage.whole |= whole;
        }
        Command::Run(_) => {
            for flag in instruction.flags.iter().filter(|f| f.name == "mount") {
                let Some(value) = &flag.value else { continue };
                let Some(text) = substitute(&value.text, escape, false, &|n| stage.scope.get(n)) else {
                    stage.whole = true;
                    continue;
                };
                match mount(&text) {
                    Some(Mount::Context(source)) => {
                        stage.reads.push(ReadPath { pattern: source, exclude: Vec::new() });
                    }
                    Some(Mount::From(name)) => {
                        stage.deps.extend(stage_named(earlier, &name).map(Dep::Stage));
                    }
                    Some(Mount::Other) => {}
                    None => stage.whole = true,
                }
            }
        }
        _ => {}
    }
    Some(())
}

/// What a `RUN --mount` reads.
#[derive(Debug, PartialEq, Eq)]
enum Mount {
    /// A bind mount of this context path (`.` for its root).
    Context(String),
    /// A bind or cache mount from a stage, image or named context.
    From(String),
    /// Something that is not the context (cache, tmpfs, secret, ssh).
    Other,
}

/// A `--mount` value (`type=bind,source=x,target=/y`) read as BuildKit's CSV fields; `None`
/// when it is not one this reading follows (quoted fields).
fn mount(text: &str) -> Option<Mount> {
    if text.contains('"') {
        return None;
    }
    let (mut kind, mut from, mut source) = ("bind", None, None);
    for field in text.split(',') {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        match key.trim().to_ascii_lowercase().as_str() {
            "type" => kind = value.trim(),
            "from" => from = Some(value.trim()),
            "source" | "src" => source = Some(value.trim()),
            _ => {}
        }
    }
    Some(match (kind.to_ascii_lowercase().as_str(), from) {
        ("bind" | "cache", Some(from)) if !from.is_empty() => Mount::From(from.to_owned()),
        ("bind", _) => Mount::Context(source.filter(|s| !s.is_empty()).unwrap_or(".").to_owned()),
        _ => Mount::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        text.parse().expect("a platform")
    }

    /// The patterns `dockerfile` reads, sorted; `None` for the whole context.
    fn read(
        dockerfile: &str,
        args: &[(&str, Value)],
        platform: Option<&Platform>,
        target: Option<&str>,
    ) -> Option<Vec<String>> {
        let parsed = hephy_dockerfile::parse(dockerfile).expect("parses");
        let args: HashMap<&str, Value> = args.iter().cloned().collect();
        let mut paths: Vec<String> =
            evaluate(&parsed, &args, platform, target)?.into_iter().map(|r| r.pattern).collect();
        paths.sort();
        Some(paths)
    }

    fn amd64() -> Platform {
        platform("linux/amd64")
    }

    #[test]
    fn copy_and_add_sources_without_from_are_read() {
        let dockerfile = "FROM alpine AS build\nCOPY go.mod go.sum /src/\nCOPY --from=golang:1 /usr/local/go /go\n\
                          ADD https://example.com/x.tgz vendor.tar /v/\nCOPY <<EOF /notes\nhi\nEOF\n\
                          FROM scratch\nCOPY --from=build /out /\nCOPY [\"conf dir/\", \"/etc/app/\"]\n";
        assert_eq!(
            read(dockerfile, &[], Some(&amd64()), None),
            Some(vec!["conf dir/".into(), "go.mod".into(), "go.sum".into(), "vendor.tar".into()])
        );
    }

    #[test]
    fn targetarch_and_args_are_expanded_per_platform() {
        let dockerfile = "ARG DIST=dist\nFROM scratch\nARG TARGETARCH\nARG DIST\nARG FLAVOUR=slim\n\
                          COPY ${DIST}/app-${TARGETARCH}-${FLAVOUR} /app\n";
        assert_eq!(read(dockerfile, &[], Some(&amd64()), None), Some(vec!["dist/app-amd64-slim".into()]));
        assert_eq!(
            read(
                dockerfile,
                &[("FLAVOUR", Value::Known("full".into()))],
                Some(&platform("linux/arm64")),
                None
            ),
            Some(vec!["dist/app-arm64-full".into()])
        );
        // Not declared in the stage: empty, as BuildKit has it (the stage starts from scratch).
        let undeclared = "FROM scratch\nCOPY bin/$TARGETARCH/app /app\n";
        assert_eq!(read(undeclared, &[], Some(&amd64()), None), Some(vec!["bin//app".into()]));
        // ENV in scope, and an earlier stage's.
        let env = "FROM scratch AS base\nENV APP=web\nFROM base\nCOPY ${APP}/ /srv/\n";
        assert_eq!(read(env, &[], Some(&amd64()), None), Some(vec!["web/".into()]));
    }

    #[test]
    fn a_word_not_known_now_or_the_root_is_the_whole_context() {
        // A base image's ENV may set it.
        assert_eq!(read("FROM alpine\nCOPY $APP /app\n", &[], Some(&amd64()), None), None);
        // An injected dependency's reference is known once it is built.
        let injected = "FROM scratch\nARG BASE\nCOPY ${BASE}.txt /\n";
        assert_eq!(read(injected, &[("BASE", Value::Unknown)], Some(&amd64()), None), None);
        // The machine that builds is not known.
        assert_eq!(read("FROM scratch\nARG BUILDARCH\nCOPY $BUILDARCH /\n", &[], Some(&amd64()), None), None);
        // No platform: TARGETARCH is not known either.
        assert_eq!(read("FROM scratch\nARG TARGETARCH\nCOPY $TARGETARCH /\n", &[], None, None), None);
        // `COPY .` reads everything (the engine's matching makes it the whole context).
        let dot = hephy_dockerfile::parse("FROM scratch\nCOPY . /app\n").expect("parses");
        let paths = evaluate(&dot, &HashMap::new(), Some(&amd64()), None).expect("known");
        assert_eq!(ContextReads::of(paths), ContextReads::Whole);
    }

    #[test]
    fn a_from_not_known_now_reaches_every_earlier_stage() {
        // `FROM build-${BUILDARCH}` names a stage only the building machine picks: each earlier
        // stage's sources are read (never dropped from the key).
        let dockerfile = "FROM scratch AS build-amd64\nCOPY amd.txt /\nFROM scratch AS build-arm64\nCOPY arm.txt /\n\
                          FROM build-${BUILDARCH}\nCOPY final.txt /\n";
        assert_eq!(
            read(dockerfile, &[], Some(&amd64()), None),
            Some(vec!["amd.txt".into(), "arm.txt".into(), "final.txt".into()])
        );
    }

    #[test]
    fn copy_parents_and_exclude_keep_their_patterns() {
        let dockerfile =
            "FROM scratch\nCOPY --parents --exclude=*.md --exclude=drafts ./docs/./**/*.html /out/\n";
        let parsed = hephy_dockerfile::parse(dockerfile).expect("parses");
        let paths = evaluate(&parsed, &HashMap::new(), Some(&amd64()), None).expect("known");
        assert_eq!(
            paths,
            [ReadPath {
                pattern: "./docs/./**/*.html".into(),
                exclude: vec!["*.md".into(), "drafts".into()]
            }]
        );
        assert!(matches!(ContextReads::of(paths), ContextReads::Paths(_)));
    }

    #[test]
    fn only_the_stages_the_target_reaches_count() {
        let dockerfile = "FROM scratch AS docs\nCOPY docs/ /docs\nFROM scratch AS build\nCOPY src/ /src\n\
                          FROM scratch AS app\nCOPY --from=build /src /app\nRUN --mount=type=bind,source=tools,target=/t true\n";
        assert_eq!(read(dockerfile, &[], Some(&amd64()), None), Some(vec!["src/".into(), "tools".into()]));
        assert_eq!(read(dockerfile, &[], Some(&amd64()), Some("docs")), Some(vec!["docs/".into()]));
        assert_eq!(read(dockerfile, &[], Some(&amd64()), Some("nope")), None, "an unknown target");
    }

    #[test]
    fn run_mounts_bind_the_context_unless_from_is_given() {
        assert_eq!(mount("type=bind,source=go.sum,target=/x"), Some(Mount::Context("go.sum".into())));
        assert_eq!(mount("target=/src"), Some(Mount::Context(".".into())), "bind is the default type");
        assert_eq!(mount("type=bind,from=build,src=/out,target=/o"), Some(Mount::From("build".into())));
        assert_eq!(mount("type=cache,target=/root/.cache"), Some(Mount::Other));
        assert_eq!(mount("type=secret,id=npmrc"), Some(Mount::Other));
        assert_eq!(mount("type=tmpfs,target=/tmp"), Some(Mount::Other));
        let whole = "FROM scratch\nRUN --mount=type=bind,target=/src make\n";
        let paths = evaluate(&hephy_dockerfile::parse(whole).expect("parses"), &HashMap::new(), None, None);
        assert_eq!(paths.map(ContextReads::of), Some(ContextReads::Whole), "a bind of the whole context");
        let cache = "FROM scratch\nRUN --mount=type=cache,target=/c --mount=type=secret,id=s true\n";
        assert_eq!(read(cache, &[], None, None), Some(vec![]));
    }
}
