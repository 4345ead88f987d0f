//! Microsoft Teams Workflows webhooks: an Adaptive Card 1.4 in a `message` envelope.
//!
//! Workflows answer 202 before they look at the card, and a bad card then fails silently
//! inside the flow, so the card built here is always well formed and within size.
//! Sending, and the reading of statuses Teams shares with Slack, are the parent module's.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{classify_status, Mention, Outcome};

/// Teams refuses messages over about 28 KB; stay well under it.
pub const MAX_BODY_BYTES: usize = 24_000;

/// The card for `text`, with a button to `link` and an entity for each of `mentions`; the
/// text is cut visibly when the body would pass [`MAX_BODY_BYTES`].
pub(super) fn body(text: &str, link: Option<&str>, mentions: &[Mention]) -> Vec<u8> {
    // A button whose URL would take half the room is left out: the text comes first.
    let link = link.filter(|url| json_len(url) < MAX_BODY_BYTES / 2);
    let whole = card(text, link, mentions).to_string();
    if whole.len() <= MAX_BODY_BYTES {
        return whole.into_bytes();
    }
    let overhead = whole.len() - json_len(text);
    let fitted = fit(text, MAX_BODY_BYTES.saturating_sub(overhead));
    // An entity whose `<at>` tag was cut off would make the flow drop the card.
    let kept: Vec<Mention> = mentions
        .iter()
        .filter(|m| fitted.contains(&m.tag()))
        .cloned()
        .collect();
    card(&fitted, link, &kept).to_string().into_bytes()
}

fn card(text: &str, link: Option<&str>, mentions: &[Mention]) -> Value {
    let actions: Vec<Value> = link
        .map(|url| json!({"type": "Action.OpenUrl", "title": "Open in RedBrick", "url": url}))
        .into_iter()
        .collect();
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": text, "wrap": true}],
        "actions": actions,
    });
    if !mentions.is_empty() {
        content["msteams"] = json!({"entities": mentions.iter().map(entity).collect::<Vec<_>>()});
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }]
    })
}

fn entity(mention: &Mention) -> Value {
    json!({
        "type": "mention",
        "text": mention.tag(),
        "mentioned": {"id": mention.id, "name": mention.name},
    })
}

/// Length of `text` once written as a JSON string.
fn json_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(text.len() * 6, |s| s.len())
}

/// The longest visibly truncated prefix of `text` whose JSON form fits `budget` bytes.
fn fit(text: &str, budget: usize) -> String {
    let (mut low, mut high) = (0, text.chars().count());
    while low < high {
        let mid = (low + high).div_ceil(2);
        if json_len(&cut_outside_markup(text, mid)) <= budget {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    cut_outside_markup(text, low)
}

/// `text` cut visibly to `max_chars`; when the cut would fall inside a `[label](url)` link
/// or an `<at>name</at>` mention the template wrote (values never hold an unescaped `[`
/// or `<`), it is made before it, so Teams never shows half a link or mention as raw
/// markup, and a mention's entity is either whole or left out.
fn cut_outside_markup(text: &str, max_chars: usize) -> String {
    let cut = super::truncate_chars(text, max_chars);
    let Some(head) = cut.strip_suffix(super::MARK) else {
        return cut;
    };
    match open_markup(head) {
        Some(start) => format!("{}{}", &head[..start], super::MARK),
        None => cut,
    }
}

/// Where the link or mention left open at the end of `head` starts, if one is.
fn open_markup(head: &str) -> Option<usize> {
    #[derive(Clone, Copy)]
    enum State {
        Text,
        Label(usize),
        Url(usize),
        Mention(usize),
    }
    let mut state = State::Text;
    let mut escaped = false;
    for (i, c) in head.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &head[i..];
        state = match (state, c) {
            (_, '\\') => {
                escaped = true;
                state
            }
            (State::Text, '[') => State::Label(i),
            (State::Text, '<') if rest.starts_with("<at>") => State::Mention(i),
            (State::Label(start), ']') if rest.starts_with("](") => State::Url(start),
            (State::Label(_), ']') => State::Text,
            (State::Url(_), ')') => State::Text,
            (State::Mention(_), '<') if rest.starts_with("</at>") => State::Text,
            (state, _) => state,
        };
    }
    match state {
        State::Text => None,
        State::Label(start) | State::Url(start) | State::Mention(start) => Some(start),
    }
}

/// Any 2xx is success (Workflows answer 202).
pub(super) fn classify(status: StatusCode, text: &str, after: Option<Duration>) -> Outcome {
    if status.is_success() {
        Outcome::Sent
    } else {
        classify_status(status, text, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_follows_the_workflows_shape() {
        let body: Value =
            serde_json::from_slice(&body("hi", Some("https://x.test/p"), &[])).unwrap();

        let content = &body["attachments"][0]["content"];
        assert_eq!(body["type"], "message");
        assert_eq!(content["version"], "1.4");
        assert_eq!(
            content["body"][0],
            json!({"type": "TextBlock", "text": "hi", "wrap": true})
        );
        assert_eq!(content["actions"][0]["url"], "https://x.test/p");
    }

    #[test]
    fn oversized_text_is_cut_to_fit_the_size_limit() {
        let text = "\"quoted\" ".repeat(10_000);

        let body = body(&text, None, &[]);

        let value: Value = serde_json::from_slice(&body).unwrap();
        let shown = value["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap();
        assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
        assert!(body.len() > MAX_BODY_BYTES - 100, "{} bytes", body.len());
        assert!(shown.ends_with("… (truncated)"));
    }

    #[test]
    fn a_cut_never_leaves_half_a_link_or_mention() {
        let link = format!("[{}](https://x.test/t)", "n".repeat(30));
        let mention = "<at>Ann Lee</at>";

        assert_eq!(
            cut_outside_markup(&format!("ab {link} cd"), 30),
            "ab … (truncated)"
        );
        assert_eq!(
            cut_outside_markup(&format!("ab {mention} {}", "x".repeat(40)), 20),
            "ab … (truncated)"
        );
        assert_eq!(
            cut_outside_markup(&format!("ab {mention} {}", "x".repeat(40)), 40),
            format!("ab {mention} xxxxxxx… (truncated)")
        );
        assert_eq!(
            cut_outside_markup(&format!(r"a \[{}", "x".repeat(40)), 20),
            format!(r"a \[{}… (truncated)", "x".repeat(3))
        );
    }

    #[test]
    fn a_button_too_long_for_the_card_is_left_out() {
        let url = format!("https://x.test/{}", "a".repeat(MAX_BODY_BYTES));

        let body = body("hi", Some(&url), &[]);

        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["attachments"][0]["content"]["actions"], json!([]));
        assert_eq!(
            value["attachments"][0]["content"]["body"][0]["text"],
            json!("hi")
        );
    }

    #[test]
    fn any_2xx_is_success() {
        assert_eq!(classify(StatusCode::ACCEPTED, "", None), Outcome::Sent);
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, "bad", None),
            Outcome::Permanent { .. }
        ));
    }
}
