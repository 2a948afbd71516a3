//! The library's pod reporter (feature `kube`) on the real control plane: a followed
//! config's outcomes in the pod's `rekindle.io/applied` annotation, and two writers on
//! one pod keeping each other's entries.
#![cfg(feature = "kube")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use prometheus_client::registry::Registry;
use rekindle::report::{
    ANNOTATION, PodRef, PodReporter, Report, ReportMetrics, Result as Outcome, SourceReport,
};
use rekindle::{Reloadable, Snapshot, ValidationError};
use rekindle_testenv::ControlPlane;

const NEEDS: &str = "needs the control plane (scripts/provision-k8s.sh)";
const WITHIN: Duration = Duration::from_secs(20);

async fn mk_pod(client: &kube::Client, name: &str) -> PodRef {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    PodRef {
        namespace: "default".into(),
        name: name.into(),
    }
}

/// Polls the pod's report every 20 ms until `done` holds for it; returns it.
async fn wait_report(
    client: &kube::Client,
    pod: &str,
    what: &str,
    done: impl Fn(&Report) -> bool,
) -> Report {
    let api = Api::<Pod>::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let pod = api.get(pod).await.unwrap();
        let report = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION))
            .map(|text| Report::parse(text).unwrap())
            .unwrap_or_default();
        if done(&report) {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; report: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn mk_snapshot(mode: &str) -> Snapshot {
    Snapshot::from_entries([("mode", mode)])
}

fn reports(report: &Report, source: &str, snapshot: &Snapshot, result: Outcome) -> bool {
    report
        .sources
        .get(source)
        .is_some_and(|s| s.digest == *snapshot.digest() && s.result == result)
}

#[tokio::test]
#[ignore = "needs the control plane (scripts/provision-k8s.sh)"]
async fn a_followed_config_reports_what_it_applied_and_rejected() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let client = cluster.client();
    let pod = mk_pod(&client, "app-1").await;
    let config = Reloadable::builder_with(|s: &Snapshot| Ok(s.clone()))
        .validate(|s: &Snapshot| match s.get_str("mode") {
            Some("bad") => Err(ValidationError::for_key("mode", "must not be bad")),
            _ => Ok(()),
        })
        .build(Snapshot::from_entries::<&str, &str, _>([]));
    let first = mk_snapshot("good");
    config.apply(&first).unwrap();

    let reporter = PodReporter::spawn(client.clone(), pod, None);
    reporter.follow(&config, "configmap/app");
    // The config in force when following starts.
    wait_report(&client, "app-1", "the config in force", |r| {
        reports(r, "configmap/app", &first, Outcome::Applied)
    })
    .await;

    let bad = mk_snapshot("bad");
    config.apply(&bad).unwrap_err();
    let report = wait_report(&client, "app-1", "the rejection", |r| {
        reports(r, "configmap/app", &bad, Outcome::Rejected)
    })
    .await;
    let reason = report.sources["configmap/app"].reason.clone().unwrap();
    assert!(
        reason.contains("mode") && reason.contains("must not be bad"),
        "{reason}"
    );

    let second = mk_snapshot("better");
    config.apply(&second).unwrap();
    wait_report(&client, "app-1", "the next change", |r| {
        reports(r, "configmap/app", &second, Outcome::Applied)
    })
    .await;
    // A rollback puts the first content back in force: that is what the pod runs.
    config.rollback().unwrap();
    wait_report(&client, "app-1", "the rollback", |r| {
        reports(r, "configmap/app", &first, Outcome::Applied)
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the control plane (scripts/provision-k8s.sh)"]
async fn two_writers_on_one_pod_keep_each_others_entries() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let client = cluster.client();
    let pod = mk_pod(&client, "app-2").await;
    let mut registry = Registry::default();
    let first_metrics = ReportMetrics::register(&mut registry);
    // Say, a sidecar syncing the ConfigMap and another syncing the Secret.
    let first = PodReporter::spawn(client.clone(), pod.clone(), Some(first_metrics));
    let second = PodReporter::spawn(client.clone(), pod, None);
    let (a1, a2, b1) = (mk_snapshot("a1"), mk_snapshot("a2"), mk_snapshot("b1"));
    let applied = |s: &Snapshot| SourceReport::now(*s.digest(), Outcome::Applied, None);

    first.report("configmap/app", applied(&a1));
    wait_report(&client, "app-2", "the first writer", |r| {
        reports(r, "configmap/app", &a1, Outcome::Applied)
    })
    .await;
    // The second writer reads the pod before its first write: it keeps the first's entry.
    second.report("secret/db", applied(&b1));
    let report = wait_report(&client, "app-2", "the second writer", |r| {
        reports(r, "secret/db", &b1, Outcome::Applied)
    })
    .await;
    assert!(
        reports(&report, "configmap/app", &a1, Outcome::Applied),
        "{report:?}"
    );

    // The first writer's view of the pod is now out of date: its PATCH is refused
    // (409), it reads the pod again and keeps the second writer's entry.
    first.report("configmap/app", applied(&a2));
    let report = wait_report(&client, "app-2", "the first writer again", |r| {
        reports(r, "configmap/app", &a2, Outcome::Applied)
    })
    .await;
    assert!(
        reports(&report, "secret/db", &b1, Outcome::Applied),
        "{report:?}"
    );
    assert_eq!(report.sources.len(), 2, "{report:?}");

    // The reporter counts a PATCH once its response is in, which can be after the
    // poll above saw the pod: wait for the count, then check nothing else was counted.
    let success = "rekindle_report_patches_total{result=\"success\"} 2\n";
    let deadline = tokio::time::Instant::now() + WITHIN;
    let text = loop {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        if text.contains(success) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the second success; {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        text.contains("rekindle_report_patches_total{result=\"conflict\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("result=\"failure\""), "{text}");
}
