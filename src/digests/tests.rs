use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::*;
use crate::event::parse_envelope;
use crate::outbox::IncomingEvent;

const PROJECT: &str = "7d3f2e10-2222-4b3c-8d4e-000000000002";
const TASK: &str = "c4a1b2d3-3333-4c4d-9e5f-000000000003";
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// A config with a Slack destination `chat` and a digest `morning` at 09:00 in Paris,
/// with `extra` keys added to the digest; its store in `dir`.
fn config(dir: &Path, extra: &str) -> Config {
    let toml = format!(
        r#"[store]
path = "relay.db"

[projects]
"{PROJECT}" = "Chest CT"

[destinations.chat]
kind = "slack"
url = "https://hooks.slack.com/services/T0/B0/X"

[[digests]]
name = "morning"
at = "09:00"
timezone = "Europe/Paris"
to = ["chat"]
{extra}
"#
    );
    let path = dir.join("relay.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load_with_env(&path, |_| None).unwrap()
}

fn ms(utc: &str) -> i64 {
    DateTime::parse_from_rfc3339(utc)
        .unwrap()
        .timestamp_millis()
}

fn event(kind: &str, data: Value, at: i64) -> Value {
    let mut full = json!({"orgId": "o", "projectId": PROJECT, "taskId": TASK});
    full.as_object_mut()
        .unwrap()
        .extend(data.as_object().unwrap().clone());
    json!({"event": kind, "id": format!("{kind}-{at}"), "timestamp": at, "data": full})
}

/// Accepts `payload` received at `now` as a webhook does: changes are logged and the task
/// memory learns them.
async fn accept(outbox: &Outbox, payload: Vec<Value>, now: i64) {
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
    outbox
        .accept_with(
            incoming,
            now,
            move |conn, accepted| {
                let changes = tasks::record(conn, &tasks::Recent::new(), &events, accepted, now)?;
                note(conn, &events, &changes, now)
            },
            drop,
        )
        .await
        .unwrap();
}

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

/// The times among `start`, `start + every`, ... up to `end` at which a fire sent something.
async fn fired_between(outbox: &Outbox, config: &Config, (start, end): (i64, i64)) -> Vec<i64> {
    let mut fired = Vec::new();
    let mut now = start;
    while now <= end {
        if !fire(outbox, config, now).await.unwrap().is_empty() {
            fired.push(now);
        }
        now += 5 * MINUTE;
    }
    fired
}

#[tokio::test]
async fn a_digest_fires_at_nine_in_its_zone_not_at_nine_utc() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    fire(&outbox, &config, ms("2026-01-04T12:00:00Z"))
        .await
        .unwrap();

    let day = (ms("2026-01-05T00:00:00Z"), ms("2026-01-05T23:55:00Z"));
    let fired = fired_between(&outbox, &config, day).await;

    assert_eq!(
        fired,
        [ms("2026-01-05T08:00:00Z")],
        "09:00 CET is 08:00 UTC"
    );
    assert_eq!(texts(&outbox).len(), 1);
}

#[tokio::test]
async fn a_digest_fires_once_at_nine_local_on_daylight_saving_change_days() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    fire(&outbox, &config, ms("2026-03-28T12:00:00Z"))
        .await
        .unwrap();

    let spring = (ms("2026-03-28T22:00:00Z"), ms("2026-03-29T21:55:00Z"));
    let spring_fired = fired_between(&outbox, &config, spring).await;
    fire(&outbox, &config, ms("2026-10-24T12:00:00Z"))
        .await
        .unwrap();
    let autumn = (ms("2026-10-24T22:00:00Z"), ms("2026-10-25T22:55:00Z"));
    let autumn_fired = fired_between(&outbox, &config, autumn).await;

    assert_eq!(spring_fired, [ms("2026-03-29T07:00:00Z")], "09:00 CEST");
    assert_eq!(autumn_fired, [ms("2026-10-25T08:00:00Z")], "09:00 CET");
}

#[tokio::test]
async fn a_digest_with_nothing_to_say_is_skipped_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "skip_empty = true");
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    fire(&outbox, &config, ms("2026-01-04T12:00:00Z"))
        .await
        .unwrap();

    let quiet = fire(&outbox, &config, ms("2026-01-05T08:00:00Z"))
        .await
        .unwrap();
    accept(
        &outbox,
        created_and_in_review(ms("2026-01-05T10:00:00Z")),
        ms("2026-01-05T10:00:00Z"),
    )
    .await;
    let busy = fire(&outbox, &config, ms("2026-01-06T08:00:00Z"))
        .await
        .unwrap();

    assert!(quiet.is_empty());
    assert_eq!(busy, ["chat"]);
    assert_eq!(texts(&outbox).len(), 1);
}

