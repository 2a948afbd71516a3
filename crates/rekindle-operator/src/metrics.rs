//! Prometheus metrics, with Reloader's names and labels so that its dashboards
//! and alerts keep working, plus rekindle's own (`rekindle_operator_*`).
//!
//! One difference a reader of the text format may notice:
//! `reloader_reload_executed_total_by_namespace` is exposed as a gauge that only
//! goes up. The Prometheus client used here appends `_total` to every counter,
//! and this one name has `_total` in the middle; the series name and labels are
//! Reloader's, and `rate()`/`increase()` work on it unchanged.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use rekindle::fleet::{Counts, State};

use crate::model::{SourceKind, WorkloadId, WorkloadKind};

type Labels = Vec<(&'static str, String)>;

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

/// Why a change concerned no workload, as `reloader_skipped_total{reason}` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// An update event whose data (or the used keys) did not change.
    NoDataChange,
    /// The value on the workload was already the one we would write.
    StrategyNotUpdated,
    /// Annotations, ignore lists or the decision order said no.
    IgnoredOrNotSelected,
}

impl Skipped {
    fn label(self) -> &'static str {
        match self {
            Skipped::NoDataChange => "no_data_change",
            Skipped::StrategyNotUpdated => "strategy_not_updated",
            Skipped::IgnoredOrNotSelected => "ignored_or_not_selected",
        }
    }
}

/// A watch event's type, as the `event_type` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Create,
    Update,
    Delete,
}

impl EventType {
    fn label(self) -> &'static str {
        match self {
            EventType::Create => "create",
            EventType::Update => "update",
            EventType::Delete => "delete",
        }
    }
}

fn resource_type(kind: SourceKind) -> String {
    match kind {
        SourceKind::ConfigMap => "configmap",
        SourceKind::Secret => "secret",
        SourceKind::SecretProviderClass => "secretproviderclass",
    }
    .to_owned()
}

/// Every metric the operator exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    by_namespace: bool,
    reload_executed: Family<Labels, Counter>,
    reload_executed_by_namespace: Family<Labels, Gauge>,
    reconcile: Family<Labels, Counter>,
    reconcile_duration: Family<Labels, Histogram, fn() -> Histogram>,
    action: Family<Labels, Counter>,
    action_latency: Family<Labels, Histogram, fn() -> Histogram>,
    skipped: Family<Labels, Counter>,
    workqueue_depth: Gauge,
    workqueue_adds: Counter,
    workqueue_latency: Histogram,
    errors: Family<Labels, Counter>,
    retries: Counter,
    events_received: Family<Labels, Counter>,
    events_processed: Family<Labels, Counter>,
    workloads_scanned: Family<Labels, Counter>,
    workloads_matched: Family<Labels, Counter>,
    cached_objects: Family<Labels, Gauge>,
    coalesced: Counter,
    in_flight: Gauge,
    workload_config_pods: Family<Labels, Gauge>,
}

