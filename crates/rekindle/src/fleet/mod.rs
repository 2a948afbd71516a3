//! The fleet view: whether the pods of a workload run the current content of their
//! ConfigMaps and Secrets, from the [`report`](crate::report)s they write.
//!
//! Shared by `rekindle status` and the operator's `rekindle_workload_config_pods`
//! metric, so that both say the same thing:
//! - [`State`]: current, stale, rejected, failed or unknown, and how one report entry
//!   and the source's current digest give one;
//! - [`evaluate`]: every pod against every source, with the rules that decide which
//!   sources count and when a workload has converged;
//! - [`volume`] (feature `kube`): which objects a reported directory holds (the pod's
//!   `volumeMounts` and `volumes`), and the digest the kubelet's files of them have.

pub mod evaluate;
mod state;
#[cfg(feature = "kube")]
pub mod volume;

pub use evaluate::{
    Cell, Counts, Fleet, PodInput, PodReport, PodView, Resolved, SourceView, Unmatched, evaluate,
};
pub use state::State;
