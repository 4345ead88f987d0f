//! What every integration test shares: fake Slack and Teams endpoints (`fake`), a relay
//! started in-process against them, paused time for tests that assert waits (`paused`),
//! the real binary as a child process (`binary`), raw HTTP for requests no well-behaved
//! client makes (`raw`), config files in a temporary folder, and sample events.
//!
//! Nothing here sleeps to wait for a result: waits end as soon as the awaited request
//! arrives.

// Each test binary uses its own part of this module.
#![allow(dead_code, unused_imports)]

pub mod binary;
mod fake;
pub mod paused;
pub mod raw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use warp::http::Method;

pub use fake::{Answer, Fake, Platform, Received};
use redbrick_relay::config::Config;
use redbrick_relay::outbox::{DeliveryRow, Outbox, State};

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(5);

/// Slack cuts `text` above this many characters.
pub const SLACK_MAX_TEXT_CHARS: usize = 40_000;

/// Teams refuses messages above about this many bytes.
pub const TEAMS_MAX_BODY_BYTES: usize = 28_000;

pub const ORG: &str = "0b6c9a7e-1111-4a2b-9c3d-000000000001";
pub const PROJECT: &str = "7d3f2e10-2222-4b3c-8d4e-000000000002";
pub const PROJECT_NAME: &str = "Chest CT";
pub const TASK: &str = "c4a1b2d3-3333-4c4d-9e5f-000000000003";
pub const USER: &str = "annotator@example.com";

/// The link to the sample project in the RedBrick app.
pub fn project_url() -> String {
    format!("https://app.redbrickai.com/{ORG}/projects/{PROJECT}")
}

/// The link to the sample task in `stage`.
pub fn task_url(stage: &str) -> String {
    format!("{}/tool/{stage}?taskid={TASK}", project_url())
}

/// A new event id, different from every other one in this test binary: the relay
/// recognises a repeated id as a resent event.
pub fn event_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("5f0e6c1a-2b3c-4d5e-8f90-{n:012x}")
}

/// One payload element of type `kind` with `data` added to the ids every event carries.
pub fn event(kind: &str, data: Value) -> Value {
    let mut full = json!({"orgId": ORG, "projectId": PROJECT, "taskId": TASK, "updatedBy": USER});
    let fields = full
        .as_object_mut()
        .expect("a json! object literal is an object");
    for (key, value) in data.as_object().expect("event data is an object") {
        fields.insert(key.clone(), value.clone());
    }
    json!({
        "event": kind,
        "id": event_id(),
        "timestamp": 1_717_171_717_171_i64,
        "data": full,
    })
}

pub fn task_created(task_name: &str) -> Value {
    event("TASK_CREATED", json!({"taskName": task_name}))
}

pub fn task_entered_stage(stage: &str) -> Value {
    event("TASK_ENTERED_STAGE", json!({"stageName": stage}))
}

pub fn task_deleted(task_name: &str) -> Value {
    event("TASK_DELETED", json!({"taskName": task_name}))
}

/// The webhook body RedBrick sends for `payload`, with a matching `events` count.
pub fn envelope(payload: Vec<Value>) -> Value {
    json!({"version": "v1.0", "events": payload.len(), "payload": payload})
}

/// A temporary folder holding a config file and whatever it refers to.
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new() -> ConfigDir {
        ConfigDir {
            dir: tempfile::tempdir().expect("a temporary folder can be created"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `name` (which may contain folders) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("the temporary folder is writable");
        }
        std::fs::write(&path, text).expect("the temporary folder is writable");
        path
    }
}

/// A relay configured against fake endpoints; see [`Relay::builder`].
pub struct RelayBuilder {
    destinations: Vec<(String, Platform)>,
    settings: Vec<(String, String)>,
    server: String,
    delivery: String,
    config: String,
    templates: Vec<(String, String)>,
}

impl RelayBuilder {
    /// Adds a Slack destination `name`, backed by its own fake.
    pub fn slack(mut self, name: &str) -> RelayBuilder {
        self.destinations.push((name.to_owned(), Platform::Slack));
        self
    }

    /// Adds a Teams destination `name`, backed by its own fake.
    pub fn teams(mut self, name: &str) -> RelayBuilder {
        self.destinations.push((name.to_owned(), Platform::Teams));
        self
    }

