//! Builder checks made before anything runs: a graph that asks a builder for what it cannot do
//! is rejected at `check` (and `plan`, `run`) with a diagnostic at the image.

use hephy_dsl::{Code, DependencyKind, Engine, Image, ImageSource, Model, Problem, Problems};

use crate::builders::dockerfile;
use crate::builders::{self, Builder};

/// Every builder problem of `model`; `Ok` when there is none.
pub fn check(model: &Model) -> Result<(), Problems> {
    let mut problems: Vec<Problem> = model
        .images
        .iter()
        .flat_map(|image| {
            check_image(model, image)
                .into_iter()
                .chain(check_executors(model, image))
                .chain(check_references(model, image))
                .chain(check_publish(model, image))
                .chain(crate::wiring::check(model, image))
        })
        .collect();
    if let Err(bad) = crate::release::date() {
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
        .flat_map(|image| crate::wiring::check(model, image))
        .filter(Problem::is_warning)
        .collect();
    (!warnings.is_empty()).then(|| Problems::collect(&model.source, warnings))
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
                image.builder == Builder::Oci,
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
fn check_references(model: &Model, image: &Image) -> Vec<Problem> {
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
        let repository = crate::registry::reference::repository(model, &manifest);
        let mut references = vec![repository.clone()];
        for tag in &image.tags {
            let tagged = node(Some(tag));
            let vars = crate::registry::reference::Vars::new(model, &tagged, None, Some(&"0".repeat(40)));
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
            .help("labels: oci, buildah, kaniko, buildkit, buildx; annotations: oci, buildah, buildx; mirrors: oci, buildah; all on a local executor"),
    ]
}

/// An image left `auto` (its Dockerfile `RUN`s and buildah is not installed).
fn check_auto(model: &Model, image: &Image) -> Vec<Problem> {
    let ImageSource::Context { dir } = &image.source else { return Vec::new() };
    let name = &image.name.value;
    let shown = hephy_engine::join(dir, &image.dockerfile);
    let text = hephy_engine::read_shared(&model.root.join(dir).join(&image.dockerfile))
        .ok()
        .and_then(|bytes| std::str::from_utf8(&bytes).ok().map(str::to_owned))
        .unwrap_or_default();
    let run = dockerfile::read(&text).ok().and_then(|facts| facts.runs.first().cloned());
    let problem = Problem::new(
        Code::InvalidValue,
        format!("image `{name}` runs commands (`RUN`), which only buildah builds here, and buildah is not installed"),
    )
    .help(format!(
        "install buildah (`apt-get install buildah` on Debian and Ubuntu, `dnf install buildah` on Fedora), or give image `{name}` a `builder` (kaniko, buildkit, buildx)"
    ));
    vec![match run {
        Some(run) => problem
            .label((run.span.start..run.span.start + 3).into(), "this `RUN` needs buildah")
            .in_text(shown, text),
        None => problem.label(image.name.span, "built with auto"),
    }]
}

/// What the built-in builder cannot build in a Dockerfile, each at its place in the Dockerfile.
fn check_oci_dockerfile(image: &Image, shown: &str, text: &str) -> Vec<Problem> {
    let name = &image.name.value;
    crate::builders::oci::build::unsupported(text)
        .into_iter()
        .map(|(span, message)| {
            let run = message.contains("`RUN`");
            let help = if run {
                format!(
                    "build it with buildah: add `builder \"buildah\"` to image `{name}` (or drop its `builder \"oci\"`: `auto` picks buildah for a Dockerfile that runs commands)"
                )
            } else {
                "the oci builder builds every Dockerfile instruction but `RUN` and `ADD` of a URL; fetch such files in a task, or build with buildah".to_owned()
            };
            Problem::new(Code::InvalidValue, format!("image `{name}`: {message}"))
                .label(span.into(), if run { "runs a command" } else { "here" })
                .help(help)
                .in_text(shown, text)
        })
        .collect()
}

fn check_image(model: &Model, image: &Image) -> Vec<Problem> {
    let builder = image.builder;
    let Some(capabilities) = builders::capabilities(builder) else { return check_auto(model, image) };
    let span = image.name.span;
    let name = &image.name.value;
    let mut problems = Vec::new();
    if !image.secrets.is_empty() && builder != Builder::Buildah {
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
            .help("build it with buildah (`builder \"buildah\"`), buildkit or buildx, which mount each secret for `RUN --mount=type=secret,id=NAME`"),
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
    let ImageSource::Context { dir } = &image.source else { return problems };
    // Only what a check needs is read: most images need no look at their Dockerfile here.
    if capabilities.run_mount && image.targets.is_empty() {
        return problems;
    }
    let path = model.root.join(dir).join(&image.dockerfile);
    let Ok(bytes) = hephy_engine::read_shared(&path) else { return problems };
    let Ok(text) = std::str::from_utf8(&bytes) else { return problems };
    let shown = hephy_engine::join(dir, &image.dockerfile);
    if builder == Builder::Oci {
        let found = check_oci_dockerfile(image, &shown, text);
        if !found.is_empty() {
            problems.extend(found);
            return problems;
        }
    }
    let facts = match dockerfile::read(text) {
        Ok(facts) => facts,
        Err(e) if builder != Builder::Buildah => {
            problems.push(
                Problem::new(Code::InvalidValue, format!("`{shown}` cannot be read as a Dockerfile"))
                    .label(e.span.into(), e.message)
                    .in_text(shown, text.to_owned()),
            );
            return problems;
        }
        Err(_) => return problems,
    };
    if !capabilities.run_mount
        && let Some(run) = facts.runs.iter().find(|r| r.mount)
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
        if !facts.stages.iter().any(|s| s.eq_ignore_ascii_case(target)) {
            problems.push(
                Problem::new(Code::UnknownDependency, format!("`{shown}` has no stage `{target}`"))
                    .label(span, "builds this target")
                    .help(if facts.stages.is_empty() {
                        "name a stage with `FROM … AS name`".to_owned()
                    } else {
                        format!("its stages are {}", facts.stages.join(", "))
                    }),
            );
        }
    }
    problems
}
