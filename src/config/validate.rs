//! The one pass that turns the raw file into a checked [`Config`].
//!
//! Every problem is collected rather than stopping at the first, so that `check` can
//! list them all at once. Secrets (URLs, tokens) are never quoted in a problem. Reading
//! the file is `parse`'s; `[server]`, `[admin]`, `[log]` and the templates are checked in
//! modules of their own, which this pass calls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use toml::Spanned;

use super::raw::{RawConfig, RawDestination, RawRule, Text};
use super::source::{expand_env, Problem, Source};
use super::templates::TemplateLoader;
use super::{Config, DeliveryConfig, Target, TasksConfig};
use crate::deliver::{RateLimit, RetryPolicy};
use crate::destination::{Destination, Kind};
use crate::event::EventKind;
use crate::links::Links;
use crate::render::Markup;
use crate::rules::{GroupField, Grouping, Pattern, Rule, RuleSet, TemplateChoice};

const DEFAULT_APP_URL: &str = "https://app.redbrickai.com";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// Slack takes about one message a second per webhook, with short bursts.
const SLACK_RATE: RateLimit = RateLimit {
    per_second: 1.0,
    burst: 3,
};

/// Teams throttles above about four requests a second.
const TEAMS_RATE: RateLimit = RateLimit {
    per_second: 4.0,
    burst: 4,
};

/// Collects problems while checking; `Source` turns spans into places.
pub(super) struct Checker<'a> {
    /// The file being checked.
    pub source: Source<'a>,
    /// Where `${VAR}` values come from.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Mistakes: any one of them refuses the config.
    pub problems: Vec<Problem>,
    /// Doubts: the config loads, and `check` and `serve` show them.
    pub warnings: Vec<Problem>,
}

impl Checker<'_> {
    /// Records a mistake at `span`, under `key`.
    pub fn problem(
        &mut self,
        span: std::ops::Range<usize>,
        key: impl Into<String>,
        message: String,
    ) {
        let problem = self.source.problem(span, key, message);
        self.problems.push(problem);
    }

    /// Records a doubt at `span`, under `key`.
    pub fn warn(&mut self, span: std::ops::Range<usize>, key: impl Into<String>, message: String) {
        let problem = self.source.problem(span, key, message);
        self.warnings.push(problem);
    }

    /// Expands `${VAR}`s in a value, reporting an unset variable at the value.
    pub fn expand(&mut self, value: &Text, key: &str) -> Option<String> {
        match expand_env(value.get_ref(), self.env) {
            Ok(text) => Some(text),
            Err(name) => {
                let message = format!("environment variable `{name}` is not set");
                self.problem(value.span(), key, message);
                None
            }
        }
    }
}

