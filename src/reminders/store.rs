//! The `reminders_due` table: when each task's next reminder is due.
//!
//! Only SQL lives here. A row exists while a reminder is owed; moving or deleting the task
//! deletes it, which is what cancels the reminder.

use rusqlite::{params, Connection};

/// The table, created by the outbox's migration to schema version 4.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reminders_due (
    task_id TEXT NOT NULL,
    reminder TEXT NOT NULL,
    stage TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    PRIMARY KEY (task_id, reminder)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reminders_due_by_time ON reminders_due (due_at);
";

/// A reminder owed for a task in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The task.
    pub task_id: String,
    /// The reminder's name.
    pub reminder: String,
    /// The stage it is about: if the task is elsewhere now, the reminder is void.
    pub stage: String,
    /// When it is due (unix ms).
    pub due_at: i64,
}

/// Cancels every reminder of `task_id`.
pub fn cancel(conn: &Connection, task_id: &str) -> rusqlite::Result<()> {
    let mut delete = conn.prepare_cached("DELETE FROM reminders_due WHERE task_id = ?1")?;
    delete.execute([task_id])?;
    Ok(())
}

/// Owes `due` (replacing the same reminder of the same task).
pub fn owe(conn: &Connection, due: &Due) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO reminders_due (task_id, reminder, stage, due_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    insert.execute(params![due.task_id, due.reminder, due.stage, due.due_at])?;
    Ok(())
}

/// The reminder `reminder` owed for `task_id`, if one is.
pub fn owed(conn: &Connection, task_id: &str, reminder: &str) -> rusqlite::Result<Option<Due>> {
    let mut select = conn.prepare_cached(
        "SELECT task_id, reminder, stage, due_at FROM reminders_due \
         WHERE task_id = ?1 AND reminder = ?2",
    )?;
    let mut rows = select.query_map(params![task_id, reminder], |row| {
        Ok(Due {
            task_id: row.get(0)?,
            reminder: row.get(1)?,
            stage: row.get(2)?,
            due_at: row.get(3)?,
        })
    })?;
    rows.next().transpose()
}

/// Reminders due at or before `now`, earliest first.
pub fn due(conn: &Connection, now: i64) -> rusqlite::Result<Vec<Due>> {
    let mut select = conn.prepare_cached(
        "SELECT task_id, reminder, stage, due_at FROM reminders_due WHERE due_at <= ?1 \
         ORDER BY due_at, task_id, reminder",
    )?;
    let rows = select.query_map([now], |row| {
        Ok(Due {
            task_id: row.get(0)?,
            reminder: row.get(1)?,
            stage: row.get(2)?,
            due_at: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// Removes one owed reminder, once sent (or void).
pub fn done(conn: &Connection, due: &Due) -> rusqlite::Result<()> {
    let mut delete =
        conn.prepare_cached("DELETE FROM reminders_due WHERE task_id = ?1 AND reminder = ?2")?;
    delete.execute(params![due.task_id, due.reminder])?;
    Ok(())
}
