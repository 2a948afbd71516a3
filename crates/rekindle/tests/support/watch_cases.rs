// The watcher's behaviour, shared by `watch.rs` (the thread watcher, `DirWatcher`) and
// `watch_task.rs` (the task watcher, `AsyncDirWatcher`): each includes this file after
// defining `Watcher` and `spawn`, so every case runs against both.

use std::fs;
use std::time::Duration;

use rekindle::{WatchEvent, WatchOptions};
use support::{Probe, Volume, as_map, emulated, payload};

fn volume() -> impl Volume {
    support::kubelet()
}

/// Publishes `initial` into `dir`, starts a watcher on it and consumes the first read.
fn watched(
    vol: &impl Volume,
    dir: &std::path::Path,
    initial: &[(&str, &str)],
) -> (Probe, Watcher) {
    vol.publish(dir, &payload(initial));
    let (probe, handler) = Probe::new();
    let watcher = spawn(dir, options(), handler).unwrap();
    assert_eq!(as_map(&probe.change()), payload(initial));
    (probe, watcher)
}

fn options() -> WatchOptions {
    WatchOptions {
        quiet_period: Duration::from_millis(50),
        poll_interval: Duration::from_millis(50),
        ..WatchOptions::default()
    }
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn each_swap_is_reported_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let v1 = payload(&[("app.yaml", "level: info")]);
    vol.publish(dir.path(), &v1);
    let (probe, handler) = Probe::new();
    let _watcher = spawn(dir.path(), options(), handler).unwrap();
    let initial = probe.change();
    assert!(initial.previous.is_none());
    assert_eq!(as_map(&initial), v1);

    let v2 = payload(&[("app.yaml", "level: debug")]);
    vol.publish(dir.path(), &v2);
    let second = probe.change();
    assert_eq!(as_map(&second), v2);
    assert_eq!(
        second.previous.as_deref().map(|s| s.digest()),
        Some(initial.snapshot.digest())
    );

    // A sentinel swap: had the first swap been reported twice, the duplicate would arrive
    // before this one.
    let v3 = payload(&[("app.yaml", "level: warn")]);
    vol.publish(dir.path(), &v3);
    assert_eq!(as_map(&probe.change()), v3);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn added_removed_and_nested_keys() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    vol.publish(
        dir.path(),
        &payload(&[("a", "1"), ("conf/nested.json", "{}")]),
    );
    let (probe, handler) = Probe::new();
    let _watcher = spawn(dir.path(), options(), handler).unwrap();
    let initial = probe.change();
    assert_eq!(
        initial.snapshot.keys().collect::<Vec<_>>(),
        ["a", "conf/nested.json"]
    );

    vol.publish(
        dir.path(),
        &payload(&[("a", "1"), ("b", "2"), ("conf/nested.json", "{}")]),
    );
    let added = probe.change();
    let diff = added.previous.as_ref().unwrap().diff(&added.snapshot);
    assert_eq!(diff.added, ["b"]);
    assert!(diff.removed.is_empty() && diff.modified.is_empty());

    vol.publish(
        dir.path(),
        &payload(&[("b", "2"), ("conf/nested.json", "{\"x\":1}")]),
    );
    let removed = probe.change();
    let diff = removed.previous.as_ref().unwrap().diff(&removed.snapshot);
    assert_eq!(diff.removed, ["a"]);
    assert_eq!(diff.modified, ["conf/nested.json"]);
    assert!(
        !dir.path().join("a").exists(),
        "the user-visible link went too"
    );
}

#[test]
fn content_identical_swap_is_not_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let same = payload(&[("k", "v")]);
    emulated::swap(dir.path(), &same);
    let (probe, handler) = Probe::new();
    let _watcher = spawn(dir.path(), options(), handler).unwrap();
    probe.change();
    // The full swap sequence, same bytes: a new timestamp dir, a new ..data.
    emulated::swap(dir.path(), &same);
    let next = payload(&[("k", "v2")]);
    emulated::swap(dir.path(), &next);
    assert_eq!(
        as_map(&probe.change()),
        next,
        "the identical swap was reported"
    );
}

