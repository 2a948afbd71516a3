//! A real control plane with the operator running in it as a ServiceAccount
//! bound by the shipped RBAC manifests, and helpers to make and watch
//! workloads and sources.
//!
//! Each test binary uses part of this module only.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use rekindle_operator::decide::digest::{KeyDigests, MarkerKey, marker};
use rekindle_operator::model::{KeyUse, SourceId, SourceKind};
use rekindle_testenv::ControlPlane;
use serde_json::{Value, json};

pub const OPERATOR_NAMESPACE: &str = "rekindle";
/// Long enough for a slow CI machine; conditions are polled, so a pass is fast.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The Secret holding the keyed marker's key (`--hash-key-secret`'s default).
pub const HASH_KEY_SECRET: &str = "rekindle-operator-hash-key";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The path of a shipped operator manifest, `deploy/operator/<path>` (for
/// example `base/rbac.yaml`).
pub fn deploy_manifest(path: &str) -> PathBuf {
    repo_root().join("deploy/operator").join(path)
}

// ---- the control plane -------------------------------------------------------

/// The control plane with the operator's RBAC applied.
pub struct Cluster {
    pub plane: ControlPlane,
    pub client: kube::Client,
    /// A kubeconfig for the operator's ServiceAccount.
    pub operator_kubeconfig: PathBuf,
    /// CronJobs as this server serves them (batch/v1beta1 on 1.20).
    pub cron_jobs: ApiResource,
    operators_started: AtomicUsize,
}

impl Cluster {
    /// Starts a control plane with the Kustomize base's RBAC,
    /// `deploy/operator/base/rbac.yaml`.
    pub async fn start() -> Cluster {
        let docs = read_manifest(&deploy_manifest("base/rbac.yaml"));
        Cluster::start_with_rbac(&[], docs).await
    }

    /// Starts a control plane, creates the operator's namespace and
    /// `namespaces`, then every object of `rbac` (which must include the
    /// operator's ServiceAccount).
    pub async fn start_with_rbac(namespaces: &[&str], rbac: Vec<Value>) -> Cluster {
        let plane = ControlPlane::start().await.expect("control plane starts");
        let client = plane.client();
        create_namespace(&client, OPERATOR_NAMESPACE).await;
        for ns in namespaces {
            create_namespace(&client, ns).await;
        }
        for doc in rbac {
            create_object(&client, doc).await;
        }
        Cluster::for_account(plane, OPERATOR_NAMESPACE, "rekindle-operator").await
    }

    /// A cluster on a running control plane whose operators run as the
    /// ServiceAccount `namespace/account`, which must exist (made by the
    /// caller, for example by installing a chart).
    pub async fn for_account(plane: ControlPlane, namespace: &str, account: &str) -> Cluster {
        let client = plane.client();
        let token = plane
            .service_account_token(namespace, account)
            .await
            .unwrap_or_else(|e| panic!("token for the ServiceAccount {namespace}/{account}: {e}"));
        let operator_kubeconfig = plane.kubeconfig_for_token(&token).expect("kubeconfig");
        let cron_jobs = cron_job_resource(&client).await;
        Cluster {
            plane,
            client,
            operator_kubeconfig,
            cron_jobs,
            operators_started: AtomicUsize::new(0),
        }
    }

    /// Starts the operator with `args` (plus a free `--metrics-addr`) and waits
    /// until it reports ready.
    pub async fn operator(&self, args: &[&str]) -> Operator {
        self.operator_with_env(args, &[]).await
    }

    /// [`Cluster::operator`] with extra environment variables.
    pub async fn operator_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Operator {
        let n = self.operators_started.fetch_add(1, Ordering::Relaxed);
        Operator::spawn(
            &self.operator_kubeconfig,
            &self.plane.dir().join(format!("operator-{n}.log")),
            args,
            env,
        )
        .await
    }

    /// The operator's marker key, from the Secret it created at its first start.
    pub async fn hash_key(&self) -> MarkerKey {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), OPERATOR_NAMESPACE);
        let secret = api.get(HASH_KEY_SECRET).await.expect("the hash key Secret");
        let bytes = secret.data.expect("data")["key"].0.clone();
        MarkerKey::new(bytes.try_into().expect("32 bytes"))
    }

    /// The holder of the HA Lease, if any.
    pub async fn lease_holder(&self) -> Option<String> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), OPERATOR_NAMESPACE);
        let lease = api.get_opt("stakater-reloader-lock").await.ok()??;
        lease
            .spec?
            .holder_identity
            .filter(|holder| !holder.is_empty())
    }
}

