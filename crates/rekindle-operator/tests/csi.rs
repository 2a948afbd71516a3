//! SecretProviderClasses with `--enable-csi-integration`, against the Secrets Store CSI
//! driver's CRDs installed on the real control plane. No driver runs: the test writes
//! the SecretProviderClassPodStatus objects the driver would write for each pod, and
//! checks what the operator does with them.

mod support;

use kube::api::{Api, DynamicObject, PostParams};
use rekindle_operator::decide::digest::reloader_sha1_pod_status;
use serde_json::json;
use support::*;

const NS: &str = "vault";
const GROUP: &str = "secrets-store.csi.x-k8s.io";
const VAR: &str = "STAKATER_VAULT_DB_SECRETPROVIDERCLASS";

async fn install_csi_crds(client: &kube::Client) {
    for (kind, plural) in [
        ("SecretProviderClass", "secretproviderclasses"),
        (
            "SecretProviderClassPodStatus",
            "secretproviderclasspodstatuses",
        ),
    ] {
        create_object(
            client,
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.{GROUP}")},
                "spec": {
                    "group": GROUP,
                    "scope": "Namespaced",
                    "names": {"plural": plural, "kind": kind, "listKind": format!("{kind}List")},
                    // As in the driver's CRDs: no status subresource, so the driver
                    // (here, the test) writes `status` with a plain update.
                    "versions": [{
                        "name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                    }],
                },
            }),
        )
        .await;
    }
    eventually("the CSI CRDs served", || async {
        client
            .list_api_group_resources(&format!("{GROUP}/v1"))
            .await
            .ok()
            .filter(|l| l.resources.len() == 2)
    })
    .await;
}

/// Writes the pod status the driver keeps for `pod`'s mount of class `vault-db`.
async fn put_pod_status(client: &kube::Client, pod: &str, version: &str) {
    put_labelled_pod_status(client, pod, "vault-db", version, json!({})).await;
}

/// [`put_pod_status`] for `pod`'s mount of `class`, with these labels on the status
/// object.
async fn put_labelled_pod_status(
    client: &kube::Client,
    pod: &str,
    class: &str,
    version: &str,
    labels: serde_json::Value,
) {
    let resource = resource(client, GROUP, "v1", "SecretProviderClassPodStatus").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource);
    let name = format!("{pod}-{NS}-{class}");
    let mut object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "SecretProviderClassPodStatus",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "status": {
            "podName": pod, "secretProviderClassName": class, "mounted": true,
            "targetPath": format!("/var/lib/kubelet/pods/{pod}/volumes/secrets"),
            "objects": [
                {"id": "secret/db-user", "version": "1"},
                {"id": "secret/db-pass", "version": version},
            ],
        },
    }))
    .expect("pod status");
    match api.get_opt(&name).await.expect("get") {
        None => {
            api.create(&PostParams::default(), &object)
                .await
                .expect("create");
        }
        Some(current) => {
            object.metadata.resource_version = current.metadata.resource_version;
            api.replace(&name, &PostParams::default(), &object)
                .await
                .expect("replace");
        }
    }
}

fn csi_user(name: &str) -> Workload {
    csi_user_of(name, "vault-db")
}

