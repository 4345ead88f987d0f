//! The real binary run as systemd would run it: a fake `NOTIFY_SOCKET`, signals sent
//! with `kill`, webhooks posted over loopback, and the console destination's messages
//! read from its standard output.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Long enough for a debug build on a busy machine; every wait polls and returns early.
const DEADLINE: Duration = Duration::from_secs(15);

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[store]
path = "relay.db"

[destinations.console]
kind = "console"

[[rules]]
name = "first"
to = ["console"]
text = "first {{stage}} {{task_id}}"
"#;

/// A running `redbrick-relay serve` in its own folder.
struct Relay {
    child: Child,
    dir: tempfile::TempDir,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    notify: Notifications,
    /// The `READY=1` datagram of the start.
    ready: String,
    relay: SocketAddr,
    admin: SocketAddr,
}

struct Notifications {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notifications {
            socket,
            seen: Vec::new(),
        }
    }

    /// Reads datagrams until one has a line equal to `line`, and returns that datagram.
    fn wait_for(&mut self, line: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(len) = self.socket.recv(&mut buffer) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buffer[..len]).into_owned();
            self.seen.push(message.clone());
            if message.lines().any(|l| l == line) {
                return message;
            }
        }
        panic!("no `{line}` notification; received {:?}", self.seen);
    }
}

impl Relay {
    /// Starts `serve` and waits for `READY=1` and both listening addresses in the log.
    fn start(config: &str, env: &[(&str, &str)]) -> Relay {
        let mut relay = Relay::spawn(config, &[], env);
        relay.relay = relay.address("relay listening");
        relay.admin = relay.address("admin listening");
        relay
    }

    /// Starts `serve` with the global flags `flags` and waits for `READY=1` only.
    fn spawn(config: &str, flags: &[&str], env: &[(&str, &str)]) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let notify = Notifications::bind(&dir.path().join("notify.sock"));
        write(dir.path(), "relay.toml", config);
        let mut command = Command::new(env!("CARGO_BIN_EXE_redbrick-relay"));
        command
            .args(flags)
            .args(["--config", "relay.toml", "serve"])
            .current_dir(dir.path())
            .env("NOTIFY_SOCKET", dir.path().join("notify.sock"))
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the relay");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let mut relay = Relay {
            child,
            dir,
            stdout,
            stderr,
            notify,
            ready: String::new(),
            relay: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
        };
        relay.ready = relay.notify.wait_for("READY=1");
        relay
    }

    /// The `address=` of the first log line containing `what`.
    fn address(&self, what: &str) -> SocketAddr {
        let line = self.log_line(what);
        let field = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("address="))
            .unwrap_or_else(|| panic!("no address in `{line}`"));
        field.parse().unwrap()
    }

    /// Waits for a log line containing every one of `parts`.
    fn log_line_with(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            let found = self.stderr.lock().unwrap().iter().find_map(|line| {
                parts
                    .iter()
                    .all(|part| line.contains(part))
                    .then(|| line.clone())
            });
            if let Some(line) = found {
                return line;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {parts:?}:\n{}", self.log());
    }

    fn log_line(&self, what: &str) -> String {
        self.log_line_with(&[what])
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGHUP and waits until the reload is over, applied or refused.
    fn reload(&mut self) -> String {
        self.signal("HUP");
        self.notify.wait_for("RELOADING=1");
        self.notify.wait_for("READY=1")
    }

    fn post(&self, body: &str) -> (u16, String) {
        http(self.relay, "POST", "/redbrick", body)
    }

    /// The next message the console destination prints.
    fn next_message(&self) -> String {
        self.stdout
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no console message; log:\n{}", self.log()))
    }

    fn metrics(&self) -> String {
        let (status, body) = http(self.admin, "GET", "/metrics", "");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls `/metrics` until it has every one of `lines` (the outbox's figures follow
    /// a delivery's count by one commit).
    fn wait_for_metrics(&self, lines: &[&str]) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let metrics = self.metrics();
            let missing: Vec<&&str> = lines
                .iter()
                .filter(|line| !metrics.lines().any(|l| l == **line))
                .collect();
            if missing.is_empty() {
                return metrics;
            }
            assert!(
                Instant::now() < deadline,
                "missing {missing:?} in:\n{metrics}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the relay did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn write(&self, name: &str, text: &str) {
        write(self.dir.path(), name, text);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let store = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&store);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    store
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
fn http(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: relay\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

/// A webhook endpoint that takes every request and answers 503, as a platform having an
/// outage does; its address, and one signal per request received.
fn failing_endpoint() -> (SocketAddr, Receiver<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
                          connection: close\r\n\r\n";
            let _ = reader.get_mut().write_all(answer.as_bytes());
            if sender.send(()).is_err() {
                return;
            }
        }
    });
    (address, receiver)
}

/// A webhook with one event of `kind` and id `id`.
fn event(kind: &str, id: u32, stage: &str) -> String {
    format!(
        r#"{{"version": "v1.0", "events": 1, "payload": [{{
            "event": "{kind}", "id": "00000000-0000-4000-8000-{id:012}",
            "timestamp": 1717171717171,
            "data": {{"orgId": "0b6c9a7e-1111-4a2b-9c3d-000000000001",
                      "projectId": "7d3f2e10-2222-4b3c-8d4e-000000000002",
                      "taskId": "task-{id}", "taskName": "scan-{id}",
                      "stageName": "{stage}", "updatedBy": "a@example.com"}}}}]}}"#
    )
}

