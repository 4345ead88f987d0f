//! Message text: Handlebars templates rendered with per-destination escaping and helpers.
//!
//! Each [`Markup`] (Slack mrkdwn, Teams markdown, plain text) has its own registry, so that
//! `{{task_name}}` is escaped the way its destination reads it and helpers such as `link`
//! produce that destination's syntax. Values from the event are always escaped; the
//! template's own markup passes through. This module owns the template context too, but
//! not where the message goes nor how it is wrapped into an HTTP body.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, SecondsFormat, Utc};
use handlebars::template::TemplateElement;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, Template, TemplateError,
};
use serde_json::{json, Map, Value};

use crate::event::{timestamp_to_time, Event};
use crate::links::{Links, MAX_LINK_CHARS};
use crate::people::People;
use crate::tasks::{human, Recall};

/// The default format of the `time` helper.
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d %H:%M UTC";

/// How a destination reads text, and so how values are escaped for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Markup {
    /// Slack mrkdwn: `&`, `<` and `>` are entities, `<url|label>` links, `*bold*`.
    Slack,
    /// Teams TextBlock markdown: backslash escapes, `[label](url)`, `**bold**`.
    Teams,
    /// Plain text for the console: nothing is markup.
    Plain,
}

impl Markup {
    /// Every markup, in a stable order.
    pub const ALL: [Markup; 3] = [Markup::Slack, Markup::Teams, Markup::Plain];

