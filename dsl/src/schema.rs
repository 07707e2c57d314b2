//! The one table of the language's keys: for each construct, the keys it takes in KDL and in
//! YAML, the kind of value each holds, whether it is required, and what it means.
//!
//! Both front-ends take their lists of allowed keys (and so their "did you mean" suggestions)
//! from [`keys`]; `hephy schema` renders the YAML half as a JSON Schema ([`json_schema`]); a
//! test checks that SPEC.md names every key. Adding a key is one row in [`KEYS`] (and the
//! reading of its value in `kdl.rs` / `yaml.rs`), or for an image key, its row in the image
//! key table (`image_keys!` in `analyze/images.rs`), which makes its row here. This module
//! checks no values itself.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::analyze::IMAGE_KEY_ROWS;
use crate::source::Syntax;

/// A construct of the language: a block of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Construct {
    /// The graph file's top level.
    Graph,
    /// `naming`: how pushed images are named.
    Naming,
    /// An executor: where work for a platform runs.
    Executor,
    /// A secret: a value read from the environment or a file.
    Secret,
    /// An image.
    Image,
    /// The properties of an image's `git` node (KDL only; YAML writes `ref` on the image).
    Git,
    /// An image's `ko` settings.
    Ko,
    /// One `from` dependency of an image.
    From,
    /// One external named build context of an image (`build-context "NAME" image=…`).
    BuildContext,
    /// A task.
    Task,
    /// A schedule.
    Schedule,
    /// A group (KDL; YAML writes a group as a list of its members).
    Group,
    /// `sign`: how pushed images are signed (graph or image level).
    Sign,
}

impl Construct {
    /// Every construct, in the order the table lists them.
    pub const ALL: [Construct; 13] = [
        Construct::Graph,
        Construct::Naming,
        Construct::Executor,
        Construct::Secret,
        Construct::Image,
        Construct::Git,
        Construct::Ko,
        Construct::From,
        Construct::BuildContext,
        Construct::Task,
        Construct::Schedule,
        Construct::Group,
        Construct::Sign,
    ];

    /// How KDL spells this construct's keys: child nodes, or properties of one node.
    pub fn kdl_form(self) -> KdlForm {
        match self {
            Construct::Graph
            | Construct::Image
            | Construct::Task
            | Construct::Schedule
            | Construct::Group => KdlForm::Nodes,
            Construct::Naming
            | Construct::Executor
            | Construct::Secret
            | Construct::Git
            | Construct::Ko
            | Construct::From
            | Construct::BuildContext
            | Construct::Sign => KdlForm::Properties,
        }
    }

    /// The name of the construct's definition in the JSON Schema (`#/$defs/NAME`).
    fn def(self) -> &'static str {
        match self {
            Construct::Graph => "graph",
            Construct::Naming => "naming",
            Construct::Executor => "executor",
            Construct::Secret => "secret",
            Construct::Image => "image",
            Construct::Git => "git",
            Construct::Ko => "ko",
            Construct::From => "from",
            Construct::BuildContext => "build-context",
            Construct::Task => "task",
            Construct::Schedule => "schedule",
            Construct::Group => "group",
            Construct::Sign => "sign",
        }
    }
}

/// How a construct's keys are written in KDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdlForm {
    /// `image "NAME" { context "…" }`: each key is a child node.
    Nodes,
    /// `executor "NAME" platform="…"`: each key is a property.
    Properties,
}

/// The kind of value a key holds (as YAML writes it; KDL spells the same with arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value, read as the text written.
    Text,
    /// A list of values; YAML also takes one value for a list of one.
    Texts,
    /// A whole number.
    Integer,
    /// On or off (KDL: the node is present, or given `#true`/`#false`).
    Flag,
    /// `NAME: value` pairs (build args, environment).
    Pairs,
    /// `NAME: value` pairs whose names are labels' or annotations' (`org.opencontainers.image.source`).
    Metadata,
    /// A block of the construct's keys.
    Block(Construct),
    /// Named definitions: `NAME: {…}` per entry (KDL: one node per definition).
    Named(Construct),
    /// Named lists: `NAME: [a, b]` per entry (YAML's `groups`).
    NamedLists,
    /// `NAME: {…}` per dependency, or a list of such blocks for several of one name (`from`).
    Dependencies(Construct),
}

/// Whether a key must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// It may be left out.
    Optional,
    /// It must be given.
    Required,
    /// At least one of the construct's `AnyOf` keys must be given.
    AnyOf,
    /// Exactly one of the construct's `OneOf` keys must be given.
    OneOf,
}

/// One key of one construct.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The construct the key belongs to.
    pub construct: Construct,
    /// Its KDL spelling (a node or property name), `None` when KDL writes it otherwise.
    pub kdl: Option<&'static str>,
    /// Its YAML key, `None` when YAML writes it otherwise.
    pub yaml: Option<&'static str>,
    /// The kind of value it holds.
    pub kind: Kind,
    /// Whether it must be given.
    pub need: Need,
    /// What it means, in one line.
    pub meaning: &'static str,
    /// Whether its value goes into the build key of the nodes it shapes.
    pub hash: Hash,
}

