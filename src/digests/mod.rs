//! Digests: a scheduled summary of where tasks wait and what changed since the last one.
//!
//! A `[[digests]]` entry fires at a time of day on some weekdays in an IANA zone
//! ([`Schedule`]). Each webhook logs the creations, moves and deletions it brings
//! ([`note`], in the transaction that accepts it); [`fire`] counts them since the digest
//! last went out and reads the live tasks from the task memory. The last fire time dealt
//! with is stored with the digest's messages, in one transaction, so a restart neither
//! repeats a digest nor loses one: a fire time passed while the relay was stopped is sent
//! on start if it is at most [`GRACE`] old, and passed over otherwise.

mod context;
mod schedule;
mod store;

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::watch;

pub use context::{context, Facts, HEAD};
pub(crate) use schedule::{local_date, resolve};
pub use schedule::{Days, Schedule};
pub use store::{Counted, SCHEMA};

use crate::config::Config;
use crate::deliver::Clock;
use crate::event::{Event, EventKind};
use crate::outbox::{insert_delivery, NewDelivery, Outbox, StoreError};
use crate::render::with_route;
use crate::route::message;
use crate::rules::TemplateChoice;
use crate::tasks::{self, Task};
use store::State;

/// The shipped digest template, used by a digest with neither `template` nor `text`.
pub const DEFAULT_TEMPLATE: &str = "digest";

/// How late a digest may still go out, after a stop over its fire time.
pub const GRACE: Duration = Duration::from_secs(3600);

/// How long changes are kept for counting: a digest fires at least weekly.
pub const KEEP_CHANGES: Duration = Duration::from_secs(8 * 86_400);

/// How often fire times are looked for: the most a digest is late.
const POLL: Duration = Duration::from_secs(1);

/// One checked `[[digests]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Unique name, shown in logs and available to templates.
    pub name: String,
    /// When it fires.
    pub schedule: Schedule,
    /// Project ids it covers; `None` for every project.
    pub projects: Option<Vec<String>>,
    /// Destination names.
    pub to: Vec<String>,
    /// What it renders.
    pub template: TemplateChoice,
    /// Whether a digest with no task waiting and nothing changed is left unsent.
    pub skip_empty: bool,
}

impl Digest {
    fn covers(&self, project_id: &str) -> bool {
        let projects = self.projects.as_ref();
        projects.is_none_or(|ids| ids.iter().any(|id| id == project_id))
    }
}

/// Logs the creations, moves and deletions among the fresh events of a batch, received
/// at `now`, given what each changed in the task memory (`tasks::record`, `None` for a
/// duplicate). Runs in the transaction that accepts the batch.
pub fn note(
    conn: &Connection,
    events: &[Event],
    changes: &[Option<tasks::Change>],
    now: i64,
) -> rusqlite::Result<()> {
    for (event, change) in events.iter().zip(changes) {
        let Some(tasks::Change { before, after }) = change else {
            continue;
        };
        let ids = (event.org_id.as_str(), event.project_id.as_str());
        match event.kind {
            EventKind::TaskCreated => store::log(conn, now, ids, None, "created")?,
            EventKind::TaskDeleted => {
                let stage = before.as_ref().and_then(|t| t.stage.as_deref());
                store::log(conn, now, ids, stage, "deleted")?;
            }
            EventKind::TaskEnteredStage if moved(before.as_ref(), after) => {
                store::log(conn, now, ids, after.stage.as_deref(), "moved")?;
            }
            EventKind::TaskEnteredStage => {}
        }
    }
    Ok(())
}

/// Whether a stage event moved the task: a late or repeated one changes nothing.
fn moved(before: Option<&Task>, after: &Task) -> bool {
    before.is_none_or(|b| b.entered_at != after.entered_at || b.stage != after.stage)
}

/// What to do about one digest at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing is due.
    Wait,
    /// First seen: start counting now, fire at the next fire time.
    Begin,
    /// A fire time passed more than [`GRACE`] ago: pass over it, keep counting.
    Skip(i64),
    /// Send for this fire time.
    Send(i64),
}

fn step(schedule: &Schedule, state: Option<State>, now: i64) -> Step {
    let Some(state) = state else {
        return Step::Begin;
    };
    match schedule.latest_in(state.slot_at, now) {
        None => Step::Wait,
        Some(slot) if now - slot <= grace_ms() => Step::Send(slot),
        Some(slot) => Step::Skip(slot),
    }
}

fn grace_ms() -> i64 {
    i64::try_from(GRACE.as_millis()).unwrap_or(i64::MAX)
}

/// What one digest will do, with what it read from the store.
struct Plan {
    digest: Digest,
    step: Step,
    state: Option<State>,
    tasks: Vec<Task>,
    changes: Vec<Counted>,
}

