//! `hephy import`: a repository in the kaniko-builder layout → the equivalent graph file.
//!
//! The layout, as its CI scripts read it: one folder per image holding `build-config.yaml`
//! (`use_local_context`, `upstream_repo`, `upstream_ref`, `dockerfile_path`, `context_path`,
//! `target`, `build_args` as `KEY=VALUE` items, `platforms`, `additional_tags`, `build_backend`
//! with `ko_config`) or, for a build that was turned off, `disabled-build-config.yaml`; a
//! `rebuild-weekly.txt` naming folders one a line; and Dockerfiles that build on another image
//! of the repository with `ARG ECR_REGISTRY` + `ARG <DEP>_TAG` + `FROM ${ECR_REGISTRY}:${<DEP>_TAG}`
//! (or a plain `FROM <dep>`). Dependencies are inferred from those lines; the layout's tag
//! convention is the `kaniko-builder` naming preset.
//!
//! Owns one promise: every graph it writes passes `check`. What it cannot carry over is said
//! (a warning on stderr and a comment in the graph), never dropped silently; an image that
//! would not pass is written commented out, with the reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hephy_dockerfile::Command;
use hephy_dsl::yaml_tree::{self as yaml, Kind, Value};
use hephy_dsl::{Document, FromDraft, ImageDraft, Platform, SourceFile, Syntax};

mod bake;
mod bake_functions;
mod runners;

pub(crate) use bake::{BakeError, Env as BakeEnv, import_bake};

/// A `from` edge found in a Dockerfile: build args, a named context, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Edge {
    dep: String,
    /// (tag arg, registry arg) of `FROM ${REGISTRY}:${TAG}`.
    args: Option<(String, String)>,
    /// `FROM dep` / `COPY --from=dep`.
    context: bool,
}

/// ko's settings of a folder (`build_backend: ko`, `ko_config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ko {
    import_path: Option<String>,
    base_image: Option<String>,
    ldflags: Option<String>,
    env: Vec<(String, String)>,
}

/// One image of the imported repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Imported {
    name: String,
    folder: String,
    /// Local context folder (relative to the repository), or the folder inside the upstream.
    context: String,
    git: Option<(String, String)>,
    dockerfile: Option<String>,
    target: Option<String>,
    args: Vec<(String, String)>,
    platforms: Vec<String>,
    tags: Vec<String>,
    from: Vec<Edge>,
    ko: Option<Ko>,
    /// Why it is written commented out (its build is turned off, or it would not pass `check`).
    disabled: Option<String>,
    /// Comments written above it: what was left out or changed, and why.
    notes: Vec<String>,
}

/// The graph text and what was left out, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Import {
    /// The graph file's text.
    pub(crate) text: String,
    /// Problems met, one line each (`curl/build-config.yaml: unknown key `foo``).
    pub(crate) warnings: Vec<String>,
}

const ENABLED: &str = "build-config.yaml";
const DISABLED: &str = "disabled-build-config.yaml";

/// Why a kaniko-builder layout was not imported.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    /// The repository's folder cannot be listed.
    #[error("cannot read `{}`: {source}", dir.display())]
    Unreadable {
        /// The repository.
        dir: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// No folder holds a build configuration.
    #[error("`{}` has no folder with a `{}` (or `{}`)", dir.display(), ENABLED, DISABLED)]
    NoImage {
        /// The repository.
        dir: PathBuf,
    },
    /// Every folder's image is commented out: `why` says, folder by folder, why.
    #[error(
        "no folder of `{}` imports into an image that builds, and a graph needs one ({})",
        dir.display(),
        why.join("; ")
    )]
    NothingBuilds {
        /// The repository.
        dir: PathBuf,
        /// `folder: why it is commented out`, one per folder.
        why: Vec<String>,
    },
}

/// A `build_args` item that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{item}` is not KEY=VALUE")]
struct NotAPair {
    /// The item as written.
    item: String,
}

