//! The running relay, assembled: outbox, delivery workers and the HTTP server.
//!
//! [`run`] takes a bound listener, the config and a shutdown future, which is all a test
//! needs to start a real relay on 127.0.0.1:0. It owns the order of starting and stopping:
//! the store opens before the first request is taken, and on shutdown the server stops
//! taking requests before the workers are told to finish.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::deliver::Deliverer;
use crate::outbox::{Outbox, StoreError};
use crate::server::{self, AppState};

/// How often seen event ids older than the dedup window are forgotten.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Serves `listener` with the config in `config` (which a reload may replace) until
/// `shutdown` resolves; then lets sends in flight finish within the configured grace.
pub async fn run(
    listener: TcpListener,
    config: watch::Receiver<Arc<Config>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let current = config.borrow().clone();
    let outbox = Outbox::open(&current.delivery.store_path)?;
    let deliverer = Deliverer::start(outbox, config.clone()).await;
    let pruner = tokio::spawn(prune_forever(deliverer.clone(), config.clone()));

    let state = AppState::new(config.clone(), deliverer.clone());
    server::run(listener, state, shutdown).await;

    pruner.abort();
    let grace = config.borrow().delivery.shutdown_grace;
    deliverer.shutdown(grace).await;
    Ok(())
}

async fn prune_forever(deliverer: Deliverer, config: watch::Receiver<Arc<Config>>) {
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
        tokio::time::sleep(PRUNE_INTERVAL).await;
    }
}
