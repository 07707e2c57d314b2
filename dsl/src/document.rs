//! The syntax-independent draft of a graph file: what was written, with spans, before any
//! meaning is checked.
//!
//! Both front-ends ([`crate::kdl`], [`crate::yaml`]) produce a [`Document`]; the analyzer
//! ([`crate::analyze`]) is the only consumer. Only shape errors (unknown keys, wrong types) are
//! reported before this point.

use miette::SourceSpan;
use serde::{Deserialize, Serialize};

use crate::analyze::image_key_rows;
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

/// Where a printer writes an image key of the table, in this order: before the keys each
/// builder reads its own way (`Head`), among them (`Builder`: after `ko`, before `platforms`),
/// after them (`Tail`), and after those (`Last`: before `sign`, `sbom`, `provenance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Head,
    Builder,
    Tail,
    Last,
}

/// The value of an image key of the table, as written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Simple<'a> {
    Text(&'a Option<Text>),
    List(&'a [Text]),
    Pairs(&'a [(Text, Text)]),
}

/// How the analyzer lowers an image key of `image_key_rows!` (its `lower` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lowering {
    /// `Own(FUNCTION)`: by its own function of the analyzer (`analyze/images.rs`), called
    /// whether the key is written or not, into its own field of [`crate::Image`].
    Own,
    /// `With("KEY")`: by the function of the row of `KEY` (which comes first and is `Own`),
    /// together with that key: `ref` and `git` with `context`, into one source.
    With(&'static str),
    /// `Plain` (one-text keys only, checked when compiling): as written, into
    /// [`crate::Image::plain`].
    Plain,
}

/// How an image key of `image_key_rows!` enters the build key (its `hash` column): who puts it
/// there. The same column makes the key's row of the language's table
/// ([`crate::schema::KEYS`]): `Unhashed("why")` its `Hash::Unhashed("why")`, any other `Hashed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyed {
    /// `Put(FUNCTION)`: its function (`analyze/images.rs`) puts settings made from the lowered
    /// [`crate::Image`] into the keys of the nodes it shapes ([`crate::Image::key_settings`]).
    Put,
    /// `Written` (for `Plain` keys): its value as written, under its own name, in the key of
    /// each of the image's builds ([`crate::Image::key_settings`] puts it).
    #[allow(dead_code, reason = "the keys of a row marked `Plain` (none today)")]
    Written,
    /// `Identity` (`builder`): the engine puts the builder's identity, which names it.
    Identity,
    /// `Resolved`: the engine puts what it resolves to at plan time (`ref`: the commit; a
    /// secret: its value's fingerprint; `sign`: its key file's fingerprint; an external build
    /// context: its image's digest, its commit, its folder).
    Resolved,
    /// `Nodes`: each value is a node of its own, whose name is in its key (`targets`, `tags`,
    /// `target`).
    Nodes,
    /// `Dependencies`: each value names a node built first, whose key enters this one's; the
    /// engine puts the references it injects (`from`, `after`).
    Dependencies,
    /// `Destination`: where the nodes that push put their results; the engine puts it with
    /// the registry, in the keys of the nodes that push only.
    Destination,
    /// `Unhashed("why")`: in no key, for the reason given.
    Unhashed,
}

/// One row of `image_key_rows!`, for the checks that read the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ImageKeyRow {
    pub(crate) key: &'static str,
    pub(crate) lowering: Lowering,
    pub(crate) keyed: Keyed,
}

/// The value of `lower` in a row, as a [`Lowering`].
macro_rules! lowering {
    (Own($function:ident)) => {
        Lowering::Own
    };
    (With($key:literal)) => {
        Lowering::With($key)
    };
    (Plain) => {
        Lowering::Plain
    };
}

/// The value of `hash` in a row, as a [`Keyed`].
macro_rules! keyed {
    (Put($function:ident)) => {
        Keyed::Put
    };
    (Unhashed($why:literal)) => {
        Keyed::Unhashed
    };
    ($other:ident) => {
        Keyed::$other
    };
}
pub(crate) use keyed;

/// Whether every `With` of `rows` names an `Own` row before it, and every `Plain` row is
/// `Written` and only those (checked when compiling).
const fn rows_are_sound(rows: &[ImageKeyRow]) -> bool {
    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    let mut i = 0;
    while i < rows.len() {
        let plain = matches!(rows[i].lowering, Lowering::Plain);
        if plain != matches!(rows[i].keyed, Keyed::Written) {
            return false;
        }
        if let Lowering::With(by) = rows[i].lowering {
            let mut found = false;
            let mut j = 0;
            while j < i {
                if same(rows[j].key, by) && matches!(rows[j].lowering, Lowering::Own) {
                    found = true;
                }
                j += 1;
            }
            if !found {
                return false;
            }
        }
        i += 1;
    }
    true
}

