//! Slack incoming webhooks: a `{"text": ...}` body, and Slack's way of answering.
//!
//! Sending, and the reading of statuses Slack shares with Teams, are the parent module's.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{classify_status, describe, truncate_chars, Outcome, MARK};

/// Slack cuts `text` above this many characters; the relay cuts first, visibly.
pub const MAX_TEXT_CHARS: usize = 40_000;

/// Error bodies Slack documents as permanent, whatever status carries them.
const PERMANENT_ERRORS: &[&str] = &[
    "invalid_payload",
    "no_text",
    "user_not_found",
    "action_prohibited",
    "invalid_token",
    "channel_not_found",
    "no_service",
    "channel_is_archived",
    "team_disabled",
    "too_many_attachments",
    "posting_to_general_channel_denied",
];

/// `{"text": ...}`, the text cut visibly to Slack's limit.
pub(super) fn body(text: &str) -> Vec<u8> {
    let text = cut_outside_links(text, MAX_TEXT_CHARS);
    json!({ "text": text }).to_string().into_bytes()
}

/// `text` cut visibly to `max_chars`; when the cut would fall inside a `<...>` (a link
/// or mention the template wrote: values never hold a bare `<`), it is made before it,
/// so Slack never gets half a link to show as raw markup.
fn cut_outside_links(text: &str, max_chars: usize) -> String {
    let keep = max_chars.saturating_sub(MARK.chars().count());
    let Some((cut, _)) = text.char_indices().nth(keep) else {
        return text.to_owned();
    };
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let head = &text[..cut];
    match (head.rfind('<'), head.rfind('>')) {
        (Some(open), close) if close.is_none_or(|close| close < open) => {
            format!("{}{MARK}", &head[..open])
        }
        _ => truncate_chars(text, max_chars),
    }
}

/// Only 200 with the body `ok` is success. The error body decides before the status
/// does, because Slack's status codes for the same error vary between sources. A 200
/// with any other body did not post: it is retried, since nothing says it cannot work.
pub(super) fn classify(status: StatusCode, text: &str, after: Option<Duration>) -> Outcome {
    let body = text.trim();
    if status == StatusCode::OK && body == "ok" {
        return Outcome::Sent;
    }
    if status != StatusCode::TOO_MANY_REQUESTS && PERMANENT_ERRORS.contains(&body) {
        return Outcome::Permanent {
            reason: describe(status, text),
        };
    }
    if status == StatusCode::OK {
        return Outcome::Retry {
            reason: describe(status, text),
            after,
        };
    }
    classify_status(status, text, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status_and_body() {
        let retry = |status: u16, text: &str| {
            let status = StatusCode::from_u16(status).unwrap();
            matches!(classify(status, text, None), Outcome::Retry { .. })
        };

        assert_eq!(classify(StatusCode::OK, "ok", None), Outcome::Sent);
        assert_eq!(classify(StatusCode::OK, "ok\n", None), Outcome::Sent);
        assert!(retry(200, ""));
        assert!(retry(200, "rollup_error"));
        assert!(!retry(200, "invalid_payload"));
        assert!(matches!(
            classify(StatusCode::OK, "channel_is_archived", None),
            Outcome::Permanent { .. }
        ));
        assert!(retry(500, "rollup_error"));
        assert!(retry(429, "rate_limited"));
        assert!(retry(503, ""));
        assert!(!retry(404, "no_service"));
        assert!(!retry(500, "invalid_token"));
        assert!(!retry(400, "invalid_payload"));
        assert!(!retry(201, ""));
    }

    #[test]
    fn long_text_is_cut_below_the_limit() {
        let body = body(&"x".repeat(MAX_TEXT_CHARS + 10));

        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let text = value["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), MAX_TEXT_CHARS);
        assert!(text.ends_with("… (truncated)"));
    }
}
