//! The command line: what the user can ask for, parsed by clap.
//!
//! Only the shape of the command line lives here; each subcommand's work is in
//! `commands`.

use std::path::PathBuf;

use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::config::DEFAULT_PATH;
use crate::logging::LogFormat;
use crate::outbox::State;

/// Relays RedBrick AI project webhooks to Slack, Microsoft Teams and the console.
#[derive(Debug, Parser)]
#[command(name = "redbrick-relay", version, about, propagate_version = true)]
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
    /// How `serve` writes its log lines on standard error: `text` or `json`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
    /// List deliveries with their attempts, last error and age.
    Deliveries(DeliveriesArgs),
    /// Put dead letters back in the queue (works while the relay runs).
    Replay(ReplayArgs),
    /// Delete old sent deliveries or dead letters from the outbox.
    Purge(PurgeArgs),
    /// Post a sample message to one destination and print the platform's answer.
    SendTest(SendTestArgs),
    /// Print a shell completion script, for example to
    /// `/usr/share/bash-completion/completions/redbrick-relay`.
    Completions(CompletionsArgs),
    /// List the tasks the relay remembers: name, stage and time in stage.
    Tasks(TasksArgs),
}

/// Options of `send-test`.
#[derive(Debug, Args)]
pub struct SendTestArgs {
    /// The destination's name in the config.
    pub destination: String,
}

/// Options of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Options of `deliveries`.
#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// Only deliveries in this state: pending, sent or dead.
    #[arg(long)]
    pub state: Option<State>,
    /// Only deliveries to this destination.
    #[arg(long)]
    pub destination: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// Options of `replay`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["ids", "dead"])))]
pub struct ReplayArgs {
    /// Ids of dead deliveries, as `deliveries` lists them.
    pub ids: Vec<i64>,
    /// Every dead delivery (of `--destination`, if given).
    #[arg(long, conflicts_with = "ids")]
    pub dead: bool,
    /// With `--dead`: only this destination's dead letters.
    #[arg(long, requires = "dead")]
    pub destination: Option<String>,
}

/// Options of `purge`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true)
    .args(["sent_older_than", "dead_older_than"])))]
pub struct PurgeArgs {
    /// Delete sent deliveries older than this, for example `7d`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub sent_older_than: Option<Duration>,
    /// Delete dead letters older than this, for example `30d`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub dead_older_than: Option<Duration>,
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

/// Options of `tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Only this project: its friendly name from `[projects]`, or its id.
    #[arg(long)]
    pub project: Option<String>,
    /// Only tasks in a stage matching this pattern (`*` and `?` as in rules).
    #[arg(long)]
    pub stage: Option<String>,
}
