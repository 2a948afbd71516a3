//! The workload `rekindle status` looks at: its `KIND/NAME` on the command line, the
//! label selector of its pods, and the ConfigMaps and Secrets its pod template names.
//!
//! Pure: the decoded API objects come in, plain facts go out.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt as _};
use rekindle::api::ObjectKind;
use rekindle::fleet::volume::source_label;

use super::objects::{PodParts, WorkloadObject, WorkloadParts};

/// A `KIND/NAME` argument or a workload that is not fit to be looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// Not `KIND/NAME`.
    #[error("{0:?} is not KIND/NAME: expected deployment/NAME, statefulset/NAME or daemonset/NAME")]
    NotKindName(String),
    /// A kind other than the three.
    #[error("unsupported kind {0:?}: expected deployment, statefulset or daemonset")]
    Kind(String),
    /// A name Kubernetes would refuse.
    #[error("invalid name {0:?}: lowercase letters, digits, '-' and '.', at most 253 characters")]
    Name(String),
    /// A namespace Kubernetes would refuse.
    #[error("invalid namespace {0:?}: lowercase letters, digits and '-', at most 63 characters")]
    Namespace(String),
    /// The selector cannot be written as a label selector.
    #[error("{workload} has a selector that cannot be used: {reason}")]
    Selector { workload: String, reason: String },
    /// The selector is empty: it would select every pod of the namespace.
    #[error("{0} has an empty selector, which would select every pod of the namespace")]
    EmptySelector(String),
}

/// The three kinds of workload whose pods are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    /// `deployment`, `statefulset`, `daemonset`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        }
    }

    /// The plural resource name, as RBAC rules spell it.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::DaemonSet => "daemonsets",
        }
    }

    /// kubectl's spellings: singular, plural, short name, with or without `.apps`, any
    /// case.
    fn parse(text: &str) -> Option<WorkloadKind> {
        let lower = text.to_ascii_lowercase();
        let bare = lower.strip_suffix(".apps").unwrap_or(&lower);
        match bare {
            "deployment" | "deployments" | "deploy" => Some(WorkloadKind::Deployment),
            "statefulset" | "statefulsets" | "sts" => Some(WorkloadKind::StatefulSet),
            "daemonset" | "daemonsets" | "ds" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }
}

/// One workload, as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    /// `deployment/NAME`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// Parses `KIND/NAME` (`deployment/web`, `sts/db`, `daemonset.apps/agent`).
pub fn parse_target(text: &str) -> Result<WorkloadRef, WorkloadError> {
    let Some((kind, name)) = text.split_once('/') else {
        return Err(WorkloadError::NotKindName(text.to_owned()));
    };
    let kind = WorkloadKind::parse(kind).ok_or_else(|| WorkloadError::Kind(kind.to_owned()))?;
    if !is_dns(name, 253, true) {
        return Err(WorkloadError::Name(name.to_owned()));
    }
    Ok(WorkloadRef {
        kind,
        name: name.to_owned(),
    })
}

/// Checks `-n`: a DNS label.
pub fn parse_namespace(text: &str) -> Result<String, WorkloadError> {
    if is_dns(text, 63, false) {
        Ok(text.to_owned())
    } else {
        Err(WorkloadError::Namespace(text.to_owned()))
    }
}

/// Kubernetes' DNS-1123 label (no dots) or subdomain (dot-separated labels).
fn is_dns(text: &str, max: usize, dots: bool) -> bool {
    let label_ok = |label: &str| {
        let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        !label.is_empty()
            && label.chars().all(|c| edge(c) || c == '-')
            && label.starts_with(edge)
            && label.ends_with(edge)
    };
    !text.is_empty()
        && text.len() <= max
        && if dots {
            text.split('.').all(label_ok)
        } else {
            label_ok(text)
        }
}

/// How a pod template uses a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Use {
    /// Through a volume (`configMap`, `secret`, `projected`).
    pub volume: bool,
    /// Through environment variables (`valueFrom`, `envFrom`): read once at start, so no
    /// pod reports it.
    pub env: bool,
}

impl Use {
    /// `volume`, `env` or `volume, env`.
    pub fn describe(self) -> &'static str {
        match (self.volume, self.env) {
            (true, true) => "volume, env",
            (false, true) => "env",
            _ => "volume",
        }
    }
}

