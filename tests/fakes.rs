//! The fake endpoints hold requests to the platform documents: if they let a bad request
//! through, every other test would pass for the wrong reason.

mod support;

use serde_json::json;

use support::{Answer, Fake, Platform};

async fn post(fake: &Fake, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(fake.url())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the fake answers");
    let status = response.status().as_u16();
    (
        status,
        response.text().await.expect("the answer is readable"),
    )
}

fn card(version: &str, wrap: bool) -> serde_json::Value {
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": null,
        "content": {"type": "AdaptiveCard", "version": version,
                    "body": [{"type": "TextBlock", "text": "hi", "wrap": wrap}]}
    }]})
}

#[tokio::test]
async fn fake_slack_takes_a_text_and_answers_ok() {
    let fake = Fake::start(Platform::Slack).await;

    let answer = post(&fake, "application/json", br#"{"text":"hi"}"#.to_vec()).await;

    assert_eq!(answer, (200, "ok".to_owned()));
    assert_eq!(fake.wait_for_texts(1).await, ["hi"]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn fake_slack_refuses_what_slack_refuses() {
    let fake = Fake::start(Platform::Slack).await;
    let long = json!({ "text": "x".repeat(support::SLACK_MAX_TEXT_CHARS + 1) });
    let cases = [
        (
            "application/json",
            b"not json".to_vec(),
            400,
            "invalid_payload",
        ),
        (
            "application/json",
            br#"{"blocks":[]}"#.to_vec(),
            400,
            "no_text",
        ),
        (
            "application/json",
            br#"{"text":""}"#.to_vec(),
            400,
            "no_text",
        ),
        (
            "application/json",
            br#"{"text":1}"#.to_vec(),
            400,
            "invalid_payload",
        ),
        (
            "text/plain",
            br#"{"text":"hi"}"#.to_vec(),
            400,
            "invalid_payload",
        ),
        ("application/json", long.to_string().into_bytes(), 200, "ok"),
    ];

    for (index, (content_type, body, status, answer)) in cases.into_iter().enumerate() {
        let got = post(&fake, content_type, body).await;

        assert_eq!(got, (status, answer.to_owned()), "case {index}");
        assert_eq!(
            fake.violations().len(),
            index + 1,
            "case {index} is a violation"
        );
    }
}

#[tokio::test]
async fn fake_teams_takes_a_card_and_answers_202() {
    let fake = Fake::start(Platform::Teams).await;
    let body = card("1.4", true).to_string().into_bytes();

    let answer = post(&fake, "application/json; charset=utf-8", body).await;

    assert_eq!(answer.0, 202);
    assert_eq!(fake.wait_for_texts(1).await, ["hi"]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn fake_teams_refuses_what_workflows_refuse_or_drop() {
    let fake = Fake::start(Platform::Teams).await;
    let json = "application/json";
    let mut no_body = card("1.4", true);
    no_body["attachments"][0]["content"]["body"] = json!([]);
    let mut not_adaptive = card("1.4", true);
    not_adaptive["attachments"][0]["contentType"] = json!("application/vnd.microsoft.card.hero");
    let mut huge = card("1.4", true);
    huge["attachments"][0]["content"]["body"][0]["text"] = json!("x".repeat(28_000));
    let cases = [
        (json, card("1.5", true).to_string(), 202),
        (json, card("1.4", false).to_string(), 202),
        (json, no_body.to_string(), 202),
        (json, not_adaptive.to_string(), 202),
        (json, json!({"text": "legacy"}).to_string(), 202),
        (json, huge.to_string(), 413),
        (json, "{".to_owned(), 400),
        ("text/plain", card("1.4", true).to_string(), 400),
        (
            "application/json; charset=latin1",
            card("1.4", true).to_string(),
            400,
        ),
    ];

    for (index, (content_type, body, status)) in cases.into_iter().enumerate() {
        let got = post(&fake, content_type, body.into_bytes()).await;

        assert_eq!(got.0, status, "case {index}: {}", got.1);
        assert_eq!(
            fake.violations().len(),
            index + 1,
            "case {index} is a violation"
        );
    }
}

#[tokio::test]
async fn fake_answers_as_told_for_the_next_requests_then_as_usual() {
    let fake = Fake::start(Platform::Slack).await;
    let limited = Answer::status(429, "rate_limited").with_header("retry-after", "1");
    fake.answer_next(2, limited);
    let body = || br#"{"text":"hi"}"#.to_vec();

    let first = post(&fake, "application/json", body()).await;
    let second = post(&fake, "application/json", body()).await;
    let third = post(&fake, "application/json", body()).await;

    assert_eq!(first, (429, "rate_limited".to_owned()));
    assert_eq!(second, (429, "rate_limited".to_owned()));
    assert_eq!(third, (200, "ok".to_owned()));
    assert_eq!(fake.requests().len(), 3);
}
