//! Task memory end to end: what earlier webhooks told the relay shows in later messages,
//! across restarts.

mod support;

use serde_json::Value;

use support::{envelope, project_url, task_created, task_entered_stage, task_url, Relay, USER};

/// The sample events' time, in milliseconds.
const T0: i64 = 1_717_171_717_171;
const MINUTE: i64 = 60_000;

/// `event` with its timestamp `minutes` before now.
fn ago(mut event: Value, minutes: i64) -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    // Half a minute more, so that the test may take up to that long to run.
    event["timestamp"] = Value::from(now - minutes * MINUTE - MINUTE / 2);
    event
}

/// `event` for another task, `task`.
fn of_task(mut event: Value, task: &str) -> Value {
    event["data"]["taskId"] = Value::from(task);
    event
}

/// Runs `redbrick-relay tasks` with `args` on the relay's config; its standard output.
fn tasks_command(relay: &Relay, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redbrick-relay"))
        .arg("tasks")
        .arg("--config")
        .arg(relay.config_path())
        .args(args)
        .env_remove("RELAY_CONFIG")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tasks failed: {stderr}");
    String::from_utf8(output.stdout).expect("the output is UTF-8")
}

/// `event` with its timestamp moved `minutes` after the sample time.
fn at(mut event: Value, minutes: i64) -> Value {
    event["timestamp"] = Value::from(T0 + minutes * MINUTE);
    event
}

/// Posts one event and returns how many messages it led to.
async fn post(relay: &Relay, event: Value) -> u64 {
    let reply = relay.post(&envelope(vec![event])).await;
    assert_eq!(reply.status, 200, "answer: {:?}", reply.body);
    reply.body["deliveries"]
        .as_u64()
        .expect("an accepted webhook counts its deliveries")
}

