//! `rekindle status KIND/NAME`: whether a workload's pods run the current content of
//! their ConfigMaps and Secrets, from the reports their rekindle writes
//! (`--report-pod`, annotation `rekindle.io/applied`).
//!
//! Where things live:
//! - `workload`: `KIND/NAME`, the pods' selector, what the pod template names;
//! - `compare`: pods, reports and current contents to states (pure);
//! - `wait`: what is known at each moment, fed by the watches (pure);
//! - `objects`: the fields of workloads and pods it decodes, and no more;
//! - `render`: the table, the JSON, the progress and failure lines (pure);
//! - this file: the I/O. The workload is read once (a clear error if it is missing),
//!   then everything is watched, never polled: the workload (its template may change),
//!   its pods (by its selector, server-side), and each ConfigMap and Secret a pod
//!   reports (by name, so RBAC may restrict the reader to those names; one only named
//!   by the template is not read). Without
//!   `--wait`, the first complete picture is printed; with it, every change is
//!   compared as it arrives, until every pod is current or `--timeout` passes.

mod compare;
mod objects;
mod render;
mod wait;
mod workload;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use rekindle::Snapshot;
use rekindle::api::{ApiError, ApiEvent, ObjectRef};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::duration::{Bounds, Human};
use compare::{ObjectKey, PodFacts};
use objects::{PodObject, PodParts, WorkloadObject};
use render::Output;
use wait::{Knowledge, PodSeen};
use workload::{WorkloadError, WorkloadFacts, WorkloadRef};

pub const ABOUT: &str =
    "Show whether a workload's pods run the current content of their ConfigMaps and Secrets";

pub const LONG_ABOUT: &str = "\
Show, pod by pod, whether a Deployment, StatefulSet or DaemonSet runs the current
content of its ConfigMaps and Secrets: what `kubectl rollout status` is for a
rollout, for a hot reload.

Each pod's rekindle (watch, run or sync with --report-pod) writes what it did
with each source into the pod's annotation rekindle.io/applied: the digest of
the content, and whether it was applied, rejected by --validate, or failed.
status computes the digest of each ConfigMap and Secret from the API and says,
per pod and source:

  current    the pod applied the current content
  stale      the pod's latest outcome is about other content (the kubelet has
             not projected the update yet, or it is not verified yet)
  rejected   the pod refused the current content (--validate failed)
  failed     an action on the current content failed
  unknown    the pod does not report this source

A report about a directory (rekindle watch --dir /etc/app) is matched to the
volume the pod mounts at exactly that path (volumeMounts[].mountPath, then
volumes[]), and compared with the digest of the files the kubelet writes for it
(items and projected volumes included). configmap/NAME and secret/NAME reports
(rekindle sync) are that object, whole. Sources no pod reports (read through
environment variables, say) are listed but not waited for.

Exit status: 0 when every pod runs the current content of every reported
source; 1 when not (without --wait: now; with it: by --timeout), or on an error;
2 on a usage error.

The credentials need get, list and watch on the workload kind and pods of the
namespace, and on the ConfigMaps and Secrets the pods report
(deploy/rbac/status.yaml).";

pub const EXAMPLES: &str = "\
Examples:
  # Where each pod of a Deployment stands, now
  rekindle status deployment/web -n shop

  # CI/CD: after kubectl apply, wait until every pod runs the new config
  kubectl apply -f config.yaml
  rekindle status deployment/web -n shop --wait --timeout 3m

  # For a script: one JSON object
  rekindle status statefulset/db -o json | jq '.podStates[] | select(.state != \"current\")'";

/// `--timeout`: zero waits for ever, as kubectl's.
const TIMEOUT: Bounds = Bounds {
    min: Duration::ZERO,
    max: Duration::from_secs(24 * 3600),
    why_min: "",
};

/// `rekindle status`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The workload: deployment/NAME, statefulset/NAME or daemonset/NAME (also
    /// deploy, sts, ds).
    #[arg(value_name = "KIND/NAME", value_parser = parse_target)]
    pub target: WorkloadRef,
    /// Its namespace; by default the kubeconfig's (in a pod, the pod's own).
    #[arg(short = 'n', long, value_name = "NS", value_parser = parse_namespace)]
    pub namespace: Option<String>,
    /// Wait until every pod runs the current content of every source it reports,
    /// following changes made meanwhile (a source updated again, pods of a rollout).
    #[arg(long)]
    pub wait: bool,
    /// How long to wait: with --wait, for convergence; without, for a complete
    /// picture. 0 waits for ever.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = TIMEOUT)]
    pub timeout: Duration,
    /// Output format: a table for people, or one JSON object for scripts. Progress
    /// and errors go to stderr.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Output,
}

fn parse_target(text: &str) -> Result<WorkloadRef, String> {
    workload::parse_target(text).map_err(|e| e.to_string())
}

fn parse_namespace(text: &str) -> Result<String, String> {
    workload::parse_namespace(text).map_err(|e| e.to_string())
}

