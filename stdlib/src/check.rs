//! Builder checks made before anything runs: a graph that asks a builder for what it cannot do
//! is rejected at `check` (and `plan`, `run`) with a diagnostic at the image.

use hephy_dsl::{Code, DependencyKind, Engine, Image, ImageSource, Model, Problem, Problems};

use crate::builders::dockerfile;
use crate::builders::instructions::{self, Cannot};
use crate::builders::{self, Builder, Capabilities, Frontend};

/// Every builder problem of `model`; `Ok` when there is none.
pub fn check(model: &Model) -> Result<(), Problems> {
    // Tags are rendered to be checked: git is asked (once) only if a template says so.
    let release = crate::release::Release::new(&model.root);
    let mut problems: Vec<Problem> = model
        .images
        .iter()
        .flat_map(|image| {
            check_image(model, image)
                .into_iter()
                .chain(check_executors(model, image))
                .chain(check_references(model, &release, image))
                .chain(check_publish(model, image))
                .chain(crate::wiring::check(model, image))
                .chain(check_frontend(model, image))
        })
        .collect();
    if let Err(bad) = crate::release::plan_date() {
        problems.push(
            Problem::new(Code::InvalidValue, bad.to_string()).help(
                "set `HEPHY_DATE` to the pipeline's date, e.g. `20260131`, or unset it for today's (UTC)",
            ),
        );
    }
    if problems.iter().all(Problem::is_warning) {
        Ok(())
    } else {
        Err(Problems::collect(&model.source, problems))
    }
}

/// The warnings of `model`'s checks (a dependency a Dockerfile never uses); `None` when none.
pub fn warnings(model: &Model) -> Option<Problems> {
    let warnings: Vec<Problem> = model
        .images
        .iter()
        .flat_map(|image| crate::wiring::check(model, image).into_iter().chain(check_frontend(model, image)))
        .filter(Problem::is_warning)
        .collect();
    (!warnings.is_empty()).then(|| Problems::collect(&model.source, warnings))
}

/// A `# syntax=` custom frontend under a builder that reads the Dockerfile itself and ignores
/// the line ([`Frontend::Ignores`]: buildah, kaniko): a warning, since the file may mean
/// something else to its frontend. (The `oci` builder refuses it: [`check_dockerfile`];
/// BuildKit runs it.)
/// `kdl` in a KDL graph, `yaml` in a YAML one: a help that points into a Dockerfile is not
/// attached to the graph file, so it chooses its syntax here.
pub(crate) fn in_syntax(model: &Model, kdl: String, yaml: String) -> String {
    match model.source.syntax() {
        hephy_dsl::Syntax::Kdl => kdl,
        hephy_dsl::Syntax::Yaml => yaml,
    }
}

/// A builder setting as the graph file writes it: `builder "buildah"` or `builder: buildah`.
fn builder_setting(model: &Model, builder: &str) -> String {
    in_syntax(model, format!("`builder \"{builder}\"`"), format!("`builder: {builder}`"))
}

fn check_frontend(model: &Model, image: &Image) -> Vec<Problem> {
    let ignores = |c: Capabilities| c.dockerfile && c.frontend == Frontend::Ignores;
    if !builders::capabilities(image.builder).is_some_and(ignores) {
        return Vec::new();
    }
    let Some(Ok(local)) = dockerfile::local(&model.root, image) else { return Vec::new() };
    let (parsed, _) = hephy_dockerfile::parse_all(&local.text);
    let Some(syntax) = parsed.syntax.filter(|s| !hephy_dockerfile::is_standard_syntax(&s.text)) else {
        return Vec::new();
    };
    let name = &image.name.value;
    vec![
        Problem::new(
            Code::InvalidValue,
            format!(
                "`{}` asks for the frontend `{}`, which {} does not run: it reads the file as a standard Dockerfile",
                local.shown, syntax.text, image.builder
            ),
        )
        .label(syntax.span.into(), "a custom frontend")
        .help(format!(
            "build image `{name}` with BuildKit ({} or {}) to run the frontend, or remove the line if the file is a standard Dockerfile",
            builder_setting(model, "buildkit"),
            builder_setting(model, "buildx")
        ))
        .in_source(&local.shown, local.text)
        .warning(),
    ]
}

