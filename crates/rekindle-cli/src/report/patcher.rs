//! The PATCH of the pod's annotation, on a task of its own: one merge patch of that one
//! annotation per batch of outcomes, bounded retries, and a forbidden PATCH said once
//! with the RBAC rule to add.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use rekindle::report::{ANNOTATION, Report};
use tokio::sync::mpsc;

use super::Update;
use crate::metrics::ReportMetrics;

/// Attempts per batch; then the batch waits for the next outcome.
const ATTEMPTS: u32 = 3;
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The pod to annotate: `POD_NAMESPACE/POD_NAME` from the downward API.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// Reads `POD_NAME` and `POD_NAMESPACE`, or says which is missing.
pub fn pod_from_env() -> Result<PodRef, String> {
    let get = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!(
                    "--report-pod needs {name} in the environment, from the downward API:\n  env:\n    - name: {name}\n      valueFrom: {{fieldRef: {{fieldPath: metadata.{}}}}}",
                    if name == "POD_NAME" { "name" } else { "namespace" }
                )
            })
    };
    Ok(PodRef {
        name: get("POD_NAME")?,
        namespace: get("POD_NAMESPACE")?,
    })
}

/// Starts the patcher; returns where to send outcomes.
pub fn spawn(
    client: kube::Client,
    pod: PodRef,
    metrics: ReportMetrics,
) -> mpsc::UnboundedSender<Update> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(client, pod, metrics, rx));
    tx
}

async fn run(
    client: kube::Client,
    pod: PodRef,
    metrics: ReportMetrics,
    mut rx: mpsc::UnboundedReceiver<Update>,
) {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    let mut report = Report::default();
    let mut forbidden_said = false;
    while let Some((source, state)) = rx.recv().await {
        report.sources.insert(source, state);
        // Outcomes that arrived meanwhile join this PATCH.
        while let Ok((source, state)) = rx.try_recv() {
            report.sources.insert(source, state);
        }
        let body = serde_json::json!({"metadata": {"annotations": {ANNOTATION: report.to_json()}}});
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            match api
                .patch_metadata(&pod.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {
                    metrics.patch("success");
                    tracing::debug!(pod = %pod.name, "reported");
                    break;
                }
                Err(kube::Error::Api(status)) if status.is_forbidden() => {
                    metrics.patch("forbidden");
                    if !std::mem::replace(&mut forbidden_said, true) {
                        tracing::error!(
                            pod = %pod.name,
                            namespace = %pod.namespace,
                            error = %status.message,
                            "--report-pod: the pod may not be annotated; the ServiceAccount needs a Role in namespace {} with apiGroups: [\"\"], resources: [\"pods\"], verbs: [\"patch\"] (resourceNames cannot name a pod before it exists); reloads go on unreported",
                            pod.namespace
                        );
                    }
                    break;
                }
                Err(error) => {
                    metrics.patch("failure");
                    tracing::warn!(pod = %pod.name, attempt, %error, "could not report");
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
    }
}
