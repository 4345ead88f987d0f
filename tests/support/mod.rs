//! What every integration test shares: fake Slack and Teams endpoints, a relay started
//! in-process against them, config files in a temporary folder, and sample events.
//!
//! The fakes are real HTTP servers on 127.0.0.1:0 that hold the relay to
//! `docs/chat-platforms.md`: every request is recorded, and anything the platform would
//! refuse is recorded as a violation as well as answered the way the platform answers.
//! They can be told to answer differently (fail, stall) for the next requests. Nothing
//! here sleeps to wait for a result: waits end as soon as the awaited request arrives.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use warp::http::{HeaderMap, Method, Response};
use warp::Filter;

use redbrick_relay::config::Config;

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

/// Which platform a fake plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Slack,
    Teams,
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    /// The query string, without `?`; empty when there was none.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "body is not JSON ({err}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The message text: Slack's `text`, or the first TextBlock of a Teams card.
    pub fn text(&self) -> String {
        let json = self.json();
        let text = json
            .get("text")
            .or_else(|| json.pointer("/attachments/0/content/body/0/text"));
        match text.and_then(Value::as_str) {
            Some(text) => text.to_owned(),
            None => panic!("no message text in {json}"),
        }
    }
}

/// How a fake answers a request instead of its platform's usual answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    /// How long to hold the request before answering.
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Holds the request for `delay`, then answers as the platform does on success.
    pub fn stall(platform: Platform, delay: Duration) -> Answer {
        Answer {
            delay,
            ..success(platform)
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

fn success(platform: Platform) -> Answer {
    match platform {
        Platform::Slack => Answer::status(200, "ok"),
        Platform::Teams => Answer::status(202, ""),
    }
}

#[derive(Default)]
struct Record {
    requests: Vec<Received>,
    violations: Vec<String>,
    script: VecDeque<Answer>,
}

/// A fake Slack incoming webhook or Teams Workflows trigger on 127.0.0.1.
pub struct Fake {
    platform: Platform,
    address: SocketAddr,
    record: Arc<Mutex<Record>>,
    count: watch::Receiver<usize>,
    server: JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Fake {
    pub async fn start(platform: Platform) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 succeeds");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let record = Arc::new(Mutex::new(Record::default()));
        let (count_tx, count) = watch::channel(0);
        let filter = fake_filter(platform, record.clone(), Arc::new(count_tx));
        let server = tokio::spawn(warp::serve(filter).incoming(listener).run());
        Fake {
            platform,
            address,
            record,
            count,
            server,
        }
    }

    /// The webhook URL, shaped like the real platform's, secret part included.
    pub fn url(&self) -> String {
        let address = self.address;
        match self.platform {
            Platform::Slack => format!("http://{address}/services/T0001/B0001/XXSECRETXX"),
            Platform::Teams => format!(
                "http://{address}/workflows/0a1b2c/triggers/manual/paths/invoke\
                 ?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=XXSECRETXX"
            ),
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        self.lock().requests.clone()
    }

    /// What the platform would have refused or silently dropped, one line each.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Answers the next `n` requests with `answer` instead of the platform's own answer.
    pub fn answer_next(&self, n: usize, answer: Answer) {
        let mut record = self.lock();
        record.script.extend(std::iter::repeat_n(answer, n));
    }

    /// Waits until at least `n` requests have arrived and returns the first `n`; fails
    /// the test with what did arrive after [`WAIT`].
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut count = self.count.clone();
        let arrived = tokio::time::timeout(WAIT, count.wait_for(|&count| count >= n)).await;
        let requests = self.requests();
        if !matches!(arrived, Ok(Ok(_))) {
            let bodies: Vec<_> = requests
                .iter()
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .collect();
            panic!("expected {n} requests within {WAIT:?}, got {bodies:#?}");
        }
        requests.into_iter().take(n).collect()
    }

    /// The texts of the first `n` messages, once they have arrived.
    pub async fn wait_for_texts(&self, n: usize) -> Vec<String> {
        self.wait_for(n).await.iter().map(Received::text).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .expect("no fake handler panics while holding the record")
    }
}

fn fake_filter(
    platform: Platform,
    record: Arc<Mutex<Record>>,
    count: Arc<watch::Sender<usize>>,
) -> impl Filter<Extract = (Response<String>,), Error = warp::Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |method, path: warp::path::FullPath, query, headers, body| {
                let received = Received {
                    method,
                    path: path.as_str().to_owned(),
                    query,
                    headers,
                    body,
                };
                let (record, count) = (record.clone(), count.clone());
                async move { answer(platform, received, &record, &count).await }
            },
        )
}