/// Whether a key's value goes into the build key ([`Key::hash`]): the engine's test
/// (`every_image_key_is_hashed_or_declared_unhashed`) builds two graphs differing only in the
/// key's value and checks their node keys differ exactly when the row says `Hashed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// Its value (or what it resolves to: a commit, a digest, a secret's fingerprint) is in the
    /// key of every node it shapes: changing it rebuilds them.
    Hashed,
    /// Its value is in no key, for the reason given: changing it rebuilds nothing.
    Unhashed(&'static str),
    /// It is expanded away before anything is keyed (`variables`, templates, matrices): the
    /// settings it produces are hashed, or not, by their own rows.
    Expanded,
}

impl Key {
    /// Its spelling in `syntax`, if that syntax has it.
    pub fn name(&self, syntax: Syntax) -> Option<&'static str> {
        match syntax {
            Syntax::Kdl => self.kdl,
            Syntax::Yaml => self.yaml,
        }
    }
}

/// A key spelled the same in both syntaxes.
/// Hashed unless wrapped in [`unhashed`] or [`expanded`].
const fn key(construct: Construct, name: &'static str, kind: Kind, meaning: &'static str) -> Key {
    Key {
        construct,
        kdl: Some(name),
        yaml: Some(name),
        kind,
        need: Need::Optional,
        meaning,
        hash: Hash::Hashed,
    }
}

/// A key spelled differently in the two syntaxes (or missing from one).
const fn spelled(
    construct: Construct,
    kdl: Option<&'static str>,
    yaml: Option<&'static str>,
    kind: Kind,
    meaning: &'static str,
) -> Key {
    Key { construct, kdl, yaml, kind, need: Need::Optional, meaning, hash: Hash::Hashed }
}

const fn need(key: Key, need: Need) -> Key {
    Key { need, ..key }
}

/// A key whose value goes into no build key, and why.
const fn unhashed(key: Key, why: &'static str) -> Key {
    Key { hash: Hash::Unhashed(why), ..key }
}

/// A key expanded away before anything is keyed.
const fn expanded(key: Key) -> Key {
    Key { hash: Hash::Expanded, ..key }
}

use Construct as C;
use Kind as K;

/// Every key of the language, one row each: the rows written in `schema.rs`, with the image
/// key table's (`image_keys!` in `analyze/images.rs`) as the image's keys.
pub const KEYS: &[Key] = &keys_with_the_image_table();

