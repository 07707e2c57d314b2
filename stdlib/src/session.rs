//! The session of one command over one graph file: the plan and run orchestration every
//! command shares, as turborepo's `Run` owns its caches. It owns the policy the command line
//! must not hold: when the plan cache's stamp is consulted, left, moved past a run or removed;
//! the run lock and what happens under it (the layout repaired, temporaries a killed run left
//! removed, "nothing to build" recorded as a run); where credential helpers' failures are
//! remembered. It answers in types ([`PlanAnswer`], [`RunAnswer`], [`Session`]) and renders
//! nothing: a stamp's renderings are handed in by the caller as a value
//! ([`Rendered`](hephy_engine::Rendered), through [`RunRendering`] for a run), named by a view
//! the caller chooses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hephy_dsl::{Code, Model, Overrides, Problem, Problems};
use hephy_engine::{
    Exclusions, Graph, NodeIndex, Plan, PlanCache, PlanError, PlanWarning, Planner, Rendered, Replanned,
    Reporter, RunLock, RunOptions, Snapshot, State, StateError, Summary, Watched, graph_state_dir,
    worth_remembering,
};
use hephy_oci::layout::LayoutError;

pub use hephy_engine::Selection;

use crate::{Evidence, PlanResolver, RegistryRecheck, Stdlib, Upstreams};

/// Why a session could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Bad input: the graph file, an override, or a selection naming what the graph does not
    /// have.
    #[error(transparent)]
    Input(Problems),
    /// The state store failed, or another run holds its lock.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Refuses a state folder whose image layout keeps its blobs behind a symbolic link (the
/// engine's check of the state folder looks at its top two levels; the layout's blobs folder is
/// one deeper): the output check would read manifests through it.
fn refuse_layout_links(state_dir: &Path) -> Result<(), StateError> {
    match hephy_oci::layout::Layout::in_state(state_dir).refuse_links() {
        Err(hephy_oci::layout::LayoutError::Symlink { path }) => Err(StateError::Symlink { path }),
        _ => Ok(()),
    }
}

/// Loads and checks the graph file at `path` with `overrides`. Every problem is reported in
/// one answer: the builders' checks run on the model even when the language found problems,
/// where the file could be read through.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Model, Problems> {
    load_reusing(path, overrides, None).map(|loaded| loaded.model)
}

/// A graph file loaded and checked, and how long each step took.
#[derive(Debug)]
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// Each step and how long it took, in order: the dsl's (`read`, the parse, which says
    /// whether the document as read was reused, `expand`, `analyze`), then `check`.
    pub timings: Vec<(&'static str, Duration)>,
}

/// [`load`], reusing the document as read that the state folder `state_dir` keeps for this
/// graph file while the file is unchanged (and keeping it there after a parse), sealed with the
/// user's secret; where there is none to be had (no cache folder), the file is parsed.
pub fn load_in(path: &Path, overrides: &Overrides, state_dir: &Path) -> Result<Loaded, Problems> {
    let store = crate::documents::StateDocument::new(path, state_dir);
    load_reusing(path, overrides, store.as_ref().map(|s| s as &dyn hephy_dsl::DocumentStore))
}

fn load_reusing(
    path: &Path,
    overrides: &Overrides,
    store: Option<&dyn hephy_dsl::DocumentStore>,
) -> Result<Loaded, Problems> {
    let loaded = hephy_dsl::load_reusing(path, overrides, store);
    let mut timings = loaded.laps;
    let checking = Instant::now();
    let answer = match (loaded.model, loaded.problems) {
        (Some(mut model), None) => {
            crate::resolve_auto(&mut model);
            crate::check(&model).map(|()| model)
        }
        (Some(mut model), Some(problems)) => {
            crate::resolve_auto(&mut model);
            Err(match crate::check(&model) {
                Ok(()) => problems,
                Err(later) => problems.and(later),
            })
        }
        (None, problems) => Err(problems.unwrap_or_else(|| {
            Problems::single(
                &path.display().to_string(),
                Problem::new(Code::Io, "the graph file could not be read"),
            )
        })),
    };
    timings.push(("check", checking.elapsed()));
    answer.map(|model| Loaded { model, timings })
}

/// How long to wait for the run lock, from a number of seconds as given (anything not a
/// finite number, such as `NaN`, is no wait; at most a day).
pub fn lock_wait(seconds: f64) -> Duration {
    let secs = if seconds.is_finite() { seconds.clamp(0.0, 86_400.0) } else { 0.0 };
    Duration::from_secs_f64(secs)
}

