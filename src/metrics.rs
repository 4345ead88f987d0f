//! The relay's counters, gauges and histograms, and their Prometheus text form.
//!
//! The core (server, webhook dispatch, delivery workers, reload) updates these through
//! [`Metrics`], a cheap handle; the admin listener encodes them on a scrape. Nothing here
//! serves HTTP, and the core never calls the admin side.
//!
//! Labels only ever hold values the operator chose or a small fixed set: event types,
//! rule and destination names from the config, outcomes and status codes. Never task or
//! event ids, paths, hosts or URLs: those are unbounded, and URLs are secrets.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::event::EventKind;
use crate::outbox::State;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What became of one delivery attempt, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The platform took the message.
    Sent,
    /// A passing failure; it will be tried again.
    Retry,
    /// Given up: refused for good, or too old.
    Dead,
}

impl DeliveryOutcome {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Retry => "retry",
            DeliveryOutcome::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    rule: String,
    destination: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    destination: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

/// From 50 ms to about 100 s: a webhook post takes a few hundred milliseconds, and the
/// longest a destination's timeout allows is what the top buckets must still tell apart.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

struct Families {
    registry: Registry,
    events_received: Family<EventLabels, Counter>,
    events_skipped: Counter,
    events_duplicate: Counter,
    rule_matches: Family<RuleLabels, Counter>,
    render_failures: Family<RouteLabels, Counter>,
    deliveries: Family<OutcomeLabels, Counter>,
    delivery_latency: Family<DestinationLabels, Histogram, fn() -> Histogram>,
    queue_depth: Family<DestinationLabels, Gauge>,
    dead_letters: Family<DestinationLabels, Gauge>,
    reload_success: Gauge,
    reload_time: Gauge<f64, std::sync::atomic::AtomicU64>,
    requests: Family<StatusLabels, Counter>,
}

/// The relay's metrics: clone it freely, every clone updates the same families.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Families>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh families, all registered under the `redbrick_relay_` prefix.
    pub fn new() -> Metrics {
        let families = Families {
            registry: Registry::with_prefix("redbrick_relay"),
            events_received: Family::default(),
            events_skipped: Counter::default(),
            events_duplicate: Counter::default(),
            rule_matches: Family::default(),
            render_failures: Family::default(),
            deliveries: Family::default(),
            delivery_latency: Family::new_with_constructor(latency_histogram),
            queue_depth: Family::default(),
            dead_letters: Family::default(),
            reload_success: Gauge::default(),
            reload_time: Gauge::default(),
            requests: Family::default(),
        };
        Metrics {
            inner: Arc::new(register(families)),
        }
    }

    /// One well-formed event of a known type arrived (duplicates included).
    pub fn event_received(&self, kind: EventKind) {
        let labels = EventLabels {
            event: kind.as_str(),
        };
        self.inner.events_received.get_or_create(&labels).inc();
    }

    /// Events of unknown types were set aside.
    pub fn events_skipped(&self, count: usize) {
        self.inner.events_skipped.inc_by(count as u64);
    }

    /// An event arrived again and was not processed.
    pub fn event_duplicate(&self) {
        self.inner.events_duplicate.inc();
    }

    /// A rule fired for a fresh event.
    pub fn rule_matched(&self, rule: &str) {
        let labels = RuleLabels {
            rule: rule.to_owned(),
        };
        self.inner.rule_matches.get_or_create(&labels).inc();
    }

    /// A message could not be rendered.
    pub fn render_failed(&self, rule: &str, destination: &str) {
        let labels = RouteLabels {
            rule: rule.to_owned(),
            destination: destination.to_owned(),
        };
        self.inner.render_failures.get_or_create(&labels).inc();
    }

    /// An attempt to deliver ended (or a delivery was given up without one: `took` is
    /// then `None` and no latency is recorded).
    pub fn delivery(&self, destination: &str, outcome: DeliveryOutcome, took: Option<Duration>) {
        let labels = OutcomeLabels {
            destination: destination.to_owned(),
            outcome: outcome.as_str(),
        };
        self.inner.deliveries.get_or_create(&labels).inc();
        if let Some(took) = took {
            let labels = DestinationLabels {
                destination: destination.to_owned(),
            };
            let histogram = self.inner.delivery_latency.get_or_create(&labels);
            histogram.observe(took.as_secs_f64());
        }
    }

    /// An inbound webhook request was answered with `status`.
    pub fn request(&self, status: u16) {
        let labels = StatusLabels { status };
        self.inner.requests.get_or_create(&labels).inc();
    }

