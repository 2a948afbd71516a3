//! `rekindle watch` against real processes, signals, volumes and HTTP servers.

mod support;

use std::fs;

use rustix::process::Signal;
use support::http::{Answer, Server};
use support::{
    Rekindle, SignalCounter, Volume, count_lines, free_port, http_get, line_count, proc_stat,
    wait_for,
};

/// Longer than the 15 bytes the kernel keeps in /proc/PID/comm.
const LONG_NAME: &str = "rekindle-test-config-consumer";

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn signal_once_per_swap_to_a_long_named_process() {
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1")]);
    let counter = SignalCounter::start(LONG_NAME, tmp.path());
    let dir = volume.dir.to_str().expect("utf8");
    let rk = Rekindle::start(
        &["watch", "--dir", dir, "--process-name", LONG_NAME],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    for (i, content) in ["v2", "v3", "v4"].iter().enumerate() {
        volume.write(&[("app.conf", content), ("other", "x")]);
        wait_for("a SIGHUP", || counter.count("HUP") == i + 1);
        rk.wait_log("config change applied", i + 1);
    }
    // The same content again is no change; the next real one gives exactly one more.
    volume.write(&[("app.conf", "v4"), ("other", "x")]);
    // A value no random temporary path can hold (they have no `-`), so that the
    // check below cannot match the directory's name.
    volume.write(&[("app.conf", "v5-never-logged"), ("other", "x")]);
    // Waits for v5 itself: a v4 wrongly taken for a change would be the fourth
    // "applied" and let the count below be read before v5's signal.
    let v5 = format!(
        "digest={}",
        rekindle::Snapshot::read(&volume.dir)
            .expect("read v5")
            .digest()
            .short()
    );
    wait_for("v5 to be applied", || {
        rk.log_text()
            .lines()
            .any(|line| line.contains("config change applied") && line.contains(&v5))
    });
    // The log is written as each signal is sent, so it shows any extra one.
    assert_eq!(rk.count_in_log("signal sent"), 4, "log:\n{}", rk.log_text());
    wait_for("the fourth SIGHUP", || counter.count("HUP") == 4);
    let log = rk.log_text();
    assert!(log.contains(&format!("pid={}", counter.pid())), "{log}");
    assert!(log.contains("modified=app.conf"), "{log}");
    assert!(
        !log.contains("v5-never-logged"),
        "values must never be logged: {log}"
    );
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn pid_file_is_reread_at_each_change() {
    let (tmp, volume) = Volume::in_tempdir(&[("k", "1")]);
    let first = SignalCounter::start("first-counter", tmp.path());
    let pid_file = tmp.path().join("app.pid");
    fs::write(&pid_file, format!("{}\n", first.pid())).expect("pid file");
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--pid-file",
            pid_file.to_str().expect("utf8"),
            "--signal",
            "SIGUSR1",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("k", "2")]);
    wait_for("USR1 to the first process", || first.count("USR1") == 1);
    let second = SignalCounter::start("second-counter", tmp.path());
    fs::write(&pid_file, format!("{}\n", second.pid())).expect("pid file");
    volume.write(&[("k", "3")]);
    wait_for("USR1 to the second process", || second.count("USR1") == 1);
    rk.wait_log("config change applied", 2);
    assert_eq!(first.count("USR1"), 1);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn no_matching_process_is_an_error_and_retried() {
    let (tmp, volume) = Volume::in_tempdir(&[("k", "1")]);
    let name = "rekindle-test-late-process";
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--process-name",
            name,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("k", "2")]);
    rk.wait_log("no process named", 1);
    rk.wait_log("will try this change again", 1);
    // The process starts late; no new change comes: the retry finds it.
    let counter = SignalCounter::start(name, tmp.path());
    wait_for("the late process to get SIGHUP from a retry", || {
        counter.count("HUP") == 1
    });
    rk.wait_log("config change applied", 1);
    // Delivered once: the next change is the next signal, nothing in between.
    volume.write(&[("k", "3")]);
    rk.wait_log("config change applied", 2);
    wait_for("the second SIGHUP", || counter.count("HUP") == 2);
    assert_eq!(rk.count_in_log("signal sent"), 2, "{}", rk.log_text());
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn a_failed_validation_is_retried_without_a_new_change() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let resolvable = tmp.path().join("dns-is-back");
    let out = tmp.path().join("exec.out");
    let validate = format!("test -e {}", resolvable.display());
    let exec = format!("echo applied >> {}", out.display());
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--validate",
            &validate,
            "--exec",
            &exec,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("conf", "2")]);
    rk.wait_log("validation failed", 1);
    // What made `nginx -t` fail heals (a resolver is back); the content stays the same.
    fs::write(&resolvable, "").expect("heal");
    wait_for("the retried change to be applied", || {
        count_lines(&out, "applied") == 1
    });
    rk.wait_log("config change applied", 1);
    assert!(rk.log_text().contains("attempt="), "{}", rk.log_text());
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn a_swap_during_validation_is_validated_before_acting() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let started = tmp.path().join("validation-started");
    let release = tmp.path().join("release");
    let out = tmp.path().join("exec.out");
    // The first validation waits until the test has swapped newer content in.
    let validate = format!(
        "if [ ! -e {s} ]; then touch {s}; while [ ! -e {r} ]; do sleep 0.02; done; fi",
        s = started.display(),
        r = release.display()
    );
    let exec = format!("echo \"$REKINDLE_DIGEST\" >> {}", out.display());
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--validate",
            &validate,
            "--exec",
            &exec,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("conf", "2")]);
    wait_for("the first validation to start", || started.exists());
    volume.write(&[("conf", "3")]);
    fs::write(&release, "").expect("release");
    rk.wait_log("config change applied", 1);
    let newest = rekindle::Snapshot::from_entries([("conf", "3")]);
    wait_for("the exec output", || line_count(&out) >= 1);
    // Acted once, with the content that was validated last, never with the one the
    // directory no longer held.
    assert_eq!(
        fs::read_to_string(&out).expect("out").trim(),
        newest.digest().to_string(),
        "{}",
        rk.log_text()
    );
    rk.wait_log("changed during validation", 1);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn exec_gets_dir_and_digest() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "1")]);
    let out = tmp.path().join("exec.out");
    let exec = format!(
        "echo \"$REKINDLE_DIR $REKINDLE_DIGEST\" >> {}",
        out.display()
    );
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--exec",
            &exec,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("a", "2"), ("b", "3")]);
    wait_for("the exec output", || {
        fs::read_to_string(&out).is_ok_and(|s| s.lines().count() == 1)
    });
    let line = fs::read_to_string(&out).expect("out");
    let (dir, digest) = line.trim().split_once(' ').expect("two words");
    assert_eq!(dir, volume.dir.to_str().expect("utf8"));
    let expected = rekindle::Snapshot::read(&volume.dir).expect("snapshot");
    assert_eq!(digest, expected.digest().to_string());
    assert_eq!(digest.len(), 64);
    rk.wait_log("exit code 0", 1);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn exec_timeout_kills_the_command() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "1")]);
    let started = tmp.path().join("started.pid");
    // The command starts a process of its own in the background, then hangs.
    let exec = format!("sleep 300 & echo $! > {}; sleep 300", started.display());
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--exec",
            &exec,
            "--exec-timeout",
            "200ms",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("a", "2")]);
    rk.wait_log("did not finish within", 1);
    let background: i32 = fs::read_to_string(&started)
        .expect("pid of the background process")
        .trim()
        .parse()
        .expect("pid");
    // Everything the command started is gone (killed and reaped, not a zombie left).
    wait_for("the background process to be gone", || {
        proc_stat(background).is_none()
    });
    // The retry (after 1 s) may have started a new command by now: only a zombie of
    // the killed one would be a leak.
    let zombies: Vec<i32> = support::proc_children(rk.child.id() as i32)
        .into_iter()
        .filter(|pid| proc_stat(*pid).is_some_and(|(state, _)| state == 'Z'))
        .collect();
    assert!(zombies.is_empty(), "{zombies:?}: {}", rk.log_text());
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn webhook_fails_then_succeeds_with_basic_auth() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "1")]);
    let server = Server::start(5, |n| {
        if n == 0 {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    });
    let url = format!("http://admin:hunter2@127.0.0.1:{}/-/reload", server.port);
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--webhook-url",
            &url,
            "--webhook-retries",
            "3",
            "--webhook-backoff",
            "50ms",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("a", "2")]);
    rk.wait_log("config change applied", 1);
    assert_eq!(server.count(), 2);
    let requests = server.requests();
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/-/reload");
        assert!(
            r.headers
                .contains(&("authorization".into(), "Basic YWRtaW46aHVudGVyMg==".into())),
            "{:?}",
            r.headers
        );
    }
    let log = rk.log_text();
    assert!(log.contains("unexpected status 500"), "{log}");
    assert!(!log.contains("hunter2"), "password in the log: {log}");
    assert!(log.contains("admin:xxxxx@"), "{log}");
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn hanging_webhook_times_out() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "0")]);
    // The first round's two attempts hang; the retry a second later is answered, so
    // the count is final whenever it is read.
    let server = Server::start(10, |n| {
        if n < 2 {
            Answer::Hang
        } else {
            Answer::Status(200)
        }
    });
    let url = server.url("/reload");
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--webhook-url",
            &url,
            "--webhook-retries",
            "1",
            "--webhook-timeout",
            "300ms",
            "--webhook-backoff",
            "10ms",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("a", "1")]);
    rk.wait_log("timed out after 300ms", 2);
    rk.wait_log("gave up after 2 attempt(s)", 1);
    rk.wait_log("config change applied", 1);
    assert_eq!(server.count(), 3);
    wait_for("all connections closed", || server.open() == 0);
    assert_eq!(server.max_open(), 1, "{}", rk.log_text());
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn newer_change_supersedes_a_hanging_webhook() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "0")]);
    let server = Server::start(10, |n| {
        if n < 3 {
            Answer::Hang
        } else {
            Answer::Status(200)
        }
    });
    let url = server.url("/reload");
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--webhook-url",
            &url,
            "--webhook-timeout",
            "20s",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    for i in 1..=4 {
        volume.write(&[("a", &i.to_string())]);
        wait_for("the webhook request", || server.count() == i);
    }
    rk.wait_log("superseded by a newer change", 3);
    rk.wait_log("config change applied", 1);
    wait_for("all connections closed", || server.open() == 0);
    // Each hanging call was dropped when the next change came: never two at once.
    assert_eq!(
        server.max_open(),
        1,
        "requests piled up:\n{}",
        rk.log_text()
    );
    assert_eq!(server.count(), 4);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn validation_failure_blocks_the_action() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "good 1")]);
    let out = tmp.path().join("exec.out");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let exec = format!("echo applied >> {}", out.display());
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--validate",
            "grep -q good \"$REKINDLE_DIR/conf\" || { echo \"config is not good\" >&2; exit 3; }",
            "--exec",
            &exec,
            "--listen",
            &listen,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    wait_for("readiness", || {
        http_get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
    volume.write(&[("conf", "bad")]);
    rk.wait_log("validation failed", 1);
    let log = rk.log_text();
    assert!(
        log.contains("config is not good"),
        "stderr tail missing: {log}"
    );
    assert!(log.contains("exit code 3"), "{log}");
    assert_eq!(count_lines(&out, "applied"), 0);
    volume.write(&[("conf", "good 2")]);
    wait_for("the exec after a valid change", || {
        count_lines(&out, "applied") == 1
    });
    // The exec's output appears before rekindle has seen it exit; the change
    // line is logged after its outcome is counted.
    rk.wait_log("config change applied", 1);
    let (status, metrics) = http_get(port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("rekindle_validation_failures_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rekindle_changes_total 2"), "{metrics}");
    assert!(
        metrics.contains("rekindle_actions_total{action=\"exec\",result=\"success\"} 1"),
        "{metrics}"
    );
    assert_eq!(http_get(port, "/healthz").map(|(s, _)| s), Some(200));
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn readiness_waits_for_every_directory() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "1")]);
    let missing = tmp.path().join("not-yet");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--dir",
            missing.to_str().expect("utf8"),
            "--exec",
            "true",
            "--listen",
            &listen,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    wait_for("the server", || http_get(port, "/healthz").is_some());
    let (status, body) = http_get(port, "/readyz").expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not-yet"), "{body}");
    fs::create_dir(&missing).expect("mkdir");
    wait_for("readiness", || {
        http_get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn reload_on_start_acts_on_the_first_read() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "1")]);
    let counter = SignalCounter::start("start-counter", tmp.path());
    let pid = counter.pid().to_string();
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--pid",
            &pid,
            "--reload-on-start",
        ],
        tmp.path(),
    );
    wait_for("a SIGHUP at start", || counter.count("HUP") == 1);
    rk.wait_log("config change applied", 1);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn json_logs() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "1")]);
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--exec",
            "true",
            "--log-format",
            "json",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("a", "2"), ("new", "x")]);
    rk.wait_log("config change applied", 1);
    let line = rk
        .log_text()
        .lines()
        .find(|l| l.contains("config change applied"))
        .expect("line")
        .to_owned();
    let value: serde_json::Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(value["added"], "new");
    assert_eq!(value["modified"], "a");
    assert_eq!(value["digest"].as_str().map(str::len), Some(12));
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn sigterm_stops_cleanly() {
    let (tmp, volume) = Volume::in_tempdir(&[("a", "1")]);
    let mut rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--exec",
            "true",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    rk.signal(Signal::TERM);
    assert!(rk.wait_exit().success());
}

