//! README's "Run as a service" section followed as written, in a scratch root: its
//! install and credential commands run with `sudo` dropped and every system path moved
//! under a temporary folder, the config is edited as step 3 says, and the check of step 4
//! must accept the result. Steps that need a running systemd (`systemctl`, `journalctl`,
//! `systemd-creds`) are not run here; `tests/service.rs` and `tests/systemd.rs` cover
//! what they rely on.

use std::path::Path;
use std::process::{Command, Output};

/// The system folders the section writes to or reads from.
const SYSTEM_DIRS: [&str; 4] = ["/usr/", "/lib/", "/etc/", "/var/"];

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The text from "## Run as a service" to the next section.
fn service_section() -> String {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let start = readme
        .find("## Run as a service")
        .expect("README has a service section");
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |at| at + 3);
    rest[..end].to_owned()
}

/// Every command of the section's `sh` blocks, with `\` continuations joined.
fn shell_commands(section: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines().map(str::trim) {
        match line {
            "```sh" => in_block = true,
            "```" => in_block = false,
            _ if in_block => {
                pending.push_str(line.trim_end_matches('\\'));
                if !line.ends_with('\\') {
                    commands.push(std::mem::take(&mut pending));
                }
            }
            _ => {}
        }
    }
    commands
}

/// `command` as it runs in the scratch root: no `sudo`, system paths under `$ROOT`, and
/// the binary cargo built in place of the installed one.
fn rooted(command: &str) -> String {
    let binary = env!("CARGO_BIN_EXE_redbrick-relay");
    let mut command = command
        .strip_prefix("sudo ")
        .unwrap_or(command)
        .replace("target/release/redbrick-relay", binary)
        .replace(" redbrick-relay --config", &format!(" {binary} --config"));
    for dir in SYSTEM_DIRS {
        for before in [" ", "=", ">"] {
            let from = format!("{before}{dir}");
            command = command.replace(&from, &format!("{before}$ROOT{dir}"));
        }
    }
    command
}

fn run(root: &Path, command: &str) -> Output {
    Command::new("sh")
        .args(["-c", command])
        .current_dir(repository())
        .env("ROOT", root)
        .output()
        .expect("run sh")
}

/// Step 3's edit: uncomment `token_file`, the `reviewers` destination and the
/// `review-ready` rule, each from its first line to the end of its paragraph.
fn uncomment_step_three(config: &str) -> String {
    let mut out = Vec::new();
    for paragraph in config.split("\n\n") {
        let starts = |line: &str| {
            line.starts_with("# token_file")
                || line == "# [destinations.reviewers]"
                || (line == "# [[rules]]" && paragraph.contains("name = \"review-ready\""))
        };
        let mut on = false;
        let lines = paragraph.lines().map(|line| {
            on = on || starts(line);
            match line.strip_prefix("# ") {
                Some(code) if on => code.to_owned(),
                _ => line.to_owned(),
            }
        });
        out.push(lines.collect::<Vec<_>>().join("\n"));
    }
    out.join("\n\n")
}

#[test]
fn service_section_installs_a_config_that_check_accepts() {
    if Command::new("systemd-id128")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: no systemd-id128, which step 3 uses");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for dir in ["usr/bin", "lib/systemd/system", "etc", "var/lib"] {
        // What a Debian system has before step 2.
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let commands = shell_commands(&service_section());
    let wanted = |c: &&String| {
        let c = rooted(c);
        c.starts_with("install ") || (c.starts_with("sh -c 'umask 077;") && c.contains("credstore"))
    };
    let setup: Vec<&String> = commands.iter().filter(wanted).collect();
    let check = commands
        .iter()
        .find(|c| c.starts_with("sudo env ") && c.ends_with(" check"))
        .expect("step 4 checks the config");
    assert!(setup.len() >= 7, "install and credential steps: {setup:?}");

    for command in &setup {
        let output = run(root.path(), &rooted(command));
        assert!(output.status.success(), "`{command}`: {output:?}");
    }
    let config = root.path().join("etc/redbrick-relay/relay.toml");
    let edited = uncomment_step_three(&std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, &edited).unwrap();
    let output = run(root.path(), &rooted(check));

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "`{check}`: {output:?}\n{edited}");
    // The shipped console rule and destination, and the two step 3 turns on.
    assert!(stdout.contains("ok: 2 rules, 2 destinations"), "{stdout}");
    assert!(root.path().join("usr/bin/redbrick-relay").is_file());
    assert!(root
        .path()
        .join("lib/systemd/system/redbrick-relay.service")
        .is_file());
}

#[test]
fn every_credential_the_section_stores_is_loaded_by_the_unit() {
    let unit = std::fs::read_to_string(repository().join("deploy/redbrick-relay.service"));
    let unit = unit.unwrap();
    let loaded: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("LoadCredential="))
        .collect();
    let section = service_section();
    let stored = section
        .split("/etc/credstore/")
        .skip(1)
        .filter_map(|rest| rest.split(['\'', '`', ' ', ',', '\n']).next())
        .filter(|name| !name.is_empty() && !name.starts_with('<'));

    for name in stored {
        assert!(
            loaded.contains(&name),
            "README stores `{name}`; the unit loads {loaded:?}"
        );
    }
}
