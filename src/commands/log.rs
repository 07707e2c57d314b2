//! `hephy log`: the past runs, for people or as JSON.

use std::time::Duration;

use hephy_engine::State;

use crate::commands::load_in;
use crate::{Failure, FileArg, Format, StateArg, print, session, style};

/// `hephy log`: the past runs.
pub(crate) fn command(file: &FileArg, state: &StateArg, limit: usize, format: Format) -> Result<(), Failure> {
    let model = load_in(file, state)?;
    let store = State::open(&session::state_dir(&model, state.dir.as_deref())).map_err(Failure::State)?;
    let runs = store.runs(limit).map_err(Failure::State)?;
    print(&match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&runs).unwrap_or_default()),
        Format::Text => style::clean(&log_text(&runs)).into_owned(),
    });
    Ok(())
}

fn log_text(runs: &[hephy_engine::RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs yet\n".to_owned();
    }
    let mut out = String::new();
    for run in runs {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(run.started_at).unwrap_or(0)),
        );
        let took = run.finished_at.map_or_else(|| "-".to_owned(), |f| format!("{}s", f - run.started_at));
        let mut counts: Vec<String> = run.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        counts.sort();
        out.push_str(&format!(
            "run {:<4} {when}  {:<11} {:>5}  {}\n",
            run.id,
            run.status,
            took,
            counts.join(", ")
        ));
    }
    out
}
