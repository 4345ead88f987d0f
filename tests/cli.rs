//! The real binary: `check` and `render` as a user runs them.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::ConfigDir;

/// A finished run of the binary.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The binary, run in `dir` with no config in the environment.
fn relay(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redbrick-relay"));
    command.current_dir(dir).env_remove("RELAY_CONFIG");
    command
}

fn run(command: &mut Command, stdin: &[u8]) -> Run {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin).expect("the binary reads its input");
    drop(input);
    let output = child.wait_with_output().expect("the binary finishes");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Writes `relay.toml` and runs `check` on it.
fn check(dir: &ConfigDir, toml: &str) -> Run {
    dir.write("relay.toml", toml);
    run(
        relay(dir.path()).args(["check", "--config", "relay.toml"]),
        b"",
    )
}

/// The folder holding the crate: the shipped `relay.toml`, templates and examples.
fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const CONSOLE: &str = "[destinations.console]\nkind = \"console\"\n\n";

#[test]
fn check_accepts_the_shipped_config() {
    let dir = crate_dir();

    let run = run(relay(dir).args(["check", "--config", "relay.toml"]), b"");

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "relay.toml: ok: 1 rules, 1 destinations, listening on 127.0.0.1:8787/redbrick\n"
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn check_passes_with_warnings_for_unused_destinations() {
    let dir = ConfigDir::new();
    let toml = format!(
        "{CONSOLE}[destinations.spare]\nkind = \"console\"\n\n\
         [[rules]]\nname = \"a\"\nto = [\"console\"]\n"
    );

    let run = check(&dir, &toml);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stderr,
        "warning: relay.toml:4:1: `destinations.spare`: no rule sends to this destination\n"
    );
    assert_eq!(
        run.stdout,
        "relay.toml: ok: 1 rules, 2 destinations, listening on 127.0.0.1:8787/redbrick\n"
    );
}

#[test]
fn check_reads_the_config_named_in_the_environment() {
    let dir = ConfigDir::new();
    let path = dir.write(
        "elsewhere.toml",
        &format!("{CONSOLE}[[rules]]\nname = \"a\"\nto = [\"console\"]\n"),
    );

    let run = run(
        relay(dir.path()).arg("check").env("RELAY_CONFIG", &path),
        b"",
    );

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("elsewhere.toml: ok: 1 rules"),
        "{run:?}"
    );
}

