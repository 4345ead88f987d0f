//! The durable outbox of redbrick-relay: every delivery accepted from a webhook, in acceptance
//! order, with its state (`pending`, `sent` or `dead`), and the set of RedBrick event ids already
//! seen, so that a webhook sent again is recognised as a duplicate. It stores rendered bodies and
//! destination names only. It knows nothing of HTTP, rendering, rate limits, retry policy or
//! webhook URLs: callers decide when to retry or give up, and the store records what they decided.
//!
//! Every write made through the async API goes to one writer thread that owns the write
//! connection and commits whatever is queued as one transaction (group commit), so concurrent
//! callers share one fsync. Reads and the blocking operator commands use side connections, which
//! never wait behind that fsync and see each commit as soon as it is made.
//!
//! The same database file holds the relay's task memory, the events held for roll-ups and
//! the reminders owed; `tasks`, `rollup` and `reminders` own those tables and write them
//! through [`Outbox::accept_with`], so they commit together with the deliveries.

use std::cell::Cell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::config::DbConfig;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use tokio::sync::{oneshot, Semaphore};
use tracing::{debug, info, warn};

/// Stored in `PRAGMA user_version`: the number of steps in `MIGRATIONS` applied.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Step `n` brings a database from version `n` to `n + 1`. Steps add tables, add or drop
/// indexes, or rebuild a table with every row it holds, so a database written by an older
/// build keeps everything it holds. The tasks table belongs to `tasks`, which reads and
/// writes it through this store.
const MIGRATIONS: [&str; 8] = [
    SCHEMA,
    crate::tasks::SCHEMA,
    crate::rollup::SCHEMA,
    crate::reminders::SCHEMA,
    crate::digests::SCHEMA,
    crate::tasks::DROP_INDEXES,
    PENDING_INDEX,
    STATE_CHECK,
];

/// Long enough to ride out an operator command holding the write lock, short enough that a stuck
/// lock surfaces as an error instead of a hang.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Caps one group commit, so a burst cannot make the first caller wait behind thousands.
const MAX_BATCH: usize = 1024;

/// Async reads running at once, each on its own side connection kept open for reuse: more
/// would only contend for the CPU, and opening connections during a burst is slow.
const MAX_SIDE: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    destination TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_destination ON deliveries (destination, state, id);
CREATE TABLE IF NOT EXISTS seen_events (
    event_id TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_events_by_age ON seen_events (seen_at);
";

/// Indexes only the pending deliveries, which is all the workers look up (schema version
/// 7). The index of every delivery by destination and state, which this replaces, moved
/// an entry from the `pending` part to the `sent` part at every success; now a success only
/// removes one, from a small index. Operator commands that list sent or dead deliveries scan
/// the table instead.
const PENDING_INDEX: &str = "
DROP INDEX IF EXISTS deliveries_by_destination;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (destination, id)
    WHERE state = 'pending';
";

/// Rebuilds `deliveries` with its state check written as comparisons (schema version 8).
/// SQLite turns `state IN (...)` in a CHECK into a temporary table built afresh for every
/// row inserted or updated: a fifth of the instructions of recording a success. Rows keep
/// their ids, and the AUTOINCREMENT counter is carried over first, so an id that was
/// purged is still never given again.
const STATE_CHECK: &str = "
CREATE TABLE deliveries_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    destination TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state = 'pending' OR state = 'sent' OR state = 'dead'),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    updated_at INTEGER NOT NULL
);
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'deliveries_rebuilt', seq FROM sqlite_sequence WHERE name = 'deliveries';
INSERT INTO deliveries_rebuilt (id, event_id, rule, destination, body, state, attempts,
        created_at, next_attempt_at, last_error, updated_at)
    SELECT id, event_id, rule, destination, body, state, attempts,
        created_at, next_attempt_at, last_error, updated_at
    FROM deliveries ORDER BY id;
DROP TABLE deliveries;
ALTER TABLE deliveries_rebuilt RENAME TO deliveries;
CREATE INDEX deliveries_pending ON deliveries (destination, id) WHERE state = 'pending';
";

const INSERT_SEEN: &str = "INSERT OR IGNORE INTO seen_events (event_id, seen_at) VALUES (?1, ?2)";

const INSERT_DELIVERY: &str = "INSERT INTO deliveries (event_id, rule, destination, body, state, \
     attempts, created_at, next_attempt_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5)";

const UPDATE_PENDING: &str = "UPDATE deliveries SET state = ?2, attempts = attempts + ?3, \
     next_attempt_at = COALESCE(?4, next_attempt_at), last_error = COALESCE(?5, last_error), \
     updated_at = ?6 WHERE id = ?1 AND state = 'pending'";

const SELECT_PENDING: &str = "SELECT id, event_id, rule, destination, body, attempts, created_at, \
     next_attempt_at FROM deliveries \
     WHERE destination = ?1 AND state = 'pending' AND id > ?2 ORDER BY id LIMIT ?3";

const SELECT_LIST: &str = "SELECT id, event_id, rule, destination, state, attempts, created_at, \
     updated_at, next_attempt_at, last_error FROM deliveries \
     WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR destination = ?2) \
     ORDER BY id DESC LIMIT ?3";

const REPLAY_ONE: &str = "UPDATE deliveries SET state = 'pending', next_attempt_at = ?2, \
     updated_at = ?2 WHERE id = ?1 AND state = 'dead'";

const REPLAY_DEAD: &str = "UPDATE deliveries SET state = 'pending', next_attempt_at = ?2, \
     updated_at = ?2 WHERE state = 'dead' AND (?1 IS NULL OR destination = ?1)";