/// The draft's walks over the rows of `image_key_rows!` (`analyze/images.rs`): [`ImageDraft`]
/// itself (`name`, a field per row, then the fields written where it is invoked, each of which
/// [`ImageDraft::new`] leaves at its `Default`), the table's rows for the checks that read it,
/// and the walks over the draft's keys (the `lower` and `hash` columns are the analyzer's).
macro_rules! image_draft_walks {
    (
        $(#[$meta:meta])*
        pub struct ImageDraft {
            pub(crate) name: Text,
            $($(#[$field_meta:meta])* pub(crate) $field:ident: $field_type:ty,)+
        }
        texts: $($text:ident = $text_key:literal $(kdl $text_kdl:ident)?
            [$text_place:ident $text_at:literal $(yaml $text_yaml:literal)? $(, set $text_set:literal)?, listed $text_listed:literal]
            lower $text_lower:ident $(($text_lower_by:tt))? hash $text_hash:ident $(($text_hash_by:tt))?
            meaning $text_meaning:literal),+ ;
        lists: $($list:ident = $list_key:literal $(kdl $list_kdl:ident)?
            [$list_place:ident $list_at:literal $(yaml $list_yaml:literal)? $(, set $list_set:literal)?, listed $list_listed:literal]
            lower $list_lower:ident $(($list_lower_by:tt))? hash $list_hash:ident $(($list_hash_by:tt))?
            meaning $list_meaning:literal),+ ;
        pairs: $($pair:ident = $pair_key:literal
            [$pair_place:ident $pair_at:literal $(yaml $pair_yaml:literal)?, listed $pair_listed:literal]
            lower $pair_lower:ident $(($pair_lower_by:tt))? hash $pair_hash:ident $(($pair_hash_by:tt))?
            kind $pair_kind:ident meaning $pair_meaning:literal),+ $(;)?
    ) => {
        $(#[$meta])*
        pub struct ImageDraft {
            pub(crate) name: Text,
            $(#[doc = concat!("`", $text_key, "`: ", $text_meaning, ".")] pub(crate) $text: Option<Text>,)+
            $(#[doc = concat!("`", $list_key, "`: ", $list_meaning, ".")] pub(crate) $list: Vec<Text>,)+
            $(#[doc = concat!("`", $pair_key, "`: ", $pair_meaning, ".")] pub(crate) $pair: Vec<(Text, Text)>,)+
            $($(#[$field_meta])* pub(crate) $field: $field_type,)+
        }

        impl ImageDraft {
            pub(crate) fn new(name: Text) -> ImageDraft {
                ImageDraft {
                    name,
                    $($text: None,)+
                    $($list: Vec::new(),)+
                    $($pair: Vec::new(),)+
                    $($field: Default::default(),)+
                }
            }
        }

        /// Every row, texts, lists then pairs, in table order.
        pub(crate) const IMAGE_KEY_ROWS: &[ImageKeyRow] = &[
            $(ImageKeyRow {
                key: $text_key,
                lowering: lowering!($text_lower $(($text_lower_by))?),
                keyed: keyed!($text_hash $(($text_hash_by))?),
            },)+
            $(ImageKeyRow {
                key: $list_key,
                lowering: lowering!($list_lower $(($list_lower_by))?),
                keyed: keyed!($list_hash $(($list_hash_by))?),
            },)+
            $(ImageKeyRow {
                key: $pair_key,
                lowering: lowering!($pair_lower $(($pair_lower_by))?),
                keyed: keyed!($pair_hash $(($pair_hash_by))?),
            },)+
        ];

        const _: () = {
            $(assert!(
                !matches!(lowering!($pair_lower $(($pair_lower_by))?), Lowering::Plain),
                "in `image_key_rows!`, a row of `pairs:` is lowered `Plain`, which only a text may be"
            );)+
        };

        const _: () = assert!(
            rows_are_sound(IMAGE_KEY_ROWS),
            "in `image_key_rows!`, a `With` names no `Own` row before it, or `Plain` and `Written` do not go together"
        );

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

            /// The keys of name/value pairs, in table order: each key and its pairs as written.
            pub(crate) fn pairs(&self) -> [(&'static str, &Vec<(Text, Text)>); [$($pair_key),+].len()] {
                [$(($pair_key, &self.$pair)),+]
            }

            /// [`ImageDraft::pairs`], to change.
            pub(crate) fn pairs_mut(&mut self) -> [(&'static str, &mut Vec<(Text, Text)>); [$($pair_key),+].len()] {
                [$(($pair_key, &mut self.$pair)),+]
            }

            /// The one-text keys lowered `Plain`, in table order: each key and its value, if
            /// written. The analyzer lowers them as they are ([`crate::Image::plain`]) and
            /// [`crate::Image::key_settings`] puts each into the key of the image's builds.
            pub(crate) fn plain_texts(&self) -> impl Iterator<Item = (&'static str, &Text)> {
                [$((lowering!($text_lower $(($text_lower_by))?), $text_key, &self.$text)),+]
                    .into_iter()
                    .filter(|(lowering, _, _)| *lowering == Lowering::Plain)
                    .filter_map(|(_, key, value)| Some((key, value.as_ref()?)))
            }

            /// The table's keys a printer of `syntax` writes at `place`, in its order: each key
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
                    $((
                        Place::$pair_place,
                        if yaml { [$($pair_yaml,)? $pair_at][0] } else { $pair_at },
                        $pair_key,
                        Simple::Pairs(&self.$pair),
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

// The image draft: the fields of the image key table's rows (`image_key_rows!` in
// `analyze/images.rs`) come after `name`, then the fields written here; `ImageDraft::new`
// leaves every field but `name` empty (its `Default`).
image_key_rows!(image_draft_walks
    /// An image as written: its name, the keys of the image key table (`image_key_rows!`: an
    /// `Option<Text>` for a key of one text, a `Vec<Text>` for a list, a `Vec<(Text, Text)>`
    /// for name/value pairs), then the others.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ImageDraft {
        pub(crate) name: Text,
        pub(crate) platforms: Option<Vec<Text>>,
        pub(crate) deps: Vec<DependencyDraft>,
        /// `ko import-path=… base-image=… ldflags=…` (KDL) / `ko: {…}` (YAML).
        pub(crate) ko: Option<KoDraft>,
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
);

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
