//! Faults around `rekindle watch`, produced for real: a key file the sidecar may not
//! read, the signalled process dying and coming back under a new PID, a webhook that
//! refuses connections or closes them unanswered, and SIGTERM in the middle of an
//! action.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

use rekindle_testenv::{FileProjection, KubeletWriter};
use rustix::process::Signal;
use support::{Rekindle, SignalCounter, Volume, wait_for};

const NOBODY: u32 = 65534;

fn needs_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test changes users and file modes as root (scripts/test runs as root in CI)"
    );
}

#[test]
#[ignore = "needs root and the kubelet writer (scripts/provision-k8s.sh)"]
fn an_unreadable_key_file_is_named_and_the_last_content_stays() {
    needs_root();
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1"), ("token", "t1")]);
    // The sidecar runs as nobody; its log and its action's output go where nobody may write.
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let acted = out.join("acted");
    let mut command = Rekindle::command();
    command
        .args(["watch", "--dir"])
        .arg(&volume.dir)
        .args(["--rescan-interval", "1s", "--exec"])
        .arg(format!("echo \"$REKINDLE_DIGEST\" >> {}", acted.display()))
        .uid(NOBODY)
        .gid(NOBODY);
    let rk = Rekindle::spawn(command, out.join("rekindle.log"));
    rk.wait_log("watching", 1);

    // The kubelet writes a Secret's key with mode 0600 (`defaultMode: 0600`) for root:
    // nobody cannot read it.
    let writer = KubeletWriter::locate().expect("scripts/provision-k8s.sh");
    // Values with a `-`, which no random temporary path holds, so that the
    // check below cannot match a directory's name.
    let mut token = FileProjection::new(b"t2-token-value".to_vec());
    token.mode = 0o600;
    let payload = BTreeMap::from([
        (
            "app.conf".to_owned(),
            FileProjection::new(b"v2-app-value".to_vec()),
        ),
        ("token".to_owned(), token),
    ]);
    writer.write_with_modes(&volume.dir, &payload).unwrap();
    let token_now = fs::canonicalize(volume.dir.join("token")).unwrap();
    rk.wait_log("Permission denied", 1);
    let log = rk.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("Permission denied"))
        .unwrap();
    assert!(line.contains("token"), "the file is named: {line}");
    assert!(
        !log.contains("t2-token-value") && !log.contains("v2-app-value"),
        "no value in the log"
    );
    assert!(
        fs::read_to_string(&acted).unwrap_or_default().is_empty(),
        "nothing runs for content that could not be read"
    );

    // Readable again: the content is read (at the next event or rescan) and acted on once.
    fs::set_permissions(&token_now, fs::Permissions::from_mode(0o644)).unwrap();
    wait_for("the action for the readable content", || {
        fs::read_to_string(&acted)
            .unwrap_or_default()
            .lines()
            .count()
            == 1
    });
    assert!(rk.child.id() > 0);
}

#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh)"]
fn a_restarted_process_is_found_under_its_new_pid() {
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1")]);
    let first = SignalCounter::start("faultapp", tmp.path());
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().unwrap(),
            "--process-name",
            "faultapp",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("app.conf", "v2")]);
    wait_for("HUP to the first process", || first.count("HUP") == 1);
    // The change is over (its scan for new matches included) before the process dies.
    rk.wait_log("config change applied", 1);

    // The process dies and its successor starts under a new PID.
    let old_pid = first.pid();
    drop(first);
    let _ = fs::remove_file(tmp.path().join("faultapp.signals"));
    let second = SignalCounter::start("faultapp", tmp.path());
    assert_ne!(second.pid(), old_pid);
    volume.write(&[("app.conf", "v3")]);
    wait_for("HUP to the new process", || second.count("HUP") == 1);
}

#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh)"]
fn a_webhook_that_refuses_or_drops_connections_is_retried_until_it_answers() {
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1")]);
    // A port with nobody listening: connections are refused.
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/reload");
    let rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().unwrap(),
            "--webhook-url",
            &url,
            "--webhook-retries",
            "0",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("app.conf", "v2")]);
    rk.wait_log("Connection refused", 1);
    rk.wait_log("will try this change again", 1);

    // Now something listens but closes every connection without an answer.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let dropped = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        drop(stream);
        listener
    });
    let listener = dropped.join().unwrap();
    rk.wait_log("action failed", 2);

    // Then it answers: the change is delivered, once.
    let answered = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
    });
    answered.join().unwrap();
    rk.wait_log("config change applied", 1);
}

#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh)"]
fn sigterm_during_an_action_stops_at_once_and_leaves_no_child() {
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1")]);
    let started = tmp.path().join("started");
    let exec = format!("echo $$ > {}; exec sleep 300", started.display());
    let mut rk = Rekindle::start(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().unwrap(),
            "--exec",
            &exec,
            "--exec-timeout",
            "10m",
        ],
        tmp.path(),
    );
    rk.wait_log("watching", 1);
    volume.write(&[("app.conf", "v2")]);
    // The shell creates the file before it writes the PID: wait for a whole one.
    let read_pid = || {
        fs::read_to_string(&started)
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
    };
    wait_for("the action to start", || read_pid().is_some());
    let pid = read_pid().expect("the action's PID");
    wait_for("the action's sleep", || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });

    let sent = Instant::now();
    rk.signal(Signal::TERM);
    let status = rk.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    // The action's process is gone with it, not left behind as an orphan.
    wait_for("the action's process to be gone", || {
        support::proc_stat(pid).is_none_or(|(state, _)| state == 'Z')
    });
}
