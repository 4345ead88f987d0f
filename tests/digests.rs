//! Digests from the real binary: a digest set for the coming minute goes out on its own,
//! at its time on the local clock of its zone, counting the webhooks received before it.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Timelike, Utc};
use serde_json::Value;

use support::binary::{free_port, Service};
use support::{
    envelope, project_url, task_created, task_entered_stage, task_url, ConfigDir, Fake, Platform,
    Received, PROJECT, WAIT,
};

/// How long a test waits for a digest set for the coming minute.
const DIGEST_WAIT: Duration = Duration::from_secs(75);

/// The margin kept before a fire time, for starting the service and posting the events.
const MARGIN_SECONDS: i64 = 5;

/// India has kept +05:30 all year, with no daylight-saving time, since 1945.
const KOLKATA: i32 = 5 * 3600 + 30 * 60;

const MINUTE_MS: i64 = 60_000;

/// The second sample task, created alongside the one every sample event is about.
const OTHER_TASK: &str = "c4a1b2d3-3333-4c4d-9e5f-000000000004";

/// The next whole UTC minute at least [`MARGIN_SECONDS`] away.
fn next_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    let soon = now + chrono::Duration::seconds(MARGIN_SECONDS);
    let floor = soon
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a time has a minute");
    floor + chrono::Duration::minutes(1)
}

/// `event` with its timestamp at `ms`.
fn at(mut event: Value, ms: i64) -> Value {
    event["timestamp"] = Value::from(ms);
    event
}

/// `event` for `task` instead of the sample task.
fn of_task(mut event: Value, task: &str) -> Value {
    event["data"]["taskId"] = Value::from(task);
    event
}

/// When the store says the digest `name` started counting (unix ms), once it has begun.
fn counted_from(store: &Path, name: &str) -> Option<i64> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(store, flags).ok()?;
    conn.query_row(
        "SELECT counted_from FROM digests_sent WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .ok()
}

/// Waits up to [`WAIT`] until the service has begun counting for digest `name`.
async fn begun(service: &Service, store: &Path, name: &str) -> i64 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(from) = counted_from(store, name) {
            return from;
        }
        assert!(
            Instant::now() < deadline,
            "digest `{name}` not begun within {WAIT:?}:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first request `fake` receives within [`DIGEST_WAIT`].
async fn first_request(fake: &Fake, service: &Service) -> Received {
    let deadline = Instant::now() + DIGEST_WAIT;
    loop {
        if let Some(request) = fake.requests().into_iter().next() {
            return request;
        }
        assert!(
            Instant::now() < deadline,
            "no digest within {DIGEST_WAIT:?}:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A span as digests show it, for spans under a day.
fn human(ms: i64) -> String {
    let seconds = ms / 1000;
    match (seconds / 3600, seconds / 60 % 60) {
        (0, 0) => format!("{seconds} s"),
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_goes_out_from_the_running_service_at_its_local_time() {
    let slack = Fake::start(Platform::Slack).await;
    let teams = Fake::start(Platform::Teams).await;
    let fire = next_minute(Utc::now());
    let zone = FixedOffset::east_opt(KOLKATA).expect("+05:30 is an offset");
    let local = fire.with_timezone(&zone).format("%H:%M").to_string();
    let fire_ms = fire.timestamp_millis();
    let (dir, port) = (ConfigDir::new(), free_port());
    dir.write(
        "relay.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [store]\npath = \"relay.db\"\n\n\
             [projects]\n\"{PROJECT}\" = \"Chest CT\"\n\n\
             [destinations.chat]\nkind = \"slack\"\nurl = \"{}\"\nrate = 0\n\n\
             [destinations.leads]\nkind = \"teams\"\nurl = \"{}\"\nrate = 0\n\n\
             [[digests]]\nname = \"morning\"\nat = \"{local}\"\ntimezone = \"Asia/Kolkata\"\n\
             projects = [\"Chest CT\"]\nto = [\"chat\", \"leads\"]\nskip_empty = true\n",
            slack.url(),
            teams.url()
        ),
    );
    let store = dir.path().join("relay.db");

    let service = Service::start(dir.path(), port).await;
    let from = begun(&service, &store, "morning").await;
    // Two tasks created 3 h 13 min before the digest, one of them in Label a minute later.
    let created = fire_ms - 193 * MINUTE_MS;
    let entered = fire_ms - 192 * MINUTE_MS;
    let (status, answer) = service
        .post(&envelope(vec![
            at(task_created("CT_0041"), created),
            at(of_task(task_created("CT_0042"), OTHER_TASK), created),
        ]))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = service
        .post(&envelope(vec![at(task_entered_stage("Label"), entered)]))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        Utc::now() < fire,
        "the events were posted after the fire time: too slow a start"
    );

    let slack_request = first_request(&slack, &service).await;
    let teams_request = first_request(&teams, &service).await;
    let sent = counted_from(&store, "morning").expect("the digest's state is stored");
    assert!(
        (fire_ms..fire_ms + 5_000).contains(&sent),
        "sent at {sent}, due at {fire_ms}"
    );
    let since = human(sent - from);
    let project = format!("<{}|Chest CT>", project_url());
    let task = format!("<{}|CT_0041>", task_url("Label"));
    assert_eq!(
        slack_request.text(),
        format!(
            "*morning*: 1 task waits; in the last {since}, 2 created, 1 moved, 0 deleted\n\
             {project}: 1 waiting, 2 created, 1 moved, 0 deleted\n\
             - *Label*: 1 waiting, oldest {task} for 3 h 12 min, 1 entered"
        )
    );
    assert_eq!(
        teams_request.text(),
        format!(
            "**morning**: 1 task waits; in the last {since}, 2 created, 1 moved, 0 deleted\n\
             [Chest CT]({}): 1 waiting, 2 created, 1 moved, 0 deleted\n\
             - **Label**: 1 waiting, oldest [CT\\_0041]({}) for 3 h 12 min, 1 entered",
            project_url(),
            task_url("Label")
        )
    );
    assert!(slack.violations().is_empty(), "{:?}", slack.violations());
    assert!(teams.violations().is_empty(), "{:?}", teams.violations());
}
