//! The bounded list of applied configs that rollback chooses from. Pure.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::reload::Versioned;

#[derive(Debug)]
pub(crate) struct History<T> {
    /// Oldest first, in the order the versions were applied.
    entries: VecDeque<Arc<Versioned<T>>>,
    limit: usize,
}

impl<T> History<T> {
    pub(crate) fn new(limit: usize) -> History<T> {
        History {
            entries: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    pub(crate) fn push(&mut self, entry: Arc<Versioned<T>>) {
        if self.entries.len() == self.limit {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub(crate) fn find(&self, version: u64) -> Option<&Arc<Versioned<T>>> {
        self.entries.iter().find(|e| e.version() == version)
    }

    /// The entry applied just before `version`.
    pub(crate) fn before(&self, version: u64) -> Option<&Arc<Versioned<T>>> {
        let position = self.entries.iter().position(|e| e.version() == version)?;
        position.checked_sub(1).and_then(|p| self.entries.get(p))
    }

    pub(crate) fn versions(&self) -> Vec<u64> {
        self.entries.iter().map(|e| e.version()).collect()
    }

    pub(crate) fn entries(&self) -> Vec<Arc<Versioned<T>>> {
        self.entries.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64) -> Arc<Versioned<&'static str>> {
        Arc::new(Versioned::new(version, None, "value"))
    }

    #[test]
    fn keeps_the_newest_up_to_the_limit() {
        let mut history = History::new(3);
        for v in 1..=5 {
            history.push(entry(v));
        }
        assert_eq!(history.versions(), [3, 4, 5]);
        assert!(history.find(2).is_none());
        assert_eq!(history.find(4).map(|e| e.version()), Some(4));
    }

    #[test]
    fn before_walks_back_in_applied_order() {
        let mut history = History::new(10);
        for v in [1, 2, 3] {
            history.push(entry(v));
        }
        assert_eq!(history.before(3).map(|e| e.version()), Some(2));
        assert_eq!(history.before(2).map(|e| e.version()), Some(1));
        assert!(history.before(1).is_none());
        assert!(history.before(9).is_none());
    }
}
