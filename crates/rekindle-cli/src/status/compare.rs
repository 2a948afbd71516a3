//! Pods, their reports and the objects' current content in; one state per pod and
//! source out (the rules are `rekindle::fleet`'s). Pure.
//!
//! A report names a source three ways: `configmap/NAME` and `secret/NAME` are that
//! object, whole (what `rekindle sync` writes); a directory is whatever the pod mounts
//! there: the pod's own spec is read (its `volumeMounts` whose `mountPath` is the
//! directory, then the volume of that name), and the digest the pod reports once it runs
//! the current content is computed from the objects the volume projects, with their
//! `items` (see `rekindle::fleet::volume`). The pod's spec, not the template's: during
//! a rollout, old pods still mount what the old template said.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodSpec;
use rekindle::Snapshot;
use rekindle::api::ObjectKind;
use rekindle::fleet::volume::{
    Projected, VolumeContent, mounted_at, parse_source_label, projection, source_label,
};
use rekindle::fleet::{Fleet, PodInput, PodReport, Resolved, evaluate};
use rekindle::report::ANNOTATION;

use super::objects::PodParts;
use super::workload::Use;

/// What the comparison needs of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodFacts {
    /// Its name and report.
    pub input: PodInput,
    /// Its spec: its volumes and where its containers mount them.
    pub spec: PodSpec,
}

impl PodFacts {
    pub fn of(pod: PodParts) -> PodFacts {
        let annotation = pod.annotations.get(ANNOTATION).map(String::as_str);
        PodFacts {
            input: PodInput {
                report: PodReport::from_annotation(annotation),
                name: pod.name,
            },
            spec: pod.spec,
        }
    }
}

/// An object, by kind and name (the namespace is the workload's).
pub type ObjectKey = (ObjectKind, String);

/// The current content of objects; `None`: it does not exist.
pub type Contents = BTreeMap<ObjectKey, Option<Arc<Snapshot>>>;

/// What one report entry is about, before contents are known.
enum Target {
    /// These objects, projected as listed.
    Objects(Vec<Projected>),
    /// Nothing the API can tell: why.
    Unknown(String),
}

fn target(pod: &PodFacts, via: &str) -> Target {
    if let Some((kind, name)) = parse_source_label(via) {
        return Target::Objects(vec![Projected {
            kind,
            name: name.to_owned(),
            items: None,
            optional: false,
        }]);
    }
    if !via.starts_with('/') {
        return Target::Unknown(format!(
            "{via:?} is neither a directory nor configmap/NAME or secret/NAME"
        ));
    }
    match mounted_at(&pod.spec, via) {
        Ok(volume) => match VolumeContent::of(volume) {
            VolumeContent::Objects(objects) => Target::Objects(objects),
            VolumeContent::Other(why) => Target::Unknown(why),
        },
        Err(error) => Target::Unknown(error.to_string()),
    }
}

/// A comparison, and how many pods the workload wants.
#[derive(Debug, Clone)]
pub struct View {
    pub fleet: Fleet,
    /// The workload's desired number of pods, if known.
    pub desired: Option<usize>,
}

impl View {
    /// How many pods the workload wants beyond those that run (a rollout or a
    /// replacement under way).
    pub fn missing(&self) -> usize {
        self.desired
            .map_or(0, |d| d.saturating_sub(self.fleet.pods.len()))
    }

    /// Every pod current (the rules of `rekindle::fleet`), and none missing: a pod not
    /// created yet has reported nothing.
    pub fn converged(&self) -> bool {
        self.fleet.converged() && self.missing() == 0
    }
}

/// Every object the comparison needs the content of: those the pods' reports are
/// about. A source the template names but no pod reports is not read: it decides
/// nothing, and reading it would need permissions (a Secret's) for nothing.
pub fn needed(pods: &[PodFacts]) -> BTreeSet<ObjectKey> {
    let mut out = BTreeSet::new();
    for pod in pods {
        let PodReport::Present(report) = &pod.input.report else {
            continue;
        };
        for via in report.sources.keys() {
            if let Target::Objects(objects) = target(pod, via) {
                out.extend(objects.into_iter().map(|o| (o.kind, o.name)));
            }
        }
    }
    out
}

