//! The run: feeds the plan's nodes, in dependency order, to executor pools, and records each
//! finished node in the state store as it finishes.
//!
//! Owns scheduling (a node is ready when its dependencies succeeded; at most `jobs` nodes per
//! executor; a failure skips its dependents and nothing else unless fail-fast), early cutoff (a
//! node whose dependencies rebuilt to the same outputs is not rebuilt), cancellation, and the
//! [`Event`] stream that renderers consume. What a node *does* is behind the [`Work`] trait,
//! implemented by `hephy-stdlib`; the engine itself prints nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hephy_dsl::Model;
use petgraph::graph::NodeIndex;

use crate::graph::{Graph, LOCAL_EXECUTOR, Node};
use crate::key::{DepValue, InputManifest, Key};
use crate::plan::{Action, Plan, Reason, Step, with_deps};
use crate::state::{NodeResult, Snapshot, State, StateError};

/// One node handed to [`Work`].
#[derive(Debug)]
pub struct Job<'a> {
    /// The node.
    pub node: &'a Node,
    /// The graph's folder (the working directory of tasks).
    pub root: &'a Path,
    /// The run's id.
    pub run_id: i64,
    /// Each dependency's node and output digest.
    pub deps: Vec<(&'a Node, String)>,
    /// The key the node is built with.
    pub key: &'a Key,
    /// Where the node's output log goes.
    pub log: PathBuf,
    /// Set when the run is cancelled: stop, terminating children.
    pub cancel: &'a AtomicBool,
    /// Forward output lines as [`Event::Output`] (`-v`).
    pub verbose: bool,
    /// Where to send output lines.
    pub events: mpsc::Sender<Message>,
}

impl Job<'_> {
    /// Sends one line of the node's output to the reporter (when verbose).
    pub fn output_line(&self, line: String) {
        if self.verbose {
            let _ = self.events.send(Message::Output { node: self.node.id.to_string(), line });
        }
    }
}

/// How a node's work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded with this output digest.
    Built {
        /// The output digest (an image digest, or the digest of a task's outputs).
        output: String,
    },
    /// It failed.
    Failed {
        /// What went wrong, for people.
        message: String,
    },
}

/// What nodes do. Implemented by `hephy-stdlib` (tasks run processes; images call builders).
pub trait Work: Sync {
    /// Does `job`'s work, blocking until it is done, failed, or cancelled.
    fn execute(&self, job: &Job<'_>) -> Outcome;
}

/// Messages from worker threads to the scheduler.
#[derive(Debug)]
pub enum Message {
    /// A line of output.
    Output {
        /// The node id.
        node: String,
        /// The line.
        line: String,
    },
    /// A node finished.
    Done {
        /// The node.
        index: NodeIndex,
        /// How it ended.
        outcome: Outcome,
        /// How long it took.
        duration: Duration,
    },
}

/// Why a node was not built in a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// Planned as fresh.
    Fresh,
    /// Its dependencies rebuilt to the same outputs: its key matches its last build.
    CutOff,
    /// The registry holds its output for its key: nothing to build here.
    Cached,
    /// A dependency failed (or was skipped for that reason).
    DependencyFailed {
        /// The failed dependency.
        node: String,
    },
    /// The run stopped before it (`--fail-fast` or Ctrl-C).
    Cancelled,
}

/// What the scheduler reports, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run started.
    Started {
        /// Its id.
        run_id: i64,
        /// Nodes planned to build.
        to_build: usize,
        /// All nodes.
        total: usize,
    },
    /// A node started on an executor.
    NodeStarted {
        /// The node id.
        node: String,
        /// The executor.
        executor: String,
    },
    /// A line of a node's output (`-v`).
    Output {
        /// The node id.
        node: String,
        /// The line.
        line: String,
    },
    /// A node was built.
    NodeBuilt {
        /// The node id.
        node: String,
        /// Its output digest.
        output: String,
        /// How long it took.
        duration: Duration,
    },
    /// A node failed.
    NodeFailed {
        /// The node id.
        node: String,
        /// What went wrong.
        message: String,
        /// Its log file.
        log: PathBuf,
        /// How long it ran.
        duration: Duration,
    },
    /// A node was not built.
    NodeSkipped {
        /// The node id.
        node: String,
        /// Why.
        reason: SkipReason,
    },
    /// The run ended.
    Finished(Summary),
}

