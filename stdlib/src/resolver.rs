//! The plan-time resolver: what the engine's [`Planner`](hephy_engine::Planner) asks the world,
//! answered by the standard library (upstream refs by `git ls-remote`, base images by their
//! registries, recorded outputs in the image layout or registry, the registry as a shared
//! cache, builder identity, what of its context each image reads (its Dockerfile's sources:
//! `sources/reads.rs`), the graph at a git revision for `--since`, whether a plan may be
//! stamped, and whether the registry still holds a stamp's images).
//!
//! Owns no policy: which nodes to ask about, and what the answers mean, is the planner's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hephy_dsl::{Code, Definition, Model, Problem};
use hephy_engine::{
    BaseImages, ContextReads, Key, Node, OutputCheck, Recheck, Resolver, Revision, Text, Upstreams,
};

use crate::outputs::{Evidence, Outputs};
use crate::registry::cache::RegistryCache;
use crate::release::Release;

/// The standard library's answers for one model, its state folder, and whether the network
/// may be used.
#[derive(Debug)]
pub struct PlanResolver<'m> {
    model: &'m Model,
    state_dir: PathBuf,
    offline: bool,
    release: Arc<Release>,
    outputs: Outputs<'m>,
    registry: OnceLock<RegistryCache<'m>>,
    /// The Dockerfiles parsed to tell what of its context each image reads.
    parsed: crate::sources::reads::Parsed,
}

impl<'m> PlanResolver<'m> {
    /// The resolver for `model`, whose state is in `state_dir`; `offline` uses no network. The
    /// plan's release information (git, the date) is read from `model`'s root, once: hand
    /// [`PlanResolver::release`] to the run, so it renders the same tags.
    pub fn new(model: &'m Model, state_dir: &Path, offline: bool) -> PlanResolver<'m> {
        let release = Arc::new(Release::new(&model.root));
        PlanResolver {
            model,
            state_dir: state_dir.to_path_buf(),
            offline,
            release: Arc::clone(&release),
            outputs: Outputs::new(model, state_dir, offline, release),
            registry: OnceLock::new(),
            parsed: crate::sources::reads::Parsed::default(),
        }
    }

    /// The plan's release information, for the run of this plan.
    pub fn release(&self) -> Arc<Release> {
        Arc::clone(&self.release)
    }

    /// What the checks of recorded outputs looked at so far.
    pub fn evidence(&self) -> Evidence {
        self.outputs.evidence()
    }

    fn registry(&self) -> &RegistryCache<'m> {
        self.registry.get_or_init(|| RegistryCache::new(self.model, Arc::clone(&self.release)))
    }
}

impl OutputCheck for PlanResolver<'_> {
    fn exists(&self, node: &Node, output: &str) -> bool {
        self.outputs.exists(node, output)
    }
}

impl Resolver for PlanResolver<'_> {
    fn builder_identity(&self, node: &Node, definition: Option<Definition<'_>>) -> Text {
        crate::builder_identity(node, definition)
    }

    fn context_reads(&self, model: &Model, node: &Node, definition: Option<Definition<'_>>) -> ContextReads {
        crate::sources::reads::reads(model, node, definition, &self.parsed)
    }

    fn upstreams(&self) -> Upstreams {
        crate::resolve_upstreams(self.model, &self.state_dir, self.offline)
    }

    fn base_images(&self, refresh: bool) -> BaseImages {
        crate::resolve_bases(self.model, &self.state_dir, refresh, self.offline)
    }

    fn registry_output(&self, node: &Node, key: &Key, deps: &[(&Node, String)]) -> Option<String> {
        self.registry().lookup(node, key, deps)
    }

    fn registry_unreachable(&self) -> Option<String> {
        self.registry.get().and_then(RegistryCache::unreachable)
    }

    fn revision(&self, rev: &str) -> Result<Revision, Problem> {
        revision(self.model, &self.state_dir, rev)
    }

    fn stampable(&self) -> bool {
        // A builder other than this executable has a version of its own the stamp cannot see.
        self.model.images.iter().all(|i| crate::builders::in_process(i.builder))
            && !crate::tags_follow_git_or_date(self.model)
    }
}

/// The plan cache's questions before a graph is loaded: whether the registry still holds the
/// images a stamp recorded, asked again by `HEAD`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryRecheck;