/// Only the store's path, for the operator commands: they must work without the
/// webhook secrets the rest of the config may need.
pub(super) fn store_path_only(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, Vec<Problem>> {
    let source = Source::new(path, text);
    match super::parse::parse(&source) {
        (Some(raw), problems) if problems.is_empty() => Ok(store_path(
            &raw,
            path.parent().unwrap_or(Path::new(".")),
            env,
        )),
        (_, problems) => Err(problems),
    }
}

/// Only the friendly project names by id, for the operator commands.
pub(super) fn project_names_only(
    path: &Path,
    text: &str,
) -> Result<HashMap<String, String>, Vec<Problem>> {
    match super::parse::parse(&Source::new(path, text)) {
        (Some(raw), problems) if problems.is_empty() => Ok(raw
            .projects
            .into_iter()
            .map(|(id, name)| (id, name.into_inner()))
            .collect()),
        (_, problems) => Err(problems),
    }
}

/// Checks `text` (the contents of `path`) completely.
pub(super) fn validate(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<Problem>> {
    let source = Source::new(path, text);
    let (raw, problems) = super::parse::parse(&source);
    let Some(raw) = raw else {
        return Err(problems);
    };
    let mut checker = Checker {
        source,
        env,
        problems,
        warnings: Vec::new(),
    };

    let base = path.parent().unwrap_or(Path::new("."));
    let server = super::server::check(&mut checker, &raw.server, base);
    let app_url = app_url(&mut checker, &raw.redbrick.app_url);
    let projects = projects(&raw);
    let targets = destinations(&mut checker, &raw.destinations);
    let templates_dir = base.join(text_or(&raw.templates_dir, "templates"));
    let people = Arc::new(super::people::check(&mut checker, &raw.people));
    let mut loader = TemplateLoader::new(&templates_dir, people.clone());
    let rules = rules(&mut checker, &raw, &targets, &mut loader);
    let reminders = super::reminders::check(&mut checker, &raw, &targets, &mut loader);
    let digests = super::digests::check(&mut checker, &raw, &targets, &mut loader);
    if loader.check_partials(&mut checker.problems) {
        let links = Links::new(&app_url);
        loader.check_samples(&rules, &mut checker.problems, &links);
        loader.check_reminder_samples(&reminders, &mut checker.problems, &links);
        loader.check_digest_samples(&digests, &mut checker.problems, &links);
    }
    let rules: Vec<Rule> = rules.into_iter().map(|(_, rule)| rule).collect();
    warn_unused(&mut checker, &raw, &rules);
    let (retry, delivery) = delivery(&mut checker, &raw, base);
    let listen = server.as_ref().map(|server| server.listen);
    let admin = super::ops::admin(&mut checker, &raw.admin, listen);
    let log = super::ops::log(&mut checker, &raw.log);
    let forget_after = match &raw.tasks.forget_after {
        Some(value) => duration(&mut checker, value, "tasks.forget_after"),
        None => Some(DEFAULT_FORGET_AFTER),
    };

    if !checker.problems.is_empty() {
        return Err(checker.problems);
    }
    Ok(Config {
        path: path.to_owned(),
        server: server.expect("server is valid when no problem was found"),
        links: Links::new(&app_url),
        projects: projects
            .into_iter()
            .map(|(id, name)| (id, name.into_inner()))
            .collect(),
        targets,
        rules: RuleSet::new(rules),
        renderer: loader.into_renderer(),
        retry,
        delivery,
        admin,
        log,
        people,
        reminders: reminders.into_iter().map(|(_, r)| r).collect(),
        digests: digests.into_iter().map(|(_, d)| d).collect(),
        tasks: TasksConfig {
            forget_after: forget_after.expect("forget_after is valid when no problem was found"),
        },
        warnings: checker.warnings,
    })
}

/// `[redbrick] app_url`: the base of every link, so an absolute http(s) URL with no
/// query or fragment (which the path built after it would end up inside).
fn app_url(checker: &mut Checker<'_>, value: &Option<Text>) -> String {
    let text = text_or(value, DEFAULT_APP_URL);
    let fine = Url::parse(&text).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
    });
    if !fine {
        let span = value.as_ref().map_or(0..0, Spanned::span);
        let message = format!(
            "`{text}` is not a base URL such as `https://app.redbrickai.com` \
             (http or https, no `?` or `#`)"
        );
        checker.problem(span, "redbrick.app_url", message);
    }
    text
}

/// The value as written, or `default` when the key is absent.
pub(super) fn text_or(value: &Option<Text>, default: &str) -> String {
    value
        .as_ref()
        .map_or_else(|| default.to_owned(), |v| v.get_ref().clone())
}

fn projects(raw: &RawConfig) -> BTreeMap<String, Text> {
    raw.projects.clone()
}

fn destinations(
    checker: &mut Checker<'_>,
    raw: &BTreeMap<String, Spanned<RawDestination>>,
) -> BTreeMap<String, Target> {
    let mut targets = BTreeMap::new();
    for (name, spanned) in raw {
        let key = format!("destinations.{name}");
        if let Some(target) = destination(checker, name, spanned.get_ref(), &key) {
            targets.insert(name.clone(), target);
        }
    }
    targets
}

