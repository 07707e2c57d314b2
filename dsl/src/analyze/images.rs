//! Images: the image key table (`image_key_rows!`: the keys of one text, a list or name/value
//! pairs, each with its draft field, its row in the language's table, its printing, its
//! lowering and its part in the build key), each key's lowering function and key function
//! beside it, the lowering of the other keys (platforms, …) in `Analyzer::image`, and their
//! part in the build key (`structured_image_keys!`, with their key functions): every setting
//! an image's keys put into a build key ([`Image::key_settings`]).

use std::borrow::Cow;

use super::*;

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

/// The image keys that hold one text, a list of texts or name/value pairs, one row each, in
/// three sections: `texts:` and `lists:`, whose rows are
///
/// `field = "key" (kdl None)? [PLACE POSITION (yaml POSITION)? (, set POSITION)?, listed POSITION]
/// lower LOWERING hash KEYED meaning "…"`
///
/// and `pairs:`, whose rows are
///
/// `field = "key" [PLACE POSITION (yaml POSITION)?, listed POSITION]
/// lower LOWERING hash KEYED kind KIND meaning "…"`
///
/// (spelled alike in both syntaxes, not set by `--set`, whose `args.ARG` is expansion's own;
/// `kind` is the [`crate::schema::Kind`] of its values: `Pairs`, names of variables, or
/// `Metadata`, names of labels and annotations, whose values are templates).
///
/// Every walk over these keys takes them from here, in the rows' order, and no other code
/// lists them: the draft's fields (`field`: an `Option<Text>` for a text, a `Vec<Text>` for a
/// list, a `Vec<(Text, Text)>` for pairs, empty in [`ImageDraft::new`]) and its walks
/// (expansion's visitor, its merge of templates (pairs merge by name), its count of strings,
/// `hephy show`'s fields, `--set`; `image_draft_walks!` in `document.rs`), both readers (a
/// node or a map entry of the key's name; KDL adds up a key written twice), both printers
/// ([`ImageDraft::printed`]: at their `Place`, by position; `yaml` gives YAML's where it
/// differs from KDL's), `--set` (`set` makes the key a field of
/// `--set image.NAME.FIELD=VALUE`, at that position in its list: [`crate::expand::SETTABLE`]),
/// the language's table ([`crate::schema::KEYS`]: the image's key spelled `"key"` in both
/// syntaxes, or in YAML only with `kdl None`, of kind `Text`, `Texts` or the pair's `kind`,
/// with its `meaning`;
/// `listed` is its position among the image's keys there, which is the order the front-ends
/// name them in), the analyzer's lowering (`lower`, a `Lowering`: the generated
/// `Analyzer::lower_image_keys` calls each `Own` function in the rows' order, so a row comes
/// after the rows its function reads from the [`Image`]: `builder` before `dockerfile` before
/// the source, `compression` after `builder`, the pairs (`ko-env`'s reads `builder`) after the
/// others; the graph's labels and annotations come in [`ImageDefaults`]) and the build key (`hash`, a `Keyed`: the
/// generated [`Image::key_settings`] calls each `Put` function, as it calls those of
/// `structured_image_keys!` (the image's other keys, which say there who hashes them); the
/// engine calls it for an image's builds and its index and puts only what it resolves or
/// knows: `Identity`, `Resolved`, `Nodes`, `Destination`; `Unhashed("why")` makes the
/// table's row `Hash::Unhashed("why")`, any other `Hash::Hashed`).
///
/// Adding an image key with its own checks touches three files of code: (1) here, its row,
/// its lowering function `lower_KEY(&mut self, value, draft, defaults, image)` (value:
/// `Option<&Text>`, `&[Text]` for a list, `&[(Text, Text)]` for pairs) beside the others
/// and, for `Put`, its key
/// function `key_KEY(image, graph, node, put)`; (2) its field in [`Image`] (`model.rs`) and its
/// value in `Image::unset`; (3) the builder that reads it. Besides, SPEC.md's line and
/// `docs/hephy.schema.json` made again by `hephy schema`. A plain key (`lower Plain hash
/// Written`, one text only) is its row alone: it is lowered into [`Image::plain`], which is
/// hashed whole. A key of another kind (a block, a flag) has its row in `structured_image_keys!`
/// instead, with its key function there, and its lowering in [`Analyzer::image`] or its callers.
/// The engine's `key_table` test plans two graphs per key and names one whose `hash` column
/// does not do what the row says (a key whose checks refuse the generic sample values of its
/// kind, `a` and `b`, is named there too, and gets a pair of its own in its `samples`). A
/// document stored by a build of other rows is never reused (`stored.rs` keys it by the build).
///
/// The macro hands the rows to `$walk!`, a macro of the module that makes something of them,
/// after the tokens given after `$walk` (the rows are written once, here; each walk matches
/// the whole row and uses its columns).
macro_rules! image_key_rows {
    ($walk:ident $($before:tt)*) => {
        $walk! {
            $($before)*
            texts:
                builder = "builder" [Head 0, set 4, listed 5]
                    lower Own(lower_builder) hash Identity
                    meaning "this image's builder",
                dockerfile = "dockerfile" [Head 4, set 1, listed 4]
                    lower Own(lower_dockerfile) hash Put(key_dockerfile)
                    meaning "the Dockerfile, relative to the context",
                context = "context" [Head 3, set 0, listed 0]
                    lower Own(lower_source) hash Put(key_context)
                    meaning "the build context folder",
                git = "git" [Head 1, set 2, listed 2]
                    lower With("context") hash Put(key_git)
                    meaning "build from this git repository",
                git_ref = "ref" kdl None [Head 2, set 3, listed 3]
                    lower With("context") hash Resolved
                    meaning "the branch, tag or commit of `git` (KDL: `git \"URL\" ref=\"…\"`)",
                compression = "compression" [Head 6, set 6, listed 1]
                    lower Own(lower_compression) hash Put(key_compression)
                    meaning "layer compression of the `oci` builder: `gzip` or `zstd`",
                timeout = "timeout" [Head 5, set 5, listed 6]
                    lower Own(lower_timeout) hash Unhashed("how long a build may run changes nothing it makes")
                    meaning "stop and fail a build that runs longer",
                repository = "repository" [Tail 2 yaml 3, listed 21]
                    lower Own(lower_repository) hash Destination
                    meaning "the template of this image's repository, instead of naming's";
            lists:
                targets = "targets" [Head 7, set 8, listed 9]
                    lower Own(lower_targets) hash Nodes
                    meaning "several stages, each its own image",
                tags = "tags" [Tail 0, set 10, listed 12]
                    lower Own(lower_tags) hash Nodes
                    meaning "extra tags of the finished image",
                secrets = "secrets" [Tail 1, set 11, listed 7]
                    lower Own(lower_secrets) hash Resolved
                    meaning "secrets mounted into the build",
                mirrors = "mirrors" [Tail 3 yaml 2, listed 22]
                    lower Own(lower_mirrors) hash Destination
                    meaning "the registries it is also pushed to, instead of the graph's";
            pairs:
                args = "args" [Builder 1, listed 10]
                    lower Own(lower_args) hash Put(key_args) kind Pairs
                    meaning "build args",
                ko_env = "ko-env" [Builder 0, listed 16]
                    lower Own(lower_ko) hash Put(key_ko_env) kind Pairs
                    meaning "the `ko` builder's environment",
                labels = "labels" [Last 0, listed 19]
                    lower Own(lower_labels) hash Put(key_labels) kind Metadata
                    meaning "labels of this image's config, over the graph's",
                annotations = "annotations" [Last 1, listed 20]
                    lower Own(lower_annotations) hash Put(key_annotations) kind Metadata
                    meaning "OCI annotations of its manifests and index, over the graph's";
        }
    };
}
pub(crate) use image_key_rows;

