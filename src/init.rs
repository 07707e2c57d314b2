//! `hephy init`: a starting graph for a repository, from the Dockerfiles it holds.
//!
//! One image per Dockerfile (`Dockerfile`, `Dockerfile.NAME`, `NAME.Dockerfile`), its folder as
//! the context, named after its folder path (`cuda/12` → `cuda-12`). Each `FROM` and
//! `COPY --from=` is read with [`hephy_dockerfile`] (ARG defaults followed through other ARGs)
//! and matched to the repository's own images by name, folder path and tag
//! (`ghcr.io/acme/base` → `base/`, `buildpack-deps:bookworm-curl` → `bookworm/curl/`); a match
//! becomes a `from` wired the way the Dockerfile takes it (`arg=`, `registry-arg=`,
//! `context=`), never one that makes a cycle; an ambiguous one is a comment with the
//! candidates. Owns finding, naming and matching; the CLI checks the text before it says ok.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hephy_dockerfile::Command;
use hephy_dsl::{FromDraft, ImageDraft};

/// One image found: its name, context (relative, `/`-separated, `.` for the root) and
/// Dockerfile name inside the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) name: String,
    pub(crate) context: String,
    pub(crate) dockerfile: String,
    /// The repository's images it builds on, and how each reaches the build.
    pub(crate) from: Vec<Wire>,
    /// Whether the Dockerfile `RUN`s commands (the built-in builder cannot).
    pub(crate) runs: bool,
    /// What `init` inferred or left alone for this image, written above it as comments.
    pub(crate) notes: Vec<String>,
}

/// A `from` edge: the image built on, and the build arg(s) or named context that receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wire {
    pub(crate) image: String,
    pub(crate) arg: Option<String>,
    pub(crate) registry_arg: Option<String>,
    pub(crate) context: Option<String>,
    /// `FROM --platform=$BUILDPLATFORM NAME`: the dependency built for the build machine.
    pub(crate) build_platform: bool,
}

/// What `init` found under a folder.
#[derive(Debug, Clone, Default)]
pub(crate) struct Survey {
    /// The images, sorted by name.
    pub(crate) images: Vec<Found>,
    /// Each naming rule the edges were inferred by, with how many edges it gave.
    pub(crate) rules: Vec<(String, usize)>,
    /// References left unwired (ambiguous, a cycle, a form no build arg can receive).
    pub(crate) unwired: Vec<String>,
}

/// How a reference reaches the build, as the Dockerfile writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum How {
    /// `FROM $ARG` / `FROM ${ARG}` / `FROM ${ARG:-…}`.
    Arg(String),
    /// `FROM ${REPO}:${TAG}`: the reference split in two args.
    Split { registry_arg: String, arg: String },
    /// `FROM name[:tag]` / `COPY --from=name`, as written: a named context.
    Literal { build_platform: bool },
    /// Any other form with variables (`FROM $REGISTRY/$OWNER/base`): no one arg receives it.
    Unwireable,
}

/// A reference of a Dockerfile to an image that may be the repository's own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    /// `FROM …` or `COPY --from=…`, as written.
    shown: String,
    /// The word as written.
    written: String,
    /// The reference with the ARG defaults substituted.
    resolved: String,
    line: usize,
    how: How,
}

#[derive(Debug, Default)]
struct Facts {
    runs: bool,
    references: Vec<Reference>,
}

/// A Dockerfile found, while it is being named and matched.
#[derive(Debug)]
struct Entry {
    /// Its folder's parts (`cuda/12` → `["cuda", "12"]`).
    dir: Vec<String>,
    variant: String,
    dockerfile: String,
    /// What references are matched against: the folder's parts, lowercase, and the variant
    /// (`tool/Dockerfile.debug` → `["tool", "debug"]`; the root's Dockerfile: the root's name).
    key: Vec<String>,
    name: String,
    facts: Facts,
}

/// Which rule matched a reference to an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    /// The reference is an image's name (a sibling's `FROM base`).
    Name,
    /// The reference is the folder name of an image beside the Dockerfile's folder.
    Sibling,
    /// `NAME:SUITE-VARIANT` built in `SUITE/VARIANT/`, NAME the repository's folder name.
    TagInRepository { parts: usize },
    /// `[REGISTRY/]…/NAME:SUITE-VARIANT` built in `NAME/SUITE/VARIANT/` (`segments` of the
    /// reference's path in the folder path).
    TagInFolder { segments: usize, parts: usize },
    /// `[REGISTRY/][OWNER/]NAME[:TAG]` built in a folder `NAME/` (`segments` of the path).
    Folder { segments: usize },
}

impl Rule {
    /// The rule as a pattern, the way it is printed.
    fn text(&self) -> String {
        let tag = |parts: usize| -> (String, String) {
            let names: Vec<String> = match parts {
                1 => vec!["SUITE".to_owned()],
                2 => vec!["SUITE".to_owned(), "VARIANT".to_owned()],
                n => (1..=n).map(|i| format!("PART{i}")).collect(),
            };
            (names.join("-"), names.join("/"))
        };
        let path = |segments: usize| -> String {
            match segments {
                1 => "NAME".to_owned(),
                2 => "OWNER/NAME".to_owned(),
                n => {
                    let mut p: Vec<String> = (1..n).map(|i| format!("PATH{i}")).collect();
                    p.push("NAME".to_owned());
                    p.join("/")
                }
            }
        };
        match self {
            Rule::Name => "`NAME` (no registry, no tag) → the graph's image `NAME`".to_owned(),
            Rule::Sibling => {
                "`NAME` (no registry, no tag) → the image in folder `NAME/` beside the Dockerfile's"
                    .to_owned()
            }
            Rule::TagInRepository { parts } => {
                let (tag, folder) = tag(*parts);
                format!(
                    "`[REGISTRY/][OWNER/]REPOSITORY:{tag}` → folder `{folder}/` (REPOSITORY the repository's folder name)"
                )
            }
            Rule::TagInFolder { segments, parts } => {
                let (tag, folder) = tag(*parts);
                let owner = if *segments == 1 { "[OWNER/]" } else { "" };
                format!(
                    "`[REGISTRY/]{owner}{}:{tag}` → folder `{}/{folder}/`",
                    path(*segments),
                    path(*segments)
                )
            }
            Rule::Folder { segments } => {
                let owner = if *segments == 1 { "[OWNER/]" } else { "" };
                format!("`[REGISTRY/]{owner}{}[:TAG]` → folder `{}/`", path(*segments), path(*segments))
            }
        }
    }
}

