//! The command line: what the user can ask for, parsed by clap.
//!
//! Only the shape of the command line lives here; each subcommand's work is in
//! `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::DEFAULT_PATH;

/// Relays RedBrick AI project webhooks to Slack, Microsoft Teams and the console.
#[derive(Debug, Parser)]
#[command(name = "redbrick-relay", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: Global,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The configuration file.
    #[arg(long, short, global = true, env = "RELAY_CONFIG", default_value = DEFAULT_PATH)]
    pub config: PathBuf,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay: receive webhooks and deliver messages.
    Serve,
    /// Check the configuration, templates and environment, then exit.
    Check,
    /// Print the messages an event would produce, without sending anything.
    Render(RenderArgs),
}

/// Options of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A file holding a RedBrick webhook body; `-` reads standard input.
    #[arg(long, short)]
    pub event: PathBuf,
    /// Also say, for every rule, whether it matched and, if not, why.
    #[arg(long)]
    pub explain: bool,
}