#[test]
fn plain_directory_is_read_after_writes_settle() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), "1").unwrap();
    let (probe, handler) = Probe::new();
    // A quiet period far longer than the writes below take, even on a loaded machine.
    let options = WatchOptions {
        quiet_period: Duration::from_millis(500),
        ..options()
    };
    let _watcher = spawn(dir.path(), options, handler).unwrap();
    probe.change();
    // A non-atomic writer updating two files: one change, with both files new.
    fs::write(dir.path().join("a"), "2").unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("sub/b"), "2").unwrap();
    let (change, before) = probe.change_to(&payload(&[("a", "2"), ("sub/b", "2")]));
    assert_eq!(before, 0, "a half-written state was reported first");
    assert!(change.previous.is_some());
    // Rewriting a file with the bytes it already holds is no change.
    fs::write(dir.path().join("a"), "2").unwrap();
    fs::write(dir.path().join("sub/b"), "3").unwrap();
    assert_eq!(
        as_map(&probe.change()),
        payload(&[("a", "2"), ("sub/b", "3")])
    );
}

/// A directory created below a plain directory after the watch started is watched too: a
/// later change inside it, which nothing in the root tells of, is seen.
#[test]
fn a_subdirectory_created_after_the_start_is_watched() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), "1").unwrap();
    let (probe, handler) = Probe::new();
    let _watcher = spawn(dir.path(), options(), handler).unwrap();
    probe.change();
    fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
    fs::write(dir.path().join("sub/deeper/b"), "1").unwrap();
    probe.change_to(&payload(&[("a", "1"), ("sub/deeper/b", "1")]));
    fs::write(dir.path().join("sub/deeper/b"), "2").unwrap();
    probe.change_to(&payload(&[("a", "1"), ("sub/deeper/b", "2")]));
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn fifty_rapid_swaps_end_on_the_final_content() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let (probe, _watcher) = watched(&vol, dir.path(), &[("n", "0")]);
    let mut last = None;
    for n in 1..=50 {
        let p = payload(&[("n", &n.to_string()), ("other", "x")]);
        vol.publish(dir.path(), &p);
        last = Some(p);
    }
    let last = last.unwrap();
    // Intermediate states may be reported or skipped, but in order: never an older
    // state after a newer one, never one twice, and the last is the final content.
    let mut seen = Vec::new();
    loop {
        let change = probe.change();
        let map = as_map(&change);
        let n: u32 = String::from_utf8(map["n"].clone())
            .unwrap()
            .parse()
            .unwrap();
        seen.push(n);
        if map == last {
            break;
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&50));
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn missing_directory_is_waited_for() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("later");
    let (probe, handler) = Probe::new();
    let watcher = spawn(&dir, options(), handler).unwrap();
    assert!(matches!(probe.next(), WatchEvent::Missing { .. }));
    assert!(!watcher.is_ready());
    let p = payload(&[("k", "v")]);
    volume().publish(&dir, &p);
    assert_eq!(as_map(&probe.change()), p);
    assert!(watcher.is_ready());
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn directory_deleted_and_recreated() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("vol");
    let vol = volume();
    let (probe, _watcher) = watched(&vol, &dir, &[("k", "1")]);
    fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(probe.next(), WatchEvent::Missing { .. }));
    let p = payload(&[("k", "2")]);
    vol.publish(&dir, &p);
    assert_eq!(as_map(&probe.change()), p);
    // The new directory is watched, not the deleted one.
    let p3 = payload(&[("k", "3")]);
    vol.publish(&dir, &p3);
    assert_eq!(as_map(&probe.change()), p3);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn directory_replaced_by_rename_is_followed() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("vol");
    let vol = volume();
    let (probe, _watcher) = watched(&vol, &dir, &[("k", "1")]);
    let staged = parent.path().join("staged");
    vol.publish(&staged, &payload(&[("k", "2")]));
    fs::rename(&dir, parent.path().join("old")).unwrap();
    fs::rename(&staged, &dir).unwrap();
    let (change, _) = probe.change_to(&payload(&[("k", "2")]));
    assert!(change.previous.is_some());
}

#[test]
fn escaping_symlink_is_reported_and_last_snapshot_kept() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "x").unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ok"), "1").unwrap();
    let (probe, handler) = Probe::new();
    let _watcher = spawn(dir.path(), options(), handler).unwrap();
    probe.change();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
    match probe.next() {
        WatchEvent::Failed { error, .. } => {
            assert!(
                error.to_string().contains("outside the watched directory"),
                "{error}"
            )
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    fs::remove_file(dir.path().join("link")).unwrap();
    fs::write(dir.path().join("ok"), "2").unwrap();
    assert_eq!(as_map(&probe.change()), payload(&[("ok", "2")]));
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn forced_polling_still_sees_swaps() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    vol.publish(dir.path(), &payload(&[("k", "1")]));
    let (probe, handler) = Probe::new();
    let opts = WatchOptions {
        force_polling: true,
        ..options()
    };
    let _watcher = spawn(dir.path(), opts, handler).unwrap();
    probe.change();
    let p = payload(&[("k", "2")]);
    vol.publish(dir.path(), &p);
    assert_eq!(as_map(&probe.change()), p);
}

/// A kubelet-style volume built by hand: `..v1/k`, `..data -> ..v1`, `k -> ..data/k`.
/// The watch on such a volume is on its root alone (every kubelet update goes through
/// `..data` there), so editing `..v1/k` in place is a change inotify cannot see.
fn volume_with_a_blind_spot(value: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("..v1")).unwrap();
    fs::write(dir.path().join("..v1/k"), value).unwrap();
    std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/k", dir.path().join("k")).unwrap();
    dir
}

