//! Images: the image key table (`image_keys!`: every key an image takes, one row each, with
//! its draft field and shape, its spellings and their rows in the language's table, where the
//! printers write it, whether `--set` sets it, its lowering and who puts it into the build
//! key), each key's lowering function and key function beside it, and the shapes of the keys
//! only an image takes (`git`/`ref`, `targets`/`target`, `ko`, `build-context`, `inherits`,
//! `matrix`): every setting an image's keys put into a build key ([`Image::key_settings`]).

use std::borrow::Cow;
use std::fmt::Write as _;

use kdl::KdlNode;
use serde::{Deserialize, Serialize};

use super::*;
use crate::document::{
    BuildContextDraft, ImageKeyRow, KoDraft, Lowering, MatrixDraft, all_differ, hash_of, image_keys,
    kdl_spelling, keyed, lowering, rows_are_sound, settable,
};
use crate::escape::yaml_scalar;
use crate::kdl::Reader as KdlReader;
use crate::print::{kdl_matrix, kdl_properties, yaml_flow, yaml_matrix};
use crate::schema::{Construct, Kind};
use crate::shape::{
    Dependencies, OneText, OptionalTexts, Pairs, Shape, Shown, Supply, Texts, set_list, show_list,
    shown_properties,
};
use crate::source::Syntax;
use crate::yaml::{Reader as YamlReader, Value as YamlValue};

/// What an image takes from the graph where it does not say: its platforms, builder and
/// timeout, and the secrets the graph declares (which its `secrets` must name).
pub(super) struct ImageDefaults<'d> {
    pub(super) platforms: &'d [Platform],
    pub(super) builder: Builder,
    pub(super) timeout: Option<std::time::Duration>,
    pub(super) secrets: &'d [Secret],
    /// The graph's labels and annotations, lowered: the image's own go over them.
    pub(super) labels: &'d BTreeMap<String, String>,
    pub(super) annotations: &'d BTreeMap<String, String>,
}