/// Reads the repository at `dir` and writes its graph in `syntax`, to be saved at `dir`'s root.
pub(crate) fn import(dir: &Path, syntax: Syntax) -> Result<Import, ImportError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|source| ImportError::Unreadable { dir: dir.to_path_buf(), source })?;
    let mut folders: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.join(ENABLED).is_file() {
                Some((name, true))
            } else if path.join(DISABLED).is_file() {
                Some((name, false))
            } else {
                None
            }
        })
        .collect();
    folders.sort();
    if folders.is_empty() {
        return Err(ImportError::NoImage { dir: dir.to_path_buf() });
    }
    let mut warnings = Vec::new();
    let mut images: Vec<Imported> = Vec::new();
    for (folder, enabled) in &folders {
        let Some(mut image) = read_config(dir, folder, *enabled, &mut warnings) else { continue };
        if images.iter().any(|i| i.name == image.name) {
            warnings.push(format!(
                "{folder}: its image name `{}` is taken by another folder: left out",
                image.name
            ));
            continue;
        }
        if !enabled {
            let why = format!("its build is turned off ({folder}/{DISABLED}): imported commented out");
            warnings.push(format!("{folder}: {why}"));
            image.disabled = Some(why);
        }
        images.push(image);
    }
    let enabled: Vec<String> =
        images.iter().filter(|i| i.disabled.is_none()).map(|i| i.name.clone()).collect();
    for image in &mut images {
        if image.git.is_none() && image.ko.is_none() {
            infer_from(dir, image, &enabled, &mut warnings);
        }
    }
    let weekly = read_weekly(dir, &images, &mut warnings);
    let runners = runners::read(dir, &mut warnings);
    let executors = executors(&images, &runners);
    settle(dir, &mut images, |images| kdl(images, &weekly, &executors), &mut warnings);
    if images.iter().all(|i| i.disabled.is_some()) {
        let why: Vec<String> =
            images.iter().filter_map(|i| i.disabled.as_ref().map(|d| format!("{}: {d}", i.folder))).collect();
        return Err(ImportError::NothingBuilds { dir: dir.to_path_buf(), why });
    }
    let text = match syntax {
        Syntax::Kdl => kdl(&images, &weekly, &executors).0,
        Syntax::Yaml => yaml(&images, &weekly, &executors),
    };
    Ok(Import { text, warnings })
}

/// What an importer's graph is written from: images that can be commented out, each named in
/// warnings as the source layout names it.
pub(crate) trait Settled {
    /// Why the image is written commented out, if it is.
    fn disabled(&mut self) -> &mut Option<String>;
    /// How warnings name it (`curl`, `target `api``).
    fn label(&self) -> String;
}

impl Settled for Imported {
    fn disabled(&mut self) -> &mut Option<String> {
        &mut self.disabled
    }

    fn label(&self) -> String {
        shown(&self.folder).into_owned()
    }
}

/// Comments out every image the analyzer would reject (with its reason), until none is left:
/// the written graph passes `check` whatever the source held. `render` writes the KDL graph and
/// the span of each image in it.
pub(crate) fn settle<T: Settled>(
    dir: &Path,
    images: &mut [T],
    render: impl Fn(&[T]) -> (String, Vec<(usize, std::ops::Range<usize>)>),
    warnings: &mut Vec<String>,
) {
    for _ in 0..=images.len() {
        let (text, spans) = render(images);
        let source = SourceFile::new(dir.join("hephy.kdl"), Syntax::Kdl, text);
        let Err(problems) = hephy_dsl::parse(source, dir) else { return };
        let mut changed = false;
        for problem in problems.iter() {
            let Some(at) = problem.primary_span().map(|s| s.offset()) else { continue };
            let Some((index, _)) = spans.iter().find(|(_, range)| range.contains(&at)) else { continue };
            let image = &mut images[*index];
            if image.disabled().is_none() {
                let why = format!(
                    "it would not pass `check` ({}): imported commented out",
                    hephy_dsl::escape::excerpt(problem.message(), 2 * QUOTE_LIMIT)
                );
                warnings.push(format!("{}: {why}", image.label()));
                *image.disabled() = Some(why);
                changed = true;
            }
        }
        if !changed {
            let first = problems
                .iter()
                .next()
                .map(|p| hephy_dsl::escape::excerpt(p.message(), 2 * QUOTE_LIMIT).into_owned())
                .unwrap_or_default();
            warnings.push(format!("the imported graph does not pass `check`: {first}"));
            return;
        }
    }
}

fn scalar(value: &Value) -> Option<String> {
    match &value.kind {
        Kind::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn list(value: &Value) -> Option<Vec<String>> {
    match &value.kind {
        Kind::Seq(items) => items.iter().map(scalar).collect(),
        Kind::Scalar { text, plain: true } if yaml::is_null(text) => Some(Vec::new()),
        Kind::Scalar { text, .. } => Some(vec![text.clone()]),
        Kind::Map(_) => None,
    }
}

/// `KEY=VALUE` items, or a map of them.
fn pairs(value: &Value) -> Option<Vec<Result<(String, String), NotAPair>>> {
    match &value.kind {
        Kind::Map(entries) => {
            entries.iter().map(|(k, v)| Some(Ok((scalar(k)?, scalar(v).unwrap_or_default())))).collect()
        }
        _ => Some(
            list(value)?
                .into_iter()
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => Ok((k.trim().to_owned(), v.trim().to_owned())),
                    None => Err(NotAPair { item }),
                })
                .collect(),
        ),
    }
}

