//! The subcommands' work, each turning its outcome into an exit code in one place.
//!
//! The shape of the command line is `cli`'s; the relay itself is in the modules these
//! call, which report errors as values and never exit the process.

mod check;
mod outbox;
mod render;
mod send_test;
mod serve;
mod tasks;

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
        Command::SendTest(args) => send_test::run(&config_path, &args),
        Command::Completions(args) => completions(args.shell),
        Command::Tasks(args) => tasks::run(&config_path, &args),
    }
}

/// Prints the completion script for `shell` on standard output.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = <Cli as clap::CommandFactory>::command();
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
    ExitCode::SUCCESS
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