// The image key table: every key an image takes, one row each, written once here; the one
// walk over it is `image_keys!` (`document.rs`). A row is
//
// `FIELD by SHAPE [print POSITION (yaml POSITION)?] lower(LOWERING) { SPELLING, … }`
//
// and each of its spellings (a key the row's field holds: most rows have one, `git`'s has
// `ref` too, `targets`' `target`, `supply`'s `sign`, `sbom` and `provenance`, `deps`' `from`
// and `after`)
//
// `"key" (kdl "KDL key" | kdl None)? [(set POSITION,)? listed POSITION] hash KEYED kind KIND
// meaning "…"`
//
// From the rows come: the draft's field `FIELD` (`name` first), of the `SHAPE`'s value (a
// `crate::shape::Shape`: how both syntaxes read it, how it prints, expansion's walks over it);
// both readers (a KDL node or a YAML entry of a spelling goes to its row's shape); both
// printers (each row at its `print` position, YAML's where `yaml` gives one); expansion's walks
// (its strings, their count, the merge of templates, `hephy show`'s lines, in the rows'
// order); `--set` (a spelling with `set` is a field of `--set image.NAME.FIELD=VALUE`, at that
// position in its list: `crate::expand::SETTABLE`); the language's table (`crate::schema::KEYS`:
// each spelling, in YAML as `"key"`, in KDL as `"key"` or its `kdl`, of kind `KIND` (a
// `crate::schema::Kind`), with its `meaning`, at its `listed` position among the image's keys,
// which is the order the front-ends name them in); the analyzer's lowering (`lower`, a
// `Lowering`: the generated `Analyzer::lower_image_keys` calls each `Own` function in the rows'
// order, so a row comes after the rows its function reads from the `Image`: `builder` before
// `dockerfile` before the source, `compression` after `builder`, `ko-env`'s after `builder`;
// `Graph` rows are lowered by the passes over the whole graph in `analyze/mod.rs`, `Expanded`
// ones are gone before analysis) and the
// build key (`hash`, a `Keyed`: the generated `Image::key_settings` calls each `Put` function;
// the engine puts only what it resolves or knows: `Identity`, `Resolved`, `Nodes`,
// `Dependencies`, `Destination`; `Unhashed("why")` makes the language's row
// `Hash::Unhashed("why")`, `Expanded` `Hash::Expanded`, any other `Hash::Hashed`).
//
// Adding an image key touches three files of code: (1) here, its row, its lowering function
// `lower_KEY(&mut self, value, draft, defaults, image)` (value: a reference to its shape's
// value) beside the others and, for `Put`, its key function `key_KEY(image, graph, node, put)`,
// and for a value of a new shape, the shape beside the others below; (2) its field in
// [`Image`] (`model.rs`) and its value in `Image::unset`; (3) the builder that reads it.
// Besides, SPEC.md's line and `docs/hephy.schema.json` made again by `hephy schema`. A plain
// key (`lower(Plain)` and `hash Written`, one text only) is its row alone: it is lowered into
// [`Image::plain`], which is hashed whole. The engine's `key_table` test plans two graphs per
// key and names one whose `hash` column does not do what the row says (a key whose checks
// refuse the generic sample values of its kind, `a` and `b`, is named there too, and gets a
// pair of its own in its `samples`). A document stored by a build of other rows is never
// reused (`stored.rs` keys it by the build).
image_keys! {
    /// An image as written: its name, then the field of each row of the image key table
    /// (`image_keys!` in `analyze/images.rs`), of its shape's value.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ImageDraft;

    builder by OneText [print 2] lower(Own(lower_builder)) {
        "builder" [set 4, listed 5] hash Identity kind Text meaning "this image's builder",
    },
    dockerfile by OneText [print 5] lower(Own(lower_dockerfile)) {
        "dockerfile" [set 1, listed 4] hash Put(key_dockerfile) kind Text
            meaning "the Dockerfile, relative to the context",
    },
    context by OneText [print 4] lower(Own(lower_source)) {
        "context" [set 0, listed 0] hash Put(key_context) kind Text meaning "the build context folder",
    },
    git by GitSource [print 3] lower(With("context")) {
        "git" [set 2, listed 2] hash Put(key_git) kind Text meaning "build from this git repository",
        "ref" kdl None [set 3, listed 3] hash Resolved kind Text
            meaning "the branch, tag or commit of `git` (KDL: `git \"URL\" ref=\"…\"`)",
    },
    compression by OneText [print 7] lower(Own(lower_compression)) {
        "compression" [set 6, listed 1] hash Put(key_compression) kind Text
            meaning "layer compression of the `oci` builder: `gzip` or `zstd`",
    },
    timeout by OneText [print 6] lower(Own(lower_timeout)) {
        "timeout" [set 5, listed 6] hash Unhashed("how long a build may run changes nothing it makes")
            kind Text meaning "stop and fail a build that runs longer",
    },
    repository by OneText [print 15 yaml 16] lower(Own(lower_repository)) {
        "repository" [listed 21] hash Destination kind Text
            meaning "the template of this image's repository, instead of naming's",
    },
    supply by Supply [print 19] lower(Graph) {
        "sign" [listed 24] hash Resolved kind Block(Sign)
            meaning "sign its index and platform manifests, instead of the graph's `sign`",
        "sbom" [listed 25] hash Put(key_sbom) kind Flag
            meaning "an SPDX SBOM attestation per platform, over the graph's `sbom`",
        "provenance" [listed 26] hash Put(key_provenance) kind Flag
            meaning "a SLSA provenance attestation per platform, over the graph's",
    },
    platforms by OptionalTexts [print 12] lower(Own(lower_platforms)) {
        "platforms" [set 9, listed 11] hash Put(key_platforms) kind Texts meaning "the platforms to build for",
    },
    targets by Targets [print 8] lower(Own(lower_targets)) {
        "targets" [set 8, listed 9] hash Nodes kind Texts meaning "several stages, each its own image",
        "target" [set 7, listed 8] hash Nodes kind Text meaning "the Dockerfile stage to build",
    },
    tags by Texts [print 13] lower(Own(lower_tags)) {
        "tags" [set 10, listed 12] hash Nodes kind Texts meaning "extra tags of the finished image",
    },
    secrets by Texts [print 14] lower(Own(lower_secrets)) {
        "secrets" [set 11, listed 7] hash Resolved kind Texts meaning "secrets mounted into the build",
    },
    mirrors by Texts [print 16 yaml 15] lower(Own(lower_mirrors)) {
        "mirrors" [listed 22] hash Destination kind Texts
            meaning "the registries it is also pushed to, instead of the graph's",
    },
    args by Pairs [print 11] lower(Own(lower_args)) {
        "args" [listed 10] hash Put(key_args) kind Pairs meaning "build args",
    },
    ko_env by Pairs [print 10] lower(Own(lower_ko)) {
        "ko-env" [listed 16] hash Put(key_ko_env) kind Pairs meaning "the `ko` builder's environment",
    },
    labels by Pairs [print 17] lower(Own(lower_labels)) {
        "labels" [listed 19] hash Put(key_labels) kind Metadata
            meaning "labels of this image's config, over the graph's",
    },
    annotations by Pairs [print 18] lower(Own(lower_annotations)) {
        "annotations" [listed 20] hash Put(key_annotations) kind Metadata
            meaning "OCI annotations of its manifests and index, over the graph's",
    },
    ko by Ko [print 9] lower(With("ko-env")) {
        "ko" [listed 15] hash Put(key_ko) kind Block(Ko) meaning "the `ko` builder's settings",
    },
    deps by Dependencies [print 20] lower(Graph) {
        "from" [listed 13] hash Dependencies kind Dependencies(From)
            meaning "images built first whose reference is passed in",
        "after" [listed 14] hash Dependencies kind Texts meaning "images or tasks built first, nothing passed",
    },
    build_contexts by BuildContexts [print 21] lower(Graph) {
        "build-contexts" kdl "build-context" [listed 23] hash Resolved kind Named(BuildContext)
            meaning "an external named build context: an image, a folder, a git repository or an OCI layout",
    },
    inherits by Inherits [print 0] lower(Expanded) {
        "inherits" [listed 17] hash Expanded kind Texts meaning "templates whose settings it takes, in order",
    },
    matrix by Matrix [print 1] lower(Expanded) {
        "matrix" [listed 18] hash Expanded kind NamedLists
            meaning "one copy for each combination of these values",
    },
}