#[test]
fn bad_flags_are_usage_errors() {
    let cases: &[&[&str]] = &[
        &["watch", "--dir", "/tmp"],
        &["watch", "--dir", "/tmp", "--exec", "true", "--bogus"],
        &[
            "watch",
            "--dir",
            "/tmp",
            "--process-name",
            "x",
            "--signal",
            "NOPE",
        ],
        &[
            "watch",
            "--dir",
            "/tmp",
            "--webhook-url",
            "https://example/",
        ],
        &[
            "watch",
            "--dir",
            "/tmp",
            "--exec",
            "true",
            "--exec-timeout",
            "soon",
        ],
        &["run", "--watch", "/tmp"],
        &["frobnicate"],
        &[],
        &["--volume-dir", "/tmp"],
    ];
    for args in cases {
        let (status, stderr) = support::run_to_end(args, &[]);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error:") || stderr.contains("Usage:"),
            "{args:?}: {stderr}"
        );
    }
    let (_, stderr) = support::run_to_end(
        &[
            "watch",
            "--dir",
            "/tmp",
            "--process-name",
            "x",
            "--signal",
            "NOPE",
        ],
        &[],
    );
    assert!(stderr.contains("unknown signal"), "{stderr}");
}

#[test]
fn help_teaches() {
    let (status, _) = support::run_to_end(&["watch", "--help"], &[]);
    assert!(status.success());
    let output = Rekindle::command()
        .args(["watch", "--help"])
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Examples:"), "{text}");
    assert!(text.contains("--process-name"), "{text}");
}

