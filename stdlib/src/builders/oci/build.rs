//! The `oci` builder's Dockerfile interpreter: turns a Dockerfile without `RUN` into an image
//! config and layers, with no daemon and no external tool, as BuildKit would build it.
//!
//! Every stage carries its whole merged file system as metadata ([`Tree`]; a base image's
//! files are read from its layers' headers, their bytes only when copied), so a `COPY` lands
//! where Docker puts it (into existing folders, through symlinked folders), keeps modes, owners,
//! hardlinks and empty folders, resolves `--chown=NAME` in the image's own `/etc/passwd`, and
//! writes the folders above what it copies with the modes the image already gives them.
//! Understood: every instruction but `RUN` (and `ADD` of a URL or git repository), read by
//! [`hephy_dockerfile`]; what is not, `check` finds from the builder's capabilities
//! ([`crate::builders::instructions`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use hephy_dsl::Platform;
use serde_json::{Value, json};

use hephy_dockerfile::{self as dockerfile, Command, Instruction};
use hephy_oci::document::{self, spec};
use hephy_oci::layer::{self, Content, Entry, Tree};
use hephy_oci::layout::{Descriptor, Layout, LayoutError};

use super::archive::{self, EntryProblem, UnpackError};
use super::merge::Merge;

/// The media types the `oci` builder writes.
pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// How many hardlinks in a row a file is followed through (a stage's tree has one at most).
const MAX_LINK_HOPS: usize = 8;

/// The `PATH` BuildKit and buildah give an image that has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A base image, as a build needs it: its config and its layers (all in the layout).
#[derive(Debug, Clone)]
pub(crate) struct BaseImage {
    /// The image config (JSON).
    pub(crate) config: Value,
    /// Its layer blobs, bottom first.
    pub(crate) layers: Vec<Descriptor>,
}

/// Where base images come from: `fetch(reference, platform)`.
pub(crate) trait BaseSource {
    fn fetch(&self, reference: &str, platform: &Platform) -> Result<BaseImage, super::PullError>;
}

/// Why a build failed: the data of the failure; text only when the node's outcome is made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// An instruction (or the Dockerfile's syntax) failed: where, and why.
    #[error("{dockerfile}, line {line}: {error}")]
    At {
        /// The Dockerfile as messages name it (`curl/Dockerfile`).
        dockerfile: String,
        /// The instruction's line (1-based).
        line: usize,
        /// What failed there.
        error: Box<BuildError>,
    },
    /// The Dockerfile asks for what cannot be done: a malformed or unsupported instruction, a
    /// source that is not there, a missing stage (the message names the instruction and value).
    #[error("{0}")]
    Dockerfile(String),
    /// A file of the build (a context file, a layer, an archive, a here-document, the
    /// temporary folder) cannot be read or written.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was done, with the file: "read layer sha256:…", "open `a.tar`".
        action: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// An archive `ADD` unpacks, or a base image's layer, holds an entry the builder will not
    /// write (`action`: "unpack `slip.tar`", "read layer sha256:…").
    #[error("cannot {action}: {problem}; {help}")]
    Entry {
        /// What was done, with the archive or layer.
        action: String,
        /// The entry, and why.
        problem: EntryProblem,
        /// The fix.
        help: String,
    },
    /// The image layout refused a blob.
    #[error(transparent)]
    Layout(#[from] hephy_oci::layout::LayoutError),
    /// A layer cannot be written.
    #[error(transparent)]
    Layer(#[from] hephy_oci::layer::LayerError),
    /// A base image cannot be fetched (its registry error kept, see [`BuildError::registry`]).
    #[error(transparent)]
    Base(#[from] super::PullError),
    /// The image config or manifest cannot be serialized.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The build context's ignore file cannot be read (or leads out of the context).
    #[error(transparent)]
    Context(#[from] hephy_engine::FilesError),
}

impl BuildError {
    /// `error` at `line` of `dockerfile`.
    fn at(dockerfile: &str, line: usize, error: BuildError) -> BuildError {
        BuildError::At { dockerfile: dockerfile.to_owned(), line, error: Box::new(error) }
    }

    /// `problem` of an entry of the archive `ADD` unpacks (`name`: the archive in the context).
    fn archive_entry(name: &str, problem: EntryProblem) -> BuildError {
        let help = problem.help();
        BuildError::Entry { action: format!("unpack `{name}`"), problem, help }
    }

    /// `problem` of an entry of a base image's layer: the image is broken.
    fn layer_entry(layer: &str, problem: EntryProblem) -> BuildError {
        let help = "rebuild the image (no unpacker applies such a layer), or build on another".to_owned();
        BuildError::Entry { action: format!("read layer {layer}"), problem, help }
    }

    /// A file operation that failed: `action` names it and the file.
    fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let action = action.into();
        move |source| BuildError::Io { action, source }
    }

    /// The registry error under this one, if a registry failed (its `is_retryable()` decides).
    pub(crate) fn registry(&self) -> Option<&crate::registry::RegistryError> {
        match self {
            BuildError::At { error, .. } => error.registry(),
            BuildError::Base(e) => e.registry(),
            _ => None,
        }
    }
}

/// The Dockerfile's own mistakes (and variable substitution's, which reports them as text).
impl std::convert::From<String> for BuildError {
    fn from(message: String) -> BuildError {
        BuildError::Dockerfile(message)
    }
}

/// A word substitution cannot make (`${VAR:?message}`, an unclosed quote).
impl std::convert::From<dockerfile::WordError> for BuildError {
    fn from(error: dockerfile::WordError) -> BuildError {
        BuildError::Dockerfile(error.to_string())
    }
}

impl std::convert::From<&str> for BuildError {
    fn from(message: &str) -> BuildError {
        BuildError::Dockerfile(message.to_owned())
    }
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
    /// Named build contexts (`from "base" context="base"`, `build-context`): `FROM base` and
    /// `COPY --from=base` read what the name maps to, in BuildKit's form: an image by digest
    /// (`docker-image://…`, or a bare reference), or a folder (an absolute path; `COPY --from` only).
    pub(crate) contexts: &'a [(String, String)],
    /// How layers are compressed, and when writing them must stop.
    pub(crate) layers: hephy_oci::compress::Settings<'a>,
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
    /// The config's `author` (`MAINTAINER`).
    author: Option<String>,
    layers: Vec<Descriptor>,
    diff_ids: Vec<Value>,
    history: Vec<Value>,
    /// Every file of the stage (merged over its layers).
    fs: Tree,
    /// ARGs in scope: declared, with a value or not.
    args: HashMap<String, Option<String>>,
    /// Whether this stage set `CMD` itself (a later `ENTRYPOINT` then keeps it).
    cmd_set: bool,
}

const EPOCH: &str = "1970-01-01T00:00:00Z";

pub(crate) fn is_remote(source: &str) -> bool {
    source.contains("://") || source.starts_with("git@")
}

/// Builds `request` into `layout`.
pub(crate) fn build(
    request: &Request<'_>,
    layout: &Layout,
    bases: &dyn BaseSource,
) -> Result<Built, BuildError> {
    let text = request.dockerfile;
    let parsed = dockerfile::parse(text).map_err(|e| {
        BuildError::at(request.dockerfile_name, e.line, BuildError::Dockerfile(e.to_string()))
    })?;
    // In the state folder (the layout's parent), where what a killed build leaves is found.
    let state_dir = layout.dir().parent().unwrap_or(layout.dir());
    let temp = crate::scratch::folder(state_dir, "build").map_err(BuildError::io("make a scratch folder"))?;
    let mut builder = Interpreter {
        request,
        layout,
        bases,
        escape: parsed.escape,
        meta: HashMap::new(),
        stages: Vec::new(),
        images: HashMap::new(),
        temp: temp.path().to_path_buf(),
        made: 0,
        extracted: HashMap::new(),
        context: None,
    };
    builder.run(&parsed.instructions)?;
    let stage = match request.target {
        Some(target) => builder
            .stages
            .iter()
            .find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(target)))
            .ok_or_else(|| format!("`{}` has no stage `{target}`", request.dockerfile_name))?,
        None => {
            builder.stages.last().ok_or_else(|| format!("`{}` has no `FROM`", request.dockerfile_name))?
        }
    };
    let built = finish(stage, request.platform, layout);
    drop(temp);
    built
}

struct Interpreter<'a> {
    request: &'a Request<'a>,
    layout: &'a Layout,
    bases: &'a dyn BaseSource,
    escape: char,
    /// ARGs before the first `FROM`.
    meta: HashMap<String, Option<String>>,
    stages: Vec<Stage>,
    /// Images named by `COPY --from`, by reference.
    images: HashMap<String, Stage>,
    /// Files made during the build (here-documents, unpacked archives, files of base layers).
    temp: PathBuf,
    made: u64,
    /// Files of base layers read out so far: `(blob, path in the layer)` → the file.
    extracted: HashMap<(String, String), PathBuf>,
    /// The build context as a tree, made when first copied from.
    context: Option<(Tree, HashMap<String, String>)>,
}

