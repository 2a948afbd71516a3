//! `rekindle run`: the supervised program reloaded, restarted, signalled, and
//! its exit status passed on.

mod support;

use std::fs;

use rustix::process::Signal;
use support::{COUNTER_SCRIPT, Rekindle, Volume, count_lines, line_count, proc_stat, wait_for};

fn counter_script(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let script = dir.join("counter.sh");
    fs::write(&script, COUNTER_SCRIPT).expect("script");
    (script.display().to_string(), dir.join("child.signals"))
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn signal_mode_reloads_the_child_once_per_change() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let (script, out) = counter_script(tmp.path());
    let out_s = out.display().to_string();
    let rk = Rekindle::start(
        &[
            "run",
            "--watch",
            volume.dir.to_str().expect("utf8"),
            "--",
            "bash",
            &script,
            &out_s,
        ],
        tmp.path(),
    );
    wait_for("the child to start", || count_lines(&out, "ready") == 1);
    rk.wait_log("watching", 1);
    for i in 1..=3 {
        volume.write(&[("conf", &format!("{}", i + 1))]);
        wait_for("one HUP per change", || count_lines(&out, "HUP") == i);
    }
    rk.wait_log("config change applied", 3);
    assert_eq!(count_lines(&out, "HUP"), 3);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn restart_mode_starts_a_new_child() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let starts = tmp.path().join("starts");
    let program = format!("echo $$ >> {}; exec sleep 1000", starts.display());
    let rk = Rekindle::start(
        &[
            "run",
            "--watch",
            volume.dir.to_str().expect("utf8"),
            "--on-change",
            "restart",
            "--stop-timeout",
            "5s",
            "--",
            "sh",
            "-c",
            &program,
        ],
        tmp.path(),
    );
    let lines = || line_count(&starts);
    wait_for("the first start", || lines() == 1);
    rk.wait_log("watching", 1);
    volume.write(&[("conf", "2")]);
    wait_for("the restart", || lines() == 2);
    rk.wait_log("config change applied", 1);
    let pids: Vec<String> = fs::read_to_string(&starts)
        .expect("starts")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_ne!(pids[0], pids[1]);
    // The old child is gone (reaped, not a zombie).
    assert!(!std::path::Path::new(&format!("/proc/{}", pids[0])).exists());
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn restart_kills_a_child_that_ignores_the_stop_signal() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let starts = tmp.path().join("starts");
    let program = format!(
        "trap '' TERM; echo $$ >> {}; while :; do sleep 1; done",
        starts.display()
    );
    let rk = Rekindle::start(
        &[
            "run",
            "--watch",
            volume.dir.to_str().expect("utf8"),
            "--on-change",
            "restart",
            "--stop-timeout",
            "300ms",
            "--",
            "sh",
            "-c",
            &program,
        ],
        tmp.path(),
    );
    let lines = || line_count(&starts);
    wait_for("the first start", || lines() == 1);
    rk.wait_log("watching", 1);
    volume.write(&[("conf", "2")]);
    wait_for("the restart", || lines() == 2);
    rk.wait_log("sending SIGKILL", 1);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn forwards_signals_and_exits_with_the_child_status() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let out = tmp.path().join("got");
    let program = format!(
        "trap 'echo USR1 >> {0}' USR1; trap 'echo TERM >> {0}; exit 42' TERM; echo ready >> {0}; while :; do sleep 5 & wait $!; done",
        out.display()
    );
    let mut rk = Rekindle::start(
        &[
            "run",
            "--watch",
            volume.dir.to_str().expect("utf8"),
            "--",
            "bash",
            "-c",
            &program,
        ],
        tmp.path(),
    );
    wait_for("the child", || count_lines(&out, "ready") == 1);
    rk.wait_log("watching", 1);
    rk.signal(Signal::USR1);
    wait_for("USR1 forwarded", || count_lines(&out, "USR1") == 1);
    rk.signal(Signal::TERM);
    let status = rk.wait_exit();
    assert_eq!(status.code(), Some(42), "{}", rk.log_text());
    assert_eq!(count_lines(&out, "TERM"), 1);
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn killed_child_gives_128_plus_signal() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let mut rk = Rekindle::start(
        &[
            "run",
            "--watch",
            volume.dir.to_str().expect("utf8"),
            "--",
            "sh",
            "-c",
            "kill -KILL $$",
        ],
        tmp.path(),
    );
    assert_eq!(rk.wait_exit().code(), Some(137), "{}", rk.log_text());
}

#[test]
fn exit_code_passes_through() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rk = Rekindle::start(
        &[
            "run",
            "--watch",
            tmp.path().to_str().expect("utf8"),
            "--",
            "sh",
            "-c",
            "exit 7",
        ],
        tmp.path(),
    );
    assert_eq!(rk.wait_exit().code(), Some(7), "{}", rk.log_text());
}

