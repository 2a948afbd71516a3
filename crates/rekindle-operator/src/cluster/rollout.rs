//! Performing a planned rollout: one strategic-merge PATCH for Deployments,
//! DaemonSets and StatefulSets (no GET, no LIST), a created Job for a CronJob,
//! delete-and-recreate for a Job; then the Kubernetes Event, written by a
//! task of its own so that the next rollout does not wait for it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::runtime::events::{Event, EventType, Recorder};

use crate::decide::throttle::EventBudget;
use tokio::sync::mpsc;

use crate::cluster::errors::{Explain, is_conflict, is_not_found};
use crate::decide::annotations::{LAST_RELOADED_FROM, RELOADED_DIGESTS};
use crate::decide::patch::{self, PatchError};
use crate::decide::plan::Plan;
use crate::model::{WorkloadId, WorkloadKind};
use crate::reconcile::{Outcome, Rollout};

/// The most one rollout may take, requests and retries included.
const ROLLOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a rollout failed.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{}", Explain(.0))]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error("cannot read the {kind} as batch/v1: {source}")]
    Decode {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("no answer from the API server within {0:?}")]
    Timeout(std::time::Duration),
    #[error("this workload kind is not handled by this build: {0}")]
    Unsupported(WorkloadKind),
    #[error(transparent)]
    Pause(#[from] crate::decide::pause::PauseError),
}

/// Events waiting to be written, at most: a flood of rollouts must not queue
/// without bound. Past it an event is dropped with a warning, as client-go's
/// recorder (Reloader's) drops them.
const EVENT_QUEUE: usize = 1024;

/// An Event to write, with the workload it is about (for the log).
type QueuedEvent = (WorkloadId, Event, ObjectReference);

/// Everything needed to roll workloads.
#[derive(Clone)]
pub struct Executor {
    client: kube::Client,
    /// CronJobs as the server serves them: batch/v1, or batch/v1beta1 before
    /// Kubernetes 1.21 (same schema for what is read here).
    cron_jobs: ApiResource,
    /// To the task that writes the Events.
    events: Option<mpsc::Sender<QueuedEvent>>,
    field_manager: String,
    /// The `paused-at` annotation's name.
    paused_at: String,
    /// Argo Rollouts, when watched and served.
    argo_rollouts: Option<ApiResource>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("cron_jobs", &self.cron_jobs.api_version)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// With a `recorder`, starts the task that writes the Events: call it
    /// within the Tokio runtime.
    pub fn new(
        client: kube::Client,
        cron_jobs: ApiResource,
        recorder: Option<Recorder>,
        paused_at: String,
        argo_rollouts: Option<ApiResource>,
    ) -> Executor {
        // An Event costs a request (a POST, then a PATCH of its series); written
        // inline, it doubled the time to roll several workloads of one change.
        let events = recorder.map(|recorder| {
            let (tx, rx) = mpsc::channel(EVENT_QUEUE);
            tokio::spawn(write_events(recorder, rx));
            tx
        });
        Executor {
            client,
            cron_jobs,
            events,
            field_manager: "rekindle-operator".to_owned(),
            paused_at,
            argo_rollouts,
        }
    }

    /// Performs `rollout` and publishes its Event. Errors are returned for the
    /// caller to log and count; the outcome says whether to retry.
    pub async fn execute(&self, rollout: &Rollout) -> (Outcome, Result<(), RolloutError>) {
        let id = &rollout.workload;
        // A hung request must not stop the operator's loop.
        let result = match tokio::time::timeout(ROLLOUT_TIMEOUT, self.perform(rollout)).await {
            Ok(result) => result,
            Err(_) => Err(RolloutError::Timeout(ROLLOUT_TIMEOUT)),
        };
        let outcome = match &result {
            Ok(()) => Outcome::Done,
            Err(RolloutError::Api(e)) if is_not_found(e) => Outcome::Gone,
            Err(_) => Outcome::Failed,
        };
        self.publish(id, &rollout.plan, result.as_ref().err());
        (outcome, result)
    }