async fn cron_job_resource(client: &kube::Client) -> ApiResource {
    let v1 = client
        .list_api_group_resources("batch/v1")
        .await
        .expect("batch/v1 is served");
    let version = if v1.resources.iter().any(|r| r.name == "cronjobs") {
        "v1"
    } else {
        "v1beta1"
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("batch", version, "CronJob"),
        "cronjobs",
    )
}

/// The documents of a multi-document YAML file.
pub fn read_manifest(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Creates each object of a multi-document YAML file.
pub async fn apply_file(client: &kube::Client, path: &Path) {
    for doc in read_manifest(path) {
        create_object(client, doc).await;
    }
}

async fn dynamic_api(client: &kube::Client, doc: &Value) -> (Api<DynamicObject>, DynamicObject) {
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    let kind = doc["kind"].as_str().expect("kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .expect("kind is served");
    let object: DynamicObject = serde_json::from_value(doc.clone()).expect("object");
    let api = match (&caps.scope, object.metadata.namespace.as_deref()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        (kube::discovery::Scope::Namespaced, None) => {
            Api::default_namespaced_with(client.clone(), &resource)
        }
        (kube::discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    (api, object)
}

pub async fn create_object(client: &kube::Client, doc: Value) {
    let (api, object) = dynamic_api(client, &doc).await;
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {}: {e}", doc["kind"]));
}

/// Replaces an existing object with `doc`, carrying its current
/// resourceVersion.
pub async fn replace_object(client: &kube::Client, doc: Value) {
    let (api, mut object) = dynamic_api(client, &doc).await;
    let name = object.metadata.name.clone().expect("name");
    let current = api.get(&name).await.expect("object to replace exists");
    object.metadata.resource_version = current.metadata.resource_version;
    api.replace(&name, &PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("replacing {}: {e}", doc["kind"]));
}

pub async fn create_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

// ---- the operator ------------------------------------------------------------

/// The operator as a child process; killed (SIGKILL) on drop.
pub struct Operator {
    child: Child,
    pub metrics_url: String,
    pub log: PathBuf,
}

impl Operator {
    pub async fn spawn(
        kubeconfig: &Path,
        log: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        // `--metrics-addr=:PORT` in `args` is kept (every interface); otherwise a
        // free loopback port is added.
        let given: Option<u16> = args
            .iter()
            .find_map(|a| a.strip_prefix("--metrics-addr=:"))
            .map(|p| p.parse().expect("a port"));
        let port = given.unwrap_or_else(|| {
            TcpListener::bind("127.0.0.1:0")
                .expect("free port")
                .local_addr()
                .expect("addr")
                .port()
        });
        let addr = format!("127.0.0.1:{port}");
        let added: &[&str] = if given.is_some() {
            &[]
        } else {
            &["--metrics-addr", &addr]
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_rekindle-operator"))
            .args(args)
            .args(added)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", OPERATOR_NAMESPACE)
            .env("RUST_LOG", "info,rekindle_operator=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("operator starts");
        let mut operator = Operator {
            child,
            metrics_url: format!("http://{addr}"),
            log: log.to_owned(),
        };
        operator.wait_ready().await;
        operator
    }

    async fn wait_ready(&mut self) {
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
                self.is_running(),
                "operator exited before it was ready; log:\n{}",
                self.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "operator not ready in {DEADLINE:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log lines containing every one of `words`.
    pub fn log_lines_with(&self, words: &[&str]) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|line| words.iter().all(|w| line.contains(w)))
            .map(str::to_owned)
            .collect()
    }

    pub async fn metrics(&self) -> String {
        http_get(&format!("{}/metrics", self.metrics_url))
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The value of the sample whose line starts with `series` (name and
    /// labels, exactly as exposed); 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| {
                let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(0.0)
    }

    /// Successful rollouts performed by this process.
    pub async fn rollouts(&self) -> u64 {
        self.metric("reloader_reload_executed_total{success=\"true\"}")
            .await as u64
    }

    /// Asserts that this process made exactly `expected` successful
    /// rollouts. The counter is bumped just after the PATCH returns, so it may
    /// trail what the API already shows by the rollout in flight: wait for it
    /// to reach `expected` first. Used after a barrier round, when no other
    /// rollout can still come.
    pub async fn assert_rollouts(&self, expected: u64) {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = self.rollouts().await;
        while seen < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen = self.rollouts().await;
        }
        assert_eq!(seen, expected, "rollouts made; log:\n{}", self.log_text());
    }

    /// Workloads with a rollout pending (queued, gathering or cooling down).
    pub async fn pending(&self) -> u64 {
        self.metric("reloader_workqueue_depth").await as u64
    }

    /// Asserts that nothing is pending: no rollout will happen without a new
    /// event. Used after a barrier, which also refreshes the gauge. A rollout
    /// started with the barrier's may still be running when the barrier is seen
    /// rolled: it is waited for first, and is then counted (or, failed, pending).
    pub async fn assert_idle(&self) {
        eventually("no rollout in flight", || async {
            (self.metric("rekindle_operator_rollouts_in_flight").await == 0.0).then_some(())
        })
        .await;
        assert_eq!(
            self.pending().await,
            0,
            "a rollout is still pending; log:\n{}",
            self.log_text()
        );
    }

    /// CPU time (user + system) used so far, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the
        // 14th and 15th fields of the whole line.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
        Duration::from_millis((ticks(11) + ticks(12)) * 10)
    }

    /// Kills the process with SIGKILL: no shutdown, no Lease release.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// A minimal HTTP/1.0 GET on loopback: the status and body.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
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

/// A free TCP port on the loopback interfaces (bound once and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `check` every 50 ms until it gives `Some`, or panics after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(DEADLINE, what, check).await
}

/// [`eventually`] with its own deadline.
pub async fn eventually_within<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- sources -----------------------------------------------------------------

pub async fn put_config_map(client: &kube::Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    put_config_map_annotated(client, ns, name, data, &[]).await;
}

/// Creates or replaces (server-side apply) a ConfigMap with exactly `data`
/// and `annotations`.
pub async fn put_config_map_annotated(
    client: &kube::Client,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
    annotations: &[(&str, &str)],
) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "annotations": annotations},
        "data": data,
    });
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(body),
    )
    .await
    .expect("config map applied");
}

