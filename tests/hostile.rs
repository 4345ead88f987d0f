//! Hostile and broken requests: each refused with its exact status and JSON error code,
//! nothing of it delivered, and the relay still serving the next honest request.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use warp::http::Method;

use support::paused::PausedTime;
use support::{assert_error, envelope, raw, task_created, Relay};

const TOKEN: &str = "t0ken-for-tests";

/// The address RedBrick posts from, behind the trusted proxy (the test, on loopback).
const REDBRICK: &str = "192.0.2.7";

/// Slack `chat` behind a token, an allow-list and a trusted proxy on loopback.
async fn guarded_relay() -> Relay {
    Relay::builder()
        .server(&format!("token = \"{TOKEN}\""))
        .server(&format!("allow_from = [\"{REDBRICK}/32\"]"))
        .server("trusted_proxies = [\"127.0.0.1/32\"]")
        .slack("chat")
        .text_rule(
            "all",
            &["chat"],
            "{{task_name}} {{time timestamp \"%Y-%m-%d\"}}",
        )
        .start()
        .await
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let fast = flate2::Compression::fast();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), fast);
    encoder.write_all(data).expect("writing to memory succeeds");
    encoder.finish().expect("writing to memory succeeds")
}

/// One request: what it is, its extra headers, body, and the status, code and part of
/// the message expected.
struct Case {
    what: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    message: &'static str,
}

fn case(
    what: &'static str,
    body: impl Into<Vec<u8>>,
    expected: (u16, &'static str, &'static str),
) -> Case {
    let (status, code, message) = expected;
    Case {
        what,
        headers: vec![("content-type", "application/json".into())],
        body: body.into(),
        status,
        code,
        message,
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }
}

fn cases() -> Vec<Case> {
    let bad_json = (400, "invalid_json", "body is not valid JSON");
    let not_object = (400, "invalid_envelope", "`(body)` must be a JSON object");
    let no_data = json!({"payload": [{"event": "TASK_CREATED", "id": "e", "timestamp": 1}]});
    let twenty_mib = vec![b' '; 20 << 20];
    let too_large = (413, "payload_too_large", "over the limit of 1048576 bytes");
    let bomb = gzip(&vec![b' '; 64 << 20]);
    let form = (415, "unsupported_media_type", "application/json");
    vec![
        case("empty body", vec![], bad_json),
        case("`{`", "{", bad_json),
        case("null", "null", not_object),
        case("[]", "[]", not_object),
        case(
            "no payload",
            "{}",
            (400, "invalid_envelope", "`payload` is missing"),
        ),
        case(
            "payload object",
            r#"{"payload": {}}"#,
            (400, "invalid_envelope", "`payload` must be an array"),
        ),
        case(
            "event without data",
            no_data.to_string(),
            (400, "invalid_envelope", "`payload[0].data` is missing"),
        ),
        case(
            "invalid UTF-8",
            b"{\"payload\": [\"\xff\xfe\"]}".to_vec(),
            bad_json,
        ),
        case("20 MiB", twenty_mib, too_large),
        case("gzip bomb", bomb, too_large).header("content-encoding", "gzip"),
        case(
            "broken gzip",
            "not gzip",
            (400, "invalid_gzip", "cannot be decoded"),
        )
        .header("content-encoding", "gzip"),
        case("brotli", "{}", (415, "unsupported_encoding", "`gzip`"))
            .header("content-encoding", "br"),
        case("form-encoded", "payload=%7B%7D", form)
            .header("content-type", "application/x-www-form-urlencoded"),
        case("multipart", "--x--", form).header("content-type", "multipart/form-data; boundary=x"),
    ]
}

async fn send(relay: &Relay, path: &str, forwarded_for: &str, case: &Case) -> support::Reply {
    let mut headers: Vec<(&str, &str)> =
        case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    if !forwarded_for.is_empty() {
        headers.push(("x-forwarded-for", forwarded_for));
    }
    relay
        .request_with(Method::POST, path, &headers, case.body.clone())
        .await
}

#[tokio::test]
async fn malformed_requests_get_their_exact_status_and_code_and_deliver_nothing() {
    let relay = guarded_relay().await;
    let path = format!("/redbrick/{TOKEN}");

    for case in cases() {
        let reply = send(&relay, &path, REDBRICK, &case).await;

        assert_error(&reply, case.status, case.code, case.message, case.what);
    }
    let barrier = case(
        "barrier",
        envelope(vec![task_created("barrier")]).to_string(),
        (200, "", ""),
    );
    let reply = send(&relay, &path, REDBRICK, &barrier).await;
    let texts = relay.fake("chat").wait_for_texts(1).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(
        texts[0].starts_with("barrier"),
        "nothing before the barrier: {texts:?}"
    );
}

