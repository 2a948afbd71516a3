//! When a workload may roll: the per-workload cooldown that turns a flapping
//! ConfigMap into at most two rollouts.
//!
//! Reloader rolls on every event, so a Secret that flaps every second makes a
//! ReplicaSet every second (one user reported ~80k). Here the first change of a
//! workload at rest is due after the short gather `window` (so that sources
//! applied together, e.g. by one `kubectl apply`, give one rollout); a change
//! arriving within `period` of the last rollout is not lost but joins one
//! trailing rollout, due when the period ends. The trailing rollout carries the
//! latest data because the executor reads the index when the slot falls due,
//! not when the change was queued.
//!
//! Rollouts run concurrently, so a slot taken by [`Cooldown::take_due`] is in
//! flight until [`Cooldown::rolled`], [`Cooldown::retry`] or
//! [`Cooldown::release`]: a change arriving meanwhile waits for it, and one
//! workload never has two rollouts at once.
//!
//! Pure: time is passed in, nothing sleeps.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::model::{SourceId, WorkloadId};

/// What happened to a change handed to [`Cooldown::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// The workload had nothing pending: a new rollout is due at this time.
    New { due: Instant },
    /// The workload already had a rollout pending: the change joined it.
    Coalesced { due: Instant },
}

impl Queued {
    /// When the rollout that holds the change is due.
    pub fn due(self) -> Instant {
        match self {
            Queued::New { due } | Queued::Coalesced { due } => due,
        }
    }
}

/// Per-workload timers: pending sources and the time of the last rollout.
#[derive(Debug)]
pub struct Cooldown {
    period: Duration,
    window: Duration,
    slots: HashMap<WorkloadId, Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    last_rollout: Option<Instant>,
    pending: Option<Pending>,
    /// Taken by `take_due` and not yet settled.
    in_flight: bool,
}

#[derive(Debug)]
struct Pending {
    due: Instant,
    sources: BTreeSet<SourceId>,
}

/// A workload whose rollout is due, with every source that changed since it
/// was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub workload: WorkloadId,
    pub sources: BTreeSet<SourceId>,
}

impl Cooldown {
    /// `period`: the least time between two rollouts of one workload (zero
    /// turns coalescing off). `window`: how long a first change waits for
    /// companions before it rolls.
    pub fn new(period: Duration, window: Duration) -> Cooldown {
        Cooldown {
            period,
            window,
            slots: HashMap::new(),
        }
    }

    /// Records that `source` changed in a way that concerns `workload`.
    ///
    /// `gather`: whether the first change waits the gather window for
    /// companions. Only a workload that uses several sources can have any; for
    /// the others waiting would only add latency.
    pub fn enqueue(
        &mut self,
        now: Instant,
        workload: &WorkloadId,
        source: &SourceId,
        gather: bool,
    ) -> Queued {
        let slot = self.slots.entry(workload.clone()).or_default();
        if let Some(pending) = &mut slot.pending {
            pending.sources.insert(source.clone());
            return Queued::Coalesced { due: pending.due };
        }
        let earliest = slot.last_rollout.map_or(now, |last| last + self.period);
        let window = if gather { self.window } else { Duration::ZERO };
        let due = earliest.max(now + window);
        slot.pending = Some(Pending {
            due,
            sources: BTreeSet::from([source.clone()]),
        });
        Queued::New { due }
    }

    /// The earliest time at which [`Cooldown::take_due`] has something to give
    /// (a workload in flight gives nothing until it is settled).
    pub fn next_due(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter(|slot| !slot.in_flight)
            .filter_map(|slot| slot.pending.as_ref().map(|p| p.due))
            .min()
    }

    /// Removes and returns at most `limit` rollouts due at `now`, the longest
    /// due first (then in workload order), and marks them in flight. Slots that
    /// have nothing pending, are not in flight and whose period has passed are
    /// dropped, so the table follows the number of recently rolled workloads.
    pub fn take_due(&mut self, now: Instant, limit: usize) -> Vec<Due> {
        let period = self.period;
        let mut ready: Vec<(Instant, &WorkloadId)> = self
            .slots
            .iter()
            .filter(|(_, slot)| !slot.in_flight)
            .filter_map(|(id, slot)| Some((slot.pending.as_ref()?.due, id)))
            .filter(|(due, _)| *due <= now)
            .collect();
        ready.sort();
        let chosen: Vec<WorkloadId> = ready
            .into_iter()
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        let mut due = Vec::with_capacity(chosen.len());
        for workload in chosen {
            let slot = self
                .slots
                .get_mut(&workload)
                .expect("chosen from the table");
            let pending = slot.pending.take().expect("chosen for its pending rollout");
            slot.in_flight = true;
            due.push(Due {
                workload,
                sources: pending.sources,
            });
        }
        self.slots.retain(|_, slot| {
            slot.in_flight
                || slot.pending.is_some()
                || slot.last_rollout.is_some_and(|last| now < last + period)
        });
        due
    }

