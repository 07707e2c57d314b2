//! `hephy import`: a repository in the kaniko-builder layout → the equivalent graph file.
//!
//! The layout: one folder per image holding `build-config.yaml` (`use_local_context`,
//! `upstream_repo`, `upstream_ref`, `dockerfile_path`, `context_path`, `target`, `build_args`
//! as `KEY=VALUE` items, `platforms`, `additional_tags`), a `rebuild-weekly.txt` naming folders
//! one a line, and Dockerfiles that build on another image of the repository with
//! `ARG ECR_REGISTRY` + `ARG <DEP>_TAG` + `FROM ${ECR_REGISTRY}:${<DEP>_TAG}`. Dependencies are
//! inferred from those `FROM` lines; the layout's tag convention is the `kaniko-builder` naming
//! preset. Anything not understood is reported, never dropped
//! silently.

use std::fmt::Write as _;
use std::path::Path;

use crate::source::Syntax;
use crate::yaml::{self, Kind, Value};

/// One image of the imported repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Imported {
    name: String,
    /// Local context folder (relative to the repository), or the folder inside the upstream.
    context: String,
    git: Option<(String, String)>,
    dockerfile: Option<String>,
    target: Option<String>,
    args: Vec<(String, String)>,
    platforms: Vec<String>,
    tags: Vec<String>,
    /// (dependency, tag arg, registry arg)
    from: Vec<(String, String, String)>,
}

/// The graph text and what was left out, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The graph file's text.
    pub text: String,
    /// Problems met, one line each (`curl/build-config.yaml: unknown key `foo``).
    pub warnings: Vec<String>,
}

/// Reads the repository at `dir` and writes its graph in `syntax`.
pub fn import(dir: &Path, syntax: Syntax) -> Result<Import, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    let mut folders: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("build-config.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    if folders.is_empty() {
        return Err(format!("`{}` has no folder with a `build-config.yaml`", dir.display()));
    }
    let mut warnings = Vec::new();
    let mut images: Vec<Imported> = Vec::new();
    for folder in &folders {
        match read_config(dir, folder, &mut warnings) {
            Some(image) => images.push(image),
            None => continue,
        }
    }
    let names: Vec<String> = images.iter().map(|i| i.name.clone()).collect();
    for image in &mut images {
        if image.git.is_none() {
            infer_from(dir, image, &names, &mut warnings);
        }
    }
    let weekly = read_weekly(dir, &names, &mut warnings);
    let text = match syntax {
        Syntax::Kdl => kdl(&images, &weekly),
        Syntax::Yaml => yaml(&images, &weekly),
    };
    Ok(Import { text, warnings })
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

