//! Telling systemd how the service is: ready, reloading, stopping, a status line, and
//! watchdog pings.
//!
//! Everything here does nothing when `NOTIFY_SOCKET` is unset (not started by systemd,
//! or a unit that is not `Type=notify`). When to send what is the serve loop's decision;
//! this module only knows the protocol.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends state changes to the service manager, if there is one.
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// A notifier for the service manager named by `NOTIFY_SOCKET`, if any.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// Whether there is a service manager to notify.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Start-up (or a reload) is over: the relay is taking requests.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload has begun. systemd 253 and later want the monotonic time with it, to
    /// tell this reload from an earlier one; older versions ignore it.
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    /// The relay is shutting down.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// A new one-line status, shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// The main loop is alive.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(err) = sd_notify::notify(states) {
            tracing::warn!(error = %err, "cannot notify the service manager");
        }
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
/// advises, so that one late ping does not get the service killed. `None` when systemd
/// asked for no watchdog (or asked another process).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|timeout| !timeout.is_zero())
        .map(|timeout| timeout / 2)
}
