//! The plan cache's stamp: when the last plain plan found every node fresh, it leaves a stamp
//! (`plan.stamp` in the state folder, the caller's renderings beside it in `plan.stamp.text`
//! and `plan.stamp.json`) listing everything that plan depended on — the graph file's bytes,
//! the running executable, the state's last run, the stat of every input file, `.dockerignore`
//! and folder it looked at — with the rendered output it was given (opaque text: rendering is
//! the caller's). The next plan checks the stamp first ([`PlanCache::answer`]): if nothing in
//! it changed, the plan cannot have changed either, and the stored output is the answer,
//! without parsing, hashing or planning (as ninja answers `-n` from stats alone).
//!
//! When the only difference is the content of some input files, the plan is worked out from
//! the stamp's memo (`plan.stamp.memo`: each node's input files with their digests, and its
//! dependencies) instead: the files are hashed, and [`replan_touched`] (with the full plan's
//! own reason code) builds a node whose file changed for `input_changed`, its dependents for
//! `dependency_rebuilt`, since nothing else it depends on moved. Work is proportional to the
//! change, not the graph. A changed file that is a declared output, a Dockerfile or a
//! `.dockerignore` (planning reads those beyond their digest), or anything else not an input
//! means the ordinary plan, and the JSON plan (which carries every key) is always computed in
//! full.
//!
//! A folder whose times changed is compared by its entries (names and kinds), so saving a file
//! by renaming a new one over it (as many editors do) is a change to that file alone.
//!
//! A stamp also records what the check of recorded outputs looked at (the image layout's
//! files by stat, by folder and name: checked with one open handle per folder, so thousands of
//! blobs cost a `statat` each and no path walk; with a registry, each image's manifest, asked again through [`Recheck`]) and
//! the state database's own stat (taken after its write-ahead log is folded in): an image
//! deleted or damaged, or a state database written or damaged by anyone since, means the
//! ordinary plan, which finds the output missing or the state unreadable.
//!
//! It is conservative: a stamp is written only for an all-fresh plan the planner found
//! stampable ([`Planned::stampable`](crate::Planned): no selection flags, no upstream git
//! sources, no secrets, nothing the resolver says the plan depends on — such as a builder
//! other than this executable); a file changed within the last two seconds (the racy window of
//! coarse timestamps) writes no stamp, except an input file the memo answers for, which is
//! then trusted by its content only (every plan the stamp answers hashes it again); any
//! difference at all means the ordinary plan.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hephy_dsl::{ImageSource, Model};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cache::{TouchedNode, replan_touched};
use crate::files::{StatCache, Watched, hash_all, join};
use crate::graph::Graph;
use crate::plan::{Action, Plan, Reason};
use crate::planner::Selection;
use crate::state::State;

/// The stamp's file name in the state folder.
const STAMP: &str = "plan.stamp";

/// What the plan cache asks the world when it checks a stamp (before any graph is loaded).
pub trait Recheck {
    /// Whether the registry still holds every one of `manifests` (`repository@digest`);
    /// `false` when one is gone or cannot be asked.
    fn registry_still_holds(&self, manifests: &[String]) -> bool;
}

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

    /// The entry `name` of the open folder `dir`, as [`Seen::of`] its path.
    fn at(dir: &rustix::fd::OwnedFd, name: &str) -> Option<Seen> {
        let stat = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let nanos = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Some(Seen {
            size: u64::try_from(stat.st_size).ok()?,
            mtime: nanos(stat.st_mtime, i64::try_from(stat.st_mtime_nsec).ok()?),
            ctime: nanos(stat.st_ctime, i64::try_from(stat.st_ctime_nsec).ok()?),
            inode: stat.st_ino,
        })
    }

    /// Changed within the last two seconds: a later change could keep the same timestamps.
    fn racy(self, now: i128) -> bool {
        now - self.mtime.max(self.ctime) < 2_000_000_000
    }
}