fn read_config(dir: &Path, folder: &str, warnings: &mut Vec<String>) -> Option<Imported> {
    let file = format!("{folder}/build-config.yaml");
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
    let name: String = folder
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    if name != folder {
        warnings.push(format!("{file}: folder `{folder}` is not a valid image name; imported as `{name}`"));
    }
    let mut image = Imported { name, context: folder.to_owned(), ..Imported::default() };
    let mut local = true;
    let mut upstream: (Option<String>, Option<String>) = (None, None);
    let mut context_path: Option<String> = None;
    for (key, value) in entries {
        let Some(key) = scalar(key) else { continue };
        let bad = |warnings: &mut Vec<String>| {
            warnings.push(format!("{file}: `{key}` has a value of the wrong type: left out"))
        };
        match key.as_str() {
            "use_local_context" => match scalar(value).as_deref() {
                Some("true" | "True" | "yes") => local = true,
                Some("false" | "False" | "no") => local = false,
                _ => bad(warnings),
            },
            "upstream_repo" => {
                upstream.0 = scalar(value).or_else(|| {
                    bad(warnings);
                    None
                })
            }
            "upstream_ref" => {
                upstream.1 = scalar(value).or_else(|| {
                    bad(warnings);
                    None
                })
            }
            "dockerfile_path" => {
                image.dockerfile = scalar(value).or_else(|| {
                    bad(warnings);
                    None
                })
            }
            "context_path" => {
                context_path = scalar(value).or_else(|| {
                    bad(warnings);
                    None
                })
            }
            "target" => {
                image.target = scalar(value).or_else(|| {
                    bad(warnings);
                    None
                })
            }
            "build_args" => match list(value) {
                Some(items) => {
                    for item in items {
                        match item.split_once('=') {
                            Some((k, v)) => image.args.push((k.trim().to_owned(), v.trim().to_owned())),
                            None => warnings
                                .push(format!("{file}: build arg `{item}` is not KEY=VALUE: left out")),
                        }
                    }
                }
                None => bad(warnings),
            },
            "platforms" => {
                image.platforms = list(value).unwrap_or_else(|| {
                    bad(warnings);
                    Vec::new()
                })
            }
            "additional_tags" => {
                image.tags = list(value).unwrap_or_else(|| {
                    bad(warnings);
                    Vec::new()
                })
            }
            other => warnings.push(format!("{file}: unknown key `{other}`: left out")),
        }
    }
    let context_path = context_path.filter(|c| !c.is_empty() && c != ".");
    if local {
        if let Some(path) = context_path {
            image.context = format!("{folder}/{}", path.trim_matches('/'));
        }
    } else {
        match upstream {
            (Some(url), reference) => {
                image.git = Some((url, reference.unwrap_or_else(|| "HEAD".to_owned())));
                image.context = context_path.unwrap_or_else(|| ".".to_owned());
            }
            (None, _) => {
                warnings.push(format!(
                    "{file}: `use_local_context: false` without `upstream_repo`: built from the folder"
                ));
            }
        }
    }
    if image.dockerfile.as_deref() == Some("Dockerfile") {
        image.dockerfile = None;
    }
    Some(image)
}

/// `FROM ${ECR_REGISTRY}:${CURL_TAG}` in a local Dockerfile → a dependency on `curl`.
fn infer_from(dir: &Path, image: &mut Imported, names: &[String], warnings: &mut Vec<String>) {
    let dockerfile = format!("{}/{}", image.context, image.dockerfile.as_deref().unwrap_or("Dockerfile"));
    let Ok(text) = std::fs::read_to_string(dir.join(&dockerfile)) else {
        warnings.push(format!("{dockerfile}: cannot read it: no dependencies inferred for `{}`", image.name));
        return;
    };
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("FROM ").or_else(|| line.strip_prefix("from ")) else { continue };
        let reference = rest.split_whitespace().find(|w| !w.starts_with("--")).unwrap_or("");
        let Some((registry, tag)) = reference.split_once(':') else { continue };
        let (Some(registry), Some(tag)) = (variable(registry), variable(tag)) else { continue };
        let Some(stem) = tag.strip_suffix("_TAG") else { continue };
        let wanted = stem.to_ascii_lowercase();
        let found = names.iter().find(|n| n.replace('-', "_").to_ascii_lowercase() == wanted);
        match found {
            Some(dep) if *dep != image.name => {
                image.from.push((dep.clone(), tag.to_owned(), registry.to_owned()))
            }
            Some(_) => {}
            None => warnings.push(format!(
                "{dockerfile}: `{reference}` names no image of the repository (`{stem}`): left as is"
            )),
        }
    }
}

/// `${NAME}` or `$NAME` → `NAME`.
fn variable(text: &str) -> Option<&str> {
    text.strip_prefix("${").and_then(|t| t.strip_suffix('}')).or_else(|| text.strip_prefix('$'))
}

