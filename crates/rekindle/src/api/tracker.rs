//! From the watcher's list/watch events to what changed for the config: a pure state
//! machine, so the rules are unit-tested without a cluster.
//!
//! The watcher re-lists after every reconnect (and after 410 Gone), so the same object
//! comes back again and again. Only a new digest is a change; an object missing from a
//! list it was in before was deleted while the watch was down.

use std::sync::Arc;

use crate::digest::Digest;
use crate::snapshot::Snapshot;

/// One watcher event, with the object already turned into its snapshot.
#[derive(Debug)]
pub(crate) enum Seen {
    /// A list begins.
    ListStart,
    /// The object is in the list.
    Listed(Snapshot),
    /// The list is complete.
    ListDone,
    /// The object was created or modified.
    Applied(Snapshot),
    /// The object was deleted.
    Deleted,
}

/// What the tracker reports for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reported {
    /// New content (the first seen, or a new digest, or the object created again).
    Changed(Arc<Snapshot>),
    /// Not there at the first list (or at a later one, never having been seen).
    Missing,
    /// Gone, after having been seen.
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing listed yet.
    Unknown,
    Present(Digest),
    Absent,
}

/// Turns [`Seen`] events into [`Reported`] ones: each content once, each disappearance once.
#[derive(Debug)]
pub(crate) struct Tracker {
    state: State,
    /// During a list: whether the object was in it, and as what.
    listing: Option<Option<Snapshot>>,
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        Tracker {
            state: State::Unknown,
            listing: None,
        }
    }

    pub(crate) fn on(&mut self, seen: Seen) -> Option<Reported> {
        match seen {
            Seen::ListStart => {
                self.listing = Some(None);
                None
            }
            Seen::Listed(snapshot) => {
                self.listing = Some(Some(snapshot));
                None
            }
            Seen::ListDone => match self.listing.take().flatten() {
                Some(snapshot) => self.present(snapshot),
                None => self.absent(),
            },
            Seen::Applied(snapshot) => self.present(snapshot),
            Seen::Deleted => self.absent(),
        }
    }

    fn present(&mut self, snapshot: Snapshot) -> Option<Reported> {
        let digest = *snapshot.digest();
        if self.state == State::Present(digest) {
            return None;
        }
        self.state = State::Present(digest);
        Some(Reported::Changed(Arc::new(snapshot)))
    }

    fn absent(&mut self) -> Option<Reported> {
        let was = std::mem::replace(&mut self.state, State::Absent);
        match was {
            State::Present(_) => Some(Reported::Deleted),
            State::Unknown => Some(Reported::Missing),
            State::Absent => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_snapshot(value: &str) -> Snapshot {
        Snapshot::from_entries([("app.conf", value)])
    }

    fn mk_list(tracker: &mut Tracker, object: Option<&str>) -> Option<Reported> {
        assert_eq!(tracker.on(Seen::ListStart), None);
        if let Some(value) = object {
            assert_eq!(tracker.on(Seen::Listed(mk_snapshot(value))), None);
        }
        tracker.on(Seen::ListDone)
    }

    fn changed(value: &str) -> Option<Reported> {
        Some(Reported::Changed(Arc::new(mk_snapshot(value))))
    }

    #[test]
    fn the_first_list_reports_the_content() {
        let mut tracker = Tracker::new();
        assert_eq!(mk_list(&mut tracker, Some("a")), changed("a"));
    }

    #[test]
    fn a_relist_of_the_same_content_is_not_a_change() {
        let mut tracker = Tracker::new();
        mk_list(&mut tracker, Some("a"));
        assert_eq!(mk_list(&mut tracker, Some("a")), None);
        assert_eq!(tracker.on(Seen::Applied(mk_snapshot("a"))), None);
    }

    #[test]
    fn each_new_digest_is_reported_once() {
        let mut tracker = Tracker::new();
        mk_list(&mut tracker, Some("a"));
        assert_eq!(tracker.on(Seen::Applied(mk_snapshot("b"))), changed("b"));
        assert_eq!(tracker.on(Seen::Applied(mk_snapshot("b"))), None);
        // A change made while the watch was down shows up in the relist.
        assert_eq!(mk_list(&mut tracker, Some("c")), changed("c"));
    }

    #[test]
    fn missing_at_start_then_created() {
        let mut tracker = Tracker::new();
        assert_eq!(mk_list(&mut tracker, None), Some(Reported::Missing));
        assert_eq!(mk_list(&mut tracker, None), None);
        assert_eq!(tracker.on(Seen::Applied(mk_snapshot("a"))), changed("a"));
    }

    #[test]
    fn deleted_once_and_recreated_with_the_same_content() {
        let mut tracker = Tracker::new();
        mk_list(&mut tracker, Some("a"));
        assert_eq!(tracker.on(Seen::Deleted), Some(Reported::Deleted));
        assert_eq!(tracker.on(Seen::Deleted), None);
        assert_eq!(mk_list(&mut tracker, None), None);
        // Created again: reported, even with the content last seen, so that a consumer
        // that showed the deletion knows the object is back.
        assert_eq!(tracker.on(Seen::Applied(mk_snapshot("a"))), changed("a"));
    }

    #[test]
    fn a_deletion_missed_during_a_disconnect_is_seen_at_the_relist() {
        let mut tracker = Tracker::new();
        mk_list(&mut tracker, Some("a"));
        assert_eq!(mk_list(&mut tracker, None), Some(Reported::Deleted));
    }
}
