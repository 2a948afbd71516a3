//! kube 5 targets Kubernetes >= 1.32; this server is 1.20. These are the
//! version-sensitive API paths rekindle relies on, checked on the real server.

#![cfg(feature = "cluster")]

use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Resource as _;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use rekindle_testenv::ControlPlane;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn apis_rekindle_uses_work_on_1_20() {
    let plane = ControlPlane::start().await.expect("control plane starts");
    let client = plane.client();

    // Server-side apply (beta, on by default in 1.20).
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let applied = config_maps
        .patch(
            "app",
            &PatchParams::apply("rekindle-test").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "app"}, "data": {"k": "v"},
            })),
        )
        .await
        .expect("server-side apply");
    assert_eq!(
        applied.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("v")
    );

    // Metadata-only list + watch (PartialObjectMetadata, meta.k8s.io/v1).
    let metadata_only: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(client.clone());
    let mut metadata = watcher(metadata_only, watcher::Config::default()).boxed();
    let names = tokio::time::timeout(DEADLINE, async {
        let mut names = Vec::new();
        while let Some(event) = metadata.next().await {
            match event.expect("metadata watch event") {
                watcher::Event::InitApply(meta) => names.extend(meta.metadata.name),
                watcher::Event::InitDone => return names,
                _ => {}
            }
        }
        names
    })
    .await
    .expect("initial metadata list finishes");
    assert!(names.iter().any(|n| n == "app"), "{names:?}");

    // Leases (coordination.k8s.io/v1), as leader election uses them.
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "rekindle-test"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    }))
    .expect("lease");
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create Lease");
    let mut taken = created.clone();
    if let Some(spec) = taken.spec.as_mut() {
        spec.holder_identity = Some("b".to_owned());
    }
    leases
        .replace("rekindle-test", &PostParams::default(), &taken)
        .await
        .expect("replace Lease at its resourceVersion");
    let stale = leases
        .replace("rekindle-test", &PostParams::default(), &created)
        .await
        .expect_err("a stale resourceVersion conflicts");
    assert!(
        matches!(stale, kube::Error::Api(ref s) if s.code == 409),
        "{stale}"
    );

    // Events (events.k8s.io/v1) through kube-runtime's recorder.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "rekindle-test".to_owned(),
            instance: None,
        },
    );
    let app = config_maps.get("app").await.expect("get ConfigMap");
    recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "Reloaded".to_owned(),
                note: Some("test".to_owned()),
                action: "Reload".to_owned(),
                secondary: None,
            },
            &app.object_ref(&()),
        )
        .await
        .expect("publish an Event");
    let events: Api<K8sEvent> = Api::default_namespaced(client);
    let listed = events
        .list(&ListParams::default())
        .await
        .expect("list Events");
    assert!(
        listed
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Reloaded")),
        "{:?}",
        listed.items
    );
}