/// One row's lowering: its `Own` function, called with the key's value whether written or not
/// (the other rows have none here).
macro_rules! lower_row {
    ($a:ident, $value:expr, $draft:ident, $defaults:ident, $image:ident, (Own($function:ident))) => {
        $a.$function($value, $draft, $defaults, $image)
    };
    ($a:ident, $value:expr, $draft:ident, $defaults:ident, $image:ident, $($other:tt)*) => {};
}
use lower_row;

/// One spelling's settings in a build key: its `Put` function (the engine puts the others).
macro_rules! key_row {
    ($image:ident, $graph:ident, $node:ident, $put:ident, Put($function:ident)) => {
        $function($image, $graph, $node, $put)
    };
    ($image:ident, $graph:ident, $node:ident, $put:ident, $($other:tt)*) => {};
}
use key_row;

impl Image {
    /// The settings its keys put into the build key of its `node` in `graph`, each given to
    /// `put` as its name and value: the rows of the image key table that say `Put` (with the
    /// plain keys as written in its builds' keys). The engine puts the rest: what the keys
    /// resolve to, the references it injects, the builder's identity, the nodes' names and
    /// where the nodes that push put their results.
    pub fn key_settings<'a>(
        &'a self,
        graph: &Model,
        node: ImageNode,
        put: &mut dyn FnMut(Cow<'a, str>, Cow<'a, str>),
    ) {
        self.table_key_settings(graph, node, put);
    }
}

// --- the shapes of the keys only an image takes ----------------------------------------------

/// `git` and `ref` as written: the repository's URL and the ref to build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct GitDraft {
    pub(crate) url: Option<Text>,
    pub(crate) reference: Option<Text>,
}

/// `git "URL" ref="…"` (KDL, given once) / `git: URL` and `ref: …`, two keys.
pub(crate) struct GitSource;

impl Shape for GitSource {
    type Value = GitDraft;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut GitDraft) {
        let url = r.first_arg(node);
        for (_, entry) in r.properties(node, crate::schema::keys(Construct::Git, Syntax::Kdl)) {
            if let Some(reference) = r.string(entry) {
                value.reference = Some(reference);
            }
        }
        r.no_children(node);
        if let Some(url) = url {
            r.set_once(&mut value.url, url, node);
        }
    }

    fn read_yaml(r: &mut YamlReader<'_>, key: &Text, body: &YamlValue, value: &mut GitDraft) {
        if key.value == "ref" {
            value.reference = r.string(body);
        } else {
            value.url = r.string(body);
        }
    }

    fn print_kdl(value: &GitDraft, key: &str, out: &mut String) {
        if let Some(url) = &value.url {
            let reference = kdl_properties(&[("ref", value.reference.as_ref())]);
            let _ = writeln!(out, "    {key} {}{reference}", crate::escape::kdl_string(url));
        }
    }

    fn print_yaml(value: &GitDraft, key: &str, indent: &str, out: &mut String) {
        OneText::print_yaml(&value.url, key, indent, out);
        OneText::print_yaml(&value.reference, "ref", indent, out);
    }

    fn each(value: &mut GitDraft, f: &mut dyn FnMut(&mut Text)) {
        value.url.iter_mut().chain(value.reference.iter_mut()).for_each(f);
    }

    fn count(value: &GitDraft) -> usize {
        usize::from(value.url.is_some()) + usize::from(value.reference.is_some())
    }

    fn merge(own: &mut GitDraft, base: GitDraft) {
        OneText::merge(&mut own.url, base.url);
        OneText::merge(&mut own.reference, base.reference);
    }

    fn show(value: &GitDraft, key: &str, out: &mut Shown) {
        OneText::show(&value.url, key, out);
        OneText::show(&value.reference, "ref", out);
    }

    fn set(value: &mut GitDraft, key: &str, text: &str, at: SourceSpan) {
        let slot = if key == "ref" { &mut value.reference } else { &mut value.url };
        *slot = Some(Spanned::new(text.to_owned(), at));
    }
}

/// `targets "a" "b"` or `target "a"` (KDL, added up) / `targets: [a, b]` or `target: a`: a
/// list, printed as `target` when it holds one.
pub(crate) struct Targets;

impl Shape for Targets {
    type Value = Vec<Text>;

    fn read_kdl(r: &mut KdlReader<'_>, key: &str, node: &KdlNode, value: &mut Vec<Text>) {
        if key == "target" {
            value.extend(r.one_string(node));
        } else {
            value.extend(r.strings(node, 1));
        }
    }

    fn read_yaml(r: &mut YamlReader<'_>, key: &Text, body: &YamlValue, value: &mut Vec<Text>) {
        if key.value == "target" {
            value.extend(r.string(body));
        } else {
            value.extend(r.strings(body));
        }
    }

    fn print_kdl(value: &Vec<Text>, key: &str, out: &mut String) {
        match value.as_slice() {
            [one] => OneText::print_kdl(&Some(one.clone()), "target", out),
            _ => Texts::print_kdl(value, key, out),
        }
    }

    fn print_yaml(value: &Vec<Text>, key: &str, indent: &str, out: &mut String) {
        match value.as_slice() {
            [one] => {
                let _ = writeln!(out, "{indent}target: {}", yaml_scalar(one));
            }
            _ => Texts::print_yaml(value, key, indent, out),
        }
    }

    fn each(value: &mut Vec<Text>, f: &mut dyn FnMut(&mut Text)) {
        Texts::each(value, f);
    }