/// Errors of the outbox store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder that should hold the database could not be created.
    #[error(
        "cannot create folder `{}` for the outbox database: {cause}; \
         create it or fix its permissions",
        path.display()
    )]
    CreateDir {
        /// The database file whose folder is missing.
        path: PathBuf,
        /// Why the folder could not be made.
        cause: std::io::Error,
    },
    /// The database could not be opened, configured or migrated.
    #[error(
        "cannot open outbox database `{}`: {cause}; \
         check the path, its permissions and free disk space",
        path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        cause: rusqlite::Error,
    },
    /// The database was written by a newer build with a schema this one does not know.
    #[error(
        "outbox database `{}` has schema version `{found}`, newer than `{SCHEMA_VERSION}`; \
         run a newer redbrick-relay",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version it holds.
        found: i64,
    },
    /// The writer thread could not be started.
    #[error(
        "cannot start the outbox writer thread: {0}; check the process thread limit and restart"
    )]
    Spawn(std::io::Error),
    /// A statement failed outside a group commit (reads and operator commands).
    #[error("outbox database error: {0}; check disk space and permissions, then retry")]
    Sqlite(#[from] rusqlite::Error),
    /// The group commit this call was part of failed and was rolled back as a whole.
    #[error("outbox transaction rolled back: {0}; nothing from this call was stored, retry it")]
    Transaction(String),
    /// The writer thread is gone (it panicked), so nothing can be written any more.
    #[error("outbox writer thread has stopped; restart the service")]
    WriterGone,
    /// The blocking task running a read panicked or was cancelled.
    #[error("outbox read task failed: {0}; retry, and restart the service if it persists")]
    ReadTask(String),
    /// A delivery was marked that is not pending (unknown id, or already sent or dead).
    #[error(
        "delivery `{id}` is not pending (unknown, sent or dead); fetch the destination's head again"
    )]
    NotPending {
        /// The delivery's id.
        id: i64,
    },
    /// Purging was asked for pending deliveries, which are still owed to their destination.
    #[error("cannot purge `pending` deliveries; deliver or expire them first")]
    PurgePending,
    /// A delivery state name that is not `pending`, `sent` or `dead`.
    #[error("unknown delivery state `{0}`; use `pending`, `sent` or `dead`")]
    UnknownState(String),
}

/// The lifecycle state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Still owed to its destination (maybe waiting for `next_attempt_at`).
    Pending,
    /// Accepted by its destination.
    Sent,
    /// Given up on; an operator may replay it.
    Dead,
}

impl State {
    /// The name stored in the database and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sent => "sent",
            State::Dead => "dead",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = StoreError;

    fn from_str(name: &str) -> Result<State, StoreError> {
        match name {
            "pending" => Ok(State::Pending),
            "sent" => Ok(State::Sent),
            "dead" => Ok(State::Dead),
            other => Err(StoreError::UnknownState(other.to_owned())),
        }
    }
}

impl ToSql for State {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for State {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<State> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// One message to deliver, already rendered for its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The routing rule that produced it.
    pub rule: String,
    /// The destination's configured name (never its URL).
    pub destination: String,
    /// The exact HTTP body to send, or the text for the console.
    pub body: Vec<u8>,
}

/// A RedBrick event and the deliveries its matching rules produced (possibly none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingEvent {
    /// RedBrick's id for the event, the de-duplication key.
    pub event_id: String,
    /// Stored only if the event is fresh.
    pub deliveries: Vec<NewDelivery>,
}

/// Whether an event was recorded now or had been seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// First sighting: its deliveries are now stored.
    Fresh,
    /// Seen before (or earlier in the same call): nothing was stored.
    Duplicate,
}

/// A pending delivery, with everything a worker needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its place in acceptance order.
    pub id: i64,
    /// The event it came from.
    pub event_id: String,
    /// The rule that produced it.
    pub rule: String,
    /// Where it goes, by name.
    pub destination: String,
    /// The exact body to send.
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was accepted (unix ms).
    pub created_at: i64,
    /// Not to be sent before this (unix ms).
    pub next_attempt_at: i64,
}

/// A delivery as listed for operators (without its body, which may be long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Its place in acceptance order.
    pub id: i64,
    /// The event it came from.
    pub event_id: String,
    /// The rule that produced it.
    pub rule: String,
    /// Where it goes, by name.
    pub destination: String,
    /// Where it is in its lifecycle.
    pub state: State,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was accepted (unix ms).
    pub created_at: i64,
    /// When its state or attempts last changed (unix ms).
    pub updated_at: i64,
    /// Not to be sent before this (unix ms).
    pub next_attempt_at: i64,
    /// The error of the latest failed attempt, kept after later success or replay.
    pub last_error: Option<String>,
}

/// A handle on the outbox database. Cheap to clone: clones share one writer thread.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: mpsc::Sender<Box<dyn Job>>,
    // Declared after `jobs`: fields drop in order, so the queue closes before the join waits.
    _writer: JoinOnDrop,
    idle: Mutex<Vec<Connection>>,
    reads: Semaphore,
    commits: Arc<AtomicU64>,
}