/// Creates or replaces (server-side apply) a Secret with exactly `data`.
pub async fn put_secret(client: &kube::Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let engine = base64::engine::general_purpose::STANDARD;
    let data: BTreeMap<&str, String> = data.iter().map(|(k, v)| (*k, engine.encode(v))).collect();
    let body = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "data": data,
    });
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(body),
    )
    .await
    .expect("secret applied");
}

/// Creates or replaces a source of `kind` with exactly `data`.
pub async fn put_source(
    client: &kube::Client,
    kind: SourceKind,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
) {
    match kind {
        SourceKind::ConfigMap => put_config_map(client, ns, name, data).await,
        SourceKind::Secret => put_secret(client, ns, name, data).await,
        SourceKind::SecretProviderClass => unimplemented!("no CSI driver here"),
    }
}

pub async fn delete_config_map(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.delete(name, &DeleteParams::default())
        .await
        .expect("config map deleted");
}

/// Sets a label on a ConfigMap: a metadata-only change.
pub async fn label_config_map(client: &kube::Client, ns: &str, name: &str, label: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let body = json!({"metadata": {"labels": {label: "x"}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .expect("label set");
}

/// The keyed marker the operator writes for `data` of a source, given the keys
/// the workload uses.
pub fn keyed_marker(
    key: &MarkerKey,
    kind: SourceKind,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
    used: KeyUse,
) -> String {
    let digests = KeyDigests::new(data.iter().map(|(k, v)| (*k, v.as_bytes())));
    marker(key, &SourceId::new(kind, ns, name), &digests, &used)
}

/// Only these keys.
pub fn keys(names: &[&str]) -> KeyUse {
    KeyUse::Keys(names.iter().map(|n| (*n).to_owned()).collect())
}

// ---- workloads ---------------------------------------------------------------

/// The workload kinds the operator rolls, as this test suite creates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    DaemonSet,
    StatefulSet,
    CronJob,
    Job,
}

impl Kind {
    fn resource(self, cluster: &Cluster) -> ApiResource {
        let apps = |kind: &str, plural: &str| {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("apps", "v1", kind), plural)
        };
        match self {
            Kind::Deployment => apps("Deployment", "deployments"),
            Kind::DaemonSet => apps("DaemonSet", "daemonsets"),
            Kind::StatefulSet => apps("StatefulSet", "statefulsets"),
            Kind::CronJob => cluster.cron_jobs.clone(),
            Kind::Job => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("batch", "v1", "Job"),
                "jobs",
            ),
        }
    }

    /// Where the pod template is in the object.
    fn template_pointer(self) -> &'static str {
        match self {
            Kind::CronJob => "/spec/jobTemplate/spec/template",
            _ => "/spec/template",
        }
    }
}

