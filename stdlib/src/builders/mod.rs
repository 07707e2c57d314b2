//! The builders a graph can choose, behind one interface: each is an [`ImageBuilder`] in a
//! module of its own (its name, identity, capabilities, command line and build), and
//! [`builder`] is the one table from the language's [`Builder`] to them. `check` asks a
//! builder's [`Capabilities`] against a Dockerfile's typed instructions
//! ([`instructions`]); the engine names no builder.
//!
//! `buildah` runs here (see [`crate::builders::buildah`]). kaniko, BuildKit (`buildctl`), `docker buildx`,
//! ko and spin are not installed on hephy's own test machines, so their commands are rendered
//! and unit-tested here but never run by the test suite; on a machine that has the tool, hephy
//! runs the rendered command and reads the digest it leaves.

pub(crate) mod buildah;
pub(crate) mod buildkit;
pub(crate) mod buildx;
pub(crate) mod dockerfile;
pub(crate) mod external;
pub(crate) mod instructions;
pub(crate) mod kaniko;
pub(crate) mod ko;
pub(crate) mod oci;
pub(crate) mod spin;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use hephy_dsl::Image;
use hephy_engine::{Job, Outcome};

pub use hephy_dsl::Builder;

/// The one table of builders: the implementation of each of the language's builders; `None`
/// for `auto`, which is a builder only once resolved ([`resolve_auto`]). A new builder is a
/// module with its [`ImageBuilder`], a row here, and a row in the language's `builders!`.
pub(crate) fn builder(builder: Builder) -> Option<&'static dyn ImageBuilder> {
    Some(match builder {
        Builder::Auto => return None,
        Builder::Oci => &oci::OciBuilder,
        Builder::Buildah => &buildah::BuildahBuilder,
        Builder::Kaniko => &kaniko::Kaniko,
        Builder::Buildkit => &buildkit::Buildkit,
        Builder::Buildx => &buildx::Buildx,
        Builder::Ko => &ko::Ko,
        Builder::Spin => &spin::Spin,
    })
}

/// One builder: what it is called, what enters its images' keys, what it can build, and how.
pub(crate) trait ImageBuilder: Sync {
    /// The language's name for it.
    fn kind(&self) -> Builder;

    /// What it can do; `check` rejects a graph that asks for more.
    fn capabilities(&self) -> Capabilities;

    /// The tool and its version, part of every key of an image it builds: changing it
    /// rebuilds them.
    fn identity(&self) -> Cow<'static, str> {
        format!("{}/1", self.kind()).into()
    }

    /// The command it runs for `request`; `None` for one that runs none (the built-in builder).
    fn render(&self, _request: &Request) -> Option<Rendered> {
        None
    }

    /// The pushed digest in what its command left (its digest file, or its log when
    /// [`ImageBuilder::digest_in_log`]), unchecked; `None` when it says none.
    fn digest(&self, _left: &str) -> Option<String> {
        None
    }

    /// Whether its command prints the digest (spin) rather than writing a digest file.
    fn digest_in_log(&self) -> bool {
        false
    }

    /// Builds one platform of `image` here (a remote executor's builds are the executor's):
    /// by default, runs [`ImageBuilder::render`]'s command and reads the digest it left.
    fn build(&self, stdlib: &crate::Stdlib<'_>, image: &Image, job: &Job<'_>) -> Outcome {
        external::build(self.kind(), stdlib.model, image, job, &stdlib.oci, external::Engine::Local)
    }
}

/// What a builder does with a `# syntax=` line naming a custom frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// Runs it (BuildKit).
    Runs,
    /// Reads the file as a standard Dockerfile anyway (`check` warns).
    Ignores,
    /// Refuses the file (`check` rejects it).
    Refuses,
}

