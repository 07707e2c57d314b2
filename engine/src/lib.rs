//! hephy's engine: from a validated model to what runs, in which order, and why.
//!
//! The phases, each a type produced by one function:
//!
//! | phase | function | type |
//! |---|---|---|
//! | compile | [`compile`] | [`Graph`]: a petgraph DAG of [`Node`]s (image × platform × target, manifests, tags, tasks) |
//! | hash | [`gather`] | [`Inputs`]: per node, its settings and input files' blake3 digests ([`InputManifest`]) |
//! | plan | [`Planner::plan`] (over [`plan()`]) | [`Planned`]: the [`Plan`] (per node, [`Action`], [`Key`] and typed [`Reason`]s, in execution order) for a [`Selection`], with what a [`Resolver`] answered |
//! | plan cache | [`PlanCache::answer`] | [`Answer`]: an all-fresh plan's stored output, or each node's step from its memo after input files changed ([`replan_touched`]), without planning |
//! | run | [`run()`] | [`Summary`]: each node a [`Job`] (with the run's [`Cancel`] token and its [`Deadline`]) fed to executor pools; its [`Outcome`] recorded in [`State`] |
//! | explain | [`explain_plan`] | [`Explanation`]: a node's reasons, followed back to root causes |
//!
//! The engine depends on `hephy-dsl` for the model and never on the CLI: it prints nothing, and
//! reports progress as [`Event`]s. What nodes *do* is the [`Work`] trait, implemented in
//! `hephy-stdlib`.

mod cache;
mod dockerignore;
mod explain;
mod files;
mod graph;
mod inputs;
mod job;
mod key;
#[cfg(test)]
mod key_table;
use hephy_os::open;
mod plan;
mod planner;
mod reads;
mod run;
mod sorted;
mod stamp;
mod state;
#[cfg(test)]
mod testing;

pub use cache::{TouchedNode, replan_touched};
pub use dockerignore::{DockerIgnore, Malformed, PatternError, ignore_files};
pub use explain::{Explanation, LastFailure, PastOutcome, explain_plan, explain_run};
pub use files::{
    Exclusions, FileSource, FilesError, Hashed, Stat, StatCache, Watched, collect, collect_watched,
    context_ignore, hash_all, hash_file, join, read_shared, read_shared_from, relative_inside,
};
pub use graph::{Graph, LOCAL_EXECUTOR, Node, NodeId, NodeKind, compile};
pub use inputs::{
    BaseImages, BuilderIdentity, ContextReader, InputError, Inputs, LayoutError, NodeInputs,
    SecretUnavailable, UpstreamError, Upstreams, gather, layout_digest, secret_value, task_outputs_digest,
};
pub use job::{Cancel, Deadline, DepDetail, Job, Message, NodeError, Outcome, StopCause, Work};
pub use key::{InputManifest, KEY_VERSION, Key, files_digest};
pub use open::{open_beneath, open_no_symlinks, open_regular};
pub use petgraph::graph::NodeIndex;
pub use plan::{
    Action, OutputCheck, Plan, PlanOptions, Reason, Reasons, Step, differences, missing_outputs, plan,
};
pub use planner::{
    PlanError, PlanWarning, Planned, Planner, Resolver, Revision, Selection, nodes_named, state_dir,
};
pub use reads::{ContextPaths, ContextReads, ReadPath};
pub use run::{Event, Reporter, RunOptions, SkipReason, Summary, file_name, run, run_all_fresh};
pub use sorted::{SortedMap, Text};
pub use stamp::{
    Answer, NothingToDo, PlanCache, Recheck, Rendered, Replanned, Stamped, graph_state_dir, worth_remembering,
};
pub use state::{
    Failure, NodeResult, NodeStatus, Passing, REASONS_VERSION, Record, RunLock, RunNode, RunStatus,
    RunSummary, SCHEMA_VERSION, Snapshot, State, StateError, check_state_dir, process_gone,
};
