//! Argo Rollouts with `--is-Argo-Rollouts=true`, against the Rollout CRD
//! installed on the real control plane (no Argo controller runs: the test
//! checks what the operator writes).

mod support;

use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::*;

const NS: &str = "apps";

async fn install_rollout_crd(client: &kube::Client) {
    create_object(
        client,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "rollouts.argoproj.io"},
            "spec": {
                "group": "argoproj.io",
                "scope": "Namespaced",
                "names": {"plural": "rollouts", "singular": "rollout", "kind": "Rollout", "listKind": "RolloutList"},
                "versions": [{
                    "name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }],
            },
        }),
    )
    .await;
    eventually("the Rollout CRD served", || async {
        client
            .list_api_group_resources("argoproj.io/v1alpha1")
            .await
            .ok()
            .filter(|l| !l.resources.is_empty())
    })
    .await;
}

async fn create_rollout(
    client: &kube::Client,
    name: &str,
    annotations: Value,
) -> Api<DynamicObject> {
    let resource = resource(client, "argoproj.io", "v1alpha1", "Rollout").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app", "image": "registry.invalid/app:1",
                    "envFrom": [{"configMapRef": {"name": "app-config"}}],
                }]},
            },
        },
    }))
    .expect("rollout");
    // A create whose answer was lost (a dropped connection) shows up as
    // AlreadyExists on the retry.
    eventually("the Rollout created", || async {
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => Some(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Some(()),
            Err(_) => None,
        }
    })
    .await;
    api
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn rollouts_get_the_marker_or_a_restart() {
    let cluster = Cluster::start().await;
    create_namespace(&cluster.client, NS).await;
    install_rollout_crd(&cluster.client).await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "1")]).await;
    let api = create_rollout(
        &cluster.client,
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
    )
    .await;
    create_rollout(
        &cluster.client,
        "restarted",
        json!({"reloader.stakater.com/auto": "true", "reloader.stakater.com/rollout-strategy": "restart"}),
    )
    .await;

    let _operator = cluster.operator(&["--is-Argo-Rollouts=true"]).await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "2")]).await;

    let env = eventually("the marker on the Rollout's template", || async {
        let r = api.get("web").await.ok()?;
        let env = r.data["spec"]["template"]["spec"]["containers"][0]["env"].clone();
        env.as_array()?
            .iter()
            .any(|e| e["name"] == "STAKATER_APP_CONFIG_CONFIGMAP")
            .then_some(env)
    })
    .await;
    assert_eq!(env.as_array().map(Vec::len), Some(1), "{env}");
    let restarted = eventually("restartAt on the restart-strategy Rollout", || async {
        let r = api.get("restarted").await.ok()?;
        r.data["spec"]["restartAt"].as_str().map(str::to_owned)
    })
    .await;
    assert!(
        restarted.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "RFC 3339: {restarted}"
    );
    let r = api.get("restarted").await.expect("rollout");
    assert!(
        r.data["spec"]["template"]["spec"]["containers"][0]
            .get("env")
            .is_none(),
        "a restart leaves the template alone"
    );
}
