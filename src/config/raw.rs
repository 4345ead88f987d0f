//! The configuration file exactly as written: serde structs, no meaning attached.
//!
//! Unknown keys are refused here (`deny_unknown_fields`) so that a typo never passes
//! silently; every value that later checks can refuse keeps its position in the file
//! (`Spanned`) so that the refusal can point at it. Defaults and meaning live in
//! `config::validate`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A string with its place in the file.
pub type Text = Spanned<String>;

/// The whole `relay.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Folder of `<name>.hbs` templates, relative to the config file.
    pub templates_dir: Option<Text>,
    /// The inbound HTTP server.
    #[serde(default)]
    pub server: RawServer,
    /// The RedBrick app the links point to.
    #[serde(default)]
    pub redbrick: RawRedbrick,
    /// Friendly project names by project id.
    #[serde(default)]
    pub projects: BTreeMap<String, Text>,
    /// Destinations by name.
    #[serde(default)]
    pub destinations: BTreeMap<String, Spanned<RawDestination>>,
    /// Rules, in the order they fire.
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    /// The durable outbox.
    #[serde(default)]
    pub store: RawStore,
    /// Retries and their limits.
    #[serde(default)]
    pub delivery: RawDelivery,
    /// The admin listener: health checks and metrics.
    #[serde(default)]
    pub admin: RawAdmin,
    /// Log output.
    #[serde(default)]
    pub log: RawLog,
    /// The task memory.
    #[serde(default)]
    pub tasks: RawTasks,
    /// Chat identities by RedBrick e-mail, for mentions.
    #[serde(default)]
    pub people: BTreeMap<String, Spanned<RawPerson>>,
    /// Messages about tasks waiting too long in a stage.
    #[serde(default)]
    pub reminders: Vec<Spanned<RawReminder>>,
    /// Scheduled summaries of where tasks wait.
    #[serde(default)]
    pub digests: Vec<Spanned<RawDigest>>,
}

/// `[[digests]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDigest {
    /// Unique name.
    pub name: Text,
    /// Local time of day, `HH:MM`.
    pub at: Text,
    /// Weekdays, such as `mon-fri` or `mon,wed,fri`; every day when omitted.
    pub days: Option<Text>,
    /// IANA time zone, such as `Europe/Paris`; UTC when omitted.
    pub timezone: Option<Text>,
    /// Project ids or friendly names; all when omitted.
    pub projects: Option<Vec<Text>>,
    /// Destination names.
    pub to: Spanned<Vec<Text>>,
    /// A template in `templates_dir`, without `.hbs`.
    pub template: Option<Text>,
    /// An inline template.
    pub text: Option<Text>,
    /// Leave a digest with nothing to say unsent.
    pub skip_empty: Option<bool>,
}

/// `[[reminders]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReminder {
    /// Unique name.
    pub name: Text,
    /// Project ids or friendly names; all when omitted.
    pub projects: Option<Vec<Text>>,
    /// Stage patterns; all when omitted.
    pub stages: Option<Spanned<Vec<Text>>>,
    /// How long a task may wait before the reminder, for example `4h`.
    pub after: Text,
    /// Remind again this often while the task still waits.
    pub repeat: Option<Text>,
    /// Destination names.
    pub to: Spanned<Vec<Text>>,
    /// A template in `templates_dir`, without `.hbs`.
    pub template: Option<Text>,
    /// An inline template.
    pub text: Option<Text>,
}

/// `[people."e-mail"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerson {
    /// Slack user id, such as `U0123ABC`.
    pub slack: Option<Text>,
    /// Teams user principal name or Entra object id.
    pub teams: Option<Text>,
    /// Display name for the Teams mention and for text.
    pub name: Option<Text>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Whether the admin listener runs at all.
    pub enabled: Option<bool>,
    /// Address and port of the admin listener.
    pub listen: Option<Text>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// The level, or `tracing` directives such as `info,redbrick_relay=debug`.
    pub level: Option<Text>,
}

