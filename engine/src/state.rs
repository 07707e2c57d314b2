//! The state store: what was built, from which inputs, with which result — in SQLite.
//!
//! Owns `.hephy/state.db` (WAL mode, a schema version with migrations, one transaction per
//! finished node) and the run lock (`.hephy/lock`, holding the running process's pid). Readers
//! (`plan`, `explain`, `log`) never take the lock and never block on a run. A record that cannot
//! be decoded is reported as unreadable, never a crash.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::files::{Stat, StatCache};
use crate::key::{InputManifest, Key};
use crate::plan::Reason;

/// The schema version this build writes; older databases are migrated forward.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        manifest TEXT NOT NULL,
        output TEXT NOT NULL,
        built_at INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        run_id INTEGER NOT NULL
    );
    CREATE TABLE failures (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        at INTEGER NOT NULL,
        message TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        status TEXT NOT NULL,
        command TEXT NOT NULL,
        fresh INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE run_nodes (
        run_id INTEGER NOT NULL,
        node TEXT NOT NULL,
        result TEXT NOT NULL,
        reasons TEXT NOT NULL,
        key TEXT,
        output TEXT,
        message TEXT,
        duration_ms INTEGER,
        finished_at INTEGER NOT NULL,
        PRIMARY KEY (run_id, node)
    );
    CREATE TABLE stat_cache (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        digest TEXT NOT NULL
    );",
    // 1 → 2: the digests external base images (`FROM alpine:3.20`) resolved to, kept between
    // refreshes (before, `.hephy/bases.json`).
    "CREATE TABLE base_images (
        reference TEXT PRIMARY KEY,
        digest TEXT NOT NULL
    );",
];

/// A state-store failure (the engine's own fault or the file system's, not a user's).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite refused.
    #[error("state database `{path}`: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// The folder or lock file could not be made.
    #[error("state folder `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The database was written by a newer hephy.
    #[error("state database `{path}` has schema version {found}; this hephy knows up to {SCHEMA_VERSION}")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// The state folder, or something in it, is a symbolic link: writing through it would
    /// write wherever it points (a repository can commit `.hephy/lock` → `~/.bashrc`).
    #[error("`{path}` is a symbolic link; hephy keeps its state only in a real folder of real files")]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A node's reasons in the run history cannot be read: damaged, or written by a newer
    /// hephy.
    #[error("state database `{path}`: the reasons of `{node}` in run {run} cannot be read: {problem}")]
    Reasons {
        /// The database file.
        path: PathBuf,
        /// The run.
        run: i64,
        /// The node.
        node: String,
        /// What is wrong with them.
        problem: ReasonsProblem,
    },
    /// Another `hephy run` holds the lock.
    #[error("another `hephy run` (pid {pid}) is using `{path}`; waited {waited:?}")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, as it wrote it.
        pid: String,
        /// How long this process waited.
        waited: Duration,
    },
}

/// Why stored reasons cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReasonsProblem {
    /// They are not the JSON this version writes.
    #[error("{0}")]
    Damaged(serde_json::Error),
    /// They are not JSON reasons of any version.
    #[error("neither a list of reasons nor a versioned record of them")]
    Unrecognised,
    /// A newer hephy wrote them.
    #[error(
        "they were written by a newer hephy (reasons version {found}; this hephy reads up to {REASONS_VERSION})"
    )]
    TooNew {
        /// Their version.
        found: u64,
    },
}

/// The version of the form a run's history stores each node's reasons in:
/// `{"version": 1, "reasons": [...]}` (the [`Reason`]s as `--format json` prints them). Before
/// it (version 0), the bare list.
pub const REASONS_VERSION: u64 = 1;

/// A node's reasons as the run history stores them.
#[derive(serde::Serialize)]
struct StoredReasons<'a> {
    version: u64,
    reasons: &'a [Reason],
}

/// Reasons as stored, `text`, decoded. Those of an older version that this build cannot decode
/// are [`Reason::StateUnreadable`] (said, never an empty list); damaged ones, or a newer
/// version's, are a problem.
fn decode_reasons(text: &str) -> Result<Vec<Reason>, ReasonsProblem> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(ReasonsProblem::Damaged)?;
    match value {
        // Version 0: the bare list.
        serde_json::Value::Array(_) => {
            Ok(serde_json::from_value(value).unwrap_or_else(|_| vec![Reason::StateUnreadable]))
        }
        serde_json::Value::Object(mut record) => {
            let version = record
                .get("version")
                .and_then(serde_json::Value::as_u64)
                .ok_or(ReasonsProblem::Unrecognised)?;
            let reasons = record.remove("reasons").ok_or(ReasonsProblem::Unrecognised)?;
            match version.cmp(&REASONS_VERSION) {
                std::cmp::Ordering::Equal => serde_json::from_value(reasons).map_err(ReasonsProblem::Damaged),
                std::cmp::Ordering::Greater => Err(ReasonsProblem::TooNew { found: version }),
                std::cmp::Ordering::Less => {
                    Ok(serde_json::from_value(reasons).unwrap_or_else(|_| vec![Reason::StateUnreadable]))
                }
            }
        }
        _ => Err(ReasonsProblem::Unrecognised),
    }
}