/// Sends every digest whose fire time has come, and stores how far each got. Returns the
/// destinations given work.
pub async fn fire(outbox: &Outbox, config: &Config, now: i64) -> Result<Vec<String>, StoreError> {
    if config.digests.is_empty() {
        return Ok(Vec::new());
    }
    let digests = config.digests.clone();
    let plans = outbox
        .read(move |conn| Ok(plan(conn, digests, now)?))
        .await?;
    let mut deliveries = Vec::new();
    let mut states = Vec::new();
    for plan in &plans {
        let (sent, state) = settle(config, plan, now);
        let origin = format!("digest:{}:{now}", plan.digest.name);
        deliveries.extend(sent.into_iter().map(|d| (origin.clone(), d)));
        states.extend(state.map(|s| (plan.digest.name.clone(), s)));
    }
    if states.is_empty() {
        return Ok(Vec::new());
    }
    let woken = deliveries
        .iter()
        .map(|(_, d)| d.destination.clone())
        .collect();
    outbox
        .write(move |conn| {
            for (origin, delivery) in &deliveries {
                insert_delivery(conn, origin, delivery, now)?;
            }
            for (name, state) in &states {
                store::set(conn, name, *state)?;
            }
            Ok(())
        })
        .await?;
    Ok(woken)
}

fn plan(conn: &Connection, digests: Vec<Digest>, now: i64) -> rusqlite::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for digest in digests {
        let state = store::state(conn, &digest.name)?;
        let step = step(&digest.schedule, state, now);
        let (mut tasks, mut changes) = (Vec::new(), Vec::new());
        if let (Step::Send(_), Some(state)) = (step, state) {
            tasks = tasks::live(conn)?;
            tasks.retain(|t| digest.covers(&t.project_id));
            changes = store::count(conn, state.counted_from, now)?;
            changes.retain(|c| digest.covers(&c.project_id));
        }
        if step != Step::Wait {
            plans.push(Plan {
                digest,
                step,
                state,
                tasks,
                changes,
            });
        }
    }
    Ok(plans)
}

/// The messages of one planned digest and its new state.
fn settle(config: &Config, plan: &Plan, now: i64) -> (Vec<NewDelivery>, Option<State>) {
    let name = &plan.digest.name;
    let begun = State {
        slot_at: now,
        counted_from: now,
    };
    match (plan.step, plan.state) {
        (Step::Begin, _) => (Vec::new(), Some(begun)),
        (Step::Skip(slot), Some(state)) => {
            tracing::warn!(digest = %name, "digest time passed while stopped; skipped");
            let kept = State {
                slot_at: slot,
                ..state
            };
            (Vec::new(), Some(kept))
        }
        (Step::Send(slot), Some(state)) => {
            let facts = Facts {
                tasks: &plan.tasks,
                changes: &plan.changes,
                counted_from: state.counted_from,
                now,
            };
            let sent = render(config, &plan.digest, &facts);
            let counted_from = if sent.is_empty() {
                state.counted_from
            } else {
                now
            };
            let next = State {
                slot_at: slot,
                counted_from,
            };
            (sent, Some(next))
        }
        _ => (Vec::new(), None),
    }
}

fn render(config: &Config, digest: &Digest, facts: &Facts<'_>) -> Vec<NewDelivery> {
    let names = |id: &str| config.project_name(id).map(str::to_owned);
    let (base, empty) = context(&digest.name, facts, &names, &config.links);
    if empty && digest.skip_empty {
        tracing::info!(digest = %digest.name, "digest has nothing to say; skipped");
        return Vec::new();
    }
    let template = match &digest.template {
        TemplateChoice::Default => DEFAULT_TEMPLATE,
        TemplateChoice::Named(name) => name,
    };
    let mut deliveries = Vec::new();
    for destination in &digest.to {
        let context: Value = with_route(base.clone(), &digest.name, destination);
        match message(config, &digest.name, destination, template, context, None) {
            Ok(Some(m)) => deliveries.push(m.into()),
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "digest not rendered"),
        }
    }
    deliveries
}

/// Forgets changes older than [`KEEP_CHANGES`]; returns how many.
pub async fn forget(outbox: &Outbox, now: i64) -> Result<usize, StoreError> {
    let keep = i64::try_from(KEEP_CHANGES.as_millis()).unwrap_or(i64::MAX);
    outbox
        .write(move |conn| store::prune(conn, now - keep))
        .await
}

/// Sends digests when due until dropped, calling `wake` with each destination given work.
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
            Err(err) => tracing::error!(error = %err, "cannot send digests; retrying"),
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests;