    /// Settles a taken slot that needed no rollout after all (already current,
    /// suspended): a change queued meanwhile keeps its time.
    pub fn release(&mut self, workload: &WorkloadId) {
        if let Some(slot) = self.slots.get_mut(workload) {
            slot.in_flight = false;
        }
    }

    /// Records that `workload` was rolled at `now`: the next change waits for
    /// the period, and so does one that arrived while the rollout was in
    /// flight (it was not in that rollout, and must not make a third one).
    pub fn rolled(&mut self, workload: &WorkloadId, now: Instant) {
        let slot = self.slots.entry(workload.clone()).or_default();
        slot.in_flight = false;
        slot.last_rollout = Some(now);
        if let Some(pending) = &mut slot.pending {
            pending.due = pending.due.max(now + self.period);
        }
    }

    /// Puts sources back after a failed attempt, due no earlier than `due`. A
    /// change queued meanwhile keeps its place; the earlier of the two times wins
    /// only if it is not before `due`.
    pub fn retry(&mut self, workload: &WorkloadId, sources: BTreeSet<SourceId>, due: Instant) {
        let slot = self.slots.entry(workload.clone()).or_default();
        slot.in_flight = false;
        match &mut slot.pending {
            Some(pending) => {
                pending.sources.extend(sources);
                pending.due = pending.due.max(due);
            }
            None => slot.pending = Some(Pending { due, sources }),
        }
    }

    /// Forgets a workload that was deleted.
    pub fn forget(&mut self, workload: &WorkloadId) {
        self.slots.remove(workload);
    }

    /// How many workloads have a rollout pending.
    pub fn pending(&self) -> usize {
        self.slots
            .values()
            .filter(|slot| slot.pending.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SourceKind, WorkloadKind};

    fn mk_workload(name: &str) -> WorkloadId {
        WorkloadId::new(WorkloadKind::Deployment, "ns", name)
    }

    fn mk_source(name: &str) -> SourceId {
        SourceId::new(SourceKind::ConfigMap, "ns", name)
    }

    const PERIOD: Duration = Duration::from_secs(10);
    const WINDOW: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_first_change_is_due_after_the_window() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        assert_eq!(
            cooldown.enqueue(t0, &web, &mk_source("a"), true),
            Queued::New { due: t0 + WINDOW }
        );
        assert!(cooldown.take_due(t0 + ms(99), usize::MAX).is_empty());
        let due = cooldown.take_due(t0 + WINDOW, usize::MAX);
        assert_eq!(
            due,
            vec![Due {
                workload: web,
                sources: BTreeSet::from([mk_source("a")])
            }]
        );
        assert_eq!(cooldown.next_due(), None);
    }

