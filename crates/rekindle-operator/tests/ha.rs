//! `--enable-ha` on the real server: two replicas, one Lease. A change is
//! rolled once (by the leader); the standby waits quietly; killing the leader
//! without a release hands the lease over within the lease duration (plus
//! the standby's polling), the failover itself rolls nothing, and the new
//! leader rolls the next change once.

mod support;

use std::time::{Duration, Instant};

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
