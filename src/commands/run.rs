//! `hephy run`: the library session runs the plan (under its lock; from the stamp when
//! nothing changed); here the reporter is chosen, signals become cancellation, and the
//! closing list of images and the exit code are rendered.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hephy_engine::Reporter;
use hephy_stdlib::session::{Project, RunAnswer, RunRendering, RunRequest, Session, lock_wait};

use crate::commands::graph_path;
use crate::style::{self, Style};
use crate::{Failure, FileArg, Format, SelectArgs, StateArg, images_view, plan_view, print, report, session};

/// `hephy run`'s flags about how it runs.
pub(crate) struct RunFlags {
    pub(crate) jobs: Option<usize>,
    pub(crate) fail_fast: bool,
    pub(crate) verbose: bool,
    /// `--no-push`: the graph as if it named no registry.
    pub(crate) no_push: bool,
    /// `-q`: failures and the summary line only.
    pub(crate) quiet: bool,
    /// `--wide`: whole digests in the list of images.
    pub(crate) wide: bool,
}

/// `hephy run`: the session's run, rendered: a run that builds nothing when the stamp holds,
/// else the plan run.
pub(crate) fn command(
    file: &FileArg,
    state: &StateArg,
    select: &SelectArgs,
    flags: &RunFlags,
    lock_timeout: f64,
    format: Format,
    style: Style,
) -> Result<(), Failure> {
    let RunFlags { jobs, fail_fast, verbose, no_push, quiet, wide } = *flags;
    let path = graph_path(file)?;
    let project = Project::new(path, state.dir.clone(), select.selection(), file.overrides()?);
    let live = format == Format::Text && std::io::stdout().is_terminal() && !verbose && !quiet;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let request = RunRequest {
        lock_timeout: lock_wait(lock_timeout),
        no_push,
        jobs,
        fail_fast,
        // The live view shows each running node's last line of output.
        verbose: verbose || live,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let cancel = hephy_engine::Cancel::new();
    let mut rendering = Rendering {
        style,
        format,
        quiet,
        live,
        verbose,
        jobs,
        cancel: cancel.clone(),
        signal: None,
        reporter: None,
    };
    let ran = match project.run(&request, &mut rendering, &cancel)? {
        RunAnswer::NothingToDo { images, .. } => {
            if format == Format::Text {
                print(&report::digests(&images, wide));
            }
            return Ok(());
        }
        RunAnswer::Ran(ran) => ran,
    };
    let (session, summary) = (&ran.session, &ran.summary);
    if format == Format::Text && !summary.interrupted && !quiet {
        let images = images_view::text(
            &session.model,
            &session.release,
            &session.graph,
            &session.state,
            &session.state_dir,
            &summary.results,
        );
        print(&style::clean(&report::digests(&images, wide)));
    }
    if summary.interrupted {
        let signal = rendering.signal.map_or(0, |s| u8::try_from(s.load(Ordering::SeqCst)).unwrap_or(0));
        return Err(Failure::Interrupted { signal: if signal == 0 { 2 } else { signal } });
    }
    if summary.failed > 0 {
        return Err(Failure::Build);
    }
    Ok(())
}

/// How `hephy run` renders: its reporter, made once the session knows the plan, and the plan's
/// renderings a stamp stores.
struct Rendering {
    style: Style,
    format: Format,
    quiet: bool,
    live: bool,
    verbose: bool,
    jobs: usize,
    /// Set by SIGINT, SIGTERM and SIGHUP once the run is about to start.
    cancel: hephy_engine::Cancel,
    /// Which signal came.
    signal: Option<Arc<AtomicUsize>>,
    reporter: Option<Box<dyn Reporter>>,
}

impl RunRendering for Rendering {
    fn view(&self) -> &str {
        plan_view::view(self.style)
    }

    fn reporter(&mut self, session: Option<&Session>) -> &mut dyn Reporter {
        let context = match session {
            Some(session) => {
                session::show_planning(session);
                if let Some(e) = &session.unrepaired {
                    eprintln!(
                        "warning: the image layout cannot be repaired: {}",
                        style::clean(&e.to_string())
                    );
                }
                self.signal = Some(cancel_on_signals(self.cancel.flag()));
                run_context(session, self.jobs)
            }
            None => report::Context::default(),
        };
        let style = self.style;
        self.reporter
            .insert(match self.format {
                Format::Json => Box::new(report::Json),
                Format::Text if self.quiet => Box::new(report::Quiet::new(style)),
                Format::Text if self.live => Box::new(report::Live::new(style, context)),
                Format::Text => Box::new(report::Lines::new(style, context, self.verbose)),
            })
            .as_mut()
    }

    fn rendered(&self, session: &Session) -> hephy_engine::Rendered {
        hephy_engine::Rendered {
            view: plan_view::view(self.style).to_owned(),
            text: plan_view::text(session, self.style),
            json: plan_view::json(session),
            images: images_view::all_fresh(session),
        }
    }
}

/// What the renderers of a run know before it starts: the nodes to build with their last build
/// times (the ETA) and their dependencies (the critical path), the parallelism.
fn run_context(session: &Session, jobs: usize) -> report::Context {
    let (graph, plan) = (&session.graph, &session.plan);
    // A node's last build time (none when it was found fresh, cut off or cached: 0 ms).
    let past = |id: &str| {
        session
            .snapshot
            .records
            .get(id)
            .and_then(|r| u64::try_from(r.duration_ms).ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis)
    };
    let medians = report::medians_by_kind(graph.order().iter().filter_map(|&i| {
        let node = graph.node(i);
        past(node.id.as_str()).map(|d| (node.kind.as_str(), d))
    }));
    let planned = plan
        .steps
        .iter()
        .filter(|s| s.action == hephy_engine::Action::Build)
        .map(|s| {
            let node = graph.node(s.node);
            let expected = past(node.id.as_str()).or_else(|| medians.get(node.kind.as_str()).copied());
            (node.id.to_string(), expected)
        })
        .collect();
    // Only nodes to build take time: the critical path runs through them alone.
    let deps = plan
        .steps
        .iter()
        .filter(|s| s.action == hephy_engine::Action::Build)
        .map(|s| {
            let id = graph.node(s.node).id.to_string();
            (id, graph.deps(s.node).iter().map(|&d| graph.node(d).id.to_string()).collect())
        })
        .collect();
    report::Context { planned, deps, jobs }
}

/// Sets `cancel` on SIGINT, SIGTERM and SIGHUP (Ctrl-C, a CI job's cancellation, a closed
/// terminal): the run stops its tasks' process groups and is recorded as interrupted. The
/// answer holds the number of the signal that came.
fn cancel_on_signals(cancel: &Arc<AtomicBool>) -> Arc<AtomicUsize> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let which = Arc::new(AtomicUsize::new(0));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let _ = signal_hook::flag::register(signal, Arc::clone(cancel));
        let _ = signal_hook::flag::register_usize(signal, Arc::clone(&which), signal.unsigned_abs() as usize);
    }
    which
}
