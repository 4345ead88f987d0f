//! Delivery from the outbox: one worker per destination, with rate limits and retries.
//!
//! The server commits deliveries to the outbox and calls [`Deliverer::wake`]; each
//! destination's worker then sends its deliveries one at a time in acceptance order,
//! waits out rate limits and backoffs, and records every outcome in the outbox. A slow or
//! failing destination holds up only its own worker. The URL and timeout are read from
//! the config in force at send time, so a reload (a rotated secret) applies to queued
//! messages too. Nothing here renders (the outbox holds finished bodies) or reads a
//! platform's answer: what an answer means is the `destination`'s.

mod policy;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use policy::{Bucket, Clock, RateLimit, RetryPolicy};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use worker::Worker;

/// How often to look for destinations with pending deliveries but no worker (replayed or
/// left over from an earlier config).
const SCAN_INTERVAL: Duration = Duration::from_secs(5);

struct Handle {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// Starts and wakes the per-destination workers.
#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    outbox: Outbox,
    config: watch::Receiver<Arc<Config>>,
    client: reqwest::Client,
    clock: Clock,
    metrics: Metrics,
    workers: Mutex<HashMap<String, Handle>>,
    stop: watch::Sender<bool>,
}

impl Deliverer {
    /// Starts a worker for every configured destination and every destination with
    /// deliveries left in the outbox (after a restart or a config change), counting
    /// outcomes in `metrics`.
    pub async fn start(
        outbox: Outbox,
        config: watch::Receiver<Arc<Config>>,
        metrics: Metrics,
    ) -> Deliverer {
        let deliverer = Deliverer {
            inner: Arc::new(Inner {
                outbox,
                config,
                client: http_client(),
                clock: Clock::new(),
                metrics,
                workers: Mutex::default(),
                stop: watch::channel(false).0,
            }),
        };
        let names: Vec<String> = deliverer
            .inner
            .config
            .borrow()
            .targets
            .keys()
            .cloned()
            .collect();
        for name in names {
            deliverer.wake(&name);
        }
        deliverer.scan().await;
        tokio::spawn(deliverer.clone().scan_forever());
        deliverer
    }

    /// Tells the destination's worker there is new work, starting it if needed.
    pub fn wake(&self, destination: &str) {
        let mut workers = self
            .inner
            .workers
            .lock()
            .expect("the worker map is never poisoned: no code panics holding it");
        if let Some(handle) = workers.get(destination) {
            handle.wake.notify_one();
            return;
        }
        let wake = Arc::new(Notify::new());
        let worker = Worker {
            name: destination.to_owned(),
            outbox: self.inner.outbox.clone(),
            config: self.inner.config.clone(),
            client: self.inner.client.clone(),
            wake: wake.clone(),
            stop: self.inner.stop.subscribe(),
            clock: self.inner.clock,
            policy: self.inner.config.borrow().retry,
            metrics: self.inner.metrics.clone(),
        };
        let task = tokio::spawn(worker.run());
        workers.insert(destination.to_owned(), Handle { wake, task });
    }

    /// The clock deliveries are stamped with.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Where deliveries and everything before them are counted.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The outbox this deliverer reads.
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    async fn scan(&self) {
        match self.inner.outbox.destinations_with_pending().await {
            Ok(names) => names.iter().for_each(|name| self.wake(name)),
            Err(err) => tracing::error!(error = %err, "cannot read the outbox"),
        }
    }

    async fn scan_forever(self) {
        let mut stop = self.inner.stop.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SCAN_INTERVAL) => self.scan().await,
                _ = stop.changed() => return,
            }
        }
    }

    /// Stops the workers: each finishes the send it is making, if any, within `grace`;
    /// everything not yet sent stays in the outbox for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stop.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = {
            let mut workers = self
                .inner
                .workers
                .lock()
                .expect("the worker map is never poisoned: no code panics holding it");
            workers.drain().map(|(_, handle)| handle.task).collect()
        };
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "sends still in flight at the shutdown deadline; they will be retried on start"
            );
        }
    }
}

/// The HTTP client shared by all destinations: pooled connections, no redirects (a
/// redirect would be followed with the message to a place nobody configured).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("redbrick-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client's fixed settings are valid")
}
