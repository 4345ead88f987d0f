//! The inbound HTTP server: RedBrick's requests in, JSON answers out.
//!
//! It checks what a request may be (path, method, content type, size), hands a valid
//! envelope's messages to delivery and answers at once with a summary. Every refusal is
//! answered in one JSON shape, built in [`ApiError::into_response`]. It knows nothing of how
//! messages are rendered or delivered beyond calling `route` and `Deliverer::submit`.

use std::future::Future;
use std::sync::Arc;

use bytes::Buf;
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::config::Config;
use crate::deliver::Deliverer;
use crate::event::{parse_body, Batch, EventError};
use crate::route::route;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the server needs: the current config and where messages go.
#[derive(Clone)]
pub struct AppState {
    /// The config in force; replaced as a whole on reload.
    pub config: watch::Receiver<Arc<Config>>,
    /// Delivery.
    pub deliverer: Deliverer,
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
    /// Messages handed to delivery.
    pub deliveries: usize,
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// The whole HTTP surface as one filter.
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |method, path, headers, body| {
            let state = state.clone();
            async move {
                match handle(state, method, path, headers, body).await {
                    Ok(summary) => warp::reply::json(&summary).into_response(),
                    Err(err) => err.into_response(),
                }
            }
        })
}

async fn handle<S, B>(
    state: AppState,
    method: Method,
    path: FullPath,
    headers: HeaderMap,
    body: S,
) -> Result<Summary, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let config = state.config.borrow().clone();
    if path.as_str().trim_end_matches('/') != config.server.path {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such path",
        ));
    }
    if method != Method::POST {
        let message = format!("use POST, not {method}");
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        ));
    }
    check_content_type(&headers)?;

    let bytes = read_limited(body, MAX_BODY_BYTES).await?;
    let batch = parse_body(&bytes, Utc::now()).map_err(|err| {
        let code = match err {
            EventError::Json(_) => "invalid_json",
            EventError::Field { .. } => "invalid_envelope",
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, err.to_string())
    })?;
    Ok(dispatch(&config, &state.deliverer, batch))
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(warp::http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        return Ok(());
    }
    let message = "send the webhook as `application/json`";
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    ))
}

/// Reads the body, refusing it as soon as it grows past `limit`, whatever
/// `Content-Length` claimed: a chunked body has none.
async fn read_limited<S, B>(mut body: S, limit: usize) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("reading the body failed: {err}"),
            )
        })?;
        if bytes.len() + chunk.remaining() > limit {
            let message = format!("the body is over the limit of {limit} bytes");
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                message,
            ));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            bytes.extend_from_slice(piece);
            let len = piece.len();
            chunk.advance(len);
        }
    }
    Ok(bytes)
}

fn dispatch(config: &Config, deliverer: &Deliverer, batch: Batch) -> Summary {
    let mut summary = Summary {
        received: batch.events.len() + batch.skipped.len(),
        skipped: batch.skipped.len(),
        ..Summary::default()
    };
    if let Some(count) = batch.count_mismatch {
        tracing::warn!(
            events = count,
            payload = summary.received,
            "envelope `events` disagrees with the payload length; processing the payload"
        );
    }
    for skipped in &batch.skipped {
        tracing::warn!(index = skipped.index, event = %skipped.event, "unknown event type skipped");
    }
    for event in &batch.events {
        let routed = route(config, event);
        if !routed.matched {
            tracing::debug!(event = %event.kind, stage = event.stage.as_deref().unwrap_or(""),
                project = %event.project_id, "no rule matched");
        }
        summary.matched += usize::from(routed.matched);
        for failure in routed.failures {
            tracing::error!(rule = %failure.rule, destination = %failure.destination,
                error = %failure.failure, "message not rendered");
        }
        summary.deliveries += routed.messages.len();
        for message in routed.messages {
            deliverer.submit(message);
        }
    }
    tracing::info!(
        received = summary.received,
        matched = summary.matched,
        skipped = summary.skipped,
        deliveries = summary.deliveries,
        "webhook accepted"
    );
    summary
}