/// What a source of a `COPY` copies from.
enum From {
    Context,
    Stage(usize),
    Image(String),
    /// A named context that is a folder (a `path=` or `git=` build context).
    Folder(PathBuf),
}

impl Interpreter<'_> {
    fn build_arg(&self, name: &str) -> Option<String> {
        self.request.build_args.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// BuildKit's automatic platform ARGs.
    fn automatic_arg(&self, name: &str) -> Option<String> {
        let p = self.request.platform;
        let full = p.to_string();
        Some(match name {
            "TARGETPLATFORM" | "BUILDPLATFORM" => full,
            "TARGETOS" | "BUILDOS" => p.os().to_owned(),
            "TARGETARCH" | "BUILDARCH" => p.arch().to_owned(),
            "TARGETVARIANT" | "BUILDVARIANT" => p.variant().unwrap_or_default().to_owned(),
            _ => return None,
        })
    }

    fn run(&mut self, instructions: &[Instruction]) -> Result<(), BuildError> {
        let mut current: Option<Stage> = None;
        let name = self.request.dockerfile_name;
        for instruction in instructions {
            let here = |error: BuildError| BuildError::at(name, instruction.line, error);
            if instruction.keyword() == "FROM" {
                if let Some(done) = current.take() {
                    let reached = self
                        .request
                        .target
                        .is_some_and(|t| done.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)));
                    self.stages.push(done);
                    if reached {
                        return Ok(());
                    }
                }
                current = Some(self.start(instruction).map_err(here)?);
                continue;
            }
            let Some(stage) = current.as_mut() else {
                if instruction.keyword() == "ARG" {
                    let pairs = self
                        .arg_pairs(&instruction.args, &|n| self.meta.get(n).cloned().flatten())
                        .map_err(here)?;
                    for (name, default) in pairs {
                        let value = self.build_arg(&name).or(default).or_else(|| self.automatic_arg(&name));
                        self.meta.insert(name, value);
                    }
                    continue;
                }
                return Err(here("only `ARG` may come before the first `FROM`".into()));
            };
            self.dispatch(stage, instruction).map_err(here)?;
        }
        if let Some(stage) = current.take() {
            self.stages.push(stage);
        }
        Ok(())
    }

    /// `ARG a=1 b` → `[(a, Some(1)), (b, None)]`, defaults substituted.
    fn arg_pairs(
        &self,
        args: &str,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, Option<String>)>, BuildError> {
        let mut out = Vec::new();
        for word in dockerfile::split_words(args, self.escape) {
            match word.split_once('=') {
                Some((name, value)) => {
                    out.push((name.to_owned(), Some(dockerfile::word(value, self.escape, vars)?)));
                }
                None => out.push((word, None)),
            }
        }
        if out.is_empty() {
            return Err(BuildError::Dockerfile("`ARG` needs a name".to_owned()));
        }
        Ok(out)
    }

    /// Opens a stage at `FROM`.
    fn start(&mut self, from: &Instruction) -> Result<Stage, BuildError> {
        let meta = |n: &str| self.meta.get(n).cloned().flatten();
        let Command::From { image, platform, alias } = &from.command else {
            return Err(BuildError::Dockerfile(format!("`{}` is not a `FROM`", from.keyword())));
        };
        let name = alias.as_ref().map(|a| a.text.clone());
        let image = dockerfile::word(&image.text, self.escape, &meta)?;
        let platform = match platform {
            Some(p) => {
                let p =
                    dockerfile::word(&p.text, self.escape, &|n| meta(n).or_else(|| self.automatic_arg(n)))?;
                Some(p.parse::<Platform>().map_err(|e| format!("`FROM --platform={p}`: {e}"))?)
            }
            _ => None,
        };
        if image.is_empty() {
            return Err(BuildError::Dockerfile(format!(
                "`FROM {}` names no image (is its build arg set?)",
                from.args
            )));
        }
        let mut stage = if image == "scratch" {
            Stage {
                name: None,
                settings: serde_json::Map::new(),
                author: None,
                layers: Vec::new(),
                diff_ids: Vec::new(),
                history: Vec::new(),
                fs: Tree::new(),
                args: HashMap::new(),
                cmd_set: false,
            }
        } else if let Some(earlier) =
            self.stages.iter().find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&image)))
        {
            let mut stage = earlier.clone();
            stage.args = HashMap::new();
            stage.cmd_set = false;
            stage
        } else {
            let platform = platform.unwrap_or_else(|| self.request.platform.clone());
            let mut stage = self.image_stage(&image, &platform)?;
            stage.history.push(
                json!({ "created": EPOCH, "created_by": format!("FROM {image}"), "empty_layer": true }),
            );
            // Triggers of the base run first, and are not inherited.
            let triggers: Vec<String> = stage
                .settings
                .remove("OnBuild")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            for trigger in triggers {
                let parsed = dockerfile::parse(&trigger)
                    .map_err(|e| format!("`ONBUILD {trigger}` of `{image}`: {}", e))?;
                for instruction in &parsed.instructions {
                    self.dispatch(&mut stage, instruction)
                        .map_err(|e| format!("`ONBUILD {trigger}` of `{image}`: {e}"))?;
                }
            }
            stage
        };
        stage.name = name;
        let env = stage.settings.entry("Env").or_insert_with(|| json!([]));
        let has_path = env
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p.as_str().is_some_and(|p| p.starts_with("PATH="))));
        if !has_path && let Some(list) = env.as_array_mut() {
            list.push(json!(format!("PATH={DEFAULT_PATH}")));
        }
        Ok(stage)
    }

    /// The folder the named context `name` maps to, if it is a folder.
    fn context_folder(&self, name: &str) -> Option<&Path> {
        self.request
            .contexts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| Path::new(v.as_str()))
            .filter(|v| v.is_absolute())
    }

    /// A stage holding image `reference` (its config, layers and files).
    fn image_stage(&self, reference: &str, platform: &Platform) -> Result<Stage, BuildError> {
        if self.context_folder(reference).is_some() {
            return Err(BuildError::Dockerfile(format!(
                "`FROM {reference}`: the named context `{reference}` is a folder, which the oci builder copies from (`COPY --from={reference}`) but does not build on"
            )));
        }
        // A named build context stands for its image, by digest.
        let reference =
            self.request.contexts.iter().find(|(n, _)| n == reference).map_or(reference, |(_, r)| r.as_str());
        let reference = reference.strip_prefix(crate::builders::IMAGE_SCHEME).unwrap_or(reference);
        let base = self.bases.fetch(reference, platform)?;
        let settings = base.config["config"].as_object().cloned().unwrap_or_default();
        let diff_ids = base.config["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default();
        if diff_ids.len() != base.layers.len() {
            return Err(BuildError::Dockerfile(format!(
                "`{reference}` has {} layers but its config lists {}",
                base.layers.len(),
                diff_ids.len()
            )));
        }
        let mut fs = Tree::new();
        for layer in &base.layers {
            read_layer(self.layout, layer, &mut fs)?;
        }
        Ok(Stage {
            name: None,
            settings,
            author: base.config["author"].as_str().map(str::to_owned),
            layers: base.layers,
            diff_ids,
            history: base.config["history"].as_array().cloned().unwrap_or_default(),
            fs,
            args: HashMap::new(),
            cmd_set: false,
        })
    }

    /// Carries out one instruction of a stage.
    #[expect(clippy::too_many_lines, reason = "one arm per instruction")]
    fn dispatch(&mut self, stage: &mut Stage, instruction: &Instruction) -> Result<(), BuildError> {
        let escape = self.escape;
        let scope = in_scope(stage);
        let vars = |name: &str| -> Option<String> { scope.get(name).cloned().flatten() };
        let w = |text: &str| dockerfile::word(text, escape, &vars);
        let args = instruction.args.as_str();
        let source = format!("{} {}", instruction.keyword(), instruction.original.trim());
        match instruction.keyword() {
            "ARG" => {
                for (name, default) in self.arg_pairs(args, &vars)? {
                    let value = self
                        .build_arg(&name)
                        .or(default)
                        .or_else(|| self.meta.get(&name).cloned().flatten())
                        .or_else(|| self.automatic_arg(&name));
                    stage.args.insert(name, value);
                }
            }
            "ENV" => {
                let pairs = pairs(args, escape, &vars, "ENV")?;
                for (key, value) in pairs {
                    set_env(&mut stage.settings, &key, &value);
                }
            }
            "LABEL" => {
                let pairs = pairs(args, escape, &vars, "LABEL")?;
                let labels = object(&mut stage.settings, "Labels");
                for (k, v) in pairs {
                    labels.insert(k, Value::String(v));
                }
            }
            "MAINTAINER" => stage.author = Some(args.to_owned()),
            "ENTRYPOINT" => {
                let argv = command(args, &stage.settings);
                stage.settings.insert("Entrypoint".to_owned(), json!(argv));
                if !stage.cmd_set {
                    stage.settings.remove("Cmd");
                }
            }
            "CMD" => {
                let argv = command(args, &stage.settings);
                stage.settings.insert("Cmd".to_owned(), json!(argv));
                stage.cmd_set = true;
            }
            "SHELL" => {
                // The reader has checked it is a JSON array of at least one word.
                if let Command::Shell(shell) = &instruction.command {
                    stage.settings.insert("Shell".to_owned(), json!(shell));
                }
            }
            "USER" => {
                stage.settings.insert("User".to_owned(), json!(w(args)?));
            }
            "EXPOSE" => {
                let mut ports = Vec::new();
                for word in args.split_whitespace() {
                    let port = w(word)?;
                    let (number, protocol) = port.split_once('/').unwrap_or((&port, "tcp"));

                    match number.split_once('-') {
                        Some((a, b)) => {
                            let (a, b): (u16, u16) = (
                                a.parse().map_err(|_| format!("`EXPOSE {port}`: not a port"))?,
                                b.parse().map_err(|_| format!("`EXPOSE {port}`: not a port"))?,
                            );
                            ports.extend((a..=b).map(|n| format!("{n}/{protocol}")));
                        }
                        None => {
                            number.parse::<u16>().map_err(|_| format!("`EXPOSE {port}`: not a port"))?;
                            ports.push(format!("{number}/{protocol}"));
                        }
                    }
                }
                let map = object(&mut stage.settings, "ExposedPorts");
                for port in ports {
                    map.insert(port, json!({}));
                }
            }
            "VOLUME" => {
                let list = match dockerfile::json_array(args) {
                    Some(list) => list.iter().map(|v| w(v)).collect::<Result<Vec<_>, _>>()?,
                    None => args.split_whitespace().map(&w).collect::<Result<Vec<_>, _>>()?,
                };
                let map = object(&mut stage.settings, "Volumes");
                for v in list.into_iter().filter(|v| !v.is_empty()) {
                    map.insert(v, json!({}));
                }
            }
            "STOPSIGNAL" => {
                stage.settings.insert("StopSignal".to_owned(), json!(w(args)?));
            }
            "WORKDIR" => {
                let dir = w(args)?;
                if dir.is_empty() {
                    return Err(BuildError::Dockerfile("`WORKDIR` needs a folder".to_owned()));
                }
                let current = stage.settings.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                // An absolute folder is kept as written (`/srv/www/` keeps its slash), a relative
                // one joined to the current and cleaned, as BuildKit and Docker record them.
                let recorded = if dir.starts_with('/') { dir.clone() } else { absolute(current, &dir) };
                let wd = absolute(current, &dir);
                stage.settings.insert("WorkingDir".to_owned(), json!(recorded));
                if wd != "/" {
                    let user =
                        stage.settings.get("User").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let (uid, gid) = if user.is_empty() { (0, 0) } else { self.owner(stage, &user)? };
                    let path = resolve(&stage.fs, wd.trim_start_matches('/'));
                    if !stage.fs.contains_key(&path) {
                        let mut delta = Tree::new();
                        mkdir_all(&stage.fs, &mut delta, &path, uid, gid);
                        self.add_layer(stage, delta, &source)?;
                        return Ok(());
                    }
                }
            }
            "HEALTHCHECK" => {
                stage.settings.insert("Healthcheck".to_owned(), healthcheck(instruction)?);
            }
            "ONBUILD" => {
                // The reader has refused the triggers ONBUILD may not have.
                let trigger = args.trim();
                let list = stage.settings.entry("OnBuild").or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(json!(trigger));
                } else {
                    *list = json!([trigger]);
                }
            }
            "COPY" | "ADD" => {
                let delta = self.copy(stage, instruction, &vars)?;
                self.add_layer(stage, delta, &source)?;
                return Ok(());
            }
            "RUN" => {
                return Err(BuildError::from(
                    "the oci builder does not run commands (`RUN`); build this image with buildah (`builder \"buildah\"`)"
                        .to_owned(),
                ));
            }
            other => {
                return Err(BuildError::Dockerfile(format!(
                    "`{other}` is not a Dockerfile instruction the oci builder knows"
                )));
            }
        }
        empty(stage, &source);
        Ok(())
    }

    /// The uid and gid `user[:group]` names, looked up in the stage's `/etc/passwd` and
    /// `/etc/group` when they are names.
    fn owner(&mut self, stage: &Stage, spec: &str) -> Result<(u64, u64), BuildError> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let passwd = self.read_text(stage, "etc/passwd");
        let lookup =
            |file: &Option<String>, name: &str, what: &str| -> Result<(u64, Option<u64>), BuildError> {
                if let Ok(id) = name.parse::<u64>() {
                    let primary = file.as_ref().and_then(|text| {
                        text.lines()
                            .map(|l| l.split(':').collect::<Vec<_>>())
                            .find(|f| f.get(2) == Some(&name))
                            .and_then(|f| f.get(3)?.parse().ok())
                    });
                    return Ok((id, primary));
                }
                let text = file.as_ref().ok_or_else(|| {
                format!(
                    "`--chown={spec}`: the image has no `/etc/{what}` to look `{name}` up in; use numeric ids"
                )
            })?;
                for line in text.lines() {
                    let fields: Vec<&str> = line.split(':').collect();
                    if fields.first() == Some(&name) {
                        let id = fields
                            .get(2)
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| format!("`/etc/{what}` has a bad line for `{name}`"))?;
                        let primary = fields.get(3).and_then(|v| v.parse().ok());
                        return Ok((id, primary));
                    }
                }
                Err(BuildError::Dockerfile(format!(
                    "`--chown={spec}`: no {} `{name}` in the image's `/etc/{what}`",
                    if what == "passwd" { "user" } else { "group" }
                )))
            };
        let (uid, primary) = lookup(&passwd, user, "passwd")?;
        let gid = match group {
            Some(group) => {
                let groups = self.read_text(stage, "etc/group");
                lookup(&groups, group, "group")?.0
            }
            // A uid alone means gid = uid (BuildKit and buildah): the passwd entry's primary
            // group is taken only for a user named by name.
            None => match user.parse::<u64>() {
                Ok(id) => id,
                Err(_) => primary.unwrap_or(uid),
            },
        };
        Ok((uid, gid))
    }

    /// The text of a file of a stage, if it has it.
    fn read_text(&mut self, stage: &Stage, path: &str) -> Option<String> {
        let path = resolve(&stage.fs, path);
        let entry = stage.fs.get(&path)?.clone();
        let file = self.materialize(&stage.fs, &path, &entry).ok()?;
        match file.content {
            Content::File(p) => std::fs::read_to_string(p).ok(),
            _ => None,
        }
    }

    /// `entry` (at `path` of `fs`) with its bytes in a file on disk, read out of its layer if
    /// they are still there.
    fn materialize(&mut self, fs: &Tree, path: &str, entry: &Entry) -> Result<Entry, BuildError> {
        let mut entry = entry.clone();
        let mut at = path.to_owned();
        // A stage's hardlinks name their file directly (`merge` keeps it so); the bound holds
        // whatever a tree says.
        for _ in 0..MAX_LINK_HOPS {
            match &entry.content {
                Content::Layer { blob, path: inner } => {
                    let key = (blob.clone(), inner.clone());
                    if !self.extracted.contains_key(&key) {
                        self.read_out(std::slice::from_ref(&key))?;
                    }
                    let out = self
                        .extracted
                        .get(&key)
                        .cloned()
                        .ok_or_else(|| format!("`{inner}` is not in layer {blob}"))?;
                    entry.content = Content::File(out);
                    return Ok(entry);
                }
                Content::Hardlink(target) => {
                    let target = target.clone();
                    entry = fs
                        .get(&target)
                        .cloned()
                        .ok_or_else(|| format!("`/{at}` links to `/{target}`, which is not there"))?;
                    at = target;
                }
                _ => return Ok(entry),
            }
        }
        Err(BuildError::Dockerfile(format!(
            "`/{path}` is a hardlink through more than {MAX_LINK_HOPS} others (a loop)"
        )))
    }

    /// Reads the files `wanted` (`(blob, path in the layer)`) out of their layers, one pass
    /// over each layer.
    fn read_out(&mut self, wanted: &[(String, String)]) -> Result<(), BuildError> {
        let mut by_blob: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (blob, path) in wanted {
            if !self.extracted.contains_key(&(blob.clone(), path.clone())) {
                by_blob.entry(blob).or_default().insert(path);
            }
        }
        for (blob, paths) in by_blob {
            let fail = |source| BuildError::Io { action: format!("read layer {blob}"), source };
            let mut archive = open_blob(self.layout, blob)?;
            for item in archive.entries().map_err(fail)? {
                let mut item = item.map_err(fail)?;
                let path = item.path().map_err(fail)?.to_string_lossy().into_owned();
                if paths.contains(path.as_str()) {
                    self.made += 1;
                    let out = self.temp.join(format!("f{}", self.made));
                    let mut f = std::fs::File::create(&out).map_err(fail)?;
                    std::io::copy(&mut item, &mut f).map_err(fail)?;
                    self.extracted.insert((blob.to_owned(), path), out);
                }
            }
        }
        Ok(())
    }

    fn fresh_file(&mut self) -> PathBuf {
        self.made += 1;
        self.temp.join(format!("f{}", self.made))
    }

    /// The build context as a tree (modes from disk, owned by root) and each hardlinked file's
    /// inode.
    fn context_tree(&mut self) -> Result<&(Tree, HashMap<String, String>), BuildError> {
        if self.context.is_none() {
            let ignore =
                hephy_engine::context_ignore(self.request.context, ".", self.request.dockerfile_name)?;
            let files: Vec<&String> = self
                .request
                .files
                .iter()
                // The Dockerfile is among the files (it is an input), but a `.dockerignore`
                // that excludes it keeps it out of the context.
                .filter(|f| !(*f == self.request.dockerfile_name && ignore.excludes(f)))
                .collect();
            self.context = Some(tree_of(self.request.context, &files, &ignore)?);
        }
        self.context.as_ref().ok_or_else(|| "no build context".into())
    }

    /// The entries one `COPY`/`ADD` adds to `stage`, with the folders above them.
    #[expect(clippy::too_many_lines, reason = "the copy rules, in order")]
    fn copy(
        &mut self,
        stage: &Stage,
        instruction: &Instruction,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Tree, BuildError> {
        let escape = self.escape;
        let is_add = instruction.keyword() == "ADD";
        let mut from = None;
        let mut chown = None;
        let mut chmod = None;
        for flag in &instruction.flags {
            let name = &flag.name;
            let value = flag.value.as_ref().map(|v| dockerfile::word(&v.text, escape, vars)).transpose()?;
            match (name.as_str(), value) {
                ("from", Some(v)) if !is_add => from = Some(v),
                ("chown", Some(v)) => chown = Some(v),
                ("chmod", Some(v)) => chmod = Some(v),
                ("link", None | Some(_)) => {}
                (name, _) => {
                    return Err(BuildError::Dockerfile(format!(
                        "`{} --{name}` is not supported by the oci builder",
                        instruction.keyword()
                    )));
                }
            }
        }
        let words: Vec<String> = match dockerfile::json_array(&instruction.args) {
            Some(list) => list,
            None => instruction.args.split_whitespace().map(str::to_owned).collect(),
        };
        let heredoc_names: Vec<String> = instruction.heredocs.iter().map(|h| h.name.clone()).collect();
        let is_heredoc = |w: &str| {
            w.strip_prefix("<<").is_some_and(|r| {
                let r = r.trim_start_matches('-').trim_matches(['"', '\'']);
                heredoc_names.iter().any(|n| n == r)
            })
        };
        let Some((dest_word, sources)) = words.split_last() else {
            return Err(BuildError::Dockerfile(format!(
                "`{}` needs a source and a destination",
                instruction.keyword()
            )));
        };
        if sources.is_empty() {
            return Err(BuildError::Dockerfile(format!(
                "`{}` needs a source and a destination",
                instruction.keyword()
            )));
        }
        let dest_raw = dockerfile::word(dest_word, escape, vars)?;
        let workdir = stage.settings.get("WorkingDir").and_then(Value::as_str).unwrap_or("/").to_owned();
        let dest_hint_dir =
            dest_raw.ends_with('/') || dest_raw == "." || dest_raw.is_empty() || dest_raw.ends_with("/.");
        let dest_abs = absolute(&workdir, &dest_raw);
        let dest = resolve(&stage.fs, dest_abs.trim_start_matches('/'));
        let owner = match &chown {
            Some(spec) => Some(self.owner(stage, spec)?),
            None => None,
        };
        let mode = chmod.as_deref().map(parse_chmod).transpose().map_err(|e| e.to_string())?;

        // The source tree and its hardlink groups.
        let from = match from {
            None => From::Context,
            Some(name) => {
                if let Ok(i) = name.parse::<usize>() {
                    if i >= self.stages.len() {
                        return Err(BuildError::Dockerfile(format!(
                            "`--from={name}`: there is no stage {i} before this one"
                        )));
                    }
                    From::Stage(i)
                } else if let Some(i) = self
                    .stages
                    .iter()
                    .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name)))
                {
                    From::Stage(i)
                } else if let Some(folder) = self.context_folder(&name) {
                    From::Folder(folder.to_path_buf())
                } else {
                    if !self.images.contains_key(&name) {
                        let image = self.image_stage(&name, self.request.platform)?;
                        self.images.insert(name.clone(), image);
                    }
                    From::Image(name)
                }
            }
        };
        let (tree, inodes): (Tree, HashMap<String, String>) = match &from {
            From::Context => self.context_tree()?.clone(),
            From::Stage(i) => {
                let fs = self.stages[*i].fs.clone();
                let groups = link_groups(&fs);
                (fs, groups)
            }
            From::Image(name) => {
                let fs = self.images[name].fs.clone();
                let groups = link_groups(&fs);
                (fs, groups)
            }
            From::Folder(folder) => folder_tree(folder)?,
        };
        let from_context = matches!(from, From::Context);

        // What lands where: (destination path, source path in `tree`, entry).
        let mut landed: Vec<(String, Option<String>, Entry)> = Vec::new();
        // The source word each landed entry came from: hardlinks are kept within one source
        // only (BuildKit copies each source on its own).
        let mut landed_from: Vec<usize> = Vec::new();
        // Folders a folder source writes, which the image must not have as anything else.
        let mut folders_into: Vec<(String, String)> = Vec::new();
        let mut ensure: Vec<String> = Vec::new();
        let mut unpacked: Vec<(String, Entry)> = Vec::new();
        let several = sources.len() > 1;
        for (index, word) in sources.iter().enumerate() {
            landed_from.resize(landed.len(), index.saturating_sub(1));
            if is_heredoc(word) {
                let name = word.trim_start_matches("<<").trim_start_matches('-').trim_matches(['"', '\'']);
                let Some(doc) = instruction.heredocs.iter().find(|h| h.name == name) else { continue };
                let body =
                    if doc.expand { dockerfile::expand(&doc.body, escape, vars)? } else { doc.body.clone() };
                let file = self.fresh_file();
                std::fs::write(&file, body).map_err(BuildError::io("write a here-document"))?;
                let into = dest_hint_dir || several || is_dir(&stage.fs, &dest);
                let at = if into { join(&dest, name) } else { dest.clone() };
                landed.push((at, None, Entry { content: Content::File(file), mode: 0o644, uid: 0, gid: 0 }));
                continue;
            }
            let source = dockerfile::word(word, escape, vars)?;
            if is_add && is_remote(&source) {
                return Err(BuildError::Dockerfile(format!(
                    "the oci builder does not download (`ADD {source}`); fetch it in a task, or build with buildah"
                )));
            }
            let clean = clean_source(&source)?;
            let wildcard = clean.contains(['*', '?', '[']);
            let matched: Vec<String> = if wildcard {
                let glob = globset::GlobBuilder::new(&clean)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| format!("`{source}` is not a valid pattern: {e}"))?
                    .compile_matcher();
                tree.keys().filter(|p| glob.is_match(p.as_str())).cloned().collect()
            } else {
                vec![clean.clone()]
            };
            if matched.is_empty() && !wildcard {
                return Err(BuildError::Dockerfile(format!("`{source}` matches no file")));
            }
            for name in matched {
                // A named source that is a symlink copies what it points at.
                let resolved = if name.is_empty() { String::new() } else { resolve(&tree, &name) };
                let entry = if resolved.is_empty() {
                    Some(Entry { content: Content::Dir, mode: 0o755, uid: 0, gid: 0 })
                } else {
                    tree.get(&resolved).cloned()
                };
                let Some(entry) = entry else {
                    if let Some(Entry { content: Content::Symlink(target), .. }) = tree.get(&name) {
                        // Followed inside the context (or stage), as BuildKit does: `../x`
                        // or `/x` never leaves it.
                        let inside = if from_context { "the build context" } else { "that stage" };
                        return Err(BuildError::Dockerfile(format!(
                            "`{source}` is a symlink to `{target}`, and links are followed inside {inside}, which has no `/{resolved}`; copy the file it names into {inside}, or name that file"
                        )));
                    }
                    let what = if from_context {
                        "the build context (or `.dockerignore` excludes it)"
                    } else {
                        "that stage"
                    };
                    return Err(BuildError::Dockerfile(format!("`{source}` is not in {what}")));
                };
                if entry.content == Content::Dir {
                    // A folder: its contents into the destination, the folder's own mode on it.
                    // The destination folder itself is the image's, or made like a parent.
                    let prefix = if resolved.is_empty() { String::new() } else { format!("{resolved}/") };
                    ensure.push(dest.clone());
                    folders_into.push((dest.clone(), source.clone()));
                    for (path, inner) in tree.range(prefix.clone()..) {
                        let Some(rel) = path.strip_prefix(&prefix) else { break };
                        if rel.is_empty() {
                            continue;
                        }
                        if inner.content == Content::Dir {
                            folders_into.push((join(&dest, rel), format!("{prefix}{rel}")));
                        }
                        landed.push((join(&dest, rel), Some(path.clone()), inner.clone()));
                    }
                    continue;
                }
                let base = name.rsplit('/').next().unwrap_or(&name).to_owned();
                if is_add
                    && from_context
                    && let Content::File(file) = &entry.content
                    && let Some(reader) = archive::open(file)
                {
                    // Owners and modes as the archive has them (`--chown` is for the folder).
                    unpacked.extend(self.unpack(reader, &resolved, &dest, &stage.fs)?);
                    ensure.push(dest.clone());
                    continue;
                }
                let into = dest_hint_dir || several || wildcard || is_dir(&stage.fs, &dest);
                let at = if into { join(&dest, &base) } else { dest.clone() };
                landed.push((at, Some(resolved), entry));
            }
        }

        landed_from.resize(landed.len(), sources.len().saturating_sub(1));
        // A folder is copied into folders only: where the image has a file or a symbolic link
        // (`/bin -> usr/bin` of a merged-/usr base) BuildKit refuses rather than replace it.
        for (at, source) in &folders_into {
            match stage.fs.get(at) {
                Some(entry) if entry.content != Content::Dir => {
                    let (what, fix) = match &entry.content {
                        Content::Symlink(target) => (
                            format!("a symbolic link to `{target}`"),
                            format!(
                                "copy its contents to `/{}`, where the link leads",
                                resolve(&stage.fs, at)
                            ),
                        ),
                        _ => ("a file".to_owned(), "copy the folder to another path".to_owned()),
                    };
                    return Err(BuildError::Dockerfile(format!(
                        "cannot copy to non-directory `/{at}`: the image has it as {what}, and `{source}` is a folder (BuildKit refuses this too); {fix}"
                    )));
                }
                _ => {}
            }
        }
        // The bytes of base-image files, each layer read once for all of them.
        let mut wanted = Vec::new();
        for (_, from_path, _) in &landed {
            let mut at = from_path.clone();
            for _ in 0..8 {
                match at.as_ref().and_then(|p| tree.get(p)).map(|e| &e.content) {
                    Some(Content::Hardlink(target)) => at = Some(target.clone()),
                    Some(Content::Layer { blob, path }) => {
                        wanted.push((blob.clone(), path.clone()));
                        break;
                    }
                    _ => break,
                }
            }
        }
        self.read_out(&wanted)?;
        // Owners, modes, hardlinks, file bytes.
        let mut delta = Tree::new();
        let mut first_of_group: HashMap<(usize, String), String> = HashMap::new();
        for ((at, from_path, entry), source) in landed.into_iter().zip(landed_from) {
            if at.is_empty() {
                // The root itself: keep what the image has.
                continue;
            }
            let mut entry = entry;
            if let (Some(path), Content::Hardlink(_) | Content::Layer { .. }) = (&from_path, &entry.content) {
                entry = self.materialize(&tree, path, &entry)?;
            }
            if from_context && from_path.is_some() {
                entry.uid = 0;
                entry.gid = 0;
            }
            if let Some((uid, gid)) = owner {
                entry.uid = uid;
                entry.gid = gid;
            }
            if let (Some(chmod), false) = (&mode, matches!(entry.content, Content::Symlink(_))) {
                entry.mode = chmod.apply(entry.mode, entry.content == Content::Dir);
            }
            if let Content::Symlink(_) = entry.content {
                entry.mode = 0o777;
            }
            if let Some(group) = from_path.as_ref().and_then(|p| inodes.get(p)) {
                let group = (source, group.clone());
                match first_of_group.get(&group) {
                    Some(first) if delta.contains_key(first) => {
                        entry.content = Content::Hardlink(first.clone());
                    }
                    _ => {
                        first_of_group.insert(group, at.clone());
                    }
                }
            }
            delta.insert(at, entry);
        }
        delta.extend(unpacked);
        order_hardlinks(&mut delta);
        // The folders above: what the image has, or made (0755, owned as `--chown` says).
        let (uid, gid) = owner.unwrap_or((0, 0));
        for dir in ensure.into_iter().filter(|d| !d.is_empty()) {
            let existing = stage.fs.get(&dir).filter(|e| e.content == Content::Dir).cloned();
            delta.entry(dir).or_insert_with(|| {
                existing.unwrap_or(Entry { content: Content::Dir, mode: 0o755, uid, gid })
            });
        }
        let paths: Vec<String> = delta.keys().cloned().collect();
        for path in paths {
            let mut parent = path.as_str();
            while let Some((dir, _)) = parent.rsplit_once('/') {
                if !delta.contains_key(dir) {
                    let entry = match stage.fs.get(dir) {
                        Some(existing) if existing.content == Content::Dir => existing.clone(),
                        _ => Entry { content: Content::Dir, mode: 0o755, uid, gid },
                    };
                    delta.insert(dir.to_owned(), entry);
                }
                parent = dir;
            }
        }
        Ok(delta)
    }

    /// The entries of a local archive `ADD` unpacks into `dest` of `fs` (`name`: the archive
    /// in the context).
    fn unpack(
        &mut self,
        reader: Box<dyn std::io::Read>,
        name: &str,
        dest: &str,
        fs: &Tree,
    ) -> Result<Vec<(String, Entry)>, BuildError> {
        let tree = archive::unpack(reader, &mut || self.fresh_file()).map_err(|e| match e {
            UnpackError::Entry(problem) => BuildError::archive_entry(name, problem),
            UnpackError::Io(source) => BuildError::Io { action: format!("unpack `{name}`"), source },
        })?;
        Ok(tree
            .iter()
            .map(|(path, entry)| {
                let mut entry = entry.clone();
                if let Content::Hardlink(target) = &entry.content {
                    entry.content = Content::Hardlink(place(fs, &tree, dest, target));
                }
                (place(fs, &tree, dest, path), entry)
            })
            .collect())
    }

    fn add_layer(&self, stage: &mut Stage, delta: Tree, source: &str) -> Result<(), BuildError> {
        let written = layer::write(&delta, self.layout, &self.request.layers)?;
        stage.layers.push(Descriptor {
            media_type: written.media_type.to_owned(),
            digest: written.digest.clone(),
            size: written.size,
        });
        stage.diff_ids.push(Value::String(written.diff_id));
        stage.history.push(json!({ "created": EPOCH, "created_by": source }));
        let mut merge = Merge::new(&mut stage.fs);
        for (path, entry) in delta {
            let target = match &entry.content {
                Content::Hardlink(target) => target.clone(),
                _ => String::new(),
            };
            merge.put(&path, entry).map_err(|problem| {
                BuildError::layer_entry(&written.digest, EntryProblem::link(problem, &path, &target))
            })?;
        }
        Ok(())
    }
}

