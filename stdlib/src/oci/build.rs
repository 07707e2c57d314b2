//! The `oci` builder's Dockerfile interpreter: turns a Dockerfile without `RUN` into an image
//! config and layers, with no daemon and no external tool.
//!
//! Understood: `ARG` (before and after `FROM`), `FROM scratch`, `FROM` an earlier stage, `FROM`
//! an image (fetched through [`Bases`]), `COPY`/`ADD` of context files (`--chown`, `--chmod`,
//! wildcards, folders), `COPY --from` an earlier stage whose files are known (built from
//! `scratch` here), `ENV`, `LABEL`, `WORKDIR`, `USER`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`,
//! `SHELL`, `ENTRYPOINT`, `CMD`, with `$VAR`/`${VAR}`/`${VAR:-default}`/`${VAR:+alt}`
//! substitution. Anything else (`RUN`, `ADD` of a URL or an archive, `HEALTHCHECK`, `ONBUILD`)
//! is an error that names the line and suggests the buildah builder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dockerfile_parser::{Dockerfile, Instruction, ShellOrExecExpr};
use hephy_dsl::Platform;
use serde_json::{Value, json};

use super::layer::{self, Content, Entry, Tree};
use super::layout::{Descriptor, Layout};

/// The media types the `oci` builder writes.
pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A base image, as a build needs it: its config and its layers (all in the layout).
#[derive(Debug, Clone)]
pub(crate) struct BaseImage {
    /// The image config (JSON).
    pub(crate) config: Value,
    /// Its layer blobs, bottom first.
    pub(crate) layers: Vec<Descriptor>,
}

/// Where base images come from: `fetch(reference, platform)`.
pub(crate) trait Bases {
    fn fetch(&self, reference: &str, platform: &Platform) -> Result<BaseImage, String>;
}

/// One build.
pub(crate) struct Request<'a> {
    pub(crate) dockerfile: &'a str,
    /// Shown in messages (`curl/Dockerfile`).
    pub(crate) dockerfile_name: &'a str,
    pub(crate) context: &'a Path,
    /// The context's files (relative, `.dockerignore` applied).
    pub(crate) files: &'a [String],
    pub(crate) build_args: &'a [(String, String)],
    pub(crate) target: Option<&'a str>,
    pub(crate) platform: &'a Platform,
    /// How layers are compressed, and when writing them must stop.
    pub(crate) layers: super::compress::Settings<'a>,
}

/// A built image: its manifest (stored in the layout).
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub(crate) manifest: Descriptor,
}

#[derive(Debug, Clone)]
struct Stage {
    name: Option<String>,
    /// The config's `config` object.
    settings: serde_json::Map<String, Value>,
    layers: Vec<Descriptor>,
    diff_ids: Vec<Value>,
    history: Vec<Value>,
    /// Every file of the stage, when it is known (stages built up from `scratch`).
    fs: Option<Tree>,
    /// ARGs in scope, with their values.
    args: HashMap<String, String>,
    /// The `SHELL` for shell-form commands.
    shell: Vec<String>,
}

