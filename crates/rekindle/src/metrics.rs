//! Prometheus metrics for reloads, registered into the application's own registry.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: Outcome,
}

/// The reload metrics of one [`crate::Reloadable`]:
/// `rekindle_reloads_total{result}`, `rekindle_reload_duration_seconds`,
/// `rekindle_config_version` and `rekindle_last_reload_success_timestamp_seconds`.
///
/// To serve several configs from one registry, register each into
/// `registry.sub_registry_with_label(("config", "name".into()))`.
#[derive(Debug, Clone)]
pub struct ReloadMetrics {
    reloads: Family<ResultLabel, Counter>,
    duration: Histogram,
    version: Gauge,
    last_success: Gauge<f64, AtomicU64>,
}

impl ReloadMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> ReloadMetrics {
        let metrics = ReloadMetrics {
            reloads: Family::default(),
            // 100 µs to about 6.5 s: a reload is a read and a parse.
            duration: Histogram::new(exponential_buckets(0.0001, 4.0, 9)),
            version: Gauge::default(),
            last_success: Gauge::default(),
        };
        registry.register(
            "rekindle_reloads",
            "Config reload attempts by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "rekindle_reload_duration_seconds",
            "Time to decode, validate and apply a config",
            metrics.duration.clone(),
        );
        registry.register(
            "rekindle_config_version",
            "Version of the config in force",
            metrics.version.clone(),
        );
        registry.register(
            "rekindle_last_reload_success_timestamp_seconds",
            "Unix time of the last successful reload",
            metrics.last_success.clone(),
        );
        metrics
    }

    pub(crate) fn succeeded(&self, elapsed: Duration, version: u64, at: SystemTime) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: Outcome::Success,
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
        self.set_version(version);
        let unix = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_success.set(unix.as_secs_f64());
    }

    /// Counts a failed reload; `elapsed` is `None` when nothing was decoded (the directory
    /// could not be read), so the duration histogram only holds real reload attempts.
    pub(crate) fn failed(&self, elapsed: Option<Duration>) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: Outcome::Failure,
            })
            .inc();
        if let Some(elapsed) = elapsed {
            self.duration.observe(elapsed.as_secs_f64());
        }
    }

    pub(crate) fn set_version(&self, version: u64) {
        self.version.set(i64::try_from(version).unwrap_or(i64::MAX));
    }
}