/// A passing condition of the file system behind a [`StateError`]: the state is intact, and
/// once the condition is fixed, running again is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passing {
    /// The state folder cannot be written (a read-only file system, or no permission).
    ReadOnly,
    /// The file system is full (or a quota is reached).
    Full,
}

impl StateError {
    /// The passing condition behind this error, if it is one.
    pub fn passing(&self) -> Option<Passing> {
        use rusqlite::ErrorCode;
        match self {
            StateError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), path } => match e.code {
                ErrorCode::ReadOnly => Some(Passing::ReadOnly),
                ErrorCode::DiskFull => Some(Passing::Full),
                // SQLite says only that it could not open or write: ask the folder.
                ErrorCode::CannotOpen | ErrorCode::SystemIoFailure => {
                    probe(path.parent().unwrap_or(Path::new(".")))
                }
                _ => None,
            },
            StateError::Io { source, .. } => passing(source),
            _ => None,
        }
    }
}

fn passing(error: &std::io::Error) -> Option<Passing> {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => Some(Passing::ReadOnly),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some(Passing::Full),
        _ => None,
    }
}

/// Whether `dir` can take a small new file, as a [`Passing`] condition if not.
fn probe(dir: &Path) -> Option<Passing> {
    let path = dir.join(format!(".probe-{}", std::process::id()));
    let written =
        OpenOptions::new().write(true).create_new(true).open(&path).and_then(|mut f| f.write_all(&[0; 4096]));
    let _ = fs::remove_file(&path);
    written.err().as_ref().and_then(passing)
}

/// Refuses a state folder that is a symbolic link or holds one, at its top or at the top of
/// a folder in it (the lock, the logs, the image layout and its blobs, builder storage): hephy
/// would write through it. What the folders in it hold is their owners' to guard (the image
/// layout refuses a link for its blobs). A folder that does not exist yet is fine (it is
/// created as a real folder).
pub fn check_state_dir(dir: &Path) -> Result<(), StateError> {
    let symlink = |path: &Path| fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if symlink(dir) {
        return Err(StateError::Symlink { path: dir.to_path_buf() });
    }
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = dir.join(entry.file_name());
        match entry.file_type() {
            Ok(kind) if kind.is_symlink() => return Err(StateError::Symlink { path }),
            Ok(kind) if kind.is_dir() => {
                let Ok(inner) = fs::read_dir(&path) else { continue };
                for entry in inner.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                        return Err(StateError::Symlink { path: path.join(entry.file_name()) });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The last successful build of a node.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its key.
    pub key: Key,
    /// Its inputs as stored (JSON), decoded only when the key differs: see [`Record::manifest`].
    pub manifest_json: String,
    /// Its output digest.
    pub output: String,
    /// When it finished (seconds since the epoch).
    pub built_at: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// The run that built it.
    pub run_id: i64,
}

impl Record {
    /// Its inputs; `None` when the stored manifest cannot be decoded (another version wrote it,
    /// or it is damaged).
    pub fn manifest(&self) -> Option<InputManifest> {
        serde_json::from_str(&self.manifest_json).ok()
    }
}

/// The last failed attempt of a node (cleared by a success).
#[derive(Debug, Clone)]
pub struct Failure {
    /// The key it failed with.
    pub key: Key,
    /// The run.
    pub run_id: i64,
    /// What went wrong.
    pub message: String,
}

/// Everything planning needs from the store, read once.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Last successful builds by node id (foldhash: planning looks up every node and edge).
    pub records: foldhash::HashMap<String, Record>,
    /// Last failures by node id.
    pub failures: foldhash::HashMap<String, Failure>,
}

/// One past run, for `hephy log`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// Its id.
    pub id: i64,
    /// Start (seconds since the epoch).
    pub started_at: i64,
    /// End, if it finished.
    pub finished_at: Option<i64>,
    /// How it ended, or that it is still running.
    pub status: RunStatus,
    /// The command line.
    pub command: String,
    /// Node results counted by result.
    pub counts: HashMap<String, i64>,
}

/// How a run ended (or that it still runs). Stored as its name (`running`, `ok`, …) in the
/// runs' text column: [`RunStatus::as_str`] and [`RunStatus::parse`] are the one mapping
/// between the two, and a name no status has is an error when read, never a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// It has begun and not finished (or its process is gone: see [`RunStatus::Killed`]).
    Running,
    /// Every node it planned ended with an output.
    Ok,
    /// A node failed.
    Failed,
    /// Ctrl-C, SIGTERM or SIGHUP stopped it.
    Interrupted,
    /// Its process went away while it ran (SIGKILL, an abort, a power cut).
    Killed,
}

impl RunStatus {
    /// Every status, in the order above.
    pub const ALL: [RunStatus; 5] =
        [RunStatus::Running, RunStatus::Ok, RunStatus::Failed, RunStatus::Interrupted, RunStatus::Killed];

    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Killed => "killed",
        }
    }

    /// The status named `name` (as [`RunStatus::as_str`] spells it).
    pub fn parse(name: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl rusqlite::types::ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for RunStatus {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        RunStatus::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown run status `{text}`").into())
        })
    }
}

