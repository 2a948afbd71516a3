//! rekindle-operator against stakater/Reloader v1.4.21 on one real control plane
//! (etcd, kube-apiserver, kube-controller-manager 1.20.2 from `rekindle-testenv`), in
//! one run and one harness. Prints figures; asserts nothing about timing.
//!
//! ```text
//! ANCHORS_BIN=~/.cache/rekindle/anchors/bin \
//!     cargo bench -p rekindle-operator --bench operator
//! ```
//!
//! `REKINDLE_OPERATOR_BIN` defaults to the bench profile's own build of
//! `rekindle-operator`; `ANCHORS_BIN` to `$HOME/.cache/rekindle/anchors/bin` (where
//! `reloader` is looked for; without it the Reloader rows are skipped, with a line
//! saying so). `UPDATE_BYTES` (size of the ConfigMap of phases 1 and 2, default 4096),
//! `UPDATES` (default 300), `NEIGHBOURS` (other Deployments in phase 1's namespace,
//! default 0), `CHANGES` (default 100) and `OBJECTS` (default `1000,10000`) size the
//! phases; `BENCH_LOGS=DIR` keeps the tools' and the control
//! plane's logs there. `-- --test` (or `cargo test --benches`) runs a quick
//! pass that only shows the bench works.
//!
//! Both tools run with the admin kubeconfig, `--reload-strategy env-vars`, otherwise
//! their defaults, watching all namespaces; rekindle also gets `--cooldown 0s` outside
//! phase 5 (phase 1 updates one workload back to back and phase 2 changes one ConfigMap
//! every 400 ms, which the default 10 s cooldown would coalesce) and a free loopback
//! `--metrics-addr` (Reloader's `:9090` is fixed in its code, so the two never run at
//! once: each tool runs alone, one after the other, against its own fresh namespaces).
//!
//! 1. **Update → patch latency**: one ConfigMap (`UPDATE_BYTES` of text) and one Deployment
//!    using it through `envFrom` with `reloader.stakater.com/auto: "true"`, and
//!    `NEIGHBOURS` other such Deployments, each with a ConfigMap of its own. Each sample
//!    runs from just before the ConfigMap PATCH is sent to the moment this bench's
//!    Deployment watch delivers the Deployment with a new `STAKATER_*` env value. The
//!    next update starts 100 ms after. Three warm-up updates are not counted. The
//!    floor, measured first with no tool running: the bench PATCHes the Deployment
//!    itself as soon as its ConfigMap PATCH returns (two writes and a watch delivery,
//!    which no tool can beat). The five slowest samples are printed with the time of
//!    their update, to look them up in the tools' logs (`BENCH_LOGS`).
//! 2. **API requests per change**, as counted by the apiserver: the sum of
//!    `apiserver_request_total` by (verb, group, resource, subresource), scraped from
//!    the apiserver's `/metrics` before and after a batch of changes (one ConfigMap
//!    change every 400 ms) in a namespace of 10 Deployments: 5 use the changed
//!    ConfigMap, 5 use another one. The metric has no user label, so the rest is
//!    subtracted: the bench's own requests in the window are counted as they are sent,
//!    and the background (kube-controller-manager rolling the patched Deployments out,
//!    its periodic CronJob/Job polling, the apiserver's own loopback requests) is
//!    measured first by a control batch of the same size and pace with no tool
//!    running, where the bench itself makes the one PATCH per affected Deployment an
//!    ideal tool would make. Only requests on the resources the tools use
//!    (ConfigMaps, Secrets, workloads, Events, Leases) are summed in the verb columns;
//!    what is left of the others after the subtraction is shown apart as residual
//!    noise. The Event columns include a residual of kube-controller-manager's own
//!    Events (core group, as Reloader's), which vary with the pace of the rollouts.
//! 3. **Resident memory**: ConfigMaps of 64 KiB of random text each, created with
//!    concurrent requests; each tool is started on them, and `VmRSS` (and `VmHWM`) is
//!    read from `/proc/PID/status` 10 s after its initial list has been handled.
//!    rekindle is started three times per size and the median reported (at its size,
//!    what the allocator keeps of the list pages varies by a few MiB from start to
//!    start); Reloader once per size.
//! 4. **Time to ready** with the largest set, from just before the process is spawned:
//!    rekindle's `/ready` answering 200 (every watch has listed); for Reloader, which has
//!    no readiness endpoint: its `/metrics` first answering, its log line "Starting
//!    Controller to watch resource type: configmaps" appearing (written before the
//!    informer lists), and its `reloader_events_received_total{event_type="add",
//!    resource_type="configmaps"}` reaching the number of ConfigMaps in the cluster
//!    (its informer has delivered the whole initial list).
//! 5. **Rapid updates**: 20 changes of one ConfigMap sent back to back (each PATCH
//!    awaited, none waiting for a rollout) to a tool started with its defaults
//!    (rekindle's 10 s cooldown included), then the rollouts counted 15 s after the
//!    last one, as the Deployment's generation (one per template change).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use rekindle_testenv::ControlPlane;
use serde_json::json;
use tokio::sync::mpsc;

const RELOADER: &str = "reloader";
const REKINDLE: &str = "rekindle-operator";
/// Reloader's listen address, fixed in its code (`constants.DefaultHttpListenAddr`).
const RELOADER_PORT: u16 = 9090;

/// Phase 1: updates not counted, to be sure the tool is handling changes.
const WARMUP: usize = 3;
/// Phase 1: pause after a patch is seen, so every update finds the tool idle.
const UPDATE_GAP: Duration = Duration::from_millis(100);
/// Phase 2: one change every this long, the same for every batch, so that the
/// periodic background requests are the same in every window.
const CHANGE_INTERVAL: Duration = Duration::from_millis(400);
/// Phase 2: the Deployments using the changed ConfigMap, and those that do not.
const AFFECTED: usize = 5;
const UNAFFECTED: usize = 5;
/// Phase 2: quiet before the first scrape and after the last change.
const QUIET: Duration = Duration::from_secs(2);
/// A change not seen on the workload after this long is a miss.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Phase 5: updates sent back to back, as the issue's "20 rapid updates".
const FLOOD_UPDATES: usize = 20;
/// Phase 5: the wait after the last update: rekindle's default cooldown (10 s) for
/// its trailing rollout, and margin.
const FLOOD_SETTLE: Duration = Duration::from_secs(15);
/// ConfigMaps of phases 1 and 2: a typical configuration file.
const SMALL_DATA: usize = 4 * 1024;
/// ConfigMaps of phases 3 and 4.
const BLOB: usize = 64 * 1024;
const CREATE_CONCURRENCY: usize = 32;
/// The whole run should stay within about this long; creating the large set of
/// ConfigMaps stops early (and says so) if it would not.
const BUDGET: Duration = Duration::from_secs(600);
/// What phases 3 and 4 need after the large set is created: two starts to ready,
/// two settles, margin.
const RESERVE_AFTER_CREATE: Duration = Duration::from_secs(120);
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Phase 3: starts of rekindle per size (the median is reported).
const MEMORY_STARTS: usize = 3;
const POLL: Duration = Duration::from_millis(20);

