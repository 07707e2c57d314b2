//! Images: their sources (local context or git), builders, compression, args and tags.

use super::*;

impl Analyzer<'_> {
    pub(super) fn image(
        &mut self,
        draft: &ImageDraft,
        defaults: &[Platform],
        default_builder: Builder,
    ) -> Image {
        let builder = match &draft.builder {
            Some(b) => self.builder(b),
            None => default_builder,
        };
        let dockerfile = match &draft.dockerfile {
            Some(d) => self.relative(d, "Dockerfile").unwrap_or_default(),
            None => "Dockerfile".to_owned(),
        };
        let source = match (&draft.git, &draft.context) {
            (Some(url), dir) => {
                let dir =
                    dir.as_ref().and_then(|d| self.relative(d, "context")).unwrap_or_else(|| ".".to_owned());
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
                    let needs_dockerfile = builder.reads_dockerfile();
                    self.local_context(
                        dir,
                        normalized,
                        &dockerfile,
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
        let mut targets: Vec<String> = Vec::new();
        for t in &draft.targets {
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
        let args = self.pairs(&draft.args, "build arg");
        let platforms = match &draft.platforms {
            Some(list) => self.platforms(list),
            None => defaults.to_vec(),
        };
        let mut tags: Vec<String> = Vec::new();
        for tag in &draft.tags {
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
        for dep in &draft.deps {
            if let Some(arg) = dep.from.as_ref().and_then(|f| f.arg.as_ref())
                && let Some((key, _)) = draft.args.iter().find(|(k, _)| k.value == arg.value)
            {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("build arg `{}` is set twice", arg.value))
                        .label(arg.span, "set to the dependency's reference here")
                        .label(key.span, "and given a value here")
                        .help("remove it from `args`: `from` passes the reference itself"),
                );
            }
        }
        let ko_env = self.pairs(&draft.ko_env, "ko environment variable");
        let ko = match &draft.ko {
            Some(k) => Some(KoSettings {
                import_path: k.import_path.as_ref().map(|t| t.value.clone()),
                base_image: k.base_image.as_ref().map(|t| t.value.clone()),
                ldflags: k.ldflags.as_ref().map(|t| t.value.clone()),
                env: ko_env,
            }),
            None if !ko_env.is_empty() => Some(KoSettings { env: ko_env, ..KoSettings::default() }),
            None => None,
        };
        if ko.is_some() && builder != Builder::Ko {
            let span = draft
                .ko
                .as_ref()
                .map_or_else(|| draft.ko_env.first().map_or(draft.name.span, |(k, _)| k.span), |k| k.span);
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
        let compression =
            draft.compression.as_ref().map_or_else(Compression::default, |c| self.compression(c, builder));
        Image {
            ko,
            name: draft.name.clone(),
            source,
            dockerfile,
            builder,
            targets,
            args,
            platforms,
            tags,
            deps: Vec::new(),
            timeout: None,
            secrets: Vec::new(),
            compression,
            publish: Publish::default(),
            build_contexts: Vec::new(),
            plain: draft.plain_texts().map(|(key, value)| (key, value.value.clone())).collect(),
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
