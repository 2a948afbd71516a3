//! The operator under load on the real control plane: 1,000 Deployments, each using its
//! own ConfigMap, and 10,000 random ConfigMap updates in bursts. Prints figures and
//! whether the targets were met; bounded to 10 minutes.
//!
//! ```text
//! cargo bench -p rekindle-operator --bench soak
//! ```
//!
//! `WORKLOADS` (default 1000), `UPDATES` (default 10000) and `SEED` size and repeat the
//! run; `-- --test` (or `cargo test --benches`) runs a small pass that only shows the
//! bench works.
//!
//! - The operator (this profile's build, its defaults: `--cooldown 10s`, keyed
//!   markers) runs as a process behind the test environment's fault proxy, used here
//!   without faults only to see every request it makes: after it is ready, a LIST
//!   (a GET of a collection that is not a watch) would mean it re-read the world.
//! - The Deployments have no replicas (the controller-manager makes a ReplicaSet per
//!   template, no pods), `reloader.stakater.com/auto: "true"` and `envFrom` their
//!   ConfigMap `cm-N`.
//! - Updates come in bursts of 1 to 50, sent 8 at a time, with a pause of 0 to 300 ms
//!   between bursts. One update in five goes to one of ten "hot" ConfigMaps, which
//!   flap, so the cooldown has something to coalesce; the rest to any ConfigMap.
//! - At the end the bench reads each ConfigMap's final data from the API and waits
//!   until every Deployment carries the marker of exactly that data.
//! - A Deployment's rollouts are its `metadata.generation - 1` (each rollout changes
//!   its template once). The cooldown bound for a Deployment whose ConfigMap changed
//!   `k` times over `span` seconds: at most `min(k, 1 + ceil(span / cooldown))`.
//! - RSS and open file descriptors of the operator are read from `/proc` once it is
//!   ready, after each tenth of the updates, and at the end. The drift is from the
//!   half-way sample (warm) to the end: by then every workload has been rolled several
//!   times, so what fills with the number of workloads is full (the cooldown table,
//!   and kube-runtime's Event recorder, which keeps each workload's last Event for
//!   6 minutes to fold repeats into a series).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rekindle_operator::model::{KeyUse, SourceKind};
use rekindle_testenv::FaultProxy;
use rekindle_testenv::fault_proxy::is_list;
use serde_json::json;
use support::{Cluster, Operator, container, create_namespace, create_object, keyed_marker};

const NS: &str = "soak";
const COOLDOWN: Duration = Duration::from_secs(10);
const HOT: usize = 10;
const SENT_AT_ONCE: usize = 8;
const CREATE_AT_ONCE: usize = 32;
const BUDGET: Duration = Duration::from_secs(600);

struct Settings {
    workloads: usize,
    updates: usize,
    seed: u64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let number = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number")))
            .unwrap_or(default)
    };
    let settings = Settings {
        workloads: number("WORKLOADS", if quick { 20 } else { 1000 }) as usize,
        updates: number("UPDATES", if quick { 200 } else { 10_000 }) as usize,
        seed: number(
            "SEED",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        ),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(settings));
}

/// xorshift64*: reproducible from `SEED`, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// When each ConfigMap was updated: first and last send, and how many times.
#[derive(Default, Clone, Copy)]
struct Updates {
    count: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

fn cm(i: usize) -> String {
    format!("cm-{i}")
}

fn var(i: usize) -> String {
    format!("STAKATER_CM_{i}_CONFIGMAP")
}

async fn run(settings: Settings) {
    let started = Instant::now();
    println!(
        "operator soak: {} workloads, {} updates, seed {}",
        settings.workloads, settings.updates, settings.seed
    );
    let cluster = Cluster::start().await;
    let client = cluster.client.clone();
    create_namespace(&client, NS).await;
    futures::stream::iter(0..settings.workloads)
        .map(|i| {
            let client = client.clone();
            async move {
                create_object(
                    &client,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": cm(i), "namespace": NS}, "data": {"v": "0"}}),
                )
                .await;
                create_object(
                    &client,
                    json!({
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": format!("w-{i}"), "namespace": NS,
                            "annotations": {"reloader.stakater.com/auto": "true"}},
                        "spec": {
                            "replicas": 0,
                            "selector": {"matchLabels": {"app": format!("w-{i}")}},
                            "template": {
                                "metadata": {"labels": {"app": format!("w-{i}")}},
                                "spec": {"containers": [container("app",
                                    json!({"envFrom": [{"configMapRef": {"name": cm(i)}}]}))]},
                            },
                        },
                    }),
                )
                .await;
            }
        })
        .buffer_unordered(CREATE_AT_ONCE)
        .collect::<()>()
        .await;
    println!(
        "created {} ConfigMaps and Deployments in {:.1} s",
        settings.workloads,
        started.elapsed().as_secs_f64()
    );

