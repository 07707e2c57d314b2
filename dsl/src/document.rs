//! The syntax-independent draft of a graph file: what was written, with spans, before any
//! meaning is checked.
//!
//! Both front-ends ([`crate::kdl`], [`crate::yaml`]) produce a [`Document`]; the analyzer
//! ([`crate::analyze`]) is the only consumer. Only shape errors (unknown keys, wrong types) are
//! reported before this point. [`ImageDraft`] is made by the image key table's one walk
//! (`image_keys!`, here), from the table's rows in `analyze/images.rs`.

use miette::SourceSpan;
use serde::{Deserialize, Serialize};

pub use crate::analyze::ImageDraft;
use crate::source::Spanned;

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
    /// What the front-end that read it learnt of its images and tasks ([`Tally`]); `None` for
    /// a document made or changed otherwise, which expansion walks instead.
    pub(crate) tally: Option<Tally>,
}

/// What a front-end learns of the images and tasks it reads, each as soon as it is read (while
/// it is at hand), so that expansion need not walk a large graph again to know it has nothing
/// to expand (`expand.rs`): how many strings they hold, and whether any takes `inherits` or a
/// `matrix`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tally {
    /// The strings of every image and task (as expansion counts them: `count_texts`).
    pub(crate) strings: usize,
    /// Whether an image or a task has `inherits` or a `matrix`.
    pub(crate) expandable: bool,
}

impl Tally {
    /// `image`, an image just read.
    pub(crate) fn image(&mut self, image: &ImageDraft) {
        self.strings = self.strings.saturating_add(image.count_texts());
        self.expandable |= !image.inherits.is_empty() || image.matrix.is_some();
    }

    /// `task`, a task just read.
    pub(crate) fn task(&mut self, task: &TaskDraft) {
        self.strings = self.strings.saturating_add(task.count_texts());
        self.expandable |= task.matrix.is_some();
    }

    /// The tally of `doc`'s images and tasks, walked.
    pub(crate) fn of(doc: &Document) -> Tally {
        let mut tally = Tally::default();
        doc.images.iter().for_each(|i| tally.image(i));
        doc.tasks.iter().for_each(|t| tally.task(t));
        tally
    }
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

/// How the analyzer lowers an image key of the table (`image_keys!` in `analyze/images.rs`,
/// its `lower` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lowering {
    /// `Own(FUNCTION)`: by its own function of the analyzer (`analyze/images.rs`), called
    /// whether the key is written or not, into its own field of [`crate::Image`].
    Own,
    /// `With("KEY")`: by the function of the row of `KEY` (which comes first and is `Own`),
    /// together with that key: `git` and `ref` with `context`, into one source; `ko` with
    /// `ko-env`.
    With(&'static str),
    /// `Plain` (a row of one spelling, of one text: checked when compiling): as written,
    /// into [`crate::Image::plain`].
    Plain,
    /// `Graph`: by the analyzer's passes over the whole graph (`analyze/mod.rs`), after every
    /// image, as it reads the graph's names or settings: the dependencies, the external build
    /// contexts, the supply-chain settings over the graph's.
    Graph,
    /// `Expanded`: expanded away before analysis (`inherits`, `matrix`).
    Expanded,
}

/// How an image key of the table enters the build key (its `hash` column): who puts it there.
/// The same column makes the key's row of the language's table ([`crate::schema::KEYS`]):
/// `Unhashed("why")` its `Hash::Unhashed("why")`, `Expanded` its `Hash::Expanded`, any other
/// `Hashed`.
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
    /// `Expanded`: expanded away before anything is keyed; the settings it makes are keyed by
    /// their own rows.
    Expanded,
}