/// A `COPY --chmod` mode: an octal number, or a symbolic mode (Dockerfile 1.14+), applied to
/// each copied file and folder from its own mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chmod {
    /// `--chmod=0755`: every copied entry gets this mode.
    Octal(u32),
    /// `--chmod=u+x,go-w`: each copied entry's mode, changed as chmod(1) says.
    Symbolic(Vec<ModeChange>),
}

/// One step of a symbolic mode, applied in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModeChange {
    /// Clear these bits.
    Clear(u32),
    /// Set these bits.
    Set(u32),
    /// Set these bits when the entry is a folder or was executable by anyone before (`X`).
    SetIfSearchable(u32),
    /// Copy the permission bits of one class (`u`, `g` or `o`) onto others (the shifts of
    /// their positions: 6, 3, 0), by `+` (add), `-` (remove) or `=` (replace).
    Copy { from: u32, onto: [bool; 3], op: char },
}

/// A `--chmod` value that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`--chmod={0}` is not a mode: an octal number (0 to 7777) or a symbolic mode like `u+x,go-w`")]
pub(crate) struct ChmodError(pub(crate) String);

const SET_ID: u32 = 0o6000;
const STICKY: u32 = 0o1000;
const STANDARD: u32 = 0o6777;

/// Reads a `--chmod` value as BuildKit does: octal digits are an absolute mode; anything else
/// is a symbolic mode of chmod(1) (BSD's `setmode`, which BuildKit uses, with no umask):
/// clauses `[ugoa]*([-+=]([rwxXst]*|[ugo]))+` joined by `,`.
pub(crate) fn parse_chmod(text: &str) -> Result<Chmod, ChmodError> {
    let refuse = || ChmodError(text.to_owned());
    let bytes = text.as_bytes();
    match bytes.first() {
        None => return Err(refuse()),
        Some(b'0'..=b'9') => {
            return u32::from_str_radix(text, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(refuse);
        }
        Some(_) => {}
    }
    let mut changes = Vec::new();
    let mut at = 0;
    loop {
        // Whose bits: none named is everyone's.
        let mut who = 0;
        while let Some(&b) = bytes.get(at) {
            who |= match b {
                b'a' => STANDARD,
                b'u' => 0o4700,
                b'g' => 0o2070,
                b'o' => 0o0007,
                _ => break,
            };
            at += 1;
        }
        // One or more operations for them.
        loop {
            let op = match bytes.get(at) {
                Some(b'+') => '+',
                Some(b'-') => '-',
                Some(b'=') => '=',
                _ => return Err(refuse()),
            };
            at += 1;
            who &= !STICKY;
            let mut perm = 0;
            let mut search = 0;
            let mut assigned = false;
            let flush = |changes: &mut Vec<ModeChange>, who: u32, perm: u32| {
                let bits = if who == 0 { perm } else { who & perm };
                match op {
                    '=' => {
                        changes.push(ModeChange::Clear(if who == 0 { STANDARD } else { who }));
                        changes.push(ModeChange::Set(bits));
                    }
                    '+' => changes.push(ModeChange::Set(bits)),
                    _ => changes.push(ModeChange::Clear(bits)),
                }
            };
            loop {
                match bytes.get(at) {
                    Some(b'r') => perm |= 0o444,
                    Some(b'w') => perm |= 0o222,
                    Some(b'x') => perm |= 0o111,
                    Some(b'X') => {
                        if op == '+' {
                            search = 0o111;
                        }
                    }
                    Some(b's') => {
                        if who == 0 || who & !0o007 != 0 {
                            perm |= SET_ID;
                        }
                    }
                    Some(b't') => {
                        if who == 0 || who & !0o007 != 0 {
                            who |= STICKY;
                            perm |= STICKY;
                        }
                    }
                    Some(&class @ (b'u' | b'g' | b'o')) => {
                        if perm != 0 {
                            flush(&mut changes, who, perm);
                            perm = 0;
                        }
                        assigned |= op == '=';
                        if search != 0 {
                            changes.push(ModeChange::SetIfSearchable(if who == 0 {
                                search
                            } else {
                                who & search
                            }));
                            search = 0;
                        }
                        let from = match class {
                            b'u' => 6,
                            b'g' => 3,
                            _ => 0,
                        };
                        let onto = if who == 0 {
                            [true; 3]
                        } else {
                            [who & 0o400 != 0, who & 0o040 != 0, who & 0o004 != 0]
                        };
                        changes.push(ModeChange::Copy { from, onto, op });
                    }
                    _ => {
                        if perm != 0 || (op == '=' && !assigned) {
                            flush(&mut changes, who, perm);
                        }
                        if search != 0 {
                            changes.push(ModeChange::SetIfSearchable(if who == 0 {
                                search
                            } else {
                                who & search
                            }));
                        }
                        break;
                    }
                }
                at += 1;
            }
            match bytes.get(at) {
                None => return Ok(Chmod::Symbolic(changes)),
                Some(b',') => {
                    at += 1;
                    break;
                }
                Some(_) => {}
            }
        }
    }
}

impl Chmod {
    /// The mode an entry whose mode is `mode` gets (`dir`: it is a folder).
    pub(crate) fn apply(&self, mode: u32, dir: bool) -> u32 {
        let changes = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(changes) => changes,
        };
        let before = mode;
        let mut mode = mode;
        for change in changes {
            match *change {
                ModeChange::Clear(bits) => mode &= !bits,
                ModeChange::Set(bits) => mode |= bits,
                ModeChange::SetIfSearchable(bits) => {
                    if dir || before & 0o111 != 0 {
                        mode |= bits;
                    }
                }
                ModeChange::Copy { from, onto, op } => {
                    let value = (mode >> from) & 0o7;
                    for (class, shift) in onto.iter().zip([6, 3, 0]) {
                        if !class {
                            continue;
                        }
                        match op {
                            '+' => mode |= value << shift,
                            '-' => mode &= !(value << shift),
                            _ => mode = (mode & !(0o7 << shift)) | (value << shift),
                        }
                    }
                }
            }
        }
        mode & 0o7777
    }
}