#[tokio::test]
async fn the_message_says_where_tasks_wait_and_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    fire(&outbox, &config, ms("2026-01-05T06:00:00Z"))
        .await
        .unwrap();
    let created = ms("2026-01-05T10:00:00Z");
    accept(&outbox, created_and_in_review(created), created).await;

    fire(&outbox, &config, ms("2026-01-06T08:00:00Z"))
        .await
        .unwrap();

    let project = format!("https://app.redbrickai.com/o/projects/{PROJECT}");
    assert_eq!(
        texts(&outbox),
        [format!(
            "*morning*: 1 task waits; in the last 1 d 2 h, 1 created, 1 moved, 0 deleted\n\
             <{project}|Chest CT>: 1 waiting, 1 created, 1 moved, 0 deleted\n\
             - *Review_1*: 1 waiting, oldest <{project}/tool/Review_1?taskid={TASK}|CT_0042> \
             for 22 h, 1 entered"
        )]
    );
}

#[tokio::test]
async fn counts_start_again_after_each_digest() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    fire(&outbox, &config, ms("2026-01-05T06:00:00Z"))
        .await
        .unwrap();
    let created = ms("2026-01-05T10:00:00Z");
    accept(&outbox, created_and_in_review(created), created).await;
    fire(&outbox, &config, ms("2026-01-06T08:00:00Z"))
        .await
        .unwrap();

    let moved_at = ms("2026-01-06T10:00:00Z");
    let moved = event(
        "TASK_ENTERED_STAGE",
        json!({"stageName": "Label"}),
        moved_at,
    );
    let late = event(
        "TASK_ENTERED_STAGE",
        json!({"stageName": "Review_0"}),
        created - HOUR,
    );
    accept(&outbox, vec![moved, late], moved_at).await;
    fire(&outbox, &config, ms("2026-01-07T08:00:00Z"))
        .await
        .unwrap();

    let second = &texts(&outbox)[1];
    assert!(
        second.starts_with(
            "*morning*: 1 task waits; in the last 1 d, 0 created, 1 moved, 0 deleted\n"
        ),
        "a late stage event moves nothing: {second}"
    );
    assert!(second.contains("- *Label*: 1 waiting"), "{second}");
    assert!(
        !second.contains("Review_1"),
        "a stage left empty is not listed: {second}"
    );
}

#[tokio::test]
async fn a_digest_is_neither_repeated_nor_lost_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    fire(&outbox, &config, ms("2026-01-04T12:00:00Z"))
        .await
        .unwrap();
    fire(&outbox, &config, ms("2026-01-05T08:00:00Z"))
        .await
        .unwrap();
    drop(outbox);

    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    let again = fire(&outbox, &config, ms("2026-01-05T08:00:01Z"))
        .await
        .unwrap();
    drop(outbox);
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    let late = fire(&outbox, &config, ms("2026-01-06T08:40:00Z"))
        .await
        .unwrap();
    drop(outbox);
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    let too_late = fire(
        &outbox,
        &config,
        ms("2026-01-07T08:00:00Z") + GRACE.as_millis() as i64 + MINUTE,
    )
    .await
    .unwrap();
    let next = fire(&outbox, &config, ms("2026-01-08T08:00:00Z"))
        .await
        .unwrap();

    assert!(again.is_empty(), "a sent digest is not sent again");
    assert_eq!(
        late,
        ["chat"],
        "a digest missed by 40 min goes out on start"
    );
    assert!(
        too_late.is_empty(),
        "a digest missed by more than the grace is passed over"
    );
    assert_eq!(next, ["chat"]);
    assert_eq!(texts(&outbox).len(), 3);
}

#[tokio::test]
async fn a_digest_covers_only_its_projects() {
    let dir = tempfile::tempdir().unwrap();
    let other = "7d3f2e10-2222-4b3c-8d4e-000000000009";
    let config = config(dir.path(), &format!("projects = [\"{other}\"]"));
    let outbox = Outbox::open(&config.delivery.store_path).unwrap();
    fire(&outbox, &config, ms("2026-01-05T06:00:00Z"))
        .await
        .unwrap();
    let created = ms("2026-01-05T10:00:00Z");
    accept(&outbox, created_and_in_review(created), created).await;

    fire(&outbox, &config, ms("2026-01-06T08:00:00Z"))
        .await
        .unwrap();

    assert_eq!(
        texts(&outbox),
        ["*morning*: 0 tasks wait; in the last 1 d 2 h, 0 created, 0 moved, 0 deleted"]
    );
}
