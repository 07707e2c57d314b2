//! Image references: where each node's image lives, and how dependents name it.

use hephy_dsl::Model;
use hephy_engine::{Key, Node};

use crate::release::Release;

/// The image's name in templates: `name`, or `name-target` for one target of several.
fn base_name(node: &Node) -> String {
    match &node.target {
        Some(target) => format!("{}-{target}", node.name()),
        None => node.name().to_owned(),
    }
}

/// `{-branch}`: `-` and the branch off `main`; nothing on `main` (or when no branch is known).
fn dash_branch(branch: &str) -> String {
    if branch.is_empty() || branch == "main" { String::new() } else { format!("-{branch}") }
}

/// What a naming template may say about `node`.
pub(crate) struct Vars {
    pairs: Vec<(&'static str, String)>,
    /// The graph's tag as written (`{git_tag|short_commit}`), before `{tag}` renders it.
    tag: String,
}

/// Whether a template `node` renders (the naming's, or its tag) names a placeholder containing
/// `word` (`commit` matches `{commit}` and `{short_commit}`).
fn mentions(model: &Model, node: &Node, word: &str) -> bool {
    let publish = match model.definition(node.name()) {
        Some(hephy_dsl::Definition::Image(image)) => Some(&image.publish),
        _ => None,
    };
    let metadata = publish.into_iter().flat_map(|p| p.labels.values().chain(p.annotations.values()));
    let repository = publish.and_then(|p| p.repository.as_ref());
    metadata
        .chain(
            [
                repository,
                Some(&model.naming.repository),
                model.naming.platform.as_ref(),
                model.naming.manifest.as_ref(),
                Some(&model.naming.tag),
                node.tag.as_ref(),
            ]
            .into_iter()
            .flatten(),
        )
        .any(|t| t.contains(word))
}

impl Vars {
    /// The values for `node`; `upstream` is the commit of an upstream `git` source (a local
    /// context's `{commit}` is the graph repository's HEAD, `-dirty` when the context has
    /// uncommitted changes).
    pub(crate) fn new(
        model: &Model,
        release: &Release,
        node: &Node,
        key: Option<&Key>,
        upstream: Option<&str>,
    ) -> Vars {
        let (arch, platform) = node.platform.as_ref().map_or((String::new(), String::new()), |p| {
            let arch = match p.variant() {
                Some(v) => format!("{}{v}", p.arch()),
                None => p.arch().to_owned(),
            };
            (arch, p.to_string().replace('/', "-"))
        });
        let upstream_ref = match model.definition(node.name()) {
            Some(hephy_dsl::Definition::Image(image)) => match &image.source {
                hephy_dsl::ImageSource::Git { reference, .. } => Some(reference.as_str()),
                hephy_dsl::ImageSource::Context { .. } => None,
            },
            _ => None,
        };
        let (reference, commit, short_commit) = match model.definition(node.name()) {
            Some(hephy_dsl::Definition::Image(image)) => match &image.source {
                hephy_dsl::ImageSource::Git { reference, .. } => {
                    let commit = upstream.unwrap_or_default().to_owned();
                    let short = commit.get(..12).unwrap_or(&commit).to_owned();
                    (reference.clone(), commit, short)
                }
                hephy_dsl::ImageSource::Context { dir } if mentions(model, node, "commit") => {
                    let head = &release.head().commit;
                    let dirty = if !head.is_empty() && release.dirty(dir) { "-dirty" } else { "" };
                    let short = head.get(..12).unwrap_or(head);
                    (String::new(), format!("{head}{dirty}"), format!("{short}{dirty}"))
                }
                hephy_dsl::ImageSource::Context { .. } => Default::default(),
            },
            _ => Default::default(),
        };
        let uses_git_tag =
            ["git_tag", "version", "major", "minor", "patch"].iter().any(|w| mentions(model, node, w));
        let git_tag = if uses_git_tag { release.head().tag.clone() } else { String::new() };
        // `+` is not a tag character: build metadata becomes `_`, as Docker's own tools write it.
        let (version, major, minor, patch) = uses_git_tag
            .then(|| release.version())
            .flatten()
            .map(|v| {
                (
                    v.to_string().replace('+', "_"),
                    v.major.to_string(),
                    v.minor.to_string(),
                    v.patch.to_string(),
                )
            })
            .unwrap_or_default();
        let branch = if mentions(model, node, "branch}") || mentions(model, node, "-ref}") {
            release.branch()
        } else {
            ""
        };
        let mut pairs = vec![
            ("-ref", hephy_dsl::dash_ref(upstream_ref, &dash_branch(branch))),
            ("-branch", dash_branch(branch)),
            ("branch", branch.to_owned()),
            ("registry", model.registry.clone().unwrap_or_default()),
            ("name", base_name(node)),
            ("date", release.date().unwrap_or_default().to_owned()),
            ("arch", arch),
            ("platform", platform),
            ("target", node.target.clone().unwrap_or_default()),
            ("ref", reference),
            ("commit", commit),
            ("short_commit", short_commit),
            ("git_tag", git_tag.replace('+', "_")),
            ("version", version),
            ("major", major),
            ("minor", minor),
            ("patch", patch),
            ("key", key.map(|k| k.short().to_string()).unwrap_or_default()),
            ("created", release.created()),
        ];
        if mentions(model, node, "{source") {
            pairs.push(("source", release.source().to_owned()));
        }
        // A tag of the graph may itself be a template (`{git_tag|short_commit}`).
        let tag = node.tag.clone().unwrap_or_default();
        pairs.push(("tag", hephy_dsl::render_template(&tag, &pairs)));
        Vars { pairs, tag }
    }

