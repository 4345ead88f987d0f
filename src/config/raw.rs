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
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address and port to listen on.
    pub listen: Option<Text>,
    /// The path RedBrick posts to.
    pub path: Option<Text>,
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
    /// Destination names.
    pub to: Spanned<Vec<Text>>,
    /// A template in `templates_dir`, without `.hbs`.
    pub template: Option<Text>,
    /// An inline template.
    pub text: Option<Text>,
    /// Stop evaluating further rules when this one matches.
    #[serde(default)]
    pub stop: bool,
}
