//! A valid webhook's events: rendered, committed to the outbox, then handed to delivery.
//!
//! The answer waits for the commit: once RedBrick hears 200 it will not send the event
//! again, so the messages must already be durable by then.

use warp::http::StatusCode;

use super::{ApiError, Summary};
use crate::config::Config;
use crate::deliver::Deliverer;
use crate::event::Batch;
use crate::outbox::{Acceptance, IncomingEvent, NewDelivery};
use crate::route::{route, Message};

/// Renders the batch's messages, commits them to the outbox, then wakes their workers.
/// Returns only once the commit is durable: from then on the relay alone answers for them.
pub async fn dispatch(
    config: &Config,
    deliverer: &Deliverer,
    batch: Batch,
) -> Result<Summary, ApiError> {
    let mut summary = Summary {
        received: batch.events.len() + batch.skipped.len(),
        skipped: batch.skipped.len(),
        ..Summary::default()
    };
    log_oddities(&batch, summary.received);

    let mut incoming = Vec::with_capacity(batch.events.len());
    let mut outlines = Vec::with_capacity(batch.events.len());
    for event in &batch.events {
        let routed = route(config, event);
        if !routed.matched {
            tracing::debug!(event = %event.kind, stage = event.stage.as_deref().unwrap_or(""),
                project = %event.project_id, "no rule matched");
        }
        for failure in &routed.failures {
            tracing::error!(rule = %failure.rule, destination = %failure.destination,
                error = %failure.failure, "message not rendered");
        }
        let destinations: Vec<String> = routed
            .messages
            .iter()
            .map(|m| m.destination.clone())
            .collect();
        outlines.push((event.id.as_str(), routed.matched, destinations));
        incoming.push(IncomingEvent {
            event_id: event.id.clone(),
            deliveries: routed.messages.into_iter().map(to_delivery).collect(),
        });
    }

    // Stamped with the workers' clock, which they compare the stamps with: the system
    // clock may have been set since they started.
    let now = deliverer.clock().now_ms();
    let accepted = deliverer.outbox().accept_at(incoming, now).await;
    let acceptance = accepted.map_err(|err| {
        tracing::error!(error = %err, "cannot commit deliveries; asking the sender to retry");
        let message = "the relay cannot store deliveries right now; retry later";
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    })?;
    for ((event_id, matched, destinations), accepted) in outlines.into_iter().zip(acceptance) {
        if accepted == Acceptance::Duplicate {
            summary.duplicates += 1;
            tracing::info!(event_id, "repeated event ignored");
            continue;
        }
        summary.matched += usize::from(matched);
        summary.deliveries += destinations.len();
        for destination in destinations {
            deliverer.wake(&destination);
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

fn to_delivery(message: Message) -> NewDelivery {
    NewDelivery {
        rule: message.rule,
        destination: message.destination,
        body: message.body,
    }
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
        tracing::warn!(index = skipped.index, event = %skipped.event, "unknown event type skipped");
    }
    for index in &batch.unreadable_timestamps {
        tracing::warn!(index, "unreadable timestamp; using the time of receipt");
    }
}
