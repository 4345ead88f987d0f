//! The real binary killed, stopped and restarted with a backlog, and the operator
//! commands run on its outbox while it serves: nothing accepted is lost, nothing is sent
//! twice but the one message in flight at a crash.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use support::binary::{free_port, stdout, Service};
use support::{envelope, task_created, Answer, ConfigDir, Fake, Platform, WAIT};

/// How long a test waits for a backlog of a few hundred messages to drain.
const DRAIN: Duration = Duration::from_secs(30);

/// A config sending every task's name to each fake, without rate limits, retrying at
/// most a second apart, and stopping within a second.
fn write_config(dir: &ConfigDir, port: u16, fakes: &[(&str, &Fake)], timeout: &str) {
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [store]\npath = \"relay.db\"\n\n\
         [delivery]\nmax_backoff = \"1s\"\nshutdown_grace = \"1s\"\n\n"
    );
    for (name, fake) in fakes {
        toml.push_str(&format!(
            "[destinations.{name}]\nkind = \"slack\"\nurl = \"{}\"\n\
             rate = 0\ntimeout = \"{timeout}\"\n\n",
            fake.url()
        ));
    }
    let names: Vec<&str> = fakes.iter().map(|(name, _)| *name).collect();
    let to = toml::Value::from(names);
    toml.push_str(&format!(
        "[[rules]]\nname = \"all\"\nto = {to}\ntext = \"{{{{task_name}}}}\"\n"
    ));
    dir.write("relay.toml", &toml);
}

/// Posts `count` events named `m000`, `m001`, ..., five to a request.
async fn post_backlog(service: &Service, count: usize) {
    let names: Vec<String> = (0..count).map(|i| format!("m{i:03}")).collect();
    for chunk in names.chunks(5) {
        let payload = chunk.iter().map(|name| task_created(name)).collect();
        let (status, answer) = service.post(&envelope(payload)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["deliveries"], chunk.len());
    }
}

