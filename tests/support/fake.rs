//! Fake Slack and Teams endpoints: real HTTP servers on 127.0.0.1:0 that hold the relay
//! to `docs/chat-platforms.md`. Every request is recorded, and anything the platform would
//! refuse is recorded as a violation as well as answered the way the platform answers.
//! They can be told to answer differently (fail, stall, rate-limit) for the next requests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warp::http::{HeaderMap, Method, Response};
use warp::Filter;

use super::{SLACK_MAX_TEXT_CHARS, TEAMS_MAX_BODY_BYTES, WAIT};

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
    /// When it arrived, on tokio's clock (so paused time in paused tests).
    pub at: tokio::time::Instant,
    /// The status the fake answered it with; 0 while it holds the answer back, and for
    /// good if the client gave up first.
    pub answered: u16,
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
    /// Adds `Retry-After` as an HTTP-date more than this many seconds + 1 s after the
    /// answer is sent.
    pub retry_at: Option<u64>,
}

impl Answer {
    pub fn status(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
            delay: Duration::ZERO,
            retry_at: None,
        }
    }

    /// 429 with `Retry-After` as an HTTP-date; see [`Answer::retry_at`].
    pub fn rate_limited_until(seconds: u64) -> Answer {
        Answer {
            retry_at: Some(seconds),
            ..Answer::status(429, "rate_limited")
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
    /// The answer when the script is empty, instead of the platform's usual one.
    standing: Option<Answer>,
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

    /// Answers every request with `answer` from now on (after any scripted ones), or
    /// as the platform does again with `None`: a webhook that is down, then back.
    pub fn answer_all(&self, answer: Option<Answer>) {
        self.lock().standing = answer;
    }

    /// The message texts of the requests it answered with `status`, in arrival order.
    pub fn texts_answered(&self, status: u16) -> Vec<String> {
        let requests = self.requests();
        let answered = requests.iter().filter(|r| r.answered == status);
        answered.map(Received::text).collect()
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
                    at: tokio::time::Instant::now(),
                    answered: 0,
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
    let (answer, index) = {
        let mut record = record
            .lock()
            .expect("no fake handler panics while holding it");
        let default = match verdict {
            Ok(()) => record.standing.clone().unwrap_or_else(|| success(platform)),
            Err(refusal) => {
                record.violations.push(refusal.violation);
                refusal.answer
            }
        };
        record.requests.push(received);
        let answer = record.script.pop_front().unwrap_or(default);
        (answer, record.requests.len() - 1)
    };
    count.send_modify(|count| *count += 1);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut answered = record
        .lock()
        .expect("no fake handler panics while holding it");
    answered.requests[index].answered = answer.status;
    drop(answered);
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    if let Some(seconds) = answer.retry_at {
        response = response.header("retry-after", http_date_after(seconds));
    }
    response
        .body(answer.body)
        .expect("a scripted answer is a valid response")
}

/// An IMF-fixdate more than `seconds` + 1 s from now (a date has no fraction of a
/// second), so that a relay reading it up to a second later still has `seconds` to wait.
fn http_date_after(seconds: u64) -> String {
    let now = chrono::Utc::now();
    let whole = now.timestamp() + 2 + seconds as i64;
    let date = chrono::DateTime::from_timestamp(whole, 0).expect("a near date is representable");
    date.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
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
