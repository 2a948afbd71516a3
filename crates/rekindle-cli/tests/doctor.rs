//! `rekindle doctor` on real things: a volume written by the kubelet's own writer, a
//! plain directory, a file bind-mounted out of a volume (what `subPath` does), a process
//! of another user, variables named like keys. Exit codes 0 / 1 / 2.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use rekindle::Snapshot;
use serde_json::Value;
use support::{KillOnDrop, Rekindle, Volume};

const NOBODY: u32 = 65534;

/// Runs `rekindle doctor ARGS --format json`: (exit code, the report).
fn doctor(args: &[&str], setup: impl FnOnce(&mut Command)) -> (i32, Value) {
    let mut command = Rekindle::command();
    command.arg("doctor").args(args).args(["--format", "json"]);
    setup(&mut command);
    let output = command.stderr(Stdio::inherit()).output().unwrap();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    (output.status.code().unwrap(), report)
}

fn codes(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

/// Problems doctor may find about the machine itself, not the case under test.
fn without_machine_problems(codes: Vec<String>) -> Vec<String> {
    codes.into_iter().filter(|c| c != "inotify").collect()
}

#[test]
#[ignore = "needs the kubelet writer (scripts/provision-k8s.sh)"]
fn a_kubelet_volume_and_a_plain_directory_are_told_apart() {
    let (tmp, volume) = Volume::in_tempdir(&[("app.yaml", "port: 1\n"), ("mode", "fast")]);
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::write(plain.join("settings.json"), "{}").unwrap();
    let (code, report) = doctor(
        &[volume.dir.to_str().unwrap(), plain.to_str().unwrap()],
        |_| {},
    );
    assert_eq!(
        without_machine_problems(codes(&report)),
        Vec::<String>::new()
    );
    assert!(code == 0 || codes(&report).iter().all(|c| c == "inotify"));
    let dirs = report["dirs"].as_array().unwrap();
    assert_eq!(dirs[0]["kind"], "volume");
    assert_eq!(
        dirs[0]["digest"],
        Snapshot::read(&volume.dir).unwrap().digest().to_string(),
        "the digest `rekindle watch` reports"
    );
    assert_eq!(dirs[0]["keys"], serde_json::json!(["app.yaml", "mode"]));
    assert_eq!(dirs[1]["kind"], "plain");
    // Key names only: no value anywhere in the report.
    let text = report.to_string();
    assert!(
        !text.contains("port: 1") && !text.contains("fast"),
        "{text}"
    );
}

/// A bind mount, unmounted on drop.
struct Bind(std::path::PathBuf);

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn bind(source: &Path, target: &Path) -> Option<Bind> {
    let status = Command::new("mount")
        .arg("--bind")
        .arg(source)
        .arg(target)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    status.success().then(|| Bind(target.to_owned()))
}

#[test]
#[ignore = "needs root (mount --bind) and the kubelet writer (scripts/provision-k8s.sh)"]
fn a_file_bind_mounted_out_of_a_volume_is_a_subpath_that_never_updates() {
    let (tmp, volume) = Volume::in_tempdir(&[("nginx.conf", "worker_processes 1;")]);
    // What the kubelet does for `subPath: nginx.conf`: bind the file the volume holds now
    // onto a file of the container's tree.
    let etc = tmp.path().join("etc-nginx");
    fs::create_dir(&etc).unwrap();
    fs::write(etc.join("nginx.conf"), "").unwrap();
    fs::write(etc.join("mime.types"), "").unwrap();
    let Some(_bind) = bind(&volume.dir.join("nginx.conf"), &etc.join("nginx.conf")) else {
        assert!(
            !rustix::process::geteuid().is_root(),
            "mount --bind failed as root"
        );
        eprintln!("skipped: mount --bind is not permitted to this user (CI runs as root)");
        return;
    };
    let (code, report) = doctor(&[etc.to_str().unwrap()], |_| {});
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(without_machine_problems(codes(&report)), ["subpath"]);
    let problem = &report["problems"][0];
    assert!(
        problem["subject"]
            .as_str()
            .unwrap()
            .ends_with("etc-nginx/nginx.conf"),
        "{problem}"
    );
    assert!(problem["fix"].as_str().unwrap().contains("mountPath"));

    // The file itself, given directly.
    let (code, report) = doctor(&[etc.join("nginx.conf").to_str().unwrap()], |_| {});
    assert_eq!(code, 1);
    assert_eq!(report["dirs"][0]["kind"], "subpath");

    // And the trap is real: after the kubelet's next update the bind still shows the old file.
    volume.write(&[("nginx.conf", "worker_processes 4;")]);
    assert_eq!(
        fs::read_to_string(etc.join("nginx.conf")).unwrap(),
        "worker_processes 1;"
    );
}

#[test]
#[ignore = "needs root, to run doctor as another user"]
fn a_process_of_another_user_is_visible_but_not_signallable() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test runs doctor as UID {NOBODY} and needs root (CI runs as root)"
    );
    let sleeper = KillOnDrop(Command::new("sleep").arg("300").spawn().unwrap());
    let pid = sleeper.0.id().to_string();

    let (code, report) = doctor(&["--pid", &pid], |c| {
        c.uid(NOBODY).gid(NOBODY);
    });
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        without_machine_problems(codes(&report)),
        ["process-not-signallable"]
    );
    assert_eq!(report["process"]["found"][0]["uid"], 0);
    assert!(
        report["problems"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("runAsUser")
    );

    // The same process, from its own user: nothing wrong.
    let (_, report) = doctor(&["--pid", &pid], |_| {});
    assert_eq!(
        without_machine_problems(codes(&report)),
        Vec::<String>::new()
    );
    assert_eq!(report["process"]["found"][0]["signallable"], true);

    // A name no process has: not visible, with the shareProcessNamespace fix.
    let (code, report) = doctor(&["--process-name", "no-such-process-x9"], |_| {});
    assert_eq!(code, 1);
    assert_eq!(
        without_machine_problems(codes(&report)),
        ["process-not-visible"]
    );
    assert!(
        report["problems"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("shareProcessNamespace: true")
    );
}

#[test]
fn variables_named_like_keys_are_named_and_their_values_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("LOG_LEVEL"), "debug").unwrap();
    fs::write(tmp.path().join("DB_PASSWORD"), "file-value").unwrap();
    let (code, report) = doctor(&[tmp.path().to_str().unwrap()], |c| {
        c.env("DB_PASSWORD", "hunter2-env-value").env("OTHER", "x");
    });
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        without_machine_problems(codes(&report)),
        ["env-from-config"]
    );
    assert_eq!(
        report["environment"]["from_config"],
        serde_json::json!(["DB_PASSWORD"])
    );
    let text = report.to_string();
    assert!(
        !text.contains("hunter2-env-value") && !text.contains("file-value"),
        "{text}"
    );
}

#[test]
fn missing_directories_and_usage_errors_have_their_exit_codes() {
    let (code, report) = doctor(&["/no/such/dir"], |_| {});
    assert_eq!(code, 1);
    assert_eq!(without_machine_problems(codes(&report)), ["missing"]);
    let status = Rekindle::command()
        .args(["doctor", "--pid", "1", "--process-name", "x"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    // The text report says the same, for people.
    let output = Rekindle::command()
        .args(["doctor", "/no/such/dir"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("[missing] /no/such/dir does not exist"),
        "{text}"
    );
    assert!(text.contains("fix:"), "{text}");
}