/// How many times each text was answered 200, once every one of `count` texts has been.
async fn delivered(fake: &Fake, count: usize) -> BTreeMap<String, usize> {
    let deadline = tokio::time::Instant::now() + DRAIN;
    loop {
        let mut times = BTreeMap::new();
        for text in fake.texts_answered(200) {
            *times.entry(text).or_insert(0) += 1;
        }
        if times.len() >= count {
            return times;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {count} delivered",
            times.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `deliveries` table's rows, split into words (an age under a minute is one word).
fn table(dir: &Path, args: &[&str]) -> Vec<Vec<String>> {
    let mut full = vec!["deliveries", "--limit", "1000"];
    full.extend_from_slice(args);
    let out = stdout(dir, &full);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "STATE",
            "DESTINATION",
            "RULE",
            "ATTEMPTS",
            "AGE",
            "LAST",
            "ERROR"
        ]
    );
    let words = |line: &str| line.split_whitespace().map(str::to_owned).collect();
    lines.map(words).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_message_survives_kill_9_and_none_is_sent_twice() {
    let fake = Fake::start(Platform::Slack).await;
    fake.answer_all(Some(Answer::status(500, "rollup_error")));
    let (dir, port) = (ConfigDir::new(), free_port());
    write_config(&dir, port, &[("chat", &fake)], "10s");

    let service = Service::start(dir.path(), port).await;
    post_backlog(&service, 200).await;
    service.kill();
    let service = Service::start(dir.path(), port).await;
    let failed = fake.requests().len();
    fake.answer_all(None);
    // Killed again while the backlog drains, so that a message may be on the wire.
    fake.wait_for(failed + 50).await;
    service.kill();
    let service = Service::start(dir.path(), port).await;
    let times = delivered(&fake, 200).await;

    assert_eq!(times.len(), 200, "{times:?}");
    let repeats: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    let repeated: usize = repeats.iter().map(|(_, n)| **n - 1).sum();
    assert!(repeated <= 1, "sent again: {repeats:?}");
    assert_eq!(
        table(dir.path(), &["--state", "pending"]),
        Vec::<Vec<String>>::new()
    );
    assert_eq!(table(dir.path(), &["--state", "sent"]).len(), 200);
    drop(service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_backlog_stops_within_its_grace_and_the_backlog_follows_a_restart() {
    let fake = Fake::start(Platform::Slack).await;
    fake.answer_next(1, Answer::stall(Platform::Slack, Duration::from_secs(3600)));
    let (dir, port) = (ConfigDir::new(), free_port());
    write_config(&dir, port, &[("chat", &fake)], "1h");

    let mut service = Service::start(dir.path(), port).await;
    post_backlog(&service, 20).await;
    fake.wait_for(1).await;
    service.terminate();
    let status = service.exit_within(WAIT).await;
    let log = service.log();
    drop(service);
    let pending = table(dir.path(), &["--state", "pending"]).len();
    let service = Service::start(dir.path(), port).await;
    let times = delivered(&fake, 20).await;

    // The grace is 1 s; the send in flight would hold it for an hour.
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(
        log.contains("sends still in flight at the shutdown deadline"),
        "{log}"
    );
    assert_eq!(pending, 20, "the whole backlog stays queued");
    assert_eq!(times.len(), 20);
    assert!(times.values().all(|n| *n == 1), "{times:?}");
    drop(service);
}

/// The ids of the dead letters of `destination`, oldest first.
fn dead_ids(dir: &Path, destination: &str) -> Vec<String> {
    let rows = table(dir, &["--state", "dead", "--destination", destination]);
    rows.into_iter().rev().map(|row| row[0].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_while_serving_and_purged() {
    let (gone, other) = (
        Fake::start(Platform::Slack).await,
        Fake::start(Platform::Slack).await,
    );
    let refusal = Answer::status(404, "no_service");
    gone.answer_all(Some(refusal.clone()));
    other.answer_all(Some(refusal));
    let (dir, port) = (ConfigDir::new(), free_port());
    write_config(&dir, port, &[("gone", &gone), ("other", &other)], "10s");
    let service = Service::start(dir.path(), port).await;
    let payload = vec![task_created("a"), task_created("b")];
    let (status, _) = service.post(&envelope(payload)).await;
    assert_eq!(status, 200);
    support::eventually("four dead letters", || {
        table(dir.path(), &["--state", "dead"]).len() == 4
    })
    .await;

    let dead = table(dir.path(), &["--state", "dead", "--destination", "gone"]);
    let ids = dead_ids(dir.path(), "gone");
    gone.answer_all(None);
    let one = stdout(dir.path(), &["replay", &ids[0]]);
    let first = gone.wait_for(3).await;
    let all = stdout(dir.path(), &["replay", "--dead", "--destination", "gone"]);
    let second = gone.wait_for(4).await;
    support::eventually("both replays recorded as sent", || {
        table(dir.path(), &["--state", "sent"]).len() == 2
    })
    .await;
    let none = support::binary::command(dir.path(), &["replay", "999", &ids[0]]);
    let purged_sent = stdout(dir.path(), &["purge", "--sent-older-than", "0s"]);
    let kept_dead = stdout(dir.path(), &["purge", "--dead-older-than", "1h"]);
    let left = table(dir.path(), &[]);

    for row in &dead {
        assert_eq!(row[1..5], ["dead", "gone", "all", "1"], "{dead:?}");
        assert_eq!(row[6..].join(" "), "404 Not Found: no_service", "{dead:?}");
    }
    assert_eq!(one, "1 deliveries back in the queue\n");
    assert_eq!(first[2].text(), "a", "replayed while serving");
    assert_eq!(all, "1 deliveries back in the queue\n");
    assert_eq!(second[3].text(), "b");
    assert_eq!(none.status.code(), Some(1), "{none:?}");
    assert_eq!(
        String::from_utf8_lossy(&none.stdout),
        "0 deliveries back in the queue\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&none.stderr),
        format!(
            "error: delivery 999 not replayed: no such delivery\n\
             error: delivery {} not replayed: it is sent, not dead\n",
            ids[0]
        )
    );
    assert_eq!(purged_sent, "2 sent deliveries deleted\n");
    assert_eq!(kept_dead, "0 dead deliveries deleted\n");
    let states: Vec<(&str, &str)> = left
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(states, [("dead", "other"), ("dead", "other")], "{left:?}");
    assert_eq!(other.requests().len(), 2, "`other` was not replayed");
    drop(service);
}
