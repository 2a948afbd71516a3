//! Wiring: watches → reconciler → executor, the HTTP endpoints and leadership.
//! Everything that decides lives elsewhere; this file only connects the parts
//! and owns the loop.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch as channel};

use crate::cli::AlertSettings;
use crate::cluster::rollout::Executor;
use crate::cluster::watch::{self, Message, StreamId, Watched};
use crate::cluster::{hash_key, lease};
use crate::decide::digest::MarkerKey;
use crate::decide::plan::HashMode;
use crate::index::objects::{self, WorkloadSettings};
use crate::metrics::Metrics;
use crate::model::{SourceKind, WorkloadKind};
use crate::notify::alert;
use crate::notify::http::Poster;
use crate::reconcile::{Object, Outcome, Reconciler, Settings};
use crate::server::{self, Health};

/// Which namespaces are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespaces(Vec<String>),
}

/// How the value written is made, before the key is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashChoice {
    /// The keyed marker; the key lives in this Secret of the operator's namespace.
    Keyed {
        secret: String,
    },
    ReloaderSha1,
}

/// `--enable-ha`.
#[derive(Debug, Clone)]
pub struct Ha {
    pub lease_name: String,
    /// `POD_NAME`.
    pub identity: String,
}

/// Everything `run` needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub scope: Scope,
    pub namespace_selector: Option<String>,
    pub resource_label_selector: Option<String>,
    pub sources: BTreeSet<SourceKind>,
    pub workloads: BTreeSet<WorkloadKind>,
    pub workload: WorkloadSettings,
    /// Reconciler settings; `plan.hash` is replaced once the key is loaded.
    pub reconcile: Settings,
    pub hash: HashChoice,
    pub ha: Option<Ha>,
    pub metrics_addr: SocketAddr,
    pub by_namespace_metrics: bool,
    /// `POD_NAMESPACE`, else the client's default namespace.
    pub operator_namespace: Option<String>,
    /// `--webhook-url`: announce changes there instead of rolling.
    pub webhook_url: Option<String>,
    /// `ALERT_*`: post an alert after each rollout.
    pub alerts: Option<AlertSettings>,
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(config: Config, client: kube::Client) -> anyhow::Result<()> {
    let operator_namespace = config
        .operator_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let metrics = Arc::new(Metrics::new(config.by_namespace_metrics));
    let synced = Arc::new(AtomicBool::new(false));
    let listener = server::bind(config.metrics_addr).await?;
    let health = Health {
        metrics: metrics.clone(),
        synced: synced.clone(),
    };
    tokio::spawn(async move {
        if let Err(error) = server::serve(listener, health).await {
            tracing::error!(%error, "metrics server stopped");
        }
    });

    let mut settings = config.reconcile.clone();
    if let HashChoice::Keyed { secret } = &config.hash {
        let key = hash_key::load_or_create(client.clone(), &operator_namespace, secret).await?;
        settings.plan.hash = HashMode::Keyed(MarkerKey::new(key));
    } else {
        settings.plan.hash = HashMode::ReloaderSha1;
    }

    let cron_jobs = cron_job_resource(&client)
        .await
        .context("discovering the CronJob API version")?;
    let (tx, mut rx) = mpsc::channel::<Message<Object>>(256);
    let argo = if config.workloads.contains(&WorkloadKind::Rollout) {
        argo_rollout_resource(&client).await
    } else {
        None
    };
    let csi = if config.sources.contains(&SourceKind::SecretProviderClass) {
        pod_status_resource(&client).await
    } else {
        None
    };
    let streams = spawn_watches(
        &config,
        &client,
        &cron_jobs,
        argo.as_ref(),
        csi.as_ref(),
        &tx,
    );
    drop(tx);
    let mut reconciler = Reconciler::new(settings, streams);

    let reporter = Reporter {
        controller: "rekindle-operator".into(),
        instance: config.ha.as_ref().map(|ha| ha.identity.clone()),
    };
    let executor = Executor::new(
        client.clone(),
        cron_jobs,
        Some(Recorder::new(client.clone(), reporter)),
        config.workload.names.paused_at.clone(),
        argo,
    );

    let (stop_tx, stop_rx) = channel::channel(false);
    let (leader_tx, mut leader_rx) = channel::channel(config.ha.is_none());
    // Without HA this replica leads from the start; the sender is kept so the
    // channel stays open.
    let (election, _always_leader) = match config.ha.clone() {
        Some(ha) => {
            let api: Api<Lease> = Api::namespaced(client.clone(), &operator_namespace);
            let task = tokio::spawn(lease::run(
                api,
                ha.lease_name,
                ha.identity,
                leader_tx,
                stop_rx.clone(),
            ));
            (Some(task), None)
        }
        None => (None, Some(leader_tx)),
    };

    let poster = Poster::new(NOTIFY_TIMEOUT);
    // Alerts go through ALERT_WEBHOOK_PROXY when it is set; `--webhook-url` calls do not
    // (as in Reloader).
    let alert_poster = match config.alerts.as_ref().and_then(|a| a.proxy.as_deref()) {
        Some(proxy) => Poster::with_proxy(NOTIFY_TIMEOUT, proxy)?,
        None => poster.clone(),
    };
    let mut shutdown = std::pin::pin!(shutdown_signal());
    tracing::info!(namespace = %operator_namespace, "started; listing objects");
    let mut was_leader = *leader_rx.borrow();
    // The last error of each workload whose rollout is failing, to log it once.
    let mut failing: std::collections::HashMap<crate::model::WorkloadId, String> =
        std::collections::HashMap::new();
    let mut in_flight: tokio::task::JoinSet<Finished> = tokio::task::JoinSet::new();
    loop {
        // A standby keeps queueing what it sees but never takes it: waking for
        // those due times (or paused Deployments to resume) would spin, since
        // they stay due. Becoming the leader wakes the loop through `leader_rx`.
        let next_due = if *leader_rx.borrow() && in_flight.len() < MAX_IN_FLIGHT {
            let resume_at = reconciler
                .next_resume(Instant::now())
                .map(|(_, at)| Instant::now() + until(at));
            match (reconciler.next_due(), resume_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        } else {
            None
        };
        let sleep = async {
            match next_due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = rx.recv() => {
                let Some(message) = message else { break };
                let now = Instant::now();
                reconciler.handle(now, message, &metrics);
                // Take what else is already queued before deciding anything.
                while let Ok(message) = rx.try_recv() {
                    reconciler.handle(now, message, &metrics);
                }
                if reconciler.is_synced() && !synced.swap(true, Ordering::AcqRel) {
                    let (sources, workloads) = reconciler.cached();
                    tracing::info!(sources, workloads, "initial list complete; ready");
                }
                for source in reconciler.take_announcements() {
                    if let Some(url) = &config.webhook_url {
                        tokio::spawn(announce(poster.clone(), url.clone(), source, metrics.clone()));
                    }
                }
                let (sources, workloads) = reconciler.cached();
                metrics.cached_objects("source", sources);
                metrics.cached_objects("workload", workloads);
                metrics.cached_objects("pod", reconciler.cached_pods());
                for (workload, counts) in reconciler.take_fleet_changes() {
                    metrics.workload_config_pods(&workload, counts.as_ref());
                }
            }
            _ = sleep => {}
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                let Finished { rollout, outcome, result, took } = match joined {
                    Ok(finished) => finished,
                    // A rollout task only ends by finishing (or by a panic, a bug).
                    Err(error) => {
                        tracing::error!(%error, "a rollout task failed");
                        continue;
                    }
                };
                metrics.action(rollout.workload.kind, result.is_ok(), took);
                metrics.reconciled(if result.is_ok() { "success" } else { "error" }, took);
                metrics.reload_executed(result.is_ok(), &rollout.workload.namespace);
                match &result {
                    Ok(()) => {
                        if let Some(alerts) = &config.alerts {
                            for source in &rollout.plan.because {
                                let text = alert::text(
                                    source,
                                    &rollout.workload,
                                    alerts.additional_info.as_deref(),
                                );
                                tokio::spawn(send_alert(
                                    alert_poster.clone(),
                                    alerts.clone(),
                                    text,
                                ));
                            }
                        }
                        tracing::info!(
                        workload = %rollout.workload,
                        because = ?rollout.plan.because.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        took_ms = took.as_millis() as u64,
                        "rolled"
                        );
                    }
                    Err(error) => {
                        metrics.error("rollout");
                        metrics.retry();
                        // A failure that repeats (a missing permission, an invalid
                        // pause-period) is said once, not at every retry; the retries
                        // go on, so the change rolls as soon as the cause is fixed.
                        let message = error.to_string();
                        if failing.get(&rollout.workload) == Some(&message) {
                            tracing::debug!(workload = %rollout.workload, error = %message, "rollout still failing; will retry");
                        } else {
                            tracing::warn!(workload = %rollout.workload, error = %message, "rollout failed; will retry (logged again only if the error changes)");
                            failing.insert(rollout.workload.clone(), message);
                        }
                    }
                }
                if result.is_ok() && failing.remove(&rollout.workload).is_some() {
                    tracing::info!(workload = %rollout.workload, "rollout succeeded after failures");
                }
                reconciler.finished(Instant::now(), rollout, outcome);
            }
            changed = leader_rx.changed() => {
                if changed.is_err() { break }
                let leader = *leader_rx.borrow();
                if leader && !was_leader && reconciler.is_synced() {
                    // A change may have gone unhandled while nobody led.
                    reconciler.catch_up(Instant::now(), &metrics);
                }
                was_leader = leader;
            }
            _ = &mut shutdown => break,
        }
        if *leader_rx.borrow() {
            while let Some((id, at)) = reconciler.next_resume(Instant::now()) {
                if !until(at).is_zero() {
                    break;
                }
                reconciler.resume_tried(&id, Instant::now());
                match executor.resume(&id).await {
                    Ok(()) => tracing::info!(workload = %id, "pause period over; resumed"),
                    Err(error) => {
                        tracing::warn!(workload = %id, %error, "could not resume; will retry")
                    }
                }
            }
            // Planned now, from the index as it is now: a rollout started later
            // carries the data known then. The loop goes on handling events while
            // these run.
            let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
            for rollout in reconciler.take_due(Instant::now(), &metrics, room) {
                let executor = executor.clone();
                in_flight.spawn(async move {
                    let started = Instant::now();
                    let (outcome, result) = executor.execute(&rollout).await;
                    Finished {
                        rollout,
                        outcome,
                        result,
                        took: started.elapsed(),
                    }
                });
            }
        }
    }
    // Rollouts already sent finish (each is one request or two), so that what
    // they did is logged and counted; then the lease is released.
    let drained = tokio::time::timeout(SHUTDOWN_DRAIN, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("rollouts still running after {SHUTDOWN_DRAIN:?}; stopping anyway");
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    if let Some(election) = election {
        let _ = election.await;
    }
    Ok(())
}

const NOTIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Rollouts running at once. Each is one PATCH (or a Job created): a few in
/// parallel keep up with a burst of changes to many workloads without waiting
/// on the API server one request at a time, and no workload has two at once.
const MAX_IN_FLIGHT: usize = 8;

/// How long a stopping operator waits for the rollouts it has started.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A rollout that has run, for the loop to count, log and settle.
struct Finished {
    rollout: crate::reconcile::Rollout,
    outcome: Outcome,
    result: Result<(), crate::cluster::rollout::RolloutError>,
    took: std::time::Duration,
}

/// `--webhook-url` mode: POSTs Reloader's body for one changed source, with
/// two retries.
async fn announce(
    poster: Poster,
    url: String,
    source: crate::model::SourceId,
    metrics: Arc<Metrics>,
) {
    let body = br#"{"webhook":"update successful"}"#.to_vec();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
        }
        match poster.post(&url, "application/json", body.clone()).await {
            Ok(status) if (200..300).contains(&status) => {
                tracing::info!(%source, status, "change announced to the webhook");
                metrics.reload_executed(true, &source.namespace);
                return;
            }
            Ok(status) => {
                tracing::warn!(%source, status, attempt, "webhook refused the announcement")
            }
            Err(error) => tracing::warn!(%source, %error, attempt, "webhook announcement failed"),
        }
    }
    metrics.reload_executed(false, &source.namespace);
    metrics.error("webhook");
}

