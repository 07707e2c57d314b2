//! The run: feeds the plan's nodes, in dependency order, to executor pools, and records each
//! finished node in the state store as it finishes.
//!
//! Owns scheduling (a node is ready when its dependencies succeeded; at most `jobs` nodes per
//! executor; a failure skips its dependents and nothing else unless fail-fast), early cutoff (a
//! node whose dependencies rebuilt to the same outputs is not rebuilt), cancellation, and the
//! [`Event`] stream that renderers consume. What a node *does* is behind the [`Work`] trait,
//! implemented by `hephy-stdlib`; the engine itself prints nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hephy_dsl::Model;
use petgraph::graph::NodeIndex;

use crate::graph::{Graph, LOCAL_EXECUTOR, Node};
use crate::key::{DepValue, InputManifest, Key};
use crate::plan::{Action, Plan, Reason, with_deps};
use crate::state::{NodeResult, NodeStatus, Snapshot, State, StateError};

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
    /// Per dependency (in the order of `deps`): its planned key and reasons, and its own
    /// dependencies' outputs (an index's provenance names what each platform was built from).
    pub details: Vec<DepDetail<'a>>,
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

/// What a run knows of one dependency of a job beyond its output.
#[derive(Debug, Clone)]
pub struct DepDetail<'a> {
    /// Its key as planned.
    pub key: Key,
    /// Why the plan built it (empty when it was fresh).
    pub reasons: crate::plan::Reasons,
    /// Its own dependencies' nodes and outputs.
    pub deps: Vec<(&'a Node, String)>,
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
    /// Node id → how it ended.
    pub results: BTreeMap<String, NodeStatus>,
    /// Nodes built.
    pub built: usize,
    /// Nodes fresh (planned or cut off).
    pub fresh: usize,
    /// Nodes failed.
    pub failed: usize,
    /// Nodes skipped because a dependency failed (or `--fail-fast` stopped the run).
    pub skipped: usize,
    /// Nodes not finished because the run was interrupted: stopped while running, or never
    /// started. Recorded as `cancelled` in the run's history; the next run redoes them.
    pub cancelled: usize,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
    /// Wall time (in JSON: `duration_ms`, milliseconds).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
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

/// Where a node is in a run: the scheduler's one record per node.
enum Phase<'g> {
    /// Waiting for this many of its dependencies.
    Waiting {
        /// How many are not done yet.
        remaining: usize,
    },
    /// Its dependencies are done: waiting for a slot, with what it will be built with.
    Ready(Prepared<'g>),
    /// Running on a pool, started with these inputs and key.
    Running {
        /// The pool (an index into the scheduler's pools).
        pool: usize,
        /// Its inputs.
        manifest: InputManifest,
        /// Their key.
        key: Key,
    },
    /// It ended; `output` is its output when it has one (see [`NodeStatus::has_output`]).
    Ended {
        /// How.
        status: NodeStatus,
        /// Its output digest (empty when it has none).
        output: String,
    },
}

impl Phase<'_> {
    /// Not started, and so not ended either.
    fn pending(&self) -> bool {
        matches!(self, Phase::Waiting { .. } | Phase::Ready(_))
    }

    /// Its output, once it ended with one.
    fn output(&self) -> Option<&str> {
        match self {
            Phase::Ended { status, output } if status.has_output() => Some(output),
            _ => None,
        }
    }

    /// Ended without an output: failed, skipped or cancelled.
    fn unsuccessful(&self) -> bool {
        matches!(self, Phase::Ended { status, .. } if !status.has_output())
    }
}

/// An executor pool: its capacity and load.
#[derive(Debug)]
struct Pool {
    name: String,
    platform: Option<hephy_dsl::Platform>,
    capacity: usize,
    running: usize,
}