#[test]
fn ready_comes_after_the_port_accepts_and_stopping_on_sigterm() {
    let mut relay = Relay::start(CONFIG, &[]);

    let accepted = TcpStream::connect(relay.relay);
    let admin = TcpStream::connect(relay.admin);
    relay.signal("TERM");
    let stopping = relay.notify.wait_for("STOPPING=1");
    let status = relay.wait_exit();

    assert!(
        accepted.is_ok(),
        "READY=1 came before the port took connections"
    );
    assert!(
        admin.is_ok(),
        "READY=1 came before the admin port took connections"
    );
    assert!(
        relay
            .ready
            .contains("STATUS=0 pending, 0 dead; config loaded"),
        "{}",
        relay.ready
    );
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    assert!(status.success(), "exit status {status}\n{}", relay.log());
}

#[test]
fn watchdog_pings_arrive_at_half_the_timeout() {
    let mut relay = Relay::start(CONFIG, &[("WATCHDOG_USEC", "200000")]);
    let started = Instant::now();

    for _ in 0..3 {
        relay.notify.wait_for("WATCHDOG=1");
    }

    // Three pings at 100 ms take at least 200 ms; much longer would starve a 200 ms timeout.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150),
        "pings too fast: {took:?}"
    );
}

#[test]
fn sighup_with_a_new_rule_routes_the_next_event_by_it() {
    let mut relay = Relay::start(CONFIG, &[]);
    relay.post(&event("TASK_ENTERED_STAGE", 1, "Review_1"));
    assert_eq!(relay.next_message(), "[console] first Review_1 task-1");

    relay.write(
        "relay.toml",
        &CONFIG.replace("first {{stage}}", "second {{stage}}"),
    );
    let ready = relay.reload();
    let (status, body) = relay.post(&event("TASK_ENTERED_STAGE", 2, "Review_2"));

    assert_eq!(status, 200, "{body}");
    assert!(ready.contains("config loaded"), "{ready}");
    assert_eq!(relay.next_message(), "[console] second Review_2 task-2");
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_rules() {
    let mut relay = Relay::start(CONFIG, &[]);
    let broken = [
        ("bad TOML", CONFIG.replace("[[rules]]", "[[rules]")),
        (
            "a template that does not compile",
            CONFIG.replace(
                "text = \"first {{stage}} {{task_id}}\"",
                "template = \"broken\"",
            ),
        ),
        (
            "an unknown destination",
            CONFIG.replace("to = [\"console\"]", "to = [\"nowhere\"]"),
        ),
    ];
    relay.write("templates/broken.hbs", "{{#if stage}}never closed\n");

    for (index, (what, config)) in broken.iter().enumerate() {
        relay.write("relay.toml", config);
        let ready = relay.reload();
        relay.post(&event("TASK_ENTERED_STAGE", index as u32, "Review_1"));

        assert!(ready.contains("reload refused"), "{what}: {ready}");
        let message = relay.next_message();
        assert_eq!(
            message,
            format!("[console] first Review_1 task-{index}"),
            "{what}"
        );
    }

    relay.wait_for_metrics(&["redbrick_relay_config_last_reload_success 0"]);
    relay.log_line_with(&["config reload refused", "relay.toml", "key=rules[0].to[0]"]);
    relay.log_line_with(&[
        "config reload refused",
        "broken.hbs",
        "key=rules[0].template",
    ]);
    relay.log_line_with(&["config reload refused", "relay.toml", "line=14"]);
}

#[test]
fn metrics_count_events_rules_deliveries_and_requests() {
    let relay = Relay::start(CONFIG, &[]);
    let unknown = event("TASK_ARCHIVED", 9, "x");

    relay.post(&event("TASK_ENTERED_STAGE", 1, "Review_1"));
    relay.post(&event("TASK_ENTERED_STAGE", 2, "Review_1"));
    relay.post(&event("TASK_ENTERED_STAGE", 2, "Review_1"));
    relay.post(&event("TASK_CREATED", 3, ""));
    relay.post(&unknown);
    http(relay.relay, "POST", "/elsewhere", "{}");
    for _ in 0..3 {
        relay.next_message();
    }
    let metrics = relay.wait_for_metrics(&[
        "redbrick_relay_events_received_total{event=\"TASK_ENTERED_STAGE\"} 3",
        "redbrick_relay_events_received_total{event=\"TASK_CREATED\"} 1",
        "redbrick_relay_events_skipped_total 1",
        "redbrick_relay_events_duplicate_total 1",
        "redbrick_relay_rule_matches_total{rule=\"first\"} 3",
        "redbrick_relay_http_requests_total{status=\"200\"} 5",
        "redbrick_relay_http_requests_total{status=\"404\"} 1",
        "redbrick_relay_deliveries_total{destination=\"console\",outcome=\"sent\"} 3",
        "redbrick_relay_delivery_duration_seconds_count{destination=\"console\"} 3",
        "redbrick_relay_queue_depth{destination=\"console\"} 0",
        "redbrick_relay_dead_letters{destination=\"console\"} 0",
        "redbrick_relay_config_last_reload_success 1",
    ]);

    assert!(!metrics.contains("task-1"), "a task id leaked into a label");
}

#[test]
fn health_and_readiness_answer_on_the_admin_port_only() {
    let relay = Relay::start(CONFIG, &[]);

    let (health, _) = http(relay.admin, "GET", "/healthz", "");
    let (ready, body) = http(relay.admin, "GET", "/readyz", "");
    let (on_public, _) = http(relay.relay, "GET", "/metrics", "");

    assert_eq!(health, 200);
    assert_eq!(ready, 200, "{body}");
    assert!(body.contains("\"store\":\"ok\""), "{body}");
    assert_eq!(on_public, 404, "the webhook port must not serve metrics");
}

#[test]
fn a_removed_destination_keeps_its_queue_and_the_reload_says_so() {
    let (endpoint, requests) = failing_endpoint();
    let url = format!("http://{endpoint}/services/T1/B2/SECRET");
    let with_slack = format!(
        "{CONFIG}\n[destinations.reviewers]\nkind = \"slack\"\nurl = \"${{SLACK_URL}}\"\n\n\
         [[rules]]\nname = \"review\"\nto = [\"reviewers\"]\ntext = \"review {{{{stage}}}}\"\n"
    );
    let mut relay = Relay::start(&with_slack, &[("SLACK_URL", &url)]);
    relay.post(&event("TASK_ENTERED_STAGE", 1, "Review_1"));
    requests
        .recv_timeout(DEADLINE)
        .expect("the relay tried the endpoint");
    relay.wait_for_metrics(&["redbrick_relay_queue_depth{destination=\"reviewers\"} 1"]);

    relay.write("relay.toml", CONFIG);
    let ready = relay.reload();

    assert!(ready.contains("config loaded"), "{ready}");
    relay.log_line_with(&[
        "destination removed from the config",
        "destination=reviewers",
        "queued=1",
    ]);
    let metrics =
        relay.wait_for_metrics(&["redbrick_relay_queue_depth{destination=\"reviewers\"} 1"]);
    assert!(
        !metrics.contains("SECRET"),
        "a webhook URL leaked:\n{metrics}"
    );
    assert!(!metrics.contains("127.0.0.1"), "a host leaked:\n{metrics}");
}

#[test]
fn under_the_journal_log_lines_carry_no_timestamp() {
    let plain = Relay::start(CONFIG, &[]);
    let journal = Relay::start(CONFIG, &[("JOURNAL_STREAM", "8:4242")]);

    let stamped = plain.log_line("relay listening");
    let bare = journal.log_line("relay listening");

    assert!(
        stamped.starts_with(|c: char| c.is_ascii_digit()),
        "expected a timestamp first: {stamped}"
    );
    assert!(
        bare.trim_start().starts_with("INFO "),
        "expected the level first: {bare}"
    );
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let plain = Relay::spawn(CONFIG, &["--log-format", "json"], &[]);
    let journal = Relay::spawn(
        CONFIG,
        &["--log-format", "json"],
        &[("JOURNAL_STREAM", "8:4242")],
    );

    let listening = |relay: &Relay| -> serde_json::Value {
        let line = relay.log_line("relay listening");
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("{err}: {line}"))
    };
    let (plain, journal) = (listening(&plain), listening(&journal));

    assert_eq!(plain["level"], "INFO", "{plain}");
    assert_eq!(plain["fields"]["message"], "relay listening", "{plain}");
    assert!(plain["fields"]["address"].is_string(), "{plain}");
    assert!(plain["timestamp"].is_string(), "{plain}");
    assert!(journal.get("timestamp").is_none(), "{journal}");
}