    /// Escapes text that came from outside (an event) so it shows literally.
    ///
    /// Line breaks (U+2028 and U+2029 too) and other control characters become spaces
    /// in every markup: a value is one line of the message, never a new paragraph or
    /// list item. Explicit direction embeddings, overrides and isolates (U+202A to
    /// U+202E, U+2066 to U+2069) are dropped: right-to-left text still reads right to
    /// left, but a value cannot reverse the text that follows it.
    pub fn escape(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            match (self, c) {
                (_, c) if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => out.push(' '),
                (_, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') => {}
                (Markup::Slack, '&') => out.push_str("&amp;"),
                (Markup::Slack, '<') => out.push_str("&lt;"),
                (Markup::Slack, '>') => out.push_str("&gt;"),
                (Markup::Teams, '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '`' | '~' | '<')
                | (Markup::Teams, '>' | '#') => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        out
    }

    fn bold(self, text: &str) -> String {
        match self {
            Markup::Slack => format!("*{text}*"),
            Markup::Teams => format!("**{text}**"),
            Markup::Plain => text.to_owned(),
        }
    }

    fn italic(self, text: &str) -> String {
        match self {
            Markup::Slack | Markup::Teams => format!("_{text}_"),
            Markup::Plain => text.to_owned(),
        }
    }

    /// A link; `label` is already escaped. A URL's characters that would end the link
    /// early are percent-encoded so the label and target cannot be confused.
    fn link(self, url: &str, label: &str) -> String {
        let url: String = url
            .chars()
            .map(|c| match c {
                ' ' => "%20".to_owned(),
                '<' => "%3C".to_owned(),
                '>' => "%3E".to_owned(),
                '|' => "%7C".to_owned(),
                '(' => "%28".to_owned(),
                ')' => "%29".to_owned(),
                c if c.is_control() => String::new(),
                c => c.to_string(),
            })
            .collect();
        match self {
            Markup::Slack => format!("<{url}|{label}>"),
            Markup::Teams => format!("[{label}]({url})"),
            Markup::Plain => format!("{label} ({url})"),
        }
    }
}

/// A template that failed to compile, with its position inside the template text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct CompileError {
    /// Line and column inside the template, when known.
    pub position: Option<(usize, usize)>,
    /// What was wrong.
    pub reason: String,
}

impl From<TemplateError> for CompileError {
    fn from(err: TemplateError) -> CompileError {
        CompileError {
            position: err.pos(),
            reason: err.reason().to_string(),
        }
    }
}

/// Rendering a message failed; the message is not sent.
#[derive(Debug, thiserror::Error)]
#[error("template `{template}` failed to render{}: {reason}", at(.position))]
pub struct RenderFailure {
    /// The template's name.
    pub template: String,
    /// Line and column inside the template, when known.
    pub position: Option<(usize, usize)>,
    /// What went wrong.
    pub reason: String,
}

fn at(position: &Option<(usize, usize)>) -> String {
    position.map_or_else(String::new, |(line, column)| {
        format!(" at line {line}, column {column}")
    })
}

/// Compiled templates, one registry per markup.
pub struct Renderer {
    registries: BTreeMap<Markup, Handlebars<'static>>,
}

impl Renderer {
    /// An empty renderer in strict mode: a misspelt variable is an error, not blank text.
    pub fn new() -> Renderer {
        Renderer::with_people(Arc::new(People::default()))
    }

    /// An empty renderer whose `mention` helper knows `people`.
    pub fn with_people(people: Arc<People>) -> Renderer {
        let registries = Markup::ALL
            .into_iter()
            .map(|markup| (markup, registry(markup, people.clone())))
            .collect();
        Renderer { registries }
    }

    /// Compiles `source` under `name` for every markup.
    ///
    /// Parsing is most of the cost of loading a config with many rules, and the markups
    /// differ only in their escaping and helpers, which apply when rendering: the template
    /// is parsed once and each registry gets a copy.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), CompileError> {
        let template = Template::compile_with_name(source, name.to_owned())?;
        for registry in self.registries.values_mut() {
            registry.register_template(name, template.clone());
        }
        Ok(())
    }

    /// Adds under `name` a copy of the template compiled as `existing`, without parsing
    /// its text again; false if there is no such template.
    ///
    /// A config with many rules repeats a few inline texts: copying is cheap next to
    /// parsing.
    pub fn add_copy(&mut self, name: &str, existing: &str) -> bool {
        for registry in self.registries.values_mut() {
            let Some(template) = registry.get_template(existing) else {
                return false;
            };
            let mut template = template.clone();
            template.name = Some(name.to_owned());
            registry.register_template(name, template);
        }
        true
    }

    /// The partials template `name` includes by name (`{{> footer}}`), or the first kind
    /// of partial it uses that `check` cannot follow.
    pub fn partials(&self, name: &str) -> Result<BTreeSet<String>, &'static str> {
        let mut names = BTreeSet::new();
        match self.registries[&Markup::Plain].get_template(name) {
            Some(template) => partials_of(template, &mut names).map(|()| names),
            None => Ok(names),
        }
    }

    /// Whether a template of that name is compiled.
    pub fn has(&self, name: &str) -> bool {
        self.registries[&Markup::Plain].has_template(name)
    }

    /// Renders template `name` for `markup`.
    pub fn render(
        &self,
        name: &str,
        markup: Markup,
        context: &Value,
    ) -> Result<String, RenderFailure> {
        self.render_owned(name, markup, context.clone())
    }

    /// [`Renderer::render`] for a context the caller no longer needs, as on the request
    /// path. Handlebars takes a borrowed context through `Serialize`, rebuilding it value
    /// by value (a third of the cost of rendering); an owned one is wrapped as it is.
    pub fn render_owned(
        &self,
        name: &str,
        markup: Markup,
        context: Value,
    ) -> Result<String, RenderFailure> {
        self.registries[&markup]
            .render_with_context(name, &Context::from(context))
            .map_err(|err| RenderFailure {
                template: name.to_owned(),
                position: err.line_no.zip(err.column_no),
                reason: describe(&err),
            })
    }
}

impl Default for Renderer {
    fn default() -> Renderer {
        Renderer::new()
    }
}

/// Adds the names of the partials `template` includes, in any block, to `names`; fails
/// on a partial whose name is computed, a partial block or an inline partial, which could
/// include one another without end where `check` cannot see.
fn partials_of(template: &Template, names: &mut BTreeSet<String>) -> Result<(), &'static str> {
    for element in &template.elements {
        match element {
            TemplateElement::PartialExpression(partial) => match partial.name.as_name() {
                Some(name) => {
                    names.insert(name.to_owned());
                }
                None => return Err("a partial whose name is computed"),
            },
            TemplateElement::PartialBlock(_) => return Err("a partial block (`{{#> name}}`)"),
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return Err("an inline partial or decorator (`{{#*inline}}`)")
            }
            TemplateElement::HelperBlock(block) => {
                for inner in block.template.iter().chain(&block.inverse) {
                    partials_of(inner, names)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn describe(err: &RenderError) -> String {
    match err.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => format!("no variable `{path}`"),
        RenderErrorReason::MissingVariable(None) => "a variable does not exist".to_owned(),
        other => other.to_string(),
    }
}

fn registry(markup: Markup, people: Arc<People>) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(move |text| markup.escape(text));
    registry.register_helper("link", Box::new(LinkHelper(markup)));
    for (name, style) in [
        ("bold", Markup::bold as fn(Markup, &str) -> String),
        ("italic", Markup::italic),
    ] {
        registry.register_helper(
            name,
            Box::new(StyleHelper {
                markup,
                name,
                style,
            }),
        );
    }
    registry.register_helper("time", Box::new(TimeHelper(markup)));
    registry.register_helper("mention", Box::new(MentionHelper { markup, people }));
    registry
}

/// `{{mention updated_by}}`: the person with that e-mail, mentioned in the destination's
/// syntax if `[people]` names them, else their e-mail as escaped text.
struct MentionHelper {
    markup: Markup,
    people: Arc<People>,
}

impl HelperDef for MentionHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let email = param_text(h, 0, "mention")?;
        out.write(&self.people.mention(&email, self.markup))?;
        Ok(())
    }
}

/// `{{link url label}}`: a link in the destination's syntax; only the label when the URL
/// is empty or null, so one template serves events with and without a task link.
struct LinkHelper(Markup);

impl HelperDef for LinkHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let url = param_text(h, 0, "link")?;
        let label = self.0.escape(&param_text(h, 1, "link")?);
        let text = if url.is_empty() {
            label
        } else {
            self.0.link(&url, &label)
        };
        out.write(&text)?;
        Ok(())
    }
}

/// `{{bold text}}` and `{{italic text}}`: the text escaped, then styled.
struct StyleHelper {
    markup: Markup,
    name: &'static str,
    style: fn(Markup, &str) -> String,
}

impl HelperDef for StyleHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let text = self.markup.escape(&param_text(h, 0, self.name)?);
        out.write(&(self.style)(self.markup, &text))?;
        Ok(())
    }
}