/// Where the entry `rel` of `archive` lands when unpacked into `dest` of `fs`: the folders above
/// it that the archive does not hold are the image's, its symlinks followed (as unpacking into
/// the image's root does); those the archive holds are its own.
fn place(fs: &Tree, archive: &Tree, dest: &str, rel: &str) -> String {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let mut at = dest.to_owned();
    let mut prefix = String::new();
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        prefix = join(&prefix, part);
        at = join(&at, part);
        if !archive.contains_key(&prefix) {
            at = resolve(fs, &at);
        }
    }
    join(&at, name)
}

/// Each hardlink of `fs` and its target, keyed by the target's path.
fn link_groups(fs: &Tree) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (path, entry) in fs {
        if let Content::Hardlink(target) = &entry.content {
            out.insert(path.clone(), target.clone());
            out.insert(target.clone(), target.clone());
        }
    }
    out
}

/// Makes the first path of every hardlink group (in layer order) the one holding the bytes.
fn order_hardlinks(delta: &mut Tree) {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, entry) in delta.iter() {
        if let Content::Hardlink(target) = &entry.content {
            groups.entry(target.clone()).or_default().push(path.clone());
        }
    }
    for (target, mut members) in groups {
        let Some(original) = delta.get(&target).cloned() else {
            continue;
        };
        members.push(target.clone());
        members.sort();
        let first = members[0].clone();
        if first == target {
            continue;
        }
        delta.insert(first.clone(), original);
        for member in &members[1..] {
            if let Some(e) = delta.get_mut(member) {
                e.content = Content::Hardlink(first.clone());
            }
        }
    }
}