/// What the executors of an image's platforms can build: an ssh host runs the built-in `oci`
/// builder, a BuildKit daemon and a Kubernetes cluster (kaniko) build Dockerfiles.
fn check_executors(model: &Model, image: &Image) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(capabilities) = builders::capabilities(image.builder) else { return problems };
    for executor in model.executors.iter().filter(|e| image.platforms.contains(&e.platform)) {
        let (place, span, fits, help) = match &executor.engine {
            Some(Engine::Ssh(ssh)) => (
                "an ssh host",
                ssh.span,
                capabilities.in_process,
                "ssh executors build with the built-in oci builder",
            ),
            Some(Engine::Buildkit(addr)) => (
                "a BuildKit daemon",
                addr.span,
                capabilities.dockerfile,
                "a BuildKit daemon builds Dockerfiles",
            ),
            Some(Engine::Kubernetes(namespace)) => {
                ("Kubernetes (kaniko)", namespace.span, capabilities.dockerfile, "kaniko builds Dockerfiles")
            }
            None => continue,
        };
        if !fits {
            problems.push(
                Problem::new(
                    Code::InvalidValue,
                    format!(
                        "image `{}` is built with {}, which {place} does not run (executor `{}`, {})",
                        image.name.value, image.builder, executor.name.value, executor.platform
                    ),
                )
                .label(image.name.span, format!("built with {}", image.builder))
                .label(span, format!("builds {}", executor.platform))
                .help(help),
            );
        }
    }
    problems
}

/// The references an image is pushed under (its repository, with each extra tag) must be
/// valid OCI references before any of them reaches a command line or a registry.
fn check_references(model: &Model, release: &crate::release::Release, image: &Image) -> Vec<Problem> {
    if model.registry.is_none() {
        return Vec::new();
    }
    let targets: Vec<Option<&String>> =
        if image.targets.is_empty() { vec![None] } else { image.targets.iter().map(Some).collect() };
    let mut problems = Vec::new();
    for target in targets {
        let node = |tag: Option<&String>| {
            let kind =
                if tag.is_some() { hephy_engine::NodeKind::Tag } else { hephy_engine::NodeKind::Manifest };
            let local = hephy_engine::LOCAL_EXECUTOR.into();
            hephy_engine::Node::new(&image.name.value, kind, None, target.cloned(), tag.cloned(), local)
        };
        let manifest = node(None);
        let repository = crate::registry::reference::repository(model, release, &manifest);
        let mut references = vec![repository.clone()];
        for tag in &image.tags {
            let tagged = node(Some(tag));
            let vars =
                crate::registry::reference::Vars::new(model, release, &tagged, None, Some(&"0".repeat(40)));
            // A tag git leaves empty here (`{git_tag}` on an untagged commit) is the push's
            // error; the language's check has validated its shape with sample values.
            if let Ok(rendered) = vars.render_tag(&model.naming.tag) {
                references.push(format!("{repository}:{rendered}"));
            }
        }
        for reference in references {
            if let Err(e) = crate::registry::Reference::parse(&reference) {
                problems.push(
                    Problem::new(Code::InvalidValue, format!("image `{}` cannot be pushed: {e}", image.name.value))
                        .label(image.name.span, "this image's references")
                        .help("image names, targets and tags become registry references: lower-case letters, digits, `.`, `_`, `-`"),
                );
                return problems;
            }
        }
    }
    problems
}

/// Labels, annotations and mirrors are written by the builders that can ([`writes`]), on this
/// machine; another builder (or a remote executor) would drop them silently.
///
/// [`writes`]: crate::builders::writes
fn check_publish(model: &Model, image: &Image) -> Vec<Problem> {
    let publish = &image.publish;
    let asks = [
        !publish.labels.is_empty(),
        !publish.annotations.is_empty(),
        !model.mirrors_of(image).is_empty() && model.registry.is_some(),
    ];
    if !asks.iter().any(|a| *a) {
        return Vec::new();
    }
    let remote = model.executors.iter().any(|e| image.platforms.contains(&e.platform) && e.engine.is_some());
    let writes = crate::builders::writes(image.builder);
    let writes = [writes.0, writes.1, writes.2];
    let names = ["labels", "annotations", "mirrors"];
    let Some(i) = (0..3).find(|&i| asks[i] && (remote || !writes[i])) else { return Vec::new() };
    let (what, why) = if remote {
        (names[i], "a remote executor builds it".to_owned())
    } else {
        (names[i], format!("the {} builder does not write them", image.builder))
    };
    vec![
        Problem::new(Code::InvalidValue, format!("image `{}` has {what}, and {why}", image.name.value))
            .label(image.name.span, "this image")
            .help(writers_help()),
    ]
}

