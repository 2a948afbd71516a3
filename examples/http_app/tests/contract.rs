//! The example app's HTTP contract, against the real binary and kubelet-style swaps.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(10);

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

struct App {
    child: Child,
    port: u16,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    fn start(config: &Path) -> App {
        let mut child = Command::new(env!("CARGO_BIN_EXE_http_app"))
            .env("CONFIG_PATH", config)
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("the app exited before listening")
                .unwrap();
            if let Some(rest) = line.split("port=").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                break digits.parse().unwrap();
            }
        };
        // Keep draining the log so the app never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        App { child, port }
    }

    fn get(&self, path: &str) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body:?}"))
    }

    fn wait_for_config(&self, what: &str, mut ok: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let config = self.get("/config");
            if ok(&config) {
                return config;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last {config}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
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
        json!({"version": 1, "settings": settings("info", 100, &flags), "last_error": null})
    );
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
        json!({"version": 2, "settings": settings("debug", 500, &flags), "last_error": null})
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
        ("LOG_LEVEL", "loud", "LOG_LEVEL: unknown variant `loud`"),
        (
            "features.json",
            "{\"beta\": ",
            "features.json: invalid Json",
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
        json!({"version": 3, "settings": settings("warn", 10000, &BTreeMap::new()), "last_error": null})
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