    /// A config was loaded (at start or on reload), or a reload was refused.
    pub fn reload(&self, success: bool, at: SystemTime) {
        let seconds = at
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.inner.reload_success.set(i64::from(success));
        self.inner.reload_time.set(seconds);
    }

    /// Replaces the per-destination queue figures with `counts` (from the outbox);
    /// `destinations` are shown at zero when they have nothing stored.
    pub fn set_queue(&self, destinations: &[String], counts: &[(String, State, u64)]) {
        let families = &self.inner;
        families.queue_depth.clear();
        families.dead_letters.clear();
        for destination in destinations {
            let labels = DestinationLabels {
                destination: destination.clone(),
            };
            families.queue_depth.get_or_create(&labels).set(0);
            families.dead_letters.get_or_create(&labels).set(0);
        }
        for (destination, state, count) in counts {
            let family = match state {
                State::Pending => &families.queue_depth,
                State::Dead => &families.dead_letters,
                State::Sent => continue,
            };
            let labels = DestinationLabels {
                destination: destination.clone(),
            };
            let count = i64::try_from(*count).unwrap_or(i64::MAX);
            family.get_or_create(&labels).set(count);
        }
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.inner.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

fn register(mut f: Families) -> Families {
    let r = &mut f.registry;
    r.register(
        "events_received",
        "Well-formed events of known types received, by type (repeats included)",
        f.events_received.clone(),
    );
    r.register(
        "events_skipped",
        "Events of unknown types set aside",
        f.events_skipped.clone(),
    );
    r.register(
        "events_duplicate",
        "Events received again within the dedup window and not processed",
        f.events_duplicate.clone(),
    );
    r.register(
        "rule_matches",
        "Times a rule fired for a fresh event, by rule",
        f.rule_matches.clone(),
    );
    r.register(
        "render_failures",
        "Messages that could not be rendered, by rule and destination",
        f.render_failures.clone(),
    );
    r.register(
        "deliveries",
        "Delivery attempts by destination and outcome (sent, retry, dead)",
        f.deliveries.clone(),
    );
    r.register_with_unit(
        "delivery_duration",
        "Time one delivery attempt took, by destination",
        Unit::Seconds,
        f.delivery_latency.clone(),
    );
    r.register(
        "queue_depth",
        "Deliveries waiting in the outbox, by destination",
        f.queue_depth.clone(),
    );
    r.register(
        "dead_letters",
        "Dead letters kept in the outbox, by destination",
        f.dead_letters.clone(),
    );
    r.register(
        "config_last_reload_success",
        "1 if the last config load (start or reload) succeeded, 0 if it was refused",
        f.reload_success.clone(),
    );
    r.register_with_unit(
        "config_last_reload_timestamp",
        "When the config was last loaded or a reload refused, in Unix time",
        Unit::Seconds,
        f.reload_time.clone(),
    );
    r.register(
        "http_requests",
        "Inbound webhook requests by answered status code",
        f.requests.clone(),
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_events_and_deliveries_with_bounded_labels() {
        let metrics = Metrics::new();

        metrics.event_received(EventKind::TaskEnteredStage);
        metrics.event_received(EventKind::TaskEnteredStage);
        metrics.rule_matched("review-ready");
        metrics.delivery(
            "reviewers",
            DeliveryOutcome::Sent,
            Some(Duration::from_millis(80)),
        );
        metrics.request(200);
        let text = metrics.encode();

        assert!(
            text.contains("redbrick_relay_events_received_total{event=\"TASK_ENTERED_STAGE\"} 2\n")
        );
        assert!(text.contains("redbrick_relay_rule_matches_total{rule=\"review-ready\"} 1\n"));
        assert!(text.contains(
            "redbrick_relay_deliveries_total{destination=\"reviewers\",outcome=\"sent\"} 1\n"
        ));
        let bucket = "redbrick_relay_delivery_duration_seconds_bucket\
                      {destination=\"reviewers\",le=\"0.1\"} 1\n";
        assert!(text.contains(bucket), "{text}");
        assert!(text.contains("redbrick_relay_http_requests_total{status=\"200\"} 1\n"));
    }

    #[test]
    fn queue_figures_replace_the_previous_ones() {
        let metrics = Metrics::new();
        let names = vec!["console".to_owned()];

        metrics.set_queue(&names, &[("gone".into(), State::Pending, 3)]);
        metrics.set_queue(&names, &[("console".into(), State::Dead, 2)]);
        let text = metrics.encode();

        assert!(text.contains("redbrick_relay_queue_depth{destination=\"console\"} 0\n"));
        assert!(text.contains("redbrick_relay_dead_letters{destination=\"console\"} 2\n"));
        assert!(!text.contains("gone"), "{text}");
    }
}