/// A loaded graph with its state and plan, as the commands `plan`, `run`, `explain`, `ci` and
/// `graph` share it: made by the engine's [`Planner`] with the standard library's resolver.
pub struct Session {
    /// The model.
    pub model: Model,
    /// The compiled graph.
    pub graph: Graph,
    /// The state folder.
    pub state_dir: PathBuf,
    /// The open state store.
    pub state: State,
    /// The records and failures the plan compared with.
    pub snapshot: Snapshot,
    /// The plan (for `plan`: restricted to what is shown).
    pub plan: Plan,
    /// What input collection leaves out.
    pub exclusions: Exclusions,
    /// The upstream commits the plan used.
    pub upstreams: Upstreams,
    /// The plan's release information (git, the date), for the run and for showing tags.
    pub release: std::sync::Arc<crate::Release>,
    /// Every input file and folder the plan looked at (for the plan cache's stamp).
    pub watched: Watched,
    /// What the check of recorded outputs looked at (for the plan cache's stamp).
    pub evidence: Evidence,
    /// `--group`: the group's nodes and everything they depend on.
    pub scope: Option<HashSet<NodeIndex>>,
    /// Whether the planner lets the plan cache stamp this plan when it is all fresh.
    pub stampable: bool,
    /// What the user should be told about planning.
    pub warnings: Vec<PlanWarning>,
    /// How long each step took, in order (loading, the planner's steps, listing what it saw).
    pub timings: Vec<(&'static str, Duration)>,
    /// A run's image layout that could not be repaired before it (the run goes on).
    pub unrepaired: Option<LayoutError>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("graph", &self.model.path())
            .field("state_dir", &self.state_dir)
            .field("nodes", &self.plan.steps.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Plans `model` with the state folder `state` (else `.hephy` beside the graph file) for
    /// `selection`.
    pub fn open(model: Model, state: Option<&Path>, selection: &Selection) -> Result<Session, SessionError> {
        let state_dir = hephy_engine::state_dir(&model, state);
        refuse_layout_links(&state_dir)?;
        // A credential helper that hung is remembered there, so later commands do not wait.
        crate::remember_helper_failures_in(&state_dir);
        let resolver = PlanResolver::new(&model, &state_dir, selection.offline);
        let planner = Planner { model: &model, state_dir: &state_dir, resolver: &resolver };
        let planned = planner.plan(selection).map_err(|e| match e {
            PlanError::Selection(problems) => SessionError::Input(problems),
            PlanError::State(e) => SessionError::State(e),
        })?;
        let listed = Instant::now();
        let evidence = resolver.evidence();
        let release = resolver.release();
        drop(resolver);
        let mut timings = planned.timings;
        timings.push(("list what it saw", listed.elapsed()));
        Ok(Session {
            model,
            graph: planned.graph,
            state_dir,
            state: planned.store,
            snapshot: planned.snapshot,
            plan: planned.plan,
            exclusions: planned.exclusions,
            upstreams: planned.upstreams,
            release,
            watched: planned.watched,
            evidence,
            scope: planned.scope,
            stampable: planned.stampable,
            warnings: planned.warnings,
            timings,
            unrepaired: None,
        })
    }

    /// What the plan cache's stamp of this plan (of the graph file `graph_file`, as named on
    /// the command line) records.
    fn stamped<'a>(&'a self, graph_file: &'a Path) -> hephy_engine::Stamped<'a> {
        hephy_engine::Stamped {
            graph_file,
            model: &self.model,
            graph: &self.graph,
            plan: &self.plan,
            stampable: self.stampable,
            state: &self.state,
            state_dir: &self.state_dir,
            watched: &self.watched,
            looked_at: &self.evidence.files,
            manifests: &self.evidence.manifests,
        }
    }
}

/// What `hephy plan` asks.
#[derive(Debug, Clone, Copy)]
pub struct PlanRequest<'a> {
    /// The view the caller renders for (its own name, such as whether it colours): a stamp
    /// whose renderings were made for another view is not used.
    pub view: &'a str,
    /// The JSON plan, not the text one.
    pub json: bool,
    /// Only the nodes that will run are shown (`--changed`): the stamp keeps the whole plan,
    /// so it is neither read nor left nor removed.
    pub changed: bool,
}

/// How a plan was answered.
#[derive(Debug)]
pub enum PlanAnswer {
    /// Nothing changed since the last all-fresh plan: the stored rendering of this view.
    Unchanged(String),
    /// Only input files' contents changed: each node's step, worked out from the stamp's memo,
    /// in plan order.
    Replanned(Vec<Replanned>),
    /// Planned in full (restricted to `--group` and, with `changed`, to what will run).
    Planned(Box<Session>),
}

/// The renderings a run hands its session: the reporter of its events, and what a stamp of
/// its plan stores.
pub trait RunRendering {
    /// The view the stamp's renderings are for (as [`PlanRequest::view`]).
    fn view(&self) -> &str;
    /// The reporter of the run about to start: of `session`'s plan, or with `None` of a run
    /// that builds nothing because the stamp held (nothing was planned).
    fn reporter(&mut self, session: Option<&Session>) -> &mut dyn Reporter;
    /// What a stamp of `session`'s all-fresh plan stores, made for [`RunRendering::view`].
    fn rendered(&self, session: &Session) -> Rendered;
}

/// What `hephy run` asks beyond its selection.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// How long to wait for another run on the same state ([`lock_wait`]).
    pub lock_timeout: Duration,
    /// Build as if the graph named no registry and no mirror (`--no-push`).
    pub no_push: bool,
    /// The most nodes running at once.
    pub jobs: usize,
    /// Stop launching nodes after the first failure.
    pub fail_fast: bool,
    /// Forward node output as events.
    pub verbose: bool,
    /// The command line, for the run history.
    pub command: String,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunAnswer {
    /// Nothing changed since the last all-fresh plan: a run that built nothing, recorded as
    /// such without planning.
    NothingToDo {
        /// The run's id.
        run_id: i64,
        /// Where the images are, as the stamp stored it.
        images: String,
    },
    /// The plan was made and run.
    Ran(Box<Ran>),
}

/// A plan that was run; the run lock is held until it is dropped.
#[derive(Debug)]
pub struct Ran {
    /// The session the run used (its state records the run).
    pub session: Session,
    /// The run's summary.
    pub summary: Summary,
    _lock: RunLock,
}

/// One graph file, with the state folder, selection and overrides a command was given: plans
/// and runs it.
#[derive(Debug)]
pub struct Project {
    graph_file: PathBuf,
    state: Option<PathBuf>,
    state_dir: PathBuf,
    selection: Selection,
    overrides: Overrides,
    cache: PlanCache,
}

impl Project {
    /// The graph file `graph_file` (as named on the command line), the state folder `state`
    /// (else `.hephy` beside it).
    pub fn new(
        graph_file: PathBuf,
        state: Option<PathBuf>,
        selection: Selection,
        overrides: Overrides,
    ) -> Project {
        let state_dir = graph_state_dir(&graph_file, state.as_deref());
        // Before the stamp's registry recheck, the first request that may need a login.
        crate::remember_helper_failures_in(&state_dir);
        let cache = PlanCache::new(&graph_file, state.as_deref());
        Project { graph_file, state, state_dir, selection, overrides, cache }
    }

