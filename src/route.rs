//! One event's way from rules to ready-to-send messages.
//!
//! For every rule that fires and every destination it names, the template is rendered in
//! the destination's markup and wrapped into the destination's exact HTTP body. `serve`
//! stores and delivers what this produces; `render` prints it. Nothing here sends.

use crate::config::Config;
use crate::event::Event;
use crate::render::{event_context, with_route, RenderFailure};
use crate::rules::TemplateChoice;

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
}

/// Renders every message `event` leads to under `config`; a message that renders to
/// nothing but whitespace is left out.
pub fn route(config: &Config, event: &Event) -> Routed {
    let rules = config.rules.matching(event);
    let mut routed = Routed {
        matched: !rules.is_empty(),
        ..Routed::default()
    };
    if rules.is_empty() {
        return routed;
    }

    let base = event_context(event, config.project_name(&event.project_id), &config.links);
    let link = base
        .get("task_url")
        .and_then(|v| v.as_str())
        .or_else(|| base.get("project_url").and_then(|v| v.as_str()))
        .map(str::to_owned);
    for rule in rules {
        let template = match &rule.template {
            TemplateChoice::Default => event.kind.default_template(),
            TemplateChoice::Named(name) => name,
        };
        for name in &rule.to {
            let target = &config.targets[name];
            let context = with_route(base.clone(), &rule.name, name);
            match config.renderer.render(template, target.markup, &context) {
                // Nothing to say is not a message: Slack refuses an empty `text` for good,
                // and a template may use `{{#if}}` to stay silent for some events.
                Ok(text) if text.trim().is_empty() => {
                    tracing::debug!(rule = %rule.name, destination = %name,
                        "message rendered empty; not sent");
                }
                Ok(text) => {
                    let text = text.trim_end().to_owned();
                    let body = target.destination.body(&text, link.as_deref());
                    routed.messages.push(Message {
                        rule: rule.name.clone(),
                        destination: name.clone(),
                        text,
                        body,
                    });
                }
                Err(failure) => routed.failures.push(RouteError {
                    rule: rule.name.clone(),
                    destination: name.clone(),
                    failure,
                }),
            }
        }
    }
    routed
}