const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Builds `request` into `layout`.
pub(crate) fn build(request: &Request<'_>, layout: &Layout, bases: &dyn Bases) -> Result<Built, String> {
    let text = request.dockerfile;
    let dockerfile = Dockerfile::parse(text)
        .map_err(|e| format!("`{}` is not a Dockerfile: {e}", request.dockerfile_name))?;
    let line_of = |offset: usize| text.get(..offset).unwrap_or(text).matches('\n').count() + 1;
    let build_args: HashMap<&str, &str> =
        request.build_args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut meta: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut current: Option<Stage> = None;
    let context_dirs = dirs_of(request.files);

    for instruction in &dockerfile.instructions {
        let span = span_of(instruction);
        let line = line_of(span.0);
        let source = text.get(span.0..span.1).unwrap_or_default().trim().to_owned();
        let here = |message: String| format!("{}, line {line}: {message}", request.dockerfile_name);
        let Some(stage) = current.as_mut() else {
            let from = match instruction {
                Instruction::Arg(arg) => {
                    let name = arg.name.content.clone();
                    let value = build_args.get(name.as_str()).map(|v| (*v).to_owned()).or_else(|| {
                        arg.value.as_ref().map(|v| unquote(&expand(&v.content, &|n| meta.get(n).cloned())))
                    });
                    if let Some(value) = value {
                        meta.insert(name, value);
                    }
                    continue;
                }
                Instruction::From(from) => from,
                _ => return Err(here("only `ARG` may come before the first `FROM`".to_owned())),
            };
            current = Some(start(from, &meta, &stages, bases, request.platform).map_err(here)?);
            continue;
        };
        let scope = in_scope(stage);
        let vars = |name: &str| -> Option<String> { scope.get(name).cloned() };
        match instruction {
            Instruction::From(from) => {
                let Some(done) = current.take() else { continue };
                let reached = request
                    .target
                    .is_some_and(|t| done.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)));
                stages.push(done);
                if reached {
                    break;
                }
                current = Some(start(from, &meta, &stages, bases, request.platform).map_err(here)?);
                continue;
            }
            Instruction::Arg(arg) => {
                let name = arg.name.content.clone();
                let value = build_args
                    .get(name.as_str())
                    .map(|v| (*v).to_owned())
                    .or_else(|| arg.value.as_ref().map(|v| unquote(&expand(&v.content, &vars))))
                    .or_else(|| meta.get(&name).cloned());
                stage.args.insert(name, value.unwrap_or_default());
                empty(stage, &source);
            }
            Instruction::Env(env) => {
                let mut pairs = Vec::new();
                for var in &env.vars {
                    pairs.push((var.key.content.clone(), unquote(&expand(&var.value.to_string(), &vars))));
                }
                for (key, value) in pairs {
                    set_env(&mut stage.settings, &key, &value);
                }
                empty(stage, &source);
            }
            Instruction::Label(label) => {
                let mut pairs = Vec::new();
                for l in &label.labels {
                    pairs.push((
                        unquote(&expand(&l.name.content, &vars)),
                        unquote(&expand(&l.value.content, &vars)),
                    ));
                }
                let labels = stage.settings.entry("Labels").or_insert_with(|| json!({}));
                for (k, v) in pairs {
                    labels[k] = Value::String(v);
                }
                empty(stage, &source);
            }
            Instruction::Entrypoint(e) => {
                let argv = command(&e.expr, &stage.shell);
                stage.settings.insert("Entrypoint".to_owned(), json!(argv));
                // As Docker does: a new ENTRYPOINT drops the CMD it inherited.
                stage.settings.remove("Cmd");
                empty(stage, &source);
            }
            Instruction::Cmd(c) => {
                let argv = command(&c.expr, &stage.shell);
                stage.settings.insert("Cmd".to_owned(), json!(argv));
                empty(stage, &source);
            }
            Instruction::Run(_) => {
                return Err(here(
                    "the oci builder does not run commands (`RUN`); build this image with buildah (`builder \"buildah\"`)"
                        .to_owned(),
                ));
            }
            Instruction::Copy(copy) => {
                let mut from = None;
                let mut chown = None;
                let mut chmod = None;
                for flag in &copy.flags {
                    let value = expand(&flag.value.content, &vars);
                    match flag.name.content.as_str() {
                        "from" => from = Some(value),
                        "chown" => chown = Some(value),
                        "chmod" => chmod = Some(value),
                        "link" => {}
                        other => {
                            return Err(here(format!(
                                "`COPY --{other}` is not supported by the oci builder"
                            )));
                        }
                    }
                }
                let sources: Vec<String> = copy.sources.iter().map(|s| expand(&s.content, &vars)).collect();
                let dest = expand(&copy.destination.content, &vars);
                let spec = CopySpec { sources, dest, chown, chmod };
                let tree = match from {
                    None => copy_from_context(&spec, stage, request, &context_dirs),
                    Some(from) => copy_from_stage(&spec, stage, &from, &stages),
                }
                .map_err(here)?;
                add_layer(stage, tree, layout, &request.layers, &source)?;
            }
            Instruction::Misc(misc) => {
                let keyword = misc.instruction.content.to_ascii_uppercase();
                let arguments = misc.arguments.to_string();
                let arguments = arguments.trim();
                match keyword.as_str() {
                    "WORKDIR" => {
                        let dir = expand(arguments, &vars);
                        let base = stage
                            .settings
                            .get("WorkingDir")
                            .and_then(Value::as_str)
                            .unwrap_or("/")
                            .to_owned();
                        stage.settings.insert("WorkingDir".to_owned(), json!(absolute(&base, &dir)));
                        empty(stage, &source);
                    }
                    "USER" => {
                        stage.settings.insert("User".to_owned(), json!(expand(arguments, &vars)));
                        empty(stage, &source);
                    }
                    "EXPOSE" => {
                        let ports = stage.settings.entry("ExposedPorts").or_insert_with(|| json!({}));
                        for port in expand(arguments, &vars).split_whitespace() {
                            let port =
                                if port.contains('/') { port.to_owned() } else { format!("{port}/tcp") };
                            ports[port] = json!({});
                        }
                        empty(stage, &source);
                    }
                    "VOLUME" => {
                        let expanded = expand(arguments, &vars);
                        let list: Vec<String> = serde_json::from_str(&expanded)
                            .unwrap_or_else(|_| expanded.split_whitespace().map(str::to_owned).collect());
                        let volumes = stage.settings.entry("Volumes").or_insert_with(|| json!({}));
                        for v in list {
                            volumes[v] = json!({});
                        }
                        empty(stage, &source);
                    }
                    "STOPSIGNAL" => {
                        stage.settings.insert("StopSignal".to_owned(), json!(expand(arguments, &vars)));
                        empty(stage, &source);
                    }
                    "SHELL" => {
                        stage.shell = serde_json::from_str(arguments).map_err(|_| {
                            here("`SHELL` takes a JSON array, like [\"/bin/sh\", \"-c\"]".to_owned())
                        })?;
                        empty(stage, &source);
                    }
                    "MAINTAINER" => {
                        let labels = stage.settings.entry("Labels").or_insert_with(|| json!({}));
                        labels["maintainer"] = json!(arguments);
                        empty(stage, &source);
                    }
                    "ADD" => {
                        let spec = add_spec(arguments, &vars).map_err(here)?;
                        let tree = copy_from_context(&spec, stage, request, &context_dirs).map_err(here)?;
                        add_layer(stage, tree, layout, &request.layers, &source)?;
                    }
                    other => {
                        return Err(here(format!(
                            "the oci builder does not support `{other}`; build this image with buildah (`builder \"buildah\"`)"
                        )));
                    }
                }
            }
        }
    }
    if let Some(stage) = current.take() {
        stages.push(stage);
    }
    let stage = match request.target {
        Some(target) => stages
            .iter()
            .find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(target)))
            .ok_or_else(|| format!("`{}` has no stage `{target}`", request.dockerfile_name))?,
        None => stages.last().ok_or_else(|| format!("`{}` has no `FROM`", request.dockerfile_name))?,
    };
    finish(stage, request.platform, layout)
}

