//! Readers racing reloads never see a mix of two configs.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use proptest::prelude::*;
use rekindle::{Reloadable, Snapshot};
use serde::Deserialize;

/// Three keys that a writer always changes together: a reader seeing them differ has
/// seen half of one version and half of another.
#[derive(Debug, Deserialize)]
struct Triple {
    a: u64,
    b: u64,
    #[serde(rename = "c.json")]
    c: Vec<u64>,
}

fn snapshot(n: u64, width: usize) -> Snapshot {
    let list = serde_json::to_string(&vec![n; width]).unwrap();
    Snapshot::from_entries([("a", n.to_string()), ("b", n.to_string()), ("c.json", list)])
}

fn consistent(t: &Triple) -> bool {
    t.a == t.b && t.c.iter().all(|x| *x == t.a)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn readers_never_see_a_torn_config(values in prop::collection::vec(0u64..1_000_000, 1..40), width in 1usize..64) {
        let config = Reloadable::<Triple>::builder().build(Triple { a: 0, b: 0, c: vec![0] });
        let done = Arc::new(AtomicBool::new(false));
        // Writes start only once both readers are reading, so the race really happens.
        let started = Arc::new(Barrier::new(3));
        let total_reads = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let config = config.clone();
                let done = done.clone();
                let started = started.clone();
                let total_reads = total_reads.clone();
                thread::spawn(move || {
                    let _ = config.load();
                    started.wait();
                    let mut reads = 0u64;
                    let mut last_version = 0;
                    while !done.load(Ordering::Acquire) {
                        let current = config.load();
                        assert!(consistent(&current), "torn read: {:?}", **current);
                        assert!(current.version() >= last_version, "version went backwards");
                        last_version = current.version();
                        reads += 1;
                        total_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    reads
                })
            })
            .collect();
        started.wait();
        // Keep writing until the readers have read a few thousand times during the writes
        // (bounded, in case a reader died).
        for _pass in 0..10_000 {
            for value in &values {
                // Alternate two versions of content so consecutive applies always differ.
                let _ = config.apply(&snapshot(*value, width));
                let _ = config.apply(&snapshot(value + 1_000_000, width));
            }
            if total_reads.load(Ordering::Relaxed) >= 5_000 {
                break;
            }
        }
        done.store(true, Ordering::Release);
        let reads: u64 = readers
            .into_iter()
            .map(|r| r.join().expect("a reader saw a torn config"))
            .sum();
        // With two cores and three threads one reader may be starved; what matters is
        // that reads overlapped the writes.
        prop_assert!(reads >= 5_000, "only {} reads overlapped the writes", reads);
        let last = *values.last().unwrap() + 1_000_000;
        prop_assert_eq!(config.current().a, last);
    }
}
