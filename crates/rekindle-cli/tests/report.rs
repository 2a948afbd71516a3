//! `--report-pod` on the real control plane. Pods do not run there: the test creates Pod
//! objects and runs `rekindle watch` / `rekindle sync` as host processes with
//! `POD_NAME` / `POD_NAMESPACE` set to them, as the downward API would.
#![cfg(feature = "kube")]
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use rekindle::Snapshot;
use rekindle::report::{ANNOTATION, Report, Result as Outcome};
use rekindle_testenv::ControlPlane;
use serde_json::json;
use support::{Rekindle, Volume, free_port, http_get, wait_for};

const NEEDS: &str = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)";
const SECRET_LIKE: &str = "hunter2-s3cr3t-value";

async fn mk_pod(client: &kube::Client, name: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

async fn report_of(client: &kube::Client, pod: &str) -> Option<Report> {
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .get(pod)
        .await
        .ok()?;
    let text = pod.metadata.annotations?.get(ANNOTATION)?.clone();
    Some(Report::parse(&text).unwrap())
}

/// Polls the pod's report until `check` holds.
async fn wait_report(
    client: &kube::Client,
    pod: &str,
    what: &str,
    under_test: &Rekindle,
    mut check: impl FnMut(&Report) -> bool,
) -> Report {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(report) = report_of(client, pod).await
            && check(&report)
        {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; report {:?}; log:\n{}",
            report_of(client, pod).await,
            under_test.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reporting(
    args: &[&str],
    pod: &str,
    kubeconfig: &std::path::Path,
    dir: &std::path::Path,
) -> Rekindle {
    let mut command = Rekindle::command();
    command
        .args(args)
        .arg("--report-pod")
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", pod)
        .env("POD_NAMESPACE", "default")
        .env_remove("KUBERNETES_SERVICE_HOST");
    Rekindle::spawn(command, dir.join(format!("{pod}.log")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn each_outcome_is_reported_once_on_the_pod_and_never_a_value() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let client = cluster.client();
    mk_pod(&client, "web-1").await;
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "good v1")]);
    let source = volume.dir.display().to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let rk = reporting(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().unwrap(),
            "--exec",
            "true",
            "--validate",
            "! grep -q bad \"$REKINDLE_DIR/app.conf\"",
            "--listen",
            &listen,
        ],
        "web-1",
        cluster.kubeconfig(),
        tmp.path(),
    );

    // At start: the content in force, applied.
    let first = Snapshot::read(&volume.dir).unwrap().digest().to_string();
    let report = wait_report(&client, "web-1", "the start", &rk, |r| {
        r.sources
            .get(&source)
            .is_some_and(|s| s.digest.to_string() == first)
    })
    .await;
    assert_eq!(report.sources[&source].result, Outcome::Applied);

    // A change: applied, with its digest.
    volume.write(&[("app.conf", "good v2")]);
    let second = Snapshot::read(&volume.dir).unwrap().digest().to_string();
    wait_report(&client, "web-1", "the change", &rk, |r| {
        r.sources[&source].digest.to_string() == second
            && r.sources[&source].result == Outcome::Applied
    })
    .await;

    // A change the validation refuses: rejected, with the reason, and no value.
    volume.write(&[("app.conf", &format!("bad {SECRET_LIKE}"))]);
    let third = Snapshot::read(&volume.dir).unwrap().digest().to_string();
    let report = wait_report(&client, "web-1", "the rejection", &rk, |r| {
        r.sources[&source].digest.to_string() == third
    })
    .await;
    let rejected = &report.sources[&source];
    assert_eq!(rejected.result, Outcome::Rejected);
    assert_eq!(
        rejected.reason.as_deref(),
        Some("validation failed: exit code 1")
    );
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .get("web-1")
        .await
        .unwrap();
    let raw = serde_json::to_string(&pod.metadata.annotations).unwrap();
    assert!(
        !raw.contains(SECRET_LIKE) && !raw.contains("good v"),
        "{raw}"
    );

    // One PATCH per outcome: start, change, rejection. A PATCH is counted once its
    // response is in, which can be after the poll above saw the pod.
    let success = "rekindle_report_patches_total{result=\"success\"} 3\n";
    wait_for("the third successful PATCH to be counted", || {
        http_get(port, "/metrics").is_some_and(|(_, metrics)| metrics.contains(success))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn an_unverified_reload_is_failed_and_sync_reports_the_object() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let client = cluster.client();
    mk_pod(&client, "web-2").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let mk_cm = |v: &str| ConfigMap {
        metadata: ObjectMeta {
            name: Some("app".into()),
            ..ObjectMeta::default()
        },
        data: Some([("v".to_owned(), v.to_owned())].into()),
        ..ConfigMap::default()
    };
    cms.create(&PostParams::default(), &mk_cm("1"))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("config");
    // A verify URL nobody answers: every reload fails verification.
    let dead = format!("http://127.0.0.1:{}/config", free_port());
    let rk = reporting(
        &[
            "sync",
            "--configmap",
            "app",
            "--to",
            dir.to_str().unwrap(),
            "--exec",
            "true",
            "--verify-url",
            &dead,
            "--verify-timeout",
            "500ms",
        ],
        "web-2",
        cluster.kubeconfig(),
        tmp.path(),
    );
    wait_report(&client, "web-2", "the start", &rk, |r| {
        r.sources
            .get("configmap/app")
            .is_some_and(|s| s.result == Outcome::Applied)
    })
    .await;
    let mut current = cms.get("app").await.unwrap();
    current.data = mk_cm("2").data;
    cms.replace("app", &PostParams::default(), &current)
        .await
        .unwrap();
    let want = Snapshot::from_entries([("v", "2")]).digest().to_string();
    let report = wait_report(&client, "web-2", "the failed verification", &rk, |r| {
        r.sources["configmap/app"].digest.to_string() == want
    })
    .await;
    let failed = &report.sources["configmap/app"];
    assert_eq!(failed.result, Outcome::Failed);
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap()
            .starts_with("verify failed: http://127.0.0.1:"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and kubelet writer (scripts/provision-k8s.sh)"]
async fn a_forbidden_report_is_said_once_and_reloads_go_on() {
    let cluster = ControlPlane::start().await.expect(NEEDS);
    let client = cluster.client();
    mk_pod(&client, "web-3").await;
    Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("no-rights".into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let token = cluster
        .service_account_token("default", "no-rights")
        .await
        .unwrap();
    let kubeconfig = cluster.kubeconfig_for_token(&token).unwrap();
    let (tmp, volume) = Volume::in_tempdir(&[("app.conf", "v1")]);
    let acted = tmp.path().join("acted");
    let exec = format!("echo x >> {}", acted.display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let rk = reporting(
        &[
            "watch",
            "--dir",
            volume.dir.to_str().unwrap(),
            "--exec",
            &exec,
            "--listen",
            &listen,
        ],
        "web-3",
        &kubeconfig,
        tmp.path(),
    );
    rk.wait_log("the pod may not be annotated", 1);
    for (n, v) in ["v2", "v3"].iter().enumerate() {
        volume.write(&[("app.conf", v)]);
        support::wait_for("the reload", || support::line_count(&acted) == n + 1);
    }
    // The reports are sent after the actions, by a task of their own: "said once"
    // holds once all three were refused.
    let refused = "rekindle_report_patches_total{result=\"forbidden\"} 3\n";
    wait_for("the three reports to be refused", || {
        http_get(port, "/metrics").is_some_and(|(_, metrics)| metrics.contains(refused))
    });
    assert_eq!(rk.count_in_log("the pod may not be annotated"), 1);
    assert!(
        rk.log_text()
            .contains("resources: [\"pods\"], verbs: [\"patch\"]")
    );
    assert!(report_of(&client, "web-3").await.is_none());
}
