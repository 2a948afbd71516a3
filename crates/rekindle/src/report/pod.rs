//! Writing the report onto the pod (feature `kube`): a [`PodReporter`] takes outcomes
//! and PATCHes the pod's [`ANNOTATION`](super::ANNOTATION) on a task of its own, so a
//! reload never waits for the API server.
//!
//! - **Latest wins.** Outcomes that arrive while a PATCH is in flight are merged by
//!   source name and sent together: memory is bounded by the number of sources, and a
//!   burst of changes costs one PATCH.
//! - **Several writers per pod.** A sidecar per object, or the library in the
//!   application beside a sidecar, all write the one annotation. Each writer replaces
//!   only the sources it reports ([`Report::over`]) and sends the `resourceVersion` it
//!   merged against, so the API server refuses a PATCH that would drop another
//!   writer's entry (409 Conflict); the writer then reads the pod again and merges
//!   again. Without a conflict an outcome costs one PATCH.
//! - **Bounded retries.** A failed PATCH is retried a few times with backoff, then
//!   waits for the next outcome; a forbidden one is logged once, with the RBAC rule to
//!   add, and reloads go on unreported.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use rekindle::Reloadable;
//! use rekindle::report::{PodRef, PodReporter};
//!
//! # #[derive(serde::Deserialize)] struct Settings {}
//! let config = Reloadable::<Settings>::builder().load("/etc/app")?;
//! let _watch = config.watch("/etc/app", Default::default())?;
//! let client = kube::Client::try_default().await?;
//! // POD_NAME and POD_NAMESPACE from the downward API.
//! let reporter = PodReporter::spawn(client, PodRef::from_env()?, None);
//! reporter.follow(&config, "/etc/app");
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use super::{ANNOTATION, Report, Result as Outcome, SourceReport};
use crate::reload::{Reloadable, lock};

/// Attempts per batch for errors other than a conflict; then the batch waits for the
/// next outcome.
const ATTEMPTS: u32 = 3;
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Conflicts in a row (other writers, or the kubelet updating the pod's status) before
/// the batch counts as failed. Each costs a read and a PATCH.
const CONFLICTS: u32 = 10;

/// The pod to annotate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A downward-API variable that is not set.
#[derive(Debug, thiserror::Error)]
#[error(
    "reporting on the pod needs {variable} in the environment, from the downward API:\n  env:\n    - name: {variable}\n      valueFrom: {{fieldRef: {{fieldPath: metadata.{field}}}}}"
)]
pub struct PodRefError {
    /// `POD_NAME` or `POD_NAMESPACE`.
    pub variable: &'static str,
    field: &'static str,
}

impl PodRef {
    /// `POD_NAMESPACE/POD_NAME`, as the downward API sets them.
    pub fn from_env() -> Result<PodRef, PodRefError> {
        let get = |variable: &'static str, field: &'static str| {
            std::env::var(variable)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(PodRefError { variable, field })
        };
        Ok(PodRef {
            name: get("POD_NAME", "name")?,
            namespace: get("POD_NAMESPACE", "namespace")?,
        })
    }
}

/// `rekindle_report_patches_total{result}`: PATCHes of the annotation by result
/// (`success`, `conflict`, `failure`, `forbidden`).
#[derive(Debug, Clone, Default)]
pub struct ReportMetrics {
    patches: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl ReportMetrics {
    /// Creates the metric and registers it into `registry`.
    pub fn register(registry: &mut Registry) -> ReportMetrics {
        let metrics = ReportMetrics::default();
        registry.register(
            "rekindle_report_patches",
            "PATCHes of this pod's rekindle.io/applied annotation, by result (success, conflict: another writer came first and the PATCH is redone, failure, forbidden)",
            metrics.patches.clone(),
        );
        metrics
    }

    fn patch(&self, result: &'static str) {
        self.patches.get_or_create(&vec![("result", result)]).inc();
    }
}

/// Reports outcomes on one pod. Cheap to clone; the PATCH task ends when the last
/// clone is dropped, after sending what it holds.
#[derive(Debug, Clone)]
pub struct PodReporter {
    pending: Arc<Mutex<BTreeMap<String, SourceReport>>>,
    /// Capacity one: a full channel means the task is already due to look.
    wake: mpsc::Sender<()>,
}

impl PodReporter {
    /// Starts the PATCH task on the current tokio runtime.
    pub fn spawn(client: kube::Client, pod: PodRef, metrics: Option<ReportMetrics>) -> PodReporter {
        let pending = Arc::new(Mutex::new(BTreeMap::new()));
        let (wake, woken) = mpsc::channel(1);
        let task = Patcher {
            api: Api::namespaced(client, &pod.namespace),
            pod,
            metrics: metrics.unwrap_or_default(),
            ours: Report::default(),
            seen: None,
            forbidden_said: false,
        };
        tokio::spawn(task.run(pending.clone(), woken));
        PodReporter { pending, wake }
    }

    /// Records `state` as `source`'s latest outcome; it is sent soon, never blocking.
    pub fn report(&self, source: &str, state: SourceReport) {
        lock(&self.pending).insert(source.to_owned(), state);
        // Full: a wake-up is pending and will see this entry too.
        let _ = self.wake.try_send(());
    }

