//! Where watcher threads leave changes for the driver: the latest one per directory.
//!
//! A change carries a whole snapshot. While the driver is busy (a slow `--validate`,
//! a webhook retrying), a directory may change many times; only its newest content
//! matters, so each directory has one slot and a newer change replaces the older one.
//! Memory is bounded by the number of directories, not by the number of changes.

use std::sync::{Mutex, PoisonError};

use rekindle::watch::Change;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Mailbox {
    /// In arrival order of each directory's first waiting change.
    slots: Mutex<Vec<Change>>,
    arrived: Notify,
}

impl Mailbox {
    /// Called on a watcher thread.
    pub fn put(&self, change: Change) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.iter_mut().find(|c| c.dir == change.dir) {
            Some(slot) => *slot = change,
            None => slots.push(change),
        }
        drop(slots);
        // Stores a permit when nobody waits, so a change put just before `wait` is not
        // missed.
        self.arrived.notify_one();
    }

    /// Everything waiting, oldest directory first.
    pub fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.slots.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Resolves when something was put since the last `take` (or spuriously: callers
    /// `take` and handle an empty result).
    pub async fn wait(&self) {
        self.arrived.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    use rekindle::Snapshot;

    fn mk_change(dir: &str, value: &str) -> Change {
        Change {
            dir: PathBuf::from(dir),
            snapshot: Arc::new(Snapshot::from_entries([("k", value)])),
            previous: None,
        }
    }

    #[test]
    fn the_newest_change_per_directory_wins() {
        let mailbox = Mailbox::default();
        for n in 0..1000 {
            mailbox.put(mk_change("/a", &n.to_string()));
        }
        mailbox.put(mk_change("/b", "x"));
        mailbox.put(mk_change("/a", "last"));
        let taken = mailbox.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].dir, PathBuf::from("/a"));
        assert_eq!(taken[0].snapshot.get("k"), Some(b"last".as_slice()));
        assert!(mailbox.take().is_empty());
    }

    #[tokio::test]
    async fn a_change_put_before_waiting_wakes_the_waiter() {
        let mailbox = Mailbox::default();
        mailbox.put(mk_change("/a", "1"));
        tokio::time::timeout(std::time::Duration::from_secs(5), mailbox.wait())
            .await
            .expect("woken by the permit");
    }
}