    fn count(value: &Vec<Text>) -> usize {
        value.len()
    }

    fn merge(own: &mut Vec<Text>, base: Vec<Text>) {
        Texts::merge(own, base);
    }

    fn show(value: &Vec<Text>, key: &str, out: &mut Shown) {
        show_list(key, value, out);
    }

    fn shown_as(_: &'static str, first: &'static str) -> &'static str {
        first
    }

    fn set(value: &mut Vec<Text>, key: &str, text: &str, at: SourceSpan) {
        *value = if key == "target" { vec![Spanned::new(text.to_owned(), at)] } else { set_list(text, at) };
    }
}

/// `ko import-path="./cmd/app" base-image="…" ldflags="-s -w"` (KDL, given once) /
/// `ko: {import-path: …}`.
pub(crate) struct Ko;

impl Ko {
    fn fields(ko: &KoDraft) -> [(&'static str, &Option<Text>); 3] {
        [("import-path", &ko.import_path), ("base-image", &ko.base_image), ("ldflags", &ko.ldflags)]
    }

    fn slot<'k>(ko: &'k mut KoDraft, key: &str) -> &'k mut Option<Text> {
        match key {
            "import-path" => &mut ko.import_path,
            "base-image" => &mut ko.base_image,
            _ => &mut ko.ldflags,
        }
    }
}

impl Shape for Ko {
    type Value = Option<KoDraft>;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut Option<KoDraft>) {
        r.only_properties(node, "write `ko import-path=\"./cmd/app\" base-image=\"…\" ldflags=\"…\"`");
        r.no_children(node);
        let mut ko = KoDraft { import_path: None, base_image: None, ldflags: None, span: node.span() };
        for (key, entry) in r.properties(node, crate::schema::keys(Construct::Ko, Syntax::Kdl)) {
            *Ko::slot(&mut ko, key) = r.string(entry);
        }
        r.set_once(value, ko, node);
    }

    fn read_yaml(r: &mut YamlReader<'_>, _: &Text, body: &YamlValue, value: &mut Option<KoDraft>) {
        let mut ko = KoDraft { import_path: None, base_image: None, ldflags: None, span: body.span };
        for (key, body) in r.map(body, crate::schema::keys(Construct::Ko, Syntax::Yaml), "`ko`") {
            *Ko::slot(&mut ko, &key.value) = r.string(body);
        }
        *value = Some(ko);
    }

    fn print_kdl(value: &Option<KoDraft>, key: &str, out: &mut String) {
        if let Some(ko) = value {
            let fields = Ko::fields(ko).map(|(k, v)| (k, v.as_ref()));
            let _ = writeln!(out, "    {key}{}", kdl_properties(&fields));
        }
    }

    fn print_yaml(value: &Option<KoDraft>, key: &str, indent: &str, out: &mut String) {
        if let Some(ko) = value {
            let fields = Ko::fields(ko).map(|(k, v)| (k, v.as_ref()));
            let _ = writeln!(out, "{indent}{key}: {}", yaml_flow(&fields));
        }
    }

    fn each(value: &mut Option<KoDraft>, f: &mut dyn FnMut(&mut Text)) {
        if let Some(ko) = value {
            [&mut ko.import_path, &mut ko.base_image, &mut ko.ldflags].into_iter().flatten().for_each(f);
        }
    }

    fn count(value: &Option<KoDraft>) -> usize {
        value.as_ref().map_or(0, |ko| Ko::fields(ko).into_iter().filter(|(_, v)| v.is_some()).count())
    }

    fn merge(own: &mut Option<KoDraft>, base: Option<KoDraft>) {
        if own.is_none() {
            *own = base;
        }
    }

    fn show(value: &Option<KoDraft>, key: &str, out: &mut Shown) {
        if let Some(ko) = value {
            out.push((key.to_owned(), shown_properties(&Ko::fields(ko)), ko.span));
        }
    }
}

/// `build-context "NAME" image=… | path=… | git=… [ref=…] [dir=…] | oci-layout=… ref=…` (KDL,
/// one node each) / `build-contexts: {NAME: {image: …}}`; a template's and an image's merge by
/// name, the image's over the template's.
pub(crate) struct BuildContexts;

impl BuildContexts {
    /// A context's keys, in the order both syntaxes write them.
    fn fields(c: &BuildContextDraft) -> [(&'static str, &Option<Text>); 6] {
        [
            ("image", &c.image),
            ("path", &c.path),
            ("git", &c.git),
            ("oci-layout", &c.oci_layout),
            ("ref", &c.reference),
            ("dir", &c.dir),
        ]
    }

    fn slot<'c>(c: &'c mut BuildContextDraft, key: &str) -> &'c mut Option<Text> {
        match key {
            "image" => &mut c.image,
            "path" => &mut c.path,
            "git" => &mut c.git,
            "oci-layout" => &mut c.oci_layout,
            "ref" => &mut c.reference,
            _ => &mut c.dir,
        }
    }
}