/// The Dockerfiles under `root` (honouring `.gitignore`; never `.git`, `.hephy`, `target`),
/// as images with unique names, sorted by name, and the edges between them.
pub(crate) fn scan(root: &Path) -> std::io::Result<Survey> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let walk = ignore::WalkBuilder::new(root)
        .hidden(true)
        .require_git(false)
        .filter_entry(|e| {
            !matches!(e.file_name().to_str(), Some(".git" | ".hephy" | "target" | "node_modules"))
        })
        .build();
    for entry in walk {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Some(file_name) = entry.file_name().to_str() else { continue };
        let Some(variant) = dockerfile_variant(file_name) else { continue };
        let Ok(relative) = entry.path().strip_prefix(root) else { continue };
        files.push((relative.to_path_buf(), variant));
    }
    files.sort();
    let root_folder =
        root.canonicalize().ok().and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned));
    let root_name =
        root_folder.as_deref().map(sanitize).filter(|n| !n.is_empty()).unwrap_or_else(|| "app".to_owned());
    let mut entries: Vec<Entry> = Vec::new();
    for (relative, variant) in &files {
        let folder = relative.parent().unwrap_or(Path::new(""));
        let Some(dir) = folder
            .components()
            .map(|c| c.as_os_str().to_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let dockerfile = relative.file_name().and_then(|f| f.to_str()).unwrap_or("Dockerfile").to_owned();
        let text = std::fs::read_to_string(root.join(relative)).unwrap_or_default();
        let mut key: Vec<String> = if dir.is_empty() {
            vec![root_name.clone()]
        } else {
            dir.iter().map(|p| p.to_ascii_lowercase()).collect()
        };
        if !variant.is_empty() {
            key.push(variant.to_ascii_lowercase());
        }
        entries.push(Entry {
            dir,
            variant: variant.clone(),
            dockerfile,
            key,
            name: String::new(),
            facts: read_facts(&text),
        });
    }
    name_entries(&mut entries, &root_name);
    Ok(wire(entries, &root_name))
}

/// `Some("")` for `Dockerfile`, `Some("dev")` for `Dockerfile.dev` or `dev.Dockerfile`; `None`
/// for a template a script renders into Dockerfiles (`Dockerfile.template`, `.tmpl`, `.in`, …).
fn dockerfile_variant(file_name: &str) -> Option<String> {
    if file_name == "Dockerfile" {
        return Some(String::new());
    }
    if let Some(rest) = file_name.strip_prefix("Dockerfile.") {
        let template = matches!(
            rest.rsplit('.').next().map(str::to_ascii_lowercase).as_deref(),
            Some(
                "template"
                    | "tmpl"
                    | "tpl"
                    | "in"
                    | "j2"
                    | "jinja"
                    | "jinja2"
                    | "erb"
                    | "mustache"
                    | "gotmpl"
            )
        );
        return (!rest.is_empty() && rest != "dockerignore" && !template).then(|| rest.to_owned());
    }
    let lower = file_name.to_ascii_lowercase();
    lower
        .strip_suffix(".dockerfile")
        .filter(|r| !r.is_empty())
        .map(|_| file_name[..file_name.len() - 11].to_owned())
}

/// A name hephy accepts and that is a valid part of an image reference: lowercase letters and
/// digits, parts joined by one `-`, `_` or `__` (anything else, `.` included, becomes `-`),
/// starting and ending with a letter or digit. Not yet cut to length: [`fit`] does.
fn sanitize(text: &str) -> String {
    let mut out = String::new();
    // The separators since the last letter or digit.
    let mut run = String::new();
    for c in text.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_alphanumeric() {
            if !out.is_empty() && !run.is_empty() {
                out.push_str(if run == "_" || run == "__" { &run } else { "-" });
            }
            run.clear();
            out.push(c);
        } else {
            run.push(c);
        }
    }
    out
}

/// The longest name hephy accepts.
const MAX_NAME: usize = 128;

/// `name` (already [`sanitize`]d) at most [`MAX_NAME`] characters: a longer one is cut and
/// ends in `-` and 8 hex digits of its whole text's hash, so names that differ only past the
/// cut stay apart.
fn fit(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_owned();
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    // ASCII after `sanitize`: any byte is a character boundary.
    let head = name[..MAX_NAME - 9].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{}", &hash[..8])
}

/// Names every entry after its folder path, `-`-joined (`cuda/12` → `cuda-12`, the variant
/// last: `tool/Dockerfile.debug` → `tool-debug`), after the folders every image shares
/// (`images/base` and `images/app` → `base`, `app`; not when what is left starts with a digit,
/// as `cuda/11`, `cuda/12` do); the root's Dockerfile after the root's folder. Unique.
fn name_entries(entries: &mut [Entry], root_name: &str) {
    let strip = shared_folders(entries);
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for entry in entries.iter_mut() {
        let head =
            if entry.dir.is_empty() { root_name.to_owned() } else { sanitize(&entry.dir[strip..].join("-")) };
        let variant = sanitize(&entry.variant);
        let parts: Vec<&str> =
            [head.as_str(), variant.as_str()].into_iter().filter(|p| !p.is_empty()).collect();
        let name = fit(&parts.join("-"));
        let name = if name.is_empty() { "image".to_owned() } else { name };
        entry.name = unique(&name, &taken, &BTreeSet::new());
        taken.insert(entry.name.clone());
    }
}

