//! API objects reduced to index entries. Called on the task that received the
//! object, which is dropped right after: this is where a ConfigMap's data is
//! hashed and let go.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::decide::annotations::{
    AnnotationNames, LAST_RELOADED_FROM, PatternCache, RELOADED_DIGESTS, RolloutStrategy,
    SourceFlags, WorkloadRules,
};
use crate::decide::digest::{
    KeyDigests, reloader_sha1_config_map, reloader_sha1_pod_status, reloader_sha1_secret,
};
use crate::decide::fleet::{Mounts, PodReportEntry, owner_workload};
use crate::decide::pause::Pause;
use crate::decide::references::TemplateRefs;
use crate::index::{PodEntry, PodId, SourceEntry, WorkloadEntry};
use crate::model::{SourceId, SourceKind, WorkloadId, WorkloadKind};

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

fn annotations(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    meta.annotations.as_ref().unwrap_or(&EMPTY)
}

fn ids(meta: &ObjectMeta) -> (String, String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
        meta.uid.clone().unwrap_or_default(),
    )
}

/// A ConfigMap's identity and entry.
pub fn config_map(object: &ConfigMap, names: &AnnotationNames) -> (SourceId, SourceEntry) {
    let (namespace, name, uid) = ids(&object.metadata);
    let data = object
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let binary = object
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()));
    let digests = KeyDigests::new(
        data.clone()
            .map(|(k, v)| (k, v.as_bytes()))
            .chain(binary.clone()),
    );
    let entry = SourceEntry {
        uid,
        flags: SourceFlags::parse(annotations(&object.metadata), names),
        digests,
        reloader_sha1: reloader_sha1_config_map(data, binary),
        digest: rekindle::api::config_map_digest(object),
    };
    (SourceId::new(SourceKind::ConfigMap, namespace, name), entry)
}

/// A Secret's identity and entry.
pub fn secret(object: &Secret, names: &AnnotationNames) -> (SourceId, SourceEntry) {
    let (namespace, name, uid) = ids(&object.metadata);
    let data = object
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()));
    let entry = SourceEntry {
        uid,
        flags: SourceFlags::parse(annotations(&object.metadata), names),
        digests: KeyDigests::new(data.clone()),
        reloader_sha1: reloader_sha1_secret(data),
        digest: rekindle::api::secret_digest(object),
    };
    (SourceId::new(SourceKind::Secret, namespace, name), entry)
}

/// A Secrets Store CSI driver SecretProviderClassPodStatus: which pod's mount it
/// describes (`namespace/name` of the status object), and the SecretProviderClass it
/// stands for, with the objects the driver mounted as its "keys" (object ID → version).
/// The driver writes one per pod and updates it when it rotates the secrets, so the
/// class changes when a status's versions do. `None` when the object has no
/// `status.secretProviderClassName`.
pub fn pod_status(
    meta: &ObjectMeta,
    status: &serde_json::Value,
) -> Option<(String, SourceId, SourceEntry)> {
    let (namespace, name, uid) = ids(meta);
    let class = status.get("secretProviderClassName")?.as_str()?;
    let mut objects: Vec<(&str, &str)> = status
        .get("objects")
        .and_then(|o| o.as_array())
        .into_iter()
        .flatten()
        .filter_map(|o| Some((o.get("id")?.as_str()?, o.get("version")?.as_str()?)))
        .collect();
    objects.sort_unstable();
    objects.dedup_by(|a, b| a.0 == b.0);
    let entry = SourceEntry {
        uid,
        // `ignore` and `match` live on the SecretProviderClass itself (see
        // `class_flags`); the reconciler sets them from there.
        flags: SourceFlags::default(),
        digests: KeyDigests::new(objects.iter().map(|(id, v)| (*id, v.as_bytes()))),
        reloader_sha1: reloader_sha1_pod_status(class, objects.iter().copied()),
        // The public digest of the mounted objects' IDs and versions (sorted above).
        digest: rekindle::Digest::of_sorted(objects.iter().map(|(id, v)| (*id, v.as_bytes()))),
    };
    Some((
        format!("{namespace}/{name}"),
        SourceId::new(SourceKind::SecretProviderClass, namespace, class),
        entry,
    ))
}

/// A SecretProviderClass's own `ignore` and `match` annotations: Reloader reads them
/// from the class when one of its pod statuses changes.
pub fn class_flags(meta: &ObjectMeta, names: &AnnotationNames) -> (SourceId, SourceFlags) {
    let (namespace, name, _) = ids(meta);
    let flags = SourceFlags::parse(annotations(meta), names);
    (
        SourceId::new(SourceKind::SecretProviderClass, namespace, name),
        flags,
    )
}