/// A workload to create: by default one container `app` and no annotations.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: Kind,
    pub name: String,
    pub annotations: Value,
    pub template_annotations: Value,
    pub pod: Value,
    pub suspend: bool,
}

/// A workload of `kind` named `name`.
pub fn workload(kind: Kind, name: &str) -> Workload {
    Workload {
        kind,
        name: name.to_owned(),
        annotations: json!({}),
        template_annotations: json!({}),
        pod: json!({"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}),
        suspend: false,
    }
}

/// A Deployment named `name`.
pub fn deployment(name: &str) -> Workload {
    workload(Kind::Deployment, name)
}

/// One container `name` with `extra` fields (`env`, `envFrom`,
/// `volumeMounts`…).
pub fn container(name: &str, extra: Value) -> Value {
    let mut c = json!({"name": name, "image": "registry.invalid/app:1"});
    merge(&mut c, extra);
    c
}

/// `envFrom` of a whole ConfigMap.
pub fn env_from_config_map(name: &str) -> Value {
    json!({"envFrom": [{"configMapRef": {"name": name, "optional": true}}]})
}

/// `envFrom` of a whole Secret.
pub fn env_from_secret(name: &str) -> Value {
    json!({"envFrom": [{"secretRef": {"name": name, "optional": true}}]})
}

impl Workload {
    /// Metadata annotations.
    pub fn annotations(mut self, annotations: Value) -> Self {
        self.annotations = annotations;
        self
    }

    /// `reloader.stakater.com/auto: "true"`.
    pub fn auto(self) -> Self {
        self.annotations(json!({"reloader.stakater.com/auto": "true"}))
    }

    /// Pod template annotations.
    pub fn template_annotations(mut self, annotations: Value) -> Self {
        self.template_annotations = annotations;
        self
    }

    /// Fields of the pod spec (each replaces the default's field of that name).
    pub fn pod(mut self, pod: Value) -> Self {
        merge(&mut self.pod, pod);
        self
    }

    /// A single container `app` with `extra` fields.
    pub fn app(self, extra: Value) -> Self {
        self.pod(json!({"containers": [container("app", extra)]}))
    }

    /// A suspended CronJob.
    pub fn suspended(mut self) -> Self {
        self.suspend = true;
        self
    }

    fn manifest(&self, cluster: &Cluster, ns: &str) -> Value {
        let name = &self.name;
        let labels = json!({"app": name});
        let mut pod = self.pod.clone();
        if matches!(self.kind, Kind::Job | Kind::CronJob) && pod.get("restartPolicy").is_none() {
            pod["restartPolicy"] = "Never".into();
        }
        let template = json!({
            "metadata": {"labels": labels, "annotations": self.template_annotations},
            "spec": pod,
        });
        let selector = json!({"matchLabels": labels});
        let spec = match self.kind {
            Kind::Deployment => json!({"replicas": 1, "selector": selector, "template": template}),
            Kind::DaemonSet => json!({"selector": selector, "template": template}),
            Kind::StatefulSet => json!({
                "replicas": 1, "serviceName": name, "selector": selector, "template": template,
            }),
            Kind::Job => json!({"template": template}),
            Kind::CronJob => json!({
                // Yearly: the CronJob controller never fires during a test.
                "schedule": "0 0 1 1 *",
                "suspend": self.suspend,
                "jobTemplate": {"metadata": {"labels": labels}, "spec": {"template": template}},
            }),
        };
        let resource = self.kind.resource(cluster);
        json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, "namespace": ns, "annotations": self.annotations},
            "spec": spec,
        })
    }

    /// Creates the workload in `ns`.
    pub async fn create(&self, cluster: &Cluster, ns: &str) {
        let resource = self.kind.resource(cluster);
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), ns, &resource);
        let object: DynamicObject =
            serde_json::from_value(self.manifest(cluster, ns)).expect("workload");
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("creating {:?} {}: {e}", self.kind, self.name));
    }
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

