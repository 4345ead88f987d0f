//! Finding, compiling and trying out the templates the rules name.
//!
//! A rule names a file in `templates_dir`, gives inline `text`, or takes the shipped
//! default for the event type (a file of the same name in `templates_dir` overrides it).
//! Every template a rule can reach is rendered against a sample event of each type it can
//! see, for every markup, in strict mode: a misspelt variable fails here, not at 3 a.m.
//! How a template renders (escaping, helpers) is the `render` module's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::raw::Text;
use super::source::{Location, Problem, Source};
use crate::digests::Digest;
use crate::event::{Event, EventKind};
use crate::links::Links;
use crate::people::People;
use crate::reminders::Reminder;
use crate::render::{event_context, with_route, CompileError, Markup, RenderFailure, Renderer};
use crate::rules::{Rule, TemplateChoice};
use crate::tasks::{Recall, Task};

/// The shipped default templates, used when `templates_dir` has no file of that name.
const DEFAULTS: [(&str, &str); 6] = [
    (
        "task-created",
        include_str!("../../templates/task-created.hbs"),
    ),
    (
        "task-entered-stage",
        include_str!("../../templates/task-entered-stage.hbs"),
    ),
    (
        "task-deleted",
        include_str!("../../templates/task-deleted.hbs"),
    ),
    (
        crate::rollup::DEFAULT_TEMPLATE,
        include_str!("../../templates/rollup.hbs"),
    ),
    (
        crate::reminders::DEFAULT_TEMPLATE,
        include_str!("../../templates/reminder.hbs"),
    ),
    (
        crate::digests::DEFAULT_TEMPLATE,
        include_str!("../../templates/digest.hbs"),
    ),
];

/// Where a template's text came from, to point at it when it fails.
#[derive(Debug, Clone)]
enum Origin {
    File(PathBuf),
    Inline(Location),
    Shipped,
}

/// A sample that failed to render: where in the template, and what to report.
#[derive(Debug, Clone)]
struct Failed {
    position: Option<(usize, usize)>,
    message: String,
}

impl Failed {
    /// `err` while rendering `what` ("a sample digest").
    fn on(what: &str, err: RenderFailure) -> Failed {
        Failed {
            position: err.position,
            message: format!("fails on {what}: {}", err.reason),
        }
    }
}

/// Loads templates into a [`Renderer`] and remembers where each came from.
pub(super) struct TemplateLoader {
    dir: PathBuf,
    renderer: Renderer,
    origins: HashMap<String, Origin>,
    /// The key that named each template, to report it by.
    keys: HashMap<String, String>,
    /// The text of the template compiled as each name.
    texts: HashMap<String, Arc<str>>,
    /// Each distinct text compiled so far: a name it is compiled as, or why it does not
    /// compile. A config with many rules repeats a few inline texts, and parsing is most
    /// of the cost of loading it.
    compiled: HashMap<Arc<str>, Result<String, CompileError>>,
    defaults_loaded: bool,
}

impl TemplateLoader {
    /// A loader reading named templates from `dir`, whose `mention` helper knows `people`.
    pub(super) fn new(dir: &Path, people: Arc<People>) -> TemplateLoader {
        TemplateLoader {
            dir: dir.to_owned(),
            renderer: Renderer::with_people(people),
            origins: HashMap::new(),
            keys: HashMap::new(),
            texts: HashMap::new(),
            compiled: HashMap::new(),
            defaults_loaded: false,
        }
    }

    /// Every template compiled so far, for the checked config.
    pub(super) fn into_renderer(self) -> Renderer {
        self.renderer
    }

