//! Task memory: what the relay knows about each RedBrick task from the events it has seen.
//!
//! Stage events carry neither the task's name nor where it came from, so the relay
//! remembers, per task: its name (from `TASK_CREATED` or `TASK_DELETED`), project, current
//! and previous stage, when it entered the current stage, who moved it, and whether it was
//! deleted. Events may arrive late or twice: a stage event moves a task only if it is newer
//! than the stage the task is remembered in, so a late or repeated event changes nothing.
//! [`observe`] is that rule as a pure function; `store` keeps its results in the outbox's
//! database. Matching and rendering read a [`Recall`]: the memory as it was just before
//! the event.

mod recent;
mod span;
mod store;

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::Connection;

pub use recent::Recent;
pub use span::human;
pub use store::{DROP_INDEXES, SCHEMA};

use crate::event::{Event, EventKind};
use crate::outbox::{Acceptance, Outbox, StoreError};

/// A deleted task is kept this long after its deletion was heard, so that a stage event
/// arriving late for it still finds its name.
pub const DELETED_GRACE: Duration = Duration::from_secs(3600);

/// What the relay remembers about one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// RedBrick's task id.
    pub task_id: String,
    /// Organisation id.
    pub org_id: String,
    /// Project id.
    pub project_id: String,
    /// Its name, once a `TASK_CREATED` or `TASK_DELETED` event has told it.
    pub name: Option<String>,
    /// The stage it is in, once a stage event has told it.
    pub stage: Option<String>,
    /// The stage it was in before that.
    pub previous_stage: Option<String>,
    /// When it entered `stage` (event time, unix ms).
    pub entered_at: Option<i64>,
    /// Who moved it into `stage`.
    pub moved_by: Option<String>,
    /// Whether a `TASK_DELETED` event was seen.
    pub deleted: bool,
    /// The newest event time seen for it (unix ms).
    pub last_event_at: i64,
    /// When the relay last heard of it (receipt time, unix ms): silence is measured from here.
    pub heard_at: i64,
}

impl Task {
    fn new(event: &Event) -> Task {
        Task {
            task_id: event.task_id.clone(),
            org_id: event.org_id.clone(),
            project_id: event.project_id.clone(),
            name: None,
            stage: None,
            previous_stage: None,
            entered_at: None,
            moved_by: None,
            deleted: false,
            last_event_at: event.time.timestamp_millis(),
            heard_at: 0,
        }
    }

    /// Whether a stage event at `time` into `stage` is newer than what is remembered. Equal
    /// times count as newer for a different stage, since timestamps in whole seconds can
    /// tie for two quick moves; a repeat of the same move is not.
    fn moved_by_event(&self, time: i64, stage: &str) -> bool {
        match self.entered_at {
            None => true,
            Some(at) => time > at || (time == at && self.stage.as_deref() != Some(stage)),
        }
    }
}

/// What the memory held about an event's task just before the event: the template values
/// and transition that depend on earlier events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recall {
    /// The task's name, if an earlier event told it.
    pub task_name: Option<String>,
    /// For a stage event that moved the task: the stage it left.
    pub previous_stage: Option<String>,
    /// For a stage event that moved the task: how long it had been in the stage it left.
    pub time_in_previous_stage: Option<Duration>,
}

/// Applies `event` to what is known of its task (`None` for a task never seen), returning
/// what was known before and the task as it is after. `heard_at` is the receipt time.
pub fn observe(known: Option<Task>, event: &Event, heard_at: i64) -> (Recall, Task) {
    let mut task = known.unwrap_or_else(|| Task::new(event));
    let mut recall = Recall {
        task_name: task.name.clone(),
        ..Recall::default()
    };
    let time = event.time.timestamp_millis();
    match event.kind {
        EventKind::TaskCreated => {}
        EventKind::TaskDeleted => task.deleted = true,
        EventKind::TaskEnteredStage => {
            let stage = event.stage.as_deref().unwrap_or_default();
            if task.moved_by_event(time, stage) {
                recall.previous_stage = task.stage.clone();
                recall.time_in_previous_stage = task.entered_at.map(|at| since(at, time));
                task.previous_stage = task.stage.replace(stage.to_owned());
                task.entered_at = Some(time);
                task.moved_by = event.updated_by.clone();
            }
        }
    }
    if event.task_name.is_some() {
        task.name = event.task_name.clone();
    }
    task.last_event_at = task.last_event_at.max(time);
    task.heard_at = heard_at;
    (recall, task)
}

/// The time from `start` to `end` (unix ms); zero if the clocks disagree.
pub fn since(start: i64, end: i64) -> Duration {
    Duration::from_millis(u64::try_from(end.saturating_sub(start)).unwrap_or(0))
}

