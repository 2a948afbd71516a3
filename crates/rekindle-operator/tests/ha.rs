//! `--enable-ha` on the real server: two replicas, one Lease. A change is
//! rolled once (by the leader); the standby waits quietly; killing the leader
//! without a release hands the lease over within the lease duration (plus
//! the standby's polling), the failover itself rolls nothing, and the new
//! leader rolls the next change once.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use rekindle_operator::cluster::lease::{LEASE_DURATION, RETRY_PERIOD};
use rekindle_operator::model::{KeyUse, SourceKind};
use support::*;

const NS: &str = "apps";
const D: Kind = Kind::Deployment;
const VAR: &str = "STAKATER_HA_CONFIG_CONFIGMAP";

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn one_leader_rolls_once_and_a_killed_leader_is_replaced() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    put_config_map(client, NS, "ha-config", &[("v", "0")]).await;
    deployment("web")
        .auto()
        .app(env_from_config_map("ha-config"))
        .create(&cluster, NS)
        .await;
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 3).await;

    let a = cluster
        .operator_with_env(&["--enable-ha"], &[("POD_NAME", "op-a")])
        .await;
    eventually("op-a to lead", || async {
        (cluster.lease_holder().await.as_deref() == Some("op-a")).then_some(())
    })
    .await;
    let mut b = cluster
        .operator_with_env(&["--enable-ha"], &[("POD_NAME", "op-b")])
        .await;
    let key = cluster.hash_key().await;
    let marker = |v: &str| {
        keyed_marker(
            &key,
            SourceKind::ConfigMap,
            NS,
            "ha-config",
            &[("v", v)],
            KeyUse::All,
        )
    };

    // Both replicas see the change; only the leader rolls it.
    put_config_map(client, NS, "ha-config", &[("v", "1")]).await;
    wait_marker(&cluster, D, NS, "web", "app", VAR, &marker("1")).await;
    barrier.pass(&cluster).await;
    a.assert_idle().await;
    assert_eq!(generation(&cluster, D, NS, "web").await, 2);
    a.assert_rollouts(1 + barrier.rollouts()).await;
    b.assert_rollouts(0).await;

    // The leader dies without releasing the lease.
    let standby_cpu = b.cpu_time();
    let killed_at = Instant::now();
    a.kill();
    eventually_within(
        Duration::from_secs(40),
        "op-b to take the lease",
        || async { (cluster.lease_holder().await.as_deref() == Some("op-b")).then_some(()) },
    )
    .await;
    let takeover = killed_at.elapsed();
    eprintln!("takeover after {takeover:?}");
    // The lease runs out 15 s after its last renewal, which the standby sees
    // within one poll; it takes it at its next poll.
    assert!(
        takeover <= LEASE_DURATION + RETRY_PERIOD * 2 + Duration::from_secs(2),
        "took {takeover:?}"
    );
    // A standby with changes queued (it saw the leader's work) does not spin
    // while it waits.
    let busy = b.cpu_time() - standby_cpu;
    eprintln!("standby used {busy:?} of CPU in {takeover:?}");
    assert!(
        busy < takeover / 4,
        "the standby used {busy:?} of CPU while waiting {takeover:?}"
    );

    // The failover rolls nothing by itself; the new leader rolls (the barrier).
    barrier.pass(&cluster).await;
    b.assert_idle().await;
    assert_eq!(generation(&cluster, D, NS, "web").await, 2);
    b.assert_rollouts(BARRIER_ROUND).await;

    // The next change: rolled once, by the new leader.
    put_config_map(client, NS, "ha-config", &[("v", "2")]).await;
    wait_marker(&cluster, D, NS, "web", "app", VAR, &marker("2")).await;
    barrier.pass(&cluster).await;
    b.assert_idle().await;
    assert_eq!(generation(&cluster, D, NS, "web").await, 3);
    b.assert_rollouts(1 + 2 * BARRIER_ROUND).await;
    assert!(b.is_running());
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn a_leader_stopped_with_sigterm_hands_over_without_waiting_for_the_lease() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    put_config_map(client, NS, "ha-config", &[("v", "0")]).await;
    deployment("web")
        .auto()
        .app(env_from_config_map("ha-config"))
        .create(&cluster, NS)
        .await;
    let a = cluster
        .operator_with_env(&["--enable-ha"], &[("POD_NAME", "op-a")])
        .await;
    eventually("op-a to lead", || async {
        (cluster.lease_holder().await.as_deref() == Some("op-a")).then_some(())
    })
    .await;
    let b = cluster
        .operator_with_env(&["--enable-ha"], &[("POD_NAME", "op-b")])
        .await;

    // SIGTERM: the leader releases the lease as it stops, so the standby takes it at
    // its next poll instead of after the lease duration.
    let stopped_at = Instant::now();
    a.stop();
    eventually("op-b to take the lease", || async {
        (cluster.lease_holder().await.as_deref() == Some("op-b")).then_some(())
    })
    .await;
    let takeover = stopped_at.elapsed();
    eprintln!("takeover after {takeover:?}");
    assert!(
        takeover < LEASE_DURATION / 2,
        "took {takeover:?}: the lease was not released"
    );

    // The handover rolls nothing; the next change is rolled by the new leader.
    put_config_map(client, NS, "ha-config", &[("v", "1")]).await;
    let key = cluster.hash_key().await;
    let marker = keyed_marker(
        &key,
        SourceKind::ConfigMap,
        NS,
        "ha-config",
        &[("v", "1")],
        KeyUse::All,
    );
    wait_marker(&cluster, D, NS, "web", "app", VAR, &marker).await;
    b.assert_rollouts(1).await;
    assert_eq!(generation(&cluster, D, NS, "web").await, 2);
}