/// A value with a trailing `# comment` (kept by quoting, or by a shell's reading) taken off.
fn uncommented(text: &str) -> String {
    let text = match text.find(" #").or_else(|| text.find("\t#")) {
        Some(at) => &text[..at],
        None => text,
    };
    text.trim().trim_matches(['"', '\'']).trim().to_owned()
}

/// A folder name as an image name: letters, digits, `-` and `_`, starting with a letter or digit.
fn image_name(folder: &str) -> String {
    let name: String = folder
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(128)
        .collect();
    if name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name
    } else {
        format!("x{}", &name[..name.len().min(127)])
    }
}

fn read_config(dir: &Path, folder: &str, enabled: bool, warnings: &mut Vec<String>) -> Option<Imported> {
    let file = format!("{folder}/{}", if enabled { ENABLED } else { DISABLED });
    let text = match std::fs::read_to_string(dir.join(&file)) {
        Ok(text) => text,
        Err(e) => {
            warnings.push(format!("{file}: cannot read it ({e}): image left out"));
            return None;
        }
    };
    let root = match yaml::value(&text) {
        Ok(Some(root)) => root,
        Ok(None) => Value { kind: Kind::Map(Vec::new()), span: (0, 0).into() },
        Err(e) => {
            warnings.push(format!("{file}: not YAML ({e}): image left out"));
            return None;
        }
    };
    let Kind::Map(entries) = &root.kind else {
        warnings.push(format!("{file}: not a map of settings: image left out"));
        return None;
    };
    let name = image_name(folder);
    if name != folder {
        warnings.push(format!("{file}: folder `{folder}` is not a valid image name; imported as `{name}`"));
    }
    let mut image =
        Imported { name, folder: folder.to_owned(), context: folder.to_owned(), ..Imported::default() };
    let mut use_local: Option<bool> = None;
    let mut upstream: (Option<String>, Option<String>) = (None, None);
    let mut context_path: Option<String> = None;
    let mut backend: Option<String> = None;
    let mut ko_config: Option<&Value> = None;
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in entries {
        let Some(key) = scalar(key) else { continue };
        let bad = |warnings: &mut Vec<String>| {
            warnings.push(format!("{file}: `{key}` has a value of the wrong type: left out"));
        };
        let text = scalar(value).map(|t| uncommented(&t));
        match key.as_str() {
            "use_local_context" => match text.as_deref() {
                Some("true" | "True" | "TRUE" | "yes") => use_local = Some(true),
                Some("false" | "False" | "FALSE" | "no" | "") => use_local = Some(false),
                _ => bad(warnings),
            },
            "upstream_repo" => match text {
                Some(t) if !t.is_empty() => upstream.0 = Some(t),
                Some(_) => {}
                None => bad(warnings),
            },
            "upstream_ref" => match text {
                Some(t) if !t.is_empty() => upstream.1 = Some(t),
                Some(_) => {}
                None => bad(warnings),
            },
            "dockerfile_path" => match text {
                Some(t) if !t.is_empty() => image.dockerfile = Some(t),
                Some(_) => {}
                None => bad(warnings),
            },
            "context_path" => match text {
                Some(t) => context_path = Some(t),
                None => bad(warnings),
            },
            // `target: ""` means no target.
            "target" => match text {
                Some(t) if !t.is_empty() => image.target = Some(t),
                Some(_) => {}
                None => bad(warnings),
            },
            "build_backend" => match text {
                Some(t) => backend = Some(t),
                None => bad(warnings),
            },
            "ko_config" => match &value.kind {
                Kind::Map(_) => ko_config = Some(value),
                Kind::Scalar { text, plain: true } if yaml::is_null(text) => {}
                _ => bad(warnings),
            },
            "build_args" => match pairs(value) {
                Some(items) => {
                    for item in items {
                        match item {
                            Ok((k, v)) if hephy_dsl::valid_variable(&k) => {
                                if args.insert(k.clone(), v).is_some() {
                                    warnings.push(format!(
                                        "{file}: build arg `{k}` is given twice: the last is kept"
                                    ));
                                }
                            }
                            Ok((k, _)) => {
                                warnings.push(format!("{file}: `{k}` is not a build arg name: left out"));
                            }
                            Err(not_a_pair) => {
                                warnings.push(format!("{file}: build arg {not_a_pair}: left out"));
                            }
                        }
                    }
                }
                None => bad(warnings),
            },
            "platforms" => match list(value) {
                Some(items) => {
                    for p in items {
                        let p = uncommented(&p);
                        match p.parse::<Platform>() {
                            Ok(parsed) if !image.platforms.contains(&parsed.to_string()) => {
                                image.platforms.push(parsed.to_string());
                            }
                            Ok(_) => {}
                            Err(e) => warnings.push(format!("{file}: platform `{p}` left out: {e}")),
                        }
                    }
                }
                None => bad(warnings),
            },
            "additional_tags" => match list(value) {
                Some(items) => {
                    for t in items {
                        let t = uncommented(&t);
                        if !hephy_dsl::valid_tag(&t) {
                            warnings.push(format!("{file}: `{t}` is not a valid image tag: left out"));
                        } else if !image.tags.contains(&t) {
                            image.tags.push(t);
                        }
                    }
                }
                None => bad(warnings),
            },
            other => warnings.push(format!("{file}: unknown key `{other}`: left out")),
        }
    }
    image.args = args.into_iter().collect();
    // The layout's CI: upstream when `use_local_context` is not `true` and `upstream_repo` is set.
    let local = use_local == Some(true) || upstream.0.is_none();
    if use_local == Some(false) && upstream.0.is_none() {
        warnings.push(format!(
            "{file}: `use_local_context: false` without `upstream_repo`: built from the folder"
        ));
    }
    if use_local == Some(true) && upstream.0.is_some() {
        image
            .notes
            .push("`upstream_repo` is not used: `use_local_context: true` builds the folder".to_owned());
    }
    let context_path =
        context_path.map(|c| c.trim_matches('/').to_owned()).filter(|c| !c.is_empty() && c != ".");
    if local {
        if let Some(path) = context_path {
            image.context = format!("{folder}/{path}");
        }
    } else if let Some(url) = upstream.0 {
        image.git = Some((url, upstream.1.unwrap_or_else(|| "HEAD".to_owned())));
        image.context = context_path.unwrap_or_else(|| ".".to_owned());
    }
    if matches!(image.dockerfile.as_deref(), Some("Dockerfile" | "./Dockerfile")) {
        image.dockerfile = None;
    }
    match backend.as_deref() {
        None | Some("" | "kaniko") => {
            if ko_config.is_some() {
                warnings.push(format!("{file}: `ko_config` without `build_backend: ko`: left out"));
            }
        }
        Some("ko") => {
            image.ko = Some(read_ko(&file, ko_config, warnings));
            for (what, given) in [
                ("dockerfile_path", image.dockerfile.take().is_some()),
                ("target", image.target.take().is_some()),
                ("build_args", !std::mem::take(&mut image.args).is_empty()),
            ] {
                if given {
                    let note = format!("`{what}` left out: ko builds Go packages, not a Dockerfile");
                    warnings.push(format!("{file}: {note}"));
                    image.notes.push(note);
                }
            }
        }
        Some(other) => {
            let note =
                format!("`build_backend: {other}` is not known here: built from its Dockerfile with buildah");
            warnings.push(format!("{file}: {note}"));
            image.notes.push(note);
        }
    }
    if image.git.is_none() && image.ko.is_none() {
        check_target(dir, &mut image, warnings);
    }
    Some(image)
}

