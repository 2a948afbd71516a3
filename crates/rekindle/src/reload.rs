//! The reload pipeline: snapshot → decode → validate → atomic swap.
//!
//! A failure at any step keeps the config in force, records the reason, counts it, and
//! waits for the next change. Readers get an `Arc` of one version and keep it for as
//! long as they hold it, so a request that began on version N finishes on version N and
//! no draining is needed.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
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

/// One applied config: the value with its version number and content digest.
#[derive(Debug)]
pub struct Versioned<T> {
    version: u64,
    digest: Option<Digest>,
    applied_at: SystemTime,
    value: T,
}

impl<T> Versioned<T> {
    pub(crate) fn new(version: u64, digest: Option<Digest>, value: T) -> Versioned<T> {
        Versioned {
            version,
            digest,
            applied_at: SystemTime::now(),
            value,
        }
    }

    /// 0 for the built-in initial value, then 1, 2, … in the order configs were applied.
    /// A rollback brings back an earlier version with its number.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The digest of the snapshot this was decoded from; `None` for a built-in initial value.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// When this version was first applied.
    pub fn applied_at(&self) -> SystemTime {
        self.applied_at
    }

    /// The config itself (also reachable through `Deref`).
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T> Deref for Versioned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A config rejected by a validator: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct ValidationError {
    /// The key at fault, when one is.
    pub key: Option<String>,
    /// What is wrong with it.
    pub reason: String,
}

impl ValidationError {
    /// A problem with the config as a whole.
    pub fn new(reason: impl Into<String>) -> ValidationError {
        ValidationError {
            key: None,
            reason: reason.into(),
        }
    }

    /// A problem with one key.
    pub fn for_key(key: impl Into<String>, reason: impl Into<String>) -> ValidationError {
        ValidationError {
            key: Some(key.into()),
            reason: reason.into(),
        }
    }
}

/// Why a change was not applied. The previous config stays in force.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The directory could not be read.
    #[error("cannot read {}: {error}", dir.display())]
    Read {
        /// The watched directory.
        dir: PathBuf,
        /// What went wrong.
        error: Arc<SnapshotError>,
    },
    /// A value could not be decoded.
    #[error("config {} rejected: {error}", digest.short())]
    Decode {
        /// The rejected content.
        digest: Digest,
        /// Which key and why.
        error: DecodeError,
    },
    /// A validator refused the decoded config.
    #[error("config {} rejected: invalid: {error}", digest.short())]
    Invalid {
        /// The rejected content.
        digest: Digest,
        /// Which key and why.
        error: ValidationError,
    },
}

/// Why a rollback did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// The config in force is the oldest one kept.
    #[error("no earlier version is kept (history holds {available:?})")]
    NoEarlierVersion {
        /// The versions in the history.
        available: Vec<u64>,
    },
    /// The version asked for is not (or no longer) in the history.
    #[error("version {version} is not in the history (it holds {available:?})")]
    NotInHistory {
        /// The version asked for.
        version: u64,
        /// The versions in the history.
        available: Vec<u64>,
    },
}

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

/// Sets up a [`Reloadable`]: how to decode and validate, how much history, which metrics.
pub struct ReloadableBuilder<T> {
    decode: Decoder<T>,
    validators: Vec<Validator<T>>,
    history_limit: usize,
    metrics: Option<ReloadMetrics>,
}

impl<T> fmt::Debug for ReloadableBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableBuilder")
            .field("validators", &self.validators.len())
            .field("history_limit", &self.history_limit)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl<T: Send + Sync + 'static> ReloadableBuilder<T> {
    /// Adds a validator; all must accept a config for it to be applied, and the first
    /// refusal is the reason reported.
    pub fn validate<F>(mut self, validator: F) -> Self
    where
        F: Fn(&T) -> Result<(), ValidationError> + Send + Sync + 'static,
    {
        self.validators.push(Box::new(validator));
        self
    }

    /// How many applied versions to keep for rollback (at least 1; default 10).
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    /// Registers the reload metrics (see [`ReloadMetrics`]) into `registry`.
    pub fn metrics(mut self, registry: &mut Registry) -> Self {
        self.metrics = Some(ReloadMetrics::register(registry));
        self
    }

    /// Starts from a built-in value (version 0, no digest) until the first valid config
    /// is applied. Use this when the service must start even without its config.
    pub fn build(self, initial: T) -> Reloadable<T> {
        Reloadable::new(self, Versioned::new(0, None, initial), 1)
    }

    /// Reads `dir` once and starts from it as version 1; fails with the reason if the
    /// directory cannot be read or its content is not valid.
    pub fn load(self, dir: impl AsRef<Path>) -> Result<Reloadable<T>, ReloadError> {
        let first = self.read_first(dir.as_ref())?;
        Ok(Reloadable::new(self, first, 2))
    }

    /// Reads `dir` once and starts from it as version 1 when it is valid; otherwise
    /// starts from `fallback` as version 0 with the reason in [`Reloadable::last_error`].
    /// For services that must come up even when their config is missing or broken.
    pub fn load_or(self, dir: impl AsRef<Path>, fallback: T) -> Reloadable<T> {
        match self.read_first(dir.as_ref()) {
            Ok(first) => Reloadable::new(self, first, 2),
            Err(error) => {
                tracing::warn!(%error, "starting from the built-in config");
                let config = self.build(fallback);
                config.record_error(error);
                config
            }
        }
    }

    fn read_first(&self, dir: &Path) -> Result<Versioned<T>, ReloadError> {
        let snapshot = Snapshot::read(dir).map_err(|error| ReloadError::Read {
            dir: dir.to_owned(),
            error: Arc::new(error),
        })?;
        let value = check(&self.decode, &self.validators, &snapshot)?;
        Ok(Versioned::new(1, Some(*snapshot.digest()), value))
    }
}

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
            .field("version", &current.version)
            .field("digest", &current.digest)
            .finish_non_exhaustive()
    }
}