/// Stored with postcard, as the memo is: compact, and quick to read back (a no-op plan of
/// 50,000 nodes reads a stamp of 100,000 paths; as JSON that took a third of its time). The
/// large lists borrow their text from the bytes read (a no-op plan copies none of it).
#[derive(Debug, Serialize, Deserialize)]
struct Stamp<'a> {
    version: String,
    exe: Option<Seen>,
    graph: String,
    graph_blake3: String,
    /// The name of the view the renderings were made for (the renderer's: a plan asked for in
    /// another view is planned in full).
    view: String,
    last_run: Option<i64>,
    #[serde(borrow)]
    paths: Vec<(&'a str, Option<Seen>)>,
    /// The input files among `paths` (by position, ascending) saved within the racy window when
    /// the stamp was written: each counts as changed, so the memo hashes it again and compares
    /// digests.
    racy: Vec<usize>,
    /// The folders among `paths` (by position) with the digest of their entries then: a folder
    /// whose times changed but whose entries did not (a file saved by renaming a new one over
    /// it) lists the same, so it changes nothing.
    #[serde(borrow)]
    listings: Vec<(usize, &'a str)>,
    /// Files outside the graph's folder the plan read (the base images' digests, the state
    /// database), absolute.
    extra: Vec<(String, Option<Seen>)>,
    /// The files the check of recorded outputs looked at (the image layout's `index.json` and
    /// blobs), by folder (absolute) and name: stat'ed relative to the open folder, so that a
    /// check of thousands of blobs walks no path and the stamp holds no long path per blob.
    looked: Vec<Folder>,
    /// Registry manifests (`repository@digest`) the output check found, asked again.
    manifests: Vec<String>,
    /// The blake3 of each stored output, so a damaged one is never given back.
    text_blake3: String,
    json_blake3: String,
    /// The memo's blake3; none for graphs with a registry, whose plans also ask it what it
    /// holds for each node to build.
    memo_blake3: Option<String>,
    /// Every node id, in plan order (what a run that builds nothing reports).
    #[serde(borrow)]
    nodes: Vec<&'a str>,
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

/// Whether the plans of `model` depend only on what a stamp records, as far as the model
/// says: no secrets, every image from a local context. The resolver adds what only it knows
/// (that every image's builder is this executable, whose identity the stamp records).
pub(crate) fn model_stampable(model: &Model) -> bool {
    model.secrets.is_empty()
        && model.images.iter().all(|i| matches!(i.source, ImageSource::Context { .. }))
        && model.tasks.iter().all(|t| t.secrets.is_empty())
}

/// Whether a plan may be stamped: `stampable` (as [`Planned::stampable`](crate::Planned)
/// says) and all fresh.
pub fn worth_remembering(stampable: bool, plan: &Plan) -> bool {
    stampable && plan.steps.iter().all(|s| s.action == Action::Skip && s.reasons.is_empty())
}

/// The state database of `state_dir`, absolute, as the stamp names it.
fn state_db(state_dir: &Path) -> String {
    let db = state_dir.join("state.db");
    std::path::absolute(&db).unwrap_or(db).display().to_string()
}

/// The state folder of the graph file at `graph` before it is loaded (`state`, else `.hephy`
/// beside it).
pub fn graph_state_dir(graph: &Path, state: Option<&Path>) -> PathBuf {
    let root = graph.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    state.map_or_else(|| root.join(".hephy"), Path::to_path_buf)
}

/// How a plan was answered without planning.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nothing changed: the stored output.
    Unchanged(String),
    /// Input files' contents changed: each node's step, worked out from the memo.
    Replanned(Vec<Replanned>),
}

/// One node's step in a plan worked out from the memo, in plan order.
#[derive(Debug, PartialEq, Eq)]
pub struct Replanned {
    /// Its id, kind and executor.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its executor.
    pub executor: String,
    /// Its dependencies' ids.
    pub needs: Vec<String>,
    /// What to do.
    pub action: Action,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// What a run that builds nothing reports.
#[derive(Debug)]
pub struct NothingToDo {
    /// Every node, in plan order.
    pub nodes: Vec<String>,
    /// Where the images are (the output it was given).
    pub images: String,
}

/// What a plan's stamp records, from the plan and its session.
#[derive(Debug, Clone, Copy)]
pub struct Stamped<'a> {
    /// The graph file, as named on the command line.
    pub graph_file: &'a Path,
    /// The model, graph and plan.
    pub model: &'a Model,
    /// The compiled graph.
    pub graph: &'a Graph,
    /// The plan.
    pub plan: &'a Plan,
    /// Whether the planner found it stampable ([`Planned::stampable`](crate::Planned)).
    pub stampable: bool,
    /// The open state store and its folder.
    pub state: &'a State,
    /// The state folder.
    pub state_dir: &'a Path,
    /// Every input file and folder the plan looked at.
    pub watched: &'a Watched,
    /// Files the check of recorded outputs looked at, absolute.
    pub looked_at: &'a [PathBuf],
    /// Registry manifests the check of recorded outputs found (`repository@digest`).
    pub manifests: &'a BTreeSet<String>,
}

/// A plan's renderings, stored as given and handed back.
#[derive(Debug)]
pub struct Rendered {
    /// The view they were made for, named by the renderer (opaque here: a plan asked for in
    /// another view is planned in full).
    pub view: String,
    /// The text plan.
    pub text: String,
    /// The JSON plan.
    pub json: String,
    /// Where the images are, as a run that builds nothing prints it.
    pub images: String,
}

/// The plan cache of one graph file and state folder.
#[derive(Debug)]
pub struct PlanCache {
    graph: PathBuf,
    state_dir: PathBuf,
}

impl PlanCache {
    /// The cache of the graph file `graph` (as named on the command line) with the state folder
    /// `state` (else `.hephy` beside it).
    pub fn new(graph: &Path, state: Option<&Path>) -> PlanCache {
        PlanCache { graph: graph.to_path_buf(), state_dir: graph_state_dir(graph, state) }
    }

    fn root(&self) -> &Path {
        self.graph.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    /// The plan, when nothing it depends on changed since the last all-fresh plan (the stored
    /// output: JSON when `json`), or only input files' contents did (each node's step, from the
    /// memo; never for `json`). `None`: plan in full.
    pub fn answer(
        &self,
        selection: &Selection,
        view: &str,
        json: bool,
        recheck: &dyn Recheck,
    ) -> Option<Answer> {
        let bytes = self.stamp_bytes()?;
        // The stored output is read and hashed while the stamp is checked (on the other core: a
        // no-op plan's time is mostly that check's stats); it is given back only if both hold.
        let (checked, output) =
            rayon::join(|| self.check(&bytes, selection, view), || self.read_output(json));
        let (stamp, changed) = checked?;
        if !Self::still_held(&stamp, recheck) {
            return None;
        }
        if changed.is_empty() {
            let (output, digest) = output?;
            let expected = if json { stamp.json_blake3 } else { stamp.text_blake3 };
            (digest == expected).then_some(Answer::Unchanged(output))
        } else if json {
            None
        } else {
            self.replan(&stamp, &changed)
        }
    }

    /// A run's answer when the stamp holds (call it holding the run lock): nothing to build.
    pub fn nothing_to_do(
        &self,
        selection: &Selection,
        view: &str,
        recheck: &dyn Recheck,
    ) -> Option<NothingToDo> {
        let bytes = self.stamp_bytes()?;
        let (stamp, changed) = self.compare(&bytes, selection, view, recheck)?;
        let cwd = std::env::current_dir().ok()?.display().to_string();
        (changed.is_empty() && stamp.cwd == cwd).then(|| NothingToDo {
            nodes: stamp.nodes.iter().map(|&n| n.to_owned()).collect(),
            images: stamp.images,
        })
    }

    /// Moves the stamp past `run_id`, a run that built nothing (it changed no record).
    pub fn advance(&self, run_id: i64) {
        let path = self.state_dir.join(STAMP);
        let Ok(bytes) = std::fs::read(&path) else { return };
        let Ok(mut stamp) = postcard::from_bytes::<Stamp<'_>>(&bytes) else { return };
        stamp.last_run = Some(run_id);
        // The run changed the database: the stamp takes its stat now (the run's store is
        // closed, so its log is folded in).
        let db = state_db(&self.state_dir);
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

    /// The stamp's bytes, as stored.
    fn stamp_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.state_dir.join(STAMP)).ok()
    }

    /// The stamp in `bytes`, when the graph, this executable, the state and every folder and
    /// extra file are as it recorded, with the positions (in `paths`) of the files whose stat
    /// changed.
    fn compare<'b>(
        &self,
        bytes: &'b [u8],
        selection: &Selection,
        view: &str,
        recheck: &dyn Recheck,
    ) -> Option<(Stamp<'b>, Vec<usize>)> {
        let (stamp, changed) = self.check(bytes, selection, view)?;
        Self::still_held(&stamp, recheck).then_some((stamp, changed))
    }

    /// Last, as the slowest: the registry still holds every image.
    fn still_held(stamp: &Stamp<'_>, recheck: &dyn Recheck) -> bool {
        stamp.manifests.is_empty() || recheck.registry_still_holds(&stamp.manifests)
    }

    /// [`PlanCache::compare`] without the registry's recheck (which may ask the network).
    fn check<'b>(
        &self,
        bytes: &'b [u8],
        selection: &Selection,
        view: &str,
    ) -> Option<(Stamp<'b>, Vec<usize>)> {
        if !selection.is_plain() {
            return None;
        }
        let root = self.root();
        let stamp: Stamp<'b> = postcard::from_bytes(bytes).ok()?;
        if stamp.version != env!("CARGO_PKG_VERSION")
            || stamp.exe != exe()
            || stamp.graph != self.graph.display().to_string()
            || stamp.view != view
        {
            return None;
        }
        // The graph file's digest and the state's last run are checked while the paths are
        // stat'ed (on the other core).
        let unchanged = || {
            let bytes = std::fs::read(&self.graph).ok()?;
            if blake3::hash(&bytes).to_hex().as_str() != stamp.graph_blake3 {
                return None;
            }
            // A run since (any run, even one that built nothing) means the ordinary plan.
            let store = State::open(&self.state_dir).ok()?;
            (store.last_run().ok()? == stamp.last_run).then_some(())
        };
        // The listings are in position order: one is a binary search away, looked up only for a
        // folder whose stat changed. Paths are stat'ed as they are (relative to the current
        // folder) when the graph's folder is the current one, joined to it otherwise.
        let listed = |i: usize| {
            stamp.listings.binary_search_by_key(&i, |(at, _)| *at).ok().map(|at| stamp.listings[at].1)
        };
        let here = root == Path::new(".");
        let stats = || -> Vec<usize> {
            stamp
                .paths
                .par_iter()
                .enumerate()
                .filter(|(i, (path, seen))| {
                    let full = if here {
                        std::borrow::Cow::Borrowed(Path::new(path))
                    } else {
                        root.join(path).into()
                    };
                    stamp.racy.binary_search(i).is_ok()
                        || Seen::of(&full) != *seen
                            && listed(*i).is_none_or(|then| listing(&full).as_deref() != Some(then))
                })
                .map(|(i, _)| i)
                .collect()
        };
        let (changed, unchanged) = rayon::join(stats, unchanged);
        unchanged?;
        if !stamp.extra.par_iter().all(|(path, seen)| Seen::of(Path::new(path)) == *seen) {
            return None;
        }
        if !stamp.looked.iter().all(|(dir, names)| still_as_seen(dir, names)) {
            return None;
        }
        Some((stamp, changed))
    }

    /// The stored output (JSON when `json`) and its blake3, unchecked.
    fn read_output(&self, json: bool) -> Option<(String, String)> {
        let output =
            std::fs::read(self.state_dir.join(format!("{STAMP}.{}", if json { "json" } else { "text" })))
                .ok()?;
        let digest = blake3::hash(&output).to_hex().to_string();
        Some((String::from_utf8(output).ok()?, digest))
    }

    fn stored_output(&self, stamp: &Stamp, json: bool) -> Option<String> {
        let (file, expected) = if json {
            (format!("{STAMP}.json"), &stamp.json_blake3)
        } else {
            (format!("{STAMP}.text"), &stamp.text_blake3)
        };
        let output = std::fs::read(self.state_dir.join(file)).ok()?;
        if blake3::hash(&output).to_hex().as_str() != expected {
            return None;
        }
        String::from_utf8(output).ok()
    }

    /// The plan after the input files at `changed` (positions in the stamp's `paths`) were
    /// touched; `None` when a change is not one the memo can answer.
    fn replan(&self, stamp: &Stamp, changed: &[usize]) -> Option<Answer> {
        let bytes = std::fs::read(self.state_dir.join(format!("{STAMP}.memo"))).ok()?;
        if Some(blake3::hash(&bytes).to_hex().as_str()) != stamp.memo_blake3.as_deref() {
            return None;
        }
        let memo: Memo<'_> = postcard::from_bytes(&bytes).ok()?;
        // The inputs are in position order (the memo is written from a sorted map): a file's
        // digest then is a binary search away, with no map of 100,000 entries built first.
        let was =
            |at: usize| memo.inputs.binary_search_by_key(&at, |(i, _)| *i).ok().map(|i| memo.inputs[i].1);
        let unanswerable: HashSet<usize> = memo.outputs.iter().chain(&memo.read).copied().collect();
        let root = self.root();
        let mut touched = BTreeSet::new();
        for &at in changed {
            let &(path, _) = stamp.paths.get(at)?;
            // Only an input file that is still a file: anything else changes more than contents.
            let meta = std::fs::symlink_metadata(root.join(path)).ok()?;
            if was(at).is_none() || unanswerable.contains(&at) || meta.is_dir() {
                return None;
            }
            touched.insert(path.to_owned());
        }
        let hashed = hash_all(root, &touched, &StatCache::new());
        // Position → (old digest, new digest), for the files whose content did change.
        let mut differs: HashMap<usize, (&str, String)> = HashMap::new();
        for &at in changed {
            let (path, _) = stamp.paths[at];
            let now = hashed.digests.get(path)?;
            let then = was(at)?;
            if now != then {
                differs.insert(at, (then, now.clone()));
            }
        }
        if differs.is_empty() {
            return self.stored_output(stamp, false).map(Answer::Unchanged);
        }
        // Each node with its changed files; its dependencies come before it in plan order.
        let mut touched: Vec<TouchedNode<'_>> = Vec::with_capacity(memo.nodes.len());
        for (i, (id, _, _, deps, files)) in memo.nodes.iter().enumerate() {
            if deps.iter().any(|&d| d >= i) {
                return None;
            }
            let changed = files
                .iter()
                .filter_map(|f| {
                    let (then, now) = differs.get(f)?;
                    Some((stamp.paths.get(*f)?.0, *then, now.as_str()))
                })
                .collect();
            touched.push(TouchedNode { id, deps, changed });
        }
        let steps = replan_touched(&touched);
        let replanned = memo
            .nodes
            .iter()
            .zip(steps)
            .map(|((id, kind, executor, deps, _), (action, reasons))| Replanned {
                id: (*id).to_owned(),
                kind: (*kind).to_owned(),
                executor: (*executor).to_owned(),
                needs: deps.iter().map(|&d| memo.nodes[d].0.to_owned()).collect(),
                action,
                reasons,
            })
            .collect();
        Some(Answer::Replanned(replanned))
    }

    /// Removes the stamp of an earlier plan when this plan made with `selection` found
    /// something to do (a plan with selection flags says nothing about the plain one).
    pub fn forget(state_dir: &Path, selection: &Selection) {
        if selection.is_plain() {
            let _ = std::fs::remove_file(state_dir.join(STAMP));
        }
    }

    /// Leaves a stamp of `stamped`'s plan, storing `rendered`, when it is worth remembering
    /// ([`worth_remembering`]); removes the earlier one either way.
    pub fn remember(stamped: &Stamped<'_>, rendered: &Rendered) {
        let stamp_path = stamped.state_dir.join(STAMP);
        // The stamp goes first (so it names outputs that may not be written yet: their digests
        // then do not match), the outputs after.
        let _ = std::fs::remove_file(&stamp_path);
        if !worth_remembering(stamped.stampable, stamped.plan) {
            return;
        }
        let Some((bytes, memo)) = stamp(stamped, rendered) else { return };
        let write = |name: &str, bytes: &[u8]| {
            let temp = stamped.state_dir.join(format!(".{name}.tmp"));
            std::fs::write(&temp, bytes).is_ok()
                && std::fs::rename(&temp, stamped.state_dir.join(name)).is_ok()
        };
        let _ = write(STAMP, &bytes)
            && write(&format!("{STAMP}.text"), rendered.text.as_bytes())
            && write(&format!("{STAMP}.json"), rendered.json.as_bytes())
            && memo.is_none_or(|memo| write(&format!("{STAMP}.memo"), &memo));
    }
}