/// Reads a base layer's headers into `fs` (whiteouts applied, hardlinks resolved as the layer
/// is read: see [`Merge`]); file bytes stay in the layer.
fn read_layer(layout: &Layout, layer: &Descriptor, fs: &mut Tree) -> Result<(), BuildError> {
    let fail = |source| BuildError::Io { action: format!("read layer {}", layer.digest), source };
    let refuse = |problem| BuildError::layer_entry(&layer.digest, problem);
    let mut archive = open_layer(layout, layer)?;
    let mut merge = Merge::new(fs);
    for item in archive.entries().map_err(fail)? {
        let item = item.map_err(fail)?;
        let raw = item.path().map_err(fail)?.to_string_lossy().into_owned();
        let Some(path) = archive::inside(&raw) else {
            return Err(refuse(EntryProblem::Escapes { path: raw }));
        };
        if path.is_empty() {
            continue;
        }
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if name == ".wh..wh..opq" {
            merge.opaque(dir);
            continue;
        }
        if let Some(gone) = name.strip_prefix(".wh.") {
            merge.remove(&join(dir, gone));
            continue;
        }
        let header = item.header();
        let mode = header.mode().map_err(fail)? & 0o7777;
        let uid = header.uid().map_err(fail)?;
        let gid = header.gid().map_err(fail)?;
        let kind = header.entry_type();
        let link_name = || -> Result<String, BuildError> {
            Ok(item.link_name().map_err(fail)?.map(|l| l.to_string_lossy().into_owned()).unwrap_or_default())
        };
        let content = if kind.is_dir() {
            Content::Dir
        } else if kind.is_symlink() {
            Content::Symlink(link_name()?)
        } else if kind.is_hard_link() {
            let target = link_name()?;
            let Some(inner) = archive::inside(&target) else {
                return Err(refuse(EntryProblem::LinkEscapes { path: raw, target }));
            };
            let entry = Entry { content: Content::Hardlink(inner), mode, uid, gid };
            merge.put(&path, entry).map_err(|p| refuse(EntryProblem::link(p, &raw, &target)))?;
            continue;
        } else if kind.is_file() || kind == tar::EntryType::Continuous || kind == tar::EntryType::GNUSparse {
            Content::Layer { blob: layer.digest.clone(), path: raw.clone() }
        } else {
            // Devices and FIFOs take the place of what was there, and are kept out of what a
            // COPY can take.
            if archive::special(kind).is_some() {
                merge.remove(&path);
            }
            continue;
        };
        merge
            .put(&path, Entry { content, mode, uid, gid })
            .map_err(|p| refuse(EntryProblem::link(p, &raw, "")))?;
    }
    Ok(())
}

