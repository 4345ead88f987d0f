//! One event's way from rules to ready-to-send messages.
//!
//! For every rule that fires and every destination it names, the template is rendered in
//! the destination's markup and wrapped into the destination's exact HTTP body. `serve`
//! stores and delivers what this produces; `render` prints it. Nothing here sends. Rules
//! with a `group_window` do not render the event: they hold it for `rollup`.

use serde_json::{Map, Value};

use crate::config::Config;
use crate::event::Event;
use crate::outbox::NewDelivery;
use crate::render::{event_context, with_route, Markup, RenderFailure, Renderer};
use crate::rules::TemplateChoice;
use crate::tasks::Recall;

/// A message ready to be stored and delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The rule that fired.
    pub rule: String,
    /// The destination's name.
    pub destination: String,
    /// The rendered text.
    pub text: String,
    /// The exact bytes to send.
    pub body: Vec<u8>,
}

/// A message is queued as a delivery: its rule, its destination's name and its body.
impl From<Message> for NewDelivery {
    fn from(message: Message) -> NewDelivery {
        NewDelivery {
            rule: message.rule,
            destination: message.destination,
            body: message.body,
        }
    }
}

/// A message that could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("rule `{rule}` to `{destination}`: {failure}")]
pub struct RouteError {
    /// The rule that fired.
    pub rule: String,
    /// The destination's name.
    pub destination: String,
    /// What went wrong.
    pub failure: RenderFailure,
}

/// An event held for a rule's roll-up instead of sent on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The rule that rolls it up.
    pub rule: String,
    /// Which of the rule's roll-ups it joins.
    pub key: String,
    /// How long that roll-up collects, from its first event.
    pub window: std::time::Duration,
    /// The event's template context, rendered when the roll-up goes out.
    pub item: Value,
}

/// Everything one event produces.
#[derive(Debug, Default)]
pub struct Routed {
    /// Messages ready to send, in rule order then destination order.
    pub messages: Vec<Message>,
    /// Messages that failed to render; the others still go.
    pub failures: Vec<RouteError>,
    /// Roll-ups the event joins.
    pub held: Vec<Held>,
    /// Whether any rule fired.
    pub matched: bool,
    /// The names of the rules that fired, in order.
    pub rules: Vec<String>,
}

/// Renders every message `event` leads to under `config`, given what the task memory
/// held before it; a message that renders to nothing but whitespace is left out. Rules
/// with a `group_window` hold the event for their roll-up instead.
pub fn route(config: &Config, event: &Event, recall: &Recall) -> Routed {
    let rules = config
        .rules
        .matching(event, recall.previous_stage.as_deref());
    let mut routed = Routed {
        matched: !rules.is_empty(),
        rules: rules.iter().map(|rule| rule.name.clone()).collect(),
        ..Routed::default()
    };
    if rules.is_empty() {
        return routed;
    }

    let base = Base::new(config, event, recall);
    for rule in rules {
        if let Some(group) = &rule.group {
            routed.held.push(Held {
                rule: rule.name.clone(),
                key: group.key(event),
                window: group.window,
                item: Value::Object(base.context.clone()),
            });
            continue;
        }
        let template = match &rule.template {
            TemplateChoice::Default => event.kind.default_template(),
            TemplateChoice::Named(name) => name,
        };
        for name in &rule.to {
            let context = with_route(base.context.clone(), &rule.name, name);
            let link = base.link.as_deref();
            match message(config, &rule.name, name, template, context, link) {
                Ok(Some(message)) => routed.messages.push(message),
                Ok(None) => {}
                Err(failure) => routed.failures.push(failure),
            }
        }
    }
    routed
}

/// Renders one message outside the rules: `template` from `renderer`, for `event`, in the
/// markup of `destination`, wrapped in its body, as if rule `rule` had fired. For
/// `send-test`, which must produce exactly what `serve` would send.
pub fn render_one(
    config: &Config,
    renderer: &Renderer,
    template: &str,
    event: &Event,
    rule: &str,
    destination: &str,
) -> Result<Message, RouteError> {
    let base = Base::new(config, event, &Recall::default());
    let piece = Piece {
        renderer,
        template,
        rule,
        destination,
    };
    let context = with_route(base.context, rule, destination);
    piece.render(config, context, base.link.as_deref())
}

/// Renders `template` with a complete `context` for `destination` and wraps it into its
/// body; `None` for a message that renders to nothing but whitespace. Roll-ups and
/// reminders use it too, so that every message is built the same way.
pub fn message(
    config: &Config,
    rule: &str,
    destination: &str,
    template: &str,
    context: Value,
    link: Option<&str>,
) -> Result<Option<Message>, RouteError> {
    let piece = Piece {
        renderer: &config.renderer,
        template,
        rule,
        destination,
    };
    let message = piece.render(config, context, link)?;
    // Nothing to say is not a message: Slack refuses an empty `text` for good, and a
    // template may use `{{#if}}` to stay silent for some events.
    if message.text.trim().is_empty() {
        tracing::debug!(rule, destination, "message rendered empty; not sent");
        return Ok(None);
    }
    Ok(Some(message))
}

/// What every message of one event shares: its context and the page it is about.
struct Base {
    context: Map<String, Value>,
    link: Option<String>,
}

impl Base {
    fn new(config: &Config, event: &Event, recall: &Recall) -> Base {
        let project = config.project_name(&event.project_id);
        let context = event_context(event, recall, project, &config.links);
        let link = context
            .get("task_url")
            .and_then(|v| v.as_str())
            .or_else(|| context.get("project_url").and_then(|v| v.as_str()))
            .map(str::to_owned);
        Base { context, link }
    }
}

/// One (rule, destination) pair to render.
struct Piece<'a> {
    renderer: &'a Renderer,
    template: &'a str,
    rule: &'a str,
    destination: &'a str,
}

impl Piece<'_> {
    /// `destination` must be in `config.targets`: validation checked every `to`.
    fn render(
        &self,
        config: &Config,
        context: Value,
        link: Option<&str>,
    ) -> Result<Message, RouteError> {
        let target = &config.targets[self.destination];
        match self
            .renderer
            .render_owned(self.template, target.markup, context)
        {
            Ok(text) => {
                let text = text.trim_end().to_owned();
                let mentions = match target.markup {
                    Markup::Teams => config.people.teams_mentions(&text),
                    _ => Vec::new(),
                };
                let body = target.destination.body(&text, link, &mentions);
                Ok(Message {
                    rule: self.rule.to_owned(),
                    destination: self.destination.to_owned(),
                    text,
                    body,
                })
            }
            Err(failure) => Err(RouteError {
                rule: self.rule.to_owned(),
                destination: self.destination.to_owned(),
                failure,
            }),
        }
    }
}
