//! The library session (`hephy_stdlib::session`) as the commands `plan`, `run`, `explain`, `ci`
//! and `graph` use it: opened, its planning warnings and (with `HEPHY_TIMINGS=1`) its step
//! timings shown on stderr. Holds no planning policy.

use std::path::{Path, PathBuf};

use hephy_dsl::Model;
use hephy_engine::{Graph, NodeIndex, PlanWarning};

pub(crate) use hephy_stdlib::session::{Selection, Session};

use crate::Failure;

pub(crate) fn state_dir(model: &Model, state: Option<&Path>) -> PathBuf {
    hephy_engine::state_dir(model, state)
}

/// Plans `model` (the library session), then shows what planning wants the user to know.
pub(crate) fn open(model: Model, state: Option<&Path>, selection: &Selection) -> Result<Session, Failure> {
    let session = Session::open(model, state, selection)?;
    show_planning(&session);
    Ok(session)
}

/// On stderr: the step timings (with `HEPHY_TIMINGS=1`) and the planner's warnings.
pub(crate) fn show_planning(session: &Session) {
    show_timings(&session.timings);
    for warning in &session.warnings {
        match warning {
            PlanWarning::RegistryUnreachable { why } => eprintln!(
                "warning: the registry cannot be asked for images built elsewhere ({}); planning without it (--offline skips asking)",
                crate::style::clean_line(why)
            ),
        }
    }
}

/// With `HEPHY_TIMINGS=1`, each step and how long it took, on stderr.
pub(crate) fn show_timings(timings: &[(&'static str, std::time::Duration)]) {
    if Clock::new().on {
        for (what, took) in timings {
            eprintln!("timing: {what:<16} {:>8.1} ms", took.as_secs_f64() * 1000.0);
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
