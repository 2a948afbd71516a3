//! Prometheus metrics: rekindle's own, and configmap-reload's names when
//! running as its drop-in replacement.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

/// configmap-reload's metrics, with its names, labels and meanings.
#[derive(Debug, Default)]
struct Compat {
    last_reload_error: Family<Labels, Gauge>,
    last_request_duration: Family<Labels, Gauge<f64, AtomicU64>>,
    success_reloads: Family<Labels, Counter>,
    request_errors: Family<Labels, Counter>,
    watcher_errors: Counter,
    requests: Family<Labels, Counter>,
}

/// `rekindle sync`'s metrics (see [`Metrics::register_sync`]).
#[cfg(feature = "kube")]
#[derive(Debug, Clone, Default)]
pub struct SyncMetrics {
    writes: Family<Labels, Counter>,
    api_errors: Counter,
    present: Gauge,
}

#[cfg(feature = "kube")]
impl SyncMetrics {
    pub fn write(&self, result: &'static str) {
        self.writes
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    pub fn api_error(&self) {
        self.api_errors.inc();
    }

    pub fn present(&self, present: bool) {
        self.present.set(i64::from(present));
    }
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    changes: Counter,
    actions: Family<Labels, Counter>,
    action_duration: Family<Labels, Histogram, fn() -> Histogram>,
    validation_failures: Counter,
    watch_errors: Counter,
    compat: Option<Compat>,
}

/// How an action ended, as the `result` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionResult {
    Success,
    Failure,
    /// A newer change arrived before the action finished.
    Superseded,
}

impl ActionResult {
    fn label(self) -> &'static str {
        match self {
            ActionResult::Success => "success",
            ActionResult::Failure => "failure",
            ActionResult::Superseded => "superseded",
        }
    }
}

impl Metrics {
    /// With `configmap_reload`, configmap-reload's metrics are served too.
    pub fn new(configmap_reload: bool) -> Metrics {
        let mut registry = Registry::default();
        let changes = Counter::default();
        let actions = Family::<Labels, Counter>::default();
        let action_duration = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let validation_failures = Counter::default();
        let watch_errors = Counter::default();
        registry.register(
            "rekindle_changes",
            "Content changes seen in watched directories (digest differs from the last one)",
            changes.clone(),
        );
        registry.register(
            "rekindle_actions",
            "Actions run on a change, by action and result",
            actions.clone(),
        );
        registry.register(
            "rekindle_action_duration_seconds",
            "Time an action took, by action",
            action_duration.clone(),
        );
        registry.register(
            "rekindle_validation_failures",
            "Changes rejected by the --validate command",
            validation_failures.clone(),
        );
        registry.register(
            "rekindle_watch_errors",
            "Errors reading or watching a directory",
            watch_errors.clone(),
        );
        let compat = configmap_reload.then(|| {
            let c = Compat::default();
            registry.register(
                "configmap_reload_last_reload_error",
                "Whether the last reload resulted in an error (1 for error, 0 for success)",
                c.last_reload_error.clone(),
            );
            registry.register(
                "configmap_reload_last_request_duration_seconds",
                "Duration of last webhook request",
                c.last_request_duration.clone(),
            );
            registry.register(
                "configmap_reload_success_reloads",
                "Total success reload calls",
                c.success_reloads.clone(),
            );
            registry.register(
                "configmap_reload_request_errors",
                "Total request errors",
                c.request_errors.clone(),
            );
            registry.register(
                "configmap_reload_watcher_errors",
                "Total filesystem watcher errors",
                c.watcher_errors.clone(),
            );
            registry.register(
                "configmap_reload_requests",
                "Total http requests",
                c.requests.clone(),
            );
            c
        });
        Metrics {
            registry,
            changes,
            actions,
            action_duration,
            validation_failures,
            watch_errors,
            compat,
        }
    }

    /// Registers `--report-pod`'s metrics and returns them, for the pod reporter.
    #[cfg(feature = "kube")]
    pub fn register_report(&mut self) -> rekindle::report::ReportMetrics {
        rekindle::report::ReportMetrics::register(&mut self.registry)
    }

