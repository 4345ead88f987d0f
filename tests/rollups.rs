//! Roll-ups end to end: a grouped rule's events are held, not sent one by one. When the
//! window ends is covered with paused time in `rollup`'s own tests.

mod support;

use serde_json::json;

use support::{envelope, event, project_url, task_created, task_entered_stage, Relay};

#[tokio::test]
async fn events_of_a_grouped_rule_are_held_and_the_answer_says_so() {
    let relay = Relay::builder()
        .slack("chat")
        .config(
            r#"[[rules]]
name = "bulk"
events = ["TASK_ENTERED_STAGE"]
group_window = "1h"
group_by = ["project", "stage"]
to = ["chat"]

[[rules]]
name = "created"
events = ["TASK_CREATED"]
to = ["chat"]
text = "{{task_name}}"
"#,
        )
        .start()
        .await;
    let mut payload: Vec<_> = (0..50)
        .map(|i| {
            let task = format!("aaaaaaaa-3333-4c4d-9e5f-{i:012}");
            event(
                "TASK_ENTERED_STAGE",
                json!({"taskId": task, "stageName": "Review_1"}),
            )
        })
        .collect();
    payload.push(task_created("barrier"));

    let reply = relay.post(&envelope(payload)).await;

    let texts = relay.fake("chat").wait_for_texts(1).await;
    assert_eq!(
        reply.body,
        json!({"received": 51, "matched": 51, "skipped": 0, "duplicates": 0,
               "deliveries": 1, "held": 50})
    );
    assert_eq!(texts, ["barrier"], "nothing is sent before the window ends");
}

/// A task name of 50,000 characters full of markup, different for each task `i`.
fn hostile_name(i: usize) -> String {
    format!(
        "<!channel> <@U123> <at>Ann</at> *b* _i_ [x](y) {i:03} {}",
        "x".repeat(50_000)
    )
}

#[tokio::test]
async fn a_roll_up_of_200_events_with_huge_hostile_names_keeps_its_shape_and_limits() {
    let relay = Relay::builder()
        .slack("chat")
        .teams("team")
        .config(
            r#"[[rules]]
name = "bulk"
events = ["TASK_ENTERED_STAGE"]
group_window = "1s"
to = ["chat", "team"]
"#,
        )
        .start()
        .await;
    let task = |i: usize| format!("aaaaaaaa-3333-4c4d-9e5f-{i:012}");
    let of_task = |mut event: serde_json::Value, i: usize| {
        event["data"]["taskId"] = json!(task(i));
        event
    };
    // The relay takes at most a megabyte per request: a few names at a time.
    for first in (0..200).step_by(15) {
        let names = (first..200.min(first + 15))
            .map(|i| of_task(task_created(&hostile_name(i)), i))
            .collect();
        assert_eq!(relay.post(&envelope(names)).await.status, 200);
    }
    let moves = (0..200)
        .map(|i| of_task(task_entered_stage("Review_1"), i))
        .collect();
    relay.post(&envelope(moves)).await;

    let slack = relay.fake("chat").wait_for(1).await;
    let teams = relay.fake("team").wait_for(1).await;

    // Each name keeps its first 199 characters and an ellipsis.
    let shown = |i: usize| format!("{}…", hostile_name(i).chars().take(199).collect::<String>());
    let url = |i: usize| format!("{}/tool/Review_1?taskid={}", project_url(), task(i));
    let slack_items: String = (0..10)
        .map(|i| {
            let name = shown(i)
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!("- <{}|{name}>\n", url(i))
        })
        .collect();
    assert_eq!(
        slack[0].text(),
        format!(
            "200 tasks entered *Review_1* in <{}|Chest CT>\n{slack_items}and 190 more",
            project_url()
        )
    );
    let teams_items: String = (0..10)
        .map(|i| {
            let mut name = String::new();
            for c in shown(i).chars() {
                if "\\*_[]()`~<>#".contains(c) {
                    name.push('\\');
                }
                name.push(c);
            }
            format!("- [{name}]({})\n", url(i))
        })
        .collect();
    let card = teams[0].json();
    assert_eq!(
        teams[0].text(),
        format!(
            "200 tasks entered **Review\\_1** in [Chest CT]({})\n{teams_items}and 190 more",
            project_url()
        )
    );
    assert_eq!(card["attachments"][0]["content"].get("msteams"), None);
    relay.assert_no_violations();
}
