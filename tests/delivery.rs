//! Delivery against failing chat platforms: retries and their waits, dead letters,
//! timeouts, and repeats across a restart. Waits are measured in paused time, so a test
//! of a four-second backoff takes a fraction of a second and cannot race the machine.

mod support;

use std::time::Duration;

use serde_json::json;

use redbrick_relay::outbox::State;
use support::paused::{gaps, PausedTime};
use support::{envelope, eventually, task_created, Answer, Platform, Relay};

/// Far more paused time than any test here needs.
const LIMIT: Duration = Duration::from_secs(120);

/// So that no send times out while a test steps time, unless the test is about timeouts.
const NO_TIMEOUT: &str = "timeout = \"1h\"";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Slack `chat`, sent each task's name, with sends that never time out.
async fn chat_relay() -> Relay {
    Relay::builder()
        .slack("chat")
        .setting("chat", NO_TIMEOUT)
        .text_rule("all", &["chat"], "{{task_name}}")
        .start()
        .await
}

/// Steps paused time until `destination` has one delivery sent, which must happen.
async fn until_sent(time: &PausedTime, relay: &Relay, destination: &str) {
    let sent = time
        .advance_until(LIMIT, || {
            !relay.deliveries_to(destination, State::Sent).is_empty()
        })
        .await;
    assert!(sent, "nothing sent: {:#?}", relay.deliveries());
}