/// What the watches tell the loop.
enum Update {
    /// The workload, re-read; `None`: deleted.
    Workload(Option<Result<WorkloadFacts, WorkloadError>>),
    /// Boxed: a pod's spec is large, and most updates are not pods.
    Pods(Box<Event<PodSeen>>),
    /// An object's content; `None`: it does not exist.
    Object(ObjectKey, Option<Arc<Snapshot>>),
    /// Something that waiting cannot fix (a permission denied).
    Fatal(anyhow::Error),
}

type Tx = mpsc::UnboundedSender<Update>;

/// `rekindle status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = crate::sync::connect().await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let target = &args.target;
    let facts = read_workload(&client, &namespace, target).await?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_workload_watch(&client, &namespace, target, &tx);
    spawn_pod_watch(&client, &namespace, &facts, &tx);
    let mut knowledge = Knowledge::new(facts);
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    let mut shown = String::new();
    loop {
        for key in knowledge.unwatched() {
            spawn_object_watch(&client, &namespace, key, &tx);
        }
        if let Some(view) = knowledge.view() {
            if view.converged() || !args.wait {
                print(&args, &namespace, &knowledge, &view);
                return Ok(if view.converged() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            let line = render::progress(target, &view);
            if line != shown {
                eprintln!("{line}");
                shown = line;
            }
        }
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let update = tokio::select! {
            update = rx.recv() => update,
            () = expired => break,
        };
        let Some(update) = update else {
            anyhow::bail!("the watches of {target} stopped");
        };
        apply(&mut knowledge, target, &namespace, update)?;
        // Take everything already queued before comparing again.
        while let Ok(update) = rx.try_recv() {
            apply(&mut knowledge, target, &namespace, update)?;
        }
    }

    let waited = Human(args.timeout);
    match knowledge.view() {
        Some(view) => {
            print(&args, &namespace, &knowledge, &view);
            let not_current = view
                .fleet
                .pods
                .iter()
                .filter(|p| p.state != rekindle::fleet::State::Current)
                .count();
            eprintln!(
                "rekindle: timed out after {waited}: {target} has not converged; {not_current} of {} pods are not current:",
                view.fleet.pods.len()
            );
            for line in render::lagging(&view) {
                eprintln!("  {line}");
            }
            if view.fleet.pods.is_empty() {
                eprintln!("  no running pods match its selector");
            }
        }
        None => eprintln!(
            "rekindle: timed out after {waited} while reading {target}: still waiting for {}",
            knowledge.waiting_for().join(", ")
        ),
    }
    Ok(ExitCode::FAILURE)
}

fn apply(
    knowledge: &mut Knowledge,
    target: &WorkloadRef,
    namespace: &str,
    update: Update,
) -> anyhow::Result<()> {
    match update {
        Update::Workload(Some(facts)) => knowledge.workload(facts?),
        Update::Workload(None) => {
            anyhow::bail!("{target} was deleted from namespace {namespace:?}")
        }
        Update::Pods(event) => knowledge.pods(*event),
        Update::Object(key, content) => knowledge.object(key, content),
        Update::Fatal(error) => return Err(error),
    }
    Ok(())
}

fn print(args: &StatusArgs, namespace: &str, knowledge: &Knowledge, view: &compare::View) {
    let declared = &knowledge.facts().declared;
    let text = match args.output {
        Output::Table => render::table(&args.target, view, declared),
        Output::Json => render::json(&args.target, namespace, view, declared),
    };
    print!("{text}");
}

/// What to add when the API server says no.
fn rbac_hint(verb: &str, resource: &str, namespace: &str) -> String {
    format!(
        "the credentials may not {verb} {resource} in namespace {namespace:?}; rekindle status \
         needs get, list and watch on the workload, pods, configmaps and secrets of the \
         namespace (see deploy/rbac/status.yaml)"
    )
}

fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_forbidden())
}

/// Reads the workload once: its facts, or a clear error.
async fn read_workload(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
) -> anyhow::Result<WorkloadFacts> {
    let api: Api<WorkloadObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &objects::workload_resource(target.kind),
    );
    let read = api
        .get_opt(&target.name)
        .await
        .map(|o| o.map(|o| WorkloadFacts::of(target, &o)));
    match read {
        Ok(Some(facts)) => Ok(facts?),
        Ok(None) => anyhow::bail!("{target} not found in namespace {namespace:?}"),
        Err(error) if is_forbidden(&error) => Err(anyhow::anyhow!(rbac_hint(
            "get",
            target.kind.resource(),
            namespace
        )))
        .context(error.to_string()),
        Err(error) => {
            Err(error).with_context(|| format!("reading {target} in namespace {namespace:?}"))
        }
    }
}