/// A folder (absolute) and the names in it a plan looked at, each with its stat then.
type Folder = (String, Vec<(String, Option<Seen>)>);

/// The folder `dir` opened to stat its entries by name (a handle that reads nothing).
fn open_folder(dir: &str) -> Option<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()
}

/// Whether each of `names` in the folder `dir` is as seen (a folder gone: each is gone).
fn still_as_seen(dir: &str, names: &[(String, Option<Seen>)]) -> bool {
    let handle = open_folder(dir);
    names.par_iter().all(|(name, seen)| handle.as_ref().and_then(|h| Seen::at(h, name)) == *seen)
}

/// `files` (absolute) by folder, each with its stat taken relative to the open folder; `None`
/// when one has no folder or name.
fn by_folder(files: &[PathBuf]) -> Option<Vec<Folder>> {
    let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let dir = file.parent()?.to_str()?.to_owned();
        let name = file.file_name()?.to_str()?.to_owned();
        folders.entry(dir).or_default().push(name);
    }
    Some(
        folders
            .into_iter()
            .map(|(dir, names)| {
                let handle = open_folder(&dir);
                let seen = names
                    .into_par_iter()
                    .map(|name| {
                        let seen = handle.as_ref().and_then(|h| Seen::at(h, &name));
                        (name, seen)
                    })
                    .collect();
                (dir, seen)
            })
            .collect(),
    )
}