#[test]
#[ignore = "needs the kubelet's AtomicWriter (scripts/provision-k8s.sh)"]
fn kubelet_writer_swaps_signal_exactly_once_each() {
    let (tmp, volume) = Volume::in_tempdir(&[("nested/app.conf", "0"), ("top", "t")]);
    let counter = SignalCounter::start(LONG_NAME, tmp.path());
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--process-name",
            LONG_NAME,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    for i in 1..=10 {
        volume.write(&[("nested/app.conf", &i.to_string()), ("top", "t")]);
        rk.wait_log("config change applied", i);
        // The kubelet writes nothing when nothing changed; nor do we signal.
        volume.write(&[("nested/app.conf", &i.to_string()), ("top", "t")]);
    }
    wait_for("ten SIGHUPs", || counter.count("HUP") == 10);
    assert_eq!(rk.count_in_log("signal sent"), 10, "{}", rk.log_text());
}

/// The kernel's own inotify queue overflow: rekindle is stopped (SIGSTOP) so it
/// cannot drain its queue, the directory is churned past
/// `fs.inotify.max_queued_events`, and only then the volume is swapped, so the
/// swap's events are dropped by the kernel. The overflow marker must make
/// rekindle re-read, and the change must be acted on exactly once.
#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn inotify_queue_overflow_rereads_the_directory() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let out = tmp.path().join("exec.out");
    let exec = format!("echo \"$REKINDLE_DIGEST\" >> {}", out.display());
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--exec",
            &exec,
            // The safety net must not be what finds the change.
            "--rescan-interval",
            "1h",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    rk.signal(Signal::STOP);
    wait_for("rekindle to be stopped", || {
        proc_stat(rk.pid()).is_some_and(|(state, _)| state == 'T')
    });
    let queue: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .expect("max_queued_events")
        .trim()
        .parse()
        .expect("a number");
    // Each round queues at least two events (create, delete); alternating them
    // keeps the kernel from merging repeats.
    let churn = volume.dir.join("..churn");
    for _ in 0..queue / 2 + 100 {
        fs::write(&churn, b"").expect("create");
        fs::remove_file(&churn).expect("delete");
    }
    volume.write(&[("conf", "2")]);
    rk.signal(Signal::CONT);
    rk.wait_log("inotify queue overflowed", 1);
    rk.wait_log("config change applied", 1);
    let expected = rekindle::Snapshot::read(&volume.dir).expect("snapshot");
    assert_eq!(
        fs::read_to_string(&out).expect("exec output"),
        format!("{}\n", expected.digest())
    );
}

