//! What is written on the real server: the `annotations` strategy's JSON (and the
//! catch-up at start of a change to any source it records), the
//! exact SHA-1 of `--hash reloader-sha1`, and a migration from Reloader that
//! rolls nothing.

mod support;

use rekindle_operator::model::{KeyUse, SourceKind};
use serde_json::json;
use support::*;

const NS: &str = "apps";
const D: Kind = Kind::Deployment;
const LAST_RELOADED_FROM: &str = "reloader.stakater.com/last-reloaded-from";
const RELOADED_DIGESTS: &str = "rekindle.io/reloaded-digests";
/// Reloader's SHA-1 of `{a: "1", b: "2"}` (ConfigMap or Secret), from COMPAT.md.
const SHA1_A1_B2: &str = "f83e99e324ba68ccc373a58ef1eb42f8ab88646a";
const A1_B2: &[(&str, &str)] = &[("a", "1"), ("b", "2")];
/// A ConfigMap's `data` or `binaryData` entries.
type Entries = &'static [(&'static str, &'static str)];
/// The other known pairs of COMPAT.md, each a ConfigMap's `data` and `binaryData`
/// (base64, as the API takes it: `dGVzdA==` is `test`) and Reloader's SHA-1.
const KNOWN_PAIRS: [(&str, Entries, Entries, &str); 4] = [
    (
        "sha1-plain",
        &[("test", "test")],
        &[],
        "b3cefbcce711f8574b0e66c41fc1dcf06eb5b6db",
    ),
    (
        "sha1-both",
        &[("test", "test")],
        &[("bintest", "dGVzdA==")],
        "0d58150de76a895b24f4ca213f590766160c4349",
    ),
    (
        "sha1-binary",
        &[],
        &[("bintest", "dGVzdA==")],
        "f327fede9d5cda17ab984fabce9eddeee1611a84",
    ),
    (
        "sha1-empty",
        &[],
        &[],
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    ),
];