/// The rows of the language's keys written here: all but the image's.
const WRITTEN: &[Key] = &[
    // The top level.
    key(C::Graph, "registry", K::Text, "where images are pushed: `host[:port][/path]`, no scheme"),
    key(C::Graph, "naming", K::Block(C::Naming), "how pushed images are named"),
    key(C::Graph, "builder", K::Text, "the builder of images that name none (`auto` by default)"),
    unhashed(
        key(C::Graph, "timeout", K::Text, "how long any one node may run, e.g. `2h`"),
        "how long a node may run changes nothing it makes",
    ),
    key(C::Graph, "platforms", K::Texts, "the platforms of images that list none (default: the host's)"),
    unhashed(
        spelled(
            C::Graph,
            Some("executor"),
            Some("executors"),
            K::Named(C::Executor),
            "where work for a platform runs",
        ),
        "where work runs, not what it makes",
    ),
    unhashed(
        spelled(
            C::Graph,
            Some("secret"),
            Some("secrets"),
            K::Named(C::Secret),
            "a value builds and tasks may use",
        ),
        "a declaration: the fingerprint of each secret a node uses is hashed",
    ),
    spelled(C::Graph, Some("image"), Some("images"), K::Named(C::Image), "a container image"),
    spelled(C::Graph, Some("task"), Some("tasks"), K::Named(C::Task), "a command"),
    unhashed(
        spelled(
            C::Graph,
            Some("schedule"),
            Some("schedules"),
            K::Named(C::Schedule),
            "images and tasks rebuilt together",
        ),
        "picks what a run rebuilds, not what it makes",
    ),
    unhashed(
        spelled(
            C::Graph,
            Some("group"),
            Some("groups"),
            K::NamedLists,
            "a named selection of images, tasks and groups",
        ),
        "picks what a run builds, not what it makes",
    ),
    expanded(key(
        C::Graph,
        "variables",
        K::Pairs,
        "variables every string may use as `${NAME}`, with their defaults",
    )),
    expanded(spelled(
        C::Graph,
        Some("template"),
        Some("templates"),
        K::Named(C::Image),
        "image settings that images `inherits`",
    )),
    key(C::Graph, "mirrors", K::Texts, "more registries every image is also pushed to"),
    key(C::Graph, "labels", K::Metadata, "labels of every image's config (values are templates)"),
    key(C::Graph, "annotations", K::Metadata, "OCI annotations of every manifest and index (templates)"),
    key(
        C::Graph,
        "sign",
        K::Block(C::Sign),
        "sign every pushed index and platform manifest (cosign's format)",
    ),
    key(C::Graph, "sbom", K::Flag, "an SPDX SBOM attestation for every platform image (default off)"),
    key(
        C::Graph,
        "provenance",
        K::Flag,
        "a SLSA provenance attestation per platform image (default: on when pushed)",
    ),
    // `naming`.
    spelled(
        C::Naming,
        None,
        Some("preset"),
        K::Text,
        "`standard` or `kaniko-builder` (KDL: the first value)",
    ),
    key(C::Naming, "repository", K::Text, "the template of each image's repository"),
    key(C::Naming, "platform", K::Text, "the template of a per-platform build's tag"),
    key(C::Naming, "manifest", K::Text, "the template of the multi-platform manifest's tag"),
    key(C::Naming, "tag", K::Text, "the template of each extra tag"),
    // An executor.
    unhashed(
        need(
            key(C::Executor, "platform", K::Text, "the platform it builds, `os/arch[/variant]`"),
            Need::Required,
        ),
        "which executor runs a platform's work; the node's platform is hashed",
    ),
    unhashed(
        key(C::Executor, "jobs", K::Integer, "how many nodes it runs at a time (1–1024, default 1)"),
        "how many nodes run at once",
    ),
    unhashed(
        key(C::Executor, "gitlab-tags", K::Text, "the GitLab runner tags of its CI jobs, comma-separated"),
        "only the CI files `hephy ci` writes",
    ),
    unhashed(
        key(C::Executor, "runs-on", K::Text, "the GitHub runner labels of its CI jobs, comma-separated"),
        "only the CI files `hephy ci` writes",
    ),
    unhashed(
        key(C::Executor, "ssh", K::Text, "run its image builds on `user@host[:port]` over ssh"),
        "where builds run, not what they make",
    ),
    unhashed(
        key(C::Executor, "buildkit", K::Text, "run its image builds on this BuildKit daemon address"),
        "where builds run, not what they make",
    ),
    unhashed(
        key(C::Executor, "kubernetes", K::Text, "run its image builds as kaniko Jobs in this namespace"),
        "where builds run, not what they make",
    ),
    // A secret.
    unhashed(
        need(key(C::Secret, "env", K::Text, "read it from this environment variable"), Need::OneOf),
        "where the value is read from; the value's fingerprint is hashed",
    ),
    unhashed(
        need(key(C::Secret, "file", K::Text, "read it from this file"), Need::OneOf),
        "where the value is read from; the value's fingerprint is hashed",
    ),
    // An image: its keys are the image key table's (`image_keys!` in `analyze/images.rs`),
    // placed here. `context` or `git` must be given, by the image or a template it inherits
    // (checked after expansion, so neither is required).
    // The `git` node of an image (KDL).
    spelled(C::Git, Some("ref"), None, K::Text, "the branch, tag or commit to build"),
    // `ko`.
    key(C::Ko, "import-path", K::Text, "the Go package to build"),
    key(C::Ko, "base-image", K::Text, "ko's base image"),
    key(C::Ko, "ldflags", K::Text, "`go build -ldflags`"),
    // A `from` dependency.
    need(key(C::From, "arg", K::Text, "the build arg that receives the dependency's reference"), Need::AnyOf),
    key(C::From, "target", K::Text, "which of the dependency's targets"),
    key(C::From, "registry-arg", K::Text, "a build arg that receives the reference's repository part"),
    need(
        key(C::From, "context", K::Text, "the named build context that receives the dependency"),
        Need::AnyOf,
    ),
    key(C::From, "platform", K::Text, "`same` (default) or `build`: the build machine's platform"),
    // An external named build context.
    need(
        key(C::BuildContext, "image", K::Text, "a registry image, pinned by digest at plan time"),
        Need::OneOf,
    ),
    need(key(C::BuildContext, "path", K::Text, "a folder, relative to the graph file"), Need::OneOf),
    need(key(C::BuildContext, "git", K::Text, "a git repository's URL"), Need::OneOf),
    need(key(C::BuildContext, "oci-layout", K::Text, "an OCI image layout folder"), Need::OneOf),
    key(C::BuildContext, "ref", K::Text, "`git`: a branch, tag or commit; `oci-layout`: a tag or digest"),
    key(C::BuildContext, "dir", K::Text, "`git`: the folder inside the repository"),
    // A task.
    need(key(C::Task, "run", K::Texts, "the command, an argv run without a shell"), Need::Required),
    key(C::Task, "inputs", K::Texts, "globs of the files it reads"),
    key(C::Task, "outputs", K::Texts, "globs of the files it writes"),
    key(C::Task, "env", K::Pairs, "environment variables"),
    key(C::Task, "platforms", K::Texts, "run once per platform, on its executor"),
    key(C::Task, "after", K::Texts, "images or tasks run first"),
    unhashed(
        key(C::Task, "timeout", K::Text, "stop and fail a run that takes longer"),
        "how long a run may take changes nothing it makes",
    ),
    key(C::Task, "secrets", K::Texts, "secrets set in its environment"),
    expanded(key(C::Task, "matrix", K::NamedLists, "one copy for each combination of these values")),
    // A schedule.
    unhashed(
        need(key(C::Schedule, "rebuild", K::Texts, "the images and tasks it rebuilds"), Need::AnyOf),
        "picks what a run rebuilds, not what it makes",
    ),
    unhashed(
        need(
            key(C::Schedule, "refresh", K::Flag, "also re-resolve base images and upstream refs"),
            Need::AnyOf,
        ),
        "re-resolves refs and tags; what they resolve to is hashed",
    ),
    // A group (KDL).
    unhashed(
        spelled(C::Group, Some("members"), None, K::Texts, "its images, tasks and groups"),
        "picks what a run builds, not what it makes",
    ),
    // `sign`.
    need(
        key(C::Sign, "key", K::Text, "cosign's encrypted private key file, relative to the graph file"),
        Need::Required,
    ),
];

