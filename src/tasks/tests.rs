use std::time::Duration;

use chrono::{TimeZone, Utc};
use rusqlite::Connection;
use serde_json::Value;

use super::*;
use crate::outbox::IncomingEvent;

const MINUTE: i64 = 60_000;

fn event(id: &str, kind: EventKind, at_minute: i64) -> Event {
    let ms = 1_717_000_000_000 + at_minute * MINUTE;
    Event {
        kind,
        id: id.into(),
        timestamp: Value::from(ms),
        time: Utc.timestamp_millis_opt(ms).unwrap(),
        org_id: "o".into(),
        project_id: "p".into(),
        task_id: "t".into(),
        task_name: None,
        stage: None,
        updated_by: Some("a@example.com".into()),
    }
}

fn created(name: &str, at_minute: i64) -> Event {
    let mut event = event(&format!("c{at_minute}"), EventKind::TaskCreated, at_minute);
    event.task_name = Some(name.into());
    event
}

fn entered(stage: &str, at_minute: i64) -> Event {
    let id = format!("s{stage}{at_minute}");
    let mut event = event(&id, EventKind::TaskEnteredStage, at_minute);
    event.stage = Some(stage.into());
    event
}

/// Applies `events` in order to an empty memory; returns each recall and the final task.
fn replay(events: &[Event]) -> (Vec<Recall>, Task) {
    let mut task = None;
    let mut recalls = Vec::new();
    for event in events {
        let (recall, after) = observe(task.take(), event, 0);
        recalls.push(recall);
        task = Some(after);
    }
    (recalls, task.expect("at least one event"))
}

#[test]
fn a_stage_event_recalls_the_name_and_the_stage_it_left() {
    let events = [
        created("CT_1", 0),
        entered("Label", 1),
        entered("Review_1", 193),
    ];

    let (recalls, task) = replay(&events);

    assert_eq!(
        recalls[2],
        Recall {
            task_name: Some("CT_1".into()),
            previous_stage: Some("Label".into()),
            time_in_previous_stage: Some(Duration::from_secs(192 * 60)),
        }
    );
    assert_eq!(
        recalls[1].previous_stage, None,
        "it entered its first stage"
    );
    assert_eq!(task.stage.as_deref(), Some("Review_1"));
    assert_eq!(task.previous_stage.as_deref(), Some("Label"));
}

#[test]
fn an_older_event_arriving_late_does_not_move_the_task_back() {
    let events = [entered("Review_1", 10), entered("Label", 5)];

    let (recalls, task) = replay(&events);

    assert_eq!(recalls[1], Recall::default());
    assert_eq!(task.stage.as_deref(), Some("Review_1"));
    assert_eq!(task.entered_at, Some(events[0].time.timestamp_millis()));
}

#[test]
fn a_repeated_move_changes_nothing() {
    let once = [created("CT_1", 0), entered("Label", 1)];
    let twice = [created("CT_1", 0), entered("Label", 1), entered("Label", 1)];

    let (_, after_once) = replay(&once);
    let (recalls, after_twice) = replay(&twice);

    assert_eq!(after_once, after_twice);
    assert_eq!(recalls[2].previous_stage, None);
}

#[test]
fn two_moves_in_the_same_second_both_count() {
    let (recalls, task) = replay(&[entered("Input", 0), entered("Label", 0)]);

    assert_eq!(recalls[1].previous_stage.as_deref(), Some("Input"));
    assert_eq!(task.stage.as_deref(), Some("Label"));
}

#[test]
fn deletion_is_remembered_with_the_name() {
    let mut deleted = event("d", EventKind::TaskDeleted, 9);
    deleted.task_name = Some("CT_1".into());

    let (_, task) = replay(&[entered("Label", 1), deleted]);

    assert!(task.deleted);
    assert_eq!(task.name.as_deref(), Some("CT_1"));
}

fn open_temp() -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("relay.db")).unwrap();
    (dir, outbox)
}

/// Accepts `events` (no deliveries) and records them, as a webhook does.
async fn remember(outbox: &Outbox, events: Vec<Event>, heard_at: i64) -> Vec<Acceptance> {
    remember_in(outbox, &Recent::new(), events, heard_at).await
}

