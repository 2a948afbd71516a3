//! `rekindle`: the sidecar (`rekindle watch`) and supervisor (`rekindle run`)
//! for Kubernetes ConfigMap/Secret hot-reload.

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

use std::process::ExitCode;

fn main() -> ExitCode {
    match app::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rekindle: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