/// The image's keys: each spelling of the image key table's rows (`image_keys!` in
/// `analyze/images.rs`) as a [`Key`], at its `listed` position. Fails to compile when two are
/// listed at one place, or one is listed past the image's keys.
const fn image_keys() -> [Key; IMAGE_KEY_ROWS.len()] {
    let mut out = [WRITTEN[0]; IMAGE_KEY_ROWS.len()];
    let mut placed = [false; IMAGE_KEY_ROWS.len()];
    let mut i = 0;
    while i < IMAGE_KEY_ROWS.len() {
        let row = IMAGE_KEY_ROWS[i];
        assert!(
            row.listed < IMAGE_KEY_ROWS.len(),
            "a row of `image_keys!` is `listed` past the image's keys"
        );
        assert!(!placed[row.listed], "two rows of `image_keys!` are `listed` at one place");
        placed[row.listed] = true;
        out[row.listed] = Key {
            construct: Construct::Image,
            kdl: row.kdl,
            yaml: Some(row.key),
            kind: row.kind,
            need: Need::Optional,
            meaning: row.meaning,
            hash: row.hash,
        };
        i += 1;
    }
    out
}

/// [`WRITTEN`] with the image's keys ([`image_keys`]) where the image's construct comes: after
/// the keys of the constructs before it in [`Construct::ALL`].
const fn keys_with_the_image_table() -> [Key; WRITTEN.len() + IMAGE_KEY_ROWS.len()] {
    const fn before_image(construct: Construct) -> bool {
        matches!(construct, Construct::Graph | Construct::Naming | Construct::Executor | Construct::Secret)
    }
    let image = image_keys();
    let mut all = [WRITTEN[0]; WRITTEN.len() + IMAGE_KEY_ROWS.len()];
    let (mut written, mut at) = (0, 0);
    while written < WRITTEN.len() && before_image(WRITTEN[written].construct) {
        all[at] = WRITTEN[written];
        (written, at) = (written + 1, at + 1);
    }
    let mut i = 0;
    while i < image.len() {
        all[at] = image[i];
        (i, at) = (i + 1, at + 1);
    }
    while written < WRITTEN.len() {
        assert!(
            !before_image(WRITTEN[written].construct)
                && !matches!(WRITTEN[written].construct, Construct::Image),
            "the written keys are not in the order of `Construct::ALL`, or name an image key"
        );
        all[at] = WRITTEN[written];
        (written, at) = (written + 1, at + 1);
    }
    all
}

/// Each construct's keys (in the order of [`Construct::ALL`]): KDL's, then YAML's.
type Lists = Vec<[Vec<&'static str>; 2]>;

/// The keys `construct` takes in `syntax`, in table order.
pub fn keys(construct: Construct, syntax: Syntax) -> &'static [&'static str] {
    static LISTS: LazyLock<Lists> = LazyLock::new(|| {
        Construct::ALL
            .iter()
            .map(|&c| {
                let of = |syntax| {
                    KEYS.iter().filter(|k| k.construct == c).filter_map(|k| k.name(syntax)).collect()
                };
                [of(Syntax::Kdl), of(Syntax::Yaml)]
            })
            .collect()
    });
    let at = Construct::ALL.iter().position(|c| *c == construct).unwrap_or_default();
    let column = match syntax {
        Syntax::Kdl => 0,
        Syntax::Yaml => 1,
    };
    LISTS.get(at).map_or(&[], |lists| lists[column].as_slice())
}

/// The JSON Schema (draft 2020-12) of a `hephy.yaml` graph file, made from [`KEYS`].
pub fn json_schema() -> Value {
    let mut defs = Map::new();
    defs.insert(
        "scalar".to_owned(),
        json!({
            "description": "a value, read as the text written (`1.10` is the text `1.10`)",
            "type": ["string", "number", "boolean"]
        }),
    );
    defs.insert(
        "scalars".to_owned(),
        json!({
            "description": "a list of values, or one value for a list of one",
            "anyOf": [{ "$ref": "#/$defs/scalar" }, { "type": "array", "items": { "$ref": "#/$defs/scalar" } }]
        }),
    );
    for construct in Construct::ALL {
        if construct != Construct::Graph && !keys(construct, Syntax::Yaml).is_empty() {
            defs.insert(construct.def().to_owned(), object(construct));
        }
    }
    let mut schema = Map::new();
    schema.insert("$schema".to_owned(), json!("https://json-schema.org/draft/2020-12/schema"));
    schema.insert("title".to_owned(), json!("hephy graph file (hephy.yaml)"));
    schema.insert(
        "description".to_owned(),
        json!(
            "Images, tasks, platforms, executors, schedules and groups of a hephy build graph; see SPEC.md"
        ),
    );
    if let Value::Object(top) = object(Construct::Graph) {
        schema.extend(top);
    }
    schema.insert("$defs".to_owned(), Value::Object(defs));
    Value::Object(schema)
}