/// (verb, group, resource, subresource) of `apiserver_request_total`.
type Key = (String, String, String, String);
type Counts = BTreeMap<Key, f64>;

fn key(verb: &str, group: &str, resource: &str, subresource: &str) -> Key {
    (
        verb.to_owned(),
        group.to_owned(),
        resource.to_owned(),
        subresource.to_owned(),
    )
}

#[derive(Debug, Clone)]
struct Settings {
    quick: bool,
    /// Bytes of the ConfigMap of phases 1 and 2.
    update_bytes: usize,
    updates: usize,
    /// Phase 1: other Deployments in the namespace, each with a ConfigMap of its own.
    neighbours: usize,
    changes: usize,
    /// Phase 5: updates sent back to back, and the wait after the last one.
    flood_updates: usize,
    flood_settle: Duration,
    objects: Vec<usize>,
    settle: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("operator: bench");
        return;
    }
    // `cargo bench` passes `--bench`; `cargo bench -- --test` and `cargo test --benches`
    // (no `--bench`) ask for a quick pass.
    let quick = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let settings = if quick {
        Settings {
            quick,
            update_bytes: SMALL_DATA,
            updates: 10,
            neighbours: 2,
            changes: 10,
            flood_updates: 5,
            flood_settle: Duration::from_secs(1),
            objects: vec![50, 200],
            settle: Duration::from_secs(1),
        }
    } else {
        let objects = std::env::var("OBJECTS")
            .ok()
            .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![1_000, 10_000]);
        Settings {
            quick,
            update_bytes: number("UPDATE_BYTES", SMALL_DATA),
            updates: number("UPDATES", 300),
            neighbours: number("NEIGHBOURS", 0),
            changes: number("CHANGES", 100),
            flood_updates: FLOOD_UPDATES,
            flood_settle: FLOOD_SETTLE,
            objects,
            settle: Duration::from_secs(10),
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(settings));
}

async fn run(settings: Settings) {
    let started = Instant::now();
    let rekindle = std::env::var_os("REKINDLE_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rekindle-operator")));
    let anchors = std::env::var_os("ANCHORS_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(".cache/rekindle/anchors/bin"))
        })
        .unwrap_or_default();
    let mut notes = Vec::new();
    machine();
    let mut tools = vec![Tool {
        name: REKINDLE,
        bin: rekindle,
    }];
    let reloader = anchors.join(RELOADER);
    if fs::metadata(&reloader).is_ok_and(|m| m.is_file() && m.len() > 0) {
        tools.push(Tool {
            name: RELOADER,
            bin: reloader,
        });
    } else {
        let note = format!(
            "{RELOADER}: skipped, no binary at {} (set ANCHORS_BIN, or build the anchors with their build.sh)",
            reloader.display()
        );
        println!("{note}");
        notes.push(note);
    }
    for tool in &tools {
        println!(
            "binary: {} = {} ({} bytes)",
            tool.name,
            tool.bin.display(),
            fs::metadata(&tool.bin).map(|m| m.len()).unwrap_or(0)
        );
    }
    let plane = match ControlPlane::start().await {
        Ok(plane) => plane,
        Err(rekindle_testenv::control_plane::Error::Missing(e)) if settings.quick => {
            println!("skipped: {e}");
            return;
        }
        Err(e) => panic!("control plane: {e}"),
    };
    println!(
        "control plane: {} (etcd, kube-apiserver, kube-controller-manager 1.20.2), up after {:.1} s{}",
        plane.url(),
        started.elapsed().as_secs_f64(),
        if settings.quick {
            "; quick mode: figures meaningless"
        } else {
            ""
        }
    );
    let bench = Bench {
        client: plane.client(),
        plane,
        settings,
        started,
        seed: seed(),
    };
    bench.run(tools, notes).await;
}

/// The machine, for the record: figures mean little without it.
fn machine() {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    println!(
        "machine: {cores} cores ({model}), {} MiB RAM, load average {}",
        mem / 1024,
        load_average()
    );
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random seed");
    u64::from_le_bytes(bytes) | 1
}

struct Tool {
    name: &'static str,
    bin: PathBuf,
}

struct Bench {
    plane: ControlPlane,
    client: kube::Client,
    settings: Settings,
    started: Instant,
    seed: u64,
}

/// Phase 1 and 2 results of one tool.
struct ToolRun {
    name: &'static str,
    ready: Ready,
    latency: Latency,
    batch: Batch,
}

/// Everything the summary prints.
struct Results<'a> {
    floor: &'a Latency,
    control: &'a Batch,
    background: &'a Counts,
    runs: &'a [ToolRun],
    floods: &'a [Flood],
    mem: &'a [MemRow],
    notes: &'a [String],
}

/// Phase 5 result of one tool.
struct Flood {
    name: &'static str,
    updates: usize,
    /// Generations of the Deployment: one per template change.
    rollouts: i64,
}

/// Phase 3 and 4 results of one tool at one size.
struct MemRow {
    name: &'static str,
    objects: usize,
    ready: Ready,
    rss_kib: u64,
    hwm_kib: u64,
}