/// What a plan needs beyond the stamp to plan again after input files changed.
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

/// The stamp of `stamped`'s all-fresh plan, and its memo unless the graph names a registry,
/// both serialized.
fn stamp(stamped: &Stamped<'_>, rendered: &Rendered) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let root: &Path = &stamped.model.root;
    let watched = stamped.watched;
    let mut paths: Vec<&String> = watched.files.iter().chain(watched.dirs.iter()).collect();
    paths.sort();
    paths.dedup();
    let now = now();
    let seen: Vec<(&str, Option<Seen>)> =
        paths.par_iter().map(|p| (p.as_str(), Seen::of(&root.join(p.as_str())))).collect();
    let racy: Vec<usize> = (0..seen.len()).filter(|&i| seen[i].1.is_some_and(|s| s.racy(now))).collect();
    let memo = match &stamped.model.registry {
        Some(_) => None,
        // A memo that cannot be made costs the memo, never the stamp.
        None => memo(stamped, &paths),
    };
    // A file saved within the racy window may change again keeping its stat: it is trusted by
    // its content only, hashed by every plan the stamp answers. Only an input file the memo
    // answers for (no folder, output, Dockerfile or `.dockerignore`) may be; else no stamp.
    let answerable = |i: &usize| {
        memo.as_ref().is_some_and(|m| {
            m.inputs.binary_search_by_key(i, |(at, _)| *at).is_ok()
                && !m.outputs.contains(i)
                && !m.read.contains(i)
                && !watched.dirs.contains(paths[*i].as_str())
        })
    };
    if !racy.iter().all(answerable) {
        return None;
    }
    let memo = match memo.map(|m| postcard::to_stdvec(&m)) {
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(_)) if racy.is_empty() => None,
        Some(Err(_)) => return None,
        None => None,
    };
    let listings: Vec<(usize, String)> = paths
        .par_iter()
        .enumerate()
        .filter(|(_, p)| watched.dirs.contains(p.as_str()))
        .filter_map(|(i, p)| Some((i, listing(&root.join(p.as_str()))?)))
        .collect();
    let bytes = std::fs::read(stamped.graph_file).ok()?;
    let graph_seen = Seen::of(stamped.graph_file)?;
    let bases = std::path::absolute(stamped.state_dir.join("bases.json")).ok()?;
    let bases_seen = Seen::of(&bases);
    if graph_seen.racy(now) || bases_seen.is_some_and(|s| s.racy(now)) {
        return None;
    }
    // The database's stat with its log folded in, so that it changes exactly when the state
    // does. Blobs and the database are not racy: written once by rename, or by hephy itself.
    stamped.state.checkpoint();
    let db = state_db(stamped.state_dir);
    let extra = vec![(bases.display().to_string(), bases_seen), (db.clone(), Seen::of(Path::new(&db)))];
    let looked = by_folder(stamped.looked_at)?;
    let nodes: Vec<String> =
        stamped.plan.steps.iter().map(|s| stamped.graph.node(s.node).id.to_string()).collect();
    let stamp = Stamp {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        exe: exe(),
        graph: stamped.graph_file.display().to_string(),
        graph_blake3: blake3::hash(&bytes).to_hex().to_string(),
        view: rendered.view.clone(),
        last_run: stamped.state.last_run().ok()?,
        paths: seen,
        racy,
        listings: listings.iter().map(|(i, l)| (*i, l.as_str())).collect(),
        extra,
        looked,
        manifests: stamped.manifests.iter().cloned().collect(),
        text_blake3: blake3::hash(rendered.text.as_bytes()).to_hex().to_string(),
        json_blake3: blake3::hash(rendered.json.as_bytes()).to_hex().to_string(),
        memo_blake3: memo.as_ref().map(|m| blake3::hash(m).to_hex().to_string()),
        nodes: nodes.iter().map(String::as_str).collect(),
        images: rendered.images.clone(),
        cwd: std::env::current_dir().ok()?.display().to_string(),
    };
    Some((postcard::to_stdvec(&stamp).ok()?, memo))
}

