//! One destination's worker: send the oldest pending delivery, record what happened, repeat.
//!
//! Strictly in acceptance order: while the head of the queue waits for a retry, the
//! messages behind it wait too, because chat messages out of order read wrongly. The
//! worker reads a few deliveries ahead, but records each success before the next send:
//! after a crash, only the message that was on the wire can be sent again. How long to
//! wait is `policy`'s arithmetic, and what an answer means is the destination's. During
//! the destination's quiet hours nothing is sent; when they end, the messages they held
//! are merged into one (see `quiet`) before the head is sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::policy::{Bucket, Clock, RetryPolicy};
use crate::config::{Config, Target};
use crate::destination::Outcome;
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::outbox::{Outbox, Pending};
use crate::quiet::Quiet;

/// How often an idle worker looks at the store anyway, to notice deliveries replayed by
/// another process (the `replay` command).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How many pending deliveries a worker reads at once.
const READ_AHEAD: usize = 64;

/// How long to wait before looking again when the store fails or the destination is gone.
const TROUBLE_PAUSE: Duration = Duration::from_secs(5);

/// One destination's sender; [`Deliverer::wake`](super::Deliverer::wake) builds it.
pub(super) struct Worker {
    /// The destination's name: the key in the config and in the outbox.
    pub name: String,
    /// Where its deliveries wait and their outcomes are recorded.
    pub outbox: Outbox,
    /// The config in force, read again before each send.
    pub config: watch::Receiver<Arc<Config>>,
    /// The shared HTTP client.
    pub client: reqwest::Client,
    /// Notified when new deliveries are committed for this destination.
    pub wake: Arc<Notify>,
    /// Becomes `true` when the relay shuts down.
    pub stop: watch::Receiver<bool>,
    /// The clock deliveries were stamped with.
    pub clock: Clock,
    /// Backoff and maximum age, as configured when the worker started.
    pub policy: RetryPolicy,
    /// Where attempts are counted.
    pub metrics: Metrics,
}

impl Worker {
    /// Sends the destination's deliveries, head first, until told to stop.
    pub async fn run(mut self) {
        let mut queue: VecDeque<Pending> = VecDeque::new();
        let mut bucket: Option<Bucket> = None;
        let mut missing_reported = false;
        while !*self.stop.borrow() {
            let now = self.clock.now_ms();
            let Some(head) = queue.front() else {
                self.refill(&mut queue).await;
                continue;
            };
            if head.next_attempt_at > now {
                let wait = Duration::from_millis((head.next_attempt_at - now) as u64);
                self.pause(wait).await;
                queue.clear();
                continue;
            }
            let delivery = queue.pop_front().expect("the queue's head was just read");
            if now - delivery.created_at > self.policy.max_age.as_millis() as i64 {
                self.expire(&delivery, now).await;
                continue;
            }

            let config = self.config.borrow().clone();
            let Some(target) = config.targets.get(&self.name) else {
                self.report_missing(&mut missing_reported);
                self.pause(TROUBLE_PAUSE).await;
                queue.clear();
                continue;
            };
            missing_reported = false;
            if let Some(quiet) = &target.quiet {
                if let Some(end) = quiet.ends_at(now) {
                    // Held in the outbox, not dropped: look again at the end, or sooner
                    // if woken, since a reload may have changed the quiet hours.
                    self.pause(Duration::from_millis((end - now) as u64)).await;
                    queue.clear();
                    continue;
                }
                let pending: Vec<Pending> = std::iter::once(delivery.clone())
                    .chain(queue.iter().cloned())
                    .collect();
                if self.release(target, quiet, &pending, now).await {
                    queue.clear();
                    continue;
                }
            }
            if !self.attempt(target, &delivery, &mut bucket).await {
                // A failure changes what comes next: it is recorded, so read the queue again.
                queue.clear();
            }
        }
    }

    /// Reads the next deliveries in order; waits when there are none or the store fails.
    async fn refill(&mut self, queue: &mut VecDeque<Pending>) {
        match self.outbox.pending_after(&self.name, 0, READ_AHEAD).await {
            Ok(rows) if rows.is_empty() => self.pause(IDLE_POLL).await,
            Ok(rows) => queue.extend(rows),
            Err(err) => {
                tracing::error!(destination = %self.name, error = %err,
                    "cannot read the outbox");
                self.pause(TROUBLE_PAUSE).await;
            }
        }
    }

    /// Merges the messages held by the quiet time that ended last into the first of them,
    /// as many as fit one message; whether it did (the queue must then be read again).
    async fn release(&self, target: &Target, quiet: &Quiet, pending: &[Pending], now: i64) -> bool {
        let held = crate::quiet::held(quiet, pending, now);
        for count in (2..=held.len()).rev() {
            let bodies: Vec<&[u8]> = held[..count].iter().map(|p| p.body.as_slice()).collect();
            let Some(body) = target.destination.merge(&bodies) else {
                continue;
            };
            let merged = held[1..count].iter().map(|p| p.id).collect();
            return match self.outbox.merge(held[0].id, body, merged, now).await {
                Ok(()) => {
                    tracing::info!(destination = %self.name, count,
                        "messages held during quiet hours merged into one");
                    true
                }
                Err(err) => {
                    tracing::error!(destination = %self.name, error = %err,
                        "cannot merge messages held during quiet hours; sending them apart");
                    false
                }
            };
        }
        false
    }

    /// Warns once when the destination leaves the config, not at every look.
    fn report_missing(&self, reported: &mut bool) {
        if !std::mem::replace(reported, true) {
            tracing::warn!(destination = %self.name,
                "destination not in the config; its messages stay queued until it \
                 returns or they are replayed");
        }
    }

    /// Waits for the rate limit, makes one attempt and records its outcome; whether the
    /// platform took the message.
    async fn attempt(
        &self,
        target: &Target,
        delivery: &Pending,
        bucket: &mut Option<Bucket>,
    ) -> bool {
        let limit = target.rate_limit;
        let bucket = bucket.get_or_insert_with(|| Bucket::new(limit, Instant::now()));
        bucket.set_limit(limit);
        let wait = bucket.take(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }

        let started = Instant::now();
        let outcome = target.destination.send(&self.client, &delivery.body).await;
        let took = started.elapsed();
        if outcome == Outcome::Sent {
            self.sent(delivery, took).await;
            return true;
        }
        let host = target.destination.host();
        self.failed(delivery, outcome, took, &host).await;
        false
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
                    id = delivery.id, attempt, error = %reason,
                    retry_in_ms = wait.as_millis() as u64, "delivery failed, retrying");
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
            tracing::error!(destination = %self.name, error = %err,
                "cannot record a delivery's outcome");
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