/// A ready node waiting for a slot: the inputs and key it will be built with, and its
/// dependencies' outputs.
struct Prepared<'g> {
    manifest: InputManifest,
    key: Key,
    deps: Vec<(&'g Node, String)>,
    details: Vec<DepDetail<'g>>,
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
    reporter.event(&Event::Started { run_id, to_build: plan.builds(), total: plan.steps.len() });
    let pools = pools(model, options.jobs);
    let (eligible, group) = pool_groups(&pools, graph);
    let mut run = Scheduler {
        model,
        graph,
        plan,
        snapshot,
        state,
        reporter,
        options,
        cancel,
        run_id,
        log_dir: options.state_dir.join("logs").join(run_id.to_string()),
        ready: Ready::new(eligible.len()),
        pools,
        eligible,
        group,
        nodes: (0..graph.len()).map(|_| Phase::Waiting { remaining: 0 }).collect(),
        unexamined: VecDeque::new(),
        running: 0,
        stop_launching: false,
        summary: Summary { run_id, ..Summary::default() },
    };
    run.settle_planned()?;
    let (tx, rx) = mpsc::channel::<Message>();
    std::thread::scope(|scope| -> Result<(), StateError> {
        loop {
            run.examine()?;
            run.launch(scope, work, &tx);
            if run.running == 0 {
                return Ok(());
            }
            let Ok(message) = rx.recv() else { return Ok(()) };
            match message {
                Message::Output { node, line } => run.reporter.event(&Event::Output { node, line }),
                Message::Done { index, outcome, duration } => run.finished(index, outcome, duration)?,
            }
        }
    })?;
    run.close(started)
}

/// A run of nodes all known fresh without a plan (the plan cache's stamp held: [`PlanCache::nothing_to_do`](crate::PlanCache::nothing_to_do)): recorded in
/// `state` as a run that built nothing, and reported with the events [`run`] gives such a run
/// (`Started`, then `Finished` with every node `fresh`).
///
/// # Errors
/// When the state store fails.
pub fn run_all_fresh(
    state: &mut State,
    command: &str,
    nodes: Vec<String>,
    reporter: &mut dyn Reporter,
) -> Result<Summary, StateError> {
    let started = Instant::now();
    let run_id = state.begin_run(command)?;
    state.finish_run(run_id, "ok", nodes.len())?;
    reporter.event(&Event::Started { run_id, to_build: 0, total: nodes.len() });
    let summary = Summary {
        run_id,
        fresh: nodes.len(),
        results: nodes.into_iter().map(|id| (id, NodeStatus::Fresh)).collect(),
        duration: started.elapsed(),
        ..Summary::default()
    };
    reporter.event(&Event::Finished(summary.clone()));
    Ok(summary)
}

/// One run's bookkeeping: each node's phase, what is ready, which executor slots are taken,
/// and the summary so far. [`run`] drives it: settle what the plan decided, then examine what
/// became ready, launch what has a slot, and take the next message, until nothing runs.
struct Scheduler<'a> {
    model: &'a Model,
    graph: &'a Graph,
    plan: &'a Plan,
    snapshot: &'a Snapshot,
    state: &'a mut State,
    reporter: &'a mut dyn Reporter,
    options: &'a RunOptions,
    cancel: &'a AtomicBool,
    run_id: i64,
    log_dir: PathBuf,
    pools: Vec<Pool>,
    /// The distinct sets of pools nodes may run on, and each node's set (by node index).
    eligible: Vec<Vec<usize>>,
    group: Vec<usize>,
    /// Each node's phase, by node index.
    nodes: Vec<Phase<'a>>,
    /// Nodes whose dependencies are all done, not yet looked at: are they cut off?
    unexamined: VecDeque<NodeIndex>,
    /// Examined nodes waiting for a slot (each [`Phase::Ready`]), by plan position.
    ready: Ready,
    running: usize,
    stop_launching: bool,
    summary: Summary,
}

impl<'a> Scheduler<'a> {
    /// `index`'s planned reasons, as the history stores them.
    fn reasons(&self, index: NodeIndex) -> serde_json::Value {
        self.plan
            .step(index)
            .map(|s| serde_json::to_value(&s.reasons).unwrap_or_default())
            .unwrap_or_default()
    }

    fn stopping(&self) -> bool {
        self.stop_launching || self.cancel.load(Ordering::SeqCst)
    }

    /// Notes how a node ended: its phase, the summary's result and the reporter's event.
    fn note(&mut self, index: NodeIndex, status: NodeStatus, output: String, event: Event) {
        self.nodes[index.index()] = Phase::Ended { status, output };
        self.summary.results.insert(self.graph.node(index).id.to_string(), status);
        self.reporter.event(&event);
    }

