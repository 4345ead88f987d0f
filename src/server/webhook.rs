//! A valid webhook's events: rendered, committed to the outbox, then handed to delivery.
//!
//! The answer waits for the commit: once RedBrick hears 200 it will not send the event
//! again, so the messages must already be durable by then. Which messages an event makes
//! is `route`'s decision, and sending them is the delivery workers'. Each event is
//! rendered with what the task memory held just before it, and the memory learns the
//! fresh events in the same transaction that stores their messages.

use rusqlite::Connection;
use warp::http::StatusCode;

use super::{ApiError, Summary};
use crate::config::Config;
use crate::deliver::Deliverer;
use crate::event::{Batch, Event};
use crate::metrics::Metrics;
use crate::outbox::{Acceptance, IncomingEvent, NewDelivery, StoreError};
use crate::route::{route, Held};
use crate::tasks::{self, Recall, Recent, Task};
use crate::{digests, reminders, rollup};

/// Renders the batch's messages, commits them to the outbox, then wakes their workers.
/// Returns only once the commit is durable: from then on the relay alone answers for them.
pub async fn dispatch(
    config: &Config,
    deliverer: &Deliverer,
    recent: &Recent,
    batch: Batch,
) -> Result<Summary, ApiError> {
    let mut summary = Summary {
        received: batch.events.len() + batch.skipped.len(),
        skipped: batch.skipped.len(),
        ..Summary::default()
    };
    log_oddities(&batch, summary.received);
    let metrics = deliverer.metrics();
    metrics.events_skipped(batch.skipped.len());

    let recalls = tasks::recall(deliverer.outbox(), recent, &batch.events)
        .await
        .map_err(store_unavailable)?;
    let mut outlines = Vec::with_capacity(batch.events.len());
    let mut incoming = Vec::with_capacity(batch.events.len());
    let mut held = Vec::with_capacity(batch.events.len());
    for (event, recall) in batch.events.iter().zip(&recalls) {
        let (outline, delivering, holding) = prepare(config, metrics, event, recall);
        outlines.push(outline);
        incoming.push(delivering);
        held.push(holding);
    }
    let events = batch.events.clone();
    let watching = config.reminders.clone();
    let memory = recent.clone();
    let remember = move |conn: &Connection, acceptance: &[Acceptance], now| {
        let changes = tasks::record(conn, &memory, &events, acceptance, now)?;
        digests::note(conn, &events, &changes, now)?;
        reminders::schedule(conn, &watching, &events, &changes)?;
        rollup::hold(conn, &held, acceptance, now)?;
        Ok(changes.into_iter().flatten().map(|c| c.after).collect())
    };
    let learner = recent.clone();
    let learn = move |written| learner.learn(written);
    let acceptance = commit(deliverer, incoming, remember, learn).await?;
    for (outline, accepted) in outlines.into_iter().zip(acceptance) {
        match accepted {
            Acceptance::Fresh => release(deliverer, outline, &mut summary),
            Acceptance::Duplicate => {
                summary.duplicates += 1;
                metrics.event_duplicate();
                tracing::info!(event_id = outline.event_id, "repeated event ignored");
            }
        }
    }
    tracing::info!(
        received = summary.received,
        matched = summary.matched,
        skipped = summary.skipped,
        duplicates = summary.duplicates,
        deliveries = summary.deliveries,
        "webhook accepted"
    );
    Ok(summary)
}

/// Stores the events' deliveries in one commit, with what `also` writes given each
/// event's fate and the time, and hands the tasks it wrote to `learn` once durable; a
/// store that fails asks RedBrick to send the webhook again.
async fn commit<F, L>(
    deliverer: &Deliverer,
    incoming: Vec<IncomingEvent>,
    also: F,
    learn: L,
) -> Result<Vec<Acceptance>, ApiError>
where
    F: FnOnce(&Connection, &[Acceptance], i64) -> rusqlite::Result<Vec<Task>> + Send + 'static,
    L: FnOnce(Vec<Task>) + Send + 'static,
{
    // Stamped with the workers' clock, which they compare the stamps with: the system
    // clock may have been set since they started.
    let now = deliverer.clock().now_ms();
    let outbox = deliverer.outbox();
    let remember = move |conn: &Connection, acceptance: &[Acceptance]| also(conn, acceptance, now);
    let accepted = outbox.accept_with(incoming, now, remember, learn);
    accepted.await.map_err(store_unavailable)
}

fn store_unavailable(err: StoreError) -> ApiError {
    tracing::error!(error = %err, "cannot use the store; asking the sender to retry");
    let message = "the relay cannot store deliveries right now; retry later";
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        message,
    )
}

/// Counts a fresh event's rules and deliveries, and wakes the workers that now have work.
fn release(deliverer: &Deliverer, outline: Outline<'_>, summary: &mut Summary) {
    summary.matched += usize::from(!outline.rules.is_empty());
    summary.deliveries += outline.destinations.len();
    summary.held += outline.held;
    let metrics = deliverer.metrics();
    for rule in &outline.rules {
        metrics.rule_matched(rule);
    }
    for destination in outline.destinations {
        deliverer.wake(&destination);
    }
}

/// Routes one event: its deliveries to commit, and what to count once committed.
fn prepare<'a>(
    config: &Config,
    metrics: &Metrics,
    event: &'a Event,
    recall: &Recall,
) -> (Outline<'a>, IncomingEvent, Vec<Held>) {
    metrics.event_received(event.kind);
    let routed = route(config, event, recall);
    if !routed.matched {
        tracing::debug!(event = %event.kind, stage = ?clip(event.stage.as_deref().unwrap_or("")),
            project = ?clip(&event.project_id), "no rule matched");
    }
    for failure in &routed.failures {
        tracing::error!(rule = %failure.rule, destination = %failure.destination,
            error = %failure.failure, "message not rendered");
        metrics.render_failed(&failure.rule, &failure.destination);
    }
    let outline = Outline {
        event_id: event.id.as_str(),
        rules: routed.rules,
        held: routed.held.len(),
        destinations: routed
            .messages
            .iter()
            .map(|m| m.destination.clone())
            .collect(),
    };
    let incoming = IncomingEvent {
        event_id: event.id.clone(),
        deliveries: routed.messages.into_iter().map(NewDelivery::from).collect(),
    };
    (outline, incoming, routed.held)
}

/// What one event came to, kept until the commit says whether it was fresh.
struct Outline<'a> {
    event_id: &'a str,
    rules: Vec<String>,
    held: usize,
    destinations: Vec<String>,
}

fn log_oddities(batch: &Batch, received: usize) {
    if let Some(count) = &batch.count_mismatch {
        tracing::warn!(
            events = %count,
            payload = received,
            "envelope `events` disagrees with the payload length; processing the payload"
        );
    }
    for skipped in &batch.skipped {
        tracing::warn!(index = skipped.index, event = ?clip(&skipped.event),
            "unknown event type skipped");
    }
    for index in &batch.unreadable_timestamps {
        tracing::warn!(index, "unreadable timestamp; using the time of receipt");
    }
    for id in &batch.future_timestamps {
        tracing::warn!(event_id = ?clip(id),
            "timestamp is in the future; using the time of receipt");
    }
}

/// Text from a request, cut short for a log line. It is logged with `?`, quoted and
/// escaped, so a line break in it cannot start a forged line of its own.
fn clip(text: &str) -> &str {
    const MAX_BYTES: usize = 100;
    if text.len() <= MAX_BYTES {
        return text;
    }
    let mut end = MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
