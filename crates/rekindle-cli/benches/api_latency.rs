//! API update → application notified, on the real control plane: through the library's
//! `kube` feature (update → `on_change` callback) and through `rekindle sync` (update →
//! directory swapped → SIGHUP received by this process), with the update request's own
//! round trip measured in the same run as the floor.
//!
//! ```text
//! cargo bench -p rekindle-cli --bench api_latency
//! ```
//!
//! `UPDATES` sets the number of measured updates per row (default 200; 5 more are made
//! first as a warm-up and not counted). `REKINDLE_BIN` defaults to the bench profile's
//! own build of `rekindle`.
//!
//! Each sample starts just before the update request (a `replace` of the ConfigMap with
//! one new value) is sent and ends when the notification arrives in this process: the
//! callback runs (row "library"), or the SIGHUP sent by `rekindle sync --pid <this
//! process>` is received (row "sync + signal"). The next update is sent after the
//! notification. The floor row is the update request alone, from send to response.
//! The `rekindle sync` process's memory is read from /proc at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use rekindle::api::ObjectRef;
use rekindle::{Reloadable, Snapshot};
use rekindle_testenv::ControlPlane;
use tokio::signal::unix::{SignalKind, signal};

const WARMUP: usize = 5;
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let updates: usize = std::env::var("UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(updates));
}

fn mk_config_map(name: &str, value: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([("value".to_owned(), value.to_string())].into()),
        ..ConfigMap::default()
    }
}

/// Replaces the ConfigMap's data; returns the instant the request was sent and its round trip.
async fn update(api: &Api<ConfigMap>, name: &str, value: usize) -> (Instant, Duration) {
    let mut current = api.get(name).await.expect("get");
    current.data = mk_config_map(name, value).data;
    let sent = Instant::now();
    api.replace(name, &PostParams::default(), &current)
        .await
        .expect("replace");
    (sent, sent.elapsed())
}

async fn bench(updates: usize) {
    let cluster = ControlPlane::start()
        .await
        .expect("the control plane (scripts/provision-k8s.sh)");
    let client = cluster.client();
    let api = Api::<ConfigMap>::namespaced(client.clone(), "default");
    for name in ["library", "sync"] {
        api.create(&PostParams::default(), &mk_config_map(name, 0))
            .await
            .expect("create");
    }
    println!("API update → application notified, {updates} updates per row (+{WARMUP} warm-up)\n");

    // The library: the callback sends its instant here.
    let config = Reloadable::builder_with(|s: &Snapshot| Ok(s.clone()))
        .load_api(&client, &ObjectRef::config_map("library"))
        .await
        .expect("load_api");
    let (tx, rx) = mpsc::channel::<Instant>();
    config.on_change(move |_| {
        let _ = tx.send(Instant::now());
    });
    let _watch = config.watch_api(client.clone(), ObjectRef::config_map("library"));
    let mut floor = Vec::new();
    let mut library = Vec::new();
    for n in 1..=WARMUP + updates {
        let (sent, rtt) = update(&api, "library", n).await;
        let at = tokio::task::block_in_place(|| rx.recv_timeout(NOTIFY_TIMEOUT))
            .expect("the callback for an update");
        if n > WARMUP {
            floor.push(rtt);
            library.push(at.duration_since(sent));
        }
    }

    // `rekindle sync` signalling this process.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let sync = Sync::start(&cluster, tmp.path());
    let mut signalled = Vec::new();
    for n in 1..=WARMUP + updates {
        let (sent, _) = update(&api, "sync", n).await;
        tokio::time::timeout(NOTIFY_TIMEOUT, hup.recv())
            .await
            .expect("SIGHUP for an update");
        let at = Instant::now();
        if n > WARMUP {
            signalled.push(at.duration_since(sent));
        }
    }
    let rss = status_kib(sync.child.id(), "VmRSS");
    let hwm = status_kib(sync.child.id(), "VmHWM");

    println!("| path | median | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    row("update request round trip (floor)", &mut floor);
    row("library: update → on_change callback", &mut library);
    row("rekindle sync: update → SIGHUP received", &mut signalled);
    println!(
        "\nrekindle sync process after {} updates: RSS {} KiB, peak RSS {} KiB",
        WARMUP + updates,
        rss.map_or("?".into(), |v| v.to_string()),
        hwm.map_or("?".into(), |v| v.to_string())
    );
    println!("kubelet projection delay for comparison (not measured here: no kubelet): 60–120 s");
}

fn row(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        format!("{:.1} ms", samples[i].as_secs_f64() * 1000.0)
    };
    println!(
        "| {label} | {} | {} | {} | {} |",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `rekindle sync --pid <this process>` on the ConfigMap `sync`, killed on drop.
struct Sync {
    child: Child,
}

impl Sync {
    fn start(cluster: &ControlPlane, dir: &Path) -> Sync {
        let bin = std::env::var_os("REKINDLE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rekindle")));
        let log = dir.join("sync.log");
        let to = dir.join("config");
        let child = Command::new(bin)
            .args(["sync", "--configmap", "sync", "--to"])
            .arg(&to)
            .args(["--pid", &std::process::id().to_string()])
            .env("KUBECONFIG", cluster.kubeconfig())
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn rekindle sync");
        let started = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("watching")
        {
            assert!(
                started.elapsed() < NOTIFY_TIMEOUT,
                "rekindle sync did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Sync { child }
    }
}

impl Drop for Sync {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