    /// Settles what the plan decided before anything runs: fresh nodes are done (those recorded
    /// under another key whose inputs are the same today, an older key encoding, are given
    /// today's key), registry hits are recorded as if built here, and nodes to build wait for
    /// their dependencies (those waiting for none are to be examined).
    fn settle_planned(&mut self) -> Result<(), StateError> {
        let (graph, plan, snapshot) = (self.graph, self.plan, self.snapshot);
        let mut rekeyed: Vec<(&str, Key)> = Vec::new();
        for step in &plan.steps {
            let node = graph.node(step.node);
            if let (Action::Skip, Some(output)) = (step.action, &step.cached_output) {
                let manifest = plan.manifest(step, graph, snapshot);
                self.state.record(
                    self.run_id,
                    &NodeResult {
                        node: node.id.as_str(),
                        result: NodeStatus::Cached,
                        reasons: serde_json::to_value(&step.reasons).unwrap_or_default(),
                        key: Some(&step.key),
                        manifest: Some(&manifest),
                        output: Some(output),
                        message: None,
                        duration: Duration::ZERO,
                    },
                )?;
                self.summary.fresh += 1;
                let event = Event::NodeSkipped { node: node.id.to_string(), reason: SkipReason::Cached };
                self.note(step.node, NodeStatus::Cached, output.clone(), event);
            } else if step.action == Action::Skip {
                let record = snapshot.records.get(node.id.as_str());
                if let Some(record) = record
                    && record.key != step.key
                    && record.manifest().is_some_and(|m| m.key() == step.key)
                {
                    rekeyed.push((node.id.as_str(), step.key));
                }
                let output = record.map(|r| r.output.clone()).unwrap_or_default();
                self.summary.fresh += 1;
                let event = Event::NodeSkipped { node: node.id.to_string(), reason: SkipReason::Fresh };
                self.note(step.node, NodeStatus::Fresh, output, event);
            }
        }
        self.state.rekey(&rekeyed)?;
        for step in &plan.steps {
            if !self.nodes[step.node.index()].pending() {
                continue;
            }
            let deps = graph.deps(step.node);
            let waiting = deps.iter().filter(|d| self.nodes[d.index()].output().is_none()).count();
            self.nodes[step.node.index()] = Phase::Waiting { remaining: waiting };
            if waiting == 0 {
                self.unexamined.push_back(step.node);
            }
        }
        Ok(())
    }

    /// Examines what became ready. Its dependencies are done, so its key is final: a node
    /// rebuilt only for its dependencies whose key is its last build's is cut off at once (its
    /// dependents then become ready in turn); any other waits in `ready` for a slot.
    fn examine(&mut self) -> Result<(), StateError> {
        let graph = self.graph;
        while !self.stopping() {
            let Some(index) = self.unexamined.pop_front() else { break };
            // Every node has its step; one without would stay waiting, and be skipped at the end.
            let (Some(at), Some(step)) = (self.plan.position(index), self.plan.step(index)) else { continue };
            let node = graph.node(index);
            let deps: Vec<(&Node, String)> = graph
                .deps(index)
                .iter()
                .map(|d| (graph.node(*d), self.nodes[d.index()].output().unwrap_or_default().to_owned()))
                .collect();
            let manifest = with_deps(
                self.plan.inputs(index),
                deps.iter().map(|(dep, out)| (dep.id.as_str(), DepValue::Output(out))),
            );
            let key = manifest.key();
            let only_deps = step.reasons.iter().all(|r| matches!(r, Reason::DependencyRebuilt { .. }));
            if let Some(record) = self.snapshot.records.get(node.id.as_str())
                && only_deps
                && record.key == key
            {
                let output = record.output.clone();
                self.state.record(
                    self.run_id,
                    &NodeResult {
                        node: node.id.as_str(),
                        result: NodeStatus::Cutoff,
                        reasons: serde_json::to_value(&step.reasons).unwrap_or_default(),
                        key: Some(&key),
                        manifest: None,
                        output: Some(&output),
                        message: None,
                        duration: Duration::ZERO,
                    },
                )?;
                self.summary.fresh += 1;
                self.note(
                    index,
                    NodeStatus::Cutoff,
                    output,
                    Event::NodeSkipped { node: node.id.to_string(), reason: SkipReason::CutOff },
                );
                self.release(index);
                continue;
            }
            let output = |d: &NodeIndex| self.nodes[d.index()].output().unwrap_or_default().to_owned();
            let details = graph
                .deps(index)
                .iter()
                .map(|d| DepDetail {
                    key: self.plan.step(*d).map_or(key, |s| s.key),
                    reasons: self.plan.step(*d).map(|s| s.reasons.clone()).unwrap_or_default(),
                    deps: graph.deps(*d).iter().map(|dd| (graph.node(*dd), output(dd))).collect(),
                })
                .collect();
            self.nodes[index.index()] = Phase::Ready(Prepared { manifest, key, deps, details });
            self.ready.insert(at, self.group[index.index()]);
        }
        Ok(())
    }

