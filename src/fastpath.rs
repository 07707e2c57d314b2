//! The no-op plan, fast: when the last plan found every node fresh, it leaves a stamp
//! (`.hephy/plan.stamp`, its outputs beside it in `plan.stamp.text` and `plan.stamp.json`)
//! listing everything that plan depended on — the graph file's bytes, this
//! binary, the state's last run, the stat of every input file, `.dockerignore` and folder it
//! looked at — with its rendered output. The next `hephy plan` checks the stamp first: if
//! nothing in it changed, the plan cannot have changed either, and the stored output is printed
//! without parsing, hashing or planning (as ninja answers `-n` from stats alone).
//!
//! When the only difference is the content of some input files, the text plan is worked out
//! from the stamp's memo (`plan.stamp.memo`: each node's input files with their digests, its
//! dependencies, and its row of the table) instead: the files are hashed, and the engine's
//! plan cache ([`hephy_engine::replan_touched`], with the full plan's own reason code) builds a
//! node whose file changed for `input_changed`, its dependents for `dependency_rebuilt`,
//! since nothing else it depends on moved. Work is proportional
//! to the change, not the graph. A changed file that is a declared output, a Dockerfile or a
//! `.dockerignore` (planning reads those beyond their digest), or anything else not an input
//! means the ordinary plan, and the JSON plan (which carries every key) is always computed in
//! full.
//!
//! A folder whose times changed is compared by its entries (names and kinds), so saving a file
//! by renaming a new one over it (as many editors do) is a change to that file alone.
//!
//! A stamp also records what the check of recorded outputs looked at (the image layout's
//! `index.json` and the blobs of each image, by stat; with a registry, each image's manifest,
//! asked again by `HEAD`) and the state database's own stat (taken after its write-ahead log is
//! folded in): an image deleted or damaged, or a state database written or damaged by anyone
//! since, means the ordinary plan, which finds the output missing or the state unreadable.
//!
//! It is conservative: a stamp is written only for an all-fresh plan with no selection flags,
//! and only for graphs whose plan depends on nothing else (no upstream git sources, no secrets,
//! no builder but the built-in `oci` whose identity is this binary, no pushed tag from git or the
//! date, which a new commit or day moves); a file changed within the
//! last two seconds (the racy window of coarse timestamps) writes no stamp; any difference at
//! all means the ordinary plan.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hephy_dsl::{Builder, Model};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::plan_view::Row;
use crate::session::{Selection, Session};
use crate::style::Style;

/// The stamp's file name in the state folder.
const STAMP: &str = "plan.stamp";

/// A file's or folder's identity: any change to it changes this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    size: u64,
    mtime: i128,
    ctime: i128,
    inode: u64,
}

impl Seen {
    /// `None` for a path that does not exist (which is also a fact to compare).
    fn of(path: &Path) -> Option<Seen> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(Seen {
            size: meta.size(),
            mtime: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            inode: meta.ino(),
        })
    }

    /// Changed within the last two seconds: a later change could keep the same timestamps.
    fn racy(self, now: i128) -> bool {
        now - self.mtime.max(self.ctime) < 2_000_000_000
    }
}

/// Stored with postcard, as the memo is: compact, and quick to read back (a no-op plan of
/// 50,000 nodes reads a stamp of 100,000 paths; as JSON that took a third of its time).
#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    version: String,
    exe: Option<Seen>,
    graph: String,
    graph_blake3: String,
    color: bool,
    last_run: Option<i64>,
    paths: Vec<(String, Option<Seen>)>,
    /// The folders among `paths` (by position) with the digest of their entries then: a folder
    /// whose times changed but whose entries did not (a file saved by renaming a new one over
    /// it) lists the same, so it changes nothing.
    listings: Vec<(usize, String)>,
    /// Files outside the graph's folder the plan read (the base images' digests, the state
    /// database, the image layout's files its output check looked at), absolute.
    extra: Vec<(String, Option<Seen>)>,
    /// Registry manifests (`repository@digest`) the output check found, asked again.
    manifests: Vec<String>,
    /// The blake3 of each stored output, so a damaged one is never printed.
    text_blake3: String,
    json_blake3: String,
    /// The memo's blake3; none for graphs with a registry, whose plans also ask it what it
    /// holds for each node to build.
    memo_blake3: Option<String>,
    /// Every node id, in plan order (what a run that builds nothing reports).
    nodes: Vec<String>,
    /// Where the images are, as a run that builds nothing prints it, and the folder it was
    /// written from (its paths are relative to it).
    images: String,
    cwd: String,
}

