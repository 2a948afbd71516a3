//! Every workload kind on the real 1.20 server: DaemonSets and StatefulSets
//! are patched (their controllers record a new ControllerRevision), a CronJob
//! (batch/v1beta1 there) is instantiated as one Job, a suspended one is not,
//! and a Job is deleted and re-created.

mod support;

use rekindle_operator::model::{KeyUse, SourceKind};
use support::*;

const NS: &str = "apps";
const VAR: &str = "STAKATER_KIND_CONFIG_CONFIGMAP";

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn every_workload_kind_is_rolled_its_own_way() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    assert_eq!(
        cluster.cron_jobs.api_version, "batch/v1beta1",
        "this suite runs against Kubernetes 1.20"
    );

    put_config_map(client, NS, "kind-config", &[("v", "0")]).await;
    let uses_config = env_from_config_map("kind-config");
    for kind in [Kind::DaemonSet, Kind::StatefulSet, Kind::Job] {
        let name = format!("{kind:?}").to_ascii_lowercase();
        workload(kind, &name)
            .auto()
            .app(uses_config.clone())
            .create(&cluster, NS)
            .await;
    }
    workload(Kind::CronJob, "cron")
        .auto()
        .app(uses_config.clone())
        .create(&cluster, NS)
        .await;
    workload(Kind::CronJob, "cron-suspended")
        .auto()
        .suspended()
        .app(uses_config.clone())
        .create(&cluster, NS)
        .await;
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 1).await;
    for app in ["daemonset", "statefulset"] {
        eventually(
            &format!("the first ControllerRevision of {app}"),
            || async { (controller_revisions(client, NS, app).await == 1).then_some(()) },
        )
        .await;
    }
    let job_uid = uid(&cluster, Kind::Job, NS, "job").await.expect("job");
    let cron_uid = uid(&cluster, Kind::CronJob, NS, "cron")
        .await
        .expect("cron");
    let suspended_uid = uid(&cluster, Kind::CronJob, NS, "cron-suspended")
        .await
        .expect("cron-suspended");

    let operator = cluster.operator(&[]).await;
    let key = cluster.hash_key().await;
    put_config_map(client, NS, "kind-config", &[("v", "1")]).await;
    let marker = keyed_marker(
        &key,
        SourceKind::ConfigMap,
        NS,
        "kind-config",
        &[("v", "1")],
        KeyUse::All,
    );

    // DaemonSet and StatefulSet: patched, and their controllers make a new
    // ControllerRevision for the new template.
    for (kind, name) in [
        (Kind::DaemonSet, "daemonset"),
        (Kind::StatefulSet, "statefulset"),
    ] {
        wait_marker(&cluster, kind, NS, name, "app", VAR, &marker).await;
        eventually(
            &format!("a second ControllerRevision of {name}"),
            || async { (controller_revisions(client, NS, name).await == 2).then_some(()) },
        )
        .await;
    }

    // CronJob: one Job made from its template, as `kubectl create job --from`.
    let jobs = eventually("a Job from the CronJob", || async {
        let jobs = jobs_owned_by(client, NS, &cron_uid).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    let job = &jobs[0];
    assert!(
        job.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("cron-")),
        "{:?}",
        job.metadata.name
    );
    assert_eq!(
        job.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("cronjob.kubernetes.io/instantiate"))
            .map(String::as_str),
        Some("manual")
    );
    let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str()
        ),
        ("batch/v1beta1", "CronJob", "cron")
    );
    assert_eq!(owner.controller, Some(true));
    let containers = &job
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod")
        .containers;
    let env = containers[0].env.as_ref().expect("env");
    assert!(
        env.iter()
            .any(|e| e.name == VAR && e.value.as_deref() == Some(marker.as_str())),
        "{env:?}"
    );
    // The CronJob itself is not changed (batch/v1beta1 keeps no generation).
    assert!(
        markers(&cluster, Kind::CronJob, NS, "cron")
            .await
            .is_empty()
    );

    // Job: deleted and made again under the same name, with the marker.
    let new_uid = eventually("the Job re-created with the marker", || async {
        let new_uid = uid(&cluster, Kind::Job, NS, "job").await?;
        let value = env_of(&cluster, Kind::Job, NS, "job", "app", VAR).await?;
        (new_uid != job_uid && value == marker).then_some(new_uid)
    })
    .await;

    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    // Once each.
    assert_eq!(jobs_owned_by(client, NS, &cron_uid).await.len(), 1);
    assert_eq!(uid(&cluster, Kind::Job, NS, "job").await, Some(new_uid));
    for (kind, name) in [
        (Kind::DaemonSet, "daemonset"),
        (Kind::StatefulSet, "statefulset"),
    ] {
        assert_eq!(generation(&cluster, kind, NS, name).await, 2, "{name}");
    }
    // A suspended CronJob makes no Job.
    assert!(jobs_owned_by(client, NS, &suspended_uid).await.is_empty());
    // DaemonSet, StatefulSet, CronJob, Job; the suspended CronJob counts as nothing.
    operator.assert_rollouts(4 + barrier.rollouts()).await;
}

/// `--reload-on-delete` on a Job, as Reloader does it: the Job carrying the variable
/// is deleted and re-created without it; nothing else is rolled.
#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn a_deleted_source_is_removed_from_a_job_by_re_creating_it() {
    const NS: &str = "apps-delete";
    const VAR: &str = "STAKATER_DEL_CONFIG_CONFIGMAP";
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    create_namespace(client, NS).await;
    put_config_map(client, NS, "del-config", &[("v", "0")]).await;
    workload(Kind::Job, "job")
        .auto()
        .app(env_from_config_map("del-config"))
        .create(&cluster, NS)
        .await;
    let mut barrier = Barrier::create(&cluster, NS, SourceKind::ConfigMap, 1).await;
    let first_uid = uid(&cluster, Kind::Job, NS, "job").await.expect("job");

    let operator = cluster
        .operator(&["--cooldown=0s", "--reload-on-delete=true"])
        .await;
    let key = cluster.hash_key().await;
    put_config_map(client, NS, "del-config", &[("v", "1")]).await;
    let marker = keyed_marker(
        &key,
        SourceKind::ConfigMap,
        NS,
        "del-config",
        &[("v", "1")],
        KeyUse::All,
    );
    let marked_uid = eventually("the Job re-created with the marker", || async {
        let now = uid(&cluster, Kind::Job, NS, "job").await?;
        let value = env_of(&cluster, Kind::Job, NS, "job", "app", VAR).await?;
        (now != first_uid && value == marker).then_some(now)
    })
    .await;

    delete_config_map(client, NS, "del-config").await;
    let cleared_uid = eventually("the Job re-created without the variable", || async {
        let now = uid(&cluster, Kind::Job, NS, "job").await?;
        let value = env_of(&cluster, Kind::Job, NS, "job", "app", VAR).await;
        (now != marked_uid && value.is_none()).then_some(now)
    })
    .await;

    barrier.pass(&cluster).await;
    operator.assert_idle().await;
    // Re-created once for the change and once for the delete, not again.
    assert_eq!(uid(&cluster, Kind::Job, NS, "job").await, Some(cleared_uid));
    operator.assert_rollouts(2 + barrier.rollouts()).await;
}
