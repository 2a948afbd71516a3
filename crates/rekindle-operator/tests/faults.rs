//! The control plane failing under the operator: kube-apiserver and etcd
//! restarted during the watch. The watches recover, a change made right after
//! is rolled exactly once, and the operator keeps running.

mod support;

use rekindle_operator::model::{KeyUse, SourceKind};
use support::*;

const NS: &str = "apps";
const D: Kind = Kind::Deployment;

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn apiserver_and_etcd_restarts_lose_no_change_and_double_none() {
    let mut cluster = Cluster::start().await;
    let client = cluster.client.clone();
    create_namespace(&client, NS).await;
    // One workload per fault, so that the cooldown of one rollout does not
    // delay the next.
    for name in ["after-apiserver", "after-etcd"] {
        let config = format!("{name}-config");
        put_config_map(&client, NS, &config, &[("v", "0")]).await;
        deployment(name)
            .auto()
            .app(env_from_config_map(&config))
            .create(&cluster, NS)
            .await;
    }
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 2).await;
    let mut operator = cluster.operator(&[]).await;
    let key = cluster.hash_key().await;

    for (round, (name, var)) in (1..).zip([
        (
            "after-apiserver",
            "STAKATER_AFTER_APISERVER_CONFIG_CONFIGMAP",
        ),
        ("after-etcd", "STAKATER_AFTER_ETCD_CONFIG_CONFIGMAP"),
    ]) {
        if name == "after-apiserver" {
            cluster
                .plane
                .restart_apiserver()
                .await
                .expect("apiserver restarts");
        } else {
            cluster.plane.restart_etcd().await.expect("etcd restarts");
        }
        let config = format!("{name}-config");
        put_config_map(&client, NS, &config, &[("v", "1")]).await;
        let marker = keyed_marker(
            &key,
            SourceKind::ConfigMap,
            NS,
            &config,
            &[("v", "1")],
            KeyUse::All,
        );
        wait_marker(&cluster, D, NS, name, "app", var, &marker).await;
        barrier.pass(&cluster).await;
        operator.assert_idle().await;
        // Exactly once: one template change, one rollout besides the barrier's.
        assert_eq!(generation(&cluster, D, NS, name).await, 2, "{name}");
        operator.assert_rollouts(round * (1 + BARRIER_ROUND)).await;
        assert!(
            operator.is_running(),
            "the operator exited; log:\n{}",
            operator.log_text()
        );
    }
}
