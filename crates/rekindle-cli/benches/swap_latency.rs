//! Swap → signal latency of `rekindle watch`, its idle RSS and idle wake-ups.
//!
//! `cargo bench -p rekindle-cli --bench swap_latency` (set `REKINDLE_BIN` to
//! measure another build, such as the static `dist` one; `SWAPS` to change the
//! number of swaps, default 300). This process is the signal target, found by
//! `--process-name` like a sidecar finds its application, so the /proc scan is
//! part of the figure.

#[allow(dead_code)]
#[path = "../tests/support/kubelet.rs"]
mod kubelet;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rekindle_testenv::kubelet_writer::KubeletWriter;
use tokio::signal::unix::{SignalKind, signal};

fn payload(i: usize) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            "app.conf".to_owned(),
            format!("generation = {i}\n").into_bytes(),
        ),
        ("static.txt".to_owned(), b"unchanged".to_vec()),
    ])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: n={} median={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 90.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples[samples.len() - 1]),
    );
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Context switches of every thread of `pid`: each is a wake-up.
fn switches(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("status")).ok())
        .map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Times `swaps` swaps, each from the instant `swap` returns (the `..data`
/// rename when it knows it, else the start of the swap) to the SIGHUP.
async fn measure(
    label: &str,
    swaps: usize,
    dir: &Path,
    hup: &mut tokio::signal::unix::Signal,
    mut swap: impl FnMut(usize) -> Option<Instant>,
) {
    let mut samples = Vec::with_capacity(swaps);
    for i in 1..=swaps {
        let started = Instant::now();
        let t0 = swap(i).unwrap_or(started);
        tokio::time::timeout(Duration::from_secs(10), hup.recv())
            .await
            .unwrap_or_else(|_| panic!("no SIGHUP for swap {i} of {}", dir.display()));
        samples.push(t0.elapsed());
    }
    report(label, samples);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let binary = std::env::var_os("REKINDLE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rekindle")));
    let swaps: usize = std::env::var("SWAPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("volume");
    fs::create_dir_all(&dir).expect("dir");
    kubelet::emulate(&dir, &payload(0));
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let own_name = std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .expect("argv[0]");
    println!(
        "binary: {} ({} bytes)",
        binary.display(),
        fs::metadata(&binary).map(|m| m.len()).unwrap_or(0)
    );

    // Baseline: a SIGHUP this process sends itself, to its own tokio handler.
    measure(
        "baseline: kill(self, SIGHUP) to the handler",
        swaps,
        &dir,
        &mut hup,
        |_| {
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP)
                .expect("kill self");
            None
        },
    )
    .await;

    let own_pid = std::process::id().to_string();
    let by_pid = start_sidecar(
        &binary,
        &dir,
        &["--pid", &own_pid],
        &tmp.path().join("pid.log"),
        &mut hup,
    )
    .await;
    measure(
        "--pid target, emulated kubelet swap (t0 = the ..data rename)",
        swaps,
        &dir,
        &mut hup,
        |i| Some(kubelet::emulate(&dir, &payload(i))),
    )
    .await;
    stop(by_pid);

    let child = start_sidecar(
        &binary,
        &dir,
        &["--process-name", &own_name],
        &tmp.path().join("name.log"),
        &mut hup,
    )
    .await;
    measure(
        "--process-name target, emulated kubelet swap (t0 = the ..data rename)",
        swaps,
        &dir,
        &mut hup,
        |i| Some(kubelet::emulate(&dir, &payload(swaps + i))),
    )
    .await;

    if let Ok(writer) = KubeletWriter::locate() {
        measure(
            "--process-name target, kubelet AtomicWriter (t0 = start of the writer process, includes its exec)",
            swaps,
            &dir,
            &mut hup,
            |i| {
                writer
                    .write(&dir, &payload(2 * swaps + i))
                    .expect("kubelet-writer");
                None
            },
        )
        .await;
    } else {
        println!("kubelet-writer not provisioned: AtomicWriter figures skipped");
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = child.id();
    let before = switches(pid);
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let after = switches(pid);
    println!(
        "idle: VmRSS={} KiB VmHWM={} KiB, {} context switches in {}s (all threads)",
        status_field(pid, "VmRSS:").unwrap_or(0),
        status_field(pid, "VmHWM:").unwrap_or(0),
        after - before,
        idle.as_secs()
    );
    stop(child);
}

/// Starts `rekindle watch` on `dir` signalling this process (chosen by
/// `target`), and returns once it has read the directory: a probe swap then
/// gets a SIGHUP.
async fn start_sidecar(
    binary: &Path,
    dir: &Path,
    target: &[&str],
    log: &Path,
    hup: &mut tokio::signal::unix::Signal,
) -> Child {
    let log = fs::File::create(log).expect("log");
    let child = Command::new(binary)
        .args(["watch", "--dir"])
        .arg(dir)
        .args(target)
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn rekindle");
    let start = Instant::now();
    // Alternate two contents so that every probe is a real change.
    for probe in [0, usize::MAX].into_iter().cycle() {
        kubelet::emulate(dir, &payload(probe));
        if tokio::time::timeout(Duration::from_millis(200), hup.recv())
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "rekindle did not start"
        );
    }
    child
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}