    /// Reports every outcome of `config` under `source` (a directory, or
    /// `configmap/NAME` / `secret/NAME`, as `rekindle status` matches them): the config
    /// in force now, each change put in force (`applied`, a rollback included: the pod
    /// then runs an older digest, which is the truth) and each refused one (`rejected`,
    /// with the error's first line, which names keys, never values).
    pub fn follow<T: Send + Sync + 'static>(&self, config: &Reloadable<T>, source: &str) {
        let applied = {
            let (reporter, source) = (self.clone(), source.to_owned());
            move |digest: &crate::Digest| {
                reporter.report(&source, SourceReport::now(*digest, Outcome::Applied, None));
            }
        };
        if let Some(digest) = config.current().digest() {
            applied(digest);
        }
        config.on_change(move |versioned| {
            if let Some(digest) = versioned.digest() {
                applied(digest);
            }
        });
        let (reporter, source) = (self.clone(), source.to_owned());
        config.on_reject(move |digest, error| {
            let reason = error.to_string();
            reporter.report(
                &source,
                SourceReport::now(*digest, Outcome::Rejected, Some(&reason)),
            );
        });
    }
}

/// What the pod carried at our last read or write: what a PATCH merges against.
struct Seen {
    resource_version: String,
    annotation: Option<String>,
}

impl Seen {
    fn of(meta: &PartialObjectMeta<Pod>) -> Option<Seen> {
        Some(Seen {
            resource_version: meta.metadata.resource_version.clone()?,
            annotation: meta
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION).cloned()),
        })
    }
}

struct Patcher {
    api: Api<Pod>,
    pod: PodRef,
    metrics: ReportMetrics,
    /// Every source this writer reports, with its latest outcome.
    ours: Report,
    seen: Option<Seen>,
    forbidden_said: bool,
}

/// Why a batch was not written.
enum Unsent {
    Forbidden(String),
    Error(String),
}

impl Patcher {
    async fn run(
        mut self,
        pending: Arc<Mutex<BTreeMap<String, SourceReport>>>,
        mut woken: mpsc::Receiver<()>,
    ) {
        // `None` once every reporter is gone; the last entries are still sent.
        while let Some(()) = woken.recv().await {
            let batch = std::mem::take(&mut *lock(&pending));
            if batch.is_empty() {
                continue;
            }
            self.ours.sources.extend(batch);
            self.send_with_retries().await;
        }
    }

    async fn send_with_retries(&mut self) {
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            match self.send().await {
                Ok(()) => {
                    tracing::debug!(pod = %self.pod.name, "reported");
                    return;
                }
                Err(Unsent::Forbidden(message)) => {
                    self.metrics.patch("forbidden");
                    if !std::mem::replace(&mut self.forbidden_said, true) {
                        tracing::error!(
                            pod = %self.pod.name,
                            namespace = %self.pod.namespace,
                            error = %message,
                            "the pod may not be annotated, so outcomes are not reported (reloads go on); the ServiceAccount needs a Role in namespace {} with apiGroups: [\"\"], resources: [\"pods\"], verbs: [\"patch\"] (resourceNames cannot name a pod before it exists)",
                            self.pod.namespace
                        );
                    }
                    return;
                }
                Err(Unsent::Error(error)) => {
                    self.metrics.patch("failure");
                    tracing::warn!(pod = %self.pod.name, attempt, %error, "could not report on the pod");
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
    }

    /// One write of `ours` over what the pod carries, redone after each conflict.
    async fn send(&mut self) -> Result<(), Unsent> {
        for _ in 0..CONFLICTS {
            let seen = match self.seen.take() {
                Some(seen) => seen,
                None => self.read().await?,
            };
            let merged = self.ours.over(seen.annotation.as_deref());
            let body = serde_json::json!({"metadata": {
                // A precondition: the API server answers 409 if the pod changed since.
                "resourceVersion": seen.resource_version,
                "annotations": {ANNOTATION: merged.to_json()},
            }});
            match self.patch(&body).await {
                Ok(meta) => {
                    self.metrics.patch("success");
                    self.seen = Seen::of(&meta);
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    self.metrics.patch("conflict");
                    tracing::debug!(pod = %self.pod.name, "the pod changed meanwhile; merging again");
                }
                Err(error) => return Err(classify(error)),
            }
        }
        Err(Unsent::Error(format!(
            "the pod changed {CONFLICTS} times in a row while reporting"
        )))
    }

    /// The pod's metadata now. An empty merge patch changes nothing and returns the
    /// object: it needs only the `patch` verb that reporting needs anyway, not `get`.
    async fn read(&self) -> Result<Seen, Unsent> {
        let meta = self.patch(&serde_json::json!({})).await.map_err(classify)?;
        Seen::of(&meta).ok_or_else(|| {
            Unsent::Error("the API server returned the pod without a resourceVersion".into())
        })
    }

    async fn patch(&self, body: &serde_json::Value) -> Result<PartialObjectMeta<Pod>, kube::Error> {
        self.api
            .patch_metadata(&self.pod.name, &PatchParams::default(), &Patch::Merge(body))
            .await
    }
}

fn classify(error: kube::Error) -> Unsent {
    match error {
        kube::Error::Api(status) if status.is_forbidden() => Unsent::Forbidden(status.message),
        other => Unsent::Error(other.to_string()),
    }
}