    /// The same values with `{registry}` another registry (a mirror).
    fn with_registry(mut self, registry: &str) -> Vars {
        if let Some(pair) = self.pairs.iter_mut().find(|(w, _)| *w == "registry") {
            pair.1 = registry.to_owned();
        }
        self
    }

    /// A label's or an annotation's value: an error when a placeholder of it renders nothing.
    pub(crate) fn render_value(&self, template: &str) -> Result<String, NamingError> {
        match hephy_dsl::empty_group(template, &self.pairs) {
            Some(group) => Err(NamingError::EmptyValue { template: template.to_owned(), group }),
            None => Ok(self.render(template)),
        }
    }

    /// `template` with every `{word}` replaced.
    pub(crate) fn render(&self, template: &str) -> String {
        // The same rendering `check` validates.
        hephy_dsl::render_template(template, &self.pairs)
    }

    /// `template` rendered as a tag: an error, not a cut-short tag, when a placeholder of it (or
    /// of the graph's tag it writes) renders nothing (`{git_tag}` on an untagged commit,
    /// `{commit}` outside a git repository), or when the result is not a tag.
    pub(crate) fn render_tag(&self, template: &str) -> Result<String, NamingError> {
        let tag_template = self.tag.as_str();
        let empty = hephy_dsl::empty_group(template, &self.pairs)
            .filter(|g| g != "tag")
            .or_else(|| hephy_dsl::empty_group(tag_template, &self.pairs));
        if let Some(group) = empty {
            return Err(NamingError::EmptyTag { template: template.to_owned(), group });
        }
        let rendered = self.render(template);
        if rendered.is_empty() || !hephy_dsl::valid_tag(&rendered) {
            return Err(NamingError::NotATag {
                template: template.to_owned(),
                rendered,
                tag: tag_template.to_owned(),
            });
        }
        Ok(rendered)
    }
}

/// Why a naming template (a tag, a label's or an annotation's value) cannot be rendered whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NamingError {
    /// A placeholder of a label's or annotation's value renders nothing.
    #[error("the value `{template}` cannot be rendered: `{{{group}}}` is empty here")]
    EmptyValue {
        /// The value as written.
        template: String,
        /// The empty placeholder (`git_tag`, `commit|short_commit`).
        group: String,
    },
    /// A placeholder of a tag template (or of the graph's tag it writes) renders nothing.
    #[error("the tag template `{template}` cannot be rendered: `{{{group}}}` is empty here")]
    EmptyTag {
        /// The template.
        template: String,
        /// The empty placeholder.
        group: String,
    },
    /// The rendered tag is not a valid tag.
    #[error(
        "the tag template `{template}` renders `{rendered}`{}, which is not a tag",
        if tag.is_empty() { String::new() } else { format!(" (with `{{tag}}` = `{tag}`)") }
    )]
    NotATag {
        /// The template.
        template: String,
        /// What it rendered.
        rendered: String,
        /// The graph's tag `{tag}` stood for (empty when the node has none).
        tag: String,
    },
}

