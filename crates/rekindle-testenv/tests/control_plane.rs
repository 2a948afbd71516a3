//! The control plane is a real one: controllers act, RBAC is enforced on
//! ServiceAccount tokens, and restarts keep the stored data.

#![cfg(feature = "cluster")]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use rekindle_testenv::ControlPlane;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `probe` until it yields a value, panicking after [`DEADLINE`] with
/// the last thing it reported.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("{what}: gave up, last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn start() -> ControlPlane {
    ControlPlane::start().await.expect("control plane starts")
}

fn create<K>(value: serde_json::Value) -> K
where
    K: k8s_openapi::serde::de::DeserializeOwned,
{
    serde_json::from_value(value).expect("valid object")
}

/// The pod-template hashes of the `app=web` ReplicaSets, once there are `count`.
async fn replica_sets_eventually(replica_sets: &Api<ReplicaSet>, count: usize) -> BTreeSet<String> {
    eventually(&format!("{count} ReplicaSet(s)"), || async {
        let list = replica_sets
            .list(&ListParams::default().labels("app=web"))
            .await
            .map_err(|err| err.to_string())?;
        let hashes: BTreeSet<String> = list
            .items
            .iter()
            .filter_map(|rs| {
                rs.metadata
                    .labels
                    .as_ref()?
                    .get("pod-template-hash")
                    .cloned()
            })
            .collect();
        if hashes.len() == count {
            Ok(hashes)
        } else {
            Err(format!("{hashes:?}"))
        }
    })
    .await
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn patched_deployment_gets_a_second_replica_set() {
    let plane = start().await;
    let deployments: Api<Deployment> = Api::default_namespaced(plane.client());
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(plane.client());
    let deployment: Deployment = create(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    }));
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let first = replica_sets_eventually(&replica_sets, 1).await;

    // What a rolling restart does: change the pod template.
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "rekindle.test/restartedAt": "2024-01-01T00:00:00Z",
    }}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("strategic-merge patch");

    let both = replica_sets_eventually(&replica_sets, 2).await;
    assert!(
        first.is_subset(&both),
        "the first ReplicaSet stays: {first:?} in {both:?}"
    );
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn service_account_token_has_exactly_its_roles_rights() {
    let plane = start().await;
    let client = plane.client();
    let pp = PostParams::default();
    Api::<ServiceAccount>::default_namespaced(client.clone())
        .create(&pp, &create(json!({"metadata": {"name": "reader"}})))
        .await
        .expect("create ServiceAccount");
    Api::<Role>::default_namespaced(client.clone())
        .create(
            &pp,
            &create(json!({
                "metadata": {"name": "configmap-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                           "verbs": ["get", "list", "watch"]}],
            })),
        )
        .await
        .expect("create Role");
    Api::<RoleBinding>::default_namespaced(client.clone())
        .create(
            &pp,
            &create(json!({
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                            "name": "configmap-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}],
            })),
        )
        .await
        .expect("create RoleBinding");

    let token = plane
        .service_account_token("default", "reader")
        .await
        .expect("TokenRequest");
    let reader = plane.client_for_token(&token).await.expect("token client");

    // The authorizer reads RBAC from an informer: allow it to catch up.
    let config_maps: Api<ConfigMap> = Api::default_namespaced(reader.clone());
    eventually("the reader to list ConfigMaps", || async {
        config_maps
            .list(&ListParams::default())
            .await
            .map_err(|err| err.to_string())
    })
    .await;

    let refused = Api::<Deployment>::default_namespaced(reader)
        .list(&ListParams::default())
        .await
        .expect_err("Deployments are not in the Role");
    match refused {
        kube::Error::Api(status) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden, got {other}"),
    }

    // The same identity through a kubeconfig file, as a child process sees it.
    let kubeconfig = plane.kubeconfig_for_token(&token).expect("kubeconfig");
    let text = std::fs::read_to_string(kubeconfig).expect("read kubeconfig");
    assert!(text.contains(&token) && text.contains(plane.url()));
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn restarts_keep_the_data_and_watches_resume() {
    let mut plane = start().await;
    let config_maps: Api<ConfigMap> = Api::default_namespaced(plane.client());
    let created = config_maps
        .create(
            &PostParams::default(),
            &create(json!({"metadata": {"name": "settings"}, "data": {"LOG_LEVEL": "info"}})),
        )
        .await
        .expect("create ConfigMap");

    // A kube-runtime watcher (list + watch with bookmarks) running across the
    // restarts: it has done its initial list before they happen.
    let mut events = watcher(config_maps.clone(), watcher::Config::default()).boxed();
    loop {
        match tokio::time::timeout(DEADLINE, events.next()).await {
            Ok(Some(Ok(watcher::Event::InitDone))) => break,
            Ok(Some(_)) => {}
            other => panic!("the watcher's initial list did not finish: {other:?}"),
        }
    }
    let watch = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) = event {
                let level = cm.data.as_ref().and_then(|d| d.get("LOG_LEVEL")).cloned();
                if level.as_deref() == Some("debug") {
                    return true;
                }
            }
        }
        false
    });

    plane.restart_apiserver().await.expect("apiserver restarts");
    let after_apiserver = config_maps
        .get("settings")
        .await
        .expect("get after apiserver restart");
    assert_eq!(after_apiserver.data, created.data);
    assert_eq!(
        after_apiserver.metadata.resource_version, created.metadata.resource_version,
        "nothing changed, so the resourceVersion is the same"
    );

    plane.restart_etcd().await.expect("etcd restarts");
    let patch = json!({"data": {"LOG_LEVEL": "debug"}});
    eventually("a patch after the etcd restart", || async {
        config_maps
            .patch("settings", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|err| err.to_string())
    })
    .await;

    // The watcher recovers from both restarts and delivers the change.
    let seen = tokio::time::timeout(DEADLINE, watch).await;
    assert!(
        matches!(seen, Ok(Ok(true))),
        "the watcher saw the change made after the restarts: {seen:?}"
    );
}

/// PIDs of the processes whose command line mentions `needle`.
fn processes_mentioning(needle: &std::path::Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("list /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A process may exit between listing and reading: skip it.
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(&needle)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
#[ignore = "needs scripts/provision-k8s.sh"]
fn a_panicking_test_leaves_no_process_or_directory() {
    let (started, seen) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let plane = start().await;
            let dir = plane.dir().to_owned();
            let running = processes_mentioning(&dir);
            started.send((dir, running)).expect("report");
            panic!("a failing test, with the control plane still up");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");

    let (dir, running) = seen.recv().expect("the control plane started");
    assert_eq!(
        running.len(),
        3,
        "etcd, apiserver, controller-manager: {running:?}"
    );
    assert!(!dir.exists(), "{} is removed", dir.display());
    let left = processes_mentioning(&dir);
    assert!(left.is_empty(), "no process survives: {left:?}");
}