fn destination(
    checker: &mut Checker<'_>,
    name: &str,
    raw: &RawDestination,
    key: &str,
) -> Option<Target> {
    let timeout = match &raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(value) => duration(checker, value, &format!("{key}.timeout"))?,
    };
    let (kind, markup, default_rate) = match raw.kind.get_ref().as_str() {
        "console" => {
            // A URL here means the kind is wrong: the message would only be printed.
            for (value, field) in [(&raw.url, "url"), (&raw.url_file, "url_file")] {
                if let Some(value) = value {
                    let message = format!(
                        "a console destination has no `{field}`; for a webhook, \
                         set `kind = \"slack\"` or `\"teams\"`"
                    );
                    checker.problem(value.span(), format!("{key}.{field}"), message);
                }
            }
            (Kind::Console, Markup::Plain, RateLimit::NONE)
        }
        "slack" => {
            let url = url(checker, raw, key)?;
            (Kind::Slack { url }, Markup::Slack, SLACK_RATE)
        }
        "teams" => {
            let url = url(checker, raw, key)?;
            (Kind::Teams { url }, Markup::Teams, TEAMS_RATE)
        }
        other => {
            let message = format!("unknown kind `{other}`; expected `slack`, `teams` or `console`");
            checker.problem(raw.kind.span(), format!("{key}.kind"), message);
            return None;
        }
    };
    let destination = Destination {
        name: name.to_owned(),
        kind,
        timeout,
    };
    let quiet = super::quiet::check(checker, raw, key);
    Some(Target {
        destination,
        markup,
        rate_limit: rate_limit(checker, raw, key, default_rate)?,
        quiet: quiet?,
    })
}

fn rate_limit(
    checker: &mut Checker<'_>,
    raw: &RawDestination,
    key: &str,
    default: RateLimit,
) -> Option<RateLimit> {
    let per_second = raw
        .rate
        .as_ref()
        .map_or(default.per_second, |r| *r.get_ref());
    if !(0.0..=10_000.0).contains(&per_second) {
        let span = raw.rate.as_ref().map_or(0..0, Spanned::span);
        let message = format!("`{per_second}` is not a rate from 0 (no limit) to 10000 per second");
        checker.problem(span, format!("{key}.rate"), message);
        return None;
    }
    let burst = raw.burst.as_ref().map_or(default.burst, |b| *b.get_ref());
    if burst == 0 {
        let span = raw.burst.as_ref().map_or(0..0, Spanned::span);
        let message = "must be at least 1: the first message always goes".to_owned();
        checker.problem(span, format!("{key}.burst"), message);
        return None;
    }
    Some(RateLimit { per_second, burst })
}