/// Which builders write labels, annotations and mirrors, as their capabilities say
/// (`labels: oci, buildah, kaniko, buildkit, buildx; …`).
fn writers_help() -> String {
    let named = |writes: fn(&Capabilities) -> bool| {
        Builder::ALL
            .into_iter()
            .filter(|b| builders::capabilities(*b).is_some_and(|c| writes(&c)))
            .map(Builder::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "labels: {}; annotations: {}; mirrors: {}; all on a local executor",
        named(|c| c.labels),
        named(|c| c.annotations),
        named(|c| c.mirrors)
    )
}

/// An image left `auto` (its Dockerfile `RUN`s and buildah is not installed).
fn check_auto(model: &Model, image: &Image) -> Vec<Problem> {
    let Some(Ok(local)) = dockerfile::local(&model.root, image) else { return Vec::new() };
    let name = &image.name.value;
    let run = hephy_dockerfile::parse(&local.text).ok().and_then(|d| {
        d.instructions.iter().find(|i| i.runs()).map(hephy_dockerfile::Instruction::keyword_span)
    });
    let problem = Problem::new(
        Code::InvalidValue,
        format!("image `{name}` runs commands (`RUN`), which only buildah builds here, and buildah is not installed"),
    )
    .help(format!(
        "install buildah (`apt-get install buildah` on Debian and Ubuntu, `dnf install buildah` on Fedora), or give image `{name}` a `builder` (kaniko, buildkit, buildx)"
    ));
    vec![match run {
        Some(span) => {
            problem.label(span.into(), "this `RUN` needs buildah").in_source(&local.shown, local.text)
        }
        None => problem.label(image.name.span, "built with auto"),
    }]
}

/// The fix for a Dockerfile that does not read.
fn parse_help(error: &hephy_dockerfile::ParseError) -> &'static str {
    match error.kind {
        hephy_dockerfile::ParseErrorKind::TooMany(_) => {
            "hephy reads at most 10000 instructions of a Dockerfile (SPEC.md, Limits): split the build into images of the graph that build on each other"
        }
        hephy_dockerfile::ParseErrorKind::UnknownFlag { .. }
        | hephy_dockerfile::ParseErrorKind::FlagValue { .. } => {
            "write the flag as the Dockerfile reference does (https://docs.docker.com/reference/dockerfile/)"
        }
        _ => {
            "fix the line as the Dockerfile reference writes it (https://docs.docker.com/reference/dockerfile/)"
        }
    }
}

/// The most problems one Dockerfile reports (a generated file may repeat one a thousand times).
const MOST_PER_DOCKERFILE: usize = 10;

/// What a builder's capabilities leave out of a Dockerfile (for now only the built-in
/// builder's are limited so), each at its place in the Dockerfile.
fn check_dockerfile(
    model: &Model,
    image: &Image,
    capabilities: &Capabilities,
    local: &dockerfile::Local,
) -> Vec<Problem> {
    let name = &image.name.value;
    let found = instructions::unsupported(&local.text, image.builder, capabilities);
    let total = found.len();
    let mut problems: Vec<Problem> = found
        .into_iter()
        .take(MOST_PER_DOCKERFILE)
        .map(|unsupported| {
            let (label, help) = match &unsupported.what {
                Cannot::Runs { .. } => ("runs a command", format!(
                    "build it with buildah: add {} to image `{name}` (or drop its {}: `auto` picks buildah for a Dockerfile that runs commands)",
                    builder_setting(model, "buildah"),
                    builder_setting(model, "oci")
                )),
                Cannot::Parse(e) => ("here", parse_help(e).to_owned()),
                Cannot::Frontend { .. } => ("a custom frontend", format!(
                    "build image `{name}` with BuildKit ({} or {}), which runs the frontend; or remove the line to build it as a standard Dockerfile",
                    builder_setting(model, "buildkit"),
                    builder_setting(model, "buildx")
                )),
                Cannot::Other(_) => ("here", "the oci builder builds every Dockerfile instruction but `RUN` and `ADD` of a URL; fetch such files in a task, or build with buildah".to_owned()),
            };
            let message = match &unsupported.what {
                Cannot::Parse(e) => format!("image `{name}`: `{}` line {}, column {}: {e}", local.shown, e.line, e.column),
                other => format!("image `{name}`: {other}"),
            };
            Problem::new(Code::InvalidValue, message)
                .label(unsupported.span.into(), label)
                .help(help)
                .in_source(&local.shown, std::sync::Arc::clone(&local.text))
        })
        .collect();
    if total > MOST_PER_DOCKERFILE {
        problems.push(
            Problem::new(
                Code::InvalidValue,
                format!(
                    "image `{name}`: `{}` has {} more such problems",
                    local.shown,
                    total - MOST_PER_DOCKERFILE
                ),
            )
            .label(image.name.span, format!("built with {}", image.builder))
            .help("fix the ones above and check again"),
        );
    }
    problems
}