/// A workload as JSON, if it exists.
pub async fn get_workload(cluster: &Cluster, kind: Kind, ns: &str, name: &str) -> Option<Value> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), ns, &kind.resource(cluster));
    let object = api.get_opt(name).await.expect("get workload")?;
    Some(serde_json::to_value(object).expect("json"))
}

async fn get_existing(cluster: &Cluster, kind: Kind, ns: &str, name: &str) -> Value {
    get_workload(cluster, kind, ns, name)
        .await
        .unwrap_or_else(|| panic!("{kind:?} {ns}/{name} exists"))
}

/// Every `STAKATER_*` variable on the workload's regular containers, as
/// `(container, variable) → value`.
pub fn markers_of(kind: Kind, object: &Value) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let template = object
        .pointer(kind.template_pointer())
        .cloned()
        .unwrap_or_default();
    for c in template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or_default();
            if name.starts_with("STAKATER_") {
                out.insert(
                    (
                        c["name"].as_str().unwrap_or_default().to_owned(),
                        name.to_owned(),
                    ),
                    e["value"].as_str().unwrap_or_default().to_owned(),
                );
            }
        }
    }
    out
}

/// [`markers_of`] the workload as it is now.
pub async fn markers(
    cluster: &Cluster,
    kind: Kind,
    ns: &str,
    name: &str,
) -> BTreeMap<(String, String), String> {
    markers_of(kind, &get_existing(cluster, kind, ns, name).await)
}

/// `[(container, variable, value)]` as a marker map, for comparisons.
pub fn marker_map(entries: &[(&str, &str, &str)]) -> BTreeMap<(String, String), String> {
    entries
        .iter()
        .map(|(c, v, value)| (((*c).to_owned(), (*v).to_owned()), (*value).to_owned()))
        .collect()
}

/// The value of env var `var` of container `container` in the pod template.
pub async fn env_of(
    cluster: &Cluster,
    kind: Kind,
    ns: &str,
    name: &str,
    container: &str,
    var: &str,
) -> Option<String> {
    let object = get_workload(cluster, kind, ns, name).await?;
    markers_of(kind, &object).remove(&(container.to_owned(), var.to_owned()))
}

/// Waits until container `container` of the workload carries `var` = `value`.
pub async fn wait_marker(
    cluster: &Cluster,
    kind: Kind,
    ns: &str,
    name: &str,
    container: &str,
    var: &str,
    value: &str,
) {
    eventually(&format!("{var}={value} on {name}/{container}"), || async {
        (env_of(cluster, kind, ns, name, container, var)
            .await
            .as_deref()
            == Some(value))
        .then_some(())
    })
    .await;
}

/// A pod-template annotation.
pub async fn template_annotation(
    cluster: &Cluster,
    kind: Kind,
    ns: &str,
    name: &str,
    key: &str,
) -> Option<String> {
    let object = get_workload(cluster, kind, ns, name).await?;
    let pointer = format!("{}/metadata/annotations", kind.template_pointer());
    object
        .pointer(&pointer)?
        .get(key)?
        .as_str()
        .map(str::to_owned)
}

/// `metadata.generation`: bumped by every change of the spec, so after
/// creation it counts the rollouts (template patches) made.
pub async fn generation(cluster: &Cluster, kind: Kind, ns: &str, name: &str) -> i64 {
    get_existing(cluster, kind, ns, name).await["metadata"]["generation"]
        .as_i64()
        .expect("generation")
}

pub async fn uid(cluster: &Cluster, kind: Kind, ns: &str, name: &str) -> Option<String> {
    let object = get_workload(cluster, kind, ns, name).await?;
    object["metadata"]["uid"].as_str().map(str::to_owned)
}

/// A Deployment with one container `app`, its metadata annotated and `spec`
/// merged into the pod spec.
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

/// The ReplicaSets of `deployment` once the Deployment controller has seen its
/// latest spec (`status.observedGeneration == metadata.generation`): every
/// ReplicaSet it will make for what the operator wrote so far exists.
pub async fn settled_replica_sets(client: &kube::Client, ns: &str, deployment: &str) -> usize {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("the Deployment controller to observe {deployment}"),
        || async {
            let d = api.get(deployment).await.ok()?;
            let observed = d.status.as_ref()?.observed_generation?;
            (Some(observed) == d.metadata.generation).then_some(())
        },
    )
    .await;
    replica_sets(client, ns, deployment).await
}