/// Waits for the writer to answer everything queued, so a reopen sees all of it committed.
struct JoinOnDrop(Option<JoinHandle<()>>);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(Err(_)) = self.0.take().map(JoinHandle::join) {
            warn!("outbox writer thread had panicked");
        }
    }
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Outbox {
    /// Opens the database at `path`, creating its parent folder and the schema if needed, and
    /// starts the writer thread.
    pub fn open(path: &Path) -> Result<Outbox, StoreError> {
        create_parent(path)?;
        let mut conn = open_side(path)?;
        let found = use_wal(&conn, path)
            .and_then(|()| migrate(&mut conn))
            .map_err(|cause| open_error(path, cause))?;
        if found > SCHEMA_VERSION {
            let path = path.to_path_buf();
            return Err(StoreError::SchemaTooNew { path, found });
        }

        let commits = Arc::new(AtomicU64::new(0));
        let (jobs, queue) = mpsc::channel();
        let counter = Arc::clone(&commits);
        let writer = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || run_writer(conn, queue, &counter))
            .map_err(StoreError::Spawn)?;
        info!(path = %path.display(), "outbox opened");

        let _writer = JoinOnDrop(Some(writer));
        let idle = Mutex::new(Vec::new());
        let inner = Inner {
            path: path.to_path_buf(),
            jobs,
            _writer,
            idle,
            reads: Semaphore::new(MAX_SIDE),
            commits,
        };
        Ok(Outbox {
            inner: Arc::new(inner),
        })
    }

    /// Records a request's events in one durable transaction, shared with concurrent callers,
    /// and returns per event (same order) whether it is fresh or a duplicate. Returns only once
    /// the commit is durable; on error nothing from this call was stored.
    pub async fn accept(&self, events: Vec<IncomingEvent>) -> Result<Vec<Acceptance>, StoreError> {
        self.accept_at(events, unix_now_ms()).await
    }

    /// `accept` with the clock given, for tests and tools that replay recorded traffic.
    pub async fn accept_at(
        &self,
        events: Vec<IncomingEvent>,
        now_ms: i64,
    ) -> Result<Vec<Acceptance>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(move |conn| record_events(conn, &events, now_ms).map(Ok))
            .await
    }

    /// `accept_at`, with `also` run in the same transaction once each event is known to be
    /// fresh or a duplicate: what it writes is durable exactly when the deliveries are, and
    /// is rolled back with them. What `also` returns goes to `committed`, which the writer
    /// thread calls once the commit is durable, in commit order, before the caller hears:
    /// for state kept in memory that must follow the store exactly. It must be quick.
    pub async fn accept_with<F, A, C>(
        &self,
        events: Vec<IncomingEvent>,
        now_ms: i64,
        also: F,
        committed: C,
    ) -> Result<Vec<Acceptance>, StoreError>
    where
        F: FnOnce(&Connection, &[Acceptance]) -> rusqlite::Result<A> + Send + 'static,
        A: Send + 'static,
        C: FnOnce(A) + Send + 'static,
    {
        let work = move |conn: &Connection| {
            let outcome = record_events(conn, &events, now_ms)?;
            let written = also(conn, &outcome)?;
            Ok(Ok((outcome, written)))
        };
        let then = move |(outcome, written)| {
            committed(written);
            outcome
        };
        self.submit_then(Durability::Disk, work, then).await
    }

    /// Runs `work` in the next group commit, for the other tables of this database.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.submit(move |conn| work(conn).map(Ok)).await
    }

    /// Runs `work` on a side connection, blocking: for operator commands.
    pub(crate) fn read_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.inner.with_side(work)
    }

    /// The oldest pending delivery of `destination`, whatever its `next_attempt_at`: the caller
    /// delivers strictly in order and waits until `next_attempt_at` itself.
    pub async fn head(&self, destination: &str) -> Result<Option<Pending>, StoreError> {
        Ok(self
            .pending_after(destination, 0, 1)
            .await?
            .into_iter()
            .next())
    }

    /// Up to `limit` pending deliveries of `destination` with ids above `after_id`, oldest
    /// first, for a worker that sends the next one while the mark of the previous one commits.
    pub async fn pending_after(
        &self,
        destination: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        let destination = destination.to_owned();
        self.read(move |conn| {
            let mut select = conn.prepare_cached(SELECT_PENDING)?;
            let rows = select
                .query_map(params![destination, after_id, sql_limit(limit)], |row| {
                    pending_from_row(row)
                })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Records a successful attempt: the delivery becomes `sent`.
    pub async fn mark_sent(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.transition(id, Mark::Sent, now_ms).await
    }

    /// Replaces the body of pending delivery `keep` with `body`, which holds the messages
    /// of the pending deliveries `merged` too, names it after [`MERGED_RULE`], and records
    /// the others as sent, in one commit: a crash leaves either all separate or all merged.
    ///
    /// [`MERGED_RULE`]: crate::quiet::MERGED_RULE
    pub async fn merge(
        &self,
        keep: i64,
        body: Vec<u8>,
        merged: Vec<i64>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.submit(move |conn| {
            let mut update = conn.prepare_cached(
                "UPDATE deliveries SET body = ?2, rule = ?3, updated_at = ?4 \
                 WHERE id = ?1 AND state = 'pending'",
            )?;
            let rule = crate::quiet::MERGED_RULE;
            if update.execute(params![keep, body, rule, now_ms])? == 0 {
                return Ok(Err(StoreError::NotPending { id: keep }));
            }
            let note = format!("merged into delivery {keep} after quiet hours");
            let mut mark = conn.prepare_cached(UPDATE_PENDING)?;
            for id in merged {
                mark.execute(params![id, State::Sent, 0, None::<i64>, note, now_ms])?;
            }
            Ok(Ok(()))
        })
        .await
    }

    /// Records a failed attempt, to be retried at `next_attempt_at`.
    pub async fn mark_retry(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mark = Mark::Retry(next_attempt_at, error.to_owned());
        self.transition(id, mark, now_ms).await
    }

    /// Records a failed attempt after which the delivery is given up (`dead`).
    pub async fn mark_dead(&self, id: i64, error: &str, now_ms: i64) -> Result<(), StoreError> {
        self.transition(id, Mark::Dead(error.to_owned()), now_ms)
            .await
    }

    /// Gives a delivery up without an attempt, e.g. when it is older than the maximum age.
    pub async fn expire(&self, id: i64, error: &str, now_ms: i64) -> Result<(), StoreError> {
        self.transition(id, Mark::Expire(error.to_owned()), now_ms)
            .await
    }

    /// The names of destinations that have at least one pending delivery, sorted.
    pub async fn destinations_with_pending(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut select = conn.prepare_cached(
                "SELECT DISTINCT destination FROM deliveries WHERE state = 'pending' \
                 ORDER BY destination",
            )?;
            let rows = select.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// How many deliveries each destination has in each state (absent pairs are zero).
    pub async fn counts(&self) -> Result<Vec<(String, State, u64)>, StoreError> {
        self.read(|conn| {
            let mut select = conn.prepare_cached(
                "SELECT destination, state, COUNT(*) FROM deliveries \
                 GROUP BY destination, state ORDER BY destination, state",
            )?;
            let rows = select.query_map([], |row| {
                let count: i64 = row.get(2)?;
                Ok((row.get(0)?, row.get(1)?, u64::try_from(count).unwrap_or(0)))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Runs an empty transaction through the writer: proves that the writer thread is alive
    /// and that the database takes the write lock, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.submit(|_| Ok(Ok(()))).await
    }

    /// Deletes seen event ids older than `older_than_ms`: a webhook resent after that is
    /// accepted as fresh again. Returns how many were deleted.
    pub async fn prune_seen(&self, older_than_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        let cutoff = now_ms.saturating_sub(older_than_ms);
        self.submit(move |conn| {
            let mut delete = conn.prepare_cached("DELETE FROM seen_events WHERE seen_at < ?1")?;
            delete.execute([cutoff]).map(Ok)
        })
        .await
    }

    /// Deliveries, newest first, optionally only of one state and one destination. Blocking:
    /// meant for operator commands (use `spawn_blocking` from async code).
    pub fn list(
        &self,
        state: Option<State>,
        destination: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        self.inner.with_side(|conn| {
            let mut select = conn.prepare_cached(SELECT_LIST)?;
            let rows = select.query_map(params![state, destination, sql_limit(limit)], |row| {
                delivery_from_row(row)
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Moves the given dead deliveries back to pending, due now, keeping their attempts; as the
    /// oldest ids of their destination they are sent before newer ones. Ids that are not dead
    /// are skipped, each with the reason. Blocking, like `list`.
    pub fn replay(&self, ids: &[i64]) -> Result<Replayed, StoreError> {
        let now_ms = unix_now_ms();
        let outcome = self.inner.write_side(|tx| {
            let mut replay = tx.prepare_cached(REPLAY_ONE)?;
            let mut outcome = Replayed::default();
            for &id in ids {
                if replay.execute(params![id, now_ms])? == 1 {
                    outcome.count += 1;
                } else {
                    outcome.skipped.push((id, why_not_dead(tx, id)?));
                }
            }
            Ok(outcome)
        })?;
        info!(
            requested = ids.len(),
            replayed = outcome.count,
            "dead deliveries replayed"
        );
        Ok(outcome)
    }

    /// Moves every dead delivery (of one destination, if given) back to pending, like `replay`.
    pub fn replay_dead(&self, destination: Option<&str>) -> Result<usize, StoreError> {
        let now_ms = unix_now_ms();
        let replayed = self
            .inner
            .write_side(|tx| tx.execute(REPLAY_DEAD, params![destination, now_ms]))?;
        info!(destination, replayed, "dead deliveries replayed");
        Ok(replayed)
    }

    /// Deletes `sent` or `dead` deliveries last updated more than `older_than_ms` before
    /// `now_ms`; event ids stay seen. Returns how many were deleted. Blocking, like `list`.
    pub fn purge(
        &self,
        state: State,
        older_than_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        if state == State::Pending {
            return Err(StoreError::PurgePending);
        }
        let cutoff = now_ms.saturating_sub(older_than_ms);

        let purged = self.inner.write_side(|tx| {
            tx.execute(
                "DELETE FROM deliveries WHERE state = ?1 AND updated_at < ?2",
                params![state, cutoff],
            )
        })?;
        info!(%state, purged, "deliveries purged");
        Ok(purged)
    }

    /// How many group commits the writer has made since opening: one per batch of callers, so
    /// under load it grows slower than the number of calls.
    pub fn transactions_committed(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    async fn transition(&self, id: i64, mark: Mark, now_ms: i64) -> Result<(), StoreError> {
        let (state, attempts, next, error) = match mark {
            Mark::Sent => (State::Sent, 1, None, None),
            Mark::Retry(next, error) => (State::Pending, 1, Some(next), Some(error)),
            Mark::Dead(error) => (State::Dead, 1, None, Some(error)),
            Mark::Expire(error) => (State::Dead, 0, None, Some(error)),
        };

        let work = move |conn: &Connection| {
            let mut update = conn.prepare_cached(UPDATE_PENDING)?;
            if update.execute(params![id, state, attempts, next, error, now_ms])? == 0 {
                return Ok(Err(StoreError::NotPending { id }));
            }
            Ok(Ok(()))
        };
        self.submit_then(Durability::Process, work, |done| done)
            .await
    }

    /// Queues `work` for the next group commit and waits until that commit is durable.
    async fn submit<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Work<T> + Send + 'static,
    {
        self.submit_then(Durability::Disk, work, |output| output)
            .await
    }

    /// `submit`, with `then` turning the work's output into the answer on the writer
    /// thread, once the commit is durable and before the next batch begins.
    async fn submit_then<T, R, F, H>(
        &self,
        durability: Durability,
        work: F,
        then: H,
    ) -> Result<R, StoreError>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: FnOnce(&Connection) -> Work<T> + Send + 'static,
        H: FnOnce(T) -> R + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Task {
            durability,
            work: Some(work),
            then,
            output: None,
            reply,
        });

        let queued = self.inner.jobs.send(job);
        queued.map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `work` on a side connection in the blocking pool, off the async worker threads.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let permit = self.inner.reads.acquire().await;
        let _permit = permit.expect("the read semaphore is never closed");
        tokio::task::spawn_blocking(move || inner.with_side(work))
            .await
            .map_err(|e| StoreError::ReadTask(e.to_string()))?
    }
}

impl Inner {
    fn with_side<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let reused = self.idle().pop();
        let mut conn = match reused {
            Some(conn) => conn,
            None => open_side(&self.path)?,
        };

        let result = work(&mut conn);

        let mut idle = self.idle();
        if idle.len() < MAX_SIDE {
            idle.push(conn);
        }
        result
    }

    /// A panic while the pool was locked cannot leave it inconsistent: it only holds connections.
    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Operator writes take the write lock up front, so they wait (up to the busy timeout)
    /// instead of failing when the writer thread or another process holds it.
    fn write_side<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.with_side(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let output = work(&tx)?;
            tx.commit()?;
            Ok(output)
        })
    }
}

/// What became of an attempt (or, for `Expire`, of a delivery never attempted again).
enum Mark {
    Sent,
    Retry(i64, String),
    Dead(String),
    Expire(String),
}

/// A job's outcome: the outer error aborts the whole group commit, the inner one is the
/// caller's own (e.g. `NotPending`) and leaves the others unaffected.
type Work<T> = rusqlite::Result<Result<T, StoreError>>;

/// One caller's part of a group commit, answered only once the batch's fate is known.
trait Job: Send {
    fn run(&mut self, conn: &Connection) -> rusqlite::Result<()>;
    fn answer(self: Box<Self>, failure: Option<&str>);
    /// Whether its commit must reach the disk before the answer (see [`Durability`]).
    fn durability(&self) -> Durability;
}

/// How far a commit must get before its callers hear of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// On the disk (fsync): what a crash of the whole machine must not lose, such as an
    /// accepted webhook, which RedBrick will not send again.
    Disk,
    /// Written to the operating system, which survives a crash or `kill -9` of the relay
    /// but not a power failure. For the outcome of an attempt: losing one to a power
    /// failure can only make the relay send a message again, never lose it, and the next
    /// `Disk` commit makes it durable anyway. Spares a destination's worker an fsync
    /// between two sends.
    Process,
}

struct Task<T, R, F, H> {
    durability: Durability,
    work: Option<F>,
    then: H,
    output: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<T, R, F, H> Job for Task<T, R, F, H>
where
    T: Send,
    R: Send,
    F: FnOnce(&Connection) -> Work<T> + Send,
    H: FnOnce(T) -> R + Send,
{
    fn run(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let work = self
            .work
            .take()
            .expect("the writer runs each job at most once");
        self.output = Some(work(conn)?);
        Ok(())
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn answer(self: Box<Self>, failure: Option<&str>) {
        let Task {
            output,
            reply,
            then,
            ..
        } = *self;
        let result = match (failure, output) {
            (None, Some(output)) => output.map(then),
            (Some(reason), _) => Err(StoreError::Transaction(reason.to_owned())),
            (None, None) => Err(StoreError::Transaction("the job did not run".into())),
        };
        // A caller that stopped waiting loses only the answer; the commit stands either way.
        let _ = reply.send(result);
    }
}

fn run_writer(mut conn: Connection, queue: mpsc::Receiver<Box<dyn Job>>, commits: &AtomicU64) {
    // `configure` left the connection syncing every commit.
    let mut syncing = Durability::Disk;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        commit_batch(&mut conn, &mut syncing, batch, commits);
    }
    debug!("outbox writer stopped: every handle was dropped");
}

fn commit_batch(
    conn: &mut Connection,
    syncing: &mut Durability,
    mut batch: Vec<Box<dyn Job>>,
    commits: &AtomicU64,
) {
    let started = Instant::now();
    let failure = sync_for(conn, syncing, &batch)
        .and_then(|()| run_batch(conn, &mut batch))
        .err()
        .map(|e| e.to_string());

    match &failure {
        None => {
            commits.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            debug!(jobs = batch.len(), micros, "outbox batch committed");
        }
        Some(error) => warn!(jobs = batch.len(), %error, "outbox batch rolled back"),
    }

    for job in batch {
        job.answer(failure.as_deref());
    }
}

/// Makes the next commit sync to the disk when any job of `batch` needs it, and not
/// otherwise; `syncing` is what the connection does now. In WAL mode a commit that does
/// not sync still reaches the operating system, and the next one that syncs takes it
/// to the disk too.
fn sync_for(
    conn: &Connection,
    syncing: &mut Durability,
    batch: &[Box<dyn Job>],
) -> rusqlite::Result<()> {
    let wanted = match batch.iter().any(|job| job.durability() == Durability::Disk) {
        true => Durability::Disk,
        false => Durability::Process,
    };
    if wanted != *syncing {
        let mode = match wanted {
            Durability::Disk => "FULL",
            Durability::Process => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", mode)?;
        *syncing = wanted;
    }
    Ok(())
}

thread_local! {
    /// The number of the group commit the writer thread is in, counted from 1.
    static BATCH: Cell<u64> = const { Cell::new(0) };
}

/// The number of the group commit under way, for work running in it: each commit gets a
/// new one, so that a job can tell what earlier jobs of the same commit did from what a
/// commit that failed left behind.
pub(crate) fn batch() -> u64 {
    BATCH.with(Cell::get)
}

/// Any SQL error rolls back the whole batch: a statement failing on I/O may already have
/// ended the transaction, and committing the rest piecemeal could confirm half a request.
fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    BATCH.with(|number| number.set(number.get() + 1));
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        job.run(&tx)?;
    }
    tx.commit()
}

fn record_events(
    conn: &Connection,
    events: &[IncomingEvent],
    now_ms: i64,
) -> rusqlite::Result<Vec<Acceptance>> {
    let mut seen = conn.prepare_cached(INSERT_SEEN)?;
    let mut insert = conn.prepare_cached(INSERT_DELIVERY)?;

    let mut outcome = Vec::with_capacity(events.len());
    for event in events {
        if seen.execute(params![event.event_id, now_ms])? == 0 {
            outcome.push(Acceptance::Duplicate);
            continue;
        }
        for d in &event.deliveries {
            insert.execute(params![
                event.event_id,
                d.rule,
                d.destination,
                d.body,
                now_ms
            ])?;
        }
        outcome.push(Acceptance::Fresh);
    }
    Ok(outcome)
}

/// Stores one delivery owed to its destination, inside a transaction of the caller's: for
/// messages that do not come straight from a webhook (roll-ups).
pub(crate) fn insert_delivery(
    conn: &Connection,
    origin: &str,
    delivery: &NewDelivery,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(INSERT_DELIVERY)?;
    let d = delivery;
    insert.execute(params![origin, d.rule, d.destination, d.body, now_ms])?;
    Ok(())
}

/// What [`Outbox::replay`] did with the ids it was given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// How many dead deliveries went back in the queue.
    pub count: usize,
    /// The ids left alone, each with the reason.
    pub skipped: Vec<(i64, String)>,
}

fn why_not_dead(conn: &Connection, id: i64) -> rusqlite::Result<String> {
    let state: Option<State> = conn
        .query_row("SELECT state FROM deliveries WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()?;
    let reason = match state {
        Some(state) => format!("it is {state}, not dead"),
        None => "no such delivery".to_owned(),
    };
    warn!(id, %reason, "delivery not replayed");
    Ok(reason)
}

fn pending_from_row(row: &Row<'_>) -> rusqlite::Result<Pending> {
    Ok(Pending {
        id: row.get(0)?,
        event_id: row.get(1)?,
        rule: row.get(2)?,
        destination: row.get(3)?,
        body: row.get(4)?,
        attempts: row.get(5)?,
        created_at: row.get(6)?,
        next_attempt_at: row.get(7)?,
    })
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: row.get(0)?,
        event_id: row.get(1)?,
        rule: row.get(2)?,
        destination: row.get(3)?,
        state: row.get(4)?,
        attempts: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        next_attempt_at: row.get(8)?,
        last_error: row.get(9)?,
    })
}

fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|cause| StoreError::CreateDir {
                path: parent.to_path_buf(),
                cause,
            })
        }
        _ => Ok(()),
    }
}

/// Settings that are per connection; every connection, writer or side, gets them.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Without the planner stability guarantee, SQLite plans around the values bound to a
    // statement (`LIMIT ?` here) and marks a cached statement stale whenever one is bound
    // again, so every worker read re-parsed and re-planned its query: a fifth of the
    // relay's instructions under load. Our queries need no value-dependent plans.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "synchronous", "FULL")
}

