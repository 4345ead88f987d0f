//! Reminders: a message when a task has waited too long in a stage.
//!
//! A `[[reminders]]` entry names stages (and projects), a wait `after` and optionally a
//! `repeat`. When a webhook moves a task into a matching stage, [`schedule`] stores the
//! deadline in the webhook's own transaction; moving the task on or deleting it removes the
//! deadline, which is what cancels the reminder. [`run`] looks for deadlines that have
//! passed every second, checks the task is still where the reminder says, and stores the
//! reminder's messages. Deadlines live in the store, so they survive restarts.

mod store;

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

pub use store::{Due, SCHEMA};

use crate::config::Config;
use crate::deliver::Clock;
use crate::event::{Event, EventKind};
use crate::links::{Links, MAX_LINK_CHARS};
use crate::outbox::{insert_delivery, NewDelivery, Outbox, StoreError};
use crate::render::with_route;
use crate::route::message;
use crate::rules::{Pattern, TemplateChoice};
use crate::tasks::{self, human, since, Task};

/// The shipped reminder template, used by a reminder with neither `template` nor `text`.
pub const DEFAULT_TEMPLATE: &str = "reminder";

/// How often passed deadlines are looked for: the most a reminder is late.
const POLL: Duration = Duration::from_secs(1);

/// One checked `[[reminders]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    /// Unique name, shown in logs and available to templates.
    pub name: String,
    /// Project ids it watches; `None` for every project.
    pub projects: Option<Vec<String>>,
    /// Stage patterns it watches; `None` for every stage.
    pub stages: Option<Vec<Pattern>>,
    /// How long a task may wait in the stage before the reminder.
    pub after: Duration,
    /// How often to remind again while the task still waits; `None` for once.
    pub repeat: Option<Duration>,
    /// Destination names.
    pub to: Vec<String>,
    /// What it renders.
    pub template: TemplateChoice,
}

impl Reminder {
    /// Whether this reminder watches `task` where it is now.
    fn watches(&self, task: &Task) -> bool {
        let Some(stage) = task.stage.as_deref() else {
            return false;
        };
        let project = self.projects.as_ref();
        let stages = self.stages.as_ref();
        project.is_none_or(|ids| ids.contains(&task.project_id))
            && stages.is_none_or(|patterns| patterns.iter().any(|p| p.matches(stage)))
    }
}

/// Owes and cancels reminders for the fresh events of a batch, given what each changed in
/// the task memory (`tasks::record`, `None` for a duplicate), inside the transaction that
/// accepts it.
pub fn schedule(
    conn: &Connection,
    reminders: &[Reminder],
    events: &[Event],
    changes: &[Option<tasks::Change>],
) -> rusqlite::Result<()> {
    for (event, change) in events.iter().zip(changes) {
        let Some(change) = change else {
            continue;
        };
        match event.kind {
            EventKind::TaskDeleted => store::cancel(conn, &event.task_id)?,
            EventKind::TaskEnteredStage => reschedule(conn, reminders, event, &change.after)?,
            EventKind::TaskCreated => {}
        }
    }
    Ok(())
}

/// A move cancels the reminders of the stage left and owes those of the stage entered. An
/// event that did not move the task (a late one) changes nothing.
fn reschedule(
    conn: &Connection,
    reminders: &[Reminder],
    event: &Event,
    task: &Task,
) -> rusqlite::Result<()> {
    let entered = event.time.timestamp_millis();
    if task.deleted || task.entered_at != Some(entered) || task.stage != event.stage {
        return Ok(());
    }
    store::cancel(conn, &task.task_id)?;
    for reminder in reminders.iter().filter(|r| r.watches(task)) {
        let after = i64::try_from(reminder.after.as_millis()).unwrap_or(i64::MAX);
        let due = Due {
            task_id: task.task_id.clone(),
            reminder: reminder.name.clone(),
            stage: task.stage.clone().unwrap_or_default(),
            due_at: entered.saturating_add(after),
        };
        store::owe(conn, &due)?;
    }
    Ok(())
}

