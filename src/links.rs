//! Links into the RedBrick app, built only from the configured base URL and ids.
//!
//! Every id is percent-encoded as a path segment (or query value), so an id such as
//! `../../evil` or `x?y#z` cannot make a link point anywhere but the configured app.
//! How a link is shown (a Slack `<url|text>`, a Teams button) is decided elsewhere.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The longest link the relay puts in a message. Real ones are under 200 characters
/// (UUIDs and stage names of at most 20); only crafted ids or stage names make longer
/// ones, which would crowd out the message's text or push a card over Teams' size limit.
pub const MAX_LINK_CHARS: usize = 2_000;

/// Builds project and task links under one app base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    base: String,
}

impl Links {
    /// `app_url` such as `https://app.redbrickai.com`; a trailing slash is ignored.
    pub fn new(app_url: &str) -> Links {
        Links {
            base: app_url.trim_end_matches('/').to_owned(),
        }
    }

    /// `<base>/<org>/projects/<project>`.
    pub fn project(&self, org: &str, project: &str) -> String {
        format!("{}/{}/projects/{}", self.base, encode(org), encode(project))
    }

    /// `<base>/<org>/projects/<project>/tool/<stage>?taskid=<task>`.
    pub fn task(&self, org: &str, project: &str, stage: &str, task: &str) -> String {
        format!(
            "{}/tool/{}?taskid={}",
            self.project(org, project),
            encode(stage),
            encode(task)
        )
    }
}

fn encode(text: &str) -> String {
    // `.` and `..` alone would still be read as path steps.
    match text {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => utf8_percent_encode(text, SEGMENT).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_documented_links() {
        let links = Links::new("https://app.redbrickai.com/");

        assert_eq!(
            links.task("org", "proj", "Review_1", "task"),
            "https://app.redbrickai.com/org/projects/proj/tool/Review_1?taskid=task"
        );
    }

    #[test]
    fn crafted_ids_cannot_leave_the_app() {
        let links = Links::new("https://app.redbrickai.com");

        let url = links.task("..", "../x", "a/b?c", "t#&x=1 @evil.example");

        assert_eq!(
            url,
            "https://app.redbrickai.com/%2E%2E/projects/..%2Fx/tool/a%2Fb%3Fc\
             ?taskid=t%23%26x%3D1%20%40evil.example"
        );
    }
}
