//! The reload pipeline: snapshot → decode → validate → atomic swap.
//!
//! A failure at any step keeps the config in force, records the reason, counts it, and
//! waits for the next change. Readers get an `Arc` of one version and keep it for as
//! long as they hold it, so a request that began on version N finishes on version N and
//! no draining is needed.
//!
//! Decoding and validation are the application's code and may be slow or may read the
//! config themselves, so they run before the writer lock is taken; the lock covers only
//! the swap and the bookkeeping around it.

mod builder;
mod error;
mod reader;
mod versioned;

pub use builder::ReloadableBuilder;
pub use error::{ReloadError, RollbackError, ValidationError};
pub use reader::Reader;
pub use versioned::Versioned;

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use serde::de::DeserializeOwned;

use crate::digest::Digest;
use crate::format::DecodeError;
use crate::history::History;
use crate::metrics::ReloadMetrics;
use crate::read::SnapshotError;
use crate::snapshot::Snapshot;
use crate::watch::{DirWatcher, WatchError, WatchEvent, WatchOptions};

/// How many applied versions are kept for rollback unless configured otherwise.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;

/// What [`Reloadable::apply`] did with a snapshot.
#[derive(Debug)]
pub enum Applied<T> {
    /// The snapshot became the config in force.
    New(Arc<Versioned<T>>),
    /// The snapshot's digest is the config in force already.
    Unchanged,
}

type Decoder<T> = Box<dyn Fn(&Snapshot) -> Result<T, DecodeError> + Send + Sync>;
type Validator<T> = Box<dyn Fn(&T) -> Result<(), ValidationError> + Send + Sync>;
type Callback<T> = Arc<dyn Fn(&Arc<Versioned<T>>) + Send + Sync>;
type RejectCallback = Arc<dyn Fn(&Digest, &ReloadError) + Send + Sync>;

/// Decodes and validates `snapshot`: the application's code, run without any lock held.
fn check<T>(
    decode: &Decoder<T>,
    validators: &[Validator<T>],
    snapshot: &Snapshot,
) -> Result<T, ReloadError> {
    let digest = *snapshot.digest();
    let value = decode(snapshot).map_err(|error| ReloadError::Decode { digest, error })?;
    for validator in validators {
        validator(&value).map_err(|error| ReloadError::Invalid { digest, error })?;
    }
    Ok(value)
}

/// A config that can be replaced while it is being read.
///
/// Cheap to clone (all clones share one config). Readers call [`Reloadable::load`] or
/// [`Reloadable::current`]; a [`DirWatcher`] started by [`Reloadable::watch`], or any
/// code with a [`Snapshot`] (from the Kubernetes API, say), feeds [`Reloadable::apply`].
pub struct Reloadable<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Reloadable {
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.shared.current.load();
        f.debug_struct("Reloadable")
            .field("version", &current.version())
            .field("digest", &current.digest())
            .finish_non_exhaustive()
    }
}

struct Shared<T> {
    current: ArcSwap<Versioned<T>>,
    /// Serializes writers (the swap in apply, rollback) and guards their bookkeeping;
    /// readers never take it, and no user code runs while it is held.
    writer: Mutex<Writer<T>>,
    decode: Decoder<T>,
    validators: Vec<Validator<T>>,
    metrics: Option<ReloadMetrics>,
    callbacks: Mutex<Vec<Callback<T>>>,
    rejects: Mutex<Vec<RejectCallback>>,
    #[cfg(feature = "tokio")]
    sender: tokio::sync::watch::Sender<Arc<Versioned<T>>>,
}

struct Writer<T> {
    history: History<T>,
    next_version: u64,
    last_error: Option<Arc<ReloadError>>,
}

/// A poisoned lock only means a callback or handler panicked; the data it guards is
/// still whole. Shared with the watcher.
pub(crate) fn lock<G>(mutex: &Mutex<G>) -> MutexGuard<'_, G> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: DeserializeOwned + Send + Sync + 'static> Reloadable<T> {
    /// A builder that decodes `T` from the whole snapshot with serde (see [`crate::typed`]).
    pub fn builder() -> ReloadableBuilder<T> {
        Reloadable::builder_with(crate::typed::from_snapshot::<T>)
    }
}

