use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::*;
use crate::event::parse_envelope;
use crate::outbox::IncomingEvent;
use crate::route::route;
use crate::tasks::Recall;

const PROJECT: &str = "7d3f2e10-2222-4b3c-8d4e-000000000002";

/// A config with a Slack destination `chat` and a rule rolling stage events up per
/// project and stage, its store in `dir`.
fn config(dir: &Path) -> Config {
    let toml = format!(
        r#"[store]
path = "relay.db"

[projects]
"{PROJECT}" = "Chest CT"

[destinations.chat]
kind = "slack"
url = "https://hooks.slack.com/services/T0/B0/X"

[[rules]]
name = "bulk"
events = ["TASK_ENTERED_STAGE"]
group_window = "30s"
group_by = ["project", "stage"]
to = ["chat"]
"#
    );
    let path = dir.join("relay.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load_with_env(&path, |_| None).unwrap()
}

/// `n` stage events into `stage`, for tasks `task-00`, `task-01`, ...
fn stage_events(n: usize, stage: &str) -> Vec<crate::event::Event> {
    let payload: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event": "TASK_ENTERED_STAGE", "id": format!("{stage}-{i}"), "timestamp": 1,
                   "data": {"orgId": "o", "projectId": PROJECT, "taskId": format!("task-{i:02}"),
                            "stageName": stage}})
        })
        .collect();
    parse_envelope(&json!({ "payload": payload }), Utc::now())
        .unwrap()
        .events
}

/// Routes and accepts `events` as a webhook does, holding them for their roll-ups.
async fn accept(outbox: &Outbox, config: &Config, events: &[crate::event::Event], now: i64) {
    let held: Vec<Vec<Held>> = events
        .iter()
        .map(|event| route(config, event, &Recall::default()).held)
        .collect();
    let incoming = events
        .iter()
        .map(|event| IncomingEvent {
            event_id: event.id.clone(),
            deliveries: Vec::new(),
        })
        .collect();
    outbox
        .accept_with(
            incoming,
            now,
            move |conn, accepted| hold(conn, &held, accepted, now),
            drop,
        )
        .await
        .unwrap();
}

fn texts(outbox: &Outbox) -> Vec<String> {
    let rows = outbox.list(None, None, 100).unwrap();
    rows.iter()
        .map(|row| {
            let pending = outbox
                .read_blocking(|conn| {
                    Ok(conn.query_row(
                        "SELECT body FROM deliveries WHERE id = ?1",
                        [row.id],
                        |r| r.get::<_, Vec<u8>>(0),
                    )?)
                })
                .unwrap();
            let body: Value = serde_json::from_slice(&pending).unwrap();
            body["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn expected_review_rollup(count: usize) -> String {
    let project = format!("https://app.redbrickai.com/o/projects/{PROJECT}");
    let mut text = format!("{count} tasks entered *Review_1* in <{project}|Chest CT>");
    for i in 0..count.min(HEAD) {
        let task = format!("task-{i:02}");
        text.push_str(&format!(
            "\n- <{project}/tool/Review_1?taskid={task}|{task}>"
        ));
    }
    if count > HEAD {
        text.push_str(&format!("\nand {} more", count - HEAD));
    }
    text
}

#[tokio::test(start_paused = true)]
async fn fifty_events_in_the_window_become_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config(dir.path()));
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    let (clock, start) = (Clock::new(), tokio::time::Instant::now());
    accept(
        &outbox,
        &config,
        &stage_events(50, "Review_1"),
        clock.now_ms(),
    )
    .await;
    let (_keep, config_rx) = watch::channel(config);
    let (woken_tx, mut woken) = tokio::sync::mpsc::unbounded_channel();
    let wake = move |destination: &str| drop(woken_tx.send(destination.to_owned()));
    let sender = tokio::spawn(run(outbox.clone(), config_rx, clock, wake));

    tokio::time::sleep(Duration::from_secs(29)).await;
    let before_the_end = (texts(&outbox), woken.try_recv().ok());
    let destination = woken.recv().await;

    sender.abort();
    assert_eq!(
        before_the_end,
        (vec![], None),
        "sent before the window ended"
    );
    assert_eq!(destination.as_deref(), Some("chat"));
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(texts(&outbox), [expected_review_rollup(50)]);
}

#[tokio::test]
async fn held_events_survive_a_restart_and_go_out_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    accept(&outbox, &config, &stage_events(3, "Review_1"), 1_000).await;
    drop(outbox);

    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    let early = flush(&outbox, &config, 30_999).await.unwrap();
    let due = flush(&outbox, &config, 31_000).await.unwrap();
    let again = flush(&outbox, &config, 90_000).await.unwrap();

    assert_eq!(
        (early.len(), due, again.len()),
        (0, vec!["chat".to_owned()], 0)
    );
    assert_eq!(texts(&outbox), [expected_review_rollup(3)]);
}

#[tokio::test]
async fn group_by_splits_roll_ups_and_a_later_event_opens_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    accept(&outbox, &config, &stage_events(2, "Review_1"), 0).await;
    accept(&outbox, &config, &stage_events(1, "Label"), 10_000).await;

    flush(&outbox, &config, 30_000).await.unwrap();
    let first = texts(&outbox);
    flush(&outbox, &config, 40_000).await.unwrap();

    assert_eq!(
        first.len(),
        1,
        "only the Review_1 roll-up is due: {first:?}"
    );
    assert_eq!(texts(&outbox).len(), 2);
    assert!(texts(&outbox)[0].starts_with("1 task entered *Label*"));
}

#[test]
fn the_context_names_what_all_events_share() {
    let items = [
        json!({"event": "TASK_ENTERED_STAGE", "stage": "Label", "project": "A"}),
        json!({"event": "TASK_ENTERED_STAGE", "stage": "Review_1", "project": "A"}),
    ];

    let context = context(&items, "r", "d");

    assert_eq!(context["event"], "TASK_ENTERED_STAGE");
    assert_eq!(context["project"], "A");
    assert_eq!(context["stage"], Value::Null);
    assert_eq!(
        (context["count"].clone(), context["more"].clone()),
        (json!(2), json!(0))
    );
}