#[tokio::test]
async fn a_stage_event_shows_the_name_remembered_from_creation() {
    let relay = Relay::builder()
        .slack("chat")
        .rule("all", &["chat"])
        .start()
        .await;

    post(&relay, at(task_created("CT_0042"), 0)).await;
    post(&relay, at(task_entered_stage("Label"), 1)).await;
    post(&relay, at(task_entered_stage("Review_1"), 193)).await;

    let texts = relay.fake("chat").wait_for_texts(3).await;
    let project = format!("<{}|Chest CT>", project_url());
    assert_eq!(
        texts[1..],
        [
            format!(
                "Task <{}|CT_0042> entered *Label* in {project} (moved by {USER})",
                task_url("Label")
            ),
            format!(
                "Task <{}|CT_0042> entered *Review_1* in {project}, after 3 h 12 min in Label \
                 (moved by {USER})",
                task_url("Review_1")
            ),
        ]
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn teams_shows_the_remembered_name_and_previous_stage() {
    let relay = Relay::builder()
        .teams("leads")
        .rule("all", &["leads"])
        .start()
        .await;
    let batch = envelope(vec![
        at(task_created("CT_0042"), 0),
        at(task_entered_stage("Label"), 1),
        at(task_entered_stage("Review_1"), 46),
    ]);

    relay.post(&batch).await;

    let texts = relay.fake("leads").wait_for_texts(3).await;
    assert_eq!(
        texts[2],
        format!(
            "Task [CT\\_0042]({}) entered **Review\\_1** in [Chest CT]({}), after 45 min in \
             Label (moved by {USER})",
            task_url("Review_1"),
            project_url()
        )
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn an_older_event_arriving_late_does_not_overwrite_the_newer_stage() {
    let relay = Relay::builder()
        .slack("chat")
        .text_rule(
            "moves",
            &["chat"],
            "{{stage}}{{#if previous_stage}} from {{previous_stage}}{{/if}}",
        )
        .config("events = [\"TASK_ENTERED_STAGE\"]")
        .start()
        .await;

    post(&relay, at(task_entered_stage("Review_1"), 10)).await;
    post(&relay, at(task_entered_stage("Label"), 5)).await;
    post(&relay, at(task_entered_stage("Review_2"), 20)).await;

    let texts = relay.fake("chat").wait_for_texts(3).await;
    assert_eq!(texts, ["Review_1", "Label", "Review_2 from Review_1"]);
}

#[tokio::test]
async fn an_event_dated_in_the_future_does_not_freeze_the_task() {
    let relay = Relay::builder()
        .slack("moves")
        .slack("alerts")
        .text_rule(
            "moves",
            &["moves"],
            "{{stage}}{{#if previous_stage}} from {{previous_stage}}{{/if}}",
        )
        .config("events = [\"TASK_ENTERED_STAGE\"]")
        .config(
            r#"[[rules]]
name = "rejected"
stages = ["Label"]
from_stages = ["Review_*"]
to = ["alerts"]
text = "{{task_name}} rejected: back from {{previous_stage}} to {{stage}}"
"#,
        )
        .start()
        .await;
    let mut far_future = task_entered_stage("Review_1");
    far_future["timestamp"] = Value::from("2999-01-01T00:00:00Z");

    let created = post(&relay, ago(task_created("CT_0042"), 2)).await;
    let review = post(&relay, far_future).await;
    // Dated now, after the far-future event was received: a real, later move.
    let mut back_to_label = task_entered_stage("Label");
    back_to_label["timestamp"] = Value::from(chrono::Utc::now().timestamp_millis());
    let label = post(&relay, back_to_label).await;

    assert_eq!([created, review, label], [0, 1, 2], "messages per event");
    let moves = relay.fake("moves").wait_for_texts(2).await;
    assert_eq!(moves, ["Review_1", "Label from Review_1"]);
    let alerts = relay.fake("alerts").wait_for_texts(1).await;
    assert_eq!(alerts, ["CT_0042 rejected: back from Review_1 to Label"]);
    relay.assert_no_violations();
}

#[tokio::test]
async fn task_memory_survives_a_restart() {
    let mut relay = Relay::builder()
        .slack("chat")
        .rule("all", &["chat"])
        .start()
        .await;
    post(&relay, at(task_created("CT_0042"), 0)).await;
    post(&relay, at(task_entered_stage("Label"), 1)).await;
    relay.fake("chat").wait_for(2).await;

    relay.restart().await;
    post(&relay, at(task_entered_stage("Review_1"), 121)).await;

    let texts = relay.fake("chat").wait_for_texts(3).await;
    assert_eq!(
        texts[2],
        format!(
            "Task <{}|CT_0042> entered *Review_1* in <{}|Chest CT>, after 2 h in Label \
             (moved by {USER})",
            task_url("Review_1"),
            project_url()
        )
    );
}

#[tokio::test]
async fn a_transition_rule_fires_on_review_to_label_and_not_back() {
    let relay = Relay::builder()
        .slack("chat")
        .config(
            r#"[[rules]]
name = "rejected"
stages = ["Label"]
from_stages = ["Review_*"]
to = ["chat"]
text = "{{task_name}} rejected: back from {{previous_stage}} to {{stage}}"
"#,
        )
        .start()
        .await;

    let created = post(&relay, at(task_created("CT_0042"), 0)).await;
    let input = post(&relay, at(task_entered_stage("Input"), 1)).await;
    let input_to_label = post(&relay, at(task_entered_stage("Label"), 2)).await;
    let label_to_review = post(&relay, at(task_entered_stage("Review_1"), 3)).await;
    let review_to_label = post(&relay, at(task_entered_stage("Label"), 4)).await;

    let texts = relay.fake("chat").wait_for_texts(1).await;
    let counts = [
        created,
        input,
        input_to_label,
        label_to_review,
        review_to_label,
    ];
    assert_eq!(counts, [0, 0, 0, 0, 1], "messages per event");
    assert_eq!(texts, ["CT_0042 rejected: back from Review_1 to Label"]);
}

#[tokio::test]
async fn the_tasks_command_lists_name_stage_and_time_in_stage() {
    let relay = Relay::builder()
        .slack("chat")
        .rule("all", &["chat"])
        .start()
        .await;
    let other = "aaaaaaaa-3333-4c4d-9e5f-000000000004";
    let batch = envelope(vec![
        ago(task_created("CT_0042"), 300),
        ago(task_entered_stage("Review_1"), 192),
        ago(of_task(task_entered_stage("Label"), other), 5),
    ]);
    relay.post(&batch).await;
    relay.fake("chat").wait_for(3).await;

    let all = tasks_command(&relay, &[]);
    let reviews = tasks_command(&relay, &["--project", "Chest CT", "--stage", "Review_*"]);

    let header = format!(
        "{:<32}  {:<20}  {:>12}  PROJECT",
        "TASK", "STAGE", "IN STAGE"
    );
    let row = |task: &str, stage: &str, waited: &str| {
        format!("{task:<32}  {stage:<20}  {waited:>12}  Chest CT")
    };
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [
            header.clone(),
            row("CT_0042", "Review_1", "3 h 12 min"),
            row(other, "Label", "5 min"),
        ]
    );
    assert_eq!(
        reviews.lines().collect::<Vec<_>>(),
        [header, row("CT_0042", "Review_1", "3 h 12 min")]
    );
}

#[tokio::test]
async fn a_reminder_whose_wait_is_already_over_is_sent_end_to_end() {
    let relay = Relay::builder()
        .slack("chat")
        .config(
            r#"[[reminders]]
name = "review-waiting"
stages = ["Review_*"]
after = "4h"
to = ["chat"]
"#,
        )
        .start()
        .await;

    let batch = envelope(vec![
        ago(task_created("CT_0042"), 300),
        ago(task_entered_stage("Review_1"), 250),
    ]);
    let reply = relay.post(&batch).await;

    let texts = relay.fake("chat").wait_for_texts(1).await;
    assert_eq!(
        reply.body["deliveries"], 0,
        "the reminder is not the webhook's message"
    );
    assert_eq!(
        texts,
        [format!(
            "Task <{}|CT_0042> has waited 4 h 10 min in *Review_1* in <{}|Chest CT>",
            task_url("Review_1"),
            project_url()
        )]
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn a_repeat_too_long_to_count_sends_once_and_keeps_reminders_running() {
    let relay = Relay::builder()
        .slack("chat")
        .config(
            r#"[[reminders]]
name = "review-waiting"
stages = ["Review_*"]
after = "4h"
repeat = "999999999999d"
to = ["chat"]
"#,
        )
        .start()
        .await;
    let expected = |name: &str, task: &str| {
        let url = task_url("Review_1").replace(support::TASK, task);
        format!(
            "Task <{url}|{name}> has waited 4 h 10 min in *Review_1* in <{}|Chest CT>",
            project_url()
        )
    };

    relay
        .post(&envelope(vec![
            ago(task_created("CT_0042"), 300),
            ago(task_entered_stage("Review_1"), 250),
        ]))
        .await;
    let first = relay.fake("chat").wait_for_texts(1).await;
    relay
        .post(&envelope(vec![
            of_task(ago(task_created("CT_0043"), 300), "t-0043"),
            of_task(ago(task_entered_stage("Review_1"), 250), "t-0043"),
        ]))
        .await;
    let both = relay.fake("chat").wait_for_texts(2).await;

    assert_eq!(first, [expected("CT_0042", support::TASK)]);
    assert_eq!(
        both,
        [
            expected("CT_0042", support::TASK),
            expected("CT_0043", "t-0043")
        ]
    );
    relay.assert_no_violations();
}

#[tokio::test]
async fn the_tasks_command_keeps_hostile_names_to_one_short_line_and_stops_quietly() {
    let relay = Relay::builder()
        .slack("chat")
        .config("[[rules]]\nname = \"none\"\nevents = [\"TASK_DELETED\"]\nto = [\"chat\"]\n")
        .start()
        .await;
    let name = format!(
        "CT_1\nCT_2  Output  1 s  Chest CT\u{1b}[2J\u{202e}{}",
        "x".repeat(50_000)
    );
    relay
        .post(&envelope(vec![
            ago(task_created(&name), 10),
            ago(task_entered_stage("Review_1"), 5),
        ]))
        .await;
    // Enough rows that the output outgrows a pipe's buffer.
    for batch in 0..3 {
        let moves = (0..500)
            .map(|i| {
                let task = format!("aaaaaaaa-3333-4c4d-9e5f-{:012}", batch * 500 + i);
                ago(of_task(task_entered_stage("Label"), &task), 1)
            })
            .collect();
        assert_eq!(relay.post(&envelope(moves)).await.status, 200);
    }

    let reviews = tasks_command(&relay, &["--stage", "Review_*"]);
    let (first, output) = first_line_then_close(&relay, &["tasks"]);

    let shown = format!("CT_1 CT_2  Output  1 s  Chest CT [2J{}…", "x".repeat(23));
    assert_eq!(
        reviews.lines().collect::<Vec<_>>(),
        [
            format!(
                "{:<32}  {:<20}  {:>12}  PROJECT",
                "TASK", "STAGE", "IN STAGE"
            ),
            format!("{shown}  {:<20}  {:>12}  Chest CT", "Review_1", "5 min"),
        ]
    );
    assert!(first.starts_with("TASK "), "{first}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn the_deliveries_command_stops_quietly_when_its_reader_does() {
    let relay = Relay::builder()
        .slack("chat")
        .text_rule("all", &["chat"], "{{task_name}}")
        .start()
        .await;
    // Enough rows that the table outgrows a pipe's buffer.
    for batch in 0..3 {
        let created = (0..500)
            .map(|i| {
                let task = format!("bbbbbbbb-3333-4c4d-9e5f-{:012}", batch * 500 + i);
                of_task(task_created(&format!("CT_{batch}_{i}")), &task)
            })
            .collect();
        assert_eq!(relay.post(&envelope(created)).await.status, 200);
    }

    let (first, output) = first_line_then_close(&relay, &["deliveries", "--limit", "5000"]);

    assert!(first.trim_start().starts_with("ID  STATE"), "{first}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Runs the command `args` on the relay's config, reads its first line, then closes the
/// pipe as `| head -1` would; returns that line and how the command ended.
fn first_line_then_close(relay: &Relay, args: &[&str]) -> (String, std::process::Output) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_redbrick-relay"))
        .args(args)
        .arg("--config")
        .arg(relay.config_path())
        .env_remove("RELAY_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("a header");
    drop(stdout);
    let output = child.wait_with_output().expect("the binary finishes");
    (first, output)
}
