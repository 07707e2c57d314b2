//! The typed, validated, syntax-independent model of a graph file.
//!
//! Owns the meaning of the language: a [`Model`] exists only when every name resolves, every
//! platform is valid, every path stays inside the graph's folder and the dependencies form no
//! cycle. Spans are kept so later stages can point back into the file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::platform::Platform;
use crate::source::{SourceFile, Spanned};

/// A loaded, valid graph file.
#[derive(Debug, Clone)]
pub struct Model {
    /// The file it was read from.
    pub source: SourceFile,
    /// The folder every relative path is resolved against (the graph file's folder).
    pub root: PathBuf,
    /// The registry (and path prefix) images are pushed to, e.g. `registry.example.com/platform`.
    pub registry: Option<String>,
    /// How pushed images are named.
    pub naming: Naming,
    /// The builder of images that do not name their own (`oci`, the built-in one, unless given).
    pub builder: Builder,
    /// Platforms of images and tasks that do not name their own.
    pub platforms: Vec<Platform>,
    /// The declared executors; when empty, each platform gets a `local` executor.
    pub executors: Vec<Executor>,
    /// Images, in file order.
    pub images: Vec<Image>,
    /// Tasks, in file order.
    pub tasks: Vec<Task>,
    /// Schedules, in file order.
    pub schedules: Vec<Schedule>,
    /// Groups: named selections to plan and run (`--group`), in file order.
    pub groups: Vec<Group>,
    /// Secrets builds and tasks may use, in file order.
    pub secrets: Vec<Secret>,
    /// More registries (and path prefixes) every image is also pushed to, each like `registry`.
    pub mirrors: Vec<String>,
    /// The `--set` and `HEPHY_VAR_*` values it was loaded with (a graph at another revision,
    /// for `--since`, is loaded with the same).
    pub overrides: crate::Overrides,
    /// Image and task names → their position, for constant-time lookups.
    pub(crate) index: foldhash::HashMap<String, DefinitionIndex>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum DefinitionIndex {
    Image(usize),
    Task(usize),
}

/// How pushed images are named: templates over `{registry}`, `{name}` (the image, `-target`
/// appended for one target of several), `{date}` (UTC `YYYYMMDD`), `{arch}`, `{platform}`
/// (`linux-arm64`), `{target}`, `{ref}`, `{commit}`, `{key}` (12 hex digits) and `{tag}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// The repository each image is pushed to (`{registry}/{name}`).
    pub repository: String,
    /// An extra tag for each platform build (none by default; builds are always tagged by key).
    pub platform: Option<String>,
    /// An extra tag for each multi-platform index (none by default).
    pub manifest: Option<String>,
    /// How an extra tag of the graph is written (`{tag}`).
    pub tag: String,
}

impl Naming {
    /// hephy's own: one repository per image, extra tags as written.
    pub fn standard() -> Naming {
        Naming {
            repository: "{registry}/{name}".to_owned(),
            platform: None,
            manifest: None,
            tag: "{tag}".to_owned(),
        }
    }

    /// The kaniko-builder layout's: one repository, `{name}-{date}-{arch}` per platform (on
    /// `main`; `{name}-{date}-{branch}-{arch}` on another branch; an upstream build always
    /// `{name}-{date}-{ref}-{arch}`, its upstream ref),
    /// `{name}-{date}` per index, `{name}-{tag}` for extra tags.
    pub fn kaniko_builder() -> Naming {
        Naming {
            repository: "{registry}".to_owned(),
            platform: Some("{name}-{date}{-ref}-{arch}".to_owned()),
            manifest: Some("{name}-{date}".to_owned()),
            tag: "{name}-{tag}".to_owned(),
        }
    }
}

/// Where work for one platform runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executor {
    /// Its name.
    pub name: Spanned<String>,
    /// The platform it builds for.
    pub platform: Platform,
    /// How many nodes it runs at once.
    pub jobs: u32,
    /// GitLab runner tags its CI jobs ask for (`hephy ci gitlab`).
    pub gitlab_tags: Vec<String>,
    /// GitHub Actions `runs-on` labels of its CI jobs (`hephy ci github`).
    pub runs_on: Vec<String>,
    /// Where its image builds run when not on this machine; `None`: here.
    pub engine: Option<Engine>,
}