/// The schema of one construct's block: its keys, and which must be given.
fn object(construct: Construct) -> Value {
    let rows: Vec<&Key> = KEYS.iter().filter(|k| k.construct == construct && k.yaml.is_some()).collect();
    let mut properties = Map::new();
    for row in &rows {
        let mut value = kind(row.kind);
        if let Value::Object(map) = &mut value {
            map.insert("description".to_owned(), json!(row.meaning));
        }
        properties.insert(row.yaml.unwrap_or_default().to_owned(), value);
    }
    let names =
        |need: Need| -> Vec<&str> { rows.iter().filter(|k| k.need == need).filter_map(|k| k.yaml).collect() };
    let required = names(Need::Required);
    let mut object = Map::new();
    let optional = required.is_empty() && names(Need::AnyOf).is_empty() && names(Need::OneOf).is_empty();
    object.insert("type".to_owned(), if optional { json!(["object", "null"]) } else { json!("object") });
    object.insert("properties".to_owned(), Value::Object(properties));
    object.insert("additionalProperties".to_owned(), json!(false));
    if !required.is_empty() {
        object.insert("required".to_owned(), json!(required));
    }
    for (need, word) in [(Need::AnyOf, "anyOf"), (Need::OneOf, "oneOf")] {
        let group = names(need);
        if !group.is_empty() {
            let choices: Vec<Value> = group.iter().map(|k| json!({ "required": [k] })).collect();
            object.insert(word.to_owned(), Value::Array(choices));
        }
    }
    Value::Object(object)
}

