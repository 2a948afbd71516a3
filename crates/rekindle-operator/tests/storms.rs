//! No restart storms, no floods, on the real server: an operator restart rolls
//! nothing, a change made while it was down is caught up once, a flapping
//! ConfigMap makes at most two ReplicaSets, sources changed together give one
//! rollout, and deletes and re-creates roll only when asked to.

mod support;

use rekindle_operator::model::{KeyUse, SourceKind};
use support::*;

const NS: &str = "apps";
const D: Kind = Kind::Deployment;

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn restarts_roll_nothing_and_downtime_changes_roll_once() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    put_config_map(client, NS, "storm-config", &[("v", "0")]).await;
    put_config_map(client, NS, "quiet-config", &[("v", "0")]).await;
    deployment("web")
        .auto()
        .app(env_from_config_map("storm-config"))
        .create(&cluster, NS)
        .await;
    deployment("unmarked")
        .auto()
        .app(env_from_config_map("quiet-config"))
        .create(&cluster, NS)
        .await;
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 2).await;
    const VAR: &str = "STAKATER_STORM_CONFIG_CONFIGMAP";

    let operator = cluster.operator(&[]).await;
    let key = cluster.hash_key().await;
    let storm = |v: &str| {
        keyed_marker(
            &key,
            SourceKind::ConfigMap,
            NS,
            "storm-config",
            &[("v", v)],
            KeyUse::All,
        )
    };
    put_config_map(client, NS, "storm-config", &[("v", "1")]).await;
    wait_marker(&cluster, D, NS, "web", "app", VAR, &storm("1")).await;
    assert_eq!(settled_replica_sets(client, NS, "web").await, 2);

    // A restart: zero new ReplicaSets.
    operator.stop();
    let operator = cluster.operator(&[]).await;
    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    // Only the barrier's.
    operator.assert_rollouts(BARRIER_ROUND).await;
    assert_eq!(generation(&cluster, D, NS, "web").await, 2);
    assert_eq!(settled_replica_sets(client, NS, "web").await, 2);
    operator.stop();

    // Changes while stopped: the marked workload is caught up once; the one
    // that never had a marker is not rolled (installing rolls nothing).
    put_config_map(client, NS, "storm-config", &[("v", "2")]).await;
    put_config_map(client, NS, "quiet-config", &[("v", "1")]).await;
    let operator = cluster.operator(&[]).await;
    wait_marker(&cluster, D, NS, "web", "app", VAR, &storm("2")).await;
    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    operator.assert_rollouts(1 + BARRIER_ROUND).await;
    assert_eq!(generation(&cluster, D, NS, "web").await, 3);
    assert_eq!(settled_replica_sets(client, NS, "web").await, 3);
    assert_eq!(generation(&cluster, D, NS, "unmarked").await, 1);
    assert!(markers(&cluster, D, NS, "unmarked").await.is_empty());
    assert_eq!(settled_replica_sets(client, NS, "unmarked").await, 1);
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn floods_coalesce_and_deletes_roll_only_when_asked() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    let v0 = &[("v", "0")];
    for name in [
        "gone-config",
        "kept-config",
        "flap-config",
        "pair-a",
        "pair-b",
    ] {
        put_config_map(client, NS, name, v0).await;
    }
    for name in ["pair-s1", "pair-s2"] {
        put_secret(client, NS, name, v0).await;
    }
    deployment("deleted")
        .auto()
        .app(env_from_config_map("gone-config"))
        .create(&cluster, NS)
        .await;
    deployment("kept")
        .auto()
        .app(env_from_config_map("kept-config"))
        .create(&cluster, NS)
        .await;
    deployment("flappy")
        .auto()
        .app(env_from_config_map("flap-config"))
        .create(&cluster, NS)
        .await;
    deployment("pair")
        .auto()
        .app(serde_json::json!({"envFrom": [
            {"configMapRef": {"name": "pair-a"}},
            {"configMapRef": {"name": "pair-b"}},
        ]}))
        .create(&cluster, NS)
        .await;
    deployment("secret-pair")
        .auto()
        .app(serde_json::json!({"envFrom": [
            {"secretRef": {"name": "pair-s1"}},
            {"secretRef": {"name": "pair-s2"}},
        ]}))
        .create(&cluster, NS)
        .await;
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 2).await;
    let mut secret_barrier = Barrier::create(&cluster, NS, SourceKind::Secret, 1).await;

    // ---- --reload-on-delete / --reload-on-create ------------------------------
    let operator = cluster
        .operator(&[
            "--cooldown=3s",
            "--reload-on-delete=true",
            "--reload-on-create=true",
        ])
        .await;
    let key = cluster.hash_key().await;
    let cm = |name: &str, v: &str| {
        keyed_marker(
            &key,
            SourceKind::ConfigMap,
            NS,
            name,
            &[("v", v)],
            KeyUse::All,
        )
    };
    let secret = |name: &str, v: &str| {
        keyed_marker(&key, SourceKind::Secret, NS, name, &[("v", v)], KeyUse::All)
    };
    const GONE: &str = "STAKATER_GONE_CONFIG_CONFIGMAP";
    put_config_map(client, NS, "gone-config", &[("v", "1")]).await;
    wait_marker(
        &cluster,
        D,
        NS,
        "deleted",
        "app",
        GONE,
        &cm("gone-config", "1"),
    )
    .await;
    delete_config_map(client, NS, "gone-config").await;
    eventually("the variable removed", || async {
        markers(&cluster, D, NS, "deleted")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(generation(&cluster, D, NS, "deleted").await, 3);
    put_config_map(client, NS, "gone-config", &[("v", "2")]).await;
    wait_marker(
        &cluster,
        D,
        NS,
        "deleted",
        "app",
        GONE,
        &cm("gone-config", "2"),
    )
    .await;
    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    assert_eq!(generation(&cluster, D, NS, "deleted").await, 4);
    operator.stop();

    // ---- --cooldown=3s, deletes and creates not asked for ---------------------
    let operator = cluster.operator(&["--cooldown=3s"]).await;
    const KEPT: &str = "STAKATER_KEPT_CONFIG_CONFIGMAP";
    put_config_map(client, NS, "kept-config", &[("v", "1")]).await;
    let kept = cm("kept-config", "1");
    wait_marker(&cluster, D, NS, "kept", "app", KEPT, &kept).await;
    delete_config_map(client, NS, "kept-config").await;
    put_config_map(client, NS, "kept-config", &[("v", "2")]).await;

    // A flapping ConfigMap: 20 updates in a row.
    for v in 1..=20 {
        put_config_map(client, NS, "flap-config", &[("v", &v.to_string())]).await;
    }
    // Two sources of one workload changed back to back, ConfigMaps and Secrets.
    put_config_map(client, NS, "pair-a", &[("v", "1")]).await;
    put_config_map(client, NS, "pair-b", &[("v", "1")]).await;
    put_secret(client, NS, "pair-s1", &[("v", "1")]).await;
    put_secret(client, NS, "pair-s2", &[("v", "1")]).await;

    // The flood ends with the marker of the final data.
    let flap = cm("flap-config", "20");
    wait_marker(
        &cluster,
        D,
        NS,
        "flappy",
        "app",
        "STAKATER_FLAP_CONFIG_CONFIGMAP",
        &flap,
    )
    .await;
    wait_marker(
        &cluster,
        D,
        NS,
        "pair",
        "app",
        "STAKATER_PAIR_A_CONFIGMAP",
        &cm("pair-a", "1"),
    )
    .await;
    wait_marker(
        &cluster,
        D,
        NS,
        "pair",
        "app",
        "STAKATER_PAIR_B_CONFIGMAP",
        &cm("pair-b", "1"),
    )
    .await;
    wait_marker(
        &cluster,
        D,
        NS,
        "secret-pair",
        "app",
        "STAKATER_PAIR_S1_SECRET",
        &secret("pair-s1", "1"),
    )
    .await;
    wait_marker(
        &cluster,
        D,
        NS,
        "secret-pair",
        "app",
        "STAKATER_PAIR_S2_SECRET",
        &secret("pair-s2", "1"),
    )
    .await;
    barrier.pass(&cluster).await;
    secret_barrier.pass(&cluster).await;
    operator.assert_idle().await;

    // At most two rollouts for twenty changes: the first at once, one trailing.
    let flaps = generation(&cluster, D, NS, "flappy").await - 1;
    assert!((1..=2).contains(&flaps), "{flaps} rollouts for 20 changes");
    let replica_sets = settled_replica_sets(client, NS, "flappy").await;
    assert!(
        replica_sets <= 3,
        "{replica_sets} ReplicaSets: at most 2 new ones"
    );
    // One rollout for both sources.
    assert_eq!(generation(&cluster, D, NS, "pair").await, 2);
    assert_eq!(generation(&cluster, D, NS, "secret-pair").await, 2);
    // Deleted and created again, without the flags: nothing.
    assert_eq!(generation(&cluster, D, NS, "kept").await, 2);
    assert_eq!(
        markers(&cluster, D, NS, "kept").await,
        marker_map(&[("app", KEPT, &kept)])
    );
}