/// How a node ended in a run. Stored as its name (`built`, `cached`, …) in the history's text
/// column: [`NodeStatus::as_str`] and [`NodeStatus::parse`] are the one mapping between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Built here.
    Built,
    /// Not built here: the registry holds its output for its key.
    Cached,
    /// Planned as fresh.
    Fresh,
    /// Its dependencies rebuilt to the same outputs, so its key is its last build's.
    Cutoff,
    /// Its work failed.
    Failed,
    /// Not built: a dependency failed (or `--fail-fast` stopped the run).
    Skipped,
    /// Not started: the run was interrupted first.
    Cancelled,
    /// Stopped while it ran: the run was interrupted.
    Stopped,
}

impl NodeStatus {
    /// Every status, in the order above.
    pub const ALL: [NodeStatus; 8] = [
        NodeStatus::Built,
        NodeStatus::Cached,
        NodeStatus::Fresh,
        NodeStatus::Cutoff,
        NodeStatus::Failed,
        NodeStatus::Skipped,
        NodeStatus::Cancelled,
        NodeStatus::Stopped,
    ];

    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Built => "built",
            NodeStatus::Cached => "cached",
            NodeStatus::Fresh => "fresh",
            NodeStatus::Cutoff => "cutoff",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
            NodeStatus::Cancelled => "cancelled",
            NodeStatus::Stopped => "stopped",
        }
    }

    /// The status named `name` (as [`NodeStatus::as_str`] spells it).
    pub fn parse(name: &str) -> Option<NodeStatus> {
        NodeStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the node's output is there after the run (built here or before, or found in
    /// the registry).
    pub fn has_output(self) -> bool {
        matches!(self, NodeStatus::Built | NodeStatus::Cached | NodeStatus::Fresh | NodeStatus::Cutoff)
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl rusqlite::types::ToSql for NodeStatus {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for NodeStatus {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        NodeStatus::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown node status `{text}`").into())
        })
    }
}

/// One node of a past run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunNode {
    /// The node id.
    pub node: String,
    /// How it ended.
    pub result: NodeStatus,
    /// Why the run was to build it (empty when it was fresh).
    pub reasons: Vec<Reason>,
    /// The key it ran with.
    pub key: Option<String>,
    /// Its output.
    pub output: Option<String>,
    /// Failure or skip message.
    pub message: Option<String>,
    /// Duration.
    pub duration_ms: Option<i64>,
}

/// How a node ended in a run, as stored.
#[derive(Debug, Clone)]
pub struct NodeResult<'a> {
    /// The node id.
    pub node: &'a str,
    /// How it ended.
    pub result: NodeStatus,
    /// Why it was to be built (stored with their version: [`REASONS_VERSION`]).
    pub reasons: &'a [Reason],
    /// The key.
    pub key: Option<&'a Key>,
    /// The inputs (for `built`).
    pub manifest: Option<&'a InputManifest>,
    /// The output (for `built`, `fresh`, `cutoff`).
    pub output: Option<&'a str>,
    /// A message (for `failed`, `skipped`).
    pub message: Option<&'a str>,
    /// Duration.
    pub duration: Duration,
}

