//! The syntax-independent draft of a graph file: what was written, with spans, before any
//! meaning is checked.
//!
//! Both front-ends ([`crate::kdl`], [`crate::yaml`]) produce a [`Document`]; the analyzer
//! ([`crate::analyze`]) is the only consumer. Only shape errors (unknown keys, wrong types) are
//! reported before this point.

use miette::SourceSpan;

use crate::source::Spanned;

pub(crate) type Text = Spanned<String>;

/// Everything a graph file declares, in the order written, with spans: the output of the
/// syntax front-ends and the input of the analyzer.
#[derive(Debug, Default)]
pub struct Document {
    pub(crate) registry: Option<Text>,
    pub(crate) naming: Option<NamingDraft>,
    pub(crate) builder: Option<Text>,
    pub(crate) timeout: Option<Text>,
    pub(crate) platforms: Option<Vec<Text>>,
    pub(crate) executors: Vec<ExecutorDraft>,
    pub(crate) images: Vec<ImageDraft>,
    pub(crate) tasks: Vec<TaskDraft>,
    pub(crate) schedules: Vec<ScheduleDraft>,
    pub(crate) groups: Vec<GroupDraft>,
    pub(crate) secrets: Vec<SecretDraft>,
    /// `mirrors`, `labels`, `annotations` of the graph (every image's).
    pub(crate) mirrors: Vec<Text>,
    pub(crate) labels: Vec<(Text, Text)>,
    pub(crate) annotations: Vec<(Text, Text)>,
    /// `sign key="…"`, `sbom`, `provenance` of the graph (every image's; an image's own win).
    pub(crate) supply: SupplyDraft,
    /// `variables NAME="default"…` / `variables: {NAME: default}` (expanded by [`crate::expand`]).
    pub(crate) variables: Vec<(Text, Text)>,
    /// `template "NAME" { … }` / `templates: {NAME: {…}}`: image settings images inherit.
    pub(crate) templates: Vec<ImageDraft>,
}

/// `secret "NAME" env="VAR"` or `secret "NAME" file="path"`
#[derive(Debug)]
pub struct SecretDraft {
    pub(crate) name: Text,
    pub(crate) env: Option<Text>,
    pub(crate) file: Option<Text>,
}

/// `naming "preset" repository=… platform=… manifest=… tag=…`
#[derive(Debug, Default)]
pub(crate) struct NamingDraft {
    pub(crate) preset: Option<Text>,
    pub(crate) repository: Option<Text>,
    pub(crate) platform: Option<Text>,
    pub(crate) manifest: Option<Text>,
    pub(crate) tag: Option<Text>,
}

#[derive(Debug)]
pub(crate) struct ExecutorDraft {
    pub(crate) name: Text,
    pub(crate) platform: Option<Text>,
    pub(crate) jobs: Option<Spanned<i128>>,
    pub(crate) gitlab_tags: Option<Text>,
    pub(crate) runs_on: Option<Text>,
    pub(crate) ssh: Option<Text>,
    pub(crate) buildkit: Option<Text>,
    pub(crate) kubernetes: Option<Text>,
}