    /// Resolves the `template` or `text` of `owner` (such as "rule `x`"), compiling what it
    /// names.
    pub(super) fn choose(
        &mut self,
        config: &Source<'_>,
        (owner, template, text): (&str, &Option<Text>, &Option<Text>),
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<TemplateChoice> {
        match (template, text) {
            (Some(template), Some(_)) => {
                let message = "set `template` or `text`, not both".to_owned();
                problems.push(config.problem(template.span(), key, message));
                None
            }
            (None, Some(text)) => {
                let name = format!("(inline text of {owner})");
                let origin = Origin::Inline(config.locate(text.span().start));
                self.compile(
                    &name,
                    text.get_ref(),
                    origin,
                    &format!("{key}.text"),
                    problems,
                )?;
                Some(TemplateChoice::Named(name))
            }
            (Some(template), None) => {
                let name = template.get_ref();
                let key = format!("{key}.template");
                self.load_named(name, config, template.span(), &key, problems)
            }
            (None, None) => {
                self.load_defaults(config, problems);
                Some(TemplateChoice::Default)
            }
        }
    }

    fn load_named(
        &mut self,
        name: &str,
        config: &Source<'_>,
        span: Range<usize>,
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<TemplateChoice> {
        if self.renderer.has(name) {
            return Some(TemplateChoice::Named(name.to_owned()));
        }
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let shipped = DEFAULTS.iter().find(|(default, _)| *default == name);
        let path = self.dir.join(format!("{name}.hbs"));
        let text = match (valid, std::fs::read_to_string(&path), shipped) {
            (false, _, _) => Err(format!(
                "`{name}` is not a template name: use letters, digits, `-`, `_` and `.`"
            )),
            (true, Ok(text), _) => Ok((text, Origin::File(path))),
            (true, Err(_), Some((_, text))) => Ok(((*text).to_owned(), Origin::Shipped)),
            (true, Err(err), None) => Err(format!(
                "template `{name}` not found: cannot read `{}`: {err}",
                path.display()
            )),
        };
        match text {
            Ok((text, origin)) => {
                self.compile(name, &text, origin, key, problems)?;
                Some(TemplateChoice::Named(name.to_owned()))
            }
            Err(message) => {
                problems.push(config.problem(span, key, message));
                None
            }
        }
    }

    fn load_defaults(&mut self, config: &Source<'_>, problems: &mut Vec<Problem>) {
        if std::mem::replace(&mut self.defaults_loaded, true) {
            return;
        }
        for (name, _) in DEFAULTS {
            let key = format!("templates_dir/{name}.hbs");
            self.load_named(name, config, 0..0, &key, problems);
        }
    }

    fn compile(
        &mut self,
        name: &str,
        text: &str,
        origin: Origin,
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<()> {
        match self.register(name, text) {
            Ok(text) => {
                self.origins.insert(name.to_owned(), origin);
                self.keys.insert(name.to_owned(), key.to_owned());
                self.texts.insert(name.to_owned(), text);
                Some(())
            }
            Err(err) => {
                let message = format!("template does not compile: {}", err.reason);
                problems.push(located(&origin, err.position, key, message, name));
                None
            }
        }
    }

    /// Compiles `text` as `name`, copying the template of an earlier name of the same text
    /// rather than parsing it again; the text as kept, or why it does not compile.
    fn register(&mut self, name: &str, text: &str) -> Result<Arc<str>, CompileError> {
        if let Some(outcome) = self.reuse(name, text) {
            return outcome;
        }
        let outcome = self.renderer.add(name, text);
        let text = Arc::<str>::from(text);
        let first = match &outcome {
            Ok(()) => Ok(name.to_owned()),
            Err(err) => Err(err.clone()),
        };
        self.compiled.insert(text.clone(), first);
        outcome.map(|()| text)
    }

    /// What compiling `text` as `name` gives, from an earlier template of that text.
    fn reuse(&mut self, name: &str, text: &str) -> Option<Result<Arc<str>, CompileError>> {
        let (known, first) = self.compiled.get_key_value(text)?;
        let first = match first {
            Ok(first) => first,
            Err(err) => return Some(Err(err.clone())),
        };
        // That name may have been compiled again since, from another text: a rule name
        // used twice is reported, but both rules are still checked.
        let unchanged = self.texts.get(first) == Some(known);
        (unchanged && self.renderer.add_copy(name, first)).then(|| Ok(known.clone()))
    }

    /// Refuses templates that include themselves through partials, directly or through
    /// others, and kinds of partial whose inclusions cannot be followed here: rendering
    /// such a template would never end, and would take the relay down instead of failing.
    /// Whether all passed; the samples must not be tried otherwise.
    pub(super) fn check_partials(&self, problems: &mut Vec<Problem>) -> bool {
        let before = problems.len();
        let mut includes = BTreeMap::new();
        let mut names: Vec<&String> = self.origins.keys().collect();
        names.sort();
        for name in names {
            match self.renderer.partials(name) {
                Ok(names) => {
                    includes.insert(name.as_str(), names);
                }
                Err(kind) => {
                    let message = format!(
                        "uses {kind}, which is not supported: include another template \
                         by its name, as `{{{{> name}}}}`"
                    );
                    problems.push(self.refused(name, message));
                }
            }
        }
        for name in includes.keys() {
            if let Some(cycle) = cycle_through(name, &includes) {
                let message = format!(
                    "includes itself through partials ({}): its messages would never end",
                    cycle.join(" → ")
                );
                problems.push(self.refused(name, message));
            }
        }
        problems.len() == before
    }

    /// A problem with template `name` as a whole.
    fn refused(&self, name: &str, message: String) -> Problem {
        let key = self.keys.get(name).map_or(name, String::as_str);
        let whole = Failed {
            position: None,
            message,
        };
        self.located(name, whole, key)
    }

    /// Renders every reachable (template, event type) pair for every markup; `rules` are
    /// the valid rules with their position in the file. A template is reported once, on
    /// the first sample it fails: the same mistake would fail the others too. Templates
    /// of the same text render alike, so each text is tried on each sample once; when it
    /// fails, each rule's own inline text is still reported where that rule gives it. Only
    /// a template including itself could render differently under another name, and
    /// `check_partials` has refused those already.
    pub(super) fn check_samples(
        &self,
        rules: &[(usize, Rule)],
        problems: &mut Vec<Problem>,
        links: &Links,
    ) {
        let mut checked = HashSet::new();
        let mut failed = HashSet::new();
        let mut outcomes = HashMap::new();
        for (index, rule) in rules {
            let kinds = rule
                .events
                .clone()
                .unwrap_or_else(|| EventKind::ALL.to_vec());
            let grouped = rule.group.is_some();
            for kind in kinds {
                let name = match &rule.template {
                    TemplateChoice::Default if grouped => crate::rollup::DEFAULT_TEMPLATE,
                    TemplateChoice::Default => kind.default_template(),
                    TemplateChoice::Named(name) => name.as_str(),
                };
                if failed.contains(name) || !checked.insert((name, kind, grouped)) {
                    continue;
                }
                let sample = (kind, grouped);
                let outcome = match self.texts.get(name) {
                    Some(text) => outcomes
                        .entry((&**text, sample))
                        .or_insert_with(|| self.try_sample(name, sample, links))
                        .clone(),
                    None => self.try_sample(name, sample, links),
                };
                if let Err(failed_on) = outcome {
                    let key = self.key("rules", *index, &rule.template, name);
                    problems.push(self.located(name, failed_on, &key));
                    failed.insert(name);
                }
            }
        }
    }

    /// The key to report a problem with `name` at: the list item itself for a default
    /// template, else its `text` or `template`.
    fn key(&self, list: &str, index: usize, choice: &TemplateChoice, name: &str) -> String {
        match (choice, self.origins.get(name)) {
            (TemplateChoice::Default, _) => format!("{list}[{index}]"),
            (_, Some(Origin::Inline(_))) => format!("{list}[{index}].text"),
            _ => format!("{list}[{index}].template"),
        }
    }

    /// A sample failure of `name`, at the place its text came from.
    fn located(&self, name: &str, failed: Failed, key: &str) -> Problem {
        let origin = self.origins.get(name).unwrap_or(&Origin::Shipped);
        located(origin, failed.position, key, failed.message, name)
    }

    /// Renders every reminder's template for a sample waiting task, for every markup.
    pub(super) fn check_reminder_samples(
        &self,
        reminders: &[(usize, Reminder)],
        problems: &mut Vec<Problem>,
        links: &Links,
    ) {
        for (index, reminder) in reminders {
            let name = match &reminder.template {
                TemplateChoice::Default => crate::reminders::DEFAULT_TEMPLATE,
                TemplateChoice::Named(name) => name.as_str(),
            };
            let key = self.key("reminders", *index, &reminder.template, name);
            let task = sample_task();
            let hour = 3_600_000;
            let now = task.entered_at.unwrap_or_default() + 4 * hour + 10 * 60_000;
            let base =
                crate::reminders::context(&reminder.name, &task, Some("Chest CT"), links, now);
            let context = with_route(base, &reminder.name, "x");
            for markup in Markup::ALL {
                if let Err(err) = self.renderer.render(name, markup, &context) {
                    let failed = Failed::on("a sample waiting task", err);
                    problems.push(self.located(name, failed, &key));
                    break;
                }
            }
        }
    }

    /// Renders every digest's template for a sample digest, for every markup.
    pub(super) fn check_digest_samples(
        &self,
        digests: &[(usize, Digest)],
        problems: &mut Vec<Problem>,
        links: &Links,
    ) {
        for (index, digest) in digests {
            let name = match &digest.template {
                TemplateChoice::Default => crate::digests::DEFAULT_TEMPLATE,
                TemplateChoice::Named(name) => name.as_str(),
            };
            let key = self.key("digests", *index, &digest.template, name);
            let context = sample_digest(&digest.name, links);
            for markup in Markup::ALL {
                if let Err(err) = self.renderer.render(name, markup, &context) {
                    let failed = Failed::on("a sample digest", err);
                    problems.push(self.located(name, failed, &key));
                    break;
                }
            }
        }
    }

    /// Renders `name` for a sample event of `kind`, or for a roll-up of a dozen of them.
    fn try_sample(
        &self,
        name: &str,
        (kind, grouped): (EventKind, bool),
        links: &Links,
    ) -> Result<(), Failed> {
        let sample = sample_event(kind);
        let recall = sample_recall(kind);
        let item = event_context(&sample, &recall, Some("Chest CT"), links);
        let (context, what) = if grouped {
            let items = vec![Value::Object(item); crate::rollup::HEAD + 2];
            let context = crate::rollup::context(&items, "sample", "x");
            (context, format!("a sample roll-up of {kind} events"))
        } else {
            let context = with_route(item, "sample", "x");
            (context, format!("a sample {kind} event"))
        };
        for markup in Markup::ALL {
            if let Err(err) = self.renderer.render(name, markup, &context) {
                return Err(Failed::on(&what, err));
            }
        }
        Ok(())
    }
}

/// The inclusions that lead from template `start` back to it, if any, as names.
fn cycle_through<'a>(
    start: &'a str,
    includes: &'a BTreeMap<&'a str, BTreeSet<String>>,
) -> Option<Vec<&'a str>> {
    fn walk<'a>(
        path: &mut Vec<&'a str>,
        seen: &mut BTreeSet<&'a str>,
        includes: &'a BTreeMap<&'a str, BTreeSet<String>>,
    ) -> bool {
        let at = path[path.len() - 1];
        for next in includes.get(at).into_iter().flatten() {
            path.push(next);
            if next == path[0] || (seen.insert(next) && walk(path, seen, includes)) {
                return true;
            }
            path.pop();
        }
        false
    }

