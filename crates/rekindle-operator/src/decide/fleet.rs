//! The fleet view of one workload: how many of its pods run the current content of
//! their ConfigMaps and Secrets, from the reports they write (`rekindle --report-pod`,
//! annotation `rekindle.io/applied`), for `rekindle_workload_config_pods`.
//!
//! The rules are `rekindle::fleet`'s, the ones `rekindle status` applies, so the metric
//! and the command agree. What differs is what the operator knows:
//! - pods come from a metadata-only watch (labels, annotations, owners; never specs),
//!   so a pod is tied to its workload by its controller reference ([`owner_workload`]),
//!   and a directory report is matched through the *workload's* pod template
//!   ([`Mounts`]), not the pod's own spec;
//! - the index keeps per object the public digest of its whole content, not its data,
//!   so a directory is compared only when its volume holds one whole ConfigMap or Secret
//!   (no `items`, not a projection of several); other volumes cannot be computed here
//!   and do not count (`rekindle status` computes them);
//! - a pod's phase is not in its metadata: a finished pod (an evicted one, say) counts
//!   until it is deleted. Terminating pods do not count.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rekindle::Digest;
use rekindle::api::ObjectKind;
use rekindle::fleet::volume::{mounts, parse_source_label};
use rekindle::fleet::{Counts, PodInput, PodReport, Resolved, evaluate};
use rekindle::report::{ANNOTATION, Report, Result as Outcome, SourceReport};

use crate::model::{SourceId, SourceKind, WorkloadId, WorkloadKind};

/// The label a Deployment's ReplicaSet controller puts on its pods: the suffix of the
/// ReplicaSet's name after the Deployment's.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The workload a pod belongs to, from its controller reference: a StatefulSet or
/// DaemonSet directly; a Deployment through its ReplicaSet, whose name is the
/// Deployment's, a dash and the pod's `pod-template-hash` label. `None` for anything
/// else (a bare pod, a Job, a ReplicaSet of no Deployment).
pub fn owner_workload(meta: &ObjectMeta) -> Option<WorkloadId> {
    let namespace = meta.namespace.clone().unwrap_or_default();
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    if !owner.api_version.starts_with("apps/") {
        return None;
    }
    match owner.kind.as_str() {
        "StatefulSet" => Some(WorkloadId::new(
            WorkloadKind::StatefulSet,
            namespace,
            owner.name.clone(),
        )),
        "DaemonSet" => Some(WorkloadId::new(
            WorkloadKind::DaemonSet,
            namespace,
            owner.name.clone(),
        )),
        "ReplicaSet" => {
            let hash = meta.labels.as_ref()?.get(POD_TEMPLATE_HASH)?;
            let deployment = owner.name.strip_suffix(hash.as_str())?.strip_suffix('-')?;
            (!deployment.is_empty()).then(|| {
                WorkloadId::new(WorkloadKind::Deployment, namespace, deployment.to_owned())
            })
        }
        _ => None,
    }
}

/// What the operator keeps of one pod's report: per source name, the digest and the
/// outcome (not the time, not the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodReportEntry {
    /// No report.
    Absent,
    /// An annotation that does not parse.
    Invalid,
    /// Source name, digest, outcome; sorted by name.
    Present(Box<[(Box<str>, Digest, Outcome)]>),
}

impl PodReportEntry {
    /// Reads the pod's annotation.
    pub fn from_meta(meta: &ObjectMeta) -> PodReportEntry {
        let Some(text) = meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION)) else {
            return PodReportEntry::Absent;
        };
        match Report::parse(text) {
            Ok(report) => PodReportEntry::Present(
                report
                    .sources
                    .into_iter()
                    .map(|(name, entry)| (name.into_boxed_str(), entry.digest, entry.result))
                    .collect(),
            ),
            Err(_) => PodReportEntry::Invalid,
        }
    }

    fn to_input(&self, name: &str) -> PodInput {
        let report = match self {
            PodReportEntry::Absent => PodReport::Absent,
            PodReportEntry::Invalid => PodReport::Invalid("unreadable report".to_owned()),
            PodReportEntry::Present(entries) => PodReport::Present(Report {
                sources: entries
                    .iter()
                    .map(|(via, digest, result)| {
                        (
                            via.to_string(),
                            SourceReport {
                                digest: *digest,
                                at: String::new(),
                                result: *result,
                                reason: None,
                            },
                        )
                    })
                    .collect(),
            }),
        };
        PodInput {
            name: name.to_owned(),
            report,
        }
    }
}