impl Bench {
    async fn run(&self, tools: Vec<Tool>, mut notes: Vec<String>) {
        let s = &self.settings;
        println!(
            "\n# phase 2 baseline: control batch, no tool running ({} changes, one every {} ms, {AFFECTED} affected + {UNAFFECTED} unaffected Deployments)",
            s.changes,
            CHANGE_INTERVAL.as_millis()
        );
        self.api_namespace("api-control").await;
        let control = self.api_batch("api-control", None).await;
        control.print("control (the bench PATCHes each affected Deployment)");
        let background = control.background();
        self.delete_namespaces(&["api-control"]).await;

        println!(
            "\n# phase 1 floor: no tool running; the bench PATCHes the Deployment itself as soon as the ConfigMap PATCH returns"
        );
        self.latency_namespace("lat-floor").await;
        let floor = self.latency("lat-floor", None).await;
        floor.print("floor");
        self.delete_namespaces(&["lat-floor"]).await;

        let mut runs = Vec::new();
        for tool in &tools {
            let lat = format!("lat-{}", short(tool.name));
            let api = format!("api-{}", short(tool.name));
            self.latency_namespace(&lat).await;
            self.api_namespace(&api).await;
            println!("\n# {}: phases 1 and 2", tool.name);
            let expected = self.count_config_maps().await;
            let mut running = self.spawn(tool, "phases-1-2", false);
            let ready = self.wait_ready(&mut running, expected).await;
            ready.print(tool.name, expected);
            if ready.ready.is_none() {
                notes.push(format!("{}: not ready in phases 1–2; skipped", tool.name));
                continue;
            }
            let latency = self.latency(&lat, Some(&mut running)).await;
            latency.print(tool.name);
            let batch = self.api_batch(&api, Some(&mut running)).await;
            batch.print(tool.name);
            running.stop();
            self.delete_namespaces(&[&lat, &api]).await;
            runs.push(ToolRun {
                name: tool.name,
                ready,
                latency,
                batch,
            });
        }
        self.print_requests(&control, &background, &runs);

        let mut floods = Vec::new();
        for tool in &tools {
            println!(
                "\n# {}: phase 5, {} updates back to back, defaults (rekindle's cooldown 10 s)",
                tool.name, s.flood_updates
            );
            match self.flood(tool).await {
                Some(flood) => {
                    println!(
                        "{}: {} updates → {} rollouts",
                        tool.name, flood.updates, flood.rollouts
                    );
                    floods.push(flood);
                }
                None => notes.push(format!("{}: not ready in phase 5; skipped", tool.name)),
            }
        }

        let mut mem = Vec::new();
        let mut have = 0;
        for (i, &target) in s.objects.iter().enumerate() {
            let last = i + 1 == s.objects.len();
            let deadline = if last {
                self.started + BUDGET.saturating_sub(RESERVE_AFTER_CREATE)
            } else {
                Instant::now() + BUDGET
            };
            println!("\n# phases 3 and 4: {target} ConfigMaps of {BLOB} bytes");
            let created = self.create_blobs(have, target, deadline).await;
            have = created;
            if created < target {
                let note = format!(
                    "only {created} of {target} ConfigMaps were created within the time bound; the rows below are for {created}"
                );
                println!("{note}");
                notes.push(note);
            }
            for tool in &tools {
                for _ in 0..self.memory_starts(tool) {
                    match self.memory(tool, have).await {
                        Some(row) => mem.push(row),
                        None => notes.push(format!(
                            "{}: not ready with {have} ConfigMaps within {} s",
                            tool.name,
                            READY_TIMEOUT.as_secs()
                        )),
                    }
                }
            }
        }
        self.summary(&Results {
            floor: &floor,
            control: &control,
            background: &background,
            runs: &runs,
            floods: &floods,
            mem: &mem,
            notes: &notes,
        });
        self.keep_logs();
    }

