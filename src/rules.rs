//! Which rules an event matches, and so which (template, destination) pairs it reaches.
//!
//! Rules are checked values (names resolved, patterns compiled) built by `config`. They are
//! indexed by event type and project so that matching costs the same with ten rules or ten
//! thousand. This module knows nothing of HTTP, templates or delivery.

use std::collections::HashMap;
use std::fmt;

use crate::event::{Event, EventKind};

/// A stage pattern: exact text, with `*` for any run of characters and `?` for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Compiles a pattern; every string is a valid pattern.
    pub fn new(text: &str) -> Pattern {
        Pattern(text.to_owned())
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        glob_match(self.0.as_bytes(), text.as_bytes())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative matcher with single backtracking point: linear in practice, never exponential.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Which template a rule renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChoice {
    /// The shipped default for the event's type.
    Default,
    /// A registered template, by name (a file, or a rule's inline `text`).
    Named(String),
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique name, used in logs, metrics and templates.
    pub name: String,
    /// Event types it takes; `None` for every type.
    pub events: Option<Vec<EventKind>>,
    /// Project ids it takes; `None` for every project.
    pub projects: Option<Vec<String>>,
    /// Project ids it never takes.
    pub exclude_projects: Vec<String>,
    /// Stage patterns it takes; `None` for every stage (and events without one).
    pub stages: Option<Vec<Pattern>>,
    /// Stage patterns it never takes.
    pub exclude_stages: Vec<Pattern>,
    /// Patterns of the stage a task must come from; `None` for any move, or no move.
    pub from_stages: Option<Vec<Pattern>>,
    /// Destination names, in order.
    pub to: Vec<String>,
    /// What it renders.
    pub template: TemplateChoice,
    /// Whether a match ends the evaluation for the event.
    pub stop: bool,
    /// When set, matching events are collected and sent as one roll-up per window.
    pub group: Option<Grouping>,
}

/// How a rule rolls matching events up into one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// How long a roll-up collects events, from its first one.
    pub window: std::time::Duration,
    /// The event values that split events into separate roll-ups.
    pub by: Vec<GroupField>,
}

/// An event value roll-ups can be split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupField {
    /// The project id.
    Project,
    /// The stage entered (none for events without one).
    Stage,
    /// The event type.
    Event,
}

impl GroupField {
    /// Every field, with the name `group_by` uses for it.
    pub const ALL: [(GroupField, &'static str); 3] = [
        (GroupField::Project, "project"),
        (GroupField::Stage, "stage"),
        (GroupField::Event, "event"),
    ];

    /// This field's value for `event`, empty when the event has none.
    pub fn value(self, event: &Event) -> &str {
        match self {
            GroupField::Project => &event.project_id,
            GroupField::Stage => event.stage.as_deref().unwrap_or_default(),
            GroupField::Event => event.kind.as_str(),
        }
    }
}

impl Grouping {
    /// The key of the roll-up `event` joins: its values of the `by` fields.
    pub fn key(&self, event: &Event) -> String {
        let values: Vec<&str> = self.by.iter().map(|field| field.value(event)).collect();
        values.join("\u{1f}")
    }
}

/// The condition that kept a rule from matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// The event type is not in `events`.
    Event(EventKind),
    /// The project is not in `projects`.
    Project(String),
    /// The project is in `exclude_projects`.
    ExcludedProject(String),
    /// The rule names stages and the event has none.
    NoStage,
    /// The stage matches no pattern in `stages`.
    Stage(String),
    /// The stage matches `exclude_stages`.
    ExcludedStage(String, Pattern),
    /// The rule names `from_stages` and the event is not a move from a remembered stage.
    NoPreviousStage,
    /// The stage the task left matches no pattern in `from_stages`.
    FromStage(String, String),
    /// An earlier rule with `stop = true` matched.
    Stopped(String),
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::Event(kind) => write!(f, "event type `{kind}` is not in `events`"),
            Miss::Project(id) => write!(f, "project `{id}` is not in `projects`"),
            Miss::ExcludedProject(id) => write!(f, "project `{id}` is in `exclude_projects`"),
            Miss::NoStage => f.write_str("the rule names `stages` and this event has no stage"),
            Miss::Stage(stage) => write!(f, "stage `{stage}` matches nothing in `stages`"),
            Miss::ExcludedStage(stage, pattern) => {
                write!(f, "stage `{stage}` matches `{pattern}` in `exclude_stages`")
            }
            Miss::NoPreviousStage => f.write_str(
                "the rule names `from_stages` and this event is not a move from a stage \
                 the relay remembers",
            ),
            Miss::FromStage(from, to) => {
                write!(
                    f,
                    "move `{from}` -> `{to}`: `{from}` matches nothing in `from_stages`"
                )
            }
            Miss::Stopped(rule) => write!(f, "rule `{rule}` matched first and has `stop = true`"),
        }
    }
}

