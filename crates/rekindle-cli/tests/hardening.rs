//! Hardening of `rekindle watch` against a hostile or unlucky environment: a
//! metrics listener whose process ran out of file descriptors, clients that
//! never finish their request, and webhooks that answer with another 2xx than
//! 200. Everything runs on a plain temporary directory (no kubelet writer
//! needed) and on 127.0.0.1 only.

// Only part of the shared support is used here (not the kubelet writer).
#[allow(unused_imports)]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::http::{Answer, Server};
use support::{Rekindle, free_port, http_get, wait_for};

/// A watched directory `config` under `tmp` (the log goes to `tmp`, outside
/// it: a log inside would be a change of its own).
fn config_dir(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("config");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(dir.join("key"), "value").expect("write key");
    dir
}

/// Starts `rekindle watch` on `tmp/config` with a metrics listener on `port`,
/// plus `extra` arguments, and waits until `/healthz` answers.
fn start_watch(tmp: &Path, port: u16, extra: &[&str]) -> Rekindle {
    let listen = format!("127.0.0.1:{port}");
    let dir_arg = config_dir(tmp).display().to_string();
    let mut args = vec![
        "watch",
        "--dir",
        dir_arg.as_str(),
        "--listen",
        listen.as_str(),
    ];
    args.extend_from_slice(extra);
    let rekindle = Rekindle::start(&args, tmp);
    wait_http(port);
    rekindle
}

fn wait_http(port: u16) {
    wait_for("the metrics server", || {
        http_get(port, "/healthz").is_some_and(|(status, _)| status == 200)
    });
}

/// utime + stime of a process, in clock ticks (fields 14 and 15 of
/// /proc/PID/stat; the command name may hold spaces, so count after its `)`).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after_name = stat.rsplit_once(')').expect("stat has a command name").1;
    // After the name come field 3 (state) onwards: fields 14 and 15 are the
    // 12th and 13th of those.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// With every file descriptor in use, `accept` fails with EMFILE while the
/// pending connection stays queued: a loop that retries at once burns a whole
/// core. The server must back off, say so once, and recover when descriptors
/// are freed.
#[test]
fn accept_errors_back_off_and_recover() {
    assert!(
        Path::new("/usr/bin/prlimit").exists()
            || Command::new("prlimit").arg("-V").output().is_ok(),
        "prlimit (util-linux) is needed for this test"
    );
    const NOFILE: usize = 64;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = config_dir(tmp.path());
    let port = free_port();

    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_rekindle"))
        .args(["watch", "--dir"])
        .arg(&dir)
        .args(["--exec", "true", "--listen"])
        .arg(format!("127.0.0.1:{port}"));
    // prlimit sets the limit on itself and then execs rekindle: same PID.
    let rekindle = Rekindle::spawn(command, tmp.path().join("rekindle.log"));
    wait_http(port);
    let pid = rekindle.pid();

    // Each accepted connection holds one descriptor; a few more than are left
    // stay in the listen backlog, where accept keeps failing on them.
    let free = NOFILE.saturating_sub(open_fds(pid));
    let clients: Vec<TcpStream> = (0..free + 4)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    wait_for("rekindle to run out of descriptors", || {
        open_fds(pid) >= NOFILE
    });
    // Once the accept loop has hit the limit (it says so once per streak), measure.
    rekindle.wait_log("cannot accept connections", 1);
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 30,
        "the accept loop spins: {used} CPU ticks in 1 s with no descriptor left\n{}",
        rekindle.log_text()
    );

    // Freeing the descriptors brings the server back.
    drop(clients);
    wait_for("/metrics to answer again", || {
        http_get(port, "/metrics").is_some_and(|(status, _)| status == 200)
    });
    // One warning per streak of errors, not one per failed accept. (A second
    // streak is possible if a retry lands while the freed descriptors are
    // still being closed.)
    let log = rekindle.log_text();
    let warnings = log.matches("cannot accept").count();
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} accept warnings:\n{log}"
    );
}

