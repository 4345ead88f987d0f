//! `serve`: load the config, bind, and relay until asked to stop; reload on SIGHUP and
//! keep systemd informed.
//!
//! The order is what systemd relies on: signal handlers first, then both listeners bound
//! and the outbox open, and only then `READY=1`. After that, one loop owns the process's
//! life: SIGHUP reloads (between `RELOADING=1` and `READY=1`), a timer feeds the watchdog
//! and refreshes `STATUS=`, and SIGTERM or SIGINT sends `STOPPING=1` and ends it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::logging::{LevelHandle, LogFormat};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, State};
use crate::relay::Relay;
use crate::reload::{LastReload, Reloader};
use crate::systemd::{watchdog_interval, Notifier};

/// How often `STATUS=` is refreshed with the queue figures.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// How long the status line waits for the outbox's figures before leaving them out.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the relay until SIGINT or SIGTERM.
pub fn run(path: &Path, format: LogFormat) -> ExitCode {
    let config = match super::load_or_report(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let log = crate::logging::init(format, &config.log.level);
    for warning in &config.warnings {
        tracing::warn!(%warning, "config warning");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts on any supported platform");
    runtime.block_on(serve(config, log))
}

async fn serve(config: Config, log: LevelHandle) -> ExitCode {
    // Before anything else: SIGHUP's default action ends the process, and systemd may
    // send one as soon as the unit is up.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(err) => {
            tracing::error!(error = %err, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let Some((listener, admin)) = bind_both(&config).await else {
        return ExitCode::FAILURE;
    };

    let metrics = Metrics::new();
    metrics.reload(true, SystemTime::now());
    let (sender, receiver) = watch::channel(Arc::new(config));
    let relay = match Relay::start(receiver.clone(), metrics.clone()).await {
        Ok(relay) => relay,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let admin = admin.map(|listener| {
        let state = AdminState::new(relay.outbox().clone(), receiver, metrics.clone());
        serve_admin(listener, state)
    });

    let reloader = Reloader {
        config: sender,
        outbox: relay.outbox().clone(),
        metrics,
        log,
    };
    let supervisor = Supervisor::new(reloader, relay.outbox().clone());
    supervisor.ready().await;
    relay.serve(listener, supervisor.run(signals)).await;

    if let Some(admin) = admin {
        admin.abort();
    }
    tracing::info!("relay stopped");
    ExitCode::SUCCESS
}

/// The relay's listener and, unless disabled, the admin one; `None` when either cannot
/// be bound, which is logged.
async fn bind_both(config: &Config) -> Option<(TcpListener, Option<TcpListener>)> {
    let listener = bind(config.server.listen, "relay").await?;
    let admin = match config.admin.listen {
        Some(address) => Some(bind(address, "admin").await?),
        None => None,
    };
    let address = listener.local_addr().unwrap_or(config.server.listen);
    tracing::info!(address = %address, path = %config.server.path,
        config = %config.path.display(), "relay listening");
    Some((listener, admin))
}

async fn bind(address: SocketAddr, what: &str) -> Option<TcpListener> {
    match TcpListener::bind(address).await {
        Ok(listener) => Some(listener),
        Err(err) => {
            tracing::error!(listener = what, %address, error = %err,
                "cannot listen; is another process using the port?");
            None
        }
    }
}

/// Serves the admin endpoints until `serve` aborts the task, once the relay has
/// stopped: a probe or scrape in flight then is not worth waiting for.
fn serve_admin(listener: TcpListener, state: AdminState) -> tokio::task::JoinHandle<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(address = %address, "admin listening");
    }
    tokio::spawn(admin::run(listener, state, std::future::pending()))
}

/// The signals `serve` answers to.
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

/// The process's main loop once the relay is up.
struct Supervisor {
    notifier: Notifier,
    reloader: Reloader,
    outbox: Outbox,
    last: LastReload,
}

impl Supervisor {
    fn new(reloader: Reloader, outbox: Outbox) -> Supervisor {
        Supervisor {
            notifier: Notifier::from_env(),
            reloader,
            outbox,
            last: LastReload::applied(Utc::now()),
        }
    }

    async fn ready(&self) {
        let status = self.status_line().await;
        self.notifier.ready(&status);
    }

    /// Answers signals and timers until asked to stop; resolving it stops the relay.
    async fn run(mut self, mut signals: Signals) {
        let period = watchdog_interval();
        let mut watchdog = period.map(every);
        let mut status = every(STATUS_INTERVAL);
        loop {
            tokio::select! {
                _ = signals.hangup.recv() => self.reload().await,
                _ = tick(&mut watchdog) => {
                    if let Some(period) = period {
                        self.feed_watchdog(period).await;
                    }
                }
                _ = status.tick() => self.refresh_status().await,
                _ = signals.terminate.recv() => break,
                _ = signals.interrupt.recv() => break,
            }
        }
        tracing::info!("shutdown requested");
        self.notifier.stopping();
    }

    async fn reload(&mut self) {
        self.notifier.reloading();
        self.last = self.reloader.reload().await;
        self.ready().await;
    }

    /// Fed only when the outbox's writer answers within a ping period: a wedged store
    /// gets the service restarted instead of taking webhooks it cannot keep.
    async fn feed_watchdog(&self, period: Duration) {
        match tokio::time::timeout(period, self.outbox.ping()).await {
            Ok(Ok(())) => self.notifier.watchdog(),
            Ok(Err(err)) => tracing::error!(error = %err, "watchdog not fed: the outbox fails"),
            Err(_) => tracing::error!("watchdog not fed: the outbox did not answer in time"),
        }
    }

    async fn refresh_status(&self) {
        if self.notifier.enabled() {
            let status = self.status_line().await;
            self.notifier.status(&status);
        }
    }

    /// `3 pending, 0 dead; config loaded 12:00:00 UTC`.
    async fn status_line(&self) -> String {
        let counts = tokio::time::timeout(STATUS_TIMEOUT, self.outbox.counts()).await;
        let queue = match counts {
            Ok(Ok(counts)) => {
                let total = |wanted: State| -> u64 {
                    let matching = counts.iter().filter(|(_, state, _)| *state == wanted);
                    matching.map(|(_, _, count)| count).sum()
                };
                format!(
                    "{} pending, {} dead",
                    total(State::Pending),
                    total(State::Dead)
                )
            }
            _ => "queue unknown".to_owned(),
        };
        format!("{queue}; {}", self.last.describe())
    }
}

fn every(period: Duration) -> Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
