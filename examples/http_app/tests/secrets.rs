//! No config value reaches the app's log, `GET /config` or `GET /metrics`, whatever way
//! a change fails: values may be Secrets, and these outputs go to people and log stores.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::path::Path;

use support::App;

/// A value that must never be shown.
const SECRET: &str = "s3cr3t-VALUE-8c1f";
/// The same, as a number that decodes fine but fails validation.
const SECRET_NUMBER: &str = "84731962";

/// Replaces `key` in a plain directory in one step: written beside it under a name the
/// reader skips (`..` prefix), then renamed over it, so the app never reads half a file.
fn put(dir: &Path, key: &str, value: &str) {
    let staging = dir.join(format!("..staging-{key}"));
    fs::write(&staging, value).unwrap();
    fs::rename(&staging, dir.join(key)).unwrap();
}

fn good(dir: &Path) {
    put(dir, "LOG_LEVEL", "info\n");
    put(dir, "MAX_CONNECTIONS", "100\n");
    put(dir, "features.json", r#"{"dark_mode": true}"#);
}

fn shows_a_value(text: &str) -> bool {
    text.contains(SECRET) || text.contains(SECRET_NUMBER)
}

#[test]
fn values_never_reach_the_log_the_config_endpoint_or_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("config");
    fs::create_dir(&dir).unwrap();
    good(&dir);
    // Broken from the start: the first read fails before any watcher runs.
    put(&dir, "MAX_CONNECTIONS", SECRET);
    let mut app = App::start(&dir);
    let mut responses = Vec::new();
    let config = app.wait_for_config("the startup rejection", |c| {
        c["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("MAX_CONNECTIONS"))
    });
    assert_eq!(config["version"], 0, "{config}");
    responses.push(config.to_string());
    put(&dir, "MAX_CONNECTIONS", "100\n");
    app.wait_for_config("version 1", |c| c["version"] == 1);

    let failures = [
        // Decode failures: a raw number, an enum, a type inside a file, file syntax.
        (
            "MAX_CONNECTIONS",
            format!("{SECRET}\n"),
            "MAX_CONNECTIONS: ",
        ),
        (
            "LOG_LEVEL",
            format!("{SECRET}\n"),
            "LOG_LEVEL: unknown variant",
        ),
        (
            "features.json",
            format!(r#"{{"dark_mode": "{SECRET}"}}"#),
            "features.json.dark_mode: invalid type",
        ),
        (
            "features.json",
            format!(r#"{{"dark_mode": {SECRET}}}"#),
            "features.json: invalid JSON",
        ),
        // A validation failure: the number decodes, the validator refuses it.
        (
            "MAX_CONNECTIONS",
            format!("{SECRET_NUMBER}\n"),
            "MAX_CONNECTIONS: must be between",
        ),
    ];
    for (key, value, reason) in &failures {
        put(&dir, key, value);
        let config = app.wait_for_config(reason, |c| {
            c["last_error"].as_str().is_some_and(|e| e.contains(reason))
        });
        assert_eq!(config["version"], 1, "{key} replaced the config: {config}");
        responses.push(config.to_string());
        responses.push(app.get_text("/metrics").1);
        // Back to good content, so that the next failure is a change of its own.
        good(&dir);
        app.wait_for_config("the error to clear", |c| c["last_error"].is_null());
    }

    // The startup rejection and each later one are logged; wait for the last before
    // reading the whole log.
    let rejections = 1 + failures.len();
    app.wait_for_log("every rejection logged", |lines| {
        let logged = lines
            .iter()
            .filter(|l| l.contains("rejected") || l.contains("starting from the built-in config"))
            .count();
        (logged >= rejections).then_some(())
    });
    let log = app.stop();
    let leaks: Vec<&String> = responses.iter().filter(|r| shows_a_value(r)).collect();
    assert!(leaks.is_empty(), "responses show a value: {leaks:#?}");
    let leaked: Vec<&str> = log.lines().filter(|l| shows_a_value(l)).collect();
    assert!(leaked.is_empty(), "log lines show a value: {leaked:#?}");
    assert!(log.contains("config change rejected"), "{log}");
    assert!(
        log.contains("MAX_CONNECTIONS"),
        "the log names the key: {log}"
    );
}