/// Where an executor's image builds run, other than this machine: one place, never two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// A remote host (`ssh="user@host[:port]"`) running hephy's built-in `oci` builder.
    Ssh(Spanned<String>),
    /// A BuildKit daemon (`buildkit="tcp://buildkitd-arm64:1234"`).
    Buildkit(Spanned<String>),
    /// A Kubernetes namespace (`kubernetes="builds"`), each build a kaniko Job.
    Kubernetes(Spanned<String>),
}

impl Engine {
    /// What the graph file wrote: the host, the daemon's address or the namespace, with its span.
    pub fn target(&self) -> &Spanned<String> {
        match self {
            Engine::Ssh(t) | Engine::Buildkit(t) | Engine::Kubernetes(t) => t,
        }
    }
}

/// A secret: a value a build or task needs that must never be written anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// Its name (`NPM_TOKEN`): the build's secret id, the task's environment variable.
    pub name: Spanned<String>,
    /// Where its value comes from.
    pub source: SecretSource,
}

/// Where a secret's value comes from, read when it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// This environment variable of hephy's.
    Env(String),
    /// This file (absolute, or relative to the graph's folder).
    File(std::path::PathBuf),
}

/// Declares [`Builder`] from one row per builder: its variant, its name in graph files, whether
/// it reads a Dockerfile (ko and spin do not: their context needs none), and its doc line.
macro_rules! builders {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal, dockerfile: $dockerfile:literal;)+) => {
        /// The tool that builds an image: every builder this hephy knows, under its name in graph
        /// files. What each can do, and how it runs, is the standard library's (one
        /// `ImageBuilder` each, in `stdlib/src/builders/`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Builder {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Builder {
            /// Every builder, in the order help texts list them.
            pub const ALL: [Builder; [$($name),+].len()] = [$(Builder::$variant),+];

            /// Its name in graph files.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Builder::$variant => $name,)+
                }
            }

            /// Whether it builds from a Dockerfile, so an image's context must hold one.
            pub const fn reads_dockerfile(self) -> bool {
                match self {
                    $(Builder::$variant => $dockerfile,)+
                }
            }
        }
    };
}

// One row per builder: adding one here and one `ImageBuilder` in the standard library is all.
builders! {
    /// `auto`: resolved image by image before anything is keyed (the built-in `oci` builder for a
    /// Dockerfile without `RUN`, buildah for one with it).
    Auto = "auto", dockerfile: true;
    /// `oci`: hephy's own builder, no external tool, Dockerfiles without `RUN`.
    Oci = "oci", dockerfile: true;
    /// `buildah`: daemonless, full Dockerfile support.
    Buildah = "buildah", dockerfile: true;
    /// `kaniko`: kaniko's executor.
    Kaniko = "kaniko", dockerfile: true;
    /// `buildkit`: BuildKit through `buildctl`.
    Buildkit = "buildkit", dockerfile: true;
    /// `buildx`: `docker buildx build`.
    Buildx = "buildx", dockerfile: true;
    /// `ko`: Go applications, no Dockerfile.
    Ko = "ko", dockerfile: false;
    /// `spin`: WebAssembly applications, no Dockerfile.
    Spin = "spin", dockerfile: false;
}