impl Shape for BuildContexts {
    type Value = Vec<BuildContextDraft>;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut Vec<BuildContextDraft>) {
        let Some(name) = r.name(node) else { return };
        r.no_children(node);
        let mut context = BuildContextDraft::new(name, node.span());
        for (key, entry) in r.properties(node, crate::schema::keys(Construct::BuildContext, Syntax::Kdl)) {
            *BuildContexts::slot(&mut context, key) = r.string(entry);
        }
        value.push(context);
    }

    fn read_yaml(r: &mut YamlReader<'_>, _: &Text, body: &YamlValue, value: &mut Vec<BuildContextDraft>) {
        for (name, body) in r.named_map(body) {
            let span = crate::yaml::join(name.span, body.span);
            let mut context = BuildContextDraft::new(name, span);
            let keys = crate::schema::keys(Construct::BuildContext, Syntax::Yaml);
            for (key, body) in r.map(body, keys, "a build context") {
                *BuildContexts::slot(&mut context, &key.value) = r.string(body);
            }
            value.push(context);
        }
    }

    fn print_kdl(value: &Vec<BuildContextDraft>, key: &str, out: &mut String) {
        for c in value {
            let fields = BuildContexts::fields(c).map(|(k, v)| (k, v.as_ref()));
            let props = kdl_properties(&fields);
            let _ = writeln!(out, "    {key} {}{props}", crate::escape::kdl_string(&c.name));
        }
    }

    fn print_yaml(value: &Vec<BuildContextDraft>, key: &str, indent: &str, out: &mut String) {
        if !value.is_empty() {
            let _ = writeln!(out, "{indent}{key}:");
            for c in value {
                let fields = BuildContexts::fields(c).map(|(k, v)| (k, v.as_ref()));
                let _ = writeln!(out, "{indent}  {}: {}", yaml_scalar(&c.name), yaml_flow(&fields));
            }
        }
    }

    fn each(value: &mut Vec<BuildContextDraft>, f: &mut dyn FnMut(&mut Text)) {
        for c in value {
            f(&mut c.name);
            [&mut c.image, &mut c.path, &mut c.git, &mut c.oci_layout, &mut c.reference, &mut c.dir]
                .into_iter()
                .flatten()
                .for_each(&mut *f);
        }
    }

    fn count(value: &Vec<BuildContextDraft>) -> usize {
        value
            .iter()
            .map(|c| 1 + BuildContexts::fields(c).into_iter().filter(|(_, v)| v.is_some()).count())
            .sum()
    }

    fn merge(own: &mut Vec<BuildContextDraft>, base: Vec<BuildContextDraft>) {
        let mut merged: Vec<BuildContextDraft> =
            base.into_iter().filter(|c| !own.iter().any(|o| o.name.value == c.name.value)).collect();
        merged.append(own);
        *own = merged;
    }

    fn show(value: &Vec<BuildContextDraft>, _: &str, out: &mut Shown) {
        for c in value {
            let shown = shown_properties(&BuildContexts::fields(c));
            out.push((format!("build-context {}", c.name.value), shown, c.name.span));
        }
    }
}

/// `inherits "a" "b"` (KDL, added up) / `inherits: [a, b]`: the templates an image takes,
/// expanded away before anything else reads the draft (so no walk of expansion reads it).
pub(crate) struct Inherits;

impl Shape for Inherits {
    type Value = Vec<Text>;

    fn read_kdl(r: &mut KdlReader<'_>, key: &str, node: &KdlNode, value: &mut Vec<Text>) {
        Texts::read_kdl(r, key, node, value);
    }

    fn read_yaml(r: &mut YamlReader<'_>, key: &Text, body: &YamlValue, value: &mut Vec<Text>) {
        Texts::read_yaml(r, key, body, value);
    }

    fn print_kdl(value: &Vec<Text>, key: &str, out: &mut String) {
        Texts::print_kdl(value, key, out);
    }

    fn print_yaml(value: &Vec<Text>, key: &str, indent: &str, out: &mut String) {
        Texts::print_yaml(value, key, indent, out);
    }

    fn each(_: &mut Vec<Text>, _: &mut dyn FnMut(&mut Text)) {}

    fn count(_: &Vec<Text>) -> usize {
        0
    }

    fn merge(_: &mut Vec<Text>, _: Vec<Text>) {}

    fn show(_: &Vec<Text>, _: &str, _: &mut Shown) {}
}

/// `matrix { KEY "v1" "v2" }` (KDL, given once) / `matrix: {KEY: [v1, v2]}`: expanded away
/// before anything else reads the draft, like `inherits`.
pub(crate) struct Matrix;

impl Shape for Matrix {
    type Value = Option<MatrixDraft>;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut Option<MatrixDraft>) {
        let matrix = r.matrix(node);
        r.set_once(value, matrix, node);
    }

    fn read_yaml(r: &mut YamlReader<'_>, _: &Text, body: &YamlValue, value: &mut Option<MatrixDraft>) {
        *value = Some(r.matrix(body));
    }

    fn print_kdl(value: &Option<MatrixDraft>, _: &str, out: &mut String) {
        kdl_matrix(out, value.as_ref());
    }

    fn print_yaml(value: &Option<MatrixDraft>, _: &str, indent: &str, out: &mut String) {
        yaml_matrix(out, indent, value.as_ref());
    }

    fn each(_: &mut Option<MatrixDraft>, _: &mut dyn FnMut(&mut Text)) {}

    fn count(_: &Option<MatrixDraft>) -> usize {
        0
    }

    fn merge(_: &mut Option<MatrixDraft>, _: Option<MatrixDraft>) {}

    fn show(_: &Option<MatrixDraft>, _: &str, _: &mut Shown) {}
}

