//! `hephy plan`: asks the library session for the plan (the stamp's stored rendering, the
//! steps its memo worked out, or a plan made in full) and renders it as a table or as JSON.

use hephy_stdlib::session::{PlanAnswer, PlanRequest, Project};

use crate::commands::graph_path;
use crate::style::{self, Style};
use crate::{Failure, FileArg, Format, SelectArgs, StateArg, plan_view, print, session};

/// `hephy plan`: the stamp's answer when it holds and fits, else the planner's plan, rendered;
/// the session leaves or removes the stamp.
pub(crate) fn command(
    file: &FileArg,
    state: &StateArg,
    select: &SelectArgs,
    format: Format,
    wide: bool,
    changed: bool,
    style: Style,
) -> Result<(), Failure> {
    let mut clock = session::Clock::new();
    let path = graph_path(file)?;
    let json = format == Format::Json;
    let width = if wide || json { None } else { style::stdout_width() };
    let fitted = style.fitting(width);
    let project = Project::new(path, state.dir.clone(), select.selection(), file.overrides()?);
    let request = PlanRequest { view: plan_view::view(style), json, changed };
    let stored = match project.plan(&request)? {
        PlanAnswer::Planned(session) => Err(session),
        PlanAnswer::Unchanged(text) => Ok((text, "unchanged since the last plan")),
        PlanAnswer::Replanned(steps) => Ok((
            plan_view::replanned(&project.graph_file().display().to_string(), &steps, fitted),
            "replanned from the memo",
        )),
    };
    let session = match stored {
        Err(session) => *session,
        Ok((text, how)) => {
            // The stamp keeps the whole table; one too wide for this terminal is planned
            // again, to fit.
            if width.is_none_or(|w| text.lines().all(|l| style::visible_width(l) <= w)) {
                clock.lap(how);
                print(&text);
                return Ok(());
            }
            project.plan_in_full(&request)?
        }
    };
    session::show_planning(&session);
    let mut clock = session::Clock::new();
    let shown = if json { plan_view::json(&session) } else { plan_view::text(&session, fitted) };
    clock.lap("render");
    print(&shown);
    clock.lap("print");
    // The stamp keeps the whole table, whatever this terminal's width: what was shown is
    // stored when it is that.
    project.settle_plan(&request, &session, |session| {
        let text = if json || width.is_some() { plan_view::text(session, style) } else { shown.clone() };
        let json = if json { shown } else { plan_view::json(session) };
        hephy_engine::Rendered {
            view: plan_view::view(style).to_owned(),
            text,
            json,
            images: crate::images_view::all_fresh(session),
        }
    });
    clock.lap("stamp");
    Ok(())
}