/// What a builder can do; a graph asking for more is rejected at `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// It builds from a Dockerfile (and so understands targets, build args and `from`).
    pub dockerfile: bool,
    /// It runs `RUN` (and `ONBUILD RUN`) at all.
    pub run: bool,
    /// It runs `RUN --mount=…`.
    pub run_mount: bool,
    /// The flags of `COPY` and `ADD` it takes; `None`: all of them.
    pub copy_flags: Option<&'static [&'static str]>,
    /// It downloads `ADD` of a URL or git repository.
    pub add_url: bool,
    /// What it does with a custom frontend.
    pub frontend: Frontend,
    /// It reads the Dockerfile with a reader of its own and reports what it cannot read
    /// itself, so a file hephy's reader rejects is not an error at `check`.
    pub own_reader: bool,
    /// hephy interprets the Dockerfile itself, so what its interpreter rejects is rejected at
    /// `check` (an instruction before the first `FROM`, a `HEALTHCHECK` or `--chmod` it cannot read).
    pub interprets: bool,
    /// It takes named build contexts (`from … context=`).
    pub named_contexts: bool,
    /// The kinds of external named contexts it takes (`build-context "NAME" image=…`): `image`,
    /// `path`, `git`, `oci-layout`.
    pub context_kinds: &'static [&'static str],
    /// hephy hands it the image's secrets (for `RUN --mount=type=secret`).
    pub secrets: bool,
    /// It writes the graph's labels into the image's config.
    pub labels: bool,
    /// It writes the graph's annotations into the manifest.
    pub annotations: bool,
    /// It pushes to the graph's mirrors.
    pub mirrors: bool,
    /// It is this hephy executable itself: its identity is this binary's (so a plan of its
    /// images may be stamped), its images land in hephy's own layout, an ssh host runs it.
    pub in_process: bool,
}

impl Capabilities {
    /// A builder that can do none of it: the base each builder's capabilities start from.
    pub const NONE: Capabilities = Capabilities {
        dockerfile: false,
        run: false,
        run_mount: false,
        copy_flags: None,
        add_url: false,
        frontend: Frontend::Ignores,
        own_reader: false,
        interprets: false,
        named_contexts: false,
        context_kinds: &[],
        secrets: false,
        labels: false,
        annotations: false,
        mirrors: false,
        in_process: false,
    };
}

/// What `builder` can do; `None` for `auto`, which is a builder only once resolved
/// ([`resolve_auto`]).
pub fn capabilities(builder: Builder) -> Option<Capabilities> {
    self::builder(builder).map(ImageBuilder::capabilities)
}

/// Whether `builder` is hephy's own, in this executable ([`Capabilities::in_process`]).
pub(crate) fn in_process(builder: Builder) -> bool {
    capabilities(builder).is_some_and(|c| c.in_process)
}

/// Resolves `builder "auto"` (the default) image by image, before anything is keyed: the
/// built-in `oci` builder for a Dockerfile without `RUN`, buildah for one with `RUN` when
/// buildah is installed. An image whose Dockerfile `RUN`s on a machine without buildah stays
/// `auto`, and `check` says what to install. An upstream (`git`) image's Dockerfile is not at
/// hand yet: it gets `oci` (name its builder if its Dockerfile runs commands).
pub fn resolve_auto(model: &mut hephy_dsl::Model) {
    let root = model.root.clone();
    let buildah = installed("buildah");
    for image in model.images.iter_mut().filter(|i| i.builder == Builder::Auto) {
        let runs = dockerfile::local(&root, image)
            .and_then(Result::ok)
            .is_some_and(|local| dockerfile::runs_commands(&local.text));
        if !runs {
            image.builder = Builder::Oci;
        } else if buildah {
            image.builder = Builder::Buildah;
        }
    }
}

