//! The example app's HTTP contract, against the real binary and kubelet-style swaps.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{Value, json};
use support::App;

/// Publishes `pairs` through the kubelet's own AtomicWriter.
fn publish(dir: &Path, pairs: &[(&str, &str)]) {
    let writer = rekindle_testenv::KubeletWriter::locate()
        .unwrap_or_else(|e| panic!("{e} (run scripts/provision-k8s.sh)"));
    fs::create_dir_all(dir).unwrap();
    let payload: BTreeMap<String, Vec<u8>> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    writer.write(dir, &payload).unwrap();
}

/// The public digest of what `dir` holds: what `GET /config` and `X-Config-Digest` say.
fn digest_of(dir: &Path) -> String {
    rekindle::Snapshot::read(dir).unwrap().digest().to_string()
}

/// The `X-Config-Digest` header of `GET path`, if any.
fn digest_header(app: &App, path: &str) -> Option<String> {
    let (head, _) = app.get_text(path);
    head.lines()
        .find_map(|l| l.strip_prefix("x-config-digest: "))
        .map(str::to_owned)
}

fn settings(level: &str, max: u32, flags: &BTreeMap<&str, bool>) -> Value {
    json!({"log_level": level, "max_connections": max, "feature_flags": flags})
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn serves_reloads_and_rejects_per_contract() {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    publish(
        &config_dir,
        &[
            ("LOG_LEVEL", "info\n"),
            ("MAX_CONNECTIONS", "100\n"),
            ("features.json", r#"{"dark_mode": true}"#),
        ],
    );
    let app = App::start(&config_dir);

    assert_eq!(app.get("/health"), json!({"status": "healthy"}));
    let flags = BTreeMap::from([("dark_mode", true)]);
    assert_eq!(
        app.get("/config"),
        json!({"version": 1, "digest": digest_of(&config_dir), "settings": settings("info", 100, &flags), "last_error": null})
    );
    // Every response names the config in force, so a reload can be verified.
    for path in ["/config", "/health", "/feature/x", "/metrics"] {
        assert_eq!(
            digest_header(&app, path),
            Some(digest_of(&config_dir)),
            "{path}"
        );
    }
    assert_eq!(
        app.get("/feature/dark_mode"),
        json!({"feature": "dark_mode", "enabled": true})
    );
    assert_eq!(
        app.get("/feature/unknown"),
        json!({"feature": "unknown", "enabled": false})
    );

    publish(
        &config_dir,
        &[
            ("LOG_LEVEL", "debug"),
            ("MAX_CONNECTIONS", "500"),
            ("features.json", r#"{"dark_mode": false, "beta": true}"#),
        ],
    );
    let flags = BTreeMap::from([("dark_mode", false), ("beta", true)]);
    let config = app.wait_for_config("version 2", |c| c["version"] == 2);
    assert_eq!(
        config,
        json!({"version": 2, "digest": digest_of(&config_dir), "settings": settings("debug", 500, &flags), "last_error": null})
    );
    assert_eq!(
        app.get("/feature/beta"),
        json!({"feature": "beta", "enabled": true})
    );

    for (key, bad, reason) in [
        (
            "MAX_CONNECTIONS",
            "0",
            "MAX_CONNECTIONS: must be between 1 and 10000",
        ),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: unknown variant, expected"),
        (
            "features.json",
            "{\"beta\": ",
            "features.json: invalid JSON at line 1",
        ),
    ] {
        let mut pairs = vec![
            ("LOG_LEVEL", "debug"),
            ("MAX_CONNECTIONS", "500"),
            ("features.json", r#"{"dark_mode": false, "beta": true}"#),
        ];
        pairs.retain(|(k, _)| *k != key);
        pairs.push((key, bad));
        publish(&config_dir, &pairs);
        let config = app.wait_for_config(reason, |c| {
            c["last_error"].as_str().is_some_and(|e| e.contains(reason))
        });
        assert_eq!(config["version"], 2, "{key}={bad:?} replaced the config");
        assert_eq!(config["settings"], settings("debug", 500, &flags));
    }

    publish(
        &config_dir,
        &[("LOG_LEVEL", "warn"), ("MAX_CONNECTIONS", "10000")],
    );
    let config = app.wait_for_config("version 3", |c| c["version"] == 3);
    assert_eq!(
        config,
        json!({"version": 3, "digest": digest_of(&config_dir), "settings": settings("warn", 10000, &BTreeMap::new()), "last_error": null})
    );
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn starts_on_defaults_without_config_and_picks_it_up_later() {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("not-yet");
    let app = App::start(&config_dir);
    let config = app.get("/config");
    assert_eq!(config["version"], 0);
    // The built-in config was read from no file: it has no digest.
    assert_eq!(config["digest"], Value::Null);
    assert_eq!(digest_header(&app, "/health"), None);
    assert_eq!(config["settings"], settings("info", 100, &BTreeMap::new()));
    assert!(
        config["last_error"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{config}"
    );
    // The volume appears whole: written beside it, then renamed into place.
    // (Creating it empty and writing afterwards would be two states the app may
    // rightly see one by one, since an empty plain directory is a valid config.)
    let staging = dir.path().join("staging");
    publish(&staging, &[("MAX_CONNECTIONS", "7")]);
    fs::rename(&staging, &config_dir).unwrap();
    let config = app.wait_for_config("version 1", |c| c["version"] != 0);
    assert_eq!(config["version"], 1, "{config}");
    assert_eq!(config["settings"]["max_connections"], 7);
    assert_eq!(config["last_error"], Value::Null);
}

#[test]
fn bundled_example_config_is_valid() {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let app = App::start(&bundled);
    let config = app.get("/config");
    assert_eq!(config["version"], 1, "{config}");
    assert_eq!(config["last_error"], Value::Null);
}