/// Where the outbox lives: `[store] path`, else the service's state directory under
/// systemd, else `data/relay.db` beside the config file.
pub(super) fn store_path(
    raw: &RawConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> PathBuf {
    match (&raw.store.path, env("STATE_DIRECTORY")) {
        (Some(path), _) => base.join(path.get_ref()),
        (None, Some(state)) => Path::new(&state).join("relay.db"),
        (None, None) => base.join("data").join("relay.db"),
    }
}

/// `[delivery]` and `[store]`: retry limits and where the outbox lives.
fn delivery(
    checker: &mut Checker<'_>,
    raw: &RawConfig,
    base: &Path,
) -> (RetryPolicy, DeliveryConfig) {
    let mut retry = RetryPolicy::default();
    let mut optional = |value: &Option<Text>, key: &str, default: Duration| match value {
        Some(value) => duration(checker, value, key).unwrap_or(default),
        None => default,
    };
    let d = &raw.delivery;
    retry.max_age = optional(&d.max_age, "delivery.max_age", retry.max_age);
    retry.max_backoff = optional(&d.max_backoff, "delivery.max_backoff", retry.max_backoff);
    let dedup_window = optional(
        &d.dedup_window,
        "delivery.dedup_window",
        DEFAULT_DEDUP_WINDOW,
    );
    let grace = optional(
        &d.shutdown_grace,
        "delivery.shutdown_grace",
        DEFAULT_SHUTDOWN_GRACE,
    );

    let delivery = DeliveryConfig {
        store_path: store_path(raw, base, checker.env),
        dedup_window,
        shutdown_grace: grace,
    };
    (retry, delivery)
}

/// Parses a duration such as `10s`, `5m` or `7d`.
pub(super) fn duration(checker: &mut Checker<'_>, value: &Text, key: &str) -> Option<Duration> {
    match humantime::parse_duration(value.get_ref()) {
        Ok(duration) if !duration.is_zero() => Some(duration),
        _ => {
            let message = format!(
                "`{}` is not a duration such as `10s` or `5m`",
                value.get_ref()
            );
            checker.problem(value.span(), key, message);
            None
        }
    }
}

/// The webhook URL from `url` or `url_file`, checked without ever quoting it.
fn url(checker: &mut Checker<'_>, raw: &RawDestination, key: &str) -> Option<Url> {
    let (text, span, field) = match (&raw.url, &raw.url_file) {
        (Some(url), None) => (
            checker.expand(url, &format!("{key}.url"))?,
            url.span(),
            "url",
        ),
        (None, Some(file)) => (read_url_file(checker, file, key)?, file.span(), "url_file"),
        (Some(url), Some(_)) => {
            let message = "set `url` or `url_file`, not both".to_owned();
            checker.problem(url.span(), format!("{key}.url"), message);
            return None;
        }
        (None, None) => {
            let message = "this kind needs `url` (or `url_file`) with the webhook URL".to_owned();
            checker.problem(raw.kind.span(), key, message);
            return None;
        }
    };
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Some(url)
        }
        _ => {
            let message = "is not an http(s) URL (the value is not shown: it is a secret)";
            checker.problem(span, format!("{key}.{field}"), message.to_owned());
            None
        }
    }
}

fn read_url_file(checker: &mut Checker<'_>, file: &Text, key: &str) -> Option<String> {
    read_secret_file(checker, file, &format!("{key}.url_file"))
}

/// A secret kept in a file (a systemd credential, say), `${VAR}`s in its path expanded;
/// a trailing line break is not part of it. Only the path is ever quoted.
pub(super) fn read_secret_file(
    checker: &mut Checker<'_>,
    file: &Text,
    key: &str,
) -> Option<String> {
    let path = checker.expand(file, key)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text.trim_end_matches(['\n', '\r']).to_owned()),
        Err(err) => {
            checker.problem(file.span(), key, format!("cannot read `{path}`: {err}"));
            None
        }
    }
}

fn rules(
    checker: &mut Checker<'_>,
    raw: &RawConfig,
    targets: &BTreeMap<String, Target>,
    loader: &mut TemplateLoader,
) -> Vec<(usize, Rule)> {
    let resolver = ProjectResolver::new(&raw.projects);
    let defined: Vec<&str> = raw.destinations.keys().map(String::as_str).collect();
    let mut names = HashSet::new();
    let mut rules = Vec::new();
    for (index, spanned) in raw.rules.iter().enumerate() {
        let rule = spanned.get_ref();
        let key = format!("rules[{index}]");
        if !names.insert(rule.name.get_ref().clone()) {
            let message = format!("rule name `{}` is used twice", rule.name.get_ref());
            checker.problem(rule.name.span(), format!("{key}.name"), message);
        }
        let destinations = (targets, defined.as_slice());
        if let Some(rule) = one_rule(checker, rule, &key, &resolver, destinations, loader) {
            rules.push((index, rule));
        }
    }
    rules
}