fn open_layer(
    layout: &Layout,
    layer: &Descriptor,
) -> Result<tar::Archive<Box<dyn std::io::Read>>, BuildError> {
    let file = std::fs::File::open(layout.blob_path(&layer.digest))
        .map_err(BuildError::io(format!("open layer {}", layer.digest)))?;
    let file = std::io::BufReader::new(file);
    let reader: Box<dyn std::io::Read> = if layer.media_type.ends_with("gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if layer.media_type.ends_with(".tar") || layer.media_type.ends_with("tar") {
        Box::new(file)
    } else {
        return Err(BuildError::Dockerfile(format!(
            "layer {} is `{}`, which the oci builder cannot read",
            layer.digest, layer.media_type
        )));
    };
    Ok(tar::Archive::new(reader))
}

/// Opens layer blob `blob` of the layout, gzip or plain (told by its first bytes).
fn open_blob(layout: &Layout, blob: &str) -> Result<tar::Archive<Box<dyn std::io::Read>>, BuildError> {
    let mut head = [0u8; 2];
    let gzip = std::fs::File::open(layout.blob_path(blob))
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == [0x1f, 0x8b]);
    let media_type = if gzip { LAYER } else { "application/vnd.oci.image.layer.v1.tar" };
    open_layer(layout, &Descriptor { media_type: media_type.to_owned(), digest: blob.to_owned(), size: 0 })
}

