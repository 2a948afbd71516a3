//! `deployment.reloader.stakater.com/pause-period` on the real control plane:
//! the rollout pauses the Deployment, and the resume happens even when the
//! operator restarted in between (Reloader leaves it paused, issue #1016).

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::json;
use support::*;

const NS: &str = "apps";
const PAUSED_AT: &str = "deployment.reloader.stakater.com/paused-at";

async fn pause_state(client: &kube::Client, name: &str) -> (bool, Option<String>) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d = api.get(name).await.expect("deployment");
    let paused = d.spec.and_then(|s| s.paused).unwrap_or(false);
    let at = d
        .metadata
        .annotations
        .and_then(|a| a.get(PAUSED_AT).cloned());
    (paused, at)
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn a_pause_period_survives_an_operator_restart() {
    let cluster = Cluster::start().await;
    create_namespace(&cluster.client, NS).await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "1")]).await;
    create_deployment(
        &cluster.client,
        NS,
        "web",
        json!({
            "reloader.stakater.com/auto": "true",
            "deployment.reloader.stakater.com/pause-period": "8s",
        }),
        json!({"containers": [{
            "name": "app", "image": "registry.invalid/app:1",
            "envFrom": [{"configMapRef": {"name": "app-config"}}],
        }]}),
    )
    .await;
    eventually("the first ReplicaSet", || async {
        (replica_sets(&cluster.client, NS, "web").await == 1).then_some(())
    })
    .await;

    let operator = cluster.operator(&[]).await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "2")]).await;
    // Paused in the same request as the template change.
    let at = eventually("the Deployment paused with the marker", || async {
        let (paused, at) = pause_state(&cluster.client, "web").await;
        let marker = template_env(
            &cluster.client,
            NS,
            "web",
            "app",
            "STAKATER_APP_CONFIG_CONFIGMAP",
        )
        .await;
        (paused && marker.is_some()).then_some(at).flatten()
    })
    .await;
    assert!(
        at.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "paused-at is RFC 3339: {at}"
    );
    // While paused the Deployment controller makes no ReplicaSet (counted once it
    // has seen the new template).
    assert_eq!(settled_replica_sets(&cluster.client, NS, "web").await, 1);

    // The operator restarts during the pause; the new one resumes it.
    operator.stop();
    let _operator = cluster.operator(&[]).await;
    eventually(
        "the Deployment resumed by the restarted operator",
        || async {
            let (paused, at) = pause_state(&cluster.client, "web").await;
            (!paused && at.is_none()).then_some(())
        },
    )
    .await;
    eventually("the rollout after the resume", || async {
        (replica_sets(&cluster.client, NS, "web").await == 2).then_some(())
    })
    .await;
}
