//! Reloader's decision order on the real server: which annotation on which
//! object makes a change roll a workload, and which makes it not.
//!
//! Every workload and source exists before the operator starts (see
//! [`Barrier`]); each change is made once, then the positive outcomes are
//! awaited, then barriers on both watch streams prove that the negative ones
//! were decided too, and every workload's markers and generation are checked
//! exactly. `--cooldown=0s`: the cooldown is not what is tested here.

mod support;

use rekindle_operator::model::{KeyUse, SourceKind};
use serde_json::json;
use support::*;

const NS: &str = "apps";
const V0: &[(&str, &str)] = &[("v", "0")];
const V1: &[(&str, &str)] = &[("v", "1")];
const V2: &[(&str, &str)] = &[("v", "2")];
/// The Secrets of the Secret forms (typed auto, named, exclude).
const SECRETS: [&str; 4] = ["sec-auto", "sec-named", "sec-excluded", "sec-kept"];

async fn assert_markers(cluster: &Cluster, name: &str, expected: &[(&str, &str, &str)]) {
    assert_eq!(
        markers(cluster, Kind::Deployment, NS, name).await,
        marker_map(expected),
        "markers of {name}"
    );
}

async fn assert_generation(cluster: &Cluster, name: &str, expected: i64) {
    assert_eq!(
        generation(cluster, Kind::Deployment, NS, name).await,
        expected,
        "generation of {name} (1 + its rollouts)"
    );
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn the_decision_order_on_the_real_server() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;

    for name in [
        "cfg-auto",
        "cfg-plain",
        "cfg-typed",
        "app-one",
        "my-app-one",
        "other",
        "cfg-template",
        "cfg-shadowed",
        "cfg-excluded",
        "cfg-kept",
        "cfg-nomatch",
    ] {
        put_config_map(client, NS, name, V0).await;
    }
    put_config_map_annotated(
        client,
        NS,
        "cfg-match",
        V0,
        &[("reloader.stakater.com/match", "true")],
    )
    .await;
    put_config_map_annotated(
        client,
        NS,
        "cfg-ignored",
        V0,
        &[("reloader.stakater.com/ignore", "true")],
    )
    .await;
    put_secret(client, NS, "sec-typed", V0).await;
    for name in SECRETS {
        put_secret(client, NS, name, V0).await;
    }
    put_config_map(client, NS, "cfg-beside", V0).await;

    deployment("auto")
        .auto()
        .app(env_from_config_map("cfg-auto"))
        .create(&cluster, NS)
        .await;
    deployment("plain")
        .app(env_from_config_map("cfg-plain"))
        .create(&cluster, NS)
        .await;
    deployment("opted-out")
        .annotations(json!({"reloader.stakater.com/auto": "false"}))
        .app(env_from_config_map("cfg-plain"))
        .create(&cluster, NS)
        .await;
    deployment("typed")
        .annotations(json!({"configmap.reloader.stakater.com/auto": "true"}))
        .app(json!({"envFrom": [
            {"configMapRef": {"name": "cfg-typed"}},
            {"secretRef": {"name": "sec-typed"}},
        ]}))
        .create(&cluster, NS)
        .await;
    // Named, references none of the names: the marker goes on the first container.
    deployment("named")
        .annotations(json!({"configmap.reloader.stakater.com/reload": "app-.*, broken[, other"}))
        .pod(json!({"containers": [container("first", json!({})), container("second", json!({}))]}))
        .create(&cluster, NS)
        .await;
    deployment("template")
        .template_annotations(json!({"reloader.stakater.com/auto": "true"}))
        .app(env_from_config_map("cfg-template"))
        .create(&cluster, NS)
        .await;
    // The metadata holds a rule key, so the template's rules are not read.
    deployment("shadowed")
        .annotations(json!({"reloader.stakater.com/auto": "false"}))
        .template_annotations(json!({"reloader.stakater.com/auto": "true"}))
        .app(env_from_config_map("cfg-shadowed"))
        .create(&cluster, NS)
        .await;
    deployment("exclude")
        .annotations(json!({
            "reloader.stakater.com/auto": "true",
            "configmaps.exclude.reloader.stakater.com/reload": "cfg-excluded",
        }))
        .app(json!({"envFrom": [
            {"configMapRef": {"name": "cfg-excluded"}},
            {"configMapRef": {"name": "cfg-kept"}},
        ]}))
        .create(&cluster, NS)
        .await;
    deployment("search")
        .annotations(json!({"reloader.stakater.com/search": "true"}))
        .app(json!({"envFrom": [
            {"configMapRef": {"name": "cfg-match"}},
            {"configMapRef": {"name": "cfg-nomatch"}},
        ]}))
        .create(&cluster, NS)
        .await;
    deployment("ignored")
        .auto()
        .app(env_from_config_map("cfg-ignored"))
        .create(&cluster, NS)
        .await;

    // The Secret forms: typed auto, a named list, an exclude list.
    deployment("secret-typed")
        .annotations(json!({"secret.reloader.stakater.com/auto": "true"}))
        .app(json!({"envFrom": [
            {"secretRef": {"name": "sec-auto"}},
            {"configMapRef": {"name": "cfg-beside"}},
        ]}))
        .create(&cluster, NS)
        .await;
    deployment("secret-named")
        .annotations(json!({"secret.reloader.stakater.com/reload": "sec-named"}))
        .app(env_from_secret("sec-named"))
        .create(&cluster, NS)
        .await;
    deployment("secret-exclude")
        .annotations(json!({
            "reloader.stakater.com/auto": "true",
            "secrets.exclude.reloader.stakater.com/reload": "sec-excluded",
        }))
        .app(json!({"envFrom": [
            {"secretRef": {"name": "sec-excluded"}},
            {"secretRef": {"name": "sec-kept"}},
        ]}))
        .create(&cluster, NS)
        .await;

    let mut cm_barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 2).await;
    let mut secret_barrier = Barrier::create(&cluster, NS, SourceKind::Secret, 1).await;

    // ---- default flags --------------------------------------------------------
    let mut operator = cluster.operator(&["--cooldown=0s"]).await;
    let key = cluster.hash_key().await;
    let all = |name: &str, data: &[(&str, &str)]| {
        keyed_marker(&key, SourceKind::ConfigMap, NS, name, data, KeyUse::All)
    };

    for name in [
        "cfg-auto",
        "cfg-plain",
        "cfg-typed",
        "app-one",
        "my-app-one",
        "other",
        "cfg-template",
        "cfg-shadowed",
        "cfg-excluded",
        "cfg-kept",
        "cfg-nomatch",
    ] {
        put_config_map(client, NS, name, V1).await;
    }
    put_config_map_annotated(
        client,
        NS,
        "cfg-match",
        V1,
        &[("reloader.stakater.com/match", "true")],
    )
    .await;
    put_config_map_annotated(
        client,
        NS,
        "cfg-ignored",
        V1,
        &[("reloader.stakater.com/ignore", "true")],
    )
    .await;
    put_secret(client, NS, "sec-typed", V1).await;
    for name in SECRETS {
        put_secret(client, NS, name, V1).await;
    }
    put_config_map(client, NS, "cfg-beside", V1).await;
    let secret = |name: &str| keyed_marker(&key, SourceKind::Secret, NS, name, V1, KeyUse::All);

    let d = Kind::Deployment;
    let auto_marker = all("cfg-auto", V1);
    wait_marker(
        &cluster,
        d,
        NS,
        "auto",
        "app",
        "STAKATER_CFG_AUTO_CONFIGMAP",
        &auto_marker,
    )
    .await;
    let typed_marker = all("cfg-typed", V1);
    wait_marker(
        &cluster,
        d,
        NS,
        "typed",
        "app",
        "STAKATER_CFG_TYPED_CONFIGMAP",
        &typed_marker,
    )
    .await;
    let app_one = all("app-one", V1);
    wait_marker(
        &cluster,
        d,
        NS,
        "named",
        "first",
        "STAKATER_APP_ONE_CONFIGMAP",
        &app_one,
    )
    .await;
    let other = all("other", V1);
    wait_marker(
        &cluster,
        d,
        NS,
        "named",
        "first",
        "STAKATER_OTHER_CONFIGMAP",
        &other,
    )
    .await;
    let template_marker = all("cfg-template", V1);
    wait_marker(
        &cluster,
        d,
        NS,
        "template",
        "app",
        "STAKATER_CFG_TEMPLATE_CONFIGMAP",
        &template_marker,
    )
    .await;
    let kept = all("cfg-kept", V1);
    wait_marker(
        &cluster,
        d,
        NS,
        "exclude",
        "app",
        "STAKATER_CFG_KEPT_CONFIGMAP",
        &kept,
    )
    .await;
    let matched = all("cfg-match", V1);
    wait_marker(
        &cluster,
        d,
        NS,
        "search",
        "app",
        "STAKATER_CFG_MATCH_CONFIGMAP",
        &matched,
    )
    .await;

    let sec_auto = secret("sec-auto");
    wait_marker(
        &cluster,
        d,
        NS,
        "secret-typed",
        "app",
        "STAKATER_SEC_AUTO_SECRET",
        &sec_auto,
    )
    .await;
    let sec_named = secret("sec-named");
    wait_marker(
        &cluster,
        d,
        NS,
        "secret-named",
        "app",
        "STAKATER_SEC_NAMED_SECRET",
        &sec_named,
    )
    .await;
    let sec_kept = secret("sec-kept");
    wait_marker(
        &cluster,
        d,
        NS,
        "secret-exclude",
        "app",
        "STAKATER_SEC_KEPT_SECRET",
        &sec_kept,
    )
    .await;

    cm_barrier.pass(&cluster).await;
    secret_barrier.pass(&cluster).await;
    operator.assert_idle().await;

    // Typed auto for Secrets says nothing about ConfigMaps; the excluded Secret,
    // changed in the same gather window as the kept one, is not written.
    assert_markers(
        &cluster,
        "secret-typed",
        &[("app", "STAKATER_SEC_AUTO_SECRET", &sec_auto)],
    )
    .await;
    assert_generation(&cluster, "secret-typed", 2).await;
    assert_markers(
        &cluster,
        "secret-named",
        &[("app", "STAKATER_SEC_NAMED_SECRET", &sec_named)],
    )
    .await;
    assert_generation(&cluster, "secret-named", 2).await;
    assert_markers(
        &cluster,
        "secret-exclude",
        &[("app", "STAKATER_SEC_KEPT_SECRET", &sec_kept)],
    )
    .await;
    assert_generation(&cluster, "secret-exclude", 2).await;

    assert_markers(
        &cluster,
        "auto",
        &[("app", "STAKATER_CFG_AUTO_CONFIGMAP", &auto_marker)],
    )
    .await;
    assert_generation(&cluster, "auto", 2).await;
    // Not annotated: nothing, with or without a reference.
    assert_markers(&cluster, "plain", &[]).await;
    assert_generation(&cluster, "plain", 1).await;
    assert_markers(&cluster, "opted-out", &[]).await;
    assert_generation(&cluster, "opted-out", 1).await;
    // Typed auto for ConfigMaps says nothing about Secrets.
    assert_markers(
        &cluster,
        "typed",
        &[("app", "STAKATER_CFG_TYPED_CONFIGMAP", &typed_marker)],
    )
    .await;
    assert_generation(&cluster, "typed", 2).await;
    // `app-.*` matches `app-one` but not `my-app-one` (whole name); the invalid
    // `broken[` is skipped and `other`, after it, still works.
    assert_markers(
        &cluster,
        "named",
        &[
            ("first", "STAKATER_APP_ONE_CONFIGMAP", &app_one),
            ("first", "STAKATER_OTHER_CONFIGMAP", &other),
        ],
    )
    .await;
    assert_markers(
        &cluster,
        "template",
        &[("app", "STAKATER_CFG_TEMPLATE_CONFIGMAP", &template_marker)],
    )
    .await;
    assert_generation(&cluster, "template", 2).await;
    assert_markers(&cluster, "shadowed", &[]).await;
    assert_generation(&cluster, "shadowed", 1).await;
    // The excluded ConfigMap changed too, in the same gather window: only the
    // kept one is written.
    assert_markers(
        &cluster,
        "exclude",
        &[("app", "STAKATER_CFG_KEPT_CONFIGMAP", &kept)],
    )
    .await;
    assert_generation(&cluster, "exclude", 2).await;
    assert_markers(
        &cluster,
        "search",
        &[("app", "STAKATER_CFG_MATCH_CONFIGMAP", &matched)],
    )
    .await;
    assert_generation(&cluster, "search", 2).await;
    assert_markers(&cluster, "ignored", &[]).await;
    assert_generation(&cluster, "ignored", 1).await;

    // The invalid item was reported, once, naming it; the operator kept going.
    let invalid = operator.log_lines_with(&["broken["]);
    assert_eq!(
        invalid.len(),
        1,
        "one line about the invalid item: {invalid:#?}\nlog:\n{}",
        operator.log_text()
    );
    assert!(
        invalid[0].contains("configmap.reloader.stakater.com/reload"),
        "{}",
        invalid[0]
    );
    assert!(operator.is_running());
    operator.stop();

    // ---- --auto-reload-all ----------------------------------------------------
    let operator = cluster
        .operator(&["--cooldown=0s", "--auto-reload-all"])
        .await;
    put_config_map(client, NS, "cfg-plain", V2).await;
    let plain = all("cfg-plain", V2);
    wait_marker(
        &cluster,
        d,
        NS,
        "plain",
        "app",
        "STAKATER_CFG_PLAIN_CONFIGMAP",
        &plain,
    )
    .await;
    cm_barrier.pass(&cluster).await;
    operator.assert_idle().await;
    assert_generation(&cluster, "plain", 2).await;
    // An explicit `auto: "false"` still opts out.
    assert_markers(&cluster, "opted-out", &[]).await;
    assert_generation(&cluster, "opted-out", 1).await;
}

