//! Soak: thousands of kubelet swaps with random content against `rekindle watch` (a
//! process) and the library (`Reloadable::watch`, in a child process of this bench that
//! runs nothing else, so that its memory is the library's), at once, on one
//! volume written by the kubelet's own AtomicWriter. Counts missed final states,
//! duplicate actions and actions out of order, and reports resident memory and open
//! file descriptors at the start and the end. Bounded to 10 minutes.
//!
//! ```text
//! cargo bench -p rekindle-cli --bench soak
//! ```
//!
//! `SWAPS` (default 10,000) sets the number of swaps; `REKINDLE_BIN` the binary (default:
//! the bench profile's own build). Swaps come in bursts of 1 to 10, back to back; after a
//! burst the bench waits until both the process (its `--exec` appends `$REKINDLE_DIGEST`
//! to a file) and the library (its `on_change` callback appends the digest to another)
//! have acted on the burst's last
//! content, up to 10 s: a burst whose last content is not acted on in time is a **missed
//! final state**. Every swap writes new random content, so every digest is new: an
//! action for a digest already acted on is a **duplicate**; an action for the content of
//! an earlier burst after one of a later burst is **out of order**. Intermediate states
//! of a burst may be skipped: that is coalescing, not a miss.

#[allow(dead_code)]
#[path = "../tests/support/kubelet.rs"]
mod kubelet;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rekindle::{Reloadable, Snapshot, WatchOptions};
use rekindle_testenv::kubelet_writer::KubeletWriter;

const BUDGET: Duration = Duration::from_secs(570);
const ACT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BURST: u64 = 10;
/// Memory is compared from the end of this burst on: by then the library's history
/// (10 versions) is full and the allocator has its working set.
const WARM_UP_BURSTS: u64 = 50;

/// A small xorshift generator: reproducible with the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// 1 to 3 keys of 16 to 4,096 random bytes (hex), sometimes a key renamed.
    fn payload(&mut self) -> BTreeMap<String, Vec<u8>> {
        let keys = 1 + self.next() % 3;
        (0..keys)
            .map(|k| {
                let name = format!("key-{k}-{}", self.next() % 2);
                let len = 16 + (self.next() % 4081) as usize;
                let bytes: Vec<u8> = (0..len)
                    .map(|_| b"0123456789abcdef"[(self.next() % 16) as usize])
                    .collect();
                (name, bytes)
            })
            .collect()
    }
}

/// The library's side, in a process of its own: watches `dir` and appends each new
/// digest to `acted`, until killed.
fn library_child(dir: &str, acted: &str) {
    use std::io::Write as _;
    let config = Reloadable::builder_with(|s: &Snapshot| Ok(s.clone()))
        .load(dir)
        .expect("load");
    let out = Mutex::new(
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(acted)
            .expect("acted file"),
    );
    config.on_change(move |v| {
        if let Some(d) = v.digest() {
            let _ = writeln!(out.lock().expect("lock"), "{d}");
        }
    });
    let _watch = config.watch(dir, WatchOptions::default()).expect("watch");
    loop {
        std::thread::park();
    }
}

