//! Drop-in modes: configmap-reload's flags and config-reloader-sidecar's environment.

mod support;

use support::http::{Answer, Server};
use support::{Rekindle, SignalCounter, Volume, free_port, http_get, wait_for};

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn configmap_reload_flags_and_metrics() {
    let (tmp, volume) = Volume::in_tempdir(&[("prometheus.yml", "a")]);
    let server = Server::start(10, |_| Answer::Status(200));
    let port = free_port();
    let dir = format!("-volume-dir={}", volume.dir.display());
    let hook = format!("http://u:pw@127.0.0.1:{}/-/reload", server.port);
    let listen = format!("127.0.0.1:{port}");
    let rk = Rekindle::start(
        &[
            &dir,
            "-webhook-url",
            &hook,
            "--web.listen-address",
            &listen,
            "-web.telemetry-path=/m",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("prometheus.yml", "b")]);
    rk.wait_log("config change applied", 1);
    assert_eq!(server.count(), 1);
    assert_eq!(server.requests()[0].method, "POST");
    let (status, metrics) = http_get(port, "/m").expect("metrics");
    assert_eq!(status, 200);
    let label = format!(
        "webhook=\"http://u:xxxxx@127.0.0.1:{}/-/reload\"",
        server.port
    );
    for expected in [
        format!("configmap_reload_requests_total{{{label},status_code=\"200\"}} 1"),
        format!("configmap_reload_success_reloads_total{{{label}}} 1"),
        format!("configmap_reload_last_reload_error{{{label}}} 0"),
        "configmap_reload_watcher_errors_total 0".to_owned(),
        "rekindle_changes_total 1".to_owned(),
    ] {
        assert!(
            metrics.contains(&expected),
            "{expected} missing:\n{metrics}"
        );
    }
    assert!(!metrics.contains("pw@"));
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn configmap_reload_retries_are_total_attempts() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "1")]);
    // The first round's two attempts fail; the retry a second later succeeds, so
    // the count is final whenever it is read.
    let server = Server::start(10, |n| Answer::Status(if n < 2 { 503 } else { 200 }));
    let port = free_port();
    let rk = Rekindle::start(
        &[
            "--volume-dir",
            volume.dir.to_str().expect("utf8"),
            "--webhook-url",
            &server.url("/"),
            "--webhook-retries",
            "2",
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("a", "2")]);
    rk.wait_log("gave up after 2 attempt(s)", 1);
    rk.wait_log("config change applied", 1);
    assert_eq!(server.count(), 3);
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    assert!(
        metrics.contains("reason=\"retries_exhausted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reason=\"client_response\"} 2"),
        "{metrics}"
    );
}

#[test]
fn configmap_reload_default_listen_address() {
    let (status, stderr) = support::run_to_end(&["--volume-dir", "/tmp", "--help"], &[]);
    assert!(status.success(), "{stderr}");
    let output = Rekindle::command()
        .args(["--volume-dir", "/tmp", "--help"])
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(":9533"), "{text}");
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn config_reloader_sidecar_environment() {
    let (tmp, volume) = Volume::in_tempdir(&[("nginx.conf", "1")]);
    let name = "rekindle-test-sidecar-target";
    let counter = SignalCounter::start(name, tmp.path());
    let mut command = Rekindle::command();
    command
        .env(
            "CONFIG_DIR",
            format!(
                "{},{}",
                volume.dir.display(),
                tmp.path().join("absent").display()
            ),
        )
        .env("PROCESS_NAME", name)
        .env("RELOAD_SIGNAL", "SIGUSR2");
    let rk = Rekindle::spawn(command, tmp.path().join("rekindle.log"));
    rk.wait_log("watching", 1);
    for i in 1..=3 {
        volume.write(&[("nginx.conf", &format!("{}", i + 1))]);
        wait_for("one USR2 per update", || counter.count("USR2") == i);
    }
    rk.wait_log("config change applied", 3);
    assert_eq!(counter.count("USR2"), 3);
    assert_eq!(counter.count("HUP"), 0);
}

#[test]
fn config_reloader_sidecar_needs_process_name() {
    let (status, stderr) = support::run_to_end(&[], &[("CONFIG_DIR", "/tmp")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("PROCESS_NAME"), "{stderr}");
}
