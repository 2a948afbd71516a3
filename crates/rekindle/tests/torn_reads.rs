//! What a reader of a [`Reloadable`] can count on while reloads happen.
//!
//! A torn read (half of one version, half of another) cannot happen by construction:
//! each version is one immutable value behind one pointer. What can go wrong is what a
//! reader holds and what it is shown: these tests check that a reader keeps the version
//! it loaded to its end while newer ones are applied, and that readers see the newest
//! version as soon as it is applied.
#![allow(clippy::unwrap_used)]

use rekindle::{Applied, Reloadable, Snapshot};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(rename = "LIMIT")]
    limit: u32,
    #[serde(rename = "NAME")]
    name: String,
}

fn snapshot(n: u32) -> Snapshot {
    Snapshot::from_entries([("LIMIT", n.to_string()), ("NAME", format!("v{n}"))])
}

/// A config whose version 1 holds content 1 (version 0 is the built-in start value).
fn at_version_1() -> Reloadable<Settings> {
    let config = Reloadable::<Settings>::builder().build(Settings {
        limit: 0,
        name: "built-in".into(),
    });
    assert_eq!(applied_version(&config, 1), 1);
    config
}

fn applied_version(config: &Reloadable<Settings>, n: u32) -> u64 {
    match config.apply(&snapshot(n)).unwrap() {
        Applied::New(v) => v.version(),
        Applied::Unchanged => panic!("content {n} was not new"),
    }
}

#[test]
fn a_reader_keeps_its_version_while_newer_ones_are_applied() {
    let config = at_version_1();
    let held = config.current();
    assert_eq!(applied_version(&config, 2), 2);
    assert_eq!(applied_version(&config, 3), 3);
    // The request that loaded version 1 still sees version 1, whole.
    assert_eq!(held.version(), 1);
    assert_eq!((held.limit, held.name.as_str()), (1, "v1"));
    assert_eq!(config.current().version(), 3);
}

#[test]
fn readers_see_each_version_as_soon_as_it_is_applied() {
    let config = at_version_1();
    let mut reader = config.reader();
    assert_eq!(reader.load().version(), 1);
    let old = config.load().clone();
    for n in 2..=5 {
        let version = applied_version(&config, n);
        // The per-thread reader, the short load and the owned load all agree at once.
        let seen = reader.load();
        assert_eq!((seen.version(), seen.limit), (version, n));
        assert_eq!(config.load().version(), version);
        assert_eq!(config.current().name, format!("v{n}"));
    }
    // A reader's cache kept nothing alive that a holder did not ask for.
    assert_eq!(old.version(), 1);
}

#[test]
fn a_reader_on_another_thread_sees_the_swap() {
    let config = at_version_1();
    let (applied_tx, applied_rx) = std::sync::mpsc::channel();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader_config = config.clone();
    let reader = std::thread::spawn(move || {
        let mut reader = reader_config.reader();
        seen_tx.send(reader.load().version()).unwrap();
        // Wait until the writer says it has applied, then load once.
        let expected: u64 = applied_rx.recv().unwrap();
        seen_tx.send(reader.load().version()).unwrap();
        expected
    });
    assert_eq!(seen_rx.recv().unwrap(), 1);
    let version = applied_version(&config, 2);
    applied_tx.send(version).unwrap();
    assert_eq!(seen_rx.recv().unwrap(), version);
    reader.join().unwrap();
}
