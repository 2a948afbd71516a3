//! `rekindle-operator`: rolls workloads whose ConfigMaps or Secrets changed.

use std::process::ExitCode;

fn main() -> ExitCode {
    match rekindle_operator::app::main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rekindle-operator: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