/// What is wrong, `relay.toml`, other files (path, text), and the one problem expected.
type Mistake = (
    &'static str,
    String,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn check_reports_each_mistake_with_its_place_and_key() {
    let rule = "[[rules]]\nname = \"r\"\nto = [\"console\"]\n";
    let cases: &[Mistake] = &[
        (
            "unknown key",
            format!("{CONSOLE}{rule}tempalte = \"x\"\n"),
            &[],
            "relay.toml:7:1: `rules[0].tempalte`: unknown field `tempalte`, expected one of \
             `name`, `events`, `projects`, `exclude_projects`, `stages`, `exclude_stages`, \
             `from_stages`, `to`, `template`, `text`, `stop`, `group_window`, `group_by`",
        ),
        (
            "unknown event name",
            format!("{CONSOLE}{rule}events = [\"TASK_CREATED\", \"TASK_MOVED\"]\n"),
            &[],
            "relay.toml:7:27: `rules[0].events[1]`: unknown event `TASK_MOVED`; expected one \
             of TASK_CREATED, TASK_ENTERED_STAGE, TASK_DELETED",
        ),
        (
            "unknown destination",
            format!("{CONSOLE}[[rules]]\nname = \"r\"\nto = [\"console\", \"reviewers\"]\n"),
            &[],
            "relay.toml:6:18: `rules[0].to[1]`: unknown destination `reviewers` (defined: \
             console)",
        ),
        (
            "unknown project name",
            format!(
                "[projects]\n\"p-1\" = \"Chest CT\"\n\n{CONSOLE}{rule}projects = [\"Chest XR\"]\n"
            ),
            &[],
            "relay.toml:10:13: `rules[0].projects[0]`: unknown project `Chest XR`: not a name \
             in [projects] nor a project id",
        ),
        (
            "missing template file",
            format!("{CONSOLE}{rule}template = \"reviews\"\n"),
            &[],
            "relay.toml:7:12: `rules[0].template`: template `reviews` not found: cannot read \
             `templates/reviews.hbs`: No such file or directory (os error 2)",
        ),
        (
            "template file that does not compile",
            format!("{CONSOLE}{rule}template = \"broken\"\n"),
            &[(
                "templates/broken.hbs",
                "Task {{task_id}}\n{{#if stage}}in {{stage}}\n",
            )],
            "templates/broken.hbs:3:1: `rules[0].template`: template does not compile: invalid \
             handlebars syntax: expected escape, expression, html_expression, \
             decorator_expression, partial_expression, invert_tag, invert_chain_tag, \
             helper_block_start, helper_block_end, decorator_block_start, partial_block_start, \
             raw_block_start, hbs_comment, or hbs_comment_compact",
        ),
        (
            "inline template that does not compile",
            format!("{CONSOLE}{rule}text = \"{{{{#if stage}}}}x\"\n"),
            &[],
            "relay.toml:7:8: `rules[0].text`: template does not compile: invalid handlebars \
             syntax: expected escape, expression, html_expression, decorator_expression, \
             partial_expression, invert_tag, invert_chain_tag, helper_block_start, \
             helper_block_end, decorator_block_start, partial_block_start, raw_block_start, \
             hbs_comment, or hbs_comment_compact (template line 1, column 15)",
        ),
        (
            "misspelt variable inline",
            format!("{CONSOLE}{rule}text = \"Task {{{{task_nmae}}}}\"\n"),
            &[],
            "relay.toml:7:8: `rules[0].text`: fails on a sample TASK_CREATED event: no variable \
             `task_nmae` (template line 1, column 6)",
        ),
        (
            "misspelt variable in a template file",
            format!("{CONSOLE}{rule}template = \"review\"\n"),
            &[("templates/review.hbs", "Task {{task_id}}\n  in {{stgae}}\n")],
            "templates/review.hbs:2:6: `rules[0].template`: fails on a sample TASK_CREATED \
             event: no variable `stgae`",
        ),
        (
            "unset variable in a url",
            "[destinations.chat]\nkind = \"slack\"\nurl = \"${RELAY_TEST_UNSET_URL}\"\n".into(),
            &[],
            "relay.toml:3:7: `destinations.chat.url`: environment variable \
             `RELAY_TEST_UNSET_URL` is not set",
        ),
        (
            "unset variable in a url_file",
            "[destinations.chat]\nkind = \"teams\"\nurl_file = \"${RELAY_TEST_UNSET_DIR}/url\"\n"
                .into(),
            &[],
            "relay.toml:3:12: `destinations.chat.url_file`: environment variable \
             `RELAY_TEST_UNSET_DIR` is not set",
        ),
        (
            "unknown kind",
            "[destinations.chat]\nkind = \"discord\"\n".into(),
            &[],
            "relay.toml:2:8: `destinations.chat.kind`: unknown kind `discord`; expected \
             `slack`, `teams` or `console`",
        ),
    ];

    for (what, toml, files, expected) in cases {
        let dir = ConfigDir::new();
        for (name, text) in *files {
            dir.write(name, text);
        }

        let run = check(&dir, toml);

        assert_eq!(run.code, Some(2), "{what}: {run:?}");
        assert_eq!(run.stderr, format!("error: {expected}\n"), "{what}");
        assert_eq!(run.stdout, "", "{what}");
    }
}

#[test]
fn check_lists_every_mistake_at_once() {
    let dir = ConfigDir::new();
    dir.write("templates/review.hbs", "{{stgae}}");
    let toml = r#"[destinations.console]
kind = "console"

[destinations.chat]
kind = "slack"
url = "${RELAY_TEST_UNSET_URL}"

[[rules]]
name = "created"
events = ["TASK_CREATD"]
projects = ["Chest XR"]
to = ["console", "reviewers"]
tempalte = "created"

[[rules]]
name = "missing"
to = ["console"]
template = "missing"

[[rules]]
name = "misspelt"
to = ["console"]
text = "{{task_nmae}}"

[[rules]]
name = "file"
events = ["TASK_DELETED"]
to = ["console"]
template = "review"

[redbrick]
ap_url = "https://app.redbrickai.com"
"#;

    let run = check(&dir, toml);

    assert_eq!(run.code, Some(2), "{run:?}");
    let expected = [
        "relay.toml:13:1: `rules[0].tempalte`: unknown field `tempalte`, expected one of \
         `name`, `events`, `projects`, `exclude_projects`, `stages`, `exclude_stages`, \
         `from_stages`, `to`, `template`, `text`, `stop`, `group_window`, `group_by`",
        "relay.toml:32:1: `redbrick.ap_url`: unknown field `ap_url`, expected `app_url`",
        "relay.toml:6:7: `destinations.chat.url`: environment variable `RELAY_TEST_UNSET_URL` \
         is not set",
        "relay.toml:10:11: `rules[0].events[0]`: unknown event `TASK_CREATD`; expected one of \
         TASK_CREATED, TASK_ENTERED_STAGE, TASK_DELETED",
        "relay.toml:11:13: `rules[0].projects[0]`: unknown project `Chest XR`: not a name in \
         [projects] nor a project id",
        "relay.toml:12:18: `rules[0].to[1]`: unknown destination `reviewers` (defined: chat, \
         console)",
        "relay.toml:18:12: `rules[1].template`: template `missing` not found: cannot read \
         `templates/missing.hbs`: No such file or directory (os error 2)",
        "relay.toml:23:8: `rules[2].text`: fails on a sample TASK_CREATED event: no variable \
         `task_nmae` (template line 1, column 1)",
        "templates/review.hbs:1:1: `rules[3].template`: fails on a sample TASK_DELETED event: \
         no variable `stgae`",
    ];
    let lines: Vec<&str> = run.stderr.lines().collect();
    let mut wanted: Vec<String> = expected.iter().map(|e| format!("error: {e}")).collect();
    wanted.push(format!("{} problems found", expected.len()));
    assert_eq!(lines, wanted);
}

#[test]
fn check_never_prints_a_secret_url() {
    let dir = ConfigDir::new();
    dir.write("url", "https://hooks.slack.com/services/T1/B2/SECRET1 \n");
    let toml = "[destinations.chat]\nkind = \"slack\"\nurl = \"${RELAY_TEST_URL}\"\n\n\
                [destinations.leads]\nkind = \"teams\"\nurl_file = \"url\"\ntimeout = \"1x\"\n";
    dir.write("relay.toml", toml);

    let run = run(
        relay(dir.path())
            .args(["check", "--config", "relay.toml"])
            .env("RELAY_TEST_URL", "not a url/SECRET2"),
        b"",
    );

    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("`destinations.chat.url`: is not"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("SECRET"), "{}", run.stderr);
}

#[test]
fn render_prints_the_exact_console_body() {
    let dir = crate_dir();

    let args = ["render", "--event", "examples/task-entered-stage.json"];
    let run = run(relay(dir).args(args), b"");

    let project = "https://app.redbrickai.com/0b6c9a7e-1111-4a2b-9c3d-000000000001/projects/\
                   7d3f2e10-2222-4b3c-8d4e-000000000002";
    let task = format!("{project}/tool/Review_1?taskid=c4a1b2d3-3333-4c4d-9e5f-000000000003");
    let expected = format!(
        "event 0: TASK_ENTERED_STAGE 5f0e6c1a-2b3c-4d5e-8f90-1a2b3c4d5e6f\n\
         --- rule `everything-to-console` to `console` (Console)\n\
         Task c4a1b2d3-3333-4c4d-9e5f-000000000003 ({task}) entered Review_1 in Chest CT \
         ({project}) (moved by annotator@example.com)\n"
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, expected);
    assert_eq!(run.stderr, "");
}

#[test]
fn render_reads_the_event_from_stdin() {
    let dir = crate_dir();
    let event = std::fs::read(dir.join("examples/task-entered-stage.json"))
        .expect("the example event is shipped");

    let from_stdin = run(relay(dir).args(["render", "--event", "-"]), &event);
    let from_file = run(
        relay(dir).args(["render", "--event", "examples/task-entered-stage.json"]),
        b"",
    );

    assert_eq!(from_stdin.code, Some(0), "{from_stdin:?}");
    assert!(
        from_stdin.stdout.contains("entered Review_1"),
        "{from_stdin:?}"
    );
    assert_eq!(from_stdin.stdout, from_file.stdout);
}

#[test]
fn render_explain_names_the_failed_condition_of_each_rule() {
    let dir = ConfigDir::new();
    dir.write(
        "relay.toml",
        &format!(
            r#"{CONSOLE}[[rules]]
name = "created"
events = ["TASK_CREATED"]
to = ["console"]

[[rules]]
name = "other-project"
projects = ["99999999-2222-4b3c-8d4e-000000000009"]
to = ["console"]

[[rules]]
name = "labels"
stages = ["Label", "Consensus_*"]
to = ["console"]

[[rules]]
name = "not-reviews"
exclude_stages = ["Output", "Review_*"]
to = ["console"]

[[rules]]
name = "stopper"
to = ["console"]
text = "stopped"
stop = true

[[rules]]
name = "after"
to = ["console"]
"#
        ),
    );

    let args = [
        "render",
        "--explain",
        "--event",
        "-",
        "--config",
        "relay.toml",
    ];
    let event = std::fs::read(crate_dir().join("examples/task-entered-stage.json"))
        .expect("the example event is shipped");
    let run = run(relay(dir.path()).args(args), &event);

    let expected = [
        "event 0: TASK_ENTERED_STAGE 5f0e6c1a-2b3c-4d5e-8f90-1a2b3c4d5e6f",
        "  rule `created`: no match: event type `TASK_ENTERED_STAGE` is not in `events`",
        "  rule `other-project`: no match: project `7d3f2e10-2222-4b3c-8d4e-000000000002` is \
         not in `projects`",
        "  rule `labels`: no match: stage `Review_1` matches nothing in `stages`",
        "  rule `not-reviews`: no match: stage `Review_1` matches `Review_*` in `exclude_stages`",
        "  rule `stopper`: matched",
        "  rule `after`: no match: rule `stopper` matched first and has `stop = true`",
        "--- rule `stopper` to `console` (Console)",
        "stopped",
    ];
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn render_shows_exact_slack_and_teams_bodies_without_their_urls() {
    let dir = ConfigDir::new();
    dir.write(
        "relay.toml",
        r#"[destinations.chat]
kind = "slack"
url = "https://hooks.slack.com/services/T1/B2/SECRET"

[destinations.leads]
kind = "teams"
url = "https://x.logic.azure.com:443/workflows/1/triggers/manual/paths/invoke?sig=SECRET"

[[rules]]
name = "r"
to = ["chat", "leads"]
text = "{{bold stage}} <!here>"
"#,
    );

    let args = ["render", "--event", "-", "--config", "relay.toml"];
    let event = std::fs::read(crate_dir().join("examples/task-entered-stage.json"))
        .expect("the example event is shipped");
    let run = run(relay(dir.path()).args(args), &event);

    let task = "https://app.redbrickai.com/0b6c9a7e-1111-4a2b-9c3d-000000000001/projects/\
                7d3f2e10-2222-4b3c-8d4e-000000000002/tool/Review_1\
                ?taskid=c4a1b2d3-3333-4c4d-9e5f-000000000003";
    let card = serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": r"**Review\_1** <!here>", "wrap": true}],
                "actions": [{"type": "Action.OpenUrl", "title": "Open in RedBrick", "url": task}],
            },
        }],
    });
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(lines[1], "--- rule `r` to `chat` (Slack(hooks.slack.com))");
    assert_eq!(lines[2], r#"{"text":"*Review_1* <!here>"}"#);
    assert_eq!(
        lines[3],
        "--- rule `r` to `leads` (Teams(x.logic.azure.com))"
    );
    let shown: serde_json::Value = serde_json::from_str(lines[4]).expect("the card is JSON");
    assert_eq!(shown, card);
    assert!(!run.stdout.contains("SECRET"), "{}", run.stdout);
}

