//! The relay end to end: webhooks posted over loopback, messages read off fake Slack and
//! Teams endpoints that enforce the platforms' rules.

mod support;

use serde_json::{json, Value};
use warp::http::Method;

use support::{
    assert_error, envelope, event, project_url, task_created, task_deleted, task_entered_stage,
    task_url, Answer, Platform, Relay, PROJECT, TASK, USER,
};

/// Every event type, with its shipped default template, to Slack `chat`.
async fn slack_relay() -> Relay {
    Relay::builder()
        .slack("chat")
        .rule("all", &["chat"])
        .start()
        .await
}

/// Posts `body`, checks it was accepted, and returns the texts `destination` received.
async fn deliver(relay: &Relay, body: Value, destination: &str, n: usize) -> Vec<String> {
    let reply = relay.post(&body).await;
    assert_eq!(reply.status, 200, "answer: {:?}", reply.body);
    relay.fake(destination).wait_for_texts(n).await
}

#[tokio::test]
async fn slack_gets_exact_text_for_task_created() {
    let relay = slack_relay().await;

    let reply = relay
        .post(&envelope(vec![task_created("CT_0001.nii.gz")]))
        .await;

    let received = relay.fake("chat").wait_for(1).await;
    assert_eq!(
        reply.body,
        json!({"received": 1, "matched": 1, "skipped": 0, "duplicates": 0, "deliveries": 1})
    );
    let text = format!(
        "New task *CT_0001.nii.gz* in <{}|Chest CT>, uploaded by {USER}",
        project_url()
    );
    assert_eq!(received[0].json(), json!({ "text": text }));
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    relay.assert_no_violations();
}

#[tokio::test]
async fn slack_gets_exact_text_for_task_entered_stage() {
    let relay = slack_relay().await;

    relay
        .post(&envelope(vec![task_entered_stage("Review_1")]))
        .await;

    let received = relay.fake("chat").wait_for(1).await;
    let text = format!(
        "Task <{}|{TASK}> entered *Review_1* in <{}|Chest CT> (moved by {USER})",
        task_url("Review_1"),
        project_url()
    );
    assert_eq!(received[0].json(), json!({ "text": text }));
    relay.assert_no_violations();
}

#[tokio::test]
async fn slack_gets_exact_text_for_task_deleted() {
    let relay = slack_relay().await;

    relay
        .post(&envelope(vec![task_deleted("CT_0001.nii.gz")]))
        .await;

    let received = relay.fake("chat").wait_for(1).await;
    let text = format!(
        "Task *CT_0001.nii.gz* was deleted from <{}|Chest CT> by {USER}",
        project_url()
    );
    assert_eq!(received[0].json(), json!({ "text": text }));
    relay.assert_no_violations();
}