/// How many leading folders every entry shares and may drop from its name: each keeps at least
/// one folder, and none is left starting with a digit (a version is no name).
fn shared_folders(entries: &[Entry]) -> usize {
    if entries.len() < 2 {
        return 0;
    }
    let mut n = 0;
    while let Some(first) = entries[0].dir.get(n) {
        let shared = entries.iter().all(|e| e.dir.len() > n + 1 && e.dir[n] == *first);
        if !shared || entries.iter().any(|e| e.dir[n + 1].starts_with(|c: char| c.is_ascii_digit())) {
            break;
        }
        n += 1;
    }
    n
}

/// `name`, or `name-2`, `name-3`, … : the first neither taken nor reserved.
fn unique(name: &str, taken: &BTreeSet<String>, reserved: &BTreeSet<String>) -> String {
    let mut candidate = name.to_owned();
    let mut n = 2;
    while taken.contains(&candidate) || reserved.contains(&candidate) {
        candidate = fit(&format!("{name}-{n}"));
        n += 1;
    }
    candidate
}

/// What was decided for one reference.
#[derive(Debug)]
enum Decision {
    Wired {
        at: usize,
        reference: usize,
        image: usize,
        rule: Rule,
    },
    Ambiguous {
        at: usize,
        reference: usize,
        images: Vec<usize>,
        rule: Rule,
    },
    /// Wiring it would make a cycle (or it names its own image).
    Cycle {
        at: usize,
        reference: usize,
        image: usize,
        rule: Rule,
    },
    /// Its form reaches the build through no one build arg or named context.
    Unwireable {
        at: usize,
        reference: usize,
        image: usize,
        rule: Rule,
    },
    /// Pinned by digest (`…@sha256:…`): a published build, which stays the registry's.
    Pinned {
        at: usize,
        reference: usize,
        image: usize,
    },
    /// A second reference to an image already wired another way.
    Again {
        at: usize,
        reference: usize,
        image: usize,
    },
}

