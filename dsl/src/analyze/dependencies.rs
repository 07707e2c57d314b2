//! Dependencies: `from` and `after` resolved to images and tasks, platforms they must
//! cover, and cycles.

use super::*;

impl Analyzer<'_> {
    pub(super) fn deps(
        &mut self,
        owner: &Text,
        drafts: &[DependencyDraft],
        names: &Names<'_>,
    ) -> Vec<Dependency> {
        let mut out: Vec<Dependency> = Vec::new();
        for draft in drafts {
            let name = &draft.name;
            let Some(&position) = names.positions.get(name.as_str()) else {
                let help = (self.sink)
                    .suggest(name, names.list.iter().copied().filter(|n| *n != owner.as_str()))
                    .unwrap_or_else(|| "depend on an image or task defined in this file".to_owned());
                self.sink.push(
                    Problem::new(Code::UnknownDependency, format!("unknown dependency `{}`", name.value))
                        .label(name.span, "no image or task has this name")
                        .help(help),
                );
                continue;
            };
            let same_target = |d: &Dependency| match (&d.kind, &draft.from) {
                (DependencyKind::From { target, .. }, Some(from)) if from.target.is_some() => {
                    target.as_deref() == from.target.as_ref().map(|t| t.as_str())
                }
                _ => true,
            };
            if out.iter().any(|d| *d.name == **name && same_target(d)) {
                self.sink.push(
                    Problem::new(
                        Code::Conflict,
                        format!("`{}` depends on `{}` twice", owner.value, name.value),
                    )
                    .label(name.span, "named again here")
                    .help("name each dependency once"),
                );
                continue;
            }
            let kind = match &draft.from {
                None => DependencyKind::After,
                Some(from) => {
                    let Some(image) = names.images.get(name.as_str()) else {
                        self.sink.push(
                            Problem::new(
                                Code::WrongType,
                                format!("`from` needs an image, and `{}` is a task", name.value),
                            )
                            .label(name.span, "a task")
                            .help_for(
                                format!("use `after \"{}\"` to run after a task", name.value),
                                format!("use `after: [{}]` to run after a task", name.value),
                            ),
                        );
                        continue;
                    };
                    if from.arg.is_none() && from.context.is_none() {
                        self.sink.push(
                            Problem::new(Code::Missing, format!("`from \"{}\"` needs the build arg or the named context that receives its reference", name.value))
                                .label(from.span, "no `arg` or `context` given")
                                .help_for("add `context=\"base\"` for a Dockerfile that says `FROM base`, or `arg=\"BASE\"` for one that says `ARG BASE` / `FROM ${BASE}`", "add `context: base` for a Dockerfile that says `FROM base`, or `arg: BASE` for one that says `ARG BASE` / `FROM ${BASE}`"),
                        );
                        continue;
                    }
                    if let Some(context) = &from.context
                        && !valid_context(context)
                    {
                        self.sink.push(
                            Problem::new(Code::InvalidName, format!("`{}` is not a build context name", context.value))
                                .label(context.span, "invalid name")
                                .help("a named context is what the Dockerfile writes after `FROM` or `COPY --from=`: lower-case letters, digits, `.`, `_`, `-`, `/` and `:`"),
                        );
                    }
                    if let Some(context) = &from.context
                        && let Some(other) =
                            drafts.iter().take_while(|d| !std::ptr::eq(*d, draft)).find_map(|d| {
                                d.from
                                    .as_ref()
                                    .and_then(|f| f.context.as_ref())
                                    .filter(|c| c.value == context.value)
                            })
                    {
                        self.sink.push(
                            Problem::new(
                                Code::Conflict,
                                format!("named context `{}` is given twice", context.value),
                            )
                            .label(context.span, "given again here")
                            .label(other.span, "first given here")
                            .help("give each dependency its own context name"),
                        );
                    }
                    let platform = match from.platform.as_ref().map(|p| p.as_str()) {
                        None | Some("same") => FromPlatform::Same,
                        Some("build") => FromPlatform::Build,
                        Some(other) => {
                            let span = from.platform.as_ref().map_or(from.span, |p| p.span);
                            self.sink.push(
                                Problem::new(Code::InvalidValue, format!("`platform` of a `from` is `same` or `build`, not `{other}`"))
                                    .label(span, "unknown platform choice")
                                    .help_for("`platform=\"build\"` uses the dependency's build for the platform of the machine that builds (for `FROM --platform=$BUILDPLATFORM`); leave it out for the same platform", "`platform: build` uses the dependency's build for the platform of the machine that builds (for `FROM --platform=$BUILDPLATFORM`); leave it out for the same platform"),
                            );
                            FromPlatform::Same
                        }
                    };
                    if let Some(arg) = &from.arg
                        && !valid_variable(arg)
                    {
                        self.sink.push(
                            Problem::new(
                                Code::InvalidName,
                                format!("`{}` is not a valid build arg name", arg.value),
                            )
                            .label(arg.span, "invalid name")
                            .help("names start with a letter or `_` and hold letters, digits and `_`"),
                        );
                    }
                    let target = self.dependency_target(name, image, from.target.as_ref());
                    if let Some(r) = &from.registry_arg
                        && !valid_variable(r)
                    {
                        self.sink.push(
                            Problem::new(
                                Code::InvalidName,
                                format!("`{}` is not a valid build arg name", r.value),
                            )
                            .label(r.span, "invalid name")
                            .help("names start with a letter or `_` and hold letters, digits and `_`"),
                        );
                    }
                    let registry_arg = from.registry_arg.as_ref().map(|r| r.value.clone());
                    let arg = from.arg.as_ref().map(|a| a.value.clone());
                    let context = from.context.as_ref().map(|c| c.value.clone());
                    DependencyKind::From { arg, target, registry_arg, context, platform }
                }
            };
            out.push(Dependency { name: name.clone(), position, kind });
        }
        out
    }

    pub(super) fn dependency_target(
        &mut self,
        name: &Text,
        image: &ImageDraft,
        target: Option<&Text>,
    ) -> Option<String> {
        let targets: Vec<&str> = image.targets.iter().map(|t| t.as_str()).collect();
        match target {
            Some(t) if targets.contains(&t.as_str()) => Some(t.value.clone()),
            Some(t) => {
                let help = did_you_mean(t, targets.iter().copied()).unwrap_or_else(|| {
                    if targets.is_empty() {
                        format!("`{}` builds one target; remove `target`", name.value)
                    } else {
                        format!(
                            "`{}` builds {}",
                            name.value,
                            targets.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
                        )
                    }
                });
                self.sink.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!("image `{}` has no target `{}`", name.value, t.value),
                    )
                    .label(t.span, "unknown target")
                    .help(help),
                );
                None
            }
            None if targets.len() > 1 => {
                self.sink.push(
                    Problem::new(
                        Code::Missing,
                        format!("image `{}` builds several targets; name the one to build from", name.value),
                    )
                    .label(name.span, "which target?")
                    .help_for(
                        format!("add `target=\"{}\"` (one of {})", targets[0], targets.join(", ")),
                        format!("add `target: {}` (one of {})", targets[0], targets.join(", ")),
                    ),
                );
                None
            }
            None => targets.first().map(|t| (*t).to_owned()),
        }
    }

    /// A dependent built for a platform needs its dependency built for it too.
    pub(super) fn platform_coverage(&mut self, model: &Model, doc: &Document) {
        let drafts = doc
            .images
            .iter()
            .map(|i| (i.platforms.as_ref(), &i.name))
            .chain(doc.tasks.iter().map(|t| (t.platforms.as_ref(), &t.name)));
        let defs = model
            .images
            .iter()
            .map(|i| (&i.name, &i.platforms[..], &i.deps[..]))
            .chain(model.tasks.iter().map(|t| (&t.name, &t.platforms[..], &t.deps[..])));
        for ((name, platforms, deps), (written, _)) in defs.zip(drafts) {
            for dep in deps {
                let Some(target) = model.definition(&dep.name) else { continue };
                let theirs = target.platforms();
                if theirs.is_empty() {
                    continue;
                }
                let on_build = matches!(dep.kind, DependencyKind::From { platform: FromPlatform::Build, .. });
                for platform in platforms {
                    // `platform="build"`: the machine's own platform, which is the target's on a
                    // declared executor (each builds its platform natively), the host's otherwise.
                    let host = Platform::host();
                    let platform = if on_build && model.executors.is_empty() { &host } else { platform };
                    if theirs.contains(platform) {
                        continue;
                    }
                    let mut problem = Problem::new(
                        Code::MissingPlatform,
                        format!(
                            "`{}` is built for {platform}, but its dependency `{}` is not",
                            name.value, dep.name.value
                        ),
                    )
                    .label(dep.name.span, format!("not built for {platform}"));
                    if let Some(span) = written
                        .and_then(|w| w.iter().find(|t| t.value == platform.to_string()))
                        .map(|t| t.span)
                    {
                        problem = problem.label(span, "needed here");
                    }
                    self.sink.push(problem.help(format!(
                        "add `{platform}` to the platforms of `{}`, or remove it from `{}`",
                        dep.name.value, name.value
                    )));
                }
            }
        }
    }

    /// Reports each dependency cycle once, as `a → b → c → a`.
    pub(super) fn cycles(&mut self, model: &Model) {
        let names: Vec<&str> = model
            .images
            .iter()
            .map(|i| i.name.as_str())
            .chain(model.tasks.iter().map(|t| t.name.as_str()))
            .collect();
        // In the order of `names` (images, then tasks), by the positions the dependencies
        // were resolved to.
        let edges: Vec<Vec<(usize, SourceSpan)>> = model
            .images
            .iter()
            .map(|i| i.deps.as_slice())
            .chain(model.tasks.iter().map(|t| t.deps.as_slice()))
            .map(|deps| deps.iter().map(|d| (d.position, d.name.span)).collect())
            .collect();
        // 0 = unvisited, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; names.len()];
        for start in 0..names.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&(dep, _)) = edges[node].get(*next) {
                    *next += 1;
                    match state[dep] {
                        0 => {
                            state[dep] = 1;
                            stack.push((dep, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                            let path: Vec<(usize, SourceSpan)> =
                                stack[from..].iter().map(|(n, i)| (*n, edges[*n][i - 1].1)).collect();
                            self.cycle(&names, &path);
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }

    pub(super) fn cycle(&mut self, names: &[&str], path: &[(usize, SourceSpan)]) {
        let mut chain: Vec<&str> = path.iter().map(|(n, _)| names[*n]).collect();
        chain.push(names[path[0].0]);
        let shown = chain.join(" → ");
        let mut problem = if path.len() == 1 {
            Problem::new(Code::Cycle, format!("`{}` depends on itself", names[path[0].0]))
        } else {
            Problem::new(Code::Cycle, format!("dependency cycle: {shown}"))
        };
        for (i, (node, span)) in path.iter().enumerate() {
            let next = chain[i + 1];
            problem = problem.label(*span, format!("`{}` depends on `{next}`", names[*node]));
        }
        self.sink.push(problem.help("break the cycle by removing one of these dependencies"));
    }
}