/// One spelling of a row of the image key table: the image key as the language's table
/// ([`crate::schema::KEYS`]), the checks and `--set` read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ImageKeyRow {
    /// Its YAML spelling.
    pub(crate) key: &'static str,
    /// Its KDL spelling, if KDL has it.
    pub(crate) kdl: Option<&'static str>,
    pub(crate) lowering: Lowering,
    pub(crate) keyed: Keyed,
    pub(crate) kind: crate::schema::Kind,
    pub(crate) meaning: &'static str,
    pub(crate) hash: crate::schema::Hash,
    /// Its position among the image's keys in [`crate::schema::KEYS`].
    pub(crate) listed: usize,
    /// Its position in `--set`'s list of fields, if `--set` sets it.
    pub(crate) set: Option<usize>,
}

/// The value of `lower` in a row, as a [`Lowering`].
macro_rules! lowering {
    (Own($function:ident)) => {
        $crate::document::Lowering::Own
    };
    (With($key:literal)) => {
        $crate::document::Lowering::With($key)
    };
    ($other:ident) => {
        $crate::document::Lowering::$other
    };
}

/// The value of `hash` in a row, as a [`Keyed`].
macro_rules! keyed {
    (Put($function:ident)) => {
        $crate::document::Keyed::Put
    };
    (Unhashed($why:literal)) => {
        $crate::document::Keyed::Unhashed
    };
    ($other:ident) => {
        $crate::document::Keyed::$other
    };
}

/// The value of `hash` in a row, as the language's table's [`crate::schema::Hash`].
macro_rules! hash_of {
    (Unhashed($why:literal)) => {
        $crate::schema::Hash::Unhashed($why)
    };
    (Expanded) => {
        $crate::schema::Hash::Expanded
    };
    ($($other:tt)*) => {
        $crate::schema::Hash::Hashed
    };
}

/// The KDL spelling of a row's key: its YAML spelling, or the one after `kdl` (`None`: KDL
/// writes it otherwise).
macro_rules! kdl_spelling {
    ($key:literal) => {
        Some($key)
    };
    ($key:literal, None) => {
        None
    };
    ($key:literal, $kdl:literal) => {
        Some($kdl)
    };
}

/// Whether `--set` sets a spelling: it gives a `set` position.
macro_rules! settable {
    () => {
        None::<usize>
    };
    ($at:literal) => {
        Some($at)
    };
}

pub(crate) use {hash_of, kdl_spelling, keyed, lowering, settable};

