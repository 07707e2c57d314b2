//! A loaded graph with its state and plan, as the commands `plan`, `run`, `explain`, `ci` and
//! `graph` share it: made by the engine's [`Planner`](hephy_engine::Planner) with the
//! standard library's resolver. Holds no planning policy; renders the planner's warnings and
//! (with `HEPHY_TIMINGS=1`) its step timings.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hephy_dsl::Model;
use hephy_engine::{Exclusions, Graph, NodeIndex, Plan, PlanError, PlanWarning, Planner, Snapshot, State};

pub(crate) use hephy_engine::Selection;

use crate::Failure;

/// A loaded graph with its state and plan.
pub(crate) struct Session {
    pub(crate) model: Model,
    pub(crate) graph: Graph,
    pub(crate) state_dir: PathBuf,
    pub(crate) state: State,
    pub(crate) snapshot: Snapshot,
    pub(crate) plan: Plan,
    pub(crate) exclusions: Exclusions,
    pub(crate) upstreams: hephy_stdlib::Upstreams,
    /// The plan's release information (git, the date), for the run and for showing tags.
    pub(crate) release: std::sync::Arc<hephy_stdlib::Release>,
    /// Every input file and folder the plan looked at (for the plan cache's stamp).
    pub(crate) watched: hephy_engine::Watched,
    /// What the check of recorded outputs looked at (for the plan cache's stamp).
    pub(crate) evidence: hephy_stdlib::Evidence,
    /// `--group`: the group's nodes and everything they depend on; the plan shown holds these
    /// only.
    pub(crate) scope: Option<HashSet<NodeIndex>>,
    /// Whether the planner lets the plan cache stamp this plan when it is all fresh.
    pub(crate) stampable: bool,
}

pub(crate) fn state_dir(model: &Model, state: Option<&Path>) -> PathBuf {
    hephy_engine::state_dir(model, state)
}

impl Session {
    pub(crate) fn open(
        model: Model,
        state: Option<&Path>,
        selection: &Selection,
    ) -> Result<Session, Failure> {
        let state_dir = state_dir(&model, state);
        // A credential helper that hung is remembered there, so later commands do not wait.
        hephy_stdlib::remember_helper_failures_in(&state_dir);
        let resolver = hephy_stdlib::PlanResolver::new(&model, &state_dir, selection.offline);
        let planner = Planner { model: &model, state_dir: &state_dir, resolver: &resolver };
        let planned = planner.plan(selection).map_err(|e| match e {
            PlanError::Selection(problems) => Failure::Input(problems),
            PlanError::State(e) => Failure::State(e),
        })?;
        let mut clock = Clock::new();
        if clock.on {
            for (what, took) in &planned.timings {
                eprintln!("timing: {what:<16} {:>8.1} ms", took.as_secs_f64() * 1000.0);
            }
        }
        for warning in &planned.warnings {
            match warning {
                PlanWarning::RegistryUnreachable { why } => eprintln!(
                    "warning: the registry cannot be asked for images built elsewhere ({}); planning without it (--offline skips asking)",
                    crate::style::clean_line(why)
                ),
            }
        }
        let evidence = resolver.evidence();
        let release = resolver.release();
        clock.lap("list what it saw");
        drop(resolver);
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
        })
    }
}

impl Session {
    /// What the plan cache's stamp of this plan (of the graph file `graph_file`, as named on
    /// the command line) records.
    pub(crate) fn stamped<'a>(&'a self, graph_file: &'a Path) -> hephy_engine::Stamped<'a> {
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

/// The nodes `name` means (a node id, or an image or task name), as a usage error if none.
pub(crate) fn nodes_named(model: &Model, graph: &Graph, name: &str) -> Result<Vec<NodeIndex>, Failure> {
    hephy_engine::nodes_named(model, graph, name).map_err(Failure::Input)
}

/// `HEPHY_TIMINGS=1` prints how long each step took, on stderr.
pub(crate) struct Clock {
    on: bool,
    last: std::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock { on: std::env::var_os("HEPHY_TIMINGS").is_some(), last: std::time::Instant::now() }
    }

    pub(crate) fn lap(&mut self, what: &str) {
        if self.on {
            eprintln!("timing: {what:<16} {:>8.1} ms", self.last.elapsed().as_secs_f64() * 1000.0);
        }
        self.last = std::time::Instant::now();
    }
}
