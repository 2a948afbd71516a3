//! rekindle: hot-reload for Kubernetes ConfigMap and Secret volumes.

pub mod digest;
pub mod format;
mod history;
pub mod metrics;
mod read;
pub mod reload;
pub mod snapshot;
pub mod typed;

pub use digest::Digest;
pub use format::{DecodeError, Format};
pub use read::{DATA_LINK, SnapshotError};
pub use snapshot::{Snapshot, SnapshotDiff};
pub mod watch;

pub use metrics::ReloadMetrics;
pub use reload::{
    Applied, Reader, ReloadError, Reloadable, ReloadableBuilder, RollbackError, ValidationError,
    Versioned,
};
pub use watch::{Change, DirWatcher, WatchError, WatchEvent, WatchOptions};