    /// Launches ready nodes in plan order while some executor with a node waiting for it has a
    /// free slot (nodes waiting for a busy executor are passed over, not looked at again for
    /// every message), each on a thread of `scope` that reports to `tx`.
    fn launch<'scope>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        work: &'scope dyn Work,
        tx: &mpsc::Sender<Message>,
    ) where
        'a: 'scope,
    {
        let mut next = 0;
        while !self.stopping() && self.running < self.options.jobs.max(1) {
            let waiting_for_free = (0..self.eligible.len())
                .any(|g| self.ready.waiting[g] > 0 && pick_pool(&self.pools, &self.eligible[g]).is_some());
            if !waiting_for_free {
                break;
            }
            let Some(&pos) = self.ready.positions.range(next..).next() else { break };
            next = pos + 1;
            let index = self.plan.steps[pos].node;
            let group = self.group[index.index()];
            let Some(pool) = pick_pool(&self.pools, &self.eligible[group]) else { continue };
            let Phase::Ready(_) = self.nodes[index.index()] else { continue };
            // Its prepared inputs, moved out: its phase becomes `Running` below.
            let Phase::Ready(Prepared { manifest, key, deps, details }) =
                std::mem::replace(&mut self.nodes[index.index()], Phase::Waiting { remaining: 0 })
            else {
                continue;
            };
            self.ready.remove(pos, group);
            self.pools[pool].running += 1;
            self.running += 1;
            let node = self.graph.node(index);
            self.reporter.event(&Event::NodeStarted {
                node: node.id.to_string(),
                executor: self.pools[pool].name.clone(),
            });
            self.nodes[index.index()] = Phase::Running { pool, manifest, key };
            let log = self.log_dir.join(format!("{}.log", file_name(node.id.as_str())));
            let (root, run_id, cancel, verbose) =
                (self.model.root.as_path(), self.run_id, self.cancel, self.options.verbose);
            let tx = tx.clone();
            scope.spawn(move || {
                let start = Instant::now();
                let job = Job {
                    node,
                    root,
                    run_id,
                    deps,
                    details,
                    key: &key,
                    log,
                    cancel,
                    verbose,
                    events: tx.clone(),
                };
                let outcome = work.execute(&job);
                let _ = tx.send(Message::Done { index, outcome, duration: start.elapsed() });
            });
        }
    }

    /// A running node ended: its slot frees, and its result is recorded. A success readies its
    /// dependents; a failure skips them (and theirs), or stops the run with `--fail-fast`. A
    /// node stopped by Ctrl-C has not failed: the next run redoes it.
    fn finished(&mut self, index: NodeIndex, outcome: Outcome, duration: Duration) -> Result<(), StateError> {
        self.running -= 1;
        let node = self.graph.node(index);
        let reasons = self.reasons(index);
        // Every finished node was launched with its inputs and key.
        let ended = Phase::Ended { status: NodeStatus::Failed, output: String::new() };
        let (manifest, key) = match std::mem::replace(&mut self.nodes[index.index()], ended) {
            Phase::Running { pool, manifest, key } => {
                self.pools[pool].running -= 1;
                (manifest, key)
            }
            _ => {
                let manifest = InputManifest::default();
                let key = manifest.key();
                (manifest, key)
            }
        };
        match outcome {
            Outcome::Built { output } => {
                self.state.record(
                    self.run_id,
                    &NodeResult {
                        node: node.id.as_str(),
                        result: NodeStatus::Built,
                        reasons,
                        key: Some(&key),
                        manifest: Some(&manifest),
                        output: Some(&output),
                        message: None,
                        duration,
                    },
                )?;
                self.summary.built += 1;
                let event = Event::NodeBuilt { node: node.id.to_string(), output: output.clone(), duration };
                self.note(index, NodeStatus::Built, output, event);
                self.release(index);
            }
            Outcome::Failed { message } => {
                let cancelled = self.cancel.load(Ordering::SeqCst);
                let result = if cancelled { NodeStatus::Cancelled } else { NodeStatus::Failed };
                self.state.record(
                    self.run_id,
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
                if cancelled {
                    self.summary.cancelled += 1;
                    let event =
                        Event::NodeSkipped { node: node.id.to_string(), reason: SkipReason::Cancelled };
                    self.note(index, result, String::new(), event);
                    return Ok(());
                }
                self.summary.failed += 1;
                let log = self.log_dir.join(format!("{}.log", file_name(node.id.as_str())));
                self.note(
                    index,
                    result,
                    String::new(),
                    Event::NodeFailed { node: node.id.to_string(), message, log, duration },
                );
                if self.options.fail_fast {
                    self.stop_launching = true;
                }
                self.skip_dependents_of(index)?;
            }
        }
        Ok(())
    }

    /// What depends on a failure will never run: say so now, not at the end.
    fn skip_dependents_of(&mut self, failed: NodeIndex) -> Result<(), StateError> {
        let mut failed_roots = vec![failed];
        while let Some(bad) = failed_roots.pop() {
            let bad_id = self.graph.node(bad).id.to_string();
            for &dependent in self.graph.dependents(bad) {
                // Waiting for `bad`, so neither examined nor ready yet.
                if self.nodes[dependent.index()].pending() {
                    self.skip(dependent, SkipReason::DependencyFailed { node: bad_id.clone() })?;
                    failed_roots.push(dependent);
                }
            }
        }
        Ok(())
    }

    /// Records `index` as not built, for `reason`.
    fn skip(&mut self, index: NodeIndex, reason: SkipReason) -> Result<(), StateError> {
        let node = self.graph.node(index);
        let message = match &reason {
            SkipReason::DependencyFailed { node } => format!("dependency {node} failed"),
            _ => "run stopped".to_owned(),
        };
        self.state.record(
            self.run_id,
            &NodeResult {
                node: node.id.as_str(),
                result: NodeStatus::Skipped,
                reasons: self.reasons(index),
                key: None,
                manifest: None,
                output: None,
                message: Some(&message),
                duration: Duration::ZERO,
            },
        )?;
        self.summary.skipped += 1;
        let event = Event::NodeSkipped { node: node.id.to_string(), reason };
        self.note(index, NodeStatus::Skipped, String::new(), event);
        Ok(())
    }

    /// `index` is done: its waiting dependents have one dependency fewer to wait for; those
    /// with none left are to be examined.
    fn release(&mut self, index: NodeIndex) {
        for dependent in self.graph.dependents(index) {
            if let Phase::Waiting { remaining } = &mut self.nodes[dependent.index()] {
                *remaining = remaining.saturating_sub(1);
                if *remaining == 0 {
                    self.unexamined.push_back(*dependent);
                }
            }
        }
    }

    /// Ends the run: what never started is skipped (its dependency failed) or, when the run
    /// was stopped, left unrecorded for the next run to redo; the run's status is stored.
    fn close(mut self, started: Instant) -> Result<Summary, StateError> {
        self.summary.interrupted = self.cancel.load(Ordering::SeqCst);
        let (graph, plan) = (self.graph, self.plan);
        for step in &plan.steps {
            if !self.nodes[step.node.index()].pending() {
                continue;
            }
            let failed_dep = graph
                .deps(step.node)
                .iter()
                .find(|d| self.nodes[d.index()].unsuccessful())
                .map(|d| graph.node(*d).id.to_string());
            let reason = match failed_dep {
                Some(node) if !self.summary.interrupted => SkipReason::DependencyFailed { node },
                _ => SkipReason::Cancelled,
            };
            if self.summary.interrupted {
                // In the run's history only (the node's own record is untouched, so the next
                // run redoes it): `hephy log` and `explain --run` tell the same story as this
                // run's summary.
                let node = graph.node(step.node);
                self.state.record(
                    self.run_id,
                    &NodeResult {
                        node: node.id.as_str(),
                        result: NodeStatus::Cancelled,
                        reasons: serde_json::to_value(&step.reasons).unwrap_or_default(),
                        key: None,
                        manifest: None,
                        output: None,
                        message: Some("the run was interrupted before it started"),
                        duration: Duration::ZERO,
                    },
                )?;
                self.summary.cancelled += 1;
                let event = Event::NodeSkipped { node: node.id.to_string(), reason };
                self.note(step.node, NodeStatus::Cancelled, String::new(), event);
            } else {
                self.skip(step.node, reason)?;
            }
        }
        let outcome = if self.summary.interrupted {
            "interrupted"
        } else if self.summary.failed > 0 {
            "failed"
        } else {
            "ok"
        };
        let fresh =
            plan.steps.iter().filter(|s| s.action == Action::Skip && s.cached_output.is_none()).count();
        self.state.finish_run(self.run_id, outcome, fresh)?;
        self.summary.duration = started.elapsed();
        self.reporter.event(&Event::Finished(self.summary.clone()));
        Ok(self.summary)
    }
}

