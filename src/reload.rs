//! Reloading the config: loaded again exactly as `check` and the start do, then swapped
//! in whole, or refused whole with the old config left running.
//!
//! What a reload cannot change in a running process (the listening sockets, TLS, the
//! store) is logged as needing a restart; a destination that disappears keeps its queued
//! messages, which is logged too. Deliveries already queued are never touched: they hold
//! rendered bodies and a destination's name. When a reload is asked for is the serve
//! loop's business.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::logging::LevelHandle;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, State};

/// When the config in force was loaded, or the last reload refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReload {
    /// When.
    pub at: DateTime<Utc>,
    /// `None` when it was applied; the number of problems when it was refused.
    pub refused: Option<usize>,
}

impl LastReload {
    /// A config loaded and put in force at `at`: at start, or by a reload.
    pub fn applied(at: DateTime<Utc>) -> LastReload {
        LastReload { at, refused: None }
    }

    /// A few words for systemd's status line.
    pub fn describe(&self) -> String {
        let at = self.at.format("%H:%M:%S UTC");
        match self.refused {
            None => format!("config loaded {at}"),
            Some(problems) => {
                format!(
                    "reload refused {at} ({problems} problems; see the log), old config running"
                )
            }
        }
    }
}

/// What a reload changes: the config channel, the metrics and the log level.
pub struct Reloader {
    /// The config in force.
    pub config: watch::Sender<Arc<Config>>,
    /// Read to tell what a removed destination leaves queued.
    pub outbox: Outbox,
    /// Where the outcome is counted.
    pub metrics: Metrics,
    /// The logger, whose level follows `[log] level`.
    pub log: LevelHandle,
}

impl Reloader {
    /// Loads the config file again and applies it, or keeps the old one.
    pub async fn reload(&self) -> LastReload {
        let old = self.config.borrow().clone();
        let path = old.path.clone();
        tracing::info!(config = %path.display(), "reloading the config");
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
        let last = match loaded {
            Ok(loaded) => self.apply(loaded, Utc::now()),
            Err(err) => {
                tracing::error!(error = %err, "config reload did not finish; old config kept");
                self.refused(1, Utc::now())
            }
        };
        if last.refused.is_none() {
            let new = self.config.borrow().clone();
            self.report_removed(&removed_destinations(&old, &new)).await;
        }
        last
    }

    /// Logs what each destination that left the config still has queued. Those
    /// deliveries are left as they are: the destination may come back with the next
    /// reload, or an operator may replay them elsewhere.
    async fn report_removed(&self, removed: &[String]) {
        if removed.is_empty() {
            return;
        }
        let counts = match self.outbox.counts().await {
            Ok(counts) => counts,
            Err(err) => {
                tracing::warn!(destinations = ?removed, error = %err,
                    "destinations removed from the config; cannot tell what they left queued");
                return;
            }
        };
        for destination in removed {
            let queued: u64 = counts
                .iter()
                .filter(|(name, state, _)| name == destination && *state == State::Pending)
                .map(|(_, _, count)| count)
                .sum();
            if queued == 0 {
                tracing::info!(%destination, "destination removed from the config");
            } else {
                tracing::warn!(%destination, queued, "destination removed from the config; \
                    its queued messages stay in the outbox until it returns or they are replayed");
            }
        }
    }

    /// Swaps `loaded` in, or logs why not; either way counts the outcome.
    pub fn apply(&self, loaded: Result<Config, ConfigError>, now: DateTime<Utc>) -> LastReload {
        let new = match loaded {
            Ok(new) => new,
            Err(err) => {
                log_problems(&err);
                return self.refused(err.problems().len(), now);
            }
        };
        let old = self.config.borrow().clone();
        for key in restart_only_changes(&old, &new) {
            tracing::warn!(key, "changed in the file but applies only after a restart");
        }
        for warning in &new.warnings {
            tracing::warn!(%warning, "config warning");
        }
        self.log.set(&new.log.level);
        tracing::info!(
            rules = new.rules.rules().len(),
            destinations = new.targets.len(),
            "config reloaded"
        );
        self.config.send_replace(Arc::new(new));
        self.metrics.reload(true, now.into());
        LastReload::applied(now)
    }

    fn refused(&self, problems: usize, now: DateTime<Utc>) -> LastReload {
        self.metrics.reload(false, now.into());
        LastReload {
            at: now,
            refused: Some(problems),
        }
    }
}

/// One error line per problem, with its place as fields, so that a log search by file or
/// key finds it.
fn log_problems(err: &ConfigError) {
    let ConfigError::Invalid(problems) = err else {
        tracing::error!(error = %err, "config reload refused; old config kept");
        return;
    };
    for problem in problems {
        let at = &problem.location;
        tracing::error!(file = %at.file.display(), line = at.line, column = at.column,
            key = %problem.key, problem = %problem.message,
            "config reload refused; old config kept");
    }
}

/// Keys whose new value the running process cannot take: its sockets are bound, its
/// store open and its workers' retry policy set when they started.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.server, &new.server);
    let changed = [
        ("server.listen", a.listen != b.listen),
        // The certificate is read once at start; whether its files changed since cannot
        // be told from here, so any TLS setup earns the reminder.
        ("server.tls", a.tls.is_some() || b.tls.is_some()),
        (
            "server.header_timeout",
            a.header_timeout != b.header_timeout,
        ),
        (
            "server.max_concurrent_requests",
            a.max_concurrent_requests != b.max_concurrent_requests,
        ),
        (
            "store.path",
            old.delivery.store_path != new.delivery.store_path,
        ),
        (
            "delivery.max_age, delivery.max_backoff",
            old.retry != new.retry,
        ),
        ("admin", old.admin != new.admin),
    ];
    changed
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key)
        .collect()
}

fn removed_destinations(old: &Config, new: &Config) -> Vec<String> {
    old.targets
        .keys()
        .filter(|name| !new.targets.contains_key(*name))
        .cloned()
        .collect()
}
