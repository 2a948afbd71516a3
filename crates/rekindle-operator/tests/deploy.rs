//! The shipped deployment manifests (`deploy/`): the Kustomize base, its
//! overlays and component, and the Helm chart.
//!
//! - Every file, every `kubectl kustomize` output and the chart rendered with
//!   default and non-default values pass `kubectl apply --dry-run=server` on
//!   the real control plane (the PodMonitor against a minimal CRD made here:
//!   1.20 has none).
//! - `helm lint --strict` passes, and values that cannot run fail the render.
//! - The operator accepts what each rendering passes it (arguments and
//!   environment, through its own `Settings::from_args`), and each value
//!   reaches the setting it names.
//! - The chart grants exactly the base's rules (and the namespaced overlay's).
//! - Installed for real (`helm install`, `kubectl apply -k`), each gives the
//!   operator enough: the operator runs as a host process with the installed
//!   Deployment's arguments and environment and a token of the installed
//!   ServiceAccount, and a ConfigMap change rolls a Deployment.
//!
//! helm and kubectl come from `scripts/provision-helm.sh`
//! (`rekindle_testenv::tools`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use clap::Parser as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use rekindle_operator::cli::{
    Args, Env, HashMode, LogFormat, NamespaceScope, ReloadStrategy, Settings,
};
use rekindle_operator::model::{SourceKind, WorkloadKind};
use rekindle_testenv::{ControlPlane, tools};
use serde_json::{Value, json};
use support::*;

const CHART: &str = "deploy/helm/rekindle-operator";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

// ---- tools -------------------------------------------------------------------

fn helm() -> Command {
    Command::new(tools::helm().unwrap_or_else(|e| panic!("{e}")))
}

fn kubectl() -> Command {
    Command::new(tools::kubectl().unwrap_or_else(|e| panic!("{e}")))
}