/// Records the request, checks it against the platform's rules, and answers.
async fn answer(
    platform: Platform,
    received: Received,
    record: &Mutex<Record>,
    count: &watch::Sender<usize>,
) -> Response<String> {
    let verdict = match platform {
        Platform::Slack => check_slack(&received),
        Platform::Teams => check_teams(&received),
    };
    let answer = {
        let mut record = record
            .lock()
            .expect("no fake handler panics while holding it");
        record.requests.push(received);
        let default = match verdict {
            Ok(()) => success(platform),
            Err(refusal) => {
                record.violations.push(refusal.violation);
                refusal.answer
            }
        };
        record.script.pop_front().unwrap_or(default)
    };
    count.send_modify(|count| *count += 1);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    response
        .body(answer.body)
        .expect("a scripted answer is a valid response")
}

/// A request the platform would not take: what was wrong, and what the platform answers.
struct Refusal {
    violation: String,
    answer: Answer,
}

fn refuse(violation: String, status: u16, body: &str) -> Refusal {
    Refusal {
        violation,
        answer: Answer::status(status, body),
    }
}

fn content_type_is_json(received: &Received) -> Result<(), String> {
    let value = received.header("content-type").unwrap_or("");
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("").to_ascii_lowercase();
    let charset_ok = parts.all(|param| {
        let param = param.to_ascii_lowercase();
        !param.starts_with("charset=") || param == "charset=utf-8"
    });
    if essence == "application/json" && charset_ok {
        Ok(())
    } else {
        Err(format!("content type `{value}` is not application/json"))
    }
}

/// Slack: a JSON body with a string `text` of at most 40,000 characters.
fn check_slack(received: &Received) -> Result<(), Refusal> {
    if received.method != Method::POST {
        let violation = format!("{} instead of POST", received.method);
        return Err(refuse(violation, 405, "invalid_payload"));
    }
    content_type_is_json(received).map_err(|v| refuse(v, 400, "invalid_payload"))?;
    let json: Value = serde_json::from_slice(&received.body)
        .map_err(|err| refuse(format!("body is not JSON: {err}"), 400, "invalid_payload"))?;
    let text = match json.get("text") {
        None => return Err(refuse("no `text`".into(), 400, "no_text")),
        Some(Value::String(text)) if text.is_empty() => {
            return Err(refuse("`text` is empty".into(), 400, "no_text"));
        }
        Some(Value::String(text)) => text,
        Some(other) => {
            let violation = format!("`text` is not a string: {other}");
            return Err(refuse(violation, 400, "invalid_payload"));
        }
    };
    let chars = text.chars().count();
    if chars > SLACK_MAX_TEXT_CHARS {
        // Slack takes the message and cuts it, so the answer is still `ok`.
        let violation = format!("`text` has {chars} characters, over {SLACK_MAX_TEXT_CHARS}");
        return Err(refuse(violation, 200, "ok"));
    }
    Ok(())
}

