//! The syntax-independent draft of a graph file: what was written, with spans, before any
//! meaning is checked.
//!
//! Both front-ends ([`crate::kdl`], [`crate::yaml`]) produce a [`Document`]; the analyzer
//! ([`crate::analyze`]) is the only consumer. Only shape errors (unknown keys, wrong types) are
//! reported before this point.

use miette::SourceSpan;
use serde::{Deserialize, Serialize};

use crate::source::{Spanned, Syntax};

pub(crate) type Text = Spanned<String>;

/// Everything a graph file declares, in the order written, with spans: the output of the
/// syntax front-ends and the input of the analyzer.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct SecretDraft {
    pub(crate) name: Text,
    pub(crate) env: Option<Text>,
    pub(crate) file: Option<Text>,
}

/// `naming "preset" repository=… platform=… manifest=… tag=…`
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NamingDraft {
    pub(crate) preset: Option<Text>,
    pub(crate) repository: Option<Text>,
    pub(crate) platform: Option<Text>,
    pub(crate) manifest: Option<Text>,
    pub(crate) tag: Option<Text>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SupplyDraft {
    pub(crate) sign: Option<SignDraft>,
    pub(crate) sbom: Option<Spanned<bool>>,
    pub(crate) provenance: Option<Spanned<bool>>,
}

/// `sign key="cosign.key"`: the signing key file, relative to the graph file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SignDraft {
    pub(crate) key: Option<Text>,
    pub(crate) span: SourceSpan,
}

/// A matrix as written: its keys with their values, and the span of the whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MatrixDraft {
    pub(crate) axes: Vec<(Text, Vec<Text>)>,
    pub(crate) span: SourceSpan,
}

/// The `ko` builder's settings of an image, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KoDraft {
    pub(crate) import_path: Option<Text>,
    pub(crate) base_image: Option<Text>,
    pub(crate) ldflags: Option<Text>,
    pub(crate) span: SourceSpan,
}

/// Where a printer writes a simple image key: before the keys each builder reads its own way
/// (`ko`, `ko-env`, `args`, `platforms`), or after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Head,
    Tail,
}

/// The value of a simple image key, as written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Simple<'a> {
    Text(&'a Option<Text>),
    List(&'a [Text]),
}

/// How the analyzer lowers a one-text image key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lowered {
    /// By its own code in [`crate::analyze`], to its own field of [`crate::Image`].
    Own,
    /// As written, into [`crate::Image::plain`], which the engine hashes whole: such a key
    /// is its row here, its row in [`crate::schema`] (and SPEC.md), and the builder that reads
    /// it.
    Plain,
}

/// Declares the image keys that hold one text or a list of texts, as rows
/// `field = "key" [PLACE POSITION (yaml POSITION)?, LOWERED (, set POSITION)?]` (LOWERED, a
/// [`Lowered`], for one-text keys only): the walks over an
/// image's settings (expansion's visitor, its merge of templates, its count of strings,
/// `hephy show`'s fields, `--set`) take them from here, in the rows' order, instead of naming
/// each field. Both printers write them from here too ([`ImageDraft::printed`]): at their
/// [`Place`], by position (`yaml` gives YAML's where it differs from KDL's). `set` makes the
/// key a field of `--set image.NAME.FIELD=VALUE`, at that position in its list
/// ([`crate::expand::SETTABLE`]).
macro_rules! simple_image_keys {
    (
        texts: $($text:ident = $text_key:literal [$text_place:ident $text_at:literal $(yaml $text_yaml:literal)?, $text_lowered:ident $(, set $text_set:literal)?]),+ ;
        lists: $($list:ident = $list_key:literal [$list_place:ident $list_at:literal $(yaml $list_yaml:literal)? $(, set $list_set:literal)?]),+ $(;)?
    ) => {
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

            /// The one-text keys marked `plain`, in table order: each key and its value, if
            /// written. The analyzer lowers them as they are ([`crate::Image::plain`]) and the
            /// engine hashes each into the build key of the image's builds.
            pub(crate) fn plain_texts(&self) -> impl Iterator<Item = (&'static str, &Text)> {
                [$((Lowered::$text_lowered, $text_key, &self.$text)),+]
                    .into_iter()
                    .filter(|(lowered, _, _)| *lowered == Lowered::Plain)
                    .filter_map(|(_, key, value)| Some((key, value.as_ref()?)))
            }

            /// The simple keys a printer of `syntax` writes at `place`, in its order: each key
            /// and its value as written (absent or empty ones too: the printer skips them).
            pub(crate) fn printed(&self, syntax: Syntax, place: Place) -> Vec<(&'static str, Simple<'_>)> {
                let yaml = syntax == Syntax::Yaml;
                let mut rows: Vec<(Place, u8, &'static str, Simple<'_>)> = vec![
                    $((
                        Place::$text_place,
                        if yaml { [$($text_yaml,)? $text_at][0] } else { $text_at },
                        $text_key,
                        Simple::Text(&self.$text),
                    ),)+
                    $((
                        Place::$list_place,
                        if yaml { [$($list_yaml,)? $list_at][0] } else { $list_at },
                        $list_key,
                        Simple::List(&self.$list),
                    ),)+
                ];
                rows.retain(|row| row.0 == place);
                rows.sort_by_key(|row| row.1);
                rows.into_iter().map(|(_, _, key, value)| (key, value)).collect()
            }
        }

        /// The simple keys `--set` may set, with their positions in its list of fields.
        pub(crate) const SETTABLE_SIMPLE: &[(&str, usize)] = &[
            $($(($text_key, $text_set),)?)+
            $($(($list_key, $list_set),)?)+
        ];
    };
}

simple_image_keys! {
    texts:
        context = "context" [Head 3, Own, set 0],
        git = "git" [Head 1, Own, set 2],
        git_ref = "ref" [Head 2, Own, set 3],
        dockerfile = "dockerfile" [Head 4, Own, set 1],
        builder = "builder" [Head 0, Own, set 4],
        timeout = "timeout" [Head 5, Own, set 5],
        compression = "compression" [Head 6, Own, set 6],
        repository = "repository" [Tail 2 yaml 3, Own];
    lists:
        targets = "targets" [Head 7, set 8],
        tags = "tags" [Tail 0, set 10],
        secrets = "secrets" [Tail 1, set 11],
        mirrors = "mirrors" [Tail 3 yaml 2];
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleDraft {
    pub(crate) name: Text,
    pub(crate) rebuild: Vec<Text>,
    pub(crate) refresh: bool,
}

/// `group "NAME" { members "a" "b" }` / `groups: { NAME: [a, b] }`
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupDraft {
    pub(crate) name: Text,
    pub(crate) members: Vec<Text>,
}

/// `from NAME arg=ARG [target=T]` or `after NAME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DependencyDraft {
    pub(crate) name: Text,
    pub(crate) from: Option<FromDraft>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