/// What `status` needs of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadFacts {
    /// Its pods' selector, for the API's `labelSelector`.
    pub selector: Selector,
    /// Every ConfigMap and Secret its pod template names (`configmap/NAME`), and how.
    pub declared: BTreeMap<String, Use>,
    /// How many pods it wants (`spec.replicas`, a DaemonSet's
    /// `status.desiredNumberScheduled`): fewer live pods are not converged, since the
    /// missing ones have reported nothing yet. `None`: not known.
    pub desired: Option<usize>,
}

impl WorkloadFacts {
    /// The facts of a workload of `workload.kind`, as read from the API.
    pub fn of(workload: &WorkloadRef, object: &WorkloadObject) -> Result<Self, WorkloadError> {
        let parts = WorkloadParts::of(workload.kind, object);
        let selector = pod_selector(workload, parts.selector.as_ref())?;
        let declared = parts.spec.as_ref().map(references).unwrap_or_default();
        Ok(WorkloadFacts {
            selector,
            declared,
            desired: parts.desired.map(|n| usize::try_from(n).unwrap_or(0)),
        })
    }
}

/// The workload's `spec.selector` (matchLabels and matchExpressions) as a label
/// selector the API filters pods with. An empty one is refused.
pub fn pod_selector(
    workload: &WorkloadRef,
    selector: Option<&LabelSelector>,
) -> Result<Selector, WorkloadError> {
    let selector: Selector = selector.cloned().unwrap_or_default().try_into().map_err(
        |e: kube::core::ParseExpressionError| WorkloadError::Selector {
            workload: workload.to_string(),
            reason: e.0,
        },
    )?;
    if selector.selects_all() {
        return Err(WorkloadError::EmptySelector(workload.to_string()));
    }
    Ok(selector)
}

/// Whether `pod` is one of the workload's running pods: selected, and neither
/// terminating nor finished (those no longer run any config).
pub fn is_live_pod(selector: &Selector, pod: &PodParts) -> bool {
    let finished = pod
        .phase
        .as_deref()
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
    selector.matches(&pod.labels) && !pod.terminating && !finished
}

/// Every ConfigMap and Secret a pod spec names: volumes (including projected ones) and
/// the environment (`valueFrom` and `envFrom`) of every container, init containers too.
pub fn references(spec: &PodSpec) -> BTreeMap<String, Use> {
    let mut out: BTreeMap<String, Use> = BTreeMap::new();
    let mut add = |kind: ObjectKind, name: &str, volume: bool| {
        let entry = out.entry(source_label(kind, name)).or_default();
        if volume {
            entry.volume = true;
        } else {
            entry.env = true;
        }
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            add(ObjectKind::ConfigMap, &cm.name, true);
        }
        if let Some(name) = volume
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
        {
            add(ObjectKind::Secret, name, true);
        }
        let projections = volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten());
        for projection in projections {
            if let Some(cm) = &projection.config_map {
                add(ObjectKind::ConfigMap, &cm.name, true);
            }
            if let Some(secret) = &projection.secret {
                add(ObjectKind::Secret, &secret.name, true);
            }
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in containers {
        for (kind, name) in env_references(container) {
            add(kind, name, false);
        }
    }
    out
}