fn read_weekly(dir: &Path, names: &[String], warnings: &mut Vec<String>) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join("rebuild-weekly.txt")) else { return Vec::new() };
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name = line.trim_end_matches('/');
        if names.iter().any(|n| n == name) {
            out.push(name.to_owned());
        } else {
            warnings.push(format!("rebuild-weekly.txt: `{name}` is not an image folder: left out"));
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

const HEADER: &str = "imported from a kaniko-builder repository by `hephy import`\nset `registry` to where the images are pushed (the layout's ECR repository)";

fn kdl(images: &[Imported], weekly: &[String]) -> String {
    let mut out = String::new();
    for line in HEADER.lines() {
        let _ = writeln!(out, "// {line}");
    }
    let _ = writeln!(
        out,
        "// registry \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/images\"\nnaming \"kaniko-builder\"\nbuilder \"buildah\"\nplatforms \"linux/amd64\"\n"
    );
    for image in images {
        let _ = writeln!(out, "image {} {{", quote(&image.name));
        match &image.git {
            Some((url, reference)) => {
                let _ = writeln!(out, "    git {} ref={}", quote(url), quote(reference));
                if image.context != "." {
                    let _ = writeln!(out, "    context {}", quote(&image.context));
                }
            }
            None => {
                let _ = writeln!(out, "    context {}", quote(&image.context));
            }
        }
        if let Some(d) = &image.dockerfile {
            let _ = writeln!(out, "    dockerfile {}", quote(d));
        }
        if let Some(t) = &image.target {
            let _ = writeln!(out, "    target {}", quote(t));
        }
        if !image.args.is_empty() {
            let args: Vec<String> = image.args.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
            let _ = writeln!(out, "    args {}", args.join(" "));
        }
        if !image.platforms.is_empty() {
            let p: Vec<String> = image.platforms.iter().map(|p| quote(p)).collect();
            let _ = writeln!(out, "    platforms {}", p.join(" "));
        }
        if !image.tags.is_empty() {
            let t: Vec<String> = image.tags.iter().map(|t| quote(t)).collect();
            let _ = writeln!(out, "    tags {}", t.join(" "));
        }
        for (dep, arg, registry) in &image.from {
            let _ =
                writeln!(out, "    from {} arg={} registry-arg={}", quote(dep), quote(arg), quote(registry));
        }
        out.push_str("}\n\n");
    }
    if !weekly.is_empty() {
        let names: Vec<String> = weekly.iter().map(|w| quote(w)).collect();
        let _ = writeln!(out, "schedule \"weekly\" {{\n    rebuild {}\n}}", names.join(" "));
    }
    out
}

fn yaml(images: &[Imported], weekly: &[String]) -> String {
    let y = |s: &str| quote(s);
    let mut out = String::new();
    for line in HEADER.lines() {
        let _ = writeln!(out, "# {line}");
    }
    out.push_str("# registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/images\nnaming: { preset: kaniko-builder }\nbuilder: buildah\nplatforms: [linux/amd64]\n\nimages:\n");
    for image in images {
        let _ = writeln!(out, "  {}:", image.name);
        match &image.git {
            Some((url, reference)) => {
                let _ = writeln!(out, "    git: {}\n    ref: {}", y(url), y(reference));
                if image.context != "." {
                    let _ = writeln!(out, "    context: {}", y(&image.context));
                }
            }
            None => {
                let _ = writeln!(out, "    context: {}", y(&image.context));
            }
        }
        if let Some(d) = &image.dockerfile {
            let _ = writeln!(out, "    dockerfile: {}", y(d));
        }
        if let Some(t) = &image.target {
            let _ = writeln!(out, "    target: {}", y(t));
        }
        if !image.args.is_empty() {
            let args: Vec<String> = image.args.iter().map(|(k, v)| format!("{k}: {}", y(v))).collect();
            let _ = writeln!(out, "    args: {{ {} }}", args.join(", "));
        }
        if !image.platforms.is_empty() {
            let p: Vec<String> = image.platforms.iter().map(|p| y(p)).collect();
            let _ = writeln!(out, "    platforms: [{}]", p.join(", "));
        }
        if !image.tags.is_empty() {
            let t: Vec<String> = image.tags.iter().map(|t| y(t)).collect();
            let _ = writeln!(out, "    tags: [{}]", t.join(", "));
        }
        if !image.from.is_empty() {
            let deps: Vec<String> = image
                .from
                .iter()
                .map(|(d, a, r)| format!("{d}: {{ arg: {a}, registry-arg: {r} }}"))
                .collect();
            let _ = writeln!(out, "    from: {{ {} }}", deps.join(", "));
        }
    }
    if !weekly.is_empty() {
        let _ = writeln!(out, "\nschedules:\n  weekly:\n    rebuild: [{}]", weekly.join(", "));
    }
    out
}
