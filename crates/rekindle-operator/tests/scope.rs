//! Which namespaces, sources and workloads are in scope: `--namespace-selector`,
//! `--resource-label-selector`, `--namespaces-to-ignore`, `--resources-to-ignore`,
//! `--ignored-workload-types` and `KUBERNETES_NAMESPACE`.
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

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn ignored_sources_ignored_kinds_and_the_environments_namespace() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    for ns in ["team-c", "team-d"] {
        create_namespace(client, ns).await;
        put_config_map(client, ns, "app-config", &[("k", "1")]).await;
        deployment("web")
            .auto()
            .app(env_from_config_map("app-config"))
            .create(&cluster, ns)
            .await;
    }
    workload(Kind::CronJob, "cron")
        .auto()
        .app(env_from_config_map("app-config"))
        .create(&cluster, "team-c")
        .await;
    let cron_uid = uid(&cluster, Kind::CronJob, "team-c", "cron")
        .await
        .expect("the CronJob's uid");

    // --resources-to-ignore=configMaps: no ConfigMap is even watched; the index
    // holds exactly the cluster's Secrets.
    let operator = cluster
        .operator(&["--resources-to-ignore=configMaps", "--cooldown=0s"])
        .await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::all(client.clone());
    eventually("the index to hold the Secrets and no ConfigMap", || async {
        let cached = operator
            .metric("rekindle_operator_cached_objects{kind=\"source\"}")
            .await;
        let listed = secrets.list_metadata(&Default::default()).await.ok()?;
        (cached == listed.items.len() as f64).then_some(())
    })
    .await;
    operator.stop();

    // --ignored-workload-types=cronjobs: the change rolls the Deployment and makes no
    // Job from the CronJob. The second change proves the first was handled whole.
    let operator = cluster
        .operator(&["--ignored-workload-types=cronjobs", "--cooldown=0s"])
        .await;
    put_config_map(client, "team-c", "app-config", &[("k", "2")]).await;
    let first = eventually("team-c/web rolled", || marker(&cluster, "team-c")).await;
    put_config_map(client, "team-c", "app-config", &[("k", "2b")]).await;
    let second = eventually("team-c/web rolled again", || async {
        marker(&cluster, "team-c").await.filter(|m| *m != first)
    })
    .await;
    operator.assert_idle().await;
    operator.assert_rollouts(2).await;
    assert!(
        jobs_owned_by(client, "team-c", &cron_uid).await.is_empty(),
        "the CronJob is an ignored workload type"
    );
    operator.stop();

    // KUBERNETES_NAMESPACE without --namespaces: that namespace only. team-d's
    // change comes first: watched cluster-wide, it would be handled first.
    let operator = cluster
        .operator_with_env(&["--cooldown=0s"], &[("KUBERNETES_NAMESPACE", "team-c")])
        .await;
    put_config_map(client, "team-d", "app-config", &[("k", "3")]).await;
    put_config_map(client, "team-c", "app-config", &[("k", "3")]).await;
    let third = eventually("team-c/web rolled a third time", || async {
        marker(&cluster, "team-c").await.filter(|m| *m != second)
    })
    .await;
    put_config_map(client, "team-c", "app-config", &[("k", "3b")]).await;
    eventually("team-c/web rolled a fourth time", || async {
        marker(&cluster, "team-c").await.filter(|m| *m != third)
    })
    .await;
    operator.assert_idle().await;
    assert_eq!(
        marker(&cluster, "team-d").await,
        None,
        "team-d is outside KUBERNETES_NAMESPACE"
    );
}
