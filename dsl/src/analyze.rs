//! The analyzer: [`Document`] → [`Model`].
//!
//! The only place that gives a graph file its meaning and reports meaning errors: invalid and
//! duplicate names, unknown dependencies, cycles, invalid platforms, platforms a dependency
//! lacks, platforms no executor builds, and paths that are missing or leave the graph's folder.
//! It keeps going after an error so that one run reports every problem.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use miette::SourceSpan;

use crate::diagnostic::{Code, Problem, Sink, did_you_mean};
use crate::document::{DependencyDraft, Document, ImageDraft, TaskDraft, Text};
use crate::model::{
    BUILDERS, Compression, DEFAULT_BUILDER, DefinitionIndex, Dependency, DependencyKind, Executor,
    FromPlatform, Image, ImageSource, KoSettings, Model, Naming, Publish, Schedule, Secret, SecretSource,
    Task,
};
use crate::platform::{Platform, PlatformError};
use crate::source::SourceFile;

/// Whether `text` is a registry address by the OCI reference grammar: `host[:port]` (domain
/// components, or `[IPv6]`), then lower-case path components.
pub(crate) fn valid_registry(text: &str) -> bool {
    let mut parts = text.split('/');
    let host = parts.next().unwrap_or("");
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') => (name, Some(port)),
        _ => (host, None),
    };
    let domain_ok = if name.starts_with('[') {
        name.len() > 2
            && name.ends_with(']')
            && name[1..name.len() - 1].chars().all(|c| c.is_ascii_hexdigit() || c == ':')
    } else {
        !name.is_empty()
            && name.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            })
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let path_ok = parts.all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    });
    domain_ok && port_ok && path_ok
}

/// Whether `name` can be an environment variable's name.
fn env_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `url` is a repository URL git can be given safely: a known scheme, or scp-like
/// `user@host:path`; never something git could read as an option.
fn valid_git_url(url: &str) -> bool {
    if url.starts_with('-') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            ["https", "http", "ssh", "git", "file", "git+ssh", "ssh+git"].contains(&scheme)
                && !rest.is_empty()
        }
        None => url.split_once(':').is_some_and(|(left, path)| {
            left.split_once('@').is_some_and(|(user, host)| !user.is_empty() && !host.is_empty())
                && !path.is_empty()
        }),
    }
}

/// Analyzes `doc`, read from `source`, whose relative paths resolve against `root`.
pub(crate) fn analyze(doc: Document, source: &SourceFile, root: &Path, sink: &mut Sink) -> Option<Model> {
    let canonical_root = root.canonicalize().ok();
    let mut a = Analyzer { sink, root, canonical_root };
    let registry = doc.registry.clone().map(|r| a.registry(r));
    let platforms = match &doc.platforms {
        Some(list) => a.platforms(list),
        None => vec![Platform::host()],
    };
    let builder = match &doc.builder {
        Some(b) => a.builder(b),
        None => DEFAULT_BUILDER.to_owned(),
    };
    let naming = a.naming(doc.naming.as_ref());
    let executors = a.executors(&doc);
    a.unique_names(&doc);
    let default_timeout = doc.timeout.as_ref().and_then(|t| a.timeout(t));
    let mut images: Vec<Image> = doc.images.iter().map(|i| a.image(i, &platforms, &builder)).collect();
    let mut tasks: Vec<Task> = doc.tasks.iter().map(|t| a.task(t)).collect();
    for (image, draft) in images.iter_mut().zip(&doc.images) {
        image.timeout = draft.timeout.as_ref().map_or(default_timeout, |t| a.timeout(t));
    }
    for (task, draft) in tasks.iter_mut().zip(&doc.tasks) {
        task.timeout = draft.timeout.as_ref().map_or(default_timeout, |t| a.timeout(t));
    }
    let secrets = a.secrets(&doc);
    for (image, draft) in images.iter_mut().zip(&doc.images) {
        image.secrets = a.secret_uses(&draft.secrets, &secrets);
    }
    for (task, draft) in tasks.iter_mut().zip(&doc.tasks) {
        task.secrets = a.secret_uses(&draft.secrets, &secrets);
    }
    let mirrors: Vec<String> = doc.mirrors.iter().map(|m| a.registry(m.clone())).collect();
    let labels = a.metadata(&doc.labels, "label");
    let annotations = a.metadata(&doc.annotations, "annotation");
    for (image, draft) in images.iter_mut().zip(&doc.images) {
        image.publish.labels = labels.clone();
        image.publish.labels.extend(a.metadata(&draft.labels, "label"));
        image.publish.annotations = annotations.clone();
        image.publish.annotations.extend(a.metadata(&draft.annotations, "annotation"));
        image.publish.repository = draft.repository.as_ref().map(|r| a.template(r, &[]));
        if !draft.mirrors.is_empty() {
            image.publish.mirrors = Some(draft.mirrors.iter().map(|m| a.registry(m.clone())).collect());
        }
    }
    let names = Names::new(&doc);
    for (image, draft) in images.iter_mut().zip(&doc.images) {
        image.deps = a.deps(&draft.name, &draft.deps, &names);
    }
    for (task, draft) in tasks.iter_mut().zip(&doc.tasks) {
        task.deps = a.deps(&draft.name, &draft.deps, &names);
    }
    let schedules = doc.schedules.iter().map(|s| a.schedule(s, &names)).collect();
    let groups = a.groups(&doc, &names);
    drop(names);
    let mut model = Model {
        index: foldhash::HashMap::default(),
        source: source.clone(),
        root: root.to_path_buf(),
        registry,
        naming,
        builder,
        platforms,
        executors,
        images,
        tasks,
        schedules,
        groups,
        secrets,
        mirrors,
    };
    model.index = model
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| (image.name.value.clone(), DefinitionIndex::Image(i)))
        .chain(
            model
                .tasks
                .iter()
                .enumerate()
                .map(|(i, task)| (task.name.value.clone(), DefinitionIndex::Task(i))),
        )
        .collect();
    a.platform_coverage(&model, &doc);
    a.executor_coverage(&model, &doc);
    if a.sink.is_empty() {
        // Every reference the graph renders, once its names and tags are otherwise sound.
        crate::reference::check(&doc, &model).into_iter().for_each(|p| a.sink.push(p));
    }
    let empty = doc.images.is_empty() && doc.tasks.is_empty();
    // The parse tree is done with: freed before the cycle check, so the two are not both held
    // (and the allocator takes back the tree's many small blocks here, not in whatever next
    // asks it for a large one).
    drop(doc);
    a.cycles(&model);
    if empty && a.sink.is_empty() {
        a.sink.push(
            Problem::new(
                Code::Missing,
                format!("`{}` defines no images and no tasks", source.path().display()),
            )
            .help(
                "declare at least one `image \"NAME\" { context \"DIR\" }` or `task \"NAME\" { run \"…\" }`",
            ),
        );
    }
    model.images.iter_mut().for_each(|i| i.platforms.sort());
    // With problems too: later stages (the builders' checks) report theirs in the same run.
    Some(model)
}

