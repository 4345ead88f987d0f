//! The `redbrick-relay` binary: parse the command line and run the subcommand.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    redbrick_relay::commands::run(redbrick_relay::cli::Cli::parse())
}