/// Deployments rolled in one batch: enough that the batch outlasts the leader's next
/// lease renewal (every 2 s) on a loaded machine, so the lease is lost mid-batch.
const BATCH: usize = 600;

/// The names of the batch's Deployments whose template has been rolled (generation
/// above 1), by listing them.
async fn rolled(client: &kube::Client) -> Vec<String> {
    let list = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("batch=lease"))
        .await
        .expect("list deployments");
    list.items
        .into_iter()
        .filter(|d| d.metadata.generation.unwrap_or(0) > 1)
        .filter_map(|d| d.metadata.name)
        .collect()
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn a_lease_lost_in_the_middle_of_a_batch_is_finished_once_by_the_new_leader() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    put_config_map(client, NS, "ha-config", &[("v", "0")]).await;
    // No replicas: the controller-manager makes ReplicaSets but no pods.
    for i in 0..BATCH {
        create_object(
            client,
            serde_json::json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": format!("w-{i}"),
                    "namespace": NS,
                    "labels": {"batch": "lease"},
                    "annotations": {"reloader.stakater.com/auto": "true"},
                },
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": format!("w-{i}")}},
                    "template": {
                        "metadata": {"labels": {"app": format!("w-{i}")}},
                        "spec": {"containers": [container("app", env_from_config_map("ha-config"))]},
                    },
                },
            }),
        )
        .await;
    }
    let a = cluster
        .operator_with_env(&["--enable-ha"], &[("POD_NAME", "op-a")])
        .await;
    eventually("op-a to lead", || async {
        (cluster.lease_holder().await.as_deref() == Some("op-a")).then_some(())
    })
    .await;
    let b = cluster
        .operator_with_env(&["--enable-ha"], &[("POD_NAME", "op-b")])
        .await;
    // Both have listed everything before the change.
    for op in [&a, &b] {
        eventually("the operators to be ready", || async {
            (op.metric("rekindle_operator_cached_objects{kind=\"workload\"}")
                .await as usize
                >= BATCH)
                .then_some(())
        })
        .await;
    }

    // The change: op-a starts rolling all of them, one by one.
    put_config_map(client, NS, "ha-config", &[("v", "1")]).await;
    eventually("op-a's first rollout", || async {
        (!rolled(client).await.is_empty()).then_some(())
    })
    .await;
    // The lease is taken from op-a in the middle of the batch, as an API server that
    // lost op-a's renewals, or another replica's takeover, would leave it.
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let mut lease = leases.get("stakater-reloader-lock").await.expect("lease");
    let spec = lease.spec.as_mut().expect("lease spec");
    spec.holder_identity = Some("op-b".into());
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    leases
        .replace("stakater-reloader-lock", &PostParams::default(), &lease)
        .await
        .expect("take the lease");
    let rolled_at_takeover = rolled(client).await.len();
    eprintln!("{rolled_at_takeover} of {BATCH} rolled when the lease was taken");

    // Every Deployment ends rolled once: op-a stops at its next renewal and leaves
    // the rest to op-b, which finishes them and rolls nothing op-a already did.
    eventually_within(
        Duration::from_secs(120),
        "every deployment rolled",
        || async { (rolled(client).await.len() == BATCH).then_some(()) },
    )
    .await;
    eventually("both operators' counts to settle", || async {
        (a.rollouts().await + b.rollouts().await >= BATCH as u64).then_some(())
    })
    .await;
    // The leader has nothing left to do (op-a, a standby now, keeps what it saw
    // queued, for the day it leads again).
    b.assert_idle().await;
    let (by_a, by_b) = (a.rollouts().await, b.rollouts().await);
    eprintln!("op-a rolled {by_a}, op-b {by_b}");
    assert!(
        by_a < BATCH as u64 && by_b > 0,
        "op-a rolled {by_a} and op-b {by_b}: the lease was not lost mid-batch (too fast a machine?)"
    );
    assert_eq!(by_a + by_b, BATCH as u64, "a Deployment was rolled twice");
    // op-a finds the lease gone at its next renewal, which op-b need not wait for.
    eventually("op-a to say it lost the lease", || async {
        (!a.log_lines_with(&["lost the lease"]).is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        a.log_lines_with(&["lost the lease"]).len(),
        1,
        "{}",
        a.log_text()
    );
    // One template change each.
    let list = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("batch=lease"))
        .await
        .expect("list deployments");
    for d in &list.items {
        assert_eq!(d.metadata.generation, Some(2), "{:?}", d.metadata.name);
    }
}
