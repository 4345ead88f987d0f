//! The `tasks` table: one row per remembered task, in the outbox's database.
//!
//! Only SQL lives here; what a row means and how an event changes it is in `tasks`.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::Task;

/// The table, created by the outbox's migration to schema version 2.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    name TEXT,
    stage TEXT,
    previous_stage TEXT,
    entered_at INTEGER,
    moved_by TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    last_event_at INTEGER NOT NULL,
    heard_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_by_heard ON tasks (heard_at);
CREATE INDEX IF NOT EXISTS tasks_by_project ON tasks (project_id, stage);
";

/// Drops the indexes `SCHEMA` made (schema version 6). Every webhook rewrites its tasks'
/// rows, and each index moved an entry to a page of its own in every such commit, which
/// cost write volume per webhook; the queries they served (pruning and the `tasks` command)
/// run rarely, and scanning the table serves them.
pub const DROP_INDEXES: &str = "
DROP INDEX IF EXISTS tasks_by_heard;
DROP INDEX IF EXISTS tasks_by_project;
";

/// Every column, in the order `task_from_row` reads them.
macro_rules! columns {
    () => {
        "task_id, org_id, project_id, name, stage, previous_stage, entered_at, moved_by, \
         deleted, last_event_at, heard_at"
    };
}

const SELECT_ONE: &str = concat!("SELECT ", columns!(), " FROM tasks WHERE task_id = ?1");

const SELECT_LIVE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM tasks WHERE deleted = 0 AND (?1 IS NULL OR project_id = ?1) \
     ORDER BY entered_at IS NULL, entered_at, task_id"
);

const UPSERT: &str = "INSERT OR REPLACE INTO tasks (task_id, org_id, project_id, name, stage, \
     previous_stage, entered_at, moved_by, deleted, last_event_at, heard_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The task with id `task_id`, if remembered.
pub fn load(conn: &Connection, task_id: &str) -> rusqlite::Result<Option<Task>> {
    let mut select = conn.prepare_cached(SELECT_ONE)?;
    select.query_row([task_id], task_from_row).optional()
}

/// The remembered tasks among `ids`, by id.
pub fn load_many(conn: &Connection, ids: &[String]) -> rusqlite::Result<HashMap<String, Task>> {
    let mut found = HashMap::new();
    for id in ids {
        if found.contains_key(id) {
            continue;
        }
        if let Some(task) = load(conn, id)? {
            found.insert(id.clone(), task);
        }
    }
    Ok(found)
}

/// Writes `task`, replacing what was remembered.
pub fn save(conn: &Connection, task: &Task) -> rusqlite::Result<()> {
    let mut upsert = conn.prepare_cached(UPSERT)?;
    upsert.execute(params![
        task.task_id,
        task.org_id,
        task.project_id,
        task.name,
        task.stage,
        task.previous_stage,
        task.entered_at,
        task.moved_by,
        task.deleted,
        task.last_event_at,
        task.heard_at,
    ])?;
    Ok(())
}

/// Deletes tasks last heard of before `silent_before`, and deleted tasks last heard of
/// before `deleted_before`; returns how many.
pub fn prune(
    conn: &Connection,
    silent_before: i64,
    deleted_before: i64,
) -> rusqlite::Result<usize> {
    let mut delete = conn.prepare_cached(
        "DELETE FROM tasks WHERE heard_at < ?1 OR (deleted = 1 AND heard_at < ?2)",
    )?;
    delete.execute([silent_before, deleted_before])
}

/// Tasks not deleted, of one project if given, longest in their stage first.
pub fn live(conn: &Connection, project: Option<&str>) -> rusqlite::Result<Vec<Task>> {
    let mut select = conn.prepare_cached(SELECT_LIVE)?;
    let rows = select.query_map([project], task_from_row)?;
    rows.collect()
}

fn task_from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        task_id: row.get(0)?,
        org_id: row.get(1)?,
        project_id: row.get(2)?,
        name: row.get(3)?,
        stage: row.get(4)?,
        previous_stage: row.get(5)?,
        entered_at: row.get(6)?,
        moved_by: row.get(7)?,
        deleted: row.get(8)?,
        last_event_at: row.get(9)?,
        heard_at: row.get(10)?,
    })
}