/// `ko_config`: `import_path`, `base_image`, `env` (`KEY=VALUE` items or a map), `ldflags` (a
/// list, joined by spaces as ko joins them, or one string).
fn read_ko(file: &str, config: Option<&Value>, warnings: &mut Vec<String>) -> Ko {
    let mut ko = Ko::default();
    let Some(Value { kind: Kind::Map(entries), .. }) = config else { return ko };
    for (key, value) in entries {
        let Some(key) = scalar(key) else { continue };
        let text = scalar(value).map(|t| uncommented(&t)).filter(|t| !t.is_empty());
        match key.as_str() {
            "import_path" => ko.import_path = text,
            "base_image" => ko.base_image = text,
            "ldflags" => match list(value) {
                Some(items) if !items.is_empty() => ko.ldflags = Some(items.join(" ")),
                Some(_) => {}
                None => warnings.push(format!("{file}: `ko_config.ldflags` has a value of the wrong type: left out")),
            },
            "env" => match pairs(value) {
                Some(items) => {
                    for item in items {
                        match item {
                            Ok((k, v)) if hephy_dsl::valid_variable(&k) => ko.env.push((k, v)),
                            Ok((k, _)) => warnings.push(format!("{file}: `ko_config.env` `{k}` is not a variable name: left out")),
                            Err(not_a_pair) => warnings.push(format!("{file}: `ko_config.env` {not_a_pair}: left out")),
                        }
                    }
                }
                None => warnings.push(format!("{file}: `ko_config.env` has a value of the wrong type: left out")),
            },
            other => warnings.push(format!("{file}: unknown key `ko_config.{other}`: left out (hephy's ko builder takes `import_path`, `base_image`, `env`, `ldflags`)")),
        }
    }
    ko.env.sort();
    ko.env.dedup_by(|a, b| a.0 == b.0);
    ko
}