/// WAL lets side connections read while the writer commits; it is stored in the file, so the
/// writer sets it once. Without it (some network filesystems) the store still works, slower.
fn use_wal(conn: &Connection, path: &Path) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        warn!(path = %path.display(), mode, "outbox database is not in WAL mode");
    }
    Ok(())
}

/// Brings the schema up to `SCHEMA_VERSION` and returns the version found before, leaving a
/// newer database untouched for the caller to refuse.
fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found < SCHEMA_VERSION {
        for step in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
            tx.execute_batch(step)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(found)
}

fn open_side(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|cause| open_error(path, cause))?;
    configure(&conn).map_err(|cause| open_error(path, cause))?;
    Ok(conn)
}

fn open_error(path: &Path, cause: rusqlite::Error) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        cause,
    }
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn unix_now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn open_temp() -> (TempDir, Outbox) {
        let dir = tempfile::tempdir().expect("a temporary folder can be created");
        let outbox = Outbox::open(&dir.path().join("state/outbox.db")).unwrap();
        (dir, outbox)
    }

    fn delivery(rule: &str, destination: &str, body: &str) -> NewDelivery {
        let body = body.as_bytes().to_vec();
        NewDelivery {
            rule: rule.into(),
            destination: destination.into(),
            body,
        }
    }

    fn event(id: &str, deliveries: Vec<NewDelivery>) -> IncomingEvent {
        IncomingEvent {
            event_id: id.into(),
            deliveries,
        }
    }

    fn row(outbox: &Outbox, id: i64) -> DeliveryRow {
        let rows = outbox.list(None, None, 1000).unwrap();
        rows.into_iter()
            .find(|r| r.id == id)
            .expect("the delivery exists")
    }

    fn ids(rows: &[DeliveryRow]) -> Vec<i64> {
        rows.iter().map(|r| r.id).collect()
    }

    /// Accepts one event per destination name at `now`, ids 1.. in order.
    async fn accept_one_each(outbox: &Outbox, destinations: &[&str], now: i64) {
        let events = (0..destinations.len())
            .map(|i| event(&format!("e{i}"), vec![delivery("r", destinations[i], "m")]))
            .collect();
        outbox.accept_at(events, now).await.unwrap();
    }

    #[tokio::test]
    async fn head_returns_pending_deliveries_in_id_order_per_destination() {
        let (_dir, outbox) = open_temp();
        let events = vec![
            event(
                "e1",
                vec![delivery("r1", "slack", "a"), delivery("r2", "teams", "b")],
            ),
            event("e2", vec![delivery("r1", "slack", "c")]),
        ];
        let accepted = outbox.accept_at(events, 1_000).await.unwrap();
        assert_eq!(accepted, vec![Acceptance::Fresh, Acceptance::Fresh]);

        let first = outbox.head("slack").await.unwrap();
        let expected = Pending {
            id: 1,
            event_id: "e1".into(),
            rule: "r1".into(),
            destination: "slack".into(),
            body: b"a".to_vec(),
            attempts: 0,
            created_at: 1_000,
            next_attempt_at: 1_000,
        };
        assert_eq!(first, Some(expected));
        assert_eq!(outbox.head("teams").await.unwrap().map(|p| p.id), Some(2));

        outbox.mark_sent(1, 2_000).await.unwrap();
        let second = outbox.head("slack").await.unwrap().unwrap();
        assert_eq!((second.id, second.body), (3, b"c".to_vec()));
        assert_eq!(outbox.head("nowhere").await.unwrap(), None);
    }

    #[tokio::test]
    async fn pending_after_pages_in_id_order() {
        let (_dir, outbox) = open_temp();
        accept_one_each(&outbox, &["slack", "teams", "slack", "slack"], 1_000).await;

        let page = outbox.pending_after("slack", 1, 10).await.unwrap();
        assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), vec![3, 4]);
        let page = outbox.pending_after("slack", 0, 1).await.unwrap();
        assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), vec![1]);
    }

    #[tokio::test]
    async fn duplicates_within_and_across_calls_store_nothing() {
        let (_dir, outbox) = open_temp();
        let first = vec![
            event("e1", vec![delivery("r", "slack", "one")]),
            event("e1", vec![delivery("r", "slack", "again")]),
        ];
        let accepted = outbox.accept(first).await.unwrap();
        assert_eq!(accepted, vec![Acceptance::Fresh, Acceptance::Duplicate]);

        let second = vec![
            event("e1", vec![delivery("r", "slack", "later")]),
            event("e2", vec![delivery("r", "teams", "two")]),
        ];
        let accepted = outbox.accept(second).await.unwrap();
        assert_eq!(accepted, vec![Acceptance::Duplicate, Acceptance::Fresh]);

        let rows = outbox.list(None, None, 100).unwrap();
        let stored: Vec<_> = rows.iter().map(|r| (r.id, r.event_id.as_str())).collect();
        assert_eq!(stored, vec![(2, "e2"), (1, "e1")]);
        assert_eq!(
            outbox.head("slack").await.unwrap().unwrap().body,
            b"one".to_vec()
        );
    }

    #[tokio::test]
    async fn duplicates_are_recognised_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let outbox = Outbox::open(&path).unwrap();
        let accepted = outbox.accept(vec![event("e1", vec![delivery("r", "slack", "a")])]);
        assert_eq!(accepted.await.unwrap(), vec![Acceptance::Fresh]);
        drop(outbox);

        let outbox = Outbox::open(&path).unwrap();
        let again = outbox.accept(vec![event("e1", vec![delivery("r", "slack", "b")])]);
        assert_eq!(again.await.unwrap(), vec![Acceptance::Duplicate]);
        let head = outbox.head("slack").await.unwrap().unwrap();
        assert_eq!((head.id, head.body), (1, b"a".to_vec()));
        assert_eq!(outbox.list(None, None, 10).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn marks_record_state_attempts_and_errors() {
        let (_dir, outbox) = open_temp();
        accept_one_each(&outbox, &["slack", "slack", "slack", "slack"], 1_000).await;

        outbox
            .mark_retry(1, 5_000, "http 500", 2_000)
            .await
            .unwrap();
        let retried = row(&outbox, 1);
        assert_eq!(retried.state, State::Pending);
        assert_eq!(
            (
                retried.attempts,
                retried.next_attempt_at,
                retried.updated_at
            ),
            (1, 5_000, 2_000)
        );
        assert_eq!(retried.last_error.as_deref(), Some("http 500"));
        let head = outbox.head("slack").await.unwrap().unwrap();
        assert_eq!(
            (head.id, head.attempts, head.next_attempt_at),
            (1, 1, 5_000)
        );

        outbox.mark_sent(1, 6_000).await.unwrap();
        let sent = row(&outbox, 1);
        assert_eq!(
            (sent.state, sent.attempts, sent.updated_at),
            (State::Sent, 2, 6_000)
        );

        outbox.mark_dead(2, "http 400", 7_000).await.unwrap();
        let dead = row(&outbox, 2);
        assert_eq!(
            (dead.state, dead.attempts, dead.last_error.as_deref()),
            (State::Dead, 1, Some("http 400"))
        );

        outbox.expire(3, "older than max age", 8_000).await.unwrap();
        let expired = row(&outbox, 3);
        assert_eq!(
            (expired.state, expired.attempts, expired.updated_at),
            (State::Dead, 0, 8_000)
        );

        let err = outbox.mark_sent(1, 9_000).await.unwrap_err();
        assert!(matches!(err, StoreError::NotPending { id: 1 }), "{err}");
        let err = outbox.mark_retry(99, 1, "x", 9_000).await.unwrap_err();
        assert!(matches!(err, StoreError::NotPending { id: 99 }), "{err}");
        assert_eq!(row(&outbox, 1).attempts, 2);
        assert_eq!(outbox.head("slack").await.unwrap().map(|p| p.id), Some(4));
    }

    #[tokio::test]
    async fn replay_moves_only_dead_deliveries_back_to_pending() {
        let (_dir, outbox) = open_temp();
        accept_one_each(&outbox, &["slack", "teams", "slack", "slack"], 1_000).await;
        for id in 1..=3 {
            outbox.mark_dead(id, "gone", 2_000).await.unwrap();
        }
        let before = unix_now_ms();

        let outcome = outbox.replay(&[1, 4, 99]).unwrap();
        assert_eq!(outcome.count, 1);
        assert_eq!(
            outcome.skipped,
            [
                (4, "it is pending, not dead".to_owned()),
                (99, "no such delivery".to_owned())
            ]
        );
        let replayed = row(&outbox, 1);
        assert_eq!((replayed.state, replayed.attempts), (State::Pending, 1));
        assert!(replayed.next_attempt_at >= before && replayed.next_attempt_at <= unix_now_ms());
        assert_eq!(outbox.replay(&[1]).unwrap().count, 0);

        assert_eq!(outbox.replay_dead(Some("teams")).unwrap(), 1);
        assert_eq!(row(&outbox, 2).state, State::Pending);
        assert_eq!(row(&outbox, 3).state, State::Dead);
        assert_eq!(outbox.replay_dead(None).unwrap(), 1);
        assert_eq!(outbox.replay_dead(None).unwrap(), 0);
        assert_eq!(
            outbox.list(Some(State::Pending), None, 10).unwrap().len(),
            4
        );
    }

    #[tokio::test]
    async fn purge_deletes_by_state_and_age_only() {
        let (_dir, outbox) = open_temp();
        accept_one_each(&outbox, &["slack", "slack", "slack", "slack"], 1_000).await;
        outbox.mark_sent(1, 10_000).await.unwrap();
        outbox.mark_sent(2, 50_000).await.unwrap();
        outbox.mark_dead(3, "gone", 10_000).await.unwrap();

        assert_eq!(outbox.purge(State::Sent, 20_000, 40_000).unwrap(), 1);
        assert_eq!(outbox.purge(State::Dead, 40_000, 40_000).unwrap(), 0);
        assert_eq!(outbox.purge(State::Dead, 20_000, 40_000).unwrap(), 1);
        let err = outbox.purge(State::Pending, 0, 40_000).unwrap_err();
        assert!(matches!(err, StoreError::PurgePending), "{err}");
        assert_eq!(ids(&outbox.list(None, None, 10).unwrap()), vec![4, 2]);

        let again = outbox.accept(vec![event("e0", vec![delivery("r", "slack", "m")])]);
        assert_eq!(again.await.unwrap(), vec![Acceptance::Duplicate]);
    }

    #[tokio::test]
    async fn prune_seen_forgets_only_old_event_ids() {
        let (_dir, outbox) = open_temp();
        outbox
            .accept_at(vec![event("old", vec![])], 1_000)
            .await
            .unwrap();
        outbox
            .accept_at(vec![event("new", vec![])], 50_000)
            .await
            .unwrap();

        assert_eq!(outbox.prune_seen(20_000, 40_000).await.unwrap(), 1);
        let events = vec![event("old", vec![]), event("new", vec![])];
        let accepted = outbox.accept_at(events, 60_000).await.unwrap();
        assert_eq!(accepted, vec![Acceptance::Fresh, Acceptance::Duplicate]);
    }

    #[tokio::test]
    async fn a_failed_transaction_reports_an_error_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let outbox = Outbox::open(&path).unwrap();
        let trigger = "CREATE TRIGGER refuse BEFORE INSERT ON deliveries \
             WHEN NEW.destination = 'broken' BEGIN SELECT RAISE(ABORT, 'refused'); END";
        Connection::open(&path)
            .unwrap()
            .execute_batch(trigger)
            .unwrap();

        let events = vec![
            event("good", vec![delivery("r", "slack", "a")]),
            event("bad", vec![delivery("r", "broken", "b")]),
        ];
        let err = outbox.accept(events).await.unwrap_err();
        assert!(matches!(err, StoreError::Transaction(_)), "{err}");

        let retried = outbox.accept(vec![event("good", vec![delivery("r", "slack", "a")])]);
        assert_eq!(retried.await.unwrap(), vec![Acceptance::Fresh]);
        assert_eq!(ids(&outbox.list(None, None, 10).unwrap()), vec![1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_accepts_share_group_commits() {
        let (_dir, outbox) = open_temp();
        let callers = 64;
        let barrier = Arc::new(tokio::sync::Barrier::new(callers));
        let tasks: Vec<_> = (0..callers)
            .map(|i| {
                let (outbox, barrier) = (outbox.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let deliveries = vec![delivery("r", "slack", &format!("m{i}"))];
                    outbox
                        .accept(vec![event(&format!("e{i}"), deliveries)])
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), vec![Acceptance::Fresh]);
        }

        assert_eq!(
            outbox
                .list(Some(State::Pending), Some("slack"), 1000)
                .unwrap()
                .len(),
            callers
        );
        let commits = outbox.transactions_committed();
        assert!(
            commits >= 1 && commits < callers as u64,
            "{commits} commits for {callers} callers"
        );
    }

    #[tokio::test]
    async fn list_filters_by_state_and_destination_newest_first() {
        let (_dir, outbox) = open_temp();
        accept_one_each(
            &outbox,
            &["slack", "teams", "slack", "teams", "slack"],
            1_000,
        )
        .await;
        outbox.mark_dead(1, "gone", 2_000).await.unwrap();
        outbox.mark_sent(2, 2_000).await.unwrap();

        assert_eq!(
            ids(&outbox.list(Some(State::Dead), None, 10).unwrap()),
            vec![1]
        );
        assert_eq!(
            ids(&outbox.list(None, Some("teams"), 10).unwrap()),
            vec![4, 2]
        );
        let pending_slack = outbox
            .list(Some(State::Pending), Some("slack"), 10)
            .unwrap();
        assert_eq!(ids(&pending_slack), vec![5, 3]);
        assert_eq!(ids(&outbox.list(None, None, 2).unwrap()), vec![5, 4]);
        assert_eq!(
            outbox.list(Some(State::Sent), Some("slack"), 10).unwrap(),
            vec![]
        );
    }

    #[tokio::test]
    async fn counts_and_destinations_reflect_states() {
        let (_dir, outbox) = open_temp();
        accept_one_each(&outbox, &["slack", "teams", "slack", "console"], 1_000).await;
        outbox.mark_sent(1, 2_000).await.unwrap();
        outbox.mark_dead(2, "gone", 2_000).await.unwrap();

        let expected = vec![
            ("console".to_string(), State::Pending, 1),
            ("slack".to_string(), State::Pending, 1),
            ("slack".to_string(), State::Sent, 1),
            ("teams".to_string(), State::Dead, 1),
        ];
        assert_eq!(outbox.counts().await.unwrap(), expected);
        assert_eq!(
            outbox.destinations_with_pending().await.unwrap(),
            vec!["console", "slack"]
        );
    }

    #[test]
    fn open_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, b"not a folder").unwrap();

        let err = Outbox::open(&blocker.join("outbox.db")).unwrap_err();
        assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
        assert!(
            err.to_string().contains(&blocker.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();

        let err = Outbox::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn the_workers_read_through_the_index_of_pending_deliveries() {
        let (_dir, outbox) = open_temp();
        let plan = outbox
            .read_blocking(|conn| {
                let sql = format!("EXPLAIN QUERY PLAN {SELECT_PENDING}");
                let mut explain = conn.prepare(&sql)?;
                let rows = explain
                    .query_map(params!["reviewers", 0, 64], |row| row.get::<_, String>(3))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?.join("; "))
            })
            .unwrap();

        assert!(plan.contains("USING INDEX deliveries_pending"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
    }

    #[tokio::test]
    async fn a_version_7_store_keeps_its_deliveries_ids_and_counter_through_the_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let old = Connection::open(&path).unwrap();
        for step in &MIGRATIONS[..7] {
            old.execute_batch(step).unwrap();
        }
        old.pragma_update(None, "user_version", 7).unwrap();
        // Three deliveries, then the newest purged: the counter stays at 3.
        old.execute_batch(
            "INSERT INTO deliveries (event_id, rule, destination, body, state, attempts, \
                 created_at, next_attempt_at, last_error, updated_at) VALUES \
             ('e1', 'r', 'slack', x'61', 'sent', 1, 10, 10, NULL, 11), \
             ('e2', 'r', 'slack', x'62', 'pending', 2, 20, 25, 'HTTP 500', 21), \
             ('e3', 'r', 'teams', x'63', 'dead', 1, 30, 30, 'HTTP 404', 31); \
             DELETE FROM deliveries WHERE id = 3;",
        )
        .unwrap();
        drop(old);

        let outbox = Outbox::open(&path).unwrap();
        let kept: Vec<_> = outbox.list(None, None, 10).unwrap();
        let head = outbox.head("slack").await.unwrap().unwrap();
        outbox
            .accept_at(vec![event("e4", vec![delivery("r", "slack", "d")])], 40)
            .await
            .unwrap();

        let summary: Vec<_> = kept
            .iter()
            .map(|r| (r.id, r.state, r.attempts, r.last_error.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (2, State::Pending, 2, Some("HTTP 500".to_owned())),
                (1, State::Sent, 1, None),
            ]
        );
        assert_eq!(
            (head.id, head.body, head.next_attempt_at),
            (2, b"b".to_vec(), 25)
        );
        assert_eq!(ids(&outbox.list(None, None, 10).unwrap()), [4, 2, 1]);
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, 8);
        let bogus = conn.execute(
            "INSERT INTO deliveries (event_id, rule, destination, body, state, \
                 created_at, next_attempt_at, updated_at) \
             VALUES ('e5', 'r', 's', x'', 'lost', 1, 1, 1)",
            [],
        );
        assert!(bogus.is_err(), "the state is still checked");
    }

    #[test]
    fn recording_an_outcome_builds_no_temporary_table() {
        let (_dir, outbox) = open_temp();
        let opcodes = |sql: &'static str| {
            outbox
                .read_blocking(move |conn| {
                    let mut explain = conn.prepare(&format!("EXPLAIN {sql}"))?;
                    let unbound = vec![rusqlite::types::Null; explain.parameter_count()];
                    let params = rusqlite::params_from_iter(unbound);
                    let rows = explain.query_map(params, |row| row.get::<_, String>(1))?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .unwrap()
        };

        for sql in [UPDATE_PENDING, INSERT_DELIVERY] {
            let ops = opcodes(sql);
            assert!(ops.contains(&"Insert".to_owned()), "{ops:?}");
            assert!(!ops.contains(&"OpenEphemeral".to_owned()), "{sql}: {ops:?}");
        }
    }

    /// A job that only declares how durable its commit must be.
    struct Declared(Durability);

    impl Job for Declared {
        fn run(&mut self, _: &Connection) -> rusqlite::Result<()> {
            Ok(())
        }

        fn answer(self: Box<Self>, _: Option<&str>) {}

        fn durability(&self) -> Durability {
            self.0
        }
    }

    #[test]
    fn only_a_batch_holding_a_job_that_needs_the_disk_waits_for_it() {
        let dir = TempDir::new().unwrap();
        let conn = open_side(&dir.path().join("relay.db")).unwrap();
        let synchronous = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA synchronous", [], |row| row.get(0))
                .unwrap()
        };
        let batch = |kinds: &[Durability]| -> Vec<Box<dyn Job>> {
            kinds
                .iter()
                .map(|&d| Box::new(Declared(d)) as Box<dyn Job>)
                .collect()
        };
        let mut syncing = Durability::Disk;
        assert_eq!(synchronous(&conn), 2, "FULL, as configured");

        sync_for(&conn, &mut syncing, &batch(&[Durability::Process])).unwrap();
        let marks_only = synchronous(&conn);
        let mixed = [Durability::Process, Durability::Disk];
        sync_for(&conn, &mut syncing, &batch(&mixed)).unwrap();

        assert_eq!(marks_only, 1, "NORMAL: written to the system, not synced");
        assert_eq!(synchronous(&conn), 2, "FULL again");
        assert_eq!(syncing, Durability::Disk);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [State::Pending, State::Sent, State::Dead] {
            assert_eq!(state.to_string().parse::<State>().unwrap(), state);
        }
        let err = "done".parse::<State>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown delivery state `done`; use `pending`, `sent` or `dead`"
        );
    }
}