/// Where a pod template mounts whole ConfigMaps and Secrets: directory → object (`None`:
/// a volume whose content the index cannot compute: `items`, several objects, other
/// kinds of volume). Sorted by directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts(Box<[(Box<str>, Option<MountedObject>)]>);

/// A whole ConfigMap or Secret mounted somewhere: its kind and name.
type MountedObject = (SourceKind, Box<str>);

impl Mounts {
    pub fn from_pod_spec(spec: &PodSpec) -> Mounts {
        Mounts(
            mounts(spec)
                .into_iter()
                .map(|(path, content)| {
                    let object = content.whole_object().map(|(kind, name)| {
                        let kind = match kind {
                            ObjectKind::ConfigMap => SourceKind::ConfigMap,
                            ObjectKind::Secret => SourceKind::Secret,
                        };
                        (kind, Box::from(name))
                    });
                    (path.into_boxed_str(), object)
                })
                .collect(),
        )
    }

    /// What is mounted at `path` (trailing slashes ignored): `None` if nothing is,
    /// `Some(None)` if something the index cannot compute is.
    fn at(&self, path: &str) -> Option<Option<(SourceKind, &str)>> {
        let trimmed = path.trim_end_matches('/');
        let path = if trimmed.is_empty() { path } else { trimmed };
        self.0
            .binary_search_by(|(p, _)| (**p).cmp(path))
            .ok()
            .map(|i| self.0[i].1.as_ref().map(|(k, n)| (*k, &**n)))
    }
}

fn label(kind: SourceKind, name: &str) -> Option<String> {
    match kind {
        SourceKind::ConfigMap => Some(format!("configmap/{name}")),
        SourceKind::Secret => Some(format!("secret/{name}")),
        SourceKind::SecretProviderClass => None,
    }
}