/// Follows symlinks in `path` (relative to the root of `fs`), the last component included.
fn resolve(fs: &Tree, path: &str) -> String {
    let mut parts: Vec<String> =
        path.split('/').filter(|p| !p.is_empty() && *p != ".").map(str::to_owned).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while !parts.is_empty() {
        let part = parts.remove(0);
        if part == ".." {
            done.pop();
            continue;
        }
        done.push(part);
        let here = done.join("/");
        if let Some(Entry { content: Content::Symlink(target), .. }) = fs.get(&here) {
            hops += 1;
            if hops > 40 {
                return here;
            }
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            let mut next: Vec<String> =
                target.split('/').filter(|p| !p.is_empty() && *p != ".").map(str::to_owned).collect();
            next.extend(parts);
            parts = next;
        }
    }
    done.join("/")
}

fn is_dir(fs: &Tree, path: &str) -> bool {
    path.is_empty() || fs.get(path).is_some_and(|e| e.content == Content::Dir)
}

/// Adds to `delta` the folders of `path` the image lacks (0755, `uid:gid`), and `path`.
fn mkdir_all(fs: &Tree, delta: &mut Tree, path: &str, uid: u64, gid: u64) {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = join(&at, part);
        let entry = match fs.get(&at) {
            Some(existing) if existing.content == Content::Dir => existing.clone(),
            _ => Entry { content: Content::Dir, mode: 0o755, uid, gid },
        };
        delta.insert(at.clone(), entry);
    }
}

fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

fn object<'m>(
    settings: &'m mut serde_json::Map<String, Value>,
    key: &str,
) -> &'m mut serde_json::Map<String, Value> {
    let value = settings.entry(key).or_insert_with(|| json!({}));
    if !value.is_object() {
        *value = json!({});
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("made an object above"),
    }
}

/// `ENV`/`LABEL` pairs ([`dockerfile::pairs`]), every value substituted against the variables
/// before the instruction.
fn pairs(
    args: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
    keyword: &str,
) -> Result<Vec<(String, String)>, BuildError> {
    dockerfile::pairs(args, escape, vars, keyword).map_err(|e| BuildError::Dockerfile(e.to_string()))
}

pub(crate) fn healthcheck(instruction: &Instruction) -> Result<Value, BuildError> {
    let args = instruction.args.trim();
    let (kind, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    let mut check = serde_json::Map::new();
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !instruction.flags.is_empty() || !rest.trim().is_empty() {
                return Err(BuildError::Dockerfile(
                    "`HEALTHCHECK NONE` takes no flags or arguments".to_owned(),
                ));
            }
            check.insert("Test".to_owned(), json!(["NONE"]));
            return Ok(Value::Object(check));
        }
        "CMD" => {
            let test = match dockerfile::json_array(rest) {
                Some(argv) => std::iter::once("CMD".to_owned()).chain(argv).collect::<Vec<_>>(),
                None => vec!["CMD-SHELL".to_owned(), rest.trim().to_owned()],
            };
            check.insert("Test".to_owned(), json!(test));
        }
        _ => return Err(BuildError::Dockerfile("`HEALTHCHECK` takes `CMD …` or `NONE`".to_owned())),
    }
    for flag in &instruction.flags {
        let name = &flag.name;
        let value = flag.value.as_ref().map_or("", |v| v.text.as_str());
        let key = match name.as_str() {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: i64 = value.parse().map_err(|_| format!("`--retries={value}` is not a number"))?;
                if n != 0 {
                    check.insert("Retries".to_owned(), json!(n));
                }
                continue;
            }
            other => {
                return Err(BuildError::Dockerfile(format!("`HEALTHCHECK --{other}` is not a flag it has")));
            }
        };
        let nanos =
            duration(value).ok_or_else(|| format!("`--{name}={value}` is not a duration like 30s"))?;
        if nanos != 0 {
            check.insert(key.to_owned(), json!(nanos));
        }
    }
    Ok(Value::Object(check))
}

/// A Go duration (`1m30s`, `500ms`) in nanoseconds.
fn duration(text: &str) -> Option<u64> {
    if text == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a duration in range")]
    Some(total.round() as u64)
}

/// Records an instruction that adds no layer.
fn empty(stage: &mut Stage, source: &str) {
    stage.history.push(json!({ "created": EPOCH, "created_by": source, "empty_layer": true }));
}

/// Writes the stage's config and manifest.
fn finish(stage: &Stage, platform: &Platform, layout: &Layout) -> Result<Built, BuildError> {
    let mut config = json!({
        "created": EPOCH,
        "architecture": platform.arch(),
        "os": platform.os(),
        "config": Value::Object(stage.settings.clone()),
        "rootfs": { "type": "layers", "diff_ids": stage.diff_ids },
        "history": stage.history,
    });
    if let Some(author) = &stage.author {
        config["author"] = json!(author);
    }
    if let Some(variant) = platform.variant() {
        config["variant"] = json!(variant);
    }
    let config_bytes = serde_json::to_vec(&config)?;
    let config = layout.put(CONFIG, &config_bytes)?;
    let layers =
        stage.layers.iter().map(Descriptor::oci).collect::<Result<Vec<_>, _>>().map_err(LayoutError::from)?;
    let manifest = document::image_manifest(
        spec::MediaType::ImageManifest,
        config.oci().map_err(LayoutError::from)?,
        layers,
    )
    .map_err(LayoutError::from)?;
    let bytes = document::to_bytes(&manifest).map_err(LayoutError::from)?;
    Ok(Built { manifest: layout.put(MANIFEST, &bytes)? })
}

/// The variables an instruction of `stage` sees: its ARGs, then its ENV over them.
fn in_scope(stage: &Stage) -> HashMap<String, Option<String>> {
    let mut scope = stage.args.clone();
    let env = stage.settings.get("Env").and_then(Value::as_array).into_iter().flatten();
    for pair in env.filter_map(Value::as_str) {
        if let Some((k, v)) = pair.split_once('=') {
            scope.insert(k.to_owned(), Some(v.to_owned()));
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

/// The argv of an `ENTRYPOINT`/`CMD`: exec form as written, shell form through the config's
/// `Shell` (`/bin/sh -c` by default).
fn command(args: &str, settings: &serde_json::Map<String, Value>) -> Vec<String> {
    if let Some(argv) = dockerfile::json_array(args) {
        return argv;
    }
    let mut argv: Vec<String> = settings
        .get("Shell")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .filter(|s: &Vec<String>| !s.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".to_owned(), "-c".to_owned()]);
    argv.push(args.trim().to_owned());
    argv
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

/// A `COPY` source made relative to the context (or stage root); `..` that leaves it is an error.
fn clean_source(source: &str) -> Result<String, BuildError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(BuildError::Dockerfile(format!("`{source}` is outside the build context")));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The files of a folder as a tree (modes from disk, owned by root) and each hardlinked file's
/// inode: `files` (relative, `.dockerignore` applied) and the folders `ignore` keeps.
fn tree_of(
    root: &Path,
    files: &[&String],
    ignore: &hephy_engine::DockerIgnore,
) -> Result<(Tree, HashMap<String, String>), BuildError> {
    let mut tree = Tree::new();
    let mut inodes = HashMap::new();
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for &file in files {
        let full = root.join(file);
        let meta = std::fs::symlink_metadata(&full).map_err(BuildError::io(format!("read `{file}`")))?;
        let mode = meta.mode() & 0o7777;
        let content = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&full).map_err(BuildError::io(format!("read `{file}`")))?;
            Content::Symlink(target.to_string_lossy().into_owned())
        } else {
            if meta.nlink() > 1 {
                inodes.insert(file.clone(), format!("{}:{}", meta.dev(), meta.ino()));
            }
            Content::File(full)
        };
        tree.insert(file.clone(), Entry { content, mode, uid: 0, gid: 0 });
        let mut parent = file.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            dirs.insert(dir.to_owned());
            parent = dir;
        }
    }
    // Folders, empty ones included (unless `.dockerignore` excludes them).
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if !kind.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            if !dirs.contains(&path) && (ignore.excludes(&path) || ignore.prunes(&path)) {
                continue;
            }
            dirs.insert(path.clone());
            stack.push(path);
        }
    }
    for dir in dirs {
        let mode = std::fs::symlink_metadata(root.join(&dir)).map(|m| m.mode() & 0o7777).unwrap_or(0o755);
        tree.insert(dir, Entry { content: Content::Dir, mode, uid: 0, gid: 0 });
    }
    Ok((tree, inodes))
}