fn span_of(instruction: &Instruction) -> (usize, usize) {
    let span = match instruction {
        Instruction::From(i) => i.span,
        Instruction::Arg(i) => i.span,
        Instruction::Label(i) => i.span,
        Instruction::Run(i) => i.span,
        Instruction::Entrypoint(i) => i.span,
        Instruction::Cmd(i) => i.span,
        Instruction::Copy(i) => i.span,
        Instruction::Env(i) => i.span,
        Instruction::Misc(i) => i.span,
    };
    (span.start, span.end)
}

/// Opens a stage at `FROM`.
fn start(
    from: &dockerfile_parser::FromInstruction,
    meta: &HashMap<String, String>,
    stages: &[Stage],
    bases: &dyn Bases,
    platform: &Platform,
) -> Result<Stage, String> {
    let image = expand(&from.image.content, &|n| meta.get(n).cloned());
    let name = from.alias.as_ref().map(|a| a.content.clone());
    let source = format!("FROM {image}");
    let history = |mut history: Vec<Value>| {
        history.push(json!({ "created": EPOCH, "created_by": source, "empty_layer": true }));
        history
    };
    if image.is_empty() {
        return Err(format!("`FROM {}` names no image (is its build arg set?)", from.image.content));
    }
    if image == "scratch" {
        return Ok(Stage {
            name,
            settings: serde_json::Map::new(),
            layers: Vec::new(),
            diff_ids: Vec::new(),
            history: Vec::new(),
            fs: Some(Tree::new()),
            args: HashMap::new(),
            shell: default_shell(),
        });
    }
    if let Some(earlier) =
        stages.iter().find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&image)))
    {
        let mut stage = earlier.clone();
        stage.name = name;
        stage.args = HashMap::new();
        return Ok(stage);
    }
    let base = bases.fetch(&image, platform)?;
    let settings = base.config["config"].as_object().cloned().unwrap_or_default();
    let diff_ids = base.config["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default();
    if diff_ids.len() != base.layers.len() {
        return Err(format!(
            "`{image}` has {} layers but its config lists {}",
            base.layers.len(),
            diff_ids.len()
        ));
    }
    Ok(Stage {
        name,
        settings,
        layers: base.layers,
        diff_ids,
        history: history(base.config["history"].as_array().cloned().unwrap_or_default()),
        fs: None,
        args: HashMap::new(),
        shell: default_shell(),
    })
}

fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_owned(), "-c".to_owned()]
}

/// Records an instruction that adds no layer.
fn empty(stage: &mut Stage, source: &str) {
    stage.history.push(json!({ "created": EPOCH, "created_by": source, "empty_layer": true }));
}

fn add_layer(
    stage: &mut Stage,
    tree: Tree,
    layout: &Layout,
    settings: &super::compress::Settings<'_>,
    source: &str,
) -> Result<(), String> {
    let written = layer::write(&tree, layout, settings)?;
    stage.layers.push(Descriptor {
        media_type: written.media_type.to_owned(),
        digest: written.digest,
        size: written.size,
    });
    stage.diff_ids.push(Value::String(written.diff_id));
    stage.history.push(json!({ "created": EPOCH, "created_by": source }));
    if let Some(fs) = &mut stage.fs {
        for (path, entry) in tree {
            fs.insert(path, entry);
        }
    }
    Ok(())
}

/// Writes the stage's config and manifest.
fn finish(stage: &Stage, platform: &Platform, layout: &Layout) -> Result<Built, String> {
    let mut config = json!({
        "created": EPOCH,
        "architecture": platform.arch(),
        "os": platform.os(),
        "config": Value::Object(stage.settings.clone()),
        "rootfs": { "type": "layers", "diff_ids": stage.diff_ids },
        "history": stage.history,
    });
    if let Some(variant) = platform.variant() {
        config["variant"] = json!(variant);
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let config = layout.put(CONFIG, &config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.json(),
        "layers": stage.layers.iter().map(Descriptor::json).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    Ok(Built { manifest: layout.put(MANIFEST, &bytes)? })
}

/// The variables an instruction of `stage` sees: its ARGs, then its ENV over them.
fn in_scope(stage: &Stage) -> HashMap<String, String> {
    let mut scope = stage.args.clone();
    let env = stage.settings.get("Env").and_then(Value::as_array).into_iter().flatten();
    for pair in env.filter_map(Value::as_str) {
        if let Some((k, v)) = pair.split_once('=') {
            scope.insert(k.to_owned(), v.to_owned());
        }
    }
    scope
}

fn set_env(settings: &mut serde_json::Map<String, Value>, key: &str, value: &str) {
    let env = settings.entry("Env").or_insert_with(|| json!([]));
    if !env.is_array() {
        *env = json!([]);
    }
    let Some(list) = env.as_array_mut() else { return };
    let pair = Value::String(format!("{key}={value}"));
    match list.iter().position(|p| p.as_str().and_then(|p| p.split_once('=')).is_some_and(|(k, _)| k == key))
    {
        Some(i) => list[i] = pair,
        None => list.push(pair),
    }
}

/// The argv of an `ENTRYPOINT`/`CMD`: exec form as written, shell form through the shell.
fn command(expr: &ShellOrExecExpr, shell: &[String]) -> Vec<String> {
    match expr {
        ShellOrExecExpr::Exec(array) => array.elements.iter().map(|e| e.content.clone()).collect(),
        ShellOrExecExpr::Shell(text) => {
            let mut argv = shell.to_vec();
            argv.push(text.to_string().trim().to_owned());
            argv
        }
    }
}

/// `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME:+alternative}`; `\$` is a literal `$`.
pub(crate) fn expand(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => {
                out.push('$');
                chars.next();
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut inner = String::new();
                let mut depth = 1;
                for c in chars.by_ref() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    inner.push(c);
                }
                if let Some((name, default)) = inner.split_once(":-") {
                    out.push_str(
                        &vars(name).filter(|v| !v.is_empty()).unwrap_or_else(|| expand(default, vars)),
                    );
                } else if let Some((name, alternative)) = inner.split_once(":+") {
                    if vars(name).is_some_and(|v| !v.is_empty()) {
                        out.push_str(&expand(alternative, vars));
                    }
                } else {
                    out.push_str(&vars(&inner).unwrap_or_default());
                }
            }
            '$' if chars.peek().is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') => {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(&vars(&name).unwrap_or_default());
            }
            c => out.push(c),
        }
    }
    out
}

