//! `--report-pod`: after each outcome, this pod's annotation `rekindle.io/applied` says,
//! per watched source, which digest it applied, rejected or failed on, and when (the
//! format is `rekindle::report`). `rekindle status` and the operator read it.
//!
//! The driver hands each outcome to a [`Reporter`] and goes on: the PATCH happens on a
//! task of its own ([`patcher`]), which coalesces outcomes that arrive while it is busy,
//! retries a failed PATCH a few times, and never delays a reload.

#[cfg(feature = "kube")]
pub mod patcher;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rekindle::Digest;
use rekindle::report::{Result as ReportResult, SourceReport};
use tokio::sync::mpsc;

/// One source's new state, for the patcher.
pub type Update = (String, SourceReport);

/// Where the driver leaves outcomes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// The name each watched directory is reported under: the directory itself, or
    /// `configmap/NAME` / `secret/NAME` for a directory `rekindle sync` writes.
    labels: HashMap<PathBuf, String>,
    tx: mpsc::UnboundedSender<Update>,
}

impl Reporter {
    #[cfg_attr(not(feature = "kube"), allow(dead_code))]
    pub fn new(labels: HashMap<PathBuf, String>, tx: mpsc::UnboundedSender<Update>) -> Reporter {
        Reporter { labels, tx }
    }

    /// Records an outcome for `dir`. `reason` must name no value: the driver passes its
    /// own words (an exit status, an action's error), never a command's output.
    pub fn report(&self, dir: &Path, digest: Digest, result: ReportResult, reason: Option<&str>) {
        let label = self
            .labels
            .get(dir)
            .cloned()
            .unwrap_or_else(|| dir.display().to_string());
        // The patcher ends only with the process.
        let _ = self
            .tx
            .send((label, SourceReport::now(digest, result, reason)));
    }
}

/// Starts the patcher when `--report-pod` was given: the reporter for the driver, with
/// each directory's label (`labels`: the directories `rekindle sync` writes, by the
/// object's name; any other is reported under its path).
#[cfg(feature = "kube")]
pub async fn start(
    enabled: bool,
    labels: HashMap<PathBuf, String>,
    metrics: &mut crate::metrics::Metrics,
) -> anyhow::Result<Option<Reporter>> {
    if !enabled {
        return Ok(None);
    }
    let pod = patcher::pod_from_env().map_err(anyhow::Error::msg)?;
    let client = crate::sync::connect().await?;
    tracing::info!(pod = %pod.name, namespace = %pod.namespace, "reporting outcomes on the pod (rekindle.io/applied)");
    let tx = patcher::spawn(client, pod, metrics.register_report());
    Ok(Some(Reporter::new(labels, tx)))
}
