//! `rekindle`: the sidecar (`rekindle watch`) and supervisor (`rekindle run`)
//! for Kubernetes ConfigMap/Secret hot-reload. Everything lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    match rekindle_cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rekindle: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