/// Whether every `With` of `rows` names an `Own` row before it, and every `Plain` row is
/// `Written` and only those, and `Expanded` goes with `Expanded` (checked when compiling).
pub(crate) const fn rows_are_sound(rows: &[ImageKeyRow]) -> bool {
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
        if matches!(rows[i].lowering, Lowering::Plain) != matches!(rows[i].keyed, Keyed::Written)
            || matches!(rows[i].lowering, Lowering::Expanded) != matches!(rows[i].keyed, Keyed::Expanded)
        {
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

/// Whether no two of `positions` are the same (checked when compiling).
pub(crate) const fn all_differ(positions: &[u8]) -> bool {
    let mut i = 0;
    while i < positions.len() {
        let mut j = i + 1;
        while j < positions.len() {
            if positions[i] == positions[j] {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

/// The image key table's one walk: from the rows of `image_keys!` (`analyze/images.rs`), where
/// it is invoked, it makes [`ImageDraft`] (`name`, then each row's field, of its shape's
/// value, empty in [`ImageDraft::new`]), `IMAGE_KEY_ROWS` (each spelling, for the language's
/// table, `--set` and the checks), the draft's readers and printers and expansion's walks (each
/// calling the row's [`crate::shape::Shape`], in the rows' order: the printers in their `print`
/// order), the analyzer's lowering (each `Own` function, in the rows' order) and the settings
/// each `Put` function gives the build key ([`crate::Image::key_settings`]).
macro_rules! image_keys {
    (
        $(#[$meta:meta])*
        pub struct ImageDraft;
        $(
            $field:ident by $shape:ident [print $print:literal $(yaml $print_yaml:literal)?]
                lower $lower:tt {
                $(
                    $key:literal $(kdl $kdl:tt)? [$(set $set:literal,)? listed $listed:literal]
                        hash $hash:ident $(($hash_by:tt))? kind $kind:ident $(($kind_of:ident))?
                        meaning $meaning:literal
                ),+ $(,)?
            }
        ),+ $(,)?
    ) => {
        $(#[$meta])*
        pub struct ImageDraft {
            pub(crate) name: Text,
            $(
                #[doc = concat!($("`", $key, "`: ", $meaning, ". "),+)]
                pub(crate) $field: <$shape as Shape>::Value,
            )+
        }

        /// Every spelling of every row, in the rows' order.
        pub(crate) const IMAGE_KEY_ROWS: &[ImageKeyRow] = &[
            $($(ImageKeyRow {
                key: $key,
                kdl: kdl_spelling!($key $(, $kdl)?),
                lowering: lowering! $lower,
                keyed: keyed!($hash $(($hash_by))?),
                kind: Kind::$kind $((Construct::$kind_of))?,
                meaning: $meaning,
                hash: hash_of!($hash $(($hash_by))?),
                listed: $listed,
                set: settable!($($set)?),
            },)+)+
        ];

        // A `Plain` row is one spelling of one text; no two rows print at one place.
        const _: () = {
            $(assert!(
                !matches!(lowering! $lower, Lowering::Plain)
                    || (<$shape as Shape>::ONE_TEXT && [$($key),+].len() == 1),
                "in `image_keys!`, a row lowered `Plain` is not one spelling of one text"
            );)+
            assert!(
                all_differ(&[$($print),+]) && all_differ(&[$([$($print_yaml,)? $print][0]),+]),
                "in `image_keys!`, two rows print at one place"
            );
        };

        const _: () = assert!(
            rows_are_sound(IMAGE_KEY_ROWS),
            "in `image_keys!`, a `With` names no `Own` row before it, or `Plain` and `Written` \
             (or `Expanded` and `Expanded`) do not go together"
        );

        impl ImageDraft {
            pub(crate) fn new(name: Text) -> ImageDraft {
                ImageDraft { name, $($field: Default::default(),)+ }
            }

            /// Reads a KDL child node of an image into the row that spells it; `false` when no
            /// row does.
            pub(crate) fn read_kdl(&mut self, r: &mut KdlReader<'_>, node: &KdlNode) -> bool {
                let name = node.name().value();
                $($(
                    if kdl_spelling!($key $(, $kdl)?) == Some(name) {
                        <$shape as Shape>::read_kdl(r, name, node, &mut self.$field);
                        return true;
                    }
                )+)+
                false
            }

            /// Reads a YAML entry of an image into the row that spells it; `false` when no
            /// row does.
            pub(crate) fn read_yaml(&mut self, r: &mut YamlReader<'_>, key: &Text, body: &YamlValue) -> bool {
                $($(
                    if key.value == $key {
                        <$shape as Shape>::read_yaml(r, key, body, &mut self.$field);
                        return true;
                    }
                )+)+
                false
            }

            /// The lines of its keys in `syntax` (KDL: four spaces in; YAML: at `indent`), each
            /// row's at its `print` position (`yaml`'s in YAML where given).
            pub(crate) fn print_keys(&self, syntax: Syntax, indent: &str, out: &mut String) {
                let yaml = syntax == Syntax::Yaml;
                let mut rows: Vec<(u8, Box<dyn Fn(&mut String) + '_>)> = vec![
                    $((
                        if yaml { [$($print_yaml,)? $print][0] } else { $print },
                        Box::new(move |out: &mut String| {
                            if yaml {
                                <$shape as Shape>::print_yaml(&self.$field, [$($key),+][0], indent, out)
                            } else {
                                let key = [$(kdl_spelling!($key $(, $kdl)?)),+][0].unwrap_or_default();
                                <$shape as Shape>::print_kdl(&self.$field, key, out)
                            }
                        }),
                    ),)+
                ];
                rows.sort_by_key(|row| row.0);
                for (_, print) in rows {
                    print(out);
                }
            }

            /// Each of its strings, its name first, to change.
            pub(crate) fn each_text(&mut self, f: &mut dyn FnMut(&mut Text)) {
                f(&mut self.name);
                $(<$shape as Shape>::each(&mut self.$field, f);)+
            }

            /// How many strings it holds, its name too.
            pub(crate) fn count_texts(&self) -> usize {
                1 $(+ <$shape as Shape>::count(&self.$field))+
            }

            /// Its settings over `base`'s, a template's, each by its row's shape.
            pub(crate) fn merge_over(&mut self, base: ImageDraft) {
                $(<$shape as Shape>::merge(&mut self.$field, base.$field);)+
            }

            /// `hephy show`'s lines of the settings it gives itself, in the rows' order.
            pub(crate) fn shown(&self) -> Shown {
                let mut out = Shown::new();
                $(<$shape as Shape>::show(&self.$field, [$($key),+][0], &mut out);)+
                out
            }

            /// `--set image.NAME.FIELD=text` of a spelling a row marks `set`; `false` for any
            /// other field.
            pub(crate) fn set(&mut self, field: &str, text: &str, at: SourceSpan) -> bool {
                $($(
                    if settable!($($set)?).is_some() && field == $key {
                        <$shape as Shape>::set(&mut self.$field, $key, text, at);
                        return true;
                    }
                )+)+
                false
            }

            /// The field `hephy show` lists the spelling `field` under ([`ImageDraft::shown`]).
            pub(crate) fn shown_field(field: &str) -> &str {
                $({
                    let first = [$($key),+][0];
                    $(
                        if field == $key {
                            return <$shape as Shape>::shown_as($key, first);
                        }
                    )+
                })+
                field
            }

            /// The keys lowered `Plain`, in the rows' order: each key and its value, if
            /// written. The analyzer lowers them as they are ([`crate::Image::plain`]) and
            /// [`crate::Image::key_settings`] puts each into the key of the image's builds.
            pub(crate) fn plain_texts(&self) -> impl Iterator<Item = (&'static str, &Text)> {
                [$((
                    lowering! $lower,
                    [$($key),+][0],
                    <$shape as Shape>::as_text(&self.$field),
                )),+]
                .into_iter()
                .filter(|(lowering, _, _)| *lowering == Lowering::Plain)
                .filter_map(|(_, key, value)| Some((key, value?)))
            }
        }

        impl Analyzer<'_> {
            /// Lowers every key of the table into `image`: each `Own` function in the rows'
            /// order, then the `Plain` keys as written.
            fn lower_image_keys(&mut self, draft: &ImageDraft, defaults: &ImageDefaults<'_>, image: &mut Image) {
                $(lower_row!(self, &draft.$field, draft, defaults, image, $lower);)+
                image.plain = draft.plain_texts().map(|(key, value)| (key, value.value.clone())).collect();
            }
        }

        impl Image {
            /// The settings of the rows that say `Put`, and the plain keys as written in its
            /// builds' keys.
            fn table_key_settings<'a>(&'a self, graph: &Model, node: ImageNode, put: Put<'_, 'a>) {
                let image = self;
                $($(key_row!(image, graph, node, put, $hash $(($hash_by))?);)+)+
                if node == ImageNode::Build {
                    for (key, value) in &image.plain {
                        put(Cow::Borrowed(key), Cow::Borrowed(value));
                    }
                }
            }
        }
    };
}
pub(crate) use image_keys;

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
    /// How many strings it holds, its name too.
    pub(crate) fn count_texts(&self) -> usize {
        1 + self.run.as_ref().map_or(0, |r| r.value.len())
            + self.inputs.len()
            + self.outputs.len()
            + self.secrets.len()
            + self.platforms.as_ref().map_or(0, Vec::len)
            + 2 * self.env.len()
            + usize::from(self.timeout.is_some())
            + <crate::shape::Dependencies as crate::shape::Shape>::count(&self.deps)
    }

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