impl Rule {
    /// Checks every condition in order and names the first that fails; `previous` is the
    /// stage the event moved the task from, when the task memory knows it.
    pub fn check(&self, event: &Event, previous: Option<&str>) -> Result<(), Miss> {
        if let Some(events) = &self.events {
            if !events.contains(&event.kind) {
                return Err(Miss::Event(event.kind));
            }
        }
        self.check_project(&event.project_id)?;
        self.check_stage(event.stage.as_deref())?;
        self.check_move(previous, event.stage.as_deref())
    }

    fn check_move(&self, previous: Option<&str>, stage: Option<&str>) -> Result<(), Miss> {
        let Some(patterns) = &self.from_stages else {
            return Ok(());
        };
        match (previous, stage) {
            (Some(from), Some(_)) if patterns.iter().any(|p| p.matches(from)) => Ok(()),
            (Some(from), Some(to)) => Err(Miss::FromStage(from.to_owned(), to.to_owned())),
            _ => Err(Miss::NoPreviousStage),
        }
    }

    fn check_project(&self, project: &str) -> Result<(), Miss> {
        if let Some(projects) = &self.projects {
            if !projects.iter().any(|id| id == project) {
                return Err(Miss::Project(project.to_owned()));
            }
        }
        if self.exclude_projects.iter().any(|id| id == project) {
            return Err(Miss::ExcludedProject(project.to_owned()));
        }
        Ok(())
    }