    /// With `BENCH_LOGS=DIR`, copies the tools' and the control plane's logs there
    /// (the control plane's directory is removed at exit).
    fn keep_logs(&self) {
        let Some(dir) = std::env::var_os("BENCH_LOGS").map(PathBuf::from) else {
            return;
        };
        let _ = fs::create_dir_all(&dir);
        for entry in fs::read_dir(self.plane.dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let _ = fs::copy(&path, dir.join(entry.file_name()));
            }
        }
        println!("logs copied to {}", dir.display());
    }

    // ---- the tools ----

    /// Starts `tool` for phase `what`; `cooldown: false` gives rekindle `--cooldown 0s`.
    fn spawn(&self, tool: &Tool, what: &str, cooldown: bool) -> Running {
        let log = self.plane.dir().join(format!("{}-{what}.log", tool.name));
        let out = fs::File::create(&log).expect("log file");
        let mut command = Command::new(&tool.bin);
        command.args(["--reload-strategy", "env-vars"]);
        let base = if tool.name == RELOADER {
            if let Err(e) = TcpListener::bind(("0.0.0.0", RELOADER_PORT)) {
                panic!("Reloader listens on :{RELOADER_PORT}, which is taken: {e}");
            }
            format!("http://127.0.0.1:{RELOADER_PORT}")
        } else {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            command.args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
            if !cooldown {
                command.args(["--cooldown", "0s"]);
            }
            format!("http://127.0.0.1:{port}")
        };
        for name in [
            "KUBERNETES_NAMESPACE",
            "POD_NAME",
            "POD_NAMESPACE",
            "RELOADER_NAMESPACE",
            "RUST_LOG",
        ] {
            command.env_remove(name);
        }
        command
            .env("KUBECONFIG", self.plane.kubeconfig())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        let spawned = Instant::now();
        let child = command.spawn().expect("the tool starts");
        Running {
            name: tool.name,
            child,
            spawned,
            base,
            log,
        }
    }

    /// Waits until the tool has handled its initial list (see the module comment for
    /// what that means for each tool).
    async fn wait_ready(&self, running: &mut Running, config_maps: usize) -> Ready {
        let mut ready = Ready::default();
        let reloader = running.name == RELOADER;
        loop {
            running.check_alive();
            let elapsed = running.spawned.elapsed();
            if reloader {
                if ready.log_line.is_none()
                    && fs::read_to_string(&running.log).is_ok_and(|log| {
                        log.contains("Starting Controller to watch resource type: configmaps")
                    })
                {
                    ready.log_line = Some(elapsed);
                }
                if let Some((200, body)) = http_get(&format!("{}/metrics", running.base)).await {
                    ready.answered.get_or_insert(elapsed);
                    let adds = metric(
                        &body,
                        "reloader_events_received_total",
                        &[("event_type", "add"), ("resource_type", "configmaps")],
                    );
                    if adds >= config_maps as f64 {
                        ready.ready = Some(elapsed);
                        ready.cpu = cpu_time(running.child.id());
                        return ready;
                    }
                }
            } else if let Some((status, _)) = http_get(&format!("{}/ready", running.base)).await {
                ready.answered.get_or_insert(elapsed);
                if status == 200 {
                    ready.ready = Some(elapsed);
                    ready.cpu = cpu_time(running.child.id());
                    return ready;
                }
            }
            if elapsed > READY_TIMEOUT {
                return ready;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    // ---- phase 1 ----

    /// A ConfigMap `cfg` and a Deployment `web` using it, and `NEIGHBOURS` other
    /// Deployments `app-N`, each using a ConfigMap `app-N` of its own: a namespace as
    /// a team runs it, where a change concerns one workload of many.
    async fn latency_namespace(&self, ns: &str) {
        self.create_namespace(ns).await;
        self.put_config_map(ns, "cfg", 0).await;
        self.create_deployment(ns, "web", "cfg").await;
        for i in 0..self.settings.neighbours {
            let name = format!("app-{i}");
            self.put_config_map(ns, &name, 0).await;
            self.create_deployment(ns, &name, &name).await;
        }
    }

    /// Updates `cfg` and times until `web` carries a new value; without a tool
    /// (`running` is None) the bench PATCHes `web` itself: the floor.
    async fn latency(&self, ns: &str, mut running: Option<&mut Running>) -> Latency {
        let mut tracker = Tracker::start(self.client.clone(), ns);
        tracker.wait_known(&["web".to_owned()]).await;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let mut latency = Latency::default();
        let total = WARMUP + self.settings.updates;
        for i in 0..total {
            if let Some(running) = running.as_deref_mut() {
                running.check_alive();
            }
            let mark = tracker.mark();
            let wall = std::time::SystemTime::now();
            let t0 = Instant::now();
            self.update_config_map(ns, "cfg", i as u64 + 1).await;
            if running.is_none() {
                self.marker_patch(&deployments, "web", "STAKATER_CFG_CONFIGMAP", i)
                    .await;
            }
            match tracker
                .wait_changed(&["web".to_owned()], mark, CHANGE_TIMEOUT)
                .await
            {
                Some(at) if i >= WARMUP => {
                    latency.samples.push(at[0] - t0);
                    latency.slowest.push((at[0] - t0, wall));
                    latency.slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
                    latency.slowest.truncate(5);
                }
                Some(_) => {}
                None => latency.missed += 1,
            }
            tokio::time::sleep(UPDATE_GAP).await;
        }
        latency.samples.sort();
        latency
    }

    // ---- phase 5 ----

    /// `updates` changes of one ConfigMap sent back to back (each PATCH awaited, none
    /// waiting for a rollout) to a tool started with its defaults, then the rollouts
    /// counted once the tool has had `flood_settle` to finish (rekindle's trailing
    /// rollout comes one cooldown after the first).
    async fn flood(&self, tool: &Tool) -> Option<Flood> {
        let ns = format!("flood-{}", short(tool.name));
        self.create_namespace(&ns).await;
        self.put_config_map(&ns, "flap", 0).await;
        self.create_deployment(&ns, "web", "flap").await;
        let expected = self.count_config_maps().await;
        let mut running = self.spawn(tool, "phase-5", true);
        let ready = self.wait_ready(&mut running, expected).await;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let generation = || async {
            deployments
                .get("web")
                .await
                .expect("the flood's Deployment")
                .metadata
                .generation
                .unwrap_or(0)
        };
        let flood = if ready.ready.is_some() {
            let before = generation().await;
            let updates = self.settings.flood_updates;
            for i in 0..updates {
                self.update_config_map(&ns, "flap", i as u64 + 1).await;
            }
            tokio::time::sleep(self.settings.flood_settle).await;
            running.check_alive();
            Some(Flood {
                name: tool.name,
                updates,
                rollouts: generation().await - before,
            })
        } else {
            None
        };
        running.stop();
        self.delete_namespaces(&[&ns]).await;
        flood
    }

    // ---- phase 2 ----

    /// ConfigMaps `shared` and `other`; Deployments `app-N` use `shared`,
    /// `other-N` use `other`.
    async fn api_namespace(&self, ns: &str) {
        self.create_namespace(ns).await;
        self.put_config_map(ns, "shared", 0).await;
        self.put_config_map(ns, "other", 0).await;
        for i in 0..AFFECTED {
            self.create_deployment(ns, &format!("app-{i}"), "shared")
                .await;
        }
        for i in 0..UNAFFECTED {
            self.create_deployment(ns, &format!("other-{i}"), "other")
                .await;
        }
    }

    /// Changes `shared` `changes` times, one change every `CHANGE_INTERVAL`, and waits
    /// each time for the affected Deployments to carry a new value. Without a tool
    /// (`running` is None) the bench PATCHes them itself.
    async fn api_batch(&self, ns: &str, mut running: Option<&mut Running>) -> Batch {
        let affected: Vec<String> = (0..AFFECTED).map(|i| format!("app-{i}")).collect();
        let all: Vec<String> = affected
            .iter()
            .cloned()
            .chain((0..UNAFFECTED).map(|i| format!("other-{i}")))
            .collect();
        let mut tracker = Tracker::start(self.client.clone(), ns);
        tracker.wait_known(&all).await;
        tokio::time::sleep(QUIET).await;
        let lists = tracker.lists.load(Ordering::SeqCst);
        let ends = tracker.ends.load(Ordering::SeqCst);
        let mut own = Counts::new();
        let before = self.apiserver_requests().await;
        let window_start = Instant::now();
        let mut batch = Batch::default();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        for i in 0..self.settings.changes {
            tokio::time::sleep_until((window_start + CHANGE_INTERVAL * i as u32).into()).await;
            if let Some(running) = running.as_deref_mut() {
                running.check_alive();
            }
            let mark = tracker.mark();
            let t0 = Instant::now();
            self.update_config_map(ns, "shared", i as u64 + 1).await;
            *own.entry(key("PATCH", "", "configmaps", "")).or_default() += 1.0;
            if running.is_none() {
                for name in &affected {
                    self.marker_patch(&deployments, name, "STAKATER_SHARED_CONFIGMAP", i)
                        .await;
                    *own.entry(key("PATCH", "apps", "deployments", ""))
                        .or_default() += 1.0;
                }
            }
            match tracker.wait_changed(&affected, mark, CHANGE_TIMEOUT).await {
                Some(at) => batch
                    .last_patched
                    .push(at.iter().max().copied().unwrap_or(t0) - t0),
                None => batch.missed += 1,
            }
        }
        tokio::time::sleep(QUIET).await;
        let after = self.apiserver_requests().await;
        batch.window = window_start.elapsed();
        tracker.drain();
        *own.entry(key("LIST", "apps", "deployments", ""))
            .or_default() += (tracker.lists.load(Ordering::SeqCst) - lists) as f64;
        *own.entry(key("WATCH", "apps", "deployments", ""))
            .or_default() += (tracker.ends.load(Ordering::SeqCst) - ends) as f64;
        batch.unexpected = tracker
            .changes
            .iter()
            .filter(|(name, _)| !affected.contains(name))
            .count();
        batch.changes = self.settings.changes;
        batch.delta = after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v != 0.0)
            .collect();
        own.retain(|_, v| *v != 0.0);
        batch.own = own;
        batch.last_patched.sort();
        batch
    }

    /// What an ideal tool sends: one strategic-merge PATCH of the container's env.
    async fn marker_patch(&self, api: &Api<Deployment>, name: &str, var: &str, generation: usize) {
        let body = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "env": [{"name": var, "value": format!("bench-{generation}")}]}
        ]}}}});
        api.patch(name, &PatchParams::default(), &Patch::Strategic(body))
            .await
            .expect("the bench's own marker patch");
    }

    /// `apiserver_request_total` summed by (verb, group, resource, subresource), for
    /// resource requests only (the scrape itself is a non-resource GET).
    async fn apiserver_requests(&self) -> Counts {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .expect("request");
        let text = self
            .client
            .request_text(request)
            .await
            .expect("apiserver /metrics");
        let mut counts = Counts::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let labels = parse_labels(labels);
            let get = |name: &str| labels.get(name).map(String::as_str).unwrap_or("");
            if get("resource").is_empty() {
                continue;
            }
            let value: f64 = value.trim().parse().unwrap_or(0.0);
            *counts
                .entry(key(
                    get("verb"),
                    get("group"),
                    get("resource"),
                    get("subresource"),
                ))
                .or_default() += value;
        }
        counts
    }

    fn print_requests(&self, control: &Batch, background: &Counts, runs: &[ToolRun]) {
        let changes = self.settings.changes as f64;
        println!(
            "\n# phase 2: apiserver requests per change, by verb and resource ({} changes; 'bg' = control's delta minus the bench's own)",
            self.settings.changes
        );
        let mut keys: Vec<&Key> = background.keys().collect();
        for run in runs {
            keys.extend(run.batch.delta.keys());
        }
        keys.sort();
        keys.dedup();
        let mut header = format!(
            "{:<40} {:>8} {:>8}",
            "verb group/resource[/sub]", "control", "bg"
        );
        for run in runs {
            let _ = write!(header, " {:>10} {:>10}", short(run.name), "per chg");
        }
        println!("{header}");
        let attributed: Vec<Counts> = runs
            .iter()
            .map(|run| run.batch.attributed(background))
            .collect();
        for k in keys {
            let mut line = format!(
                "{:<40} {:>8} {:>8}",
                show_key(k),
                control.delta.get(k).copied().unwrap_or(0.0),
                background.get(k).copied().unwrap_or(0.0)
            );
            for (run, attributed) in runs.iter().zip(&attributed) {
                let _ = write!(
                    line,
                    " {:>10} {:>10.2}",
                    run.batch.delta.get(k).copied().unwrap_or(0.0),
                    attributed.get(k).copied().unwrap_or(0.0) / changes
                );
            }
            println!("{line}");
        }
    }

    // ---- phases 3 and 4 ----

    /// Creates ConfigMaps `blob-{from..to}` of `BLOB` random characters in namespace
    /// `mem`, `CREATE_CONCURRENCY` requests at a time, until `deadline`; returns how
    /// many exist.
    async fn create_blobs(&self, from: usize, to: usize, deadline: Instant) -> usize {
        if from == 0 {
            self.create_namespace("mem").await;
        }
        let started = Instant::now();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "mem");
        let seed = self.seed;
        let results: Vec<Result<(), String>> = futures::stream::iter(from..to)
            .take_while(|_| std::future::ready(Instant::now() < deadline))
            .map(|i| {
                let api = api.clone();
                async move {
                    let cm: ConfigMap = serde_json::from_value(json!({
                        "metadata": {"name": format!("blob-{i}")},
                        "data": {"blob": random_text(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), BLOB)},
                    }))
                    .expect("config map");
                    match api.create(&PostParams::default(), &cm).await {
                        Ok(_) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect()
            .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let took = started.elapsed();
        println!(
            "created {ok} ConfigMaps of {BLOB} bytes in {:.1} s ({:.0}/s, {CREATE_CONCURRENCY} concurrent); {} now, {:.0} MiB of data; etcd db file {:.0} MiB",
            took.as_secs_f64(),
            ok as f64 / took.as_secs_f64().max(1e-3),
            from + ok,
            ((from + ok) * BLOB) as f64 / (1 << 20) as f64,
            fs::metadata(self.plane.dir().join("etcd/member/snap/db"))
                .map(|m| m.len())
                .unwrap_or(0) as f64
                / (1 << 20) as f64
        );
        if let Some(Err(first)) = results.iter().find(|r| r.is_err()) {
            println!(
                "{} creates failed; first error: {first}",
                results.len() - ok
            );
        }
        from + ok
    }

    /// rekindle's resident memory is small enough that what the allocator keeps
    /// of the list pages shows: it is started `MEMORY_STARTS` times per size and the
    /// median is reported. Reloader's is two orders larger: one start each.
    fn memory_starts(&self, tool: &Tool) -> usize {
        if tool.name == REKINDLE && !self.settings.quick {
            MEMORY_STARTS
        } else {
            1
        }
    }

    async fn memory(&self, tool: &Tool, objects: usize) -> Option<MemRow> {
        let expected = self.count_config_maps().await;
        let mut running = self.spawn(tool, &format!("memory-{objects}"), false);
        let ready = self.wait_ready(&mut running, expected).await;
        ready.print(tool.name, expected);
        ready.ready?;
        tokio::time::sleep(self.settings.settle).await;
        running.check_alive();
        let pid = running.child.id();
        let rss_kib = status_field(pid, "VmRSS:").unwrap_or(0);
        let hwm_kib = status_field(pid, "VmHWM:").unwrap_or(0);
        println!(
            "{}: {objects} blobs ({expected} ConfigMaps in all): VmRSS {rss_kib} KiB, VmHWM {hwm_kib} KiB, {} s after ready",
            tool.name,
            self.settings.settle.as_secs()
        );
        running.stop();
        Some(MemRow {
            name: tool.name,
            objects,
            ready,
            rss_kib,
            hwm_kib,
        })
    }

    // ---- the summary ----

    fn summary(&self, results: &Results<'_>) {
        let Results {
            floor,
            control,
            background,
            runs,
            floods,
            mem,
            notes,
        } = *results;
        let changes = self.settings.changes as f64;
        println!(
            "\n# summary (total {:.0} s, load average now {})",
            self.started.elapsed().as_secs_f64(),
            load_average()
        );
        println!(
            "\n## 1. ConfigMap update → Deployment patched ({} updates per tool, {} other Deployments in the namespace)\n",
            self.settings.updates, self.settings.neighbours
        );
        println!("| tool | median | p90 | p99 | max | missed |");
        println!("|---|---|---|---|---|---|");
        let rows = std::iter::once(("floor: the bench PATCHes the Deployment itself", floor))
            .chain(runs.iter().map(|r| (r.name, &r.latency)));
        for (name, l) in rows {
            println!(
                "| {} | {} ms | {} ms | {} ms | {} ms | {} |",
                name,
                ms(percentile(&l.samples, 50.0)),
                ms(percentile(&l.samples, 90.0)),
                ms(percentile(&l.samples, 99.0)),
                ms(percentile(&l.samples, 100.0)),
                l.missed
            );
        }
        let find = |name: &str| runs.iter().find(|r| r.name == name);
        if let (Some(r), Some(g)) = (find(REKINDLE), find(RELOADER)) {
            let ratio = |p: f64| match (
                percentile(&r.latency.samples, p),
                percentile(&g.latency.samples, p),
            ) {
                (Some(a), Some(b)) => format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64()),
                _ => "-".to_owned(),
            };
            println!(
                "\nrekindle / Reloader: median {}, p99 {} (target: p99 ≤ 0.5×)",
                ratio(50.0),
                ratio(99.0)
            );
        }

        println!(
            "\n## 2. API requests per ConfigMap change ({} changes, {AFFECTED} affected + {UNAFFECTED} unaffected Deployments)\n",
            self.settings.changes
        );
        println!(
            "| tool | LIST | WATCH | GET | PATCH workloads | PATCH events | POST events | other | residual on other resources | update → 5th patched, median / p99 | window |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        // The bench's own requests of the control batch, less the ConfigMap changes
        // themselves: what an ideal tool would have sent.
        let mut ideal = control.own.clone();
        ideal.remove(&key("PATCH", "", "configmaps", ""));
        println!(
            "{}",
            Summary::of(&ideal).row("control: the bench's own ideal PATCHes", changes, control)
        );
        for run in runs {
            let b = &run.batch;
            println!(
                "{}",
                Summary::of(&b.attributed(background)).row(run.name, changes, b)
            );
            if b.missed > 0 || b.unexpected > 0 {
                println!(
                    "  {}: {} changes not seen on all affected Deployments, {} changes of unaffected Deployments",
                    run.name, b.missed, b.unexpected
                );
            }
        }

        println!(
            "\n## 3. Resident memory, {} s after the initial list was handled\n",
            self.settings.settle.as_secs()
        );
        println!(
            "| tool | ConfigMaps (64 KiB) | data | VmRSS, median (each start) | VmHWM, median | ready after, median (each start) |"
        );
        println!("|---|---|---|---|---|---|");
        let groups = mem_groups(mem);
        for (name, objects, rows) in &groups {
            let each = |f: &dyn Fn(&MemRow) -> String| {
                rows.iter().map(|r| f(r)).collect::<Vec<_>>().join(", ")
            };
            println!(
                "| {name} | {objects} | {:.0} MiB | {:.1} MiB ({}) | {:.1} MiB | {} ({}) |",
                (objects * BLOB) as f64 / (1 << 20) as f64,
                median(rows.iter().map(|r| r.rss_kib)) as f64 / 1024.0,
                each(&|r| format!("{:.1}", r.rss_kib as f64 / 1024.0)),
                median(rows.iter().map(|r| r.hwm_kib)) as f64 / 1024.0,
                secs(Some(median(
                    rows.iter().map(|r| r.ready.ready.unwrap_or_default())
                ))),
                each(&|r| secs(r.ready.ready)),
            );
        }
        for name in [REKINDLE, RELOADER] {
            let sizes: Vec<_> = groups.iter().filter(|g| g.0 == name).collect();
            if let (Some(first), Some(last)) = (sizes.first(), sizes.last())
                && last.1 > first.1
            {
                let rss = |rows: &[&MemRow]| median(rows.iter().map(|r| r.rss_kib)) as f64;
                println!(
                    "{name}: slope {:.2} KiB of VmRSS per cached 64 KiB ConfigMap between {} and {} (medians)",
                    (rss(&last.2) - rss(&first.2)) / (last.1 - first.1) as f64,
                    first.1,
                    last.1
                );
            }
        }

        println!("\n## 4. Time to ready with the largest set\n");
        let largest = mem.iter().map(|r| r.objects).max().unwrap_or(0);
        for row in mem.iter().filter(|r| r.objects == largest) {
            if row.name == RELOADER {
                println!(
                    "{} with {} ConfigMaps: /metrics answering {}, \"Starting Controller … configmaps\" logged {}, all ConfigMap adds received {} (CPU {})",
                    row.name,
                    row.objects,
                    secs(row.ready.answered),
                    secs(row.ready.log_line),
                    secs(row.ready.ready),
                    secs(row.ready.cpu)
                );
            } else {
                println!(
                    "{} with {} ConfigMaps: /ready = 200 after {} (HTTP answering after {}; CPU {})",
                    row.name,
                    row.objects,
                    secs(row.ready.ready),
                    secs(row.ready.answered),
                    secs(row.ready.cpu)
                );
            }
        }
        for run in runs {
            println!(
                "(phases 1–2 start, few objects: {} ready after {})",
                run.name,
                secs(run.ready.ready)
            );
        }
        println!(
            "\n## 5. {} ConfigMap updates back to back, each tool with its defaults\n",
            self.settings.flood_updates
        );
        println!("| tool | updates | rollouts (Deployment generations) |");
        println!("|---|---|---|");
        for flood in floods {
            println!(
                "| {} | {} | {} |",
                flood.name, flood.updates, flood.rollouts
            );
        }
        for note in notes {
            println!("note: {note}");
        }
    }

    // ---- objects ----

    async fn create_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        api.create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
    }

    /// Deletes the namespaces and waits until they are gone, so that nothing of one
    /// tool's run is seen by the next.
    async fn delete_namespaces(&self, names: &[&str]) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        for name in names {
            let _ = api.delete(name, &Default::default()).await;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for name in names {
            while Instant::now() < deadline {
                match api.get_opt(name).await {
                    Ok(None) => break,
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    }

    async fn count_config_maps(&self) -> usize {
        let api: Api<ConfigMap> = Api::all(self.client.clone());
        let mut params = ListParams::default().limit(500);
        let mut count = 0;
        loop {
            let page = api.list_metadata(&params).await.expect("list config maps");
            count += page.items.len();
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => return count,
            }
        }
    }

    async fn put_config_map(&self, ns: &str, name: &str, generation: u64) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name},
            "data": {"config": self.small_data(generation)},
        }))
        .expect("config map");
        api.create(&PostParams::default(), &cm)
            .await
            .expect("config map created");
    }

    /// One merge PATCH of the ConfigMap's data: the change measured.
    async fn update_config_map(&self, ns: &str, name: &str, generation: u64) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let body = json!({"data": {"config": self.small_data(generation)}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(body))
            .await
            .expect("config map updated");
    }

    fn small_data(&self, generation: u64) -> String {
        random_text(
            self.seed ^ generation.wrapping_mul(0xA076_1D64_78BD_642F),
            self.settings.update_bytes,
        )
    }

    async fn create_deployment(&self, ns: &str, name: &str, config_map: &str) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{
                        "name": "app",
                        "image": "registry.invalid/app:1",
                        "envFrom": [{"configMapRef": {"name": config_map}}],
                    }]},
                },
            },
        }))
        .expect("deployment");
        api.create(&PostParams::default(), &deployment)
            .await
            .expect("deployment created");
    }
}