/// A target owned by another user: the kernel refuses the signal (EPERM), and
/// the error says why and what to do. rekindle runs as `nobody` through
/// `setpriv` (directly as root, else through `sudo -n`), the target as us.
#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh) and root or sudo"]
fn signal_refused_by_the_kernel_names_the_likely_cause() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    // Let `nobody` read the volume.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let name = "rekindle-test-other-user";
    let counter = SignalCounter::start(name, tmp.path());
    let port = free_port();
    let mut command = if rustix::process::geteuid().is_root() {
        std::process::Command::new("setpriv")
    } else {
        let mut sudo = std::process::Command::new("sudo");
        sudo.args(["-n", "setpriv"]);
        sudo
    };
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_rekindle"))
        .args(["watch", "--dir"])
        .arg(&volume.dir)
        .args(["--process-name", name, "--listen"])
        .arg(format!("127.0.0.1:{port}"));
    let rk = Rekindle::spawn(command, tmp.path().join("rekindle.log"));
    rk.wait_log("watching", 1);
    volume.write(&[("conf", "2")]);
    rk.wait_log("config change: action failed", 1);
    let log = rk.log_text();
    for expected in [
        &format!("not permitted to signal process {}", counter.pid()),
        "it runs as UID 0 and rekindle as UID 65534",
        "CAP_KILL",
        "shareProcessNamespace",
    ] {
        assert!(log.contains(expected), "{expected:?} missing:\n{log}");
    }
    assert_eq!(counter.count("HUP"), 0);
    // Counted, and retried (the retry fails the same way, so the count may have grown).
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    assert!(
        metrics.contains("rekindle_actions_total{action=\"signal\",result=\"failure\"}"),
        "{metrics}"
    );
    rk.wait_log("will try this change again", 1);
}