/// A folder's entries (each name, and whether it is a folder) as one digest; `None` when it
/// cannot be read.
fn listing(dir: &Path) -> Option<String> {
    let mut entries: Vec<(std::ffi::OsString, bool)> = std::fs::read_dir(dir)
        .ok()?
        .map(|entry| {
            let entry = entry.ok()?;
            Some((entry.file_name(), entry.file_type().ok()?.is_dir()))
        })
        .collect::<Option<_>>()?;
    entries.sort();
    let mut hasher = blake3::Hasher::new();
    for (name, is_dir) in &entries {
        let name = name.as_encoded_bytes();
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name);
        hasher.update(&[u8::from(*is_dir)]);
    }
    Some(hasher.finalize().to_hex().to_string())
}

fn exe() -> Option<Seen> {
    std::env::current_exe().ok().and_then(|p| Seen::of(&p))
}

fn now() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// Whether a plan made with `selection` can be stamped at all.
fn plain(selection: &Selection) -> bool {
    selection.is_plain()
}

/// Whether `model`'s plans depend only on what a stamp records.
fn stampable(model: &Model) -> bool {
    model.secrets.is_empty()
        && model
            .images
            .iter()
            .all(|i| i.builder == Builder::Oci && matches!(i.source, hephy_dsl::ImageSource::Context { .. }))
        && model.tasks.iter().all(|t| t.secrets.is_empty())
        && !hephy_stdlib::tags_follow_git_or_date(model)
}

/// The state database of `state_dir`, absolute, as the stamp names it.
fn state_db(state_dir: &Path) -> String {
    let db = state_dir.join("state.db");
    std::path::absolute(&db).unwrap_or(db).display().to_string()
}

/// The state folder of the graph at `graph` (`--state`, else `.hephy` beside it).
pub(crate) fn state_dir(graph: &Path, state: Option<&Path>) -> PathBuf {
    let root = graph.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    state.map_or_else(|| root.join(".hephy"), Path::to_path_buf)
}

/// The stamp, when nothing the last all-fresh plan depended on changed since.
fn valid(graph: &Path, state: Option<&Path>, selection: &Selection, color: bool) -> Option<Stamp> {
    let (stamp, changed) = compare(graph, state, selection, color)?;
    changed.is_empty().then_some(stamp)
}

/// The stamp, when the graph, this binary, the state and every folder and extra file are as it
/// recorded, with the positions (in `paths`) of the files whose stat changed since.
fn compare(
    graph: &Path,
    state: Option<&Path>,
    selection: &Selection,
    color: bool,
) -> Option<(Stamp, Vec<usize>)> {
    if !plain(selection) {
        return None;
    }
    let root = graph.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let state_dir = state_dir(graph, state);
    let stamp: Stamp = postcard::from_bytes(&std::fs::read(state_dir.join(STAMP)).ok()?).ok()?;
    if stamp.version != env!("CARGO_PKG_VERSION")
        || stamp.exe != exe()
        || stamp.graph != graph.display().to_string()
        || stamp.color != color
    {
        return None;
    }
    let bytes = std::fs::read(graph).ok()?;
    if blake3::hash(&bytes).to_hex().as_str() != stamp.graph_blake3 {
        return None;
    }
    let listings: HashMap<usize, &str> = stamp.listings.iter().map(|(i, l)| (*i, l.as_str())).collect();
    let changed: Vec<usize> = stamp
        .paths
        .par_iter()
        .enumerate()
        .filter(|(i, (path, seen))| {
            let full = root.join(path);
            Seen::of(&full) != *seen
                && listings.get(i).is_none_or(|then| listing(&full).as_deref() != Some(*then))
        })
        .map(|(i, _)| i)
        .collect();
    if !stamp.extra.par_iter().all(|(path, seen)| Seen::of(Path::new(path)) == *seen) {
        return None;
    }
    // A run since (any run, even one that built nothing) means the ordinary plan.
    let store = hephy_engine::State::open(&state_dir).ok()?;
    if store.last_run().ok()? != stamp.last_run {
        return None;
    }
    drop(store);
    // Last, as the slowest: the registry still holds every image.
    if !stamp.manifests.is_empty() && !hephy_stdlib::registry_holds_all(&stamp.manifests) {
        return None;
    }
    Some((stamp, changed))
}

/// How a plan was answered without planning.
pub(crate) enum Answer {
    /// Nothing changed: the stored output.
    Unchanged(String),
    /// Input files' contents changed: the text plan worked out from the memo.
    Replanned(String),
}