#[tokio::test(start_paused = true)]
async fn passing_failures_are_retried_with_growing_backoff_then_sent_once() {
    let time = PausedTime::new();
    let relay = chat_relay().await;
    let fake = relay.fake("chat");
    fake.answer_next(3, Answer::status(500, "rollup_error"));

    let reply = relay.post(&envelope(vec![task_created("once")])).await;
    until_sent(&time, &relay, "chat").await;

    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let requests = fake.requests();
    let answered: Vec<u16> = requests.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [500, 500, 500, 200], "four attempts, one success");
    assert!(requests.iter().all(|r| r.text() == "once"));
    let gaps = gaps(&requests.iter().map(|r| r.at).collect::<Vec<_>>());
    // 1 s doubling, each jittered over the upper half of its step.
    for (gap, least) in gaps.iter().zip([0.5, 1.0, 2.0]) {
        assert!(
            *gap >= secs(least),
            "waits {gaps:?}, each at least {least} s"
        );
    }
    let row = &relay.deliveries_to("chat", State::Sent)[0];
    let error = "500 Internal Server Error: rollup_error";
    assert_eq!((row.attempts, row.last_error.as_deref()), (4, Some(error)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_or_as_a_date_is_waited_out() {
    let time = PausedTime::new();
    let relay = chat_relay().await;
    let fake = relay.fake("chat");
    let seconds = Answer::status(429, "rate_limited").with_header("retry-after", "2");
    fake.answer_next(1, seconds);
    fake.answer_next(1, Answer::rate_limited_until(3));

    relay.post(&envelope(vec![task_created("slowly")])).await;
    until_sent(&time, &relay, "chat").await;

    let requests = fake.requests();
    let answered: Vec<u16> = requests.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [429, 429, 200]);
    let gaps = gaps(&requests.iter().map(|r| r.at).collect::<Vec<_>>());
    // Backoff alone would wait at most 1 s, then at most 2 s.
    assert!(
        gaps[0] >= secs(2.0),
        "`Retry-After: 2` waited {:?}",
        gaps[0]
    );
    assert!(gaps[1] >= secs(3.0), "the date waited {:?}", gaps[1]);
}

#[tokio::test]
async fn a_permanent_refusal_is_a_dead_letter_after_one_attempt() {
    let relay = Relay::builder()
        .slack("gone")
        .slack("up")
        .text_rule("all", &["gone", "up"], "{{task_name}}")
        .start()
        .await;
    relay
        .fake("gone")
        .answer_all(Some(Answer::status(404, "no_service")));

    let payload = vec![task_created("a"), task_created("b")];
    relay.post(&envelope(payload)).await;
    let up = relay.fake("up").wait_for_texts(2).await;
    eventually("two dead letters", || {
        relay.deliveries_to("gone", State::Dead).len() == 2
    })
    .await;

    assert_eq!(up, ["a", "b"], "the other destination is unaffected");
    let dead: Vec<_> = relay
        .deliveries_to("gone", State::Dead)
        .into_iter()
        .map(|row| (row.attempts, row.last_error.unwrap_or_default()))
        .collect();
    let error = "404 Not Found: no_service".to_owned();
    assert_eq!(dead, [(1, error.clone()), (1, error)]);
    assert_eq!(relay.fake("gone").texts_answered(404), ["a", "b"]);
    assert_eq!(relay.fake("gone").requests().len(), 2, "no retry");
}

#[tokio::test(start_paused = true)]
async fn a_destination_that_never_answers_is_abandoned_at_its_timeout_and_retried() {
    let time = PausedTime::new();
    let relay = Relay::builder()
        .slack("stalled")
        .setting("stalled", "timeout = \"10s\"")
        .teams("up")
        .setting("up", NO_TIMEOUT)
        .text_rule("all", &["stalled", "up"], "{{task_name}}")
        .start()
        .await;
    let (stalled, up) = (relay.fake("stalled"), relay.fake("up"));
    stalled.answer_next(1, Answer::stall(Platform::Slack, Duration::from_secs(3600)));

    let payload = ["a", "b", "c"].iter().map(|n| task_created(n)).collect();
    relay.post(&envelope(payload)).await;
    let done = time
        .advance_until(LIMIT, || {
            stalled.requests().len() == 4 && up.requests().len() == 3
        })
        .await;

    assert!(
        done,
        "stalled {:?}, up {:?}",
        stalled.requests(),
        up.requests()
    );
    let held = stalled.requests();
    let texts: Vec<String> = held.iter().map(|r| r.text()).collect();
    assert_eq!(texts, ["a", "a", "b", "c"], "`a` is retried, in order");
    let abandoned = held[0].at + secs(10.0);
    assert!(held[1].at >= abandoned, "retried before the timeout");
    for request in up.requests() {
        assert!(request.at < abandoned, "`up` waited for `stalled`");
    }
    let row = relay.deliveries_to("stalled", State::Sent).remove(0);
    assert_eq!(row.attempts, 2);
    let error = row.last_error.unwrap_or_default();
    assert!(error.starts_with("timed out"), "{error}");
}

#[tokio::test]
async fn an_event_sent_again_before_or_after_a_restart_is_delivered_once() {
    let mut relay = chat_relay().await;
    let body = envelope(vec![task_created("once")]);
    let duplicate =
        json!({"received": 1, "matched": 0, "skipped": 0, "duplicates": 1, "deliveries": 0});

    let first = relay.post(&body).await;
    relay.fake("chat").wait_for(1).await;
    let again = relay.post(&body).await;
    relay.restart().await;
    let after_restart = relay.post(&body).await;
    relay.post(&envelope(vec![task_created("barrier")])).await;

    let texts = relay.fake("chat").wait_for_texts(2).await;
    assert_eq!(first.body["deliveries"], 1);
    assert_eq!(again.body, duplicate);
    assert_eq!(after_restart.body, duplicate);
    assert_eq!(texts, ["once", "barrier"], "sent once only");
}

/// `HH:MM` of the current minute on the UTC clock, moved by `minutes`.
fn utc_minute(minutes: i64) -> String {
    let at = chrono::Utc::now() + chrono::Duration::minutes(minutes);
    at.format("%H:%M").to_string()
}

#[tokio::test(start_paused = true)]
async fn quiet_hours_hold_three_messages_and_release_them_as_one() {
    let time = PausedTime::new();
    // Quiet from the current minute for two: the relay starts inside it.
    let quiet = format!("quiet = \"{}-{}\"", utc_minute(0), utc_minute(2));
    let relay = Relay::builder()
        .slack("chat")
        .setting("chat", NO_TIMEOUT)
        .setting("chat", &quiet)
        .text_rule("all", &["chat"], "{{task_name}}")
        .start()
        .await;

    for name in ["CT_1", "CT_2", "CT_3"] {
        let reply = relay.post(&envelope(vec![task_created(name)])).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let held = relay.fake("chat").requests().len();
    let fake = relay.fake("chat");
    let released = time
        .advance_until(LIMIT, || !fake.requests().is_empty())
        .await;
    time.advance_until(secs(2.0), || false).await;

    assert!(released, "nothing sent: {:#?}", relay.deliveries());

    assert_eq!(held, 0, "nothing is sent during quiet hours");
    let texts: Vec<String> = relay
        .fake("chat")
        .requests()
        .iter()
        .map(|r| r.text())
        .collect();
    assert_eq!(
        texts,
        ["3 messages held during quiet hours:\n\nCT_1\n\nCT_2\n\nCT_3"]
    );
    let sent = relay.deliveries_to("chat", State::Sent);
    assert_eq!(
        sent.len(),
        3,
        "the merged ones are recorded as sent: {sent:#?}"
    );
}
