//! `rekindle sync` and `rekindle run --sync-configmap` against the real control plane:
//! the kubelet's exact layout, every update acted on once (across apiserver and etcd
//! restarts), deletion and re-creation, `--once` and its errors, RBAC by resourceNames.
#![cfg(feature = "kube")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ObjectMeta, PostParams};
use kube::core::GroupVersionKind;
use rekindle::Snapshot;
use rekindle_testenv::{ControlPlane, Fault, FaultProxy, FileProjection, KubeletWriter};
use support::{Rekindle, SignalCounter, count_lines};

const NEEDS: &str = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)";
const WITHIN: Duration = Duration::from_secs(30);

fn mk_config_map(name: &str, data: &[(&str, &str)], binary: &[(&str, &[u8])]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        binary_data: Some(
            binary
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

async fn put(api: &Api<ConfigMap>, cm: ConfigMap) {
    let name = cm.metadata.name.clone().unwrap();
    match api.get_opt(&name).await.unwrap() {
        Some(mut current) => {
            current.data = cm.data;
            current.binary_data = cm.binary_data;
            api.replace(&name, &PostParams::default(), &current)
                .await
                .unwrap();
        }
        None => {
            api.create(&PostParams::default(), &cm).await.unwrap();
        }
    }
}

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Creates every object of a YAML manifest in `namespace`.
async fn apply_in_namespace(client: &kube::Client, path: &Path, namespace: &str) {
    let text = fs::read_to_string(path).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    for doc in docs {
        let api_version = doc["apiVersion"].as_str().unwrap();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, doc["kind"].as_str().unwrap());
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
}

/// Polls without blocking the runtime; on a timeout, shows the logs of `under_test`.
async fn eventually(what: &str, under_test: &[&Rekindle], mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > WITHIN {
            let logs: Vec<String> = under_test.iter().map(|r| r.log_text()).collect();
            panic!(
                "timed out waiting for {what}; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lines(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A `sync` (or `run`) child with the admin kubeconfig, its log in `dir`.
fn start(cluster: &ControlPlane, kubeconfig: &Path, args: &[&str], dir: &Path) -> Rekindle {
    let _ = cluster;
    let mut command = Rekindle::command();
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST");
    Rekindle::spawn(command, dir.join("rekindle.log"))
}

/// Runs `rekindle ARGS` to its end with `kubeconfig`: (exit code, stderr).
fn run_once(kubeconfig: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Rekindle::command()
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The directory's layout with timestamped directory names made comparable: every
/// entry's path, type, mode, and content or link target.
fn layout(root: &Path) -> Vec<String> {
    fn normalize(name: &str) -> String {
        let stamp = name
            .strip_prefix("..")
            .and_then(|rest| rest.split_once('.'));
        match stamp {
            Some((date, _)) if date.split('_').count() == 6 => "..TIMESTAMP".to_owned(),
            _ => name.to_owned(),
        }
    }
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = normalize(&entry.file_name().to_string_lossy());
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let shown = format!("{prefix}{name}");
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.push(format!(
                    "{shown} -> {}",
                    normalize(&target.to_string_lossy())
                ));
            } else if meta.is_dir() {
                out.push(format!("{shown}/ {mode:o}"));
                walk(&path, &format!("{shown}/"), out);
            } else {
                let content = fs::read(&path).unwrap();
                out.push(format!("{shown} {mode:o} {content:?}"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn once_writes_exactly_what_the_kubelet_writes() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let kubelet = KubeletWriter::locate().expect(NEEDS);
    let client = cluster.client();
    let tmp = tempfile::tempdir().unwrap();
    let binary: &[u8] = &[0, 159, 146, 150, 255];
    put(
        &Api::namespaced(client.clone(), "default"),
        mk_config_map(
            "app",
            &[("app.yaml", "port: 8080\n"), ("EMPTY", "")],
            &[("logo.bin", binary)],
        ),
    )
    .await;
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("creds".into()),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(
                    "tls.key".to_owned(),
                    ByteString(vec![1, 2, 3]),
                )])),
                ..Secret::default()
            },
        )
        .await
        .unwrap();

    for (flag, name, mode) in [
        ("--configmap", "app", 0o644),
        ("--secret", "default/creds", 0o400),
    ] {
        let ours = tmp.path().join(format!("ours-{mode:o}"));
        let mode_arg = format!("{mode:o}");
        let (code, stderr) = run_once(
            cluster.kubeconfig(),
            &[
                "sync",
                flag,
                name,
                "--to",
                ours.to_str().unwrap(),
                "--mode",
                &mode_arg,
                "--once",
            ],
        );
        assert_eq!(code, Some(0), "{stderr}");

        // The same content through the kubelet's own AtomicWriter.
        let read = Snapshot::read(&ours).unwrap();
        let theirs = tmp.path().join(format!("kubelet-{mode:o}"));
        let payload: BTreeMap<String, FileProjection> = read
            .iter()
            .map(|(k, v)| {
                let mut file = FileProjection::new(v.to_vec());
                file.mode = mode;
                (k.to_owned(), file)
            })
            .collect();
        fs::create_dir(&theirs).unwrap();
        kubelet.write_with_modes(&theirs, &payload).unwrap();
        assert_eq!(layout(&ours), layout(&theirs), "{flag} {name}");
        let object = if flag == "--configmap" {
            rekindle::api::ObjectRef::config_map("app")
        } else {
            rekindle::api::ObjectRef::secret("creds")
        };
        let from_api = rekindle::api::get(&client, &object).await.unwrap();
        assert_eq!(read.digest(), from_api.digest());
    }
    assert_eq!(
        Snapshot::read(tmp.path().join("ours-644"))
            .unwrap()
            .get("logo.bin"),
        Some(binary)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn each_update_is_swapped_in_and_acted_on_once() {
    let mut cluster = ControlPlane::start().await.expect(NEEDS);
    let api = Api::<ConfigMap>::namespaced(cluster.client(), "default");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("config");
    let digests = tmp.path().join("digests");
    put(&api, mk_config_map("app", &[("a", "1")], &[])).await;
    let exec = format!("echo \"$REKINDLE_DIGEST\" >> {}", digests.display());
    let sync = start(
        &cluster,
        cluster.kubeconfig(),
        &[
            "sync",
            "--configmap",
            "app",
            "--to",
            dir.to_str().unwrap(),
            "--exec",
            &exec,
        ],
        tmp.path(),
    );
    eventually("the first sync", &[&sync], || {
        Snapshot::read(&dir).is_ok_and(|s| s.get_str("a") == Some("1"))
    })
    .await;
    sync.wait_log("watching", 1);

    // Each step: the directory holds the object's content, and the exec ran once with
    // the digest `rekindle watch` would report for the directory.
    let steps: Vec<ConfigMap> = vec![
        mk_config_map("app", &[("a", "2"), ("b", "added")], &[]),
        mk_config_map("app", &[("b", "added")], &[("bin", &[0, 255, 7])]),
    ];
    let mut expected = Vec::new();
    for cm in steps {
        put(&api, cm).await;
        let want = rekindle::api::get(
            &cluster.client(),
            &rekindle::api::ObjectRef::config_map("app"),
        )
        .await
        .unwrap();
        expected.push(want.digest().to_string());
        eventually("the exec for the update", &[&sync], || {
            lines(&digests) == expected
        })
        .await;
        assert_eq!(Snapshot::read(&dir).unwrap().digest(), want.digest());
    }
    assert_eq!(fs::read(dir.join("bin")).unwrap(), [0, 255, 7]);
    assert!(
        fs::symlink_metadata(dir.join("a")).is_err(),
        "a removed key's symlink is gone"
    );

    // Restarts under the watch: the update made after each is acted on once.
    cluster.restart_apiserver().await.unwrap();
    put(&api, mk_config_map("app", &[("n", "after apiserver")], &[])).await;
    expected.push(
        Snapshot::from_entries([("n", "after apiserver")])
            .digest()
            .to_string(),
    );
    eventually("the update after the apiserver restart", &[&sync], || {
        lines(&digests) == expected
    })
    .await;
    cluster.restart_etcd().await.unwrap();
    put(&api, mk_config_map("app", &[("n", "after etcd")], &[])).await;
    expected.push(
        Snapshot::from_entries([("n", "after etcd")])
            .digest()
            .to_string(),
    );
    eventually("the update after the etcd restart", &[&sync], || {
        lines(&digests) == expected
    })
    .await;

    // Deleted: the directory stays as it was, nothing runs.
    let before = layout(&dir);
    api.delete("app", &DeleteParams::default()).await.unwrap();
    sync.wait_log("object deleted", 1);
    assert_eq!(layout(&dir), before);
    // Created again with other content: written and acted on.
    put(&api, mk_config_map("app", &[("n", "recreated")], &[])).await;
    expected.push(
        Snapshot::from_entries([("n", "recreated")])
            .digest()
            .to_string(),
    );
    eventually("the re-created object", &[&sync], || {
        lines(&digests) == expected
    })
    .await;
    // One more update closes the window in which a duplicate could still show up.
    put(&api, mk_config_map("app", &[("n", "last")], &[])).await;
    expected.push(Snapshot::from_entries([("n", "last")]).digest().to_string());
    eventually("the last update", &[&sync], || lines(&digests) == expected).await;
    assert_eq!(lines(&digests), expected, "no action ran twice");
    let stamps = fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("..") && name != "..data"
        })
        .count();
    assert_eq!(stamps, 1, "old timestamped directories are removed");
}

/// The API server answering 429 and then 500 (the test environment's fault proxy, the
/// one fake: a real server cannot be made to), with every watch connection cut at the
/// start of each: the update made meanwhile is written and acted on once, afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn answers_429_and_500_lose_no_update_and_repeat_none() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let api = Api::<ConfigMap>::namespaced(cluster.client(), "default");
    let tmp = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::start(cluster.client(), tmp.path())
        .await
        .unwrap();
    let dir = tmp.path().join("config");
    let digests = tmp.path().join("digests");
    put(&api, mk_config_map("app", &[("n", "0")], &[])).await;
    let exec = format!("echo \"$REKINDLE_DIGEST\" >> {}", digests.display());
    let sync = start(
        &cluster,
        proxy.kubeconfig(),
        &[
            "sync",
            "--configmap",
            "app",
            "--to",
            dir.to_str().unwrap(),
            "--exec",
            &exec,
        ],
        tmp.path(),
    );
    eventually("the first sync", &[&sync], || {
        Snapshot::read(&dir).is_ok_and(|s| s.get_str("n") == Some("0"))
    })
    .await;
    sync.wait_log("watching", 1);

    let mut expected = Vec::new();
    for (n, fault) in [
        ("429", Fault::TooManyRequests),
        ("500", Fault::InternalError),
    ] {
        let failed_before = proxy.failed();
        proxy.fail(fault, Duration::from_secs(4));
        proxy.cut();
        put(&api, mk_config_map("app", &[("n", n)], &[])).await;
        expected.push(Snapshot::from_entries([("n", n)]).digest().to_string());
        eventually(
            &format!("the update made during the {n}s"),
            &[&sync],
            || lines(&digests) == expected,
        )
        .await;
        assert!(
            proxy.failed() > failed_before,
            "sync never met the {fault:?}:\n{}",
            sync.log_text()
        );
        assert_eq!(Snapshot::read(&dir).unwrap().get_str("n"), Some(n));
    }
    // One more update closes the window in which a duplicate could still show up.
    put(&api, mk_config_map("app", &[("n", "last")], &[])).await;
    expected.push(Snapshot::from_entries([("n", "last")]).digest().to_string());
    eventually("the last update", &[&sync], || lines(&digests) == expected).await;
    assert_eq!(lines(&digests), expected, "no action ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn once_fails_clearly_for_a_missing_or_forbidden_object() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let admin = cluster.client();
    let tmp = tempfile::tempdir().unwrap();
    let ns = "team";
    let pp = PostParams::default();
    Api::<Namespace>::all(admin.clone())
        .create(
            &pp,
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), ns);
    put(&cms, mk_config_map("app-config", &[("k", "v1")], &[])).await;
    put(&cms, mk_config_map("other", &[("k", "private")], &[])).await;
    // The RBAC the project ships for sync, as a user would apply it.
    apply_in_namespace(&admin, &repo_root().join("deploy/rbac/sync.yaml"), ns).await;
    let token = cluster.service_account_token(ns, "app").await.unwrap();
    let restricted = cluster.kubeconfig_for_token(&token).unwrap();
    let to = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();

    // Allowed: the named object, through the ServiceAccount's own token.
    let (code, stderr) = run_once(
        &restricted,
        &[
            "sync",
            "--configmap",
            "team/app-config",
            "--to",
            &to("mine"),
            "--once",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        Snapshot::read(tmp.path().join("mine"))
            .unwrap()
            .get_str("k"),
        Some("v1")
    );

    // Denied: another name. The message names the object and the rule to add, and
    // nothing is written.
    let (code, stderr) = run_once(
        &restricted,
        &[
            "sync",
            "--configmap",
            "team/other",
            "--to",
            &to("other"),
            "--once",
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("access to configmap/team/other denied"),
        "{stderr}"
    );
    assert!(stderr.contains("resourceNames: [\"other\"]"), "{stderr}");
    assert!(!stderr.contains("private"), "{stderr}");
    assert!(!tmp.path().join("other").exists());

    // Missing.
    let (code, stderr) = run_once(
        cluster.kubeconfig(),
        &[
            "sync",
            "--secret",
            "team/nope",
            "--to",
            &to("nope"),
            "--once",
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("secret/team/nope not found"), "{stderr}");

    // A usage error: --once runs no action.
    let (code, stderr) = run_once(
        cluster.kubeconfig(),
        &[
            "sync",
            "--configmap",
            "team/app-config",
            "--to",
            &to("x"),
            "--once",
            "--exec",
            "true",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = run_once(
        cluster.kubeconfig(),
        &["sync", "--configmap", "Team/Mine", "--to", &to("x")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid namespace \"Team\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn sync_signals_a_process_and_run_syncs_for_its_child() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let api = Api::<ConfigMap>::namespaced(cluster.client(), "default");
    let tmp = tempfile::tempdir().unwrap();
    put(&api, mk_config_map("app", &[("v", "1")], &[])).await;

    // sync + --process-name: the signal counter gets one HUP per update.
    let counter = SignalCounter::start("syncapp", tmp.path());
    let dir = tmp.path().join("sidecar");
    let sync = start(
        &cluster,
        cluster.kubeconfig(),
        &[
            "sync",
            "--configmap",
            "app",
            "--to",
            dir.to_str().unwrap(),
            "--process-name",
            "syncapp",
        ],
        tmp.path(),
    );
    sync.wait_log("watching", 1);
    for n in 2..=4 {
        put(&api, mk_config_map("app", &[("v", &n.to_string())], &[])).await;
        eventually("the HUP for the update", &[&sync], || {
            counter.count("HUP") == n - 1
        })
        .await;
    }
    // Each signal is logged as it is sent: once v4 is applied, one per update, and
    // none for the first sync.
    let v4 = format!(
        "digest={}",
        Snapshot::from_entries([("v", "4")]).digest().short()
    );
    eventually("v4 to be applied", &[&sync], || {
        sync.log_text()
            .lines()
            .any(|line| line.contains("config change applied") && line.contains(&v4))
    })
    .await;
    assert_eq!(
        sync.count_in_log("signal sent"),
        3,
        "the first sync signals nothing:\n{}",
        sync.log_text()
    );

    // run --sync-configmap: the config is there before the program starts, and each
    // update reaches the child as HUP.
    let run_dir = tmp.path().join("run");
    let out = tmp.path().join("child.out");
    let script = format!(
        "trap 'echo $(cat {dir}/v) >> {out}' HUP; echo $(cat {dir}/v) >> {out}; while :; do sleep 1 & wait $!; done",
        dir = run_dir.display(),
        out = out.display()
    );
    let run_log = tmp.path().join("runlog");
    fs::create_dir_all(&run_log).unwrap();
    let run = start(
        &cluster,
        cluster.kubeconfig(),
        &[
            "run",
            "--sync-configmap",
            "default/app",
            "--to",
            run_dir.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
        &run_log,
    );
    eventually(
        "the child to read its config at start",
        &[&sync, &run],
        || lines(&out) == ["4"],
    )
    .await;
    put(&api, mk_config_map("app", &[("v", "5")], &[])).await;
    eventually("the child to reread after HUP", &[&sync, &run], || {
        lines(&out) == ["4", "5"]
    })
    .await;
    // The sidecar watches on its own, so its signal can come after the child's reread.
    eventually(
        "the sidecar to signal the same update",
        &[&sync, &run],
        || counter.count("HUP") == 4,
    )
    .await;
    assert_eq!(count_lines(&out, "5"), 1);
}

/// A small tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test mounts a tmpfs and needs root (scripts/test runs as root in CI)"
        );
        fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed");
        Tmpfs(at.to_owned())
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (a tmpfs) and the control plane (scripts/provision-k8s.sh)"]
async fn a_full_disk_keeps_the_old_content_and_the_write_is_retried() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let api = Api::<ConfigMap>::namespaced(cluster.client(), "default");
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&tmp.path().join("disk"), "64k");
    let dir = disk.0.join("config");
    let digests = tmp.path().join("digests");
    put(&api, mk_config_map("app", &[("v", "small")], &[])).await;
    let exec = format!("echo \"$REKINDLE_DIGEST\" >> {}", digests.display());
    let sync = start(
        &cluster,
        cluster.kubeconfig(),
        &[
            "sync",
            "--configmap",
            "app",
            "--to",
            dir.to_str().unwrap(),
            "--exec",
            &exec,
        ],
        tmp.path(),
    );
    sync.wait_log("watching", 1);
    let before = Snapshot::read(&dir).unwrap();

    // 200 KiB do not fit in 64 KiB: the write fails, and the directory still holds
    // the old content, whole; no action runs.
    let big = "x".repeat(200 * 1024);
    put(&api, mk_config_map("app", &[("v", &big)], &[])).await;
    sync.wait_log("cannot write the new content", 1);
    assert_eq!(Snapshot::read(&dir).unwrap().digest(), before.digest());
    assert!(lines(&digests).is_empty());
    let stamps = fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("..") && name != "..data"
        })
        .count();
    assert_eq!(stamps, 1, "the partial new directory is removed");

    // Room is made: the retry writes it, and the action runs once for it.
    disk.resize("1m");
    let want = Snapshot::from_entries([("v", big.as_str())])
        .digest()
        .to_string();
    eventually("the retried write", &[&sync], || {
        lines(&digests) == [want.clone()]
    })
    .await;
    assert_eq!(
        Snapshot::read(&dir).unwrap().get_str("v"),
        Some(big.as_str())
    );
    drop(sync);
}