/// The plan, when nothing it depends on changed since the last all-fresh plan (its stored
/// output), or only input files' contents did (the text plan, from the memo).
pub(crate) fn cached(
    graph: &Path,
    state: Option<&Path>,
    selection: &Selection,
    style: Style,
    json: bool,
) -> Option<Answer> {
    let (stamp, changed) = compare(graph, state, selection, style.color())?;
    let state_dir = state_dir(graph, state);
    if changed.is_empty() {
        stored_output(&state_dir, &stamp, json).map(Answer::Unchanged)
    } else if json {
        None
    } else {
        replan(graph, &state_dir, &stamp, &changed, style)
    }
}

fn stored_output(state_dir: &Path, stamp: &Stamp, json: bool) -> Option<String> {
    let (file, expected) = if json {
        (format!("{STAMP}.json"), &stamp.json_blake3)
    } else {
        (format!("{STAMP}.text"), &stamp.text_blake3)
    };
    let output = std::fs::read(state_dir.join(file)).ok()?;
    if blake3::hash(&output).to_hex().as_str() != expected {
        return None;
    }
    String::from_utf8(output).ok()
}

/// What the text plan needs beyond the stamp to plan again after input files changed.
#[derive(Debug, Serialize, Deserialize)]
struct Memo<'a> {
    /// Input files, by position in the stamp's `paths` (in that order), and their digests then.
    #[serde(borrow)]
    inputs: Vec<(usize, &'a str)>,
    /// Declared outputs found, by position in `paths`.
    outputs: Vec<usize>,
    /// Files planning reads beyond their digest, by position in `paths`: Dockerfiles (checked,
    /// scanned for base images) and `.dockerignore` files (they shape the contexts).
    read: Vec<usize>,
    /// The nodes, in plan order.
    #[serde(borrow)]
    nodes: Vec<MemoNode<'a>>,
}

/// One node: id, kind, executor, its dependencies (positions in `nodes`, in id order) and its
/// input files (positions in `paths`).
type MemoNode<'a> = (&'a str, &'a str, &'a str, Vec<usize>, Vec<usize>);

/// The text plan after the input files at `changed` (positions in the stamp's `paths`) were
/// touched; `None` when a change is not one the memo can answer.
fn replan(graph: &Path, state_dir: &Path, stamp: &Stamp, changed: &[usize], style: Style) -> Option<Answer> {
    let bytes = std::fs::read(state_dir.join(format!("{STAMP}.memo"))).ok()?;
    if Some(blake3::hash(&bytes).to_hex().as_str()) != stamp.memo_blake3.as_deref() {
        return None;
    }
    let memo: Memo<'_> = postcard::from_bytes(&bytes).ok()?;
    // The inputs are in position order (the memo is written from a sorted map): a file's
    // digest then is a binary search away, with no map of 100,000 entries built first.
    let was = |at: usize| memo.inputs.binary_search_by_key(&at, |(i, _)| *i).ok().map(|i| memo.inputs[i].1);
    let unanswerable: HashSet<usize> = memo.outputs.iter().chain(&memo.read).copied().collect();
    let root = graph.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut touched = BTreeSet::new();
    for &at in changed {
        let (path, _) = stamp.paths.get(at)?;
        // Only an input file that is still a file: anything else changes more than contents.
        let meta = std::fs::symlink_metadata(root.join(path)).ok()?;
        if was(at).is_none() || unanswerable.contains(&at) || meta.is_dir() {
            return None;
        }
        touched.insert(path.clone());
    }
    let hashed = hephy_engine::hash_all(root, &touched, &hephy_engine::StatCache::new());
    // Position → (old digest, new digest), for the files whose content did change.
    let mut differs: HashMap<usize, (&str, String)> = HashMap::new();
    for &at in changed {
        let (path, _) = &stamp.paths[at];
        let now = hashed.digests.get(path)?;
        let then = was(at)?;
        if now != then {
            differs.insert(at, (then, now.clone()));
        }
    }
    if differs.is_empty() {
        return stored_output(state_dir, stamp, false).map(Answer::Unchanged);
    }
    // Each node with its changed files; its dependencies come before it in plan order.
    let mut touched: Vec<hephy_engine::TouchedNode<'_>> = Vec::with_capacity(memo.nodes.len());
    for (i, (id, _, _, deps, files)) in memo.nodes.iter().enumerate() {
        if deps.iter().any(|&d| d >= i) {
            return None;
        }
        let changed = files
            .iter()
            .filter_map(|f| {
                let (then, now) = differs.get(f)?;
                Some((stamp.paths.get(*f)?.0.as_str(), *then, now.as_str()))
            })
            .collect();
        touched.push(hephy_engine::TouchedNode { id, deps, changed });
    }
    let steps = hephy_engine::replan_touched(&touched);
    let mut rows: Vec<Row> = Vec::with_capacity(memo.nodes.len());
    for ((id, kind, executor, deps, _), (action, reasons)) in memo.nodes.iter().zip(steps) {
        let needs: Vec<&str> = deps.iter().map(|&d| memo.nodes[d].0).collect();
        let why = reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        rows.push([
            Cow::Borrowed(crate::plan_view::action_name(action)),
            Cow::Borrowed(*id),
            Cow::Borrowed(*kind),
            Cow::Borrowed(*executor),
            Cow::Owned(needs.join(", ")),
            Cow::Owned(why),
        ]);
    }
    Some(Answer::Replanned(crate::plan_view::table(&graph.display().to_string(), &rows, style)))
}

