//! The reload pipeline end to end: kubelet-style swaps → watcher → decode → validate → swap.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
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
            .filter(|e| renderings(&**e)[0].contains(needle));
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
        (
            "app.json",
            r#"{"name": "#,
            "app.json: invalid JSON at line 1",
        ),
        (
            "limits.yaml",
            "max: [1\n",
            "limits.yaml: invalid YAML at line ",
        ),
        ("db.toml", "pool = = 4", "db.toml: invalid TOML at line 1"),
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

/// A value no error may ever show: config values may be Secrets.
const SECRET: &str = "s3cr3t-VALUE-8c1f";
/// The same, for values only a number can hold (a PIN, a port).
const SECRET_NUMBER: &str = "8473196254";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Debug,
    Info,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Flags {
    beta: bool,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Leveled {
    level: Level,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Port {
    port: u16,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Nested {
    pool: Size,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Size {
    size: u16,
}

/// Every way `error` is shown: its `Display`, its `Debug`, and the chain of its sources.
fn renderings(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        source = inner.source();
    }
    vec![chain, format!("{error:?}")]
}

/// Decodes `bytes` as the value of `key` into `T` every way the library offers (a typed
/// snapshot, `Format::decode`, and `Reloadable::apply`) and returns each failure's text,
/// or the description of a decode that unexpectedly succeeded.
fn failures<T>(key: &str, bytes: &[u8]) -> Vec<String>
where
    T: serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let snapshot = Snapshot::from_entries([(key, bytes.to_vec())]);
    let mut shown = Vec::new();
    match rekindle::typed::from_snapshot::<BTreeMap<String, T>>(&snapshot) {
        Ok(value) => shown.push(format!("{key}: typed decode succeeded: {value:?}")),
        Err(error) => {
            assert!(error.to_string().contains(key), "{error} names no key");
            shown.extend(renderings(&error));
        }
    }
    match snapshot.decode::<T>(key) {
        Ok(value) => shown.push(format!("{key}: Format::decode succeeded: {value:?}")),
        Err(error) => {
            assert!(error.to_string().contains(key), "{error} names no key");
            shown.extend(renderings(&error));
        }
    }
    let config = Reloadable::<BTreeMap<String, T>>::builder().build(BTreeMap::new());
    match config.apply(&snapshot) {
        Ok(_) => shown.push(format!("{key}: apply succeeded")),
        Err(error) => {
            shown.extend(renderings(&*error));
            let recorded = config.last_error().expect("the failure is recorded");
            shown.extend(renderings(&*recorded));
        }
    }
    shown
}

#[test]
fn no_config_value_appears_in_any_decode_error() {
    let s = SECRET;
    let n = SECRET_NUMBER;
    // The secret followed by a byte that is never UTF-8.
    let not_utf8 = |text: String| {
        let at = text.find(SECRET).expect("the secret is in the text") + SECRET.len();
        let mut bytes = text.into_bytes();
        bytes.insert(at, 0xff);
        bytes
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        // Raw values: scalars parsed from text.
        ("raw u32", failures::<u32>("N", s.as_bytes())),
        ("raw u8 out of range", failures::<u8>("N", n.as_bytes())),
        ("raw i8", failures::<i8>("N", s.as_bytes())),
        ("raw f64", failures::<f64>("N", s.as_bytes())),
        ("raw bool", failures::<bool>("B", s.as_bytes())),
        ("raw enum", failures::<Level>("L", s.as_bytes())),
        ("raw char", failures::<char>("C", s.as_bytes())),
        ("raw as a list", failures::<Vec<u32>>("V", s.as_bytes())),
        (
            "raw not UTF-8",
            failures::<String>("S", &not_utf8(s.to_owned())),
        ),
        // JSON: syntax errors, type errors in nested fields, non-UTF-8.
        (
            "json syntax",
            failures::<Flags>("a.json", format!(r#"{{"beta": {s}}}"#).as_bytes()),
        ),
        (
            "json unterminated",
            failures::<Flags>("a.json", format!(r#"{{"beta": "{s}"#).as_bytes()),
        ),
        (
            "json type",
            failures::<Flags>("a.json", format!(r#"{{"beta": "{s}"}}"#).as_bytes()),
        ),
        (
            "json enum",
            failures::<Leveled>("a.json", format!(r#"{{"level": "{s}"}}"#).as_bytes()),
        ),
        (
            "json number out of range",
            failures::<Port>("a.json", format!(r#"{{"port": {n}}}"#).as_bytes()),
        ),
        (
            "json map value",
            failures::<BTreeMap<String, bool>>("a.json", format!(r#"{{"x": "{s}"}}"#).as_bytes()),
        ),
        (
            "json list item",
            failures::<Vec<u32>>("a.json", format!(r#"[1, "{s}"]"#).as_bytes()),
        ),
        (
            "json not UTF-8",
            failures::<Flags>("a.json", &not_utf8(format!(r#"{{"beta": "{s}"}}"#))),
        ),
        // YAML.
        (
            "yaml syntax",
            failures::<Flags>("b.yaml", format!("beta: [{s}\n").as_bytes()),
        ),
        (
            "yaml unterminated quote",
            failures::<Flags>("b.yaml", format!("beta: \"{s}\n").as_bytes()),
        ),
        (
            "yaml type",
            failures::<Flags>("b.yaml", format!("beta: {s}\n").as_bytes()),
        ),
        (
            "yaml nested type",
            failures::<Nested>("b.yaml", format!("pool:\n  size: {s}\n").as_bytes()),
        ),
        (
            "yaml number out of range",
            failures::<Port>("b.yaml", format!("port: {n}\n").as_bytes()),
        ),
        (
            "yaml not UTF-8",
            failures::<Flags>("b.yaml", &not_utf8(format!("beta: {s}\n"))),
        ),
        // TOML.
        (
            "toml syntax",
            failures::<Flags>("c.toml", format!("beta = {s}\n").as_bytes()),
        ),
        (
            "toml type",
            failures::<Flags>("c.toml", format!("beta = \"{s}\"\n").as_bytes()),
        ),
        (
            "toml nested type",
            failures::<Nested>("c.toml", format!("[pool]\nsize = \"{s}\"\n").as_bytes()),
        ),
        (
            "toml number out of range",
            failures::<Port>("c.toml", format!("port = {n}\n").as_bytes()),
        ),
        (
            "toml not UTF-8",
            failures::<Flags>("c.toml", &not_utf8(format!("beta = \"{s}\"\n"))),
        ),
    ];
    let mut leaks = Vec::new();
    for (case, shown) in &cases {
        assert!(!shown.is_empty(), "{case}: nothing to check");
        for text in shown {
            assert!(!text.contains("succeeded"), "{case}: {text}");
            if text.contains(SECRET) || text.contains(SECRET_NUMBER) {
                leaks.push(format!("{case}: {text}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} renderings show the value:\n{}",
        leaks.len(),
        leaks.join("\n---\n")
    );
}

fn builtin() -> Settings {
    Settings {
        app: App {
            name: "builtin".into(),
        },
        limits: Limits { max: 1 },
        db: Db { pool: 1 },
    }
}

/// Runs `work` on its own thread and gives its result, or `None` if it has not finished
/// within `bound` (it is then left running: a deadlocked thread cannot be stopped).
fn finishes_within<R: Send + 'static>(
    bound: Duration,
    work: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(bound).ok()
}

#[test]
fn validators_may_read_the_config_they_validate() {
    // The validator reaches the config through a handle set once the config exists,
    // as an application's own validator would through its shared state.
    let handle: Arc<OnceLock<Reloadable<Settings>>> = Arc::new(OnceLock::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (in_validator, seen_in_validator) = (handle.clone(), seen.clone());
    let config = validated()
        .validate(move |_| {
            if let Some(config) = in_validator.get() {
                let versions: Vec<u64> = config.history().iter().map(|v| v.version()).collect();
                let last_error = config.last_error().map(|e| e.to_string());
                seen_in_validator
                    .lock()
                    .unwrap()
                    .push((versions, last_error));
            }
            Ok(())
        })
        .build(builtin());
    assert!(handle.set(config.clone()).is_ok());

    let applying = config.clone();
    let result = finishes_within(Duration::from_secs(5), move || {
        applying
            .apply(&Snapshot::from_entries(good("a", 1)))
            .map(|applied| matches!(applied, Applied::New(_)))
    })
    .expect("apply deadlocked: its validator called last_error() and history()");
    assert!(matches!(result, Ok(true)), "{result:?}");

    // A rejected change, then another validated change that sees the rejection.
    config
        .apply(&Snapshot::from_entries(good("b", 0)))
        .expect_err("max 0 is invalid");
    let applying = config.clone();
    let result = finishes_within(Duration::from_secs(5), move || {
        applying
            .apply(&Snapshot::from_entries(good("c", 3)))
            .is_ok()
    })
    .expect("apply deadlocked");
    assert!(result);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], (vec![], None));
    let (versions, last_error) = &seen[seen.len() - 1];
    assert_eq!(versions, &[1]);
    assert!(
        last_error
            .as_deref()
            .is_some_and(|e| e.contains("max must be within")),
        "{last_error:?}"
    );
}

#[test]
fn rollback_does_not_wait_for_a_slow_decode() {
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    // Decodes `name`; a snapshot with a `slow` key blocks until released, so that the
    // test knows a decode is in progress for as long as it needs.
    let config = Reloadable::<String>::builder_with(move |snapshot| {
        if snapshot.get("slow").is_some() {
            let _ = started_tx.send(());
            let _ = release_rx.lock().unwrap().recv_timeout(support::PATIENCE);
        }
        Ok(snapshot.get_str("name").unwrap_or_default().to_owned())
    })
    .build("builtin".to_owned());
    for name in ["one", "two"] {
        config
            .apply(&Snapshot::from_entries([("name", name)]))
            .unwrap();
    }

    let applying = config.clone();
    let slow = thread::spawn(move || {
        applying
            .apply(&Snapshot::from_entries([("name", "three"), ("slow", "")]))
            .map(|applied| match applied {
                Applied::New(v) => v.version(),
                Applied::Unchanged => 0,
            })
    });
    started_rx
        .recv_timeout(support::PATIENCE)
        .expect("the slow decode started");

    let rolling = config.clone();
    let rolled = finishes_within(Duration::from_secs(5), move || {
        rolling.rollback().map(|v| (v.version(), v.value().clone()))
    });
    // Let the decode finish whatever happened, so that no thread is left blocked.
    release_tx.send(()).unwrap();
    let rolled = rolled.expect("rollback waited for a decode in progress");
    assert_eq!(rolled, Ok((1, "one".to_owned())));

    // The slow change, once decoded, is applied over the rollback as the next version.
    assert_eq!(slow.join().unwrap().unwrap(), 3);
    assert_eq!(config.current().value(), "three");
}

#[test]
fn a_read_error_names_the_directory_once_and_keeps_its_cause() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("absent");
    let error = validated().load(&dir).unwrap_err();
    let chain = &renderings(&error)[0];
    assert_eq!(
        chain.matches(&dir.display().to_string()).count(),
        1,
        "{chain}"
    );
    assert!(chain.ends_with("directory does not exist"), "{chain}");
    assert!(
        std::error::Error::source(&error).is_some(),
        "the read error is the source"
    );
}