impl Analyzer<'_> {
    pub(super) fn image(&mut self, draft: &ImageDraft, defaults: &ImageDefaults<'_>) -> Image {
        let mut image = Image::unset(draft.name.clone());
        // Every key of the table (`image_keys!`) lowered `Own`, each by its row; the `Graph`
        // rows are the passes' over the whole graph (`analyze/mod.rs`).
        self.lower_image_keys(draft, defaults, &mut image);
        image
    }

    // --- each key's lowering, called in the rows' order by `lower_image_keys` ---------------

    /// `args`: valid names, each once, none that a `from` passes the reference in.
    fn lower_args(
        &mut self,
        value: &[(Text, Text)],
        draft: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.args = self.pairs(value, "build arg");
        for dep in &draft.deps {
            if let Some(arg) = dep.from.as_ref().and_then(|f| f.arg.as_ref())
                && let Some((key, _)) = value.iter().find(|(k, _)| k.value == arg.value)
            {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("build arg `{}` is set twice", arg.value))
                        .label(arg.span, "set to the dependency's reference here")
                        .label(key.span, "and given a value here")
                        .help("remove it from `args`: `from` passes the reference itself"),
                );
            }
        }
    }

    /// `ko-env`, with `ko`: the `ko` builder's settings, which only it reads. Reads the
    /// lowered `builder`.
    fn lower_ko(
        &mut self,
        value: &[(Text, Text)],
        draft: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        let ko_env = self.pairs(value, "ko environment variable");
        image.ko = match &draft.ko {
            Some(k) => Some(KoSettings {
                import_path: k.import_path.as_ref().map(|t| t.value.clone()),
                base_image: k.base_image.as_ref().map(|t| t.value.clone()),
                ldflags: k.ldflags.as_ref().map(|t| t.value.clone()),
                env: ko_env,
            }),
            None if !ko_env.is_empty() => Some(KoSettings { env: ko_env, ..KoSettings::default() }),
            None => None,
        };
        let builder = image.builder;
        if image.ko.is_some() && builder != Builder::Ko {
            let span = draft
                .ko
                .as_ref()
                .map_or_else(|| value.first().map_or(draft.name.span, |(k, _)| k.span), |k| k.span);
            self.sink.push(
                Problem::new(
                    Code::Conflict,
                    format!("image `{}` has `ko` settings but is built with {builder}", draft.name.value),
                )
                .label(span, "read only by the ko builder")
                .help_for(
                    "add `builder \"ko\"` to the image, or remove the `ko` settings",
                    "add `builder: ko` to the image, or remove the `ko` settings",
                ),
            );
        }
    }

    /// `labels`: the graph's, then the image's over them.
    fn lower_labels(
        &mut self,
        value: &[(Text, Text)],
        _: &ImageDraft,
        defaults: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.publish.labels = defaults.labels.clone();
        image.publish.labels.extend(self.metadata(value, "label"));
    }

    /// `annotations`: the graph's, then the image's over them.
    fn lower_annotations(
        &mut self,
        value: &[(Text, Text)],
        _: &ImageDraft,
        defaults: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.publish.annotations = defaults.annotations.clone();
        image.publish.annotations.extend(self.metadata(value, "annotation"));
    }

    /// `builder`: a known builder; the graph's when not written.
    fn lower_builder(
        &mut self,
        value: &Option<Text>,
        _: &ImageDraft,
        defaults: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.builder = match value {
            Some(b) => self.builder(b),
            None => defaults.builder,
        };
    }

    /// `dockerfile`: a path below the context (`Dockerfile` when not written).
    fn lower_dockerfile(
        &mut self,
        value: &Option<Text>,
        _: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.dockerfile = match value {
            Some(d) => self.relative(d, "Dockerfile").unwrap_or_default(),
            None => "Dockerfile".to_owned(),
        };
    }

    /// `context`, with `git` and `ref`: the image's source, a local folder (that holds the
    /// Dockerfile, for a builder that reads one) or a folder of a git repository at a ref.
    /// Reads the lowered `builder` and `dockerfile`.
    fn lower_source(
        &mut self,
        context: &Option<Text>,
        draft: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.source = match (&draft.git.url, context.as_ref()) {
            (Some(url), dir) => {
                let dir = dir.and_then(|d| self.relative(d, "context")).unwrap_or_else(|| ".".to_owned());
                if url.trim().is_empty() {
                    self.sink.push(
                        Problem::new(Code::InvalidValue, "empty git URL")
                            .label(url.span, "empty")
                            .help("give the repository's URL"),
                    );
                } else if !valid_git_url(url) {
                    self.sink.push(
                        Problem::new(Code::InvalidValue, format!("`{}` is not a git URL", url.value))
                            .label(url.span, "expected https://, ssh://, git://, file:// or user@host:path")
                            .help(
                                "give the repository's URL, e.g. `https://github.com/chainguard-dev/kaniko`",
                            ),
                    );
                }
                let reference = draft.git.reference.as_ref().map_or("HEAD", |r| r.as_str()).to_owned();
                ImageSource::Git { url: url.value.clone(), reference, dir }
            }
            (None, Some(dir)) => {
                if let Some(r) = &draft.git.reference {
                    self.sink.push(
                        Problem::new(Code::Conflict, "`ref` applies only to a `git` source")
                            .label(r.span, "no `git` URL to apply it to")
                            .help_for(
                                "add `git \"URL\" ref=\"…\"`, or remove the ref",
                                "add `git: URL` beside the `ref`, or remove the ref",
                            ),
                    );
                }
                let normalized = self.relative(dir, "context");
                if let Some(normalized) = &normalized {
                    // A builder that reads no Dockerfile (ko, spin): the folder need not have one.
                    let needs_dockerfile = image.builder.reads_dockerfile();
                    self.local_context(
                        dir,
                        normalized,
                        &image.dockerfile,
                        draft.dockerfile.as_ref(),
                        needs_dockerfile,
                    );
                }
                ImageSource::Context { dir: normalized.unwrap_or_else(|| ".".to_owned()) }
            }
            (None, None) => {
                self.sink.push(
                    Problem::new(Code::Missing, format!("image `{}` has no build context", draft.name.value))
                        .label(draft.name.span, "neither `context` nor `git` given")
                        .help_for(
                            format!("add `context \"{}\"` (a folder beside the graph file) or `git \"URL\" ref=\"…\"`", draft.name.value),
                            format!("add `context: {}` (a folder beside the graph file) or `git: URL` and `ref: …`", draft.name.value),
                        ),
                );
                ImageSource::Context { dir: ".".to_owned() }
            }
        };
    }

    /// `compression`: see [`Analyzer::compression`]; `gzip` when not written. Reads the
    /// lowered `builder`.
    fn lower_compression(
        &mut self,
        value: &Option<Text>,
        _: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.compression =
            value.as_ref().map_or_else(Compression::default, |c| self.compression(c, image.builder));
    }

    /// `timeout`: a duration; the graph's when not written (none when written wrong).
    fn lower_timeout(
        &mut self,
        value: &Option<Text>,
        _: &ImageDraft,
        defaults: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.timeout = value.as_ref().map_or(defaults.timeout, |t| self.timeout(t));
    }

    /// `repository`: a template of the names a pushed image may use.
    fn lower_repository(
        &mut self,
        value: &Option<Text>,
        _: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.publish.repository = value.as_ref().map(|r| self.template(r, &[]));
    }

    /// `platforms`: each a platform, listed once; the graph's when not written.
    fn lower_platforms(
        &mut self,
        value: &Option<Vec<Text>>,
        _: &ImageDraft,
        defaults: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.platforms = match value {
            Some(list) => self.platforms(list),
            None => defaults.platforms.to_vec(),
        };
    }

    /// `targets` (or `target`): each a name, listed once.
    fn lower_targets(&mut self, values: &[Text], _: &ImageDraft, _: &ImageDefaults<'_>, image: &mut Image) {
        let mut targets: Vec<String> = Vec::new();
        for t in values {
            self.name(t, "target");
            if targets.contains(&t.value) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("target `{}` is listed twice", t.value))
                        .label(t.span, "listed again here")
                        .help("list each target once"),
                );
            } else {
                targets.push(t.value.clone());
            }
        }
        image.targets = targets;
    }

    /// `tags`: valid image tags, or templates of the words a tag may use; each once.
    fn lower_tags(&mut self, values: &[Text], _: &ImageDraft, _: &ImageDefaults<'_>, image: &mut Image) {
        let mut tags: Vec<String> = Vec::new();
        for tag in values {
            if tag.contains('{') {
                // A tag from git or the plan (`{git_tag|short_commit}`); its rendering is
                // checked with the naming templates'.
                if let Some(word) = crate::reference::template_groups(tag)
                    .into_iter()
                    .flatten()
                    .find(|w| !COMMON.contains(w) || w.starts_with('-'))
                {
                    self.sink.push(
                        Problem::new(Code::InvalidValue, format!("`{{{word}}}` cannot be used in a tag"))
                            .label(tag.span, "in this tag")
                            .help(format!(
                                "a tag may use {}",
                                COMMON
                                    .iter()
                                    .filter(|k| !k.starts_with('-'))
                                    .map(|k| format!("{{{k}}}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                    );
                } else if !tags.contains(&tag.value) {
                    tags.push(tag.value.clone());
                }
            } else if !valid_tag(tag) {
                self.sink.push(
                    Problem::new(Code::InvalidValue, format!("`{}` is not a valid image tag", tag.value))
                        .label(tag.span, "invalid tag")
                        .help("a tag is 1 to 128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"),
                );
            } else if !tags.contains(&tag.value) {
                tags.push(tag.value.clone());
            }
        }
        image.tags = tags;
    }

    /// `secrets`: each declared by the graph.
    fn lower_secrets(
        &mut self,
        values: &[Text],
        _: &ImageDraft,
        defaults: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.secrets = self.secret_uses(values, defaults.secrets);
    }

    /// `mirrors`: registry addresses, instead of the graph's when any is written.
    fn lower_mirrors(&mut self, values: &[Text], _: &ImageDraft, _: &ImageDefaults<'_>, image: &mut Image) {
        if !values.is_empty() {
            image.publish.mirrors = Some(values.iter().map(|m| self.registry(m.clone())).collect());
        }
    }

    /// An image's `compression`: a known name, for the builder that writes layers itself.
    pub(super) fn compression(&mut self, text: &Text, builder: Builder) -> Compression {
        let Some(compression) =
            [Compression::Gzip, Compression::Zstd].into_iter().find(|c| c.name() == text.value)
        else {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("unknown compression `{}`", text.value))
                    .label(text.span, "no such compression")
                    .help(
                        did_you_mean(&text.value, Compression::NAMES.iter().copied())
                            .unwrap_or_else(|| "the compressions are `gzip` and `zstd`".to_owned()),
                    ),
            );
            return Compression::default();
        };
        if builder != Builder::Oci {
            self.sink.push(
                Problem::new(
                    Code::Conflict,
                    format!("`compression` is for the built-in `oci` builder, not `{builder}`"),
                )
                .label(text.span, "the image's builder compresses its own layers")
                .help_for(
                    "remove `compression`, or build the image with `builder \"oci\"`",
                    "remove `compression`, or build the image with `builder: oci`",
                ),
            );
        }
        compression
    }
}

// --- each key's settings in the build key, called by `Image::key_settings` -------------------

/// Where a key function gives its settings: each name and value.
type Put<'p, 'a> = &'p mut dyn FnMut(Cow<'a, str>, Cow<'a, str>);

/// `dockerfile`, in each build's key.
fn key_dockerfile<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Build {
        put("dockerfile".into(), image.dockerfile.as_str().into());
    }
}

/// `context`, in each build's key: the folder, of the graph's or of the git repository's.
fn key_context<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Build {
        match &image.source {
            ImageSource::Context { dir } | ImageSource::Git { dir, .. } => put("context".into(), dir.into()),
        }
    }
}