/// Matches every reference to the repository's images, wires the matches that make no cycle,
/// renames an image whose name an unwired `FROM NAME` would otherwise take for it, and writes
/// what was decided as each image's notes.
fn wire(mut entries: Vec<Entry>, repository: &str) -> Survey {
    let n = entries.len();
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut wires: Vec<Vec<(usize, Wire)>> = vec![Vec::new(); n];
    let mut decisions: Vec<Decision> = Vec::new();
    for at in 0..n {
        for (index, reference) in entries[at].facts.references.iter().enumerate() {
            let Some((images, rule)) = matches(reference, at, &entries, repository) else { continue };
            if images.len() > 1 {
                decisions.push(Decision::Ambiguous { at, reference: index, images, rule });
                continue;
            }
            let image = images[0];
            if reference.resolved.contains('@') {
                decisions.push(Decision::Pinned { at, reference: index, image });
                continue;
            }
            if reaches(&deps, image, at) {
                decisions.push(Decision::Cycle { at, reference: index, image, rule });
                continue;
            }
            let mut wire = Wire {
                image: String::new(),
                arg: None,
                registry_arg: None,
                context: None,
                build_platform: false,
            };
            match &reference.how {
                How::Arg(arg) => wire.arg = Some(arg.clone()),
                How::Split { registry_arg, arg } => {
                    wire.arg = Some(arg.clone());
                    wire.registry_arg = Some(registry_arg.clone());
                }
                How::Literal { build_platform } => {
                    wire.context = Some(reference.written.clone());
                    wire.build_platform = *build_platform;
                }
                How::Unwireable => {
                    decisions.push(Decision::Unwireable { at, reference: index, image, rule });
                    continue;
                }
            }
            match wires[at].iter_mut().find(|(d, _)| *d == image) {
                None => wires[at].push((image, wire)),
                Some((_, existing)) => {
                    let same = (wire.arg.is_some() && wire.arg == existing.arg)
                        || (wire.context.is_some() && wire.context == existing.context);
                    // The same arg or context again (`COPY --from=base` after `FROM base`)
                    // adds nothing; one `from` takes one arg and one named context.
                    if !same && wire.arg.is_some() && existing.arg.is_none() {
                        existing.arg = wire.arg;
                        existing.registry_arg = wire.registry_arg;
                    } else if !same && wire.context.is_some() && existing.context.is_none() {
                        existing.context = wire.context;
                        existing.build_platform = wire.build_platform;
                    } else if !same {
                        decisions.push(Decision::Again { at, reference: index, image });
                        continue;
                    }
                }
            }
            deps[at].insert(image);
            decisions.push(Decision::Wired { at, reference: index, image, rule });
        }
    }
    // `check` refuses a `FROM NAME` (or `COPY --from=NAME`) left unwired where NAME is an image
    // of the graph: such an image takes another name, and the reference stays the registry's.
    let mut reserved: BTreeSet<String> = BTreeSet::new();
    for (at, entry) in entries.iter().enumerate() {
        for reference in &entry.facts.references {
            let wired =
                wires[at].iter().any(|(_, w)| w.context.as_deref() == Some(reference.written.as_str()));
            if matches!(reference.how, How::Literal { .. }) && !wired {
                reserved.insert(reference.written.clone());
            }
        }
    }
    let mut renamed: Vec<Option<String>> = vec![None; n];
    let mut taken: BTreeSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    for (at, entry) in entries.iter_mut().enumerate() {
        if reserved.contains(&entry.name) {
            let name = unique(&fit(&format!("{}-image", entry.name)), &taken, &reserved);
            taken.insert(name.clone());
            renamed[at] = Some(std::mem::replace(&mut entry.name, name));
        }
    }
    let mut notes: Vec<Vec<String>> = vec![Vec::new(); n];
    for (at, old) in renamed.iter().enumerate() {
        if let Some(old) = old {
            notes[at].push(format!(
                "named `{}`, not `{old}`: a Dockerfile's `FROM {old}` here means the registry's `{old}`",
                entries[at].name
            ));
        }
    }
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    let mut unwired = Vec::new();
    let place = |image: usize| {
        let entry = &entries[image];
        let mut path = entry.dir.clone();
        path.push(entry.dockerfile.clone());
        format!("`{}` (`{}`)", entry.name, hephy_dsl::escape::excerpt(&path.join("/"), 200))
    };
    for decision in &decisions {
        let (at, text) = match decision {
            Decision::Wired { at, reference, image, rule } => {
                let r = &entries[*at].facts.references[*reference];
                *rules.entry(rule.text()).or_default() += 1;
                (
                    *at,
                    format!(
                        "line {}: `{}` is image {}, by rule {}",
                        r.line,
                        r.shown,
                        place(*image),
                        rule.text()
                    ),
                )
            }
            Decision::Ambiguous { at, reference, images, rule } => {
                let r = &entries[*at].facts.references[*reference];
                let list: Vec<String> = images.iter().map(|&i| place(i)).collect();
                let text = format!(
                    "line {}: `{}` may be image {}, by rule {}: not wired; add the `from` it means, if any",
                    r.line,
                    r.shown,
                    list.join(" or "),
                    rule.text()
                );
                unwired.push(format!("`{}`: {text}", entries[*at].name));
                (*at, text)
            }
            Decision::Cycle { at, reference, image, rule } => {
                let r = &entries[*at].facts.references[*reference];
                let text = format!(
                    "line {}: `{}` would be image {}, by rule {}, which builds on this one: not wired (a cycle); it stays the registry's image",
                    r.line,
                    r.shown,
                    place(*image),
                    rule.text()
                );
                unwired.push(format!("`{}`: {text}", entries[*at].name));
                (*at, text)
            }
            Decision::Unwireable { at, reference, image, rule } => {
                let r = &entries[*at].facts.references[*reference];
                let text = format!(
                    "line {}: `{}` is image {}, by rule {}, but no one build arg receives it: write `ARG BASE={}` / `FROM ${{BASE}}` and add `from` with `arg=\"BASE\"`",
                    r.line,
                    r.shown,
                    place(*image),
                    rule.text(),
                    r.written
                );
                unwired.push(format!("`{}`: {text}", entries[*at].name));
                (*at, text)
            }
            Decision::Pinned { at, reference, image } => {
                let r = &entries[*at].facts.references[*reference];
                let text = format!(
                    "line {}: `{}` is a published build of image {}, pinned by digest: it stays the registry's image",
                    r.line,
                    r.shown,
                    place(*image)
                );
                (*at, text)
            }
            Decision::Again { at, reference, image } => {
                let r = &entries[*at].facts.references[*reference];
                let text = format!(
                    "line {}: `{}` is image {} too, already wired another way: one `from` takes one arg and one named context",
                    r.line,
                    r.shown,
                    place(*image)
                );
                unwired.push(format!("`{}`: {text}", entries[*at].name));
                (*at, text)
            }
        };
        notes[at].push(text);
    }
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    let mut images: Vec<Found> = entries
        .into_iter()
        .zip(wires)
        .zip(notes)
        .map(|((entry, wires), notes)| Found {
            context: if entry.dir.is_empty() { ".".to_owned() } else { entry.dir.join("/") },
            name: entry.name,
            dockerfile: entry.dockerfile,
            from: wires.into_iter().map(|(d, w)| Wire { image: names[d].clone(), ..w }).collect(),
            runs: entry.facts.runs,
            notes,
        })
        .collect();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    Survey { images, rules: rules.into_iter().collect(), unwired }
}

/// Whether `from` depends, through `deps`, on `to` (or is it).
fn reaches(deps: &[BTreeSet<usize>], from: usize, to: usize) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(at) = stack.pop() {
        if at == to {
            return true;
        }
        if seen.insert(at) {
            stack.extend(deps[at].iter().copied());
        }
    }
    false
}

/// A reference's parts: its registry (when it names one), its path (lowercase) and its tag.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    registry: Option<String>,
    path: Vec<String>,
    tag: Option<String>,
}

/// `ghcr.io/acme/base:1.2@sha256:…` → registry `ghcr.io`, path `acme/base`, tag `1.2`. `None`
/// for what is no image reference, and for an official image written in full
/// (`docker.io/library/alpine`): that is the registry's, whatever the repository holds.
fn parse_reference(text: &str) -> Option<Parsed> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == '$') {
        return None;
    }
    let name = text.split('@').next().unwrap_or_default();
    let (repository, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(name[i + 1..].to_owned())),
        _ => (name, None),
    };
    let mut path: Vec<String> = repository.split('/').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return None;
    }
    let registry =
        (path.len() > 1 && (path[0].contains(['.', ':']) || path[0] == "localhost")).then(|| path.remove(0));
    let docker_hub = registry
        .as_deref()
        .is_none_or(|r| matches!(r, "docker.io" | "index.docker.io" | "registry-1.docker.io"));
    if docker_hub && path.len() == 2 && path[0] == "library" {
        return None;
    }
    Some(Parsed { registry, path, tag: tag.filter(|t| !t.is_empty()) })
}

/// The ways `tag` reads as folders: `bookworm-curl` → `[bookworm-curl]`, `[bookworm, curl]`
/// (at most 8 `-`-parts are split; a longer tag is one folder).
fn tag_folders(tag: &str) -> Vec<Vec<String>> {
    let tokens: Vec<&str> = tag.split('-').collect();
    if tokens.len() > 8 || tokens.iter().any(|t| t.is_empty()) {
        return vec![vec![tag.to_owned()]];
    }
    (0..1u32 << (tokens.len() - 1))
        .map(|cuts| {
            let mut parts = vec![tokens[0].to_owned()];
            for (i, token) in tokens.iter().enumerate().skip(1) {
                if cuts & (1 << (i - 1)) != 0 {
                    parts.push((*token).to_owned());
                } else if let Some(last) = parts.last_mut() {
                    last.push('-');
                    last.push_str(token);
                }
            }
            parts
        })
        .collect()
}

