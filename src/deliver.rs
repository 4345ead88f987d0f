//! Delivery: one worker per destination, sending that destination's messages in order.
//!
//! The server hands messages over through [`Deliverer::submit`] and answers RedBrick at
//! once; each destination's worker sends them one at a time, so a slow or failing
//! destination never holds up another. Which destination URL and timeout to use is read
//! from the current config at send time, so a reload applies to queued messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::destination::Outcome;
use crate::route::Message;

/// A message waiting for its destination's worker.
#[derive(Debug)]
struct Job {
    rule: String,
    body: Vec<u8>,
}

/// Hands messages to per-destination workers, starting a worker on first use.
#[derive(Clone)]
pub struct Deliverer {
    workers: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>>,
    client: reqwest::Client,
    config: watch::Receiver<Arc<Config>>,
}

impl Deliverer {
    /// A deliverer that reads destinations from `config` as it changes.
    pub fn new(config: watch::Receiver<Arc<Config>>) -> Deliverer {
        Deliverer {
            workers: Arc::default(),
            client: http_client(),
            config,
        }
    }

    /// Queues `message` behind the earlier messages of its destination.
    pub fn submit(&self, message: Message) {
        let job = Job {
            rule: message.rule,
            body: message.body,
        };
        let mut workers = self
            .workers
            .lock()
            .expect("no worker map user panics while holding it");
        let sender = workers
            .entry(message.destination.clone())
            .or_insert_with(|| self.spawn_worker(message.destination));
        if sender.send(job).is_err() {
            tracing::error!("delivery worker stopped; message dropped");
        }
    }

    fn spawn_worker(&self, destination: String) -> mpsc::UnboundedSender<Job> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let worker = Worker {
            destination,
            client: self.client.clone(),
            config: self.config.clone(),
        };
        tokio::spawn(worker.run(receiver));
        sender
    }
}

/// The HTTP client shared by all destinations: pooled connections, no redirects (a
/// redirect would be followed with the message to a place nobody configured).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("redbrick-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client's fixed settings are valid")
}

struct Worker {
    destination: String,
    client: reqwest::Client,
    config: watch::Receiver<Arc<Config>>,
}

impl Worker {
    async fn run(self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = jobs.recv().await {
            self.deliver(job).await;
        }
    }

    // TODO(#3): failed messages are logged and dropped; the durable outbox retries them.
    async fn deliver(&self, job: Job) {
        let config = self.config.borrow().clone();
        let Some(target) = config.targets.get(&self.destination) else {
            tracing::error!(destination = %self.destination, rule = %job.rule,
                "destination no longer configured; message dropped");
            return;
        };
        let destination = &target.destination;
        match destination.send(&self.client, &job.body).await {
            Outcome::Sent => tracing::debug!(destination = %destination.name, rule = %job.rule,
                host = %destination.host(), "message delivered"),
            Outcome::Retry { reason, .. } | Outcome::Permanent { reason } => {
                tracing::error!(destination = %destination.name, rule = %job.rule,
                    host = %destination.host(), error = %reason, "message not delivered")
            }
        }
    }
}