/// `remember`, teaching `recent` the tasks written once the commit is durable.
async fn remember_in(
    outbox: &Outbox,
    recent: &Recent,
    events: Vec<Event>,
    heard_at: i64,
) -> Vec<Acceptance> {
    let recent = recent.clone();
    let memory = recent.clone();
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
            heard_at,
            move |conn, accepted| record(conn, &memory, &events, accepted, heard_at),
            move |changes| recent.learn(changes.into_iter().flatten().map(|c| c.after).collect()),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn memory_survives_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    let outbox = Outbox::open(&path).unwrap();
    remember(&outbox, vec![created("CT_1", 0), entered("Label", 1)], 5).await;
    drop(outbox);

    let outbox = Outbox::open(&path).unwrap();
    let recalls = recall(&outbox, &Recent::new(), &[entered("Review_1", 61)])
        .await
        .unwrap();

    assert_eq!(recalls[0].task_name.as_deref(), Some("CT_1"));
    assert_eq!(recalls[0].previous_stage.as_deref(), Some("Label"));
    assert_eq!(recalls[0].time_in_previous_stage.map(human).unwrap(), "1 h");
}

#[tokio::test]
async fn recall_reads_what_recent_learnt_at_each_commit_and_the_store_for_the_rest() {
    let (_dir, outbox) = open_temp();
    let recent = Recent::new();
    remember_in(&outbox, &recent, vec![created("CT_1", 0)], 5).await;
    remember_in(&outbox, &recent, vec![entered("Label", 1)], 6).await;
    let mut other = created("CT_2", 0);
    other.task_id = "other".into();
    other.id = "c-other".into();
    remember(&outbox, vec![other], 7).await;

    let held = recent.lookup(["t", "other"]);
    let next = [entered("Review_1", 61), entered("Review_1", 61)];
    let mut elsewhere = next[1].clone();
    elsewhere.task_id = "other".into();
    let events = [next[0].clone(), elsewhere];
    let recalls = recall(&outbox, &recent, &events).await.unwrap();

    assert_eq!(held.0["t"].stage.as_deref(), Some("Label"));
    assert_eq!(held.1, vec!["other".to_owned()]);
    assert_eq!(recalls[0].task_name.as_deref(), Some("CT_1"));
    assert_eq!(recalls[0].previous_stage.as_deref(), Some("Label"));
    assert_eq!(
        recalls[1].task_name.as_deref(),
        Some("CT_2"),
        "read from the store"
    );
}

#[tokio::test]
async fn a_webhook_moving_a_remembered_task_twice_counts_both_moves() {
    let (_dir, outbox) = open_temp();
    let recent = Recent::new();
    remember_in(&outbox, &recent, vec![entered("Label", 1)], 5).await;

    // The second move must see the first, written earlier in the same commit, not the
    // task as last committed.
    let moves = vec![entered("Review_1", 2), entered("Output", 3)];
    remember_in(&outbox, &recent, moves, 6).await;

    let (held, _) = recent.lookup(["t"]);
    let stored = list(&outbox, &Filter::default()).unwrap();
    for task in [&held["t"], &stored[0]] {
        assert_eq!(task.stage.as_deref(), Some("Output"));
        assert_eq!(task.previous_stage.as_deref(), Some("Review_1"));
    }
}

#[tokio::test]
async fn forgetting_tasks_empties_recent() {
    let (_dir, outbox) = open_temp();
    let recent = Recent::new();
    remember_in(&outbox, &recent, vec![entered("Label", 1)], 0).await;

    let forgotten = forget(&outbox, &recent, Duration::from_secs(60), 10 * MINUTE)
        .await
        .unwrap();

    assert_eq!(forgotten, 1);
    assert!(recent.is_empty());
    let recalls = recall(&outbox, &recent, &[entered("Review_1", 61)]).await;
    assert_eq!(recalls.unwrap()[0].previous_stage, None);
}