/// The images (never `me`) `reference` names, by the first rule that finds any: an image's own
/// name (a literal `FROM NAME`, which `check` holds to the graph's `NAME`, or `ARG BASE=NAME`),
/// else a sibling folder's (`FROM base` beside `base/`); the tag as folders (`REPOSITORY:SUITE-VARIANT` in `…/SUITE/VARIANT/` when REPOSITORY is the
/// repository's folder name, `OWNER/NAME:SUITE-VARIANT` in `…/NAME/SUITE/VARIANT/`); the
/// path's last parts as folders (`[REGISTRY/]OWNER/NAME` in `…/NAME/`). A Docker Hub name of
/// one part (`node`, `debian:bookworm`) is matched by the graph's names and the repository's
/// own name only: anything else by that name is the registry's.
fn matches(
    reference: &Reference,
    me: usize,
    entries: &[Entry],
    repository: &str,
) -> Option<(Vec<usize>, Rule)> {
    let others = |test: &dyn Fn(&Entry) -> bool| -> Vec<usize> {
        (0..entries.len()).filter(|&k| k != me && test(&entries[k])).collect()
    };
    if matches!(reference.how, How::Literal { .. }) {
        let named = others(&|e| e.name == reference.written);
        if !named.is_empty() {
            return Some((named, Rule::Name));
        }
    }
    let parsed = parse_reference(&reference.resolved)?;
    let path = &parsed.path;
    let official = parsed.registry.is_none() && path.len() == 1;
    let tag = parsed.tag.as_deref().filter(|t| *t != "latest");
    if official && tag.is_none() {
        let named = others(&|e| e.name == path[0]);
        if !named.is_empty() {
            return Some((named, Rule::Name));
        }
        // `docker/app/Dockerfile: FROM base` with `docker/base/` beside it.
        let mine = &entries[me].dir;
        let siblings = others(&|e| {
            e.variant.is_empty()
                && !mine.is_empty()
                && e.dir.len() == mine.len()
                && e.dir[..mine.len() - 1] == mine[..mine.len() - 1]
                && e.key.last() == Some(&path[0])
        });
        return (!siblings.is_empty()).then_some((siblings, Rule::Sibling));
    }
    if let Some(tag) = tag {
        let mut found: BTreeMap<usize, Rule> = BTreeMap::new();
        for parts in tag_folders(tag) {
            if path.last().is_some_and(|last| *last == repository) {
                for k in others(&|e| e.key.ends_with(&parts)) {
                    found.entry(k).or_insert(Rule::TagInRepository { parts: parts.len() });
                }
            }
            if official {
                continue;
            }
            for segments in 1..=path.len() {
                let mut folders: Vec<String> = path[path.len() - segments..].to_vec();
                folders.extend(parts.iter().cloned());
                for k in others(&|e| e.key.ends_with(&folders)) {
                    found.entry(k).or_insert(Rule::TagInFolder { segments, parts: parts.len() });
                }
            }
        }
        if let Some(rule) = found.values().min().cloned() {
            return Some((found.into_keys().collect(), rule));
        }
        if official {
            return None;
        }
    }
    for segments in (1..=path.len()).rev() {
        let folders = &path[path.len() - segments..];
        let found = others(&|e| e.key.ends_with(folders));
        if !found.is_empty() {
            return Some((found, Rule::Folder { segments }));
        }
    }
    None
}

