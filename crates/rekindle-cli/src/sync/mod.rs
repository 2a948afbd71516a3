//! `rekindle sync` (and `rekindle run --sync-configmap`): a ConfigMap or Secret read
//! through the API and written into a directory with the kubelet's layout, at once
//! instead of 60 to 120 seconds later.
//!
//! The directory is then watched like any volume: the same driver runs the same actions,
//! so `REKINDLE_DIGEST` is what `rekindle watch` on that directory reports, and the
//! application reads the same files it would read from a volume. The API watch
//! (`rekindle::api`) reconnects by itself; a write that fails (a full disk) is retried
//! with backoff until it succeeds or newer content replaces it, and never leaves a
//! half-written directory.

pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use rekindle::Snapshot;
use rekindle::api::{self, ApiError, ApiEvent, ObjectRef};
use tokio::task::JoinHandle;

use crate::metrics::SyncMetrics;
use writer::{VolumeWriter, Written};

/// Which object goes into which directory.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    pub object: ObjectRef,
    pub dir: PathBuf,
    /// The mode of every file written.
    pub mode: u32,
}

/// A client from the pod's ServiceAccount, or else from `KUBECONFIG` / `~/.kube/config`.
pub async fn connect() -> anyhow::Result<kube::Client> {
    kube::Client::try_default().await.context(
        "connecting to the Kubernetes API (in a pod: the ServiceAccount's token must be \
         mounted; elsewhere: set KUBECONFIG or write ~/.kube/config)",
    )
}

/// The first read and write, before anything watches the directory.
///
/// The object is read once; an error says what to fix (`not found`, or `access denied`
/// with the RBAC rule to add). Without `wait_for_object`, a missing object is an error
/// too; with it, the directory is written when the object is created.
pub async fn first_write(
    client: &kube::Client,
    plan: &SyncPlan,
    wait_for_object: bool,
) -> anyhow::Result<Option<Written>> {
    let writer = VolumeWriter::new(plan.dir.clone(), plan.mode);
    match api::get(client, &plan.object).await {
        Ok(snapshot) => {
            let written = writer
                .write(&snapshot)
                .with_context(|| format!("writing {} into {}", plan.object, plan.dir.display()))?;
            tracing::info!(
                object = %api::resolve(client, &plan.object),
                dir = %plan.dir.display(),
                keys = snapshot.len(),
                digest = %snapshot.digest().short(),
                "synced"
            );
            Ok(Some(written))
        }
        Err(error @ ApiError::NotFound { .. }) if wait_for_object => {
            tracing::warn!(%error, dir = %plan.dir.display(), "waiting for the object to be created");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Watches the object and writes each new content into the directory, for as long as
/// the returned task runs (abort it to stop).
pub fn spawn(client: kube::Client, plan: SyncPlan, metrics: SyncMetrics) -> JoinHandle<()> {
    tokio::spawn(follow(client, plan, metrics))
}

/// How long to wait before writing again after a failed write: 1 s, doubling, at most 30 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

async fn follow(client: kube::Client, plan: SyncPlan, metrics: SyncMetrics) {
    let object = api::resolve(&client, &plan.object);
    let writer = VolumeWriter::new(plan.dir.clone(), plan.mode);
    let mut events = api::events(client, object.clone());
    // Content not written yet, and how many times writing it failed.
    let mut pending: Option<Arc<Snapshot>> = None;
    let mut failures = 0u32;
    loop {
        let event = if pending.is_some() {
            tokio::select! {
                event = events.next() => event,
                () = tokio::time::sleep(retry_delay(failures)) => {
                    write(&writer, &object, &mut pending, &mut failures, &metrics);
                    continue;
                }
            }
        } else {
            events.next().await
        };
        let Some(event) = event else { return };
        match event {
            ApiEvent::Changed(snapshot) => {
                metrics.present(true);
                pending = Some(snapshot);
                failures = 0;
                write(&writer, &object, &mut pending, &mut failures, &metrics);
            }
            // The library logged them; the directory keeps the last content.
            ApiEvent::Missing | ApiEvent::Deleted => metrics.present(false),
            ApiEvent::Failed(_) => metrics.api_error(),
            _ => {}
        }
    }
}

fn write(
    writer: &VolumeWriter,
    object: &ObjectRef,
    pending: &mut Option<Arc<Snapshot>>,
    failures: &mut u32,
    metrics: &SyncMetrics,
) {
    let Some(snapshot) = pending.as_ref() else {
        return;
    };
    // A ConfigMap is at most about 1 MiB: writing it takes milliseconds, so it is done
    // here rather than on a blocking thread.
    match writer.write(snapshot) {
        Ok(Written::Swapped) => {
            metrics.write("swapped");
            tracing::debug!(%object, dir = %writer.dir().display(), digest = %snapshot.digest().short(), "swapped in");
            *pending = None;
        }
        Ok(Written::Unchanged) => {
            metrics.write("unchanged");
            *pending = None;
        }
        Err(error) => {
            metrics.write("failed");
            *failures += 1;
            tracing::error!(
                %object,
                dir = %writer.dir().display(),
                digest = %snapshot.digest().short(),
                attempt = *failures,
                retry_in = ?retry_delay(*failures),
                error = %error,
                "cannot write the new content; the directory keeps the previous one"
            );
        }
    }
}

/// `rekindle sync`: write once (`--once`), or write, then watch and act like `watch`.
pub async fn run(args: crate::cli::SyncArgs) -> anyhow::Result<std::process::ExitCode> {
    let Some(object) = args.configmap.or(args.secret) else {
        anyhow::bail!("--configmap or --secret is required");
    };
    let dir = std::path::absolute(&args.to)
        .with_context(|| format!("resolving {}", args.to.display()))?;
    let plan = SyncPlan {
        object,
        dir: dir.clone(),
        mode: args.mode,
    };
    if args.once {
        let client = connect().await?;
        first_write(&client, &plan, false).await?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut watch = crate::plan::WatchPlan::with_actions(vec![dir], args.act);
    watch.sync = Some(plan);
    crate::watch::run(watch).await
}

/// Connects, writes the object's current content, and starts following it: what
/// `sync` and `run --sync-*` do before their driver starts. With `wait_for_object`, a
/// missing object is waited for instead of being an error.
pub async fn start(
    plan: &SyncPlan,
    metrics: SyncMetrics,
    wait_for_object: bool,
) -> anyhow::Result<JoinHandle<()>> {
    let client = connect().await?;
    let written = first_write(&client, plan, wait_for_object).await?;
    metrics.present(written.is_some());
    Ok(spawn(client, plan.clone(), metrics))
}

/// Parses `--mode`: octal, with or without a leading 0 (`0644`, `644`, `0o600`).
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("{text:?} is not an octal file mode such as 0644 or 0400"))?;
    if mode > 0o777 {
        return Err(format!(
            "{text:?} is not a file mode: at most 0777 (no setuid, setgid or sticky bits)"
        ));
    }
    if mode & 0o400 == 0 {
        return Err(format!(
            "{text:?} leaves the files unreadable by their owner; use 0400 or more"
        ));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_and_sane() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0o400"), Ok(0o400));
        assert!(parse_mode("0999").unwrap_err().contains("octal"));
        assert!(parse_mode("4755").unwrap_err().contains("setuid"));
        assert!(parse_mode("0044").unwrap_err().contains("unreadable"));
        assert!(parse_mode("rw").is_err());
    }

    #[test]
    fn write_retries_back_off_to_half_a_minute() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