    let mut path = vec![start];
    walk(&mut path, &mut BTreeSet::new(), includes).then_some(path)
}

/// The text of the shipped default template `name` (`task-entered-stage`, ...), if any.
pub fn shipped_template(name: &str) -> Option<&'static str> {
    DEFAULTS
        .iter()
        .find(|(default, _)| *default == name)
        .map(|(_, text)| *text)
}

/// A realistic event of each type, for trying templates out.
pub fn sample_event(kind: EventKind) -> Event {
    let stage = (kind == EventKind::TaskEnteredStage).then(|| "Review_1".to_owned());
    let task_name = (kind != EventKind::TaskEnteredStage).then(|| "CT_chest_0001.nii.gz".into());
    Event {
        kind,
        id: "5f0e6c1a-2b3c-4d5e-8f90-1a2b3c4d5e6f".into(),
        timestamp: json!(1_717_171_717_171_i64),
        time: Utc
            .timestamp_millis_opt(1_717_171_717_171)
            .single()
            .expect("a fixed time in 2024 is one valid instant"),
        org_id: "0b6c9a7e-1111-4a2b-9c3d-000000000001".into(),
        project_id: "7d3f2e10-2222-4b3c-8d4e-000000000002".into(),
        task_id: "c4a1b2d3-3333-4c4d-9e5f-000000000003".into(),
        task_name,
        stage,
        updated_by: Some("annotator@example.com".into()),
    }
}