/// Removes one pair of surrounding quotes.
fn unquote(text: &str) -> String {
    let t = text.trim();
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].to_owned();
        }
    }
    t.to_owned()
}

/// `dir` made absolute against `base` (`WORKDIR`, relative `COPY` destinations).
fn absolute(base: &str, dir: &str) -> String {
    let joined =
        if dir.starts_with('/') { dir.to_owned() } else { format!("{}/{dir}", base.trim_end_matches('/')) };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// One `COPY` or `ADD`.
struct CopySpec {
    sources: Vec<String>,
    dest: String,
    chown: Option<String>,
    chmod: Option<String>,
}

fn add_spec(arguments: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<CopySpec, String> {
    let mut words: Vec<String> = Vec::new();
    let mut chown = None;
    let mut chmod = None;
    let mut rest = arguments.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        let (word, after) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        match word.split_once('=') {
            Some(("chown", v)) => chown = Some(expand(v, vars)),
            Some(("chmod", v)) => chmod = Some(expand(v, vars)),
            Some(("link", _)) | None if word == "link" || word.starts_with("link=") => {}
            _ => return Err(format!("`ADD --{word}` is not supported by the oci builder")),
        }
        rest = after.trim_start();
    }
    if rest.starts_with('[') {
        words = serde_json::from_str(rest)
            .map_err(|_| "`ADD [...]` is not a JSON array of strings".to_owned())?;
    } else {
        words.extend(rest.split_whitespace().map(str::to_owned));
    }
    let words: Vec<String> = words.iter().map(|w| expand(w, vars)).collect();
    let Some((dest, sources)) = words.split_last() else {
        return Err("`ADD` needs a source and a destination".to_owned());
    };
    if sources.is_empty() {
        return Err("`ADD` needs a source and a destination".to_owned());
    }
    for source in sources {
        if source.contains("://") || source.starts_with("git@") {
            return Err(format!(
                "the oci builder does not download (`ADD {source}`); fetch it in a task, or build with buildah"
            ));
        }
        let archive = [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst"];
        if archive.iter().any(|ext| source.ends_with(ext)) {
            return Err(format!(
                "`ADD {source}` would unpack an archive, which the oci builder does not do; use `COPY` to copy it as a file, or build with buildah"
            ));
        }
    }
    Ok(CopySpec { sources: sources.to_vec(), dest: dest.clone(), chown, chmod })
}

fn ownership(chown: Option<&str>) -> Result<(u64, u64), String> {
    let Some(chown) = chown else { return Ok((0, 0)) };
    let id = |part: &str| -> Result<u64, String> {
        match part {
            "root" => Ok(0),
            p => p.parse().map_err(|_| {
                format!("`--chown={chown}`: the oci builder takes numeric ids (or `root`), as it has no /etc/passwd to look `{p}` up in")
            }),
        }
    };
    match chown.split_once(':') {
        Some((user, group)) => Ok((id(user)?, id(group)?)),
        None => {
            let uid = id(chown)?;
            Ok((uid, uid))
        }
    }
}

fn permissions(chmod: Option<&str>) -> Result<Option<u32>, String> {
    chmod
        .map(|m| {
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("`--chmod={m}` is not an octal mode"))
        })
        .transpose()
}

/// Every folder that holds a file of `files` (`a`, `a/b` for `a/b/c`).
fn dirs_of(files: &[String]) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    for file in files {
        let mut path = file.as_str();
        while let Some((dir, _)) = path.rsplit_once('/') {
            dirs.push(dir.to_owned());
            path = dir;
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// A `COPY` source made relative to the context (or stage root); `..` that leaves it is an error.
fn clean_source(source: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{source}` is outside the build context"));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// What a source names: `(path of the entry, path it lands at relative to the destination)`.
fn matches(source: &str, files: &[String], dirs: &[String]) -> Result<(Vec<(String, String)>, bool), String> {
    let clean = clean_source(source)?;
    let wildcard = clean.contains(['*', '?', '[']);
    let mut out = Vec::new();
    let named: Vec<String> = if wildcard {
        let glob = globset::GlobBuilder::new(&clean)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("`{source}` is not a valid pattern: {e}"))?
            .compile_matcher();
        files.iter().chain(dirs).filter(|p| glob.is_match(p.as_str())).cloned().collect()
    } else {
        vec![clean.clone()]
    };
    let mut is_dir = false;
    for name in named {
        if name.is_empty() || dirs.binary_search(&name).is_ok() {
            // A folder: its contents, relative to it.
            is_dir = true;
            let prefix = if name.is_empty() { String::new() } else { format!("{name}/") };
            for file in files.iter().filter(|f| f.starts_with(&prefix)) {
                out.push((file.clone(), file[prefix.len()..].to_owned()));
            }
        } else if files.binary_search(&name).is_ok() {
            let base = name.rsplit('/').next().unwrap_or(&name).to_owned();
            out.push((name, base));
        }
    }
    Ok((out, wildcard || is_dir))
}

fn destination(stage: &Stage, spec: &CopySpec, many: bool) -> (String, bool) {
    let workdir = stage.settings.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
    let into_dir = many || spec.dest.ends_with('/') || spec.sources.len() > 1;
    (absolute(workdir, &spec.dest), into_dir)
}

fn land(dest: &str, into_dir: bool, relative: &str) -> String {
    let dest = dest.trim_start_matches('/');
    if into_dir {
        if dest.is_empty() { relative.to_owned() } else { format!("{dest}/{relative}") }
    } else {
        dest.to_owned()
    }
}

fn copy_from_context(
    spec: &CopySpec,
    stage: &Stage,
    request: &Request<'_>,
    dirs: &[String],
) -> Result<Tree, String> {
    let (uid, gid) = ownership(spec.chown.as_deref())?;
    let mode = permissions(spec.chmod.as_deref())?;
    let mut tree = Tree::new();
    for source in &spec.sources {
        let (found, many) = matches(source, request.files, dirs)?;
        if found.is_empty() {
            return Err(format!(
                "`{source}` matches no file of the build context (or `.dockerignore` excludes it)"
            ));
        }
        let (dest, into_dir) = destination(stage, spec, many);
        for (path, relative) in found {
            let full: PathBuf = request.context.join(&path);
            let meta = std::fs::symlink_metadata(&full).map_err(|e| format!("cannot read `{path}`: {e}"))?;
            let content = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&full).map_err(|e| format!("cannot read `{path}`: {e}"))?;
                Content::Symlink(target.to_string_lossy().into_owned())
            } else {
                Content::File(full)
            };
            let mode = match (&content, mode) {
                (Content::Symlink(_), _) => 0o777,
                (_, Some(m)) => m,
                _ if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0 => 0o755,
                _ => 0o644,
            };
            tree.insert(land(&dest, into_dir, &relative), Entry { content, mode, uid, gid });
        }
    }
    Ok(tree)
}

fn copy_from_stage(spec: &CopySpec, stage: &Stage, from: &str, stages: &[Stage]) -> Result<Tree, String> {
    let source_stage = match from.parse::<usize>() {
        Ok(i) => stages.get(i),
        Err(_) => stages.iter().find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(from))),
    }
    .ok_or_else(|| format!("`COPY --from={from}`: no earlier stage is called `{from}` (the oci builder copies only from stages)"))?;
    let fs = source_stage.fs.as_ref().ok_or_else(|| {
        format!("`COPY --from={from}`: the oci builder knows the files only of stages built from `scratch`; build with buildah")
    })?;
    let (uid, gid) = ownership(spec.chown.as_deref())?;
    let mode = permissions(spec.chmod.as_deref())?;
    let files: Vec<String> =
        fs.iter().filter(|(_, e)| e.content != Content::Dir).map(|(p, _)| p.clone()).collect();
    let dirs = dirs_of(&files);
    let mut tree = Tree::new();
    for source in &spec.sources {
        let (found, many) = matches(source, &files, &dirs)?;
        if found.is_empty() {
            return Err(format!("`COPY --from={from} {source}`: that stage has no such file"));
        }
        let (dest, into_dir) = destination(stage, spec, many);
        for (path, relative) in found {
            let Some(entry) = fs.get(&path) else { continue };
            let mut entry = entry.clone();
            if spec.chown.is_some() {
                (entry.uid, entry.gid) = (uid, gid);
            }
            if let (Some(m), false) = (mode, matches!(entry.content, Content::Symlink(_))) {
                entry.mode = m;
            }
            tree.insert(land(&dest, into_dir, &relative), entry);
        }
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoBases;
    impl Bases for NoBases {
        fn fetch(&self, reference: &str, _: &Platform) -> Result<BaseImage, String> {
            Err(format!("no base `{reference}` here"))
        }
    }

    fn context() -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
        std::fs::write(dir.path().join("README"), b"read me\n").unwrap();
        let files = vec!["README".to_owned(), "bin/tool".to_owned()];
        (dir, files)
    }

    fn config_of(layout: &Layout, built: &Built) -> Value {
        let manifest: Value = serde_json::from_slice(&layout.read(&built.manifest.digest).unwrap()).unwrap();
        serde_json::from_slice(&layout.read(manifest["config"]["digest"].as_str().unwrap()).unwrap()).unwrap()
    }

    fn run(
        dockerfile: &str,
        args: &[(String, String)],
        target: Option<&str>,
    ) -> Result<(Value, Built), String> {
        let (dir, files) = context();
        let layout = Layout::new(dir.path().join("oci"));
        let platform: Platform = "linux/arm64".parse().unwrap();
        let request = Request {
            dockerfile,
            dockerfile_name: "Dockerfile",
            context: dir.path(),
            files: &files,
            build_args: args,
            target,
            platform: &platform,
            layers: crate::oci::compress::Settings::gzip(),
        };
        let built = build(&request, &layout, &NoBases)?;
        Ok((config_of(&layout, &built), built))
    }

    #[test]
    fn settings_reach_the_config() {
        let (config, _) = run(
            "ARG VERSION=1.0\nFROM scratch\nARG VERSION\nENV APP_VERSION=$VERSION PATH=/bin\nLABEL org.opencontainers.image.version=\"${VERSION}\"\nWORKDIR /app\nWORKDIR sub\nUSER 65532:65532\nEXPOSE 8080 53/udp\nCOPY --chmod=700 bin/ ./bin/\nENTRYPOINT [\"/app/sub/bin/tool\"]\nCMD --help\n",
            &[("VERSION".to_owned(), "2.0".to_owned())],
            None,
        )
        .unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["os"], "linux");
        let c = &config["config"];
        assert_eq!(c["Env"], json!(["APP_VERSION=2.0", "PATH=/bin"]));
        assert_eq!(c["Labels"]["org.opencontainers.image.version"], "2.0");
        assert_eq!(c["WorkingDir"], "/app/sub");
        assert_eq!(c["User"], "65532:65532");
        assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Entrypoint"], json!(["/app/sub/bin/tool"]));
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "--help"]));
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn stages_copy_from_each_other_and_targets_pick_one() {
        let dockerfile = "FROM scratch AS files\nCOPY . /src/\nFROM scratch AS final\nCOPY --from=files /src/bin/tool /usr/bin/tool\n";
        let (config, _) = run(dockerfile, &[], None).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        let (files, _) = run(dockerfile, &[], Some("files")).unwrap();
        assert_ne!(files["rootfs"], config["rootfs"]);
        assert!(run(dockerfile, &[], Some("nope")).unwrap_err().contains("no stage `nope`"));
    }

    #[test]
    fn the_same_inputs_give_the_same_digest() {
        let dockerfile = "FROM scratch\nCOPY README /\n";
        let (_, one) = run(dockerfile, &[], None).unwrap();
        let (_, two) = run(dockerfile, &[], None).unwrap();
        assert_eq!(one.manifest, two.manifest);
    }

    #[test]
    fn what_it_cannot_do_is_an_error_naming_the_line() {
        let e = run("FROM scratch\nCOPY README /\nRUN echo hi\n", &[], None).unwrap_err();
        assert!(e.contains("line 3") && e.contains("buildah"), "{e}");
        let e = run("FROM scratch\nADD https://example.com/x /x\n", &[], None).unwrap_err();
        assert!(e.contains("does not download"), "{e}");
        let e = run("FROM scratch\nCOPY ../secret /\n", &[], None).unwrap_err();
        assert!(e.contains("outside the build context"), "{e}");
        let e = run("FROM scratch\nCOPY missing /\n", &[], None).unwrap_err();
        assert!(e.contains("matches no file"), "{e}");
        let e = run("FROM scratch\nCOPY --chown=app README /\n", &[], None).unwrap_err();
        assert!(e.contains("numeric"), "{e}");
        let e = run("FROM alpine\n", &[], None).unwrap_err();
        assert!(e.contains("no base `alpine`"), "{e}");
    }

    #[test]
    fn variables_expand_like_dockers() {
        let vars = |n: &str| match n {
            "A" => Some("x".to_owned()),
            "E" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand("$A/${A}/${B:-d}/${E:-d}/${A:+y}/${B:+y}/\\$A", &vars), "x/x/d/d/y//$A");
        assert_eq!(absolute("/app", "../etc/./x"), "/etc/x");
    }
}

#[cfg(test)]
mod fuzz {
    //! Property-based fuzzing (proptest) of the Dockerfile reader and the `oci` builder's
    //! interpreter: arbitrary Dockerfiles, and valid ones mutated, either build or fail with a
    //! message — never a panic, never a file written outside the layout.

    use super::*;
    use proptest::prelude::*;

    struct NoBases;
    impl Bases for NoBases {
        fn fetch(&self, reference: &str, _: &Platform) -> Result<BaseImage, String> {
            Err(format!("no base `{reference}` here"))
        }
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(600)
    }

    const SEED: &str = "ARG VERSION=1\nFROM scratch AS files\nCOPY --chmod=644 a.txt dir/ /src/\nFROM scratch\nARG VERSION\nENV V=${VERSION:-0} W=$V\nWORKDIR /app\nCOPY --from=files --chown=1:2 /src/ ./\nLABEL a=\"b\" c=d\nEXPOSE 80/udp\nUSER 1\nENTRYPOINT [\"/app/a.txt\"]\nCMD run\n";

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("FROM".to_owned()),
            Just("COPY".to_owned()),
            Just("ADD".to_owned()),
            Just("ARG".to_owned()),
            Just("ENV".to_owned()),
            Just("\n".to_owned()),
            Just("\\\n".to_owned()),
            Just("${".to_owned()),
            Just("}".to_owned()),
            Just("--from=".to_owned()),
            Just("--chmod=".to_owned()),
            Just("../".to_owned()),
            Just("*".to_owned()),
            Just("[\"".to_owned()),
            Just(" ".to_owned()),
            "[ -~]{0,8}",
        ]
    }

    fn run(dockerfile: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("ctx/dir")).expect("context");
        std::fs::write(dir.path().join("ctx/a.txt"), "a").expect("file");
        std::fs::write(dir.path().join("ctx/dir/b.txt"), "b").expect("file");
        let files = vec!["a.txt".to_owned(), "dir/b.txt".to_owned()];
        let layout = Layout::new(dir.path().join("oci"));
        let platform: Platform = "linux/amd64".parse().expect("platform");
        let request = Request {
            dockerfile,
            dockerfile_name: "Dockerfile",
            context: &dir.path().join("ctx"),
            files: &files,
            build_args: &[("VERSION".to_owned(), "2".to_owned())],
            target: None,
            platform: &platform,
            layers: crate::oci::compress::Settings::gzip(),
        };
        let _ = crate::dockerfile::read(dockerfile);
        let built = build(&request, &layout, &NoBases);
        if dockerfile == SEED {
            assert!(built.is_ok(), "{built:?}");
        }
        // Nothing lands beside the context and the layout.
        let mut top: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert!(top == ["ctx"] || top == ["ctx", "oci"], "{top:?}");
    }

    #[test]
    fn the_seed_builds() {
        run(SEED);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_dockerfiles_never_panic(words in prop::collection::vec(word(), 0..40)) {
            run(&words.concat());
        }

        #[test]
        fn mutated_dockerfiles_never_panic(edits in prop::collection::vec((any::<usize>(), prop::option::of(any::<u8>())), 1..10)) {
            let mut bytes = SEED.as_bytes().to_vec();
            for (at, byte) in edits {
                let at = at % (bytes.len() + 1);
                match byte {
                    Some(b) => bytes.insert(at, b),
                    None if at < bytes.len() => { bytes.remove(at); }
                    None => {}
                }
            }
            run(&String::from_utf8_lossy(&bytes));
        }
    }
}