/// Whether `program` is on `PATH`.
pub(crate) fn installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// One platform build, as every builder needs it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The build context folder.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The stage to build.
    pub target: Option<String>,
    /// Build args, the injected image references included.
    pub build_args: Vec<(String, String)>,
    /// Named build contexts, each in BuildKit's form: `(NAME, docker-image://registry/dep@sha256:…)`,
    /// `(NAME, /a/folder)` or `(NAME, oci-layout:///a/layout@sha256:…)`.
    pub contexts: Vec<(String, String)>,
    /// Where to push: `registry/name:tag`.
    pub destination: String,
    /// Whether the registry is plain HTTP.
    pub insecure: bool,
    /// Where the tool leaves the pushed digest.
    pub digest_file: PathBuf,
    /// Secrets, each a file only the build reads: `(id, file)`.
    pub secrets: Vec<(String, PathBuf)>,
    /// The ko builder's settings (import path, base image, `go build` environment, ldflags).
    pub ko: Option<hephy_dsl::KoSettings>,
    /// The graph's labels of the image's config, rendered (kaniko, buildkit, buildx, buildah).
    pub labels: Vec<(String, String)>,
    /// The graph's annotations of its manifest, rendered (buildx, buildah).
    pub annotations: Vec<(String, String)>,
}

/// Whether `builder` writes the graph's labels, annotations and mirrors
/// ([`Capabilities::labels`], …).
pub(crate) fn writes(builder: Builder) -> (bool, bool, bool) {
    // `auto` is the built-in builder or buildah: both write all three.
    capabilities(builder).map_or((true, true, true), |c| (c.labels, c.annotations, c.mirrors))
}

/// A command to run: program, arguments, extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment it needs.
    pub env: Vec<(String, String)>,
    /// The folder it runs in (`None`: the graph's folder).
    pub dir: Option<PathBuf>,
}

pub(crate) fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Every external named context kind (`build-context "NAME" KIND=…`).
pub(crate) const ALL_CONTEXT_KINDS: &[&str] = &["image", "path", "git", "oci-layout"];

/// The named build contexts of one platform build of `image`, in BuildKit's form: each `from
/// DEP context=NAME` as the dependency's build by digest, each `build-context` as its image by
/// the digest the plan resolved, its folder, its git checkout's folder or its OCI layout.
pub(crate) fn named_contexts(
    model: &hephy_dsl::Model,
    image: &Image,
    job: &Job<'_>,
    sources: &crate::Sources,
) -> Result<Vec<(String, String)>, crate::sources::SourceError> {
    let mut out: Vec<(String, String)> =
        crate::registry::reference::contexts(model, &sources.release, job.node, &job.deps)
            .into_iter()
            .map(|(name, reference)| (name, format!("{IMAGE_SCHEME}{reference}")))
            .collect();
    out.extend(sources.named_contexts(&model.root, image)?);
    Ok(out)
}

/// How BuildKit names an image among named contexts.
pub(crate) const IMAGE_SCHEME: &str = "docker-image://";
/// How BuildKit names an OCI layout among named contexts.
pub(crate) const LAYOUT_SCHEME: &str = "oci-layout://";

/// The command `builder` runs for `request`; `None` for the built-in `oci` builder, which runs
/// none. (hephy runs buildah in several steps of its own — build, push, read back — but this is
/// its build step.)
pub fn render(builder: Builder, request: &Request) -> Option<Rendered> {
    self::builder(builder)?.render(request)
}

/// The `.ko.yaml` that carries an image's ko settings: `defaultBaseImage`, and one build of
/// its import path with the `go build` environment and `-ldflags`. `None` when there is
/// nothing to say beyond the import path.
pub(crate) fn ko_config(ko: &hephy_dsl::KoSettings) -> Option<String> {
    if ko.base_image.is_none() && ko.ldflags.is_none() && ko.env.is_empty() {
        return None;
    }
    // JSON is YAML: every value quoted and escaped by serde_json.
    let quoted = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let mut out = String::new();
    if let Some(base) = &ko.base_image {
        out.push_str(&format!("defaultBaseImage: {}\n", quoted(base)));
    }
    out.push_str("builds:\n");
    out.push_str("  - id: hephy\n    dir: \".\"\n");
    out.push_str(&format!("    main: {}\n", quoted(ko.import_path.as_deref().unwrap_or("."))));
    if !ko.env.is_empty() {
        out.push_str("    env:\n");
        for (k, v) in &ko.env {
            out.push_str(&format!("      - {}\n", quoted(&format!("{k}={v}"))));
        }
    }
    if let Some(ldflags) = &ko.ldflags {
        out.push_str(&format!("    ldflags:\n      - {}\n", quoted(ldflags)));
    }
    Some(out)
}

