//! `serve`: load the config, bind, and relay until asked to stop.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::logging::LogFormat;
use crate::relay;

/// Runs the relay until SIGINT or SIGTERM.
pub fn run(path: &Path, format: LogFormat) -> ExitCode {
    let config = match super::load_or_report(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    crate::logging::init(format, &config.log.level);
    for warning in &config.warnings {
        tracing::warn!(%warning, "config warning");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts on any supported platform");
    runtime.block_on(serve(config))
}

async fn serve(config: crate::config::Config) -> ExitCode {
    let listen = config.server.listen;
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%listen, error = %err, "cannot listen; is another process using the port?");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(listen);
    tracing::info!(address = %address, path = %config.server.path,
        config = %config.path.display(), "relay listening");

    let (_config_tx, config_rx) = watch::channel(Arc::new(config));
    match relay::run(listener, config_rx, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("relay stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler succeeds outside of restricted sandboxes");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown requested");
}