#[tokio::test]
async fn teams_gets_exact_card_for_task_entered_stage() {
    let relay = Relay::builder()
        .teams("leads")
        .rule("progress", &["leads"])
        .start()
        .await;
    let fake = relay.fake("leads");

    relay
        .post(&envelope(vec![task_entered_stage("Review_1")]))
        .await;

    let received = fake.wait_for(1).await;
    let text = format!(
        r"Task [{TASK}]({}) entered **Review\_1** in [Chest CT]({}) (moved by {USER})",
        task_url("Review_1"),
        project_url()
    );
    let card = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": text, "wrap": true}],
                "actions": [{
                    "type": "Action.OpenUrl",
                    "title": "Open in RedBrick",
                    "url": task_url("Review_1"),
                }],
            },
        }],
    });
    assert_eq!(received[0].json(), card);
    assert_eq!(
        received[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let configured = fake.url();
    assert!(
        configured.ends_with(&format!("{}?{}", received[0].path, received[0].query)),
        "path and query must be sent exactly as configured: {configured}"
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn teams_card_for_an_event_without_stage_opens_the_project() {
    let relay = Relay::builder()
        .teams("leads")
        .rule("new", &["leads"])
        .start()
        .await;

    relay.post(&envelope(vec![task_created("CT_0001")])).await;

    let card = relay.fake("leads").wait_for(1).await[0].json();
    assert_eq!(
        card.pointer("/attachments/0/content/actions"),
        Some(&json!([{
            "type": "Action.OpenUrl", "title": "Open in RedBrick", "url": project_url()
        }]))
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn inline_text_template_is_rendered_for_each_destination() {
    let relay = Relay::builder()
        .slack("chat")
        .teams("leads")
        .text_rule(
            "inline",
            &["chat", "leads"],
            "{{event}} {{bold task_id}}{{#if stage}} in {{stage}}{{/if}} by {{updated_by}} \
             ({{rule}} to {{destination}}, {{project}})",
        )
        .start()
        .await;

    let batch = envelope(vec![task_created("a"), task_entered_stage("Label")]);
    relay.post(&batch).await;

    let slack = relay.fake("chat").wait_for_texts(2).await;
    let teams = relay.fake("leads").wait_for_texts(2).await;
    assert_eq!(
        slack,
        [
            format!("TASK_CREATED *{TASK}* by {USER} (inline to chat, Chest CT)"),
            format!("TASK_ENTERED_STAGE *{TASK}* in Label by {USER} (inline to chat, Chest CT)"),
        ]
    );
    assert_eq!(
        teams,
        [
            format!(r"TASK\_CREATED **{TASK}** by {USER} (inline to leads, Chest CT)"),
            format!(
                r"TASK\_ENTERED\_STAGE **{TASK}** in Label by {USER} (inline to leads, Chest CT)"
            ),
        ]
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn a_template_file_replaces_the_shipped_default() {
    let relay = Relay::builder()
        .slack("chat")
        .template("task-created", "created: {{task_name}}\n")
        .template("short", "{{event}} {{task_id}}")
        .config(
            "[[rules]]\nname = \"default\"\nevents = [\"TASK_CREATED\"]\nto = [\"chat\"]\n\n\
             [[rules]]\nname = \"named\"\nevents = [\"TASK_DELETED\"]\nto = [\"chat\"]\n\
             template = \"short\"",
        )
        .start()
        .await;

    let batch = envelope(vec![task_created("a"), task_deleted("b")]);
    let texts = deliver(&relay, batch, "chat", 2).await;

    assert_eq!(
        texts,
        ["created: a".to_owned(), format!("TASK_DELETED {TASK}")]
    );
}

#[tokio::test]
async fn a_batch_of_three_events_arrives_as_three_messages_in_order() {
    let relay = Relay::builder()
        .slack("chat")
        .text_rule(
            "all",
            &["chat"],
            "{{event}} {{#if stage}}{{stage}}{{else}}{{task_name}}{{/if}}",
        )
        .start()
        .await;
    let batch = envelope(vec![
        task_created("first"),
        task_entered_stage("Label"),
        task_deleted("third"),
    ]);

    let reply = relay.post(&batch).await;

    let texts = relay.fake("chat").wait_for_texts(3).await;
    assert_eq!(
        reply.body,
        json!({"received": 3, "matched": 3, "skipped": 0, "duplicates": 0, "deliveries": 3})
    );
    assert_eq!(
        texts,
        [
            "TASK_CREATED first",
            "TASK_ENTERED_STAGE Label",
            "TASK_DELETED third"
        ]
    );
}

#[tokio::test]
async fn an_unknown_event_type_is_skipped_and_the_others_delivered() {
    let relay = slack_relay().await;
    let unknown = json!({"event": "TASK_ARCHIVED", "id": "x", "data": {"taskId": "t"}});
    let batch = envelope(vec![task_created("before"), unknown, task_deleted("after")]);

    let reply = relay.post(&batch).await;

    let texts = relay.fake("chat").wait_for_texts(2).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({"received": 3, "matched": 2, "skipped": 1, "duplicates": 0, "deliveries": 2})
    );
    assert!(texts[0].starts_with("New task *before*"), "{texts:?}");
    assert!(
        texts[1].starts_with("Task *after* was deleted"),
        "{texts:?}"
    );
}

#[tokio::test]
async fn an_events_count_that_disagrees_with_the_payload_is_still_processed() {
    let relay = slack_relay().await;
    let counts = [
        json!(5),
        json!(0),
        json!(null),
        json!(-1),
        json!("1"),
        json!(1.0),
    ];

    for (index, count) in counts.iter().enumerate() {
        let body = json!({"version": "v1.0", "events": count, "payload": [task_created("x")]});

        let reply = relay.post(&body).await;

        assert_eq!(reply.status, 200, "for `events: {count}`: {:?}", reply.body);
        assert_eq!(reply.body["deliveries"], 1, "for `events: {count}`");
        relay.fake("chat").wait_for(index + 1).await;
    }
}

#[tokio::test]
async fn an_event_matching_no_rule_is_accepted_and_sends_nothing() {
    let relay = Relay::builder()
        .slack("chat")
        .config(
            "[[rules]]\nname = \"created\"\nevents = [\"TASK_CREATED\"]\nto = [\"chat\"]\n\
             text = \"{{task_name}}\"",
        )
        .start()
        .await;

    let reply = relay.post(&envelope(vec![task_deleted("gone")])).await;
    let texts = deliver(&relay, envelope(vec![task_created("barrier")]), "chat", 1).await;

    assert_eq!(
        reply.body,
        json!({"received": 1, "matched": 0, "skipped": 0, "duplicates": 0, "deliveries": 0})
    );
    assert_eq!(texts, ["barrier"], "the unmatched event must send nothing");
}

#[tokio::test]
async fn slack_escapes_mentions_and_ampersands_in_task_names() {
    let relay = slack_relay().await;

    let texts = deliver(
        &relay,
        envelope(vec![task_created("<!channel> R&D's *v2*")]),
        "chat",
        1,
    )
    .await;

    assert_eq!(
        texts[0],
        format!(
            "New task *&lt;!channel&gt; R&amp;D's *v2** in <{}|Chest CT>, uploaded by {USER}",
            project_url()
        )
    );
}

#[tokio::test]
async fn teams_escapes_markdown_in_task_names() {
    let relay = Relay::builder()
        .teams("leads")
        .rule("all", &["leads"])
        .start()
        .await;

    let texts = deliver(
        &relay,
        envelope(vec![task_created("<!channel> R&D's *v2*")]),
        "leads",
        1,
    )
    .await;

    assert_eq!(
        texts[0],
        format!(
            r"New task **\<!channel\> R&D's \*v2\*** in [Chest CT]({}), uploaded by {USER}",
            project_url()
        )
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn quotes_never_become_entities() {
    let relay = Relay::builder()
        .slack("chat")
        .teams("leads")
        .text_rule("all", &["chat", "leads"], "{{task_name}}")
        .start()
        .await;
    let name = r#"it's "done" `now`"#;

    relay.post(&envelope(vec![task_created(name)])).await;

    let slack = relay.fake("chat").wait_for(1).await;
    let teams = relay.fake("leads").wait_for(1).await;
    assert_eq!(slack[0].text(), name);
    assert_eq!(teams[0].text(), r#"it's "done" \`now\`"#);
    for body in [&slack[0].body, &teams[0].body] {
        let raw = String::from_utf8_lossy(body);
        for entity in ["&#x27;", "&#39;", "&quot;", "&#x60;", "&#96;", "&apos;"] {
            assert!(!raw.contains(entity), "`{entity}` in {raw}");
        }
    }
}

#[tokio::test]
async fn non_latin_names_pass_through_unchanged() {
    let relay = Relay::builder()
        .slack("chat")
        .teams("leads")
        .text_rule("all", &["chat", "leads"], "{{task_name}}")
        .start()
        .await;
    let names = [
        "胸部CT",
        "胸部CT_001",
        "صورة الصدر ٠٠١",
        "\u{200f}مريض\u{200e} 12",
        "🫁 scan 👩‍⚕️",
        "Ärztin Übersicht ß",
    ];

    let payload = names.iter().map(|name| task_created(name)).collect();
    relay.post(&envelope(payload)).await;

    let slack = relay.fake("chat").wait_for_texts(names.len()).await;
    let teams = relay.fake("leads").wait_for_texts(names.len()).await;
    assert_eq!(slack, names);
    let teams_names: Vec<String> = names.iter().map(|n| n.replace('_', r"\_")).collect();
    assert_eq!(teams, teams_names, "only markdown characters are escaped");
    relay.assert_no_violations();
}

#[tokio::test]
async fn seconds_and_milliseconds_render_the_same_time() {
    let relay = Relay::builder()
        .slack("chat")
        .text_rule("t", &["chat"], "{{time timestamp}}")
        .start()
        .await;
    let mut seconds = task_created("s");
    seconds["timestamp"] = json!(1_717_171_717);
    let mut millis = task_created("ms");
    millis["timestamp"] = json!(1_717_171_717_171_i64);
    let mut rfc3339 = task_created("rfc");
    rfc3339["timestamp"] = json!("2024-05-31T18:08:37+02:00");

    let texts = deliver(&relay, envelope(vec![seconds, millis, rfc3339]), "chat", 3).await;

    assert_eq!(texts, ["2024-05-31 16:08 UTC"; 3]);
}

/// What the request is, its body and content type, the status, code and part of the
/// message expected.
type BadRequest = (
    &'static str,
    Vec<u8>,
    Option<&'static str>,
    u16,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn refuses_bad_requests_with_a_json_error_and_delivers_nothing() {
    let relay = slack_relay().await;
    let json = Some("application/json");
    let no_data = json!({"payload": [{"event": "TASK_CREATED", "id": "e", "timestamp": 1}]});
    let mut no_task_id = task_created("x");
    no_task_id["data"].as_object_mut().unwrap().remove("taskId");
    let two_mib = format!(r#"{{"payload": [], "pad": "{}"}}"#, "x".repeat(2 << 20));
    let cases: Vec<BadRequest> = vec![
        (
            "empty body",
            vec![],
            json,
            400,
            "invalid_json",
            "body is not valid JSON",
        ),
        (
            "`{`",
            b"{".to_vec(),
            json,
            400,
            "invalid_json",
            "body is not valid JSON",
        ),
        (
            "null",
            b"null".to_vec(),
            json,
            400,
            "invalid_envelope",
            "`(body)` must be",
        ),
        (
            "[]",
            b"[]".to_vec(),
            json,
            400,
            "invalid_envelope",
            "`(body)` must be",
        ),
        (
            "{}",
            b"{}".to_vec(),
            json,
            400,
            "invalid_envelope",
            "`payload` is missing",
        ),
        (
            "payload as object",
            br#"{"payload": {}}"#.to_vec(),
            json,
            400,
            "invalid_envelope",
            "`payload` must be an array",
        ),
        (
            "event without data",
            no_data.to_string().into_bytes(),
            json,
            400,
            "invalid_envelope",
            "`payload[0].data` is missing",
        ),
        (
            "missing data.taskId",
            envelope(vec![task_created("ok"), no_task_id])
                .to_string()
                .into_bytes(),
            json,
            400,
            "invalid_envelope",
            "`payload[1].data.taskId` is missing",
        ),
        (
            "form-encoded",
            b"payload=%7B%7D".to_vec(),
            Some("application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            "text/plain JSON",
            envelope(vec![task_created("x")]).to_string().into_bytes(),
            Some("text/plain"),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            "2 MiB",
            two_mib.into_bytes(),
            json,
            413,
            "payload_too_large",
            "1048576",
        ),
    ];

    for (what, body, content_type, status, code, message) in cases {
        let reply = relay.post_raw(body, content_type).await;

        assert_error(&reply, status, code, message, what);
    }
    let texts = deliver(&relay, envelope(vec![task_created("barrier")]), "chat", 1).await;
    assert!(
        texts[0].contains("*barrier*"),
        "nothing before the barrier: {texts:?}"
    );
}

#[tokio::test]
async fn refuses_other_methods_and_paths_with_a_json_error() {
    let relay = slack_relay().await;
    let body = || envelope(vec![task_created("x")]).to_string().into_bytes();
    let json = Some("application/json");

    let get = relay.request(Method::GET, "/redbrick", vec![], None).await;
    let put = relay.request(Method::PUT, "/redbrick", body(), json).await;
    let wrong = relay.request(Method::POST, "/redbrik", body(), json).await;
    let root = relay.request(Method::GET, "/", vec![], None).await;
    let texts = deliver(&relay, envelope(vec![task_created("barrier")]), "chat", 1).await;

    assert_error(&get, 405, "method_not_allowed", "use POST, not GET", "GET");
    assert_error(&put, 405, "method_not_allowed", "use POST, not PUT", "PUT");
    assert_error(&wrong, 404, "not_found", "no such path", "wrong path");
    assert_error(&root, 404, "not_found", "no such path", "root");
    assert!(
        texts[0].contains("*barrier*"),
        "nothing before the barrier: {texts:?}"
    );
}

#[tokio::test]
async fn accepts_json_with_a_charset_and_without_a_content_type() {
    let relay = slack_relay().await;
    let body = || envelope(vec![task_created("x")]).to_string().into_bytes();

    let charset = relay
        .post_raw(body(), Some("application/json; charset=utf-8"))
        .await;
    let upper = relay.post_raw(body(), Some("Application/JSON")).await;
    let missing = relay.post_raw(body(), None).await;

    assert_eq!(charset.status, 200, "{:?}", charset.body);
    assert_eq!(upper.status, 200, "{:?}", upper.body);
    assert_eq!(missing.status, 200, "{:?}", missing.body);
    relay.fake("chat").wait_for(3).await;
}

#[tokio::test]
async fn stop_true_ends_rule_evaluation_end_to_end() {
    let relay = Relay::builder()
        .slack("chat")
        .config(
            r#"[[rules]]
name = "review"
stages = ["Review_*"]
to = ["chat"]
text = "{{rule}}: {{stage}}"
stop = true

[[rules]]
name = "everything"
to = ["chat"]
text = "{{rule}}: {{stage}}"
"#,
        )
        .start()
        .await;

    let review = relay
        .post(&envelope(vec![task_entered_stage("Review_2")]))
        .await;
    let label = relay
        .post(&envelope(vec![task_entered_stage("Label")]))
        .await;

    let texts = relay.fake("chat").wait_for_texts(2).await;
    assert_eq!(review.body["deliveries"], 1, "the stop rule alone fires");
    assert_eq!(label.body["deliveries"], 1);
    assert_eq!(texts, ["review: Review_2", "everything: Label"]);
}

#[tokio::test]
async fn exclude_stages_keeps_those_stages_out_end_to_end() {
    let relay = Relay::builder()
        .slack("chat")
        .config(
            r#"[[rules]]
name = "progress"
events = ["TASK_ENTERED_STAGE"]
exclude_stages = ["Output", "Failed_*"]
to = ["chat"]
text = "{{stage}}"
"#,
        )
        .start()
        .await;
    let stages = ["Output", "Failed_Review_1", "Label", "END"];

    let payload = stages.iter().map(|s| task_entered_stage(s)).collect();
    let reply = relay.post(&envelope(payload)).await;

    let texts = relay.fake("chat").wait_for_texts(2).await;
    assert_eq!(reply.body["deliveries"], 2);
    assert_eq!(texts, ["Label", "END"]);
}

#[tokio::test]
async fn a_failing_destination_does_not_hold_up_another() {
    let relay = Relay::builder()
        .slack("down")
        .slack("up")
        .text_rule("all", &["down", "up"], "{{task_name}}")
        .start()
        .await;
    relay
        .fake("down")
        .answer_next(100, Answer::status(500, "rollup_error"));

    let payload = ["a", "b", "c"].iter().map(|n| task_created(n)).collect();
    relay.post(&envelope(payload)).await;

    let up = relay.fake("up").wait_for_texts(3).await;
    let down = relay.fake("down").wait_for_texts(1).await;
    assert_eq!(up, ["a", "b", "c"]);
    assert_eq!(
        down,
        ["a"],
        "`down` holds its later messages behind the first"
    );
}

#[tokio::test]
async fn a_stalled_destination_does_not_hold_up_another() {
    let relay = Relay::builder()
        .slack("stalled")
        .teams("up")
        .text_rule("all", &["stalled", "up"], "{{task_name}}")
        .start()
        .await;
    let stall = Answer::stall(Platform::Slack, support::WAIT * 10);
    relay.fake("stalled").answer_next(1, stall);

    let payload = ["a", "b", "c"].iter().map(|n| task_created(n)).collect();
    let started = std::time::Instant::now();
    relay.post(&envelope(payload)).await;

    let up = relay.fake("up").wait_for_texts(3).await;
    assert_eq!(up, ["a", "b", "c"]);
    assert!(
        started.elapsed() < support::WAIT,
        "took {:?} although only `stalled` was slow",
        started.elapsed()
    );
    assert_eq!(relay.fake("stalled").wait_for_texts(1).await, ["a"]);
}

#[tokio::test]
async fn an_unnamed_project_is_shown_by_its_id() {
    let relay = slack_relay().await;
    let other = "99999999-2222-4b3c-8d4e-000000000009";
    let mut created = event("TASK_CREATED", json!({"taskName": "x"}));
    created["data"]["projectId"] = json!(other);

    let texts = deliver(&relay, envelope(vec![created]), "chat", 1).await;

    let url = project_url().replace(PROJECT, other);
    assert_eq!(
        texts[0],
        format!("New task *x* in <{url}|{other}>, uploaded by {USER}")
    );
}

#[tokio::test]
async fn slack_text_over_the_limit_is_cut_visibly_below_it() {
    let relay = Relay::builder()
        .slack("chat")
        .text_rule("all", &["chat"], "{{task_name}}")
        .start()
        .await;
    let name = "R&D ".repeat(12_000);

    let texts = deliver(&relay, envelope(vec![task_created(&name)]), "chat", 1).await;

    let chars = texts[0].chars().count();
    let max = support::SLACK_MAX_TEXT_CHARS;
    assert!(chars <= max && chars > max - 8, "{chars} characters");
    assert!(
        !texts[0].contains("&amp… "),
        "an entity is never cut in half"
    );
    assert!(
        texts[0].starts_with("R&amp;D R&amp;D"),
        "{}",
        &texts[0][..40]
    );
    assert!(texts[0].ends_with("… (truncated)"), "the cut is visible");
    relay.assert_no_violations();
}

#[tokio::test]
async fn teams_card_over_the_size_limit_is_cut_to_fit() {
    let relay = Relay::builder()
        .teams("leads")
        .text_rule("all", &["leads"], "{{task_name}}")
        .start()
        .await;
    let name = "\"*_ \u{1fac1}".repeat(6_000);

    let received = deliver_raw(&relay, envelope(vec![task_created(&name)]), "leads").await;

    assert!(
        received.text().ends_with("… (truncated)"),
        "the cut is visible"
    );
    relay.assert_no_violations();
}

/// Posts `body` and returns the first request `destination` received.
async fn deliver_raw(relay: &Relay, body: Value, destination: &str) -> support::Received {
    let reply = relay.post(&body).await;
    assert_eq!(reply.status, 200, "answer: {:?}", reply.body);
    relay.fake(destination).wait_for(1).await.remove(0)
}

#[tokio::test]
async fn a_missing_or_unreadable_timestamp_renders_the_time_of_receipt() {
    let relay = Relay::builder()
        .slack("chat")
        .text_rule("t", &["chat"], r#"{{time timestamp "%Y-%m-%d"}}"#)
        .start()
        .await;
    let mut missing = task_created("missing");
    missing.as_object_mut().unwrap().remove("timestamp");
    let mut unreadable = task_created("unreadable");
    unreadable["timestamp"] = json!("soon");
    let mut null = task_created("null");
    null["timestamp"] = Value::Null;
    let before = chrono::Utc::now().format("%Y-%m-%d").to_string();

    let texts = deliver(&relay, envelope(vec![missing, unreadable, null]), "chat", 3).await;

    let after = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for text in texts {
        assert!(
            text == before || text == after,
            "{text} is not today ({before})"
        );
    }
}

#[tokio::test]
async fn a_message_that_renders_empty_is_not_sent() {
    let relay = Relay::builder()
        .slack("chat")
        .teams("leads")
        .text_rule(
            "named-only",
            &["chat", "leads"],
            "{{#if task_name}}{{task_name}}{{/if}}\n",
        )
        .start()
        .await;

    let reply = relay
        .post(&envelope(vec![
            task_entered_stage("Label"),
            task_created("named"),
        ]))
        .await;

    let slack = relay.fake("chat").wait_for_texts(1).await;
    let teams = relay.fake("leads").wait_for_texts(1).await;
    assert_eq!(
        slack,
        ["named"],
        "the empty message comes first if it is sent"
    );
    assert_eq!(
        teams,
        ["named"],
        "the empty message comes first if it is sent"
    );
    assert_eq!(reply.body["deliveries"], 2);
    relay.assert_no_violations();
}

#[tokio::test]
async fn an_event_sent_again_is_answered_but_not_delivered_twice() {
    let relay = slack_relay().await;
    let body = envelope(vec![task_created("once")]);

    let first = relay.post(&body).await;
    let again = relay.post(&body).await;
    let texts = deliver(&relay, envelope(vec![task_created("barrier")]), "chat", 2).await;

    assert_eq!(first.body["deliveries"], 1);
    assert_eq!(
        again.body,
        json!({"received": 1, "matched": 0, "skipped": 0, "duplicates": 1, "deliveries": 0})
    );
    assert!(texts[0].contains("*once*"), "{texts:?}");
    assert!(texts[1].contains("*barrier*"), "sent once only: {texts:?}");
}

#[tokio::test]
async fn a_huge_stage_name_leaves_the_task_link_out_and_the_text_in() {
    let relay = Relay::builder()
        .slack("chat")
        .teams("leads")
        .rule("all", &["chat", "leads"])
        .start()
        .await;
    let stage = "S".repeat(50_000);

    let reply = relay
        .post(&envelope(vec![task_entered_stage(&stage)]))
        .await;

    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let slack = relay.fake("chat").wait_for_texts(1).await;
    let head = format!("Task {TASK} entered *");
    let shown = support::SLACK_MAX_TEXT_CHARS - "… (truncated)".chars().count() - head.len();
    assert_eq!(slack[0], format!("{head}{}… (truncated)", &stage[..shown]));
    let teams = relay.fake("leads").wait_for(1).await.remove(0);
    let card = teams.json();
    let text = card
        .pointer("/attachments/0/content/body/0/text")
        .and_then(Value::as_str)
        .unwrap();
    assert!(
        text.starts_with(&format!("Task {TASK} entered **SSSS")),
        "{}",
        &text[..80]
    );
    assert!(text.ends_with("S… (truncated)"), "the cut is visible");
    assert!(
        text.len() > 20_000,
        "the text kept the room: {}",
        text.len()
    );
    assert_eq!(
        card.pointer("/attachments/0/content/actions"),
        Some(&json!([{
            "type": "Action.OpenUrl", "title": "Open in RedBrick", "url": project_url()
        }]))
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn separators_and_direction_overrides_cannot_reshape_a_message() {
    let relay = Relay::builder()
        .slack("chat")
        .teams("leads")
        .text_rule(
            "all",
            &["chat", "leads"],
            "{{task_name}} by {{bold updated_by}}",
        )
        .start()
        .await;
    let mut event = task_created("scan\u{2028}- item\u{2029}# title \u{202e}fdp.exe");
    event["data"]["updatedBy"] = json!("\u{2067}عمر\u{2069}\u{202d}x");

    relay.post(&envelope(vec![event])).await;

    let slack = relay.fake("chat").wait_for_texts(1).await;
    let teams = relay.fake("leads").wait_for_texts(1).await;
    assert_eq!(slack, ["scan - item # title fdp.exe by *عمرx*"]);
    assert_eq!(teams, [r"scan - item \# title fdp.exe by **عمرx**"]);
    relay.assert_no_violations();
}

#[tokio::test]
async fn slack_text_is_never_cut_inside_a_link() {
    let relay = Relay::builder()
        .slack("chat")
        .text_rule("all", &["chat"], "New: {{link project_url task_name}} done")
        .start()
        .await;
    let name = "N".repeat(50_000);

    let texts = deliver(&relay, envelope(vec![task_created(&name)]), "chat", 1).await;

    assert_eq!(texts, ["New: … (truncated)"]);
    relay.assert_no_violations();
}

#[tokio::test]
async fn teams_text_is_never_cut_inside_a_link_or_a_mention() {
    let relay = Relay::builder()
        .teams("team")
        .config("[people.\"annotator@example.com\"]\nteams = \"ann@org.example\"\nname = \"Ann\"\n")
        .text_rule(
            "link",
            &["team"],
            "New: {{link project_url task_name}} done",
        )
        .text_rule(
            "mention",
            &["team"],
            "{{task_name}}{{mention updated_by}} moved the task on to the next stage",
        )
        .start()
        .await;
    // The text is cut near 23,400 bytes: this name puts the cut inside `<at>Ann</at>`.
    let link_name = "N".repeat(50_000);
    let mention_name = "M".repeat(23_400);

    let reply = relay.post(&envelope(vec![task_created(&link_name)])).await;
    assert_eq!(reply.status, 200);
    let first = relay.fake("team").wait_for(2).await;
    relay
        .post(&envelope(vec![task_created(&mention_name)]))
        .await;
    let all = relay.fake("team").wait_for(4).await;

    let texts: Vec<String> = all.iter().map(|r| r.text()).collect();
    assert!(
        first.iter().any(|r| r.text() == "New: … (truncated)"),
        "the link is left out whole"
    );
    assert!(
        texts.contains(&format!("{mention_name}… (truncated)")),
        "the mention is left out whole"
    );
    for (request, text) in all.iter().zip(&texts) {
        let entities = request.json()["attachments"][0]["content"]["msteams"]["entities"].clone();
        let mentioned = text.contains("<at>Ann</at>");
        assert_eq!(entities.is_array(), mentioned, "{entities}");
        assert!(
            !text.contains("<at>") || mentioned,
            "half a mention: {}",
            &text[text.len() - 40..]
        );
        assert!(!text.contains("(truncated)") || text.ends_with("… (truncated)"));
    }
    relay.assert_no_violations();
}