/// The short name used in namespaces and table headers.
fn short(name: &str) -> &str {
    if name == REKINDLE { "rekindle" } else { name }
}

fn show_key((verb, group, resource, sub): &Key) -> String {
    let mut s = format!("{verb} ");
    if !group.is_empty() {
        let _ = write!(s, "{group}/");
    }
    s.push_str(resource);
    if !sub.is_empty() {
        let _ = write!(s, "/{sub}");
    }
    s
}

/// `n` characters from the base64 alphabet, from an xorshift64* stream: random
/// enough that nothing along the way compresses it, and fast.
fn random_text(seed: u64, n: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = seed | 1;
    let mut out = String::with_capacity(n);
    while out.len() < n {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let mut word = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        for _ in 0..10 {
            if out.len() == n {
                break;
            }
            out.push(ALPHABET[(word & 63) as usize] as char);
            word >>= 6;
        }
    }
    out
}

// ---- a tool's process ----

struct Running {
    name: &'static str,
    child: Child,
    /// Just before the process was spawned.
    spawned: Instant,
    base: String,
    log: PathBuf,
}

impl Running {
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); end of its log ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }

    /// SIGTERM, then SIGKILL after 5 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// When a tool was ready, from just before it was spawned.
#[derive(Debug, Default, Clone)]
struct Ready {
    /// Its HTTP endpoint first answered.
    answered: Option<Duration>,
    /// rekindle: `/ready` = 200; Reloader: every ConfigMap's add event received.
    ready: Option<Duration>,
    /// Reloader: "Starting Controller to watch resource type: configmaps" logged.
    log_line: Option<Duration>,
    /// CPU time (user + system, all threads) the tool had used when it was ready.
    cpu: Option<Duration>,
}

