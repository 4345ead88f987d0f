//! No secret ever reaches a log line or a command's output: the inbound token, a Slack
//! webhook path, a Teams `sig`; and no text from outside forges a log line. The real
//! binary runs with debug logs, failing destinations and refused requests, and
//! everything it prints is searched.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_redbrick-relay");
const TOKEN: &str = "SECRETTOKEN0123456789";

/// Answers every request with Slack's "webhook removed" error.
fn refusing_endpoint() -> u16 {
    refusing_endpoint_saying("no_service")
}

/// Answers every request with 404 and `body`.
fn refusing_endpoint_saying(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer_not_found(stream, body);
        }
    });
    port
}

fn answer_not_found(mut stream: TcpStream, body: &str) {
    let mut request = [0u8; 65536];
    let _ = stream.read(&mut request);
    let head = format!(
        "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(format!("{head}{body}").as_bytes());
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &std::path::Path, relay_port: u16) {
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{relay_port}"
token = "${{RELAY_TOKEN}}"

[admin]
listen = "127.0.0.1:0"

[destinations.refused]
kind = "slack"
url = "${{SLACK_URL}}"

[destinations.down]
kind = "teams"
url_file = "teams-url"

[[rules]]
name = "all"
to = ["refused", "down"]
"#
    );
    std::fs::write(dir.join("relay.toml"), config).unwrap();
    let teams = format!(
        "http://127.0.0.1:{}/workflows/x/triggers/manual/paths/invoke?sig=SECRETSIG\n",
        closed_port()
    );
    std::fs::write(dir.join("teams-url"), teams).unwrap();
}

fn start(dir: &std::path::Path, slack_port: u16) -> Child {
    Command::new(BINARY)
        .current_dir(dir)
        .env("RUST_LOG", "debug")
        .env("RELAY_TOKEN", TOKEN)
        .env(
            "SLACK_URL",
            format!("http://127.0.0.1:{slack_port}/services/T0/B0/SECRETSLACK"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn post(port: u16, target: &str, body: &str) -> u16 {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = client
            .post(format!("http://127.0.0.1:{port}{target}"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send();
        match sent {
            Ok(response) => return response.status().as_u16(),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => panic!("the relay never answered: {err}"),
        }
    }
}

fn envelope(id: &str) -> String {
    format!(
        r#"{{"events":1,"payload":[{{"event":"TASK_ENTERED_STAGE","id":"{id}","timestamp":1,
        "data":{{"orgId":"o","projectId":"p","taskId":"t","stageName":"Review_1"}}}}]}}"#
    )
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [TOKEN, "SECRETSLACK", "SECRETSIG"] {
        assert!(!text.contains(secret), "{what} shows `{secret}`:\n{text}");
    }
}

#[test]
fn logs_and_outputs_never_show_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let relay_port = closed_port();
    write_config(dir.path(), relay_port);
    let mut relay = start(dir.path(), refusing_endpoint());

    let statuses = [
        post(relay_port, "/redbrick", &envelope("a")),
        post(relay_port, "/redbrick/WRONG", &envelope("b")),
        post(relay_port, &format!("/redbrick/{TOKEN}"), &envelope("c")),
        post(
            relay_port,
            &format!("/redbrick?token={TOKEN}"),
            &envelope("d"),
        ),
        post(relay_port, &format!("/redbrick/{TOKEN}"), "{"),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = || {
        let out = Command::new(BINARY)
            .current_dir(dir.path())
            .args(["deliveries", "--state", "dead"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .matches("no_service")
            .count()
    };
    while dead() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    terminate(&relay);
    let output = relay_output(&mut relay);

    assert_eq!(statuses, [401, 401, 200, 200, 400]);
    assert!(
        output.contains("no_service"),
        "the refusal was logged:\n{output}"
    );
    assert!(
        output.contains("path=/redbrick/***"),
        "the token path was logged, redacted:\n{output}"
    );
    assert_no_secret("the relay's logs", &output);
    for args in [&["check"][..], &["render", "--event", "-"], &["deliveries"]] {
        let out = Command::new(BINARY)
            .current_dir(dir.path())
            .env("SLACK_URL", "not a url SECRETSLACK")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_secret(&format!("`{}`", args.join(" ")), &printed);
    }
}

fn terminate(child: &Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
}

fn relay_output(child: &mut Child) -> String {
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    child.wait().unwrap();
    text
}

#[test]
fn a_token_in_a_path_that_is_not_the_webhook_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let relay_port = closed_port();
    write_config(dir.path(), relay_port);
    let mut relay = start(dir.path(), refusing_endpoint());

    let statuses = [
        format!("/redbrick//{TOKEN}"),
        format!("/redbrick/{TOKEN}/"),
        format!("/redbrick/{TOKEN}/x"),
        format!("/hooks/redbrick/{TOKEN}"),
        format!("/redbrick%2F{TOKEN}"),
        format!("/{TOKEN}"),
    ]
    .map(|path| post(relay_port, &path, &envelope("p")));
    terminate(&relay);
    let output = relay_output(&mut relay);

    assert_eq!(statuses, [404, 200, 404, 404, 404, 404]);
    for shown in ["path=/redbrick/*** ", "path=/*** "] {
        assert!(output.contains(shown), "`{shown}` was logged:\n{output}");
    }
    assert_no_secret("the relay's logs", &output);
}

#[test]
fn text_from_outside_cannot_forge_a_log_line() {
    const FORGED: &str = "FORGED ERROR line";
    let dir = tempfile::tempdir().unwrap();
    let relay_port = closed_port();
    write_config(dir.path(), relay_port);
    let mut relay = start(
        dir.path(),
        refusing_endpoint_saying("no_service\nFORGED ERROR line from the platform"),
    );
    let unknown = r#"{"events":1,"payload":[{"event":"X\nFORGED ERROR line from the sender",
        "id":"u","timestamp":1,"data":{}}]}"#;

    let target = format!("/redbrick/{TOKEN}");
    let statuses = [
        post(relay_port, &target, unknown),
        post(relay_port, &target, &envelope("s")),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = || {
        let out = Command::new(BINARY)
            .current_dir(dir.path())
            .args(["deliveries", "--state", "dead"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    while !dead().contains("no_service") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let table = dead();
    terminate(&relay);
    let output = relay_output(&mut relay);

    assert_eq!(statuses, [200, 200]);
    assert!(
        output.contains(r#"event="X\nFORGED ERROR line from the sender""#),
        "the unknown type was logged, quoted:\n{output}"
    );
    assert!(
        output.contains("404 Not Found: no_service FORGED ERROR line from the platform"),
        "the platform's answer was logged on one line:\n{output}"
    );
    for (what, text) in [("the relay's logs", &output), ("`deliveries`", &table)] {
        for line in text.lines() {
            assert!(
                !line.starts_with(FORGED),
                "{what} has a forged line:\n{text}"
            );
        }
    }
}
