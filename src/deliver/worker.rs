//! One destination's worker: send the oldest pending delivery, record what happened, repeat.
//!
//! Strictly in acceptance order: while the head of the queue waits for a retry, the
//! messages behind it wait too, because chat messages out of order read wrongly. The
//! worker reads a few deliveries ahead, but records each success before the next send:
//! after a crash, only the message that was on the wire can be sent again. How long to
//! wait is `policy`'s arithmetic, and what an answer means is the destination's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::policy::{Bucket, Clock, RetryPolicy};
use crate::config::Config;
use crate::destination::Outcome;
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::outbox::{Outbox, Pending};

/// How often an idle worker looks at the store anyway, to notice deliveries replayed by
/// another process (the `replay` command).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How many pending deliveries a worker reads at once.
const READ_AHEAD: usize = 64;

/// How long to wait before looking again when the store fails or the destination is gone.
const TROUBLE_PAUSE: Duration = Duration::from_secs(5);

pub(super) struct Worker {
    pub name: String,
    pub outbox: Outbox,
    pub config: watch::Receiver<Arc<Config>>,
    pub client: reqwest::Client,
    pub wake: Arc<Notify>,
    pub stop: watch::Receiver<bool>,
    pub clock: Clock,
    pub policy: RetryPolicy,
    pub metrics: Metrics,
}

impl Worker {
    pub async fn run(mut self) {
        let mut bucket: Option<Bucket> = None;
        let mut missing_reported = false;
        let mut queue: VecDeque<Pending> = VecDeque::new();
        while !*self.stop.borrow() {
            if queue.is_empty() {
                match self.outbox.pending_after(&self.name, 0, READ_AHEAD).await {
                    Ok(rows) if rows.is_empty() => self.pause(IDLE_POLL).await,
                    Ok(rows) => queue.extend(rows),
                    Err(err) => {
                        tracing::error!(destination = %self.name, error = %err, "cannot read the outbox");
                        self.pause(TROUBLE_PAUSE).await;
                    }
                }
                continue;
            }
            let delivery = queue.front().expect("the queue is not empty here");

            let now = self.clock.now_ms();
            if delivery.next_attempt_at > now {
                self.pause(Duration::from_millis(
                    (delivery.next_attempt_at - now) as u64,
                ))
                .await;
                queue.clear();
                continue;
            }
            if now - delivery.created_at > self.policy.max_age.as_millis() as i64 {
                let delivery = queue.pop_front().expect("the queue is not empty here");
                self.expire(&delivery, now).await;
                continue;
            }

            let config = self.config.borrow().clone();
            let Some(target) = config.targets.get(&self.name) else {
                if !std::mem::replace(&mut missing_reported, true) {
                    tracing::warn!(destination = %self.name,
                        "destination not in the config; its messages stay queued until it \
                         returns or they are replayed");
                }
                self.pause(TROUBLE_PAUSE).await;
                queue.clear();
                continue;
            };
            missing_reported = false;

            let limit = target.rate_limit;
            let bucket = bucket.get_or_insert_with(|| Bucket::new(limit, Instant::now()));
            bucket.set_limit(limit);
            let wait = bucket.take(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }

            let delivery = queue.pop_front().expect("the queue is not empty here");
            let started = Instant::now();
            let outcome = target.destination.send(&self.client, &delivery.body).await;
            let took = started.elapsed();
            if outcome == Outcome::Sent {
                self.sent(&delivery, took).await;
            } else {
                // A failure changes what comes next: record it, then read the queue again.
                self.failed(&delivery, outcome, took, &target.destination.host())
                    .await;
                queue.clear();
            }
        }
    }

    /// Sleeps for `duration`, or less if woken by new work or a stop.
    async fn pause(&mut self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.wake.notified() => {}
            _ = self.stop.changed() => {}
        }
    }

    async fn expire(&self, delivery: &Pending, now: i64) {
        let error = format!(
            "gave up after {} attempts over the maximum age",
            delivery.attempts
        );
        tracing::error!(destination = %self.name, rule = %delivery.rule, id = delivery.id,
            attempts = delivery.attempts, "delivery too old; moved to dead letters");
        self.metrics
            .delivery(&self.name, DeliveryOutcome::Dead, None);
        if let Err(err) = self.outbox.expire(delivery.id, &error, now).await {
            tracing::error!(destination = %self.name, error = %err, "cannot record a dead letter");
        }
    }

    /// Records a success, durably, before the next send: were the next message sent
    /// first, a crash could leave both unrecorded and send both again. Marks of
    /// different destinations still share commits.
    async fn sent(&self, delivery: &Pending, took: Duration) {
        tracing::debug!(destination = %self.name, rule = %delivery.rule, id = delivery.id,
            attempt = delivery.attempts + 1, took_ms = took.as_millis() as u64, "delivered");
        self.count(&Outcome::Sent, took);
        let id = delivery.id;
        if let Err(err) = self.outbox.mark_sent(id, self.clock.now_ms()).await {
            tracing::error!(destination = %self.name, id, error = %err,
                "cannot record a delivery as sent");
        }
    }

    async fn failed(&self, delivery: &Pending, outcome: Outcome, took: Duration, host: &str) {
        let now = self.clock.now_ms();
        let attempt = delivery.attempts + 1;
        self.count(&outcome, took);
        let result = match outcome {
            // Successes go through `sent`.
            Outcome::Sent => return,
            Outcome::Retry { reason, after } => {
                let wait = self.policy.next_wait(attempt, after, fastrand::f64());
                tracing::warn!(destination = %self.name, %host, rule = %delivery.rule,
                    id = delivery.id, attempt, error = %reason, retry_in_ms = wait.as_millis() as u64,
                    "delivery failed, retrying");
                let next = now + wait.as_millis() as i64;
                self.outbox
                    .mark_retry(delivery.id, next, &reason, now)
                    .await
            }
            Outcome::Permanent { reason } => {
                tracing::error!(destination = %self.name, %host, rule = %delivery.rule,
                    id = delivery.id, attempt, error = %reason,
                    "delivery refused for good; moved to dead letters");
                self.outbox.mark_dead(delivery.id, &reason, now).await
            }
        };
        if let Err(err) = result {
            tracing::error!(destination = %self.name, error = %err, "cannot record a delivery's outcome");
        }
    }

    fn count(&self, outcome: &Outcome, took: Duration) {
        let counted = match outcome {
            Outcome::Sent => DeliveryOutcome::Sent,
            Outcome::Retry { .. } => DeliveryOutcome::Retry,
            Outcome::Permanent { .. } => DeliveryOutcome::Dead,
        };
        self.metrics.delivery(&self.name, counted, Some(took));
    }
}
