//! rekindle-operator against a real kube-apiserver, etcd and
//! kube-controller-manager (Deployments really make ReplicaSets), running as a
//! ServiceAccount bound by the shipped RBAC manifest.

mod support;

use serde_json::json;
use support::*;

const NS: &str = "apps";
const VAR: &str = "STAKATER_APP_CONFIG_CONFIGMAP";

/// A Deployment `name` that reads the whole ConfigMap `app-config` through
/// `envFrom`, with `annotations` on its metadata.
async fn deployment_using_app_config(
    cluster: &Cluster,
    name: &str,
    annotations: serde_json::Value,
) {
    create_deployment(
        &cluster.client,
        NS,
        name,
        annotations,
        json!({"containers": [{
            "name": "app", "image": "registry.invalid/app:1",
            "envFrom": [{"configMapRef": {"name": "app-config"}}],
        }]}),
    )
    .await;
    eventually("the first ReplicaSet", || async {
        (replica_sets(&cluster.client, NS, name).await == 1).then_some(())
    })
    .await;
}

/// Makes a change only `barrier` cares about and waits until it is rolled:
/// after that, every event sent before it has been handled.
async fn barrier(cluster: &Cluster, round: u32) {
    let name = "barrier";
    if round == 0 {
        put_config_map(&cluster.client, NS, "barrier-config", &[("round", "0")]).await;
        create_deployment(
            &cluster.client,
            NS,
            name,
            json!({"configmap.reloader.stakater.com/reload": "barrier-config"}),
            json!({}),
        )
        .await;
        return;
    }
    put_config_map(
        &cluster.client,
        NS,
        "barrier-config",
        &[("round", &round.to_string())],
    )
    .await;
    eventually("the barrier Deployment to roll", || async {
        let value = template_env(
            &cluster.client,
            NS,
            name,
            "app",
            "STAKATER_BARRIER_CONFIG_CONFIGMAP",
        )
        .await;
        (replica_sets(&cluster.client, NS, name).await == round as usize + 1 && value.is_some())
            .then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn a_data_change_rolls_once_and_a_restart_rolls_nothing() {
    let cluster = Cluster::start().await;
    create_namespace(&cluster.client, NS).await;
    put_config_map(&cluster.client, NS, "app-config", &[("greeting", "hello")]).await;
    deployment_using_app_config(
        &cluster,
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
    )
    .await;
    barrier(&cluster, 0).await;

    let operator = cluster.operator(&[]).await;
    // Installing the operator rolls nothing.
    barrier(&cluster, 1).await;
    assert_eq!(replica_sets(&cluster.client, NS, "web").await, 1);
    assert_eq!(
        template_env(&cluster.client, NS, "web", "app", VAR).await,
        None
    );

    // A data change rolls the Deployment: the marker appears and the
    // Deployment controller makes a second ReplicaSet.
    put_config_map(
        &cluster.client,
        NS,
        "app-config",
        &[("greeting", "bonjour")],
    )
    .await;
    let marker = eventually("the marker on the template", || {
        template_env(&cluster.client, NS, "web", "app", VAR)
    })
    .await;
    assert_eq!(
        marker.len(),
        64,
        "a keyed digest, not Reloader's SHA-1: {marker}"
    );
    eventually("the second ReplicaSet", || async {
        (replica_sets(&cluster.client, NS, "web").await == 2).then_some(())
    })
    .await;
    // The Reloaded Event on the Deployment, with Reloader's reason and wording.
    let note = eventually("the Reloaded Event", || async {
        let events: kube::Api<k8s_openapi::api::events::v1::Event> =
            kube::Api::namespaced(cluster.client.clone(), NS);
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|e| {
            let regarding = e.regarding?;
            (e.reason.as_deref() == Some("Reloaded")
                && regarding.kind.as_deref() == Some("Deployment")
                && regarding.name.as_deref() == Some("web"))
            .then_some(e.note.unwrap_or_default())
        })
    })
    .await;
    assert_eq!(
        note,
        "Changes detected in 'app-config' of type 'CONFIGMAP' in namespace 'apps', Updated 'web' of type 'Deployment' in namespace 'apps'"
    );

    // A metadata-only change: nothing rolls.
    label_config_map(&cluster.client, NS, "app-config", "touched").await;
    barrier(&cluster, 2).await;
    assert_eq!(settled_replica_sets(&cluster.client, NS, "web").await, 2);

    // A restart of the operator rolls nothing.
    operator.stop();
    let operator = cluster.operator(&[]).await;
    barrier(&cluster, 3).await;
    assert_eq!(settled_replica_sets(&cluster.client, NS, "web").await, 2);
    assert_eq!(
        template_env(&cluster.client, NS, "web", "app", VAR)
            .await
            .as_deref(),
        Some(marker.as_str())
    );
    drop(operator);
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn a_port_alone_listens_on_ipv6_and_ipv4() {
    let cluster = Cluster::start().await;
    let port = free_port();
    let _operator = cluster
        .operator(&[&format!("--metrics-addr=:{port}")])
        .await;
    for host in ["127.0.0.1", "[::1]"] {
        let answer = http_get(&format!("http://{host}:{port}/live")).await;
        assert_eq!(answer.map(|(status, _)| status), Some(200), "{host}");
    }
}