    /// Adds a TOML line to destination `name`'s table, for example `timeout = "1h"`.
    pub fn setting(mut self, name: &str, line: &str) -> RelayBuilder {
        self.settings.push((name.to_owned(), line.to_owned()));
        self
    }

    /// Adds a TOML line to `[server]`.
    pub fn server(mut self, line: &str) -> RelayBuilder {
        self.server.push_str(line);
        self.server.push('\n');
        self
    }

    /// Adds a TOML line to `[delivery]`.
    pub fn delivery(mut self, line: &str) -> RelayBuilder {
        self.delivery.push_str(line);
        self.delivery.push('\n');
        self
    }

    /// Appends TOML (rules, usually) after the generated destinations.
    pub fn config(mut self, toml: &str) -> RelayBuilder {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    /// Adds a rule `name` sending every event to `to` with the shipped default templates.
    pub fn rule(self, name: &str, to: &[&str]) -> RelayBuilder {
        let to = toml::Value::from(to.to_vec());
        self.config(&format!(
            "[[rules]]\nname = {}\nto = {to}",
            toml::Value::from(name)
        ))
    }

    /// Adds a rule `name` sending every event to `to`, rendered with the inline `text`.
    pub fn text_rule(self, name: &str, to: &[&str], text: &str) -> RelayBuilder {
        let text = toml::Value::from(text);
        self.rule(name, to).config(&format!("text = {text}"))
    }

    /// Puts `templates/<name>.hbs` next to the config.
    pub fn template(mut self, name: &str, text: &str) -> RelayBuilder {
        self.templates.push((name.to_owned(), text.to_owned()));
        self
    }

    /// Starts the fakes and the relay; the config must load.
    pub async fn start(self) -> Relay {
        let dir = ConfigDir::new();
        let mut fakes = BTreeMap::new();
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npath = \"/redbrick\"\n{}\n\
             [store]\npath = \"{STORE}\"\n\n[delivery]\n{}\n\
             [projects]\n\"{PROJECT}\" = \"{PROJECT_NAME}\"\n\n",
            self.server, self.delivery
        );
        for (name, platform) in self.destinations {
            let fake = Fake::start(platform).await;
            let kind = match platform {
                Platform::Slack => "slack",
                Platform::Teams => "teams",
            };
            let url = fake.url();
            // No rate limit: the tests about order and speed would otherwise wait on it.
            toml.push_str(&format!(
                "[destinations.{name}]\nkind = \"{kind}\"\nurl = \"{url}\"\nrate = 0\n"
            ));
            for (_, line) in self.settings.iter().filter(|(n, _)| *n == name) {
                toml.push_str(line);
                toml.push('\n');
            }
            toml.push('\n');
            fakes.insert(name, fake);
        }
        toml.push_str(&self.config);
        for (name, text) in &self.templates {
            dir.write(&format!("templates/{name}.hbs"), text);
        }
        let path = dir.write("relay.toml", &toml);
        if let Err(err) = Config::load(&path) {
            panic!("the test config does not load:\n{err}\n\n{toml}");
        }
        Relay::start(path, fakes, dir).await
    }
}

/// The relay, serving on 127.0.0.1 until dropped.
pub struct Relay {
    running: Running,
    outbox: std::sync::OnceLock<Outbox>,
    config_path: PathBuf,
    client: reqwest::Client,
    fakes: BTreeMap<String, Fake>,
    dir: ConfigDir,
}

/// The outbox file, beside the config.
const STORE: &str = "outbox.db";

/// One run of the relay, from start to shutdown.
struct Running {
    base_url: String,
    path: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Loads the config at `config_path` and serves it on a new 127.0.0.1 port.
    async fn start(config_path: &Path) -> Running {
        let config = Config::load(config_path).expect("the test config loaded before");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 succeeds");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let path = config.server.path.clone();
        let (_config_tx, config_rx) = watch::channel(Arc::new(config));
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stop.await;
            };
            if let Err(err) = redbrick_relay::relay::run(listener, config_rx, stopped).await {
                panic!("the relay did not start: {err}");
            }
        });
        Running {
            base_url: format!("http://{address}"),
            path,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Asks the relay to stop, as a signal would, and waits until it has.
    async fn stop(&mut self) {
        self.signal();
        if let Some(task) = self.task.take() {
            task.await.expect("the relay stops without panicking");
        }
    }

    fn signal(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may already be gone with its runtime; nothing is lost then.
            let _ = shutdown.send(());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal();
    }
}

