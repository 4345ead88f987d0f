//! The inbound HTTP server: RedBrick's requests in, JSON answers out.
//!
//! A request passes, in order: the concurrency limit, the source allow-list, the path,
//! the method, the token, the content type and encoding, the size and time bounds of its
//! body, and envelope validation; then its messages are committed to the outbox and the
//! answer summarises what happened. Every refusal is one JSON shape, built in
//! [`ApiError::into_response`]. Rendering and delivery are other modules' business.

mod body;
mod guard;
mod listener;
mod webhook;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Buf;
use chrono::Utc;
use futures_util::Stream;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Reply};

pub use listener::Peer;

use crate::config::{Config, ServerConfig};
use crate::deliver::Deliverer;
use crate::event::{parse_body, Batch, EventError};
use crate::tasks::Recent;

/// What the server needs: the current config and where messages go.
#[derive(Clone)]
pub struct AppState {
    /// The config in force; replaced as a whole on reload.
    pub config: watch::Receiver<Arc<Config>>,
    /// Delivery, and the outbox behind it.
    pub deliverer: Deliverer,
    /// Requests handled at once.
    pub permits: Arc<Semaphore>,
    /// The tasks written last, which routing reads before the store.
    pub recent: Recent,
}

impl AppState {
    /// State for `config`, with the concurrency limit it sets.
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        deliverer: Deliverer,
        recent: Recent,
    ) -> AppState {
        let permits = Arc::new(Semaphore::new(
            config.borrow().server.max_concurrent_requests,
        ));
        AppState {
            config,
            deliverer,
            permits,
            recent,
        }
    }
}

/// A refused request: its status, a stable machine-readable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, for example `payload_too_large`.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// `{"error": {"code": "...", "message": "..."}}` with the status.
    pub fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

/// The answer to an accepted webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Elements of `payload`.
    pub received: usize,
    /// Events that at least one rule matched.
    pub matched: usize,
    /// Elements of unknown event types, set aside.
    pub skipped: usize,
    /// Events already received before (same id), not processed again.
    pub duplicates: usize,
    /// Messages committed for delivery.
    pub deliveries: usize,
    /// Events held for a roll-up (sent later, together); left out when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub held: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let server = state.config.borrow().server.clone();
    let service = warp::service(routes(state));
    listener::serve(
        listener,
        service,
        server.tls,
        server.header_timeout,
        shutdown,
    )
    .await;
}

/// The whole HTTP surface as one filter.
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(warp::body::stream())
        .then(move |method, path: FullPath, query, headers, peer, body| {
            let request = Request {
                method,
                path: path.as_str().to_owned(),
                query,
                headers,
                peer,
            };
            answer(state.clone(), request, body)
        })
}

/// What the filters extracted from a request, apart from its body.
struct Request {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    peer: Option<Peer>,
}

async fn answer<S, B>(state: AppState, request: Request, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let config = state.config.borrow().clone();
    let client = guard::client_address(
        request.peer.map(|p| p.0),
        &request.headers,
        &config.server.trusted_proxies,
    );
    let span = tracing::info_span!("request",
        method = %request.method,
        path = %guard::redact(&request.path, &config.server.path),
        client = %client.map_or_else(|| "-".to_owned(), |ip| ip.to_string()));
    async move {
        let response = match handle(&state, &config, request, client, body).await {
            Ok(summary) => warp::reply::json(&summary).into_response(),
            Err(err) => {
                tracing::warn!(
                    status = err.status.as_u16(),
                    code = err.code,
                    "request refused"
                );
                err.into_response()
            }
        };
        let metrics = state.deliverer.metrics();
        metrics.request(response.status().as_u16());
        response
    }
    .instrument(span)
    .await
}

async fn handle<S, B>(
    state: &AppState,
    config: &Config,
    request: Request,
    client: Option<IpAddr>,
    body: S,
) -> Result<Summary, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let _permit = state.permits.try_acquire().map_err(|_| {
        let message = "too many requests at once; retry shortly";
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
    })?;
    let server = &config.server;
    let encoding = admit(server, &request, client)?;

    let bytes = body::read(body, encoding, server.max_body_bytes, server.body_timeout).await?;
    let batch = parse_body(&bytes, Utc::now()).map_err(invalid)?;
    check_event_count(&batch, server.max_events)?;
    webhook::dispatch(config, &state.deliverer, &state.recent, batch).await
}

/// The checks made before a byte of the body is read, in the order the module doc gives:
/// a client that may not post learns nothing about the path, nor a wrong path about the
/// token.
fn admit(
    server: &ServerConfig,
    request: &Request,
    client: Option<IpAddr>,
) -> Result<body::Encoding, ApiError> {
    guard::check_allowed(client, &server.allow_from)?;
    let path = guard::match_path(&request.path, &server.path);
    if path == guard::PathMatch::Other {
        return Err(guard::not_found());
    }
    if request.method != Method::POST {
        let message = format!("use POST, not {}", request.method);
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        ));
    }
    guard::check_token(server.token.as_ref(), &path, &request.query)?;
    let encoding = body::check_headers(&request.headers)?;
    body::check_length(&request.headers, server.max_body_bytes)?;
    Ok(encoding)
}

/// Refuses a batch with more elements (known types or not) than `[server] max_events`.
fn check_event_count(batch: &Batch, max_events: usize) -> Result<(), ApiError> {
    let count = batch.events.len() + batch.skipped.len();
    if count <= max_events {
        return Ok(());
    }
    let message = format!("{count} events in one request; at most {max_events} are taken");
    Err(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_events",
        message,
    ))
}

fn invalid(err: EventError) -> ApiError {
    let code = match err {
        EventError::Json(_) => "invalid_json",
        EventError::Field { .. } => "invalid_envelope",
    };
    ApiError::new(StatusCode::BAD_REQUEST, code, err.to_string())
}