impl ExecutorDraft {
    pub(crate) fn new(name: Text) -> ExecutorDraft {
        ExecutorDraft {
            name,
            platform: None,
            jobs: None,
            gitlab_tags: None,
            runs_on: None,
            ssh: None,
            buildkit: None,
            kubernetes: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImageDraft {
    pub(crate) name: Text,
    pub(crate) context: Option<Text>,
    pub(crate) git: Option<Text>,
    pub(crate) git_ref: Option<Text>,
    pub(crate) dockerfile: Option<Text>,
    pub(crate) builder: Option<Text>,
    pub(crate) timeout: Option<Text>,
    pub(crate) compression: Option<Text>,
    pub(crate) targets: Vec<Text>,
    pub(crate) args: Vec<(Text, Text)>,
    pub(crate) platforms: Option<Vec<Text>>,
    pub(crate) tags: Vec<Text>,
    pub(crate) secrets: Vec<Text>,
    pub(crate) deps: Vec<DependencyDraft>,
    /// `ko import-path=… base-image=… ldflags=…` (KDL) / `ko: {…}` (YAML).
    pub(crate) ko: Option<KoDraft>,
    /// `ko-env NAME="VALUE"…` / `ko-env: {NAME: VALUE}`.
    pub(crate) ko_env: Vec<(Text, Text)>,
    /// `labels`, `annotations`, `repository` of the image.
    pub(crate) labels: Vec<(Text, Text)>,
    pub(crate) annotations: Vec<(Text, Text)>,
    pub(crate) repository: Option<Text>,
    pub(crate) mirrors: Vec<Text>,
    /// `sign key="…"`, `sbom`, `provenance` of the image.
    pub(crate) supply: SupplyDraft,
    /// `inherits "a" "b"` / `inherits: [a, b]`: templates, in order.
    pub(crate) inherits: Vec<Text>,
    /// `matrix { KEY "v1" "v2" }` / `matrix: {KEY: [v1, v2]}`.
    pub(crate) matrix: Option<MatrixDraft>,
    /// `build-context "NAME" image=…` / `build-contexts: {NAME: {image: …}}`: external named
    /// contexts, in the order written.
    pub(crate) build_contexts: Vec<BuildContextDraft>,
}

/// `build-context "NAME" image="…" | path="…" | git="…" [ref="…"] [dir="…"] | oci-layout="…" ref="…"`
#[derive(Debug, Clone)]
pub(crate) struct BuildContextDraft {
    pub(crate) name: Text,
    pub(crate) image: Option<Text>,
    pub(crate) path: Option<Text>,
    pub(crate) git: Option<Text>,
    pub(crate) oci_layout: Option<Text>,
    /// `ref`: of `git` (a branch, tag or commit) or of `oci-layout` (a tag or a digest).
    pub(crate) reference: Option<Text>,
    /// `dir`: the folder inside a `git` repository.
    pub(crate) dir: Option<Text>,
    /// The whole entry, for "which source" errors.
    pub(crate) span: SourceSpan,
}

impl BuildContextDraft {
    pub(crate) fn new(name: Text, span: SourceSpan) -> BuildContextDraft {
        BuildContextDraft {
            name,
            image: None,
            path: None,
            git: None,
            oci_layout: None,
            reference: None,
            dir: None,
            span,
        }
    }
}

/// The supply-chain settings of the graph or of an image, as written: `sign key="cosign.key"`
/// (YAML `sign: {key: cosign.key}`), `sbom #true`, `provenance #false`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SupplyDraft {
    pub(crate) sign: Option<SignDraft>,
    pub(crate) sbom: Option<Spanned<bool>>,
    pub(crate) provenance: Option<Spanned<bool>>,
}

/// `sign key="cosign.key"`: the signing key file, relative to the graph file.
#[derive(Debug, Clone)]
pub(crate) struct SignDraft {
    pub(crate) key: Option<Text>,
    pub(crate) span: SourceSpan,
}

/// A matrix as written: its keys with their values, and the span of the whole.
#[derive(Debug, Clone)]
pub(crate) struct MatrixDraft {
    pub(crate) axes: Vec<(Text, Vec<Text>)>,
    pub(crate) span: SourceSpan,
}

/// The `ko` builder's settings of an image, as written.
#[derive(Debug, Clone)]
pub(crate) struct KoDraft {
    pub(crate) import_path: Option<Text>,
    pub(crate) base_image: Option<Text>,
    pub(crate) ldflags: Option<Text>,
    pub(crate) span: SourceSpan,
}

/// Declares the image keys that hold one text or a list of texts, as rows (field, key): the
/// walks over an image's settings (expansion's visitor, its merge of templates, its count of
/// strings, `hephy show`'s fields, `--set`) take them from here instead of naming each field.
macro_rules! simple_image_keys {
    (texts: $($text:ident = $text_key:literal),+ ; lists: $($list:ident = $list_key:literal),+ $(;)?) => {
        impl ImageDraft {
            /// The one-text keys, in table order: each key and its value as written.
            pub(crate) fn texts(&self) -> [(&'static str, &Option<Text>); [$($text_key),+].len()] {
                [$(($text_key, &self.$text)),+]
            }

            /// [`ImageDraft::texts`], to change.
            pub(crate) fn texts_mut(&mut self) -> [(&'static str, &mut Option<Text>); [$($text_key),+].len()] {
                [$(($text_key, &mut self.$text)),+]
            }

            /// The list keys, in table order: each key and its values as written.
            pub(crate) fn lists(&self) -> [(&'static str, &Vec<Text>); [$($list_key),+].len()] {
                [$(($list_key, &self.$list)),+]
            }

            /// [`ImageDraft::lists`], to change.
            pub(crate) fn lists_mut(&mut self) -> [(&'static str, &mut Vec<Text>); [$($list_key),+].len()] {
                [$(($list_key, &mut self.$list)),+]
            }
        }
    };
}

simple_image_keys! {
    texts: context = "context", git = "git", git_ref = "ref", dockerfile = "dockerfile",
        builder = "builder", timeout = "timeout", compression = "compression", repository = "repository";
    lists: targets = "targets", tags = "tags", secrets = "secrets", mirrors = "mirrors";
}

impl ImageDraft {
    pub(crate) fn new(name: Text) -> ImageDraft {
        ImageDraft {
            name,
            context: None,
            git: None,
            git_ref: None,
            dockerfile: None,
            builder: None,
            timeout: None,
            compression: None,
            secrets: Vec::new(),
            targets: Vec::new(),
            args: Vec::new(),
            platforms: None,
            tags: Vec::new(),
            deps: Vec::new(),
            ko: None,
            ko_env: Vec::new(),
            labels: Vec::new(),
            annotations: Vec::new(),
            repository: None,
            mirrors: Vec::new(),
            supply: SupplyDraft::default(),
            inherits: Vec::new(),
            matrix: None,
            build_contexts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TaskDraft {
    pub(crate) name: Text,
    pub(crate) run: Option<Spanned<Vec<Text>>>,
    pub(crate) inputs: Vec<Text>,
    pub(crate) outputs: Vec<Text>,
    pub(crate) env: Vec<(Text, Text)>,
    pub(crate) platforms: Option<Vec<Text>>,
    pub(crate) deps: Vec<DependencyDraft>,
    pub(crate) timeout: Option<Text>,
    pub(crate) secrets: Vec<Text>,
    /// `matrix { … }` / `matrix: {…}`, as on images.
    pub(crate) matrix: Option<MatrixDraft>,
}

impl TaskDraft {
    pub(crate) fn new(name: Text) -> TaskDraft {
        TaskDraft {
            name,
            run: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            env: Vec::new(),
            platforms: None,
            deps: Vec::new(),
            timeout: None,
            secrets: Vec::new(),
            matrix: None,
        }
    }
}

#[derive(Debug)]
pub struct ScheduleDraft {
    pub(crate) name: Text,
    pub(crate) rebuild: Vec<Text>,
    pub(crate) refresh: bool,
}

/// `group "NAME" { members "a" "b" }` / `groups: { NAME: [a, b] }`
#[derive(Debug)]
pub struct GroupDraft {
    pub(crate) name: Text,
    pub(crate) members: Vec<Text>,
}

/// `from NAME arg=ARG [target=T]` or `after NAME`.
#[derive(Debug, Clone)]
pub(crate) struct DependencyDraft {
    pub(crate) name: Text,
    pub(crate) from: Option<FromDraft>,
}

#[derive(Debug, Clone)]
pub struct FromDraft {
    /// The build arg; `None` when it was not written (an error the analyzer reports).
    pub(crate) arg: Option<Text>,
    pub(crate) target: Option<Text>,
    /// A second build arg that receives the reference's repository part (`registry-arg`).
    pub(crate) registry_arg: Option<Text>,
    /// `context="NAME"`: the named build context that receives the dependency.
    pub(crate) context: Option<Text>,
    /// `platform="build"`: the dependency's build for the executor's own platform.
    pub(crate) platform: Option<Text>,
    /// The whole `from` entry, for "missing arg" errors.
    pub(crate) span: SourceSpan,
}
