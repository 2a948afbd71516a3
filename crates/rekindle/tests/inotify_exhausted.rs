//! When no inotify instance can be had, the watcher polls and says why.
//!
//! The fault is real: this test takes every inotify instance the kernel allows its user
//! (`fs.inotify.max_user_instances`), starts a watcher, then gives them back. It lives in
//! a test binary of its own so no other test of this crate runs meanwhile.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use rekindle::{DirWatcher, WatchEvent, WatchOptions};
use rustix::fs::inotify;
use support::{Probe, as_map, payload};

#[test]
fn falls_back_to_polling_and_still_sees_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k"), "1").unwrap();

    // Hold instances until the kernel refuses one (bounded: the default limit is 128).
    let mut held = Vec::new();
    let refusal = loop {
        match inotify::init(inotify::CreateFlags::CLOEXEC) {
            Ok(fd) => held.push(fd),
            Err(e) => break e,
        }
        assert!(held.len() < 100_000, "no inotify limit in sight");
    };
    assert_eq!(
        refusal,
        rustix::io::Errno::MFILE,
        "unexpected refusal: {refusal}"
    );

    let (probe, handler) = Probe::new();
    let options = WatchOptions {
        poll_interval: Duration::from_millis(50),
        ..WatchOptions::default()
    };
    let watcher = DirWatcher::spawn(dir.path(), options, handler).unwrap();
    let reason = match probe.next() {
        WatchEvent::Polling { reason, .. } => reason,
        other => panic!("expected the polling fallback, got {other:?}"),
    };
    // Give the instances back before anything else can fail for want of them.
    drop(held);
    assert!(
        reason.contains("max_user_instances"),
        "unhelpful reason: {reason}"
    );

    assert_eq!(as_map(&probe.change()), payload(&[("k", "1")]));
    std::fs::write(dir.path().join("k"), "2").unwrap();
    assert_eq!(as_map(&probe.change()), payload(&[("k", "2")]));
    assert!(watcher.is_ready());
}
