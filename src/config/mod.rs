//! The checked configuration: what `serve`, `check` and `render` all run on.
//!
//! [`Config::load`] reads `relay.toml`, refuses unknown keys, resolves names (projects,
//! destinations, templates, environment variables), compiles every template and renders
//! each against sample events, collecting every problem with its file, line, column and
//! key. A config that loads is one the relay fully understands; there is no half state.
//! Reloading is loading again and swapping the result in.

mod digests;
mod ops;
mod parse;
mod people;
mod quiet;
mod raw;
mod reminders;
mod server;
mod source;
mod templates;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use ops::{AdminConfig, LogConfig};
pub use server::{ServerConfig, Token};
pub use source::{Location, Problem};
pub use templates::{sample_event, shipped_template};

use crate::deliver::{RateLimit, RetryPolicy};
use crate::destination::Destination;
use crate::links::Links;
use crate::people::People;
use crate::render::{Markup, Renderer};
use crate::rules::RuleSet;

/// The config file used when none is named.
pub const DEFAULT_PATH: &str = "relay.toml";

/// A destination with the markup its messages are rendered in.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where and how to send.
    pub destination: Destination,
    /// How text is escaped and styled for it.
    pub markup: Markup,
    /// How fast messages may go to it.
    pub rate_limit: RateLimit,
    /// When its messages are held; `None` for never.
    pub quiet: Option<crate::quiet::Quiet>,
}

/// `[delivery]` and `[store]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// The outbox database file.
    pub store_path: PathBuf,
    /// How long event ids are remembered to recognise repeats.
    pub dedup_window: Duration,
    /// How long a stop waits for sends in flight.
    pub shutdown_grace: Duration,
}

/// `[tasks]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TasksConfig {
    /// A task not heard of for this long is forgotten.
    pub forget_after: Duration,
}

/// A fully checked configuration.
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The inbound server.
    pub server: ServerConfig,
    /// Links into the RedBrick app.
    pub links: Links,
    /// Friendly project names by id.
    pub projects: HashMap<String, String>,
    /// Destinations by name.
    pub targets: BTreeMap<String, Target>,
    /// Rules, indexed.
    pub rules: RuleSet,
    /// Compiled templates.
    pub renderer: Renderer,
    /// When to retry and when to give up.
    pub retry: RetryPolicy,
    /// Where deliveries are stored and how long ids are remembered.
    pub delivery: DeliveryConfig,
    /// Where health checks and metrics are served.
    pub admin: AdminConfig,
    /// How much is logged.
    pub log: LogConfig,
    /// How long tasks are remembered.
    pub tasks: TasksConfig,
    /// Chat identities by e-mail, for mentions.
    pub people: Arc<People>,
    /// Reminders about tasks waiting too long, in file order.
    pub reminders: Vec<crate::reminders::Reminder>,
    /// Scheduled summaries, in file order.
    pub digests: Vec<crate::digests::Digest>,
    /// Things that work but are probably not what the user meant.
    pub warnings: Vec<Problem>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("server", &self.server)
            .field("targets", &self.targets.keys().collect::<Vec<_>>())
            .field("rules", &self.rules.rules().len())
            .finish_non_exhaustive()
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read and has problems; every one found is listed.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Every problem, one per entry (a read error is one problem without a key).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(problems) => problems.iter().map(Problem::to_string).collect(),
            read => vec![read.to_string()],
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

impl Config {
    /// Reads and checks the file at `path`, taking `${VAR}` values from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with the environment given.
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = read(path)?;
        validate::validate(path, &text, &env).map_err(ConfigError::Invalid)
    }

    /// The outbox's path from the file at `path`, reading nothing else: the operator
    /// commands need no webhook secrets.
    pub fn store_path(path: &Path) -> Result<PathBuf, ConfigError> {
        let text = read(path)?;
        validate::store_path_only(path, &text, &|name| std::env::var(name).ok())
            .map_err(ConfigError::Invalid)
    }

    /// The friendly project names by id from the file at `path`, reading nothing else:
    /// like [`Config::store_path`], for operator commands.
    pub fn project_names(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
        let text = read(path)?;
        validate::project_names_only(path, &text).map_err(ConfigError::Invalid)
    }

    /// The friendly name of a project, if it has one.
    pub fn project_name(&self, id: &str) -> Option<&str> {
        self.projects.get(id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests;