    /// The graph file, as named on the command line.
    pub fn graph_file(&self) -> &Path {
        &self.graph_file
    }

    /// The graph loaded and checked, its document as read reused from the state folder while
    /// the file is unchanged.
    fn load(&self) -> Result<Loaded, SessionError> {
        load_in(&self.graph_file, &self.overrides, &self.state_dir).map_err(SessionError::Input)
    }

    /// The plan: from the stamp when it holds (the graph as written, the whole plan), else
    /// planned in full.
    pub fn plan(&self, request: &PlanRequest<'_>) -> Result<PlanAnswer, SessionError> {
        match self.stored_plan(request) {
            Some(answer) => Ok(answer),
            None => self.plan_in_full(request).map(|session| PlanAnswer::Planned(Box::new(session))),
        }
    }

    /// The stamp's answer, when it holds; never with overrides (they are not in the stamp) or
    /// for `changed` (the stamp keeps the whole plan).
    pub fn stored_plan(&self, request: &PlanRequest<'_>) -> Option<PlanAnswer> {
        if !self.overrides.is_empty() || request.changed {
            return None;
        }
        Some(match self.cache.answer(&self.selection, request.view, request.json, &RegistryRecheck)? {
            hephy_engine::Answer::Unchanged(text) => PlanAnswer::Unchanged(text),
            hephy_engine::Answer::Replanned(steps) => PlanAnswer::Replanned(steps),
        })
    }