/// Server-side applies a ConfigMap with exactly `data` and `binary` (base64).
async fn apply_config_map(
    client: &kube::Client,
    name: &str,
    data: &[(&str, &str)],
    binary: &[(&str, &str)],
) {
    use std::collections::BTreeMap;
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), NS);
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let binary: BTreeMap<&str, &str> = binary.iter().copied().collect();
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": data,
        "binaryData": binary,
    });
    let params = kube::api::PatchParams::apply("test").force();
    api.patch(name, &params, &kube::api::Patch::Apply(body))
        .await
        .expect("config map applied");
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn annotations_strategy_reloader_sha1_and_a_migration_that_rolls_nothing() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    put_config_map(client, NS, "strat-config", &[("v", "0")]).await;
    put_config_map(client, NS, "sha1-config", &[("a", "0")]).await;
    put_secret(client, NS, "sha1-secret", &[("a", "0")]).await;
    deployment("annotated")
        .auto()
        .app(env_from_config_map("strat-config"))
        .create(&cluster, NS)
        .await;
    deployment("sha1")
        .auto()
        .app(env_from_config_map("sha1-config"))
        .create(&cluster, NS)
        .await;
    deployment("sha1-secret")
        .auto()
        .app(env_from_secret("sha1-secret"))
        .create(&cluster, NS)
        .await;
    for (name, ..) in KNOWN_PAIRS {
        put_config_map(client, NS, name, &[("v", "0")]).await;
        deployment(name)
            .auto()
            .app(env_from_config_map(name))
            .create(&cluster, NS)
            .await;
    }
    // Reads two ConfigMaps: the catch-up of a change to either one.
    put_config_map(client, NS, "pair-a", &[("v", "0")]).await;
    put_config_map(client, NS, "pair-b", &[("v", "0")]).await;
    deployment("pair")
        .auto()
        .app(json!({"envFrom": [
            {"configMapRef": {"name": "pair-a"}},
            {"configMapRef": {"name": "pair-b"}},
        ]}))
        .create(&cluster, NS)
        .await;
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 3).await;

    // ---- --reload-strategy annotations ---------------------------------------
    let operator = cluster
        .operator(&["--reload-strategy", "annotations"])
        .await;
    let key = cluster.hash_key().await;
    put_config_map(client, NS, "strat-config", &[("v", "1")]).await;
    let text = eventually("last-reloaded-from on the template", || {
        template_annotation(&cluster, D, NS, "annotated", LAST_RELOADED_FROM)
    })
    .await;
    let written: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    // Reloader's shape without `observedAt`: equal data gives an equal template.
    let hash = keyed_marker(
        &key,
        SourceKind::ConfigMap,
        NS,
        "strat-config",
        &[("v", "1")],
        KeyUse::All,
    );
    assert_eq!(
        written,
        json!({
            "type": "CONFIGMAP",
            "name": "strat-config",
            "namespace": NS,
            "hash": hash,
            "containerRefs": ["app"],
        })
    );
    assert!(
        markers(&cluster, D, NS, "annotated").await.is_empty(),
        "no env var with this strategy"
    );
    assert_eq!(generation(&cluster, D, NS, "annotated").await, 2);
    // Every source of the workload is recorded with the value it had, the one that
    // did not change too.
    let pair = |name: &str, v: &str| {
        keyed_marker(
            &key,
            SourceKind::ConfigMap,
            NS,
            name,
            &[("v", v)],
            KeyUse::All,
        )
    };
    put_config_map(client, NS, "pair-b", &[("v", "1")]).await;
    let digests = eventually("reloaded-digests on the template", || async {
        let text = template_annotation(&cluster, D, NS, "pair", RELOADED_DIGESTS).await?;
        serde_json::from_str::<serde_json::Value>(&text).ok()
    })
    .await;
    assert_eq!(
        digests,
        json!({"CONFIGMAP/pair-a": pair("pair-a", "0"), "CONFIGMAP/pair-b": pair("pair-b", "1")})
    );
    assert_eq!(generation(&cluster, D, NS, "pair").await, 2);
    // A restart rolls nothing.
    operator.stop();
    let operator = cluster
        .operator(&["--reload-strategy", "annotations"])
        .await;
    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    assert_eq!(generation(&cluster, D, NS, "annotated").await, 2);
    // Not even a write that changes nothing: only the barrier's.
    operator.assert_rollouts(BARRIER_ROUND).await;
    assert_eq!(
        template_annotation(&cluster, D, NS, "annotated", LAST_RELOADED_FROM).await,
        Some(text)
    );
    operator.stop();

    // A change made while the operator is stopped, to the source that
    // last-reloaded-from does not name: caught up at start, once.
    put_config_map(client, NS, "pair-a", &[("v", "1")]).await;
    let operator = cluster
        .operator(&["--reload-strategy", "annotations"])
        .await;
    eventually("the pair caught up", || async {
        (generation(&cluster, D, NS, "pair").await == 3).then_some(())
    })
    .await;
    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    operator.assert_rollouts(1 + BARRIER_ROUND).await;
    assert_eq!(generation(&cluster, D, NS, "pair").await, 3);
    assert_eq!(generation(&cluster, D, NS, "annotated").await, 2);
    let last = template_annotation(&cluster, D, NS, "pair", LAST_RELOADED_FROM)
        .await
        .expect("last-reloaded-from");
    let last: serde_json::Value = serde_json::from_str(&last).expect("JSON");
    assert_eq!(last["name"], "pair-a");
    let digests = template_annotation(&cluster, D, NS, "pair", RELOADED_DIGESTS)
        .await
        .expect("reloaded-digests");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&digests).expect("JSON"),
        json!({"CONFIGMAP/pair-a": pair("pair-a", "1"), "CONFIGMAP/pair-b": pair("pair-b", "1")})
    );
    operator.stop();

    // ---- --hash reloader-sha1: Reloader's exact value ------------------------
    let operator = cluster.operator(&["--hash", "reloader-sha1"]).await;
    put_config_map(client, NS, "sha1-config", A1_B2).await;
    put_secret(client, NS, "sha1-secret", A1_B2).await;
    wait_marker(
        &cluster,
        D,
        NS,
        "sha1",
        "app",
        "STAKATER_SHA1_CONFIG_CONFIGMAP",
        SHA1_A1_B2,
    )
    .await;
    wait_marker(
        &cluster,
        D,
        NS,
        "sha1-secret",
        "app",
        "STAKATER_SHA1_SECRET_SECRET",
        SHA1_A1_B2,
    )
    .await;
    // The other known pairs: data, binaryData, both, and nothing at all.
    for (name, data, binary, sha1) in KNOWN_PAIRS {
        apply_config_map(client, name, data, binary).await;
        let var = format!(
            "STAKATER_{}_CONFIGMAP",
            name.to_ascii_uppercase().replace('-', "_")
        );
        wait_marker(&cluster, D, NS, name, "app", &var, sha1).await;
    }
    operator.stop();

    // ---- migration: Reloader's SHA-1 of the current data is current ----------
    // As Reloader leaves them: one Deployment rolled for the current data, one
    // whose data changed after Reloader last rolled it.
    put_config_map(client, NS, "migrated-config", A1_B2).await;
    put_config_map(client, NS, "stale-config", A1_B2).await;
    let with_marker = |config: &str, var: &str, value: &str| {
        json!({
            "envFrom": [{"configMapRef": {"name": config}}],
            "env": [{"name": var, "value": value}],
        })
    };
    deployment("migrated")
        .auto()
        .app(with_marker(
            "migrated-config",
            "STAKATER_MIGRATED_CONFIG_CONFIGMAP",
            SHA1_A1_B2,
        ))
        .create(&cluster, NS)
        .await;
    // Reloader's SHA-1 of `{a: "0"}`: older data.
    deployment("stale")
        .auto()
        .app(with_marker(
            "stale-config",
            "STAKATER_STALE_CONFIG_CONFIGMAP",
            "c114fb06edc308ba0c36ec150aa02d8afed6f83f",
        ))
        .create(&cluster, NS)
        .await;
    let operator = cluster.operator(&[]).await;
    // The stale one is caught up at start, to the keyed value...
    let stale = keyed_marker(
        &key,
        SourceKind::ConfigMap,
        NS,
        "stale-config",
        A1_B2,
        KeyUse::All,
    );
    wait_marker(
        &cluster,
        D,
        NS,
        "stale",
        "app",
        "STAKATER_STALE_CONFIG_CONFIGMAP",
        &stale,
    )
    .await;
    // ...the current one is left alone.
    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    operator.assert_rollouts(1 + BARRIER_ROUND).await;
    assert_eq!(generation(&cluster, D, NS, "migrated").await, 1);
    assert_eq!(generation(&cluster, D, NS, "stale").await, 2);
    assert_eq!(
        env_of(
            &cluster,
            D,
            NS,
            "migrated",
            "app",
            "STAKATER_MIGRATED_CONFIG_CONFIGMAP"
        )
        .await
        .as_deref(),
        Some(SHA1_A1_B2)
    );
    // Its next data change writes the keyed value.
    put_config_map(client, NS, "migrated-config", &[("a", "2")]).await;
    let migrated = keyed_marker(
        &key,
        SourceKind::ConfigMap,
        NS,
        "migrated-config",
        &[("a", "2")],
        KeyUse::All,
    );
    wait_marker(
        &cluster,
        D,
        NS,
        "migrated",
        "app",
        "STAKATER_MIGRATED_CONFIG_CONFIGMAP",
        &migrated,
    )
    .await;
}
