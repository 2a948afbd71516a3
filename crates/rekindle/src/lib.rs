//! rekindle: hot-reload for Kubernetes ConfigMap and Secret volumes.

pub mod digest;
mod read;
pub mod snapshot;

pub use digest::Digest;
pub use read::{DATA_LINK, SnapshotError};
pub use snapshot::{Snapshot, SnapshotDiff};
pub mod watch;

pub use watch::{Change, DirWatcher, WatchError, WatchEvent, WatchOptions};