/// Receives the run's events (the CLI's renderers).
pub trait Reporter {
    /// Handles one event.
    fn event(&mut self, event: &Event);
}

/// How a run ended.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// The run's id.
    pub run_id: i64,
    /// Node id → result (`built`, `failed`, `skipped`, `fresh`, `cutoff`, `cancelled`).
    pub results: BTreeMap<String, String>,
    /// Nodes built.
    pub built: usize,
    /// Nodes fresh (planned or cut off).
    pub fresh: usize,
    /// Nodes failed.
    pub failed: usize,
    /// Nodes skipped (a dependency failed, or the run stopped).
    pub skipped: usize,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
    /// Wall time.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Knobs of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The most nodes running at once, over all executors (`--jobs`).
    pub jobs: usize,
    /// Stop launching nodes after the first failure.
    pub fail_fast: bool,
    /// Forward node output as events.
    pub verbose: bool,
    /// The state folder (logs go under it).
    pub state_dir: PathBuf,
    /// The command line, for the run history.
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Waiting,
    Running,
    Done(String),
    Failed,
    Skipped,
}

/// An executor pool: its capacity and load.
#[derive(Debug)]
struct Pool {
    name: String,
    platform: Option<hephy_dsl::Platform>,
    capacity: usize,
    running: usize,
}