/// An open state database.
#[derive(Debug)]
pub struct State {
    conn: Connection,
    path: PathBuf,
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

impl State {
    /// Opens (creating and migrating as needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        check_state_dir(dir)?;
        fs::create_dir_all(dir).map_err(|source| StateError::Io { path: dir.to_path_buf(), source })?;
        let path = dir.join("state.db");
        let sql = |source| StateError::Sqlite { path: path.clone(), source };
        let mut conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
        if version > SCHEMA_VERSION {
            return Err(StateError::TooNew { path, found: version });
        }
        if version < SCHEMA_VERSION {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
            // Re-read under the write lock: another process may have migrated meanwhile.
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
            for (i, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
                tx.execute_batch(migration).map_err(sql)?;
                tx.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap_or(SCHEMA_VERSION))
                    .map_err(sql)?;
            }
            tx.commit().map_err(sql)?;
        }
        Ok(State { conn, path })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        |source| StateError::Sqlite { path: self.path.clone(), source }
    }

    /// Reads every record and failure.
    pub fn snapshot(&self) -> Result<Snapshot, StateError> {
        let mut snapshot = Snapshot::default();
        let mut stmt = self
            .conn
            .prepare("SELECT id, key, manifest, output, built_at, duration_ms, run_id FROM nodes")
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Record {
                        key: Key::from_hex(&r.get::<_, String>(1)?),
                        manifest_json: r.get(2)?,
                        output: r.get(3)?,
                        built_at: r.get(4)?,
                        duration_ms: r.get(5)?,
                        run_id: r.get(6)?,
                    },
                ))
            })
            .map_err(self.sql())?;
        for row in rows {
            let (id, record) = row.map_err(self.sql())?;
            snapshot.records.insert(id, record);
        }
        let mut stmt =
            self.conn.prepare("SELECT id, key, run_id, message FROM failures").map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Failure {
                        key: Key::from_hex(&r.get::<_, String>(1)?),
                        run_id: r.get(2)?,
                        message: r.get(3)?,
                    },
                ))
            })
            .map_err(self.sql())?;
        for row in rows {
            let (id, failure) = row.map_err(self.sql())?;
            snapshot.failures.insert(id, failure);
        }
        Ok(snapshot)
    }

    /// The stat cache.
    pub fn stat_cache(&self) -> Result<StatCache, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, size, mtime_ns, ctime_ns, ino, digest FROM stat_cache")
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                let size: i64 = r.get(1)?;
                let ino: i64 = r.get(4)?;
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        Stat {
                            size: u64::try_from(size).unwrap_or(0),
                            mtime_ns: r.get(2)?,
                            ctime_ns: r.get(3)?,
                            ino: u64::from_ne_bytes(ino.to_ne_bytes()),
                        },
                        r.get::<_, String>(5)?,
                    ),
                ))
            })
            .map_err(self.sql())?;
        rows.collect::<Result<StatCache, _>>().map_err(self.sql())
    }

    /// The digest each external base image reference resolved to when last resolved.
    pub fn base_images(&self) -> Result<std::collections::BTreeMap<String, String>, StateError> {
        let mut stmt = self.conn.prepare("SELECT reference, digest FROM base_images").map_err(self.sql())?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Remembers what base image references resolved to, in one transaction.
    pub fn save_base_images(&mut self, resolved: &[(&str, &str)]) -> Result<(), StateError> {
        let sql = |source| StateError::Sqlite { path: self.path.clone(), source };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut stmt = tx
                .prepare("INSERT OR REPLACE INTO base_images (reference, digest) VALUES (?1, ?2)")
                .map_err(sql)?;
            for (reference, digest) in resolved {
                stmt.execute(params![reference, digest]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Remembers stat entries. Best effort: when another process holds the write lock, the
    /// entries are dropped (they only save work) rather than waiting.
    pub fn save_stats(&mut self, entries: &[(String, Stat, String)]) {
        if entries.is_empty() {
            return;
        }
        let _ = self.conn.busy_timeout(Duration::from_millis(50));
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            {
                let mut stmt = tx.prepare(
                    "INSERT OR REPLACE INTO stat_cache (path, size, mtime_ns, ctime_ns, ino, digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (path, stat, digest) in entries {
                    stmt.execute(params![
                        path,
                        i64::try_from(stat.size).unwrap_or(i64::MAX),
                        stat.mtime_ns,
                        stat.ctime_ns,
                        i64::from_ne_bytes(stat.ino.to_ne_bytes()),
                        digest
                    ])?;
                }
            }
            tx.commit()
        })();
        let _ = result;
        let _ = self.conn.busy_timeout(Duration::from_secs(10));
    }

    /// Gives fresh nodes the key their unchanged inputs have now, in one transaction: a node
    /// recorded under an older key encoding stays fresh (its recorded manifest is what it is
    /// today), and from here on its plan takes the fast path (keys equal) again.
    pub fn rekey(&mut self, keys: &[(&str, Key)]) -> Result<(), StateError> {
        if keys.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let sql = |source| StateError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut stmt = tx.prepare("UPDATE nodes SET key = ?2 WHERE id = ?1").map_err(sql)?;
            for (id, key) in keys {
                stmt.execute(params![id, key.hex().as_str()]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Starts a run; returns its id. The caller holds the run lock, so a run still marked
    /// `running` was killed: it is marked `killed`.
    pub fn begin_run(&mut self, command: &str) -> Result<i64, StateError> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?1 WHERE status = ?2",
                params![RunStatus::Killed, RunStatus::Running],
            )
            .map_err(self.sql())?;
        self.conn
            .execute(
                "INSERT INTO runs (started_at, status, command) VALUES (?1, ?2, ?3)",
                params![now_secs(), RunStatus::Running, command],
            )
            .map_err(self.sql())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how a node ended, in one transaction: the run history row, and for a build the
    /// new record (clearing any failure), for a failure the failure.
    pub fn record(&mut self, run_id: i64, result: &NodeResult<'_>) -> Result<(), StateError> {
        let path = self.path.clone();
        let sql = |source| StateError::Sqlite { path: path.clone(), source };
        let now = now_secs();
        let duration_ms = i64::try_from(result.duration.as_millis()).unwrap_or(i64::MAX);
        let key = result.key.map(Key::hex);
        let key = key.as_ref().map(|k| k.as_str());
        let reasons =
            serde_json::to_string(&StoredReasons { version: REASONS_VERSION, reasons: result.reasons })
                .unwrap_or_default();
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT OR REPLACE INTO run_nodes (run_id, node, result, reasons, key, output, message, duration_ms, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                run_id,
                result.node,
                result.result,
                reasons,
                key,
                result.output,
                result.message,
                duration_ms,
                now
            ],
        )
        .map_err(sql)?;
        match result.result {
            NodeStatus::Built | NodeStatus::Cached => {
                let manifest = serde_json::to_string(&result.manifest).unwrap_or_default();
                tx.execute(
                    "INSERT OR REPLACE INTO nodes (id, key, manifest, output, built_at, duration_ms, run_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        result.node,
                        key.unwrap_or_default(),
                        manifest,
                        result.output.unwrap_or_default(),
                        now,
                        duration_ms,
                        run_id
                    ],
                )
                .map_err(sql)?;
                tx.execute("DELETE FROM failures WHERE id = ?1", params![result.node]).map_err(sql)?;
            }
            NodeStatus::Cutoff | NodeStatus::Fresh => {
                tx.execute("DELETE FROM failures WHERE id = ?1", params![result.node]).map_err(sql)?;
            }
            NodeStatus::Failed => {
                tx.execute(
                    "INSERT OR REPLACE INTO failures (id, key, run_id, at, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        result.node,
                        key.unwrap_or_default(),
                        run_id,
                        now,
                        result.message.unwrap_or_default()
                    ],
                )
                .map_err(sql)?;
            }
            // The history row alone: the node's record and failure are as they were.
            NodeStatus::Skipped | NodeStatus::Cancelled | NodeStatus::Stopped => {}
        }
        tx.commit().map_err(sql)
    }

    /// Ends a run with `status`; `fresh` nodes were planned fresh (they have no history row).
    pub fn finish_run(&mut self, run_id: i64, status: RunStatus, fresh: usize) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = ?1, status = ?2, fresh = ?3 WHERE id = ?4",
                params![now_secs(), status, i64::try_from(fresh).unwrap_or(i64::MAX), run_id],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Past runs, newest first; one marked `running` whose process is gone is `killed`.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, started_at, finished_at, status, command, fresh FROM runs ORDER BY id DESC LIMIT ?1")
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(RunSummary {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    status: r.get(3)?,
                    command: r.get(4)?,
                    counts: HashMap::from([("fresh".to_owned(), r.get::<_, i64>(5)?)]),
                })
            })
            .map_err(self.sql())?;
        let mut runs: Vec<RunSummary> = rows.collect::<Result<_, _>>().map_err(self.sql())?;
        // A run still marked `running` whose process is gone was killed (SIGKILL, an abort, a
        // power cut): it says so, here and (best effort) in the database, before a next run.
        if runs.iter().any(|r| r.status == RunStatus::Running) && self.lock_holder_gone() {
            for run in runs.iter_mut().filter(|r| r.status == RunStatus::Running) {
                run.status = RunStatus::Killed;
                let _ = self.conn.execute(
                    "UPDATE runs SET status = ?2 WHERE id = ?1 AND status = ?3",
                    params![run.id, RunStatus::Killed, RunStatus::Running],
                );
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT result, COUNT(*) FROM run_nodes WHERE run_id = ?1 GROUP BY result")
            .map_err(self.sql())?;
        for run in &mut runs {
            let counts = stmt
                .query_map(params![run.id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(self.sql())?;
            for count in counts {
                let (result, n) = count.map_err(self.sql())?;
                *run.counts.entry(result).or_insert(0) += n;
            }
            run.counts.retain(|_, n| *n > 0);
        }
        Ok(runs)
    }

    /// Whether no process holds the run lock of this state: the lock ([`RunLock`], an `flock`
    /// the kernel releases with its holder, whatever its pid or pid namespace) can be taken, or
    /// there is no lock file. A lock that cannot be read says nothing: not gone.
    fn lock_holder_gone(&self) -> bool {
        let Some(dir) = self.path.parent() else { return false };
        let file = match hephy_os::open::open_regular(&dir.join("lock")) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) => return false,
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                true
            }
            Err(_) => false,
        }
    }

    /// The nodes of run `run_id`; `None` if there is no such run.
    pub fn run_nodes(&self, run_id: i64) -> Result<Option<Vec<RunNode>>, StateError> {
        let exists: Option<i64> = self
            .conn
            .query_row("SELECT id FROM runs WHERE id = ?1", params![run_id], |r| r.get(0))
            .optional()
            .map_err(self.sql())?;
        if exists.is_none() {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT node, result, reasons, key, output, message, duration_ms FROM run_nodes
                 WHERE run_id = ?1 ORDER BY finished_at, node",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![run_id], |r| {
                let reasons: String = r.get(2)?;
                Ok((
                    reasons,
                    RunNode {
                        node: r.get(0)?,
                        result: r.get(1)?,
                        reasons: Vec::new(),
                        key: r.get(3)?,
                        output: r.get(4)?,
                        message: r.get(5)?,
                        duration_ms: r.get(6)?,
                    },
                ))
            })
            .map_err(self.sql())?;
        let mut nodes = Vec::new();
        for row in rows {
            let (reasons, mut node) = row.map_err(self.sql())?;
            node.reasons = decode_reasons(&reasons).map_err(|problem| StateError::Reasons {
                path: self.path.clone(),
                run: run_id,
                node: node.node.clone(),
                problem,
            })?;
            nodes.push(node);
        }
        Ok(Some(nodes))
    }

    /// The newest run's id.
    pub fn last_run(&self) -> Result<Option<i64>, StateError> {
        self.conn.query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0)).map_err(self.sql())
    }

    /// Folds the write-ahead log into the database file and empties it, so the file alone
    /// holds the state (its stat then changes when, and only when, the state does). Best
    /// effort: a reader elsewhere may keep it from completing.
    pub fn checkpoint(&self) {
        let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    /// `PRAGMA integrity_check`: `ok` for a sound database.
    pub fn integrity_check(&self) -> Result<String, StateError> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(self.sql())
    }
}

