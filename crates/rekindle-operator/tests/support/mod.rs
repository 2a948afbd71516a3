//! A real control plane with the operator running in it as a ServiceAccount
//! bound by `deploy/operator/rbac/cluster.yaml`, and helpers to make and watch
//! workloads.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use rekindle_testenv::ControlPlane;
use serde_json::{Value, json};

pub const OPERATOR_NAMESPACE: &str = "rekindle";
/// Long enough for a slow CI machine; conditions are polled, so a pass is fast.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The control plane with the operator's RBAC applied.
pub struct Cluster {
    pub plane: ControlPlane,
    pub client: kube::Client,
    /// A kubeconfig for the operator's ServiceAccount.
    pub operator_kubeconfig: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Cluster {
    pub async fn start() -> Cluster {
        let plane = ControlPlane::start().await.expect("control plane starts");
        let client = plane.client();
        create_namespace(&client, OPERATOR_NAMESPACE).await;
        apply_file(
            &client,
            &repo_root().join("deploy/operator/rbac/cluster.yaml"),
        )
        .await;
        let token = plane
            .service_account_token(OPERATOR_NAMESPACE, "rekindle-operator")
            .await
            .expect("token for the operator's ServiceAccount");
        let operator_kubeconfig = plane.kubeconfig_for_token(&token).expect("kubeconfig");
        Cluster {
            plane,
            client,
            operator_kubeconfig,
        }
    }

    /// Starts the operator with `args` (plus a free `--metrics-addr`) and waits
    /// until it reports ready.
    pub async fn operator(&self, args: &[&str]) -> Operator {
        Operator::spawn(
            &self.operator_kubeconfig,
            &self.plane.dir().join("operator.log"),
            args,
        )
        .await
    }
}

/// Creates each object of a multi-document YAML file.
pub async fn apply_file(client: &kube::Client, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        create_object(client, doc).await;
    }
}

pub async fn create_object(client: &kube::Client, doc: Value) {
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    let kind = doc["kind"].as_str().expect("kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .expect("kind is served");
    let object: DynamicObject = serde_json::from_value(doc.clone()).expect("object");
    let api: Api<DynamicObject> = match (&caps.scope, object.metadata.namespace.as_deref()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        (kube::discovery::Scope::Namespaced, None) => {
            Api::default_namespaced_with(client.clone(), &resource)
        }
        (kube::discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {kind}: {e}"));
}

pub async fn create_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// The operator as a child process; killed on drop.
pub struct Operator {
    child: Child,
    pub metrics_url: String,
    pub log: PathBuf,
}

impl Operator {
    pub async fn spawn(kubeconfig: &Path, log: &Path, args: &[&str]) -> Operator {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_rekindle-operator"))
            .args(args)
            .args(["--metrics-addr", &addr])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", OPERATOR_NAMESPACE)
            .env("RUST_LOG", "info,rekindle_operator=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("operator starts");
        let operator = Operator {
            child,
            metrics_url: format!("http://{addr}"),
            log: log.to_owned(),
        };
        operator.wait_ready().await;
        operator
    }

    async fn wait_ready(&self) {
        let url = format!("{}/ready", self.metrics_url);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if http_get(&url)
                .await
                .is_some_and(|(status, _)| status == 200)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "operator not ready in {DEADLINE:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        http_get(&format!("{}/metrics", self.metrics_url))
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// Stops the operator with SIGTERM and waits for it to exit.
    pub fn stop(mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET on loopback.
async fn http_get(url: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls `check` every 50 ms until it gives `Some`, or panics after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn put_config_map(client: &kube::Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data});
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(body),
    )
    .await
    .expect("config map applied");
}

/// Sets a label on a ConfigMap: a metadata-only change.
pub async fn label_config_map(client: &kube::Client, ns: &str, name: &str, label: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let body = json!({"metadata": {"labels": {label: "x"}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .expect("label set");
}

/// A Deployment with one container `app`, its template annotated and using
/// `env`/`envFrom`/volumes as given (`spec` is merged into the pod spec).
pub async fn create_deployment(
    client: &kube::Client,
    ns: &str,
    name: &str,
    annotations: Value,
    pod_spec: Value,
) {
    let mut spec = json!({"containers": [{"name": "app", "image": "registry.invalid/app:1"}]});
    merge(&mut spec, pod_spec);
    let body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    });
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment: Deployment = serde_json::from_value(body).expect("deployment");
    api.create(&PostParams::default(), &deployment)
        .await
        .expect("deployment created");
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                a.insert(k, v);
            }
        }
        (into, from) => *into = from,
    }
}

/// The env var `name` of container `container` in the Deployment's template.
pub async fn template_env(
    client: &kube::Client,
    ns: &str,
    deployment: &str,
    container: &str,
    name: &str,
) -> Option<String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = api.get(deployment).await.ok()?;
    let spec = d.spec?.template.spec?;
    let c = spec.containers.into_iter().find(|c| c.name == container)?;
    c.env?.into_iter().find(|e| e.name == name)?.value
}

/// The ReplicaSets the Deployment controller made for `deployment`.
pub async fn replica_sets(client: &kube::Client, ns: &str, deployment: &str) -> usize {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("app={deployment}")))
        .await
        .expect("list replica sets");
    list.items.len()
}

/// `(resource, capabilities)` lookups for tests that create CRD objects.
pub async fn resource(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
) -> ApiResource {
    kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
        .await
        .expect("served")
        .0
}