/// The relay's answer to a request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
}

impl Relay {
    /// A relay whose `[projects]` names the sample project `Chest CT`.
    pub fn builder() -> RelayBuilder {
        RelayBuilder {
            destinations: Vec::new(),
            settings: Vec::new(),
            server: String::new(),
            delivery: String::new(),
            config: String::new(),
            templates: Vec::new(),
        }
    }

    async fn start(config_path: PathBuf, fakes: BTreeMap<String, Fake>, dir: ConfigDir) -> Relay {
        Relay {
            running: Running::start(&config_path).await,
            outbox: std::sync::OnceLock::new(),
            config_path,
            client: reqwest::Client::new(),
            fakes,
            dir,
        }
    }

    /// Stops the relay, waits until it has stopped, and starts it again with the same
    /// config and outbox (on another port), as a service restart would.
    pub async fn restart(&mut self) {
        self.running.stop().await;
        self.running = Running::start(&self.config_path).await;
    }

    /// The relay's config file, to run the binary's operator commands against its store.
    pub fn config_path(&self) -> PathBuf {
        self.config_path.clone()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.running.base_url
    }

    /// Every delivery in the outbox, newest first, read through a connection of its own.
    pub fn deliveries(&self) -> Vec<DeliveryRow> {
        let path = self.dir.path().join(STORE);
        let outbox = self
            .outbox
            .get_or_init(|| Outbox::open(&path).expect("the outbox opens"));
        outbox.list(None, None, 100_000).expect("the outbox reads")
    }

    /// The deliveries to `destination` in `state`, oldest first.
    pub fn deliveries_to(&self, destination: &str, state: State) -> Vec<DeliveryRow> {
        let mut rows = self.deliveries();
        rows.retain(|row| row.destination == destination && row.state == state);
        rows.reverse();
        rows
    }

    /// The fake behind destination `name`.
    pub fn fake(&self, name: &str) -> &Fake {
        self.fakes
            .get(name)
            .unwrap_or_else(|| panic!("no fake destination `{name}`"))
    }

    /// Asserts that no fake saw a request its platform would refuse.
    pub fn assert_no_violations(&self) {
        for (name, fake) in &self.fakes {
            let violations = fake.violations();
            assert!(
                violations.is_empty(),
                "`{name}` got bad requests: {violations:#?}"
            );
        }
    }

    /// Posts `body` as JSON to the webhook path.
    pub async fn post(&self, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("a JSON value serialises");
        self.post_raw(bytes, Some("application/json")).await
    }

    /// Posts raw bytes to the webhook path, with `content_type` when given.
    pub async fn post_raw(&self, body: impl Into<Vec<u8>>, content_type: Option<&str>) -> Reply {
        self.request(Method::POST, &self.running.path, body.into(), content_type)
            .await
    }

    /// Any request to any path of the relay.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Reply {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        self.request_with(method, path, &headers, body).await
    }

    /// Any request to any path of the relay, with these headers.
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let url = format!("{}{path}", self.base_url());
        let mut request = self.client.request(method, url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the relay answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .expect("the relay's answer is readable");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status: status.as_u16(),
            content_type,
            body,
        }
    }
}

/// Polls `done` every few milliseconds until it holds, for state that sends no notice (the
/// outbox); fails the test naming `what` after [`WAIT`].
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts the one JSON error shape: exactly `{"error": {"code", "message"}}`, with this
/// status and code and a message containing `message`; `what` names the case.
pub fn assert_error(reply: &Reply, status: u16, code: &str, message: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {:?}", reply.body);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json"),
        "{what}"
    );
    let error = reply.body.get("error").and_then(Value::as_object);
    let keys: Option<Vec<&str>> = error.map(|e| e.keys().map(String::as_str).collect());
    assert_eq!(
        keys,
        Some(vec!["code", "message"]),
        "{what}: {:?}",
        reply.body
    );
    assert_eq!(reply.body.as_object().map(|o| o.len()), Some(1), "{what}");
    assert_eq!(reply.body["error"]["code"], code, "{what}");
    let text = reply.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        text.contains(message),
        "{what}: message {text:?} lacks {message:?}"
    );
}
