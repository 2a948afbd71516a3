//! The `rekindle` command: the sidecar (`rekindle watch`), the supervisor
//! (`rekindle run`), `sync`, `status` and `doctor`.
//!
//! This library exists so that `main.rs` stays a few lines and so that the
//! fuzz targets in `fuzz/` can reach the command-line parsers; it is not an
//! API. Rust services embed the `rekindle` crate instead.

mod action;
mod app;
mod cli;
mod compat;
mod doctor;
mod driver;
mod duration;
mod logging;
mod metrics;
mod plan;
mod process;
mod report;
mod server;
mod signal;
mod size;
#[cfg(feature = "kube")]
mod status;
mod supervisor;
#[cfg(feature = "kube")]
mod sync;
mod verify;
mod watch;
mod webhook;

#[doc(hidden)]
pub mod fuzzing;

pub use app::run;
