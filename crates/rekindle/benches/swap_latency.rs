//! Latency from the kubelet's `..data` rename to the application's change callback,
//! through the whole pipeline (inotify → read → digest → decode → validate → swap →
//! callback), and, measured in the same run with the same swaps, its floor: a bare
//! inotify watcher (the `notify` crate, set up as rekindle sets it up) that reads the new
//! `..data` target when it sees the rename. Prints median, p90, p99 and max of both over
//! `SWAPS` swaps, and what rekindle adds over the floor.
//!
//! Run: `cargo bench -p rekindle --bench swap_latency` (`-- --test`: a few swaps only).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, INotifyWatcher, RecursiveMode, Watcher as _};
use rekindle::{Reloadable, ValidationError, WatchOptions};
use serde::Deserialize;

const SWAPS: usize = 300;
const QUICK_SWAPS: usize = 5;

#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(rename = "LOG_LEVEL")]
    log_level: String,
    #[serde(rename = "MAX_CONNECTIONS")]
    max_connections: u32,
    #[serde(rename = "features.json")]
    features: HashMap<String, bool>,
}

fn validate(settings: &Settings) -> Result<(), ValidationError> {
    if !["debug", "info", "warn", "error"].contains(&settings.log_level.as_str()) {
        return Err(ValidationError::for_key(
            "LOG_LEVEL",
            "must be debug, info, warn or error",
        ));
    }
    if settings.max_connections > 10_000_000 {
        return Err(ValidationError::for_key(
            "MAX_CONNECTIONS",
            "must be at most 10000000",
        ));
    }
    if settings.features.is_empty() {
        return Err(ValidationError::for_key(
            "features.json",
            "must name a feature",
        ));
    }
    Ok(())
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

/// Runs `swaps` swaps in `dir`; `rx` gets (swap number, instant) from whatever watches it.
fn measure(dir: &Path, swaps: usize, rx: &mpsc::Receiver<(usize, Instant)>) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(swaps);
    for n in 0..swaps {
        let renamed = swap(dir, n);
        loop {
            let (seen, at) = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("nothing seen for swap {n}"));
            assert!(seen <= n, "saw swap {seen} during swap {n}");
            if seen == n {
                latencies.push(at.saturating_duration_since(renamed));
                break;
            }
        }
    }
    latencies.sort();
    latencies
}

/// The floor: inotify on the directory (non-recursive, symlinks not followed, as rekindle
/// watches a kubelet volume); on the rename onto `..data`, read every file of its new
/// target and report which swap it was.
fn bare_inotify(dir: &Path, swaps: usize) -> Vec<Duration> {
    let (tx, rx) = mpsc::channel();
    let root: PathBuf = dir.to_owned();
    let mut watcher = INotifyWatcher::new(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let onto_data = matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To))
            ) && event
                .paths
                .last()
                .is_some_and(|p| p.file_name().is_some_and(|n| n == "..data"));
            if !onto_data {
                return;
            }
            let Ok(target) = fs::read_link(root.join("..data")) else {
                return;
            };
            let Ok(entries) = fs::read_dir(root.join(target)) else {
                return;
            };
            let mut generation = None;
            for entry in entries.flatten() {
                let Ok(bytes) = fs::read(entry.path()) else {
                    return;
                };
                if entry.file_name() == "MAX_CONNECTIONS" {
                    generation = std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|s| s.trim().parse::<usize>().ok());
                }
            }
            if let Some(n) = generation {
                let _ = tx.send((n, Instant::now()));
            }
        },
        notify::Config::default().with_follow_symlinks(false),
    )
    .expect("inotify");
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .expect("watch");
    measure(dir, swaps, &rx)
}

fn rekindle(dir: &Path, swaps: usize) -> Vec<Duration> {
    let config = Reloadable::<Settings>::builder()
        .validate(validate)
        .load(dir)
        .expect("initial config");
    let (tx, rx) = mpsc::channel();
    config.on_change(move |v| {
        let _ = tx.send((v.value().max_connections as usize, Instant::now()));
    });
    let _watch = config.watch(dir, WatchOptions::default()).expect("watch");
    measure(dir, swaps, &rx)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(label: &str, sorted: &[Duration]) {
    println!(
        "  {label:<60} median {:>7.1} µs  p90 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs",
        us(percentile(sorted, 0.5)),
        us(percentile(sorted, 0.9)),
        us(percentile(sorted, 0.99)),
        us(sorted[sorted.len() - 1]),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("swap_latency: bench");
        return;
    }
    // `cargo bench` passes `--bench`; `cargo bench -- --test` and `cargo test --benches`
    // (which passes no `--bench`) ask for a quick run that only shows the bench works.
    let quick = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let swaps = if quick { QUICK_SWAPS } else { SWAPS };

    // A validator that refuses is really in the pipeline (checked once, untimed).
    let refused = tempfile::tempdir().expect("tempdir");
    swap(refused.path(), 20_000_000);
    assert!(
        Reloadable::<Settings>::builder()
            .validate(validate)
            .load(refused.path())
            .is_err(),
        "the validator accepted MAX_CONNECTIONS=20000000"
    );

    let floor_dir = tempfile::tempdir().expect("tempdir");
    swap(floor_dir.path(), 1_000_000);
    let floor = bare_inotify(floor_dir.path(), swaps);

    let dir = tempfile::tempdir().expect("tempdir");
    swap(dir.path(), 1_000_000);
    let full = rekindle(dir.path(), swaps);

    println!(
        "swap_latency: {swaps} kubelet-style swaps each{}, from the ..data rename to:",
        if quick {
            " (quick mode: figures meaningless)"
        } else {
            ""
        }
    );
    report(
        "baseline: bare inotify (notify crate) + read of the target",
        &floor,
    );
    report(
        "rekindle: on_change (read, digest, decode, validate, swap)",
        &full,
    );
    let above = |p: f64| us(percentile(&full, p)) - us(percentile(&floor, p));
    println!(
        "  rekindle above the bare-inotify baseline: median {:+.1} µs, p99 {:+.1} µs",
        above(0.5),
        above(0.99)
    );
}
