//! `[people]` checked: e-mail keys, Slack user ids, Teams users and display names.
//!
//! A mention that names the wrong person, or a Teams card whose mention entity does not
//! match its text (which the flow drops without a word), is worse than no mention, so
//! every value is checked here, before the relay starts.

use std::collections::{BTreeMap, HashMap, HashSet};

use toml::Spanned;

use super::raw::{RawPerson, Text};
use super::validate::{looks_like_id, Checker};
use crate::people::{People, Person};

/// The directory of the people that are valid; every mistake is a problem.
pub(super) fn check(
    checker: &mut Checker<'_>,
    raw: &BTreeMap<String, Spanned<RawPerson>>,
) -> People {
    let mut teams_labels = HashSet::new();
    let mut emails: HashMap<String, &str> = HashMap::new();
    let mut people = Vec::new();
    for (email, spanned) in raw {
        let key = format!("people.{email:?}");
        if !email.contains('@') {
            let message =
                format!("`{email}` is not an e-mail address: RedBrick names people by e-mail");
            checker.problem(spanned.span(), key.clone(), message);
        }
        // E-mails are matched without regard to case or surrounding spaces, so two keys
        // that differ only in those would leave it to chance which person is mentioned.
        if let Some(other) = emails.insert(email.trim().to_lowercase(), email) {
            let message = format!("`{email}` and `{other}` are the same e-mail; list it once");
            checker.problem(spanned.span(), key.clone(), message);
        }
        let person = person(checker, spanned.get_ref(), &key);
        if let (Some(teams), Some(raw_teams)) = (&person.teams, &spanned.get_ref().teams) {
            let label = person.name.clone().unwrap_or_else(|| teams.clone());
            if !teams_labels.insert(label.clone()) {
                let message = format!(
                    "another person is shown as `{label}` in Teams; give each a distinct `name`"
                );
                checker.problem(raw_teams.span(), format!("{key}.teams"), message);
            }
        }
        people.push((email.clone(), person));
    }
    People::new(people)
}

fn person(checker: &mut Checker<'_>, raw: &RawPerson, key: &str) -> Person {
    let mut field = |value: &Option<Text>, name: &str, valid: fn(&str) -> bool, hint: &str| {
        let value = value.as_ref()?;
        if valid(value.get_ref()) {
            return Some(value.get_ref().clone());
        }
        let message = format!("`{}` {hint}", value.get_ref());
        checker.problem(value.span(), format!("{key}.{name}"), message);
        None
    };
    Person {
        slack: field(
            &raw.slack,
            "slack",
            is_slack_user,
            "is not a Slack user id such as `U0123ABC` (Slack: the person's profile, \
             More, Copy member ID)",
        ),
        teams: field(
            &raw.teams,
            "teams",
            is_teams_user,
            "is not a Teams user: give the user principal name (`name@org.example`) or the \
             Entra object id",
        ),
        name: field(
            &raw.name,
            "name",
            is_display_name,
            "cannot be shown in a mention: use a non-empty name without `<`, `>` or line breaks",
        ),
    }
}

fn is_slack_user(id: &str) -> bool {
    id.len() >= 3
        && id.starts_with(['U', 'W'])
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_teams_user(id: &str) -> bool {
    let upn = id.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty() && domain.contains('.') && !id.contains(char::is_whitespace)
    });
    upn || looks_like_id(id)
}

fn is_display_name(name: &str) -> bool {
    !name.trim().is_empty() && !name.contains(['<', '>']) && !name.contains(char::is_control)
}