fn csi_user_of(name: &str, class: &str) -> Workload {
    deployment(name)
        .annotations(json!({"secretproviderclass.reloader.stakater.com/reload": class}))
        .pod(json!({
            "containers": [container("app", json!({
                "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}],
            }))],
            "volumes": [{"name": "secrets", "csi": {
                "driver": "secrets-store.csi.k8s.io", "readOnly": true,
                "volumeAttributes": {"secretProviderClass": class},
            }}],
        }))
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn a_rotated_secret_provider_class_rolls_its_users_once() {
    let cluster = Cluster::start().await;
    create_namespace(&cluster.client, NS).await;
    install_csi_crds(&cluster.client).await;
    csi_user("db-client").create(&cluster, NS).await;
    put_pod_status(&cluster.client, "pod-a", "1").await;
    put_pod_status(&cluster.client, "pod-b", "1").await;

    let operator = cluster
        .operator(&[
            "--enable-csi-integration",
            "--hash",
            "reloader-sha1",
            "--cooldown",
            "0s",
        ])
        .await;
    eventually("the operator ready", || async {
        operator
            .log_text()
            .contains("initial list complete")
            .then_some(())
    })
    .await;
    // A refresh of a status with the same versions rolls nothing.
    put_pod_status(&cluster.client, "pod-a", "1").await;

    // The driver rotates db-pass in pod-a's mount: the Deployment gets Reloader's
    // value for the new content, on the container that mounts the class.
    put_pod_status(&cluster.client, "pod-a", "2").await;
    let expected = reloader_sha1_pod_status(
        "vault-db",
        [("secret/db-pass", "2"), ("secret/db-user", "1")],
    );
    wait_marker(
        &cluster,
        Kind::Deployment,
        NS,
        "db-client",
        "app",
        VAR,
        &expected,
    )
    .await;
    operator.assert_rollouts(1).await;
    // Pod-b's mount catching up to the same versions is no new change. The next
    // rotation, on the same stream, is handled after it, so once it has rolled,
    // pod-b's update has been handled too: two rollouts in all, not three.
    put_pod_status(&cluster.client, "pod-b", "2").await;
    put_pod_status(&cluster.client, "pod-a", "3").await;
    let rotated = reloader_sha1_pod_status(
        "vault-db",
        [("secret/db-pass", "3"), ("secret/db-user", "1")],
    );
    wait_marker(
        &cluster,
        Kind::Deployment,
        NS,
        "db-client",
        "app",
        VAR,
        &rotated,
    )
    .await;
    operator.assert_idle().await;
    operator.assert_rollouts(2).await;
    // Reloader's reconcile counter: one per rollout, and skipped events.
    assert_eq!(
        operator
            .metric("reloader_reconcile_total{result=\"success\"}")
            .await,
        2.0
    );
    assert!(
        !operator.log_text().contains("not watched"),
        "{}",
        operator.log_text()
    );
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn without_the_crds_the_operator_says_so_and_runs() {
    let cluster = Cluster::start().await;
    let operator = cluster.operator(&["--enable-csi-integration"]).await;
    eventually("the warning about the missing CRD", || async {
        operator
            .log_text()
            .contains("secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io/v1 is not served")
            .then_some(())
    })
    .await;
    eventually("the operator ready", || async {
        operator
            .log_text()
            .contains("initial list complete")
            .then_some(())
    })
    .await;
}

/// `--resource-label-selector` applies to the pod status objects too, as in Reloader:
/// a rotation seen only in a status without the label rolls nothing.
#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn the_resource_label_selector_filters_pod_statuses() {
    const OTHER_VAR: &str = "STAKATER_VAULT_OTHER_SECRETPROVIDERCLASS";
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    install_csi_crds(client).await;
    csi_user("db-selected").create(&cluster, NS).await;
    csi_user_of("other-selected", "vault-other")
        .create(&cluster, NS)
        .await;
    let selected = || json!({"reload": "yes"});
    let status = |pod: &'static str, class: &'static str, version: &'static str, labels| {
        put_labelled_pod_status(client, pod, class, version, labels)
    };
    status("pod-plain", "vault-db", "1", json!({})).await;
    status("pod-labelled", "vault-db", "1", selected()).await;
    status("pod-labelled", "vault-other", "1", selected()).await;

    let operator = cluster
        .operator(&[
            "--enable-csi-integration",
            "--resource-label-selector=reload=yes",
            "--hash",
            "reloader-sha1",
            "--cooldown",
            "0s",
        ])
        .await;
    eventually("the operator ready", || async {
        operator
            .log_text()
            .contains("initial list complete")
            .then_some(())
    })
    .await;
    let sha = |class: &str, version: &str| {
        reloader_sha1_pod_status(
            class,
            [("secret/db-pass", version), ("secret/db-user", "1")],
        )
    };
    // A selected rotation rolls.
    status("pod-labelled", "vault-db", "3", selected()).await;
    let rolled = sha("vault-db", "3");
    wait_marker(
        &cluster,
        Kind::Deployment,
        NS,
        "db-selected",
        "app",
        VAR,
        &rolled,
    )
    .await;
    // Not selected: nothing. The selected rotation of the other class comes after it on
    // the same stream, so once that one has rolled, this one has been handled.
    status("pod-plain", "vault-db", "4", json!({})).await;
    status("pod-labelled", "vault-other", "2", selected()).await;
    let other = sha("vault-other", "2");
    wait_marker(
        &cluster,
        Kind::Deployment,
        NS,
        "other-selected",
        "app",
        OTHER_VAR,
        &other,
    )
    .await;
    operator.assert_idle().await;
    assert_eq!(
        env_of(&cluster, Kind::Deployment, NS, "db-selected", "app", VAR).await,
        Some(rolled),
        "an unlabelled status rolled db-selected"
    );
    operator.assert_rollouts(2).await;
}

/// `reloader.stakater.com/ignore` on the SecretProviderClass itself: its rotations roll
/// nothing, as in Reloader (which reads the class's annotations when a status changes).
#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn an_ignored_secret_provider_class_rolls_nothing() {
    const OTHER_VAR: &str = "STAKATER_VAULT_OTHER_SECRETPROVIDERCLASS";
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    install_csi_crds(client).await;
    for (class, annotations) in [
        ("vault-db", json!({"reloader.stakater.com/ignore": "true"})),
        ("vault-other", json!({})),
    ] {
        create_object(
            client,
            json!({
                "apiVersion": format!("{GROUP}/v1"), "kind": "SecretProviderClass",
                "metadata": {"name": class, "namespace": NS, "annotations": annotations},
                "spec": {"provider": "vault"},
            }),
        )
        .await;
    }
    csi_user("db-client").create(&cluster, NS).await;
    csi_user_of("other-client", "vault-other")
        .create(&cluster, NS)
        .await;
    let status = |class: &'static str, version: &'static str| {
        put_labelled_pod_status(client, "pod-a", class, version, json!({}))
    };
    status("vault-db", "1").await;
    status("vault-other", "1").await;

    let operator = cluster
        .operator(&[
            "--enable-csi-integration",
            "--hash",
            "reloader-sha1",
            "--cooldown",
            "0s",
        ])
        .await;
    eventually("the operator ready", || async {
        operator
            .log_text()
            .contains("initial list complete")
            .then_some(())
    })
    .await;
    // The ignored class rotates, then the other one, on the same stream: once the
    // other has rolled, the ignored one has been handled.
    status("vault-db", "2").await;
    status("vault-other", "2").await;
    let other = reloader_sha1_pod_status(
        "vault-other",
        [("secret/db-pass", "2"), ("secret/db-user", "1")],
    );
    wait_marker(
        &cluster,
        Kind::Deployment,
        NS,
        "other-client",
        "app",
        OTHER_VAR,
        &other,
    )
    .await;
    operator.assert_idle().await;
    assert_eq!(
        env_of(&cluster, Kind::Deployment, NS, "db-client", "app", VAR).await,
        None,
        "the ignored class rolled db-client"
    );
    operator.assert_rollouts(1).await;
}
