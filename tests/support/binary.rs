//! The real binary as a child process: the service started on a config in a temporary
//! folder, stopped by signal or killed outright, and the operator commands run on its
//! outbox from another process, as an operator would.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::WAIT;

const BINARY: &str = env!("CARGO_BIN_EXE_redbrick-relay");

/// A port nobody listens on just now, for the service to listen on.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("127.0.0.1:0 binds");
    listener.local_addr().expect("a bound port").port()
}

/// `redbrick-relay serve` in `dir`, logging to `relay.log` there; killed when dropped.
pub struct Service {
    child: Child,
    port: u16,
    dir: PathBuf,
    client: reqwest::Client,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts the service on the `relay.toml` in `dir`, which listens on `port`, and waits
    /// until it answers.
    pub async fn start(dir: &Path, port: u16) -> Service {
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("relay.log"))
            .expect("the log file opens");
        let child = Command::new(BINARY)
            .current_dir(dir)
            .env_remove("RELAY_CONFIG")
            .stdout(log.try_clone().expect("the log file handle clones"))
            .stderr(log)
            .spawn()
            .expect("the binary starts");
        let service = Service {
            child,
            port,
            dir: dir.to_path_buf(),
            client: reqwest::Client::new(),
        };
        service.until_up().await;
        service
    }

    async fn until_up(&self) {
        let url = format!("http://127.0.0.1:{}/", self.port);
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.client.get(&url).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the service did not answer within {WAIT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Posts `body` to `/redbrick`: the status and the answer as JSON.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("a JSON value serialises");
        self.post_raw(bytes, &[("content-type", "application/json")])
            .await
    }

    /// Posts `bytes` to `/redbrick` with `headers`: the status and the answer as JSON.
    pub async fn post_raw(&self, bytes: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}/redbrick", self.port);
        let mut request = self.client.post(url).body(bytes);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await;
        let response = response.expect("the service answers");
        let status = response.status().as_u16();
        let json = response.json().await.expect("the answer is JSON");
        (status, json)
    }

    /// `kill -9`: the process ends at once, wherever it was.
    pub fn kill(mut self) {
        self.child.kill().expect("the service can be killed");
        self.child.wait().expect("a killed service is reaped");
    }

    /// Sends SIGTERM, as systemd does to stop a service.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "`kill -TERM` failed");
    }

    /// Waits up to `limit` for the process to end.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be polled") {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The most memory the process has held so far (`VmHWM`), in KiB; Linux only.
    pub fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process is running");
        let line = status.lines().find(|line| line.starts_with("VmHWM:"));
        let kib = line.and_then(|line| line.split_whitespace().nth(1));
        kib.and_then(|kib| kib.parse().ok())
            .expect("`VmHWM` is in KiB")
    }

    /// Everything the service has logged so far, across restarts in the same folder.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("relay.log")).unwrap_or_default()
    }
}

/// Runs an operator command (`deliveries`, `replay`, `purge`, ...) in `dir`.
pub fn command(dir: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .current_dir(dir)
        .env_remove("RELAY_CONFIG")
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The standard output of an operator command that must succeed.
pub fn stdout(dir: &Path, args: &[&str]) -> String {
    let output = command(dir, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{args:?} failed:\n{stdout}{stderr}"
    );
    stdout
}