fn one_rule(
    checker: &mut Checker<'_>,
    raw: &RawRule,
    key: &str,
    resolver: &ProjectResolver,
    destinations: (&BTreeMap<String, Target>, &[&str]),
    loader: &mut TemplateLoader,
) -> Option<Rule> {
    let problems_before = checker.problems.len();
    let name = raw.name.get_ref().clone();
    if name.trim().is_empty() {
        checker.problem(
            raw.name.span(),
            format!("{key}.name"),
            "must not be empty".into(),
        );
    }

    let events = raw
        .events
        .as_ref()
        .map(|list| event_kinds(checker, list, key));
    let projects = raw
        .projects
        .as_ref()
        .map(|list| resolver.resolve_all(checker, list, &format!("{key}.projects")));
    let exclude_key = format!("{key}.exclude_projects");
    let exclude_projects = raw.exclude_projects.as_ref().map_or_else(Vec::new, |list| {
        resolver.resolve_all(checker, list, &exclude_key)
    });
    let stages = raw
        .stages
        .as_ref()
        .map(|list| patterns(checker, list, &format!("{key}.stages")));
    let exclude_stages = raw.exclude_stages.as_ref().map_or_else(Vec::new, |list| {
        patterns(checker, list, &format!("{key}.exclude_stages"))
    });
    let from_stages = raw.from_stages.as_ref().map(|list| {
        if list.get_ref().is_empty() {
            let message = "list at least one stage pattern, or leave `from_stages` out".into();
            checker.problem(list.span(), format!("{key}.from_stages"), message);
        }
        patterns(checker, list.get_ref(), &format!("{key}.from_stages"))
    });
    let to = destination_names(checker, raw, key, destinations);
    let group = grouping(checker, raw, key);
    let owner = format!("rule `{}`", raw.name.get_ref());
    let choice = (owner.as_str(), &raw.template, &raw.text);
    let template = loader.choose(&checker.source, choice, key, &mut checker.problems);

    if checker.problems.len() > problems_before {
        return None;
    }
    Some(Rule {
        name,
        events,
        projects,
        exclude_projects,
        stages,
        exclude_stages,
        from_stages,
        to,
        template: template.unwrap_or(TemplateChoice::Default),
        stop: raw.stop,
        group,
    })
}

/// Stage patterns; an empty one matches no stage at all, so it is a mistake.
pub(super) fn patterns(checker: &mut Checker<'_>, list: &[Text], key: &str) -> Vec<Pattern> {
    for (index, pattern) in list.iter().enumerate() {
        if pattern.get_ref().trim().is_empty() {
            let message = "an empty stage pattern matches no stage".to_owned();
            checker.problem(pattern.span(), format!("{key}[{index}]"), message);
        }
    }
    list.iter().map(|p| Pattern::new(p.get_ref())).collect()
}

/// `group_window` and `group_by`; `group_by` alone is a mistake, not a silent no-op.
fn grouping(checker: &mut Checker<'_>, raw: &RawRule, key: &str) -> Option<Grouping> {
    let Some(window) = &raw.group_window else {
        if let Some(by) = &raw.group_by {
            let message = "`group_by` needs `group_window`, such as `group_window = \"30s\"`";
            checker.problem(by.span(), format!("{key}.group_by"), message.to_owned());
        }
        return None;
    };
    let window = duration(checker, window, &format!("{key}.group_window"))?;
    let mut by = Vec::new();
    for (index, name) in raw.group_by.iter().flat_map(|b| b.get_ref()).enumerate() {
        match GroupField::ALL.iter().find(|(_, n)| n == name.get_ref()) {
            Some((field, _)) => by.push(*field),
            None => {
                let message = format!(
                    "cannot group by `{}`; use `project`, `stage` or `event`",
                    name.get_ref()
                );
                checker.problem(name.span(), format!("{key}.group_by[{index}]"), message);
            }
        }
    }
    Some(Grouping { window, by })
}

