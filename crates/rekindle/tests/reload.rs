//! The reload pipeline end to end: kubelet-style swaps → watcher → decode → validate → swap.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use rekindle::{
    Applied, ReloadError, Reloadable, RollbackError, Snapshot, ValidationError, WatchOptions,
};
use serde::Deserialize;
use support::{Volume, eventually, payload};

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Settings {
    #[serde(rename = "app.json")]
    app: App,
    #[serde(rename = "limits.yaml")]
    limits: Limits,
    #[serde(rename = "db.toml")]
    db: Db,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct App {
    name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Limits {
    max: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Db {
    pool: u16,
}

fn good(name: &str, max: u32) -> BTreeMap<String, Vec<u8>> {
    payload(&[
        ("app.json", &format!(r#"{{"name": "{name}"}}"#)),
        ("limits.yaml", &format!("max: {max}\n")),
        ("db.toml", "pool = 4\n"),
    ])
}

fn with(base: BTreeMap<String, Vec<u8>>, key: &str, value: &str) -> BTreeMap<String, Vec<u8>> {
    let mut p = base;
    p.insert(key.to_owned(), value.as_bytes().to_vec());
    p
}

fn options() -> WatchOptions {
    WatchOptions {
        quiet_period: Duration::from_millis(50),
        poll_interval: Duration::from_millis(50),
        ..WatchOptions::default()
    }
}

fn validated() -> rekindle::ReloadableBuilder<Settings> {
    Reloadable::<Settings>::builder().validate(|s| {
        if s.limits.max == 0 || s.limits.max > 10_000 {
            return Err(ValidationError::for_key(
                "limits.yaml",
                "max must be within 1..=10000",
            ));
        }
        Ok(())
    })
}

/// Waits until the config in force has `name`.
fn wait_for_name(config: &Reloadable<Settings>, name: &str) {
    eventually(&format!("config named {name}"), || {
        config.load().app.name == name
    });
}

/// Waits until a rejection whose text contains `needle` is recorded.
fn wait_for_error(config: &Reloadable<Settings>, needle: &str) -> Arc<ReloadError> {
    let mut seen = None;
    eventually(&format!("an error mentioning {needle:?}"), || {
        seen = config
            .last_error()
            .filter(|e| e.to_string().contains(needle));
        seen.is_some()
    });
    seen.expect("checked above")
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn bad_changes_keep_the_last_good_config_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let vol = support::kubelet();
    vol.publish(dir.path(), &good("v1", 10));
    let config = validated().load(dir.path()).unwrap();
    let _watch = config.watch(dir.path(), options()).unwrap();
    assert_eq!(config.current().version(), 1);

    let cases = [
        ("app.json", r#"{"name": "#, "app.json: invalid Json"),
        ("limits.yaml", "max: [1\n", "limits.yaml: invalid Yaml"),
        ("db.toml", "pool = = 4", "db.toml: invalid Toml"),
        (
            "limits.yaml",
            "max: 0\n",
            "invalid: limits.yaml: max must be within 1..=10000",
        ),
        ("limits.yaml", "max: many\n", "limits.yaml.max"),
    ];
    for (key, value, reason) in cases {
        vol.publish(dir.path(), &with(good("v1", 10), key, value));
        let error = wait_for_error(&config, reason);
        let current = config.current();
        assert_eq!(
            current.version(),
            1,
            "{key} {value:?} replaced the config: {error}"
        );
        assert_eq!(current.app.name, "v1");
        // Back to good content between cases so each rejection is a new change.
        vol.publish(dir.path(), &good("v1", 10));
        eventually("the error to clear", || config.last_error().is_none());
    }

    vol.publish(dir.path(), &good("v2", 20));
    wait_for_name(&config, "v2");
    let current = config.current();
    assert_eq!(current.version(), 2);
    assert_eq!(current.limits.max, 20);
    assert!(config.last_error().is_none(), "recovery clears the error");
}

#[test]
fn rollback_to_previous_and_to_a_given_version() {
    let config = validated().history_limit(3).build(Settings {
        app: App {
            name: "builtin".into(),
        },
        limits: Limits { max: 1 },
        db: Db { pool: 1 },
    });
    assert_eq!(config.current().version(), 0);
    assert_eq!(
        config.rollback().unwrap_err(),
        RollbackError::NoEarlierVersion { available: vec![] }
    );
    for (n, name) in ["a", "b", "c", "d"].iter().enumerate() {
        let snap = Snapshot::from_entries(good(name, n as u32 + 1));
        assert!(matches!(config.apply(&snap), Ok(Applied::New(_))));
    }
    let versions: Vec<u64> = config.history().iter().map(|v| v.version()).collect();
    assert_eq!(versions, [2, 3, 4], "history is bounded to 3");

    let back = config.rollback().unwrap();
    assert_eq!((back.version(), back.app.name.as_str()), (3, "c"));
    assert_eq!(config.current().version(), 3);
    assert_eq!(config.rollback().unwrap().version(), 2);
    assert!(matches!(
        config.rollback(),
        Err(RollbackError::NoEarlierVersion { .. })
    ));
    assert_eq!(config.rollback_to(4).unwrap().app.name, "d");
    assert_eq!(
        config.rollback_to(1).unwrap_err(),
        RollbackError::NotInHistory {
            version: 1,
            available: vec![2, 3, 4]
        }
    );
    // A new change after a rollback gets the next number, not a reused one.
    let applied = config.apply(&Snapshot::from_entries(good("e", 9))).unwrap();
    match applied {
        Applied::New(v) => assert_eq!(v.version(), 5),
        Applied::Unchanged => panic!("new content must apply"),
    }
}

#[test]
fn identical_content_is_not_reapplied() {
    let config = validated().build(Settings {
        app: App { name: "x".into() },
        limits: Limits { max: 1 },
        db: Db { pool: 1 },
    });
    let snap = Snapshot::from_entries(good("a", 1));
    assert!(matches!(config.apply(&snap), Ok(Applied::New(_))));
    assert!(matches!(config.apply(&snap), Ok(Applied::Unchanged)));
    assert_eq!(config.current().version(), 1);
}

#[test]
fn metrics_count_reloads_and_show_the_version() {
    let mut registry = Registry::default();
    let config = validated().metrics(&mut registry).build(Settings {
        app: App { name: "x".into() },
        limits: Limits { max: 1 },
        db: Db { pool: 1 },
    });
    config.apply(&Snapshot::from_entries(good("a", 1))).unwrap();
    config
        .apply(&Snapshot::from_entries(good("b", 0)))
        .expect_err("max 0 is invalid");
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for line in [
        "rekindle_reloads_total{result=\"success\"} 1",
        "rekindle_reloads_total{result=\"failure\"} 1",
        "rekindle_config_version 1",
        "rekindle_reload_duration_seconds_count 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let stamp = text
        .lines()
        .find_map(|l| l.strip_prefix("rekindle_last_reload_success_timestamp_seconds "))
        .expect("timestamp gauge");
    assert!(stamp.parse::<f64>().unwrap() > 1.7e9, "{stamp}");
}

#[cfg(feature = "tokio")]
#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn callbacks_and_subscribers_see_each_change() {
    use std::sync::atomic::{AtomicU64, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let vol = support::kubelet();
    vol.publish(dir.path(), &good("v1", 1));
    let config = validated().load(dir.path()).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let seen_in_callback = seen.clone();
    config.on_change(move |v| seen_in_callback.store(v.version(), Ordering::SeqCst));
    let mut receiver = config.subscribe();
    let _watch = config.watch(dir.path(), options()).unwrap();

    vol.publish(dir.path(), &good("v2", 2));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let version = runtime.block_on(async {
        tokio::time::timeout(support::PATIENCE, receiver.changed())
            .await
            .expect("a change within patience")
            .expect("sender alive");
        receiver.borrow_and_update().version()
    });
    assert_eq!(version, 2);
    eventually("the callback", || seen.load(Ordering::SeqCst) == 2);
    config.rollback().unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "rollback runs callbacks too"
    );
    assert_eq!(receiver.borrow().version(), 1);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn missing_directory_is_reported_then_loaded() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("config");
    let config = validated().build(Settings {
        app: App {
            name: "builtin".into(),
        },
        limits: Limits { max: 1 },
        db: Db { pool: 1 },
    });
    let watch = config.watch(&dir, options()).unwrap();
    wait_for_error(&config, "does not exist");
    assert!(!watch.is_ready());
    support::kubelet().publish(&dir, &good("arrived", 5));
    wait_for_name(&config, "arrived");
    assert!(watch.is_ready());
    assert!(config.last_error().is_none());
}

#[test]
fn a_reader_follows_each_new_version() {
    let config = validated().build(Settings {
        app: App {
            name: "builtin".into(),
        },
        limits: Limits { max: 1 },
        db: Db { pool: 1 },
    });
    let mut reader = config.reader();
    assert_eq!(reader.load().version(), 0);
    config.apply(&Snapshot::from_entries(good("a", 1))).unwrap();
    assert_eq!(reader.load().app.name, "a");
    config.apply(&Snapshot::from_entries(good("b", 2))).unwrap();
    config.rollback().unwrap();
    let seen = reader.load();
    assert_eq!((seen.version(), seen.app.name.as_str()), (1, "a"));
}