    fn check_stage(&self, stage: Option<&str>) -> Result<(), Miss> {
        match (stage, &self.stages) {
            (None, Some(_)) => return Err(Miss::NoStage),
            (Some(stage), Some(patterns)) if !patterns.iter().any(|p| p.matches(stage)) => {
                return Err(Miss::Stage(stage.to_owned()));
            }
            _ => {}
        }
        let excluded = stage.and_then(|s| self.exclude_stages.iter().find(|p| p.matches(s)));
        match (stage, excluded) {
            (Some(stage), Some(pattern)) => {
                Err(Miss::ExcludedStage(stage.to_owned(), pattern.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// The rules of one event type, indexed by project.
#[derive(Debug, Default)]
struct KindIndex {
    by_project: HashMap<String, Vec<usize>>,
    any_project: Vec<usize>,
}

/// All rules, in file order, with an index for fast matching.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    index: HashMap<EventKind, KindIndex>,
}

impl RuleSet {
    /// Indexes the rules; their order is the order they fire in.
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut index: HashMap<EventKind, KindIndex> = HashMap::new();
        for (position, rule) in rules.iter().enumerate() {
            let kinds = rule
                .events
                .clone()
                .unwrap_or_else(|| EventKind::ALL.to_vec());
            for kind in kinds {
                let entry = index.entry(kind).or_default();
                match &rule.projects {
                    Some(projects) => {
                        for project in projects {
                            let list = entry.by_project.entry(project.clone()).or_default();
                            if list.last() != Some(&position) {
                                list.push(position);
                            }
                        }
                    }
                    None => entry.any_project.push(position),
                }
            }
        }
        RuleSet { rules, index }
    }

    /// Every rule, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules that fire for `event`, in file order, up to and including the first
    /// matching rule with `stop = true`; `previous` is the stage the event moved the task
    /// from, when known.
    pub fn matching(&self, event: &Event, previous: Option<&str>) -> Vec<&Rule> {
        let mut fired = Vec::new();
        for position in self.candidates(event) {
            let rule = &self.rules[position];
            if rule.check(event, previous).is_ok() {
                fired.push(rule);
                if rule.stop {
                    break;
                }
            }
        }
        fired
    }

    /// For every rule in file order: whether it fires for `event`, or why not.
    pub fn explain(&self, event: &Event, previous: Option<&str>) -> Vec<(&Rule, Result<(), Miss>)> {
        let mut stopped_by: Option<&str> = None;
        let mut verdicts = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let verdict = match stopped_by {
                Some(name) => Err(Miss::Stopped(name.to_owned())),
                None => rule.check(event, previous),
            };
            if verdict.is_ok() && rule.stop {
                stopped_by = Some(&rule.name);
            }
            verdicts.push((rule, verdict));
        }
        verdicts
    }

    /// Candidate rule positions for the event's type and project, merged in file order.
    fn candidates(&self, event: &Event) -> Vec<usize> {
        let Some(entry) = self.index.get(&event.kind) else {
            return Vec::new();
        };
        let specific = entry
            .by_project
            .get(&event.project_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        merge_sorted(specific, &entry.any_project)
    }
}

fn merge_sorted(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            merged.push(a[i]);
            i += 1;
        } else {
            merged.push(b[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&a[i..]);
    merged.extend_from_slice(&b[j..]);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::Value;

    fn event(kind: EventKind, project: &str, stage: Option<&str>) -> Event {
        Event {
            kind,
            id: "e".into(),
            timestamp: Value::Null,
            time: Utc::now(),
            org_id: "o".into(),
            project_id: project.into(),
            task_id: "t".into(),
            task_name: None,
            stage: stage.map(str::to_owned),
            updated_by: None,
        }
    }

    fn rule(name: &str) -> Rule {
        Rule {
            name: name.into(),
            events: None,
            projects: None,
            exclude_projects: Vec::new(),
            stages: None,
            exclude_stages: Vec::new(),
            from_stages: None,
            to: vec!["console".into()],
            template: TemplateChoice::Default,
            stop: false,
            group: None,
        }
    }

    fn names(rules: Vec<&Rule>) -> Vec<&str> {
        rules.into_iter().map(|rule| rule.name.as_str()).collect()
    }

    #[test]
    fn wildcards_match_whole_names() {
        let cases = [
            ("Review_*", "Review_1", true),
            ("Review_*", "Failed_Review_1", false),
            ("*Review_?", "Failed_Review_2", true),
            ("Review_?", "Review_10", false),
            ("*", "", true),
            ("Label", "label", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ];

        for (pattern, text, expected) in cases {
            assert_eq!(
                Pattern::new(pattern).matches(text),
                expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn every_matching_rule_fires_in_file_order() {
        let mut review = rule("review");
        review.stages = Some(vec![Pattern::new("Review_*")]);
        let mut chest = rule("chest");
        chest.projects = Some(vec!["p1".into()]);
        let rules = RuleSet::new(vec![rule("all"), review, chest]);

        let fired = rules.matching(
            &event(EventKind::TaskEnteredStage, "p1", Some("Review_1")),
            None,
        );

        assert_eq!(names(fired), ["all", "review", "chest"]);
    }

    #[test]
    fn stop_ends_the_evaluation() {
        let mut first = rule("first");
        first.stop = true;
        let rules = RuleSet::new(vec![first, rule("second")]);

        let fired = rules.matching(&event(EventKind::TaskCreated, "p", None), None);

        assert_eq!(names(fired), ["first"]);
    }

    #[test]
    fn exclusions_remove_stages_and_projects() {
        let mut not_output = rule("not-output");
        not_output.exclude_stages = vec![Pattern::new("Output")];
        not_output.exclude_projects = vec!["secret".into()];
        let rules = RuleSet::new(vec![not_output]);

        let label = event(EventKind::TaskEnteredStage, "p", Some("Label"));
        let output = event(EventKind::TaskEnteredStage, "p", Some("Output"));
        let secret = event(EventKind::TaskEnteredStage, "secret", Some("Label"));
        let created = event(EventKind::TaskCreated, "p", None);

        assert_eq!(names(rules.matching(&label, None)), ["not-output"]);
        assert!(rules.matching(&output, None).is_empty());
        assert!(rules.matching(&secret, None).is_empty());
        assert_eq!(names(rules.matching(&created, None)), ["not-output"]);
    }

    #[test]
    fn stage_rules_never_match_events_without_a_stage() {
        let mut review = rule("review");
        review.stages = Some(vec![Pattern::new("*")]);
        let rules = RuleSet::new(vec![review]);

        assert!(rules
            .matching(&event(EventKind::TaskDeleted, "p", None), None)
            .is_empty());
    }

    #[test]
    fn explain_names_the_failed_condition_and_the_stopper() {
        let mut created = rule("created");
        created.events = Some(vec![EventKind::TaskCreated]);
        let mut stopper = rule("stopper");
        stopper.stop = true;
        let rules = RuleSet::new(vec![created, stopper, rule("after")]);

        let verdicts = rules.explain(&event(EventKind::TaskDeleted, "p", None), None);

        let texts: Vec<String> = verdicts
            .iter()
            .map(|(rule, v)| match v {
                Ok(()) => format!("{}: matched", rule.name),
                Err(miss) => format!("{}: {miss}", rule.name),
            })
            .collect();
        assert_eq!(
            texts,
            [
                "created: event type `TASK_DELETED` is not in `events`",
                "stopper: matched",
                "after: rule `stopper` matched first and has `stop = true`",
            ]
        );
    }

    #[test]
    fn the_index_keeps_file_order_across_specific_and_general_rules() {
        let mut specific = rule("specific");
        specific.projects = Some(vec!["p".into(), "q".into()]);
        let mut created_only = rule("created-only");
        created_only.events = Some(vec![EventKind::TaskCreated]);
        let rules = RuleSet::new(vec![rule("general"), specific, created_only, rule("last")]);

        let fired = rules.matching(&event(EventKind::TaskCreated, "q", None), None);
        let other = rules.matching(&event(EventKind::TaskDeleted, "z", None), None);

        assert_eq!(
            names(fired),
            ["general", "specific", "created-only", "last"]
        );
        assert_eq!(names(other), ["general", "last"]);
    }

    #[test]
    fn from_stages_matches_only_moves_from_those_stages() {
        let mut rejected = rule("rejected");
        rejected.stages = Some(vec![Pattern::new("Label")]);
        rejected.from_stages = Some(vec![Pattern::new("Review_*")]);
        let rules = RuleSet::new(vec![rejected]);
        let label = event(EventKind::TaskEnteredStage, "p", Some("Label"));

        let verdict = |previous| rules.explain(&label, previous).remove(0).1;

        assert_eq!(verdict(Some("Review_1")), Ok(()));
        assert_eq!(
            verdict(Some("Input")).unwrap_err().to_string(),
            "move `Input` -> `Label`: `Input` matches nothing in `from_stages`"
        );
        assert_eq!(verdict(None), Err(Miss::NoPreviousStage));
    }
}
