//! Whatever RedBrick sends in a task name, stage or e-mail, the message keeps its shape:
//! no Slack mention or link appears, the Teams card stays valid JSON showing the exact
//! text, and nothing panics.

use std::path::PathBuf;
use std::sync::LazyLock;

use chrono::Utc;
use proptest::prelude::*;
use redbrick_relay::config::Config;
use redbrick_relay::event::{Event, EventKind};
use redbrick_relay::route::route;
use serde_json::Value;

const CONFIG: &str = r#"
[destinations.slack]
kind = "slack"
url = "https://hooks.slack.test/services/T/B/x"

[destinations.teams]
kind = "teams"
url = "https://teams.test/workflows/x"

[[rules]]
name = "raw"
to = ["slack", "teams"]
text = "{{task_name}}|{{stage}}|{{updated_by}}"
"#;

/// Loaded once: proptest runs hundreds of cases.
fn config() -> &'static Config {
    static LOADED: LazyLock<Config> = LazyLock::new(|| {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("relay.toml");
        std::fs::write(&path, CONFIG).unwrap();
        Config::load_with_env(&path, |_| None).unwrap()
    });
    &LOADED
}

fn event(name: &str, stage: &str, by: &str) -> Event {
    Event {
        kind: EventKind::TaskEnteredStage,
        id: "e".into(),
        timestamp: Value::Null,
        time: Utc::now(),
        org_id: "o".into(),
        project_id: "p".into(),
        task_id: "t".into(),
        task_name: Some(name.into()),
        stage: Some(stage.into()),
        updated_by: Some(by.into()),
    }
}

/// What a value must show as: control characters, line breaks included, become spaces;
/// direction embeddings, overrides and isolates are dropped.
fn shown(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn slack_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn teams_unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("<!channel>".to_owned()),
        Just("<https://evil.example|click>".to_owned()),
        Just("&amp;".to_owned()),
        Just("*_~`[x](y)\\".to_owned()),
        Just("\"'\n\r\t".to_owned()),
        Just("\u{202e}مرحبا 胸部CT 🩻".to_owned()),
        Just("\u{2028}\u{2029}\u{2067}\u{2069}\u{202c}".to_owned()),
        any::<String>(),
    ];
    prop::collection::vec(pieces, 0..6).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn slack_text_holds_no_markup_from_event_data(
        name in hostile(),
        stage in hostile(),
        by in hostile(),
    ) {
        let config = config();

        let routed = route(config, &event(&name, &stage, &by), &Default::default());

        let slack = &routed.messages[0];
        let body: Value = serde_json::from_slice(&slack.body).unwrap();
        let text = body["text"].as_str().unwrap();
        prop_assert!(!text.contains('<') && !text.contains('>'), "raw angle bracket in {text:?}");
        let stray_amp = text.match_indices('&').any(|(i, _)| {
            !["&amp;", "&lt;", "&gt;"].iter().any(|e| text[i..].starts_with(e))
        });
        prop_assert!(!stray_amp, "unescaped & in {text:?}");
        let expected = format!("{}|{}|{}", shown(&name), shown(&stage), shown(&by));
        prop_assert_eq!(slack_unescape(text), expected.trim_end());
    }

    #[test]
    fn teams_card_is_json_and_shows_the_exact_text(
        name in hostile(),
        stage in hostile(),
        by in hostile(),
    ) {
        let config = config();

        let routed = route(config, &event(&name, &stage, &by), &Default::default());

        let teams = &routed.messages[1];
        let body: Value = serde_json::from_slice(&teams.body).unwrap();
        let text = body["attachments"][0]["content"]["body"][0]["text"].as_str().unwrap();
        let expected = format!("{}|{}|{}", shown(&name), shown(&stage), shown(&by));
        prop_assert_eq!(teams_unescape(text), expected.trim_end());
    }
}

#[test]
fn a_fifty_thousand_character_name_is_cut_visibly_for_both_platforms() {
    let config = config();
    let name = "<!channel>".repeat(5_000);

    let routed = route(
        config,
        &event(&name, "Review_1", "a@example.com"),
        &Default::default(),
    );

    let slack: Value = serde_json::from_slice(&routed.messages[0].body).unwrap();
    let slack_text = slack["text"].as_str().unwrap();
    let shown = slack_text.chars().count();
    assert!((39_990..=40_000).contains(&shown), "{shown} characters");
    assert!(slack_text.ends_with("… (truncated)"));
    assert!(!slack_text.contains('<'));
    let teams = &routed.messages[1].body;
    assert!(teams.len() <= 24_000, "teams body is {} bytes", teams.len());
    let card: Value = serde_json::from_slice(teams).unwrap();
    let teams_text = card["attachments"][0]["content"]["body"][0]["text"]
        .as_str()
        .unwrap();
    assert!(teams_text.ends_with("… (truncated)"));
}