/// Runs `command` with `stdin`, returning its output whatever its status.
fn output(command: &mut Command, stdin: &str) -> Output {
    command
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Runs `command` and returns its stdout; panics with its output on failure.
fn run(command: &mut Command, stdin: &str) -> String {
    let out = output(command, stdin);
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("rendered YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

// ---- renderings --------------------------------------------------------------

/// `kubectl kustomize` of a directory of the repository.
fn kustomize(dir: &str) -> String {
    run(kubectl().args(["kustomize", dir]), "")
}

/// `kubectl kustomize` of a kustomization written here (to combine the base
/// with the PodMonitor component, or to move it to another namespace); `ROOT`
/// in it stands for the repository.
fn kustomize_text(kustomization: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = kustomization.replace("ROOT", &up_to_root(dir.path()));
    std::fs::write(dir.path().join("kustomization.yaml"), text).expect("write");
    run(kubectl().arg("kustomize").arg(dir.path()), "")
}

/// The repository root as a path relative to `dir`: kustomize takes only
/// relative paths to other kustomizations.
fn up_to_root(dir: &Path) -> String {
    let dir = dir.canonicalize().expect("temp dir");
    let ups = "../".repeat(dir.components().count() - 1);
    let root = repo_root();
    format!(
        "{ups}{}",
        root.strip_prefix("/").expect("absolute").display()
    )
}

/// A kustomization over the repository's `deploy/operator/<paths>`.
fn over(resources: &[&str], components: &[&str], extra: &str) -> String {
    let list = |key: &str, paths: &[&str]| {
        if paths.is_empty() {
            return String::new();
        }
        let items: String = paths
            .iter()
            .map(|p| format!("  - ROOT/deploy/operator/{p}\n"))
            .collect();
        format!("{key}:\n{items}")
    };
    format!(
        "{extra}{}{}",
        list("resources", resources),
        list("components", components)
    )
}

/// Named sets of chart values, beside the defaults: every option of the
/// values table is set to something other than its default in one of them.
const VALUE_SETS: &[(&str, &str)] = &[
    ("defaults", ""),
    ("one namespace", "reloader:\n  watchGlobally: false\n"),
    (
        "listed namespaces",
        "reloader:\n  watchGlobally: false\nrekindle:\n  namespaces: [apps, web]\n",
    ),
    (
        "reloader namespaces",
        "reloader:\n  watchGlobally: false\n  namespaces: \"apps, web\"\n",
    ),
    (
        "ha",
        "reloader:\n  enableHA: true\n  deployment:\n    replicas: 2\n",
    ),
    (
        "options",
        r#"
reloader:
  namespaceSelector: "team=a"
  ignoreNamespaces: "kube-system,kube-public"
  resourceLabelSelector: "reload=yes"
  ignoreSecrets: true
  ignoreJobs: true
  ignoreCronJobs: true
  isArgoRollouts: true
  reloadOnCreate: true
  reloadOnDelete: true
  syncAfterRestart: true
  autoReloadAll: true
  reloadStrategy: annotations
  logFormat: json
  logLevel: debug
  enableMetricsByNamespace: true
  webhookUrl: "http://hooks.example.invalid/reload"
  enableCSIIntegration: true
  custom_annotations:
    auto: example.com/auto
    configmap: example.com/configmaps
    pauseTime: example.com/paused-at
rekindle:
  cooldown: 30s
  hash: reloader-sha1
  hashKeySecret: my-key
  leaseName: my-lock
  extraEnv:
    - name: ALERT_ADDITIONAL_INFO
      value: staging
"#,
    ),
    (
        "scheduling",
        r#"
global:
  imagePullSecrets: [{name: registry}]
image:
  repository: registry.example.invalid/rekindle-operator
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
reloader:
  ignoreConfigMaps: true
  deployment:
    annotations: {team: platform}
    labels: {tier: ops}
    pod: {annotations: {scrape: "yes"}}
    nodeSelector: {disktype: ssd}
    tolerations:
      - {key: dedicated, operator: Equal, value: ops, effect: NoSchedule}
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
            - matchExpressions:
                - {key: kubernetes.io/arch, operator: In, values: [amd64]}
    topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector: {matchLabels: {app.kubernetes.io/name: rekindle-operator}}
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {cpu: 500m, memory: 256Mi}
  serviceAccount:
    annotations: {owner: platform}
rekindle:
  extraArgs: ["--namespaces-to-ignore=kube-system"]
  service:
    port: 9191
"#,
    ),
    (
        "podmonitor",
        "reloader:\n  podMonitor:\n    enabled: true\n    interval: 30s\n    scrapeTimeout: 10s\n    labels: {release: prometheus}\n",
    ),
    (
        "existing account, no rbac",
        "reloader:\n  rbac:\n    enabled: false\n  serviceAccount:\n    create: false\n    name: existing\n",
    ),
];

fn values(set: &str) -> &'static str {
    VALUE_SETS
        .iter()
        .find(|(name, _)| *name == set)
        .unwrap_or_else(|| panic!("no value set {set:?}"))
        .1
}

/// `helm template rk <chart> -n <namespace> -f <values>`.
fn helm_template(namespace: &str, values: &str) -> String {
    run(
        helm().args([
            "template",
            "rk",
            CHART,
            "--namespace",
            namespace,
            "--values",
            "-",
        ]),
        values,
    )
}

/// The namespaces a rendering's objects go to (to create them first).
fn namespaces_of(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter_map(|d| d["metadata"]["namespace"].as_str())
        .map(str::to_owned)
        .collect()
}

// ---- the operator's view of a Deployment --------------------------------------

/// The arguments and environment the Deployment gives its container, with
/// downward-API fields resolved as the kubelet would for a pod `pod_name`.
fn container_command(deployment: &Value, pod_name: &str) -> (Vec<String>, Vec<(String, String)>) {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    let container = &containers[0];
    let args = container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("string argument").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .expect("namespace");
    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("name").to_owned();
        let value = if let Some(value) = var["value"].as_str() {
            value.to_owned()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => namespace.to_owned(),
                Some("metadata.name") => pod_name.to_owned(),
                other => panic!("{name}: unexpected source {other:?}: {var}"),
            }
        };
        env.push((name, value));
    }
    (args, env)
}

