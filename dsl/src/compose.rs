//! Building a [`Document`] in code, for tools that write graph files (`hephy import`,
//! `hephy init`): they compose the document and let [`crate::print`] spell it, rather than
//! writing either syntax by hand.
//!
//! Composed values carry an empty span (they were written by no one); nothing here checks a
//! value: `hephy check` on the printed file does.

use miette::SourceSpan;

use crate::document::{
    DependencyDraft, Document, ExecutorDraft, FromDraft, GroupDraft, ImageDraft, NamingDraft, ScheduleDraft,
    SecretDraft, Text,
};
use crate::source::{Spanned, Syntax};

/// A composed value, meant literally: a `${` in it is written `$${`, so that the graph's
/// variables do not read it as one of theirs.
fn text(value: &str) -> Text {
    Spanned::new(value.replace("${", "$${"), SourceSpan::from(0..0))
}

fn texts<S: AsRef<str>>(values: &[S]) -> Vec<Text> {
    values.iter().map(|v| text(v.as_ref())).collect()
}

impl Document {
    /// Sets the graph's `builder`.
    pub fn set_builder(&mut self, builder: &str) -> &mut Document {
        self.builder = Some(text(builder));
        self
    }

    /// Sets the graph's default `platforms`.
    pub fn set_platforms<S: AsRef<str>>(&mut self, platforms: &[S]) -> &mut Document {
        self.platforms = Some(texts(platforms));
        self
    }

    /// Sets the `naming` preset.
    pub fn set_naming_preset(&mut self, preset: &str) -> &mut Document {
        self.naming = Some(NamingDraft { preset: Some(text(preset)), ..NamingDraft::default() });
        self
    }

    /// Adds a variable with its default (`variables NAME="default"`).
    pub fn add_variable(&mut self, name: &str, default: &str) -> &mut Document {
        self.variables.push((text(name), text(default)));
        self
    }

    /// Adds an image.
    pub fn add_image(&mut self, image: ImageDraft) -> &mut Document {
        // Not read by a front-end: what it tallied of the images holds no more.
        self.tally = None;
        self.images.push(image);
        self
    }

    /// Adds a secret read from the environment variable `env`, or from `file`.
    pub fn add_secret(&mut self, name: &str, env: Option<&str>, file: Option<&str>) -> &mut Document {
        self.secrets.push(SecretDraft { name: text(name), env: env.map(text), file: file.map(text) });
        self
    }

    /// Adds a schedule that rebuilds `rebuild` (and, with `refresh`, asks again where external
    /// base images and upstream refs point).
    pub fn add_schedule<S: AsRef<str>>(&mut self, name: &str, rebuild: &[S], refresh: bool) -> &mut Document {
        self.schedules.push(ScheduleDraft { name: text(name), rebuild: texts(rebuild), refresh });
        self
    }

    /// Adds an executor for `platform` whose CI jobs run on the GitLab runners with `gitlab_tags`
    /// (comma-separated).
    pub fn add_executor(&mut self, name: &str, platform: &str, gitlab_tags: Option<&str>) -> &mut Document {
        let mut executor = ExecutorDraft::new(text(name));
        executor.platform = Some(text(platform));
        executor.gitlab_tags = gitlab_tags.map(text);
        self.executors.push(executor);
        self
    }

    /// Adds a group of `members`.
    pub fn add_group<S: AsRef<str>>(&mut self, name: &str, members: &[S]) -> &mut Document {
        self.groups.push(GroupDraft { name: text(name), members: texts(members) });
        self
    }

    /// The document's images.
    pub fn images(&self) -> &[ImageDraft] {
        &self.images
    }
}

impl ImageDraft {
    /// An image named `name` with no settings yet.
    pub fn named(name: &str) -> ImageDraft {
        ImageDraft::new(text(name))
    }

    /// Sets its `context`.
    pub fn with_context(mut self, dir: &str) -> ImageDraft {
        self.context = Some(text(dir));
        self
    }

    /// Builds it from the git repository `url` at `reference`.
    pub fn with_git(mut self, url: &str, reference: &str) -> ImageDraft {
        self.git.url = Some(text(url));
        self.git.reference = Some(text(reference));
        self
    }

    /// Sets its `dockerfile`.
    pub fn with_dockerfile(mut self, path: &str) -> ImageDraft {
        self.dockerfile = Some(text(path));
        self
    }

    /// Sets its `builder`.
    pub fn with_builder(mut self, builder: &str) -> ImageDraft {
        self.builder = Some(text(builder));
        self
    }

    /// Adds a target.
    pub fn with_target(mut self, target: &str) -> ImageDraft {
        self.targets.push(text(target));
        self
    }

    /// Adds a build arg.
    pub fn with_arg(mut self, name: &str, value: &str) -> ImageDraft {
        self.args.push((text(name), text(value)));
        self
    }

    /// Sets its platforms.
    pub fn with_platforms<S: AsRef<str>>(mut self, platforms: &[S]) -> ImageDraft {
        self.platforms = Some(texts(platforms));
        self
    }

    /// Adds extra tags.
    pub fn with_tags<S: AsRef<str>>(mut self, tags: &[S]) -> ImageDraft {
        self.tags.extend(texts(tags));
        self
    }

    /// Adds secrets it uses.
    pub fn with_secrets<S: AsRef<str>>(mut self, secrets: &[S]) -> ImageDraft {
        self.secrets.extend(texts(secrets));
        self
    }

    /// Adds a label (`labels NAME="VALUE"`).
    pub fn with_label(mut self, name: &str, value: &str) -> ImageDraft {
        self.labels.push((text(name), text(value)));
        self
    }