/// Posts one alert (`ALERT_ON_RELOAD=true`).
async fn send_alert(poster: Poster, alerts: AlertSettings, text: String) {
    let (content_type, body) = alert::payload(alerts.sink, &text);
    match poster.post(&alerts.webhook_url, content_type, body).await {
        Ok(status) if alert::accepted(alerts.sink, status) => tracing::debug!(status, "alert sent"),
        Ok(status) => tracing::warn!(status, "the alert webhook refused the alert"),
        Err(error) => tracing::warn!(%error, "could not send the alert"),
    }
}

/// Time from now until the wall-clock time `at` (zero if past).
fn until(at: k8s_openapi::jiff::Timestamp) -> std::time::Duration {
    let left = at.duration_since(k8s_openapi::jiff::Timestamp::now());
    std::time::Duration::try_from(left).unwrap_or(std::time::Duration::ZERO)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// CronJobs are `batch/v1` from Kubernetes 1.21, `batch/v1beta1` before.
async fn cron_job_resource(client: &kube::Client) -> Result<ApiResource, kube::Error> {
    let version = match client.list_api_group_resources("batch/v1").await {
        Ok(list) if list.resources.iter().any(|r| r.name == "cronjobs") => "v1",
        Ok(_) => "v1beta1",
        Err(error) => return Err(error),
    };
    Ok(ApiResource {
        group: "batch".into(),
        version: version.into(),
        api_version: format!("batch/{version}"),
        kind: "CronJob".into(),
        plural: "cronjobs".into(),
    })
}

/// Argo Rollouts (`argoproj.io/v1alpha1`), if their CRD is served.
async fn argo_rollout_resource(client: &kube::Client) -> Option<ApiResource> {
    match client
        .list_api_group_resources("argoproj.io/v1alpha1")
        .await
    {
        Ok(list) if list.resources.iter().any(|r| r.name == "rollouts") => Some(ApiResource {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            plural: "rollouts".into(),
        }),
        _ => {
            tracing::warn!(
                "--is-Argo-Rollouts=true, but argoproj.io/v1alpha1 rollouts are not served; Rollouts are not watched"
            );
            None
        }
    }
}

/// The Secrets Store CSI driver's SecretProviderClassPodStatuses
/// (`secrets-store.csi.x-k8s.io/v1`), if their CRD is served.
async fn pod_status_resource(client: &kube::Client) -> Option<ApiResource> {
    const GROUP: &str = "secrets-store.csi.x-k8s.io";
    const PLURAL: &str = "secretproviderclasspodstatuses";
    match client
        .list_api_group_resources(&format!("{GROUP}/v1"))
        .await
    {
        Ok(list) if list.resources.iter().any(|r| r.name == PLURAL) => Some(ApiResource {
            group: GROUP.into(),
            version: "v1".into(),
            api_version: format!("{GROUP}/v1"),
            kind: "SecretProviderClassPodStatus".into(),
            plural: PLURAL.into(),
        }),
        _ => {
            tracing::warn!(
                "--enable-csi-integration: {PLURAL}.{GROUP}/v1 is not served (is the Secrets Store \
                 CSI driver installed?); SecretProviderClasses are not watched"
            );
            None
        }
    }
}

/// Starts one watch per kind and namespace scope; returns their ids.
fn spawn_watches(
    config: &Config,
    client: &kube::Client,
    cron_jobs: &ApiResource,
    argo: Option<&ApiResource>,
    csi: Option<&ApiResource>,
    tx: &mpsc::Sender<Message<Object>>,
) -> Vec<StreamId> {
    let namespaces: Vec<Option<String>> = match &config.scope {
        Scope::All => vec![None],
        Scope::Namespaces(list) => list.iter().cloned().map(Some).collect(),
    };
    let mut streams = Vec::new();
    let source_config = || {
        let c = watcher::Config::default();
        match &config.resource_label_selector {
            Some(selector) => c.labels(selector),
            None => c,
        }
    };
    for ns in &namespaces {
        let names = config.workload.names.clone();
        if config.sources.contains(&SourceKind::ConfigMap) {
            let id = StreamId {
                watched: Watched::Source(SourceKind::ConfigMap),
                namespace: ns.clone(),
            };
            let names = names.clone();
            tokio::spawn(watch::run(
                api::<ConfigMap>(client, ns),
                source_config(),
                id.clone(),
                move |o: ConfigMap| {
                    let (id, entry) = objects::config_map(&o, &names);
                    Object::Source(id, entry)
                },
                tx.clone(),
            ));
            streams.push(id);
        }
        if config.sources.contains(&SourceKind::Secret) {
            let id = StreamId {
                watched: Watched::Source(SourceKind::Secret),
                namespace: ns.clone(),
            };
            let names = names.clone();
            tokio::spawn(watch::run(
                api::<Secret>(client, ns),
                source_config(),
                id.clone(),
                move |o: Secret| {
                    let (id, entry) = objects::secret(&o, &names);
                    Object::Source(id, entry)
                },
                tx.clone(),
            ));
            streams.push(id);
        }
        if let Some(csi) = csi {
            let id = StreamId {
                watched: Watched::Source(SourceKind::SecretProviderClass),
                namespace: ns.clone(),
            };
            let dynamic: Api<DynamicObject> = match ns {
                Some(ns) => Api::namespaced_with(client.clone(), ns, csi),
                None => Api::all_with(client.clone(), csi),
            };
            // Reloader applies the resource label selector to these too.
            tokio::spawn(watch::run(
                dynamic,
                source_config(),
                id.clone(),
                |o: DynamicObject| match objects::pod_status(&o.metadata, &o.data["status"]) {
                    Some((status, source, entry)) => Object::PodStatus {
                        status,
                        source,
                        entry,
                    },
                    None => Object::Ignored,
                },
                tx.clone(),
            ));
            streams.push(id);
            // The classes themselves, for their `ignore` and `match` annotations. No
            // label selector: Reloader reads a class's annotations whatever its labels.
            let id = StreamId {
                watched: Watched::ClassFlags,
                namespace: ns.clone(),
            };
            let classes = ApiResource {
                kind: "SecretProviderClass".into(),
                plural: "secretproviderclasses".into(),
                ..csi.clone()
            };
            let classes: Api<DynamicObject> = match ns {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &classes),
                None => Api::all_with(client.clone(), &classes),
            };
            let names = names.clone();
            tokio::spawn(watch::run(
                classes,
                watcher::Config::default(),
                id.clone(),
                move |o: DynamicObject| {
                    let (id, flags) = objects::class_flags(&o.metadata, &names);
                    Object::ClassFlags(id, flags)
                },
                tx.clone(),
            ));
            streams.push(id);
        }
        for kind in &config.workloads {
            let id = StreamId {
                watched: Watched::Workload(*kind),
                namespace: ns.clone(),
            };
            let s = config.workload.clone();
            let cfg = watcher::Config::default();
            let tx = tx.clone();
            match kind {
                WorkloadKind::Deployment => {
                    tokio::spawn(watch::run(
                        api::<Deployment>(client, ns),
                        cfg,
                        id.clone(),
                        move |o: Deployment| {
                            let (id, e) = objects::deployment(&o, &s);
                            Object::Workload(id, e)
                        },
                        tx,
                    ));
                }
                WorkloadKind::DaemonSet => {
                    tokio::spawn(watch::run(
                        api::<DaemonSet>(client, ns),
                        cfg,
                        id.clone(),
                        move |o: DaemonSet| {
                            let (id, e) = objects::daemon_set(&o, &s);
                            Object::Workload(id, e)
                        },
                        tx,
                    ));
                }
                WorkloadKind::StatefulSet => {
                    tokio::spawn(watch::run(
                        api::<StatefulSet>(client, ns),
                        cfg,
                        id.clone(),
                        move |o: StatefulSet| {
                            let (id, e) = objects::stateful_set(&o, &s);
                            Object::Workload(id, e)
                        },
                        tx,
                    ));
                }
                WorkloadKind::Job => {
                    tokio::spawn(watch::run(
                        api::<Job>(client, ns),
                        cfg,
                        id.clone(),
                        move |o: Job| {
                            let (id, e) = objects::job(&o, &s);
                            Object::Workload(id, e)
                        },
                        tx,
                    ));
                }
                WorkloadKind::CronJob => {
                    let dynamic: Api<DynamicObject> = match ns {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, cron_jobs),
                        None => Api::all_with(client.clone(), cron_jobs),
                    };
                    tokio::spawn(watch::run(
                        dynamic,
                        cfg,
                        id.clone(),
                        move |o: DynamicObject| {
                            let cron = objects::typed_cron_job(&o).unwrap_or_default();
                            let (id, e) = objects::cron_job(&cron, &s);
                            Object::Workload(id, e)
                        },
                        tx,
                    ));
                }
                WorkloadKind::Rollout => {
                    let Some(argo) = argo else { continue };
                    let dynamic: Api<DynamicObject> = match ns {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, argo),
                        None => Api::all_with(client.clone(), argo),
                    };
                    tokio::spawn(watch::run(
                        dynamic,
                        cfg,
                        id.clone(),
                        move |o: DynamicObject| {
                            let (id, e) = objects::rollout(&o.metadata, &o.data["spec"], &s);
                            Object::Workload(id, e)
                        },
                        tx,
                    ));
                }
            }
            streams.push(id);
        }
    }
    // The fleet view: pods, metadata only (labels, annotations and owners are all it
    // reads). Not a readiness condition: rollouts do not depend on it, and a
    // ServiceAccount without `list`/`watch` on pods still rolls workloads (the watch
    // logs the missing permission once and retries).
    for ns in &namespaces {
        let id = StreamId {
            watched: Watched::Pods,
            namespace: ns.clone(),
        };
        // `Api<PartialObjectMeta<_>>` asks for `PartialObjectMetadata`: the server
        // sends no spec or status, so pages stay small and nothing of them is decoded.
        tokio::spawn(watch::run(
            api::<PartialObjectMeta<Pod>>(client, ns),
            watcher::Config::default(),
            id,
            |o: PartialObjectMeta<Pod>| {
                let (id, entry) = objects::pod(&o.metadata);
                Object::Pod(id, entry)
            },
            tx.clone(),
        ));
    }
    if let Some(selector) = &config.namespace_selector {
        let id = StreamId {
            watched: Watched::Namespaces,
            namespace: None,
        };
        let api: Api<Namespace> = Api::all(client.clone());
        tokio::spawn(watch::run(
            api,
            watcher::Config::default().labels(selector),
            id.clone(),
            |o: Namespace| Object::Namespace(o.metadata.name.unwrap_or_default()),
            tx.clone(),
        ));
        streams.push(id);
    }
    streams
}

fn api<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
