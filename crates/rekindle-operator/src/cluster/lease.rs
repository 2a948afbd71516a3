//! `--enable-ha`: leader election on a coordination.k8s.io/v1 Lease, with
//! Reloader's timings (lease 15 s, renew deadline 10 s, retry every 2 s).
//!
//! Every replica keeps its watches and index warm; only the holder of the
//! lease rolls workloads. Leadership is published on a `watch` channel. A
//! leader that cannot renew within the deadline steps down (and keeps running
//! as a standby) instead of exiting, so a short apiserver outage does not
//! restart the pod.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::decide::leadership::{Judgement, LeaseRecord, Observer};

/// Reloader's (and client-go's usual) timings.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Runs the election for `identity` until `stop` resolves, then releases the
/// lease if held, so that a standby takes over at once rather than after the
/// lease duration.
pub async fn run(
    api: Api<Lease>,
    name: String,
    identity: String,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut observer = Observer::default();
    let mut last_renewed: Option<Instant> = None;
    loop {
        let now = Instant::now();
        // A request that hangs must not keep a leader that cannot renew in
        // office: it counts as a failed renewal.
        let result = match tokio::time::timeout(
            RETRY_PERIOD,
            attempt(&api, &name, &identity, &mut observer),
        )
        .await
        {
            Ok(result) => result.map_err(|e| crate::cluster::errors::Explain(&e).to_string()),
            Err(_) => Err(format!("no answer within {RETRY_PERIOD:?}")),
        };
        match result {
            Ok(true) => {
                if last_renewed.is_none() {
                    tracing::info!(lease = %name, %identity, "became the leader");
                }
                last_renewed = Some(now);
                leader.send_if_modified(|l| !std::mem::replace(l, true));
            }
            Ok(false) => {
                if last_renewed.take().is_some() {
                    tracing::warn!(lease = %name, %identity, "lost the lease to another replica; standing by");
                }
                leader.send_if_modified(|l| std::mem::replace(l, false));
            }
            Err(error) => {
                tracing::warn!(lease = %name, %error, "lease request failed");
                if last_renewed.is_some_and(|at| now.duration_since(at) >= RENEW_DEADLINE) {
                    tracing::warn!(lease = %name, "could not renew the lease within {RENEW_DEADLINE:?}; standing by");
                    last_renewed = None;
                    leader.send_if_modified(|l| std::mem::replace(l, false));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_PERIOD) => {}
            _ = stop.changed() => break,
        }
    }
    if *leader.borrow() {
        leader.send_replace(false);
        if let Err(error) = release(&api, &name, &identity).await {
            tracing::warn!(lease = %name, error = %crate::cluster::errors::Explain(&error), "could not release the lease");
        } else {
            tracing::info!(lease = %name, "released the lease");
        }
    }
}

/// One round: read the lease, judge it, and create, renew or take it over.
/// `Ok(true)` when we hold it afterwards.
async fn attempt(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
    observer: &mut Observer,
) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(held_by(identity, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            // Another replica created it first: judge it next round.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let record = LeaseRecord {
        holder: spec.holder_identity.clone(),
        duration: spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(LEASE_DURATION, Duration::from_secs),
        renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
    };
    let next = match observer.judge(identity, &record, Instant::now()) {
        Judgement::Theirs => return Ok(false),
        Judgement::Ours => LeaseSpec {
            renew_time: Some(MicroTime(Timestamp::now())),
            ..spec
        },
        Judgement::Free => held_by(identity, Some(&spec)),
    };
    lease.spec = Some(next);
    // `replace` carries the resourceVersion we read: if another replica wrote
    // in between, this fails with a conflict instead of overwriting it.
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

fn held_by(identity: &str, previous: Option<&LeaseSpec>) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: Some(if previous.is_some() {
            transitions + 1
        } else {
            transitions
        }),
        ..LeaseSpec::default()
    }
}

async fn release(api: &Api<Lease>, name: &str, identity: &str) -> Result<(), kube::Error> {
    let mut lease = api.get(name).await?;
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(identity) {
        return Ok(());
    }
    spec.holder_identity = Some(String::new());
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    api.replace(name, &PostParams::default(), &lease)
        .await
        .map(drop)
}
