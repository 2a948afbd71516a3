//! `rekindle`: the sidecar (`rekindle watch`) and supervisor (`rekindle run`)
//! for Kubernetes ConfigMap/Secret hot-reload.

mod actions;
mod app;
mod children;
mod cli;
mod compat;
mod deliver;
mod discovery;
mod duration;
mod logging;
mod metrics;
mod pipeline;
mod plan;
mod server;
mod shell;
mod signals;
mod source;
mod supervisor;
mod url;
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