impl Recheck for RegistryRecheck {
    fn registry_still_holds(&self, manifests: &[String]) -> bool {
        crate::registry_holds_all(manifests)
    }
}

fn fail(message: String, help: &str) -> Problem {
    Problem::new(Code::Io, message).help(help)
}

fn git(dir: &Path, args: &[&str]) -> Result<String, crate::git::GitError> {
    crate::git::run(Some(dir), args).map(|out| out.trim().to_owned())
}

/// The graph of `model`'s file at `rev`: the tree at `rev` exported to a scratch folder (kept
/// in the answer), its graph file loaded and checked.
fn revision(model: &Model, state_dir: &Path, rev: &str) -> Result<Revision, Problem> {
    let root = std::path::absolute(&model.root).unwrap_or_else(|_| model.root.clone());
    let top = git(&root, &["rev-parse", "--show-toplevel"]).map_err(|e| {
        fail(
            format!("`--since` needs a git repository: {e}"),
            "run hephy inside the repository's working tree",
        )
    })?;
    let commit =
        git(&root, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).map_err(|_| {
            fail(
                format!("`{rev}` is not a commit of this repository"),
                "name a commit, branch or tag, e.g. `HEAD~1` or `origin/main`",
            )
        })?;
    let top = PathBuf::from(top);
    let graph_file = std::path::absolute(model.path()).unwrap_or_else(|_| model.path().to_path_buf());
    let relative = graph_file
        .canonicalize()
        .ok()
        .and_then(|g| g.strip_prefix(top.canonicalize().ok()?).ok().map(Path::to_path_buf))
        .ok_or_else(|| {
            fail(
                "the graph file is not inside the git repository".to_owned(),
                "keep the graph file in the repository",
            )
        })?;
    let shown_graph = relative.display().to_string();

    // The tree at REV, exported to a scratch folder.
    let scratch = crate::scratch::folder(state_dir, "since").map_err(|e| {
        fail(
            format!("cannot make a scratch folder in `{}`: {e}", state_dir.display()),
            "check the state folder",
        )
    })?;
    crate::git::export(&["-C", &top.display().to_string()], &commit, scratch.path())
        .map_err(|_| fail(format!("cannot read the tree of `{rev}`"), "check the repository"))?;
    let old_path = scratch.path().join(&relative);
    if !old_path.is_file() {
        return Ok(Revision { graph_file: shown_graph, model: None, keep: Box::new(scratch) });
    }
    // With the same `--set` and `HEPHY_VAR_*` values: only what the revision changed differs.
    let (old_model, problems) = hephy_dsl::load_partial_with(&old_path, &model.overrides);
    let problem = || {
        fail(
            format!("the graph file at `{rev}` has problems"),
            "check it out and run `hephy check` to see them",
        )
    };
    let mut old_model = match (old_model, problems) {
        (Some(old_model), None) => old_model,
        _ => return Err(problem()),
    };
    crate::resolve_auto(&mut old_model);
    Ok(Revision { graph_file: shown_graph, model: Some(old_model), keep: Box::new(scratch) })
}

#[cfg(test)]
mod tests {
    use hephy_engine::Resolver as _;

    /// A plan may be stamped only when every image is built by this executable (whose identity
    /// the stamp records): the engine names no builder, so the resolver says it.
    #[test]
    fn only_plans_of_this_executables_images_may_be_stamped() {
        let dir = tempfile::tempdir().expect("a folder");
        std::fs::create_dir(dir.path().join("a")).expect("a context");
        std::fs::write(dir.path().join("a/Dockerfile"), "FROM scratch\n").expect("a Dockerfile");
        let graph = dir.path().join("hephy.kdl");
        for (builder, stampable) in [("oci", true), ("buildah", false), ("buildkit", false), ("ko", false)] {
            let text = format!("image \"a\" {{\n    context \"a\"\n    builder \"{builder}\"\n}}\n");
            std::fs::write(&graph, text).expect("a graph");
            let model = hephy_dsl::load(&graph).expect("a valid graph");
            let resolver = super::PlanResolver::new(&model, &dir.path().join(".hephy"), true);
            assert_eq!(resolver.stampable(), stampable, "builder {builder}");
        }
    }
}