impl Builder {
    /// The builder called `name` in a graph file.
    pub fn from_name(name: &str) -> Option<Builder> {
        Builder::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl std::fmt::Display for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The names of the builders this hephy knows ([`Builder::ALL`]'s).
pub const BUILDERS: &[&str] = &{
    let mut names = [""; Builder::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Builder::ALL[i].name();
        i += 1;
    }
    names
};

/// The builder used when a graph names none: `auto`.
pub const DEFAULT_BUILDER: Builder = Builder::Auto;

/// A container image, built once per platform (and per target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Its name, unique among images and tasks.
    pub name: Spanned<String>,
    /// Where its build context comes from.
    pub source: ImageSource,
    /// The Dockerfile, relative to the context folder (`Dockerfile` unless given).
    pub dockerfile: String,
    /// The tool that builds it.
    pub builder: Builder,
    /// Build stages to build, each its own image; empty builds the Dockerfile's last stage.
    pub targets: Vec<String>,
    /// Build args, sorted by name.
    pub args: BTreeMap<String, String>,
    /// The platforms it is built for, sorted.
    pub platforms: Vec<Platform>,
    /// Extra tags for the finished (multi-platform) image.
    pub tags: Vec<String>,
    /// What must be built first.
    pub deps: Vec<Dependency>,
    /// How long one of its nodes may run before it is stopped and fails (its own `timeout`, else
    /// the graph's; none: no limit).
    pub timeout: Option<std::time::Duration>,
    /// The secrets it uses, by name.
    pub secrets: Vec<String>,
    /// How the `ko` builder builds it (`ko` / `ko-env`); `None`: ko's defaults.
    pub ko: Option<KoSettings>,
    /// How the built-in builder compresses its layers (`gzip` unless given).
    pub compression: Compression,
    /// Its labels, annotations and repository.
    pub publish: Publish,
    /// Its external named build contexts (`build-context "NAME" …`), sorted by name.
    pub build_contexts: Vec<BuildContext>,
    /// The plain keys written (rows of `image_keys!` lowered `Plain`): each key and its
    /// value as written, unchecked; every one is part of the build key of its builds.
    pub plain: BTreeMap<&'static str, String>,
}

impl Image {
    /// An image called `name` that sets nothing yet: each field its default, as the analyzer
    /// starts it before lowering its keys (whose functions set their fields, written or not).
    pub(crate) fn unset(name: Spanned<String>) -> Image {
        Image {
            name,
            source: ImageSource::Context { dir: ".".to_owned() },
            dockerfile: "Dockerfile".to_owned(),
            builder: DEFAULT_BUILDER,
            targets: Vec::new(),
            args: BTreeMap::new(),
            platforms: Vec::new(),
            tags: Vec::new(),
            deps: Vec::new(),
            timeout: None,
            secrets: Vec::new(),
            ko: None,
            compression: Compression::default(),
            publish: Publish::default(),
            build_contexts: Vec::new(),
            plain: BTreeMap::new(),
        }
    }

    /// Its external named build context called `name`, if it has one.
    pub fn build_context(&self, name: &str) -> Option<&BuildContext> {
        self.build_contexts.iter().find(|c| c.name.value == name)
    }
}

/// An external named build context of an image: what `FROM NAME` and `COPY --from=NAME` of its
/// Dockerfile read, given to the builder under `NAME` (BuildKit's `--build-context NAME=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// The name the Dockerfile uses.
    pub name: Spanned<String>,
    /// Where its content comes from.
    pub source: ContextSource,
}

/// Where an external named build context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A registry image (`image="ubuntu:noble"`), pinned by digest at plan time.
    Image {
        /// The reference as written.
        reference: String,
    },
    /// A folder, relative to the graph's folder, `/`-separated and inside it.
    Path(PathBuf),
    /// A git repository at a ref, resolved to a commit at plan time.
    Git {
        /// The repository URL.
        url: String,
        /// A branch, tag or commit (`None`: its `HEAD`).
        reference: Option<String>,
        /// The folder inside the repository (`None`: its root).
        dir: Option<String>,
    },
    /// An OCI image layout folder (relative to the graph's folder) and the tag or digest of the
    /// image in it.
    OciLayout {
        /// The layout folder.
        path: PathBuf,
        /// A tag (`org.opencontainers.image.ref.name`) or a `sha256:` digest.
        reference: String,
    },
}

impl ContextSource {
    /// The key that names this kind in a graph file (`image`, `path`, `git`, `oci-layout`).
    pub fn kind(&self) -> &'static str {
        match self {
            ContextSource::Image { .. } => "image",
            ContextSource::Path(_) => "path",
            ContextSource::Git { .. } => "git",
            ContextSource::OciLayout { .. } => "oci-layout",
        }
    }
}

/// How an image is published beyond its builds: the graph's `labels` and `annotations` with the
/// image's over them (values are templates, rendered when it is built), and its repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    /// Labels of its config, by name.
    pub labels: BTreeMap<String, String>,
    /// Annotations of its manifests and its index, by name.
    pub annotations: BTreeMap<String, String>,
    /// A repository template that replaces the naming's `repository` for this image.
    pub repository: Option<String>,
    /// The mirrors this image is pushed to, replacing the graph's (`None`: the graph's).
    pub mirrors: Option<Vec<String>>,
    /// How its pushed index and platform manifests are signed (`sign key=…`), if they are.
    pub sign: Option<Signing>,
    /// Whether each platform image gets an SPDX SBOM attestation (`sbom`; default off).
    pub sbom: bool,
    /// Whether each platform image gets a SLSA provenance attestation (`provenance`; default:
    /// on when the graph has a registry).
    pub provenance: bool,
}