    let proxy = FaultProxy::start(client.clone(), cluster.plane.dir())
        .await
        .expect("proxy");
    let spawned = Instant::now();
    let operator = Operator::spawn(
        proxy.kubeconfig(),
        &cluster.plane.dir().join("operator-soak.log"),
        &[],
        &[],
    )
    .await;
    let pid = operator.pid();
    let ready_requests = proxy.requests().len();
    let at_ready = (rss_kib(pid), fds(pid));
    println!(
        "operator ready in {:.1} s (RSS {} KiB, {} fds)",
        spawned.elapsed().as_secs_f64(),
        at_ready.0,
        at_ready.1
    );

    // The updates.
    let mut rng = Rng(settings.seed | 1);
    let updates: Mutex<Vec<Updates>> = Mutex::new(vec![Updates::default(); settings.workloads]);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let mut sent = 0;
    let mut bursts = 0;
    let mut samples: Vec<(usize, u64, u64)> = Vec::new();
    let update_start = Instant::now();
    while sent < settings.updates {
        let size = (1 + rng.below(50)).min(settings.updates - sent);
        let batch: Vec<(usize, String)> = (0..size)
            .map(|_| {
                let i = if rng.below(5) == 0 {
                    rng.below(HOT.min(settings.workloads))
                } else {
                    rng.below(settings.workloads)
                };
                (i, format!("{:016x}", rng.next()))
            })
            .collect();
        futures::stream::iter(batch)
            .map(|(i, value)| {
                let (configmaps, updates) = (&configmaps, &updates);
                async move {
                    let now = Instant::now();
                    {
                        let mut all = updates.lock().expect("updates");
                        let u = &mut all[i];
                        u.count += 1;
                        u.first.get_or_insert(now);
                        u.last = Some(now);
                    }
                    configmaps
                        .patch(
                            &cm(i),
                            &PatchParams::default(),
                            &Patch::Merge(json!({"data": {"v": value}})),
                        )
                        .await
                        .expect("update");
                }
            })
            .buffer_unordered(SENT_AT_ONCE)
            .collect::<()>()
            .await;
        sent += size;
        bursts += 1;
        let tenth = (settings.updates / 10).max(1);
        if sent / tenth > samples.len() {
            samples.push((sent, rss_kib(pid), fds(pid)));
        }
        assert!(started.elapsed() < BUDGET, "over the 10-minute budget");
        tokio::time::sleep(Duration::from_millis(rng.below(300) as u64)).await;
    }
    let last_update = Instant::now();
    println!(
        "sent {sent} updates in {bursts} bursts in {:.1} s",
        update_start.elapsed().as_secs_f64()
    );

