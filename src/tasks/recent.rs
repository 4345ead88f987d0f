//! The tasks this relay wrote last, kept in memory so that neither routing a webhook nor
//! recording it seldom has to read the store.
//!
//! Only the outbox's writer thread fills it, once a commit is durable and in commit order,
//! so every task held here is exactly what the store holds; a task missing here is read
//! from the store. The writer also notes, apart, each task a commit still under way has
//! written, for the later jobs of that same commit: a commit that fails leaves those
//! notes behind, and the next commit, with a new number, ignores them. Nothing else in
//! this process writes the tasks table, and the operator commands only read it. It holds
//! at most [`CAPACITY`] tasks and forgets one at random to make room. How an event
//! changes a task is `observe`'s business, not this cache's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Task;

/// Tasks held at most: a few megabytes, and more than the tasks a team moves in a day.
pub const CAPACITY: usize = 4096;

/// A shared handle on the cache; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    tasks: Arc<Mutex<Held>>,
}

/// What the cache holds.
#[derive(Debug, Default)]
struct Held {
    /// Tasks as the last durable commit that wrote each left them.
    committed: HashMap<String, Task>,
    /// The writer's commit that `written` belongs to.
    batch: u64,
    /// Tasks written by that commit so far, not yet durable.
    written: HashMap<String, Task>,
}

impl Recent {
    /// An empty cache.
    pub fn new() -> Recent {
        Recent::default()
    }

    /// The tasks among `ids` that the cache holds, by id, and the ids it does not hold.
    pub fn lookup<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> (HashMap<String, Task>, Vec<String>) {
        let held = self.lock();
        let (mut found, mut missing) = (HashMap::new(), Vec::new());
        for id in ids {
            match held.committed.get(id) {
                Some(task) => {
                    found.insert(id.to_owned(), task.clone());
                }
                None if !missing.iter().any(|m| m == id) => missing.push(id.to_owned()),
                None => {}
            }
        }
        (found, missing)
    }

    /// Holds `written`, as the commit that just became durable left them. Called by the
    /// writer thread only, so that later commits always overwrite earlier ones.
    pub fn learn(&self, written: Vec<Task>) {
        let tasks = &mut self.lock().committed;
        for task in written {
            if tasks.len() >= CAPACITY && !tasks.contains_key(&task.task_id) {
                let victim = tasks.keys().next().cloned();
                victim.map(|id| tasks.remove(&id));
            }
            tasks.insert(task.task_id.clone(), task);
        }
    }

    /// Task `id` as the writer's commit number `batch` sees it, if the cache can tell: as
    /// an earlier job of that commit wrote it, else as last committed. `None`: read the
    /// store, inside that commit.
    pub fn as_of(&self, batch: u64, id: &str) -> Option<Task> {
        let held = self.lock();
        let written = (held.batch == batch)
            .then(|| held.written.get(id))
            .flatten();
        written.or_else(|| held.committed.get(id)).cloned()
    }

    /// Notes that the writer's commit number `batch`, still under way, wrote `task`.
    pub fn wrote(&self, batch: u64, task: &Task) {
        let mut held = self.lock();
        if held.batch != batch {
            held.batch = batch;
            held.written.clear();
        }
        held.written.insert(task.task_id.clone(), task.clone());
    }

    /// Forgets every task, as tasks are deleted from the store.
    pub fn clear(&self) {
        let mut held = self.lock();
        held.committed.clear();
        held.written.clear();
    }

    /// How many committed tasks it holds.
    pub fn len(&self) -> usize {
        self.lock().committed.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A panic while locked cannot leave the map inconsistent: each step is one insert or
    /// removal.
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, stage: &str) -> Task {
        Task {
            task_id: id.to_owned(),
            org_id: "org".to_owned(),
            project_id: "p".to_owned(),
            name: None,
            stage: Some(stage.to_owned()),
            previous_stage: None,
            entered_at: Some(1),
            moved_by: None,
            deleted: false,
            last_event_at: 1,
            heard_at: 1,
        }
    }

    #[test]
    fn lookup_splits_held_from_missing_and_names_each_missing_id_once() {
        let recent = Recent::new();
        recent.learn(vec![task("a", "Label")]);

        let (found, missing) = recent.lookup(["a", "b", "a", "b"]);

        assert_eq!(found.len(), 1);
        assert_eq!(found["a"].stage.as_deref(), Some("Label"));
        assert_eq!(missing, vec!["b".to_owned()]);
    }

    #[test]
    fn a_later_commit_replaces_an_earlier_one() {
        let recent = Recent::new();
        recent.learn(vec![task("a", "Label")]);
        recent.learn(vec![task("a", "Review_1")]);

        let (found, _) = recent.lookup(["a"]);

        assert_eq!(found["a"].stage.as_deref(), Some("Review_1"));
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let recent = Recent::new();
        let many = (0..CAPACITY + 10).map(|i| task(&format!("t{i}"), "Label"));
        recent.learn(many.collect());

        assert_eq!(recent.len(), CAPACITY);
        let (found, _) = recent.lookup([format!("t{}", CAPACITY + 9).as_str()]);
        assert_eq!(found.len(), 1, "the task learnt last is held");
    }

    #[test]
    fn a_commit_sees_what_its_earlier_jobs_wrote_and_the_next_commit_does_not() {
        let recent = Recent::new();
        recent.learn(vec![task("a", "Label")]);

        recent.wrote(7, &task("a", "Review_1"));
        recent.wrote(7, &task("b", "Label"));
        let same = (recent.as_of(7, "a"), recent.as_of(7, "b"));
        // Commit 7 failed: nothing was learnt, and commit 8 sees the store's own state.
        let next = (recent.as_of(8, "a"), recent.as_of(8, "b"));

        let stage = |t: Option<Task>| t.and_then(|t| t.stage);
        assert_eq!(
            (stage(same.0), stage(same.1)),
            (Some("Review_1".to_owned()), Some("Label".to_owned()))
        );
        assert_eq!((stage(next.0), next.1), (Some("Label".to_owned()), None));
        let (found, _) = recent.lookup(["a", "b"]);
        assert_eq!(found.len(), 1, "routing sees only what is committed");
    }

    #[test]
    fn clear_forgets_everything() {
        let recent = Recent::new();
        recent.learn(vec![task("a", "Label")]);
        recent.wrote(1, &task("b", "Label"));
        recent.clear();

        assert!(recent.is_empty());
        assert_eq!(recent.as_of(1, "b"), None);
        assert_eq!(recent.lookup(["a"]).1, vec!["a".to_owned()]);
    }
}
