//! The run: feeds the plan's nodes, in dependency order, to executor pools, and records each
//! finished node in the state store as it finishes (cargo's drain loop; the job and what it
//! sends back are in `job.rs`).
//!
//! Owns scheduling (a node is ready when its dependencies succeeded; at most `jobs` nodes per
//! executor; manifests and tags, milliseconds of registry I/O, in a lane of their own bounded by
//! [`CHEAP_LANE`] so they never wait behind tasks and builds; a failure skips its dependents and
//! nothing else unless fail-fast), early cutoff (a
//! node whose dependencies rebuilt to the same outputs is not rebuilt), cancellation (the run's
//! [`Cancel`] token: nothing more starts, and each running job has it), each job's [`Deadline`]
//! (its node's `timeout`), what each [`Outcome`] is recorded as, and the [`Event`] stream that
//! renderers consume. What a node *does* is behind the [`Work`] trait, implemented by
//! `hephy-stdlib`; the engine itself prints nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hephy_dsl::Model;
use petgraph::graph::NodeIndex;

use crate::graph::{Graph, LOCAL_EXECUTOR, Node};
use crate::job::{Cancel, Deadline, DepDetail, Job, Message, Outcome, Work};
use crate::key::{DepValue, InputManifest, Key};
use crate::plan::{Action, Plan, Reason, with_deps};
use crate::state::{NodeResult, NodeStatus, RunStatus, Snapshot, State, StateError};

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
    /// The run was interrupted while it ran: it was stopped halfway.
    Stopped,
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
    /// The run was interrupted (Ctrl-C, SIGTERM, SIGHUP): nothing more starts; the running
    /// nodes are being stopped.
    Interrupted {
        /// How many nodes are still running.
        running: usize,
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
    /// Nodes never started because the run was interrupted. Recorded as `cancelled` in the
    /// run's history; the next run redoes them.
    pub cancelled: usize,
    /// Nodes stopped halfway because the run was interrupted. Recorded as `stopped` in the
    /// run's history; the next run redoes them.
    pub stopped: usize,
    /// Tags (their node ids, `app:latest`) that an interrupted run left behind their index: the
    /// run pushed the index, the tag never followed, so it still names the previous one (or
    /// nothing). Their records are untouched, so the next run moves them.
    pub stale: Vec<String>,
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
    /// The lane of cheap nodes ([`is_cheap`]): outside `--jobs`.
    cheap: bool,
}

/// The most cheap nodes (manifests, tags: platform-free registry operations) running at once.
/// They have a lane of their own, outside `--jobs`: an index and its tags never wait for a
/// slot behind a long task or build.
pub(crate) const CHEAP_LANE: usize = 8;

/// Whether `node` is cheap: a manifest (index) or a tag, which only writes a few small
/// documents (to the registry, or the local layout).
pub(crate) fn is_cheap(node: &Node) -> bool {
    matches!(node.kind, crate::graph::NodeKind::Manifest | crate::graph::NodeKind::Tag)
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
    cancel: &Cancel,
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
        heavy: 0,
        told_interrupted: false,
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
            // Woken now and then to notice an interruption while nodes run: it is told at once.
            let message = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(message) => message,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    run.notice_interruption();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            };
            run.notice_interruption();
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
    state.finish_run(run_id, RunStatus::Ok, nodes.len())?;
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
    cancel: &'a Cancel,
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
    /// Of `running`, those outside the cheap lane: what `--jobs` bounds.
    heavy: usize,
    /// Whether [`Event::Interrupted`] was sent.
    told_interrupted: bool,
    stop_launching: bool,
    summary: Summary,
}

impl<'a> Scheduler<'a> {
    /// Whether the nodes of the group `group` run in the cheap lane.
    fn cheap_group(&self, group: usize) -> bool {
        self.eligible[group].iter().all(|&p| self.pools[p].cheap)
    }