/// The operator's settings for what the Deployment runs, as a pod named
/// `pod_name` would get them. Panics when the operator would refuse them or
/// warn about them.
fn settings_of(deployment: &Value, pod_name: &str) -> Settings {
    let (args, env) = container_command(deployment, pod_name);
    let parsed =
        Args::try_parse_from(std::iter::once("rekindle-operator".to_owned()).chain(args.clone()))
            .unwrap_or_else(|e| panic!("the operator refuses {args:?}: {e}"));
    let env_map: BTreeMap<String, String> = env.into_iter().collect();
    let settings = Settings::from_args(&parsed, &Env::from_lookup(|k| env_map.get(k).cloned()))
        .unwrap_or_else(|e| panic!("the operator refuses {args:?} with {env_map:?}: {e}"));
    assert!(
        settings.warnings.is_empty(),
        "{args:?}: {:?}",
        settings.warnings
    );
    settings
}

fn deployment_in(docs: &[Value]) -> &Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(found.len(), 1, "one Deployment");
    found[0]
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

// ---- RBAC --------------------------------------------------------------------

/// A role's rules, each with its lists sorted, as a set.
fn rules(role: &Value) -> BTreeSet<String> {
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| {
            let sorted = |key: &str| {
                let mut items: Vec<String> = rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().expect("string").to_owned())
                    .collect();
                items.sort();
                items
            };
            json!({
                "apiGroups": sorted("apiGroups"),
                "resources": sorted("resources"),
                "resourceNames": sorted("resourceNames"),
                "verbs": sorted("verbs"),
            })
            .to_string()
        })
        .collect()
}

/// `kind/name-suffix` → rules, with the release or base name prefix removed
/// (`rk-rekindle-operator-self` and `rekindle-operator-self` are both `-self`),
/// and the namespaces of Roles left out.
fn rbac_summary(docs: &[Value], prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    docs.iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .map(|d| {
            let name = d["metadata"]["name"].as_str().expect("name");
            let suffix = name
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{name}"));
            (
                format!("{}/{suffix}", d["kind"].as_str().expect("kind")),
                rules(d),
            )
        })
        .collect()
}

/// Every binding's role and subjects, with name prefixes removed as in
/// [`rbac_summary`].
fn bindings(docs: &[Value], prefix: &str, namespace: &str) -> BTreeSet<String> {
    docs.iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
        .map(|d| {
            let strip = |v: &Value| {
                v.as_str()
                    .expect("name")
                    .strip_prefix(prefix)
                    .expect("prefixed")
                    .to_owned()
            };
            for subject in d["subjects"].as_array().expect("subjects") {
                assert_eq!(subject["kind"], "ServiceAccount", "{d}");
                assert_eq!(subject["namespace"], namespace, "{d}");
            }
            format!(
                "{}/{} -> {}/{} for {:?}",
                d["kind"].as_str().expect("kind"),
                strip(&d["metadata"]["name"]),
                d["roleRef"]["kind"].as_str().expect("kind"),
                strip(&d["roleRef"]["name"]),
                d["subjects"]
                    .as_array()
                    .expect("subjects")
                    .iter()
                    .map(|s| strip(&s["name"]))
                    .collect::<Vec<_>>()
            )
        })
        .collect()
}

// ---- the control plane ---------------------------------------------------------

/// A PodMonitor CRD with no schema beyond "an object": 1.20 has no Prometheus
/// Operator, and the dry run only needs the kind to be served.
const POD_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: podmonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, listKind: PodMonitorList, plural: podmonitors, singular: podmonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

fn kubectl_on(plane: &ControlPlane) -> Command {
    let mut command = kubectl();
    command.arg("--kubeconfig").arg(plane.kubeconfig());
    command
}

fn helm_on(plane: &ControlPlane) -> Command {
    let mut command = helm();
    command.arg("--kubeconfig").arg(plane.kubeconfig());
    // helm keeps caches and its repository list under these; none of the
    // user's are wanted.
    let home = plane.dir().join("helm");
    command
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    command
}

