//! The admin listener: `GET /healthz`, `GET /readyz` and `GET /metrics` on their own
//! address, loopback by default, so that the public webhook port exposes nothing else.
//!
//! It reads the relay (the outbox, the config in force, the metrics) and changes
//! nothing; the relay never calls it. There is no authentication: its address is the
//! protection, which is why `[admin] listen` warns when it leaves loopback.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::config::Config;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::outbox::Outbox;
use crate::server::ApiError;

/// A store that has not answered by then counts as not ready: a probe must not hang.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    /// The outbox: probed by `/readyz`, counted by `/metrics`.
    pub outbox: Outbox,
    /// The config in force: its destinations are listed at zero in `/metrics`.
    pub config: watch::Receiver<Arc<Config>>,
    /// What `/metrics` shows.
    pub metrics: Metrics,
    /// One scrape at a time: each replaces the queue gauges before encoding them.
    pub scrape: Arc<tokio::sync::Mutex<()>>,
}

impl AdminState {
    /// State reading `outbox`, `config` and `metrics`.
    pub fn new(outbox: Outbox, config: watch::Receiver<Arc<Config>>, metrics: Metrics) -> Self {
        AdminState {
            outbox,
            config,
            metrics,
            scrape: Arc::default(),
        }
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// The admin surface as one filter; anything else is a JSON 404.
pub fn routes(
    state: AdminState,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&json!({"status": "alive"})).into_response());
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state.clone())
        .then(ready);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state)
        .then(scrape);
    let other = warp::any().map(|| {
        let message = "the admin listener serves GET /healthz, /readyz and /metrics";
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.to_owned(),
        }
        .into_response()
    });
    healthz
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .or(other)
        .unify()
}

/// Ready when the store takes a write: the config is loaded by the time this listener
/// exists, and a refused reload leaves a working config in force, so it is reported but
/// does not make the relay unready.
async fn ready(state: AdminState) -> Response {
    let probe = tokio::time::timeout(STORE_TIMEOUT, state.outbox.ping()).await;
    let store = match probe {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "the outbox did not answer within {}s",
            STORE_TIMEOUT.as_secs()
        )),
    };
    match store {
        Ok(()) => {
            let config = state.config.borrow().path.display().to_string();
            let body = json!({"status": "ready", "store": "ok", "config": config});
            warp::reply::json(&body).into_response()
        }
        Err(message) => {
            tracing::warn!(error = %message, "not ready: the outbox cannot be written");
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "store_unavailable",
                message,
            }
            .into_response()
        }
    }
}

/// Refreshes the queue gauges from the outbox, then encodes everything. A store that
/// does not answer leaves the previous queue figures and the rest still shows.
async fn scrape(state: AdminState) -> Response {
    let _one_at_a_time = state.scrape.lock().await;
    let counts = tokio::time::timeout(STORE_TIMEOUT, state.outbox.counts()).await;
    match counts {
        Ok(Ok(counts)) => {
            let names: Vec<String> = state.config.borrow().targets.keys().cloned().collect();
            state.metrics.set_queue(&names, &counts);
        }
        Ok(Err(err)) => tracing::warn!(error = %err, "queue figures not refreshed"),
        Err(_) => tracing::warn!("queue figures not refreshed: the outbox did not answer"),
    }
    let text = state.metrics.encode();
    warp::reply::with_header(text, "content-type", CONTENT_TYPE).into_response()
}
