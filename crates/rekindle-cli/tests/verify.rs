//! Verified reloads: `--verify-url` against a real HTTP server on loopback that shows
//! the config digest it runs (as the example app does with `X-Config-Digest`), and
//! `--verify-exec`.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rekindle::Snapshot;
use support::{Rekindle, Volume};

/// A server that answers every GET with 200 and `X-Config-Digest: <shown>`.
fn digest_server() -> (String, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/config", listener.local_addr().unwrap());
    let shown = Arc::new(Mutex::new(String::new()));
    let state = shown.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let digest = state.lock().unwrap().clone();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nx-config-digest: {digest}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    });
    (url, shown)
}

#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh)"]
fn a_reload_counts_once_the_application_shows_the_new_digest() {
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1")]);
    let (url, shown) = digest_server();
    *shown.lock().unwrap() = Snapshot::read(&volume.dir).unwrap().digest().to_string();
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().unwrap(),
            "--exec",
            "true",
            "--verify-url",
            &url,
            "--verify-timeout",
            "5s",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);

    // The application takes a moment to reload; verification waits for it.
    volume.write(&[("app.conf", "v2")]);
    let new = Snapshot::read(&volume.dir).unwrap().digest().to_string();
    std::thread::sleep(Duration::from_millis(300));
    *shown.lock().unwrap() = new;
    rk.wait_log("config change applied", 1);
    let log = rk.log_text();
    assert!(log.contains("verify: ok ("), "{log}");
    assert!(!log.contains("action failed"), "{log}");
}

#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh)"]
fn an_application_that_keeps_the_old_config_is_a_failed_reload_retried() {
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1")]);
    let (url, shown) = digest_server();
    *shown.lock().unwrap() = Snapshot::read(&volume.dir).unwrap().digest().to_string();
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().unwrap(),
            "--exec",
            "true",
            "--verify-url",
            &url,
            "--verify-timeout",
            "1s",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("app.conf", "v2")]);
    rk.wait_log("config change: action failed", 1);
    let log = rk.log_text();
    assert!(log.contains("did not show digest"), "{log}");
    assert!(log.contains("the digest is not in the answer"), "{log}");
    rk.wait_log("will try this change again", 1);
}

#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh)"]
fn verify_exec_gets_the_digest_and_its_exit_code_decides() {
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1")]);
    let expected = tmp.path().join("expected");
    let check = format!(
        "test \"$REKINDLE_DIGEST\" = \"$(cat {})\"",
        expected.display()
    );
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().unwrap(),
            "--exec",
            "true",
            "--verify-exec",
            &check,
            "--verify-timeout",
            "2s",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    // The check refuses (the file names another digest): a failed reload.
    std::fs::write(&expected, "something else").unwrap();
    volume.write(&[("app.conf", "v2")]);
    rk.wait_log("config change: action failed", 1);
    // It accepts the digest of what is there now: the retry succeeds.
    let now = Snapshot::read(&volume.dir).unwrap().digest().to_string();
    std::fs::write(&expected, now).unwrap();
    rk.wait_log("config change applied", 1);
}
