//! `check`: load everything `serve` would load, and say whether it is sound.
//!
//! It only prints: the loading and checking are `config`'s, the same code `serve` runs,
//! so what `check` accepts is what `serve` runs.

use std::path::Path;
use std::process::ExitCode;

/// Exit 0 with a one-line summary (and warnings), or 2 listing every problem.
pub fn run(path: &Path) -> ExitCode {
    let config = match super::load_or_report(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "{}: ok: {} rules, {} destinations, listening on {}{}",
        path.display(),
        config.rules.rules().len(),
        config.targets.len(),
        config.server.listen,
        config.server.path,
    );
    ExitCode::SUCCESS
}