#[tokio::test]
async fn a_duplicate_event_is_not_remembered_twice() {
    let (_dir, outbox) = open_temp();
    remember(
        &outbox,
        vec![entered("Label", 1), entered("Review_1", 2)],
        5,
    )
    .await;

    let again = remember(&outbox, vec![entered("Label", 1)], 6).await;

    assert_eq!(again, vec![Acceptance::Duplicate]);
    let tasks = list(&outbox, &Filter::default()).unwrap();
    assert_eq!(tasks[0].stage.as_deref(), Some("Review_1"));
    assert_eq!(tasks[0].heard_at, 5, "a duplicate is not news of the task");
}

#[tokio::test]
async fn forgets_deleted_tasks_after_the_grace_and_silent_ones_after_the_age() {
    let (_dir, outbox) = open_temp();
    let mut deleted = event("d", EventKind::TaskDeleted, 2);
    deleted.task_id = "gone".into();
    let mut quiet = entered("Label", 1);
    quiet.task_id = "quiet".into();
    remember(&outbox, vec![quiet], 0).await;
    remember(&outbox, vec![deleted, entered("Label", 3)], 50 * MINUTE).await;
    let day = Duration::from_secs(86_400);

    let recent = Recent::new();
    let early = forget(&outbox, &recent, day, 100 * MINUTE).await.unwrap();
    let late = forget(&outbox, &recent, day, 111 * MINUTE).await.unwrap();
    let later = forget(&outbox, &recent, day, 24 * 60 * MINUTE + MINUTE)
        .await
        .unwrap();

    assert_eq!((early, late, later), (0, 1, 1));
    let left: Vec<String> = list(&outbox, &Filter::default())
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(left, ["t"]);
}

#[tokio::test]
async fn a_store_written_before_task_memory_is_migrated_with_its_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    let old = Connection::open(&path).unwrap();
    old.execute_batch(OLD_SCHEMA).unwrap();
    old.pragma_update(None, "user_version", 1).unwrap();
    drop(old);

    let outbox = Outbox::open(&path).unwrap();
    remember(&outbox, vec![created("CT_1", 0)], 5).await;

    let deliveries = outbox.list(None, None, 10).unwrap();
    assert_eq!(deliveries.len(), 1, "the old delivery is kept");
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    let task_indexes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' \
             AND sql IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, 8);
    assert_eq!(
        task_indexes, 0,
        "tasks are read by id only, through the primary key"
    );
    assert_eq!(list(&outbox, &Filter::default()).unwrap().len(), 1);
}

#[tokio::test]
async fn list_filters_by_project_and_stage_pattern() {
    let (_dir, outbox) = open_temp();
    let mut other = entered("Review_1", 2);
    other.task_id = "t2".into();
    other.project_id = "q".into();
    remember(&outbox, vec![entered("Review_2", 1), other], 0).await;
    let filter = |project: Option<&str>, stage: Option<&str>| Filter {
        project: project.map(str::to_owned),
        stage: stage.map(crate::rules::Pattern::new),
    };
    let ids = |filter: Filter| -> Vec<String> {
        let tasks = list(&outbox, &filter).unwrap();
        tasks.into_iter().map(|t| t.task_id).collect()
    };

    assert_eq!(ids(filter(None, None)), ["t", "t2"]);
    assert_eq!(ids(filter(Some("q"), None)), ["t2"]);
    assert_eq!(ids(filter(None, Some("Review_2"))), ["t"]);
    assert_eq!(ids(filter(None, Some("Review_*"))), ["t", "t2"]);
}

/// The outbox's schema at version 1, with one delivery, as the first release wrote it.
const OLD_SCHEMA: &str = "
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    destination TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_by_destination ON deliveries (destination, state, id);
CREATE TABLE seen_events (event_id TEXT PRIMARY KEY, seen_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX seen_events_by_age ON seen_events (seen_at);
INSERT INTO seen_events VALUES ('e0', 1);
INSERT INTO deliveries (event_id, rule, destination, body, state, created_at,
    next_attempt_at, updated_at) VALUES ('e0', 'r', 'chat', x'6869', 'pending', 1, 1, 1);
";
