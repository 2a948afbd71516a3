//! Which namespaces and sources are in scope: `--namespace-selector`,
//! `--resource-label-selector` and `--namespaces-to-ignore`.
//!
//! Every ConfigMap event arrives on one cluster-wide stream, in order, so a
//! rollout caused by a later change proves an earlier change was handled.

mod support;

use serde_json::json;
use support::*;

const VAR: &str = "STAKATER_APP_CONFIG_CONFIGMAP";

async fn namespace_with_labels(cluster: &Cluster, name: &str, labels: serde_json::Value) {
    create_object(
        &cluster.client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}),
    )
    .await;
}

async fn marker(cluster: &Cluster, ns: &str) -> Option<String> {
    template_env(&cluster.client, ns, "web", "app", VAR).await
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn selectors_and_ignored_namespaces_limit_what_rolls() {
    let cluster = Cluster::start().await;
    namespace_with_labels(&cluster, "team-a", json!({"env": "prod"})).await;
    namespace_with_labels(&cluster, "team-b", json!({})).await;
    for ns in ["team-a", "team-b"] {
        put_config_map(&cluster.client, ns, "app-config", &[("k", "1")]).await;
        label_config_map(&cluster.client, ns, "app-config", "reload").await;
        put_config_map(&cluster.client, ns, "unlabelled", &[("k", "1")]).await;
        deployment("web")
            .auto()
            .app(env_from_config_map("app-config"))
            .create(&cluster, ns)
            .await;
        deployment("other")
            .auto()
            .app(env_from_config_map("unlabelled"))
            .create(&cluster, ns)
            .await;
    }

    let operator = cluster
        .operator(&[
            "--namespace-selector=env=prod",
            "--resource-label-selector=reload=x",
            "--cooldown=0s",
        ])
        .await;
    put_config_map(&cluster.client, "team-a", "unlabelled", &[("k", "2")]).await;
    put_config_map(&cluster.client, "team-b", "app-config", &[("k", "2")]).await;
    put_config_map(&cluster.client, "team-a", "app-config", &[("k", "2")]).await;
    let first = eventually("team-a/web rolled", || marker(&cluster, "team-a")).await;
    // The loop finishes its rollouts before it reads the next event: once this
    // second change is rolled, anything the earlier ones caused is done.
    put_config_map(&cluster.client, "team-a", "app-config", &[("k", "2b")]).await;
    eventually("team-a/web rolled again", || async {
        marker(&cluster, "team-a").await.filter(|m| *m != first)
    })
    .await;
    assert_eq!(
        marker(&cluster, "team-b").await,
        None,
        "team-b is not selected"
    );
    let other = template_env(
        &cluster.client,
        "team-a",
        "other",
        "app",
        "STAKATER_UNLABELLED_CONFIGMAP",
    )
    .await;
    assert_eq!(other, None, "an unlabelled ConfigMap is not watched");
    operator.stop();

    let _operator = cluster
        .operator(&["--namespaces-to-ignore=team-a", "--cooldown=0s"])
        .await;
    let before = marker(&cluster, "team-a").await;
    put_config_map(&cluster.client, "team-a", "app-config", &[("k", "3")]).await;
    put_config_map(&cluster.client, "team-b", "app-config", &[("k", "3")]).await;
    let first = eventually("team-b/web rolled", || marker(&cluster, "team-b")).await;
    put_config_map(&cluster.client, "team-b", "app-config", &[("k", "3b")]).await;
    eventually("team-b/web rolled again", || async {
        marker(&cluster, "team-b").await.filter(|m| *m != first)
    })
    .await;
    assert_eq!(
        marker(&cluster, "team-a").await,
        before,
        "team-a is ignored"
    );
}
