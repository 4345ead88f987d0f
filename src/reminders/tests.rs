use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::*;
use crate::event::parse_envelope;
use crate::outbox::IncomingEvent;

const PROJECT: &str = "7d3f2e10-2222-4b3c-8d4e-000000000002";
const TASK: &str = "c4a1b2d3-3333-4c4d-9e5f-000000000003";
const MINUTE: i64 = 60_000;

/// A config with a Slack destination `chat` and a reminder for tasks waiting 10 minutes
/// in a review stage, repeated every 30 minutes; its store in `dir`.
fn config(dir: &Path) -> Config {
    let toml = format!(
        r#"[store]
path = "relay.db"

[projects]
"{PROJECT}" = "Chest CT"

[destinations.chat]
kind = "slack"
url = "https://hooks.slack.com/services/T0/B0/X"

[[reminders]]
name = "review-waiting"
stages = ["Review_*"]
after = "10m"
repeat = "30m"
to = ["chat"]
"#
    );
    let path = dir.join("relay.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load_with_env(&path, |_| None).unwrap()
}

fn event(kind: &str, data: Value, at: i64) -> Value {
    let mut full = json!({"orgId": "o", "projectId": PROJECT, "taskId": TASK});
    full.as_object_mut()
        .unwrap()
        .extend(data.as_object().unwrap().clone());
    json!({"event": kind, "id": format!("{kind}-{at}"), "timestamp": at, "data": full})
}

/// Accepts `payload` as a webhook does: the task memory learns it and reminders are owed.
async fn accept(outbox: &Outbox, config: &Config, payload: Vec<Value>) {
    let events = parse_envelope(&json!({ "payload": payload }), Utc::now())
        .unwrap()
        .events;
    let incoming = events
        .iter()
        .map(|e| IncomingEvent {
            event_id: e.id.clone(),
            deliveries: Vec::new(),
        })
        .collect();
    let reminders = config.reminders.clone();
    outbox
        .accept_with(
            incoming,
            0,
            move |conn, accepted| {
                let changes = tasks::record(conn, &tasks::Recent::new(), &events, accepted, 0)?;
                schedule(conn, &reminders, &events, &changes)
            },
            drop,
        )
        .await
        .unwrap();
}

/// Creation of `CT_0042` and its move into `Review_1`, both at `at`.
fn created_and_in_review(at: i64) -> Vec<Value> {
    vec![
        event("TASK_CREATED", json!({"taskName": "CT_0042"}), at),
        event("TASK_ENTERED_STAGE", json!({"stageName": "Review_1"}), at),
    ]
}

fn texts(outbox: &Outbox) -> Vec<String> {
    let bodies: Vec<Vec<u8>> = outbox
        .read_blocking(|conn| {
            let mut select = conn.prepare("SELECT body FROM deliveries ORDER BY id")?;
            let rows = select.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .unwrap();
    bodies
        .iter()
        .map(|body| {
            let body: Value = serde_json::from_slice(body).unwrap();
            body["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn reminder_text(waited: &str) -> String {
    let project = format!("https://app.redbrickai.com/o/projects/{PROJECT}");
    format!(
        "Task <{project}/tool/Review_1?taskid={TASK}|CT_0042> has waited {waited} in \
         *Review_1* in <{project}|Chest CT>"
    )
}

#[tokio::test(start_paused = true)]
async fn a_reminder_fires_once_its_wait_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config(dir.path()));
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    let (clock, start) = (Clock::new(), tokio::time::Instant::now());
    accept(&outbox, &config, created_and_in_review(clock.now_ms())).await;
    let (_keep, config_rx) = watch::channel(config);
    let (woken_tx, mut woken) = tokio::sync::mpsc::unbounded_channel();
    let wake = move |destination: &str| drop(woken_tx.send(destination.to_owned()));
    let sender = tokio::spawn(run(outbox.clone(), config_rx, clock, wake));

    tokio::time::sleep(Duration::from_secs(9 * 60 + 59)).await;
    let before = (texts(&outbox), woken.try_recv().ok());
    let destination = woken.recv().await;

    sender.abort();
    assert_eq!(before, (vec![], None), "sent before the wait was over");
    assert_eq!(destination.as_deref(), Some("chat"));
    assert!(
        start.elapsed() >= Duration::from_secs(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(texts(&outbox), [reminder_text("10 min")]);
}

#[tokio::test]
async fn a_reminder_is_cancelled_when_the_task_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    accept(&outbox, &config, created_and_in_review(0)).await;
    let moved = event(
        "TASK_ENTERED_STAGE",
        json!({"stageName": "Label"}),
        5 * MINUTE,
    );
    accept(&outbox, &config, vec![moved]).await;

    let sent = fire(&outbox, &config, 11 * MINUTE).await.unwrap();
    let later = fire(&outbox, &config, 100 * MINUTE).await.unwrap();

    assert!(sent.is_empty() && later.is_empty(), "{sent:?} {later:?}");
    assert!(texts(&outbox).is_empty());
}

#[tokio::test]
async fn a_move_between_reading_a_deadline_and_storing_its_message_wins() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    accept(&outbox, &config, created_and_in_review(0)).await;
    let moved = event(
        "TASK_ENTERED_STAGE",
        json!({"stageName": "Review_2"}),
        11 * MINUTE,
    );

    let read = plan(&outbox, &config, 11 * MINUTE).await.unwrap();
    accept(&outbox, &config, vec![moved]).await;
    let woken = commit(&outbox, read, 11 * MINUTE).await.unwrap();
    let owed = outbox
        .read(|conn| Ok(store::due(conn, i64::MAX)?))
        .await
        .unwrap();

    assert!(woken.is_empty(), "{woken:?}");
    assert!(
        texts(&outbox).is_empty(),
        "a message for a stage the task left"
    );
    assert_eq!(
        owed,
        [Due {
            task_id: TASK.into(),
            reminder: "review-waiting".into(),
            stage: "Review_2".into(),
            // Event timestamps under 10^12 are seconds.
            due_at: 11 * MINUTE * 1_000 + 10 * MINUTE,
        }],
        "the new stage's deadline is kept"
    );
}

#[tokio::test]
async fn a_reminder_is_cancelled_when_the_task_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    accept(&outbox, &config, created_and_in_review(0)).await;
    let deleted = event("TASK_DELETED", json!({"taskName": "CT_0042"}), MINUTE);
    accept(&outbox, &config, vec![deleted]).await;

    fire(&outbox, &config, 11 * MINUTE).await.unwrap();

    assert!(texts(&outbox).is_empty());
}

#[tokio::test]
async fn deadlines_survive_a_restart_and_repeat_until_the_task_moves() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    accept(&outbox, &config, created_and_in_review(0)).await;
    drop(outbox);

    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    let early = fire(&outbox, &config, 10 * MINUTE - 1).await.unwrap();
    let first = fire(&outbox, &config, 10 * MINUTE).await.unwrap();
    let between = fire(&outbox, &config, 39 * MINUTE).await.unwrap();
    let second = fire(&outbox, &config, 40 * MINUTE + 5_000).await.unwrap();
    let moved = event(
        "TASK_ENTERED_STAGE",
        json!({"stageName": "Label"}),
        41 * MINUTE,
    );
    accept(&outbox, &config, vec![moved]).await;
    let after_the_move = fire(&outbox, &config, 70 * MINUTE).await.unwrap();

    let counts = [early.len(), first.len(), between.len(), second.len()];
    assert_eq!(counts, [0, 1, 0, 1]);
    assert!(after_the_move.is_empty());
    assert_eq!(
        texts(&outbox),
        [reminder_text("10 min"), reminder_text("40 min")]
    );
}

#[test]
fn the_next_deadline_keeps_the_beat() {
    let every = Duration::from_secs(60);

    assert_eq!(next_due(1_000, every, 1_000), 61_000);
    assert_eq!(next_due(1_000, every, 150_000), 181_000);
}

#[test]
fn a_beat_past_the_end_of_time_is_never_due_again() {
    let ages = Duration::from_secs(999_999_999_999 * 86_400);

    assert_eq!(next_due(1_000, ages, 2_000), i64::MAX);
    assert_eq!(
        next_due(i64::MAX - 5, Duration::from_millis(10), 0),
        i64::MAX
    );
}

#[test]
fn a_link_too_long_to_send_is_left_out_of_the_context() {
    let task = Task {
        task_id: "t".repeat(3_000),
        org_id: "o".into(),
        project_id: PROJECT.into(),
        name: None,
        stage: Some("Review_1".into()),
        previous_stage: None,
        entered_at: Some(0),
        moved_by: None,
        deleted: false,
        last_event_at: 0,
        heard_at: 0,
    };
    let links = Links::new("https://app.redbrickai.com");

    let context = context("r", &task, None, &links, 60_000);

    assert_eq!(context["task_url"], Value::Null);
    assert!(context["project_url"].is_string());
    assert_eq!(context["waited"], "1 min");
}