#[test]
#[ignore = "needs the kubelet writer: scripts/provision-k8s.sh"]
fn validation_failure_keeps_the_child_untouched() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "good 1")]);
    let (script, out) = counter_script(tmp.path());
    let out_s = out.display().to_string();
    let rk = Rekindle::start(
        &[
            "run",
            "--watch",
            volume.dir.to_str().expect("utf8"),
            "--validate",
            "grep -q good \"$REKINDLE_DIR/conf\"",
            "--",
            "bash",
            &script,
            &out_s,
        ],
        tmp.path(),
    );
    wait_for("the child", || count_lines(&out, "ready") == 1);
    rk.wait_log("watching", 1);
    volume.write(&[("conf", "bad")]);
    rk.wait_log("validation failed", 1);
    volume.write(&[("conf", "good 2")]);
    wait_for("one HUP for the valid change", || {
        count_lines(&out, "HUP") == 1
    });
    rk.wait_log("config change applied", 1);
    assert_eq!(count_lines(&out, "HUP"), 1);
}

#[test]
fn exits_with_the_status_of_a_program_that_leaves_a_process_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rk = Rekindle::start(
        &[
            "run",
            "--watch",
            tmp.path().to_str().expect("utf8"),
            "--",
            "sh",
            "-c",
            "sleep 0.1 & exit 3",
        ],
        tmp.path(),
    );
    assert_eq!(rk.wait_exit().code(), Some(3));
}

/// The program's own child outlives the shell that started it: it must be
/// re-parented to rekindle (a subreaper even when not PID 1) and, once it
/// exits, reaped rather than left a zombie.
#[test]
fn orphans_of_the_program_are_adopted_and_reaped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pid_file = tmp.path().join("orphan.pid");
    let release = tmp.path().join("release");
    // The subshell starts a waiter and exits at once, orphaning it; the waiter
    // exits when the test creates `release`.
    let program = format!(
        "(sh -c 'while [ ! -e {release} ]; do sleep 0.05; done' & echo $! > {pid_file}); exec sleep 1000",
        release = release.display(),
        pid_file = pid_file.display()
    );
    let rk = Rekindle::start(
        &[
            "run",
            "--watch",
            tmp.path().to_str().expect("utf8"),
            "--",
            "sh",
            "-c",
            &program,
        ],
        tmp.path(),
    );
    wait_for("the orphan's pid", || {
        fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let orphan: i32 = fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    wait_for("the orphan to be re-parented to rekindle", || {
        proc_stat(orphan).is_some_and(|(_, ppid)| ppid == rk.pid())
    });
    fs::write(&release, b"").expect("release");
    wait_for("the orphan to be reaped", || proc_stat(orphan).is_none());
}

/// The program dies while a change is being validated, and an unrelated process gets its
/// PID. That process must never receive the reload signal: rekindle notices the exit and
/// ends with the program's status (the signal, if it were sent, goes through the
/// program's pidfd and reaches nobody).
#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh) and root (ns_last_pid)"]
fn a_reload_never_signals_a_process_that_reused_the_programs_pid() {
    let (tmp, volume) = Volume::in_tempdir(&[("conf", "1")]);
    let gate = tmp.path().join("gate");
    let pid_file = tmp.path().join("program.pid");
    let program = format!("echo $$ > {}; exec sleep 1000", pid_file.display());
    let validate = format!("while [ ! -e {} ]; do sleep 0.02; done", gate.display());
    let mut rk = Rekindle::start(
        &[
            "run",
            "--watch",
            volume.dir.to_str().expect("utf8"),
            "--validate",
            &validate,
            "--",
            "sh",
            "-c",
            &program,
        ],
        tmp.path(),
    );
    wait_for("the program's pid", || line_count(&pid_file) == 1);
    rk.wait_log("watching", 1);
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    volume.write(&[("conf", "2")]);
    wait_for("the validation to start", || {
        support::proc_children(rk.pid()).len() == 2
    });
    // The program dies mid-validation and is reaped by rekindle; its PID goes to a
    // process of ours that counts the signals it gets.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        Signal::KILL,
    )
    .expect("kill the program");
    wait_for("the program to be reaped", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    let (script, out) = counter_script(tmp.path());
    let mut victim_command = std::process::Command::new("bash");
    victim_command.arg(&script).arg(&out);
    let _victim =
        support::spawn_with_pid(pid, victim_command).expect("a process with the reused PID");
    wait_for("the victim to start", || count_lines(&out, "ready") == 1);
    // Had the validation been allowed to pass, the reload signal would go out now.
    fs::write(&gate, "").expect("open the gate");
    let status = rk.wait_exit();
    assert_eq!(status.code(), Some(128 + 9), "{}", rk.log_text());
    // Stopping mid-validation ends the validation command too: nothing is left behind.
    let gate_text = gate.display().to_string();
    wait_for("the validation command to be gone", || {
        !support::any_process_mentions(&gate_text)
    });
    assert_eq!(count_lines(&out, "HUP"), 0, "{}", rk.log_text());
}
