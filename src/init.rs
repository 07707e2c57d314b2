//! `hephy init`: a starting graph for a repository, from the Dockerfiles it holds.
//!
//! One image per Dockerfile (`Dockerfile`, `Dockerfile.NAME`, `NAME.Dockerfile`), its folder as
//! the context; `from` edges where a Dockerfile builds on another of the repository's images
//! (`ARG BASE=curl` / `FROM ${BASE}`). Owns finding and naming; the text is written by the
//! same rules SPEC gives, and the CLI checks the result like any graph file before it says ok.

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
    /// `(image, arg)`: built FROM that image of the repository, passed as that build arg.
    pub(crate) from: Vec<(String, String)>,
    /// Whether the Dockerfile `RUN`s commands (the built-in builder cannot).
    pub(crate) runs: bool,
}

/// The Dockerfiles under `root` (honouring `.gitignore`; never `.git`, `.hephy`, `target`),
/// as images with unique names, sorted by name.
pub(crate) fn scan(root: &Path) -> std::io::Result<Vec<Found>> {
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
    let root_name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(sanitize))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "app".to_owned());
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut found = Vec::new();
    for (relative, variant) in &files {
        let folder = relative.parent().unwrap_or(Path::new(""));
        let parts: Vec<String> =
            folder.components().filter_map(|c| c.as_os_str().to_str()).map(str::to_owned).collect();
        let context = if parts.is_empty() { ".".to_owned() } else { parts.join("/") };
        let short = parts.last().map_or_else(|| root_name.clone(), |p| sanitize(p));
        let long = if parts.is_empty() { root_name.clone() } else { sanitize(&parts.join("-")) };
        let variant = sanitize(variant);
        let joined = |head: &str| {
            let parts: Vec<&str> = [head, variant.as_str()].into_iter().filter(|p| !p.is_empty()).collect();
            fit(&parts.join("-"))
        };
        let mut name = joined(&short);
        if name.is_empty() || names.contains(&name) {
            name = joined(&long);
        }
        if name.is_empty() {
            name = "image".to_owned();
        }
        let mut n = 2;
        let base = name.clone();
        while names.contains(&name) {
            name = fit(&format!("{base}-{n}"));
            n += 1;
        }
        names.insert(name.clone());
        let dockerfile = relative.file_name().and_then(|f| f.to_str()).unwrap_or("Dockerfile").to_owned();
        let text = std::fs::read_to_string(root.join(relative)).unwrap_or_default();
        let facts = read_facts(&text);
        found.push((Found { name, context, dockerfile, from: Vec::new(), runs: facts.runs }, facts));
    }
    // Edges: a FROM that names, through an ARG's default, another image of the repository.
    let known: BTreeSet<String> = found.iter().map(|(f, _)| f.name.clone()).collect();
    for (image, facts) in &mut found {
        for (arg, default) in &facts.arg_froms {
            let repository = strip_tag(default);
            if repository != image.name && known.contains(repository) {
                image.from.push((repository.to_owned(), arg.clone()));
            }
        }
    }
    let mut images: Vec<Found> = found.into_iter().map(|(f, _)| f).collect();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(images)
}

/// `Some("")` for `Dockerfile`, `Some("dev")` for `Dockerfile.dev` or `dev.Dockerfile`.
fn dockerfile_variant(file_name: &str) -> Option<String> {
    if file_name == "Dockerfile" {
        return Some(String::new());
    }
    if let Some(rest) = file_name.strip_prefix("Dockerfile.") {
        return (!rest.is_empty() && rest != "dockerignore").then(|| rest.to_owned());
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

/// `curl:8.5` → `curl`; `curl@sha256:…` → `curl`.
fn strip_tag(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => &reference[..i],
        _ => reference,
    }
}

#[derive(Debug, Default)]
struct Facts {
    runs: bool,
    /// `(ARG, its default)` for each `FROM ${ARG}` / `FROM $ARG` whose ARG has a default.
    arg_froms: Vec<(String, String)>,
}

/// The little `init` needs of a Dockerfile ([`hephy_dockerfile`] reads it): whether it `RUN`s,
/// and which FROMs name an ARG with a default. A file that does not read has no facts (the
/// checks say why when the graph is used).
fn read_facts(text: &str) -> Facts {
    let mut facts = Facts::default();
    let Ok(dockerfile) = hephy_dockerfile::parse(text) else { return facts };
    let mut defaults: BTreeMap<String, String> = BTreeMap::new();
    for instruction in &dockerfile.instructions {
        facts.runs |= instruction.runs();
        match &instruction.command {
            Command::Arg(args) => {
                for arg in args {
                    let Some(default) = &arg.default else { continue };
                    if let Ok(value) = hephy_dockerfile::word(&default.text, dockerfile.escape, &|_| None) {
                        defaults.insert(arg.name.text.clone(), value);
                    }
                }
            }
            Command::From { image, .. } => {
                let image = image.text.as_str();
                let arg = image
                    .strip_prefix("${")
                    .and_then(|a| a.strip_suffix('}'))
                    .or_else(|| image.strip_prefix('$'))
                    .filter(|a| a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                if let Some(arg) = arg
                    && let Some(default) = defaults.get(arg)
                {
                    facts.arg_froms.push((arg.to_owned(), default.clone()));
                }
            }
            _ => {}
        }
    }
    facts
}

/// The syntax `init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Kdl,
    Yaml,
}

/// The graph file's text for `images`.
pub(crate) fn render(images: &[Found], syntax: Syntax) -> String {
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
    let mut out = hephy_dsl::escape::graph_comment(written, "", &header);
    if syntax == Syntax::Yaml {
        out.push_str("\nimages:\n");
    }
    for image in images {
        let mut draft = ImageDraft::named(&image.name).with_context(&image.context);
        if image.dockerfile != "Dockerfile" {
            draft = draft.with_dockerfile(&image.dockerfile);
        }
        for (from, arg) in &image.from {
            draft = draft.with_from(from, FromDraft::new().with_arg(arg));
        }
        let text = draft.with_tags(&["latest"]).print(written);
        match syntax {
            Syntax::Kdl => {
                out.push('\n');
                out.push_str(&text);
            }
            Syntax::Yaml => {
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

    #[test]
    fn names_variants_and_edges() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |path: &str, text: &str| {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("folders");
            std::fs::write(full, text).expect("write");
        };
        write("curl/Dockerfile", "FROM alpine:3.20\nRUN apk add curl\n");
        write("tool/Dockerfile", "ARG BASE=curl:latest\nFROM ${BASE}\nCOPY a /a\n");
        write("tool/Dockerfile.Debug", "ARG BASE=curl\nFROM $BASE AS x\n");
        write("svc/web.dockerfile", "FROM scratch\n");
        write("ignored/Dockerfile", "FROM scratch\n");
        write(".gitignore", "ignored/\n");
        std::fs::create_dir_all(dir.path().join(".git")).expect("git folder");
        let images = scan(dir.path()).expect("scan");
        let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["curl", "svc-web", "tool", "tool-debug"]);
        let tool = &images[2];
        assert_eq!(tool.from, [("curl".to_owned(), "BASE".to_owned())]);
        assert!(images[0].runs && !tool.runs);
        assert_eq!(images[1].dockerfile, "web.dockerfile");
        assert_eq!(images[3].dockerfile, "Dockerfile.Debug");
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
        assert_eq!(strip_tag("registry:5000/curl:8"), "registry:5000/curl");
        assert_eq!(strip_tag("curl@sha256:abc"), "curl");
    }
}
