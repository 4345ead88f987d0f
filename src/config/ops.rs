//! `[admin]` and `[log]` checked: the operator's side of the relay.
//!
//! The admin listener serves health checks and metrics on its own address, loopback by
//! default, so that the public webhook port exposes nothing else. What those endpoints
//! answer is the `admin` module's business; this only says where, and whether.

use std::net::SocketAddr;

use super::raw::{RawAdmin, RawLog};
use super::validate::{text_or, Checker};

const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9787";
const DEFAULT_LOG_LEVEL: &str = "info";

/// `[admin]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where health and metrics are served; `None` when `enabled = false`.
    pub listen: Option<SocketAddr>,
}

/// `[log]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter: a level such as `info`, or directives such as
    /// `info,redbrick_relay=debug`. `RUST_LOG`, when set, wins over it.
    pub level: String,
}

/// `[admin]`: the listener's address, or none when disabled; an address that does not
/// parse, or that is `server.listen` too, is refused.
pub(super) fn admin(
    checker: &mut Checker<'_>,
    raw: &RawAdmin,
    server: Option<SocketAddr>,
) -> AdminConfig {
    if raw.enabled == Some(false) {
        return AdminConfig { listen: None };
    }
    let text = text_or(&raw.listen, DEFAULT_ADMIN_LISTEN);
    let span = raw.listen.as_ref().map_or(0..0, |v| v.span());
    let Ok(addr) = text.parse::<SocketAddr>() else {
        let message = format!("`{text}` is not an address and port such as `127.0.0.1:9787`");
        checker.problem(span, "admin.listen", message);
        return AdminConfig { listen: None };
    };
    if Some(addr) == server && addr.port() != 0 {
        let message = format!("`{addr}` is also `server.listen`; give the admin listener its own");
        checker.problem(span.clone(), "admin.listen", message);
    }
    if !addr.ip().is_loopback() {
        let message = "health and metrics have no authentication: keep them on loopback, or \
                       behind a firewall that only lets the monitoring host in"
            .to_owned();
        checker.warn(span, "admin.listen", message);
    }
    AdminConfig { listen: Some(addr) }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `[log]`: the level, refused unless it is a level name or a `module=level` filter.
pub(super) fn log(checker: &mut Checker<'_>, raw: &RawLog) -> LogConfig {
    let level = text_or(&raw.level, DEFAULT_LOG_LEVEL);
    let span = raw.level.as_ref().map_or(0..0, |v| v.span());
    if let Err(err) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        let message = format!(
            "`{level}` is not a log level such as `info` or `info,redbrick_relay=debug`: {err}"
        );
        checker.problem(span, "log.level", message);
        return LogConfig { level };
    }
    // A bare word is read as a module to log everything of, and then nothing else is
    // logged at all: `verbose` or `infp` would silence the relay without a word.
    let bare = level
        .split(',')
        .map(str::trim)
        .find(|d| !d.is_empty() && !d.contains('=') && !LEVELS.contains(&&*d.to_lowercase()));
    if let Some(word) = bare {
        let message = format!(
            "`{word}` is not a level ({}); for one module, write `module=level`",
            LEVELS.join(", ")
        );
        checker.problem(span, "log.level", message);
    }
    LogConfig { level }
}