/// What a run that builds nothing reports.
pub(crate) struct NothingToDo {
    /// Every node, in plan order.
    pub(crate) nodes: Vec<String>,
    /// Where the images are (text output).
    pub(crate) images: String,
}

/// A run's answer when the stamp holds (call it holding the run lock): nothing to build.
pub(crate) fn nothing_to_do(
    graph: &Path,
    state: Option<&Path>,
    selection: &Selection,
    color: bool,
) -> Option<NothingToDo> {
    let stamp = valid(graph, state, selection, color)?;
    let cwd = std::env::current_dir().ok()?.display().to_string();
    (stamp.cwd == cwd).then_some(NothingToDo { nodes: stamp.nodes, images: stamp.images })
}

/// Moves the stamp past `run_id`, a run that built nothing (it changed no record).
pub(crate) fn advance(graph: &Path, state: Option<&Path>, run_id: i64) {
    let path = state_dir(graph, state).join(STAMP);
    let Some(mut stamp) = std::fs::read(&path).ok().and_then(|b| postcard::from_bytes::<Stamp>(&b).ok())
    else {
        return;
    };
    stamp.last_run = Some(run_id);
    // The run changed the database: the stamp takes its stat now (the run's store is closed,
    // so its log is folded in).
    let db = state_db(&state_dir(graph, state));
    for (path, seen) in &mut stamp.extra {
        if *path == db {
            *seen = Seen::of(Path::new(path));
        }
    }
    let Ok(bytes) = postcard::to_stdvec(&stamp) else { return };
    let temp = path.with_extension("stamp.tmp");
    if std::fs::write(&temp, bytes).is_err() || std::fs::rename(&temp, &path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Whether `session`'s plan can be stamped: a plain plan, all fresh, of a graph whose plans
/// depend only on what a stamp records.
pub(crate) fn worth_remembering(session: &Session, selection: &Selection) -> bool {
    plain(selection)
        && stampable(&session.model)
        && session.plan.steps.iter().all(|s| s.action == hephy_engine::Action::Skip && s.reasons.is_empty())
}

/// Removes the stamp of an earlier plan when this plain plan found something to do (a plan
/// with selection flags says nothing about the plain one).
pub(crate) fn forget(session: &Session, selection: &Selection) {
    if plain(selection) {
        let _ = std::fs::remove_file(session.state_dir.join(STAMP));
    }
}

/// Leaves a stamp for the next plan (see [`worth_remembering`]). `text` and `json` are the
/// plan's two renderings.
pub(crate) fn remember(
    graph: &Path,
    session: &Session,
    selection: &Selection,
    color: bool,
    text: String,
    json: String,
    images: String,
) {
    let stamp_path = session.state_dir.join(STAMP);
    if !worth_remembering(session, selection) {
        let _ = std::fs::remove_file(&stamp_path);
        return;
    }
    // The stamp goes first (so it names outputs that may not be written yet: their digests
    // then do not match), the outputs after.
    let _ = std::fs::remove_file(&stamp_path);
    let Some((stamp, memo)) = stamp(graph, session, color, &text, &json, images) else { return };
    let write = |name: &str, bytes: &[u8]| {
        let temp = session.state_dir.join(format!(".{name}.tmp"));
        std::fs::write(&temp, bytes).is_ok() && std::fs::rename(&temp, session.state_dir.join(name)).is_ok()
    };
    let Ok(bytes) = postcard::to_stdvec(&stamp) else { return };
    let _ = write(STAMP, &bytes)
        && write(&format!("{STAMP}.text"), text.as_bytes())
        && write(&format!("{STAMP}.json"), json.as_bytes())
        && memo.is_none_or(|memo| write(&format!("{STAMP}.memo"), &memo));
}

/// The stamp of `session`'s all-fresh plan, and its memo (serialized) unless the graph names
/// a registry.
fn stamp(
    graph: &Path,
    session: &Session,
    color: bool,
    text: &str,
    json: &str,
    images: String,
) -> Option<(Stamp, Option<Vec<u8>>)> {
    let root: PathBuf = session.model.root.clone();
    let watched = &session.watched;
    let mut paths: Vec<&String> = watched.files.iter().chain(watched.dirs.iter()).collect();
    paths.sort();
    paths.dedup();
    let now = now();
    let seen: Vec<(String, Option<Seen>)> =
        paths.par_iter().map(|p| ((*p).clone(), Seen::of(&root.join(p.as_str())))).collect();
    if seen.iter().any(|(_, s)| s.is_some_and(|s| s.racy(now))) {
        return None;
    }
    let listings: Vec<(usize, String)> = paths
        .par_iter()
        .enumerate()
        .filter(|(_, p)| watched.dirs.contains(p.as_str()))
        .filter_map(|(i, p)| Some((i, listing(&root.join(p.as_str()))?)))
        .collect();
    let bytes = std::fs::read(graph).ok()?;
    let graph_seen = Seen::of(graph)?;
    let bases = std::path::absolute(session.state_dir.join("bases.json")).ok()?;
    let bases_seen = Seen::of(&bases);
    if graph_seen.racy(now) || bases_seen.is_some_and(|s| s.racy(now)) {
        return None;
    }
    // The database's stat with its log folded in, so that it changes exactly when the state
    // does. Blobs and the database are not racy: written once by rename, or by hephy itself.
    session.state.checkpoint();
    let db = state_db(&session.state_dir);
    let mut extra = vec![(bases.display().to_string(), bases_seen), (db.clone(), Seen::of(Path::new(&db)))];
    let files: Vec<&PathBuf> = session.evidence.files.iter().collect();
    extra.par_extend(files.par_iter().map(|p| (p.display().to_string(), Seen::of(p))));
    let memo = match &session.model.registry {
        Some(_) => None,
        // A memo that cannot be made costs the memo, never the stamp.
        None => memo(session, &paths).and_then(|memo| postcard::to_stdvec(&memo).ok()),
    };
    let stamp = Stamp {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        exe: exe(),
        graph: graph.display().to_string(),
        graph_blake3: blake3::hash(&bytes).to_hex().to_string(),
        color,
        last_run: session.state.last_run().ok()?,
        paths: seen,
        listings,
        extra,
        manifests: session.evidence.manifests.iter().cloned().collect(),
        text_blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
        json_blake3: blake3::hash(json.as_bytes()).to_hex().to_string(),
        memo_blake3: memo.as_ref().map(|m| blake3::hash(m).to_hex().to_string()),
        nodes: session.plan.steps.iter().map(|s| session.graph.node(s.node).id.to_string()).collect(),
        images,
        cwd: std::env::current_dir().ok()?.display().to_string(),
    };
    Some((stamp, memo))
}

/// The memo of `session`'s plan, whose watched `paths` (sorted) the stamp records.
fn memo<'s>(session: &'s Session, paths: &[&String]) -> Option<Memo<'s>> {
    let at = |path: &str| paths.binary_search_by(|p| p.as_str().cmp(path)).ok();
    let (graph, plan) = (&session.graph, &session.plan);
    let mut position = vec![usize::MAX; graph.len()];
    for (i, step) in plan.steps.iter().enumerate() {
        position[step.node.index()] = i;
    }
    let mut inputs: BTreeMap<usize, &str> = BTreeMap::new();
    let mut nodes = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let node = graph.node(step.node);
        let own = plan.inputs(step.node);
        let mut files = Vec::with_capacity(own.files.len());
        for (path, digest) in own.files.iter() {
            let i = at(path)?;
            inputs.insert(i, digest);
            files.push(i);
        }
        let deps = graph.deps(step.node).iter().map(|d| position[d.index()]).collect();
        nodes.push((node.id.as_str(), node.kind.as_str(), &*node.executor, deps, files));
    }
    let outputs = session.watched.outputs.iter().map(|p| at(p)).collect::<Option<Vec<usize>>>()?;
    let read = session
        .model
        .images
        .iter()
        .filter_map(|image| match &image.source {
            hephy_dsl::ImageSource::Context { dir } => {
                Some([hephy_engine::join(dir, &image.dockerfile), hephy_engine::join(dir, ".dockerignore")])
            }
            hephy_dsl::ImageSource::Git { .. } => None,
        })
        .flatten()
        .filter_map(|path| at(&path))
        .collect();
    Some(Memo { inputs: inputs.into_iter().collect(), outputs, read, nodes })
}
