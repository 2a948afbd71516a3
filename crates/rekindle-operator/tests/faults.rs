//! The control plane failing under the operator: kube-apiserver and etcd
//! restarted during the watch, and the API server answering 429 and 500 (through
//! the test environment's fault proxy, the one fake: see `rekindle_testenv::fault_proxy`).
//! The watches recover, a change made meanwhile is rolled exactly once, and the
//! operator keeps running.

mod support;

use std::time::Duration;

use rekindle_operator::model::{KeyUse, SourceKind};
use rekindle_testenv::{Fault, FaultProxy};
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

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn answers_429_and_500_lose_no_change_and_double_none() {
    let cluster = Cluster::start().await;
    let client = cluster.client.clone();
    create_namespace(&client, NS).await;
    let faults = [
        (
            "after-429",
            "STAKATER_AFTER_429_CONFIG_CONFIGMAP",
            Fault::TooManyRequests,
        ),
        (
            "after-500",
            "STAKATER_AFTER_500_CONFIG_CONFIGMAP",
            Fault::InternalError,
        ),
    ];
    for (name, _, _) in faults {
        let config = format!("{name}-config");
        put_config_map(&client, NS, &config, &[("v", "0")]).await;
        deployment(name)
            .auto()
            .app(env_from_config_map(&config))
            .create(&cluster, NS)
            .await;
    }
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 2).await;
    let proxy = FaultProxy::start(client.clone(), cluster.plane.dir())
        .await
        .expect("the fault proxy starts");
    let operator = Operator::spawn(
        proxy.kubeconfig(),
        &cluster.plane.dir().join("operator-behind-proxy.log"),
        &[],
        &[],
    )
    .await;
    let key = cluster.hash_key().await;

    for (round, (name, var, fault)) in (1..).zip(faults) {
        let failed_before = proxy.failed();
        // Every watch is cut, and every request for the next 5 s, reconnections
        // included, gets the fault; the change is made meanwhile (not through the
        // proxy).
        proxy.fail(fault, Duration::from_secs(5));
        proxy.cut();
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
        assert!(
            proxy.failed() > failed_before,
            "the operator never met the {fault:?}; log:\n{}",
            operator.log_text()
        );
        barrier.pass(&cluster).await;
        operator.assert_idle().await;
        assert_eq!(generation(&cluster, D, NS, name).await, 2, "{name}");
        operator.assert_rollouts(round * (1 + BARRIER_ROUND)).await;
    }
    eprintln!(
        "{} requests failed, {} forwarded",
        proxy.failed(),
        proxy.forwarded()
    );
    let mut operator = operator;
    assert!(
        operator.is_running(),
        "the operator exited; log:\n{}",
        operator.log_text()
    );
}