/// A task as the memory holds it, waiting in `Review_1`, for trying reminders out.
fn sample_task() -> Task {
    let event = sample_event(EventKind::TaskEnteredStage);
    let entered = event.time.timestamp_millis();
    Task {
        task_id: event.task_id,
        org_id: event.org_id,
        project_id: event.project_id,
        name: Some("CT_chest_0001.nii.gz".into()),
        stage: event.stage,
        previous_stage: Some("Label".into()),
        entered_at: Some(entered),
        moved_by: event.updated_by,
        deleted: false,
        last_event_at: entered,
        heard_at: entered,
    }
}

/// A digest of two stages with a task waiting in each and a change of every kind.
fn sample_digest(name: &str, links: &Links) -> Value {
    let waiting = sample_task();
    let mut labelling = sample_task();
    labelling.task_id = "c4a1b2d3-3333-4c4d-9e5f-000000000004".into();
    labelling.stage = Some("Label".into());
    let counted = |stage: Option<&str>, change: &str| crate::digests::Counted {
        org_id: waiting.org_id.clone(),
        project_id: waiting.project_id.clone(),
        stage: stage.map(str::to_owned),
        change: change.to_owned(),
        count: 3,
    };
    let changes = [
        counted(None, "created"),
        counted(Some("Review_1"), "moved"),
        counted(Some("Label"), "deleted"),
    ];
    let now = waiting.entered_at.unwrap_or_default() + 26 * 3_600_000;
    let facts = crate::digests::Facts {
        tasks: &[waiting.clone(), labelling],
        changes: &changes,
        counted_from: now - 86_400_000,
        now,
    };
    let names = |_: &str| Some("Chest CT".to_owned());
    let (context, _) = crate::digests::context(name, &facts, &names, links);
    with_route(context, name, "x")
}