    /// Registers `rekindle sync`'s metrics and returns them, for the API watch loop.
    #[cfg(feature = "kube")]
    pub fn register_sync(&mut self) -> SyncMetrics {
        let m = SyncMetrics::default();
        self.registry.register(
            "rekindle_sync_writes",
            "Writes of the object into the directory, by result (swapped, unchanged, failed)",
            m.writes.clone(),
        );
        self.registry.register(
            "rekindle_sync_api_errors",
            "Failures of the API watch (each is retried with backoff)",
            m.api_errors.clone(),
        );
        self.registry.register(
            "rekindle_sync_object_present",
            "1 while the synced object exists, 0 after it was deleted or while it is missing",
            m.present.clone(),
        );
        m
    }

    pub fn change(&self) {
        self.changes.inc();
    }

    pub fn action(&self, action: &'static str, result: ActionResult, took: Duration) {
        self.actions
            .get_or_create(&vec![
                ("action", action.to_owned()),
                ("result", result.label().to_owned()),
            ])
            .inc();
        self.action_duration
            .get_or_create(&vec![("action", action.to_owned())])
            .observe(took.as_secs_f64());
    }

    pub fn validation_failure(&self) {
        self.validation_failures.inc();
    }

    pub fn watch_error(&self) {
        self.watch_errors.inc();
        if let Some(c) = &self.compat {
            c.watcher_errors.inc();
        }
    }

    /// One webhook request that got a response (`status`) or not.
    pub fn webhook_request(&self, webhook: &str, status: Option<u16>, took: Duration) {
        let Some(c) = &self.compat else { return };
        if let Some(status) = status {
            c.requests
                .get_or_create(&vec![
                    ("webhook", webhook.to_owned()),
                    ("status_code", status.to_string()),
                ])
                .inc();
        }
        c.last_request_duration
            .get_or_create(&vec![("webhook", webhook.to_owned())])
            .set(took.as_secs_f64());
    }

    /// The end of one attempt (or, with reason `retries_exhausted`, of a delivery).
    pub fn webhook_result(&self, webhook: &str, success: bool, reason: Option<&'static str>) {
        let Some(c) = &self.compat else { return };
        let label = vec![("webhook", webhook.to_owned())];
        if success {
            c.success_reloads.get_or_create(&label).inc();
            c.last_reload_error.get_or_create(&label).set(0);
        } else {
            c.last_reload_error.get_or_create(&label).set(1);
        }
        if let Some(reason) = reason {
            c.request_errors
                .get_or_create(&vec![
                    ("webhook", webhook.to_owned()),
                    ("reason", reason.to_owned()),
                ])
                .inc();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_names() {
        let m = Metrics::new(false);
        m.change();
        m.action("signal", ActionResult::Success, Duration::from_millis(2));
        m.validation_failure();
        m.watch_error();
        let text = m.render();
        for name in [
            "rekindle_changes_total 1",
            "rekindle_actions_total{action=\"signal\",result=\"success\"} 1",
            "rekindle_action_duration_seconds_count{action=\"signal\"} 1",
            "rekindle_validation_failures_total 1",
            "rekindle_watch_errors_total 1",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        assert!(!text.contains("configmap_reload"));
    }

    #[test]
    fn configmap_reload_names() {
        let m = Metrics::new(true);
        let hook = "http://u:xxxxx@127.0.0.1:1/";
        m.webhook_request(hook, Some(500), Duration::from_millis(3));
        m.webhook_result(hook, false, Some("client_response"));
        m.webhook_result(hook, false, Some("retries_exhausted"));
        m.watch_error();
        let text = m.render();
        for name in [
            "configmap_reload_requests_total{webhook=\"http://u:xxxxx@127.0.0.1:1/\",status_code=\"500\"} 1",
            "configmap_reload_request_errors_total{webhook=\"http://u:xxxxx@127.0.0.1:1/\",reason=\"client_response\"} 1",
            "configmap_reload_request_errors_total{webhook=\"http://u:xxxxx@127.0.0.1:1/\",reason=\"retries_exhausted\"} 1",
            "configmap_reload_last_reload_error{webhook=\"http://u:xxxxx@127.0.0.1:1/\"} 1",
            "configmap_reload_last_request_duration_seconds{webhook=",
            "configmap_reload_watcher_errors_total 1",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        m.webhook_result(hook, true, None);
        let text = m.render();
        assert!(text.contains(
            "configmap_reload_success_reloads_total{webhook=\"http://u:xxxxx@127.0.0.1:1/\"} 1"
        ));
        assert!(text.contains(
            "configmap_reload_last_reload_error{webhook=\"http://u:xxxxx@127.0.0.1:1/\"} 0"
        ));
    }
}