/// The image's other keys, those lowered in [`Analyzer::image`] and its callers (blocks,
/// dependencies, flags: keys that are not one text, a list or pairs), one row each:
///
/// `"key" hash KEYED`
///
/// with the `hash` column of `image_key_rows!`, a `Keyed`: who puts the key into the build key.
/// The generated [`Image::key_settings`] calls each `Put(FUNCTION)`, a key function
/// `key_KEY(image, graph, node, put)` below, beside the table's; the engine puts the others
/// (`Resolved`: the contexts an external build context resolves to, the signing key's
/// fingerprint; `Dependencies`: the references it injects; `Nodes`: the node's own target).
/// `"key"` is the key's YAML spelling in [`crate::schema::KEYS`], where its row is written;
/// the schema's tests ask that every image key there (but the ones expanded away) is a row
/// here or in `image_key_rows!`, so a new structured key cannot be left out of the build key
/// unsaid, and the engine's `key_table` test checks that its `hash` does what the row says.
macro_rules! structured_image_keys {
    ($walk:ident $($before:tt)*) => {
        $walk! {
            $($before)*
            "target" hash Nodes,
            "platforms" hash Put(key_platforms),
            "from" hash Dependencies,
            "after" hash Dependencies,
            "ko" hash Put(key_ko),
            "build-contexts" hash Resolved,
            "sign" hash Resolved,
            "sbom" hash Put(key_sbom),
            "provenance" hash Put(key_provenance),
        }
    };
}

