//! Reading and watching one named object through the API: the kube I/O of this module.
//!
//! The watch is kube-rs' `watcher` with a field selector on the object's name, so the
//! server sends nothing about other objects and RBAC may restrict the credentials to
//! that one name. The watcher reconnects by itself, re-lists after 410 Gone, and waits
//! between failures with client-go's backoff (0.8 s doubling to 30 s, with jitter).

use std::fmt::Debug;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;

use super::convert::{config_map_snapshot, secret_snapshot};
use super::error::ApiError;
use super::object::{ObjectKind, ObjectRef};
use super::tracker::{Reported, Seen, Tracker};
use crate::snapshot::Snapshot;

/// What happened to a watched object.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ApiEvent {
    /// Its content: the first read, or a new digest, or the object created again.
    Changed(Arc<Snapshot>),
    /// It does not exist (at the first list). Watched on: its creation is reported.
    Missing,
    /// It was deleted. The last content stays the one to use; its re-creation is reported.
    Deleted,
    /// The watch failed and is being retried with backoff. Reported once per distinct
    /// error, not for every retry.
    Failed(Arc<ApiError>),
}

/// The object with its namespace filled in from the client's default when not given.
pub fn resolve(client: &Client, object: &ObjectRef) -> ObjectRef {
    let mut object = object.clone();
    if object.namespace.is_none() {
        object.namespace = Some(client.default_namespace().to_owned());
    }
    object
}

fn namespace(object: &ObjectRef) -> &str {
    object.namespace.as_deref().unwrap_or("default")
}

/// Reads the object once: its snapshot, or why not ([`ApiError::NotFound`],
/// [`ApiError::Forbidden`], ...).
pub async fn get(client: &Client, object: &ObjectRef) -> Result<Snapshot, ApiError> {
    let object = resolve(client, object);
    let ns = namespace(&object);
    let read = match object.kind {
        ObjectKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get(&object.name)
            .await
            .map(|cm| config_map_snapshot(&cm)),
        ObjectKind::Secret => Api::<Secret>::namespaced(client.clone(), ns)
            .get(&object.name)
            .await
            .map(|secret| secret_snapshot(&secret)),
    };
    read.map_err(|error| ApiError::from_request(&object, error))
}

/// Watches the object: its content now, then every change, deletion and re-creation, for
/// as long as the stream is polled. Errors are reported and retried, never the end.
pub fn events(client: Client, object: ObjectRef) -> BoxStream<'static, ApiEvent> {
    let object = resolve(&client, &object);
    let ns = namespace(&object).to_owned();
    let seen = match object.kind {
        ObjectKind::ConfigMap => seen(
            Api::<ConfigMap>::namespaced(client, &ns),
            &object.name,
            config_map_snapshot,
        ),
        ObjectKind::Secret => seen(
            Api::<Secret>::namespaced(client, &ns),
            &object.name,
            secret_snapshot,
        ),
    };
    let mut tracker = Tracker::new();
    // The message of the failure last reported, so that a retry failing the same way
    // is not reported again.
    let mut failing: Option<String> = None;
    seen.filter_map(move |item| {
        let event = match item {
            Err(error) => {
                let error = ApiError::from_watch(&object, error);
                let message = error.to_string();
                if failing.as_deref() == Some(message.as_str()) {
                    None
                } else {
                    tracing::warn!(%object, error = %message, "watch failed; retrying with backoff");
                    failing = Some(message);
                    Some(ApiEvent::Failed(Arc::new(error)))
                }
            }
            Ok(seen) => {
                if failing.take().is_some() {
                    tracing::info!(%object, "watch resumed");
                }
                match tracker.on(seen) {
                    None => None,
                    Some(Reported::Changed(snapshot)) => {
                        tracing::debug!(%object, digest = %snapshot.digest().short(), keys = snapshot.len(), "object content");
                        Some(ApiEvent::Changed(snapshot))
                    }
                    Some(Reported::Missing) => {
                        tracing::warn!(%object, "object not found; waiting for it to be created");
                        Some(ApiEvent::Missing)
                    }
                    Some(Reported::Deleted) => {
                        tracing::warn!(%object, "object deleted; the last content read stays in force");
                        Some(ApiEvent::Deleted)
                    }
                }
            }
        };
        future::ready(event)
    })
    .boxed()
}

/// The watcher's events for the one object named `name`, as snapshots.
fn seen<K>(
    api: Api<K>,
    name: &str,
    snapshot: fn(&K) -> Snapshot,
) -> BoxStream<'static, Result<Seen, watcher::Error>>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, config)
        .default_backoff()
        .map(move |item| {
            item.map(|event| match event {
                watcher::Event::Init => Seen::ListStart,
                watcher::Event::InitApply(object) => Seen::Listed(snapshot(&object)),
                watcher::Event::InitDone => Seen::ListDone,
                watcher::Event::Apply(object) => Seen::Applied(snapshot(&object)),
                watcher::Event::Delete(_) => Seen::Deleted,
            })
        })
        .boxed()
}

/// A watch running on the tokio runtime, handing each [`ApiEvent`] to a handler. Dropping
/// it stops the watch.
#[derive(Debug)]
pub struct ApiWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl ApiWatcher {
    /// Starts watching `object` on the current tokio runtime (panics outside one, like
    /// `tokio::spawn`). The handler runs on the runtime, one event at a time.
    pub fn spawn<F>(client: Client, object: ObjectRef, mut handler: F) -> ApiWatcher
    where
        F: FnMut(ApiEvent) + Send + 'static,
    {
        let task = tokio::spawn(async move {
            let mut events = events(client, object);
            while let Some(event) = events.next().await {
                handler(event);
            }
        });
        ApiWatcher { task }
    }
}

impl Drop for ApiWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
