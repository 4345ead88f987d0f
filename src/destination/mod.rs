//! Where a message goes: each kind's HTTP body, and what its answer means.
//!
//! A [`Destination`] turns rendered text into the exact bytes to send, sends them, and
//! classifies the answer as sent, worth retrying, or never going to work. It owns the
//! platforms' size limits and the secret URL, which it never shows: only the host.
//! It knows nothing of rules, templates or retry schedules.

mod console;
mod merge;
mod slack;
mod teams;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};

/// Longest answer body kept for logs and dead letters.
const SNIPPET_CHARS: usize = 300;

/// The kind of a destination, with what it needs to send.
#[derive(Clone, PartialEq, Eq)]
pub enum Kind {
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL: a secret.
        url: Url,
    },
    /// A Microsoft Teams Workflows webhook.
    Teams {
        /// The workflow URL: its `sig` query parameter is a secret.
        url: Url,
    },
    /// Standard output.
    Console,
}

// Hand-written so that a `{:?}` anywhere can never print a secret URL.
impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Slack { url } => write!(f, "Slack({})", host(url)),
            Kind::Teams { url } => write!(f, "Teams({})", host(url)),
            Kind::Console => f.write_str("Console"),
        }
    }
}

/// A named place messages are sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The name from the config: what logs, metrics and the store use.
    pub name: String,
    /// Its kind and URL.
    pub kind: Kind,
    /// How long one attempt may take, connection included.
    pub timeout: Duration,
}

/// A person mentioned in a Teams message: `<at>name</at>` in the text, and an entity in
/// the card saying who that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// Teams user principal name or Entra object id.
    pub id: String,
    /// The name between the `<at>` tags.
    pub name: String,
}

impl Mention {
    /// `<at>name</at>`, exactly as the text holds it.
    pub fn tag(&self) -> String {
        format!("<at>{}</at>", self.name)
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The platform took the message.
    Sent,
    /// A passing failure: try again, no sooner than `after` when the platform said so.
    Retry {
        /// What happened, for logs: status and body snippet, or the network error.
        reason: String,
        /// The wait the platform asked for (`Retry-After`).
        after: Option<Duration>,
    },
    /// The platform refused the message for good (a removed webhook, a bad payload).
    Permanent {
        /// What happened: status and body snippet.
        reason: String,
    },
}

impl Destination {
    /// The host the destination posts to, safe to show; `console` for the console.
    pub fn host(&self) -> String {
        match &self.kind {
            Kind::Slack { url } | Kind::Teams { url } => host(url),
            Kind::Console => "console".to_owned(),
        }
    }

    /// The exact body to send for `text`; `link` is the page the message is about (Teams
    /// shows it as a button), and `mentions` the Teams mentions the text holds.
    pub fn body(&self, text: &str, link: Option<&str>, mentions: &[Mention]) -> Vec<u8> {
        match &self.kind {
            Kind::Slack { .. } => slack::body(text),
            Kind::Teams { .. } => teams::body(text, link, mentions),
            Kind::Console => text.as_bytes().to_vec(),
        }
    }

    /// One body for all of `bodies` (built by [`Destination::body`]) under a line saying
    /// they were held during quiet hours; `None` when it would pass the platform's limit.
    pub fn merge(&self, bodies: &[&[u8]]) -> Option<Vec<u8>> {
        match &self.kind {
            Kind::Slack { .. } => merge::slack(bodies),
            Kind::Teams { .. } => merge::teams(bodies),
            Kind::Console => merge::console(bodies),
        }
    }

    /// Makes one attempt to deliver `body`.
    pub async fn send(&self, client: &reqwest::Client, body: &[u8]) -> Outcome {
        self.send_and_answer(client, body).await.0
    }

    /// As [`Destination::send`], also returning the platform's answer as it came (none
    /// for the console, or when no answer was read), for `send-test` to show.
    pub async fn send_and_answer(
        &self,
        client: &reqwest::Client,
        body: &[u8],
    ) -> (Outcome, Option<Answer>) {
        let (url, content_type) = match &self.kind {
            Kind::Console => return (console::print(&self.name, body).await, None),
            Kind::Slack { url } => (url, "application/json"),
            Kind::Teams { url } => (url, "application/json; charset=utf-8"),
        };
        let request = client
            .post(url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec());
        match request.send().await {
            Ok(response) => self.classify_response(response).await,
            Err(err) => {
                let outcome = Outcome::Retry {
                    reason: network_error(&err),
                    after: None,
                };
                (outcome, None)
            }
        }
    }

    async fn classify_response(&self, response: reqwest::Response) -> (Outcome, Option<Answer>) {
        let status = response.status();
        let after = retry_after(response.headers(), Utc::now());
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => {
                let outcome = Outcome::Retry {
                    reason: format!("{status}, body unreadable: {}", network_error(&err)),
                    after: None,
                };
                return (outcome, None);
            }
        };
        let outcome = match &self.kind {
            Kind::Slack { .. } => slack::classify(status, &text, after),
            Kind::Teams { .. } => teams::classify(status, &text, after),
            Kind::Console => Outcome::Sent,
        };
        (outcome, Some(Answer { status, body: text }))
    }
}

/// What a platform answered to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, whole.
    pub body: String,
}

fn host(url: &Url) -> String {
    url.host_str().unwrap_or("(no host)").to_owned()
}

/// Describes a transport error without its URL, which reqwest would otherwise include.
fn network_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "answer broken off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(err);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// The generic reading of an answer shared by the HTTP kinds: 429 and 5xx (and 408) pass,
/// any other failure is permanent.
fn classify_status(status: StatusCode, text: &str, after: Option<Duration>) -> Outcome {
    let reason = describe(status, text);
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Outcome::Retry { reason, after }
    } else {
        Outcome::Permanent { reason }
    }
}

/// `404 Not Found: no_service`, the body cut to a snippet on one line: it goes into log
/// lines and the `deliveries` table, where a line break would forge a line of its own.
fn describe(status: StatusCode, text: &str) -> String {
    let snippet: String = text
        .trim()
        .chars()
        .take(SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if snippet.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {snippet}")
    }
}

/// Reads `Retry-After` as seconds or an HTTP-date, relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

/// What ends a message the relay cut.
const MARK: &str = "… (truncated)";

/// Cuts `text` to at most `max_chars` characters, marking the cut visibly; never splits a
/// character or an `&...;` entity.
fn truncate_chars(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let keep = max_chars.saturating_sub(MARK.chars().count());
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let mut head = &text[..end];
    if let Some(amp) = head.rfind('&') {
        if !head[amp..].contains(';') && head.len() - amp < 8 {
            head = &head[..amp];
        }
    }
    format!("{head}{MARK}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .to_utc();
        let mut headers = HeaderMap::new();

        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));

        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:05 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(5)));

        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn debug_output_shows_the_host_only() {
        let url = Url::parse("https://hooks.slack.com/services/T1/B2/SECRET").unwrap();

        let shown = format!("{:?}", Kind::Slack { url });

        assert_eq!(shown, "Slack(hooks.slack.com)");
    }

    #[test]
    fn truncation_is_visible_and_keeps_entities_whole() {
        let text = format!("{}&amp;{}", "a".repeat(20), "b".repeat(20));

        let cut = truncate_chars(&text, 36);

        assert_eq!(cut, format!("{}… (truncated)", "a".repeat(20)));
        assert_eq!(truncate_chars("short", 36), "short");
    }
}
