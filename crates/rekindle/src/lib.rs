//! rekindle: hot-reload for Kubernetes ConfigMap and Secret volumes.

pub mod digest;
pub mod format;
mod read;
pub mod snapshot;
pub mod typed;

pub use digest::Digest;
pub use format::{DecodeError, Format};
pub use read::{DATA_LINK, SnapshotError};
pub use snapshot::{Snapshot, SnapshotDiff};
pub mod watch;

pub use watch::{Change, DirWatcher, WatchError, WatchEvent, WatchOptions};