impl Ready {
    fn print(&self, name: &str, config_maps: usize) {
        if name == RELOADER {
            println!(
                "{name}: {config_maps} ConfigMaps; /metrics answering after {}, controller start logged after {}, all ConfigMap adds received after {} (CPU used by then: {})",
                secs(self.answered),
                secs(self.log_line),
                secs(self.ready),
                secs(self.cpu)
            );
        } else {
            println!(
                "{name}: {config_maps} ConfigMaps; HTTP answering after {}, /ready = 200 after {} (CPU used by then: {})",
                secs(self.answered),
                secs(self.ready),
                secs(self.cpu)
            );
        }
    }
}

#[derive(Debug, Default)]
struct Latency {
    samples: Vec<Duration>,
    missed: usize,
    /// The five slowest samples with the UTC time of their update, to look
    /// them up in the tools' logs.
    slowest: Vec<(Duration, std::time::SystemTime)>,
}

impl Latency {
    fn print(&self, name: &str) {
        println!(
            "{name}: update → patch: n={} median={} p90={} p99={} max={} ms, missed {}; largest five: {} ms",
            self.samples.len(),
            ms(percentile(&self.samples, 50.0)),
            ms(percentile(&self.samples, 90.0)),
            ms(percentile(&self.samples, 99.0)),
            ms(percentile(&self.samples, 100.0)),
            self.missed,
            largest(&self.samples)
        );
        let when: Vec<String> = self
            .slowest
            .iter()
            .map(|(d, at)| format!("{} at {}", ms(Some(*d)), utc(*at)))
            .collect();
        println!("  slowest updates sent at (UTC): {}", when.join(", "));
    }
}

