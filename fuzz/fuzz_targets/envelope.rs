//! Any request body: parsed as a RedBrick envelope, and every event routed and rendered
//! for Slack, Teams and the console. Nothing may panic, and every body must be JSON.
#![no_main]

use std::sync::LazyLock;

use chrono::Utc;
use libfuzzer_sys::fuzz_target;
use redbrick_relay::config::Config;
use redbrick_relay::event::parse_body;
use redbrick_relay::route::route;

const CONFIG: &str = r#"
[projects]
"7d3f2e10-2222-4b3c-8d4e-000000000002" = "Chest CT"

[destinations.slack]
kind = "slack"
url = "https://hooks.slack.test/services/T/B/x"

[destinations.teams]
kind = "teams"
url = "https://teams.test/workflows/x"

[destinations.console]
kind = "console"

[[rules]]
name = "defaults"
to = ["slack", "teams", "console"]

[[rules]]
name = "helpers"
to = ["slack", "teams"]
text = "{{bold task_name}} {{link task_url stage}} {{time timestamp}} {{italic updated_by}}"
"#;

static LOADED: LazyLock<Config> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join("redbrick-relay-fuzz");
    std::fs::create_dir_all(&dir).expect("the temporary folder is writable");
    let path = dir.join("relay.toml");
    std::fs::write(&path, CONFIG).expect("the temporary folder is writable");
    Config::load_with_env(&path, |_| None).expect("the fuzz config is valid")
});

fuzz_target!(|body: &[u8]| {
    let Ok(batch) = parse_body(body, Utc::now()) else {
        return;
    };
    for event in &batch.events {
        for message in route(&LOADED, event, &Default::default()).messages {
            if message.destination != "console" {
                serde_json::from_slice::<serde_json::Value>(&message.body)
                    .expect("every Slack and Teams body is JSON");
            }
        }
    }
});
