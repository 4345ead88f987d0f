//! The subcommands' work, each turning its outcome into an exit code in one place.

mod check;
mod outbox;
mod render;
mod serve;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError};

/// Runs what the command line asks for.
pub fn run(cli: Cli) -> ExitCode {
    let config_path = cli.global.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(&config_path, cli.global.log_format),
        Command::Check => check::run(&config_path),
        Command::Render(args) => render::run(&config_path, &args),
        Command::Deliveries(args) => outbox::deliveries(&config_path, &args),
        Command::Replay(args) => outbox::replay(&config_path, &args),
        Command::Purge(args) => outbox::purge(&config_path, &args),
    }
}

/// Loads the config, or prints every problem to stderr.
fn load_or_report(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|err| {
        report(&err);
        ExitCode::from(2)
    })
}

fn report(err: &ConfigError) {
    let problems = err.problems();
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    if problems.len() > 1 {
        eprintln!("{} problems found", problems.len());
    }
}
