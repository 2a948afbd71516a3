//! `rekindle status --wait`: how long after the last pod's report it returns.
//!
//! ```text
//! cargo bench -p rekindle-cli --bench status_wait
//! ```
//!
//! On the real control plane (scripts/provision-k8s.sh), with the fixture of
//! `tests/status.rs`: a Deployment of three pods mounting ConfigMap `app`, two of them
//! reporting its current digest and one an old one. Each run starts
//! `rekindle status deployment/web --wait` (the bench profile's build), waits until it
//! has printed its first progress line (it has listed the pods, read the ConfigMap, and
//! is waiting on its watches), then patches the last pod's `rekindle.io/applied`
//! annotation to the current digest. A sample runs from the instant before that PATCH
//! is sent to the instant `waitpid` returns for the process (a thread blocked in it), so
//! it includes: the PATCH request and its write to etcd, the API server's watch event to
//! the process, its comparison, printing the table, and the process's exit. The PATCH's
//! own round trip is measured alongside. Then the pod is set back to the old digest.
//! `RUNS` sets the number of runs (default 25).

#![cfg(feature = "kube")]
#![allow(clippy::unwrap_used)]

#[path = "../tests/fleet/mod.rs"]
mod fleet;

use std::time::{Duration, Instant};

use fleet::{Fleet, Reported};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--test") {
        println!("status_wait: a full run needs the control plane; skipped under --test");
        return;
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(25);
    let fleet = Fleet::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let old = Fleet::digest_of("debug");
    let now = fleet.put_config("info").await;
    let pods = fleet.pods().await;
    for pod in &pods[..2] {
        fleet
            .report(pod, &[("/etc/app", now, Reported::Applied, None)])
            .await;
    }
    let last = &pods[2];
    let mut samples = Vec::with_capacity(runs);
    let mut patches = Vec::with_capacity(runs);
    for run in 0..runs {
        fleet
            .report(last, &[("/etc/app", old, Reported::Applied, None)])
            .await;
        let mut status = fleet.status(
            &["deployment/web", "--wait", "--timeout", "60s"],
            tmp.path(),
        );
        status
            .wait_stderr(&["2 of 3 pods run configmap/app", "1 stale"])
            .await;
        let waiter = status.exit_waiter();
        let sent = Instant::now();
        fleet
            .report(last, &[("/etc/app", now, Reported::Applied, None)])
            .await;
        patches.push(sent.elapsed());
        let (code, exited) = tokio::task::spawn_blocking(move || waiter.join().unwrap())
            .await
            .unwrap();
        assert_eq!(code, 0, "run {run}: status --wait did not converge");
        samples.push(exited.duration_since(sent));
    }
    samples.sort();
    patches.sort();
    println!("status --wait: last report → exit, {runs} runs");
    println!(
        "  median {}  p90 {}  min {}  max {}",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(samples[0]),
        ms(samples[runs - 1])
    );
    println!(
        "  of which the PATCH round trip: median {}",
        ms(percentile(&patches, 0.5))
    );
}
