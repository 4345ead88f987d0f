//! Connections: accepting, TLS, header timeouts and graceful shutdown.
//!
//! Each accepted connection is served by hyper with a header read timeout (so a client
//! that trickles its headers cannot hold a connection forever), optionally behind TLS,
//! and tagged with its peer address for the allow-list. On shutdown the listener closes
//! first, then requests in flight finish. What a request asks for is the routes'
//! business: this module sees connections, not requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

/// The address a connection came from, as the socket saw it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A TLS handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish their requests after a shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What hyper needs of the service each connection is served with: warp's routes.
pub trait Routes:
    Service<
        hyper::Request<Incoming>,
        Response = warp::reply::Response,
        Future: Send + 'static,
        Error: std::error::Error + Send + Sync + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> Routes for S where
    S: Service<
            hyper::Request<Incoming>,
            Response = warp::reply::Response,
            Future: Send + 'static,
            Error: std::error::Error + Send + Sync + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Serves `service` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    service: impl Routes,
    tls: Option<Arc<rustls::ServerConfig>>,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = Connection {
                stream,
                peer,
                header_timeout,
            };
            connection.serve(service, acceptor, watcher).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at the drain deadline were closed");
    }
}

/// Running out of file descriptors is the usual cause; pausing lets connections close.
async fn accept_failed(err: std::io::Error) {
    tracing::error!(error = %err, "cannot accept a connection; pausing");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    header_timeout: Duration,
}

impl Connection {
    async fn serve(self, service: impl Routes, acceptor: Option<TlsAcceptor>, watcher: Watcher) {
        // Answers are small and sent whole, so Nagle's delay would only hold them back; a
        // socket that refuses the option still works, only a little slower.
        let _ = self.stream.set_nodelay(true);
        let peer = self.peer;
        let tagged = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(Peer(peer));
            service.clone().call(request)
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        let result = match acceptor {
            None => {
                let conn = builder.serve_connection(TokioIo::new(self.stream), tagged);
                watcher.watch(conn.into_owned()).await
            }
            Some(acceptor) => {
                let Some(stream) = handshake(&acceptor, self.stream, peer).await else {
                    return;
                };
                let conn = builder.serve_connection(TokioIo::new(stream), tagged);
                watcher.watch(conn.into_owned()).await
            }
        };
        if let Err(err) = result {
            tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
        }
    }
}

/// The TLS handshake, or `None` when it fails or takes longer than [`HANDSHAKE_TIMEOUT`].
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            tracing::debug!(peer = %peer, error = %err, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}