#[tokio::test]
async fn a_wrong_token_or_address_is_refused_whichever_part_is_wrong() {
    let relay = guarded_relay().await;
    let body = || {
        case(
            "ok",
            envelope(vec![task_created("x")]).to_string(),
            (200, "", ""),
        )
    };
    let good = format!("/redbrick/{TOKEN}");
    let query = format!("/redbrick?token={TOKEN}");
    let unauthorized = (401, "unauthorized", "missing or wrong token");
    let forbidden = (403, "forbidden", "this address may not post here");
    let attempts = [
        ("no token", "/redbrick", REDBRICK, unauthorized),
        (
            "wrong token",
            "/redbrick/t0ken-for-test",
            REDBRICK,
            unauthorized,
        ),
        (
            "wrong query token",
            "/redbrick?token=nope",
            REDBRICK,
            unauthorized,
        ),
        ("other address", good.as_str(), "203.0.113.9", forbidden),
        ("no forwarded address", good.as_str(), "", forbidden),
        (
            "forged first address",
            good.as_str(),
            "192.0.2.7, 203.0.113.9",
            forbidden,
        ),
    ];

    for (what, path, from, (status, code, message)) in attempts {
        let reply = send(&relay, path, from, &body()).await;

        assert_error(&reply, status, code, message, what);
    }
    let by_path = send(&relay, &good, REDBRICK, &body()).await;
    let by_query = send(&relay, &query, REDBRICK, &body()).await;
    let through_proxy = send(&relay, &good, "203.0.113.9, 192.0.2.7", &body()).await;
    relay.fake("chat").wait_for(3).await;
    for reply in [by_path, by_query, through_proxy] {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
}

#[tokio::test]
async fn a_forwarded_address_from_an_untrusted_peer_is_ignored() {
    let relay = Relay::builder()
        .server(&format!("allow_from = [\"{REDBRICK}/32\"]"))
        .slack("chat")
        .rule("all", &["chat"])
        .start()
        .await;
    let body = case(
        "spoofed",
        envelope(vec![task_created("x")]).to_string(),
        (403, "", ""),
    );

    let reply = send(&relay, "/redbrick", REDBRICK, &body).await;

    assert_error(
        &reply,
        403,
        "forbidden",
        "may not post",
        "spoofed X-Forwarded-For",
    );
}

#[tokio::test]
async fn a_timestamp_that_is_not_a_date_is_accepted_and_shows_the_time_of_receipt() {
    let relay = guarded_relay().await;
    let mut event = task_created("when");
    event["timestamp"] = json!("next tuesday");
    let today = || chrono::Utc::now().format("%Y-%m-%d").to_string();
    let before = today();
    let body = case(
        "string timestamp",
        envelope(vec![event]).to_string(),
        (200, "", ""),
    );

    let reply = send(&relay, &format!("/redbrick/{TOKEN}"), REDBRICK, &body).await;

    let texts = relay.fake("chat").wait_for_texts(1).await;
    let summary: Value =
        json!({"received": 1, "matched": 1, "skipped": 0, "duplicates": 0, "deliveries": 1});
    assert_eq!((reply.status, reply.body), (200, summary));
    let shown = [format!("when {before}"), format!("when {}", today())];
    assert!(
        shown.contains(&texts[0]),
        "{texts:?} is not the time of receipt"
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_off_with_413() {
    let relay = Relay::builder()
        .slack("chat")
        .rule("all", &["chat"])
        .start()
        .await;

    let answer = raw::post_chunked(relay.base_url(), "/redbrick", 20 << 20).await;

    let (status, body) = answer.expect("the relay answers before closing");
    let body: Value = serde_json::from_str(&body).expect("the answer is JSON");
    assert_eq!(
        (status, &body["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
}

/// When a connection ended, in paused time, and the status it was answered with, if any.
type End = Arc<Mutex<Option<(Instant, Option<u16>)>>>;

/// Reads `stream` in the background until its answer or its end, recorded in the result.
fn watch_end(stream: tokio::net::TcpStream) -> End {
    let end = Arc::new(Mutex::new(None));
    let cell = Arc::clone(&end);
    tokio::spawn(async move {
        let mut stream = stream;
        let answer = raw::read_answer(&mut stream).await;
        *cell.lock().unwrap() = Some((Instant::now(), answer.map(|(status, _)| status)));
    });
    end
}

#[tokio::test(start_paused = true)]
async fn slow_clients_are_cut_off_and_requests_beyond_the_limit_get_503() {
    let time = PausedTime::new();
    let relay = Relay::builder()
        .server("max_concurrent_requests = 1")
        .server("header_timeout = \"2s\"")
        .server("body_timeout = \"3s\"")
        .slack("chat")
        .rule("all", &["chat"])
        .start()
        .await;
    let started = Instant::now();
    let mut slow_head = raw::connect(relay.base_url()).await;
    raw::write(
        &mut slow_head,
        b"POST /redbrick HTTP/1.1\r\nhost: relay\r\n",
    )
    .await;
    let mut slow_body = raw::connect(relay.base_url()).await;
    let head = "POST /redbrick HTTP/1.1\r\nhost: relay\r\ncontent-length: 100\r\n\r\n{";
    raw::write(&mut slow_body, head.as_bytes()).await;
    let (head_end, body_end) = (watch_end(slow_head), watch_end(slow_body));

    // Refused once the slow body holds the only place; `{` is a 400 if it gets in.
    let mut extra = relay.post_raw("{", Some("application/json")).await;
    while extra.status == 400 {
        extra = relay.post_raw("{", Some("application/json")).await;
    }
    let both_ended = time
        .advance_until(Duration::from_secs(60), || {
            head_end.lock().unwrap().is_some() && body_end.lock().unwrap().is_some()
        })
        .await;
    let after = relay.post(&envelope(vec![task_created("after")])).await;

    assert_error(
        &extra,
        503,
        "overloaded",
        "too many requests at once",
        "over the limit",
    );
    assert!(both_ended, "a slow client held its connection for a minute");
    let (head_at, head_answer) = head_end.lock().unwrap().expect("ended");
    let (body_at, body_answer) = body_end.lock().unwrap().expect("ended");
    assert!(
        head_at - started >= Duration::from_secs(2),
        "headers cut early"
    );
    assert!(head_answer.is_none_or(|s| s == 408), "{head_answer:?}");
    assert!(
        body_at - started >= Duration::from_secs(3),
        "body cut early"
    );
    assert_eq!(body_answer, Some(408), "the body timeout answers 408");
    assert_eq!(
        after.status, 200,
        "the place is free again: {:?}",
        after.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_with_memory_bounded() {
    let dir = support::ConfigDir::new();
    let port = support::binary::free_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [destinations.console]\nkind = \"console\"\n\n\
         [[rules]]\nname = \"all\"\nto = [\"console\"]\n"
    );
    dir.write("relay.toml", &toml);
    let service = support::binary::Service::start(dir.path(), port).await;
    // 128 MiB once decoded, about 600 KB on the wire: under the 1 MiB body limit.
    let bomb = gzip(&vec![b' '; 128 << 20]);
    let headers = [
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];

    let (status, answer) = service.post_raw(bomb, &headers).await;

    let peak_mib = service.peak_memory_kib() / 1024;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
    assert!(
        peak_mib < 64,
        "the relay held {peak_mib} MiB for a 128 MiB bomb"
    );
}

#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_match_ipv4_networks() {
    if std::net::TcpListener::bind("[::]:0").is_err() {
        eprintln!("skipped: this machine cannot listen on [::]");
        return;
    }
    let dir = support::ConfigDir::new();
    let port = support::binary::free_port();
    let toml = format!(
        "[server]\nlisten = \"[::]:{port}\"\ntoken = \"{TOKEN}\"\n\
         allow_from = [\"{REDBRICK}/32\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [destinations.console]\nkind = \"console\"\n\n\
         [[rules]]\nname = \"all\"\nto = [\"console\"]\n"
    );
    dir.write("relay.toml", &toml);
    let service = support::binary::Service::start(dir.path(), port).await;
    let client = reqwest::Client::new();
    let post = |forwarded_for: &'static str| {
        let mut request = client
            .post(format!("http://127.0.0.1:{port}/redbrick/{TOKEN}"))
            .header("content-type", "application/json")
            .body(envelope(vec![task_created("x")]).to_string());
        if !forwarded_for.is_empty() {
            request = request.header("x-forwarded-for", forwarded_for);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };

    let statuses = [
        post("192.0.2.7").await,
        post("::ffff:192.0.2.7").await,
        post("").await,
        post("203.0.113.9").await,
    ];

    assert_eq!(statuses, [200, 200, 403, 403], "{}", service.log());
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let relay = Relay::builder()
        .slack("chat")
        .rule("all", &["chat"])
        .start()
        .await;
    let mut stream = raw::connect(relay.base_url()).await;
    raw::write(
        &mut stream,
        b"POST /redbrick HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json\r\n\
          content-length: 10000000000\r\n\r\n",
    )
    .await;

    let answer = tokio::time::timeout(Duration::from_secs(5), raw::read_answer(&mut stream))
        .await
        .expect("answered without waiting for the body");

    let (status, body) = answer.expect("the relay answers");
    let body: Value = serde_json::from_str(&body).expect("the answer is JSON");
    assert_eq!(
        (status, &body["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
    assert!(relay.fake("chat").requests().is_empty());
}
