//! The API objects `status` reads, decoded only as far as it looks into them.
//!
//! Why not k8s-openapi's `Deployment`, `StatefulSet`, `DaemonSet` and `Pod`: decoding
//! those links serde code for every field they have (probes, affinity, resources,
//! security contexts, claim templates, conditions, …) and a watcher per type, about a
//! megabyte of the `rekindle` binary, for a command that reads a dozen fields. Here
//! the three workload kinds share one type, and a pod's spec keeps its volumes and,
//! of each container, its environment and mounts; everything else in the JSON is
//! skipped unread. What is kept is converted to k8s-openapi's own types, so the rules
//! that read it (`rekindle::fleet::volume`, [`super::workload::references`]) are the
//! ones the operator uses on whole objects.
//!
//! Pure: decoding and conversion only.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvFromSource, EnvVar, Pod, PodSpec, ProjectedVolumeSource,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ApiResource;
use kube::core::Object;
use serde::Deserialize;

use super::workload::WorkloadKind;

/// A Deployment, StatefulSet or DaemonSet, as `status` reads it.
pub type WorkloadObject = Object<WorkloadSpec, WorkloadStatus>;

/// A pod, as `status` reads it.
pub type PodObject = Object<SlimPodSpec, PodStatus>;

/// The API resource of a workload kind, for `Api::namespaced_with`.
pub fn workload_resource(kind: WorkloadKind) -> ApiResource {
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
    }
}

/// The API resource of pods.
pub fn pod_resource() -> ApiResource {
    ApiResource::erase::<Pod>(&())
}

/// `spec` of the three workload kinds: the fields they have in common.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Deployments and StatefulSets; the API defaults it to 1.
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub template: Option<Template>,
}

/// `spec.template`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Template {
    #[serde(default)]
    pub spec: Option<SlimPodSpec>,
}

/// `status`: a DaemonSet's wanted number of pods.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    #[serde(default)]
    pub desired_number_scheduled: Option<i32>,
}

/// A pod's `status`: whether it has finished.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodStatus {
    #[serde(default)]
    pub phase: Option<String>,
}

/// A pod spec's volumes and containers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodSpec {
    #[serde(default)]
    pub volumes: Vec<SlimVolume>,
    #[serde(default)]
    pub containers: Vec<SlimContainer>,
    #[serde(default)]
    pub init_containers: Vec<SlimContainer>,
}

/// A volume: its name, and its source if that is a ConfigMap, a Secret or a projection.
/// Any other source is left out, which `VolumeContent::of` reads as what it is: not
/// config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimVolume {
    pub name: String,
    #[serde(default)]
    pub config_map: Option<ConfigMapVolumeSource>,
    #[serde(default)]
    pub secret: Option<SecretVolumeSource>,
    #[serde(default)]
    pub projected: Option<ProjectedVolumeSource>,
}

/// A container's name, environment and mounts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimContainer {
    pub name: String,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub env_from: Vec<EnvFromSource>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
}

impl From<SlimPodSpec> for PodSpec {
    fn from(spec: SlimPodSpec) -> PodSpec {
        let containers = |list: Vec<SlimContainer>| -> Vec<Container> {
            list.into_iter().map(Container::from).collect()
        };
        PodSpec {
            volumes: Some(spec.volumes.into_iter().map(Volume::from).collect()),
            init_containers: Some(containers(spec.init_containers)),
            containers: containers(spec.containers),
            ..PodSpec::default()
        }
    }
}

impl From<SlimVolume> for Volume {
    fn from(volume: SlimVolume) -> Volume {
        Volume {
            name: volume.name,
            config_map: volume.config_map,
            secret: volume.secret,
            projected: volume.projected,
            ..Volume::default()
        }
    }
}

impl From<SlimContainer> for Container {
    fn from(container: SlimContainer) -> Container {
        Container {
            name: container.name,
            env: Some(container.env),
            env_from: Some(container.env_from),
            volume_mounts: Some(container.volume_mounts),
            ..Container::default()
        }
    }
}

/// The fields of a workload `status` uses, whatever its kind.
#[derive(Debug, Clone, Default)]
pub struct WorkloadParts {
    pub selector: Option<LabelSelector>,
    pub spec: Option<PodSpec>,
    /// Pods wanted; `None`: not known.
    pub desired: Option<i32>,
}

impl WorkloadParts {
    pub fn of(kind: WorkloadKind, object: &WorkloadObject) -> WorkloadParts {
        let spec = &object.spec;
        let desired = match kind {
            WorkloadKind::Deployment | WorkloadKind::StatefulSet => {
                Some(spec.replicas.unwrap_or(1))
            }
            WorkloadKind::DaemonSet => object
                .status
                .as_ref()
                .and_then(|s| s.desired_number_scheduled),
        };
        WorkloadParts {
            selector: spec.selector.clone(),
            spec: spec
                .template
                .as_ref()
                .and_then(|t| t.spec.clone())
                .map(PodSpec::from),
            desired,
        }
    }
}