/// One phase-2 window.
#[derive(Debug, Default)]
struct Batch {
    changes: usize,
    /// `apiserver_request_total` after − before, by key.
    delta: Counts,
    /// The bench's own requests in the window.
    own: Counts,
    window: Duration,
    /// Per change: from the ConfigMap PATCH to the last affected Deployment seen patched.
    last_patched: Vec<Duration>,
    missed: usize,
    /// Value changes seen on Deployments that do not use the changed ConfigMap.
    unexpected: usize,
}

impl Batch {
    /// Everything in the window that was not the bench's: for the control batch,
    /// the background.
    fn background(&self) -> Counts {
        let mut out = self.delta.clone();
        for (k, v) in &self.own {
            *out.entry(k.clone()).or_default() -= v;
        }
        out.retain(|_, v| *v != 0.0);
        out
    }

    /// The tool's requests: the window minus the bench's own minus the background.
    fn attributed(&self, background: &Counts) -> Counts {
        let mut out = self.background();
        for (k, v) in background {
            *out.entry(k.clone()).or_default() -= v;
        }
        out.retain(|_, v| *v != 0.0);
        out
    }

    fn print(&self, name: &str) {
        println!(
            "{name}: {} changes in {:.1} s; update → last affected Deployment patched: median={} p99={} ms, largest five: {} ms; missed {}, unaffected changed {}",
            self.changes,
            self.window.as_secs_f64(),
            ms(percentile(&self.last_patched, 50.0)),
            ms(percentile(&self.last_patched, 99.0)),
            largest(&self.last_patched),
            self.missed,
            self.unexpected
        );
    }
}

/// Requests grouped as in the summary table. Only requests on the resources the
/// tools use are counted in the verb columns; the residual of the rest (ReplicaSets,
/// Pods, Deployment status, Endpoints, Services, Namespaces…: the background,
/// subtracted) is kept apart, so it is visible as the noise it is.
#[derive(Debug, Default)]
struct Summary {
    list: f64,
    watch: f64,
    get: f64,
    patch_workloads: f64,
    patch_events: f64,
    post_events: f64,
    other: f64,
    residual: f64,
}

impl Summary {
    fn of(counts: &Counts) -> Summary {
        let mut s = Summary::default();
        for ((verb, _, resource, sub), v) in counts {
            let workload = matches!(
                resource.as_str(),
                "deployments" | "daemonsets" | "statefulsets" | "cronjobs" | "jobs"
            );
            let used = sub.is_empty()
                && (workload
                    || matches!(
                        resource.as_str(),
                        "configmaps" | "secrets" | "events" | "leases"
                    ));
            if !used {
                s.residual += v;
                continue;
            }
            match (verb.as_str(), resource.as_str()) {
                ("LIST", _) => s.list += v,
                ("WATCH", _) => s.watch += v,
                ("GET", _) => s.get += v,
                ("PATCH", _) if workload => s.patch_workloads += v,
                ("PATCH", "events") => s.patch_events += v,
                ("POST", "events") => s.post_events += v,
                _ => s.other += v,
            }
        }
        s
    }

    fn row(&self, name: &str, changes: f64, batch: &Batch) -> String {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} ms | {:.1} s |",
            per(self.list, changes),
            per(self.watch, changes),
            per(self.get, changes),
            per(self.patch_workloads, changes),
            per(self.patch_events, changes),
            per(self.post_events, changes),
            per(self.other, changes),
            per(self.residual, changes),
            ms(percentile(&batch.last_patched, 50.0)),
            ms(percentile(&batch.last_patched, 99.0)),
            batch.window.as_secs_f64()
        )
    }
}

