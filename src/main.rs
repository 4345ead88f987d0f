//! The `redbrick-relay` binary: parse the command line and run the subcommand.
//!
//! Nothing else lives here: the work and its exit codes are in the library's `commands`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    redbrick_relay::commands::run(redbrick_relay::cli::Cli::parse())
}