/// The ten annotation-name flags rename what is read: with `auto`, the named list,
/// search/match and `ignore` renamed, the renamed annotations decide as Reloader's
/// do, and Reloader's own names are no longer read.
#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn renamed_annotations_are_read_instead_of_reloaders() {
    const RENAMED: &str = "renamed";
    const AUTO: &str = "acme.io/auto";
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, RENAMED).await;
    // Each source with its annotations (written with every version: a put replaces
    // them). Reloader's names on a source are plain annotations now.
    let sources: [(&str, &[(&str, &str)]); 6] = [
        ("cm-auto", &[]),
        ("cm-named", &[]),
        ("cm-default", &[]),
        ("cm-search", &[("acme.io/match", "true")]),
        ("cm-ignored", &[("acme.io/ignore", "true")]),
        ("cm-old-ignore", &[("reloader.stakater.com/ignore", "true")]),
    ];
    for (name, annotations) in sources {
        put_config_map_annotated(client, RENAMED, name, V0, annotations).await;
    }
    let workloads = [
        ("auto", json!({ AUTO: "true" }), "cm-auto"),
        (
            "named",
            json!({"acme.io/reload-cm": "cm-named"}),
            "cm-named",
        ),
        ("search", json!({"acme.io/search": "true"}), "cm-search"),
        ("ignored", json!({ AUTO: "true" }), "cm-ignored"),
        ("old-ignore", json!({ AUTO: "true" }), "cm-old-ignore"),
        (
            "default-auto",
            json!({"reloader.stakater.com/auto": "true"}),
            "cm-default",
        ),
    ];
    for (name, annotations, source) in &workloads {
        deployment(name)
            .annotations(annotations.clone())
            .app(env_from_config_map(source))
            .create(&cluster, RENAMED)
            .await;
    }
    let mut barrier =
        Barrier::create_with_auto(&cluster, RENAMED, SourceKind::ConfigMap, 1, AUTO).await;

    let operator = cluster
        .operator(&[
            "--cooldown=0s",
            "--auto-annotation",
            AUTO,
            "--configmap-annotation",
            "acme.io/reload-cm",
            "--auto-search-annotation",
            "acme.io/search",
            "--search-match-annotation",
            "acme.io/match",
            "--ignore-annotation",
            "acme.io/ignore",
        ])
        .await;
    let key = cluster.hash_key().await;
    for (name, annotations) in sources {
        put_config_map_annotated(client, RENAMED, name, V1, annotations).await;
    }
    let rolled = ["auto", "named", "search", "old-ignore"];
    for (name, _, source) in workloads.iter().filter(|(n, ..)| rolled.contains(n)) {
        let marker = keyed_marker(
            &key,
            SourceKind::ConfigMap,
            RENAMED,
            source,
            V1,
            KeyUse::All,
        );
        let var = format!(
            "STAKATER_{}_CONFIGMAP",
            source.to_uppercase().replace('-', "_")
        );
        wait_marker(
            &cluster,
            Kind::Deployment,
            RENAMED,
            name,
            "app",
            &var,
            &marker,
        )
        .await;
    }
    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    for (name, ..) in &workloads {
        let expected = if rolled.contains(name) { 2 } else { 1 };
        assert_eq!(
            generation(&cluster, Kind::Deployment, RENAMED, name).await,
            expected,
            "generation of {name} (1 + its rollouts); log:\n{}",
            operator.log_text()
        );
    }
}