/// The memo of `stamped`'s plan, whose watched `paths` (sorted) the stamp records.
fn memo<'s>(stamped: &Stamped<'s>, paths: &[&String]) -> Option<Memo<'s>> {
    let at = |path: &str| paths.binary_search_by(|p| p.as_str().cmp(path)).ok();
    let (graph, plan) = (stamped.graph, stamped.plan);
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
    let outputs = stamped.watched.outputs.iter().map(|p| at(p)).collect::<Option<Vec<usize>>>()?;
    let read = stamped
        .model
        .images
        .iter()
        .filter_map(|image| match &image.source {
            ImageSource::Context { dir } => {
                let dockerfile = join(dir, &image.dockerfile);
                let [own, context] = crate::dockerignore::ignore_files(dir, &dockerfile);
                Some([dockerfile, own, context])
            }
            ImageSource::Git { .. } => None,
        })
        .flatten()
        .filter_map(|path| at(&path))
        .collect();
    Some(Memo { inputs: inputs.into_iter().collect(), outputs, read, nodes })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hephy_dsl::{Code, Definition, Problem};

    use super::*;
    use crate::{
        BaseImages, Key, Node, NodeResult, NodeStatus, OutputCheck, Planned, Planner, Resolver, Revision,
        Text, Upstreams,
    };

    const GRAPH: &str = "platforms: [linux/amd64]\nimages:\n  \
                         a: { context: a, builder: oci }\n  b: { context: b, builder: oci, from: { a: { arg: BASE } } }\n";

    /// Every recorded output present, nothing upstream, no registry.
    struct World;

    impl OutputCheck for World {
        fn exists(&self, _: &Node, _: &str) -> bool {
            true
        }
    }

    impl Resolver for World {
        fn builder_identity(&self, _: &Node, _: Option<Definition<'_>>) -> Text {
            "test/1".into()
        }
        fn upstreams(&self) -> Upstreams {
            Upstreams::new()
        }
        fn base_images(&self, _: bool) -> BaseImages {
            BaseImages::new()
        }
        fn registry_output(&self, _: &Node, _: &Key, _: &[(&Node, String)]) -> Option<String> {
            None
        }
        fn registry_unreachable(&self) -> Option<String> {
            None
        }
        fn revision(&self, _: &str) -> Result<Revision, Problem> {
            Err(Problem::new(Code::Io, "no revisions here"))
        }
        fn stampable(&self) -> bool {
            true
        }
    }

    impl Recheck for World {
        fn registry_still_holds(&self, _: &[String]) -> bool {
            true
        }
    }

    fn load(dir: &Path) -> Model {
        let path = dir.join("hephy.yaml");
        let text = std::fs::read_to_string(&path).expect("read");
        let source = hephy_dsl::SourceFile::new(path, hephy_dsl::Syntax::Yaml, text);
        let doc = hephy_dsl::read(&source).expect("reads");
        hephy_dsl::lower(doc, &source, dir).expect("valid")
    }

    fn plan(model: &Model, state_dir: &Path) -> Planned {
        Planner { model, state_dir, resolver: &World }.plan(&Selection::default()).expect("plans")
    }

    /// The graph of `a` and `b` (built on `a`), recorded as built until its plan is all fresh,
    /// older than the racy window and stamped; with its folder.
    fn stamped() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (image, dockerfile) in [("a", "FROM scratch\nCOPY app.txt /\n"), ("b", "ARG BASE\nFROM $BASE\n")]
        {
            std::fs::create_dir_all(dir.path().join(image)).expect("mkdir");
            std::fs::write(dir.path().join(image).join("Dockerfile"), dockerfile).expect("write");
        }
        std::fs::write(dir.path().join("a/app.txt"), "one\n").expect("write");
        std::fs::write(dir.path().join("hephy.yaml"), GRAPH).expect("write");
        let model = load(dir.path());
        let state_dir = dir.path().join(".hephy");
        // Each round records what is to build; a node's key is final once its dependencies
        // are recorded.
        for _ in 0..8 {
            let mut planned = plan(&model, &state_dir);
            let build: Vec<&crate::plan::Step> =
                planned.plan.steps.iter().filter(|s| s.action == Action::Build).collect();
            if build.is_empty() {
                break;
            }
            let results: Vec<(String, Key, crate::InputManifest)> = build
                .iter()
                .map(|s| {
                    let id = planned.graph.node(s.node).id.to_string();
                    (id, s.key, planned.plan.manifest(s, &planned.graph, &planned.snapshot))
                })
                .collect();
            let run = planned.store.begin_run("test").expect("run");
            for (id, key, manifest) in &results {
                let result = NodeResult {
                    node: id,
                    result: NodeStatus::Built,
                    reasons: &[],
                    key: Some(key),
                    manifest: Some(manifest),
                    output: Some("sha256:0123"),
                    message: None,
                    duration: Duration::ZERO,
                };
                planned.store.record(run, &result).expect("record");
            }
            planned.store.finish_run(run, crate::state::RunStatus::Ok, 0).expect("finish");
        }
        // Out of the racy window: a stamp is only written for files older than two seconds.
        std::thread::sleep(Duration::from_millis(2100));
        let planned = plan(&model, &state_dir);
        assert!(
            planned.stampable && worth_remembering(planned.stampable, &planned.plan),
            "{:?}",
            planned.plan
        );
        remember(&dir.path().join("hephy.yaml"), &model, &planned, &state_dir);
        assert!(state_dir.join(STAMP).is_file(), "a stamp is written");
        dir
    }

    fn answer(dir: &Path, json: bool) -> Option<Answer> {
        PlanCache::new(&dir.join("hephy.yaml"), None).answer(&Selection::default(), "plain", json, &World)
    }

    /// Nothing changed: the stored renderings, as given; another view or a selection flag
    /// means the ordinary plan.
    #[test]
    fn an_unchanged_graph_is_answered_from_the_stamp() {
        let dir = stamped();
        assert_eq!(answer(dir.path(), false), Some(Answer::Unchanged("TEXT\n".to_owned())));
        assert_eq!(answer(dir.path(), true), Some(Answer::Unchanged("{}\n".to_owned())));
        let cache = PlanCache::new(&dir.path().join("hephy.yaml"), None);
        assert_eq!(cache.answer(&Selection::default(), "ansi", false, &World), None, "another view");
        let forced = Selection { refresh: true, ..Selection::default() };
        assert_eq!(cache.answer(&forced, "plain", false, &World), None, "a selection flag");
    }

    /// A touched input file: the plan from the memo, `a` for `input_changed` and what is built
    /// on it for `dependency_rebuilt`, as the full plan says; the JSON plan is planned in full.
    #[test]
    fn a_touched_input_is_replanned_from_the_memo() {
        let dir = stamped();
        std::fs::write(dir.path().join("a/app.txt"), "two\n").expect("write");
        let Some(Answer::Replanned(steps)) = answer(dir.path(), false) else { panic!("replanned") };
        let model = load(dir.path());
        let full = plan(&model, &dir.path().join(".hephy"));
        let expected: Vec<(String, Action, Vec<Reason>)> = full
            .plan
            .steps
            .iter()
            .map(|s| (full.graph.node(s.node).id.to_string(), s.action, s.reasons.to_vec()))
            .collect();
        let got: Vec<(String, Action, Vec<Reason>)> =
            steps.into_iter().map(|s| (s.id, s.action, s.reasons)).collect();
        assert_eq!(got, expected);
        assert!(got.iter().all(|(_, action, _)| *action == Action::Build), "{got:?}");
        assert!(
            matches!(&got[0].2[..], [Reason::InputChanged { path, .. }] if path == "a/app.txt"),
            "{got:?}"
        );
        assert_eq!(answer(dir.path(), true), None, "the JSON plan is planned in full");
    }

    /// Writes the stamp of `planned` (a plain rendering: `TEXT`, `{}`).
    fn remember(graph_file: &Path, model: &Model, planned: &Planned, state_dir: &Path) {
        let stamped = Stamped {
            graph_file,
            model,
            graph: &planned.graph,
            plan: &planned.plan,
            stampable: planned.stampable,
            state: &planned.store,
            state_dir,
            watched: &planned.watched,
            looked_at: &[],
            manifests: &BTreeSet::new(),
        };
        let rendered = Rendered {
            view: "plain".to_owned(),
            text: "TEXT\n".to_owned(),
            json: "{}\n".to_owned(),
            images: String::new(),
        };
        PlanCache::remember(&stamped, &rendered);
    }

    /// Stamps the plan of `dir` again (its files as they are now); whether a stamp was written.
    fn restamp(dir: &Path) -> bool {
        let model = load(dir);
        let state_dir = dir.join(".hephy");
        let planned = plan(&model, &state_dir);
        remember(&dir.join("hephy.yaml"), &model, &planned, &state_dir);
        state_dir.join(STAMP).is_file()
    }

    /// An input file saved within the racy window is stamped, trusted by its content only:
    /// the same bytes are the stored plan, other bytes the memo's plan (however its stat
    /// looks). A Dockerfile saved within it leaves no stamp.
    #[test]
    fn a_racy_input_file_is_trusted_by_its_content_only() {
        let dir = stamped();
        std::fs::write(dir.path().join("a/app.txt"), "one\n").expect("write");
        assert!(restamp(dir.path()), "a racy input file leaves a stamp");
        assert_eq!(answer(dir.path(), false), Some(Answer::Unchanged("TEXT\n".to_owned())));
        // Other bytes, the same size, the times put back: the stat alone would not tell.
        let file = dir.path().join("a/app.txt");
        let before = std::fs::metadata(&file).expect("stat");
        std::fs::write(&file, "two\n").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(before.modified()?))
            .expect("times");
        let Some(Answer::Replanned(steps)) = answer(dir.path(), false) else { panic!("replanned") };
        assert!(
            matches!(&steps[0].reasons[..], [Reason::InputChanged { path, .. }] if path == "a/app.txt"),
            "{steps:?}"
        );
        let dir = stamped();
        std::fs::write(dir.path().join("a/Dockerfile"), "FROM scratch\nCOPY app.txt /\n").expect("write");
        assert!(!restamp(dir.path()), "a racy Dockerfile leaves no stamp");
    }

    /// A changed graph file (or Dockerfile, planning reads it beyond its digest) means the
    /// ordinary plan.
    #[test]
    fn a_changed_graph_file_or_dockerfile_means_the_ordinary_plan() {
        let dir = stamped();
        std::fs::write(dir.path().join("b/Dockerfile"), "ARG BASE\nFROM $BASE\nRUN true\n").expect("write");
        assert_eq!(answer(dir.path(), false), None, "a changed Dockerfile");
        let dir = stamped();
        std::fs::write(dir.path().join("hephy.yaml"), format!("{GRAPH}# a comment\n")).expect("write");
        assert_eq!(answer(dir.path(), false), None, "a changed graph file");
    }
}