/// ControllerRevisions labelled `app=<name>` (DaemonSets and StatefulSets
/// make one per distinct pod template).
pub async fn controller_revisions(client: &kube::Client, ns: &str, app: &str) -> usize {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list controller revisions")
        .items
        .len()
}

/// The Jobs whose controller owner reference is `owner_uid`.
pub async fn jobs_owned_by(client: &kube::Client, ns: &str, owner_uid: &str) -> Vec<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("list jobs")
        .items
        .into_iter()
        .filter(|job| {
            job.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == owner_uid && o.controller == Some(true))
        })
        .collect()
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

// ---- barriers ----------------------------------------------------------------

/// Proves that the operator handled every earlier event of one watch stream
/// (ConfigMaps or Secrets): a later change on the same stream is rolled, and
/// events of one stream are handled in order.
///
/// One round is two rollouts of two fresh Deployments, the second changed only
/// after the first was seen rolled. The operator handles messages, then
/// performs the rollouts due, one batch at a time: a workload wrongly queued
/// before the round was due no later than the first barrier Deployment (which
/// also uses two sources, so it waits the same gather window), so it was in
/// the same batch or an earlier one, and the second rollout comes from a
/// later batch. After a round, what has not happened will not happen unless
/// it is still pending ([`Operator::assert_idle`]).
///
/// The Deployments are created by [`Barrier::create`] before the operator
/// starts, so that the operator knows them from its first list: a Deployment
/// created later reaches the operator on another stream, in no set order
/// with the change.
/// The rollouts one barrier round makes.
pub const BARRIER_ROUND: u64 = 2;

pub struct Barrier {
    kind: SourceKind,
    ns: String,
    rounds: usize,
    next: usize,
}

impl Barrier {
    /// Makes `rounds` rounds' worth of barrier Deployments in `ns`, for
    /// changes of sources of `kind`.
    pub async fn create(cluster: &Cluster, ns: &str, kind: SourceKind, rounds: usize) -> Barrier {
        Self::create_with_auto(cluster, ns, kind, rounds, "reloader.stakater.com/auto").await
    }

    /// As [`Barrier::create`], for an operator that reads `auto` under another
    /// name (`--auto-annotation`).
    pub async fn create_with_auto(
        cluster: &Cluster,
        ns: &str,
        kind: SourceKind,
        rounds: usize,
        auto: &str,
    ) -> Barrier {
        let barrier = Barrier {
            kind,
            ns: ns.to_owned(),
            rounds,
            next: 0,
        };
        for i in 0..rounds * 2 {
            let name = barrier.name(i);
            put_source(&cluster.client, kind, ns, &name, &[("round", "0")]).await;
            let own = match kind {
                SourceKind::ConfigMap => json!({"configMapRef": {"name": name}}),
                _ => json!({"secretRef": {"name": name}}),
            };
            deployment(&name)
                .annotations(json!({ auto: "true" }))
                .app(json!({"envFrom": [
                    own,
                    // Never created: only there so the barrier uses two sources.
                    {"configMapRef": {"name": "barrier-absent", "optional": true}},
                ]}))
                .create(cluster, ns)
                .await;
        }
        barrier
    }

    fn name(&self, i: usize) -> String {
        let kind = match self.kind {
            SourceKind::ConfigMap => "cm",
            _ => "secret",
        };
        format!("barrier-{kind}-{i}")
    }

    /// Passes one round (see the type's documentation).
    pub async fn pass(&mut self, cluster: &Cluster) {
        assert!(
            self.next < self.rounds,
            "no barrier round left: create more"
        );
        for i in [self.next * 2, self.next * 2 + 1] {
            let name = self.name(i);
            put_source(
                &cluster.client,
                self.kind,
                &self.ns,
                &name,
                &[("round", "1")],
            )
            .await;
            eventually(&format!("barrier {name} to roll"), || async {
                (generation(cluster, Kind::Deployment, &self.ns, &name).await == 2).then_some(())
            })
            .await;
        }
        self.next += 1;
    }

    /// Rollouts made by the rounds passed so far.
    pub fn rollouts(&self) -> u64 {
        self.next as u64 * BARRIER_ROUND
    }
}
