//! Latency from the kubelet's `..data` rename to the application's change callback,
//! through the whole pipeline (inotify → read → digest → decode → validate → swap →
//! callback). Prints median, p99 and max over `SWAPS` swaps.
//!
//! Run: `cargo bench -p rekindle --bench swap_latency`

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rekindle::{Reloadable, WatchOptions};
use serde::Deserialize;

const SWAPS: usize = 300;

#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(rename = "LOG_LEVEL")]
    _log_level: String,
    #[serde(rename = "MAX_CONNECTIONS")]
    max_connections: u32,
    #[serde(rename = "features.json")]
    _features: std::collections::HashMap<String, bool>,
}

/// The kubelet's sequence; returns the instant of the `..data` rename.
fn swap(dir: &Path, n: usize) -> Instant {
    let name = format!("..2026_01_01_00_00_00.{n}");
    let ts = dir.join(&name);
    fs::create_dir(&ts).expect("mkdir");
    fs::write(ts.join("LOG_LEVEL"), "info").expect("write");
    fs::write(ts.join("MAX_CONNECTIONS"), n.to_string()).expect("write");
    fs::write(ts.join("features.json"), r#"{"a": true}"#).expect("write");
    let old = fs::read_link(dir.join("..data")).ok();
    symlink(&name, dir.join("..data_tmp")).expect("..data_tmp");
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("rename");
    let renamed = Instant::now();
    for key in ["LOG_LEVEL", "MAX_CONNECTIONS", "features.json"] {
        let _ = symlink(format!("..data/{key}"), dir.join(key));
    }
    if let Some(old) = old {
        fs::remove_dir_all(dir.join(old)).expect("remove old");
    }
    renamed
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let swaps = if quick { 5 } else { SWAPS };
    let dir = tempfile::tempdir().expect("tempdir");
    swap(dir.path(), 1_000_000);
    let config = Reloadable::<Settings>::builder()
        .load(dir.path())
        .expect("initial config");
    let (tx, rx) = mpsc::channel();
    config.on_change(move |v| {
        let _ = tx.send((v.max_connections, Instant::now()));
    });
    let _watch = config
        .watch(dir.path(), WatchOptions::default())
        .expect("watch");
    let mut latencies = Vec::with_capacity(swaps);
    for n in 0..swaps {
        let renamed = swap(dir.path(), n);
        let (seen, at) = rx.recv_timeout(Duration::from_secs(10)).expect("callback");
        assert_eq!(seen as usize, n, "callback for the wrong swap");
        latencies.push(at.saturating_duration_since(renamed));
    }
    latencies.sort();
    println!(
        "swap_latency: {} swaps, median {:?}, p99 {:?}, max {:?}",
        swaps,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
}