    /// The plan made in full, without asking the stamp (for a stored answer the caller cannot
    /// show), restricted to what `request` shows.
    pub fn plan_in_full(&self, request: &PlanRequest<'_>) -> Result<Session, SessionError> {
        let loaded = self.load()?;
        let mut session = Session::open(loaded.model, self.state.as_deref(), &self.selection)?;
        session.timings.splice(0..0, loaded.timings);
        if let Some(scope) = &session.scope {
            // Nodes outside the group are left out of the plan shown.
            session.plan.retain_nodes(scope);
        }
        if request.changed {
            let keep = session
                .plan
                .steps
                .iter()
                .filter(|s| s.action == hephy_engine::Action::Build)
                .map(|s| s.node)
                .collect();
            session.plan.retain_nodes(&keep);
        }
        Ok(session)
    }

    /// After a plan made in full was shown: leaves its stamp, storing what `render` gives,
    /// when it is worth remembering (all fresh, stampable, the graph as written), else removes
    /// an earlier stamp it makes stale. A `changed` plan leaves the stamp as it is.
    pub fn settle_plan(
        &self,
        request: &PlanRequest<'_>,
        session: &Session,
        render: impl FnOnce(&Session) -> Rendered,
    ) {
        if request.changed {
            return;
        }
        if self.overrides.is_empty() && worth_remembering(session.stampable, &session.plan) {
            PlanCache::remember(&session.stamped(&self.graph_file), &render(session));
        } else {
            PlanCache::forget(&session.state_dir, &self.selection);
        }
    }

    /// Runs the plan under the run lock: a run that builds nothing when the stamp holds, else
    /// plans (after repairing the image layout) and runs, and leaves a stamp when the run built
    /// nothing. `cancel` stops the run.
    pub fn run(
        &self,
        request: &RunRequest,
        rendering: &mut dyn RunRendering,
        cancel: &hephy_engine::Cancel,
    ) -> Result<RunAnswer, SessionError> {
        let dir = &self.state_dir;
        // The stamp is of the graph as written: a run without its registries neither reads nor
        // leaves one.
        let stamped = self.overrides.is_empty() && !request.no_push;
        if self.graph_file.is_file() && stamped {
            let _lock = RunLock::acquire(dir, request.lock_timeout)?;
            // Nothing changed since the last all-fresh plan: a run that builds nothing,
            // recorded as such, without planning again.
            if let Some(nothing) =
                self.cache.nothing_to_do(&self.selection, rendering.view(), &RegistryRecheck)
            {
                crate::clean_temporaries(dir);
                let run_id = {
                    let mut store = State::open(dir)?;
                    let reporter = rendering.reporter(None);
                    hephy_engine::run_all_fresh(&mut store, &request.command, nothing.nodes, reporter)?.run_id
                };
                // The store is closed: the stamp takes the database's stat after the run.
                self.cache.advance(run_id);
                return Ok(RunAnswer::NothingToDo { run_id, images: nothing.images });
            }
        }
        let Loaded { mut model, timings } = self.load()?;
        if request.no_push {
            model.without_registries();
        }
        let lock = RunLock::acquire(dir, request.lock_timeout)?;
        let mut session = Session::open(model, self.state.as_deref(), &self.selection)?;
        session.timings.splice(0..0, timings);
        // Under the lock: temporaries a killed run left go, and the layout names every image
        // the state records (a damaged `index.json` is rebuilt, never truncated).
        if let Err(e) =
            crate::prepare_layout(&session.model, &session.graph, &session.snapshot, &session.state_dir)
        {
            session.unrepaired = Some(e);
        }
        let reporter = rendering.reporter(Some(&session));
        let options = RunOptions {
            jobs: request.jobs,
            fail_fast: request.fail_fast,
            verbose: request.verbose,
            state_dir: session.state_dir.clone(),
            command: request.command.clone(),
        };
        let summary = {
            let Session {
                model,
                graph,
                plan,
                snapshot,
                state,
                exclusions,
                state_dir,
                upstreams,
                release,
                ..
            } = &mut session;
            let work = Stdlib::new(model, state_dir, exclusions.clone(), upstreams.clone(), release.clone());
            hephy_engine::run(model, graph, plan, snapshot, state, &work, reporter, &options, cancel)?
        };
        // A run that built nothing leaves the plan's stamp, so the next run or plan is quick.
        let nothing_built =
            summary.built == 0 && summary.failed == 0 && summary.skipped == 0 && !summary.interrupted;
        if nothing_built {
            if stamped && worth_remembering(session.stampable, &session.plan) {
                PlanCache::remember(&session.stamped(&self.graph_file), &rendering.rendered(&session));
            }
        } else if summary.failed == 0
            && summary.skipped == 0
            && !summary.interrupted
            && !cancel.is_cancelled()
            && stamped
            && session.stampable
            && session.model.registry.is_none()
        {
            // A run that built all its plan asked leaves the stamp of the plan after it (built
            // images' keys hold their dependencies' new outputs), so that the next plan after an
            // edit is worked out from the memo rather than planned in full. Not with a registry:
            // its stamp has no memo, and planning again would ask the registry again. Best
            // effort, under the run lock: a plan that fails, or a signal meanwhile, leaves no
            // stamp and changes nothing of the run's answer (its own session).
            if let Ok(after) = Session::open(session.model.clone(), self.state.as_deref(), &self.selection)
                && !cancel.is_cancelled()
                && worth_remembering(after.stampable, &after.plan)
            {
                PlanCache::remember(&after.stamped(&self.graph_file), &rendering.rendered(&after));
            }
        }
        Ok(RunAnswer::Ran(Box::new(Ran { session, summary, _lock: lock })))
    }
}

/// The state folder held for maintenance (`hephy gc`): under the run lock, so no run changes
/// it meanwhile; released when dropped.
#[derive(Debug)]
pub struct Maintenance {
    /// The state folder.
    pub state_dir: PathBuf,
    /// Its records.
    pub snapshot: Snapshot,
    _lock: RunLock,
}

impl Maintenance {
    /// Takes the run lock of the state folder `state` (else `.hephy` beside `graph_file`),
    /// waiting at most `wait`, and reads the records.
    pub fn hold(
        graph_file: &Path,
        state: Option<&Path>,
        wait: Duration,
    ) -> Result<Maintenance, SessionError> {
        let state_dir = graph_state_dir(graph_file, state);
        let lock = RunLock::acquire(&state_dir, wait)?;
        let snapshot = State::open(&state_dir).and_then(|s| s.snapshot())?;
        refuse_layout_links(&state_dir)?;
        Ok(Maintenance { state_dir, snapshot, _lock: lock })
    }