fn event_kinds(checker: &mut Checker<'_>, list: &[Text], key: &str) -> Vec<EventKind> {
    let mut kinds = Vec::new();
    for (index, name) in list.iter().enumerate() {
        match EventKind::parse(name.get_ref()) {
            Some(kind) => kinds.push(kind),
            None => {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                let message = format!(
                    "unknown event `{}`; expected one of {}",
                    name.get_ref(),
                    known.join(", ")
                );
                checker.problem(name.span(), format!("{key}.events[{index}]"), message);
            }
        }
    }
    kinds
}

/// The rule's destinations that are valid. One that is defined but invalid is skipped
/// without a problem of its own: its definition's problem is already listed, and calling
/// it unknown would send the user looking for a typo that is not there.
fn destination_names(
    checker: &mut Checker<'_>,
    raw: &RawRule,
    key: &str,
    (targets, defined): (&BTreeMap<String, Target>, &[&str]),
) -> Vec<String> {
    if raw.to.get_ref().is_empty() {
        let message = "a rule needs at least one destination".to_owned();
        checker.problem(raw.to.span(), format!("{key}.to"), message);
    }
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    for (index, name) in raw.to.get_ref().iter().enumerate() {
        if !seen.insert(name.get_ref().as_str()) {
            // Each entry is a message of its own: a repeat would post it twice.
            let message = format!("destination `{}` is listed twice", name.get_ref());
            checker.problem(name.span(), format!("{key}.to[{index}]"), message);
            continue;
        }
        if targets.contains_key(name.get_ref()) {
            names.push(name.get_ref().clone());
            continue;
        }
        if defined.contains(&name.get_ref().as_str()) {
            continue;
        }
        let message = format!(
            "unknown destination `{}` (defined: {})",
            name.get_ref(),
            if defined.is_empty() {
                "none".to_owned()
            } else {
                defined.join(", ")
            }
        );
        checker.problem(name.span(), format!("{key}.to[{index}]"), message);
    }
    names
}

/// Turns the ids and friendly names users write into project ids.
pub(super) struct ProjectResolver {
    by_name: HashMap<String, String>,
    ids: HashSet<String>,
}

impl ProjectResolver {
    pub(super) fn new(projects: &BTreeMap<String, Text>) -> ProjectResolver {
        ProjectResolver {
            by_name: projects
                .iter()
                .map(|(id, name)| (name.get_ref().clone(), id.clone()))
                .collect(),
            ids: projects.keys().cloned().collect(),
        }
    }

    pub(super) fn resolve_all(
        &self,
        checker: &mut Checker<'_>,
        list: &[Text],
        key: &str,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        for (index, value) in list.iter().enumerate() {
            match self.resolve(value.get_ref()) {
                Some(id) => ids.push(id),
                None => {
                    let message = format!(
                        "unknown project `{}`: not a name in [projects] nor a project id",
                        value.get_ref()
                    );
                    checker.problem(value.span(), format!("{key}[{index}]"), message);
                }
            }
        }
        ids
    }

    fn resolve(&self, value: &str) -> Option<String> {
        if let Some(id) = self.by_name.get(value) {
            return Some(id.clone());
        }
        (self.ids.contains(value) || looks_like_id(value)).then(|| value.to_owned())
    }
}

/// RedBrick ids are UUIDs: 8-4-4-4-12 hexadecimal digits.
pub(super) fn looks_like_id(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn warn_unused(checker: &mut Checker<'_>, raw: &RawConfig, rules: &[Rule]) {
    let reminders = raw.reminders.iter().flat_map(|r| r.get_ref().to.get_ref());
    let digests = raw.digests.iter().flat_map(|d| d.get_ref().to.get_ref());
    let used: HashSet<&str> = rules
        .iter()
        .flat_map(|r| r.to.iter().map(String::as_str))
        .chain(reminders.map(|name| name.get_ref().as_str()))
        .chain(digests.map(|name| name.get_ref().as_str()))
        .collect();
    for (name, destination) in &raw.destinations {
        if !used.contains(name.as_str()) {
            let message = "no rule sends to this destination".to_owned();
            checker.warn(destination.span(), format!("destinations.{name}"), message);
        }
    }
}