impl Metrics {
    /// `by_namespace`: `METRICS_COUNT_BY_NAMESPACE=enabled`, which adds the
    /// per-namespace reload counter (its cardinality grows with namespaces).
    pub fn new(by_namespace: bool) -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::default(),
            by_namespace,
            reload_executed: Family::default(),
            reload_executed_by_namespace: Family::default(),
            reconcile: Family::default(),
            reconcile_duration: Family::new_with_constructor(seconds_histogram),
            action: Family::default(),
            action_latency: Family::new_with_constructor(seconds_histogram),
            skipped: Family::default(),
            workqueue_depth: Gauge::default(),
            workqueue_adds: Counter::default(),
            workqueue_latency: seconds_histogram(),
            errors: Family::default(),
            retries: Counter::default(),
            events_received: Family::default(),
            events_processed: Family::default(),
            workloads_scanned: Family::default(),
            workloads_matched: Family::default(),
            cached_objects: Family::default(),
            coalesced: Counter::default(),
            in_flight: Gauge::default(),
            workload_config_pods: Family::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "reloader_reload_executed",
            "Reloads executed, by success",
            metrics.reload_executed.clone(),
        );
        if by_namespace {
            r.register(
                "reloader_reload_executed_total_by_namespace",
                "Reloads executed, by success and namespace",
                metrics.reload_executed_by_namespace.clone(),
            );
        }
        r.register(
            "reloader_reconcile",
            "Changes handled, by result (success, error, skipped)",
            metrics.reconcile.clone(),
        );
        r.register(
            "reloader_reconcile_duration_seconds",
            "Time to handle one change, by result",
            metrics.reconcile_duration.clone(),
        );
        r.register(
            "reloader_action",
            "Workload updates, by workload kind and result (success, error)",
            metrics.action.clone(),
        );
        r.register(
            "reloader_action_latency_seconds",
            "Time of one workload update, by workload kind",
            metrics.action_latency.clone(),
        );
        r.register(
            "reloader_skipped",
            "Changes that rolled nothing, by reason",
            metrics.skipped.clone(),
        );
        r.register(
            "reloader_workqueue_depth",
            "Workloads with a rollout pending",
            metrics.workqueue_depth.clone(),
        );
        r.register(
            "reloader_workqueue_adds",
            "Rollouts queued",
            metrics.workqueue_adds.clone(),
        );
        r.register(
            "reloader_workqueue_latency_seconds",
            "Time from a change to its rollout starting (includes the cooldown)",
            metrics.workqueue_latency.clone(),
        );
        r.register("reloader_errors", "Errors, by type", metrics.errors.clone());
        r.register(
            "reloader_retries",
            "Workload updates retried",
            metrics.retries.clone(),
        );
        r.register(
            "reloader_events_received",
            "Watch events received, by event and resource type",
            metrics.events_received.clone(),
        );
        r.register(
            "reloader_events_processed",
            "Watch events processed, by event type, resource type and result",
            metrics.events_processed.clone(),
        );
        r.register(
            "reloader_workloads_scanned",
            "Workloads considered for a change, by kind",
            metrics.workloads_scanned.clone(),
        );
        r.register(
            "reloader_workloads_matched",
            "Workloads selected for a rollout, by kind",
            metrics.workloads_matched.clone(),
        );
        r.register(
            "rekindle_operator_cached_objects",
            "Objects held in the operator's index, by kind (digests only, never data)",
            metrics.cached_objects.clone(),
        );
        r.register(
            "rekindle_operator_rollouts_coalesced",
            "Changes that joined a rollout already pending instead of making their own",
            metrics.coalesced.clone(),
        );
        r.register(
            "rekindle_operator_rollouts_in_flight",
            "Rollouts sent to the API server and not finished yet (at most 8 at a time)",
            metrics.in_flight.clone(),
        );
        r.register(
            "rekindle_workload_config_pods",
            "Pods of a workload whose pods report (rekindle --report-pod), by where they stand \
             with the current content of their ConfigMaps and Secrets: current, stale, rejected, \
             failed, unknown",
            metrics.workload_config_pods.clone(),
        );
        metrics
    }

    pub fn reload_executed(&self, success: bool, namespace: &str) {
        let success = success.to_string();
        self.reload_executed
            .get_or_create(&vec![("success", success.clone())])
            .inc();
        if self.by_namespace {
            self.reload_executed_by_namespace
                .get_or_create(&vec![
                    ("success", success),
                    ("namespace", namespace.to_owned()),
                ])
                .inc();
        }
    }

    pub fn reconciled(&self, result: &'static str, took: Duration) {
        let labels = vec![("result", result.to_owned())];
        self.reconcile.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn action(&self, kind: WorkloadKind, success: bool, took: Duration) {
        let result = if success { "success" } else { "error" };
        self.action
            .get_or_create(&vec![
                ("workload_kind", kind.kind().to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
        self.action_latency
            .get_or_create(&vec![("workload_kind", kind.kind().to_owned())])
            .observe(took.as_secs_f64());
    }

    pub fn skipped(&self, reason: Skipped) {
        self.skipped
            .get_or_create(&vec![("reason", reason.label().to_owned())])
            .inc();
    }

    pub fn queued(&self, coalesced: bool) {
        self.workqueue_adds.inc();
        if coalesced {
            self.coalesced.inc();
        }
    }

    pub fn queue_depth(&self, depth: usize) {
        self.workqueue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn queue_latency(&self, waited: Duration) {
        self.workqueue_latency.observe(waited.as_secs_f64());
    }

    pub fn error(&self, kind: &'static str) {
        self.errors
            .get_or_create(&vec![("type", kind.to_owned())])
            .inc();
    }

    pub fn retry(&self) {
        self.retries.inc();
    }

    pub fn event_received(&self, event: EventType, kind: SourceKind) {
        self.events_received
            .get_or_create(&vec![
                ("event_type", event.label().to_owned()),
                ("resource_type", resource_type(kind)),
            ])
            .inc();
    }

    /// One source event handled. A skipped one is also a `skipped` reconcile, as in
    /// Reloader (its handler ends there); a queued one is reconciled when its rollout
    /// runs ([`Metrics::reconciled`]).
    pub fn event_processed(&self, event: EventType, kind: SourceKind, result: &'static str) {
        if result == "skipped" {
            self.reconciled("skipped", Duration::ZERO);
        }
        self.events_processed
            .get_or_create(&vec![
                ("event_type", event.label().to_owned()),
                ("resource_type", resource_type(kind)),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    pub fn workloads(&self, kind: WorkloadKind, scanned: u64, matched: u64) {
        let labels = vec![("kind", kind.kind().to_owned())];
        self.workloads_scanned
            .get_or_create(&labels)
            .inc_by(scanned);
        self.workloads_matched
            .get_or_create(&labels)
            .inc_by(matched);
    }

    /// Rollouts running now; set after each one is counted, so that 0 means every
    /// rollout sent so far is in `reloader_reload_executed_total`.
    pub fn in_flight(&self, count: usize) {
        self.in_flight.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn cached_objects(&self, kind: &str, count: usize) {
        self.cached_objects
            .get_or_create(&vec![("kind", kind.to_owned())])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets one workload's `rekindle_workload_config_pods` series, one per state
    /// (`None`: removes them). `workload` is `deployment/NAME`, as `rekindle status`
    /// names it.
    pub fn workload_config_pods(&self, id: &WorkloadId, counts: Option<&Counts>) {
        for state in State::ALL {
            let labels = vec![
                ("namespace", id.namespace.clone()),
                (
                    "workload",
                    format!("{}/{}", id.kind.kind().to_ascii_lowercase(), id.name),
                ),
                ("state", state.as_str().to_owned()),
            ];
            match counts {
                Some(counts) => {
                    self.workload_config_pods
                        .get_or_create(&labels)
                        .set(i64::try_from(counts.get(state)).unwrap_or(i64::MAX));
                }
                None => {
                    self.workload_config_pods.remove(&labels);
                }
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_reloaders() {
        let metrics = Metrics::new(true);
        metrics.reload_executed(true, "team-a");
        metrics.action(WorkloadKind::Deployment, true, Duration::from_millis(3));
        metrics.skipped(Skipped::NoDataChange);
        metrics.event_received(EventType::Update, SourceKind::ConfigMap);
        metrics.queued(true);
        metrics.reconciled("success", Duration::from_millis(2));
        metrics.queue_depth(3);
        metrics.queue_latency(Duration::from_millis(5));
        metrics.error("patch");
        metrics.retry();
        metrics.event_processed(EventType::Update, SourceKind::Secret, "skipped");
        metrics.workloads(WorkloadKind::StatefulSet, 4, 2);
        metrics.cached_objects("configmaps", 7);
        metrics.in_flight(2);
        let text = metrics.render();
        // Every series of Reloader's list (COMPAT.md), and rekindle's own.
        for expected in [
            "reloader_reload_executed_total{success=\"true\"} 1",
            "reloader_reload_executed_total_by_namespace{success=\"true\",namespace=\"team-a\"} 1",
            "reloader_reconcile_total{result=\"success\"} 1",
            "reloader_reconcile_total{result=\"skipped\"} 1",
            "reloader_reconcile_duration_seconds_count{result=\"success\"} 1",
            "reloader_action_total{workload_kind=\"Deployment\",result=\"success\"} 1",
            "reloader_action_latency_seconds_count{workload_kind=\"Deployment\"} 1",
            "reloader_skipped_total{reason=\"no_data_change\"} 1",
            "reloader_workqueue_depth 3",
            "reloader_workqueue_adds_total 1",
            "reloader_workqueue_latency_seconds_count 1",
            "reloader_errors_total{type=\"patch\"} 1",
            "reloader_retries_total 1",
            "reloader_events_received_total{event_type=\"update\",resource_type=\"configmap\"} 1",
            "reloader_events_processed_total{event_type=\"update\",resource_type=\"secret\",result=\"skipped\"} 1",
            "reloader_workloads_scanned_total{kind=\"StatefulSet\"} 4",
            "reloader_workloads_matched_total{kind=\"StatefulSet\"} 2",
            "rekindle_operator_cached_objects{kind=\"configmaps\"} 7",
            "rekindle_operator_rollouts_coalesced_total 1",
            "rekindle_operator_rollouts_in_flight 2",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn fleet_counts_are_one_series_per_state_and_go_away() {
        let metrics = Metrics::new(false);
        let web = WorkloadId::new(WorkloadKind::Deployment, "shop", "web");
        let counts = Counts {
            current: 2,
            stale: 1,
            ..Counts::default()
        };
        metrics.workload_config_pods(&web, Some(&counts));
        let text = metrics.render();
        for expected in [
            "rekindle_workload_config_pods{namespace=\"shop\",workload=\"deployment/web\",state=\"current\"} 2",
            "rekindle_workload_config_pods{namespace=\"shop\",workload=\"deployment/web\",state=\"stale\"} 1",
            "rekindle_workload_config_pods{namespace=\"shop\",workload=\"deployment/web\",state=\"unknown\"} 0",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        metrics.workload_config_pods(&web, None);
        assert!(!metrics.render().contains("workload=\"deployment/web\""));
    }

    #[test]
    fn the_namespace_counter_is_opt_in() {
        let metrics = Metrics::new(false);
        metrics.reload_executed(true, "team-a");
        assert!(!metrics.render().contains("by_namespace"));
    }
}