/// `{{time timestamp "%H:%M"}}`: a RedBrick timestamp (seconds, milliseconds or RFC 3339)
/// formatted in UTC with a strftime pattern, by default [`DEFAULT_TIME_FORMAT`].
///
/// A missing or unreadable value shows the event's `time` instead (the time of receipt
/// for exactly those events): an event is never dropped over its timestamp.
struct TimeHelper(Markup);

impl HelperDef for TimeHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = param(h, 0, "time")?;
        let format = match h.param(1) {
            Some(_) => param_string(param(h, 1, "time")?, "time")?,
            None => DEFAULT_TIME_FORMAT.to_owned(),
        };
        let time = timestamp_to_time(value)
            .or_else(|| ctx.data().get("time").and_then(timestamp_to_time))
            .ok_or(RenderErrorReason::InvalidParamType(
                "timestamp in seconds, ms or RFC 3339",
            ))?;
        out.write(&self.0.escape(&format_time(time, &format)?))?;
        Ok(())
    }
}

/// Formats `time`, refusing patterns chrono cannot format instead of panicking on them.
fn format_time(time: DateTime<Utc>, format: &str) -> Result<String, RenderErrorReason> {
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(RenderErrorReason::Other(format!(
            "invalid time format `{format}`"
        )));
    }
    Ok(time.format_with_items(items.into_iter()).to_string())
}

/// A helper's parameter; a name that is not in the context is an error, as it is for
/// `{{name}}` in strict mode.
fn param<'a>(
    h: &'a Helper<'_>,
    index: usize,
    helper: &'static str,
) -> Result<&'a Value, RenderErrorReason> {
    let param = h
        .param(index)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, index))?;
    if param.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(
            param.relative_path().cloned(),
        ));
    }
    Ok(param.value())
}

fn param_text(h: &Helper<'_>, index: usize, helper: &'static str) -> Result<String, RenderError> {
    Ok(param_string(param(h, index, helper)?, helper)?)
}

fn param_string(value: &Value, helper: &'static str) -> Result<String, RenderErrorReason> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(RenderErrorReason::ParamTypeMismatchForName(
            helper,
            "text".into(),
            "a string".into(),
        )),
    }
}

