//! `tasks`: what the relay remembers of each task, read from its store.
//!
//! Like the outbox commands it opens the store directly, so it works while the relay runs
//! and needs none of its secrets.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::outbox::{now_ms, with_outbox};
use crate::cli::TasksArgs;
use crate::config::Config;
use crate::render::Markup;
use crate::rules::Pattern;
use crate::tasks::{self, human, since, Filter, Task};

/// Prints a table of remembered tasks that are not deleted, longest in their stage first.
pub fn run(config: &Path, args: &TasksArgs) -> ExitCode {
    let projects = match Config::project_names(config) {
        Ok(projects) => projects,
        Err(err) => {
            super::report(&err);
            return ExitCode::from(2);
        }
    };
    let filter = Filter {
        project: args.project.as_deref().map(|p| project_id(&projects, p)),
        stage: args.stage.as_deref().map(Pattern::new),
    };
    with_outbox(config, |outbox| {
        let found = tasks::list(outbox, &filter)?;
        let now = now_ms();
        let header = format!(
            "{:<32}  {:<20}  {:>12}  PROJECT",
            "TASK", "STAGE", "IN STAGE"
        );
        let rows = found.iter().map(|task| format_row(task, &projects, now));
        // A reader that stops early (`| head`) is not an error, and must not be a panic.
        let mut out = std::io::stdout().lock();
        let _ = std::iter::once(header)
            .chain(rows)
            .try_for_each(|line| writeln!(out, "{line}"));
        Ok(())
    })
}

/// The id of a project given by friendly name or id.
fn project_id(projects: &HashMap<String, String>, given: &str) -> String {
    let by_name = projects.iter().find(|(_, name)| *name == given);
    by_name.map_or_else(|| given.to_owned(), |(id, _)| id.clone())
}

/// The most characters of a name, stage or project shown in one cell.
const MAX_CELL_CHARS: usize = 60;

fn format_row(task: &Task, projects: &HashMap<String, String>, now: i64) -> String {
    let waited = task.entered_at.map(|at| human(since(at, now)));
    format!(
        "{:<32}  {:<20}  {:>12}  {}",
        cell(task.name.as_deref().unwrap_or(&task.task_id)),
        cell(task.stage.as_deref().unwrap_or("-")),
        waited.as_deref().unwrap_or("-"),
        cell(projects.get(&task.project_id).unwrap_or(&task.project_id)),
    )
}

/// `text` from a webhook as one terminal cell: line breaks and other control characters
/// (escape sequences included) become spaces, so a task name cannot forge a row or drive
/// the terminal, and a long name is cut to [`MAX_CELL_CHARS`] with an ellipsis.
fn cell(text: &str) -> String {
    let text = Markup::Plain.escape(text);
    if text.chars().count() <= MAX_CELL_CHARS {
        return text;
    }
    let kept: String = text.chars().take(MAX_CELL_CHARS - 1).collect();
    format!("{kept}…")
}
