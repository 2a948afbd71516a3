//! The `kube` feature on the real control plane: a ConfigMap or Secret read and watched
//! through the API feeds the reload pipeline, with the same digest as its volume.
#![cfg(feature = "kube")]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use rekindle::api::{ApiError, ObjectRef};
use rekindle::{ReloadError, Reloadable, Snapshot, Versioned};
use rekindle_testenv::{ControlPlane, KubeletWriter};

const NEEDS: &str = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)";

fn mk_config_map(name: &str, data: &[(&str, &str)], binary: &[(&str, &[u8])]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        binary_data: Some(
            binary
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// A config that is the snapshot itself: these tests are about what reaches the pipeline.
fn mk_reloadable_builder() -> rekindle::ReloadableBuilder<Snapshot> {
    Reloadable::builder_with(|snapshot: &Snapshot| Ok(snapshot.clone()))
}

/// Every version put in force, in order, as the callback saw them.
fn record(config: &Reloadable<Snapshot>) -> Arc<Mutex<Vec<Arc<Versioned<Snapshot>>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    config.on_change(move |applied| sink.lock().unwrap().push(applied.clone()));
    seen
}

/// Polls `check` every 20 ms until it holds, failing after `within`.
async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn replace_config_map(api: &Api<ConfigMap>, cm: ConfigMap) {
    let name = cm.metadata.name.clone().unwrap();
    let mut current = api.get(&name).await.unwrap();
    current.data = cm.data;
    current.binary_data = cm.binary_data;
    api.replace(&name, &PostParams::default(), &current)
        .await
        .unwrap();
}

fn key_values(snapshot: &Snapshot) -> Vec<(String, Vec<u8>)> {
    snapshot
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_vec()))
        .collect()
}

#[tokio::test]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn api_digest_equals_the_kubelet_volume_digest() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let writer = KubeletWriter::locate().expect(NEEDS);
    let client = cluster.client();
    let binary: &[u8] = &[0, 1, 2, 255, b'\n'];
    let cm = mk_config_map(
        "mixed",
        &[
            ("app.yaml", "port: 8080\n"),
            ("MODE", "fast"),
            ("empty", ""),
        ],
        &[("blob.bin", binary)],
    );
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("tls.key".to_owned(), ByteString(vec![9, 8, 7, 0, 200])),
            ("password".to_owned(), ByteString(b"hunter2".to_vec())),
        ])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    for object in [ObjectRef::config_map("mixed"), ObjectRef::secret("creds")] {
        let from_api = rekindle::api::get(&client, &object).await.unwrap();
        let volume = tempfile::tempdir().unwrap();
        let payload: BTreeMap<String, Vec<u8>> = key_values(&from_api).into_iter().collect();
        writer.write(volume.path(), &payload).unwrap();
        let from_volume = Snapshot::read(volume.path()).unwrap();
        assert_eq!(from_api.digest(), from_volume.digest(), "{object}");
        assert_eq!(key_values(&from_api), key_values(&from_volume), "{object}");
    }
    // The public format, computed by hand from the object as created.
    let expected = Snapshot::from_entries([
        ("app.yaml", b"port: 8080\n".to_vec()),
        ("MODE", b"fast".to_vec()),
        ("empty", Vec::new()),
        ("blob.bin", binary.to_vec()),
    ]);
    let from_api = rekindle::api::get(&client, &ObjectRef::config_map("mixed"))
        .await
        .unwrap();
    assert_eq!(from_api.digest(), expected.digest());
}

#[tokio::test]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn every_update_reaches_the_callback_once_and_deletion_keeps_the_config() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let client = cluster.client();
    let api = Api::<ConfigMap>::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &mk_config_map("app", &[("a", "1")], &[]),
    )
    .await
    .unwrap();
    let object = ObjectRef::config_map("app");
    let config = mk_reloadable_builder()
        .load_api(&client, &object)
        .await
        .unwrap();
    assert_eq!(config.current().get_str("a"), Some("1"));
    let seen = record(&config);
    let _watch = config.watch_api(client.clone(), object);

    // A key modified and one added; then one removed and binary data added.
    replace_config_map(&api, mk_config_map("app", &[("a", "2"), ("b", "x")], &[])).await;
    eventually("version 2", Duration::from_secs(10), || {
        config.current().version() == 2
    })
    .await;
    assert_eq!(
        key_values(&config.current()),
        [("a".into(), b"2".to_vec()), ("b".into(), b"x".to_vec())]
    );
    replace_config_map(
        &api,
        mk_config_map("app", &[("b", "x")], &[("bin", &[0, 255])]),
    )
    .await;
    eventually("version 3", Duration::from_secs(10), || {
        config.current().version() == 3
    })
    .await;
    assert_eq!(
        key_values(&config.current()),
        [("b".into(), b"x".to_vec()), ("bin".into(), vec![0, 255])]
    );

    // An update that changes no data (a label) is not a change.
    let mut labelled = api.get("app").await.unwrap();
    labelled
        .metadata
        .labels
        .get_or_insert_default()
        .insert("touched".into(), "yes".into());
    api.replace("app", &PostParams::default(), &labelled)
        .await
        .unwrap();

    // Deleted: the config stays, and the deletion is reported.
    api.delete("app", &DeleteParams::default()).await.unwrap();
    eventually(
        "the deletion to be reported",
        Duration::from_secs(10),
        || {
            matches!(
                config.last_error().as_deref(),
                Some(ReloadError::Api { error }) if matches!(**error, ApiError::Deleted { .. })
            )
        },
    )
    .await;
    assert_eq!(config.current().version(), 3);

    // Created again with new content: picked up.
    api.create(
        &PostParams::default(),
        &mk_config_map("app", &[("c", "new")], &[]),
    )
    .await
    .unwrap();
    eventually("version 4", Duration::from_secs(10), || {
        config.current().version() == 4
    })
    .await;
    assert_eq!(config.current().get_str("c"), Some("new"));
    assert!(config.last_error().is_none());

    let versions: Vec<u64> = seen.lock().unwrap().iter().map(|v| v.version()).collect();
    assert_eq!(versions, [2, 3, 4], "one callback per content change");
}

