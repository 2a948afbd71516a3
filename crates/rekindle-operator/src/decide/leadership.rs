//! Who may act, judged from a coordination.k8s.io Lease as client-go's leader
//! election judges it: by *local* observation time, never by comparing the
//! lease's timestamps with our clock, so that skewed clocks between nodes do not
//! make two leaders.
//!
//! A standby remembers when it last saw the lease record change. If the record
//! has not changed for a whole lease duration, its holder is presumed dead and
//! the lease may be taken.

use std::time::{Duration, Instant};

/// The parts of a Lease that decide leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`; `None` or empty when released.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
    /// `spec.renewTime` as text: only compared for change, never read as a time.
    pub renew_time: Option<String>,
}

impl LeaseRecord {
    fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// What to do after looking at the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// We hold it: renew.
    Ours,
    /// Someone else holds it and was seen renewing within the lease duration.
    Theirs,
    /// Nobody holds it, or its holder stopped renewing: try to take it.
    Free,
}

/// Remembers when the lease record was last seen to change.
#[derive(Debug, Default)]
pub struct Observer {
    last: Option<(LeaseRecord, Instant)>,
}

impl Observer {
    /// Judges `record`, seen at `now`, for the candidate `me`.
    pub fn judge(&mut self, me: &str, record: &LeaseRecord, now: Instant) -> Judgement {
        let changed_at = match &self.last {
            Some((seen, at)) if seen == record => *at,
            _ => {
                self.last = Some((record.clone(), now));
                now
            }
        };
        match record.holder() {
            None => Judgement::Free,
            Some(holder) if holder == me => Judgement::Ours,
            Some(_) if now.duration_since(changed_at) >= record.duration => Judgement::Free,
            Some(_) => Judgement::Theirs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_record(holder: &str, renew: &str) -> LeaseRecord {
        LeaseRecord {
            holder: Some(holder.to_owned()),
            duration: Duration::from_secs(15),
            renew_time: Some(renew.to_owned()),
        }
    }

    #[test]
    fn a_renewing_holder_keeps_the_lease() {
        let t0 = Instant::now();
        let mut observer = Observer::default();
        assert_eq!(
            observer.judge("b", &mk_record("a", "1"), t0),
            Judgement::Theirs
        );
        // Renewed at 10 s: the 15 s count starts again.
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(
            observer.judge("b", &mk_record("a", "2"), t10),
            Judgement::Theirs
        );
        assert_eq!(
            observer.judge("b", &mk_record("a", "2"), t10 + Duration::from_secs(14)),
            Judgement::Theirs
        );
    }

    #[test]
    fn a_silent_holder_loses_it_after_one_lease_duration_of_our_time() {
        let t0 = Instant::now();
        let mut observer = Observer::default();
        let record = mk_record("a", "1");
        assert_eq!(observer.judge("b", &record, t0), Judgement::Theirs);
        assert_eq!(
            observer.judge("b", &record, t0 + Duration::from_secs(14)),
            Judgement::Theirs
        );
        assert_eq!(
            observer.judge("b", &record, t0 + Duration::from_secs(15)),
            Judgement::Free
        );
    }

    #[test]
    fn a_record_first_seen_is_never_presumed_dead() {
        // However old its renewTime looks, we have not watched it for a lease
        // duration yet: clocks of other nodes are not trusted.
        let mut observer = Observer::default();
        assert_eq!(
            observer.judge("b", &mk_record("a", "2001-01-01T00:00:00Z"), Instant::now()),
            Judgement::Theirs
        );
    }

    #[test]
    fn released_and_own_leases() {
        let mut observer = Observer::default();
        let now = Instant::now();
        assert_eq!(
            observer.judge("a", &mk_record("a", "1"), now),
            Judgement::Ours
        );
        let released = LeaseRecord {
            holder: Some(String::new()),
            ..mk_record("x", "2")
        };
        assert_eq!(observer.judge("a", &released, now), Judgement::Free);
    }
}