/// Examined nodes waiting for a slot: their plan positions, and how many wait per group of
/// eligible pools.
struct Ready {
    positions: BTreeSet<usize>,
    waiting: Vec<usize>,
}

impl Ready {
    fn new(groups: usize) -> Ready {
        Ready { positions: BTreeSet::new(), waiting: vec![0; groups] }
    }

    fn insert(&mut self, position: usize, group: usize) {
        if self.positions.insert(position) {
            self.waiting[group] += 1;
        }
    }

    fn remove(&mut self, position: usize, group: usize) {
        if self.positions.remove(&position) {
            self.waiting[group] -= 1;
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

/// The pools that can run `node`: the declared executors of its platform, or else `local`.
fn eligible_pools(pools: &[Pool], node: &Node) -> Vec<usize> {
    let declared = pools.iter().any(|p| p.platform.is_some() && p.platform == node.platform);
    (0..pools.len())
        .filter(|&i| match (&node.platform, declared) {
            (Some(platform), true) => pools[i].platform.as_ref() == Some(platform),
            _ => pools[i].platform.is_none(),
        })
        .collect()
}

/// Each node's set of eligible pools, as an index into the list of the distinct sets (a few:
/// one per platform): a node waiting for a busy executor is passed over at the cost of a
/// look at its pools' load.
fn pool_groups(pools: &[Pool], graph: &Graph) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut sets: Vec<Vec<usize>> = Vec::new();
    let group = (0..graph.len())
        .map(|i| {
            let set = eligible_pools(pools, graph.node(NodeIndex::new(i)));
            sets.iter().position(|s| *s == set).unwrap_or_else(|| {
                sets.push(set);
                sets.len() - 1
            })
        })
        .collect();
    (sets, group)
}

/// The least-loaded pool with a free slot among `eligible`.
fn pick_pool(pools: &[Pool], eligible: &[usize]) -> Option<usize> {
    eligible
        .iter()
        .copied()
        .filter(|&i| pools[i].running < pools[i].capacity)
        .min_by_key(|&i| pools[i].running * 1000 / pools[i].capacity.max(1))
}

/// A node id as a file name: `curl@linux/amd64` → `curl@linux_amd64`.
pub fn file_name(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::plan::{PlanOptions, plan};

    /// Work that takes a moment and fails the nodes it is told to, counting how many nodes
    /// run at once on each executor.
    #[derive(Default)]
    struct Counting {
        fail: Vec<&'static str>,
        running: Mutex<HashMap<String, usize>>,
        most: Mutex<HashMap<String, usize>>,
    }

    impl Work for Counting {
        fn execute(&self, job: &Job<'_>) -> Outcome {
            let executor = job.node.executor.to_string();
            {
                let mut running = self.running.lock().expect("lock");
                let now = running.entry(executor.clone()).or_default();
                *now += 1;
                let mut most = self.most.lock().expect("lock");
                let most = most.entry(executor.clone()).or_default();
                *most = (*most).max(*now);
            }
            std::thread::sleep(Duration::from_millis(3));
            *self.running.lock().expect("lock").entry(executor).or_default() -= 1;
            if self.fail.contains(&job.node.name()) {
                Outcome::Failed { message: "exit status 1".to_owned() }
            } else {
                Outcome::Built { output: format!("blake3:{}", job.node.id) }
            }
        }
    }

    #[derive(Default)]
    struct Events(Vec<Event>);

    impl Reporter for Events {
        fn event(&mut self, event: &Event) {
            self.0.push(event.clone());
        }
    }

    /// Plans and runs `text` with `work` on a fresh state.
    fn run_graph(text: &str, work: &Counting, jobs: usize) -> (Summary, Vec<Event>) {
        let (dir, model) = crate::testing::yaml_model(text);
        let graph = crate::compile(&model);
        let inputs = crate::testing::test_inputs(&model, &graph);
        let snapshot = Snapshot::default();
        let plan = plan(&graph, &inputs, &snapshot, &PlanOptions::default());
        let state_dir = dir.path().join(".hephy");
        let mut state = State::open(&state_dir).expect("opens");
        let options =
            RunOptions { jobs, fail_fast: false, verbose: false, state_dir, command: "test".to_owned() };
        let mut events = Events::default();
        let cancel = AtomicBool::new(false);
        let summary = run(&model, &graph, &plan, &snapshot, &mut state, work, &mut events, &options, &cancel)
            .expect("runs");
        (summary, events.0)
    }

    /// Many nodes waiting for a one-slot executor hold up neither that limit nor the other
    /// executors: each runs at most its `jobs` at once, and everything is built.
    #[test]
    fn each_executor_runs_at_most_its_jobs() {
        let mut text = String::from(
            "executors:\n  arm: { platform: linux/arm64, jobs: 1 }\n  amd: { platform: linux/amd64, jobs: 3 }\ntasks:\n",
        );
        for i in 0..30 {
            text.push_str(&format!("  a{i}: {{ run: [\"true\"], platforms: [linux/arm64] }}\n"));
            text.push_str(&format!("  b{i}: {{ run: [\"true\"], platforms: [linux/amd64] }}\n"));
            text.push_str(&format!("  c{i}: {{ run: [\"true\"], after: [a{i}, b{i}] }}\n"));
        }
        let work = Counting::default();
        let (summary, events) = run_graph(&text, &work, 4);
        assert_eq!((summary.built, summary.failed, summary.skipped), (90, 0, 0));
        let most = work.most.lock().expect("lock").clone();
        assert_eq!(most["arm"], 1);
        assert_eq!(most["amd"], 3);
        assert!(most["local"] <= 4, "{most:?}");
        // The amd64 nodes did not queue behind the arm64 ones: all of them started before the
        // last arm64 node did (they need 10 rounds of 3, the arm64 ones 30 rounds of 1).
        let started: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::NodeStarted { node, .. } => Some(node.as_str()),
                _ => None,
            })
            .collect();
        let last_arm = started.iter().rposition(|n| n.starts_with('a')).expect("arm nodes ran");
        let last_amd = started.iter().rposition(|n| n.starts_with('b')).expect("amd nodes ran");
        assert!(last_amd < last_arm, "{started:?}");
    }

    /// A failure skips its dependents and nothing else.
    #[test]
    fn a_failure_skips_only_its_dependents() {
        let text = "tasks:\n  a: { run: [\"true\"] }\n  b: { run: [\"true\"], after: [a] }\n  \
                    c: { run: [\"true\"], after: [b] }\n  d: { run: [\"true\"], after: [a] }\n  e: { run: [\"true\"] }\n";
        let work = Counting { fail: vec!["b"], ..Counting::default() };
        let (summary, _) = run_graph(text, &work, 2);
        let results: Vec<(&str, &str)> =
            summary.results.iter().map(|(n, r)| (n.as_str(), r.as_str())).collect();
        assert_eq!(
            results,
            [("a", "built"), ("b", "failed"), ("c", "skipped"), ("d", "built"), ("e", "built")]
        );
        assert_eq!((summary.built, summary.failed, summary.skipped), (3, 1, 1));
    }
}