    /// Adds an annotation (`annotations NAME="VALUE"`).
    pub fn with_annotation(mut self, name: &str, value: &str) -> ImageDraft {
        self.annotations.push((text(name), text(value)));
        self
    }

    /// Sets its `repository` template.
    pub fn with_repository(mut self, repository: &str) -> ImageDraft {
        self.repository = Some(text(repository));
        self
    }

    /// Adds an external named context from the registry image `reference`
    /// (`build-context "NAME" image="REF"`).
    pub fn with_image_context(self, name: &str, reference: &str) -> ImageDraft {
        self.with_build_context(name, |c| c.image = Some(text(reference)))
    }

    /// Adds an external named context from the folder `path` (`build-context "NAME" path="DIR"`).
    pub fn with_path_context(self, name: &str, path: &str) -> ImageDraft {
        self.with_build_context(name, |c| c.path = Some(text(path)))
    }

    /// Adds an external named context from a git repository (`build-context "NAME" git="URL"
    /// [ref="REF"] [dir="DIR"]`).
    pub fn with_git_context(
        self,
        name: &str,
        url: &str,
        reference: Option<&str>,
        dir: Option<&str>,
    ) -> ImageDraft {
        self.with_build_context(name, |c| {
            c.git = Some(text(url));
            c.reference = reference.map(text);
            c.dir = dir.map(text);
        })
    }

    /// Adds an external named context from an OCI image layout folder (`build-context "NAME"
    /// oci-layout="DIR" ref="REF"`).
    pub fn with_oci_layout_context(self, name: &str, path: &str, reference: &str) -> ImageDraft {
        self.with_build_context(name, |c| {
            c.oci_layout = Some(text(path));
            c.reference = Some(text(reference));
        })
    }

    fn with_build_context(
        mut self,
        name: &str,
        set: impl FnOnce(&mut crate::document::BuildContextDraft),
    ) -> ImageDraft {
        let mut context = crate::document::BuildContextDraft::new(text(name), SourceSpan::from(0..0));
        set(&mut context);
        self.build_contexts.push(context);
        self
    }

    /// Adds a `from` dependency on `image`.
    pub fn with_from(mut self, image: &str, from: FromDraft) -> ImageDraft {
        self.deps.push(DependencyDraft { name: text(image), from: Some(from) });
        self
    }

    /// Sets the `ko` builder's settings.
    pub fn with_ko(
        mut self,
        import_path: Option<&str>,
        base_image: Option<&str>,
        ldflags: Option<&str>,
    ) -> ImageDraft {
        self.ko = Some(crate::document::KoDraft {
            import_path: import_path.map(text),
            base_image: base_image.map(text),
            ldflags: ldflags.map(text),
            span: SourceSpan::from(0..0),
        });
        self
    }

    /// Adds a variable of the `ko` builder's environment.
    pub fn with_ko_env(mut self, name: &str, value: &str) -> ImageDraft {
        self.ko_env.push((text(name), text(value)));
        self
    }

    /// The image as graph text in `syntax`: KDL's `image "NAME" { … }`, or YAML's `NAME:`
    /// entry of `images:` (unindented), each ending in a newline.
    pub fn print(&self, syntax: Syntax) -> String {
        match syntax {
            Syntax::Kdl => crate::print::kdl_image(self),
            Syntax::Yaml => crate::print::yaml_image(self, ""),
        }
    }
}

impl FromDraft {
    /// A `from` dependency with no settings yet.
    pub fn new() -> FromDraft {
        FromDraft {
            arg: None,
            target: None,
            registry_arg: None,
            context: None,
            platform: None,
            span: SourceSpan::from(0..0),
        }
    }

    /// The build arg that receives the reference, and the one that receives its repository.
    pub fn with_args(mut self, arg: &str, registry_arg: &str) -> FromDraft {
        self.arg = Some(text(arg));
        self.registry_arg = Some(text(registry_arg));
        self
    }

    /// The build arg that receives the reference.
    pub fn with_arg(mut self, arg: &str) -> FromDraft {
        self.arg = Some(text(arg));
        self
    }

    /// The named build context that receives the dependency.
    pub fn with_context(mut self, context: &str) -> FromDraft {
        self.context = Some(text(context));
        self
    }

    /// `platform="build"`: the dependency built for the build machine's platform.
    pub fn for_build_platform(mut self) -> FromDraft {
        self.platform = Some(text("build"));
        self
    }
}

impl Default for FromDraft {
    fn default() -> FromDraft {
        FromDraft::new()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::source::SourceFile;

    /// A value with `${…}` from a foreign file (a build arg of a kaniko-builder repository)
    /// reaches the model as written, in both syntaxes.
    #[test]
    fn a_dollar_brace_value_stays_literal() {
        let mut doc = Document::default();
        doc.set_platforms(&["linux/amd64"]);
        doc.add_image(
            ImageDraft::named("app")
                .with_git("https://example.com/app.git", "main")
                .with_arg("GREETING", "hi ${USER}"),
        );
        for (syntax, file) in [(Syntax::Kdl, "hephy.kdl"), (Syntax::Yaml, "hephy.yaml")] {
            let text = crate::print(&doc, syntax);
            let source = SourceFile::new(PathBuf::from(file), syntax, text.as_str());
            let read = crate::read(&source).unwrap_or_else(|p| panic!("{p:?}\n{text}"));
            let model = crate::lower(read, &source, std::path::Path::new("."))
                .unwrap_or_else(|p| panic!("{p:?}\n{text}"));
            let args = &model.images[0].args;
            assert_eq!(args.get("GREETING").map(String::as_str), Some("hi ${USER}"), "{text}");
        }
    }
}
