//! The deployment files: the unit, checked by systemd's own tools where they exist (it
//! must pass `systemd-analyze verify`, and `systemd-analyze security` must rate its
//! exposure at 2.0 or lower; machines without systemd skip both, saying so), and the
//! packaged config, which must pass `check` as installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The highest exposure the unit may have ("OK" on systemd's scale goes up to 4.9).
const MAX_EXPOSURE: f64 = 2.0;

fn unit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/redbrick-relay.service")
}

/// `systemd-analyze` with `args`, or `None` (after a note) where it is not installed.
fn analyze(args: &[&str]) -> Option<Output> {
    match Command::new("systemd-analyze").args(args).output() {
        Ok(output) => Some(output),
        Err(err) => {
            println!("skipped: cannot run systemd-analyze ({err})");
            None
        }
    }
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    // The binary is not installed in /usr/bin here; verify checks that ExecStart exists,
    // so a copy of the unit points at the one cargo built.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit()).unwrap();
    let text = text.replace(
        "/usr/bin/redbrick-relay",
        env!("CARGO_BIN_EXE_redbrick-relay"),
    );
    let copy = dir.path().join("redbrick-relay.service");
    std::fs::write(&copy, text).unwrap();

    let Some(output) = analyze(&["verify", copy.to_str().unwrap()]) else {
        return;
    };

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "verify failed:\n{stderr}");
    assert!(
        !stderr.contains("redbrick-relay.service"),
        "verify complained:\n{stderr}"
    );
}

#[test]
fn unit_exposure_is_two_or_lower() {
    let path = unit();
    let args = ["security", "--offline=true", path.to_str().unwrap()];

    let Some(output) = analyze(&args) else {
        return;
    };

    let stdout = String::from_utf8_lossy(&output.stdout);
    let exposure = stdout
        .lines()
        .find_map(|line| line.split_once("Overall exposure level for "))
        .and_then(|(_, rest)| rest.split_once(": "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}"));
    println!("exposure: {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is over {MAX_EXPOSURE}:\n{stdout}"
    );
}

#[test]
fn packaged_config_passes_check_as_installed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let etc = tempfile::tempdir().unwrap();
    std::fs::create_dir(etc.path().join("templates")).unwrap();
    std::fs::copy(
        root.join("deploy/relay.toml"),
        etc.path().join("relay.toml"),
    )
    .unwrap();
    for name in ["task-created", "task-entered-stage", "task-deleted"] {
        let file = format!("templates/{name}.hbs");
        std::fs::copy(root.join(&file), etc.path().join(&file)).unwrap();
    }

    let output = Command::new(env!("CARGO_BIN_EXE_redbrick-relay"))
        .args(["--config", "relay.toml", "check"])
        .current_dir(etc.path())
        .env("STATE_DIRECTORY", etc.path().join("state"))
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("listening on 127.0.0.1:8787/redbrick"),
        "{stdout}"
    );
}