/// `sign key="cosign.key"`: the key that signs an image's pushed manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signing {
    /// cosign's encrypted private key file (`ENCRYPTED SIGSTORE PRIVATE KEY`), the graph's
    /// folder joined to the path written.
    pub key: PathBuf,
    /// The path as written in the graph file (for messages).
    pub written: String,
}

impl Publish {
    /// Whether the image's index carries attestation manifests (an SBOM or provenance).
    pub fn attests(&self) -> bool {
        self.sbom || self.provenance
    }
}

impl Model {
    /// The graph as if it named no registry and no mirror (`hephy run --no-push`): its images
    /// are built into the state folder's image layout only, nothing is pushed and no registry
    /// is asked for images built elsewhere.
    pub fn without_registries(&mut self) {
        self.registry = None;
        self.mirrors.clear();
        for image in &mut self.images {
            image.publish.mirrors = None;
        }
    }

    /// The mirrors `image` is pushed to besides the registry: its own, else the graph's.
    pub fn mirrors_of<'m>(&'m self, image: &'m Image) -> &'m [String] {
        image.publish.mirrors.as_deref().unwrap_or(&self.mirrors)
    }
}

/// What the `ko` builder is told beyond the context: the Go package, the base image, the
/// environment of `go build` and its `-ldflags` (written into a `.ko.yaml` of hephy's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KoSettings {
    /// The Go package to build (`./cmd/app`, relative to the context, or a full import path).
    pub import_path: Option<String>,
    /// The base image (ko's `defaultBaseImage`).
    pub base_image: Option<String>,
    /// `-ldflags` of `go build`, as written (`-s -w -X main.version=1.0`).
    pub ldflags: Option<String>,
    /// Environment variables of `go build` (`CGO_ENABLED=0`), sorted by name.
    pub env: BTreeMap<String, String>,
}

/// The node of an image whose build key [`Image::key_settings`] gives settings for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageNode {
    /// A build: one platform (and one target) of the image.
    Build,
    /// The index (the multi-platform manifest) of the image's builds.
    Index,
}

/// How the built-in `oci` builder compresses the layers it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// `tar+gzip`, readable by every tool.
    #[default]
    Gzip,
    /// `tar+zstd`: smaller and faster to unpack; needs containerd 1.5+ / Docker 23+ / podman 3+.
    Zstd,
}

impl Compression {
    /// The names the graph file uses.
    pub const NAMES: &[&str] = &["gzip", "zstd"];

    /// Its name in the graph file.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Where an image's build context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A folder of the repository, relative to the graph's folder, `/`-separated.
    Context {
        /// The folder (`.` for the graph's own folder).
        dir: String,
    },
    /// A folder of an upstream git repository at a ref.
    Git {
        /// The repository URL.
        url: String,
        /// A branch, tag or commit (`HEAD` when not given).
        reference: String,
        /// The folder inside the repository (`.` for its root).
        dir: String,
    },
}

/// A task: a command run with its inputs, once (or once per platform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its name, unique among images and tasks.
    pub name: Spanned<String>,
    /// The command as argv; never passed through a shell.
    pub run: Vec<String>,
    /// Globs of input files, relative to the graph's folder.
    pub inputs: Vec<String>,
    /// Globs of files the command writes, relative to the graph's folder.
    pub outputs: Vec<String>,
    /// Environment variables, sorted by name.
    pub env: BTreeMap<String, String>,
    /// Platforms to run on; empty runs it once, on no particular platform.
    pub platforms: Vec<Platform>,
    /// What must run first.
    pub deps: Vec<Dependency>,
    /// How long one of its nodes may run before it is stopped and fails (its own `timeout`, else
    /// the graph's; none: no limit).
    pub timeout: Option<std::time::Duration>,
    /// The secrets it uses, by name.
    pub secrets: Vec<String>,
}

/// An edge of the graph as written: this definition needs `name` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The image or task depended on.
    pub name: Spanned<String>,
    /// Its position among all definitions ([`Model::position`]), resolved by the analyzer.
    pub position: usize,
    /// Ordering only, or an image reference passed as a build arg.
    pub kind: DependencyKind,
}