/// The template context of a reminder for `task` at `now`, without `destination`: the
/// task's ids, name, stage, project and links, `updated_by` (who moved it there),
/// `waited` (such as "4 h 10 min") and `reminder` (its name, also as `rule`).
pub fn context(
    reminder: &str,
    task: &Task,
    project: Option<&str>,
    links: &Links,
    now: i64,
) -> Map<String, Value> {
    let stage = task.stage.as_deref().unwrap_or_default();
    let (org, project_id) = (&task.org_id, &task.project_id);
    let waited = task.entered_at.map(|at| human(since(at, now)));
    // As for events: a link too long to send is left out, and `{{link}}` shows its label.
    let bounded = |url: String| (url.len() <= MAX_LINK_CHARS).then_some(url);
    let context = json!({
        "reminder": reminder,
        "rule": reminder,
        "task_id": task.task_id,
        "task_name": task.name,
        "stage": stage,
        "org_id": org,
        "project_id": project_id,
        "project": project.unwrap_or(project_id),
        "project_url": bounded(links.project(org, project_id)),
        "task_url": bounded(links.task(org, project_id, stage, &task.task_id)),
        "updated_by": task.moved_by,
        "waited": waited,
        "destination": Value::Null,
    });
    match context {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

/// Sends every reminder whose deadline has passed, and owes the next one of those that
/// repeat; a reminder whose task has moved on, was deleted or whose entry is gone from the
/// config is dropped. Returns the destinations given work.
pub async fn fire(outbox: &Outbox, config: &Config, now: i64) -> Result<Vec<String>, StoreError> {
    let plan = plan(outbox, config, now).await?;
    commit(outbox, plan, now).await
}

/// One passed deadline as read, with the messages it sends and its next deadline.
struct Firing {
    due: Due,
    deliveries: Vec<(String, NewDelivery)>,
    again: Option<i64>,
}

/// Reads the passed deadlines and renders their messages, writing nothing.
async fn plan(outbox: &Outbox, config: &Config, now: i64) -> Result<Vec<Firing>, StoreError> {
    let due = outbox
        .read(move |conn| {
            let due = store::due(conn, now)?;
            let mut found = Vec::with_capacity(due.len());
            for one in due {
                let task = tasks::remembered(conn, &one.task_id)?;
                found.push((one, task));
            }
            Ok(found)
        })
        .await?;
    let mut plan = Vec::with_capacity(due.len());
    for (one, task) in due {
        let reminder = config.reminders.iter().find(|r| r.name == one.reminder);
        let mut firing = Firing {
            due: one,
            deliveries: Vec::new(),
            again: None,
        };
        if let (Some(reminder), Some(task)) = (reminder, task) {
            if still_waiting(&task, &firing.due) {
                let origin = format!("reminder:{}:{}", reminder.name, task.task_id);
                let messages = render(config, reminder, &task, now);
                firing.deliveries = messages.into_iter().map(|m| (origin.clone(), m)).collect();
                firing.again = reminder
                    .repeat
                    .map(|every| next_due(firing.due.due_at, every, now));
            }
        }
        plan.push(firing);
    }
    Ok(plan)
}

/// Stores what `plan` decided, for each deadline still owed exactly as it was read: a
/// webhook that moved or deleted the task in between has cancelled or replaced it, and
/// then neither its message nor its next deadline may be written over that.
async fn commit(outbox: &Outbox, plan: Vec<Firing>, now: i64) -> Result<Vec<String>, StoreError> {
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    outbox
        .write(move |conn| {
            let mut woken = Vec::new();
            for firing in &plan {
                if store::owed(conn, &firing.due.task_id, &firing.due.reminder)?.as_ref()
                    != Some(&firing.due)
                {
                    continue;
                }
                for (origin, delivery) in &firing.deliveries {
                    insert_delivery(conn, origin, delivery, now)?;
                    woken.push(delivery.destination.clone());
                }
                match firing.again {
                    Some(due_at) => store::owe(
                        conn,
                        &Due {
                            due_at,
                            ..firing.due.clone()
                        },
                    )?,
                    None => store::done(conn, &firing.due)?,
                }
            }
            Ok(woken)
        })
        .await
}

/// Whether `task` is still where `due` was owed for: moving it on cancels the reminder even
/// if the deadline was stored before the move was.
fn still_waiting(task: &Task, due: &Due) -> bool {
    !task.deleted && task.stage.as_deref() == Some(due.stage.as_str())
}

/// The first deadline after `now` on the `every` beat that started at `due_at`; a beat too
/// long to count in milliseconds since 1970 is never due again.
fn next_due(due_at: i64, every: Duration, now: i64) -> i64 {
    let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    let missed = now.saturating_sub(due_at).max(0) / every;
    missed
        .saturating_add(1)
        .checked_mul(every)
        .and_then(|wait| due_at.checked_add(wait))
        .unwrap_or(i64::MAX)
}

fn render(config: &Config, reminder: &Reminder, task: &Task, now: i64) -> Vec<NewDelivery> {
    let template = match &reminder.template {
        TemplateChoice::Default => DEFAULT_TEMPLATE,
        TemplateChoice::Named(name) => name,
    };
    let project = config.project_name(&task.project_id);
    let base = context(&reminder.name, task, project, &config.links, now);
    let link = base
        .get("task_url")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut deliveries = Vec::new();
    for destination in &reminder.to {
        let context = with_route(base.clone(), &reminder.name, destination);
        match message(
            config,
            &reminder.name,
            destination,
            template,
            context,
            link.as_deref(),
        ) {
            Ok(Some(m)) => deliveries.push(m.into()),
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "reminder not rendered"),
        }
    }
    deliveries
}

/// Sends due reminders until dropped, calling `wake` with each destination given work.
pub async fn run(
    outbox: Outbox,
    config: watch::Receiver<Arc<Config>>,
    clock: Clock,
    wake: impl Fn(&str),
) {
    loop {
        let current = config.borrow().clone();
        match fire(&outbox, &current, clock.now_ms()).await {
            Ok(destinations) => destinations.iter().for_each(|d| wake(d)),
            Err(err) => tracing::error!(error = %err, "cannot send reminders; retrying"),
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests;