/// What `status` reads of a pod.
#[derive(Debug, Clone, Default)]
pub struct PodParts {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub terminating: bool,
    pub phase: Option<String>,
    pub spec: PodSpec,
}

impl From<PodObject> for PodParts {
    fn from(pod: PodObject) -> PodParts {
        let meta = pod.metadata;
        PodParts {
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default(),
            annotations: meta.annotations.unwrap_or_default(),
            terminating: meta.deletion_timestamp.is_some(),
            phase: pod.status.and_then(|s| s.phase),
            spec: pod.spec.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rekindle::fleet::volume::{VolumeContent, mounted_at};
    use serde_json::json;

    use crate::status::workload::references;

    /// A pod using every field the slim types keep, and many they skip.
    fn mk_pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-1",
                "labels": {"app": "web"},
                "annotations": {"rekindle.io/applied": "{}"},
                "deletionTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "initContainers": [{"name": "init", "image": "busybox",
                    "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
                "containers": [{
                    "name": "app",
                    "image": "app:1",
                    "resources": {"limits": {"memory": "64Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
                    "env": [
                        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "a"}}},
                        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "envFrom": [{"configMapRef": {"name": "app"}}],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/app"},
                        {"name": "both", "mountPath": "/etc/both"},
                        {"name": "scratch", "mountPath": "/scratch"},
                        {"name": "config", "mountPath": "/etc/one", "subPath": "a"},
                    ],
                }],
                "volumes": [
                    {"name": "config", "configMap": {"name": "app", "items": [{"key": "a", "path": "a.conf"}]}},
                    {"name": "both", "projected": {"sources": [
                        {"configMap": {"name": "extra"}},
                        {"secret": {"name": "tls", "optional": true}},
                    ]}},
                    {"name": "scratch", "emptyDir": {"medium": "Memory"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                ],
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        })
    }

    #[test]
    fn a_slim_pod_spec_reads_as_the_whole_one_does() {
        let whole: Pod = serde_json::from_value(mk_pod_json()).expect("whole pod");
        let whole_spec = whole.spec.expect("spec");
        let slim: PodObject = serde_json::from_value(mk_pod_json()).expect("slim pod");
        let parts = PodParts::from(slim);
        assert_eq!(references(&parts.spec), references(&whole_spec));
        for path in ["/etc/app", "/etc/both", "/scratch", "/etc/one", "/nowhere"] {
            let content = |spec: &PodSpec| {
                mounted_at(spec, path)
                    .map(VolumeContent::of)
                    .map_err(|e| e.to_string())
            };
            assert_eq!(content(&parts.spec), content(&whole_spec), "{path}");
        }
        assert_eq!(parts.name, "web-1");
        assert_eq!(parts.labels.get("app").map(String::as_str), Some("web"));
        assert!(parts.annotations.contains_key("rekindle.io/applied"));
        assert!(parts.terminating);
        assert_eq!(parts.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn every_workload_kind_reads_its_selector_template_and_wanted_pods() {
        let template =
            json!({"metadata": {"labels": {"app": "web"}}, "spec": mk_pod_json()["spec"]});
        let read = |kind: WorkloadKind, body: serde_json::Value| {
            let object: WorkloadObject = serde_json::from_value(body).expect("workload");
            WorkloadParts::of(kind, &object)
        };
        let deployment = read(
            WorkloadKind::Deployment,
            json!({"metadata": {"name": "web"}, "spec": {
                "replicas": 3, "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app": "web"}}, "template": template}}),
        );
        assert_eq!(deployment.desired, Some(3));
        let whole: PodSpec = serde_json::from_value(mk_pod_json()["spec"].clone()).expect("spec");
        assert_eq!(
            references(deployment.spec.as_ref().expect("template spec")),
            references(&whole)
        );
        assert_eq!(
            deployment.selector.and_then(|s| s.match_labels),
            Some([("app".to_owned(), "web".to_owned())].into())
        );
        // The API defaults replicas to 1; a StatefulSet's claim templates are skipped.
        let stateful = read(
            WorkloadKind::StatefulSet,
            json!({"metadata": {"name": "db"}, "spec": {
                "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
                "template": template}}),
        );
        assert_eq!(stateful.desired, Some(1));
        // A DaemonSet wants what its status says; before the controller has written
        // it, not known.
        let daemon = |status: serde_json::Value| {
            read(
                WorkloadKind::DaemonSet,
                json!({"metadata": {"name": "agent"}, "spec": {
                    "selector": {"matchLabels": {"app": "agent"}}, "template": template},
                    "status": status}),
            )
        };
        let status = json!({"desiredNumberScheduled": 4, "currentNumberScheduled": 2,
            "numberMisscheduled": 0, "numberReady": 2});
        assert_eq!(daemon(status).desired, Some(4));
        assert_eq!(daemon(json!({})).desired, None);
    }
}