#[test]
fn explicit_rescan_catches_a_change_made_behind_inotify() {
    let dir = volume_with_a_blind_spot("1");
    let (probe, handler) = Probe::new();
    let watcher = spawn(dir.path(), options(), handler).unwrap();
    assert_eq!(as_map(&probe.change()), payload(&[("k", "1")]));
    fs::write(dir.path().join("..v1/k"), "2").unwrap();
    watcher.rescan();
    let change = probe.change();
    assert_eq!(as_map(&change), payload(&[("k", "2")]));
    assert!(change.previous.is_some());
}

#[test]
fn the_periodic_rescan_catches_a_change_made_behind_inotify() {
    let dir = volume_with_a_blind_spot("1");
    let (probe, handler) = Probe::new();
    let options = WatchOptions {
        rescan_interval: Duration::from_millis(200),
        ..options()
    };
    let _watcher = spawn(dir.path(), options, handler).unwrap();
    assert_eq!(as_map(&probe.change()), payload(&[("k", "1")]));
    fs::write(dir.path().join("..v1/k"), "2").unwrap();
    assert_eq!(as_map(&probe.change()), payload(&[("k", "2")]));
}

#[test]
fn a_zero_interval_is_refused_at_spawn_not_spun_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_probe, handler) = Probe::new();
    let spinning = WatchOptions {
        rescan_interval: Duration::ZERO,
        ..options()
    };
    let err = spawn(dir.path(), spinning, handler).unwrap_err();
    assert!(
        matches!(err, rekindle::WatchError::Options(ref e) if e.field == "rescan_interval"),
        "{err}"
    );
}

#[test]
fn a_writer_pausing_mid_file_is_not_read_half_way() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("app.conf"), "old").unwrap();
    let (probe, handler) = Probe::new();
    let _watcher = spawn(dir.path(), options(), handler).unwrap();
    probe.change();
    // Half the file, then a pause of several quiet periods with the file still open.
    let mut file = fs::File::create(dir.path().join("app.conf")).unwrap();
    file.write_all(b"first half, ").unwrap();
    file.flush().unwrap();
    let quiet = options().quiet_period;
    std::thread::sleep(quiet * 4);
    file.write_all(b"second half").unwrap();
    drop(file);
    let change = probe.change();
    assert_eq!(
        as_map(&change),
        payload(&[("app.conf", "first half, second half")]),
        "a half-written file was applied"
    );
}

/// A `..data` swap is read and reported on the thread that reads inotify; a handler there
/// that drops its own watcher must not deadlock, and nothing is reported after the drop.
#[test]
fn a_handler_may_drop_its_own_watcher_during_a_swap() {
    use std::sync::{Arc, Mutex, mpsc};
    let dir = volume_with_a_blind_spot("1");
    let slot: Arc<Mutex<Option<Watcher>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let handler_slot = slot.clone();
    let watcher = spawn(dir.path(), options(), move |event| {
        if let WatchEvent::Changed(change) = event {
            if change.previous.is_some() {
                // Dropped here, inside its own handler, before the test hears
                // of the change (so that it finds the slot empty).
                drop(handler_slot.lock().unwrap().take());
            }
            let _ = tx.send(as_map(&change));
        }
    })
    .unwrap();
    *slot.lock().unwrap() = Some(watcher);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        payload(&[("k", "1")])
    );
    // The kubelet's swap: a new data directory, `..data_tmp` renamed over `..data`.
    fs::create_dir(dir.path().join("..v2")).unwrap();
    fs::write(dir.path().join("..v2/k"), "2").unwrap();
    std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
    fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        payload(&[("k", "2")])
    );
    assert!(
        slot.lock().unwrap().is_none(),
        "the handler dropped the watcher"
    );
    // Stopped: a further swap is not reported.
    fs::create_dir(dir.path().join("..v3")).unwrap();
    fs::write(dir.path().join("..v3/k"), "3").unwrap();
    std::os::unix::fs::symlink("..v3", dir.path().join("..data_tmp")).unwrap();
    fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
}
