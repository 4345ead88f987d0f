//! The deployment files: the unit, checked by systemd's own tools where they exist (it
//! must pass `systemd-analyze verify`, and `systemd-analyze security` must rate its
//! exposure at 2.0 or lower; machines without systemd skip both, saying so), the
//! packaged config, which must pass `check` as installed, and the `cargo deb` metadata,
//! which must ship the binary, the unit, the config and every template as conffiles.

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

/// `[package.metadata.deb]` from Cargo.toml: its assets as (source, destination) and its
/// conffiles.
fn deb_metadata() -> (Vec<(String, String)>, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let text = |value: &toml::Value| value.as_str().unwrap().to_owned();
    let assets = deb["assets"].as_array().unwrap().iter();
    let assets = assets
        .map(|asset| (text(&asset[0]), text(&asset[1])))
        .collect();
    let conf_files = deb["conf-files"].as_array().unwrap().iter().map(text);
    (assets, conf_files.collect())
}

#[test]
fn deb_package_holds_the_binary_unit_config_and_every_template() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (assets, conf_files) = deb_metadata();
    let mut wanted = vec![
        (
            "target/release/redbrick-relay".to_owned(),
            "usr/bin/".to_owned(),
        ),
        (
            "deploy/redbrick-relay.service".to_owned(),
            "lib/systemd/system/".to_owned(),
        ),
        (
            "deploy/relay.toml".to_owned(),
            "etc/redbrick-relay/relay.toml".to_owned(),
        ),
    ];
    let mut templates: Vec<String> = std::fs::read_dir(root.join("templates"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".hbs"))
        .collect();
    templates.sort();
    for name in &templates {
        let source = format!("templates/{name}");
        wanted.push((source, "etc/redbrick-relay/templates/".to_owned()));
    }

    for asset in &wanted {
        assert!(assets.contains(asset), "{asset:?} not in {assets:?}");
    }
    for (source, _) in assets.iter().filter(|(s, _)| !s.starts_with("target/")) {
        assert!(
            root.join(source).is_file(),
            "asset `{source}` does not exist"
        );
    }
    assert!(conf_files.contains(&"/etc/redbrick-relay/relay.toml".to_owned()));
    for name in &templates {
        let installed = format!("/etc/redbrick-relay/templates/{name}");
        assert!(
            conf_files.contains(&installed),
            "{installed} is not a conffile"
        );
    }
}
