//! The least-privilege RBAC for watched namespaces, on the real server: the
//! namespaced overlay's Role (`deploy/operator/overlays/namespaced/role.yaml`)
//! put in `apps`, as deploy/README.md tells, plus the base's ServiceAccount and
//! own-namespace Role without its ClusterRole. No cluster-wide permission at all,
//! and the operator works with `--namespaces=apps`. With a permission taken
//! away, its log says in one line which verb on which resource is missing.

mod support;

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use rekindle_operator::model::{KeyUse, SourceKind};
use serde_json::{Value, json};
use support::*;

const NS: &str = "apps";
const D: Kind = Kind::Deployment;

/// Whether the operator's ServiceAccount may `verb` `resource` in `apps`.
async fn allowed(operator: &kube::Client, verb: &str, group: &str, resource: &str) -> bool {
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {
            "namespace": NS, "verb": verb, "group": group, "resource": resource,
        }},
    }))
    .expect("review");
    let api: Api<SelfSubjectAccessReview> = Api::all(operator.clone());
    let review = api
        .create(&PostParams::default(), &review)
        .await
        .expect("access review");
    review.status.is_some_and(|s| s.allowed)
}

/// The base's RBAC without its cluster-wide objects, and the namespaced
/// overlay's Role and RoleBinding moved to `apps`.
fn namespaced_rbac() -> Vec<Value> {
    let mut docs: Vec<Value> = read_manifest(&deploy_manifest("base/rbac.yaml"))
        .into_iter()
        .filter(|d| {
            !["ClusterRole", "ClusterRoleBinding"].contains(&d["kind"].as_str().unwrap_or(""))
        })
        .collect();
    for mut doc in read_manifest(&deploy_manifest("overlays/namespaced/role.yaml")) {
        doc["metadata"]["namespace"] = json!(NS);
        docs.push(doc);
    }
    docs
}

/// The Role for `apps`, without `patch` on apps/v1 workloads.
fn role_without_patch(docs: &[Value]) -> Value {
    let mut role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == NS)
        .expect("the Role for apps")
        .clone();
    let mut removed = false;
    for rule in role["rules"].as_array_mut().expect("rules") {
        if rule["apiGroups"] == json!(["apps"]) {
            let verbs = rule["verbs"].as_array_mut().expect("verbs");
            verbs.retain(|v| v != "patch");
            removed = true;
        }
    }
    assert!(removed, "the manifest's Role has an apps rule");
    role
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn the_namespaced_manifest_is_enough_and_a_missing_verb_is_named() {
    let docs = namespaced_rbac();
    let cluster = Cluster::start_with_rbac(&[NS], docs.clone()).await;
    let client = &cluster.client;
    for name in ["web", "denied"] {
        let config = format!("{name}-config");
        put_config_map(client, NS, &config, &[("v", "0")]).await;
        deployment(name)
            .auto()
            .app(env_from_config_map(&config))
            .create(&cluster, NS)
            .await;
    }
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 1).await;

    // The ServiceAccount has nothing cluster-wide.
    let token = cluster
        .plane
        .service_account_token(OPERATOR_NAMESPACE, "rekindle-operator")
        .await
        .expect("token");
    let as_operator = cluster
        .plane
        .client_for_token(&token)
        .await
        .expect("client");
    let everywhere: Api<ConfigMap> = Api::all(as_operator.clone());
    let denied = everywhere.list(&ListParams::default()).await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "{denied:?}"
    );

    let mut operator = cluster.operator(&["--namespaces=apps"]).await;
    let key = cluster.hash_key().await;
    put_config_map(client, NS, "web-config", &[("v", "1")]).await;
    let marker = keyed_marker(
        &key,
        SourceKind::ConfigMap,
        NS,
        "web-config",
        &[("v", "1")],
        KeyUse::All,
    );
    wait_marker(
        &cluster,
        D,
        NS,
        "web",
        "app",
        "STAKATER_WEB_CONFIG_CONFIGMAP",
        &marker,
    )
    .await;
    barrier.pass(&cluster).await;

    // Take `patch` on Deployments away, and wait until the authorizer knows.
    replace_object(client, role_without_patch(&docs)).await;
    eventually("patch on deployments to be denied", || async {
        (!allowed(&as_operator, "patch", "apps", "deployments").await).then_some(())
    })
    .await;
    put_config_map(client, NS, "denied-config", &[("v", "1")]).await;
    let line = eventually("a log line naming the missing permission", || async {
        operator
            .log_lines_with(&["permission denied", "patch", "deployments", "denied"])
            .into_iter()
            .next()
    })
    .await;
    // What to add, and where, in one line.
    assert!(
        line.contains("cannot patch resource \"deployments\""),
        "{line}"
    );
    assert!(line.contains("in the namespace \"apps\""), "{line}");
    assert!(line.contains("Role"), "{line}");
    assert!(markers(&cluster, D, NS, "denied").await.is_empty());
    // Retried with backoff, but said once: the same error is not logged again.
    eventually("two more attempts", || async {
        (operator.metric("reloader_retries_total").await >= 3.0).then_some(())
    })
    .await;
    let warnings = operator.log_lines_with(&["rollout failed; will retry", "permission denied"]);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    // Reloader's Warning Event on the workload, saying what failed.
    let (kind, note) = eventually("the ReloadFail Event", || async {
        let events: kube::Api<k8s_openapi::api::events::v1::Event> =
            kube::Api::namespaced(client.clone(), NS);
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|e| {
            let regarding = e.regarding?;
            (e.reason.as_deref() == Some("ReloadFail")
                && regarding.kind.as_deref() == Some("Deployment")
                && regarding.name.as_deref() == Some("denied"))
            .then(|| (e.type_.unwrap_or_default(), e.note.unwrap_or_default()))
        })
    })
    .await;
    assert_eq!(kind, "Warning");
    assert!(
        note.starts_with(
            "Update for 'denied' of type 'Deployment' in namespace 'apps' failed with error"
        ),
        "{note}"
    );
    assert!(
        note.contains("forbidden") || note.contains("cannot patch"),
        "{note}"
    );
    assert!(operator.is_running(), "log:\n{}", operator.log_text());
}
