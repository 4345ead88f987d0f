//! Mentions end to end: `[people]` and the `mention` helper, as Slack and Teams receive them.

mod support;

use serde_json::{json, Value};

use support::{envelope, task_entered_stage, task_url, Relay, USER};

const PEOPLE: &str = r#"[people."annotator@example.com"]
slack = "U0123ABC"
teams = "ann@org.example"
name = "Ann Lee"
"#;

async fn relay() -> Relay {
    Relay::builder()
        .slack("chat")
        .teams("leads")
        .config(PEOPLE)
        .text_rule(
            "moves",
            &["chat", "leads"],
            "{{stage}}: {{mention updated_by}}",
        )
        .start()
        .await
}

fn moved_by(email: &str) -> Value {
    let mut event = task_entered_stage("Review_1");
    event["data"]["updatedBy"] = json!(email);
    event
}

/// The Teams card for `text`, with `entities` when given.
fn card(text: &str, entities: Option<Value>) -> Value {
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": text, "wrap": true}],
        "actions": [{
            "type": "Action.OpenUrl",
            "title": "Open in RedBrick",
            "url": task_url("Review_1"),
        }],
    });
    if let Some(entities) = entities {
        content["msteams"] = json!({ "entities": entities });
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

#[tokio::test]
async fn a_known_person_is_mentioned_on_slack_and_teams() {
    let relay = relay().await;

    relay.post(&envelope(vec![moved_by(USER)])).await;

    let slack = relay.fake("chat").wait_for(1).await;
    let teams = relay.fake("leads").wait_for(1).await;
    assert_eq!(slack[0].json(), json!({"text": "Review_1: <@U0123ABC>"}));
    let entities = json!([{
        "type": "mention",
        "text": "<at>Ann Lee</at>",
        "mentioned": {"id": "ann@org.example", "name": "Ann Lee"},
    }]);
    assert_eq!(
        teams[0].json(),
        card(r"Review\_1: <at>Ann Lee</at>", Some(entities))
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn an_unknown_person_is_plain_escaped_text_on_both_platforms() {
    let relay = relay().await;

    relay
        .post(&envelope(vec![moved_by("<!here>_x@example.com")]))
        .await;

    let slack = relay.fake("chat").wait_for(1).await;
    let teams = relay.fake("leads").wait_for(1).await;
    assert_eq!(
        slack[0].json(),
        json!({"text": "Review_1: &lt;!here&gt;_x@example.com"})
    );
    assert_eq!(
        teams[0].json(),
        card(r"Review\_1: \<!here\>\_x@example.com", None)
    );
    relay.assert_no_violations();
}