/// What the task memory could hold before a sample event: a stage event with every
/// remembered value, so that a template using them is tried out in full.
fn sample_recall(kind: EventKind) -> Recall {
    if kind != EventKind::TaskEnteredStage {
        return Recall::default();
    }
    Recall {
        task_name: Some("CT_chest_0001.nii.gz".into()),
        previous_stage: Some("Label".into()),
        time_in_previous_stage: Some(std::time::Duration::from_secs(3 * 3600 + 12 * 60)),
    }
}

/// A problem inside a template: at its line and column for a file, at the `text` value
/// (with the template's own line and column in the message) for inline text.
fn located(
    origin: &Origin,
    position: Option<(usize, usize)>,
    key: &str,
    message: String,
    name: &str,
) -> Problem {
    let (line, column) = position.unwrap_or((1, 1));
    let (location, message) = match origin {
        Origin::File(path) => (
            Location {
                file: path.clone(),
                line,
                column,
            },
            message,
        ),
        Origin::Inline(at) => (
            at.clone(),
            format!("{message} (template line {line}, column {column})"),
        ),
        Origin::Shipped => (
            Location {
                file: PathBuf::from(format!("(shipped) {name}.hbs")),
                line,
                column,
            },
            message,
        ),
    };
    Problem {
        location,
        key: key.to_owned(),
        message,
    }
}