/// The walk of `structured_image_keys!`: their rows, for the checks that read them, and their
/// settings in the build key.
macro_rules! structured_keying {
    ($($key:literal hash $hash:ident $(($hash_by:tt))?),+ $(,)?) => {
        /// Every row of `structured_image_keys!`: the key and who puts it into the build key.
        #[cfg_attr(not(test), allow(dead_code, reason = "read by the schema's tests"))]
        pub(crate) const STRUCTURED_IMAGE_KEYS: &[(&str, crate::document::Keyed)] = &[
            $(($key, { use crate::document::Keyed; crate::document::keyed!($hash $(($hash_by))?) }),)+
        ];

        impl Image {
            /// The settings of the keys of `structured_image_keys!` that say `Put`.
            fn structured_key_settings<'a>(&'a self, graph: &Model, node: ImageNode, put: Put<'_, 'a>) {
                let image = self;
                $(key_row!(image, graph, node, put, $hash $(($hash_by))?);)+
            }
        }
    };
}

/// One row's lowering: its `Own` function, called with the key's value whether written or not
/// (keys lowered `With` another and `Plain` keys have none).
macro_rules! lower_row {
    ($a:ident, $value:expr, $draft:ident, $defaults:ident, $image:ident, Own($function:ident)) => {
        $a.$function($value, $draft, $defaults, $image)
    };
    ($a:ident, $value:expr, $draft:ident, $defaults:ident, $image:ident, $($other:tt)*) => {};
}

/// One row's settings in a build key: its `Put` function (the engine puts the others).
macro_rules! key_row {
    ($image:ident, $graph:ident, $node:ident, $put:ident, Put($function:ident)) => {
        $function($image, $graph, $node, $put)
    };
    ($image:ident, $graph:ident, $node:ident, $put:ident, $($other:tt)*) => {};
}