/// The schema of one kind of value.
fn kind(kind: Kind) -> Value {
    let reference = |c: Construct| json!({ "$ref": format!("#/$defs/{}", c.def()) });
    match kind {
        Kind::Text => json!({ "$ref": "#/$defs/scalar" }),
        Kind::Texts => json!({ "$ref": "#/$defs/scalars" }),
        Kind::Integer => json!({ "type": ["integer", "string"], "pattern": "^[+-]?[0-9]+$" }),
        Kind::Flag => json!({ "enum": [true, false, "true", "false", "yes", "no", "on", "off"] }),
        Kind::Pairs => json!({
            "type": ["object", "null"],
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
            "additionalProperties": { "$ref": "#/$defs/scalar" }
        }),
        Kind::Metadata => json!({
            "type": ["object", "null"],
            "propertyNames": { "pattern": "^[^\\s=]+$" },
            "additionalProperties": { "$ref": "#/$defs/scalar" }
        }),
        Kind::Block(c) => reference(c),
        Kind::Named(c) => json!({ "type": ["object", "null"], "additionalProperties": reference(c) }),
        Kind::NamedLists => {
            json!({ "type": ["object", "null"], "additionalProperties": { "$ref": "#/$defs/scalars" } })
        }
        Kind::Dependencies(c) => json!({
            "type": ["object", "null"],
            "additionalProperties": {
                "anyOf": [reference(c), { "type": "array", "items": reference(c) }]
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Code;
    use crate::source::SourceFile;

    /// A graph that writes `key` in `construct`, in `syntax`.
    fn with_key(construct: Construct, syntax: Syntax, key: &str) -> String {
        match (syntax, construct) {
            (Syntax::Kdl, Construct::Graph) => format!("{key}\n"),
            (Syntax::Kdl, Construct::Naming) => format!("naming {key}=\"x\"\n"),
            (Syntax::Kdl, Construct::Executor) => format!("executor \"e\" {key}=\"x\"\n"),
            (Syntax::Kdl, Construct::Secret) => format!("secret \"S\" {key}=\"x\"\n"),
            (Syntax::Kdl, Construct::Image) => format!("image \"a\" {{\n    {key}\n}}\n"),
            (Syntax::Kdl, Construct::Git) => format!("image \"a\" {{\n    git \"u\" {key}=\"x\"\n}}\n"),
            (Syntax::Kdl, Construct::Ko) => format!("image \"a\" {{\n    ko {key}=\"x\"\n}}\n"),
            (Syntax::Kdl, Construct::From) => format!("image \"a\" {{\n    from \"b\" {key}=\"x\"\n}}\n"),
            (Syntax::Kdl, Construct::BuildContext) => {
                format!("image \"a\" {{\n    build-context \"b\" {key}=\"x\"\n}}\n")
            }
            (Syntax::Kdl, Construct::Task) => format!("task \"t\" {{\n    {key}\n}}\n"),
            (Syntax::Kdl, Construct::Schedule) => format!("schedule \"s\" {{\n    {key}\n}}\n"),
            (Syntax::Kdl, Construct::Group) => format!("group \"g\" {{\n    {key}\n}}\n"),
            (Syntax::Kdl, Construct::Sign) => format!("sign {key}=\"x\"\n"),
            (Syntax::Yaml, Construct::Graph) => format!("{key}: x\n"),
            (Syntax::Yaml, Construct::Naming) => format!("naming: {{ {key}: x }}\n"),
            (Syntax::Yaml, Construct::Executor) => format!("executors: {{ e: {{ {key}: x }} }}\n"),
            (Syntax::Yaml, Construct::Secret) => format!("secrets: {{ S: {{ {key}: x }} }}\n"),
            (Syntax::Yaml, Construct::Image) => format!("images: {{ a: {{ {key}: x }} }}\n"),
            (Syntax::Yaml, Construct::Ko) => format!("images: {{ a: {{ ko: {{ {key}: x }} }} }}\n"),
            (Syntax::Yaml, Construct::From) => {
                format!("images: {{ a: {{ from: {{ b: {{ {key}: x }} }} }} }}\n")
            }
            (Syntax::Yaml, Construct::BuildContext) => {
                format!("images: {{ a: {{ build-contexts: {{ b: {{ {key}: x }} }} }} }}\n")
            }
            (Syntax::Yaml, Construct::Task) => format!("tasks: {{ t: {{ {key}: x }} }}\n"),
            (Syntax::Yaml, Construct::Schedule) => format!("schedules: {{ s: {{ {key}: x }} }}\n"),
            (Syntax::Yaml, Construct::Sign) => format!("sign: {{ {key}: x }}\n"),
            (Syntax::Yaml, Construct::Git | Construct::Group) => unreachable!("YAML has no such block"),
        }
    }

    /// The unknown-key problems reading `text` reports.
    fn unknown_keys(text: &str, syntax: Syntax) -> Vec<String> {
        let file = if syntax == Syntax::Kdl { "hephy.kdl" } else { "hephy.yaml" };
        let source = SourceFile::new(std::path::PathBuf::from(file), syntax, text);
        match crate::read(&source) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .iter()
                .filter(|p| p.code() == Code::UnknownKey && p.message().starts_with("unknown"))
                .map(|p| p.message().to_owned())
                .collect(),
        }
    }

    /// Each front-end takes every key the table gives it, and refuses a key the table lacks.
    #[test]
    fn the_front_ends_take_the_tables_keys_and_no_others() {
        for syntax in [Syntax::Kdl, Syntax::Yaml] {
            for construct in Construct::ALL {
                let keys = keys(construct, syntax);
                for key in keys {
                    let text = with_key(construct, syntax, key);
                    assert_eq!(unknown_keys(&text, syntax), Vec::<String>::new(), "{syntax:?}: {text}");
                }
                if !keys.is_empty() {
                    let text = with_key(construct, syntax, "bogus");
                    assert_eq!(unknown_keys(&text, syntax).len(), 1, "{syntax:?}: {text}");
                }
            }
        }
    }

    /// A YAML value of `kind`, as the schema describes it.
    fn sample(kind: Kind) -> &'static str {
        match kind {
            Kind::Text => "x",
            Kind::Texts => "[x, y]",
            Kind::Integer => "2",
            Kind::Flag => "true",
            Kind::Pairs => "{ A: x }",
            Kind::Metadata => "{ org.example.a: x }",
            // A block with its required keys.
            Kind::Block(Construct::Sign) => "{ key: x }",
            Kind::Block(_) | Kind::Named(_) => "{}",
            Kind::NamedLists => "{ g: [a] }",
            Kind::Dependencies(_) => "{ b: [{ arg: A }, { context: c }] }",
        }
    }

    /// The kind the table gives each YAML key is one the YAML reader takes (no shape error),
    /// and one the JSON Schema accepts.
    #[test]
    fn the_yaml_reader_takes_each_keys_kind() {
        let schema = json_schema();
        let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
        for key in KEYS {
            let Some(name) = key.yaml else { continue };
            let text = with_key(key.construct, Syntax::Yaml, name)
                .replace(": x", &format!(": {}", sample(key.kind)));
            let source = SourceFile::new(std::path::PathBuf::from("hephy.yaml"), Syntax::Yaml, text.as_str());
            if let Err(problems) = crate::read(&source) {
                let shape: Vec<&str> =
                    problems.iter().filter(|p| p.code() == Code::WrongType).map(|p| p.message()).collect();
                assert!(shape.is_empty(), "{text}: {shape:?}");
            }
            let value = crate::yaml::value(&text).expect("YAML").map_or(Value::Null, |v| json(&v));
            // Required keys of the construct are missing from this one-key sample: only errors
            // about this key's own value count.
            let own: Vec<String> = validator
                .iter_errors(&value)
                .filter(|e| e.instance_path().to_string().contains(&format!("/{name}")))
                .map(|e| e.to_string())
                .collect();
            assert!(own.is_empty(), "{text}: {own:?}");
        }
    }

    /// SPEC.md shows every key of the table, in each syntax that has it.
    #[test]
    fn spec_names_every_key() {
        let spec =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../SPEC.md")).expect("SPEC.md");
        let mut missing = Vec::new();
        for key in KEYS {
            if let Some(name) = key.kdl {
                let shown = match key.construct.kdl_form() {
                    KdlForm::Properties => spec.contains(&format!(" {name}=")),
                    KdlForm::Nodes => [format!("`{name} "), format!("{{ {name} "), format!("; {name} ")]
                        .iter()
                        .any(|s| spec.contains(s.as_str())),
                };
                if !shown {
                    missing.push(format!("{:?} `{name}` (KDL)", key.construct));
                }
            }
            if let Some(name) = key.yaml
                && !spec.contains(&format!("{name}: "))
            {
                missing.push(format!("{:?} `{name}:` (YAML)", key.construct));
            }
        }
        assert!(missing.is_empty(), "SPEC.md does not show: {missing:#?}");
    }

    /// The image's keys in [`KEYS`] are the spellings of the image key table's rows
    /// (`image_keys!`), each once, and `--set` sets only those.
    #[test]
    fn the_image_keys_are_the_image_key_tables() {
        use crate::analyze::IMAGE_KEY_ROWS;
        let image: Vec<(Option<&str>, Option<&str>)> =
            KEYS.iter().filter(|k| k.construct == Construct::Image).map(|k| (k.kdl, k.yaml)).collect();
        let rows: Vec<(Option<&str>, Option<&str>)> = {
            let mut rows: Vec<_> = IMAGE_KEY_ROWS.iter().collect();
            rows.sort_by_key(|r| r.listed);
            rows.into_iter().map(|r| (r.kdl, Some(r.key))).collect()
        };
        assert_eq!(image, rows);
        for field in crate::expand::SETTABLE {
            assert!(
                IMAGE_KEY_ROWS.iter().any(|r| r.key == *field && r.set.is_some()),
                "`--set` field `{field}` is no settable spelling of the table"
            );
        }
    }

    /// A value of `kind` for the image key `name` (KDL: `kdl`), holding `v` where the kind holds
    /// a text: an image `x` with it, in KDL (where KDL has the key) and in YAML, each escaped as
    /// the printer escapes.
    fn image_key_sample(name: &str, kdl: Option<&str>, kind: Kind, v: &str) -> (Option<String>, String) {
        use crate::escape::{kdl_string, yaml_scalar};
        let (k, y) = (kdl_string(v), yaml_scalar(v));
        let (kdl_value, yaml_value) = match kind {
            Kind::Text => (format!(" {k}"), y),
            Kind::Texts => (format!(" {k} \"b\""), format!("[{y}, b]")),
            Kind::Pairs | Kind::Metadata => (format!(" A={k}"), format!("{{ A: {y} }}")),
            Kind::Flag => (" #false".to_owned(), "false".to_owned()),
            Kind::Block(Construct::Sign) => (format!(" key={k}"), format!("{{ key: {y} }}")),
            Kind::Block(Construct::Ko) => (format!(" import-path={k}"), format!("{{ import-path: {y} }}")),
            Kind::Dependencies(Construct::From) => {
                (format!(" {k} arg=\"B\""), format!("{{ {y}: {{ arg: B }} }}"))
            }
            Kind::Named(Construct::BuildContext) => {
                (format!(" {k} image=\"i\""), format!("{{ {y}: {{ image: i }} }}"))
            }
            Kind::NamedLists => (format!(" {{\n        k {k}\n    }}"), format!("{{ k: [{y}] }}")),
            other => panic!("`{name}`: no sample of kind {other:?}; give it one here"),
        };
        (
            kdl.map(|k| format!("image \"x\" {{\n    {k}{kdl_value}\n}}\n")),
            format!("images:\n  x:\n    {name}: {yaml_value}\n"),
        )
    }

    /// `text`, read as `syntax` (its problems a panic).
    fn read_graph(text: &str, syntax: Syntax) -> crate::document::Document {
        let file = if syntax == Syntax::Kdl { "hephy.kdl" } else { "hephy.yaml" };
        let source = SourceFile::new(std::path::PathBuf::from(file), syntax, text);
        crate::read(&source).unwrap_or_else(|problems| panic!("{problems:?}\nin:\n{text}"))
    }

    /// A draft's `Debug` text without its spans: what was written, not where.
    fn draft_shape(image: &crate::document::ImageDraft) -> String {
        let text = format!("{image:?}");
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("span: SourceSpan {") {
            out.push_str(&rest[..at]);
            rest = rest[at..].split_once('}').map_or("", |(_, after)| after);
        }
        out.push_str(rest);
        out
    }

    /// Every spelling of every row, holding `v`, read in both syntaxes, printed and read back:
    /// the same image, and the only definition of the graph.
    fn every_image_key_round_trips(v: &str) {
        use crate::analyze::IMAGE_KEY_ROWS;
        use crate::document::ImageDraft;
        let empty = ImageDraft::new(crate::source::Spanned::new("x".to_owned(), (0..0).into()));
        for row in IMAGE_KEY_ROWS {
            let (kdl, yaml) = image_key_sample(row.key, row.kdl, row.kind, v);
            for (text, syntax) in kdl.into_iter().map(|t| (t, Syntax::Kdl)).chain([(yaml, Syntax::Yaml)]) {
                let doc = read_graph(&text, syntax);
                let image = &doc.images[0];
                assert_ne!(
                    draft_shape(image),
                    draft_shape(&empty),
                    "`{}` read into no field of the draft:\n{text}",
                    row.key
                );
                let printed = crate::print(&doc, syntax);
                let again = read_graph(&printed, syntax);
                assert_eq!(
                    (again.images.len(), again.tasks.len(), again.templates.len()),
                    (1, 0, 0),
                    "`{}` printed as more than its image:\n{printed}",
                    row.key
                );
                assert_eq!(
                    draft_shape(&again.images[0]),
                    draft_shape(image),
                    "`{}` printed as:\n{printed}",
                    row.key
                );
            }
        }
    }

    /// Every spelling of every row of the image key table is read by both front-ends (KDL:
    /// where it has a KDL spelling) into the draft, printed back by the printer and read again
    /// as it was: the readers and the printers dispatch every key through the table.
    #[test]
    fn every_image_key_reads_and_prints_in_both_syntaxes() {
        every_image_key_round_trips("a");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any text in any image key (every Unicode line end, control and markup character,
        /// quotes, a KDL node's text) prints as that text in both syntaxes: read back, it is
        /// the same image and nothing besides.
        #[test]
        fn every_image_key_reads_back_any_value(
            v in proptest::prop_oneof![proptest::prelude::any::<String>(), crate::escape::tests::hostile()]
        ) {
            every_image_key_round_trips(&v);
        }
    }

    /// Each construct lists a key once per syntax.
    #[test]
    fn keys_are_unique_per_construct() {
        for syntax in [Syntax::Kdl, Syntax::Yaml] {
            for construct in Construct::ALL {
                let keys = keys(construct, syntax);
                let unique: std::collections::HashSet<_> = keys.iter().collect();
                assert_eq!(unique.len(), keys.len(), "{construct:?} in {syntax:?}");
            }
        }
    }

    /// A YAML value as JSON, typed the way editors type YAML 1.2 (the core schema): a plain
    /// `2` is a number, `true` a boolean, `~` null; quoted scalars and keys stay strings.
    fn json(value: &crate::yaml::Value) -> Value {
        use crate::yaml::Kind as Y;
        match &value.kind {
            Y::Scalar { text, plain: false } => Value::String(text.clone()),
            Y::Scalar { text, plain: true } => {
                if crate::yaml::is_null(text) {
                    Value::Null
                } else if let Some(b) = match text.as_str() {
                    "true" | "True" | "TRUE" => Some(true),
                    "false" | "False" | "FALSE" => Some(false),
                    _ => None,
                } {
                    Value::Bool(b)
                } else if let Ok(n) = text.parse::<i64>() {
                    json!(n)
                } else if let Some(n) =
                    text.parse::<f64>().ok().filter(|n| n.is_finite() && !text.contains(['i', 'n', 'I', 'N']))
                {
                    json!(n)
                } else {
                    Value::String(text.clone())
                }
            }
            Y::Seq(items) => Value::Array(items.iter().map(json).collect()),
            Y::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match &k.kind {
                            Y::Scalar { text, .. } => text.clone(),
                            _ => String::new(),
                        };
                        (key, json(v))
                    })
                    .collect(),
            ),
        }
    }

    fn validate(path: &std::path::Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let value =
            crate::yaml::value(&text).map_err(|p| p.message().to_owned())?.map_or(Value::Null, |v| json(&v));
        let schema = json_schema();
        let validator = jsonschema::draft202012::new(&schema).map_err(|e| format!("the schema: {e}"))?;
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
    }

    fn yaml_files(dir: &str) -> Vec<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("a corpus folder")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        files
    }

    /// Every example's `graph.yaml` and every graph of the good corpus is valid by the schema.
    #[test]
    fn the_schema_accepts_every_good_graph() {
        let mut files: Vec<_> = ["kaniko-builder", "quickstart", "tasks"]
            .iter()
            .map(|e| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{e}/graph.yaml"))
            })
            .collect();
        files.extend(yaml_files("tests/good"));
        assert!(files.len() >= 5, "{files:?}");
        for file in files {
            assert_eq!(validate(&file), Ok(()), "{}", file.display());
        }
    }

    /// The bad corpus's unknown keys and wrong shapes are invalid by the schema too.
    #[test]
    fn the_schema_refuses_unknown_keys() {
        let mut refused = 0;
        for file in yaml_files("../tests/bad") {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.contains("unknown_key") || name.contains("unknown_top") {
                assert!(validate(&file).is_err(), "{name} passes the schema");
                refused += 1;
            }
        }
        assert!(refused >= 2, "only {refused} files of unknown keys found");
    }
}