/// The rows of each (tool, size), in the order they were measured.
fn mem_groups(mem: &[MemRow]) -> Vec<(&'static str, usize, Vec<&MemRow>)> {
    let mut groups: Vec<(&'static str, usize, Vec<&MemRow>)> = Vec::new();
    for row in mem {
        match groups
            .iter_mut()
            .find(|g| g.0 == row.name && g.1 == row.objects)
        {
            Some(group) => group.2.push(row),
            None => groups.push((row.name, row.objects, vec![row])),
        }
    }
    groups
}

/// The middle value (the upper one of an even count).
fn median<T: Ord + Default>(values: impl Iterator<Item = T>) -> T {
    let mut values: Vec<T> = values.collect();
    values.sort();
    let middle = values.len() / 2;
    values.into_iter().nth(middle).unwrap_or_default()
}

fn per(total: f64, changes: f64) -> String {
    format!("{:.2}", total / changes)
}

// ---- the bench's own Deployment watch ----

/// A Deployment as this bench sees it: its first `STAKATER_*` env value.
struct Seen {
    at: Instant,
    name: String,
    value: Option<String>,
}

/// One list + watch of the Deployments of a namespace, timestamping each event as it
/// arrives; every change of a Deployment's `STAKATER_*` value is logged.
struct Tracker {
    rx: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
    current: HashMap<String, Option<String>>,
    /// Every value change: (Deployment, when).
    changes: Vec<(String, Instant)>,
    /// LIST and WATCH requests of this tracker (a watch is counted by the apiserver
    /// when it ends).
    lists: Arc<AtomicUsize>,
    ends: Arc<AtomicUsize>,
}

impl Tracker {
    fn start(client: kube::Client, ns: &str) -> Tracker {
        let (tx, rx) = mpsc::unbounded_channel();
        let lists = Arc::new(AtomicUsize::new(0));
        let ends = Arc::new(AtomicUsize::new(0));
        let api: Api<Deployment> = Api::namespaced(client, ns);
        let task = tokio::spawn(watch_deployments(api, tx, lists.clone(), ends.clone()));
        Tracker {
            rx,
            task,
            current: HashMap::new(),
            changes: Vec::new(),
            lists,
            ends,
        }
    }

    fn apply(&mut self, seen: Seen) {
        let previous = self.current.insert(seen.name.clone(), seen.value.clone());
        if let Some(previous) = previous
            && previous != seen.value
        {
            self.changes.push((seen.name, seen.at));
        }
    }

    fn drain(&mut self) {
        while let Ok(seen) = self.rx.try_recv() {
            self.apply(seen);
        }
    }

    /// Where the change log stands now (everything received so far applied).
    fn mark(&mut self) -> usize {
        self.drain();
        self.changes.len()
    }

    async fn wait_known(&mut self, names: &[String]) {
        let deadline = Instant::now() + CHANGE_TIMEOUT;
        while !names.iter().all(|n| self.current.contains_key(n)) {
            match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                Ok(Some(seen)) => self.apply(seen),
                _ => panic!("the bench's Deployment watch saw nothing in time"),
            }
        }
    }

    /// Waits until each of `names` changed after `mark`; the instant each first did.
    async fn wait_changed(
        &mut self,
        names: &[String],
        mark: usize,
        timeout: Duration,
    ) -> Option<Vec<Instant>> {
        let deadline = Instant::now() + timeout;
        loop {
            let firsts: Vec<Option<Instant>> = names
                .iter()
                .map(|n| {
                    self.changes[mark..]
                        .iter()
                        .find(|(name, _)| name == n)
                        .map(|(_, at)| *at)
                })
                .collect();
            if firsts.iter().all(Option::is_some) {
                return Some(firsts.into_iter().flatten().collect());
            }
            match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                Ok(Some(seen)) => self.apply(seen),
                _ => return None,
            }
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch_deployments(
    api: Api<Deployment>,
    tx: mpsc::UnboundedSender<Seen>,
    lists: Arc<AtomicUsize>,
    ends: Arc<AtomicUsize>,
) {
    loop {
        let list = api.list(&ListParams::default()).await;
        lists.fetch_add(1, Ordering::SeqCst);
        let Ok(list) = list else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let at = Instant::now();
        for d in list.items {
            if tx.send(seen(d, at)).is_err() {
                return;
            }
        }
        let version = list.metadata.resource_version.unwrap_or_default();
        let Ok(stream) = api
            .watch(&WatchParams::default().timeout(290), &version)
            .await
        else {
            continue;
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let at = Instant::now();
            match event {
                Ok(WatchEvent::Added(d) | WatchEvent::Modified(d)) => {
                    if tx.send(seen(d, at)).is_err() {
                        return;
                    }
                }
                Ok(WatchEvent::Deleted(_) | WatchEvent::Bookmark(_)) => {}
                Ok(WatchEvent::Error(_)) | Err(_) => break,
            }
        }
        ends.fetch_add(1, Ordering::SeqCst);
    }
}

fn seen(d: Deployment, at: Instant) -> Seen {
    let name = d.metadata.name.clone().unwrap_or_default();
    let value = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().find(|c| c.name == "app"))
        .and_then(|c| c.env)
        .and_then(|env| {
            env.into_iter()
                .find(|e| e.name.starts_with("STAKATER_"))
                .and_then(|e| e.value)
        });
    Seen { at, name, value }
}

// ---- small helpers ----

/// `name{labels…} value` lines of a Prometheus text exposition, summed over the
/// series whose labels include all of `want`.
fn metric(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let labels = parse_labels(labels);
            want.iter()
                .all(|(k, v)| labels.get(*k).is_some_and(|x| x == v))
                .then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// `a="x",b="y"` (no escaped quotes in the labels read here).
fn parse_labels(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let Some((value, after)) = after.split_once('"') else {
            break;
        };
        out.insert(
            name.trim_start_matches(',').trim().to_owned(),
            value.to_owned(),
        );
        rest = after;
    }
    out
}

/// A minimal HTTP/1.0 GET on loopback.
async fn http_get(url: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(host))
            .await
            .ok()?
            .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// User + system CPU time of every thread of `pid`, from `/proc/PID/stat` (in
/// USER_HZ ticks, 100 per second on Linux).
fn cpu_time(pid: u32) -> Option<Duration> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((p / 100.0) * last as f64).round() as usize;
    Some(sorted[rank.min(last)])
}

/// `HH:MM:SS.mmm` UTC.
fn utc(at: std::time::SystemTime) -> String {
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
        % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The five largest of `sorted`, largest first.
fn largest(sorted: &[Duration]) -> String {
    sorted
        .iter()
        .rev()
        .take(5)
        .map(|d| ms(Some(*d)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e3),
    )
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "never".to_owned(),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}
