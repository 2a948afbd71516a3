//! Every way a pod template can read a ConfigMap or Secret, on the real
//! server: each rolls its workload, with the marker on the container Reloader
//! would choose and a value over exactly the keys the workload reads.
//!
//! `--cooldown=0s`: a workload here may roll twice in a row, and the cooldown
//! is not what is tested.

mod support;

use rekindle_operator::model::{KeyUse, SourceKind};
use serde_json::json;
use support::*;

const NS: &str = "apps";
const D: Kind = Kind::Deployment;
const AB0: &[(&str, &str)] = &[("a", "0"), ("b", "0")];
/// Only `b` changed.
const B1: &[(&str, &str)] = &[("a", "0"), ("b", "1")];
/// Then `a`.
const A1: &[(&str, &str)] = &[("a", "1"), ("b", "1")];

async fn assert_markers(cluster: &Cluster, name: &str, expected: &[(&str, &str, &str)]) {
    assert_eq!(
        markers(cluster, D, NS, name).await,
        marker_map(expected),
        "markers of {name}"
    );
}

async fn assert_generation(cluster: &Cluster, name: &str, expected: i64) {
    assert_eq!(
        generation(cluster, D, NS, name).await,
        expected,
        "generation of {name} (1 + its rollouts)"
    );
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn every_reference_form_rolls_and_key_references_are_precise() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;

    for name in [
        "ref-env",
        "ref-envfrom",
        "ref-volume",
        "ref-items",
        "ref-projected",
        "ref-init",
    ] {
        put_config_map(client, NS, name, AB0).await;
    }
    for name in [
        "ref-secret-env",
        "ref-secret-envfrom",
        "ref-secret-projected",
    ] {
        put_secret(client, NS, name, AB0).await;
    }
    let sidecar = container("sidecar", json!({}));
    deployment("env-key")
        .auto()
        .app(json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "ref-env", "key": "a"}}}]}))
        .create(&cluster, NS)
        .await;
    deployment("secret-key")
        .auto()
        .app(json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "ref-secret-env", "key": "a"}}}]}))
        .create(&cluster, NS)
        .await;
    deployment("env-from")
        .auto()
        .app(json!({"envFrom": [
            {"configMapRef": {"name": "ref-envfrom"}},
            {"secretRef": {"name": "ref-secret-envfrom"}},
        ]}))
        .create(&cluster, NS)
        .await;
    // The volume is mounted by the second container: the marker goes there.
    deployment("volume")
        .auto()
        .pod(json!({
            "containers": [
                sidecar.clone(),
                container("app", json!({"volumeMounts": [{"name": "config", "mountPath": "/config"}]})),
            ],
            "volumes": [{"name": "config", "configMap": {"name": "ref-volume"}}],
        }))
        .create(&cluster, NS)
        .await;
    deployment("volume-items")
        .auto()
        .pod(json!({
            "containers": [container("app", json!({"volumeMounts": [{"name": "config", "mountPath": "/config"}]}))],
            "volumes": [{"name": "config", "configMap": {"name": "ref-items", "items": [{"key": "a", "path": "a"}]}}],
        }))
        .create(&cluster, NS)
        .await;
    deployment("projected")
        .auto()
        .pod(json!({
            "containers": [
                sidecar.clone(),
                container("app", json!({"volumeMounts": [{"name": "all", "mountPath": "/all"}]})),
            ],
            "volumes": [{"name": "all", "projected": {"sources": [
                {"configMap": {"name": "ref-projected"}},
                {"secret": {"name": "ref-secret-projected"}},
            ]}}],
        }))
        .create(&cluster, NS)
        .await;
    // Only an init container reads it: the marker goes on the first regular
    // container.
    deployment("init-only")
        .auto()
        .pod(json!({
            "initContainers": [container("init", env_from_config_map("ref-init"))],
            "containers": [container("main", json!({})), sidecar.clone()],
        }))
        .create(&cluster, NS)
        .await;
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 2).await;
    let mut secret_barrier = Barrier::create(&cluster, NS, SourceKind::Secret, 2).await;

    let operator = cluster.operator(&["--cooldown=0s"]).await;
    let key = cluster.hash_key().await;
    let cm = |name: &str, data: &[(&str, &str)], used: KeyUse| {
        keyed_marker(&key, SourceKind::ConfigMap, NS, name, data, used)
    };
    let secret = |name: &str, data: &[(&str, &str)], used: KeyUse| {
        keyed_marker(&key, SourceKind::Secret, NS, name, data, used)
    };

    // Key precision: `b` changes first. Whole-object users roll; users of `a`
    // only do not.
    for name in [
        "ref-env",
        "ref-envfrom",
        "ref-volume",
        "ref-items",
        "ref-projected",
        "ref-init",
    ] {
        put_config_map(client, NS, name, B1).await;
    }
    for name in [
        "ref-secret-env",
        "ref-secret-envfrom",
        "ref-secret-projected",
    ] {
        put_secret(client, NS, name, B1).await;
    }
    let envfrom = cm("ref-envfrom", B1, KeyUse::All);
    let secret_envfrom = secret("ref-secret-envfrom", B1, KeyUse::All);
    wait_marker(
        &cluster,
        D,
        NS,
        "env-from",
        "app",
        "STAKATER_REF_ENVFROM_CONFIGMAP",
        &envfrom,
    )
    .await;
    wait_marker(
        &cluster,
        D,
        NS,
        "env-from",
        "app",
        "STAKATER_REF_SECRET_ENVFROM_SECRET",
        &secret_envfrom,
    )
    .await;
    let volume = cm("ref-volume", B1, KeyUse::All);
    wait_marker(
        &cluster,
        D,
        NS,
        "volume",
        "app",
        "STAKATER_REF_VOLUME_CONFIGMAP",
        &volume,
    )
    .await;
    let projected = cm("ref-projected", B1, KeyUse::All);
    let secret_projected = secret("ref-secret-projected", B1, KeyUse::All);
    wait_marker(
        &cluster,
        D,
        NS,
        "projected",
        "app",
        "STAKATER_REF_PROJECTED_CONFIGMAP",
        &projected,
    )
    .await;
    wait_marker(
        &cluster,
        D,
        NS,
        "projected",
        "app",
        "STAKATER_REF_SECRET_PROJECTED_SECRET",
        &secret_projected,
    )
    .await;
    let init = cm("ref-init", B1, KeyUse::All);
    wait_marker(
        &cluster,
        D,
        NS,
        "init-only",
        "main",
        "STAKATER_REF_INIT_CONFIGMAP",
        &init,
    )
    .await;

    barrier.pass(&cluster).await;
    secret_barrier.pass(&cluster).await;
    operator.assert_idle().await;
    assert_markers(&cluster, "env-key", &[]).await;
    assert_generation(&cluster, "env-key", 1).await;
    assert_markers(&cluster, "secret-key", &[]).await;
    assert_generation(&cluster, "secret-key", 1).await;
    assert_markers(&cluster, "volume-items", &[]).await;
    assert_generation(&cluster, "volume-items", 1).await;
    // Exactly where Reloader would write them, nowhere else.
    assert_markers(
        &cluster,
        "env-from",
        &[
            ("app", "STAKATER_REF_ENVFROM_CONFIGMAP", &envfrom),
            ("app", "STAKATER_REF_SECRET_ENVFROM_SECRET", &secret_envfrom),
        ],
    )
    .await;
    assert_markers(
        &cluster,
        "volume",
        &[("app", "STAKATER_REF_VOLUME_CONFIGMAP", &volume)],
    )
    .await;
    assert_markers(
        &cluster,
        "projected",
        &[
            ("app", "STAKATER_REF_PROJECTED_CONFIGMAP", &projected),
            (
                "app",
                "STAKATER_REF_SECRET_PROJECTED_SECRET",
                &secret_projected,
            ),
        ],
    )
    .await;
    assert_markers(
        &cluster,
        "init-only",
        &[("main", "STAKATER_REF_INIT_CONFIGMAP", &init)],
    )
    .await;
    assert_generation(&cluster, "init-only", 2).await;

    // Now `a`: the key users roll, once, with a value over `a` only.
    put_config_map(client, NS, "ref-env", A1).await;
    put_secret(client, NS, "ref-secret-env", A1).await;
    put_config_map(client, NS, "ref-items", A1).await;
    let env_key = cm("ref-env", A1, keys(&["a"]));
    wait_marker(
        &cluster,
        D,
        NS,
        "env-key",
        "app",
        "STAKATER_REF_ENV_CONFIGMAP",
        &env_key,
    )
    .await;
    let secret_key = secret("ref-secret-env", A1, keys(&["a"]));
    wait_marker(
        &cluster,
        D,
        NS,
        "secret-key",
        "app",
        "STAKATER_REF_SECRET_ENV_SECRET",
        &secret_key,
    )
    .await;
    let items = cm("ref-items", A1, keys(&["a"]));
    wait_marker(
        &cluster,
        D,
        NS,
        "volume-items",
        "app",
        "STAKATER_REF_ITEMS_CONFIGMAP",
        &items,
    )
    .await;
    // A value over `a` only is not the whole-object value.
    assert_ne!(env_key, cm("ref-env", A1, KeyUse::All));
    // Rolled once each: nothing is pending, and each carries one rollout.
    barrier.pass(&cluster).await;
    secret_barrier.pass(&cluster).await;
    operator.assert_idle().await;
    assert_generation(&cluster, "env-key", 2).await;
    assert_generation(&cluster, "secret-key", 2).await;
    assert_generation(&cluster, "volume-items", 2).await;
    assert_markers(
        &cluster,
        "env-key",
        &[("app", "STAKATER_REF_ENV_CONFIGMAP", &env_key)],
    )
    .await;
}