    /// `index`'s planned reasons, as the history stores them.
    fn reasons(&self, index: NodeIndex) -> &'a [Reason] {
        let plan: &'a Plan = self.plan;
        plan.step(index).map_or(&[][..], |s| &s.reasons[..])
    }

    /// Tells the reporter once that the run was interrupted, with what still runs.
    fn notice_interruption(&mut self) {
        if !self.told_interrupted && self.cancel.is_cancelled() {
            self.told_interrupted = true;
            self.reporter.event(&Event::Interrupted { running: self.running });
        }
    }

    fn stopping(&self) -> bool {
        self.stop_launching || self.cancel.is_cancelled()
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
                        reasons: &step.reasons,
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
                        reasons: &step.reasons,
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
        while !self.stopping() {
            let heavy_free = self.heavy < self.options.jobs.max(1);
            let waiting_for_free = (0..self.eligible.len()).any(|g| {
                self.ready.waiting[g] > 0
                    && (heavy_free || self.cheap_group(g))
                    && pick_pool(&self.pools, &self.eligible[g]).is_some()
            });
            if !waiting_for_free {
                break;
            }
            let Some(&pos) = self.ready.positions.range(next..).next() else { break };
            next = pos + 1;
            let index = self.plan.steps[pos].node;
            let group = self.group[index.index()];
            if !heavy_free && !self.cheap_group(group) {
                continue;
            }
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
            if !self.pools[pool].cheap {
                self.heavy += 1;
            }
            let node = self.graph.node(index);
            self.reporter.event(&Event::NodeStarted {
                node: node.id.to_string(),
                executor: self.pools[pool].name.clone(),
            });
            self.nodes[index.index()] = Phase::Running { pool, manifest, key };
            let log = self.log_dir.join(format!("{}.log", file_name(node.id.as_str())));
            let (root, run_id, verbose) = (self.model.root.as_path(), self.run_id, self.options.verbose);
            let (cancel, timeout) = (self.cancel.clone(), self.timeout(node));
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
                    // Counted from the moment its work starts.
                    deadline: timeout.map(Deadline::after),
                    verbose,
                    events: tx.clone(),
                };
                let outcome = work.execute(&job);
                let _ = tx.send(Message::Done { index, outcome, duration: start.elapsed() });
            });
        }
    }

    /// `node`'s `timeout`, as its image or task declares it.
    fn timeout(&self, node: &Node) -> Option<Duration> {
        match self.model.definition(node.name())? {
            hephy_dsl::Definition::Image(image) => image.timeout,
            hephy_dsl::Definition::Task(task) => task.timeout,
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
                if !self.pools[pool].cheap {
                    self.heavy -= 1;
                }
                (manifest, key)
            }
            _ => {
                let manifest = InputManifest::default();
                let key = manifest.key();
                (manifest, key)
            }
        };
        match outcome {
            Outcome::Built(output) => {
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
            Outcome::Cancelled(error) => {
                // Stopped halfway: not a failure, so its record stays as it was and the next
                // run redoes it.
                let message = error.render();
                self.state.record(
                    self.run_id,
                    &NodeResult {
                        node: node.id.as_str(),
                        result: NodeStatus::Stopped,
                        reasons,
                        key: Some(&key),
                        manifest: None,
                        output: None,
                        message: Some(&message),
                        duration,
                    },
                )?;
                self.summary.stopped += 1;
                let event = Event::NodeSkipped { node: node.id.to_string(), reason: SkipReason::Stopped };
                self.note(index, NodeStatus::Stopped, String::new(), event);
            }
            Outcome::Failed(error) | Outcome::TimedOut(error) => {
                let message = error.render();
                self.state.record(
                    self.run_id,
                    &NodeResult {
                        node: node.id.as_str(),
                        result: NodeStatus::Failed,
                        reasons,
                        key: Some(&key),
                        manifest: None,
                        output: None,
                        message: Some(&message),
                        duration,
                    },
                )?;
                self.summary.failed += 1;
                let log = self.log_dir.join(format!("{}.log", file_name(node.id.as_str())));
                self.note(
                    index,
                    NodeStatus::Failed,
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
        self.summary.interrupted = self.cancel.is_cancelled();
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
                        reasons: &step.reasons,
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
        if self.summary.interrupted {
            self.summary.stale = self.stale_tags();
        }
        let outcome = if self.summary.interrupted {
            RunStatus::Interrupted
        } else if self.summary.failed > 0 {
            RunStatus::Failed
        } else {
            RunStatus::Ok
        };
        let fresh =
            plan.steps.iter().filter(|s| s.action == Action::Skip && s.cached_output.is_none()).count();
        self.state.finish_run(self.run_id, outcome, fresh)?;
        self.summary.duration = started.elapsed();
        self.reporter.event(&Event::Finished(self.summary.clone()));
        Ok(self.summary)
    }
}

impl Scheduler<'_> {
    /// The tags whose index this run pushed but that did not follow it (never started after
    /// the cancel, or stopped): they still name the previous index.
    fn stale_tags(&self) -> Vec<String> {
        let graph = self.graph;
        self.plan
            .steps
            .iter()
            .map(|s| s.node)
            .filter(|&t| graph.node(t).kind == crate::graph::NodeKind::Tag)
            .filter(|&t| !matches!(self.nodes[t.index()], Phase::Ended { status, .. } if status.has_output()))
            .filter(|&t| {
                graph.deps(t).iter().any(|&d| {
                    graph.node(d).kind == crate::graph::NodeKind::Manifest
                        && matches!(self.nodes[d.index()], Phase::Ended { status: NodeStatus::Built, .. })
                })
            })
            .map(|t| graph.node(t).id.to_string())
            .collect()
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
            cheap: false,
        })
        .collect();
    pools.push(Pool {
        name: LOCAL_EXECUTOR.to_owned(),
        platform: None,
        capacity: jobs.max(1),
        running: 0,
        cheap: false,
    });
    pools.push(Pool {
        name: LOCAL_EXECUTOR.to_owned(),
        platform: None,
        capacity: CHEAP_LANE,
        running: 0,
        cheap: true,
    });
    pools
}