/// `git`, in each build's key: the repository's URL (the engine puts the commit its ref
/// resolves to).
fn key_git<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if let (ImageNode::Build, ImageSource::Git { url, .. }) = (node, &image.source) {
        put("git.url".into(), url.into());
    }
}

/// `compression`, in each build's key; only when not the default, so the keys of every gzip
/// image stay as they were.
fn key_compression<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Build && image.compression != Compression::Gzip {
        put("compression".into(), image.compression.name().into());
    }
}

/// `args`, in each build's key: each build arg by name.
fn key_args<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Build {
        for (k, v) in &image.args {
            put(format!("args.{k}").into(), v.into());
        }
    }
}

/// `platforms`, in the index's key: the list (each build's key has its own platform, which
/// the engine puts as the node's).
fn key_platforms<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Index {
        let platforms: Vec<String> = image.platforms.iter().map(ToString::to_string).collect();
        put("platforms".into(), platforms.join(",").into());
    }
}

/// `ko`, in each build's key: each setting written.
fn key_ko<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    let (ImageNode::Build, Some(ko)) = (node, &image.ko) else { return };
    if let Some(path) = &ko.import_path {
        put("ko.import-path".into(), path.into());
    }
    if let Some(base) = &ko.base_image {
        put("ko.base-image".into(), base.into());
    }
    if let Some(ldflags) = &ko.ldflags {
        put("ko.ldflags".into(), ldflags.into());
    }
}

