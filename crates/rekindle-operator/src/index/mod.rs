//! What the watches have told us, kept small and queried without the API.
//! Fed by [`crate::cluster::watch`] messages; no I/O here.

pub mod objects;
pub mod pods;
pub mod sources;
pub mod workloads;

pub use pods::{PodEntry, PodId, PodIndex};
pub use sources::{SourceChange, SourceEntry, SourceIndex};
pub use workloads::{WorkloadEntry, WorkloadIndex};
