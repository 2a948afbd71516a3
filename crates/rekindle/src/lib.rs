//! rekindle: hot-reload for Kubernetes ConfigMap and Secret volumes.
//!
//! When a ConfigMap or Secret changes, the kubelet swaps new files into every pod that
//! mounts it, and nothing tells the application. This crate watches the mounted
//! directory, decodes and validates each new version, swaps it in atomically, keeps the
//! last good config when a change is bad, and keeps a bounded history for rollback.
//!
//! ```
//! use rekindle::{Reloadable, ValidationError, WatchOptions};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Settings {
//!     // Each key of the ConfigMap is a field; raw values parse into numbers.
//!     #[serde(rename = "MAX_CONNECTIONS")]
//!     max_connections: u32,
//!     // A key ending in .json, .yaml or .toml is decoded by its format.
//!     #[serde(rename = "features.json", default)]
//!     features: std::collections::HashMap<String, bool>,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("MAX_CONNECTIONS"), "100\n")?;
//! # std::fs::write(dir.path().join("features.json"), r#"{"beta": true}"#)?;
//! # let mount = dir.path();
//! let config = Reloadable::<Settings>::builder()
//!     .validate(|s| match s.max_connections {
//!         1..=10_000 => Ok(()),
//!         // Say what is wrong, not what the value is: it may be a Secret.
//!         _ => Err(ValidationError::for_key("MAX_CONNECTIONS", "must be within 1..=10000")),
//!     })
//!     .load(mount)?; // version 1, or an error naming the key and the reason
//! let _watch = config.watch(mount, WatchOptions::default())?; // follows every kubelet swap
//!
//! let current = config.current(); // an Arc: a request keeps one version to its end
//! assert_eq!(current.version(), 1);
//! assert_eq!(current.max_connections, 100);
//! assert!(current.features["beta"]);
//! # Ok(())
//! # }
//! ```
//!
//! The parts, each usable alone:
//! - [`Snapshot`]: a directory's user-visible keys and bytes, read consistently through
//!   `..data` within [`ReadLimits`], with the public content [`Digest`] and the
//!   [`Layout`] it was read with;
//! - [`DirWatcher`]: inotify on the directory, reporting each real content change once
//!   (from its own thread; with feature `tokio`, `watch::AsyncDirWatcher` runs the same
//!   watcher as a task that polls inotify on the runtime);
//! - [`Format`] and [`typed`]: per-file and whole-snapshot decoding with serde, whose
//!   errors name keys, fields, types and positions but never quote a value;
//! - [`Reloadable`]: decode → validate → atomic swap, history, rollback, callbacks,
//!   [`metrics`].
//!
//! - [`api`] (feature `kube`): one ConfigMap or Secret watched through the Kubernetes
//!   API instead of its volume, for changes in well under a second rather than the
//!   kubelet's 60 to 120.
//! - [`report`]: the fleet view's per-pod report of which digest was applied or
//!   rejected; with feature `kube`, `report::PodReporter` writes it onto the pod, so
//!   `rekindle status --wait` can tell when every replica runs a new config.
//!
//! Features: `yaml` and `toml` (decoders, on by default; JSON is always available),
//! `tokio` ([`Reloadable::subscribe`], `watch::AsyncDirWatcher`) and `kube` ([`api`], `Reloadable::watch_api`,
//! `report::PodReporter`).
//! The core needs no async runtime.
#![warn(missing_docs)]

#[cfg(feature = "kube")]
pub mod api;
pub mod digest;
pub mod fleet;
pub mod format;
mod history;
pub mod metrics;
mod read;
pub mod reload;
pub mod report;
pub mod snapshot;
pub mod typed;
pub mod watch;

pub use digest::Digest;
pub use format::{DecodeError, Format};
pub use metrics::ReloadMetrics;
pub use read::{DATA_LINK, Layout, ReadLimits, ReadLimitsError, SnapshotError};
pub use reload::{
    Applied, Reader, ReloadError, Reloadable, ReloadableBuilder, RollbackError, ValidationError,
    Versioned,
};
pub use snapshot::{Snapshot, SnapshotDiff};
pub use watch::{Change, DirWatcher, InvalidOptions, WatchError, WatchEvent, WatchOptions};
