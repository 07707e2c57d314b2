//! `--since REV`: the nodes whose own inputs (files, Dockerfiles, graph settings) differ between
//! a git revision and the working tree, found by comparing the same input manifests planning
//! uses — never by folder names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::process::{Command, Stdio};

use hephy_dsl::{Code, Model, Problem, Problems};
use hephy_engine::{Exclusions, Graph, Inputs, NodeIndex, Reason, StatCache, Upstreams};

use crate::Failure;

fn fail(message: String, help: &str) -> Failure {
    Failure::Input(Problems::single("hephy", Problem::new(Code::Io, message).help(help)))
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Per node of `graph`, why it changed since `rev`; nodes that did not are absent.
pub(crate) fn changed(
    model: &Model,
    graph: &Graph,
    inputs: &Inputs,
    upstreams: &Upstreams,
    bases: &hephy_engine::BaseImages,
    rev: &str,
) -> Result<HashMap<NodeIndex, Reason>, Failure> {
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
    let scratch = tempfile::tempdir()
        .map_err(|e| fail(format!("cannot make a scratch folder: {e}"), "check TMPDIR"))?;
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(&top)
        .args(["archive", "--format=tar", &commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot run git: {e}"), "install git"))?;
    let tar_in = archive
        .stdout
        .take()
        .ok_or_else(|| fail("git archive gave no output".to_owned(), "check the repository"))?;
    let extracted = Command::new("tar").arg("-x").arg("-C").arg(scratch.path()).stdin(tar_in).status();
    let archived = archive.wait();
    if !extracted.is_ok_and(|s| s.success()) || !archived.is_ok_and(|s| s.success()) {
        return Err(fail(format!("cannot read the tree of `{rev}`"), "check the repository"));
    }
    let every = |path: &str| -> HashMap<NodeIndex, Reason> {
        graph
            .order()
            .iter()
            .map(|&n| (n, Reason::ChangedSince { rev: rev.to_owned(), path: path.to_owned() }))
            .collect()
    };
    let old_path = scratch.path().join(&relative);
    if !old_path.is_file() {
        return Ok(every(&shown_graph));
    }
    let mut old_model = hephy_dsl::load(&old_path).map_err(|_| {
        fail(
            format!("the graph file at `{rev}` has problems"),
            "check it out and run `hephy check` to see them",
        )
    })?;
    hephy_stdlib::resolve_auto(&mut old_model);
    let old_graph = hephy_engine::compile(&old_model);
    let old_inputs = hephy_engine::gather(
        &old_model,
        &old_graph,
        &hephy_stdlib::builder_identity,
        upstreams,
        bases,
        &StatCache::new(),
        &Exclusions::default(),
    );

    let mut out = HashMap::new();
    for &index in graph.order() {
        let node = graph.node(index);
        let Some(now) = inputs.get(index) else { continue };
        let Some(then) = old_graph.find(node.id.as_str()).and_then(|o| old_inputs.get(o)) else {
            out.insert(index, Reason::ChangedSince { rev: rev.to_owned(), path: shown_graph.clone() });
            continue;
        };
        let (now, then) = (now.manifest(), then.manifest());
        if now.key() == then.key() {
            continue;
        }
        let path = hephy_engine::differences(&then, &now)
            .into_iter()
            .find_map(|r| match r {
                Reason::InputChanged { path, .. }
                | Reason::InputAdded { path }
                | Reason::InputRemoved { path } => Some(path),
                _ => None,
            })
            .unwrap_or_else(|| shown_graph.clone());
        out.insert(index, Reason::ChangedSince { rev: rev.to_owned(), path });
    }
    Ok(out)
}
