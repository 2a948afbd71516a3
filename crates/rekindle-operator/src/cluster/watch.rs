//! Watch streams, reduced at once to what the index keeps.
//!
//! Each stream is a kube-runtime `watcher` (list in small pages, then watch;
//! on `410 Gone` or a broken connection it re-lists, with backoff). The object
//! is handed to a converter on the task that received it and dropped there, so
//! a ConfigMap's data lives only as long as it takes to hash it, and a page of
//! the initial list is the most that is ever held at once.

use std::fmt::Debug;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::model::{SourceKind, WorkloadKind};

/// Objects per page of a (re-)list. Small pages bound the memory of the list:
/// with 64 KiB ConfigMaps, 50 objects are about 3 MiB.
pub const PAGE_SIZE: u32 = 50;

/// Which stream a message came from: one per kind and namespace scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub watched: Watched,
    /// `None` for a cluster-wide stream.
    pub namespace: Option<String>,
}

/// What a stream watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Watched {
    Source(SourceKind),
    Workload(WorkloadKind),
    Namespaces,
    /// Pods, metadata only (`PartialObjectMeta<Pod>`), for the fleet view.
    Pods,
    /// SecretProviderClasses themselves (`--enable-csi-integration`), for their
    /// `ignore` and `match` annotations; their content comes from the pod statuses.
    ClassFlags,
}

/// One step of a stream, carrying whatever the converter made of the object.
#[derive(Debug)]
pub enum StreamEvent<T> {
    /// A (re-)list starts: objects not listed again before `ListDone` are gone.
    Relisting,
    /// An object of the (re-)list.
    Listed(T),
    /// The (re-)list is complete.
    ListDone,
    /// An object was added or modified while watching.
    Applied(T),
    /// An object was deleted while watching.
    Deleted(T),
}

/// A stream event, tagged with its stream.
#[derive(Debug)]
pub struct Message<T> {
    pub stream: StreamId,
    pub event: StreamEvent<T>,
}

/// Runs a watcher for `api` until the receiver is dropped, converting each
/// object with `convert` and sending the results to `tx` in order. Errors are
/// logged (a permission error once, with the missing permission) and retried
/// with kube-runtime's default backoff.
pub async fn run<K, T, F>(
    api: Api<K>,
    config: watcher::Config,
    stream: StreamId,
    convert: F,
    tx: mpsc::Sender<Message<T>>,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(K) -> T,
{
    let events = watcher::watcher(api, config.page_size(PAGE_SIZE)).default_backoff();
    futures::pin_mut!(events);
    let mut reported_forbidden = false;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(Event::Init) => StreamEvent::Relisting,
            Ok(Event::InitApply(object)) => StreamEvent::Listed(convert(object)),
            Ok(Event::InitDone) => StreamEvent::ListDone,
            Ok(Event::Apply(object)) => StreamEvent::Applied(convert(object)),
            Ok(Event::Delete(object)) => StreamEvent::Deleted(convert(object)),
            Err(error) => {
                report(&stream, &error, &mut reported_forbidden);
                continue;
            }
        };
        if tx
            .send(Message {
                stream: stream.clone(),
                event,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

fn report(stream: &StreamId, error: &watcher::Error, reported_forbidden: &mut bool) {
    let api_error = match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => Some(e),
        _ => None,
    };
    match api_error {
        Some(e) if crate::cluster::errors::is_forbidden(e) => {
            if !std::mem::replace(reported_forbidden, true) {
                tracing::error!(?stream, error = %crate::cluster::errors::Explain(e), "cannot watch");
            }
        }
        Some(e) => {
            tracing::warn!(?stream, error = %crate::cluster::errors::Explain(e), "watch failed; retrying")
        }
        None => tracing::warn!(?stream, %error, "watch failed; retrying"),
    }
}
