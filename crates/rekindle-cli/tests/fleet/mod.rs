//! A workload whose pods "report" for `rekindle status`, on the real control plane:
//! a Deployment of three replicas (the real controller-manager makes its ReplicaSet
//! and pods; without a kubelet they stay Pending, which is fine), a ConfigMap it mounts
//! at /etc/app, a Secret it reads through the environment, and a decoy pod that matches
//! the selector's labels but not its expressions. Reports are written into the pods'
//! `rekindle.io/applied` annotation as `rekindle --report-pod` would, with digests
//! computed from the API objects by the library. Shared by `tests/status.rs` and the
//! `status_wait` bench.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rekindle::Digest;
use rekindle::report::{ANNOTATION, Report, Result as Outcome, SourceReport};
use rekindle_testenv::ControlPlane;
use serde_json::json;

pub const NS: &str = "shop";
pub const NEEDS: &str = "needs the control plane (scripts/provision-k8s.sh)";
pub const WITHIN: Duration = Duration::from_secs(30);
/// The label selector of the Deployment's own pods.
pub const SELECTED: &str = "app=web,tier=front";

pub struct Fleet {
    pub cluster: ControlPlane,
    pub client: kube::Client,
}

impl Fleet {
    /// The control plane, the objects, and the three pods of `deployment/web`.
    pub async fn start() -> Fleet {
        let cluster = ControlPlane::start().await.expect(NEEDS);
        let client = cluster.client();
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("namespace");
        let fleet = Fleet { cluster, client };
        fleet.put_config("info").await;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "db"},
            "stringData": {"password": "not-a-real-one"},
        }))
        .expect("secret");
        Api::<Secret>::namespaced(fleet.client.clone(), NS)
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
                },
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "front"}},
                    "spec": {
                        "containers": [{
                            "name": "app",
                            "image": "registry.invalid/web:1",
                            "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "app"}}],
                    },
                },
            },
        }))
        .expect("deployment");
        Api::<Deployment>::namespaced(fleet.client.clone(), NS)
            .create(&PostParams::default(), &deployment)
            .await
            .expect("deployment");
        // Same labels but `tier: back`: the selector's expression leaves it out.
        let decoy: Pod = serde_json::from_value(json!({
            "metadata": {"name": "decoy", "labels": {"app": "web", "tier": "back"}},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/web:1"}]},
        }))
        .expect("pod");
        Api::<Pod>::namespaced(fleet.client.clone(), NS)
            .create(&PostParams::default(), &decoy)
            .await
            .expect("decoy pod");
        fleet.wait_pods(3).await;
        fleet
    }

    /// Sets ConfigMap `app` to `LOG_LEVEL: level`; returns its digest as the API has it.
    pub async fn put_config(&self, level: &str) -> Digest {
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), NS);
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "app"},
            "data": {"LOG_LEVEL": level, "app.yaml": "port: 8080\n"},
        }))
        .expect("configmap");
        let stored = match api.get_opt("app").await.expect("get configmap") {
            Some(mut current) => {
                current.data = cm.data;
                api.replace("app", &PostParams::default(), &current)
                    .await
                    .expect("replace configmap")
            }
            None => api
                .create(&PostParams::default(), &cm)
                .await
                .expect("create configmap"),
        };
        *rekindle::api::config_map_snapshot(&stored).digest()
    }

    /// The digest of Secret `db`, as the API has it.
    pub async fn secret_digest(&self) -> Digest {
        let secret = Api::<Secret>::namespaced(self.client.clone(), NS)
            .get("db")
            .await
            .expect("secret db");
        *rekindle::api::secret_snapshot(&secret).digest()
    }

    /// The digest `LOG_LEVEL: level` would have, without writing it.
    pub fn digest_of(level: &str) -> Digest {
        *rekindle::Snapshot::from_entries([("LOG_LEVEL", level), ("app.yaml", "port: 8080\n")])
            .digest()
    }

    /// The names of the Deployment's live pods, sorted.
    pub async fn pods(&self) -> Vec<String> {
        let list = Api::<Pod>::namespaced(self.client.clone(), NS)
            .list(&ListParams::default().labels(SELECTED))
            .await
            .expect("list pods");
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect();
        names.sort();
        names
    }

    /// Waits until the Deployment has `n` live pods; returns their names.
    pub async fn wait_pods(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let names = self.pods().await;
            if names.len() == n {
                return names;
            }
            assert!(
                start.elapsed() < WITHIN,
                "{n} pods never appeared: {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes `pod`'s report: for each entry, (source name, digest, result, reason).
    pub async fn report(&self, pod: &str, entries: &[(&str, Digest, Outcome, Option<&str>)]) {
        let mut report = Report::default();
        for (via, digest, result, reason) in entries {
            report.sources.insert(
                (*via).to_owned(),
                SourceReport::now(*digest, *result, *reason),
            );
        }
        let patch = json!({"metadata": {"annotations": {ANNOTATION: report.to_json()}}});
        Api::<Pod>::namespaced(self.client.clone(), NS)
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate pod");
    }

    /// Deletes a pod (unscheduled, it goes at once; its ReplicaSet makes another).
    pub async fn delete_pod(&self, pod: &str) {
        Api::<Pod>::namespaced(self.client.clone(), NS)
            .delete(pod, &DeleteParams::default())
            .await
            .expect("delete pod");
    }

    /// Creates the objects of `deploy/rbac/status.yaml` with the RoleBinding moved to
    /// this namespace (as a Kustomize namespace transformer would), and the
    /// ServiceAccount it names; `rules` edits the ClusterRole's rules first. Returns a
    /// kubeconfig for that ServiceAccount.
    pub async fn status_identity(&self, rules: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac/status.yaml");
        let text = fs::read_to_string(&path).expect("deploy/rbac/status.yaml");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        let (mut role, mut binding) = (None, None);
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            match doc["kind"].as_str() {
                Some("ClusterRole") => role = Some(doc),
                Some("RoleBinding") => binding = Some(doc),
                other => panic!("unexpected kind {other:?} in {}", path.display()),
            }
        }
        let mut role = role.expect("a ClusterRole");
        let mut binding = binding.expect("a RoleBinding");
        rules(&mut role["rules"]);
        binding["metadata"]["namespace"] = json!(NS);
        let subject = binding["subjects"][0].clone();
        let (sa_ns, sa) = (
            subject["namespace"].as_str().expect("subject namespace"),
            subject["name"].as_str().expect("subject name"),
        );
        let namespaces = Api::<Namespace>::all(self.client.clone());
        if namespaces
            .get_opt(sa_ns)
            .await
            .expect("get namespace")
            .is_none()
        {
            let ns: Namespace =
                serde_json::from_value(json!({"metadata": {"name": sa_ns}})).expect("namespace");
            namespaces
                .create(&PostParams::default(), &ns)
                .await
                .expect("namespace");
        }
        let account: k8s_openapi::api::core::v1::ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": sa}})).expect("account");
        let accounts = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
            self.client.clone(),
            sa_ns,
        );
        if accounts.get_opt(sa).await.expect("get account").is_none() {
            accounts
                .create(&PostParams::default(), &account)
                .await
                .expect("service account");
        }
        let role: k8s_openapi::api::rbac::v1::ClusterRole =
            serde_json::from_value(role).expect("ClusterRole");
        let binding: k8s_openapi::api::rbac::v1::RoleBinding =
            serde_json::from_value(binding).expect("RoleBinding");
        let roles = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(self.client.clone());
        if let Some(old) = roles.get_opt("rekindle-status").await.expect("get role") {
            let mut role = role;
            role.metadata.resource_version = old.metadata.resource_version;
            roles
                .replace("rekindle-status", &PostParams::default(), &role)
                .await
                .expect("replace ClusterRole");
        } else {
            roles
                .create(&PostParams::default(), &role)
                .await
                .expect("ClusterRole");
            Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(self.client.clone(), NS)
                .create(&PostParams::default(), &binding)
                .await
                .expect("RoleBinding");
        }
        let token = self
            .cluster
            .service_account_token(sa_ns, sa)
            .await
            .expect("token");
        self.cluster
            .kubeconfig_for_token(&token)
            .expect("kubeconfig")
    }

    /// `rekindle status ARGS` with the admin kubeconfig, stdout and stderr in `dir`.
    pub fn status(&self, args: &[&str], dir: &Path) -> Status {
        Status::spawn(self.cluster.kubeconfig(), args, dir)
    }
}

