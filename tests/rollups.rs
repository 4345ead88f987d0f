//! Roll-ups end to end: a grouped rule's events are held, not sent one by one. When the
//! window ends is covered with paused time in `rollup`'s own tests.

mod support;

use serde_json::json;

use support::{envelope, event, task_created, Relay};

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