/// Teams Workflows: an Adaptive Card 1.4 in a `message` envelope, at most 28,000 bytes.
///
/// Workflows answer 202 before they look at the card, so a malformed card is answered
/// 202 here too (the violation is what fails the test). The docs publish no error body;
/// the 400 body below is a stand-in.
fn check_teams(received: &Received) -> Result<(), Refusal> {
    let bad_request = r#"{"error":{"code":"InvalidRequestContent"}}"#;
    if received.method != Method::POST {
        let violation = format!("{} instead of POST", received.method);
        return Err(refuse(violation, 405, bad_request));
    }
    content_type_is_json(received).map_err(|v| refuse(v, 400, bad_request))?;
    let size = received.body.len();
    if size > TEAMS_MAX_BODY_BYTES {
        let violation = format!("body has {size} bytes, over {TEAMS_MAX_BODY_BYTES}");
        return Err(refuse(violation, 413, "request entity too large"));
    }
    let json: Value = serde_json::from_slice(&received.body)
        .map_err(|err| refuse(format!("body is not JSON: {err}"), 400, bad_request))?;
    check_card(&json).map_err(|violation| refuse(violation, 202, ""))
}

fn check_card(json: &Value) -> Result<(), String> {
    let expect = |pointer: &str, wanted: Value| match json.pointer(pointer) {
        Some(found) if *found == wanted => Ok(()),
        found => Err(format!("`{pointer}` is {found:?}, expected {wanted}")),
    };
    expect("/type", json!("message"))?;
    let adaptive = json!("application/vnd.microsoft.card.adaptive");
    expect("/attachments/0/contentType", adaptive)?;
    expect("/attachments/0/content/type", json!("AdaptiveCard"))?;
    expect("/attachments/0/content/version", json!("1.4"))?;
    let body = json.pointer("/attachments/0/content/body");
    match body.and_then(Value::as_array) {
        Some(blocks) if !blocks.is_empty() => {}
        _ => return Err(format!("card body is {body:?}, expected a non-empty array")),
    }
    expect("/attachments/0/content/body/0/type", json!("TextBlock"))?;
    expect("/attachments/0/content/body/0/wrap", json!(true))?;
    match json.pointer("/attachments/0/content/body/0/text") {
        Some(Value::String(_)) => Ok(()),
        other => Err(format!("first TextBlock's text is {other:?}")),
    }
}

/// A relay configured against fake endpoints; see [`Relay::builder`].
pub struct RelayBuilder {
    destinations: Vec<(String, Platform)>,
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
            "[server]\nlisten = \"127.0.0.1:0\"\npath = \"/redbrick\"\n\n\
             [store]\npath = \"outbox.db\"\n\n\
             [projects]\n\"{PROJECT}\" = \"{PROJECT_NAME}\"\n\n"
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
                "[destinations.{name}]\nkind = \"{kind}\"\nurl = \"{url}\"\nrate = 0\n\n"
            ));
            fakes.insert(name, fake);
        }
        toml.push_str(&self.config);
        for (name, text) in &self.templates {
            dir.write(&format!("templates/{name}.hbs"), text);
        }
        let path = dir.write("relay.toml", &toml);
        let config = Config::load(&path)
            .unwrap_or_else(|err| panic!("the test config does not load:\n{err}\n\n{toml}"));
        Relay::start(config, fakes, dir).await
    }
}

/// The relay, serving on 127.0.0.1 until dropped.
pub struct Relay {
    base_url: String,
    path: String,
    client: reqwest::Client,
    fakes: BTreeMap<String, Fake>,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: ConfigDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may already be gone with its runtime; nothing is lost then.
            let _ = shutdown.send(());
        }
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
            config: String::new(),
            templates: Vec::new(),
        }
    }

    async fn start(config: Config, fakes: BTreeMap<String, Fake>, dir: ConfigDir) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 succeeds");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let path = config.server.path.clone();
        let (_config_tx, config_rx) = watch::channel(Arc::new(config));
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async {
                let _ = stop.await;
            };
            if let Err(err) = redbrick_relay::relay::run(listener, config_rx, stopped).await {
                panic!("the relay did not start: {err}");
            }
        });
        Relay {
            base_url: format!("http://{address}"),
            path,
            client: reqwest::Client::new(),
            fakes,
            shutdown: Some(shutdown),
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
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
        self.request(Method::POST, &self.path, body.into(), content_type)
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
        let url = format!("{}{path}", self.base_url);
        let mut request = self.client.request(method, url).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
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