/// Compares every pod with the current contents. An object missing from `contents`
/// counts as not existing: call this once [`needed`] are all known. The sources the
/// template names are listed too, without a digest unless a pod reports them.
pub fn compare(pods: &[PodFacts], declared: &BTreeMap<String, Use>, contents: &Contents) -> Fleet {
    let by_name: BTreeMap<&str, &PodFacts> =
        pods.iter().map(|p| (p.input.name.as_str(), p)).collect();
    let lookup = |kind: ObjectKind, name: &str| -> Option<&Snapshot> {
        contents
            .get(&(kind, name.to_owned()))
            .and_then(|c| c.as_deref())
    };
    let mut objects: BTreeMap<String, Option<rekindle::Digest>> =
        declared.keys().map(|label| (label.clone(), None)).collect();
    for ((kind, name), content) in contents {
        objects.insert(
            source_label(*kind, name),
            content.as_ref().map(|c| *c.digest()),
        );
    }
    let inputs: Vec<PodInput> = pods.iter().map(|p| p.input.clone()).collect();
    evaluate(&inputs, &objects, |pod, via| {
        let Some(facts) = by_name.get(pod.name.as_str()) else {
            return Resolved::Unknown("the pod is gone".to_owned());
        };
        match target(facts, via) {
            Target::Objects(projected) => Resolved::Objects {
                sources: projected.iter().map(Projected::label).collect(),
                expected: projection(&projected, lookup)
                    .ok()
                    .map(|written| *written.digest()),
            },
            Target::Unknown(why) => Resolved::Unknown(why),
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rekindle::fleet::State;
    use rekindle::report::{Report, Result as Outcome, SourceReport};
    use serde_json::json;

    pub fn mk_snapshot(entries: &[(&str, &str)]) -> Arc<Snapshot> {
        Arc::new(Snapshot::from_entries(
            entries.iter().map(|(k, v)| (*k, v.as_bytes())),
        ))
    }

    /// A pod whose container mounts ConfigMap `app` at /etc/app (with `items` if given)
    /// and Secret `tls` at /etc/tls, reporting `entries` (name, digest, result).
    pub fn mk_pod(
        name: &str,
        items: Option<serde_json::Value>,
        entries: &[(&str, rekindle::Digest, Outcome)],
    ) -> PodFacts {
        let mut cm = json!({"name": "app"});
        if let Some(items) = items {
            cm["items"] = items;
        }
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "app", "volumeMounts": [
                {"name": "config", "mountPath": "/etc/app"},
                {"name": "tls", "mountPath": "/etc/tls/"},
                {"name": "scratch", "mountPath": "/scratch"},
            ]}],
            "volumes": [
                {"name": "config", "configMap": cm},
                {"name": "tls", "secret": {"secretName": "tls"}},
                {"name": "scratch", "emptyDir": {}},
            ],
        }))
        .expect("spec");
        let mut report = Report::default();
        for (via, digest, result) in entries {
            report.sources.insert(
                (*via).to_owned(),
                SourceReport {
                    digest: *digest,
                    at: "2026-11-22T09:33:20Z".into(),
                    result: *result,
                    reason: (*result == Outcome::Rejected).then(|| "bad LOG_LEVEL".to_owned()),
                },
            );
        }
        PodFacts {
            input: PodInput {
                name: name.to_owned(),
                report: if entries.is_empty() {
                    PodReport::Absent
                } else {
                    PodReport::Present(report)
                },
            },
            spec,
        }
    }

    pub fn mk_declared(labels: &[&str]) -> BTreeMap<String, Use> {
        labels
            .iter()
            .map(|l| {
                (
                    (*l).to_owned(),
                    Use {
                        volume: true,
                        env: false,
                    },
                )
            })
            .collect()
    }

    pub fn mk_contents(entries: &[(ObjectKind, &str, Option<Arc<Snapshot>>)]) -> Contents {
        entries
            .iter()
            .map(|(kind, name, content)| ((*kind, (*name).to_owned()), content.clone()))
            .collect()
    }

    #[test]
    fn directories_and_object_names_are_matched_to_the_objects() {
        let app = mk_snapshot(&[("LOG_LEVEL", "info")]);
        let old = mk_snapshot(&[("LOG_LEVEL", "debug")]);
        let tls = mk_snapshot(&[("tls.key", "k")]);
        let pods = [
            mk_pod(
                "a",
                None,
                &[
                    ("/etc/app/", *app.digest(), Outcome::Applied),
                    ("/etc/tls", *tls.digest(), Outcome::Applied),
                ],
            ),
            mk_pod(
                "b",
                None,
                &[("configmap/app", *old.digest(), Outcome::Applied)],
            ),
            mk_pod("c", None, &[("/etc/app", *app.digest(), Outcome::Rejected)]),
            mk_pod("d", None, &[]),
        ];
        let declared = mk_declared(&["configmap/app", "secret/tls"]);
        let needed = needed(&pods);
        assert_eq!(needed.len(), 2);
        let contents = mk_contents(&[
            (ObjectKind::ConfigMap, "app", Some(app.clone())),
            (ObjectKind::Secret, "tls", Some(tls)),
        ]);
        let fleet = compare(&pods, &declared, &contents);
        let states: Vec<(&str, State, State)> = fleet
            .pods
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.state_of("configmap/app"),
                    p.state_of("secret/tls"),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                ("a", State::Current, State::Current),
                ("b", State::Stale, State::Unknown),
                ("c", State::Rejected, State::Unknown),
                ("d", State::Unknown, State::Unknown),
            ]
        );
        assert_eq!(fleet.sources[0].digest, Some(*app.digest()));
    }

    #[test]
    fn a_volume_with_items_expects_the_digest_of_its_files() {
        let app = mk_snapshot(&[("LOG_LEVEL", "info"), ("other", "x")]);
        let files = mk_snapshot(&[("level", "info")]);
        let items = json!([{"key": "LOG_LEVEL", "path": "level"}]);
        let pods = [
            mk_pod(
                "a",
                Some(items.clone()),
                &[("/etc/app", *files.digest(), Outcome::Applied)],
            ),
            // The whole object's digest is not what this volume holds.
            mk_pod(
                "b",
                Some(items),
                &[("/etc/app", *app.digest(), Outcome::Applied)],
            ),
        ];
        let contents = mk_contents(&[(ObjectKind::ConfigMap, "app", Some(app))]);
        let fleet = compare(&pods, &mk_declared(&["configmap/app"]), &contents);
        assert_eq!(fleet.pods[0].state, State::Current);
        assert_eq!(fleet.pods[1].state, State::Stale);
    }

    #[test]
    fn reports_the_api_cannot_tell_are_set_apart() {
        let app = mk_snapshot(&[("k", "v")]);
        let pods = [mk_pod(
            "a",
            None,
            &[
                ("/etc/app", *app.digest(), Outcome::Applied),
                ("/scratch", *app.digest(), Outcome::Applied),
                ("/nowhere", *app.digest(), Outcome::Applied),
                ("relative/dir", *app.digest(), Outcome::Applied),
            ],
        )];
        let declared = mk_declared(&["configmap/app"]);
        assert_eq!(needed(&pods).len(), 1);
        let contents = mk_contents(&[(ObjectKind::ConfigMap, "app", Some(app))]);
        let fleet = compare(&pods, &declared, &contents);
        let why: Vec<&str> = fleet.pods[0]
            .unmatched
            .iter()
            .map(|u| u.why.as_str())
            .collect();
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(
            why[0].contains("no volume is mounted at /nowhere"),
            "{why:?}"
        );
        assert!(
            why[1].contains("volume scratch is not a ConfigMap"),
            "{why:?}"
        );
        assert!(why[2].contains("relative/dir"), "{why:?}");
        assert!(fleet.converged());
        let view = View {
            fleet,
            desired: Some(2),
        };
        assert_eq!(view.missing(), 1);
        assert!(!view.converged(), "a pod is missing");
    }

    #[test]
    fn objects_named_only_by_reports_are_needed_too() {
        let pods = [mk_pod(
            "a",
            None,
            &[(
                "configmap/synced",
                *mk_snapshot(&[]).digest(),
                Outcome::Applied,
            )],
        )];
        let needed = needed(&pods);
        assert!(needed.contains(&(ObjectKind::ConfigMap, "synced".to_owned())));
        // Not existing: listed, and the pod cannot be current with it.
        let contents = mk_contents(&[(ObjectKind::ConfigMap, "synced", None)]);
        let fleet = compare(&pods, &BTreeMap::new(), &contents);
        assert_eq!(fleet.sources[0].digest, None);
        assert_eq!(fleet.pods[0].state, State::Stale);
    }
}