/// The repository template of `node`'s image: its own `repository`, else the naming's.
fn repository_template<'m>(model: &'m Model, node: &Node) -> &'m str {
    match model.definition(node.name()) {
        Some(hephy_dsl::Definition::Image(image)) if image.publish.repository.is_some() => {
            image.publish.repository.as_deref().unwrap_or_default()
        }
        _ => &model.naming.repository,
    }
}

/// The repository `node`'s image is pushed to (`{registry}/{name}` unless the graph's `naming`
/// or the image's `repository` says otherwise).
pub(crate) fn repository(model: &Model, release: &Release, node: &Node) -> String {
    Vars::new(model, release, node, None, None).render(repository_template(model, node))
}

/// Every repository `node`'s image is pushed to: [`repository`] first (the cache, and what
/// dependents are built from), then the same in each of the graph's `mirrors`.
pub(crate) fn repositories(model: &Model, release: &Release, node: &Node) -> Vec<String> {
    let template = repository_template(model, node);
    let mut out = vec![repository(model, release, node)];
    let mirrors = match model.definition(node.name()) {
        Some(hephy_dsl::Definition::Image(image)) => model.mirrors_of(image),
        _ => &[],
    };
    for mirror in mirrors {
        out.push(Vars::new(model, release, node, None, None).with_registry(mirror).render(template));
    }
    out
}

/// The labels (`labels`) or annotations of `node`'s image, rendered; `upstream` as for [`Vars`].
pub(crate) fn metadata(
    model: &Model,
    release: &Release,
    node: &Node,
    key: Option<&Key>,
    upstream: Option<&str>,
    labels: bool,
) -> Result<Vec<(String, String)>, NamingError> {
    let Some(hephy_dsl::Definition::Image(image)) = model.definition(node.name()) else {
        return Ok(Vec::new());
    };
    let map = if labels { &image.publish.labels } else { &image.publish.annotations };
    if map.is_empty() {
        return Ok(Vec::new());
    }
    let vars = Vars::new(model, release, node, key, upstream);
    map.iter().map(|(k, v)| Ok((k.clone(), vars.render_value(v)?))).collect()
}

/// The tag every pushed build and index carries, derived from its key (the registry is the
/// shared cache: a node built anywhere is found by its key).
pub(crate) fn key_tag(key: &Key) -> String {
    format!("hephy-{}", &key.hex()[..32])
}

/// The name of a build in hephy's local storage.
pub(crate) fn local(node: &Node, key: &Key) -> String {
    let name = match &node.target {
        Some(target) => format!("{}-{target}", node.name()),
        None => node.name().to_owned(),
    };
    format!("localhost/hephy/{}:{}", name.to_ascii_lowercase(), key_tag(key))
}

/// How a dependent names a built dependency: by digest (`registry/curl@sha256:…`); with no
/// registry, by digest in hephy's image layout (`localhost/hephy/curl@sha256:…`, the `oci`
/// builder looks there first) or by image id in buildah's storage.
pub(crate) fn pinned(model: &Model, release: &Release, dep: &Node, output: &str) -> String {
    let built_in = matches!(model.definition(dep.name()), Some(hephy_dsl::Definition::Image(i)) if crate::builders::in_process(i.builder));
    match &model.registry {
        Some(_) => format!("{}@{output}", repository(model, release, dep)),
        None if built_in => format!("localhost/hephy/{}@{output}", base_name(dep).to_ascii_lowercase()),
        None => output.trim_start_matches("sha256:").to_owned(),
    }
}