#[test]
fn render_names_skipped_and_unmatched_events() {
    let dir = ConfigDir::new();
    let toml = format!(
        "{CONSOLE}[[rules]]\nname = \"created\"\nevents = [\"TASK_CREATED\"]\n\
         to = [\"console\"]\n"
    );
    dir.write("relay.toml", &toml);
    let body = r#"{"payload": [
        {"event": "TASK_ARCHIVED", "id": "a"},
        {"event": "TASK_DELETED", "id": "d", "timestamp": 1,
         "data": {"orgId": "o", "projectId": "p", "taskId": "t"}}
    ]}"#;

    let run = run(
        relay(dir.path()).args(["render", "--event", "-"]),
        body.as_bytes(),
    );

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "payload[0]: unknown event type `TASK_ARCHIVED`, skipped\n\
         event 0: TASK_DELETED d\n  no rule matched\n"
    );
}

#[test]
fn render_refuses_a_body_that_is_not_a_webhook() {
    let dir = crate_dir();

    let run = run(
        relay(dir).args(["render", "--event", "-"]),
        br#"{"version": "v1.0", "events": 1}"#,
    );

    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr,
        "error: not a RedBrick webhook body: `payload` is missing\n"
    );
}

/// Values that parse but would make the relay run otherwise than the file seems to say.
#[test]
fn check_refuses_values_that_would_run_wrong() {
    let rule = "[[rules]]\nname = \"r\"\nto = [\"console\"]\n";
    let cases: &[(&str, String, &str)] = &[
        (
            "empty token",
            format!("[server]\ntoken = \"\"\n\n{CONSOLE}{rule}"),
            "relay.toml:2:9: `server.token`: is empty: a token must not be",
        ),
        (
            "blank token",
            format!("[server]\ntoken = \"  \"\n\n{CONSOLE}{rule}"),
            "relay.toml:2:9: `server.token`: is empty: a token must not be",
        ),
        (
            "destination listed twice",
            format!("{CONSOLE}[[rules]]\nname = \"r\"\nto = [\"console\", \"console\"]\n"),
            "relay.toml:6:18: `rules[0].to[1]`: destination `console` is listed twice",
        ),
        (
            "log level that is not a level",
            format!("[log]\nlevel = \"verbose\"\n\n{CONSOLE}{rule}"),
            "relay.toml:2:9: `log.level`: `verbose` is not a level (off, error, warn, info, \
             debug, trace); for one module, write `module=level`",
        ),
        (
            "log directives with a misspelt level",
            format!("[log]\nlevel = \"infp,redbrick_relay=debug\"\n\n{CONSOLE}{rule}"),
            "relay.toml:2:9: `log.level`: `infp` is not a level (off, error, warn, info, \
             debug, trace); for one module, write `module=level`",
        ),
        (
            "empty stage pattern",
            format!("{CONSOLE}{rule}stages = [\"Review_*\", \"\"]\n"),
            "relay.toml:7:23: `rules[0].stages[1]`: an empty stage pattern matches no stage",
        ),
        (
            "empty excluded stage",
            format!("{CONSOLE}{rule}exclude_stages = [\" \"]\n"),
            "relay.toml:7:19: `rules[0].exclude_stages[0]`: an empty stage pattern matches \
             no stage",
        ),
        (
            "no request allowed at once",
            format!("[server]\nmax_concurrent_requests = 0\n\n{CONSOLE}{rule}"),
            "relay.toml:2:27: `server.max_concurrent_requests`: must be at least 1: 0 would \
             refuse every request",
        ),
        (
            "no body allowed",
            format!("[server]\nmax_body_bytes = 0\n\n{CONSOLE}{rule}"),
            "relay.toml:2:18: `server.max_body_bytes`: must be at least 1: 0 would refuse \
             every request",
        ),
        (
            "no event allowed",
            format!("[server]\nmax_events = 0\n\n{CONSOLE}{rule}"),
            "relay.toml:2:14: `server.max_events`: must be at least 1: 0 would refuse every \
             request",
        ),
        (
            "no burst",
            format!("{CONSOLE}burst = 0\n\n{rule}"),
            "relay.toml:4:9: `destinations.console.burst`: must be at least 1: the first \
             message always goes",
        ),
        (
            "console destination with a url",
            format!("{CONSOLE}url = \"${{HOME}}\"\n\n{rule}"),
            "relay.toml:4:7: `destinations.console.url`: a console destination has no `url`; \
             for a webhook, set `kind = \"slack\"` or `\"teams\"`",
        ),
        (
            "app_url without a scheme",
            format!("[redbrick]\napp_url = \"app.redbrickai.com\"\n\n{CONSOLE}{rule}"),
            "relay.toml:2:11: `redbrick.app_url`: `app.redbrickai.com` is not a base URL such \
             as `https://app.redbrickai.com` (http or https, no `?` or `#`)",
        ),
        (
            "app_url that is not a web address",
            format!("[redbrick]\napp_url = \"javascript:alert(1)\"\n\n{CONSOLE}{rule}"),
            "relay.toml:2:11: `redbrick.app_url`: `javascript:alert(1)` is not a base URL such \
             as `https://app.redbrickai.com` (http or https, no `?` or `#`)",
        ),
        (
            "app_url with a query",
            format!("[redbrick]\napp_url = \"https://rb.example/?x=1\"\n\n{CONSOLE}{rule}"),
            "relay.toml:2:11: `redbrick.app_url`: `https://rb.example/?x=1` is not a base URL \
             such as `https://app.redbrickai.com` (http or https, no `?` or `#`)",
        ),
    ];

    for (what, toml, expected) in cases {
        let dir = ConfigDir::new();

        let run = check(&dir, toml);

        assert_eq!(run.code, Some(2), "{what}: {run:?}");
        assert_eq!(run.stderr, format!("error: {expected}\n"), "{what}");
        assert_eq!(run.stdout, "", "{what}");
    }
}

