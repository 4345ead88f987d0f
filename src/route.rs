//! One event's way from rules to ready-to-send messages.
//!
//! For every rule that fires and every destination it names, the template is rendered in
//! the destination's markup and wrapped into the destination's exact HTTP body. `serve`
//! stores and delivers what this produces; `render` prints it. Nothing here sends.

use crate::config::Config;
use crate::event::Event;
use serde_json::{Map, Value};

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

/// Everything one event produces.
#[derive(Debug, Default)]
pub struct Routed {
    /// Messages ready to send, in rule order then destination order.
    pub messages: Vec<Message>,
    /// Messages that failed to render; the others still go.
    pub failures: Vec<RouteError>,
    /// Whether any rule fired.
    pub matched: bool,
    /// The names of the rules that fired, in order.
    pub rules: Vec<String>,
}

/// Renders every message `event` leads to under `config`, given what the task memory
/// held before it; a message that renders to nothing but whitespace is left out.
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
        let template = match &rule.template {
            TemplateChoice::Default => event.kind.default_template(),
            TemplateChoice::Named(name) => name,
        };
        for name in &rule.to {
            let piece = Piece {
                renderer: &config.renderer,
                template,
                rule: &rule.name,
                destination: name,
            };
            match piece.render(config, &base) {
                // Nothing to say is not a message: Slack refuses an empty `text` for good,
                // and a template may use `{{#if}}` to stay silent for some events.
                Ok(message) if message.text.trim().is_empty() => {
                    tracing::debug!(rule = %rule.name, destination = %name,
                        "message rendered empty; not sent");
                }
                Ok(message) => routed.messages.push(message),
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
    let piece = Piece {
        renderer,
        template,
        rule,
        destination,
    };
    piece.render(config, &Base::new(config, event, &Recall::default()))
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
    /// `destination` must be in `config.targets`: validation checked every rule's `to`.
    fn render(&self, config: &Config, base: &Base) -> Result<Message, RouteError> {
        let target = &config.targets[self.destination];
        let context = with_route(base.context.clone(), self.rule, self.destination);
        match self.renderer.render(self.template, target.markup, &context) {
            Ok(text) => {
                let text = text.trim_end().to_owned();
                let mentions = match target.markup {
                    Markup::Teams => config.people.teams_mentions(&text),
                    _ => Vec::new(),
                };
                let body = target
                    .destination
                    .body(&text, base.link.as_deref(), &mentions);
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
