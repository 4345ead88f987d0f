//! Log output: structured lines on standard error, for a terminal, the journal or a
//! log shipper.
//!
//! Standard output is kept for the console destination's messages. The level comes from
//! `RUST_LOG` when it is set, else from `[log] level`, which a reload can change. What is
//! logged, and at which level, is decided where it happens, not here.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// How each log line is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `LEVEL target: message key=value ...`, for people.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Changes the level of the installed logger; does nothing when `RUST_LOG` decides it.
#[derive(Clone)]
pub struct LevelHandle {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
}

impl LevelHandle {
    /// Applies `level` (already checked by config validation) from now on.
    pub fn set(&self, level: &str) {
        let Some(handle) = &self.handle else {
            return;
        };
        match EnvFilter::builder().parse(level) {
            Ok(filter) => {
                if let Err(err) = handle.reload(filter) {
                    tracing::warn!(error = %err, "cannot change the log level");
                }
            }
            Err(err) => tracing::warn!(level, error = %err, "log level not applied"),
        }
    }
}

/// Installs the global logger writing `format` at `level` (unless `RUST_LOG` is set);
/// a second call leaves the first logger in place.
pub fn init(format: LogFormat, level: &str) -> LevelHandle {
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::builder().parse(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(output(format, under_journal()))
        .try_init()
        .is_ok();
    LevelHandle {
        handle: (installed && !fixed).then_some(handle),
    }
}

/// systemd sets `JOURNAL_STREAM` when standard error goes to the journal, which stamps
/// every line with its own time: a second timestamp would only be noise.
fn under_journal() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

fn output<S>(format: LogFormat, journal: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let colour = !journal && std::io::stderr().is_terminal();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match (format, journal) {
        (LogFormat::Text, false) => layer.boxed(),
        (LogFormat::Text, true) => layer.without_time().boxed(),
        (LogFormat::Json, false) => layer.json().boxed(),
        (LogFormat::Json, true) => layer.json().without_time().boxed(),
    }
}