/// Pods per state for one workload, or `None` when none of its pods reports anything
/// (such a workload has no series). `declared`: the ConfigMaps and Secrets its template
/// names; `digest`: the public digest of a source in the index, if there.
pub fn workload_counts<'a>(
    workload: &WorkloadId,
    mounts: &Mounts,
    declared: impl IntoIterator<Item = (SourceKind, &'a str)>,
    pods: &[(&str, &PodReportEntry)],
    digest: impl Fn(&SourceId) -> Option<Digest>,
) -> Option<Counts> {
    if !pods
        .iter()
        .any(|(_, r)| !matches!(r, PodReportEntry::Absent))
    {
        return None;
    }
    let source = |kind: SourceKind, name: &str| {
        SourceId::new(kind, workload.namespace.clone(), name.to_owned())
    };
    let mut objects: BTreeMap<String, Option<Digest>> = BTreeMap::new();
    for (kind, name) in declared {
        if let Some(label) = label(kind, name) {
            objects.insert(label, digest(&source(kind, name)));
        }
    }
    let inputs: Vec<PodInput> = pods
        .iter()
        .map(|(name, report)| report.to_input(name))
        .collect();
    let resolve = |_: &PodInput, via: &str| -> Resolved {
        let whole = |kind: SourceKind, name: &str| Resolved::Objects {
            sources: label(kind, name).into_iter().collect(),
            expected: digest(&source(kind, name)),
        };
        if let Some((kind, name)) = parse_source_label(via) {
            let kind = match kind {
                ObjectKind::ConfigMap => SourceKind::ConfigMap,
                ObjectKind::Secret => SourceKind::Secret,
            };
            return whole(kind, name);
        }
        match mounts.at(via) {
            Some(Some((kind, name))) => whole(kind, name),
            Some(None) => Resolved::Unknown(format!(
                "the volume at {via} is not one whole ConfigMap or Secret"
            )),
            None => Resolved::Unknown(format!("the pod template mounts nothing at {via}")),
        }
    };
    let fleet = evaluate(&inputs, &objects, resolve);
    Some(fleet.counts())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk_meta(value: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(value).expect("meta")
    }

    fn mk_digest(content: &str) -> Digest {
        *rekindle::Snapshot::from_entries([("k", content)]).digest()
    }

    fn mk_report(entries: &[(&str, &str, Outcome)]) -> PodReportEntry {
        let mut report = Report::default();
        for (via, content, result) in entries {
            report.sources.insert(
                (*via).to_owned(),
                SourceReport::now(mk_digest(content), *result, None),
            );
        }
        let meta = mk_meta(json!({"annotations": {ANNOTATION: report.to_json()}}));
        PodReportEntry::from_meta(&meta)
    }

    fn mk_mounts() -> Mounts {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "app", "volumeMounts": [
                {"name": "config", "mountPath": "/etc/app"},
                {"name": "some", "mountPath": "/etc/some"},
            ]}],
            "volumes": [
                {"name": "config", "configMap": {"name": "app"}},
                {"name": "some", "configMap": {"name": "app", "items": [{"key": "k", "path": "k"}]}},
            ],
        }))
        .expect("spec");
        Mounts::from_pod_spec(&spec)
    }

    fn web() -> WorkloadId {
        WorkloadId::new(WorkloadKind::Deployment, "shop", "web")
    }

    #[test]
    fn pods_are_tied_to_their_workload_by_their_controller() {
        let rs = mk_meta(json!({
            "namespace": "shop",
            "labels": {"pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5", "uid": "u", "controller": true}],
        }));
        assert_eq!(owner_workload(&rs), Some(web()));
        let sts = mk_meta(json!({
            "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": true}],
        }));
        assert_eq!(
            owner_workload(&sts),
            Some(WorkloadId::new(WorkloadKind::StatefulSet, "shop", "db"))
        );
        let orphan_rs = mk_meta(json!({
            "namespace": "shop",
            "labels": {"app": "x"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "lonely", "uid": "u", "controller": true}],
        }));
        assert_eq!(owner_workload(&orphan_rs), None);
        let job = mk_meta(json!({
            "namespace": "shop",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u", "controller": true}],
        }));
        assert_eq!(owner_workload(&job), None);
        let not_controller = mk_meta(json!({
            "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u"}],
        }));
        assert_eq!(owner_workload(&not_controller), None);
    }

    #[test]
    fn reports_are_kept_small_and_unreadable_ones_noted() {
        assert_eq!(
            PodReportEntry::from_meta(&ObjectMeta::default()),
            PodReportEntry::Absent
        );
        let bad = mk_meta(json!({"annotations": {ANNOTATION: "{"}}));
        assert_eq!(PodReportEntry::from_meta(&bad), PodReportEntry::Invalid);
        let PodReportEntry::Present(entries) = mk_report(&[("/etc/app", "v1", Outcome::Applied)])
        else {
            panic!("present")
        };
        assert_eq!(&*entries[0].0, "/etc/app");
    }

    #[test]
    fn counts_follow_the_shared_rules() {
        let current = mk_digest("v2");
        let digest = |id: &SourceId| (id.name == "app").then_some(current);
        let reports = [
            mk_report(&[("/etc/app/", "v2", Outcome::Applied)]),
            mk_report(&[("configmap/app", "v1", Outcome::Applied)]),
            mk_report(&[("/etc/app", "v2", Outcome::Rejected)]),
            mk_report(&[("/etc/app", "v2", Outcome::Failed)]),
            PodReportEntry::Absent,
            // A volume with items: not comparable here, so this pod reports nothing
            // that counts.
            mk_report(&[("/etc/some", "v2", Outcome::Applied)]),
        ];
        let names = ["a", "b", "c", "d", "e", "f"];
        let pods: Vec<(&str, &PodReportEntry)> =
            names.iter().copied().zip(reports.iter()).collect();
        let counts = workload_counts(
            &web(),
            &mk_mounts(),
            [
                (SourceKind::ConfigMap, "app"),
                (SourceKind::Secret, "env-only"),
            ],
            &pods,
            digest,
        )
        .expect("reports");
        assert_eq!(
            counts,
            Counts {
                current: 1,
                stale: 1,
                rejected: 1,
                failed: 1,
                unknown: 2
            }
        );
    }

    #[test]
    fn a_workload_whose_pods_report_nothing_has_no_counts() {
        let pods = [("a", &PodReportEntry::Absent)];
        assert_eq!(
            workload_counts(&web(), &mk_mounts(), [], &pods, |_| None),
            None
        );
    }
}