fn check_image(model: &Model, image: &Image) -> Vec<Problem> {
    let builder = image.builder;
    let Some(capabilities) = builders::capabilities(builder) else { return check_auto(model, image) };
    let span = image.name.span;
    let name = &image.name.value;
    let mut problems = Vec::new();
    if !image.secrets.is_empty() && !capabilities.secrets {
        let why = if capabilities.run {
            "hands secrets to builds only with buildah"
        } else {
            "runs no commands, so a secret has no use"
        };
        problems.push(
            Problem::new(
                Code::InvalidValue,
                format!("image `{name}` uses secrets, and the {} builder {why}", builder.name()),
            )
            .label(span, format!("built with {}", builder.name()))
            .help_for(
                "build it with buildah (`builder \"buildah\"`), buildkit or buildx, which mount each secret for `RUN --mount=type=secret,id=NAME`",
                "build it with buildah (`builder: buildah`), buildkit or buildx, which mount each secret for `RUN --mount=type=secret,id=NAME`",
            ),
        );
    }
    let remote = model.executors.iter().find(|e| image.platforms.contains(&e.platform) && e.engine.is_some());
    if !image.secrets.is_empty()
        && let Some(executor) = remote
    {
        problems.push(
            Problem::new(
                Code::InvalidValue,
                format!(
                    "image `{name}` uses secrets, which hephy does not send to executor `{}`",
                    executor.name.value
                ),
            )
            .label(span, "uses secrets")
            .label(executor.name.span, "builds elsewhere")
            .help("build images that need secrets on a local executor"),
        );
    }
    if !capabilities.dockerfile {
        if !image.targets.is_empty() {
            problems.push(
                Problem::new(Code::InvalidValue, format!("{} builds no Dockerfile, so image `{name}` cannot have targets", builder.name()))
                    .label(span, format!("built with {}", builder.name()))
                    .help("remove `target`/`targets`, or build it with a Dockerfile builder (buildah, kaniko, buildkit, buildx)"),
            );
        }
        if let Some(dep) = image.deps.iter().find(|d| matches!(d.kind, DependencyKind::From { .. })) {
            problems.push(
                Problem::new(
                    Code::InvalidValue,
                    format!("{} takes no build args, so `from` cannot pass it a base image", builder.name()),
                )
                .label(dep.name.span, "passed as a build arg")
                .label(span, format!("built with {}", builder.name()))
                .help("use `after` to order the builds, or a Dockerfile builder"),
            );
        }
        return problems;
    }
    let ImageSource::Context { .. } = &image.source else { return problems };
    // Only what a check needs is read: most images need no look at their Dockerfile here.
    if capabilities.run_mount && image.targets.is_empty() && !instructions::limited(&capabilities) {
        return problems;
    }
    // A Dockerfile that cannot be opened (missing, a FIFO, a link out of the graph's folder) is
    // the graph's problem, reported by the language's checks; nothing of it is read here.
    let Some(Ok(local)) = dockerfile::local(&model.root, image) else { return problems };
    if instructions::limited(&capabilities) {
        let found = check_dockerfile(model, image, &capabilities, &local);
        if !found.is_empty() {
            problems.extend(found);
            return problems;
        }
    }
    let parsed = match hephy_dockerfile::parse(&local.text) {
        Ok(parsed) => parsed,
        Err(e) if !capabilities.own_reader => {
            problems.push(
                Problem::new(
                    Code::InvalidValue,
                    format!(
                        "`{}` cannot be read as a Dockerfile (line {}, column {})",
                        local.shown, e.line, e.column
                    ),
                )
                .label(e.span.clone().into(), e.to_string())
                .help(parse_help(&e))
                .in_source(&local.shown, local.text),
            );
            return problems;
        }
        Err(_) => return problems,
    };
    let shown = &local.shown;
    let stages: Vec<&str> = parsed
        .instructions
        .iter()
        .filter_map(|i| match &i.command {
            hephy_dockerfile::Command::From { alias: Some(alias), .. } => Some(alias.text.as_str()),
            _ => None,
        })
        .collect();
    if !capabilities.run_mount
        && let Some(run) =
            parsed.instructions.iter().find(|i| i.keyword() == "RUN" && i.flag("mount").is_some())
    {
        problems.push(
            Problem::new(
                Code::InvalidValue,
                format!("{} cannot run `RUN --mount` ({shown}, line {})", builder.name(), run.line),
            )
            .label(span, format!("built with {}", builder.name()))
            .help("build this image with buildah or buildkit, or drop the `--mount`"),
        );
    }
    for target in &image.targets {
        if !stages.iter().any(|s| s.eq_ignore_ascii_case(target)) {
            problems.push(
                Problem::new(Code::UnknownDependency, format!("`{shown}` has no stage `{target}`"))
                    .label(span, "builds this target")
                    .help(if stages.is_empty() {
                        "name a stage with `FROM … AS name`".to_owned()
                    } else {
                        format!("its stages are {}", stages.join(", "))
                    }),
            );
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    /// The help naming the builders that write labels, annotations and mirrors comes from
    /// their capabilities and reads as it always did.
    #[test]
    fn the_writers_are_named_from_their_capabilities() {
        assert_eq!(
            super::writers_help(),
            "labels: oci, buildah, kaniko, buildkit, buildx; annotations: oci, buildah, buildx; mirrors: oci, buildah; all on a local executor"
        );
    }
}