/// The Dockerfile of a local image, if it has one.
fn local_dockerfile(dir: &Path, image: &Imported) -> (String, Option<String>) {
    let shown = format!("{}/{}", image.context, image.dockerfile.as_deref().unwrap_or("Dockerfile"));
    // Never through a link out of the imported folder.
    let text = hephy_os::open::open_below(dir, Path::new(&shown)).ok().and_then(|mut file| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).ok().map(|_| text)
    });
    (shown, text)
}

/// A local image's target must be a stage of its Dockerfile.
fn check_target(dir: &Path, image: &mut Imported, warnings: &mut Vec<String>) {
    let Some(target) = &image.target else { return };
    let (shown, Some(text)) = local_dockerfile(dir, image) else { return };
    let stages: Vec<String> = hephy_dockerfile::parse(&text)
        .map(|d| {
            d.instructions
                .iter()
                .filter_map(|i| match &i.command {
                    Command::From { alias: Some(alias), .. } => Some(alias.text.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !stages.iter().any(|s| s.eq_ignore_ascii_case(target)) {
        let why = format!("`{shown}` has no stage `{target}`: imported commented out");
        warnings.push(format!("{}: {why}", image.folder));
        image.disabled = Some(why);
    }
}

/// `FROM ${ECR_REGISTRY}:${CURL_TAG}` in a local Dockerfile → a dependency on `curl` through
/// those args; a plain `FROM curl` or `COPY --from=curl` → one through the named context `curl`.
fn infer_from(dir: &Path, image: &mut Imported, names: &[String], warnings: &mut Vec<String>) {
    let (dockerfile, text) = local_dockerfile(dir, image);
    let Some(text) = text else {
        if image.disabled.is_none() {
            let why = format!("`{dockerfile}` cannot be read: imported commented out");
            warnings.push(format!("{}: {why}", image.folder));
            image.disabled = Some(why);
        }
        return;
    };
    let mut stages: Vec<String> = Vec::new();
    let edge = |image: &mut Imported, dep: &str, args: Option<(String, String)>| {
        if dep == image.name {
            return;
        }
        let at = match image.from.iter().position(|e| e.dep == dep) {
            Some(at) => at,
            None => {
                image.from.push(Edge { dep: dep.to_owned(), ..Edge::default() });
                image.from.len() - 1
            }
        };
        let found = &mut image.from[at];
        match args {
            Some(args) => {
                found.args.get_or_insert(args);
            }
            None => found.context = true,
        }
    };
    let Ok(parsed) = hephy_dockerfile::parse(&text) else {
        if image.disabled.is_none() {
            let why = format!("`{dockerfile}` does not read as a Dockerfile: imported commented out");
            warnings.push(format!("{}: {why}", image.folder));
            image.disabled = Some(why);
        }
        return;
    };
    for instruction in &parsed.instructions {
        let (reference, alias) = match &instruction.command {
            Command::Copy(copy) => {
                if let Some(name) = copy.from.as_ref().map(|f| f.text.as_str())
                    && !stages.iter().any(|s| s.eq_ignore_ascii_case(name))
                    && names.iter().any(|n| n == name)
                {
                    edge(image, name, None);
                }
                continue;
            }
            Command::From { image: from, alias, .. } => {
                (from.text.clone(), alias.as_ref().map(|a| a.text.clone()))
            }
            _ => continue,
        };
        let reference = reference.as_str();
        if !stages.iter().any(|s| s.eq_ignore_ascii_case(reference)) && names.iter().any(|n| n == reference) {
            if reference != image.name {
                let note = format!(
                    "`{dockerfile}` says `FROM {reference}`: imported as the named context `{reference}`, so it builds on this graph's `{reference}` (by digest), not on a registry image of that name"
                );
                warnings.push(note.clone());
                image.notes.push(note);
            }
            edge(image, reference, None);
        } else if let Some((registry, tag)) = reference.split_once(':')
            && let (Some(registry), Some(tag)) = (variable(registry), variable(tag))
            && let Some(stem) = tag.strip_suffix("_TAG")
        {
            let wanted = stem.to_ascii_lowercase();
            let found = names.iter().find(|n| n.replace('-', "_").to_ascii_lowercase() == wanted);
            match found {
                Some(dep) => {
                    let dep = dep.clone();
                    edge(image, &dep, Some((tag.to_owned(), registry.to_owned())));
                }
                None => warnings.push(format!(
                    "{dockerfile}: `{reference}` names no image of the repository that is built (`{stem}`): left as is"
                )),
            }
        }
        if let Some(alias) = alias {
            stages.push(alias);
        }
    }
    // A dependency's arg is set by the graph: a default for it in `build_args` (the layout's
    // fallback to a `latest` tag) would be a second value.
    for edge in &image.from {
        let Some((tag, registry)) = &edge.args else { continue };
        for arg in [tag, registry] {
            if let Some(at) = image.args.iter().position(|(k, _)| k == arg) {
                let (k, v) = image.args.remove(at);
                let note = format!(
                    "build arg `{k}={v}` left out: the graph passes `{k}` the reference of the `{}` it builds",
                    edge.dep
                );
                warnings.push(format!("{}/{ENABLED}: {note}", image.folder));
                image.notes.push(note);
            }
        }
    }
}

/// `${NAME}` or `$NAME` → `NAME`.
fn variable(text: &str) -> Option<&str> {
    text.strip_prefix("${").and_then(|t| t.strip_suffix('}')).or_else(|| text.strip_prefix('$'))
}

/// The weekly schedule: the folders it rebuilds, and those it names that are left out.
#[derive(Debug, Default)]
struct Weekly {
    rebuild: Vec<String>,
    /// (folder, why) of entries kept out of the schedule.
    left_out: Vec<(String, String)>,
}

fn read_weekly(dir: &Path, images: &[Imported], warnings: &mut Vec<String>) -> Weekly {
    let mut weekly = Weekly::default();
    let Ok(text) = std::fs::read_to_string(dir.join("rebuild-weekly.txt")) else { return weekly };
    for line in text.lines().map(|l| uncommented(l.split('#').next().unwrap_or(""))).filter(|l| !l.is_empty())
    {
        let folder = line.trim_end_matches('/');
        match images.iter().find(|i| i.folder == folder) {
            Some(image) if !weekly.rebuild.contains(&image.name) => weekly.rebuild.push(image.name.clone()),
            Some(_) => {}
            None => warnings.push(format!("rebuild-weekly.txt: `{folder}` is not an image folder: left out")),
        }
    }
    weekly
}

impl Weekly {
    /// Moves the entries of commented-out images out of the schedule, with their reason.
    fn without(&self, images: &[Imported]) -> Weekly {
        let mut out = Weekly::default();
        for name in &self.rebuild {
            match images.iter().find(|i| i.name == *name).and_then(|i| i.disabled.as_ref().map(|d| (i, d))) {
                Some((image, why)) => out.left_out.push((image.folder.clone(), why.clone())),
                None => out.rebuild.push(name.clone()),
            }
        }
        out
    }
}

/// A note as comment lines of `syntax` at `indent`: nothing in it can end a comment early
/// ([`hephy_dsl::escape::graph_comment`]).
pub(crate) fn comment(out: &mut String, syntax: Syntax, indent: &str, text: &str) {
    out.push_str(&hephy_dsl::escape::graph_comment(syntax, indent, text));
}

/// The most characters of a value (a name, a tag, a path) quoted in a warning or a comment.
const QUOTE_LIMIT: usize = 200;

/// A value as warnings and comments quote it: on one line, control characters escaped, at most
/// [`QUOTE_LIMIT`] characters (a longer one cut with `…`).
pub(crate) fn shown(value: &str) -> std::borrow::Cow<'_, str> {
    hephy_dsl::escape::excerpt(value, QUOTE_LIMIT)
}

const HEADER: &str = "imported from a kaniko-builder repository by `hephy import`
set `registry` to where the images are pushed (the layout's ECR repository); with the
`kaniko-builder` naming, each platform build is tagged `{dir}-{YYYYMMDD}-{arch}` on `main` and
`{dir}-{YYYYMMDD}-{branch}-{arch}` on another branch (an upstream build
`{dir}-{YYYYMMDD}-{upstream ref}-{arch}` on every branch), each image `{dir}-{YYYYMMDD}`, and
each additional tag `{dir}-{tag}`";

/// The image as the dsl's printer writes it.
fn draft(image: &Imported) -> ImageDraft {
    let mut d = ImageDraft::named(&image.name);
    if image.ko.is_some() {
        d = d.with_builder("ko");
    }
    match &image.git {
        Some((url, reference)) => {
            d = d.with_git(url, reference);
            if image.context != "." {
                d = d.with_context(&image.context);
            }
        }
        None => d = d.with_context(&image.context),
    }
    if let Some(path) = &image.dockerfile {
        d = d.with_dockerfile(path);
    }
    if let Some(target) = &image.target {
        d = d.with_target(target);
    }
    if let Some(ko) = &image.ko {
        if ko.import_path.is_some() || ko.base_image.is_some() || ko.ldflags.is_some() {
            d = d.with_ko(ko.import_path.as_deref(), ko.base_image.as_deref(), ko.ldflags.as_deref());
        }
        for (name, value) in &ko.env {
            d = d.with_ko_env(name, value);
        }
    }
    for (name, value) in &image.args {
        d = d.with_arg(name, value);
    }
    if !image.platforms.is_empty() {
        d = d.with_platforms(&image.platforms);
    }
    d = d.with_tags(&image.tags);
    for edge in &image.from {
        let mut from = FromDraft::new();
        if let Some((tag, registry)) = &edge.args {
            from = from.with_args(tag, registry);
        }
        if edge.context {
            from = from.with_context(&edge.dep);
        }
        d = d.with_from(&edge.dep, from);
    }
    d
}

/// An executor of the graph: (name, platform, GitLab runner tags).
type Executor = (String, String, String);

/// One executor per platform the images build for whose architecture the layout's CI sends to
/// runners of its own (`tags: [$CICD_TAG_ARM64]`), so each platform's jobs run there again.
fn executors(images: &[Imported], runners: &runners::Runners) -> Vec<Executor> {
    let mut platforms: Vec<&str> = images
        .iter()
        .filter(|i| i.disabled.is_none())
        .flat_map(|i| {
            if i.platforms.is_empty() {
                vec![DEFAULT_PLATFORM]
            } else {
                i.platforms.iter().map(String::as_str).collect()
            }
        })
        .collect();
    platforms.sort_unstable();
    platforms.dedup();
    platforms
        .into_iter()
        .filter_map(|p| {
            let platform: Platform = p.parse().ok()?;
            let tags = runners.by_arch.get(platform.arch())?;
            let name = match platform.variant() {
                Some(v) => format!("{}{v}", platform.arch()),
                None => platform.arch().to_owned(),
            };
            Some((name, p.to_owned(), tags.join(",")))
        })
        .collect()
}

/// The platform of a folder that names none (the layout's builds are amd64 unless told).
const DEFAULT_PLATFORM: &str = "linux/amd64";

/// The graph's settings (the layout's conventions) as the printer writes them.
fn settings(executors: &[Executor]) -> Document {
    let mut doc = Document::default();
    doc.set_naming_preset("kaniko-builder").set_builder("buildah").set_platforms(&[DEFAULT_PLATFORM]);
    for (name, platform, tags) in executors {
        doc.add_executor(name, platform, Some(tags));
    }
    doc
}

/// The weekly schedule, or nothing.
fn schedule(weekly: &Weekly, syntax: Syntax) -> String {
    let mut doc = Document::default();
    if !weekly.rebuild.is_empty() {
        // A weekly rebuild is for what moved outside: external bases and upstream refs.
        doc.add_schedule("weekly", &weekly.rebuild, true);
    }
    hephy_dsl::print(&doc, syntax).trim_start_matches('\n').to_owned()
}

/// The graph in KDL, and each image's byte range in it (for [`settle`]).
fn kdl(
    images: &[Imported],
    weekly: &Weekly,
    executors: &[Executor],
) -> (String, Vec<(usize, std::ops::Range<usize>)>) {
    let mut out = String::new();
    let mut spans = Vec::new();
    comment(&mut out, Syntax::Kdl, "", HEADER);
    out.push_str("// registry \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/images\"\n");
    out.push_str(&hephy_dsl::print(&settings(executors), Syntax::Kdl));
    out.push('\n');
    for (index, image) in images.iter().enumerate() {
        for note in &image.notes {
            comment(&mut out, Syntax::Kdl, "", &format!("{}: {note}", shown(&image.folder)));
        }
        if let Some(why) = &image.disabled {
            comment(&mut out, Syntax::Kdl, "", &format!("{}: {why}", shown(&image.folder)));
            out.push_str("/-");
        }
        let start = out.len();
        out.push_str(draft(image).print(Syntax::Kdl).trim_end_matches('\n'));
        spans.push((index, start..out.len()));
        out.push_str("\n\n");
    }
    let weekly = weekly.without(images);
    for (folder, why) in &weekly.left_out {
        comment(
            &mut out,
            Syntax::Kdl,
            "",
            &format!("rebuild-weekly.txt names `{}`, kept out of the schedule: {why}", shown(folder)),
        );
    }
    out.push_str(&schedule(&weekly, Syntax::Kdl));
    (out, spans)
}

fn yaml(images: &[Imported], weekly: &Weekly, executors: &[Executor]) -> String {
    let mut out = String::new();
    comment(&mut out, Syntax::Yaml, "", HEADER);
    out.push_str("# registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/images\n");
    out.push_str(&hephy_dsl::print(&settings(executors), Syntax::Yaml));
    out.push_str("\nimages:\n");
    let mut any = false;
    for image in images {
        for note in &image.notes {
            comment(&mut out, Syntax::Yaml, "  ", &format!("{}: {note}", shown(&image.folder)));
        }
        let body = draft(image).print(Syntax::Yaml);
        match &image.disabled {
            Some(why) => {
                comment(&mut out, Syntax::Yaml, "  ", &format!("{}: {why}", shown(&image.folder)));
                comment(&mut out, Syntax::Yaml, "  ", &body);
            }
            None => {
                any = true;
                for line in body.lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
    }
    if !any {
        // Every image is commented out: an empty map keeps `images:` valid.
        out = out.replacen("\nimages:\n", "\nimages: {}\n", 1);
    }
    let weekly = weekly.without(images);
    if !weekly.left_out.is_empty() || !weekly.rebuild.is_empty() {
        out.push('\n');
    }
    for (folder, why) in &weekly.left_out {
        comment(
            &mut out,
            Syntax::Yaml,
            "",
            &format!("rebuild-weekly.txt names `{}`, kept out of the schedule: {why}", shown(folder)),
        );
    }
    out.push_str(&schedule(&weekly, Syntax::Yaml));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why a layout was not imported is an error with its data, saying what it said as text.
    #[test]
    fn a_layout_that_does_not_import_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = import(dir.path(), Syntax::Kdl).unwrap_err();
        assert!(matches!(&err, ImportError::NoImage { dir: d } if d == dir.path()), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "`{}` has no folder with a `build-config.yaml` (or `disabled-build-config.yaml`)",
                dir.path().display()
            )
        );
        let missing = dir.path().join("nothing");
        let err = import(&missing, Syntax::Kdl).unwrap_err();
        assert!(matches!(&err, ImportError::Unreadable { dir: d, .. } if *d == missing), "{err:?}");
        std::fs::create_dir(dir.path().join("off")).expect("mkdir");
        std::fs::write(dir.path().join("off").join(DISABLED), "platforms: [linux/amd64]\n").expect("write");
        let err = import(dir.path(), Syntax::Kdl).unwrap_err();
        let ImportError::NothingBuilds { why, .. } = &err else { panic!("{err:?}") };
        assert_eq!(why.len(), 1);
        assert!(
            err.to_string().contains("imports into an image that builds, and a graph needs one (off: "),
            "{err}"
        );
    }

    #[test]
    fn items_that_are_not_key_value_are_kept_as_written() {
        let root = yaml::value("[A=1, B, \" C = 2 \"]").expect("YAML").expect("a value");
        let items = pairs(&root).expect("a list");
        assert_eq!(items[0], Ok(("A".to_owned(), "1".to_owned())));
        assert_eq!(items[1], Err(NotAPair { item: "B".to_owned() }));
        assert_eq!(items[2], Ok(("C".to_owned(), "2".to_owned())));
        assert_eq!(items[1].clone().unwrap_err().to_string(), "`B` is not KEY=VALUE");
    }

    #[test]
    fn comments_are_taken_off_values() {
        assert_eq!(uncommented("v1.25.3 # pinned for CVE-2025-1"), "v1.25.3");
        assert_eq!(uncommented("\"main\"  # branch"), "main");
        assert_eq!(uncommented("abc#def"), "abc#def");
        assert_eq!(uncommented(""), "");
    }
}