fn create_namespaces(plane: &ControlPlane, namespaces: &BTreeSet<String>) {
    for ns in namespaces {
        let out = output(kubectl_on(plane).args(["create", "namespace", ns]), "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("AlreadyExists"),
            "creating namespace {ns}: {stderr}"
        );
    }
}

/// `kubectl apply --dry-run=server` of a rendering, after creating the
/// namespaces its objects go to (a dry run creates nothing, so a Namespace
/// in the same rendering would not exist yet for the others).
fn dry_run(plane: &ControlPlane, what: &str, yaml: &str) {
    let docs = documents(yaml);
    assert!(!docs.is_empty(), "{what}: nothing rendered");
    create_namespaces(plane, &namespaces_of(&docs));
    let out = output(
        kubectl_on(plane).args(["apply", "--dry-run=server", "--validate=true", "-f", "-"]),
        yaml,
    );
    assert!(
        out.status.success(),
        "{what} does not apply: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        applied
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count(),
        docs.len(),
        "{what}: every object is applied:\n{applied}"
    );
}

/// Every YAML file under `dir` other than kustomizations.
fn manifest_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            manifest_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        {
            out.push(path);
        }
    }
}

/// The reload every installation must be able to do: a ConfigMap used by an
/// annotated Deployment in `ns` changes, and the operator rolls it (a second
/// ReplicaSet).
async fn assert_a_change_rolls(cluster: &Cluster, operator: &Operator, ns: &str) {
    let client = &cluster.client;
    let workloads = "rekindle_operator_cached_objects{kind=\"workload\"}";
    let before = operator.metric(workloads).await;
    put_config_map(client, ns, "web-config", &[("mode", "a")]).await;
    deployment("web")
        .auto()
        .app(env_from_config_map("web-config"))
        .create(cluster, ns)
        .await;
    assert_eq!(settled_replica_sets(client, ns, "web").await, 1);
    // The Deployment reaches the operator on another watch than the change, in no
    // set order with it: change the ConfigMap once the operator holds the Deployment.
    eventually("the operator to index the Deployment", || async {
        (operator.metric(workloads).await > before).then_some(())
    })
    .await;
    put_config_map(client, ns, "web-config", &[("mode", "b")]).await;
    eventually("the Deployment to carry the reload marker", || async {
        env_of(
            cluster,
            Kind::Deployment,
            ns,
            "web",
            "app",
            "STAKATER_WEB_CONFIG_CONFIGMAP",
        )
        .await
    })
    .await;
    assert_eq!(
        settled_replica_sets(client, ns, "web").await,
        2,
        "a rollout: log:\n{}",
        operator.log_text()
    );
    operator.assert_rollouts(1).await;
}

/// Starts the operator as the installed Deployment `namespace/name` runs it,
/// authenticated as the installed ServiceAccount, as pod `pod_name`.
async fn start_installed(
    plane: ControlPlane,
    namespace: &str,
    name: &str,
    pod_name: &str,
) -> (Cluster, Operator) {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(plane.client(), namespace);
    let installed = deployments
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("the installed Deployment {namespace}/{name}: {e}"));
    let installed = serde_json::to_value(installed).expect("json");
    let account = installed["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName")
        .to_owned();
    let (args, env) = container_command(&installed, pod_name);
    let cluster = Cluster::for_account(plane, namespace, &account).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let operator = cluster.operator_with_env(&args, &env).await;
    assert_probes_answer(&installed, &operator).await;
    (cluster, operator)
}

/// The Deployment's probes ask the operator for paths it serves, on the port
/// it listens on.
async fn assert_probes_answer(deployment: &Value, operator: &Operator) {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let port = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    let listen = format!("--metrics-addr=:{}", port["containerPort"]);
    let args = container["args"].as_array().expect("args");
    assert!(args.contains(&json!(listen)), "{listen} in {args:?}");
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "metrics", "{probe}");
        let path = get["path"].as_str().expect("path");
        let url = format!("{}{path}", operator.metrics_url);
        let answer = http_get(&url).await;
        assert!(
            matches!(answer, Some((200, _))),
            "{probe} {path}: {answer:?}"
        );
    }
}