    /// Removes from the image layout every blob no recorded image references, and the
    /// temporaries killed runs left.
    pub fn collect_garbage(&self) -> Result<crate::Collected, crate::GcError> {
        crate::collect_garbage(&self.snapshot, &self.state_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task graph: one variable, one task reading `src/*.txt`.
    const GRAPH: &str =
        "variables V=\"0\"\ntask \"hello\" {\n    run \"sh\" \"-c\" \"true\"\n    inputs \"src/*.txt\"\n}\n";

    /// Renders nothing but what a stamp stores, and counts how often it was asked.
    struct Quiet {
        reporter: Silent,
        stamps: std::cell::Cell<usize>,
    }

    struct Silent;

    impl Reporter for Silent {
        fn event(&mut self, _: &hephy_engine::Event) {}
    }

    impl RunRendering for Quiet {
        fn view(&self) -> &str {
            "test"
        }

        fn reporter(&mut self, _: Option<&Session>) -> &mut dyn Reporter {
            &mut self.reporter
        }

        fn rendered(&self, _: &Session) -> Rendered {
            self.stamps.set(self.stamps.get() + 1);
            rendered("TEXT\n")
        }
    }

    fn rendered(text: &str) -> Rendered {
        Rendered {
            view: "test".to_owned(),
            text: text.to_owned(),
            json: "{}\n".to_owned(),
            images: String::new(),
        }
    }

    fn request() -> RunRequest {
        RunRequest {
            lock_timeout: Duration::from_secs(5),
            no_push: false,
            jobs: 1,
            fail_fast: false,
            verbose: false,
            command: "test".to_owned(),
        }
    }

    fn project(dir: &Path, overrides: Overrides) -> Project {
        Project::new(dir.join("hephy.kdl"), None, Selection::default(), overrides)
    }

    /// The session's policy end to end on a task graph: a run that builds all it was asked
    /// (no registry) or nothing leaves the stamp (with the renderings the caller gives), a plan is answered from it for that view
    /// only, a `changed` plan and a plan with overrides neither read it nor (for `changed`)
    /// remove it, a plan with overrides removes it, and a run then plans again.
    #[test]
    fn the_stamp_is_consulted_left_and_removed_by_the_session() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
        std::fs::write(dir.path().join("src/a.txt"), "a\n").expect("write");
        std::fs::write(dir.path().join("hephy.kdl"), GRAPH).expect("write");
        // Out of the racy window: a stamp is only written for files older than two seconds.
        std::thread::sleep(Duration::from_millis(2100));
        let plain = project(dir.path(), Overrides::default());
        let cancel = hephy_engine::Cancel::new();
        let mut rendering = Quiet { reporter: Silent, stamps: std::cell::Cell::new(0) };
        let Ok(RunAnswer::Ran(ran)) = plain.run(&request(), &mut rendering, &cancel) else { panic!("ran") };
        assert_eq!(ran.summary.built, 1);
        drop(ran);
        assert_eq!(rendering.stamps.get(), 1, "a run that built all it was asked leaves the stamp after it");
        let Ok(RunAnswer::NothingToDo { .. }) = plain.run(&request(), &mut rendering, &cancel) else {
            panic!("nothing to do")
        };
        let view = |view, changed| PlanRequest { view, json: false, changed };
        // Overrides are not in the stamp: a plan with them removes it; the run after plans,
        // builds nothing and leaves it again.
        let set = Overrides::new(&["V=1".to_owned()], []).expect("overrides");
        let overridden = project(dir.path(), set);
        let Ok(PlanAnswer::Planned(full)) = overridden.plan(&view("test", false)) else { panic!("planned") };
        overridden.settle_plan(&view("test", false), &full, |_| rendered("OVERRIDDEN\n"));
        let Ok(RunAnswer::Ran(ran)) = plain.run(&request(), &mut rendering, &cancel) else { panic!("ran") };
        assert_eq!((ran.summary.built, ran.summary.fresh), (0, 1));
        drop(ran);
        assert_eq!(rendering.stamps.get(), 2, "a run that built nothing leaves a stamp");
        assert!(matches!(plain.plan(&view("test", false)), Ok(PlanAnswer::Unchanged(t)) if t == "TEXT\n"));
        assert!(matches!(plain.plan(&view("other", false)), Ok(PlanAnswer::Planned(_))), "another view");
        // `--changed` shows part of the plan: planned, the stamp left as it is.
        let Ok(PlanAnswer::Planned(part)) = plain.plan(&view("test", true)) else { panic!("planned") };
        assert!(part.plan.steps.is_empty(), "nothing will run");
        plain.settle_plan(&view("test", true), &part, |_| rendered("PART\n"));
        assert!(matches!(plain.plan(&view("test", false)), Ok(PlanAnswer::Unchanged(t)) if t == "TEXT\n"));
        // A run from the stamp: nothing to do, recorded, the stamp kept.
        let Ok(RunAnswer::NothingToDo { .. }) = plain.run(&request(), &mut rendering, &cancel) else {
            panic!("nothing to do")
        };
        assert!(matches!(plain.plan(&view("test", false)), Ok(PlanAnswer::Unchanged(_))));
        // Overrides are not in the stamp: planned in full, and the stamp removed.
        let Ok(PlanAnswer::Planned(full)) = overridden.plan(&view("test", false)) else { panic!("planned") };
        overridden.settle_plan(&view("test", false), &full, |_| rendered("OVERRIDDEN\n"));
        assert!(matches!(plain.plan(&view("test", false)), Ok(PlanAnswer::Planned(_))), "the stamp is gone");
        let Ok(RunAnswer::Ran(_)) = plain.run(&request(), &mut rendering, &cancel) else {
            panic!("planned and ran")
        };
    }

    /// Seconds as given become a wait: negative or not a number is none, more than a day a day.
    #[test]
    fn lock_waits_are_bounded() {
        assert_eq!(lock_wait(1.5), Duration::from_millis(1500));
        assert_eq!(lock_wait(f64::NAN), Duration::ZERO);
        assert_eq!(lock_wait(-3.0), Duration::ZERO);
        assert_eq!(lock_wait(f64::INFINITY), Duration::ZERO);
        assert_eq!(lock_wait(1e9), Duration::from_secs(86_400));
    }
}