    async fn perform(&self, rollout: &Rollout) -> Result<(), RolloutError> {
        let (id, plan, suspended) = (&rollout.workload, &rollout.plan, rollout.suspended);
        let annotations: BTreeMap<String, String> = [
            (LAST_RELOADED_FROM, &plan.reloaded_from),
            (RELOADED_DIGESTS, &plan.reloaded_digests),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value.clone()?)))
        .collect();
        match id.kind {
            WorkloadKind::Deployment => {
                let pause = rollout.pause.clone()?;
                self.patch::<Deployment>(id, plan, &annotations, pause)
                    .await
            }
            WorkloadKind::DaemonSet => self.patch::<DaemonSet>(id, plan, &annotations, false).await,
            WorkloadKind::StatefulSet => {
                self.patch::<StatefulSet>(id, plan, &annotations, false)
                    .await
            }
            WorkloadKind::CronJob if suspended => {
                tracing::info!(workload = %id, "suspended CronJob: no Job created");
                Ok(())
            }
            WorkloadKind::CronJob => self.instantiate(id, plan, &annotations).await,
            WorkloadKind::Job => self.recreate(id, plan, &annotations).await,
            WorkloadKind::Rollout => self.roll_argo(rollout, &annotations).await,
        }
    }

    async fn patch<K>(
        &self,
        id: &WorkloadId,
        plan: &Plan,
        annotations: &BTreeMap<String, String>,
        pause: bool,
    ) -> Result<(), RolloutError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &id.namespace);
        if !plan.remove.is_empty() {
            let mut removals = plan.remove.clone();
            // Later entries first, so earlier indexes stay valid.
            removals.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
            let ops: Vec<serde_json::Value> = removals
                .iter()
                .flat_map(|(c, e, name)| match patch::remove_env_patch(*c, *e, name) {
                    serde_json::Value::Array(ops) => ops,
                    other => vec![other],
                })
                .collect();
            let json: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
                .map_err(|source| RolloutError::Decode {
                    kind: "JSON patch",
                    source,
                })?;
            api.patch(&id.name, &PatchParams::default(), &Patch::Json::<()>(json))
                .await?;
        }
        if !plan.env.is_empty() || !annotations.is_empty() {
            let mut body = patch::template_patch(id.kind, &plan.env, annotations)?;
            if pause {
                // Paused in the same request as the template change: the
                // Deployment controller never sees the new template unpaused.
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                json_merge(&mut body, patch::pause_patch(&self.paused_at, &now));
            }
            let params = PatchParams {
                field_manager: Some(self.field_manager.clone()),
                ..PatchParams::default()
            };
            api.patch(&id.name, &params, &Patch::Strategic(body))
                .await?;
        }
        Ok(())
    }

    async fn instantiate(
        &self,
        id: &WorkloadId,
        plan: &Plan,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), RolloutError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &id.namespace, &self.cron_jobs);
        let object = api.get(&id.name).await?;
        let cron = crate::index::objects::typed_cron_job(&object).map_err(|source| {
            RolloutError::Decode {
                kind: "CronJob",
                source,
            }
        })?;
        let job = patch::job_from_cronjob(
            &cron,
            &self.cron_jobs.api_version,
            &plan.env,
            &plan.remove,
            annotations,
        )?;
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &id.namespace);
        jobs.create(
            &PostParams {
                field_manager: Some(self.field_manager.clone()),
                ..PostParams::default()
            },
            &job,
        )
        .await?;
        Ok(())
    }

    async fn recreate(
        &self,
        id: &WorkloadId,
        plan: &Plan,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), RolloutError> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &id.namespace);
        let job = jobs.get(&id.name).await?;
        let new = patch::recreated_job(&job, &plan.env, &plan.remove, annotations)?;
        let delete = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        jobs.delete(&id.name, &delete).await?;
        // The name frees up once the old object is gone; with background
        // propagation that is immediate unless a finalizer holds it.
        let post = PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..PostParams::default()
        };
        let mut attempt = 0;
        loop {
            match jobs.create(&post, &new).await {
                Ok(_) => return Ok(()),
                // The old Job is already deleted: a later attempt would find
                // nothing to copy, so the create is retried here, for any error,
                // within the rollout's time limit (a conflict means the old
                // object is not gone yet).
                Err(e) if attempt < 40 => {
                    if !is_conflict(&e) {
                        tracing::warn!(workload = %id, error = %Explain(&e), "re-creating the Job failed; retrying");
                    }
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt.min(10)))
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// An Argo Rollout: `spec.restartAt` with `rollout-strategy: restart`, else
    /// a merge patch of the template (a CRD takes no strategic merge), built
    /// from the Rollout as read now and guarded by its resourceVersion.
    async fn roll_argo(
        &self,
        rollout: &Rollout,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), RolloutError> {
        let id = &rollout.workload;
        let Some(resource) = &self.argo_rollouts else {
            return Err(RolloutError::Unsupported(id.kind));
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &id.namespace, resource);
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        };
        let body = if rollout.restart {
            patch::restart_at_patch(&k8s_openapi::jiff::Timestamp::now().to_string())
        } else {
            let current = api.get(&id.name).await?;
            let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(
                current.data["spec"]["template"]["spec"].clone(),
            )
            .map_err(|source| RolloutError::Decode {
                kind: "Rollout",
                source,
            })?;
            patch::rollout_template_patch(
                &spec,
                current.metadata.resource_version.as_deref(),
                &rollout.plan.env,
                &rollout.plan.remove,
                annotations,
            )?
        };
        api.patch(&id.name, &params, &Patch::Merge(body)).await?;
        Ok(())
    }

    /// Resumes a Deployment the operator paused (`pause-period` over).
    pub async fn resume(&self, id: &WorkloadId) -> Result<(), RolloutError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &id.namespace);
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        };
        api.patch(
            &id.name,
            &params,
            &Patch::Strategic(patch::resume_patch(&self.paused_at)),
        )
        .await?;
        Ok(())
    }

    /// Reloader's Events: `Reloaded` (Normal) or `ReloadFail` (Warning) on the
    /// workload, queued for the Event task. A failure to publish is logged and
    /// does not fail the rollout.
    fn publish(&self, id: &WorkloadId, plan: &Plan, error: Option<&RolloutError>) {
        let Some(events) = &self.events else {
            return;
        };
        let (type_, reason, note) = match error {
            None => {
                let source = plan.because.first();
                let note = match source {
                    Some(s) => format!(
                        "Changes detected in '{}' of type '{}' in namespace '{}', Updated '{}' of type '{}' in namespace '{}'",
                        s.name,
                        s.kind.upper(),
                        s.namespace,
                        id.name,
                        id.kind.kind(),
                        id.namespace
                    ),
                    None => format!(
                        "Updated '{}' of type '{}' in namespace '{}'",
                        id.name,
                        id.kind.kind(),
                        id.namespace
                    ),
                };
                (EventType::Normal, "Reloaded", note)
            }
            Some(error) => (
                EventType::Warning,
                "ReloadFail",
                format!(
                    "Update for '{}' of type '{}' in namespace '{}' failed with error {error}",
                    id.name,
                    id.kind.kind(),
                    id.namespace
                ),
            ),
        };
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reload".to_owned(),
            secondary: None,
        };
        let (api_version, kind) = match id.kind {
            WorkloadKind::Deployment | WorkloadKind::DaemonSet | WorkloadKind::StatefulSet => {
                ("apps/v1", id.kind.kind())
            }
            WorkloadKind::CronJob => (self.cron_jobs.api_version.as_str(), "CronJob"),
            WorkloadKind::Job => ("batch/v1", "Job"),
            WorkloadKind::Rollout => ("argoproj.io/v1alpha1", "Rollout"),
        };
        let reference = ObjectReference {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
            name: Some(id.name.clone()),
            namespace: Some(id.namespace.clone()),
            ..ObjectReference::default()
        };
        match events.try_send((id.clone(), event, reference)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(workload = %id, "too many Events waiting; the {reason} event is dropped");
            }
            // The task ends only with the runtime: the process is stopping.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Writes the queued Events one at a time, in order, until the executors are gone,
/// within each workload's budget ([`EventBudget`]: 25, then one per 5 minutes).
async fn write_events(recorder: Recorder, mut queue: mpsc::Receiver<QueuedEvent>) {
    let mut budget = EventBudget::default();
    while let Some((id, event, reference)) = queue.recv().await {
        let kind = match event.type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        if !budget.allow(&id, kind, std::time::Instant::now()) {
            tracing::debug!(workload = %id, reason = %event.reason, "Event not written: this workload's Event budget is spent");
            continue;
        }
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(workload = %id, error = %Explain(&error), "could not publish the {} event", event.reason);
        }
    }
}

/// Merges JSON object `from` into `into`, recursively.
fn json_merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(into), serde_json::Value::Object(from)) => {
            for (key, value) in from {
                json_merge(into.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}
