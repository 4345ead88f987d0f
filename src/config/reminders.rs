//! `[[reminders]]` checked: names, waits, projects, stages, destinations and templates.

use std::collections::{BTreeMap, HashSet};

use toml::Spanned;

use super::raw::{RawConfig, RawReminder, Text};
use super::templates::TemplateLoader;
use super::validate::{duration, patterns, Checker, ProjectResolver};
use super::Target;
use crate::reminders::Reminder;
use crate::rules::TemplateChoice;

/// The valid reminders with their position in the file; every mistake is a problem.
pub(super) fn check(
    checker: &mut Checker<'_>,
    raw: &RawConfig,
    targets: &BTreeMap<String, Target>,
    loader: &mut TemplateLoader,
) -> Vec<(usize, Reminder)> {
    let resolver = ProjectResolver::new(&raw.projects);
    let mut names = HashSet::new();
    let mut reminders = Vec::new();
    for (index, spanned) in raw.reminders.iter().enumerate() {
        let reminder = spanned.get_ref();
        let key = format!("reminders[{index}]");
        if !names.insert(reminder.name.get_ref().clone()) {
            let message = format!("reminder name `{}` is used twice", reminder.name.get_ref());
            checker.problem(reminder.name.span(), format!("{key}.name"), message);
        }
        let checked = one(checker, reminder, &key, &resolver, targets, loader);
        reminders.extend(checked.map(|r| (index, r)));
    }
    reminders
}

fn one(
    checker: &mut Checker<'_>,
    raw: &RawReminder,
    key: &str,
    resolver: &ProjectResolver,
    targets: &BTreeMap<String, Target>,
    loader: &mut TemplateLoader,
) -> Option<Reminder> {
    let problems_before = checker.problems.len();
    let after = duration(checker, &raw.after, &format!("{key}.after"));
    let repeat = match &raw.repeat {
        Some(value) => Some(duration(checker, value, &format!("{key}.repeat"))?),
        None => None,
    };
    let projects = raw
        .projects
        .as_ref()
        .map(|list| resolver.resolve_all(checker, list, &format!("{key}.projects")));
    let stages = raw.stages.as_ref().map(|list| {
        if list.get_ref().is_empty() {
            let message = "list at least one stage pattern, or leave `stages` out".into();
            checker.problem(list.span(), format!("{key}.stages"), message);
        }
        patterns(checker, list.get_ref(), &format!("{key}.stages"))
    });
    let to = destinations(checker, &raw.to, key, "a reminder", targets);
    let owner = format!("reminder `{}`", raw.name.get_ref());
    let choice = (owner.as_str(), &raw.template, &raw.text);
    let template = loader.choose(&checker.source, choice, key, &mut checker.problems);

    if checker.problems.len() > problems_before {
        return None;
    }
    Some(Reminder {
        name: raw.name.get_ref().clone(),
        projects,
        stages,
        after: after?,
        repeat,
        to,
        template: template.unwrap_or(TemplateChoice::Default),
    })
}

/// The destinations of `to`, each of which must be defined; `what` (such as "a
/// reminder") names the entry in the error when there are none.
pub(super) fn destinations(
    checker: &mut Checker<'_>,
    to: &Spanned<Vec<Text>>,
    key: &str,
    what: &str,
    targets: &BTreeMap<String, Target>,
) -> Vec<String> {
    if to.get_ref().is_empty() {
        let message = format!("{what} needs at least one destination");
        checker.problem(to.span(), format!("{key}.to"), message);
    }
    let mut names = Vec::new();
    for (index, name) in to.get_ref().iter().enumerate() {
        if targets.contains_key(name.get_ref()) {
            names.push(name.get_ref().clone());
        } else {
            let defined: Vec<&str> = targets.keys().map(String::as_str).collect();
            let message = format!(
                "unknown destination `{}` (defined: {})",
                name.get_ref(),
                defined.join(", ")
            );
            checker.problem(name.span(), format!("{key}.to[{index}]"), message);
        }
    }
    names
}
