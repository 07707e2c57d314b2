//! `hephy gc`: under the run lock (the library session's), the image layout's unreferenced
//! blobs removed, or with `--registry` the registry's stale cache records.

use hephy_dsl::{Code, Problem, Problems};
use hephy_stdlib::session::{Maintenance, lock_wait};

use crate::commands::{graph_path, load_in};
use crate::{Failure, FileArg, StateArg, print, registry_gc};

/// `hephy gc`: under the run lock, removes the blobs no recorded image references.
/// With `registry` (`--keep N`), prunes the graph's registry's cache records instead.
pub(crate) fn command(
    file: &FileArg,
    state: &StateArg,
    lock_timeout: f64,
    registry: Option<usize>,
) -> Result<(), Failure> {
    let path = graph_path(file)?;
    let held = Maintenance::hold(&path, state.dir.as_deref(), lock_wait(lock_timeout))?;
    let dir = &held.state_dir;
    if let Some(keep) = registry {
        let model = load_in(file, state)?;
        print(&registry_gc::prune(&model, &held.snapshot, keep, dir)?);
        return Ok(());
    }
    let collected = held.collect_garbage().map_err(|error| {
        Failure::Input(Problems::single(
            "hephy",
            Problem::new(Code::Io, error.to_string())
                .help("nothing was removed; run `hephy run`, then `hephy gc` again"),
        ))
    })?;
    #[expect(clippy::cast_precision_loss, reason = "a size shown in MB")]
    let megabytes = collected.bytes as f64 / 1_000_000.0;
    let damaged = match collected.damaged {
        0 => String::new(),
        n => format!(" ({n} of them damaged: the next `hephy run` rebuilds what needed them)"),
    };
    let scratch = match collected.scratch {
        0 => String::new(),
        n => format!("; removed {n} scratch folders and files killed runs left"),
    };
    print(&format!(
        "removed {} files ({megabytes:.1} MB) from `{}`{damaged}; kept {} blobs{scratch}\n",
        collected.files,
        hephy_oci::layout::folder(dir.strip_prefix(".").unwrap_or(dir)).display(),
        collected.kept
    ));
    Ok(())
}
