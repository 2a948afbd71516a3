//! Shared helpers for the integration tests: kubelet-style volume writes and a probe that
//! collects what a watcher reports.
#![allow(dead_code, clippy::unwrap_used)]

pub mod emulated;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use rekindle::{Change, WatchEvent};

/// How long a test waits for something that should happen within milliseconds. Generous,
/// because CI machines stall; a passing test never waits this long.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn payload(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// Receives a watcher's events on the test thread.
pub struct Probe {
    events: Receiver<WatchEvent>,
}

impl Probe {
    pub fn new() -> (Probe, impl FnMut(WatchEvent) + Send + 'static) {
        let (tx, rx): (Sender<WatchEvent>, _) = mpsc::channel();
        (Probe { events: rx }, move |event| {
            let _ = tx.send(event);
        })
    }

    /// The next event, whatever it is.
    pub fn next(&self) -> WatchEvent {
        self.events
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no watch event within {PATIENCE:?}"))
    }

    /// The next event, which must be a change.
    pub fn change(&self) -> Change {
        match self.next() {
            WatchEvent::Changed(change) => change,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    /// Waits for the change whose content is `expected`, returning how many changes
    /// were reported before it (intermediate states of rapid updates).
    pub fn change_to(&self, expected: &BTreeMap<String, Vec<u8>>) -> (Change, usize) {
        let deadline = Instant::now() + PATIENCE;
        let mut skipped = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(remaining) {
                Ok(WatchEvent::Changed(change)) => {
                    if &as_map(&change) == expected {
                        return (change, skipped);
                    }
                    skipped += 1;
                }
                Ok(_) => {}
                Err(_) => panic!("content never became {expected:?}"),
            }
        }
    }
}

pub fn as_map(change: &Change) -> BTreeMap<String, Vec<u8>> {
    change
        .snapshot
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_vec()))
        .collect()
}

/// Polls `condition` until it holds or [`PATIENCE`] runs out.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Something that publishes a payload into a directory the way the kubelet does.
pub trait Volume {
    fn publish(&self, dir: &Path, payload: &BTreeMap<String, Vec<u8>>);
}

/// The kubelet's own AtomicWriter (built by `scripts/provision-k8s.sh`). Tests that use
/// it are `#[ignore]`d for a plain `cargo test` and run by `scripts/test`.
pub struct Kubelet(rekindle_testenv::KubeletWriter);

pub fn kubelet() -> Kubelet {
    Kubelet(
        rekindle_testenv::KubeletWriter::locate()
            .unwrap_or_else(|e| panic!("{e} (run scripts/provision-k8s.sh)")),
    )
}

impl Volume for Kubelet {
    fn publish(&self, dir: &Path, payload: &BTreeMap<String, Vec<u8>>) {
        // The kubelet creates the volume directory before its first write.
        std::fs::create_dir_all(dir).unwrap();
        self.0.write(dir, payload).unwrap();
    }
}
