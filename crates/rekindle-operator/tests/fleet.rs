//! The fleet view in the operator: `rekindle_workload_config_pods` on `/metrics`, for a
//! Deployment whose pods (made by the real controller-manager through a ReplicaSet)
//! report in their `rekindle.io/applied` annotation, as `rekindle --report-pod` writes
//! it. The operator runs as its ServiceAccount with the shipped cluster-wide RBAC, so
//! the test also shows that the manifest lets it watch pods.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use rekindle::Digest;
use rekindle::report::{ANNOTATION, Report, Result as Outcome, SourceReport};
use serde_json::json;
use support::*;

const NS: &str = "apps";

async fn config_digest(client: &kube::Client) -> Digest {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("app-config")
        .await
        .expect("app-config");
    rekindle::api::config_map_digest(&cm)
}

async fn report(client: &kube::Client, pod: &str, via: &str, digest: Digest, result: Outcome) {
    let mut report = Report::default();
    let reason = (result != Outcome::Applied).then_some("LOG_LEVEL: unknown level");
    report
        .sources
        .insert(via.to_owned(), SourceReport::now(digest, result, reason));
    let patch = json!({"metadata": {"annotations": {ANNOTATION: report.to_json()}}});
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate pod");
}

/// The five series of `deployment/web`, as `state=count` in state order, once they
/// equal `want`.
async fn wait_states(operator: &Operator, want: &str) {
    eventually(&format!("rekindle_workload_config_pods to be {want}"), || async {
        let text = operator.metrics().await;
        let states: Vec<String> = ["current", "stale", "rejected", "failed", "unknown"]
            .iter()
            .filter_map(|state| {
                let prefix = format!(
                    "rekindle_workload_config_pods{{namespace=\"{NS}\",workload=\"deployment/web\",state=\"{state}\"}} "
                );
                let value = text.lines().find_map(|l| l.strip_prefix(&prefix))?;
                Some(format!("{state}={value}"))
            })
            .collect();
        (states.join(" ") == want).then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn the_metric_counts_pods_by_state() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    put_config_map(client, NS, "app-config", &[("LOG_LEVEL", "info")]).await;
    create_object(
        client,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "app", "image": "registry.invalid/app:1",
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
                    },
                },
            },
        }),
    )
    .await;
    let pods = eventually("the Deployment's three pods", || async {
        let list = Api::<Pod>::namespaced(client.clone(), NS)
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        names.sort();
        (names.len() == 3).then_some(names)
    })
    .await;
    let operator = cluster.operator(&[]).await;
    // Nothing reports yet: no series for the workload.
    assert!(
        !operator
            .metrics()
            .await
            .contains("workload=\"deployment/web\""),
        "{}",
        operator.metrics().await
    );

    let v1 = config_digest(client).await;
    let old = *rekindle::Snapshot::from_entries([("LOG_LEVEL", "debug")]).digest();
    report(client, &pods[0], "/etc/app", v1, Outcome::Applied).await;
    report(
        client,
        &pods[1],
        "configmap/app-config",
        old,
        Outcome::Applied,
    )
    .await;
    report(client, &pods[2], "/etc/app/", v1, Outcome::Rejected).await;
    wait_states(&operator, "current=1 stale=1 rejected=1 failed=0 unknown=0").await;

    // The ConfigMap changes: every report is about older content now.
    put_config_map(client, NS, "app-config", &[("LOG_LEVEL", "warn")]).await;
    wait_states(&operator, "current=0 stale=3 rejected=0 failed=0 unknown=0").await;
    let v2 = config_digest(client).await;
    report(client, &pods[0], "/etc/app", v2, Outcome::Applied).await;
    report(
        client,
        &pods[1],
        "configmap/app-config",
        v2,
        Outcome::Failed,
    )
    .await;
    wait_states(&operator, "current=1 stale=1 rejected=0 failed=1 unknown=0").await;

    // A pod replaced: the new one has not reported yet.
    Api::<Pod>::namespaced(client.clone(), NS)
        .delete(&pods[2], &Default::default())
        .await
        .expect("delete pod");
    wait_states(&operator, "current=1 stale=0 rejected=0 failed=1 unknown=1").await;
    assert!(
        operator
            .metric("rekindle_operator_cached_objects{kind=\"pod\"}")
            .await
            >= 3.0
    );
    // No rollout came of any of it: the Deployment asks for none.
    operator.assert_rollouts(0).await;
}