impl<T: Send + Sync + 'static> Reloadable<T> {
    /// A builder with a decoder of your own. It runs outside any lock, like validators.
    pub fn builder_with<F>(decode: F) -> ReloadableBuilder<T>
    where
        F: Fn(&Snapshot) -> Result<T, DecodeError> + Send + Sync + 'static,
    {
        ReloadableBuilder {
            decode: Box::new(decode),
            validators: Vec::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            metrics: None,
        }
    }

    fn new(builder: ReloadableBuilder<T>, first: Versioned<T>, next_version: u64) -> Reloadable<T> {
        let first = Arc::new(first);
        let mut history = History::new(builder.history_limit);
        if first.digest().is_some() {
            history.push(first.clone());
        }
        if let Some(metrics) = &builder.metrics {
            metrics.set_version(first.version());
        }
        Reloadable {
            shared: Arc::new(Shared {
                #[cfg(feature = "tokio")]
                sender: tokio::sync::watch::Sender::new(first.clone()),
                current: ArcSwap::new(first),
                writer: Mutex::new(Writer {
                    history,
                    next_version,
                    last_error: None,
                }),
                decode: builder.decode,
                validators: builder.validators,
                metrics: builder.metrics,
                callbacks: Mutex::new(Vec::new()),
                rejects: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The config in force, for a short read: the cheapest access, with no reference
    /// count traffic. Hold it only briefly; use [`Reloadable::current`] to keep a version.
    pub fn load(&self) -> impl Deref<Target = Arc<Versioned<T>>> + '_ {
        self.shared.current.load()
    }

    /// A handle for the hottest read paths, one per thread: each read is a single atomic
    /// pointer comparison while the config is unchanged.
    pub fn reader(&self) -> Reader<T> {
        Reader::new(self.shared.clone())
    }

    /// The config in force, to keep for as long as needed (a request, a connection).
    pub fn current(&self) -> Arc<Versioned<T>> {
        self.shared.current.load_full()
    }

    /// Why the most recent change was not applied; `None` once a change succeeds (or the
    /// content in force is seen again).
    pub fn last_error(&self) -> Option<Arc<ReloadError>> {
        lock(&self.shared.writer).last_error.clone()
    }

    /// The applied versions kept for rollback, oldest first.
    pub fn history(&self) -> Vec<Arc<Versioned<T>>> {
        lock(&self.shared.writer).history.entries()
    }

    /// Runs `callback` after each change of the config in force (reloads and rollbacks),
    /// on the thread that made the change. Callbacks of concurrent changes may run in
    /// either order; [`Reloadable::current`] is always authoritative.
    pub fn on_change<F>(&self, callback: F)
    where
        F: Fn(&Arc<Versioned<T>>) + Send + Sync + 'static,
    {
        lock(&self.shared.callbacks).push(Arc::new(callback));
    }

    /// Runs `callback` after each change that decoding or validation refused, with the
    /// refused content's digest, on the thread that applied it. The error names keys and
    /// types, never values, so it may be shown or reported.
    pub fn on_reject<F>(&self, callback: F)
    where
        F: Fn(&Digest, &ReloadError) + Send + Sync + 'static,
    {
        lock(&self.shared.rejects).push(Arc::new(callback));
    }

    /// A `tokio::sync::watch` receiver that sees every config put in force.
    #[cfg(feature = "tokio")]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Versioned<T>>> {
        self.shared.sender.subscribe()
    }

    fn in_force(&self, digest: &Digest) -> bool {
        self.shared.current.load().digest() == Some(digest)
    }

    /// Decodes, validates and applies `snapshot`. On failure the config in force is
    /// kept and the error is also returned by [`Reloadable::last_error`].
    ///
    /// Decoding and validation run without a lock, so they may read this config, and a
    /// rollback meanwhile does not wait for them. Concurrent applies each put their
    /// snapshot in force in the order they finish decoding; a watcher applies one
    /// change at a time.
    pub fn apply(&self, snapshot: &Snapshot) -> Result<Applied<T>, Arc<ReloadError>> {
        let started = Instant::now();
        let digest = snapshot.digest();
        if self.in_force(digest) {
            let mut writer = lock(&self.shared.writer);
            if self.in_force(digest) {
                // The content in force came back (a bad edit was reverted): nothing is
                // wrong now.
                writer.last_error = None;
                return Ok(Applied::Unchanged);
            }
        }
        let checked = check(&self.shared.decode, &self.shared.validators, snapshot);

        let mut writer = lock(&self.shared.writer);
        // Another writer may have put this very content in force while we decoded.
        if self.in_force(digest) {
            writer.last_error = None;
            return Ok(Applied::Unchanged);
        }
        let value = match checked {
            Ok(value) => value,
            Err(error) => {
                let error = Arc::new(error);
                writer.last_error = Some(error.clone());
                drop(writer);
                let keeping = self.shared.current.load().version();
                tracing::warn!(%error, keeping, "config change rejected");
                if let Some(metrics) = &self.shared.metrics {
                    metrics.failed(Some(started.elapsed()));
                }
                let callbacks = lock(&self.shared.rejects).clone();
                for callback in callbacks {
                    callback(digest, &error);
                }
                return Err(error);
            }
        };
        let version = writer.next_version;
        writer.next_version += 1;
        let applied = Arc::new(Versioned::new(version, Some(*digest), value));
        self.shared.current.store(applied.clone());
        writer.history.push(applied.clone());
        writer.last_error = None;
        if let Some(metrics) = &self.shared.metrics {
            metrics.succeeded(started.elapsed(), version, applied.applied_at());
        }
        self.publish(&applied);
        drop(writer);
        tracing::info!(version, digest = %digest.short(), "config applied");
        self.run_callbacks(&applied);
        Ok(Applied::New(applied))
    }

    /// Records a failure that happened before decoding (the directory could not be read).
    pub fn record_error(&self, error: ReloadError) {
        if let Some(metrics) = &self.shared.metrics {
            metrics.failed(None);
        }
        lock(&self.shared.writer).last_error = Some(Arc::new(error));
    }

    /// Puts back the version applied before the one in force.
    ///
    /// The watched directory is not changed: the rolled-back version stays in force until
    /// the content changes again.
    pub fn rollback(&self) -> Result<Arc<Versioned<T>>, RollbackError> {
        self.restore(|history, current| {
            history
                .before(current)
                .cloned()
                .ok_or_else(|| RollbackError::NoEarlierVersion {
                    available: history.versions(),
                })
        })
    }

    /// Puts back `version`, if the history still holds it.
    pub fn rollback_to(&self, version: u64) -> Result<Arc<Versioned<T>>, RollbackError> {
        self.restore(|history, _| {
            history
                .find(version)
                .cloned()
                .ok_or_else(|| RollbackError::NotInHistory {
                    version,
                    available: history.versions(),
                })
        })
    }

    fn restore<F>(&self, choose: F) -> Result<Arc<Versioned<T>>, RollbackError>
    where
        F: FnOnce(&History<T>, u64) -> Result<Arc<Versioned<T>>, RollbackError>,
    {
        let writer = lock(&self.shared.writer);
        let from = self.shared.current.load().version();
        let target = choose(&writer.history, from)?;
        self.shared.current.store(target.clone());
        if let Some(metrics) = &self.shared.metrics {
            metrics.set_version(target.version());
        }
        self.publish(&target);
        drop(writer);
        tracing::info!(from, to = target.version(), "config rolled back");
        self.run_callbacks(&target);
        Ok(target)
    }

    /// Keeps the config in line with `dir`: starts a [`DirWatcher`] whose changes are
    /// applied here. The directory may be missing at start; it is waited for. Dropping
    /// the returned watcher stops it.
    pub fn watch(
        &self,
        dir: impl AsRef<Path>,
        options: WatchOptions,
    ) -> Result<DirWatcher, WatchError> {
        let this = self.clone();
        DirWatcher::spawn(dir, options, move |event| this.on_watch_event(event))
    }

    fn on_watch_event(&self, event: WatchEvent) {
        match event {
            WatchEvent::Changed(change) => {
                if let Some(previous) = &change.previous {
                    // Key names only: values may be Secret material.
                    let diff = previous.diff(&change.snapshot);
                    tracing::info!(dir = %change.dir.display(), digest = %change.snapshot.digest().short(), %diff, "config change detected");
                }
                // The outcome is logged, counted and kept in `last_error` by `apply`.
                let _ = self.apply(&change.snapshot);
            }
            WatchEvent::Failed { dir, error } => {
                self.record_error(ReloadError::Read { dir, error })
            }
            WatchEvent::Missing { dir } => {
                let error = Arc::new(SnapshotError::Missing { dir: dir.clone() });
                self.record_error(ReloadError::Read { dir, error });
            }
            // The watcher logs the fallback; nothing changes for the config.
            WatchEvent::Polling { .. } => {}
        }
    }

    /// Keeps the config in line with a ConfigMap or Secret read through the API (feature
    /// `kube`): each new content is applied here as [`Reloadable::apply`] would; a
    /// deletion, an absence or a watch failure keeps the config in force and is
    /// recorded in [`Reloadable::last_error`]. Needs a tokio runtime; decoding and
    /// validation run on it. Dropping the returned watcher stops the watch.
    #[cfg(feature = "kube")]
    pub fn watch_api(
        &self,
        client: kube::Client,
        object: crate::api::ObjectRef,
    ) -> crate::api::ApiWatcher {
        let this = self.clone();
        let resolved = crate::api::resolve(&client, &object);
        crate::api::ApiWatcher::spawn(client, resolved.clone(), move |event| {
            this.on_api_event(&resolved, event)
        })
    }

    #[cfg(feature = "kube")]
    fn on_api_event(&self, object: &crate::api::ObjectRef, event: crate::api::ApiEvent) {
        use crate::api::{ApiError, ApiEvent};
        let error = match event {
            ApiEvent::Changed(snapshot) => {
                // The outcome is logged, counted and kept in `last_error` by `apply`.
                let _ = self.apply(&snapshot);
                return;
            }
            ApiEvent::Missing => ApiError::NotFound {
                object: object.clone(),
            },
            ApiEvent::Deleted => ApiError::Deleted {
                object: object.clone(),
            },
            ApiEvent::Failed(error) => {
                self.record_error(ReloadError::Api { error });
                return;
            }
        };
        self.record_error(ReloadError::Api {
            error: Arc::new(error),
        });
    }

    fn publish(&self, _applied: &Arc<Versioned<T>>) {
        #[cfg(feature = "tokio")]
        self.shared.sender.send_replace(_applied.clone());
    }

    fn run_callbacks(&self, applied: &Arc<Versioned<T>>) {
        // Cloned out of the lock so a callback may register another or read the config.
        let callbacks = lock(&self.shared.callbacks).clone();
        for callback in callbacks {
            callback(applied);
        }
    }
}