/// A named folder context (`COPY --from=src`) as a tree: its files, its own `.dockerignore`
/// applied (as BuildKit applies it to a named local context).
fn folder_tree(folder: &Path) -> Result<(Tree, HashMap<String, String>), BuildError> {
    let files = hephy_engine::collect(
        folder,
        &hephy_engine::FileSource::Context { dir: ".".to_owned(), dockerfile: ".dockerignore".to_owned() },
        &hephy_engine::Exclusions::default(),
    )?;
    let files: Vec<&String> = files.iter().filter(|f| folder.join(f).symlink_metadata().is_ok()).collect();
    let ignore = hephy_engine::context_ignore(folder, ".", ".dockerignore")?;
    tree_of(folder, &files, &ignore)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoBases;
    impl BaseSource for NoBases {
        fn fetch(&self, reference: &str, _: &Platform) -> Result<BaseImage, super::super::PullError> {
            Err(super::super::PullError::Missing { reference: reference.to_owned() })
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
            contexts: &[],
            layers: hephy_oci::compress::Settings::gzip(),
        };
        let built = build(&request, &layout, &NoBases).map_err(|e| e.to_string())?;
        Ok((config_of(&layout, &built), built))
    }

    #[test]
    fn a_registry_failure_keeps_its_status_and_place() {
        struct Unavailable;
        impl BaseSource for Unavailable {
            fn fetch(&self, _: &str, _: &Platform) -> Result<BaseImage, super::super::PullError> {
                use hephy_oci::registry::{Cause, Operation, RegistryError};
                Err(super::super::PullError::Registry(RegistryError {
                    operation: Operation::ReadManifest,
                    url: "http://127.0.0.1:5000/v2/alpine/manifests/3".to_owned(),
                    cause: Cause::Status { status: 503, message: String::new() },
                }))
            }
        }
        let (dir, files) = context();
        let layout = Layout::new(dir.path().join("oci"));
        let platform: Platform = "linux/arm64".parse().unwrap();
        let request = Request {
            dockerfile: "# base\nFROM alpine:3\n",
            dockerfile_name: "app/Dockerfile",
            context: dir.path(),
            files: &files,
            build_args: &[],
            target: None,
            platform: &platform,
            contexts: &[],
            layers: hephy_oci::compress::Settings::gzip(),
        };
        let e = build(&request, &layout, &Unavailable).unwrap_err();
        let BuildError::At { dockerfile, line, .. } = &e else { panic!("no position: {e:?}") };
        assert_eq!((dockerfile.as_str(), *line), ("app/Dockerfile", 2));
        let registry = e.registry().expect("the registry's error is kept");
        assert_eq!(registry.status(), Some(503));
        assert!(registry.is_retryable());
        let e = super::super::OciError::from(e);
        assert!(e.registry().is_some_and(hephy_oci::registry::RegistryError::is_retryable));
        assert_eq!(
            e.to_string(),
            "app/Dockerfile, line 2: reading the manifest at http://127.0.0.1:5000/v2/alpine/manifests/3 failed with 503 Service Unavailable"
        );
    }

    /// The bytes hephy writes for an image manifest, and for it again with labels and
    /// annotations, are pinned by their digests: how manifests are written (by hand as JSON,
    /// or as `oci-spec` types) must not move a digest.
    #[test]
    fn manifest_bytes_are_pinned() {
        let (dir, files) = context();
        let layout = Layout::new(dir.path().join("oci"));
        let platform: Platform = "linux/arm/v7".parse().unwrap();
        let request = Request {
            dockerfile: "FROM scratch\nCOPY --chmod=755 bin/ /bin/\nCOPY README /\nLABEL a=b\nENV X=1\n",
            dockerfile_name: "Dockerfile",
            context: dir.path(),
            files: &files,
            build_args: &[],
            target: None,
            platform: &platform,
            contexts: &[],
            layers: hephy_oci::compress::Settings::gzip(),
        };
        let built = build(&request, &layout, &NoBases).unwrap();
        assert_eq!(
            built.manifest.digest,
            "sha256:4edb6829f8f5415e81f4255f04ce562275db6bb2bd1c4e638a1ae2ee6e573878"
        );
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let labels = [pair("z.label", "1"), pair("a.label", "2")];
        let annotations = [pair("org.opencontainers.image.title", "t"), pair("a.note", "n")];
        let labelled =
            super::super::metadata::apply(&layout, &built.manifest, &labels, &annotations).unwrap();
        assert_eq!(
            labelled.digest,
            "sha256:f32580624d43c92ed3e9c400c9bc063db8bc215658b57909e5f44bfe9c3200cf"
        );
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
        // The default PATH comes first, and ENV replaces it in place (as BuildKit does).
        assert_eq!(c["Env"], json!(["PATH=/bin", "APP_VERSION=2.0"]));
        assert_eq!(c["Labels"]["org.opencontainers.image.version"], "2.0");
        assert_eq!(c["WorkingDir"], "/app/sub");
        assert_eq!(c["User"], "65532:65532");
        assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Entrypoint"], json!(["/app/sub/bin/tool"]));
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "--help"]));
        // WORKDIR makes its folder (a layer each, as BuildKit's), then the COPY.
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
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
    fn add_refuses_an_archive_entry_it_would_write_broken_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        for (path, target) in [("h1", "h2"), ("h2", "h1")] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            tar.append_link(&mut header, path, target).unwrap();
        }
        std::fs::write(dir.path().join("x.tar"), tar.into_inner().unwrap()).unwrap();
        let files = vec!["x.tar".to_owned()];
        let platform: Platform = "linux/amd64".parse().unwrap();
        let request = Request {
            dockerfile: "FROM scratch\nADD x.tar /x/\nCOPY x.tar /y\n",
            dockerfile_name: "Dockerfile",
            context: dir.path(),
            files: &files,
            build_args: &[],
            target: None,
            platform: &platform,
            contexts: &[],
            layers: hephy_oci::compress::Settings::gzip(),
        };
        let e = build(&request, &Layout::new(dir.path().join("oci")), &NoBases).unwrap_err().to_string();
        assert!(
            e.contains(
                "line 2: cannot unpack `x.tar`: `h1` is a hardlink to `h2`, which is not an entry before it"
            ),
            "{e}"
        );
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
        assert!(e.contains("not in the build context"), "{e}");
        let e = run("FROM scratch\nCOPY --chown=app README /\n", &[], None).unwrap_err();
        assert!(e.contains("numeric"), "{e}");
        let e = run("FROM alpine\n", &[], None).unwrap_err();
        assert!(e.contains("alpine does not exist in its registry"), "{e}");
    }

    #[test]
    fn chmod_reads_octal_and_symbolic_modes() {
        let apply = |text: &str, mode: u32, dir: bool| parse_chmod(text).expect("a mode").apply(mode, dir);
        assert_eq!(apply("755", 0o600, false), 0o755);
        assert_eq!(apply("4755", 0o600, false), 0o4755);
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("+x", 0o644, false), 0o755, "no umask: everyone");
        assert_eq!(apply("u=rwx,go=rx", 0o600, false), 0o755);
        assert_eq!(apply("go=u-w", 0o700, false), 0o755);
        assert_eq!(apply("u+x,go-w", 0o664, false), 0o744);
        assert_eq!(apply("=r", 0o4755, false), 0o444, "`=` clears the set-id bits");
        assert_eq!(apply("u+s", 0o755, false), 0o4755);
        assert_eq!(apply("g+s", 0o755, true), 0o2755);
        assert_eq!(apply("+t", 0o777, true), 0o1777);
        assert_eq!(apply("o+t", 0o777, true), 0o777, "sticky for others alone is ignored");
        assert_eq!(apply("go-rwx,u+X", 0o644, false), 0o600);
        assert_eq!(apply("go-rwx,u+X", 0o644, true), 0o700, "`X`: folders");
        assert_eq!(apply("a+X", 0o744, false), 0o755, "`X`: files executable by someone");
        assert_eq!(apply("u-x+r", 0o300, false), 0o600, "several operations for one class");
        for bad in ["", "u", "u+q", "999", "77777", "u+x,", "x+u", "ug"] {
            assert!(parse_chmod(bad).is_err(), "`{bad}` is refused");
        }
    }

    #[test]
    fn paths_resolve_like_dockers() {
        assert_eq!(absolute("/app", "../etc/./x"), "/etc/x");
        let link = |t: &str| Entry { content: Content::Symlink(t.to_owned()), mode: 0o777, uid: 0, gid: 0 };
        let dir = Entry { content: Content::Dir, mode: 0o755, uid: 0, gid: 0 };
        let fs = Tree::from([
            ("run".to_owned(), dir.clone()),
            ("var".to_owned(), dir),
            ("var/run".to_owned(), link("/run")),
            ("var/lock".to_owned(), link("../run/lock")),
        ]);
        assert_eq!(resolve(&fs, "var/run/x"), "run/x");
        assert_eq!(resolve(&fs, "var/lock"), "run/lock");
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
    impl BaseSource for NoBases {
        fn fetch(&self, reference: &str, _: &Platform) -> Result<BaseImage, super::super::PullError> {
            Err(super::super::PullError::Missing { reference: reference.to_owned() })
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
            contexts: &[],
            layers: hephy_oci::compress::Settings::gzip(),
        };
        let _ = hephy_dockerfile::parse(dockerfile);
        let built = build(&request, &layout, &NoBases);
        if dockerfile == SEED {
            assert!(built.is_ok(), "{built:?}");
        }
        // Nothing lands beside the context and the layout, but the scratch folders' folder,
        // left empty.
        let scratch = dir.path().join("tmp");
        assert!(std::fs::read_dir(&scratch).map_or(true, |mut e| e.next().is_none()), "scratch left");
        let _ = std::fs::remove_dir(scratch);
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