fn main() {
    if let (Ok(dir), Ok(acted)) = (
        std::env::var("SOAK_LIBRARY_DIR"),
        std::env::var("SOAK_LIBRARY_ACTED"),
    ) {
        return library_child(&dir, &acted);
    }
    let swaps: u64 = std::env::var("SWAPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let writer = KubeletWriter::locate().expect("the kubelet writer (scripts/provision-k8s.sh)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("volume");
    fs::create_dir_all(&dir).expect("volume dir");
    let mut rng = Rng(seed);
    writer.write(&dir, &rng.payload()).expect("first write");

    // The process: one `--exec` per change, appending the digest.
    let acted = tmp.path().join("acted");
    let bin = std::env::var_os("REKINDLE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rekindle").into());
    let log = fs::File::create(tmp.path().join("rekindle.log")).expect("log");
    let mut process = Command::new(bin)
        .args(["watch", "--dir"])
        .arg(&dir)
        .arg("--exec")
        .arg(format!("echo \"$REKINDLE_DIGEST\" >> {}", acted.display()))
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("rekindle watch");
    let pid = process.id();

    // The library, in a child process of its own.
    let library_acted = tmp.path().join("library-acted");
    let mut library = Command::new(std::env::current_exe().expect("this bench"))
        .env("SOAK_LIBRARY_DIR", &dir)
        .env("SOAK_LIBRARY_ACTED", &library_acted)
        .stdin(Stdio::null())
        .spawn()
        .expect("library child");
    let library_pid = library.id();
    std::thread::sleep(Duration::from_millis(500));

    let started = Instant::now();
    let mut burst_of: HashMap<String, u64> = HashMap::new();
    let (mut done, mut bursts, mut missed_process, mut missed_library) = (0u64, 0u64, 0u64, 0u64);
    let (mut first_figures, mut start_figures) = (None, None);
    while done < swaps && started.elapsed() < BUDGET {
        let size = (1 + rng.next() % MAX_BURST).min(swaps - done);
        let mut last = String::new();
        for _ in 0..size {
            let payload = rng.payload();
            last = Snapshot::from_entries(payload.clone()).digest().to_string();
            burst_of.insert(last.clone(), bursts);
            writer.write(&dir, &payload).expect("kubelet write");
        }
        done += size;
        let deadline = Instant::now() + ACT_TIMEOUT;
        let (mut process_ok, mut library_ok) = (false, false);
        while Instant::now() < deadline && !(process_ok && library_ok) {
            process_ok = process_ok || last_line(&acted).as_deref() == Some(last.as_str());
            library_ok = library_ok || last_line(&library_acted).as_deref() == Some(last.as_str());
            std::thread::sleep(Duration::from_millis(2));
        }
        missed_process += u64::from(!process_ok);
        missed_library += u64::from(!library_ok);
        bursts += 1;
        if bursts == 1 {
            first_figures = Some((resources(pid), resources(library_pid)));
        }
        if bursts == WARM_UP_BURSTS {
            start_figures = Some((resources(pid), resources(library_pid)));
        }
    }
    let elapsed = started.elapsed();
    // Late actions (duplicates) would come now: give them time.
    std::thread::sleep(Duration::from_secs(1));
    let end_process = resources(pid);
    let end_library = resources(library_pid);
    for child in [&mut process, &mut library] {
        let _ = child.kill();
        let _ = child.wait();
    }

    let process_actions = fs::read_to_string(&acted)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let library_actions = fs::read_to_string(&library_acted)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let (first_process, first_library) = first_figures.unwrap_or_default();
    let (start_process, start_library) = start_figures.unwrap_or_default();
    println!(
        "soak: {done} kubelet swaps in {bursts} bursts of 1–{MAX_BURST} in {:.0} s (seed {seed})\n",
        elapsed.as_secs_f64()
    );
    println!(
        "| watcher | actions | missed final states | duplicate actions | out of order | RSS after the 1st burst | RSS after burst {WARM_UP_BURSTS} → end (drift) | open fds after burst {WARM_UP_BURSTS} → end |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, actions, missed, (rss_first, _), (rss0, fd0), (rss1, fd1)) in [
        (
            "`rekindle watch` (process)",
            &process_actions,
            missed_process,
            first_process,
            start_process,
            end_process,
        ),
        (
            "library (`Reloadable::watch`, alone in a process)",
            &library_actions,
            missed_library,
            first_library,
            start_library,
            end_library,
        ),
    ] {
        let (duplicates, out_of_order) = check(actions, &burst_of);
        let drift = (rss1 as f64 - rss0 as f64) / rss0.max(1) as f64 * 100.0;
        println!(
            "| {name} | {} | {missed} | {duplicates} | {out_of_order} | {rss_first} KiB | {rss0} → {rss1} KiB ({drift:+.1}%) | {fd0} → {fd1} |",
            actions.len()
        );
    }
}

/// Duplicates (a digest acted on twice) and actions out of order (an earlier burst's
/// content after a later one's).
fn check(actions: &[String], burst_of: &HashMap<String, u64>) -> (usize, usize) {
    let mut seen = HashSet::new();
    let (mut duplicates, mut out_of_order, mut newest) = (0, 0, 0u64);
    for digest in actions {
        if !seen.insert(digest) {
            duplicates += 1;
        }
        if let Some(&burst) = burst_of.get(digest) {
            if burst < newest {
                out_of_order += 1;
            }
            newest = newest.max(burst);
        }
    }
    (duplicates, out_of_order)
}

fn last_line(file: &Path) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().last().map(str::to_owned)
}

/// Resident memory (KiB) and open file descriptors of `pid`.
fn resources(pid: u32) -> (u64, usize) {
    let rss = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}
