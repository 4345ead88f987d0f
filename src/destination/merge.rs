//! Several bodies already built for one destination, made into one message.
//!
//! Used when quiet hours end: the messages held during them go out together. Each kind
//! merges in its own format and refuses (`None`) when the result would pass its size
//! limit, so that nothing is cut: the caller then sends fewer at once.

use serde_json::{json, Value};

use super::slack::MAX_TEXT_CHARS;
use super::teams::MAX_BODY_BYTES;

/// The line above merged messages.
fn heading(count: usize) -> String {
    format!("{count} messages held during quiet hours:")
}

/// Slack: the texts one after the other under the heading.
pub(super) fn slack(bodies: &[&[u8]]) -> Option<Vec<u8>> {
    let texts = bodies
        .iter()
        .map(|body| text_of(body))
        .collect::<Option<Vec<String>>>()?;
    let text = format!("{}\n\n{}", heading(bodies.len()), texts.join("\n\n"));
    if text.chars().count() > MAX_TEXT_CHARS {
        return None;
    }
    Some(json!({ "text": text }).to_string().into_bytes())
}

fn text_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value["text"].as_str().map(str::to_owned)
}

/// Teams: one card with the heading, then each card's blocks under a separator; the
/// mention entities of all of them, and no button (each message had its own page).
pub(super) fn teams(bodies: &[&[u8]]) -> Option<Vec<u8>> {
    let mut blocks =
        vec![json!({"type": "TextBlock", "text": heading(bodies.len()), "wrap": true})];
    let mut entities: Vec<Value> = Vec::new();
    for body in bodies {
        let value: Value = serde_json::from_slice(body).ok()?;
        let content = &value["attachments"][0]["content"];
        for (index, block) in content["body"].as_array()?.iter().enumerate() {
            let mut block = block.clone();
            if index == 0 {
                block["separator"] = json!(true);
            }
            blocks.push(block);
        }
        let found = content["msteams"]["entities"]
            .as_array()
            .into_iter()
            .flatten();
        for entity in found {
            if !entities.contains(entity) {
                entities.push(entity.clone());
            }
        }
    }
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": blocks,
        "actions": [],
    });
    if !entities.is_empty() {
        content["msteams"] = json!({ "entities": entities });
    }
    let card = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }]
    });
    let bytes = card.to_string().into_bytes();
    (bytes.len() <= MAX_BODY_BYTES).then_some(bytes)
}

/// Console: the texts one after the other under the heading.
pub(super) fn console(bodies: &[&[u8]]) -> Option<Vec<u8>> {
    let texts: Vec<String> = bodies
        .iter()
        .map(|body| String::from_utf8_lossy(body).into_owned())
        .collect();
    Some(format!("{}\n\n{}", heading(bodies.len()), texts.join("\n\n")).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_texts_follow_one_another_under_a_heading() {
        let one = super::super::slack::body("first");
        let two = super::super::slack::body("second <@U1>");

        let merged = slack(&[&one, &two]).unwrap();

        let value: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(
            value["text"],
            "2 messages held during quiet hours:\n\nfirst\n\nsecond <@U1>"
        );
    }

    #[test]
    fn teams_cards_keep_their_blocks_and_mentions() {
        let mention = super::super::Mention {
            id: "ann@org.example".into(),
            name: "Ann".into(),
        };
        let one = super::super::teams::body("first", Some("https://x.example"), &[]);
        let two = super::super::teams::body("hi <at>Ann</at>", None, &[mention]);

        let merged = teams(&[&one, &two]).unwrap();

        let value: Value = serde_json::from_slice(&merged).unwrap();
        let content = &value["attachments"][0]["content"];
        let texts: Vec<&str> = content["body"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "2 messages held during quiet hours:",
                "first",
                "hi <at>Ann</at>"
            ]
        );
        assert_eq!(content["msteams"]["entities"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_merge_past_the_limit_is_refused() {
        let long = super::super::slack::body(&"x".repeat(MAX_TEXT_CHARS - 10));

        assert!(slack(&[&long, &long]).is_none());
    }
}