/// `ko-env`, in each build's key: each variable by name.
fn key_ko_env<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    let (ImageNode::Build, Some(ko)) = (node, &image.ko) else { return };
    for (k, v) in &ko.env {
        put(format!("ko.env.{k}").into(), v.into());
    }
}

/// `labels`, in each build's key: they go into each build's config.
fn key_labels<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Build {
        for (k, v) in &image.publish.labels {
            put(format!("labels.{k}").into(), v.into());
        }
    }
}

/// `annotations`, in the keys of its builds and its index: they go onto each build's manifest
/// and onto the index.
fn key_annotations<'a>(image: &'a Image, _: &Model, _: ImageNode, put: Put<'_, 'a>) {
    for (k, v) in &image.publish.annotations {
        put(format!("annotations.{k}").into(), v.into());
    }
}

// The attestations live in the index (beside the platform manifests, which they leave as they
// are), and the index and its platform manifests are signed when it is published: these
// settings are the index's, so changing one republishes the index and rebuilds no platform.
// Only when on, so the keys of unattested images stay.

/// `sbom`, in the index's key when on.
fn key_sbom<'a>(image: &'a Image, _: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Index && image.publish.sbom {
        put("supply.sbom".into(), "true".into());
    }
}

/// The setting `provenance` puts.
const PROVENANCE: &str = "supply.provenance";

/// `provenance`, in the index's key when it is not its default (on when the graph has a
/// registry, which the index's key holds already): a reason never names a setting the user
/// did not write.
fn key_provenance<'a>(image: &'a Image, graph: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Index && image.publish.provenance != graph.registry.is_some() {
        put(PROVENANCE.into(), if image.publish.provenance { "true" } else { "false" }.into());
    }
}

impl Image {
    /// Whether `name = value`, a setting in the key an earlier hephy recorded for an image's
    /// `node` (a key that held a registry when `had_registry`), is one today's keys leave out
    /// as its default: `provenance` on with a registry (earlier keys held it always). The
    /// engine drops such a setting from an old record, so the record stays fresh.
    pub fn recorded_default(node: ImageNode, name: &str, value: &str, had_registry: bool) -> bool {
        node == ImageNode::Index && name == PROVENANCE && value == "true" && had_registry
    }
}
