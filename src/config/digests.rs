//! `[[digests]]` checked: names, times, days, zones, projects, destinations and templates.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveTime;
use chrono_tz::Tz;

use super::raw::{RawConfig, RawDigest, Text};
use super::reminders::destinations;
use super::templates::TemplateLoader;
use super::validate::{Checker, ProjectResolver};
use super::Target;
use crate::digests::{Days, Digest, Schedule};
use crate::rules::TemplateChoice;

/// The valid digests with their position in the file; every mistake is a problem.
pub(super) fn check(
    checker: &mut Checker<'_>,
    raw: &RawConfig,
    targets: &BTreeMap<String, Target>,
    loader: &mut TemplateLoader,
) -> Vec<(usize, Digest)> {
    let resolver = ProjectResolver::new(&raw.projects);
    let mut names = HashSet::new();
    let mut digests = Vec::new();
    for (index, spanned) in raw.digests.iter().enumerate() {
        let digest = spanned.get_ref();
        let key = format!("digests[{index}]");
        if !names.insert(digest.name.get_ref().clone()) {
            let message = format!("digest name `{}` is used twice", digest.name.get_ref());
            checker.problem(digest.name.span(), format!("{key}.name"), message);
        }
        let checked = one(checker, digest, &key, &resolver, targets, loader);
        digests.extend(checked.map(|d| (index, d)));
    }
    digests
}

fn one(
    checker: &mut Checker<'_>,
    raw: &RawDigest,
    key: &str,
    resolver: &ProjectResolver,
    targets: &BTreeMap<String, Target>,
    loader: &mut TemplateLoader,
) -> Option<Digest> {
    let problems_before = checker.problems.len();
    let at = time_of_day(checker, &raw.at, &format!("{key}.at"));
    let days = match &raw.days {
        Some(value) => days(checker, value, &format!("{key}.days")),
        None => Some(Days::ALL),
    };
    let zone = match &raw.timezone {
        Some(value) => zone(checker, value, &format!("{key}.timezone")),
        None => Some(Tz::UTC),
    };
    let projects = raw
        .projects
        .as_ref()
        .map(|list| resolver.resolve_all(checker, list, &format!("{key}.projects")));
    let to = destinations(checker, &raw.to, key, "a digest", targets);
    let owner = format!("digest `{}`", raw.name.get_ref());
    let choice = (owner.as_str(), &raw.template, &raw.text);
    let template = loader.choose(&checker.source, choice, key, &mut checker.problems);

    if checker.problems.len() > problems_before {
        return None;
    }
    Some(Digest {
        name: raw.name.get_ref().clone(),
        schedule: Schedule {
            at: at?,
            days: days?,
            zone: zone?,
        },
        projects,
        to,
        template: template.unwrap_or(TemplateChoice::Default),
        skip_empty: raw.skip_empty.unwrap_or(false),
    })
}

fn time_of_day(checker: &mut Checker<'_>, value: &Text, key: &str) -> Option<NaiveTime> {
    let text = value.get_ref();
    // `%H:%M` alone would also take `9:00`; two digits each keep the file unambiguous.
    let shaped = text.len() == 5 && text.as_bytes()[2] == b':';
    match NaiveTime::parse_from_str(text, "%H:%M") {
        Ok(time) if shaped => Some(time),
        _ => {
            let message = format!("`{text}` is not a time of day such as `09:00` or `17:30`");
            checker.problem(value.span(), key, message);
            None
        }
    }
}

pub(super) fn days(checker: &mut Checker<'_>, value: &Text, key: &str) -> Option<Days> {
    match Days::parse(value.get_ref()) {
        Ok(days) => Some(days),
        Err(message) => {
            checker.problem(value.span(), key, message);
            None
        }
    }
}

pub(super) fn zone(checker: &mut Checker<'_>, value: &Text, key: &str) -> Option<Tz> {
    match value.get_ref().parse::<Tz>() {
        Ok(zone) => Some(zone),
        Err(_) => {
            let message = format!(
                "unknown time zone `{}`; use an IANA name such as `Europe/Paris` or `UTC`",
                value.get_ref()
            );
            checker.problem(value.span(), key, message);
            None
        }
    }
}