/// The references of a Dockerfile that may name one of the repository's images: each `FROM`
/// (not a stage, not `scratch`) and `COPY --from=NAME` (not a stage or index), with the ARG
/// defaults substituted through each other (`ARG BASE_IMAGE=$REGISTRY/$OWNER/base`), as
/// [`hephy_dockerfile`] reads and substitutes them. A file that does not read has none (the
/// checks say why when the graph is used).
fn read_facts(text: &str) -> Facts {
    let mut facts = Facts::default();
    let Ok(dockerfile) = hephy_dockerfile::parse(text) else { return facts };
    let escape = dockerfile.escape;
    let mut defaults: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    for instruction in &dockerfile.instructions {
        facts.runs |= instruction.runs();
        let is_stage = |word: &str| stages.iter().any(|s| s.eq_ignore_ascii_case(word));
        match &instruction.command {
            Command::Arg(args) => {
                for arg in args {
                    // An ARG without a default keeps the value an earlier one gave (a stage's
                    // `ARG BASE` takes the global default).
                    let Some(default) = &arg.default else { continue };
                    if let Ok(value) =
                        hephy_dockerfile::word(&default.text, escape, &|n| defaults.get(n).cloned())
                    {
                        defaults.insert(arg.name.text.clone(), value);
                    }
                }
            }
            Command::From { image, platform, alias } => {
                let written = image.text.as_str();
                if !is_stage(written) && !written.eq_ignore_ascii_case("scratch") {
                    let build_platform = platform.as_ref().is_some_and(|p| p.text.contains("BUILDPLATFORM"));
                    let shown = format!("FROM {}", hephy_dsl::escape::excerpt(written, 200));
                    facts.references.extend(reference(
                        shown,
                        written,
                        instruction.line,
                        build_platform,
                        escape,
                        &defaults,
                        &stages,
                    ));
                }
                if let Some(alias) = alias {
                    stages.push(alias.text.clone());
                }
            }
            Command::Copy(copy) => {
                if let Some(from) = &copy.from {
                    let written = from.text.as_str();
                    if !is_stage(written) && written.parse::<usize>().is_err() && !written.contains('$') {
                        let shown = format!("COPY --from={}", hephy_dsl::escape::excerpt(written, 200));
                        facts.references.extend(reference(
                            shown,
                            written,
                            instruction.line,
                            false,
                            escape,
                            &defaults,
                            &stages,
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    facts
}

/// The reference `written` makes, with `defaults` substituted; `None` when it names nothing
/// (an ARG without a default, a substitution that fails).
fn reference(
    shown: String,
    written: &str,
    line: usize,
    build_platform: bool,
    escape: char,
    defaults: &BTreeMap<String, String>,
    stages: &[String],
) -> Option<Reference> {
    let how = if !written.contains('$') {
        if is_context_name(written) { How::Literal { build_platform } } else { How::Unwireable }
    } else if let Some(arg) = single_variable(written) {
        How::Arg(arg.to_owned())
    } else if let Some((registry_arg, arg)) = split_variables(written) {
        How::Split { registry_arg: registry_arg.to_owned(), arg: arg.to_owned() }
    } else {
        How::Unwireable
    };
    let resolved = hephy_dockerfile::word(written, escape, &|n| defaults.get(n).cloned()).ok()?;
    let resolved = resolved.trim().to_owned();
    // `ARG ROOT_IMAGE=default_root_image` / `FROM $ROOT_IMAGE`: an earlier stage.
    let stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&resolved));
    (!resolved.is_empty() && !resolved.contains('$') && !stage).then(|| Reference {
        shown,
        written: written.to_owned(),
        resolved,
        line,
        how,
    })
}

/// Whether `word` may be a named context's name as the language takes it (lower-case letters,
/// digits, `.`, `_`, `-`, `/`, `:`; a letter or digit first).
fn is_context_name(word: &str) -> bool {
    word.len() <= 255
        && word.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
}

/// `$NAME`, `${NAME}`, `${NAME:-…}` or `${NAME-…}` as the whole word: `NAME`.
fn single_variable(word: &str) -> Option<&str> {
    let is_name = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if let Some(rest) = word.strip_prefix("${") {
        // The `}` closing this `${` ends the word.
        let mut depth = 1usize;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 && i + 1 != rest.len() {
                        return None;
                    }
                }
                _ => {}
            }
        }
        if depth != 0 {
            return None;
        }
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let (name, after) = rest.split_at(end);
        (is_name(name) && (after == "}" || after.starts_with(":-") || after.starts_with('-'))).then_some(name)
    } else {
        word.strip_prefix('$').filter(|name| is_name(name))
    }
}

/// `${REPOSITORY}:${TAG}` (or `$REPOSITORY:$TAG`): the two names, as `registry-arg=` and
/// `arg=` receive them.
fn split_variables(word: &str) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    for (i, c) in word.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                if let (Some(repository), Some(tag)) =
                    (single_variable(&word[..i]), single_variable(&word[i + 1..]))
                {
                    return Some((repository, tag));
                }
            }
            _ => {}
        }
    }
    None
}

/// The JSON Schema `init` writes beside a YAML graph, which its first line names.
pub(crate) const SCHEMA_FILE: &str = "hephy.schema.json";

/// What `init` does beside the graph it wrote in `dir`: the schema a YAML graph names (unless a
/// file of that name is there), `.hephy/` added to an existing `.gitignore` that lacks it.
/// Returns what it did and what it suggests, a line each.
pub(crate) fn finish(dir: &Path, syntax: Syntax) -> std::io::Result<Vec<String>> {
    let mut said = Vec::new();
    if syntax == Syntax::Yaml {
        let schema = dir.join(SCHEMA_FILE);
        if std::fs::symlink_metadata(&schema).is_err() {
            std::fs::write(&schema, crate::schema::text())?;
            said.push(format!(
                "wrote {SCHEMA_FILE}: the schema editors check hephy.yaml with (`hephy schema > {SCHEMA_FILE}` renews it)"
            ));
        }
    }
    let ignore = dir.join(".gitignore");
    match std::fs::symlink_metadata(&ignore) {
        Ok(meta) if meta.is_file() => {
            let text = std::fs::read_to_string(&ignore)?;
            if !ignores_state(&text) {
                let mut file = std::fs::OpenOptions::new().append(true).open(&ignore)?;
                let sep = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
                std::io::Write::write_all(
                    &mut file,
                    format!("{sep}# hephy's state (`hephy init`)\n.hephy/\n").as_bytes(),
                )?;
                said.push("added `.hephy/` to .gitignore: hephy's state stays out of git".to_owned());
            }
        }
        // A link or a folder there is left alone.
        Ok(_) => said.push("hephy keeps its state in `.hephy/`: keep it out of git".to_owned()),
        Err(_) => said.push(
            "hephy keeps its state in `.hephy/`: `echo .hephy/ >> .gitignore` keeps it out of git".to_owned(),
        ),
    }
    Ok(said)
}

/// Whether a `.gitignore`'s text has a line that ignores the `.hephy` folder at its root.
fn ignores_state(text: &str) -> bool {
    text.lines().map(str::trim).any(|l| {
        matches!(l, ".hephy" | ".hephy/" | "/.hephy" | "/.hephy/" | ".hephy/*" | "/.hephy/*" | ".hephy/**")
    })
}

/// The syntax `init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Kdl,
    Yaml,
}