    #[test]
    fn a_workload_with_one_source_does_not_wait_for_companions() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        assert_eq!(
            cooldown.enqueue(t0, &web, &mk_source("a"), false),
            Queued::New { due: t0 }
        );
        assert_eq!(cooldown.take_due(t0, usize::MAX).len(), 1);
    }

    #[test]
    fn sources_changed_together_give_one_rollout() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        cooldown.enqueue(t0, &web, &mk_source("a"), true);
        assert_eq!(
            cooldown.enqueue(t0 + ms(30), &web, &mk_source("b"), true),
            Queued::Coalesced { due: t0 + WINDOW }
        );
        let due = cooldown.take_due(t0 + WINDOW, usize::MAX);
        assert_eq!(due.len(), 1);
        assert_eq!(
            due[0].sources,
            BTreeSet::from([mk_source("a"), mk_source("b")])
        );
    }

    #[test]
    fn changes_during_the_period_join_one_trailing_rollout() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        cooldown.enqueue(t0, &web, &mk_source("a"), true);
        let rolled_at = t0 + WINDOW;
        assert_eq!(cooldown.take_due(rolled_at, usize::MAX).len(), 1);
        cooldown.rolled(&web, rolled_at);

        // 19 more changes during the period: one trailing rollout at its end.
        for i in 1..20 {
            let queued = cooldown.enqueue(rolled_at + ms(i * 100), &web, &mk_source("a"), true);
            assert_eq!(queued.due(), rolled_at + PERIOD);
        }
        assert!(
            cooldown
                .take_due(rolled_at + PERIOD - ms(1), usize::MAX)
                .is_empty()
        );
        assert_eq!(cooldown.next_due(), Some(rolled_at + PERIOD));
        assert_eq!(cooldown.take_due(rolled_at + PERIOD, usize::MAX).len(), 1);
        assert_eq!(cooldown.pending(), 0);
    }

    #[test]
    fn a_change_after_the_period_is_due_after_the_window_again() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        cooldown.rolled(&web, t0);
        let later = t0 + PERIOD + ms(1);
        assert_eq!(
            cooldown.enqueue(later, &web, &mk_source("a"), true),
            Queued::New {
                due: later + WINDOW
            }
        );
    }

    #[test]
    fn workloads_do_not_share_a_cooldown() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        cooldown.rolled(&mk_workload("web"), t0);
        assert_eq!(
            cooldown.enqueue(t0, &mk_workload("api"), &mk_source("a"), true),
            Queued::New { due: t0 + WINDOW }
        );
    }

    #[test]
    fn a_zero_period_turns_coalescing_off() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(Duration::ZERO, Duration::ZERO);
        let web = mk_workload("web");
        cooldown.rolled(&web, t0);
        assert_eq!(
            cooldown.enqueue(t0, &web, &mk_source("a"), true),
            Queued::New { due: t0 }
        );
    }

    #[test]
    fn a_change_made_during_a_rollout_waits_for_the_period() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        cooldown.enqueue(t0, &web, &mk_source("a"), true);
        assert_eq!(cooldown.take_due(t0 + WINDOW, usize::MAX).len(), 1);
        // In flight: the next change is queued before the rollout is done.
        cooldown.enqueue(t0 + ms(150), &web, &mk_source("a"), true);
        let done = t0 + ms(400);
        cooldown.rolled(&web, done);
        assert_eq!(cooldown.next_due(), Some(done + PERIOD));
        assert!(
            cooldown
                .take_due(done + PERIOD - ms(1), usize::MAX)
                .is_empty()
        );
        assert_eq!(cooldown.take_due(done + PERIOD, usize::MAX).len(), 1);
    }

    #[test]
    fn a_workload_in_flight_is_not_taken_twice() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        cooldown.enqueue(t0, &web, &mk_source("a"), false);
        assert_eq!(cooldown.take_due(t0, usize::MAX).len(), 1);
        // A change while the rollout runs: nothing is due until it is settled,
        // however late it gets.
        cooldown.enqueue(t0 + ms(10), &web, &mk_source("a"), false);
        assert_eq!(cooldown.next_due(), None);
        assert!(cooldown.take_due(t0 + PERIOD * 5, usize::MAX).is_empty());
        assert_eq!(cooldown.pending(), 1);
        let done = t0 + ms(50);
        cooldown.rolled(&web, done);
        assert_eq!(cooldown.next_due(), Some(done + PERIOD));
        assert_eq!(cooldown.take_due(done + PERIOD, usize::MAX).len(), 1);
    }

    #[test]
    fn a_released_slot_gives_a_change_queued_meanwhile_at_its_time() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        cooldown.enqueue(t0, &web, &mk_source("a"), false);
        assert_eq!(cooldown.take_due(t0, usize::MAX).len(), 1);
        cooldown.enqueue(t0 + ms(10), &web, &mk_source("b"), false);
        // Nothing was rolled (already current): no period to wait.
        cooldown.release(&web);
        assert_eq!(cooldown.next_due(), Some(t0 + ms(10)));
        let due = cooldown.take_due(t0 + ms(10), usize::MAX);
        assert_eq!(due[0].sources, BTreeSet::from([mk_source("b")]));
    }

    #[test]
    fn a_limited_take_gives_the_longest_due_first() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, Duration::ZERO);
        for (i, name) in ["c", "a", "b"].into_iter().enumerate() {
            cooldown.enqueue(
                t0 + ms(i as u64),
                &mk_workload(name),
                &mk_source("s"),
                false,
            );
        }
        let first = cooldown.take_due(t0 + ms(5), 2);
        let names: Vec<&str> = first.iter().map(|d| d.workload.name.as_str()).collect();
        assert_eq!(names, ["c", "a"]);
        assert_eq!(cooldown.pending(), 1);
        let rest = cooldown.take_due(t0 + ms(5), 2);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].workload.name, "b");
    }

    #[test]
    fn a_retry_keeps_the_sources_and_waits() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        let web = mk_workload("web");
        cooldown.enqueue(t0, &web, &mk_source("a"), true);
        let due = cooldown.take_due(t0 + WINDOW, usize::MAX).remove(0);
        cooldown.retry(&web, due.sources, t0 + ms(1100));
        cooldown.enqueue(t0 + ms(200), &web, &mk_source("b"), true);
        assert!(cooldown.take_due(t0 + ms(1000), usize::MAX).is_empty());
        let again = cooldown.take_due(t0 + ms(1100), usize::MAX);
        assert_eq!(
            again[0].sources,
            BTreeSet::from([mk_source("a"), mk_source("b")])
        );
    }

    #[test]
    fn idle_slots_are_dropped_once_their_period_is_over() {
        let t0 = Instant::now();
        let mut cooldown = Cooldown::new(PERIOD, WINDOW);
        cooldown.rolled(&mk_workload("web"), t0);
        cooldown.take_due(t0 + PERIOD, usize::MAX);
        assert!(cooldown.slots.is_empty());
    }
}