/// The pools that can run `node`: the cheap lane for cheap nodes; else the declared executors
/// of its platform, or else `local`.
fn eligible_pools(pools: &[Pool], node: &Node) -> Vec<usize> {
    let cheap = is_cheap(node);
    let declared = pools.iter().any(|p| p.platform.is_some() && p.platform == node.platform);
    (0..pools.len())
        .filter(|&i| pools[i].cheap == cheap)
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
                Outcome::failed(std::io::Error::other("exit status 1"))
            } else {
                Outcome::Built(format!("blake3:{}", job.node.id))
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
        run_graph_with(text, work, jobs)
    }

    /// Plans and runs `text` with any `work` on a fresh state (a context folder `app` exists).
    fn run_graph_with(text: &str, work: &dyn Work, jobs: usize) -> (Summary, Vec<Event>) {
        let (summary, events, _) = run_graph_cancel(text, work, jobs, &Cancel::new());
        (summary, events)
    }

    /// Plans and runs `text` with `work` on a fresh state, cancelled by `cancel`; with the
    /// failures the state recorded (node → message).
    fn run_graph_cancel(
        text: &str,
        work: &dyn Work,
        jobs: usize,
        cancel: &Cancel,
    ) -> (Summary, Vec<Event>, BTreeMap<String, String>) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("app")).expect("context");
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\n").expect("Dockerfile");
        let source = hephy_dsl::SourceFile::new(dir.path().join("hephy.yaml"), hephy_dsl::Syntax::Yaml, text);
        let doc = hephy_dsl::read(&source).expect("reads");
        let model = hephy_dsl::lower(doc, &source, dir.path()).expect("valid");
        let graph = crate::compile(&model);
        let inputs = crate::testing::test_inputs(&model, &graph);
        let snapshot = Snapshot::default();
        let plan = plan(&graph, &inputs, &snapshot, &PlanOptions::default());
        let state_dir = dir.path().join(".hephy");
        let mut state = State::open(&state_dir).expect("opens");
        let options =
            RunOptions { jobs, fail_fast: false, verbose: false, state_dir, command: "test".to_owned() };
        let mut events = Events::default();
        let summary = run(&model, &graph, &plan, &snapshot, &mut state, work, &mut events, &options, cancel)
            .expect("runs");
        let failures = state.snapshot().expect("reads").failures;
        (summary, events.0, failures.into_iter().map(|(node, f)| (node, f.message)).collect())
    }

    /// Work that waits until its job must stop, and says why it stopped (or, after 10 s, that
    /// nothing stopped it).
    struct UntilStopped;

    impl Work for UntilStopped {
        fn execute(&self, job: &Job<'_>) -> Outcome {
            let started = Instant::now();
            loop {
                match job.stop_now() {
                    Some(crate::job::StopCause::TimedOut(timeout)) => {
                        let said = format!("ran past its timeout of {}ms", timeout.as_millis());
                        return Outcome::TimedOut(std::io::Error::other(said).into());
                    }
                    Some(crate::job::StopCause::Cancelled) => {
                        return Outcome::Cancelled(std::io::Error::other("the run was cancelled").into());
                    }
                    None if started.elapsed() > Duration::from_secs(10) => {
                        return Outcome::failed(std::io::Error::other("nothing stopped it"));
                    }
                    None => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
    }

    /// A node's `timeout` reaches its job as a deadline: once it passes, the work stops and
    /// the node fails, saying so; a node without a `timeout` has no deadline. No thread-local
    /// or global carries it.
    #[test]
    fn a_job_past_its_deadline_times_out() {
        let text = "tasks:\n  slow: { run: [\"true\"], timeout: 100ms }\n  after: { run: [\"true\"], after: [slow] }\n";
        let started = Instant::now();
        let (summary, _, failures) = run_graph_cancel(text, &UntilStopped, 2, &Cancel::new());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stopped at its deadline: {:?}",
            started.elapsed()
        );
        assert_eq!((summary.failed, summary.skipped, summary.stopped), (1, 1, 0), "{:?}", summary.results);
        assert_eq!(summary.results["slow"], NodeStatus::Failed);
        assert_eq!(failures["slow"], "ran past its timeout of 100ms");
        assert!(!summary.interrupted);
    }

    /// A run's cancel token reaches every job: set from outside while a node runs, the work
    /// stops and the node is recorded stopped (not failed); nothing else starts.
    #[test]
    fn a_cancelled_token_stops_the_job() {
        let text = "tasks:\n  slow: { run: [\"true\"] }\n  after: { run: [\"true\"], after: [slow] }\n";
        let cancel = Cancel::new();
        let setter = cancel.clone();
        let started = Instant::now();
        let (summary, _, failures) = std::thread::scope(|scope| {
            scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                setter.cancel();
            });
            run_graph_cancel(text, &UntilStopped, 2, &cancel)
        });
        assert!(started.elapsed() < Duration::from_secs(5), "stopped at the cancel: {:?}", started.elapsed());
        assert_eq!((summary.failed, summary.stopped, summary.cancelled), (0, 1, 1), "{:?}", summary.results);
        assert_eq!(summary.results["slow"], NodeStatus::Stopped);
        assert!(summary.interrupted && failures.is_empty(), "{failures:?}");
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

    /// Work whose tasks each hold their slot until every tag has been pushed (or 2 s have
    /// passed, which counts as having waited).
    #[derive(Default)]
    struct TasksWaitForTags {
        tagged: Mutex<usize>,
        pushed: std::sync::Condvar,
        tags: usize,
        waited_out: Mutex<Vec<String>>,
    }

    impl Work for TasksWaitForTags {
        fn execute(&self, job: &Job<'_>) -> Outcome {
            match job.node.kind {
                crate::graph::NodeKind::Tag => {
                    *self.tagged.lock().expect("lock") += 1;
                    self.pushed.notify_all();
                }
                crate::graph::NodeKind::Task => {
                    let tagged = self.tagged.lock().expect("lock");
                    let (tagged, wait) = self
                        .pushed
                        .wait_timeout_while(tagged, Duration::from_secs(2), |n| *n < self.tags)
                        .expect("lock");
                    drop(tagged);
                    if wait.timed_out() {
                        self.waited_out.lock().expect("lock").push(job.node.id.to_string());
                    }
                }
                _ => {}
            }
            Outcome::Built(format!("sha256:{}", job.node.id))
        }
    }

    /// With every `--jobs` slot held by a task, manifests and tags still run: they have a lane
    /// of their own.
    #[test]
    fn manifests_and_tags_never_wait_for_a_job_slot() {
        let mut text = String::from(
            "platforms: [linux/amd64]\nimages:\n  app: { context: app, tags: [latest, stable] }\ntasks:\n",
        );
        for i in 0..3 {
            text.push_str(&format!(
                "  a{i}: {{ run: [\"true\"], platforms: [linux/amd64], after: [app] }}\n"
            ));
        }
        let work = TasksWaitForTags { tags: 2, ..TasksWaitForTags::default() };
        let (summary, events) = run_graph_with(&text, &work, 1);
        assert_eq!((summary.built, summary.failed), (7, 0), "{:?}", summary.results);
        let waited = work.waited_out.lock().expect("lock").clone();
        assert!(waited.is_empty(), "tasks held the only slot while tags waited: {waited:?}\n{events:?}");
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
