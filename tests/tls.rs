//! Built-in TLS: the relay serves HTTPS with the configured PEM files, and a client that
//! trusts the certificate gets its webhook accepted.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_redbrick-relay");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

const BODY: &str = r#"{"events":1,"payload":[{"event":"TASK_CREATED","id":"tls-1","timestamp":1,
  "data":{"orgId":"o","projectId":"p","taskId":"t","taskName":"scan"}}]}"#;

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start(dir: &std::path::Path, port: u16) -> Relay {
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[server.tls]
cert_file = "{FIXTURES}/test-cert.pem"
key_file = "{FIXTURES}/test-key.pem"

[destinations.console]
kind = "console"

[[rules]]
name = "all"
to = ["console"]
"#
    );
    std::fs::write(dir.join("relay.toml"), config).unwrap();
    let child = Command::new(BINARY)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Relay(child)
}

fn post_until_up(
    client: &reqwest::blocking::Client,
    url: &str,
) -> reqwest::Result<reqwest::blocking::Response> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(BODY)
            .send();
        match sent {
            Err(err) if err.is_connect() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[test]
fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _relay = start(dir.path(), port);
    let pem = std::fs::read(format!("{FIXTURES}/test-cert.pem")).unwrap();
    let trusting = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();

    let response = post_until_up(&trusting, &format!("https://localhost:{port}/redbrick")).unwrap();
    let untrusting = reqwest::blocking::Client::new()
        .post(format!("https://localhost:{port}/redbrick"))
        .body(BODY)
        .send();
    let plain = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/redbrick"))
        .body(BODY)
        .send();

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().unwrap(),
        r#"{"received":1,"matched":1,"skipped":0,"duplicates":0,"deliveries":1}"#
    );
    assert!(
        untrusting.is_err(),
        "a client that does not trust the certificate is refused"
    );
    assert!(
        !plain.is_ok_and(|r| r.status().is_success()),
        "plain HTTP is not served"
    );
}

#[test]
fn check_names_an_unreadable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[server.tls]\ncert_file = \"missing.pem\"\nkey_file = \"missing-key.pem\"\n";
    std::fs::write(dir.path().join("relay.toml"), config).unwrap();

    let out = Command::new(BINARY)
        .current_dir(dir.path())
        .arg("check")
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr
            .contains("relay.toml:2:13: `server.tls.cert_file`: no PEM certificate could be read"),
        "{stderr}"
    );
}