#[tokio::test]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn no_update_is_lost_or_repeated_across_apiserver_and_etcd_restarts() {
    let mut cluster = ControlPlane::start().await.expect(NEEDS);
    let client = cluster.client();
    let api = Api::<ConfigMap>::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &mk_config_map("app", &[("n", "0")], &[]),
    )
    .await
    .unwrap();
    let object = ObjectRef::config_map("app");
    let config = mk_reloadable_builder()
        .load_api(&client, &object)
        .await
        .unwrap();
    let seen = record(&config);
    let _watch = config.watch_api(client.clone(), object);

    replace_config_map(&api, mk_config_map("app", &[("n", "1")], &[])).await;
    eventually("n=1", Duration::from_secs(10), || {
        config.current().get_str("n") == Some("1")
    })
    .await;

    // The apiserver goes away under the watch; an update made right after it is back
    // arrives through the re-list or the new watch, once.
    cluster.restart_apiserver().await.unwrap();
    replace_config_map(&api, mk_config_map("app", &[("n", "2")], &[])).await;
    eventually(
        "n=2 after the apiserver restart",
        Duration::from_secs(60),
        || config.current().get_str("n") == Some("2"),
    )
    .await;

    cluster.restart_etcd().await.unwrap();
    replace_config_map(&api, mk_config_map("app", &[("n", "3")], &[])).await;
    eventually(
        "n=3 after the etcd restart",
        Duration::from_secs(60),
        || config.current().get_str("n") == Some("3"),
    )
    .await;

    // Give a duplicate the time to show up: a re-list of unchanged content must not
    // put anything new in force. Another update after that proves the watch is alive
    // and closes the window.
    replace_config_map(&api, mk_config_map("app", &[("n", "4")], &[])).await;
    eventually("n=4", Duration::from_secs(30), || {
        config.current().get_str("n") == Some("4")
    })
    .await;
    let values: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|v| v.get_str("n").unwrap().to_owned())
        .collect();
    assert_eq!(values, ["1", "2", "3", "4"], "each update exactly once");
}

#[tokio::test]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn rbac_restricted_by_resource_names_allows_exactly_the_named_object() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let admin = cluster.client();
    let ns = "team";
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let pp = PostParams::default();
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), ns);
    for name in ["mine", "other"] {
        cms.create(&pp, &mk_config_map(name, &[("k", name)], &[]))
            .await
            .unwrap();
    }
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create(
            &pp,
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("app".into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    // The rule the crate documents: get, list, watch on the one name.
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(
            &pp,
            &Role {
                metadata: ObjectMeta {
                    name: Some("read-mine".into()),
                    ..ObjectMeta::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["configmaps".into()]),
                    resource_names: Some(vec!["mine".into()]),
                    verbs: vec!["get".into(), "list".into(), "watch".into()],
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(
            &pp,
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("read-mine".into()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "read-mine".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "app".into(),
                    namespace: Some(ns.into()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();
    let token = cluster.service_account_token(ns, "app").await.unwrap();
    let client = cluster.client_for_token(&token).await.unwrap();

    // Allowed: the named object, read and watched (list + watch with the name's field
    // selector are authorized against resourceNames).
    let mine = ObjectRef::config_map("mine").in_namespace(ns);
    let config = mk_reloadable_builder()
        .load_api(&client, &mine)
        .await
        .unwrap();
    let _watch = config.watch_api(client.clone(), mine);
    replace_config_map(&cms, mk_config_map("mine", &[("k", "changed")], &[])).await;
    eventually("the watched change", Duration::from_secs(10), || {
        config.current().get_str("k") == Some("changed")
    })
    .await;
    assert!(config.last_error().is_none(), "{:?}", config.last_error());

    // Denied: another name, with a message that says which rule is missing.
    let other = ObjectRef::config_map("other").in_namespace(ns);
    let error = rekindle::api::get(&client, &other).await.unwrap_err();
    assert!(error.is_forbidden(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("configmap/team/other"), "{message}");
    assert!(message.contains("resourceNames: [\"other\"]"), "{message}");
    let denied = mk_reloadable_builder()
        .build(Snapshot::from_entries(
            std::iter::empty::<(String, Vec<u8>)>(),
        ));
    let _denied_watch = denied.watch_api(client.clone(), other);
    eventually(
        "the watch to report the denial",
        Duration::from_secs(10),
        || {
            matches!(
                denied.last_error().as_deref(),
                Some(ReloadError::Api { error }) if error.is_forbidden()
            )
        },
    )
    .await;

    // Not found is its own error.
    let missing = rekindle::api::get(&client, &ObjectRef::secret("nope").in_namespace(ns))
        .await
        .unwrap_err();
    assert!(
        missing.is_forbidden(),
        "secrets are not granted at all: {missing:?}"
    );
    let missing = rekindle::api::get(&admin, &ObjectRef::config_map("nope").in_namespace(ns))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
}
