//! What a digest says: per project and stage, the tasks waiting and what changed.
//!
//! Built from the live tasks of the task memory and the changes counted since the last
//! digest. Lists are cut at [`HEAD`] so that a message stays well inside what Slack and
//! Teams accept; the rest is counted in `more_projects` and `more_stages`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::store::Counted;
use crate::links::{Links, MAX_LINK_CHARS};
use crate::tasks::{human, since, Task};

/// How many projects, and stages per project, a digest lists.
pub const HEAD: usize = 10;

/// What a digest knows, gathered from the store.
pub struct Facts<'a> {
    /// Live tasks of the projects the digest covers.
    pub tasks: &'a [Task],
    /// Changes since the last digest, of those projects.
    pub changes: &'a [Counted],
    /// When counting started (unix ms).
    pub counted_from: i64,
    /// Now (unix ms).
    pub now: i64,
}

#[derive(Default)]
struct Stage<'a> {
    waiting: usize,
    oldest: Option<&'a Task>,
    entered: i64,
    deleted: i64,
}

#[derive(Default)]
struct Project<'a> {
    org_id: String,
    stages: BTreeMap<String, Stage<'a>>,
    created: i64,
    moved: i64,
    deleted: i64,
}

/// The template context of digest `name`, without `destination`, and whether it has
/// nothing to say (no task waiting, nothing changed).
pub fn context(
    name: &str,
    facts: &Facts<'_>,
    project_name: &dyn Fn(&str) -> Option<String>,
    links: &Links,
) -> (Map<String, Value>, bool) {
    let projects = gather(facts);
    let empty = projects.is_empty();
    let mut listed: Vec<Value> = projects
        .iter()
        .map(|(id, p)| project(id, p, project_name(id), links, facts.now))
        .collect();
    let more_projects = listed.len().saturating_sub(HEAD);
    listed.truncate(HEAD);
    let total = |key: &str| -> i64 { listed_total(&projects, key) };
    let context = json!({
        "digest": name,
        "rule": name,
        "since": human(since(facts.counted_from, facts.now)),
        "waiting": total("waiting"),
        "created": total("created"),
        "moved": total("moved"),
        "deleted": total("deleted"),
        "projects": listed,
        "more_projects": more_projects,
        "destination": Value::Null,
    });
    match context {
        Value::Object(map) => (map, empty),
        _ => unreachable!("json! of an object literal is an object"),
    }
}

fn listed_total(projects: &BTreeMap<String, Project<'_>>, key: &str) -> i64 {
    projects
        .values()
        .map(|p| match key {
            "waiting" => p.stages.values().map(|s| s.waiting as i64).sum(),
            "created" => p.created,
            "moved" => p.moved,
            _ => p.deleted,
        })
        .sum()
}

fn gather<'a>(facts: &Facts<'a>) -> BTreeMap<String, Project<'a>> {
    let mut projects: BTreeMap<String, Project<'a>> = BTreeMap::new();
    for task in facts.tasks {
        let Some(stage) = task.stage.clone() else {
            continue;
        };
        let project = projects.entry(task.project_id.clone()).or_default();
        project.org_id.clone_from(&task.org_id);
        let stage = project.stages.entry(stage).or_default();
        stage.waiting += 1;
        if stage.oldest.is_none_or(|o| task.entered_at < o.entered_at) {
            stage.oldest = Some(task);
        }
    }
    for change in facts.changes {
        let project = projects.entry(change.project_id.clone()).or_default();
        if project.org_id.is_empty() {
            project.org_id.clone_from(&change.org_id);
        }
        let stage = change
            .stage
            .clone()
            .map(|s| project.stages.entry(s).or_default());
        match (change.change.as_str(), stage) {
            ("created", _) => project.created += change.count,
            ("moved", Some(stage)) => stage.entered += change.count,
            ("deleted", Some(stage)) => stage.deleted += change.count,
            _ => {}
        }
        match change.change.as_str() {
            "moved" => project.moved += change.count,
            "deleted" => project.deleted += change.count,
            _ => {}
        }
    }
    projects
}

fn project(id: &str, p: &Project<'_>, name: Option<String>, links: &Links, now: i64) -> Value {
    let mut stages: Vec<Value> = p
        .stages
        .iter()
        .map(|(stage, s)| stage_value(stage, s, p, id, links, now))
        .collect();
    let more_stages = stages.len().saturating_sub(HEAD);
    stages.truncate(HEAD);
    json!({
        "project": name.unwrap_or_else(|| id.to_owned()),
        "project_id": id,
        "project_url": bounded(links.project(&p.org_id, id)),
        "waiting": p.stages.values().map(|s| s.waiting).sum::<usize>(),
        "created": p.created,
        "moved": p.moved,
        "deleted": p.deleted,
        "stages": stages,
        "more_stages": more_stages,
    })
}

fn stage_value(
    stage: &str,
    s: &Stage<'_>,
    p: &Project<'_>,
    project_id: &str,
    links: &Links,
    now: i64,
) -> Value {
    let oldest = s
        .oldest
        .map(|t| t.name.clone().unwrap_or_else(|| t.task_id.clone()));
    let oldest_url = s
        .oldest
        .and_then(|t| bounded(links.task(&p.org_id, project_id, stage, &t.task_id)));
    let oldest_age = s
        .oldest
        .and_then(|t| t.entered_at)
        .map(|at| human(since(at, now)));
    json!({
        "stage": stage,
        "waiting": s.waiting,
        "oldest": oldest,
        "oldest_url": oldest_url,
        "oldest_age": oldest_age,
        "entered": s.entered,
        "deleted": s.deleted,
    })
}

/// As for events: a link too long to send is left out, and `{{link}}` shows its label.
fn bounded(url: String) -> Option<String> {
    (url.len() <= MAX_LINK_CHARS).then_some(url)
}
