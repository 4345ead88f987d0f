//! The running relay, assembled: outbox, delivery workers and the HTTP server.
//!
//! [`run`] takes a bound listener, the config and a shutdown future, which is all a test
//! needs to start a real relay on 127.0.0.1:0. [`Relay`] splits the same life in two
//! steps for `serve`, which must tell systemd it is ready between them. It owns the order
//! of starting and stopping: the store opens before the first request is taken, and on
//! shutdown the server stops taking requests before the workers are told to finish.
//! Beside them run the pruning of old event ids and tasks, and the sending of closed
//! roll-ups, due reminders and digests. Signals, reloads and the admin listener are
//! `serve`'s business.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::deliver::Deliverer;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, StoreError};
use crate::server::{self, AppState};
use crate::{digests, reminders, rollup, tasks};

/// How often seen event ids older than the dedup window, and tasks past their memory,
/// are forgotten.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Serves `listener` with the config in `config` (which a reload may replace) until
/// `shutdown` resolves; then lets sends in flight finish within the configured grace.
pub async fn run(
    listener: TcpListener,
    config: watch::Receiver<Arc<Config>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let relay = Relay::start(config, Metrics::new()).await?;
    relay.serve(listener, shutdown).await;
    Ok(())
}

/// A relay whose store is open and whose workers run, before it takes requests.
pub struct Relay {
    config: watch::Receiver<Arc<Config>>,
    deliverer: Deliverer,
    /// The tasks written last, shared by the server and the pruning.
    recent: tasks::Recent,
    /// Pruning, roll-ups, reminders and digests: stopped with the server, since they only write
    /// to the store.
    background: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Opens the outbox and starts the delivery workers, counting into `metrics`.
    pub async fn start(
        config: watch::Receiver<Arc<Config>>,
        metrics: Metrics,
    ) -> Result<Relay, StoreError> {
        let store_path = config.borrow().delivery.store_path.clone();
        let outbox = Outbox::open(&store_path)?;
        let deliverer = Deliverer::start(outbox, config.clone(), metrics).await;
        let recent = tasks::Recent::new();
        let pruner = tokio::spawn(prune_forever(
            deliverer.clone(),
            recent.clone(),
            config.clone(),
        ));
        let waker = deliverer.clone();
        let rollups = tokio::spawn(rollup::run(
            deliverer.outbox().clone(),
            config.clone(),
            deliverer.clock(),
            move |destination| waker.wake(destination),
        ));
        let waker = deliverer.clone();
        let reminders = tokio::spawn(reminders::run(
            deliverer.outbox().clone(),
            config.clone(),
            deliverer.clock(),
            move |destination| waker.wake(destination),
        ));
        let waker = deliverer.clone();
        let digests = tokio::spawn(digests::run(
            deliverer.outbox().clone(),
            config.clone(),
            deliverer.clock(),
            move |destination| waker.wake(destination),
        ));
        Ok(Relay {
            config,
            deliverer,
            recent,
            background: vec![pruner, rollups, reminders, digests],
        })
    }

    /// The outbox, for health checks and queue figures.
    pub fn outbox(&self) -> &Outbox {
        self.deliverer.outbox()
    }

    /// Serves `listener` until `shutdown` resolves; then lets sends in flight finish
    /// within the configured grace.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let state = AppState::new(self.config.clone(), self.deliverer.clone(), self.recent);
        server::run(listener, state, shutdown).await;

        self.background.iter().for_each(JoinHandle::abort);
        let grace = self.config.borrow().delivery.shutdown_grace;
        self.deliverer.shutdown(grace).await;
    }
}

async fn prune_forever(
    deliverer: Deliverer,
    recent: tasks::Recent,
    config: watch::Receiver<Arc<Config>>,
) {
    loop {
        let window = config.borrow().delivery.dedup_window;
        let now = deliverer.clock().now_ms();
        match deliverer
            .outbox()
            .prune_seen(window.as_millis() as i64, now)
            .await
        {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "forgot event ids older than the dedup window"),
            Err(err) => tracing::error!(error = %err, "cannot prune seen event ids"),
        }
        let silence = config.borrow().tasks.forget_after;
        match tasks::forget(deliverer.outbox(), &recent, silence, now).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "forgot deleted and silent tasks"),
            Err(err) => tracing::error!(error = %err, "cannot prune the task memory"),
        }
        match digests::forget(deliverer.outbox(), now).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "forgot task changes no digest counts"),
            Err(err) => tracing::error!(error = %err, "cannot prune the task changes"),
        }
        tokio::time::sleep(PRUNE_INTERVAL).await;
    }
}