/// A per-thread reader of a [`Reloadable`], from [`Reloadable::reader`].
///
/// It caches the config in force and checks, on each [`Reader::load`], only whether the
/// pointer changed, so reads cost no reference counting and no shared writes. It keeps the
/// version it last loaded alive until the next load.
pub struct Reader<T> {
    cache: arc_swap::Cache<CurrentOf<T>, Arc<Versioned<T>>>,
}

impl<T> Reader<T> {
    /// The config in force.
    pub fn load(&mut self) -> &Arc<Versioned<T>> {
        self.cache.load()
    }
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

/// Lets the reader's cache reach the shared `ArcSwap` while keeping it alive.
struct CurrentOf<T>(Arc<Shared<T>>);

impl<T> Deref for CurrentOf<T> {
    type Target = ArcSwap<Versioned<T>>;
    fn deref(&self) -> &Self::Target {
        &self.0.current
    }
}

struct Shared<T> {
    current: ArcSwap<Versioned<T>>,
    /// Serializes writers (apply, rollback); readers never take it.
    writer: Mutex<Writer<T>>,
    decode: Decoder<T>,
    validators: Vec<Validator<T>>,
    metrics: Option<ReloadMetrics>,
    callbacks: Mutex<Vec<Callback<T>>>,
    #[cfg(feature = "tokio")]
    sender: tokio::sync::watch::Sender<Arc<Versioned<T>>>,
}

struct Writer<T> {
    history: History<T>,
    next_version: u64,
    last_error: Option<Arc<ReloadError>>,
}

/// A poisoned lock only means a callback panicked; the data it guards is still whole.
fn lock<G>(mutex: &Mutex<G>) -> MutexGuard<'_, G> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: DeserializeOwned + Send + Sync + 'static> Reloadable<T> {
    /// A builder that decodes `T` from the whole snapshot with serde (see [`crate::typed`]).
    pub fn builder() -> ReloadableBuilder<T> {
        Reloadable::builder_with(crate::typed::from_snapshot::<T>)
    }
}

impl<T: Send + Sync + 'static> Reloadable<T> {
    /// A builder with a decoder of your own.
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
        if first.digest.is_some() {
            history.push(first.clone());
        }
        if let Some(metrics) = &builder.metrics {
            metrics.set_version(first.version);
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
        Reader {
            cache: arc_swap::Cache::new(CurrentOf(self.shared.clone())),
        }
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

    /// A `tokio::sync::watch` receiver that sees every config put in force.
    #[cfg(feature = "tokio")]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Versioned<T>>> {
        self.shared.sender.subscribe()
    }

    /// Decodes, validates and applies `snapshot`. On failure the config in force is
    /// kept and the error is also returned by [`Reloadable::last_error`].
    pub fn apply(&self, snapshot: &Snapshot) -> Result<Applied<T>, Arc<ReloadError>> {
        let started = Instant::now();
        let mut writer = lock(&self.shared.writer);
        let current = self.shared.current.load();
        if current.digest.as_ref() == Some(snapshot.digest()) {
            // The content in force came back (a bad edit was reverted): nothing is wrong now.
            writer.last_error = None;
            return Ok(Applied::Unchanged);
        }
        let value = match check(&self.shared.decode, &self.shared.validators, snapshot) {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(%error, keeping = current.version, "config change rejected");
                if let Some(metrics) = &self.shared.metrics {
                    metrics.failed(Some(started.elapsed()));
                }
                let error = Arc::new(error);
                writer.last_error = Some(error.clone());
                return Err(error);
            }
        };
        let version = writer.next_version;
        writer.next_version += 1;
        let applied = Arc::new(Versioned::new(version, Some(*snapshot.digest()), value));
        self.shared.current.store(applied.clone());
        writer.history.push(applied.clone());
        writer.last_error = None;
        if let Some(metrics) = &self.shared.metrics {
            metrics.succeeded(started.elapsed(), version, applied.applied_at);
        }
        self.publish(&applied);
        drop(writer);
        tracing::info!(version, digest = %snapshot.digest().short(), "config applied");
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
        let from = self.shared.current.load().version;
        let target = choose(&writer.history, from)?;
        self.shared.current.store(target.clone());
        if let Some(metrics) = &self.shared.metrics {
            metrics.set_version(target.version);
        }
        self.publish(&target);
        drop(writer);
        tracing::info!(from, to = target.version, "config rolled back");
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