    // Every Deployment must end on the marker of its ConfigMap's final data.
    let key = cluster.hash_key().await;
    let final_data: BTreeMap<String, String> = configmaps
        .list(&ListParams::default())
        .await
        .expect("list configmaps")
        .items
        .into_iter()
        .filter_map(|c| Some((c.metadata.name?, c.data?.remove("v")?)))
        .collect();
    // A ConfigMap the random updates never touched leaves its Deployment as it was
    // created: without the variable.
    let touched: Vec<bool> = updates
        .lock()
        .expect("updates")
        .iter()
        .map(|u| u.count > 0)
        .collect();
    let expected: Vec<Option<String>> = (0..settings.workloads)
        .map(|i| {
            touched[i].then(|| {
                keyed_marker(
                    &key,
                    SourceKind::ConfigMap,
                    NS,
                    &cm(i),
                    &[("v", &final_data[&cm(i)])],
                    KeyUse::All,
                )
            })
        })
        .collect();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let (converged_after, wrong, rollouts) = loop {
        let list = deployments
            .list(&ListParams::default())
            .await
            .expect("list deployments");
        let mut wrong = 0;
        let mut rollouts = vec![0i64; settings.workloads];
        for d in &list.items {
            let name = d.metadata.name.as_deref().unwrap_or_default();
            let Some(i) = name
                .strip_prefix("w-")
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            rollouts[i] = d.metadata.generation.unwrap_or(1) - 1;
            let value = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers.first())
                .and_then(|c| c.env.as_ref())
                .and_then(|env| env.iter().find(|e| e.name == var(i)))
                .and_then(|e| e.value.clone());
            if value != expected[i] {
                wrong += 1;
            }
        }
        if wrong == 0 || started.elapsed() > BUDGET {
            break (last_update.elapsed(), wrong, rollouts);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // A cooldown more: a trailing rollout still pending would show up now.
    tokio::time::sleep(COOLDOWN + Duration::from_secs(2)).await;
    let pending = operator.pending().await;
    let executed = operator.rollouts().await;
    let at_end = (rss_kib(pid), fds(pid));
    let requests = proxy.requests();
    let lists_after_ready: Vec<&String> = requests[ready_requests..]
        .iter()
        .filter(|line| is_list(line))
        .collect();

    let updates = updates.into_inner().expect("updates");
    let mut over_bound = Vec::new();
    let mut most = (0, 0usize);
    for (i, u) in updates.iter().enumerate() {
        let span = match (u.first, u.last) {
            (Some(first), Some(last)) => last.duration_since(first),
            _ => Duration::ZERO,
        };
        let bound =
            (u.count as i64).min(1 + (span.as_secs_f64() / COOLDOWN.as_secs_f64()).ceil() as i64);
        if rollouts[i] > bound {
            over_bound.push(format!(
                "w-{i}: {} rollouts for {} updates over {:.1} s (bound {bound})",
                rollouts[i],
                u.count,
                span.as_secs_f64()
            ));
        }
        if rollouts[i] > most.0 {
            most = (rollouts[i], u.count);
        }
    }
    let total_rollouts: i64 = rollouts.iter().sum();
    let updated = updates.iter().filter(|u| u.count > 0).count();
    let (warm_rss, warm_fds) = samples
        .iter()
        .find(|(sent, _, _)| *sent >= settings.updates / 2)
        .map_or(at_ready, |(_, rss, fds)| (*rss, *fds));
    let drift = |from: u64, to: u64| (to as f64 - from as f64) * 100.0 / from.max(1) as f64;

    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| workloads / ConfigMaps updated | {updated} of {} |",
        settings.workloads
    );
    println!(
        "| Deployments on their final data | {} of {} (**{} wrong**) |",
        settings.workloads - wrong,
        settings.workloads,
        wrong
    );
    println!(
        "| converged after the last update | {:.1} s |",
        converged_after.as_secs_f64()
    );
    println!(
        "| rollouts (template changes) | {total_rollouts}; the operator counted {executed}; most for one workload: {} (for {} updates) |",
        most.0, most.1
    );
    println!("| over the cooldown bound | **{}** |", over_bound.len());
    println!("| rollouts still pending a cooldown later | {pending} |");
    println!(
        "| LISTs after ready | **{}** (of {} requests after ready) |",
        lists_after_ready.len(),
        requests.len() - ready_requests
    );
    println!(
        "| RSS ready → warm → end | {} → {} → {} KiB (**{:+.1}%** warm → end) |",
        at_ready.0,
        warm_rss,
        at_end.0,
        drift(warm_rss, at_end.0)
    );
    println!(
        "| open fds ready → warm → end | {} → {} → {} |",
        at_ready.1, warm_fds, at_end.1
    );
    let series: Vec<String> = samples
        .iter()
        .map(|(sent, rss, fds)| format!("{sent}: {rss} KiB, {fds} fds"))
        .collect();
    println!("| RSS by updates sent | {} |", series.join("; "));
    println!("| total time | {:.1} s |", started.elapsed().as_secs_f64());
    for line in over_bound.iter().take(10) {
        println!("over the bound: {line}");
    }
    for line in lists_after_ready.iter().take(10) {
        println!("LIST after ready: {line}");
    }
    let met = wrong == 0
        && over_bound.is_empty()
        && lists_after_ready.is_empty()
        && pending == 0
        && executed as i64 == total_rollouts
        && drift(warm_rss, at_end.0) <= 5.0
        && at_end.1 <= warm_fds + warm_fds / 20;
    println!(
        "targets (every workload on its final data, rollouts within the cooldown bound, no LIST after start, RSS and fds within 5%): {}",
        if met { "met" } else { "NOT met" }
    );
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix(field)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}
