//! The `digests_sent` and `task_changes` tables.
//!
//! Only SQL lives here. `digests_sent` holds, per digest, the last fire time dealt with
//! (sent or passed over) and when its counts start; `task_changes` logs each creation,
//! move and deletion with the time it was received, for counting since a digest.

use rusqlite::{params, Connection, OptionalExtension};

/// The tables, created by the outbox's migration to schema version 5.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS digests_sent (
    name TEXT PRIMARY KEY,
    slot_at INTEGER NOT NULL,
    counted_from INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS task_changes (
    at INTEGER NOT NULL,
    org_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    stage TEXT,
    change TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS task_changes_by_time ON task_changes (at);
";

/// Where a digest stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// The last fire time dealt with (unix ms), or when the digest was first seen.
    pub slot_at: i64,
    /// Changes received from this time on are counted in its next message.
    pub counted_from: i64,
}

/// One kind of change to one stage of a project, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Organisation id, for links.
    pub org_id: String,
    /// Project id.
    pub project_id: String,
    /// The stage entered (a move) or left (a deletion); none for a creation.
    pub stage: Option<String>,
    /// `created`, `moved` or `deleted`.
    pub change: String,
    /// How many.
    pub count: i64,
}

/// The state of the digest `name`, if it was ever seen.
pub fn state(conn: &Connection, name: &str) -> rusqlite::Result<Option<State>> {
    let mut select =
        conn.prepare_cached("SELECT slot_at, counted_from FROM digests_sent WHERE name = ?1")?;
    select
        .query_row([name], |row| {
            Ok(State {
                slot_at: row.get(0)?,
                counted_from: row.get(1)?,
            })
        })
        .optional()
}

/// Stores `state` for the digest `name`.
pub fn set(conn: &Connection, name: &str, state: State) -> rusqlite::Result<()> {
    let mut upsert = conn.prepare_cached(
        "INSERT OR REPLACE INTO digests_sent (name, slot_at, counted_from) VALUES (?1, ?2, ?3)",
    )?;
    upsert.execute(params![name, state.slot_at, state.counted_from])?;
    Ok(())
}

/// Logs one change received at `at`.
pub fn log(
    conn: &Connection,
    at: i64,
    (org_id, project_id): (&str, &str),
    stage: Option<&str>,
    change: &str,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO task_changes (at, org_id, project_id, stage, change) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    insert.execute(params![at, org_id, project_id, stage, change])?;
    Ok(())
}

/// The changes received in `[from, until)`, counted per project, stage and kind.
pub fn count(conn: &Connection, from: i64, until: i64) -> rusqlite::Result<Vec<Counted>> {
    let mut select = conn.prepare_cached(
        "SELECT MIN(org_id), project_id, stage, change, COUNT(*) FROM task_changes \
         WHERE at >= ?1 AND at < ?2 GROUP BY project_id, stage, change \
         ORDER BY project_id, stage, change",
    )?;
    let rows = select.query_map([from, until], |row| {
        Ok(Counted {
            org_id: row.get(0)?,
            project_id: row.get(1)?,
            stage: row.get(2)?,
            change: row.get(3)?,
            count: row.get(4)?,
        })
    })?;
    rows.collect()
}

/// Deletes changes received before `before`; returns how many.
pub fn prune(conn: &Connection, before: i64) -> rusqlite::Result<usize> {
    let mut delete = conn.prepare_cached("DELETE FROM task_changes WHERE at < ?1")?;
    delete.execute([before])
}