fn env_references(container: &Container) -> Vec<(ObjectKind, &str)> {
    let mut found = Vec::new();
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(key) = &from.config_map_key_ref {
            found.push((ObjectKind::ConfigMap, key.name.as_str()));
        }
        if let Some(key) = &from.secret_key_ref {
            found.push((ObjectKind::Secret, key.name.as_str()));
        }
    }
    for from in container.env_from.iter().flatten() {
        if let Some(cm) = &from.config_map_ref {
            found.push((ObjectKind::ConfigMap, cm.name.as_str()));
        }
        if let Some(secret) = &from.secret_ref {
            found.push((ObjectKind::Secret, secret.name.as_str()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk_ref(text: &str) -> WorkloadRef {
        parse_target(text).expect(text)
    }

    fn mk_deployment(spec: serde_json::Value) -> WorkloadObject {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec}))
            .expect("deployment")
    }

    fn mk_pod(labels: serde_json::Value, extra: serde_json::Value) -> PodParts {
        let mut pod =
            json!({"metadata": {"name": "p", "labels": labels}, "spec": {"containers": []}});
        if let (Some(pod), Some(extra)) = (pod.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                pod.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value::<super::super::objects::PodObject>(pod)
            .expect("pod")
            .into()
    }

    #[test]
    fn kinds_are_spelt_as_kubectl_spells_them() {
        for text in [
            "deployment/web",
            "deployments/web",
            "deploy/web",
            "Deployment.apps/web",
        ] {
            assert_eq!(mk_ref(text).kind, WorkloadKind::Deployment, "{text}");
        }
        assert_eq!(mk_ref("sts/db").kind, WorkloadKind::StatefulSet);
        assert_eq!(mk_ref("ds/agent").kind, WorkloadKind::DaemonSet);
        assert_eq!(mk_ref("statefulset/db").to_string(), "statefulset/db");
    }

    #[test]
    fn bad_targets_say_what_is_expected() {
        let err = |text: &str| parse_target(text).expect_err(text).to_string();
        assert!(err("web").contains("KIND/NAME"));
        assert!(err("job/x").contains("unsupported kind \"job\""));
        assert!(err("deployment/Web").contains("invalid name"));
        assert!(err("deployment/").contains("invalid name"));
        assert!(err("deployment/a/b").contains("invalid name"));
        assert!(parse_namespace("apps").is_ok());
        assert!(parse_namespace("a.b").is_err());
    }

    #[test]
    fn the_selector_has_labels_and_expressions() {
        let d = mk_deployment(json!({
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                ],
            },
            "template": {"spec": {"containers": []}},
        }));
        let facts = WorkloadFacts::of(&mk_ref("deployment/web"), &d).expect("facts");
        assert_eq!(facts.desired, Some(1), "replicas defaults to 1");
        assert_eq!(
            facts.selector.to_string(),
            "app=web,tier in (edge,front),!canary"
        );
        let live = mk_pod(json!({"app": "web", "tier": "edge"}), json!({}));
        assert!(is_live_pod(&facts.selector, &live));
        let canary = mk_pod(
            json!({"app": "web", "tier": "edge", "canary": "1"}),
            json!({}),
        );
        assert!(!is_live_pod(&facts.selector, &canary));
        let done = mk_pod(
            json!({"app": "web", "tier": "front"}),
            json!({"status": {"phase": "Succeeded"}}),
        );
        assert!(!is_live_pod(&facts.selector, &done));
        let leaving = mk_pod(
            json!({"app": "web", "tier": "front"}),
            json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "front"}, "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        assert!(!is_live_pod(&facts.selector, &leaving));
    }

    #[test]
    fn an_empty_or_broken_selector_is_refused() {
        let w = mk_ref("deployment/web");
        let empty = pod_selector(&w, Some(&LabelSelector::default())).expect_err("empty");
        assert!(empty.to_string().contains("every pod"), "{empty}");
        let broken: LabelSelector =
            serde_json::from_value(json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}))
                .expect("selector");
        let error = pod_selector(&w, Some(&broken)).expect_err("operator");
        assert!(error.to_string().contains("deployment/web"), "{error}");
    }

    #[test]
    fn references_cover_volumes_projections_and_the_environment() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{
                "name": "app",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
                    {"name": "C", "value": "plain"},
                ],
                "envFrom": [{"configMapRef": {"name": "app"}}],
            }],
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
            "volumes": [
                {"name": "a", "configMap": {"name": "app"}},
                {"name": "b", "secret": {"secretName": "tls"}},
                {"name": "c", "projected": {"sources": [
                    {"configMap": {"name": "extra"}}, {"secret": {"name": "token"}},
                    {"downwardAPI": {"items": []}},
                ]}},
                {"name": "d", "emptyDir": {}},
            ],
        }))
        .expect("spec");
        let refs = references(&spec);
        let described: Vec<(String, &str)> = refs
            .iter()
            .map(|(k, u)| (k.clone(), u.describe()))
            .collect();
        assert_eq!(
            described,
            [
                ("configmap/app".to_owned(), "volume, env"),
                ("configmap/env-cm".to_owned(), "env"),
                ("configmap/extra".to_owned(), "volume"),
                ("secret/db".to_owned(), "env"),
                ("secret/init-secret".to_owned(), "env"),
                ("secret/tls".to_owned(), "volume"),
                ("secret/token".to_owned(), "volume"),
            ]
        );
    }
}
