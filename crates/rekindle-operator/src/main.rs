//! `rekindle-operator`: rolls workloads whose ConfigMaps or Secrets changed.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::SUCCESS
}