#[test]
fn render_explain_shows_the_move_a_transition_rule_saw() {
    let dir = ConfigDir::new();
    dir.write(
        "relay.toml",
        &format!(
            r#"{CONSOLE}[[rules]]
name = "rejected"
stages = ["Label"]
from_stages = ["Review_*"]
to = ["console"]
text = "{{{{task_name}}}} back from {{{{previous_stage}}}} after {{{{time_in_previous_stage}}}}"

[[rules]]
name = "ready"
stages = ["Review_1"]
from_stages = ["Label"]
to = ["console"]
text = "ready"
"#
        ),
    );
    let event = |kind: &str, data: &str, minute: i64| {
        format!(
            r#"{{"event": "{kind}", "id": "e{minute}", "timestamp": {},
                "data": {{"orgId": "o", "projectId": "p", "taskId": "t", {data}}}}}"#,
            1_717_171_717_000_i64 + minute * 60_000
        )
    };
    let body = format!(
        r#"{{"payload": [{}, {}, {}]}}"#,
        event("TASK_CREATED", r#""taskName": "CT_7""#, 0),
        event("TASK_ENTERED_STAGE", r#""stageName": "Review_1""#, 1),
        event("TASK_ENTERED_STAGE", r#""stageName": "Label""#, 96),
    );

    let args = ["render", "--explain", "--event", "-"];
    let run = run(relay(dir.path()).args(args), body.as_bytes());

    let expected = [
        "event 0: TASK_CREATED e0",
        "  rule `rejected`: no match: the rule names `stages` and this event has no stage",
        "  rule `ready`: no match: the rule names `stages` and this event has no stage",
        "  no rule matched",
        "event 1: TASK_ENTERED_STAGE e1",
        "  rule `rejected`: no match: stage `Review_1` matches nothing in `stages`",
        "  rule `ready`: no match: the rule names `from_stages` and this event is not a move \
         from a stage the relay remembers",
        "  no rule matched",
        "event 2: TASK_ENTERED_STAGE e96",
        "  rule `rejected`: matched: move `Review_1` -> `Label`",
        "  rule `ready`: no match: stage `Label` matches nothing in `stages`",
        "--- rule `rejected` to `console` (Console)",
        "CT_7 back from Review_1 after 1 h 35 min",
    ];
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn check_refuses_a_misspelt_or_empty_from_stages_with_its_place() {
    let dir = ConfigDir::new();
    let toml = format!(
        "{CONSOLE}[[rules]]\nname = \"a\"\nfrom_stage = [\"Review_*\"]\nto = [\"console\"]\n\n\
         [[rules]]\nname = \"b\"\nfrom_stages = []\nto = [\"console\"]\n"
    );

    let run = check(&dir, &toml);

    assert_eq!(run.code, Some(2), "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    assert!(
        lines[0].starts_with(
            "error: relay.toml:6:1: `rules[0].from_stage`: unknown field `from_stage`"
        ),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "error: relay.toml:11:15: `rules[1].from_stages`: list at least one stage pattern, \
         or leave `from_stages` out"
    );
}

#[test]
fn render_says_which_rules_hold_the_event_for_a_roll_up() {
    let dir = ConfigDir::new();
    dir.write(
        "relay.toml",
        &format!(
            "{CONSOLE}[[rules]]\nname = \"bulk\"\ngroup_window = \"30s\"\nto = [\"console\"]\n"
        ),
    );

    let args = ["render", "--event", "-"];
    let event = std::fs::read(crate_dir().join("examples/task-entered-stage.json"))
        .expect("the example event is shipped");
    let run = run(relay(dir.path()).args(args), &event);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "event 0: TASK_ENTERED_STAGE 5f0e6c1a-2b3c-4d5e-8f90-1a2b3c4d5e6f\n\
         --- rule `bulk`: held for a roll-up sent 30s after its first event\n"
    );
}

#[test]
fn render_explain_says_when_each_digest_fires_next() {
    let dir = ConfigDir::new();
    dir.write(
        "relay.toml",
        &format!(
            r#"{CONSOLE}[[digests]]
name = "morning"
at = "09:00"
days = "mon-fri"
timezone = "Europe/Paris"
to = ["console"]
"#
        ),
    );
    let body = r#"{"payload": []}"#;

    let args = ["render", "--explain", "--event", "-"];
    let run = run(relay(dir.path()).args(args), body.as_bytes());

    assert_eq!(run.code, Some(0), "{run:?}");
    let line = run.stdout.lines().last().unwrap_or_default().to_owned();
    assert!(line.starts_with("digest `morning`: next at "), "{line}");
    assert!(line.contains(" 09:00 CE"), "{line}");
    assert!(line.ends_with(" (Europe/Paris), to console"), "{line}");
}

#[test]
fn check_refuses_reminder_stages_that_match_nothing_and_people_listed_twice() {
    let dir = ConfigDir::new();
    let toml = format!(
        "{CONSOLE}[[reminders]]\nname = \"a\"\nafter = \"4h\"\nstages = []\nto = [\"console\"]\n\n\
         [[reminders]]\nname = \"b\"\nafter = \"4h\"\nstages = [\"Review_*\", \" \"]\n\
         to = [\"console\"]\n\n\
         [people.\" Ann@Example.com \"]\nslack = \"U0123ABC\"\n\n\
         [people.\"ann@example.com\"]\nslack = \"U0123ABD\"\n"
    );

    let run = check(&dir, &toml);

    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            "error: relay.toml:19:1: `people.\"ann@example.com\"`: `ann@example.com` and \
             ` Ann@Example.com ` are the same e-mail; list it once",
            "error: relay.toml:7:10: `reminders[0].stages`: list at least one stage pattern, \
             or leave `stages` out",
            "error: relay.toml:13:23: `reminders[1].stages[1]`: an empty stage pattern matches \
             no stage",
            "3 problems found",
        ]
    );
}