/// The names of images and tasks, for lookups and suggestions.
struct Names<'d> {
    list: Vec<&'d str>,
    /// Each name's position among all definitions (images, then tasks), as in the model.
    positions: foldhash::HashMap<&'d str, usize>,
    images: foldhash::HashMap<&'d str, &'d ImageDraft>,
}

impl<'d> Names<'d> {
    fn new(doc: &'d Document) -> Names<'d> {
        let list: Vec<&str> = doc
            .images
            .iter()
            .map(|i| i.name.as_str())
            .chain(doc.tasks.iter().map(|t| t.name.as_str()))
            .collect();
        let positions = list.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let images = doc.images.iter().map(|i| (i.name.as_str(), i)).collect();
        Names { list, positions, images }
    }
}

struct Analyzer<'a> {
    sink: &'a mut Sink,
    root: &'a Path,
    canonical_root: Option<std::path::PathBuf>,
}

impl Analyzer<'_> {
    fn registry(&mut self, registry: Text) -> String {
        if !valid_registry(registry.value.trim_end_matches('/')) {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("`{}` is not a registry address", registry.value))
                    .label(registry.span, "not `host[:port][/path]`")
                    .help("write the registry host and path prefix without a scheme, e.g. `registry.example.com/platform`"),
            );
        }
        registry.value.trim_end_matches('/').to_owned()
    }

    fn naming(&mut self, draft: Option<&crate::document::NamingDraft>) -> Naming {
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
    fn template(&mut self, text: &Text, extra: &[&str]) -> String {
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
    fn metadata(&mut self, pairs: &[(Text, Text)], what: &str) -> BTreeMap<String, String> {
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

    fn builder(&mut self, name: &Text) -> String {
        if !BUILDERS.contains(&name.as_str()) {
            let help = did_you_mean(name, BUILDERS.iter().copied())
                .unwrap_or_else(|| format!("this hephy builds images with {}", BUILDERS.join(", ")));
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("unknown builder `{}`", name.value))
                    .label(name.span, "no such builder")
                    .help(help),
            );
        }
        name.value.clone()
    }

    fn platforms(&mut self, list: &[Text]) -> Vec<Platform> {
        let mut out: Vec<Platform> = Vec::new();
        for text in list {
            let Some(platform) = self.platform(text) else { continue };
            if out.contains(&platform) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("platform `{platform}` is listed twice"))
                        .label(text.span, "listed again here")
                        .help("list each platform once"),
                );
                continue;
            }
            out.push(platform);
        }
        out.sort();
        out
    }

    fn platform(&mut self, text: &Text) -> Option<Platform> {
        match text.parse::<Platform>() {
            Ok(p) => Some(p),
            Err(err) => {
                let help = match &err {
                    PlatformError::Arch(arch) => did_you_mean(arch, Platform::known_arches().iter().copied())
                        .or_else(|| arch_alias(arch).map(|a| format!("OCI calls it `{a}`")))
                        .unwrap_or_else(|| {
                            format!("known architectures: {}", Platform::known_arches().join(", "))
                        }),
                    PlatformError::Os(os) => did_you_mean(os, Platform::known_oses().iter().copied())
                        .unwrap_or_else(|| format!("known systems: {}", Platform::known_oses().join(", "))),
                    _ => "write `os/arch` or `os/arch/variant`, e.g. `linux/amd64` or `linux/arm/v7`"
                        .to_owned(),
                };
                self.sink.push(
                    Problem::new(Code::InvalidPlatform, format!("invalid platform `{}`: {err}", text.value))
                        .label(text.span, "not a platform")
                        .help(help),
                );
                None
            }
        }
    }

    fn executors(&mut self, doc: &Document) -> Vec<Executor> {
        let mut out: Vec<Executor> = Vec::new();
        for draft in &doc.executors {
            self.name(&draft.name, "executor");
            if let Some(first) = out.iter().find(|e| *e.name == *draft.name) {
                self.duplicate(&draft.name, first.name.span, "executor");
                continue;
            }
            let Some(platform_text) = &draft.platform else {
                self.sink.push(
                    Problem::new(Code::Missing, format!("executor `{}` needs a platform", draft.name.value))
                        .label(draft.name.span, "no platform given")
                        .help("add `platform=\"linux/amd64\"` (KDL) or `platform: linux/amd64` (YAML)"),
                );
                continue;
            };
            let Some(platform) = self.platform(platform_text) else { continue };
            let jobs = match &draft.jobs {
                None => 1,
                Some(n) if (1..=1024).contains(&n.value) => u32::try_from(n.value).unwrap_or(1),
                Some(n) => {
                    self.sink.push(
                        Problem::new(
                            Code::InvalidValue,
                            format!("`jobs` must be between 1 and 1024, not {}", n.value),
                        )
                        .label(n.span, "out of range")
                        .help("`jobs` is how many nodes this executor runs at once"),
                    );
                    1
                }
            };
            let gitlab_tags = self.labels(draft.gitlab_tags.as_ref(), "gitlab-tags");
            let runs_on = self.labels(draft.runs_on.as_ref(), "runs-on");
            let ssh = draft.ssh.as_ref().filter(|s| self.ssh_target(s)).cloned();
            let buildkit = draft.buildkit.as_ref().filter(|a| self.buildkit_address(a)).cloned();
            let kubernetes = draft.kubernetes.as_ref().filter(|n| self.namespace(n)).cloned();
            let engines: Vec<&Text> =
                [draft.ssh.as_ref(), draft.buildkit.as_ref(), draft.kubernetes.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect();
            if let [first, second, ..] = engines[..] {
                self.sink.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("executor `{}` names more than one place to build", draft.name.value),
                    )
                    .label(first.span, "here")
                    .label(second.span, "and here")
                    .help("an executor builds over `ssh`, on a `buildkit` daemon, or in a `kubernetes` namespace: pick one"),
                );
            }
            out.push(Executor {
                name: draft.name.clone(),
                platform,
                jobs,
                gitlab_tags,
                runs_on,
                ssh,
                buildkit,
                kubernetes,
            });
        }
        out
    }

    /// `tcp://host:port`, `unix:///path`, or another buildctl address scheme.
    fn buildkit_address(&mut self, text: &Text) -> bool {
        let valid = text.value.split_once("://").is_some_and(|(scheme, rest)| {
            ["tcp", "unix", "docker-container", "kube-pod", "podman-container", "ssh"].contains(&scheme)
                && !rest.is_empty()
                && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
        });
        if !valid {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("`{}` is not a BuildKit address", text.value))
                    .label(text.span, "expected tcp://host:port or unix:///path")
                    .help("for example `buildkit=\"tcp://buildkitd-arm64:1234\"`"),
            );
        }
        valid
    }

    /// A Kubernetes namespace: a DNS label.
    fn namespace(&mut self, text: &Text) -> bool {
        let v = &text.value;
        let valid = !v.is_empty()
            && v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !v.starts_with('-')
            && !v.ends_with('-');
        if !valid {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("`{v}` is not a Kubernetes namespace"))
                    .label(text.span, "expected lower-case letters, digits and `-`")
                    .help("for example `kubernetes=\"image-builds\"`"),
            );
        }
        valid
    }

    /// A comma-separated list of CI runner labels.
    fn labels(&mut self, text: Option<&Text>, what: &str) -> Vec<String> {
        let Some(text) = text else { return Vec::new() };
        let labels: Vec<String> = text.value.split(',').map(|l| l.trim().to_owned()).collect();
        if labels.iter().any(|l| l.is_empty() || l.chars().any(|c| c.is_control() || c == '"' || c == '\\')) {
            self.sink.push(
                Problem::new(
                    Code::InvalidValue,
                    format!("`{what}` is a comma-separated list of runner labels"),
                )
                .label(text.span, "an empty label, or one with quotes or control characters")
                .help(format!("write it like `{what}=\"arm64,large\"`")),
            );
            return Vec::new();
        }
        labels
    }

    /// `user@host` or `user@host:port`, nothing an ssh command line could mistake for an option.
    fn ssh_target(&mut self, text: &Text) -> bool {
        let valid = text.value.split_once('@').is_some_and(|(user, rest)| {
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
                _ => (rest, None),
            };
            let word = |w: &str, extra: &str| {
                !w.is_empty()
                    && !w.starts_with('-')
                    && w.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
            };
            word(user, "._-")
                && (word(host, ".-") || (host.starts_with('[') && host.ends_with(']') && host.len() > 2))
                && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
        });
        if !valid {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("`{}` is not an ssh destination", text.value))
                    .label(text.span, "expected user@host or user@host:port")
                    .help(
                        "for example `ssh=\"builder@arm64.example.com\"` or `ssh=\"builder@10.0.0.7:2222\"`",
                    ),
            );
        }
        valid
    }

    /// Names of images and tasks are one namespace; schedules have their own.
    fn unique_names(&mut self, doc: &Document) {
        let mut seen: foldhash::HashMap<&str, (SourceSpan, &str)> = foldhash::HashMap::default();
        let defs =
            doc.images.iter().map(|i| (&i.name, "image")).chain(doc.tasks.iter().map(|t| (&t.name, "task")));
        for (name, kind) in defs {
            self.name(name, kind);
            if let Some((first, first_kind)) = seen.get(name.as_str()) {
                let kinds =
                    if *first_kind == kind { kind.to_owned() } else { format!("{first_kind} and {kind}") };
                self.duplicate(name, *first, &kinds);
            } else {
                seen.insert(name.as_str(), (name.span, kind));
            }
        }
        let mut schedules: HashMap<&str, SourceSpan> = HashMap::new();
        for s in &doc.schedules {
            self.name(&s.name, "schedule");
            if let Some(first) = schedules.get(s.name.as_str()) {
                self.duplicate(&s.name, *first, "schedule");
            } else {
                schedules.insert(s.name.as_str(), s.name.span);
            }
        }
    }

    fn duplicate(&mut self, name: &Text, first: SourceSpan, kinds: &str) {
        self.sink.push(
            Problem::new(Code::DuplicateName, format!("the name `{}` is defined twice", name.value))
                .label(name.span, "defined again here")
                .label(first, "first defined here")
                .help(format!("{kinds} names must be unique: rename one of them")),
        );
    }

    fn name(&mut self, name: &Text, kind: &str) {
        if !valid_name(name) {
            self.sink.push(
                Problem::new(Code::InvalidName, format!("`{}` is not a valid {kind} name", name.value))
                    .label(name.span, "invalid name")
                    .help("a name starts with a letter or digit and holds only letters, digits, `-` and `_` (at most 128)"),
            );
        }
    }

    fn image(&mut self, draft: &ImageDraft, defaults: &[Platform], default_builder: &str) -> Image {
        let builder = match &draft.builder {
            Some(b) => self.builder(b),
            None => default_builder.to_owned(),
        };
        let dockerfile = match &draft.dockerfile {
            Some(d) => self.relative(d, "Dockerfile").unwrap_or_default(),
            None => "Dockerfile".to_owned(),
        };
        let source = match (&draft.git, &draft.context) {
            (Some(url), dir) => {
                let dir =
                    dir.as_ref().and_then(|d| self.relative(d, "context")).unwrap_or_else(|| ".".to_owned());
                if url.trim().is_empty() {
                    self.sink.push(
                        Problem::new(Code::InvalidValue, "empty git URL")
                            .label(url.span, "empty")
                            .help("give the repository's URL"),
                    );
                } else if !valid_git_url(url) {
                    self.sink.push(
                        Problem::new(Code::InvalidValue, format!("`{}` is not a git URL", url.value))
                            .label(url.span, "expected https://, ssh://, git://, file:// or user@host:path")
                            .help(
                                "give the repository's URL, e.g. `https://github.com/chainguard-dev/kaniko`",
                            ),
                    );
                }
                let reference = draft.git_ref.as_ref().map_or("HEAD", |r| r.as_str()).to_owned();
                ImageSource::Git { url: url.value.clone(), reference, dir }
            }
            (None, Some(dir)) => {
                if let Some(r) = &draft.git_ref {
                    self.sink.push(
                        Problem::new(Code::Conflict, "`ref` applies only to a `git` source")
                            .label(r.span, "no `git` URL to apply it to")
                            .help("add `git \"URL\" ref=\"…\"`, or remove the ref"),
                    );
                }
                let normalized = self.relative(dir, "context");
                if let Some(normalized) = &normalized {
                    // ko and spin build no Dockerfile: the folder need not have one.
                    let needs_dockerfile = !matches!(builder.as_str(), "ko" | "spin");
                    self.local_context(
                        dir,
                        normalized,
                        &dockerfile,
                        draft.dockerfile.as_ref(),
                        needs_dockerfile,
                    );
                }
                ImageSource::Context { dir: normalized.unwrap_or_else(|| ".".to_owned()) }
            }
            (None, None) => {
                self.sink.push(
                    Problem::new(Code::Missing, format!("image `{}` has no build context", draft.name.value))
                        .label(draft.name.span, "neither `context` nor `git` given")
                        .help(format!("add `context \"{}\"` (a folder beside the graph file) or `git \"URL\" ref=\"…\"`", draft.name.value)),
                );
                ImageSource::Context { dir: ".".to_owned() }
            }
        };
        let mut targets: Vec<String> = Vec::new();
        for t in &draft.targets {
            self.name(t, "target");
            if targets.contains(&t.value) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("target `{}` is listed twice", t.value))
                        .label(t.span, "listed again here")
                        .help("list each target once"),
                );
            } else {
                targets.push(t.value.clone());
            }
        }
        let args = self.pairs(&draft.args, "build arg");
        let platforms = match &draft.platforms {
            Some(list) => self.platforms(list),
            None => defaults.to_vec(),
        };
        let mut tags: Vec<String> = Vec::new();
        for tag in &draft.tags {
            if tag.contains('{') {
                // A tag from git or the plan (`{git_tag|short_commit}`); its rendering is
                // checked with the naming templates'.
                if let Some(word) = crate::reference::template_groups(tag)
                    .into_iter()
                    .flatten()
                    .find(|w| !COMMON.contains(w) || w.starts_with('-'))
                {
                    self.sink.push(
                        Problem::new(Code::InvalidValue, format!("`{{{word}}}` cannot be used in a tag"))
                            .label(tag.span, "in this tag")
                            .help(format!(
                                "a tag may use {}",
                                COMMON
                                    .iter()
                                    .filter(|k| !k.starts_with('-'))
                                    .map(|k| format!("{{{k}}}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                    );
                } else if !tags.contains(&tag.value) {
                    tags.push(tag.value.clone());
                }
            } else if !valid_tag(tag) {
                self.sink.push(
                    Problem::new(Code::InvalidValue, format!("`{}` is not a valid image tag", tag.value))
                        .label(tag.span, "invalid tag")
                        .help("a tag is 1 to 128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"),
                );
            } else if !tags.contains(&tag.value) {
                tags.push(tag.value.clone());
            }
        }
        for dep in &draft.deps {
            if let Some(arg) = dep.from.as_ref().and_then(|f| f.arg.as_ref())
                && let Some((key, _)) = draft.args.iter().find(|(k, _)| k.value == arg.value)
            {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("build arg `{}` is set twice", arg.value))
                        .label(arg.span, "set to the dependency's reference here")
                        .label(key.span, "and given a value here")
                        .help("remove it from `args`: `from` passes the reference itself"),
                );
            }
        }
        let ko_env = self.pairs(&draft.ko_env, "ko environment variable");
        let ko = match &draft.ko {
            Some(k) => Some(KoSettings {
                import_path: k.import_path.as_ref().map(|t| t.value.clone()),
                base_image: k.base_image.as_ref().map(|t| t.value.clone()),
                ldflags: k.ldflags.as_ref().map(|t| t.value.clone()),
                env: ko_env,
            }),
            None if !ko_env.is_empty() => Some(KoSettings { env: ko_env, ..KoSettings::default() }),
            None => None,
        };
        if ko.is_some() && builder != "ko" {
            let span = draft
                .ko
                .as_ref()
                .map_or_else(|| draft.ko_env.first().map_or(draft.name.span, |(k, _)| k.span), |k| k.span);
            self.sink.push(
                Problem::new(
                    Code::Conflict,
                    format!("image `{}` has `ko` settings but is built with {builder}", draft.name.value),
                )
                .label(span, "read only by the ko builder")
                .help("add `builder \"ko\"` (KDL) or `builder: ko` (YAML) to the image, or remove the `ko` settings"),
            );
        }
        let compression =
            draft.compression.as_ref().map_or_else(Compression::default, |c| self.compression(c, &builder));
        Image {
            ko,
            name: draft.name.clone(),
            source,
            dockerfile,
            builder,
            targets,
            args,
            platforms,
            tags,
            deps: Vec::new(),
            timeout: None,
            secrets: Vec::new(),
            compression,
            publish: Publish::default(),
        }
    }

    /// The graph's secrets: each named like an environment variable, from one `env` or `file`.
    fn secrets(&mut self, doc: &Document) -> Vec<Secret> {
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
                        .help("write `env=\"NPM_TOKEN\"`"),
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
                        .help("write `secret \"NPM_TOKEN\" env=\"NPM_TOKEN\"` or `file=\"path/to/token\"`"),
                    );
                    continue;
                }
            };
            out.push(Secret { name: name.clone(), source });
        }
        out
    }

    /// The secret names an image or task uses, each declared.
    fn secret_uses(&mut self, uses: &[Text], secrets: &[Secret]) -> Vec<String> {
        let mut out = Vec::new();
        for name in uses {
            if secrets.iter().any(|s| s.name.value == name.value) {
                if !out.contains(&name.value) {
                    out.push(name.value.clone());
                }
            } else {
                let help =
                    did_you_mean(name, secrets.iter().map(|s| s.name.value.as_str())).unwrap_or_else(|| {
                        format!("declare it: `secret \"{}\" env=\"{}\"`", name.value, name.value)
                    });
                self.sink.push(
                    Problem::new(Code::UnknownDependency, format!("unknown secret `{}`", name.value))
                        .label(name.span, "not declared")
                        .help(help),
                );
            }
        }
        out
    }

    /// A duration such as `90s`, `30m` or `2h`: more than nothing, at most a week.
    /// An image's `compression`: a known name, for the builder that writes layers itself.
    fn compression(&mut self, text: &Text, builder: &str) -> Compression {
        let Some(compression) =
            [Compression::Gzip, Compression::Zstd].into_iter().find(|c| c.name() == text.value)
        else {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("unknown compression `{}`", text.value))
                    .label(text.span, "no such compression")
                    .help(
                        did_you_mean(&text.value, Compression::NAMES.iter().copied())
                            .unwrap_or_else(|| "the compressions are `gzip` and `zstd`".to_owned()),
                    ),
            );
            return Compression::default();
        };
        if builder != "oci" {
            self.sink.push(
                Problem::new(
                    Code::Conflict,
                    format!("`compression` is for the built-in `oci` builder, not `{builder}`"),
                )
                .label(text.span, "the image's builder compresses its own layers")
                .help("remove `compression`, or build the image with `builder \"oci\"`"),
            );
        }
        compression
    }

    fn timeout(&mut self, text: &Text) -> Option<std::time::Duration> {
        match humantime::parse_duration(&text.value) {
            Ok(d) if !d.is_zero() && d <= std::time::Duration::from_secs(7 * 24 * 3600) => Some(d),
            Ok(_) => {
                self.sink.push(
                    Problem::new(Code::InvalidValue, format!("timeout `{}` is out of range", text.value))
                        .label(text.span, "more than nothing and at most a week")
                        .help("write it like `30m` or `2h`"),
                );
                None
            }
            Err(e) => {
                self.sink.push(
                    Problem::new(Code::InvalidValue, format!("`{}` is not a duration", text.value))
                        .label(text.span, e.to_string())
                        .help("write it like `90s`, `30m` or `2h`"),
                );
                None
            }
        }
    }

    fn local_context(
        &mut self,
        ctx: &Text,
        dir: &str,
        dockerfile: &str,
        dockerfile_text: Option<&Text>,
        needs_dockerfile: bool,
    ) {
        let path = self.root.join(dir);
        if !path.is_dir() {
            self.sink.push(
                Problem::new(Code::MissingPath, format!("context folder `{dir}` does not exist"))
                    .label(ctx.span, "no such folder")
                    .help("the context is a folder relative to the graph file; create it or fix the path"),
            );
            return;
        }
        if !self.stays_inside(&path) {
            self.sink.push(
                Problem::new(Code::PathEscapes, format!("context `{dir}` leads outside the graph's folder"))
                    .label(ctx.span, "resolves (through a symlink) outside the graph's folder")
                    .help("keep build contexts inside the repository"),
            );
            return;
        }
        let file = path.join(dockerfile);
        if !needs_dockerfile && dockerfile_text.is_none() {
            return;
        }
        if !file.is_file() {
            let problem =
                Problem::new(Code::MissingPath, format!("Dockerfile `{dir}/{dockerfile}` does not exist"));
            let problem = match dockerfile_text {
                Some(d) => problem
                    .label(d.span, "no such file in the context")
                    .help("`dockerfile` is relative to the context folder"),
                None => problem
                    .label(ctx.span, "this folder has no `Dockerfile`")
                    .help("add a Dockerfile to the folder, or name it with `dockerfile`"),
            };
            self.sink.push(problem);
        } else if !self.stays_inside(&file) {
            self.sink.push(
                Problem::new(
                    Code::PathEscapes,
                    format!("Dockerfile `{dir}/{dockerfile}` leads outside the graph's folder"),
                )
                .label(dockerfile_text.map_or(ctx.span, |d| d.span), "resolves outside the graph's folder")
                .help("keep Dockerfiles inside the repository"),
            );
        }
    }

    fn stays_inside(&self, path: &Path) -> bool {
        match (&self.canonical_root, path.canonicalize()) {
            (Some(root), Ok(path)) => path.starts_with(root),
            _ => true,
        }
    }

    /// A relative path that stays inside its folder, normalized to `/`-separated form.
    fn relative(&mut self, text: &Text, what: &str) -> Option<String> {
        match normalize(text) {
            Ok(path) => Some(path),
            Err(why) => {
                self.sink.push(
                    Problem::new(Code::PathEscapes, format!("{what} path `{}` {why}", text.value))
                        .label(text.span, "leaves the graph's folder")
                        .help("paths are relative to the graph file's folder and must stay inside it"),
                );
                None
            }
        }
    }

    fn pairs(&mut self, pairs: &[(Text, Text)], what: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut spans: HashMap<&str, SourceSpan> = HashMap::new();
        for (key, value) in pairs {
            if !valid_variable(key) {
                self.sink.push(
                    Problem::new(Code::InvalidName, format!("`{}` is not a valid {what} name", key.value))
                        .label(key.span, "invalid name")
                        .help("names start with a letter or `_` and hold letters, digits and `_`"),
                );
            }
            if let Some(first) = spans.get(key.as_str()) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("{what} `{}` is given twice", key.value))
                        .label(key.span, "given again here")
                        .label(*first, "first given here")
                        .help("keep one of them"),
                );
                continue;
            }
            spans.insert(key.as_str(), key.span);
            out.insert(key.value.clone(), value.value.clone());
        }
        out
    }

    fn task(&mut self, draft: &TaskDraft) -> Task {
        let run: Vec<String> =
            draft.run.as_ref().map(|r| r.iter().map(|a| a.value.clone()).collect()).unwrap_or_default();
        if run.is_empty() {
            let problem = Problem::new(Code::Missing, format!("task `{}` has no command", draft.name.value));
            let problem = match &draft.run {
                Some(r) => problem.label(r.span, "empty command"),
                None => problem.label(draft.name.span, "no `run` given"),
            };
            self.sink
                .push(problem.help("add `run \"program\" \"arg\"…` (KDL) or `run: [program, arg]` (YAML)"));
        }
        let inputs = draft.inputs.iter().filter_map(|g| self.relative(g, "input")).collect();
        let outputs = draft.outputs.iter().filter_map(|g| self.relative(g, "output")).collect();
        let env = self.pairs(&draft.env, "environment variable");
        let platforms = draft.platforms.as_ref().map(|l| self.platforms(l)).unwrap_or_default();
        Task {
            name: draft.name.clone(),
            run,
            inputs,
            outputs,
            env,
            platforms,
            deps: Vec::new(),
            timeout: None,
            secrets: Vec::new(),
        }
    }

    fn deps(&mut self, owner: &Text, drafts: &[DependencyDraft], names: &Names<'_>) -> Vec<Dependency> {
        let mut out: Vec<Dependency> = Vec::new();
        for draft in drafts {
            let name = &draft.name;
            let Some(&position) = names.positions.get(name.as_str()) else {
                let help = did_you_mean(name, names.list.iter().copied().filter(|n| *n != owner.as_str()))
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
                            .help(format!("use `after \"{}\"` to run after a task", name.value)),
                        );
                        continue;
                    };
                    if from.arg.is_none() && from.context.is_none() {
                        self.sink.push(
                            Problem::new(Code::Missing, format!("`from \"{}\"` needs the build arg or the named context that receives its reference", name.value))
                                .label(from.span, "no `arg` or `context` given")
                                .help("add `context=\"base\"` (KDL) or `context: base` (YAML) for a Dockerfile that says `FROM base`, or `arg=\"BASE\"` / `arg: BASE` for one that says `ARG BASE` / `FROM ${BASE}`"),
                        );
                        continue;
                    }
                    if let Some(context) = &from.context
                        && !valid_context(context)
                    {
                        self.sink.push(
                            Problem::new(Code::InvalidName, format!("`{}` is not a build context name", context.value))
                                .label(context.span, "invalid name")
                                .help("a named context is what the Dockerfile writes after `FROM` or `COPY --from=`: lower-case letters, digits, `.`, `_`, `-` and `/`"),
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
                                    .help("`platform=\"build\"` uses the dependency's build for the platform of the machine that builds (for `FROM --platform=$BUILDPLATFORM`); leave it out for the same platform"),
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

    fn dependency_target(
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
                    .help(format!(
                        "add `target=\"{}\"` (one of {})",
                        targets[0],
                        targets.join(", ")
                    )),
                );
                None
            }
            None => targets.first().map(|t| (*t).to_owned()),
        }
    }

    fn schedule(&mut self, draft: &crate::document::ScheduleDraft, names: &Names<'_>) -> Schedule {
        if draft.rebuild.is_empty() && !draft.refresh {
            self.sink.push(
                Problem::new(Code::Missing, format!("schedule `{}` rebuilds nothing", draft.name.value))
                    .label(draft.name.span, "no `rebuild` given")
                    .help("add `rebuild \"image\"…` (KDL) or `rebuild: [image]` (YAML)"),
            );
        }
        for name in &draft.rebuild {
            if !names.positions.contains_key(name.as_str()) {
                self.sink.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!("schedule `{}` names unknown `{}`", draft.name.value, name.value),
                    )
                    .label(name.span, "no image or task has this name")
                    .maybe_help(did_you_mean(name, names.list.iter().copied())),
                );
            }
        }
        Schedule { name: draft.name.clone(), rebuild: draft.rebuild.clone(), refresh: draft.refresh }
    }

    /// Groups: unique names that clash with no image or task, members that resolve to an
    /// image, a task or another group, and no group that contains itself.
    fn groups(&mut self, doc: &Document, names: &Names<'_>) -> Vec<crate::model::Group> {
        let mut seen: HashMap<&str, SourceSpan> = HashMap::new();
        for g in &doc.groups {
            self.name(&g.name, "group");
            if let Some(first) = seen.get(g.name.as_str()) {
                self.duplicate(&g.name, *first, "group");
                continue;
            }
            seen.insert(g.name.as_str(), g.name.span);
            if let Some(&position) = names.positions.get(g.name.as_str()) {
                let (span, kind) = match position.checked_sub(doc.images.len()) {
                    None => (doc.images[position].name.span, "image"),
                    Some(t) => (doc.tasks[t].name.span, "task"),
                };
                self.duplicate(&g.name, span, &format!("{kind} and group"));
            }
        }
        for g in &doc.groups {
            if g.members.is_empty() {
                self.sink.push(
                    Problem::new(Code::Missing, format!("group `{}` names nothing", g.name.value))
                        .label(g.name.span, "no `members` given")
                        .help("add `members \"image\"…` (KDL) or `NAME: [image, …]` (YAML)"),
                );
            }
            for member in &g.members {
                if names.positions.contains_key(member.as_str()) || seen.contains_key(member.as_str()) {
                    continue;
                }
                let candidates = names.list.iter().copied().chain(seen.keys().copied());
                self.sink.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!("group `{}` names unknown `{}`", g.name.value, member.value),
                    )
                    .label(member.span, "no image, task or group has this name")
                    .maybe_help(did_you_mean(member, candidates)),
                );
            }
        }
        self.group_cycles(doc, &seen, names);
        doc.groups
            .iter()
            .map(|g| crate::model::Group { name: g.name.clone(), members: g.members.clone() })
            .collect()
    }

    /// Reports each group that contains itself, through its members, once.
    fn group_cycles(&mut self, doc: &Document, groups: &HashMap<&str, SourceSpan>, names: &Names<'_>) {
        let members = |name: &str| {
            doc.groups.iter().find(|g| g.name.as_str() == name).map(|g| g.members.as_slice()).unwrap_or(&[])
        };
        let mut reported: HashSet<&str> = HashSet::new();
        for g in &doc.groups {
            if reported.contains(g.name.as_str()) {
                continue;
            }
            // Depth-first from `g`, looking for a path back to it: (group, member that leads on).
            let mut path: Vec<(&str, usize)> = vec![(g.name.as_str(), 0)];
            let mut visited: HashSet<&str> = HashSet::new();
            while let Some((group, next)) = path.last_mut() {
                let list = members(group);
                let Some(member) = list.get(*next) else {
                    path.pop();
                    continue;
                };
                *next += 1;
                let member = member.as_str();
                if names.positions.contains_key(member) {
                    // An image or task (a clash with a group's name is reported already).
                    continue;
                }
                if member == g.name.as_str() {
                    let mut shown: Vec<&str> = path.iter().map(|(n, _)| *n).collect();
                    shown.push(member);
                    let last = &members(path[path.len() - 1].0)[path[path.len() - 1].1 - 1];
                    reported.extend(path.iter().map(|(n, _)| *n));
                    self.sink.push(
                        Problem::new(Code::Cycle, format!("group cycle: {}", shown.join(" → ")))
                            .label(last.span, "names a group that contains this one")
                            .label(g.name.span, "group defined here")
                            .help("a group cannot contain itself: remove one of these members"),
                    );
                    break;
                }
                if groups.contains_key(member) && visited.insert(member) {
                    path.push((member, 0));
                }
            }
        }
    }

    /// A dependent built for a platform needs its dependency built for it too.
    fn platform_coverage(&mut self, model: &Model, doc: &Document) {
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

    /// When executors are declared, every platform in use needs one.
    fn executor_coverage(&mut self, model: &Model, doc: &Document) {
        if model.executors.is_empty() {
            return;
        }
        let mut reported: HashSet<Platform> = HashSet::new();
        let uses = model
            .images
            .iter()
            .zip(&doc.images)
            .map(|(i, d)| (&i.platforms, d.platforms.as_ref(), &i.name))
            .chain(
                model
                    .tasks
                    .iter()
                    .zip(&doc.tasks)
                    .map(|(t, d)| (&t.platforms, d.platforms.as_ref(), &t.name)),
            );
        for (platforms, written, name) in uses {
            for platform in platforms {
                if model.executors.iter().any(|e| e.platform == *platform)
                    || !reported.insert(platform.clone())
                {
                    continue;
                }
                let span = written
                    .and_then(|w| w.iter().find(|t| t.value == platform.to_string()))
                    .or_else(|| {
                        doc.platforms
                            .as_ref()
                            .and_then(|w| w.iter().find(|t| t.value == platform.to_string()))
                    })
                    .map_or(name.span, |t| t.span);
                let names: Vec<String> =
                    model.executors.iter().map(|e| format!("`{}` ({})", e.name.value, e.platform)).collect();
                self.sink.push(
                    Problem::new(Code::NoExecutor, format!("no executor builds {platform}"))
                        .label(span, format!("`{}` needs {platform}", name.value))
                        .help(format!(
                            "declare `executor \"NAME\" platform=\"{platform}\"`; the executors are {}",
                            names.join(", ")
                        )),
                );
            }
        }
    }

    /// Reports each dependency cycle once, as `a → b → c → a`.
    fn cycles(&mut self, model: &Model) {
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

    fn cycle(&mut self, names: &[&str], path: &[(usize, SourceSpan)]) {
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

fn arch_alias(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" | "x86-64" | "x64" => Some("amd64"),
        "aarch64" => Some("arm64"),
        "armhf" | "armv7" | "armv7l" => Some("arm"),
        "i386" | "i686" => Some("386"),
        _ => None,
    }
}

/// `[A-Za-z0-9][A-Za-z0-9_-]*`, at most 128 bytes: safe in node ids, file names and image names.
pub(crate) fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a build arg or environment variable.
/// A named build context: what a Dockerfile writes after `FROM` or `COPY --from=`.
fn valid_context(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

pub(crate) fn valid_variable(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// The OCI distribution spec's tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
/// The placeholders every naming template (and a tag) may use.
const COMMON: &[&str] = &[
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
    "git_tag",
    "version",
    "major",
    "minor",
    "patch",
];

/// Whether `tag` is a tag in the OCI distribution grammar.
pub fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Normalizes a relative, `/`-separated path; `.` for the folder itself.
fn normalize(path: &str) -> Result<String, &'static str> {
    if path.starts_with('/') || path.starts_with('\\') || path.get(1..2) == Some(":") {
        return Err("is absolute");
    }
    if path.contains('\0') {
        return Err("holds a NUL byte");
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("leaves the graph's folder");
                }
            }
            other => parts.push(other),
        }
    }
    Ok(if parts.is_empty() { ".".to_owned() } else { parts.join("/") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("curl"), Ok("curl".into()));
        assert_eq!(normalize("./a/../b/"), Ok("b".into()));
        assert_eq!(normalize("."), Ok(".".into()));
        assert_eq!(normalize("../x"), Err("leaves the graph's folder"));
        assert_eq!(normalize("a/../../x"), Err("leaves the graph's folder"));
        assert_eq!(normalize("/etc"), Err("is absolute"));
    }

    #[test]
    fn validates_names_and_tags() {
        assert!(valid_name("manifest-tool"));
        assert!(!valid_name("a.b") && !valid_name("-a") && !valid_name(""));
        assert!(valid_tag("v1.25.3") && valid_tag("latest"));
        assert!(!valid_tag(".x") && !valid_tag("a:b"));
    }
}