/// What a dependency carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyKind {
    /// `after NAME`: run after it, nothing passed.
    After,
    /// `from NAME arg=ARG` and/or `context=CTX`: the dependency's image reference for the same
    /// platform is passed as build arg `arg` and/or named build context `context`.
    From {
        /// The build arg that receives the reference (`None`: only a named context).
        arg: Option<String>,
        /// Which target of the dependency, when it has several.
        target: Option<String>,
        /// For Dockerfiles that say `FROM ${REGISTRY}:${TAG}`: this arg receives the part before
        /// the last `:` of the pinned reference (`registry/curl@sha256`) and `arg` the part after
        /// it (the digest's hex), so the two rejoin into `registry/curl@sha256:…`.
        registry_arg: Option<String>,
        /// `context="NAME"`: the dependency's image is also given to the builder as the named
        /// build context `NAME`, so `FROM NAME` / `COPY --from=NAME` resolve to it by digest.
        context: Option<String>,
        /// Which of the dependency's platform builds is used.
        platform: FromPlatform,
    },
}

/// Which platform build of a `from` dependency a platform build of its dependent uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FromPlatform {
    /// The same platform as the dependent's build (the default).
    #[default]
    Same,
    /// `platform="build"`: the platform of the machine that runs the dependent's build (for
    /// `FROM --platform=$BUILDPLATFORM`: cross-compilers run natively).
    Build,
}

/// A named set of definitions to rebuild together, e.g. weekly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Its name.
    pub name: Spanned<String>,
    /// The images and tasks it rebuilds (their dependents follow).
    pub rebuild: Vec<Spanned<String>>,
    /// Re-resolve upstream refs and base image tags, and rebuild what moved.
    pub refresh: bool,
}

/// A named selection of images, tasks and other groups, planned and run together with
/// `--group` (what `docker buildx bake GROUP` builds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its name.
    pub name: Spanned<String>,
    /// The images, tasks and groups it names, as written.
    pub members: Vec<Spanned<String>>,
}

/// An image or a task, looked up by name.
#[derive(Debug, Clone, Copy)]
pub enum Definition<'m> {
    /// An image.
    Image(&'m Image),
    /// A task.
    Task(&'m Task),
}

impl<'m> Definition<'m> {
    /// The platforms it is built or run for (empty: a platform-free task).
    pub fn platforms(&self) -> &'m [Platform] {
        match self {
            Definition::Image(i) => &i.platforms,
            Definition::Task(t) => &t.platforms,
        }
    }

    /// Its dependencies.
    pub fn deps(&self) -> &'m [Dependency] {
        match self {
            Definition::Image(i) => &i.deps,
            Definition::Task(t) => &t.deps,
        }
    }
}

impl Model {
    /// The image or task called `name`.
    pub fn definition(&self, name: &str) -> Option<Definition<'_>> {
        match self.index.get(name)? {
            DefinitionIndex::Image(i) => self.images.get(*i).map(Definition::Image),
            DefinitionIndex::Task(i) => self.tasks.get(*i).map(Definition::Task),
        }
    }

    /// The image or task at `position` among all definitions (see [`Model::position`]).
    pub fn definition_at(&self, position: usize) -> Option<Definition<'_>> {
        match position.checked_sub(self.images.len()) {
            None => self.images.get(position).map(Definition::Image),
            Some(task) => self.tasks.get(task).map(Definition::Task),
        }
    }

    /// The position of the image or task called `name` among all definitions: images first,
    /// in file order, then tasks.
    pub fn position(&self, name: &str) -> Option<usize> {
        match self.index.get(name)? {
            DefinitionIndex::Image(i) => Some(*i),
            DefinitionIndex::Task(i) => Some(self.images.len() + i),
        }
    }

    /// The schedule called `name`.
    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| *s.name == name)
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| *g.name == name)
    }

    /// The images and tasks the group called `name` names, through its nested groups, each
    /// once; `None` if there is no such group.
    pub fn group_members(&self, name: &str) -> Option<Vec<&str>> {
        let groups: HashMap<&str, &Group> = self.groups.iter().rev().map(|g| (g.name.as_str(), g)).collect();
        let mut seen_groups: HashSet<&str> = HashSet::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out: Vec<&str> = Vec::new();
        let mut stack: Vec<&str> = vec![groups.get(name)?.name.as_str()];
        while let Some(group) = stack.pop() {
            if !seen_groups.insert(group) {
                continue;
            }
            let Some(group) = groups.get(group) else { continue };
            // Reversed onto the stack, so members are visited in the order written.
            for member in group.members.iter().rev() {
                if self.definition(member).is_some() {
                    if seen.insert(member.as_str()) {
                        out.push(member.as_str());
                    }
                } else {
                    stack.push(member.as_str());
                }
            }
        }
        Some(out)
    }

    /// The graph file's path.
    pub fn path(&self) -> &Path {
        self.source.path()
    }
}