/// A client that sends half a request must not hold its connection (and a
/// descriptor) forever.
#[test]
fn incomplete_request_headers_time_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _rekindle = start_watch(tmp.path(), port, &["--exec", "true"]);

    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .expect("send half a request");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    let result = stream.read_to_end(&mut answer);
    assert!(
        result.is_ok(),
        "the server kept a half-sent request open for {:?}: {result:?}",
        started.elapsed()
    );
    // A complete request is still served.
    assert_eq!(http_get(port, "/healthz").map(|(s, _)| s), Some(200));
}

/// Waits for the log line of the first applied (or failed) change.
fn wait_change_logged(rekindle: &Rekindle) -> String {
    rekindle.wait_log("config change", 1);
    rekindle.log_text()
}

/// Natively, any 2xx answer is a success: 204 No Content is what many reload
/// endpoints return.
#[test]
fn native_webhook_accepts_any_2xx() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(4, |_| Answer::Status(204));
    let url = server.url("/reload");
    let port = free_port();
    let rekindle = start_watch(
        tmp.path(),
        port,
        &[
            "--webhook-url",
            &url,
            "--webhook-retries",
            "0",
            "--reload-on-start",
        ],
    );
    let log = wait_change_logged(&rekindle);
    assert_eq!(server.count(), 1);
    assert!(
        log.contains("config change applied") && !log.contains("FAILED"),
        "a 204 answer counts as a failure:\n{log}"
    );
}

/// An explicit --webhook-status-code is an exact match.
#[test]
fn native_webhook_status_code_is_exact_when_given() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(4, |_| Answer::Status(204));
    let url = server.url("/reload");
    let port = free_port();
    let rekindle = start_watch(
        tmp.path(),
        port,
        &[
            "--webhook-url",
            &url,
            "--webhook-status-code",
            "200",
            "--webhook-retries",
            "0",
            "--reload-on-start",
        ],
    );
    let log = wait_change_logged(&rekindle);
    assert!(
        log.contains("unexpected status 204 (expected 200)"),
        "204 accepted although 200 was asked for:\n{log}"
    );
}

/// configmap-reload's mode keeps its exact match (default 200).
#[test]
fn compat_webhook_status_code_stays_exact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = config_dir(tmp.path());
    let server = Server::start(4, |_| Answer::Status(204));
    let url = server.url("/reload");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let dir_arg = dir.display().to_string();
    let rekindle = Rekindle::start(
        &[
            "--volume-dir",
            &dir_arg,
            "--webhook-url",
            &url,
            "--web.listen-address",
            &listen,
        ],
        tmp.path(),
    );
    wait_http(port);
    // Wait for the first read before changing the content.
    wait_for("the first read", || {
        http_get(port, "/readyz").is_some_and(|(status, _)| status == 200)
    });
    std::fs::write(dir.join("key"), "changed").expect("change key");
    let log = wait_change_logged(&rekindle);
    assert!(
        log.contains("unexpected status 204 (expected 200)"),
        "configmap-reload mode accepted a 204:\n{log}"
    );
}

/// How each directory is watched is in rekindle's log at debug level: the inotify set-up
/// (recursive or not, how many directories), or, without inotify, why it polls.
#[test]
fn the_inotify_set_up_is_logged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("conf");
    std::fs::create_dir_all(dir.join("nested")).expect("dirs");
    let rekindle = Rekindle::start(
        &[
            "watch",
            "--dir",
            dir.to_str().expect("utf8"),
            "--exec",
            "true",
            "--log-level",
            "debug",
        ],
        tmp.path(),
    );
    rekindle.wait_log("watching", 1);
    rekindle.wait_log("inotify watch set up", 1);
    let log = rekindle.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("inotify watch set up"))
        .expect("the set-up line");
    assert!(
        line.contains("recursive=true") && line.contains("directories=2"),
        "a plain directory with one subdirectory is watched recursively, two directories:\n{line}"
    );
}