/// The recall of each event of a batch, in order: each sees the memory `known` holds plus
/// the batch's earlier events, so a task created and moved in one webhook is named.
pub fn recall_all(mut known: HashMap<String, Task>, events: &[Event]) -> Vec<Recall> {
    let mut recalls = Vec::with_capacity(events.len());
    for event in events {
        let (recall, task) = observe(known.remove(&event.task_id), event, 0);
        known.insert(event.task_id.clone(), task);
        recalls.push(recall);
    }
    recalls
}

/// [`recall_all`] from what `recent` holds and, for the tasks it does not, from the store;
/// reading only: nothing is remembered until [`record`].
pub async fn recall(
    outbox: &Outbox,
    recent: &Recent,
    events: &[Event],
) -> Result<Vec<Recall>, StoreError> {
    let (mut known, missing) = recent.lookup(events.iter().map(|e| e.task_id.as_str()));
    if !missing.is_empty() {
        let stored = outbox
            .read(move |conn| Ok(store::load_many(conn, &missing)?))
            .await?;
        known.extend(stored);
    }
    Ok(recall_all(known, events))
}

/// As [`recall`], blocking, for the `render` command.
pub fn recall_blocking(outbox: &Outbox, events: &[Event]) -> Result<Vec<Recall>, StoreError> {
    let ids: Vec<String> = events.iter().map(|e| e.task_id.clone()).collect();
    let known = outbox.read_blocking(|conn| Ok(store::load_many(conn, &ids)?))?;
    Ok(recall_all(known, events))
}

/// What one fresh event did to its task's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The task as remembered before the event (`None` for a task never seen).
    pub before: Option<Task>,
    /// The task as remembered after it.
    pub after: Task,
}

/// Remembers the fresh events of a batch, inside the transaction that stores their
/// deliveries, and returns what each changed (`None` for a duplicate), in the events'
/// order, for the other writers of that transaction. Each task is read again here, under
/// the write lock, so two webhooks about one task at the same time both count: from
/// `recent`, which knows what this transaction wrote so far, or else from the store.
pub fn record(
    conn: &Connection,
    recent: &Recent,
    events: &[Event],
    acceptance: &[Acceptance],
    heard_at: i64,
) -> rusqlite::Result<Vec<Option<Change>>> {
    let batch = crate::outbox::batch();
    let mut changes = Vec::with_capacity(events.len());
    for (event, accepted) in events.iter().zip(acceptance) {
        if *accepted != Acceptance::Fresh {
            changes.push(None);
            continue;
        }
        let before = match recent.as_of(batch, &event.task_id) {
            Some(task) => Some(task),
            None => store::load(conn, &event.task_id)?,
        };
        let (_, after) = observe(before.clone(), event, heard_at);
        store::save(conn, &after)?;
        recent.wrote(batch, &after);
        changes.push(Some(Change { before, after }));
    }
    Ok(changes)
}

/// The task with id `task_id`, if remembered, read in the caller's transaction.
pub fn remembered(conn: &Connection, task_id: &str) -> rusqlite::Result<Option<Task>> {
    store::load(conn, task_id)
}

/// The tasks not deleted, read in the caller's transaction: what digests count.
pub fn live(conn: &Connection) -> rusqlite::Result<Vec<Task>> {
    store::live(conn, None)
}

/// Forgets deleted tasks past [`DELETED_GRACE`] and tasks not heard of for `silence`, in
/// the store and then in `recent`. Returns how many were forgotten.
pub async fn forget(
    outbox: &Outbox,
    recent: &Recent,
    silence: Duration,
    now: i64,
) -> Result<usize, StoreError> {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (silent_before, deleted_before) = (now - ms(silence), now - ms(DELETED_GRACE));
    let recent = recent.clone();
    let forgotten = outbox
        .write(move |conn| {
            let forgotten = store::prune(conn, silent_before, deleted_before)?;
            // Inside the commit, so that no later job of it takes a pruned task from
            // memory; a commit that fails only leaves the cache emptier.
            if forgotten > 0 {
                recent.clear();
            }
            Ok(forgotten)
        })
        .await?;
    Ok(forgotten)
}

/// Which tasks [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this project (an id).
    pub project: Option<String>,
    /// Only stages matching this pattern.
    pub stage: Option<crate::rules::Pattern>,
}

/// The tasks the relay remembers that are not deleted, longest in their stage first.
/// Blocking: for the `tasks` command.
pub fn list(outbox: &Outbox, filter: &Filter) -> Result<Vec<Task>, StoreError> {
    let mut tasks =
        outbox.read_blocking(|conn| Ok(store::live(conn, filter.project.as_deref())?))?;
    if let Some(pattern) = &filter.stage {
        tasks.retain(|t| t.stage.as_deref().is_some_and(|s| pattern.matches(s)));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests;
