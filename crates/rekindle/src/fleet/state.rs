//! Where one pod stands with one source: the five states of the fleet view, and the
//! one rule that turns a report and the source's current digest into a state.

use std::fmt;

use crate::digest::Digest;
use crate::report::{Result as Outcome, SourceReport};

/// Where a pod stands with a source (or, for a whole pod, with all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// It applied the current content.
    Current,
    /// Its latest outcome is about other content: the kubelet has not projected the
    /// current content yet, or it was not verified yet; or the object is gone.
    Stale,
    /// It refused the current content (validation failed); the previous content is
    /// still in force there.
    Rejected,
    /// An action on the current content failed (signal, webhook, exec, verification).
    Failed,
    /// It does not report this source (no report, or no entry for it).
    Unknown,
}

impl State {
    /// Every state, in the order tables and metrics list them.
    pub const ALL: [State; 5] = [
        State::Current,
        State::Stale,
        State::Rejected,
        State::Failed,
        State::Unknown,
    ];

    /// `current`, `stale`, `rejected`, `failed` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Current => "current",
            State::Stale => "stale",
            State::Rejected => "rejected",
            State::Failed => "failed",
            State::Unknown => "unknown",
        }
    }

    /// The state of a pod whose latest report on a source is `report`, when the pod
    /// would report `expected` had it applied the current content (`None`: that cannot
    /// be known now, e.g. the object does not exist).
    ///
    /// Only an outcome about the current content says anything about it: `applied`,
    /// `rejected` or `failed` with the expected digest is `current`, `rejected` or
    /// `failed`; any outcome about other content is `stale` (the pod has yet to see the
    /// current content), except that a rejection or failure stays visible when there
    /// is no current content to compare with.
    pub fn of(report: &SourceReport, expected: Option<&Digest>) -> State {
        match (report.result, expected) {
            (Outcome::Applied, Some(d)) if *d == report.digest => State::Current,
            (Outcome::Rejected, Some(d)) if *d == report.digest => State::Rejected,
            (Outcome::Failed, Some(d)) if *d == report.digest => State::Failed,
            (Outcome::Rejected, None) => State::Rejected,
            (Outcome::Failed, None) => State::Failed,
            _ => State::Stale,
        }
    }

    /// How much a state needs someone's attention: failed, rejected, stale, unknown,
    /// current, from most to least.
    fn severity(self) -> u8 {
        match self {
            State::Current => 0,
            State::Unknown => 1,
            State::Stale => 2,
            State::Rejected => 3,
            State::Failed => 4,
        }
    }

    /// The more severe of two states: a pod's state over several sources is the most
    /// severe of theirs, so it is `current` only when every source is.
    pub fn worst(self, other: State) -> State {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Snapshot;

    fn mk_digest(content: &str) -> Digest {
        *Snapshot::from_entries([("k", content)]).digest()
    }

    fn mk_report(content: &str, result: Outcome) -> SourceReport {
        SourceReport {
            digest: mk_digest(content),
            at: "2026-11-22T09:33:20Z".into(),
            result,
            reason: None,
        }
    }

    #[test]
    fn only_an_outcome_about_the_current_content_counts() {
        let now = mk_digest("new");
        let cases = [
            ("new", Outcome::Applied, State::Current),
            ("new", Outcome::Rejected, State::Rejected),
            ("new", Outcome::Failed, State::Failed),
            ("old", Outcome::Applied, State::Stale),
            ("old", Outcome::Rejected, State::Stale),
            ("old", Outcome::Failed, State::Stale),
        ];
        for (content, result, want) in cases {
            assert_eq!(
                State::of(&mk_report(content, result), Some(&now)),
                want,
                "{content} {result:?}"
            );
        }
    }

    #[test]
    fn without_current_content_a_rejection_stays_visible() {
        assert_eq!(
            State::of(&mk_report("x", Outcome::Applied), None),
            State::Stale
        );
        assert_eq!(
            State::of(&mk_report("x", Outcome::Rejected), None),
            State::Rejected
        );
        assert_eq!(
            State::of(&mk_report("x", Outcome::Failed), None),
            State::Failed
        );
    }

    #[test]
    fn the_worst_state_wins_in_either_order() {
        let order = [
            State::Current,
            State::Unknown,
            State::Stale,
            State::Rejected,
            State::Failed,
        ];
        for (i, a) in order.iter().enumerate() {
            for b in &order[i..] {
                assert_eq!(a.worst(*b), *b, "{a} {b}");
                assert_eq!(b.worst(*a), *b, "{b} {a}");
            }
        }
        assert_eq!(
            State::ALL.map(State::as_str).join(","),
            "current,stale,rejected,failed,unknown"
        );
    }
}