/// Forwards a watcher's events through `convert`; a denied list or watch is fatal,
/// other errors are retried by the watcher (logged once each).
async fn forward<K>(
    api: Api<K>,
    config: watcher::Config,
    what: String,
    resource: &'static str,
    namespace: String,
    tx: Tx,
    convert: impl Fn(Event<K>) -> Option<Update>,
) where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let events = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(events);
    let mut failing = None::<String>;
    while let Some(event) = events.next().await {
        let update = match event {
            Ok(event) => {
                failing = None;
                convert(event)
            }
            Err(error) => {
                let denied = match &error {
                    watcher::Error::InitialListFailed(e)
                    | watcher::Error::WatchStartFailed(e)
                    | watcher::Error::WatchFailed(e) => is_forbidden(e),
                    watcher::Error::WatchError(status) => status.is_forbidden(),
                    _ => false,
                };
                if denied {
                    Some(Update::Fatal(
                        anyhow::anyhow!(rbac_hint("list and watch", resource, &namespace))
                            .context(error.to_string()),
                    ))
                } else {
                    let message = error.to_string();
                    if failing.as_deref() != Some(message.as_str()) {
                        tracing::warn!(watch = %what, error = %message, "watch failed; retrying");
                        failing = Some(message);
                    }
                    None
                }
            }
        };
        if let Some(update) = update
            && tx.send(update).is_err()
        {
            return;
        }
    }
}

fn spawn_workload_watch(client: &kube::Client, namespace: &str, target: &WorkloadRef, tx: &Tx) {
    let api: Api<WorkloadObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &objects::workload_resource(target.kind),
    );
    let config = watcher::Config::default().fields(&format!("metadata.name={}", target.name));
    let what = target.to_string();
    let resource = target.kind.resource();
    let target = target.clone();
    // Whether the (re-)list in progress returned the workload.
    let listed = std::sync::atomic::AtomicBool::new(true);
    let convert = move |event: Event<WorkloadObject>| match event {
        Event::Init => {
            listed.store(false, std::sync::atomic::Ordering::Relaxed);
            None
        }
        Event::InitApply(o) | Event::Apply(o) => {
            listed.store(true, std::sync::atomic::Ordering::Relaxed);
            Some(Update::Workload(Some(WorkloadFacts::of(&target, &o))))
        }
        Event::InitDone => {
            (!listed.load(std::sync::atomic::Ordering::Relaxed)).then_some(Update::Workload(None))
        }
        Event::Delete(_) => Some(Update::Workload(None)),
    };
    tokio::spawn(forward(
        api,
        config,
        what,
        resource,
        namespace.to_owned(),
        tx.clone(),
        convert,
    ));
}

/// The workload's pods, selected by the API server with the workload's selector (its
/// selector is immutable, so one watch serves for the whole run).
fn spawn_pod_watch(client: &kube::Client, namespace: &str, facts: &WorkloadFacts, tx: &Tx) {
    let api: Api<PodObject> =
        Api::namespaced_with(client.clone(), namespace, &objects::pod_resource());
    let selector = facts.selector.clone();
    let config = watcher::Config::default().labels(&selector.to_string());
    let seen = move |pod: PodObject| -> PodSeen {
        let pod = PodParts::from(pod);
        let live = workload::is_live_pod(&selector, &pod);
        (pod.name.clone(), live.then(|| PodFacts::of(pod)))
    };
    let convert = move |event: Event<PodObject>| {
        Some(Update::Pods(Box::new(match event {
            Event::Init => Event::Init,
            Event::InitApply(pod) => Event::InitApply(seen(pod)),
            Event::InitDone => Event::InitDone,
            Event::Apply(pod) => Event::Apply(seen(pod)),
            Event::Delete(pod) => Event::Delete(seen(pod)),
        })))
    };
    tokio::spawn(forward(
        api,
        config,
        "pods".to_owned(),
        "pods",
        namespace.to_owned(),
        tx.clone(),
        convert,
    ));
}

/// One ConfigMap or Secret, watched by name (`rekindle::api`): its content, changes,
/// deletion and re-creation.
fn spawn_object_watch(client: &kube::Client, namespace: &str, key: ObjectKey, tx: &Tx) {
    let object = ObjectRef {
        kind: key.0,
        namespace: Some(namespace.to_owned()),
        name: key.1.clone(),
    };
    let mut events = rekindle::api::events(client.clone(), object);
    let tx = tx.clone();
    let namespace = namespace.to_owned();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let update = match event {
                ApiEvent::Changed(snapshot) => Update::Object(key.clone(), Some(snapshot)),
                ApiEvent::Missing | ApiEvent::Deleted => Update::Object(key.clone(), None),
                ApiEvent::Failed(error) => match error.as_ref() {
                    ApiError::Forbidden { .. } => Update::Fatal(
                        anyhow::anyhow!(rbac_hint("list and watch", key.0.resource(), &namespace))
                            .context(error.to_string()),
                    ),
                    // Logged by the library; the watch retries.
                    _ => continue,
                },
                _ => continue,
            };
            if tx.send(update).is_err() {
                return;
            }
        }
    });
}