/// A pod, from its metadata alone: its identity, and its entry if it counts for the
/// fleet view (owned by a Deployment, StatefulSet or DaemonSet, and not terminating).
pub fn pod(meta: &ObjectMeta) -> (PodId, Option<PodEntry>) {
    let id = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    if meta.deletion_timestamp.is_some() {
        return (id, None);
    }
    let entry = owner_workload(meta).map(|workload| PodEntry {
        workload,
        report: PodReportEntry::from_meta(meta),
    });
    (id, entry)
}

/// The settings that shape a workload entry.
#[derive(Debug, Clone, Default)]
pub struct WorkloadSettings {
    pub names: AnnotationNames,
    pub csi_enabled: bool,
    /// Compiled named-list items, shared by every workload stream (clones share it).
    pub patterns: Arc<Mutex<PatternCache>>,
}

fn workload(
    kind: WorkloadKind,
    meta: &ObjectMeta,
    template: Option<&PodTemplateSpec>,
    settings: &WorkloadSettings,
) -> (WorkloadId, WorkloadEntry) {
    let (namespace, name, uid) = ids(meta);
    let template_meta = template.and_then(|t| t.metadata.as_ref());
    let template_annotations = template_meta.map_or(&EMPTY, annotations);
    let spec = template.and_then(|t| t.spec.as_ref());
    let refs = spec
        .map(|spec| TemplateRefs::from_pod_spec(spec, settings.csi_enabled))
        .unwrap_or_default();
    let mounts = spec.map(Mounts::from_pod_spec).unwrap_or_default();
    let entry = WorkloadEntry {
        uid,
        rules: WorkloadRules::parse_cached(
            annotations(meta),
            template_annotations,
            &settings.names,
            // A panic elsewhere while holding the lock leaves a cache that is still
            // consistent: every entry is inserted whole.
            &mut settings
                .patterns
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ),
        refs,
        reloaded_from: template_annotations.get(LAST_RELOADED_FROM).cloned(),
        reloaded_digests: template_annotations.get(RELOADED_DIGESTS).cloned(),
        suspended: false,
        rollout_strategy: RolloutStrategy::from_annotations(annotations(meta)),
        pause: None,
        mounts,
    };
    (WorkloadId::new(kind, namespace, name), entry)
}

pub fn deployment(object: &Deployment, settings: &WorkloadSettings) -> (WorkloadId, WorkloadEntry) {
    let template = object.spec.as_ref().map(|s| &s.template);
    let (id, mut entry) = workload(
        WorkloadKind::Deployment,
        &object.metadata,
        template,
        settings,
    );
    entry.pause = Pause::from_annotations(
        annotations(&object.metadata),
        &settings.names.pause_period,
        &settings.names.paused_at,
    );
    (id, entry)
}

pub fn daemon_set(object: &DaemonSet, settings: &WorkloadSettings) -> (WorkloadId, WorkloadEntry) {
    let template = object.spec.as_ref().map(|s| &s.template);
    workload(
        WorkloadKind::DaemonSet,
        &object.metadata,
        template,
        settings,
    )
}

pub fn stateful_set(
    object: &StatefulSet,
    settings: &WorkloadSettings,
) -> (WorkloadId, WorkloadEntry) {
    let template = object.spec.as_ref().map(|s| &s.template);
    workload(
        WorkloadKind::StatefulSet,
        &object.metadata,
        template,
        settings,
    )
}

pub fn job(object: &Job, settings: &WorkloadSettings) -> (WorkloadId, WorkloadEntry) {
    let template = object.spec.as_ref().map(|s| &s.template);
    workload(WorkloadKind::Job, &object.metadata, template, settings)
}

/// A CronJob read through the dynamic API (whatever batch version the server
/// serves: batch/v1beta1 before Kubernetes 1.21) as the typed batch/v1 struct;
/// the fields the operator reads are the same in both.
pub fn typed_cron_job(object: &kube::api::DynamicObject) -> Result<CronJob, serde_json::Error> {
    let mut value = serde_json::to_value(object)?;
    value["apiVersion"] = "batch/v1".into();
    serde_json::from_value(value)
}

pub fn cron_job(object: &CronJob, settings: &WorkloadSettings) -> (WorkloadId, WorkloadEntry) {
    let spec = object.spec.as_ref();
    let template = spec
        .and_then(|s| s.job_template.spec.as_ref())
        .map(|s| &s.template);
    let (id, mut entry) = workload(WorkloadKind::CronJob, &object.metadata, template, settings);
    entry.suspended = spec.and_then(|s| s.suspend).unwrap_or(false);
    (id, entry)
}

/// An Argo Rollout, read as JSON (a CRD: no typed struct): its pod template
/// is `spec.template`.
pub fn rollout(
    meta: &ObjectMeta,
    spec: &serde_json::Value,
    settings: &WorkloadSettings,
) -> (WorkloadId, WorkloadEntry) {
    let template: Option<PodTemplateSpec> = spec
        .get("template")
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    workload(WorkloadKind::Rollout, meta, template.as_ref(), settings)
}