/// The graph file's text for what `scan` found.
pub(crate) fn render(survey: &Survey, syntax: Syntax) -> String {
    let images = &survey.images;
    let buildah = images.iter().any(|i| i.runs);
    let written = match syntax {
        Syntax::Kdl => hephy_dsl::Syntax::Kdl,
        Syntax::Yaml => hephy_dsl::Syntax::Yaml,
    };
    let mut header = String::from(
        "Written by `hephy init`: one image per Dockerfile found. Edit freely;\n`hephy check` validates it, `hephy plan` shows what would build.",
    );
    if buildah {
        header.push_str(
            "\nThe default builder (`auto`) builds the Dockerfiles that RUN commands with buildah.",
        );
    }
    if !survey.rules.is_empty() {
        header.push_str(
            "\nEdges inferred from FROM and COPY --from, by these rules (registry prefixes stripped):",
        );
        for (rule, count) in &survey.rules {
            let _ = write!(header, "\n  {rule}: {count} edge(s)");
        }
    }
    let mut out = String::new();
    if syntax == Syntax::Yaml {
        // First, where the YAML language server looks: the schema `finish` writes beside it.
        let _ = writeln!(out, "# yaml-language-server: $schema={SCHEMA_FILE}");
    }
    out.push_str(&hephy_dsl::escape::graph_comment(written, "", &header));
    let platforms = match syntax {
        Syntax::Kdl => "platforms \"linux/amd64\" \"linux/arm64\"",
        Syntax::Yaml => "platforms: [linux/amd64, linux/arm64]",
    };
    out.push('\n');
    out.push_str(&hephy_dsl::escape::graph_comment(
        written,
        "",
        &format!("The platforms images are built for (default: this machine's):\n{platforms}"),
    ));
    if syntax == Syntax::Yaml {
        out.push_str("\nimages:\n");
    }
    for image in images {
        let mut draft = ImageDraft::named(&image.name).with_context(&image.context);
        if image.dockerfile != "Dockerfile" {
            draft = draft.with_dockerfile(&image.dockerfile);
        }
        for wire in &image.from {
            let mut from = FromDraft::new();
            match (&wire.arg, &wire.registry_arg) {
                (Some(arg), Some(registry_arg)) => from = from.with_args(arg, registry_arg),
                (Some(arg), None) => from = from.with_arg(arg),
                _ => {}
            }
            if let Some(context) = &wire.context {
                from = from.with_context(context);
                if wire.build_platform {
                    from = from.for_build_platform();
                }
            }
            draft = draft.with_from(&wire.image, from);
        }
        let text = draft.with_tags(&["latest"]).print(written);
        let notes = image.notes.join("\n");
        match syntax {
            Syntax::Kdl => {
                out.push('\n');
                if !notes.is_empty() {
                    out.push_str(&hephy_dsl::escape::graph_comment(written, "", &notes));
                }
                out.push_str(&text);
            }
            Syntax::Yaml => {
                if !notes.is_empty() {
                    out.push_str(&hephy_dsl::escape::graph_comment(written, "  ", &notes));
                }
                for line in text.lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("folders");
            std::fs::write(full, text).expect("write");
        }
        dir
    }

    fn names(dir: &tempfile::TempDir) -> Vec<String> {
        scan(dir.path()).expect("scan").images.into_iter().map(|i| i.name).collect()
    }

    #[test]
    fn names_variants_and_edges() {
        let dir = folder(&[
            ("curl/Dockerfile", "FROM alpine:3.20\nRUN apk add curl\n"),
            ("tool/Dockerfile", "ARG BASE=curl:latest\nFROM ${BASE}\nCOPY a /a\n"),
            ("tool/Dockerfile.Debug", "ARG BASE=curl\nFROM $BASE AS x\n"),
            ("svc/web.dockerfile", "FROM scratch\n"),
            ("ignored/Dockerfile", "FROM scratch\n"),
            (".gitignore", "ignored/\n"),
        ]);
        std::fs::create_dir_all(dir.path().join(".git")).expect("git folder");
        let images = scan(dir.path()).expect("scan").images;
        let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["curl", "svc-web", "tool", "tool-debug"]);
        let tool = &images[2];
        assert_eq!(tool.from.len(), 1);
        assert_eq!((tool.from[0].image.as_str(), tool.from[0].arg.as_deref()), ("curl", Some("BASE")));
        assert!(images[0].runs && !tool.runs);
        assert_eq!(images[1].dockerfile, "web.dockerfile");
        assert_eq!(images[3].dockerfile, "Dockerfile.Debug");
    }

    #[test]
    fn nested_folders_are_named_by_their_path() {
        let dir = folder(&[
            ("cuda/11/Dockerfile", "FROM scratch\n"),
            ("cuda/12/Dockerfile", "FROM scratch\n"),
            ("cuda12/Dockerfile", "FROM scratch\n"),
        ]);
        assert_eq!(names(&dir), ["cuda-11", "cuda-12", "cuda12"]);
        // Folders every image shares are left out, unless a version would be left.
        let dir = folder(&[
            ("images/base/Dockerfile", "FROM scratch\n"),
            ("images/app/Dockerfile", "FROM scratch\n"),
        ]);
        assert_eq!(names(&dir), ["app", "base"]);
        let dir =
            folder(&[("cuda/11/Dockerfile", "FROM scratch\n"), ("cuda/12/Dockerfile", "FROM scratch\n")]);
        assert_eq!(names(&dir), ["cuda-11", "cuda-12"]);
    }

    #[test]
    fn arg_defaults_are_followed_through_other_args() {
        let facts = read_facts(
            "ARG REGISTRY=ghcr.io\nARG OWNER=acme\nARG BASE_IMAGE=$REGISTRY/$OWNER/base-image\nFROM $BASE_IMAGE AS build\nFROM build\nCOPY --from=build /a /a\nCOPY --from=tools /b /b\nARG REPO=${REGISTRY}/${OWNER}/x\nARG TAG=1\nFROM ${REPO}:${TAG}\nFROM $REGISTRY/$OWNER/y\nFROM scratch\n",
        );
        let got: Vec<(&str, &str, &How)> =
            facts.references.iter().map(|r| (r.written.as_str(), r.resolved.as_str(), &r.how)).collect();
        let split = How::Split { registry_arg: "REPO".to_owned(), arg: "TAG".to_owned() };
        assert_eq!(
            got,
            [
                ("$BASE_IMAGE", "ghcr.io/acme/base-image", &How::Arg("BASE_IMAGE".to_owned())),
                ("tools", "tools", &How::Literal { build_platform: false }),
                ("${REPO}:${TAG}", "ghcr.io/acme/x:1", &split),
                ("$REGISTRY/$OWNER/y", "ghcr.io/acme/y", &How::Unwireable),
            ]
        );
        assert_eq!(single_variable("${BASE:-x}"), Some("BASE"));
        assert_eq!(single_variable("${A}${B}"), None);
        assert_eq!(single_variable("$A/b"), None);
        assert_eq!(split_variables("$A:$B"), Some(("A", "B")));
    }

    #[test]
    fn layered_headers_with_a_root_stage_arg_and_a_digest_pin() {
        // The bottom image's root is a stage named through an ARG, and a demo builds on a
        // published app layer pinned by digest (invented names and digests).
        let dir = folder(&[
            (
                "images/root-layer/Dockerfile",
                "ARG BASE_STAGE=plain_root\nFROM debian:13@sha256:b84c5dfdb22d6fa6eb2bb2f0e698d3ef48dbb680428e786fab9c49b7657b1fb0 AS plain_root\nFROM example/pkgtool:0.4.2 AS pkgtool\nFROM $BASE_STAGE\nCOPY --from=pkgtool /usr/bin/pkgtool /usr/bin/\n",
            ),
            (
                "images/app-layer/Dockerfile",
                "ARG HOST=registry.example.net\nARG TEAM=lattice\nARG PARENT=$HOST/$TEAM/root-layer\nFROM $PARENT\n",
            ),
            (
                "demo/Dockerfile",
                "ARG HOST=registry.example.net\nARG TEAM=lattice\nARG PARENT=$HOST/$TEAM/app-layer:2031-02-03@sha256:a2feeb6423b3abd52fac2a62a0c688273ddcf04290d19caf0b11f98e6146af24\nFROM $PARENT\n",
            ),
        ]);
        let survey = scan(dir.path()).expect("scan");
        let edges: Vec<(&str, &str)> = survey
            .images
            .iter()
            .flat_map(|i| i.from.iter().map(move |w| (w.image.as_str(), i.name.as_str())))
            .collect();
        assert_eq!(edges, [("images-root-layer", "images-app-layer")]);
        let demo = &survey.images[0];
        assert_eq!(demo.name, "demo");
        assert!(demo.notes[0].contains("pinned by digest: it stays the registry's image"), "{demo:?}");
        assert!(survey.unwired.is_empty(), "{survey:?}");
    }

    #[test]
    fn a_sibling_folder_is_matched_by_its_name() {
        let dir = folder(&[
            ("docker/base/Dockerfile", "FROM scratch\n"),
            ("docker/app/Dockerfile", "FROM base\n"),
            ("tools/Dockerfile", "FROM scratch\n"),
        ]);
        let survey = scan(dir.path()).expect("scan");
        let app = &survey.images[0];
        assert_eq!(app.name, "docker-app");
        assert_eq!(
            (app.from[0].image.as_str(), app.from[0].context.as_deref()),
            ("docker-base", Some("base"))
        );
    }

    #[test]
    fn references_and_tags() {
        let parsed = parse_reference("GHCR.io/Acme/base:1.2@sha256:abc").expect("a reference");
        assert_eq!(parsed.registry.as_deref(), Some("ghcr.io"));
        assert_eq!(parsed.path, ["acme", "base"]);
        assert_eq!(parsed.tag.as_deref(), Some("1.2"));
        assert_eq!(parse_reference("localhost:5000/x").expect("a reference").path, ["x"]);
        assert_eq!(parse_reference("docker.io/library/alpine"), None);
        assert_eq!(parse_reference("library/alpine:3"), None);
        assert!(parse_reference("ghcr.io/library/alpine").is_some());
        assert_eq!(tag_folders("a-b-c").len(), 4);
        assert!(tag_folders("bookworm-curl").contains(&vec!["bookworm".to_owned(), "curl".to_owned()]));
        assert_eq!(tag_folders(&"x-".repeat(20)).len(), 1);
    }

    #[test]
    fn a_docker_hub_name_stays_the_registry_s() {
        // `node`, `node:20`, `debian:bookworm` are Docker Hub's, whatever folders the
        // repository has (buildpack-deps builds `debian/bookworm/curl` FROM `debian:bookworm`).
        let dir = folder(&[
            ("tools/node/Dockerfile", "FROM scratch\n"),
            ("node/20/Dockerfile", "FROM scratch\n"),
            ("debian/bookworm/Dockerfile", "FROM scratch\n"),
            ("debian/bookworm/curl/Dockerfile", "FROM debian:bookworm\n"),
            ("app/Dockerfile", "FROM node:20\nFROM node\n"),
        ]);
        let survey = scan(dir.path()).expect("scan");
        assert!(survey.images.iter().all(|i| i.from.is_empty()), "{survey:?}");
        // An owner's name is matched by folders.
        let dir =
            folder(&[("node/20/Dockerfile", "FROM scratch\n"), ("app/Dockerfile", "FROM acme/node:20\n")]);
        let survey = scan(dir.path()).expect("scan");
        assert_eq!(survey.images[0].from[0].context.as_deref(), Some("acme/node:20"));
    }

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize("My App_1"), "my-app_1");
        assert_eq!(sanitize("--x--y--"), "x-y");
        assert_eq!(sanitize("my.app"), "my-app");
        assert_eq!(sanitize("a_-b__c___d.-_e"), "a-b__c-d-e");
        let long = "x".repeat(300);
        let cut = fit(&long);
        assert_eq!(cut.len(), MAX_NAME);
        assert_ne!(cut, fit(&format!("{long}y")), "names that differ past the cut stay apart");
        assert_eq!(fit("short"), "short");
    }
}
