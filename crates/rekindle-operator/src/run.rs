//! Wiring: watches → reconciler → executor, the HTTP endpoints and leadership.
//! Everything that decides lives elsewhere; this file only connects the parts
//! and owns the loop.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::{mpsc, watch as channel};

use crate::cli::AlertSettings;
use crate::cluster::rollout::Executor;
use crate::cluster::streams::{self, Discovered};
use crate::cluster::watch::Message;
use crate::cluster::{hash_key, lease};
use crate::decide::digest::MarkerKey;
use crate::decide::plan::HashMode;
use crate::index::objects::WorkloadSettings;
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

    let apis = Discovered::discover(&client, &config.sources, &config.workloads)
        .await
        .context("discovering the CronJob API version")?;
    let (tx, mut rx) = mpsc::channel::<Message<Object>>(256);
    let plan = streams::Plan {
        namespaces: match &config.scope {
            Scope::All => vec![None],
            Scope::Namespaces(list) => list.iter().cloned().map(Some).collect(),
        },
        namespace_selector: config.namespace_selector.as_deref(),
        resource_label_selector: config.resource_label_selector.as_deref(),
        sources: &config.sources,
        workloads: &config.workloads,
        settings: &config.workload,
    };
    let streams = streams::spawn(&plan, &apis, &client, &tx);
    drop(tx);
    let mut reconciler = Reconciler::new(settings, streams);

    let reporter = Reporter {
        controller: "rekindle-operator".into(),
        instance: config.ha.as_ref().map(|ha| ha.identity.clone()),
    };
    let executor = Executor::new(
        client.clone(),
        apis.cron_jobs,
        Some(Recorder::new(client.clone(), reporter)),
        config.workload.names.paused_at.clone(),
        apis.argo,
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
                        metrics.in_flight(in_flight.len());
                        continue;
                    }
                };
                metrics.action(rollout.workload.kind, result.is_ok(), took);
                metrics.reconciled(if result.is_ok() { "success" } else { "error" }, took);
                metrics.reload_executed(result.is_ok(), &rollout.workload.namespace);
                metrics.in_flight(in_flight.len());
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
            metrics.in_flight(in_flight.len());
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
