//! `--report-pod`: after each outcome, this pod's annotation `rekindle.io/applied` says,
//! per watched source, which digest it applied, rejected or failed on, and when (the
//! format is `rekindle::report`). `rekindle status` and the operator read it.
//!
//! The driver hands each outcome to a [`Reporter`] and goes on: the library's
//! `PodReporter` PATCHes on a task of its own, merges outcomes that arrive while it is
//! busy, keeps the entries other writers on the pod made, retries a failed PATCH a few
//! times, and never delays a reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rekindle::Digest;
use rekindle::report::{Result as ReportResult, SourceReport};

type Sink = Arc<dyn Fn(&str, SourceReport) + Send + Sync>;

/// Where the driver leaves outcomes. Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    /// The name each watched directory is reported under: the directory itself, or
    /// `configmap/NAME` / `secret/NAME` for a directory `rekindle sync` writes.
    labels: HashMap<PathBuf, String>,
    sink: Sink,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    #[cfg_attr(not(feature = "kube"), allow(dead_code))]
    pub fn new(labels: HashMap<PathBuf, String>, sink: Sink) -> Reporter {
        Reporter { labels, sink }
    }

    /// Records an outcome for `dir`. `reason` must name no value: the driver passes its
    /// own words (an exit status, an action's error), never a command's output.
    pub fn report(&self, dir: &Path, digest: Digest, result: ReportResult, reason: Option<&str>) {
        let label = self
            .labels
            .get(dir)
            .cloned()
            .unwrap_or_else(|| dir.display().to_string());
        (self.sink)(&label, SourceReport::now(digest, result, reason));
    }
}

/// Starts the pod reporter when `--report-pod` was given: the reporter for the driver,
/// with each directory's label (`labels`: the directories `rekindle sync` writes, by
/// the object's name; any other is reported under its path).
#[cfg(feature = "kube")]
pub async fn start(
    enabled: bool,
    labels: HashMap<PathBuf, String>,
    metrics: &mut crate::metrics::Metrics,
) -> anyhow::Result<Option<Reporter>> {
    use rekindle::report::{PodRef, PodReporter};
    if !enabled {
        return Ok(None);
    }
    let pod = PodRef::from_env().map_err(|e| anyhow::anyhow!("--report-pod: {e}"))?;
    let client = crate::sync::connect().await?;
    tracing::info!(pod = %pod.name, namespace = %pod.namespace, "reporting outcomes on the pod (rekindle.io/applied)");
    let pod = PodReporter::spawn(client, pod, Some(metrics.register_report()));
    let sink: Sink = Arc::new(move |source, state| pod.report(source, state));
    Ok(Some(Reporter::new(labels, sink)))
}