/// `[tasks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTasks {
    /// Forget a task not heard of for this long.
    pub forget_after: Option<Text>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// The database file, relative to the config file.
    pub path: Option<Text>,
}

/// `[delivery]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// Give a delivery up after this long since it was accepted.
    pub max_age: Option<Text>,
    /// The longest wait between two attempts.
    pub max_backoff: Option<Text>,
    /// How long event ids are remembered to recognise repeats.
    pub dedup_window: Option<Text>,
    /// How long a stop waits for sends in flight.
    pub shutdown_grace: Option<Text>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address and port to listen on.
    pub listen: Option<Text>,
    /// The path RedBrick posts to.
    pub path: Option<Text>,
    /// The secret requests must carry, usually `${RELAY_TOKEN}`.
    pub token: Option<Text>,
    /// A file holding the token, such as a systemd credential.
    pub token_file: Option<Text>,
    /// Client networks allowed to post, as CIDRs; everyone when omitted.
    pub allow_from: Option<Vec<Text>>,
    /// Reverse proxies whose `X-Forwarded-For` is believed, as CIDRs.
    pub trusted_proxies: Option<Vec<Text>>,
    /// Largest request body, in bytes, after decompression.
    pub max_body_bytes: Option<Spanned<u64>>,
    /// Most events one request may carry.
    pub max_events: Option<Spanned<u64>>,
    /// Most requests handled at once; more get 503.
    pub max_concurrent_requests: Option<Spanned<u64>>,
    /// How long a client may take to send its request headers.
    pub header_timeout: Option<Text>,
    /// How long a client may take to send its request body.
    pub body_timeout: Option<Text>,
    /// Built-in TLS.
    pub tls: Option<Spanned<RawTls>>,
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert_file: Text,
    /// PEM private key.
    pub key_file: Text,
}

/// `[redbrick]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedbrick {
    /// Base URL of the RedBrick app.
    pub app_url: Option<Text>,
}

/// `[destinations.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    /// `slack`, `teams` or `console`.
    pub kind: Text,
    /// The webhook URL, usually `${VAR}`.
    pub url: Option<Text>,
    /// A file holding the webhook URL.
    pub url_file: Option<Text>,
    /// How long one attempt may take, for example `10s`.
    pub timeout: Option<Text>,
    /// Messages per second at most; 0 for no limit.
    pub rate: Option<Spanned<f64>>,
    /// Messages that may go back to back.
    pub burst: Option<Spanned<u32>>,
    /// Quiet hours, such as `20:00-08:00`: messages are held, then sent together.
    pub quiet: Option<Text>,
    /// The weekdays a quiet time starts on; every day when omitted.
    pub quiet_days: Option<Text>,
    /// IANA time zone of `quiet` and `quiet_days`; UTC when omitted.
    pub quiet_timezone: Option<Text>,
}

/// `[[rules]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique name.
    pub name: Text,
    /// Event types; all when omitted.
    pub events: Option<Vec<Text>>,
    /// Project ids or friendly names; all when omitted.
    pub projects: Option<Vec<Text>>,
    /// Project ids or friendly names never matched.
    pub exclude_projects: Option<Vec<Text>>,
    /// Stage patterns; all when omitted.
    pub stages: Option<Vec<Text>>,
    /// Stage patterns never matched.
    pub exclude_stages: Option<Vec<Text>>,
    /// Patterns of the stage a task must move from.
    pub from_stages: Option<Spanned<Vec<Text>>>,
    /// Destination names.
    pub to: Spanned<Vec<Text>>,
    /// A template in `templates_dir`, without `.hbs`.
    pub template: Option<Text>,
    /// An inline template.
    pub text: Option<Text>,
    /// Stop evaluating further rules when this one matches.
    #[serde(default)]
    pub stop: bool,
    /// Collect matching events this long, then send them as one message.
    pub group_window: Option<Text>,
    /// Event values that split a rule's roll-ups: `project`, `stage`, `event`.
    pub group_by: Option<Spanned<Vec<Text>>>,
}