/// The analyzer's walks over the rows of `image_key_rows!`: the lowering of
/// each key (its `lower` column) and its settings in the build key (its `hash` column).
macro_rules! image_lowering {
    (
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
        impl Analyzer<'_> {
            /// Lowers every key of the table into `image`: each `Own` function in the rows'
            /// order, then the `Plain` keys as written.
            fn lower_image_keys(&mut self, draft: &ImageDraft, defaults: &ImageDefaults<'_>, image: &mut Image) {
                $(lower_row!(self, draft.$text.as_ref(), draft, defaults, image, $text_lower $(($text_lower_by))?);)+
                $(lower_row!(self, &draft.$list, draft, defaults, image, $list_lower $(($list_lower_by))?);)+
                $(lower_row!(self, &draft.$pair, draft, defaults, image, $pair_lower $(($pair_lower_by))?);)+
                image.plain = draft.plain_texts().map(|(key, value)| (key, value.value.clone())).collect();
            }
        }

        impl Image {
            /// The settings of the rows of `image_key_rows!` that say `Put`, and the plain
            /// keys as written in its builds' keys.
            fn table_key_settings<'a>(&'a self, graph: &Model, node: ImageNode, put: Put<'_, 'a>) {
                let image = self;
                $(key_row!(image, graph, node, put, $text_hash $(($text_hash_by))?);)+
                $(key_row!(image, graph, node, put, $list_hash $(($list_hash_by))?);)+
                $(key_row!(image, graph, node, put, $pair_hash $(($pair_hash_by))?);)+
                if node == ImageNode::Build {
                    for (key, value) in &image.plain {
                        put(Cow::Borrowed(key), Cow::Borrowed(value));
                    }
                }
            }
        }
    };
}

image_key_rows!(image_lowering);
structured_image_keys!(structured_keying);

impl Image {
    /// The settings its keys put into the build key of its `node` in `graph`, each given to
    /// `put` as its name and value: the rows that say `Put` of the image key table
    /// (`image_key_rows!`, with the plain keys as written in its builds' keys) and of its
    /// other keys (`structured_image_keys!`). The engine puts the rest: what the keys resolve
    /// to, the references it injects, the builder's identity, the nodes' names and where the
    /// nodes that push put their results.
    pub fn key_settings<'a>(
        &'a self,
        graph: &Model,
        node: ImageNode,
        put: &mut dyn FnMut(Cow<'a, str>, Cow<'a, str>),
    ) {
        self.table_key_settings(graph, node, put);
        self.structured_key_settings(graph, node, put);
    }
}

impl Analyzer<'_> {
    pub(super) fn image(&mut self, draft: &ImageDraft, defaults: &ImageDefaults<'_>) -> Image {
        let mut image = Image::unset(draft.name.clone());
        // Every key of the table (`image_key_rows!`), each by its row.
        self.lower_image_keys(draft, defaults, &mut image);
        // The keys each builder reads its own way.
        image.platforms = match &draft.platforms {
            Some(list) => self.platforms(list),
            None => defaults.platforms.to_vec(),
        };
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
        value: Option<&Text>,
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
        value: Option<&Text>,
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
        context: Option<&Text>,
        draft: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.source = match (&draft.git, context) {
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
                let reference = draft.git_ref.as_ref().map_or("HEAD", |r| r.as_str()).to_owned();
                ImageSource::Git { url: url.value.clone(), reference, dir }
            }
            (None, Some(dir)) => {
                if let Some(r) = &draft.git_ref {
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
        value: Option<&Text>,
        _: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.compression = value.map_or_else(Compression::default, |c| self.compression(c, image.builder));
    }

    /// `timeout`: a duration; the graph's when not written (none when written wrong).
    fn lower_timeout(
        &mut self,
        value: Option<&Text>,
        _: &ImageDraft,
        defaults: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.timeout = value.map_or(defaults.timeout, |t| self.timeout(t));
    }

    /// `repository`: a template of the names a pushed image may use.
    fn lower_repository(
        &mut self,
        value: Option<&Text>,
        _: &ImageDraft,
        _: &ImageDefaults<'_>,
        image: &mut Image,
    ) {
        image.publish.repository = value.map(|r| self.template(r, &[]));
    }

    /// `targets`: each a name, listed once.
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

/// `provenance`, in the index's key when it is not its default (on when the graph has a
/// registry, which the index's key holds already): a reason never names a setting the user
/// did not write.
fn key_provenance<'a>(image: &'a Image, graph: &Model, node: ImageNode, put: Put<'_, 'a>) {
    if node == ImageNode::Index && image.publish.provenance != graph.registry.is_some() {
        put("supply.provenance".into(), if image.publish.provenance { "true" } else { "false" }.into());
    }
}
