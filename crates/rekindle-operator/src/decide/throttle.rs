//! How many Events one workload may get: a token bucket per workload and event type,
//! as client-go's event recorder keeps (25 at once, then one per 5 minutes), so a
//! workload whose rollout fails again and again cannot flood the Events of its
//! namespace.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::WorkloadId;

/// Events a workload may get at once (client-go's spam filter burst).
pub const BURST: u32 = 25;
/// Then one more per this long (client-go's spam filter rate: 1/300 per second).
pub const REFILL: Duration = Duration::from_secs(300);

/// The buckets, keyed by workload and event type (`Normal`, `Warning`).
#[derive(Debug)]
pub struct EventBudget {
    burst: u32,
    refill: Duration,
    buckets: HashMap<(WorkloadId, &'static str), Bucket>,
    /// Calls since the last sweep of full buckets.
    since_sweep: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// When the last token was added (or the bucket made).
    filled_at: Instant,
}

/// How many calls between sweeps: a full bucket is as good as none, so they are
/// dropped now and then to keep the map to the workloads that are being throttled.
const SWEEP_EVERY: usize = 1024;

impl Default for EventBudget {
    fn default() -> Self {
        EventBudget::new(BURST, REFILL)
    }
}

impl EventBudget {
    pub fn new(burst: u32, refill: Duration) -> EventBudget {
        EventBudget {
            burst,
            refill,
            buckets: HashMap::new(),
            since_sweep: 0,
        }
    }

    /// Whether an event of `kind` on `workload` may be written now; takes a token if so.
    pub fn allow(&mut self, workload: &WorkloadId, kind: &'static str, now: Instant) -> bool {
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            let (burst, refill) = (self.burst, self.refill);
            self.buckets
                .retain(|_, bucket| refilled(*bucket, burst, refill, now).tokens < burst);
        }
        let bucket = self
            .buckets
            .entry((workload.clone(), kind))
            .or_insert(Bucket {
                tokens: self.burst,
                filled_at: now,
            });
        *bucket = refilled(*bucket, self.burst, self.refill, now);
        if bucket.tokens == 0 {
            return false;
        }
        bucket.tokens -= 1;
        true
    }

    /// Buckets held (for tests).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

fn refilled(bucket: Bucket, burst: u32, refill: Duration, now: Instant) -> Bucket {
    if bucket.tokens >= burst || refill.is_zero() {
        return Bucket {
            tokens: burst,
            filled_at: now,
        };
    }
    let elapsed = now.saturating_duration_since(bucket.filled_at);
    let added = (elapsed.as_nanos() / refill.as_nanos()).min(u128::from(burst)) as u32;
    if added == 0 {
        return bucket;
    }
    Bucket {
        tokens: (bucket.tokens + added).min(burst),
        filled_at: bucket.filled_at + refill * added,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKind;

    fn mk_workload(name: &str) -> WorkloadId {
        WorkloadId::new(WorkloadKind::Deployment, "apps", name)
    }

    #[test]
    fn a_burst_then_one_per_refill() {
        let mut budget = EventBudget::default();
        let (web, start) = (mk_workload("web"), Instant::now());
        for n in 0..BURST {
            assert!(budget.allow(&web, "Warning", start), "event {n}");
        }
        assert!(!budget.allow(&web, "Warning", start));
        assert!(!budget.allow(&web, "Warning", start + REFILL - Duration::from_secs(1)));
        assert!(budget.allow(&web, "Warning", start + REFILL));
        assert!(!budget.allow(&web, "Warning", start + REFILL));
        // Two periods later, two more.
        let later = start + REFILL * 3;
        assert!(budget.allow(&web, "Warning", later));
        assert!(budget.allow(&web, "Warning", later));
        assert!(!budget.allow(&web, "Warning", later));
    }

    #[test]
    fn workloads_and_event_types_have_their_own_buckets() {
        let mut budget = EventBudget::new(1, REFILL);
        let now = Instant::now();
        assert!(budget.allow(&mk_workload("a"), "Warning", now));
        assert!(!budget.allow(&mk_workload("a"), "Warning", now));
        assert!(budget.allow(&mk_workload("a"), "Normal", now));
        assert!(budget.allow(&mk_workload("b"), "Warning", now));
    }

    #[test]
    fn full_buckets_are_swept_away() {
        let mut budget = EventBudget::new(2, Duration::from_secs(1));
        let now = Instant::now();
        for n in 0..SWEEP_EVERY - 1 {
            budget.allow(&mk_workload(&format!("w{n}")), "Normal", now);
        }
        assert_eq!(budget.len(), SWEEP_EVERY - 1);
        // Later, every bucket is full again: the sweep drops them.
        budget.allow(&mk_workload("last"), "Normal", now + Duration::from_secs(5));
        assert_eq!(budget.len(), 1);
    }
}
