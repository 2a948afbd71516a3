//! The bodies the edge sends and the objects it creates to roll a workload.
//!
//! Every function here is pure: time, when a body needs it, is passed in as a
//! string, and nothing random is generated (a CronJob's Job gets a
//! `generateName`, so the API server picks the suffix).
//!
//! Which patch for which kind, as Reloader does it:
//! - Deployment, DaemonSet, StatefulSet: a strategic-merge patch of
//!   `spec.template` ([`template_patch`]); containers merge by `name`, env by
//!   `name`, so only the markers are sent.
//! - Argo Rollout: a CRD, where the API server refuses strategic merge. A JSON
//!   merge patch replaces lists whole, so the env change is built from the
//!   current containers ([`rollout_template_patch`]), guarded by the
//!   `resourceVersion` it was built from; or `spec.restartAt`
//!   ([`restart_at_patch`]).
//! - CronJob: a new Job ([`job_from_cronjob`]); Job: delete and re-create
//!   ([`recreated_job`]).
//! - `--reload-on-delete` with env vars: a guarded JSON patch ([`remove_env_patch`]),
//!   which works on every kind, CRDs included.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Map, Value, json};

use crate::model::WorkloadKind;

/// The annotation that marks a Job as started by hand from a CronJob (as
/// `kubectl create job --from=cronjob/…` writes it).
pub const INSTANTIATE_ANNOTATION: &str = "cronjob.kubernetes.io/instantiate";

/// Labels the Job controller generates on a Job's pod template; a re-created
/// Job must not carry the old Job's, or its generated selector would clash.
pub const JOB_CONTROLLER_LABELS: [&str; 4] = [
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
];