/// Whether no process `pid` is alive: none has that pid, or it is a zombie (it has exited and
/// holds nothing; its parent has yet to reap it). A pid that is not positive names none.
pub fn process_gone(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid).filter(|p| p.as_raw_nonzero().get() > 0) else {
        return true;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
            .ok()
            .and_then(|stat| Some(stat.rsplit_once(')')?.1.split_whitespace().next()? == "Z"))
            .unwrap_or(false),
        Err(e) => e == rustix::io::Errno::SRCH,
    }
}

/// The exclusive lock a `hephy run` holds on a state folder for its whole duration.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock in `dir`, waiting up to `timeout` for another run to finish.
    pub fn acquire(dir: &Path, timeout: Duration) -> Result<RunLock, StateError> {
        check_state_dir(dir)?;
        fs::create_dir_all(dir).map_err(|source| StateError::Io { path: dir.to_path_buf(), source })?;
        let path = dir.join("lock");
        let io = |source| StateError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.rewind();
                    let _ = file.read_to_string(&mut pid);
                    let pid = pid.trim();
                    return Err(StateError::Locked {
                        path,
                        pid: if pid.is_empty() { "unknown".to_owned() } else { pid.to_owned() },
                        waited: start.elapsed(),
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sorted::SortedMap;

    fn manifest(run: &str) -> InputManifest {
        let mut settings = SortedMap::new();
        settings.insert("kind", "task");
        settings.insert("run", run.to_owned());
        InputManifest { settings, ..InputManifest::default() }
    }

    fn result<'a>(
        node: &'a str,
        result: NodeStatus,
        key: &'a Key,
        manifest: &'a InputManifest,
    ) -> NodeResult<'a> {
        NodeResult {
            node,
            result,
            reasons: &[Reason::NeverBuilt],
            key: Some(key),
            manifest: Some(manifest),
            output: (result != NodeStatus::Failed).then_some("blake3:out"),
            message: (result == NodeStatus::Failed).then_some("exit status 1"),
            duration: Duration::from_millis(1500),
        }
    }

    /// Each status is stored as its name and read back as itself, in JSON as in the database;
    /// a name no status has is a decoding error, never another status.
    #[test]
    fn statuses_are_stored_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = State::open(dir.path()).expect("opens");
        let run = state.begin_run("hephy run").expect("begins");
        let (one, key) = (manifest("true"), manifest("true").key());
        for status in NodeStatus::ALL {
            let json = serde_json::to_string(&status).expect("encodes");
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(NodeStatus::parse(status.as_str()), Some(status));
            state.record(run, &result(status.as_str(), status, &key, &one)).expect("records");
        }
        let nodes = state.run_nodes(run).expect("reads").expect("the run");
        let mut read: Vec<(String, NodeStatus)> = nodes.into_iter().map(|n| (n.node, n.result)).collect();
        read.sort();
        let mut expected: Vec<(String, NodeStatus)> =
            NodeStatus::ALL.iter().map(|s| (s.as_str().to_owned(), *s)).collect();
        expected.sort();
        assert_eq!(read, expected);
        // Only what has an output is recorded as built.
        let snapshot = state.snapshot().expect("reads");
        let mut recorded: Vec<&str> = snapshot.records.keys().map(String::as_str).collect();
        recorded.sort_unstable();
        assert_eq!(recorded, ["built", "cached"]);
        assert_eq!(snapshot.failures.keys().collect::<Vec<_>>(), ["failed"]);
        state
            .conn
            .execute("UPDATE run_nodes SET result = 'exploded' WHERE node = 'built'", [])
            .expect("edits");
        assert!(state.run_nodes(run).is_err());
        assert_eq!(NodeStatus::parse("exploded"), None);
    }

    /// A run's status is stored by name and read back as itself; a name no status has is an
    /// error when read, never a default.
    #[test]
    fn run_statuses_are_stored_by_name_and_read_strictly() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Held: a run marked running is running, not killed.
        let _lock = RunLock::acquire(dir.path(), Duration::ZERO).expect("locks");
        let mut state = State::open(dir.path()).expect("opens");
        for status in RunStatus::ALL {
            assert_eq!(serde_json::to_string(&status).expect("encodes"), format!("\"{status}\""));
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
            let run = state.begin_run("hephy run").expect("begins");
            state.finish_run(run, status, 0).expect("finishes");
            assert_eq!(state.runs(1).expect("lists")[0].status, status);
        }
        state.conn.execute("UPDATE runs SET status = 'exploded'", []).expect("edits");
        let error = state.runs(1).expect_err("an unknown status is an error");
        assert!(error.to_string().contains("unknown run status `exploded`"), "{error}");
        assert_eq!(RunStatus::parse("exploded"), None);
    }

    /// Reasons are stored with their version and read back as the reasons they were; the bare
    /// list an older hephy wrote reads as what it says, or as `state_unreadable` when it cannot
    /// be decoded; a damaged record or a newer version's is reported as an error, never read as
    /// no reasons.
    #[test]
    fn reasons_are_stored_with_their_version_and_read_strictly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = State::open(dir.path()).expect("opens");
        let run = state.begin_run("hephy run").expect("begins");
        let (one, key) = (manifest("true"), manifest("true").key());
        let reasons = [
            Reason::SettingChanged { field: "run".to_owned(), old: None, new: Some("true".to_owned()) },
            Reason::DependencyRebuilt { node: "base".to_owned() },
        ];
        let mut built = result("app", NodeStatus::Built, &key, &one);
        built.reasons = &reasons;
        state.record(run, &built).expect("records");
        let stored: String = state
            .conn
            .query_row("SELECT reasons FROM run_nodes WHERE node = 'app'", [], |r| r.get(0))
            .expect("reads");
        let stored: serde_json::Value = serde_json::from_str(&stored).expect("JSON");
        assert_eq!(stored["version"], REASONS_VERSION);
        assert_eq!(state.run_nodes(run).expect("reads").expect("the run")[0].reasons, reasons);

        let set = |text: &str| {
            state
                .conn
                .execute("UPDATE run_nodes SET reasons = ?1 WHERE node = 'app'", [text])
                .expect("edits");
        };
        set(r#"[{"kind": "never_built"}]"#);
        assert_eq!(state.run_nodes(run).expect("reads").expect("the run")[0].reasons, [Reason::NeverBuilt]);
        set(r#"[{"kind": "a_reason_of_old"}]"#);
        assert_eq!(
            state.run_nodes(run).expect("reads").expect("the run")[0].reasons,
            [Reason::StateUnreadable]
        );
        for (damaged, says) in [
            (r#"{"version": 1, "reasons": [{"kind": "exploded"}]}"#, "unknown variant `exploded`"),
            (r#"{"version": 1, "reasons": [{"#, "EOF while parsing"),
            ("42", "neither a list of reasons"),
            (r#"{"version": 99, "reasons": []}"#, "newer hephy (reasons version 99"),
        ] {
            set(damaged);
            match state.run_nodes(run) {
                Err(error @ StateError::Reasons { .. }) => {
                    let text = error.to_string();
                    assert!(text.contains("the reasons of `app` in run") && text.contains(says), "{text}");
                }
                other => panic!("{damaged}: expected a reasons error, got {other:?}"),
            }
        }
    }

    /// A new folder gets the schema at this version in WAL mode; opening it again migrates
    /// nothing and keeps what it holds.
    #[test]
    fn opens_creates_and_reopens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = State::open(dir.path()).expect("opens");
        let version: i64 =
            state.conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
        let mode: String = state.conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("mode");
        assert_eq!((version, mode.as_str()), (SCHEMA_VERSION, "wal"));
        let mut state = state;
        let run = state.begin_run("hephy run").expect("begins");
        drop(state);
        let state = State::open(dir.path()).expect("opens again");
        assert_eq!(state.last_run().expect("reads"), Some(run));
        assert_eq!(state.integrity_check().expect("checks"), "ok");
    }

    /// Base image digests are kept, and a reference resolved again replaces its digest.
    #[test]
    fn base_images_are_kept_and_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = State::open(dir.path()).expect("opens");
        state.save_base_images(&[("alpine:3.20", "sha256:aa"), ("golang:1.23", "sha256:bb")]).expect("saves");
        state.save_base_images(&[("alpine:3.20", "sha256:cc")]).expect("saves");
        drop(state);
        let bases = State::open(dir.path()).expect("opens again").base_images().expect("reads");
        let expected = [("alpine:3.20", "sha256:cc"), ("golang:1.23", "sha256:bb")];
        assert_eq!(bases, expected.map(|(r, d)| (r.to_owned(), d.to_owned())).into_iter().collect());
    }

    /// A database written by a newer hephy is refused, not damaged.
    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = State::open(dir.path()).expect("opens");
        state.conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("sets");
        drop(state);
        match State::open(dir.path()) {
            Err(StateError::TooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
            other => panic!("expected TooNew, got {other:?}"),
        }
    }

    /// A build records the node (key, inputs, output, duration); a failure is kept beside the
    /// last good record, and the next success clears it. Each lands in the run's history.
    #[test]
    fn records_builds_and_failures() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = State::open(dir.path()).expect("opens");
        let (one, two) = (manifest("[\"make\"]"), manifest("[\"make\",\"all\"]"));
        let (key_one, key_two) = (one.key(), two.key());

        let first = state.begin_run("hephy run").expect("begins");
        state.record(first, &result("app", NodeStatus::Built, &key_one, &one)).expect("records");
        state.finish_run(first, RunStatus::Ok, 0).expect("finishes");
        let snapshot = state.snapshot().expect("reads");
        let record = &snapshot.records["app"];
        assert_eq!((record.key, record.output.as_str(), record.run_id), (key_one, "blake3:out", first));
        assert_eq!(record.duration_ms, 1500);
        assert_eq!(record.manifest().map(|m| m.key()), Some(key_one));

        let second = state.begin_run("hephy run").expect("begins");
        state.record(second, &result("app", NodeStatus::Failed, &key_two, &two)).expect("records");
        state.finish_run(second, RunStatus::Failed, 0).expect("finishes");
        let snapshot = state.snapshot().expect("reads");
        assert_eq!(snapshot.records["app"].key, key_one, "a failure keeps the last good build");
        let failure = &snapshot.failures["app"];
        assert_eq!(
            (failure.key, failure.run_id, failure.message.as_str()),
            (key_two, second, "exit status 1")
        );

        let third = state.begin_run("hephy run").expect("begins");
        state.record(third, &result("app", NodeStatus::Built, &key_two, &two)).expect("records");
        state.finish_run(third, RunStatus::Ok, 3).expect("finishes");
        let snapshot = state.snapshot().expect("reads");
        assert_eq!(snapshot.records["app"].key, key_two);
        assert!(snapshot.failures.is_empty());

        let runs = state.runs(10).expect("lists");
        let listed: Vec<(i64, &str)> = runs.iter().map(|r| (r.id, r.status.as_str())).collect();
        assert_eq!(listed, [(third, "ok"), (second, "failed"), (first, "ok")]);
        assert_eq!(runs[0].counts, HashMap::from([("built".to_owned(), 1), ("fresh".to_owned(), 3)]));
        let nodes = state.run_nodes(second).expect("reads").expect("the run exists");
        assert_eq!(nodes.len(), 1);
        assert_eq!(
            (nodes[0].result.as_str(), nodes[0].message.as_deref()),
            ("failed", Some("exit status 1"))
        );
        assert_eq!(
            serde_json::to_value(&nodes[0].reasons).expect("encodes"),
            serde_json::json!([{ "kind": "never_built" }])
        );
        assert!(state.run_nodes(third + 1).expect("reads").is_none());
    }

    /// A run still marked running when the next one begins was killed.
    #[test]
    fn a_run_left_running_was_killed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = RunLock::acquire(dir.path(), Duration::ZERO).expect("locks");
        let mut state = State::open(dir.path()).expect("opens");
        let first = state.begin_run("hephy run").expect("begins");
        let second = state.begin_run("hephy run").expect("begins");
        let runs = state.runs(10).expect("lists");
        let listed: Vec<(i64, &str)> = runs.iter().map(|r| (r.id, r.status.as_str())).collect();
        assert_eq!(listed, [(second, "running"), (first, "killed")]);
        drop(lock);
    }

    /// A run marked `running` whose process is gone (the pid in the lock is not alive) lists
    /// as `killed`, and is recorded so.
    #[test]
    fn a_run_whose_process_is_gone_lists_as_killed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = State::open(dir.path()).expect("opens");
        let run = state.begin_run("hephy run").expect("begins");
        // While the run lock is held, the run is running (whatever pid the file names).
        let lock = RunLock::acquire(dir.path(), Duration::from_secs(1)).expect("locks");
        fs::write(dir.path().join("lock"), "").expect("writes");
        assert_eq!(state.runs(1).expect("lists")[0].status.as_str(), "running");
        // Released (its holder gone): killed.
        drop(lock);
        assert_eq!(state.runs(1).expect("lists")[0].status.as_str(), "killed");
        let _lock = RunLock::acquire(dir.path(), Duration::from_secs(1)).expect("locks");
        let again = State::open(dir.path()).expect("opens");
        let listed = again.runs(1).expect("lists");
        assert_eq!((listed[0].id, listed[0].status.as_str()), (run, "killed"), "recorded");
    }

    /// Stat entries read back as written, inode numbers past `i64::MAX` included; re-keying
    /// changes a record's key and nothing else; a damaged manifest or key reads as such.
    #[test]
    fn stats_keys_and_damage() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = State::open(dir.path()).expect("opens");
        let stat = Stat { size: 42, mtime_ns: 1_700_000_000_000_000_001, ctime_ns: -5, ino: u64::MAX - 1 };
        state.save_stats(&[("src/main.rs".to_owned(), stat, "f:abc".to_owned())]);
        let cache = state.stat_cache().expect("reads");
        assert_eq!(cache.get("src/main.rs"), Some(&(stat, "f:abc".to_owned())));

        let one = manifest("[\"true\"]");
        let key = one.key();
        let run = state.begin_run("hephy run").expect("begins");
        state.record(run, &result("a", NodeStatus::Built, &key, &one)).expect("records");
        let other = manifest("[\"false\"]").key();
        state.rekey(&[("a", other)]).expect("rekeys");
        let record = &state.snapshot().expect("reads").records["a"];
        assert_eq!((record.key, record.output.as_str()), (other, "blake3:out"));
        assert_eq!(record.manifest().map(|m| m.key()), Some(key));

        state.conn.execute("UPDATE nodes SET key = 'nonsense', manifest = '{'", []).expect("damages");
        let record = &state.snapshot().expect("reads").records["a"];
        assert_eq!(record.key, Key::ZERO);
        assert!(record.manifest().is_none());
    }

    /// The run lock is exclusive: a second taker waits its timeout, then learns the holder's
    /// pid; once the holder lets go, it gets the lock.
    #[test]
    fn the_run_lock_is_exclusive_and_names_its_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = RunLock::acquire(dir.path(), Duration::ZERO).expect("locks");
        let waited = Duration::from_millis(100);
        match RunLock::acquire(dir.path(), waited) {
            Err(StateError::Locked { pid, waited: took, .. }) => {
                assert_eq!(pid, std::process::id().to_string());
                assert!(took >= waited, "{took:?}");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        RunLock::acquire(dir.path(), Duration::ZERO).expect("locks once free");
    }
}
