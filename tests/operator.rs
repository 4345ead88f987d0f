//! The operator commands run as a person would: `send-test` against a fake Slack
//! endpoint, `completions`, `--version` and `--help`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// A one-shot HTTP endpoint: answers the first request with `status` and `body`, and
/// hands over what it received.
fn fake_endpoint(status: &str, body: &'static str) -> (SocketAddr, Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let status = status.to_owned();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut request = vec![0; length];
        reader.read_exact(&mut request).unwrap();
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        reader.get_mut().write_all(answer.as_bytes()).unwrap();
        let _ = sender.send(head + &String::from_utf8_lossy(&request));
    });
    (address, receiver)
}

/// Runs the binary in `dir`, with `dir/credentials` as systemd's credentials folder.
fn relay(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redbrick-relay"))
        .args(args)
        .current_dir(dir)
        .env_remove("RELAY_CONFIG")
        .env("CREDENTIALS_DIRECTORY", dir.join("credentials"))
        .output()
        .expect("run the relay")
}

/// A Slack destination whose URL (on `address`) and token come as systemd credentials.
fn slack_config(dir: &std::path::Path, address: SocketAddr) {
    let credentials = dir.join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    let url = format!("http://{address}/services/T1/B2/SECRET\n");
    std::fs::write(credentials.join("slack-reviewers"), url).unwrap();
    std::fs::write(credentials.join("relay-token"), "TOKEN\n").unwrap();
    let config = "[server]\ntoken_file = \"${CREDENTIALS_DIRECTORY}/relay-token\"\n\n\
        [destinations.reviewers]\nkind = \"slack\"\n\
        url_file = \"${CREDENTIALS_DIRECTORY}/slack-reviewers\"\n\n\
        [[rules]]\nname = \"all\"\nto = [\"reviewers\"]\ntext = \"{{event}}\"\n";
    std::fs::write(dir.join("relay.toml"), config).unwrap();
}

#[test]
fn send_test_posts_the_default_message_and_prints_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (address, received) = fake_endpoint("200 OK", "ok");
    slack_config(dir.path(), address);

    let output = relay(dir.path(), &["send-test", "reviewers"]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let request = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("answered 200 OK\nok\n"), "{stdout}");
    assert!(
        request.starts_with("POST /services/T1/B2/SECRET"),
        "{request}"
    );
    assert!(
        request.contains("entered *Review_1*"),
        "not the default template: {request}"
    );
    assert!(!stdout.contains("SECRET"), "the webhook URL was printed");
}

#[test]
fn send_test_fails_when_the_platform_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (address, _received) = fake_endpoint("404 Not Found", "no_service");
    slack_config(dir.path(), address);

    let output = relay(dir.path(), &["send-test", "reviewers"]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        stdout.contains("answered 404 Not Found\nno_service"),
        "{stdout}"
    );
    assert!(
        stderr.contains("refused the test message for good"),
        "{stderr}"
    );
    assert!(!format!("{stdout}{stderr}").contains("SECRET"));
}

#[test]
fn send_test_names_the_defined_destinations_for_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    slack_config(dir.path(), "127.0.0.1:9".parse().unwrap());

    let output = relay(dir.path(), &["send-test", "reviewrs"]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("no destination `reviewrs`") && stderr.contains("(defined: reviewers)"),
        "{stderr}"
    );
}

#[test]
fn check_reads_the_url_and_token_from_the_credentials_folder() {
    let dir = tempfile::tempdir().unwrap();
    slack_config(dir.path(), "127.0.0.1:9".parse().unwrap());
    std::fs::write(dir.path().join("credentials/relay-token"), "").unwrap();

    let empty = relay(dir.path(), &["check"]);
    std::fs::write(dir.path().join("credentials/relay-token"), "TOKEN\n").unwrap();
    let full = relay(dir.path(), &["check"]);

    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert_eq!(empty.status.code(), Some(2));
    assert!(
        stderr.contains("`server.token_file`: the file is empty"),
        "{stderr}"
    );
    assert!(full.status.success(), "{full:?}");
}

#[test]
fn completions_version_and_help_work_everywhere() {
    let dir = tempfile::tempdir().unwrap();

    let bash = relay(dir.path(), &["completions", "bash"]);
    let version = relay(dir.path(), &["send-test", "--version"]);
    let help = relay(dir.path(), &["send-test", "--help"]);

    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.status.success() && script.contains("send-test"),
        "{script}"
    );
    let version = String::from_utf8_lossy(&version.stdout);
    assert_eq!(
        version.trim(),
        format!("redbrick-relay-send-test {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(String::from_utf8_lossy(&help.stdout).contains("DESTINATION"));
}