/// The build args that carry dependencies' references into `node`'s build: `ARG=registry/dep@sha256:…`,
/// or, with `registry-arg=R`, `R=registry/dep@sha256` and `ARG=<hex>` (rejoined by
/// `FROM ${R}:${ARG}`).
pub(crate) fn injected(
    model: &Model,
    release: &Release,
    node: &Node,
    deps: &[(&Node, String)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (arg, dep_id) in &node.inject {
        let Some((dep, output)) = deps.iter().find(|(d, _)| d.id == *dep_id) else { continue };
        let reference = pinned(model, release, dep, output);
        match (node.inject_registry.get(arg), reference.rsplit_once(':')) {
            (Some(registry_arg), Some((left, right))) => {
                out.push((registry_arg.clone(), left.to_owned()));
                out.push((arg.clone(), right.to_owned()));
            }
            _ => out.push((arg.clone(), reference)),
        }
    }
    out
}

/// The named build contexts of `node`'s build: `(NAME, registry/dep@sha256:…)` for each
/// `from DEP context=NAME`, the dependency's build pinned by digest.
pub(crate) fn contexts(
    model: &Model,
    release: &Release,
    node: &Node,
    deps: &[(&Node, String)],
) -> Vec<(String, String)> {
    node.contexts
        .iter()
        .filter_map(|(name, dep_id)| {
            let (dep, output) = deps.iter().find(|(d, _)| d.id == *dep_id)?;
            Some((name.clone(), pinned(model, release, dep, output)))
        })
        .collect()
}

pub(crate) use hephy_oci::registry::insecure;

#[cfg(test)]
mod naming_tests {
    use super::dash_branch;

    #[test]
    fn branches_become_tag_parts_and_main_adds_none() {
        assert_eq!(hephy_dsl::tag_part("feature/Add_X"), "feature-add-x");
        assert_eq!(hephy_dsl::tag_part("--x--"), "x");
        assert_eq!(dash_branch("main"), "");
        assert_eq!(dash_branch(""), "");
        assert_eq!(dash_branch("feature-x"), "-feature-x");
        assert_eq!(hephy_dsl::dash_ref(Some("main"), &dash_branch("main")), "-main");
        assert_eq!(hephy_dsl::dash_ref(Some("v1.25.3"), &dash_branch("feature-x")), "-v1-25-3");
        assert_eq!(hephy_dsl::dash_ref(None, &dash_branch("main")), "");
        assert_eq!(hephy_dsl::dash_ref(None, &dash_branch("feature-x")), "-feature-x");
    }

    #[test]
    fn naming_errors_read_as_before() {
        use super::NamingError;
        let value =
            NamingError::EmptyValue { template: "v{git_tag}".to_owned(), group: "git_tag".to_owned() };
        assert_eq!(value.to_string(), "the value `v{git_tag}` cannot be rendered: `{git_tag}` is empty here");
        let tag = NamingError::EmptyTag { template: "{commit}".to_owned(), group: "commit".to_owned() };
        assert_eq!(
            tag.to_string(),
            "the tag template `{commit}` cannot be rendered: `{commit}` is empty here"
        );
        let bad = NamingError::NotATag {
            template: "{tag}".to_owned(),
            rendered: "a b".to_owned(),
            tag: String::new(),
        };
        assert_eq!(bad.to_string(), "the tag template `{tag}` renders `a b`, which is not a tag");
        let bad = NamingError::NotATag {
            template: "{tag}".to_owned(),
            rendered: "a b".to_owned(),
            tag: "a b".to_owned(),
        };
        assert_eq!(
            bad.to_string(),
            "the tag template `{tag}` renders `a b` (with `{tag}` = `a b`), which is not a tag"
        );
    }
}