/// The template context of one event, without `rule` and `destination`; `recall` is what
/// the task memory held about the task just before the event.
///
/// Every documented key is present (`null` when the event has no value for it) so that
/// strict mode refuses misspelt names and accepts `{{#if task_name}}`. A link longer
/// than [`MAX_LINK_CHARS`] is `null` too: `{{link}}` then shows only its label.
pub fn event_context(
    event: &Event,
    recall: &Recall,
    project: Option<&str>,
    links: &Links,
) -> Map<String, Value> {
    let bounded = |url: String| (url.len() <= MAX_LINK_CHARS).then_some(url);
    let project_url = bounded(links.project(&event.org_id, &event.project_id));
    let task_url = event
        .stage
        .as_deref()
        .map(|stage| links.task(&event.org_id, &event.project_id, stage, &event.task_id))
        .and_then(bounded);
    let json = json!({
        "event": event.kind.as_str(),
        "event_id": event.id,
        "timestamp": event.timestamp,
        "time": event.time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "org_id": event.org_id,
        "project_id": event.project_id,
        "project": project.unwrap_or(&event.project_id),
        "task_id": event.task_id,
        "task_name": event.task_name.as_ref().or(recall.task_name.as_ref()),
        "stage": event.stage,
        "previous_stage": recall.previous_stage,
        "time_in_previous_stage": recall.time_in_previous_stage.map(human),
        "updated_by": event.updated_by,
        "project_url": project_url,
        "task_url": task_url,
        "rule": Value::Null,
        "destination": Value::Null,
    });
    match json {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

/// Completes an event context for one (rule, destination) pair.
pub fn with_route(mut context: Map<String, Value>, rule: &str, destination: &str) -> Value {
    context.insert("rule".into(), Value::String(rule.to_owned()));
    context.insert("destination".into(), Value::String(destination.to_owned()));
    Value::Object(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer(source: &str) -> Renderer {
        let mut renderer = Renderer::new();
        renderer.add("t", source).unwrap();
        renderer
    }

    #[test]
    fn slack_escapes_exactly_three_characters() {
        let escaped = Markup::Slack.escape("<!channel> R&D's \"*v2*\" >");

        assert_eq!(escaped, "&lt;!channel&gt; R&amp;D's \"*v2*\" &gt;");
    }

    #[test]
    fn teams_escapes_markdown_with_backslashes() {
        let escaped = Markup::Teams.escape("R&D's *v2* [x](y) _a_ `c`");

        assert_eq!(escaped, r"R&D's \*v2\* \[x\]\(y\) \_a\_ \`c\`");
    }

    #[test]
    fn line_breaks_in_values_become_spaces() {
        for markup in Markup::ALL {
            assert_eq!(markup.escape("a\nb\r\tc"), "a b  c", "{markup:?}");
        }
    }

    #[test]
    fn separators_become_spaces_and_direction_overrides_go() {
        for markup in Markup::ALL {
            assert_eq!(
                markup.escape("a\u{2028}b\u{2029}c \u{202e}exe.txt\u{202c} \u{2067}x\u{2069}"),
                "a b c exe.txt x",
                "{markup:?}"
            );
        }
    }

    #[test]
    fn values_are_escaped_but_template_markup_is_not() {
        let renderer = renderer("*{{name}}* <!here>");
        let context = json!({"name": "<!channel> & co"});

        let text = renderer.render("t", Markup::Slack, &context).unwrap();

        assert_eq!(text, "*&lt;!channel&gt; &amp; co* <!here>");
    }

    #[test]
    fn link_and_bold_follow_each_markup() {
        let renderer = renderer("{{link url label}} {{bold label}}");
        let context = json!({"url": "https://x.test/a b|c", "label": "R&D <1>"});
        let render = |markup| renderer.render("t", markup, &context).unwrap();

        assert_eq!(
            render(Markup::Slack),
            "<https://x.test/a%20b%7Cc|R&amp;D &lt;1&gt;> *R&amp;D &lt;1&gt;*"
        );
        assert_eq!(
            render(Markup::Teams),
            r"[R&D \<1\>](https://x.test/a%20b%7Cc) **R&D \<1\>**"
        );
        assert_eq!(
            render(Markup::Plain),
            "R&D <1> (https://x.test/a%20b%7Cc) R&D <1>"
        );
    }

    #[test]
    fn link_without_url_is_only_its_label() {
        let renderer = renderer("{{link url \"Open\"}}");

        let text = renderer
            .render("t", Markup::Slack, &json!({"url": null}))
            .unwrap();

        assert_eq!(text, "Open");
    }

    #[test]
    fn time_formats_seconds_and_milliseconds_alike() {
        let renderer = renderer("{{time a}} / {{time b \"%H:%M\"}}");
        let context = json!({"a": 1_717_171_717, "b": 1_717_171_717_000_i64});

        let text = renderer.render("t", Markup::Plain, &context).unwrap();

        assert_eq!(text, "2024-05-31 16:08 UTC / 16:08");
    }

    #[test]
    fn an_unreadable_timestamp_falls_back_to_the_event_time() {
        let renderer = renderer("{{time a}} / {{time b}}");
        let context = json!({"a": null, "b": "soon", "time": "2024-05-31T16:08:37Z"});

        let text = renderer.render("t", Markup::Plain, &context).unwrap();

        assert_eq!(text, "2024-05-31 16:08 UTC / 2024-05-31 16:08 UTC");
    }

    #[test]
    fn a_bad_time_format_is_an_error_not_a_panic() {
        let renderer = renderer("{{time a \"%Q\"}}");

        let err = renderer
            .render("t", Markup::Plain, &json!({"a": 1}))
            .unwrap_err();

        assert!(
            err.reason.contains("invalid time format `%Q`"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn a_misspelt_variable_is_an_error_in_strict_mode() {
        let renderer = renderer("{{task_nmae}}");

        let err = renderer
            .render("t", Markup::Slack, &json!({"task_name": "x"}))
            .unwrap_err();

        assert!(err.reason.contains("task_nmae"), "{}", err.reason);
    }

    #[test]
    fn a_misspelt_helper_argument_is_an_error_too() {
        let renderer = renderer("{{bold task_nmae}}");

        let err = renderer
            .render("t", Markup::Slack, &json!({"task_name": "x"}))
            .unwrap_err();

        assert_eq!(err.reason, "no variable `task_nmae`");
        assert_eq!(err.position, Some((1, 1)));
    }

    #[test]
    fn render_errors_carry_the_position_of_the_failing_line() {
        let renderer = renderer("line one\n  {{task_nmae}}");

        let err = renderer
            .render("t", Markup::Slack, &json!({"task_name": "x"}))
            .unwrap_err();

        assert_eq!(err.position, Some((2, 3)));
        assert_eq!(
            err.to_string(),
            "template `t` failed to render at line 2, column 3: no variable `task_nmae`"
        );
    }

    #[test]
    fn a_copy_renders_and_fails_under_its_own_name() {
        let mut renderer = renderer("{{task_name}} {{task_nmae}}");

        assert!(renderer.add_copy("copy", "t"));

        let err = renderer
            .render("copy", Markup::Slack, &json!({"task_name": "x"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "template `copy` failed to render at line 1, column 15: no variable `task_nmae`"
        );
        let both = json!({"task_name": "x", "task_nmae": "y"});
        for markup in Markup::ALL {
            assert_eq!(renderer.render("copy", markup, &both).unwrap(), "x y");
        }
    }

    #[test]
    fn partials_are_found_in_every_block() {
        let found = |source: &str| {
            let partials = renderer(source).partials("t");
            partials.map_or(true, |names| !names.is_empty())
        };

        assert!(!found("{{#if a}}{{b}}{{else}}{{{c}}}{{/if}} {{! > no}}"));
        assert!(found("{{> x}}"));
        assert!(found("{{#> x}}fallback{{/x}}"));
        assert!(found("{{#each a}}{{else}}{{#if b}}{{> x}}{{/if}}{{/each}}"));
        assert!(found("{{#if a}}{{else if b}}{{> x}}{{/if}}"));
        assert!(found("{{#*inline \"x\"}}{{> y}}{{/inline}}"));
        assert_eq!(Renderer::new().partials("missing"), Ok(BTreeSet::new()));
    }

    #[test]
    fn a_copy_of_an_unknown_template_is_refused() {
        let mut renderer = Renderer::new();

        assert!(!renderer.add_copy("copy", "missing"));

        assert!(!renderer.has("copy"));
    }

    #[test]
    fn compile_errors_carry_a_position() {
        let err = Renderer::new()
            .add("t", "line one\n{{#if x}}no end")
            .unwrap_err();

        assert!(err.position.is_some(), "{err}");
    }
}