/// `--pid` names one process: when it exits and another process gets its PID, the
/// signal is refused (the start time differs), not sent to the stranger.
#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh) and root (ns_last_pid)"]
fn pid_target_refuses_a_process_that_reused_the_pid() {
    let (tmp, volume) = Volume::in_tempdir(&[("k", "1")]);
    let mut target = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn target");
    let pid = i32::try_from(target.id()).expect("pid");
    let pid_text = pid.to_string();
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--pid",
            &pid_text,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    target.kill().expect("kill target");
    target.wait().expect("reap target");
    let (mut command, out) = SignalCounter::command("rekindle-test-stranger", tmp.path());
    command.stdin(std::process::Stdio::null());
    let _stranger = support::spawn_with_pid(pid, command).expect("a process with the reused PID");
    wait_for("the stranger to start", || count_lines(&out, "ready") == 1);
    volume.write(&[("k", "2")]);
    rk.wait_log("config change: action failed", 1);
    assert!(
        rk.log_text().contains("its PID was reused"),
        "{}",
        rk.log_text()
    );
    assert_eq!(count_lines(&out, "HUP"), 0, "{}", rk.log_text());
}

/// A webhook still calling for a change in one directory is superseded by a change in
/// another: that is no failure, and is not logged as one.
#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn a_change_in_another_directory_supersedes_without_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = Volume::new(&tmp.path().join("a"));
    a.write(&[("k", "1")]);
    let b = Volume::new(&tmp.path().join("b"));
    b.write(&[("k", "1")]);
    let server = Server::start(5, |n| {
        if n == 0 {
            Answer::Hang
        } else {
            Answer::Status(200)
        }
    });
    let url = server.url("/reload");
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            a.dir.to_str().expect("utf8"),
            "--dir",
            b.dir.to_str().expect("utf8"),
            "--webhook-url",
            &url,
            "--webhook-timeout",
            "20s",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 2);
    a.write(&[("k", "2")]);
    wait_for("the hanging call", || server.count() == 1);
    b.write(&[("k", "2")]);
    rk.wait_log("config change applied", 1);
    let log = rk.log_text();
    assert!(log.contains("config change superseded"), "{log}");
    assert!(!log.contains("action failed"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

/// No config value reaches a log line or a metric, whatever fails: validation, exec,
/// webhook. Values may be Secrets.
#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn no_config_value_reaches_logs_or_metrics() {
    const SECRET: &str = "s3cr3t-VALUE-8c1f";
    let (tmp, volume) = Volume::in_tempdir(&[("password", "harmless")]);
    let server = Server::start(50, |_| Answer::Status(500));
    let url = server.url("/reload");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let gate = tmp.path().join("valid");
    fs::write(&gate, "").expect("gate");
    let validate = format!("test -e {}", gate.display());
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--validate",
            &validate,
            "--exec",
            "exit 3",
            "--webhook-url",
            &url,
            "--webhook-retries",
            "0",
            "--listen",
            &listen,
            "--log-level",
            "trace",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    // Exec and webhook fail.
    volume.write(&[("password", SECRET), ("api_key", &format!("{SECRET}-key"))]);
    rk.wait_log("config change: action failed", 1);
    // Validation fails.
    fs::remove_file(&gate).expect("close the gate");
    volume.write(&[("password", &format!("{SECRET}-2"))]);
    rk.wait_log("validation failed", 1);
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    let log = rk.log_text();
    // Key names are logged (they say what changed); values never.
    assert!(log.contains("api_key"), "{log}");
    assert!(!log.contains(SECRET), "a value reached the log:\n{log}");
    assert!(
        !metrics.contains(SECRET),
        "a value reached the metrics:\n{metrics}"
    );
}

/// A volume above `--max-volume-size` is not applied; the log names the file that
/// crossed the limit, and a volume back under it is applied.
#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn a_volume_above_the_size_limit_is_refused_naming_the_file() {
    let (tmp, volume) = Volume::in_tempdir(&[("small", "1")]);
    let out = tmp.path().join("exec.out");
    let exec = format!("echo applied >> {}", out.display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().expect("utf8"),
            "--exec",
            &exec,
            "--max-volume-size",
            "1Ki",
            "--listen",
            &listen,
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    let big = "x".repeat(2048);
    volume.write(&[("small", "1"), ("big.conf", &big)]);
    rk.wait_log("cannot read directory", 1);
    let log = rk.log_text();
    assert!(log.contains("big.conf"), "{log}");
    assert!(log.contains("1024"), "the limit is named: {log}");
    // Logged as the read fails, counted when the failure reaches the driver.
    wait_for("the read error to be counted", || {
        http_get(port, "/metrics")
            .is_some_and(|(_, metrics)| metrics.contains("rekindle_watch_errors_total 1\n"))
    });
    assert_eq!(count_lines(&out, "applied"), 0);
    volume.write(&[("small", "2")]);
    wait_for("the volume under the limit", || {
        count_lines(&out, "applied") == 1
    });
}