/// Asserts the restricted pod security standard and set resources on the
/// Deployment's pod.
fn assert_restricted(what: &str, deployment: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    assert_eq!(security["runAsNonRoot"], true, "{what}");
    assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{what}");
    assert!(security["capabilities"]["add"].is_null(), "{what}");
    assert_eq!(
        security["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    assert!(
        container["resources"]["requests"]["memory"].is_string()
            && container["resources"]["limits"]["memory"].is_string(),
        "{what}: memory request and limit"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert!(
            container[probe]["httpGet"]["path"].is_string(),
            "{what}: {probe}"
        );
    }
}

// ---- the tests -----------------------------------------------------------------

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh and scripts/provision-helm.sh"]
async fn every_manifest_and_rendering_passes_a_server_dry_run() {
    let plane = ControlPlane::start().await.expect("control plane");
    run(
        kubectl_on(&plane).args(["apply", "-f", "-"]),
        POD_MONITOR_CRD,
    );
    run(
        kubectl_on(&plane).args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/podmonitors.monitoring.coreos.com",
        ]),
        "",
    );

    let mut files = Vec::new();
    manifest_files(&repo_root().join("deploy/operator"), &mut files);
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        dry_run(&plane, &file.display().to_string(), &text);
    }

    for dir in ["base", "overlays/namespaced", "overlays/ha"] {
        let path = format!("deploy/operator/{dir}");
        dry_run(&plane, &path, &kustomize(&path));
    }
    for (what, kustomization) in [
        (
            "base + podmonitor",
            over(&["base"], &["components/podmonitor"], ""),
        ),
        (
            "ha + podmonitor in another namespace",
            over(
                &["overlays/ha"],
                &["components/podmonitor"],
                "namespace: tools\n",
            ),
        ),
        (
            "namespaced in another namespace",
            over(&["overlays/namespaced"], &[], "namespace: team-a\n"),
        ),
    ] {
        dry_run(&plane, what, &kustomize_text(&kustomization));
    }

    for (name, values) in VALUE_SETS {
        dry_run(
            &plane,
            &format!("the chart with {name} values"),
            &helm_template("tools", values),
        );
    }
}

