//! `hephy gc --registry`: prunes the graph's registry of the cache records no state needs.
//!
//! hephy writes one record per built key into `{registry}/hephy-cache` (see
//! `hephy_stdlib::cache_repository`); a record is live while a node of the state was last built
//! with its key. The others of this graph's nodes are deleted, but the `--keep N` newest of each
//! node; records of nodes the graph does not have (another graph sharing the registry) are kept.

use std::collections::HashSet;
use std::path::Path;

use hephy_dsl::{Code, Model, Problem, Problems};
use hephy_engine::Snapshot;

use crate::Failure;

/// Prunes `model`'s registry against `snapshot`; what it did, for people.
pub(crate) fn prune(
    model: &Model,
    snapshot: &Snapshot,
    keep: usize,
    state_dir: &Path,
) -> Result<String, Failure> {
    let Some(registry) = &model.registry else {
        return Err(Failure::Input(Problems::single(
            &model.source.path().display().to_string(),
            Problem::new(Code::InvalidValue, "`gc --registry`: the graph has no `registry`")
                .help("add `registry \"HOST/PATH\"` to the graph, or run `hephy gc` without `--registry`"),
        )));
    };
    let live: HashSet<String> = snapshot.records.values().map(|r| r.key.hex().to_string()).collect();
    // Only this graph's nodes: the cache repository is shared by every graph pushing there.
    let graph = hephy_engine::compile(model);
    let ours: HashSet<String> = graph.order().iter().map(|&n| graph.node(n).id.as_str().to_owned()).collect();
    let pruned = hephy_stdlib::prune_registry(registry, &live, &ours, keep).map_err(|e| {
        Failure::Input(Problems::single(
            &state_dir.display().to_string(),
            Problem::new(Code::Io, format!("cannot prune `{}`: {e}", hephy_stdlib::cache_repository(registry)))
                .help("nothing more was removed; check that the registry is up, that you may push to it and that it allows deletes, then run `hephy gc --registry` again"),
        ))
    })?;
    let mut out = format!(
        "removed {} cache records from `{}`; kept {}\n",
        pruned.removed.len(),
        hephy_stdlib::cache_repository(registry),
        pruned.kept
    );
    for record in &pruned.removed {
        let key = record.key.get(..12).unwrap_or(&record.key);
        out.push_str(&format!("  {} {key} ({})\n", record.node, record.repository));
    }
    Ok(out)
}
