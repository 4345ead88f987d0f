//! The tasks this relay wrote last, kept in memory so that routing a webhook seldom has
//! to read the store before it can write.
//!
//! Only the outbox's writer thread fills it, once a commit is durable and in commit order,
//! so every task held here is exactly what the store holds; a task missing here is read
//! from the store. Nothing else in this process writes the tasks table, and the operator
//! commands only read it. It holds at most [`CAPACITY`] tasks and forgets one at random to
//! make room. How an event changes a task is `observe`'s business, not this cache's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Task;

/// Tasks held at most: a few megabytes, and more than the tasks a team moves in a day.
pub const CAPACITY: usize = 4096;

/// A shared handle on the cache; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    tasks: Arc<Mutex<HashMap<String, Task>>>,
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
        let tasks = self.lock();
        let (mut found, mut missing) = (HashMap::new(), Vec::new());
        for id in ids {
            match tasks.get(id) {
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
        let mut tasks = self.lock();
        for task in written {
            if tasks.len() >= CAPACITY && !tasks.contains_key(&task.task_id) {
                let victim = tasks.keys().next().cloned();
                victim.map(|id| tasks.remove(&id));
            }
            tasks.insert(task.task_id.clone(), task);
        }
    }

    /// Forgets every task, after tasks were deleted from the store.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many tasks it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A panic while locked cannot leave the map inconsistent: each step is one insert or
    /// removal.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Task>> {
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
    fn clear_forgets_everything() {
        let recent = Recent::new();
        recent.learn(vec![task("a", "Label")]);
        recent.clear();

        assert!(recent.is_empty());
        assert_eq!(recent.lookup(["a"]).1, vec!["a".to_owned()]);
    }
}