#[test]
#[ignore = "needs scripts/provision-helm.sh"]
fn the_chart_lints_and_refuses_values_that_cannot_run() {
    for (name, values) in VALUE_SETS {
        let out = run(
            helm().args(["lint", "--strict", CHART, "--values", "-"]),
            values,
        );
        assert!(out.contains("0 chart(s) failed"), "{name}: {out}");
    }
    for (values, message) in [
        (
            "reloader: {ignoreSecrets: true, ignoreConfigMaps: true}",
            "cannot both be true",
        ),
        ("reloader: {reloadStrategy: restart}", "reloadStrategy"),
        ("reloader: {enableHA: \"yes\"}", "reloader.enableHA"),
        (
            "rekindle: {namespaces: [apps]}",
            "need reloader.watchGlobally=false",
        ),
        (
            "reloader: {namespaces: apps}",
            "need reloader.watchGlobally=false",
        ),
        (
            "reloader: {custom_annotations: {reload: x}}",
            "reloader.custom_annotations.reload: not one of",
        ),
        ("reloader: {isOpenshift: true}", "DeploymentConfigs"),
        (
            "rekindle: {hashKeySecret: Bad_Name}",
            "rekindle.hashKeySecret",
        ),
    ] {
        let out = output(
            helm().args(["template", "rk", CHART, "--values", "-"]),
            values,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{values} renders");
        assert!(stderr.contains(message), "{values}: {stderr}");
    }
}

#[test]
#[ignore = "needs scripts/provision-helm.sh"]
fn the_operator_accepts_what_each_rendering_passes_it() {
    // Kustomize.
    let base = settings_of(
        deployment_in(&documents(&kustomize("deploy/operator/base"))),
        "p",
    );
    assert!(
        matches!(base.scope, NamespaceScope::All { .. }),
        "{:?}",
        base.scope
    );
    assert_eq!(base.operator_namespace.as_deref(), Some("rekindle"));
    assert_eq!(base.metrics_addr.port(), 9090);
    assert_eq!(base.ha, None);
    let namespaced = settings_of(
        deployment_in(&documents(&kustomize(
            "deploy/operator/overlays/namespaced",
        ))),
        "p",
    );
    assert_eq!(namespaced.scope, NamespaceScope::Only(names(&["rekindle"])));
    let ha = settings_of(
        deployment_in(&documents(&kustomize("deploy/operator/overlays/ha"))),
        "rekindle-operator-7d9f-x2",
    );
    let lease = ha.ha.expect("--enable-ha");
    assert_eq!(lease.identity, "rekindle-operator-7d9f-x2");
    assert_eq!(lease.lease_namespace, "rekindle");

    let ha_docs = documents(&kustomize("deploy/operator/overlays/ha"));
    assert_eq!(deployment_in(&ha_docs)["spec"]["replicas"], 2);
    for dir in ["base", "overlays/namespaced", "overlays/ha"] {
        let path = format!("deploy/operator/{dir}");
        assert_restricted(&path, deployment_in(&documents(&kustomize(&path))));
    }

    // The chart, value by value.
    for (name, values) in VALUE_SETS {
        let docs = documents(&helm_template("tools", values));
        assert_restricted(name, deployment_in(&docs));
    }
    let replicas = |set: &str| {
        deployment_in(&documents(&helm_template("tools", values(set))))["spec"]["replicas"].clone()
    };
    assert_eq!(replicas("ha"), 2);
    // Without a leader, one replica whatever is asked: two would both roll.
    assert_eq!(
        deployment_in(&documents(&helm_template(
            "tools",
            "reloader:\n  deployment:\n    replicas: 3\n"
        )))["spec"]["replicas"],
        1
    );
    let chart = |set: &str| {
        let docs = documents(&helm_template("tools", values(set)));
        settings_of(deployment_in(&docs), "rk-pod")
    };
    let defaults = chart("defaults");
    assert!(
        matches!(defaults.scope, NamespaceScope::All { ref ignored, selector: None } if ignored.is_empty())
    );
    assert_eq!(defaults.operator_namespace.as_deref(), Some("tools"));
    assert_eq!(defaults.strategy, ReloadStrategy::EnvVars);
    assert_eq!(defaults.hash, HashMode::Keyed);
    assert_eq!(defaults.hash_key_secret, "rekindle-operator-hash-key");
    assert_eq!(defaults.ha, None);
    assert_eq!(defaults.metrics_addr.port(), 9090);
    assert_eq!(
        chart("one namespace").scope,
        NamespaceScope::Only(names(&["tools"]))
    );
    assert_eq!(
        chart("listed namespaces").scope,
        NamespaceScope::Only(names(&["apps", "web"]))
    );
    // Reloader's string, and the release namespace its chart adds.
    assert_eq!(
        chart("reloader namespaces").scope,
        NamespaceScope::Only(names(&["apps", "web", "tools"]))
    );
    let ha = chart("ha").ha.expect("enableHA");
    assert_eq!(
        (ha.identity.as_str(), ha.lease_namespace.as_str()),
        ("rk-pod", "tools")
    );
    assert_eq!(ha.lease_name, "stakater-reloader-lock");

    let s = chart("options");
    assert_eq!(
        s.scope,
        NamespaceScope::All {
            ignored: names(&["kube-system", "kube-public"]),
            selector: Some("team=a".into())
        }
    );
    assert_eq!(s.resource_label_selector.as_deref(), Some("reload=yes"));
    assert_eq!(
        s.sources,
        BTreeSet::from([SourceKind::ConfigMap, SourceKind::SecretProviderClass])
    );
    let overrides = &s.annotation_overrides;
    assert_eq!(overrides.auto.as_deref(), Some("example.com/auto"));
    assert_eq!(
        overrides.configmap_reload.as_deref(),
        Some("example.com/configmaps")
    );
    assert_eq!(
        overrides.paused_at.as_deref(),
        Some("example.com/paused-at")
    );
    assert_eq!(overrides.secret_reload, None);
    assert_eq!(
        s.ignored_workload_types,
        BTreeSet::from([WorkloadKind::Job, WorkloadKind::CronJob])
    );
    assert!(s.argo_rollouts && s.reload_on_create && s.reload_on_delete);
    assert!(s.sync_after_restart && s.auto_reload_all);
    assert_eq!(s.strategy, ReloadStrategy::Annotations);
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.log_level, rekindle_operator::cli::LogLevel::Debug);
    assert!(s.metrics_by_namespace);
    assert_eq!(
        s.webhook_url.as_deref(),
        Some("http://hooks.example.invalid/reload")
    );
    assert_eq!(s.cooldown, Duration::from_secs(30));
    assert_eq!(s.hash, HashMode::ReloaderSha1);
    assert_eq!(s.hash_key_secret, "my-key");
    let s = chart("scheduling");
    assert_eq!(s.sources, BTreeSet::from([SourceKind::Secret]));
    assert!(
        matches!(s.scope, NamespaceScope::All { ref ignored, .. } if *ignored == names(&["kube-system"]))
    );

    // Names the Role grants are the names the operator uses.
    let docs = documents(&helm_template("tools", values("options")));
    let own = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "rk-rekindle-operator-self")
        .expect("the operator's own Role");
    let granted: Vec<&Value> = own["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .flat_map(|r| r["resourceNames"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(granted, [&json!("my-key"), &json!("my-lock")]);
    let args = container_command(deployment_in(&docs), "p").0;
    assert!(
        args.contains(&"--lease-name=my-lock".to_owned()),
        "{args:?}"
    );
}

