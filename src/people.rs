//! Who is who in chat: RedBrick e-mail addresses mapped to Slack and Teams identities.
//!
//! `[people]` in the config says, per e-mail, which Slack user and which Teams user that
//! person is. The `mention` template helper asks [`People::mention`] for the destination's
//! syntax; a Teams mention also needs an entry in the card's `msteams.entities`, which
//! [`People::teams_mentions`] finds again in the rendered text. Anyone not listed is shown
//! as plain, escaped text: a mention is only ever made for someone the operator named.

use std::collections::HashMap;

use crate::destination::Mention;
use crate::render::Markup;

/// One person's chat identities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// Slack user id, such as `U0123ABC`.
    pub slack: Option<String>,
    /// Teams user principal name (usually an e-mail) or Entra object id.
    pub teams: Option<String>,
    /// The name shown in the Teams mention and for destinations without an id.
    pub name: Option<String>,
}

impl Person {
    /// The text of a Teams mention: the display name, else the Teams id.
    fn teams_label(&self) -> Option<&str> {
        let teams = self.teams.as_deref()?;
        Some(self.name.as_deref().unwrap_or(teams))
    }
}

/// Everyone in `[people]`, by e-mail (compared without regard to case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    by_email: HashMap<String, Person>,
}

impl People {
    /// The directory of `people`, keyed by e-mail (as [`People::mention`] looks it up:
    /// without surrounding spaces, in lower case).
    pub fn new(people: impl IntoIterator<Item = (String, Person)>) -> People {
        let by_email = people
            .into_iter()
            .map(|(email, person)| (email.trim().to_lowercase(), person))
            .collect();
        People { by_email }
    }

    fn get(&self, email: &str) -> Option<&Person> {
        self.by_email.get(&email.trim().to_lowercase())
    }

    /// `email` as a mention in `markup`, or as escaped text for someone not listed (or
    /// listed without an identity on that platform).
    pub fn mention(&self, email: &str, markup: Markup) -> String {
        let person = self.get(email);
        match (markup, person) {
            (
                Markup::Slack,
                Some(Person {
                    slack: Some(id), ..
                }),
            ) => format!("<@{id}>"),
            (Markup::Teams, Some(person)) if person.teams.is_some() => {
                let label = person.teams_label().unwrap_or_default();
                format!("<at>{label}</at>")
            }
            (
                _,
                Some(Person {
                    name: Some(name), ..
                }),
            ) => markup.escape(name),
            _ => markup.escape(email),
        }
    }

    /// The Teams mentions that appear in `text`, each once, for the card's entities.
    pub fn teams_mentions(&self, text: &str) -> Vec<Mention> {
        let mut mentions: Vec<Mention> = self
            .by_email
            .values()
            .filter_map(|person| {
                let label = person.teams_label()?;
                let mention = Mention {
                    id: person.teams.clone()?,
                    name: label.to_owned(),
                };
                text.contains(&mention.tag()).then_some(mention)
            })
            .collect();
        // The map's order is random; the card must not change from one run to the next.
        mentions.sort_by_key(|m| text.find(&m.tag()));
        mentions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> People {
        People::new([
            (
                "Ann@Example.com".to_owned(),
                Person {
                    slack: Some("U0123ABC".into()),
                    teams: Some("ann@org.example".into()),
                    name: Some("Ann Lee".into()),
                },
            ),
            (
                "bob@example.com".to_owned(),
                Person {
                    name: Some("Bob <B>".into()),
                    ..Person::default()
                },
            ),
        ])
    }

    #[test]
    fn known_people_are_mentioned_in_each_platforms_syntax() {
        let people = people();

        assert_eq!(
            people.mention("ann@example.com", Markup::Slack),
            "<@U0123ABC>"
        );
        assert_eq!(
            people.mention("ann@example.com", Markup::Teams),
            "<at>Ann Lee</at>"
        );
        assert_eq!(people.mention("ann@example.com", Markup::Plain), "Ann Lee");
    }

    #[test]
    fn spaces_around_a_listed_e_mail_do_not_hide_the_person() {
        let people = People::new([(
            " Cy@Example.com\t".to_owned(),
            Person {
                slack: Some("U0C0C".into()),
                ..Person::default()
            },
        )]);

        assert_eq!(people.mention("cy@example.com", Markup::Slack), "<@U0C0C>");
        assert_eq!(
            people.mention(" CY@example.COM ", Markup::Slack),
            "<@U0C0C>"
        );
    }

    #[test]
    fn others_are_escaped_text() {
        let people = people();

        assert_eq!(
            people.mention("bob@example.com", Markup::Slack),
            "Bob &lt;B&gt;"
        );
        assert_eq!(
            people.mention("<!channel>@x", Markup::Slack),
            "&lt;!channel&gt;@x"
        );
        assert_eq!(people.mention("a_b@x", Markup::Teams), r"a\_b@x");
    }

    #[test]
    fn teams_mentions_are_found_in_the_text_once_each() {
        let people = people();

        let found = people.teams_mentions("<at>Ann Lee</at> and <at>Ann Lee</at>");

        assert_eq!(
            found,
            [Mention {
                id: "ann@org.example".into(),
                name: "Ann Lee".into()
            }]
        );
        assert!(people.teams_mentions("Ann Lee").is_empty());
    }
}