/// One marker variable to set on one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvMarker {
    /// The container, by name.
    pub container: String,
    /// The variable, e.g. `STAKATER_APP_CONFIG_CONFIGMAP`.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl EnvMarker {
    /// Marker `name` = `value` on `container`.
    pub fn new(
        container: impl Into<String>,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        EnvMarker {
            container: container.into(),
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Why a body or object could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// Only Deployments, DaemonSets and StatefulSets take a strategic-merge
    /// template patch.
    #[error("a {0} is not rolled by a strategic-merge patch of its template")]
    NotStrategicMerge(WorkloadKind),
    /// A marker names a container the pod template does not have.
    #[error("the pod template has no container named {0:?}")]
    NoSuchContainer(String),
    /// The object read from the API lacks a field the result needs.
    #[error("the {kind} has no {field}")]
    MissingField {
        kind: &'static str,
        field: &'static str,
    },
    /// A container did not encode to JSON.
    #[error("encoding a container: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A strategic-merge patch for a Deployment, DaemonSet or StatefulSet that
/// sets `env` on their containers and `annotations` on the pod template.
///
/// Only the markers are sent: the API server merges containers and their env
/// by `name`, leaving every other variable and container as it is. With
/// nothing to set the patch is `{}`.
pub fn template_patch(
    kind: WorkloadKind,
    env: &[EnvMarker],
    annotations: &BTreeMap<String, String>,
) -> Result<Value, PatchError> {
    match kind {
        WorkloadKind::Deployment | WorkloadKind::DaemonSet | WorkloadKind::StatefulSet => {}
        other => return Err(PatchError::NotStrategicMerge(other)),
    }
    let containers: Vec<Value> = group_by_container(env)
        .into_iter()
        .map(|(container, vars)| {
            let env: Vec<Value> = vars
                .into_iter()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect();
            json!({ "name": container, "env": env })
        })
        .collect();
    let containers = (!containers.is_empty()).then_some(Value::Array(containers));
    Ok(wrap_template(containers, annotations))
}

/// A JSON merge patch for an Argo Rollout that sets `env` and `annotations`.
///
/// A merge patch replaces `containers` whole, so it is built from `current`
/// (the template as last read) with the markers applied; `resource_version`,
/// when given, makes the API server refuse the patch (409) if the Rollout
/// changed since, so a concurrent edit of the containers is never undone.
/// With no env markers and no removals the containers are left out and only
/// annotations merge.
pub fn rollout_template_patch(
    current: &PodSpec,
    resource_version: Option<&str>,
    env: &[EnvMarker],
    remove: &[Removal],
    annotations: &BTreeMap<String, String>,
) -> Result<Value, PatchError> {
    let containers = if env.is_empty() && remove.is_empty() {
        None
    } else {
        let mut containers = current.containers.clone();
        remove_env(&mut containers, remove);
        set_env(&mut containers, env)?;
        Some(serde_json::to_value(containers)?)
    };
    let mut patch = wrap_template(containers, annotations);
    if let (Some(rv), Some(object)) = (resource_version, patch.as_object_mut()) {
        object.insert("metadata".to_owned(), json!({ "resourceVersion": rv }));
    }
    Ok(patch)
}

/// A variable to remove (`--reload-on-delete`): the container's index, the variable's
/// index in it when the plan was made, and the variable's name.
pub type Removal = (usize, usize, String);

/// Removes, from containers read again since the plan was made, each variable the plan
/// removes, by name: the name is what must still match (as the JSON patch's `test`
/// does for the kinds patched in place); a container that no longer has it is left
/// alone.
fn remove_env(containers: &mut [Container], remove: &[Removal]) {
    for (container, _, name) in remove {
        if let Some(env) = containers.get_mut(*container).and_then(|c| c.env.as_mut()) {
            env.retain(|var| var.name != *name);
        }
    }
}

/// An RFC 6902 JSON patch removing the env var at `env_index` of the container
/// at `container_index`, applied only if that var is still named `name`: a
/// template edited since it was read makes the patch fail instead of removing
/// someone else's variable.
pub fn remove_env_patch(container_index: usize, env_index: usize, name: &str) -> Value {
    let path = format!("/spec/template/spec/containers/{container_index}/env/{env_index}");
    json!([
        { "op": "test", "path": format!("{path}/name"), "value": name },
        { "op": "remove", "path": path },
    ])
}

/// The Job Reloader starts from a CronJob: `generateName: <cronjob>-`, the
/// job template's labels, its annotations over
/// `cronjob.kubernetes.io/instantiate: manual`, a controller owner reference to
/// the CronJob, and the markers on the pod template.
///
/// `cron_api_version` is the CronJob's `apiVersion` as read (`batch/v1`, or
/// `batch/v1beta1` on Kubernetes before 1.21): the owner reference must name
/// a version the API server serves.
pub fn job_from_cronjob(
    cron: &CronJob,
    cron_api_version: &str,
    env: &[EnvMarker],
    remove: &[Removal],
    annotations: &BTreeMap<String, String>,
) -> Result<Job, PatchError> {
    const KIND: &str = "CronJob";
    let missing = |field| PatchError::MissingField { kind: KIND, field };
    let name = cron
        .metadata
        .name
        .as_deref()
        .ok_or(missing("metadata.name"))?;
    let uid = cron
        .metadata
        .uid
        .as_deref()
        .ok_or(missing("metadata.uid"))?;
    let template = &cron.spec.as_ref().ok_or(missing("spec"))?.job_template;
    let mut spec = template
        .spec
        .clone()
        .ok_or(missing("spec.jobTemplate.spec"))?;
    let template_meta = template.metadata.clone().unwrap_or_default();

    // The job template's own annotations win over the manual marker, as in Reloader.
    let mut job_annotations =
        BTreeMap::from([(INSTANTIATE_ANNOTATION.to_owned(), "manual".to_owned())]);
    job_annotations.extend(template_meta.annotations.unwrap_or_default());

    apply_markers(&mut spec.template, env, remove, annotations)?;
    Ok(Job {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: cron.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: Some(job_annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: cron_api_version.to_owned(),
                kind: KIND.to_owned(),
                name: name.to_owned(),
                uid: uid.to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// The Job to create, under the same name, after deleting `job`: the same
/// object without what the API server assigned (uid, resourceVersion,
/// creation and deletion stamps, generation, managedFields, status), without
/// the generated selector and the controller's labels on the pod template,
/// and with the markers applied. Labels, annotations and owner references on
/// the Job itself are kept, as Reloader keeps them.
///
/// A Job with `manualSelector: true` keeps its selector and template labels:
/// the user wrote both, and the API server would not generate a selector for it.
pub fn recreated_job(
    job: &Job,
    env: &[EnvMarker],
    remove: &[Removal],
    annotations: &BTreeMap<String, String>,
) -> Result<Job, PatchError> {
    let mut spec = job.spec.clone().ok_or(PatchError::MissingField {
        kind: "Job",
        field: "spec",
    })?;
    if spec.manual_selector != Some(true) {
        spec.selector = None;
        if let Some(labels) = spec
            .template
            .metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
        {
            for label in JOB_CONTROLLER_LABELS {
                labels.remove(label);
            }
        }
    }
    apply_markers(&mut spec.template, env, remove, annotations)?;

    let metadata = ObjectMeta {
        uid: None,
        resource_version: None,
        creation_timestamp: None,
        deletion_timestamp: None,
        deletion_grace_period_seconds: None,
        generation: None,
        managed_fields: None,
        self_link: None,
        ..job.metadata.clone()
    };
    Ok(Job {
        metadata,
        spec: Some(spec),
        status: None,
    })
}

/// The strategic-merge patch that pauses a Deployment and records when, under
/// `paused_at_annotation` (Reloader's `deployment.reloader.stakater.com/paused-at`
/// unless renamed). `at_rfc3339` is the caller's clock reading.
pub fn pause_patch(paused_at_annotation: &str, at_rfc3339: &str) -> Value {
    json!({
        "spec": { "paused": true },
        "metadata": { "annotations": { paused_at_annotation: at_rfc3339 } },
    })
}

/// The strategic-merge patch that resumes a Deployment and drops the
/// paused-at annotation.
pub fn resume_patch(paused_at_annotation: &str) -> Value {
    json!({
        "spec": { "paused": false },
        "metadata": { "annotations": { paused_at_annotation: null } },
    })
}

/// The merge patch that restarts an Argo Rollout's pods
/// (`reloader.stakater.com/rollout-strategy: restart`).
pub fn restart_at_patch(rfc3339: &str) -> Value {
    json!({ "spec": { "restartAt": rfc3339 } })
}

/// `{"spec":{"template":{"metadata":{"annotations":…},"spec":{"containers":…}}}}`
/// with only the parts that have something in them.
fn wrap_template(containers: Option<Value>, annotations: &BTreeMap<String, String>) -> Value {
    let mut template = Map::new();
    if !annotations.is_empty() {
        template.insert("metadata".to_owned(), json!({ "annotations": annotations }));
    }
    if let Some(containers) = containers {
        template.insert("spec".to_owned(), json!({ "containers": containers }));
    }
    if template.is_empty() {
        return json!({});
    }
    json!({ "spec": { "template": template } })
}

/// The markers per container, containers in first-mention order; a variable
/// set twice for one container keeps its first place and its last value.
fn group_by_container(env: &[EnvMarker]) -> Vec<(&str, Vec<(&str, &str)>)> {
    let mut groups: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    for marker in env {
        let index = match groups.iter().position(|(c, _)| *c == marker.container) {
            Some(index) => index,
            None => {
                groups.push((marker.container.as_str(), Vec::new()));
                groups.len() - 1
            }
        };
        let vars = &mut groups[index].1;
        match vars.iter_mut().find(|(name, _)| *name == marker.name) {
            Some(var) => var.1 = &marker.value,
            None => vars.push((&marker.name, &marker.value)),
        }
    }
    groups
}

/// Sets each marker on its container: the value of an existing variable of
/// that name is replaced in place (the first, if it repeats); otherwise the
/// variable is appended.
fn set_env(containers: &mut [Container], env: &[EnvMarker]) -> Result<(), PatchError> {
    for marker in env {
        let container = containers
            .iter_mut()
            .find(|c| c.name == marker.container)
            .ok_or_else(|| PatchError::NoSuchContainer(marker.container.clone()))?;
        let vars = container.env.get_or_insert_with(Vec::new);
        match vars.iter_mut().find(|v| v.name == marker.name) {
            Some(var) => {
                var.value = Some(marker.value.clone());
                var.value_from = None;
            }
            None => vars.push(EnvVar {
                name: marker.name.clone(),
                value: Some(marker.value.clone()),
                value_from: None,
            }),
        }
    }
    Ok(())
}

fn apply_markers(
    template: &mut PodTemplateSpec,
    env: &[EnvMarker],
    remove: &[Removal],
    annotations: &BTreeMap<String, String>,
) -> Result<(), PatchError> {
    match template.spec.as_mut() {
        Some(spec) => {
            remove_env(&mut spec.containers, remove);
            set_env(&mut spec.containers, env)?;
        }
        // No containers at all: any marker names a missing one.
        None => set_env(&mut [], env)?,
    }
    if !annotations.is_empty() {
        let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJobSpec, JobSpec, JobStatus, JobTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ManagedFieldsEntry, Time};

    const MARKER: &str = "reloader.stakater.com/last-reloaded-from";

    fn mk_container(name: &str, env: &[(&str, &str)]) -> Container {
        Container {
            name: name.to_owned(),
            image: Some(format!("example/{name}:1")),
            env: (!env.is_empty()).then(|| {
                env.iter()
                    .map(|(n, v)| EnvVar {
                        name: (*n).to_owned(),
                        value: Some((*v).to_owned()),
                        value_from: None,
                    })
                    .collect()
            }),
            ..Container::default()
        }
    }

    fn mk_pod_spec(containers: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            ..PodSpec::default()
        }
    }

    fn mk_template(labels: &[(&str, &str)], containers: Vec<Container>) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(map(labels)),
                ..ObjectMeta::default()
            }),
            spec: Some(mk_pod_spec(containers)),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn none() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn container_env(template: &PodTemplateSpec, container: &str) -> Vec<(String, String)> {
        let spec = template.spec.as_ref().expect("a pod spec");
        let c = spec
            .containers
            .iter()
            .find(|c| c.name == container)
            .expect("the container");
        c.env
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    // ---- template_patch ----------------------------------------------------

    #[test]
    fn one_env_marker_is_reloaders_exact_patch() {
        let env = [EnvMarker::new("app", "STAKATER_CFG_CONFIGMAP", "abc")];
        let patch = template_patch(WorkloadKind::Deployment, &env, &none()).expect("patchable");
        assert_eq!(
            patch,
            json!({"spec":{"template":{"spec":{"containers":[
                {"name":"app","env":[{"name":"STAKATER_CFG_CONFIGMAP","value":"abc"}]}
            ]}}}})
        );
    }

    #[test]
    fn env_markers_are_grouped_by_container_name() {
        let env = [
            EnvMarker::new("app", "STAKATER_A_CONFIGMAP", "1"),
            EnvMarker::new("side", "STAKATER_B_SECRET", "2"),
            EnvMarker::new("app", "STAKATER_C_SECRET", "3"),
            EnvMarker::new("app", "STAKATER_A_CONFIGMAP", "4"),
        ];
        let patch = template_patch(WorkloadKind::StatefulSet, &env, &none()).expect("patchable");
        assert_eq!(
            patch,
            json!({"spec":{"template":{"spec":{"containers":[
                {"name":"app","env":[
                    {"name":"STAKATER_A_CONFIGMAP","value":"4"},
                    {"name":"STAKATER_C_SECRET","value":"3"}
                ]},
                {"name":"side","env":[{"name":"STAKATER_B_SECRET","value":"2"}]}
            ]}}}})
        );
    }

    #[test]
    fn annotations_alone_patch_only_template_metadata() {
        let annotations = map(&[(MARKER, r#"{"type":"CONFIGMAP","name":"cfg"}"#)]);
        let patch = template_patch(WorkloadKind::DaemonSet, &[], &annotations).expect("patchable");
        assert_eq!(
            patch,
            json!({"spec":{"template":{"metadata":{"annotations":{
                MARKER: r#"{"type":"CONFIGMAP","name":"cfg"}"#
            }}}}})
        );
    }

    #[test]
    fn env_and_annotations_go_in_one_patch_and_nothing_is_empty() {
        let env = [EnvMarker::new("app", "STAKATER_X_SECRET", "h")];
        let annotations = map(&[("a", "b")]);
        let patch =
            template_patch(WorkloadKind::Deployment, &env, &annotations).expect("patchable");
        assert_eq!(
            patch,
            json!({"spec":{"template":{
                "metadata":{"annotations":{"a":"b"}},
                "spec":{"containers":[{"name":"app","env":[{"name":"STAKATER_X_SECRET","value":"h"}]}]}
            }}})
        );
        assert_eq!(
            template_patch(WorkloadKind::Deployment, &[], &none()).expect("patchable"),
            json!({})
        );
    }

    #[test]
    fn only_builtin_rollable_kinds_take_a_strategic_merge() {
        for kind in [
            WorkloadKind::Rollout,
            WorkloadKind::CronJob,
            WorkloadKind::Job,
        ] {
            let err = template_patch(kind, &[], &none()).expect_err("not strategic");
            assert!(
                matches!(err, PatchError::NotStrategicMerge(k) if k == kind),
                "{err}"
            );
        }
    }

    // ---- rollout_template_patch ------------------------------------------

    #[test]
    fn rollout_patch_carries_all_containers_with_the_marker_set() {
        let current = mk_pod_spec(vec![
            mk_container("app", &[("PLAIN", "1"), ("STAKATER_CFG_CONFIGMAP", "old")]),
            mk_container("side", &[]),
        ]);
        let env = [
            EnvMarker::new("app", "STAKATER_CFG_CONFIGMAP", "new"),
            EnvMarker::new("side", "STAKATER_S_SECRET", "s"),
        ];
        let patch = rollout_template_patch(&current, Some("42"), &env, &[], &map(&[("k", "v")]))
            .expect("built");
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "42"},
                "spec": {"template": {
                    "metadata": {"annotations": {"k": "v"}},
                    "spec": {"containers": [
                        {"name": "app", "image": "example/app:1", "env": [
                            {"name": "PLAIN", "value": "1"},
                            {"name": "STAKATER_CFG_CONFIGMAP", "value": "new"}
                        ]},
                        {"name": "side", "image": "example/side:1", "env": [
                            {"name": "STAKATER_S_SECRET", "value": "s"}
                        ]}
                    ]}
                }}
            })
        );
    }

    #[test]
    fn rollout_patch_without_env_leaves_containers_alone() {
        let current = mk_pod_spec(vec![mk_container("app", &[])]);
        let patch =
            rollout_template_patch(&current, None, &[], &[], &map(&[("k", "v")])).expect("built");
        assert_eq!(
            patch,
            json!({"spec":{"template":{"metadata":{"annotations":{"k":"v"}}}}})
        );
    }

    #[test]
    fn rollout_patch_refuses_an_unknown_container() {
        let current = mk_pod_spec(vec![mk_container("app", &[])]);
        let env = [EnvMarker::new("gone", "STAKATER_X_SECRET", "h")];
        let err = rollout_template_patch(&current, None, &env, &[], &none())
            .expect_err("no such container");
        assert!(
            matches!(&err, PatchError::NoSuchContainer(c) if c == "gone"),
            "{err}"
        );
    }

    // ---- remove_env_patch --------------------------------------------------

    /// `--reload-on-delete` on the kinds that are not patched in place: the variable
    /// goes from the Job created for a CronJob, from a re-created Job and from a
    /// Rollout's containers, by name, and nothing else does.
    #[test]
    fn removals_reach_cronjob_job_and_rollout_templates() {
        let remove = [(0, 1, "STAKATER_CFG_CONFIGMAP".to_owned())];
        let env_of = |template: &PodTemplateSpec| -> Vec<String> {
            template.spec.as_ref().expect("spec").containers[0]
                .env
                .iter()
                .flatten()
                .map(|v| v.name.clone())
                .collect()
        };
        let with_marker = mk_container("job", &[("PLAIN", "1"), ("STAKATER_CFG_CONFIGMAP", "h")]);

        let mut cron = mk_cronjob();
        cron.spec
            .as_mut()
            .expect("spec")
            .job_template
            .spec
            .as_mut()
            .expect("job spec")
            .template = mk_template(&[("app", "nightly")], vec![with_marker.clone()]);
        let job = job_from_cronjob(&cron, "batch/v1", &[], &remove, &none()).expect("built");
        assert_eq!(env_of(&job.spec.expect("spec").template), ["PLAIN"]);

        let mut old = mk_job(None);
        old.spec
            .as_mut()
            .expect("spec")
            .template
            .spec
            .as_mut()
            .expect("pod")
            .containers = vec![with_marker.clone()];
        let job = recreated_job(&old, &[], &remove, &none()).expect("built");
        assert_eq!(env_of(&job.spec.expect("spec").template), ["PLAIN"]);

        let current = PodSpec {
            containers: vec![with_marker.clone()],
            ..PodSpec::default()
        };
        let body =
            rollout_template_patch(&current, Some("9"), &[], &remove, &none()).expect("built");
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{ "name": "PLAIN", "value": "1" }])
        );
        assert_eq!(body["metadata"]["resourceVersion"], "9");

        // A variable of that name no longer in that container: nothing removed.
        let moved = [(0, 0, "STAKATER_OTHER_CONFIGMAP".to_owned())];
        let job = recreated_job(&old, &[], &moved, &none()).expect("built");
        assert_eq!(
            env_of(&job.spec.expect("spec").template),
            ["PLAIN", "STAKATER_CFG_CONFIGMAP"]
        );
    }

    #[test]
    fn removal_is_guarded_by_the_variable_name() {
        assert_eq!(
            remove_env_patch(1, 3, "STAKATER_CFG_CONFIGMAP"),
            json!([
                {"op":"test","path":"/spec/template/spec/containers/1/env/3/name","value":"STAKATER_CFG_CONFIGMAP"},
                {"op":"remove","path":"/spec/template/spec/containers/1/env/3"}
            ])
        );
    }

    // ---- job_from_cronjob ------------------------------------------------

    fn mk_cronjob() -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("nightly".to_owned()),
                namespace: Some("ns".to_owned()),
                uid: Some("cron-uid".to_owned()),
                resource_version: Some("7".to_owned()),
                labels: Some(map(&[("on-cron", "yes")])),
                annotations: Some(map(&[("cron-only", "yes")])),
                ..ObjectMeta::default()
            },
            spec: Some(CronJobSpec {
                schedule: "0 3 * * *".to_owned(),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(map(&[("team", "a")])),
                        annotations: Some(map(&[("note", "x")])),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(JobSpec {
                        backoff_limit: Some(2),
                        template: mk_template(
                            &[("app", "nightly")],
                            vec![mk_container("job", &[("PLAIN", "1")])],
                        ),
                        ..JobSpec::default()
                    }),
                },
                ..CronJobSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_cronjob_job_is_reloaders_manual_instantiation() {
        let env = [EnvMarker::new("job", "STAKATER_CFG_CONFIGMAP", "h")];
        let job = job_from_cronjob(
            &mk_cronjob(),
            "batch/v1beta1",
            &env,
            &[],
            &map(&[("pod", "note")]),
        )
        .expect("built");
        let value = serde_json::to_value(&job).expect("encodes");
        assert_eq!(
            value,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "generateName": "nightly-",
                    "namespace": "ns",
                    "labels": {"team": "a"},
                    "annotations": {"cronjob.kubernetes.io/instantiate": "manual", "note": "x"},
                    "ownerReferences": [{
                        "apiVersion": "batch/v1beta1",
                        "kind": "CronJob",
                        "name": "nightly",
                        "uid": "cron-uid",
                        "controller": true,
                        "blockOwnerDeletion": true
                    }]
                },
                "spec": {
                    "backoffLimit": 2,
                    "template": {
                        "metadata": {"labels": {"app": "nightly"}, "annotations": {"pod": "note"}},
                        "spec": {"containers": [{"name": "job", "image": "example/job:1", "env": [
                            {"name": "PLAIN", "value": "1"},
                            {"name": "STAKATER_CFG_CONFIGMAP", "value": "h"}
                        ]}]}
                    }
                }
            })
        );
    }

    #[test]
    fn the_owner_reference_uses_the_version_read() {
        let job = job_from_cronjob(&mk_cronjob(), "batch/v1", &[], &[], &none()).expect("built");
        let owners = job.metadata.owner_references.expect("owner references");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].api_version, "batch/v1");
    }

    #[test]
    fn the_job_template_may_override_the_manual_annotation() {
        let mut cron = mk_cronjob();
        if let Some(meta) = cron
            .spec
            .as_mut()
            .and_then(|s| s.job_template.metadata.as_mut())
        {
            meta.annotations = Some(map(&[(INSTANTIATE_ANNOTATION, "custom")]));
        }
        let job = job_from_cronjob(&cron, "batch/v1", &[], &[], &none()).expect("built");
        assert_eq!(
            job.metadata.annotations,
            Some(map(&[(INSTANTIATE_ANNOTATION, "custom")]))
        );
    }

    #[test]
    fn a_cronjob_job_is_the_same_every_time() {
        let env = [EnvMarker::new("job", "STAKATER_CFG_CONFIGMAP", "h")];
        let a = job_from_cronjob(&mk_cronjob(), "batch/v1", &env, &[], &none()).expect("built");
        let b = job_from_cronjob(&mk_cronjob(), "batch/v1", &env, &[], &none()).expect("built");
        assert_eq!(a, b);
        assert_eq!(
            a.metadata.name, None,
            "the API server names it from generateName"
        );
        assert_eq!(a.metadata.creation_timestamp, None);
    }

    #[test]
    fn a_cronjob_without_uid_or_template_is_refused() {
        let mut cron = mk_cronjob();
        cron.metadata.uid = None;
        let err = job_from_cronjob(&cron, "batch/v1", &[], &[], &none()).expect_err("no uid");
        assert!(
            matches!(
                err,
                PatchError::MissingField {
                    field: "metadata.uid",
                    ..
                }
            ),
            "{err}"
        );

        let mut cron = mk_cronjob();
        cron.spec = None;
        let err = job_from_cronjob(&cron, "batch/v1", &[], &[], &none()).expect_err("no spec");
        assert!(
            matches!(err, PatchError::MissingField { field: "spec", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_cronjob_marker_for_a_missing_container_is_refused() {
        let env = [EnvMarker::new("other", "STAKATER_CFG_CONFIGMAP", "h")];
        let err = job_from_cronjob(&mk_cronjob(), "batch/v1", &env, &[], &none())
            .expect_err("no such container");
        assert!(
            matches!(&err, PatchError::NoSuchContainer(c) if c == "other"),
            "{err}"
        );
    }

    // ---- recreated_job -----------------------------------------------------

    fn mk_job(manual_selector: Option<bool>) -> Job {
        let template_labels = [
            ("app", "batch"),
            ("controller-uid", "old-uid"),
            ("job-name", "migrate"),
            ("batch.kubernetes.io/controller-uid", "old-uid"),
            ("batch.kubernetes.io/job-name", "migrate"),
        ];
        Job {
            metadata: ObjectMeta {
                name: Some("migrate".to_owned()),
                namespace: Some("ns".to_owned()),
                uid: Some("old-uid".to_owned()),
                resource_version: Some("99".to_owned()),
                generation: Some(1),
                creation_timestamp: Some(Time(Default::default())),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                labels: Some(map(&[("app", "batch"), ("controller-uid", "old-uid")])),
                annotations: Some(map(&[("keep", "me")])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".to_owned(),
                    kind: "CronJob".to_owned(),
                    name: "owner".to_owned(),
                    uid: "owner-uid".to_owned(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(JobSpec {
                manual_selector,
                selector: Some(LabelSelector {
                    match_labels: Some(map(&[("controller-uid", "old-uid")])),
                    ..LabelSelector::default()
                }),
                template: mk_template(
                    &template_labels,
                    vec![mk_container("job", &[("STAKATER_CFG_CONFIGMAP", "old")])],
                ),
                ..JobSpec::default()
            }),
            status: Some(JobStatus {
                succeeded: Some(1),
                ..JobStatus::default()
            }),
        }
    }

    #[test]
    fn a_recreated_job_drops_server_fields_selector_and_controller_labels() {
        let env = [EnvMarker::new("job", "STAKATER_CFG_CONFIGMAP", "new")];
        let job = recreated_job(&mk_job(None), &env, &[], &map(&[("pod", "note")])).expect("built");

        let meta = &job.metadata;
        assert_eq!(meta.name.as_deref(), Some("migrate"));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        assert_eq!(meta.uid, None);
        assert_eq!(meta.resource_version, None);
        assert_eq!(meta.generation, None);
        assert_eq!(meta.creation_timestamp, None);
        assert_eq!(meta.managed_fields, None);
        // The Job's own labels, annotations and owners stay, as Reloader keeps them.
        assert_eq!(
            meta.labels,
            Some(map(&[("app", "batch"), ("controller-uid", "old-uid")]))
        );
        assert_eq!(meta.annotations, Some(map(&[("keep", "me")])));
        assert_eq!(meta.owner_references.as_ref().map(Vec::len), Some(1));
        assert_eq!(job.status, None);

        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.selector, None);
        let template_meta = spec.template.metadata.as_ref().expect("template metadata");
        assert_eq!(template_meta.labels, Some(map(&[("app", "batch")])));
        assert_eq!(template_meta.annotations, Some(map(&[("pod", "note")])));
        assert_eq!(
            container_env(&spec.template, "job"),
            pairs(&[("STAKATER_CFG_CONFIGMAP", "new")])
        );
    }

    #[test]
    fn a_manual_selector_job_keeps_its_selector_and_labels() {
        let original = mk_job(Some(true));
        let job = recreated_job(&original, &[], &[], &none()).expect("built");
        let (before, after) = (
            original.spec.as_ref().expect("spec"),
            job.spec.as_ref().expect("spec"),
        );
        assert_eq!(after.selector, before.selector);
        assert_eq!(after.template.metadata, before.template.metadata);
    }

    #[test]
    fn a_job_without_spec_is_refused() {
        let mut job = mk_job(None);
        job.spec = None;
        let err = recreated_job(&job, &[], &[], &none()).expect_err("no spec");
        assert!(
            matches!(
                err,
                PatchError::MissingField {
                    kind: "Job",
                    field: "spec"
                }
            ),
            "{err}"
        );
    }

    // ---- markers on typed templates --------------------------------------

    #[test]
    fn markers_replace_in_place_or_append_by_container_name() {
        let mut template = mk_template(
            &[],
            vec![
                mk_container("a", &[("STAKATER_X_SECRET", "old"), ("PLAIN", "p")]),
                mk_container("b", &[("PLAIN", "q")]),
            ],
        );
        let env = [
            EnvMarker::new("b", "STAKATER_Y_CONFIGMAP", "y"),
            EnvMarker::new("a", "STAKATER_X_SECRET", "new"),
        ];
        apply_markers(&mut template, &env, &[], &none()).expect("applied");
        assert_eq!(
            container_env(&template, "a"),
            pairs(&[("STAKATER_X_SECRET", "new"), ("PLAIN", "p")])
        );
        assert_eq!(
            container_env(&template, "b"),
            pairs(&[("PLAIN", "q"), ("STAKATER_Y_CONFIGMAP", "y")])
        );
    }

    #[test]
    fn a_marker_over_a_value_from_variable_becomes_a_plain_value() {
        let mut container = mk_container("a", &[]);
        container.env = Some(vec![EnvVar {
            name: "STAKATER_X_SECRET".to_owned(),
            value: None,
            value_from: Some(Default::default()),
        }]);
        let mut containers = [container];
        set_env(
            &mut containers,
            &[EnvMarker::new("a", "STAKATER_X_SECRET", "h")],
        )
        .expect("set");
        assert_eq!(
            containers[0].env,
            Some(vec![EnvVar {
                name: "STAKATER_X_SECRET".to_owned(),
                value: Some("h".to_owned()),
                value_from: None,
            }])
        );
    }

    #[test]
    fn markers_on_a_template_without_spec_are_refused() {
        let mut template = PodTemplateSpec::default();
        let env = [EnvMarker::new("app", "STAKATER_X_SECRET", "h")];
        let err = apply_markers(&mut template, &env, &[], &none()).expect_err("no containers");
        assert!(
            matches!(&err, PatchError::NoSuchContainer(c) if c == "app"),
            "{err}"
        );
        // Annotations alone need no spec.
        apply_markers(&mut template, &[], &[], &map(&[("a", "b")])).expect("applied");
        let annotations = template.metadata.and_then(|m| m.annotations);
        assert_eq!(annotations, Some(map(&[("a", "b")])));
    }

    // ---- pause, resume, restart ------------------------------------------

    #[test]
    fn pause_and_resume_patches() {
        let key = "deployment.reloader.stakater.com/paused-at";
        assert_eq!(
            pause_patch(key, "2024-05-01T10:00:00Z"),
            json!({"spec":{"paused":true},"metadata":{"annotations":{key:"2024-05-01T10:00:00Z"}}})
        );
        assert_eq!(
            resume_patch(key),
            json!({"spec":{"paused":false},"metadata":{"annotations":{key:null}}})
        );
    }

    #[test]
    fn restart_at_patch_sets_only_restart_at() {
        assert_eq!(
            restart_at_patch("2024-05-01T10:00:00Z"),
            json!({"spec":{"restartAt":"2024-05-01T10:00:00Z"}})
        );
    }
}