#[test]
#[ignore = "needs scripts/provision-helm.sh"]
fn the_chart_grants_exactly_the_kustomize_rules() {
    let base = documents(&kustomize("deploy/operator/base"));
    let chart = documents(&helm_template("rekindle", values("defaults")));
    let expected = rbac_summary(&base, "rekindle-operator");
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["ClusterRole/", "Role/-self"],
        "the base's roles"
    );
    assert_eq!(rbac_summary(&chart, "rk-rekindle-operator"), expected);
    assert_eq!(
        bindings(&chart, "rk-rekindle-operator", "rekindle"),
        bindings(&base, "rekindle-operator", "rekindle")
    );

    let namespaced = documents(&kustomize("deploy/operator/overlays/namespaced"));
    let chart = documents(&helm_template("rekindle", values("one namespace")));
    let expected = rbac_summary(&namespaced, "rekindle-operator");
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["Role/", "Role/-self"],
        "the namespaced overlay's roles"
    );
    assert_eq!(rbac_summary(&chart, "rk-rekindle-operator"), expected);
    assert_eq!(
        bindings(&chart, "rk-rekindle-operator", "rekindle"),
        bindings(&namespaced, "rekindle-operator", "rekindle")
    );
    // The watch rules are the same whether cluster-wide or per namespace,
    // except for reading namespaces (for --namespace-selector).
    let cluster_wide = &rbac_summary(&base, "rekindle-operator")["ClusterRole/"];
    let per_namespace = &rbac_summary(&namespaced, "rekindle-operator")["Role/"];
    let difference: Vec<&String> = cluster_wide.difference(per_namespace).collect();
    assert_eq!(difference.len(), 1, "{difference:?}");
    assert!(difference[0].contains("namespaces"), "{difference:?}");
    assert!(per_namespace.is_subset(cluster_wide));
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh and scripts/provision-helm.sh"]
async fn helm_install_gives_the_operator_what_it_needs_to_reload() {
    let plane = ControlPlane::start().await.expect("control plane");
    let installed = run(
        helm_on(&plane).args([
            "install",
            "rk",
            CHART,
            "--namespace",
            "tools",
            "--create-namespace",
        ]),
        "",
    );
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    assert!(
        installed.contains("installed in tools, watching every namespace."),
        "NOTES: {installed}"
    );
    let manifest = documents(&run(
        helm_on(&plane).args(["get", "manifest", "rk", "--namespace", "tools"]),
        "",
    ));
    let kinds: BTreeSet<&str> = manifest.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ])
    );
    // Each object is on the server.
    for doc in &manifest {
        let mut get = kubectl_on(&plane);
        get.args(["get", doc["kind"].as_str().expect("kind")])
            .arg(doc["metadata"]["name"].as_str().expect("name"));
        if let Some(ns) = doc["metadata"]["namespace"].as_str() {
            get.args(["--namespace", ns]);
        }
        run(&mut get, "");
    }

    // A second release, watching only two namespaces: Roles there, and no
    // cluster-wide object.
    create_namespaces(&plane, &names(&["apps", "web"]));
    let second = run(
        helm_on(&plane).args([
            "install",
            "rk2",
            CHART,
            "--namespace",
            "team",
            "--create-namespace",
            "--values",
            "-",
        ]),
        "reloader:\n  watchGlobally: false\nrekindle:\n  namespaces: [apps, web]\n",
    );
    assert!(second.contains("watching apps, web."), "NOTES: {second}");
    for ns in ["apps", "web"] {
        run(
            kubectl_on(&plane).args(["get", "role,rolebinding", "rk2-rekindle-operator", "-n", ns]),
            "",
        );
    }
    let cluster_wide = output(
        kubectl_on(&plane).args(["get", "clusterrole", "rk2-rekindle-operator"]),
        "",
    );
    assert!(!cluster_wide.status.success(), "rk2 has a ClusterRole");

    let (cluster, operator) =
        start_installed(plane, "tools", "rk-rekindle-operator", "rk-pod").await;
    assert_a_change_rolls(&cluster, &operator, "apps").await;
    // The hash key went where the chart's Role allows.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(cluster.client.clone(), "tools");
    assert!(
        secrets
            .get_opt(HASH_KEY_SECRET)
            .await
            .expect("get")
            .is_some()
    );
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh and scripts/provision-helm.sh"]
async fn the_kustomize_base_gives_the_operator_what_it_needs_to_reload() {
    let plane = ControlPlane::start().await.expect("control plane");
    run(
        kubectl_on(&plane).args(["apply", "-k", "deploy/operator/base"]),
        "",
    );
    let (cluster, operator) = start_installed(
        plane,
        "rekindle",
        "rekindle-operator",
        "rekindle-operator-0",
    )
    .await;
    create_namespace(&cluster.client, "apps").await;
    assert_a_change_rolls(&cluster, &operator, "apps").await;
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh and scripts/provision-helm.sh"]
async fn the_namespaced_overlay_reloads_in_its_namespace_with_no_cluster_permission() {
    let plane = ControlPlane::start().await.expect("control plane");
    run(
        kubectl_on(&plane).args(["apply", "-k", "deploy/operator/overlays/namespaced"]),
        "",
    );
    let (cluster, operator) = start_installed(
        plane,
        "rekindle",
        "rekindle-operator",
        "rekindle-operator-0",
    )
    .await;
    // Nothing cluster-wide.
    let token = cluster
        .plane
        .service_account_token("rekindle", "rekindle-operator")
        .await
        .expect("token");
    let as_operator = cluster
        .plane
        .client_for_token(&token)
        .await
        .expect("client");
    let everywhere: Api<ConfigMap> = Api::all(as_operator);
    let denied = everywhere.list(&ListParams::default()).await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "{denied:?}"
    );
    assert_a_change_rolls(&cluster, &operator, "rekindle").await;
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh and scripts/provision-helm.sh"]
async fn the_ha_overlay_leads_through_its_lease_and_reloads() {
    let plane = ControlPlane::start().await.expect("control plane");
    run(
        kubectl_on(&plane).args(["apply", "-k", "deploy/operator/overlays/ha"]),
        "",
    );
    let (cluster, operator) = start_installed(
        plane,
        "rekindle",
        "rekindle-operator",
        "rekindle-operator-7d9f-a",
    )
    .await;
    eventually("the replica to hold the Lease", || async {
        (cluster.lease_holder().await.as_deref() == Some("rekindle-operator-7d9f-a")).then_some(())
    })
    .await;
    create_namespace(&cluster.client, "apps").await;
    assert_a_change_rolls(&cluster, &operator, "apps").await;
}
