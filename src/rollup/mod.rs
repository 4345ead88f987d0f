//! Roll-ups: a burst of matching events sent as one message per window.
//!
//! A bulk upload creates hundreds of tasks in seconds, and a channel cannot take hundreds
//! of messages. A rule with `group_window` does not send an event on its own: `route` holds
//! it, and [`hold`] stores it in the webhook's transaction, in the open roll-up of its rule
//! and `group_by` values (a roll-up opens with its first event and closes `group_window`
//! later). [`run`] looks for closed roll-ups every second, renders each into one message
//! per destination and stores those in the outbox, in the transaction that releases the
//! held events. Everything waiting is in the store, so a restart loses nothing.

mod store;

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

pub use store::{Closed, SCHEMA};

use crate::config::Config;
use crate::deliver::Clock;
use crate::outbox::{insert_delivery, Acceptance, NewDelivery, Outbox, StoreError};
use crate::route::{message, Held};
use crate::rules::TemplateChoice;

/// How many events the shipped template lists before "and N more".
pub const HEAD: usize = 10;

/// The most characters a text value of a rolled-up event keeps (links excepted, which
/// are bounded where they are made): a 50,000-character task name must not crowd the
/// other events, the count and "and N more" out of the platform's size limit.
pub const MAX_VALUE_CHARS: usize = 200;

/// The shipped roll-up template, used by a grouped rule with neither `template` nor `text`.
pub const DEFAULT_TEMPLATE: &str = "rollup";

/// How often closed roll-ups are looked for: the most a roll-up waits past its window.
const POLL: Duration = Duration::from_secs(1);

/// Holds the events of a batch that rules roll up, inside the transaction that accepts the
/// batch: `held[i]` are the roll-ups event `i` joins, and only fresh events are held.
pub fn hold(
    conn: &Connection,
    held: &[Vec<Held>],
    acceptance: &[Acceptance],
    now: i64,
) -> rusqlite::Result<()> {
    for (held, accepted) in held.iter().zip(acceptance) {
        if *accepted != Acceptance::Fresh {
            continue;
        }
        for one in held {
            let window = i64::try_from(one.window.as_millis()).unwrap_or(i64::MAX);
            let closes_at = now.saturating_add(window);
            store::hold(conn, &one.rule, &one.key, closes_at, &one.item)?;
        }
    }
    Ok(())
}

/// The template context of a roll-up: `count`, `events` (every event's own context),
/// `head` (the first [`HEAD`]) and `more` (how many `head` leaves out), plus each of
/// `event`, `project`, `project_id`, `project_url`, `org_id` and `stage` when all events
/// share it (null otherwise), and `rule` and `destination`.
pub fn context(items: &[Value], rule: &str, destination: &str) -> Value {
    let items: Vec<Value> = items.iter().map(shorten).collect();
    let items = items.as_slice();
    let mut context = Map::new();
    for key in [
        "event",
        "org_id",
        "project_id",
        "project",
        "project_url",
        "stage",
    ] {
        context.insert(key.to_owned(), shared(items, key));
    }
    let head: Vec<Value> = items.iter().take(HEAD).cloned().collect();
    let extra = json!({
        "count": items.len(),
        "events": items,
        "more": items.len().saturating_sub(HEAD),
        "head": head,
        "rule": rule,
        "destination": destination,
    });
    if let Value::Object(extra) = extra {
        context.extend(extra);
    }
    Value::Object(context)
}

/// `item` with each text value over [`MAX_VALUE_CHARS`] cut to that length, ending in `…`;
/// links are left whole, as a cut link leads nowhere.
fn shorten(item: &Value) -> Value {
    let Value::Object(fields) = item else {
        return item.clone();
    };
    let fields = fields
        .iter()
        .map(|(key, value)| match value {
            Value::String(text)
                if !key.ends_with("_url") && text.chars().count() > MAX_VALUE_CHARS =>
            {
                let kept: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
                (key.clone(), Value::String(format!("{kept}…")))
            }
            _ => (key.clone(), value.clone()),
        })
        .collect();
    Value::Object(fields)
}

/// `key`'s value when every item has the same, else null.
fn shared(items: &[Value], key: &str) -> Value {
    let mut values = items
        .iter()
        .map(|item| item.get(key).unwrap_or(&Value::Null));
    let first = values.next().cloned().unwrap_or(Value::Null);
    if values.all(|value| *value == first) {
        first
    } else {
        Value::Null
    }
}

/// Sends every closed roll-up: renders it with the config in force, stores its messages
/// and releases its events in one transaction. Returns the destinations given work.
pub async fn flush(outbox: &Outbox, config: &Config, now: i64) -> Result<Vec<String>, StoreError> {
    let closed = outbox
        .read(move |conn| Ok(store::closed(conn, now)?))
        .await?;
    let mut woken = Vec::new();
    for group in closed {
        let deliveries = render(config, &group);
        woken.extend(deliveries.iter().map(|d| d.destination.clone()));
        let origin = format!("rollup:{}:{}", group.rule, group.first_id);
        outbox
            .write(move |conn| {
                for delivery in &deliveries {
                    insert_delivery(conn, &origin, delivery, now)?;
                }
                store::release(conn, &group)
            })
            .await?;
    }
    Ok(woken)
}

/// One roll-up's messages; none if its rule is gone from the config or fails to render
/// (logged: the events cannot be sent any other way).
fn render(config: &Config, group: &Closed) -> Vec<NewDelivery> {
    let Some(rule) = config.rules.rules().iter().find(|r| r.name == group.rule) else {
        tracing::warn!(rule = %group.rule, events = group.items.len(),
            "rule of a roll-up is no longer in the config; its events are dropped");
        return Vec::new();
    };
    let template = match &rule.template {
        TemplateChoice::Default => DEFAULT_TEMPLATE,
        TemplateChoice::Named(name) => name,
    };
    let mut deliveries = Vec::new();
    for destination in &rule.to {
        let context = context(&group.items, &rule.name, destination);
        let link = context
            .get("project_url")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match message(
            config,
            &rule.name,
            destination,
            template,
            context,
            link.as_deref(),
        ) {
            Ok(Some(m)) => deliveries.push(m.into()),
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "roll-up not rendered"),
        }
    }
    deliveries
}

/// Sends closed roll-ups until dropped, calling `wake` with each destination given work.
pub async fn run(
    outbox: Outbox,
    config: watch::Receiver<Arc<Config>>,
    clock: Clock,
    wake: impl Fn(&str),
) {
    loop {
        let current = config.borrow().clone();
        match flush(&outbox, &current, clock.now_ms()).await {
            Ok(destinations) => destinations.iter().for_each(|d| wake(d)),
            Err(err) => tracing::error!(error = %err, "cannot send roll-ups; retrying"),
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests;