/// A builder that left no digest where it writes one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{builder} left no sha256 digest: {left:?}")]
pub struct NoDigest {
    /// The builder.
    pub builder: Builder,
    /// The start of what it left (up to 200 characters).
    pub left: String,
}

/// Reads the pushed digest from what `builder` left: kaniko's digest file, BuildKit's and
/// buildx's metadata JSON (`containerimage.digest`), ko's image reference, spin's output.
pub fn read_digest(builder: Builder, text: &str) -> Result<String, NoDigest> {
    let found = self::builder(builder).and_then(|b| b.digest(text));
    match found {
        Some(d)
            if d.len() == 71 && d.starts_with("sha256:") && d[7..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(d)
        }
        _ => Err(NoDigest { builder, left: text.chars().take(200).collect() }),
    }
}

/// The `containerimage.digest` of BuildKit's metadata JSON (buildkit, buildx).
pub(crate) fn metadata_digest(text: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("containerimage.digest").and_then(|d| d.as_str()).map(str::to_owned))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One list of builders: the language's names parse back to them, and every builder but
    /// `auto` (resolved first) has capabilities here.
    #[test]
    fn the_builders_are_the_languages() {
        assert_eq!(hephy_dsl::BUILDERS, Builder::ALL.map(Builder::name));
        for builder in Builder::ALL {
            assert_eq!(Builder::from_name(builder.name()), Some(builder));
            assert_eq!(capabilities(builder).is_none(), builder == Builder::Auto, "{builder}");
            if let Some(implementation) = self::builder(builder) {
                assert_eq!(implementation.kind(), builder);
                // The language's row and the builder agree on whether a context needs a Dockerfile.
                assert_eq!(implementation.capabilities().dockerfile, builder.reads_dockerfile(), "{builder}");
            }
        }
        assert_eq!(Builder::from_name("docker"), None);
    }

    pub(crate) fn request() -> Request {
        Request {
            context: PathBuf::from("/repo/curl"),
            dockerfile: PathBuf::from("/repo/curl/build/Dockerfile"),
            platform: "linux/arm64".to_owned(),
            target: Some("release".to_owned()),
            build_args: vec![("BASE".to_owned(), "reg.example/base@sha256:00".to_owned())],
            destination: "reg.example/team/curl:hephy-0123".to_owned(),
            insecure: false,
            digest_file: PathBuf::from("/state/digest"),
            secrets: Vec::new(),
            contexts: Vec::new(),
            ko: None,
            labels: Vec::new(),
            annotations: Vec::new(),
        }
    }

    #[test]
    fn labels_and_annotations_reach_the_builders_that_take_them() {
        let mut r = request();
        r.labels = vec![("org.example.team".to_owned(), "platform".to_owned())];
        r.annotations = vec![("org.opencontainers.image.revision".to_owned(), "abc".to_owned())];
        let line = |b| render(b, &r).map(|c| c.args.join(" ")).unwrap_or_default();
        assert!(line(Builder::Kaniko).contains("--label=org.example.team=platform"));
        assert!(line(Builder::Buildkit).contains("--opt label:org.example.team=platform"));
        let buildx = line(Builder::Buildx);
        assert!(buildx.contains("--label org.example.team=platform"), "{buildx}");
        assert!(buildx.contains("--annotation org.opencontainers.image.revision=abc"), "{buildx}");
        let buildah = line(Builder::Buildah);
        assert!(buildah.contains(
            "--label org.example.team=platform --annotation org.opencontainers.image.revision=abc"
        ));
        for builder in [Builder::Kaniko, Builder::Buildkit] {
            assert!(!line(builder).contains("revision"), "{builder:?} takes no annotations");
        }
    }

    #[test]
    fn secrets_are_files_on_the_command_line_never_values() {
        let mut r = request();
        r.secrets = vec![("NPM_TOKEN".to_owned(), PathBuf::from("/tmp/hephy-secret-x"))];
        for builder in [Builder::Buildkit, Builder::Buildx] {
            let l = line(&render(builder, &r).expect("a command"));
            assert!(l.contains("--secret id=NPM_TOKEN,src=/tmp/hephy-secret-x"), "{l}");
        }
    }

    pub(crate) fn line(r: &Rendered) -> String {
        std::iter::once(r.program.clone()).chain(r.args.iter().cloned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn kaniko() {
        let r = render(Builder::Kaniko, &request()).expect("a command");
        assert_eq!(
            line(&r),
            "/kaniko/executor --context=dir:///repo/curl --dockerfile=/repo/curl/build/Dockerfile \
             --destination=reg.example/team/curl:hephy-0123 --custom-platform=linux/arm64 \
             --digest-file=/state/digest --reproducible --target=release --build-arg=BASE=reg.example/base@sha256:00"
        );
        let mut insecure = request();
        insecure.insecure = true;
        assert!(
            line(&render(Builder::Kaniko, &insecure).expect("a command"))
                .ends_with(" --insecure --insecure-pull")
        );
    }

    #[test]
    fn buildkit() {
        let r = render(Builder::Buildkit, &request()).expect("a command");
        assert_eq!(
            line(&r),
            "buildctl build --frontend dockerfile.v0 --local context=/repo/curl --local dockerfile=/repo/curl/build \
             --opt filename=Dockerfile --opt platform=linux/arm64 --opt target=release \
             --opt build-arg:BASE=reg.example/base@sha256:00 \
             --output type=image,name=reg.example/team/curl:hephy-0123,push=true,rewrite-timestamp=true \
             --metadata-file /state/digest"
        );
        assert_eq!(r.env, [("SOURCE_DATE_EPOCH".to_owned(), "0".to_owned())]);
    }

    #[test]
    fn buildx() {
        assert_eq!(
            line(&render(Builder::Buildx, &request()).expect("a command")),
            "docker buildx build --platform linux/arm64 --file /repo/curl/build/Dockerfile \
             --tag reg.example/team/curl:hephy-0123 --push --metadata-file /state/digest --target release \
             --build-arg BASE=reg.example/base@sha256:00 /repo/curl"
        );
    }

    #[test]
    fn named_contexts_are_images_by_digest_on_each_command_line() {
        let mut r = request();
        r.build_args.clear();
        r.contexts = vec![
            ("base".to_owned(), "docker-image://reg.example/team/base@sha256:00".to_owned()),
            ("src".to_owned(), "/repo/src".to_owned()),
            ("vendor".to_owned(), "oci-layout:///repo/vendor/layout@sha256:11".to_owned()),
        ];
        let buildah = line(&render(Builder::Buildah, &r).expect("a command"));
        assert!(
            buildah.contains(" --build-context base=docker-image://reg.example/team/base@sha256:00 "),
            "{buildah}"
        );
        let buildx = line(&render(Builder::Buildx, &r).expect("a command"));
        assert!(
            buildx.contains(" --build-context base=docker-image://reg.example/team/base@sha256:00 "),
            "{buildx}"
        );
        assert!(buildah.contains(" --build-context src=/repo/src "), "{buildah}");
        assert!(buildx.contains(" --build-context src=/repo/src "), "{buildx}");
        assert!(
            buildx.contains(" --build-context vendor=oci-layout:///repo/vendor/layout@sha256:11 "),
            "{buildx}"
        );
        let buildkit = line(&render(Builder::Buildkit, &r).expect("a command"));
        assert!(
            buildkit.contains(" --opt context:base=docker-image://reg.example/team/base@sha256:00 "),
            "{buildkit}"
        );
        assert!(buildkit.contains(" --local src=/repo/src --opt context:src=local:src "), "{buildkit}");
        assert!(
            buildkit.contains(
                " --oci-layout vendor=/repo/vendor/layout --opt context:vendor=oci-layout://vendor@sha256:11 "
            ),
            "{buildkit}"
        );
    }

    #[test]
    fn ko_carries_every_setting() {
        let mut r = request();
        r.target = None;
        r.build_args.clear();
        r.ko = Some(hephy_dsl::KoSettings {
            import_path: Some("./cmd/app".to_owned()),
            base_image: Some("cgr.dev/chainguard/static".to_owned()),
            ldflags: Some("-s -w -X main.version=1.4.0".to_owned()),
            env: [("CGO_ENABLED".to_owned(), "0".to_owned())].into_iter().collect(),
        });
        let ko = render(Builder::Ko, &r).expect("a command");
        assert_eq!(
            line(&ko),
            "ko build ./cmd/app --platform=linux/arm64 --bare --tags=hephy-0123 --image-refs=/state/digest"
        );
        assert_eq!(ko.dir.as_deref(), Some(Path::new("/repo/curl")), "the import path is the context's");
        assert!(ko.env.contains(&("KO_CONFIG_PATH".to_owned(), "/state".to_owned())), "{:?}", ko.env);
        let config = ko_config(r.ko.as_ref().expect("settings")).expect("a config");
        assert_eq!(
            config,
            "defaultBaseImage: \"cgr.dev/chainguard/static\"\nbuilds:\n  - id: hephy\n    dir: \".\"\n    main: \"./cmd/app\"\n    env:\n      - \"CGO_ENABLED=0\"\n    ldflags:\n      - \"-s -w -X main.version=1.4.0\"\n"
        );
        assert_eq!(ko_config(&hephy_dsl::KoSettings::default()), None);
    }

    #[test]
    fn ko_and_spin() {
        let ko = render(Builder::Ko, &request()).expect("a command");
        assert_eq!(
            line(&ko),
            "ko build /repo/curl --platform=linux/arm64 --bare --tags=hephy-0123 --image-refs=/state/digest"
        );
        assert_eq!(ko.env, [("KO_DOCKER_REPO".to_owned(), "reg.example/team/curl".to_owned())]);
        assert_eq!(
            line(&render(Builder::Spin, &request()).expect("a command")),
            "spin registry push --from /repo/curl/spin.toml reg.example/team/curl:hephy-0123"
        );
    }

    #[test]
    fn digests_from_what_each_tool_leaves() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(read_digest(Builder::Kaniko, &format!("{d}\n")), Ok(d.clone()));
        assert_eq!(
            read_digest(Builder::Buildkit, &format!("{{\"containerimage.digest\": \"{d}\"}}")),
            Ok(d.clone())
        );
        assert_eq!(
            read_digest(
                Builder::Buildx,
                &format!("{{\"containerimage.digest\":\"{d}\",\"image.name\":\"x\"}}")
            ),
            Ok(d.clone())
        );
        assert_eq!(read_digest(Builder::Ko, &format!("reg.example/team/curl@{d}\n")), Ok(d.clone()));
        assert_eq!(
            read_digest(Builder::Spin, &format!("Pushing app to the Registry...\nPushed with digest {d}\n")),
            Ok(d.clone())
        );
        assert_eq!(
            read_digest(Builder::Kaniko, "oops").map_err(|e| e.to_string()),
            Err("kaniko left no sha256 digest: \"oops\"".to_owned())
        );
        assert!(read_digest(Builder::Buildkit, "{}").is_err());
    }
}
