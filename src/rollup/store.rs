//! The `held_events` table: events waiting for their roll-up to go out.
//!
//! Only SQL lives here. A roll-up is the set of rows with one (rule, key); it has no row of
//! its own, so a roll-up exists exactly while it holds events.

use rusqlite::{params, Connection};
use serde_json::Value;

/// The table, created by the outbox's migration to schema version 3.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS held_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    group_key TEXT NOT NULL,
    closes_at INTEGER NOT NULL,
    item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS held_events_by_group ON held_events (rule, group_key, id);
";

/// A roll-up whose window has ended, with its events in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// The rule it belongs to.
    pub rule: String,
    /// Which of the rule's roll-ups.
    pub key: String,
    /// The id of its first held event.
    pub first_id: i64,
    /// The id of its last held event: later ones belong to the next roll-up.
    pub last_id: i64,
    /// The events' template contexts.
    pub items: Vec<Value>,
}

/// Holds `item` in the open roll-up of (`rule`, `key`), opening one that closes at
/// `closes_at` if there is none.
pub fn hold(
    conn: &Connection,
    rule: &str,
    key: &str,
    closes_at: i64,
    item: &Value,
) -> rusqlite::Result<()> {
    let mut open = conn.prepare_cached(
        "SELECT MIN(closes_at) FROM held_events WHERE rule = ?1 AND group_key = ?2",
    )?;
    let open: Option<i64> = open.query_row(params![rule, key], |row| row.get(0))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO held_events (rule, group_key, closes_at, item) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let closes_at = open.unwrap_or(closes_at);
    insert.execute(params![rule, key, closes_at, item.to_string()])?;
    Ok(())
}

/// Every roll-up whose window ended at or before `now`, oldest first.
pub fn closed(conn: &Connection, now: i64) -> rusqlite::Result<Vec<Closed>> {
    let mut groups = conn.prepare_cached(
        "SELECT rule, group_key FROM held_events GROUP BY rule, group_key \
         HAVING MIN(closes_at) <= ?1 ORDER BY MIN(id)",
    )?;
    let keys = groups.query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let keys: Vec<(String, String)> = keys.collect::<rusqlite::Result<_>>()?;
    keys.into_iter()
        .map(|(rule, key)| load(conn, rule, key))
        .collect()
}

fn load(conn: &Connection, rule: String, key: String) -> rusqlite::Result<Closed> {
    let mut select = conn.prepare_cached(
        "SELECT id, item FROM held_events WHERE rule = ?1 AND group_key = ?2 ORDER BY id",
    )?;
    let rows = select.query_map(params![rule, key], |row| {
        let text: String = row.get(1)?;
        Ok((row.get::<_, i64>(0)?, text))
    })?;
    let mut closed = Closed {
        rule,
        key,
        first_id: 0,
        last_id: 0,
        items: Vec::new(),
    };
    for row in rows {
        let (id, text) = row?;
        // Written by `hold` from a JSON value, so it always reads back.
        closed
            .items
            .push(serde_json::from_str(&text).unwrap_or(Value::Null));
        closed.first_id = if closed.first_id == 0 {
            id
        } else {
            closed.first_id
        };
        closed.last_id = id;
    }
    Ok(closed)
}

/// Deletes a roll-up's events once its messages are stored.
pub fn release(conn: &Connection, closed: &Closed) -> rusqlite::Result<()> {
    let mut delete = conn.prepare_cached(
        "DELETE FROM held_events WHERE rule = ?1 AND group_key = ?2 AND id <= ?3",
    )?;
    delete.execute(params![closed.rule, closed.key, closed.last_id])?;
    Ok(())
}