/// A running `rekindle status`, killed on drop.
pub struct Status {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Status {
    pub fn spawn(kubeconfig: &Path, args: &[&str], dir: &Path) -> Status {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stdout = dir.join(format!("status-{n}.out"));
        let stderr = dir.join(format!("status-{n}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_rekindle"))
            .arg("status")
            .args(["-n", NS])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn rekindle status");
        Status {
            child,
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit code, if it has exited.
    pub fn exited(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .expect("try_wait")
            .map(|s| s.code().unwrap_or(-1))
    }

    /// Waits for the exit (polling every millisecond); the code and when it was seen.
    pub async fn exit(&mut self, within: Duration) -> (i32, Instant) {
        let start = Instant::now();
        loop {
            if let Some(code) = self.exited() {
                return (code, Instant::now());
            }
            assert!(
                start.elapsed() < within,
                "rekindle status did not exit in {within:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A thread that waits for the exit (blocking in `waitpid`, so the instant is taken
    /// as soon as the kernel reports it) and returns the code and that instant.
    pub fn exit_waiter(mut self) -> std::thread::JoinHandle<(i32, Instant)> {
        std::thread::spawn(move || {
            let status = self.child.wait().expect("wait");
            (status.code().unwrap_or(-1), Instant::now())
        })
    }

    /// Waits until stderr has a line containing every one of `words`; returns it.
    pub async fn wait_stderr(&mut self, words: &[&str]) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .stderr()
                .lines()
                .find(|l| words.iter().all(|w| l.contains(w)))
            {
                return line.to_owned();
            }
            if let Some(code) = self.exited() {
                panic!(
                    "rekindle status exited ({code}) before printing {words:?}; stdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < WITHIN,
                "no line with {words:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `(pod → state)` of `-o json` output.
pub fn json_states(text: &str) -> BTreeMap<String, String> {
    let value: serde_json::Value = serde_json::from_str(text).expect("status -o json is JSON");
    value["podStates"]
        .as_array()
        .expect("podStates")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_owned(),
                p["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect()
}

pub use rekindle::report::Result as Reported;