/// Runs `plan`, recording each finished node in `state`.
#[expect(clippy::too_many_arguments, reason = "the run's collaborators, each distinct")]
pub fn run(
    model: &Model,
    graph: &Graph,
    plan: &Plan,
    snapshot: &Snapshot,
    state: &mut State,
    work: &dyn Work,
    reporter: &mut dyn Reporter,
    options: &RunOptions,
    cancel: &AtomicBool,
) -> Result<Summary, StateError> {
    let started = Instant::now();
    let run_id = state.begin_run(&options.command)?;
    let log_dir = options.state_dir.join("logs").join(run_id.to_string());
    let mut pools = pools(model, options.jobs);
    let mut status: HashMap<NodeIndex, Status> = HashMap::new();
    let mut summary = Summary { run_id, ..Summary::default() };
    let mut running_total = 0usize;
    let mut stop_launching = false;
    let mut assigned: HashMap<NodeIndex, usize> = HashMap::new();
    let mut launched: HashMap<NodeIndex, InputManifest> = HashMap::new();
    reporter.event(&Event::Started { run_id, to_build: plan.builds(), total: plan.steps.len() });

    // Fresh nodes are done before anything runs. Those recorded under another key whose
    // inputs are the same today (an older key encoding) are given today's key.
    let mut rekeyed: Vec<(&str, Key)> = Vec::new();
    for step in &plan.steps {
        let node = graph.node(step.node);
        if let (Action::Skip, Some(output)) = (step.action, &step.cached_output) {
            // Found in the registry: remember it locally, as if built here.
            let manifest = plan.manifest(step, graph, snapshot);
            state.record(
                run_id,
                &NodeResult {
                    node: node.id.as_str(),
                    result: "cached",
                    reasons: serde_json::to_value(&step.reasons).unwrap_or_default(),
                    key: Some(&step.key),
                    manifest: Some(&manifest),
                    output: Some(output),
                    message: None,
                    duration: Duration::ZERO,
                },
            )?;
            status.insert(step.node, Status::Done(output.clone()));
            summary.fresh += 1;
            summary.results.insert(node.id.to_string(), "cached".to_owned());
            reporter.event(&Event::NodeSkipped { node: node.id.to_string(), reason: SkipReason::Cached });
        } else if step.action == Action::Skip {
            let record = snapshot.records.get(node.id.as_str());
            if let Some(record) = record
                && record.key != step.key
                && record.manifest().is_some_and(|m| m.key() == step.key)
            {
                rekeyed.push((node.id.as_str(), step.key));
            }
            let output = record.map(|r| r.output.clone()).unwrap_or_default();
            status.insert(step.node, Status::Done(output));
            summary.fresh += 1;
            summary.results.insert(node.id.to_string(), "fresh".to_owned());
            reporter.event(&Event::NodeSkipped { node: node.id.to_string(), reason: SkipReason::Fresh });
        } else {
            status.insert(step.node, Status::Waiting);
        }
    }
    state.rekey(&rekeyed)?;

    // A ready set in plan order.
    let position: HashMap<NodeIndex, usize> =
        plan.steps.iter().enumerate().map(|(i, s)| (s.node, i)).collect();
    let mut remaining: HashMap<NodeIndex, usize> = HashMap::new();
    let mut ready: BTreeSet<usize> = BTreeSet::new();
    let mut failed_roots: Vec<NodeIndex> = Vec::new();
    for step in &plan.steps {
        if status[&step.node] != Status::Waiting {
            continue;
        }
        let deps = graph.deps(step.node);
        let waiting = deps.iter().filter(|d| !matches!(status[*d], Status::Done(_))).count();
        remaining.insert(step.node, waiting);
        if waiting == 0 {
            ready.insert(position[&step.node]);
        }
    }

    let (tx, rx) = mpsc::channel::<Message>();
    std::thread::scope(|scope| -> Result<(), StateError> {
        loop {
            // Launch every ready node that has a free executor slot, in plan order; nodes cut
            // off make their dependents ready at once, so go round until nothing changes.
            let mut progress = true;
            while progress && !stop_launching && !cancel.load(Ordering::SeqCst) {
                progress = false;
                let candidates: Vec<usize> = ready.iter().copied().collect();
                for pos in candidates {
                    if running_total >= options.jobs.max(1) {
                        break;
                    }
                    let step = &plan.steps[pos];
                    let node = graph.node(step.node);
                    let deps = graph.deps(step.node);
                    // Early cutoff: with the dependencies' real outputs, is the key unchanged?
                    let dep_outputs: Vec<(&Node, String)> = deps
                        .iter()
                        .map(|d| match &status[d] {
                            Status::Done(out) => (graph.node(*d), out.clone()),
                            _ => (graph.node(*d), String::new()),
                        })
                        .collect();
                    let manifest = with_deps(
                        plan.inputs(step.node),
                        dep_outputs.iter().map(|(dep, out)| (dep.id.as_str(), DepValue::Output(out))),
                    );
                    let key = manifest.key();
                    let only_deps =
                        step.reasons.iter().all(|r| matches!(r, Reason::DependencyRebuilt { .. }));
                    if let Some(record) = snapshot.records.get(node.id.as_str())
                        && only_deps
                        && record.key == key
                    {
                        let output = record.output.clone();
                        state.record(
                            run_id,
                            &NodeResult {
                                node: node.id.as_str(),
                                result: "cutoff",
                                reasons: serde_json::to_value(&step.reasons).unwrap_or_default(),
                                key: Some(&key),
                                manifest: None,
                                output: Some(&output),
                                message: None,
                                duration: Duration::ZERO,
                            },
                        )?;
                        ready.remove(&pos);
                        status.insert(step.node, Status::Done(output));
                        summary.fresh += 1;
                        summary.results.insert(node.id.to_string(), "cutoff".to_owned());
                        reporter.event(&Event::NodeSkipped {
                            node: node.id.to_string(),
                            reason: SkipReason::CutOff,
                        });
                        release(graph.dependents(step.node), &status, &mut remaining, &mut ready, &position);
                        progress = true;
                        continue;
                    }
                    let Some(pool) = pick_pool(&pools, node) else { continue };
                    ready.remove(&pos);
                    pools[pool].running += 1;
                    running_total += 1;
                    assigned.insert(step.node, pool);
                    status.insert(step.node, Status::Running);
                    reporter.event(&Event::NodeStarted {
                        node: node.id.to_string(),
                        executor: pools[pool].name.clone(),
                    });
                    let log = log_dir.join(format!("{}.log", file_name(node.id.as_str())));
                    launched.insert(step.node, manifest);
                    let tx = tx.clone();
                    let index = step.node;
                    let root = model.root.as_path();
                    let verbose = options.verbose;
                    scope.spawn(move || {
                        let start = Instant::now();
                        let job = Job {
                            node,
                            root,
                            run_id,
                            deps: dep_outputs,
                            key: &key,
                            log,
                            cancel,
                            verbose,
                            events: tx.clone(),
                        };
                        let outcome = work.execute(&job);
                        let _ = tx.send(Message::Done { index, outcome, duration: start.elapsed() });
                    });
                    progress = true;
                }
            }
            if running_total == 0 {
                break;
            }
            let Ok(message) = rx.recv() else { break };
            match message {
                Message::Output { node, line } => reporter.event(&Event::Output { node, line }),
                Message::Done { index, outcome, duration } => {
                    running_total -= 1;
                    if let Some(pool) = assigned.remove(&index) {
                        pools[pool].running -= 1;
                    }
                    let node = graph.node(index);
                    let step = &plan.steps[position[&index]];
                    let reasons = serde_json::to_value(&step.reasons).unwrap_or_default();
                    let manifest = launched.remove(&index).unwrap_or_default();
                    let key = manifest.key();
                    match outcome {
                        Outcome::Built { output } => {
                            state.record(
                                run_id,
                                &NodeResult {
                                    node: node.id.as_str(),
                                    result: "built",
                                    reasons,
                                    key: Some(&key),
                                    manifest: Some(&manifest),
                                    output: Some(&output),
                                    message: None,
                                    duration,
                                },
                            )?;
                            summary.built += 1;
                            summary.results.insert(node.id.to_string(), "built".to_owned());
                            reporter.event(&Event::NodeBuilt {
                                node: node.id.to_string(),
                                output: output.clone(),
                                duration,
                            });
                            status.insert(index, Status::Done(output));
                            release(graph.dependents(index), &status, &mut remaining, &mut ready, &position);
                        }
                        Outcome::Failed { message } => {
                            // Stopped by Ctrl-C is not a failure of the node: the next run redoes it.
                            let cancelled = cancel.load(Ordering::SeqCst);
                            let result = if cancelled { "cancelled" } else { "failed" };
                            state.record(
                                run_id,
                                &NodeResult {
                                    node: node.id.as_str(),
                                    result,
                                    reasons,
                                    key: Some(&key),
                                    manifest: None,
                                    output: None,
                                    message: Some(&message),
                                    duration,
                                },
                            )?;
                            summary.results.insert(node.id.to_string(), result.to_owned());
                            if cancelled {
                                summary.skipped += 1;
                                let reason = SkipReason::Cancelled;
                                reporter.event(&Event::NodeSkipped { node: node.id.to_string(), reason });
                                status.insert(index, Status::Skipped);
                                continue;
                            }
                            summary.failed += 1;
                            let log = log_dir.join(format!("{}.log", file_name(node.id.as_str())));
                            reporter.event(&Event::NodeFailed {
                                node: node.id.to_string(),
                                message,
                                log,
                                duration,
                            });
                            status.insert(index, Status::Failed);
                            failed_roots.push(index);
                            if options.fail_fast {
                                stop_launching = true;
                            }
                        }
                    }
                    // What depends on a failure will never run: say so now, not at the end.
                    while let Some(bad) = failed_roots.pop() {
                        let bad_id = graph.node(bad).id.to_string();
                        for &dependent in graph.dependents(bad) {
                            if status[&dependent] == Status::Waiting {
                                let step = &plan.steps[position[&dependent]];
                                ready.remove(&position[&dependent]);
                                skip(
                                    state,
                                    run_id,
                                    graph,
                                    step,
                                    &mut status,
                                    &mut summary,
                                    reporter,
                                    SkipReason::DependencyFailed { node: bad_id.clone() },
                                )?;
                                failed_roots.push(dependent);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    })?;

    summary.interrupted = cancel.load(Ordering::SeqCst);
    // What never started: its dependency failed, or the run stopped.
    for step in &plan.steps {
        if status[&step.node] == Status::Waiting {
            let failed_dep = graph
                .deps(step.node)
                .iter()
                .find(|d| matches!(status[*d], Status::Failed | Status::Skipped))
                .map(|d| graph.node(*d).id.to_string());
            let reason = match failed_dep {
                Some(node) if !summary.interrupted => SkipReason::DependencyFailed { node },
                _ => SkipReason::Cancelled,
            };
            if summary.interrupted {
                // Not recorded: the next run redoes what did not finish.
                let node = graph.node(step.node);
                summary.skipped += 1;
                summary.results.insert(node.id.to_string(), "cancelled".to_owned());
                reporter.event(&Event::NodeSkipped { node: node.id.to_string(), reason });
                status.insert(step.node, Status::Skipped);
            } else {
                skip(state, run_id, graph, step, &mut status, &mut summary, reporter, reason)?;
            }
        }
    }
    let outcome = if summary.interrupted {
        "interrupted"
    } else if summary.failed > 0 {
        "failed"
    } else {
        "ok"
    };
    let fresh = plan.steps.iter().filter(|s| s.action == Action::Skip && s.cached_output.is_none()).count();
    state.finish_run(run_id, outcome, fresh)?;
    summary.duration = started.elapsed();
    reporter.event(&Event::Finished(summary.clone()));
    Ok(summary)
}

#[expect(clippy::too_many_arguments, reason = "bookkeeping shared with the main loop")]
fn skip(
    state: &mut State,
    run_id: i64,
    graph: &Graph,
    step: &Step,
    status: &mut HashMap<NodeIndex, Status>,
    summary: &mut Summary,
    reporter: &mut dyn Reporter,
    reason: SkipReason,
) -> Result<(), StateError> {
    let node = graph.node(step.node);
    let message = match &reason {
        SkipReason::DependencyFailed { node } => format!("dependency {node} failed"),
        _ => "run stopped".to_owned(),
    };
    state.record(
        run_id,
        &NodeResult {
            node: node.id.as_str(),
            result: "skipped",
            reasons: serde_json::to_value(&step.reasons).unwrap_or_default(),
            key: None,
            manifest: None,
            output: None,
            message: Some(&message),
            duration: Duration::ZERO,
        },
    )?;
    status.insert(step.node, Status::Skipped);
    summary.skipped += 1;
    summary.results.insert(node.id.to_string(), "skipped".to_owned());
    reporter.event(&Event::NodeSkipped { node: node.id.to_string(), reason });
    Ok(())
}

/// A node is done: its waiting dependents have one dependency fewer to wait for.
fn release(
    dependents: &[NodeIndex],
    status: &HashMap<NodeIndex, Status>,
    remaining: &mut HashMap<NodeIndex, usize>,
    ready: &mut BTreeSet<usize>,
    position: &HashMap<NodeIndex, usize>,
) {
    for dependent in dependents {
        if status[dependent] != Status::Waiting {
            continue;
        }
        if let Some(n) = remaining.get_mut(dependent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                ready.insert(position[dependent]);
            }
        }
    }
}

/// Executor pools: the declared executors, plus `local` for platform-free nodes and for every
/// platform when none are declared.
fn pools(model: &Model, jobs: usize) -> Vec<Pool> {
    let mut pools: Vec<Pool> = model
        .executors
        .iter()
        .map(|e| Pool {
            name: e.name.value.clone(),
            platform: Some(e.platform.clone()),
            capacity: usize::try_from(e.jobs).unwrap_or(1),
            running: 0,
        })
        .collect();
    pools.push(Pool { name: LOCAL_EXECUTOR.to_owned(), platform: None, capacity: jobs.max(1), running: 0 });
    pools
}

/// The least-loaded pool with a free slot that can run `node`.
fn pick_pool(pools: &[Pool], node: &Node) -> Option<usize> {
    let declared = pools.iter().any(|p| p.platform.is_some() && p.platform == node.platform);
    pools
        .iter()
        .enumerate()
        .filter(|(_, p)| match (&node.platform, declared) {
            (Some(platform), true) => p.platform.as_ref() == Some(platform),
            _ => p.platform.is_none(),
        })
        .filter(|(_, p)| p.running < p.capacity)
        .min_by_key(|(_, p)| p.running * 1000 / p.capacity.max(1))
        .map(|(i, _)| i)
}

/// A node id as a file name: `curl@linux/amd64` → `curl@linux_amd64`.
pub fn file_name(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') { c } else { '_' })
        .collect()
}
