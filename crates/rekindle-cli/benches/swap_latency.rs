//! `rekindle watch` against the sidecars it replaces, in one run and one harness:
//! rename → signal and rename → webhook latency, signals and calls per swap, idle RSS and
//! idle wake-ups.
//!
//! ```text
//! REKINDLE_BIN=path/to/rekindle ANCHORS_BIN=~/.cache/rekindle/anchors/bin \
//!     cargo bench -p rekindle-cli --bench swap_latency
//! ```
//!
//! `REKINDLE_BIN` defaults to the bench profile's own build, `ANCHORS_BIN` to
//! `$HOME/.cache/rekindle/anchors/bin` (`config-reloader-sidecar`, `configmap-reload`;
//! an anchor that is not there is skipped, with a line saying so). `SWAPS` sets the
//! number of swaps per row (default 300); `PATHS=signal` or `PATHS=webhook` runs only
//! that path's rows (default: both). `-- --test` (or `cargo test --benches`) runs a
//! quick pass that only shows the bench works.
//!
//! Every row runs the same way: after the tool under test has reacted to probe swaps and
//! been quiet for 500 ms, the event log starts from zero; each swap is an in-process
//! kubelet-style swap (new `..<timestamp>` directory, `..data_tmp` renamed over `..data`,
//! links, old directory removed) whose sample runs from the instant of the rename to the
//! first event (SIGHUP received by this process, or webhook request arrived at the
//! receiver in this process) after it; the next swap starts once no event came for 50 ms;
//! after the last swap the log settles 500 ms, and every event is counted in the window
//! of the swap it arrived in (from the start of that swap to the start of the next).
//!
//! Signal targets: this process renames itself (`prctl(PR_SET_NAME)`) to a name unique to
//! the run, and both signal sidecars look for that name. Signals are timestamped by a
//! thread that does nothing else. Two SIGHUPs pending at once are delivered as one (the
//! kernel does not queue standard signals), so signal counts are lower bounds; webhook
//! counts are exact (one connection per request).

#[allow(dead_code)]
#[path = "../tests/support/kubelet.rs"]
mod kubelet;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use rekindle_testenv::kubelet_writer::KubeletWriter;
use tokio::signal::unix::{SignalKind, signal};

/// Between swaps: the next starts once no event came for this long.
const QUIET: Duration = Duration::from_millis(50);
/// Before the first swap of a row, and after its last: no event for this long.
const SETTLE: Duration = Duration::from_millis(500);
/// A swap with no event after this long is a miss.
const FIRST_TIMEOUT: Duration = Duration::from_secs(5);
const CRS: &str = "config-reloader-sidecar";
const CMR: &str = "configmap-reload";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("swap_latency: bench");
        return;
    }
    // `cargo bench` passes `--bench`; `cargo bench -- --test` and `cargo test --benches`
    // (no `--bench`) ask for a quick pass.
    let quick = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let swaps = if quick {
        10
    } else {
        std::env::var("SWAPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300)
    };
    if !quick && swaps < 200 {
        println!("note: SWAPS={swaps}: fewer than 200 swaps per row, the p99 is not meaningful");
    }
    let (idle_settle, idle) = if quick {
        (Duration::from_millis(200), Duration::from_secs(1))
    } else {
        (Duration::from_secs(2), Duration::from_secs(10))
    };
    Bench::new(quick, swaps, idle_settle, idle).run();
}

/// Instants of events (signals received, requests arrived), in arrival order, each
/// taken by the one thread that produces them.
struct Events {
    rx: Receiver<Instant>,
    seen: Vec<Instant>,
}

impl Events {
    fn new(rx: Receiver<Instant>) -> Events {
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    fn push(&mut self, event: Result<Instant, RecvTimeoutError>) -> bool {
        match event {
            Ok(at) => {
                self.seen.push(at);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => panic!("the event source stopped"),
        }
    }

    /// Forgets everything seen so far: counting starts from zero.
    fn reset(&mut self) {
        while self.push(self.rx.recv_timeout(Duration::ZERO)) {}
        self.seen.clear();
    }

    /// Waits for an event at or after `since`, for at most `timeout`.
    fn wait_for(&mut self, since: Instant, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.seen.last().is_some_and(|&at| at >= since) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.push(self.rx.recv_timeout(left)) {
                return false;
            }
        }
    }

    /// Returns once no event came for `quiet`, or after `cap`.
    fn settle(&mut self, quiet: Duration, cap: Duration) {
        let end = Instant::now() + cap;
        loop {
            let left = quiet.min(end.saturating_duration_since(Instant::now()));
            if left.is_zero() || !self.push(self.rx.recv_timeout(left)) {
                return;
            }
        }
    }
}

/// A SIGHUP handler on a thread of its own, which timestamps each delivery.
fn signal_clock() -> Receiver<Instant> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    thread::Builder::new()
        .name("sighup-clock".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
                ready_tx.send(()).expect("ready");
                while hup.recv().await.is_some() {
                    if tx.send(Instant::now()).is_err() {
                        break;
                    }
                }
            });
        })
        .expect("spawn the signal clock");
    ready_rx.recv().expect("SIGHUP handler installed");
    rx
}

/// A loopback webhook receiver: reads each request whole, timestamps its arrival,
/// answers `200 OK` with no body and closes the connection. Counts requests that are
/// not `POST /reload`.
fn webhook_receiver() -> (u16, Receiver<Instant>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    let port = listener.local_addr().expect("receiver address").port();
    let (tx, rx) = mpsc::channel();
    let unexpected = Arc::new(AtomicUsize::new(0));
    let counted = unexpected.clone();
    thread::Builder::new()
        .name("webhook-receiver".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                match serve(stream) {
                    Ok((at, expected)) => {
                        if !expected {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        if tx.send(at).is_err() {
                            return;
                        }
                    }
                    Err(_) => {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .expect("spawn the receiver");
    (port, rx, unexpected)
}

fn serve(mut stream: TcpStream) -> std::io::Result<(Instant, bool)> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut wanted = None;
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if wanted.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&buf[..end]);
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            wanted = Some(end + 4 + length);
        }
        if wanted.is_some_and(|w| buf.len() >= w) {
            break;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    let at = Instant::now();
    let expected = buf.starts_with(b"POST /reload ");
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok((at, expected))
}

/// The receiver's floor: the same request on a fresh loopback connection.
fn post(port: u16, request: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the receiver");
    stream.set_nodelay(true).expect("nodelay");
    stream.write_all(request).expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "the receiver refused");
}

/// A process started by the bench: killed and reaped when dropped, also on a panic.
struct Sidecar {
    what: String,
    child: Child,
    log: PathBuf,
}

impl Sidecar {
    fn spawn(what: &str, mut command: Command, log: PathBuf) -> Sidecar {
        let file = fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Sidecar {
            what: what.to_owned(),
            child,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics, with its log, if it has exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); its log ({}):\n{}",
                self.what,
                self.log.display(),
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One timed swap: when it started, and the instant its sample is timed from.
#[derive(Clone, Copy)]
struct Mark {
    start: Instant,
    t0: Instant,
}

/// The figures of one row.
struct Row {
    label: String,
    swaps: usize,
    /// t0 → first event after it, for the swaps that had one.
    first: Vec<Duration>,
    /// t0 → last event of its window, for the swaps that had one.
    last: Vec<Duration>,
    /// Events at or after t0, per swap.
    per_swap: Vec<usize>,
    /// Events in a swap's window but before its t0 (before the rename).
    early: usize,
    /// Events after the count started but before the first swap.
    stray: usize,
}

impl Row {
    fn new(label: &str, seen: &[Instant], marks: &[Mark]) -> Row {
        let mut row = Row {
            label: label.to_owned(),
            swaps: marks.len(),
            first: Vec::new(),
            last: Vec::new(),
            per_swap: Vec::new(),
            early: 0,
            stray: marks.first().map_or(seen.len(), |m| {
                seen.iter().filter(|&&at| at < m.start).count()
            }),
        };
        for (i, mark) in marks.iter().enumerate() {
            let end = marks.get(i + 1).map(|next| next.start);
            let window = seen
                .iter()
                .filter(|&&at| at >= mark.start && end.is_none_or(|end| at < end));
            let (before, after): (Vec<Instant>, Vec<Instant>) =
                window.partition(|&&at| at < mark.t0);
            row.early += before.len();
            row.per_swap.push(after.len());
            if let (Some(first), Some(last)) = (after.first(), after.last()) {
                row.first.push(*first - mark.t0);
                row.last.push(*last - mark.t0);
            }
        }
        row.first.sort();
        row.last.sort();
        row
    }

    fn missed(&self) -> usize {
        self.per_swap.iter().filter(|&&n| n == 0).count()
    }

    fn exactly_one(&self) -> usize {
        self.per_swap.iter().filter(|&&n| n == 1).count()
    }

    fn extra(&self) -> usize {
        self.per_swap.iter().map(|&n| n.saturating_sub(1)).sum()
    }

    fn mean(&self) -> f64 {
        self.per_swap.iter().sum::<usize>() as f64 / self.swaps.max(1) as f64
    }

    /// `1×298 2×2`: how many swaps had how many events.
    fn histogram(&self) -> String {
        let mut counts = BTreeMap::new();
        for &n in &self.per_swap {
            *counts.entry(n).or_insert(0usize) += 1;
        }
        counts
            .iter()
            .map(|(n, swaps)| format!("{n}×{swaps}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn first_at(&self, p: f64) -> Option<Duration> {
        percentile(&self.first, p)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((p / 100.0) * last as f64).round() as usize;
    Some(sorted[rank.min(last)])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.3}", d.as_secs_f64() * 1e3),
    )
}

fn ms_f(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".to_owned(),
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3} ms"))
}

fn payload(generation: usize) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            "app.conf".to_owned(),
            format!("generation = {generation}\n").into_bytes(),
        ),
        ("static.txt".to_owned(), b"unchanged".to_vec()),
    ])
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

fn threads(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |t| t.count())
}

struct Bench {
    quick: bool,
    swaps: usize,
    idle_settle: Duration,
    idle: Duration,
    tmp: tempfile::TempDir,
    name: String,
    rekindle: PathBuf,
    anchors: PathBuf,
    signals: Events,
    requests: Events,
    port: u16,
    unexpected: Arc<AtomicUsize>,
    generation: usize,
    rows: Vec<Row>,
    idles: Vec<String>,
    notes: Vec<String>,
}

impl Bench {
    fn new(quick: bool, swaps: usize, idle_settle: Duration, idle: Duration) -> Bench {
        // The handler first: a SIGHUP must never find this process without it.
        let signals = Events::new(signal_clock());
        // A kernel name unique to this run (at most 15 bytes), for --process-name and
        // PROCESS_NAME; this is the main thread, whose name /proc/PID/stat shows.
        let name = format!("rkbench{}", std::process::id());
        rustix::thread::set_name(&CString::new(name.clone()).expect("name")).expect("PR_SET_NAME");
        let comm = fs::read_to_string("/proc/self/comm").expect("/proc/self/comm");
        assert_eq!(comm.trim_end(), name, "this process's kernel name");
        let (port, requests, unexpected) = webhook_receiver();
        let rekindle = std::env::var_os("REKINDLE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rekindle")));
        let anchors = std::env::var_os("ANCHORS_BIN")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|home| Path::new(&home).join(".cache/rekindle/anchors/bin"))
            })
            .unwrap_or_default();
        Bench {
            quick,
            swaps,
            idle_settle,
            idle,
            tmp: tempfile::tempdir().expect("tempdir"),
            name,
            rekindle,
            anchors,
            signals,
            requests: Events::new(requests),
            port,
            unexpected,
            generation: 0,
            rows: Vec::new(),
            idles: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn next_payload(&mut self) -> BTreeMap<String, Vec<u8>> {
        self.generation += 1;
        payload(self.generation)
    }

    /// A fresh kubelet-style volume for one tool.
    fn volume(&mut self, what: &str) -> PathBuf {
        let dir = self.tmp.path().join(what).join("volume");
        fs::create_dir_all(&dir).expect("volume dir");
        let first = self.next_payload();
        kubelet::emulate(&dir, &first);
        dir
    }

    fn anchor(&self, name: &str) -> Option<PathBuf> {
        let path = self.anchors.join(name);
        fs::metadata(&path)
            .is_ok_and(|m| m.is_file() && m.len() > 0)
            .then_some(path)
    }

    fn rekindle_watch(&self, what: &str, dir: &Path, action: &[&str]) -> Sidecar {
        let mut command = Command::new(&self.rekindle);
        command
            .args(["watch", "--dir"])
            .arg(dir)
            .args(action)
            .args(["--log-level", "warn"]);
        Sidecar::spawn(what, command, self.log(what))
    }

    fn log(&self, what: &str) -> PathBuf {
        self.tmp
            .path()
            .join(format!("{}.log", what.replace([' ', '/'], "_")))
    }

    /// Swaps until `sidecar` reacts (it is watching), then waits for quiet.
    fn wait_ready(&mut self, webhook: bool, sidecar: &mut Sidecar, dir: &Path) {
        let started = Instant::now();
        loop {
            sidecar.check_alive();
            let content = self.next_payload();
            let t0 = Instant::now();
            kubelet::emulate(dir, &content);
            let events = if webhook {
                &mut self.requests
            } else {
                &mut self.signals
            };
            if events.wait_for(t0, Duration::from_millis(200)) {
                events.settle(SETTLE, Duration::from_secs(5));
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} did not react to a swap within 10 s; its log ({}):\n{}",
                sidecar.what,
                sidecar.log.display(),
                fs::read_to_string(&sidecar.log).unwrap_or_default()
            );
        }
    }

    /// Runs one row: `swap` makes one change and returns the instant to time it from
    /// (None: from its start).
    fn row(
        &mut self,
        webhook: bool,
        label: &str,
        mut swap: impl FnMut(&mut Bench) -> Option<Instant>,
    ) {
        let n = self.swaps;
        self.events(webhook).reset();
        let mut marks = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let t0 = swap(self).unwrap_or(start);
            let events = self.events(webhook);
            events.wait_for(t0, FIRST_TIMEOUT);
            events.settle(QUIET, Duration::from_secs(2));
            marks.push(Mark { start, t0 });
        }
        let events = self.events(webhook);
        events.settle(SETTLE, Duration::from_secs(5));
        let row = Row::new(label, &events.seen, &marks);
        println!(
            "{label}: n={} median={} p90={} p99={} max={} ms; per swap {} (missed {}, extra {}, before t0 {}, stray {})",
            row.swaps,
            ms(row.first_at(50.0)),
            ms(row.first_at(90.0)),
            ms(row.first_at(99.0)),
            ms(row.first_at(100.0)),
            row.histogram(),
            row.missed(),
            row.extra(),
            row.early,
            row.stray,
        );
        self.rows.push(row);
    }

    fn events(&mut self, webhook: bool) -> &mut Events {
        if webhook {
            &mut self.requests
        } else {
            &mut self.signals
        }
    }

    /// Timed from the `..data` rename of an in-process kubelet-style swap.
    fn emulated_row(&mut self, webhook: bool, label: &str, dir: &Path) {
        self.row(webhook, label, |bench| {
            let content = bench.next_payload();
            Some(kubelet::emulate(dir, &content))
        });
    }

    fn measure_idle(&mut self, sidecar: &mut Sidecar) {
        sidecar.check_alive();
        let pid = sidecar.pid();
        thread::sleep(self.idle_settle);
        let before = switches(pid);
        thread::sleep(self.idle);
        let after = switches(pid);
        self.idles.push(format!(
            "| {} | {} KiB | {} KiB | {} KiB | {} KiB | {} | {} in {} s |",
            sidecar.what,
            status_field(pid, "VmRSS:").unwrap_or(0),
            status_field(pid, "RssAnon:").unwrap_or(0),
            status_field(pid, "RssFile:").unwrap_or(0),
            status_field(pid, "VmHWM:").unwrap_or(0),
            threads(pid),
            after.saturating_sub(before),
            self.idle.as_secs_f64(),
        ));
    }

    fn find_row(&self, label: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.label == label)
    }

    fn run(mut self) {
        let binaries = [
            ("rekindle", Some(self.rekindle.clone())),
            (CRS, self.anchor(CRS)),
            (CMR, self.anchor(CMR)),
        ];
        for (name, path) in &binaries {
            match path {
                Some(path) => println!(
                    "binary: {name} = {} ({} bytes)",
                    path.display(),
                    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
                ),
                None => {
                    let note = format!(
                        "{name}: skipped, no binary at {} (set ANCHORS_BIN, or build the anchors with their build.sh)",
                        self.anchors.join(name).display()
                    );
                    println!("{note}");
                    self.notes.push(note);
                }
            }
        }
        println!(
            "signal target: this process, kernel name {:?} (pid {}); webhook receiver: http://127.0.0.1:{}/reload; {} swaps per row{}",
            self.name,
            std::process::id(),
            self.port,
            self.swaps,
            if self.quick {
                " (quick mode: figures meaningless)"
            } else {
                ""
            }
        );

        let paths = std::env::var("PATHS").unwrap_or_default();
        if paths.is_empty() || paths == "signal" {
            self.signal_rows();
        }
        if paths.is_empty() || paths == "webhook" {
            self.webhook_rows();
        }
        self.summary();
    }

    fn signal_rows(&mut self) {
        // The floor of the signal path: this process signals itself.
        self.row(
            false,
            "signal floor: kill(self, SIGHUP) → handler",
            |_| {
                rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::HUP,
                )
                .expect("kill self");
                None
            },
        );

        let own_pid = std::process::id().to_string();
        let dir = self.volume("rekindle-pid");
        let mut by_pid = self.rekindle_watch("rekindle --pid", &dir, &["--pid", &own_pid]);
        self.wait_ready(false, &mut by_pid, &dir);
        self.emulated_row(false, "rename → signal: rekindle --pid", &dir);
        drop(by_pid);

        let dir = self.volume("rekindle-name");
        let name = self.name.clone();
        let mut by_name =
            self.rekindle_watch("rekindle --process-name", &dir, &["--process-name", &name]);
        self.wait_ready(false, &mut by_name, &dir);
        self.emulated_row(false, "rename → signal: rekindle --process-name", &dir);
        match KubeletWriter::locate() {
            Ok(writer) => self.row(
                false,
                "AtomicWriter start → signal: rekindle --process-name (includes the writer's exec)",
                |bench| {
                    let content = bench.next_payload();
                    writer.write(&dir, &content).expect("kubelet-writer");
                    None
                },
            ),
            Err(e) => {
                let note =
                    format!("AtomicWriter row skipped: kubelet-writer not provisioned ({e})");
                println!("{note}");
                self.notes.push(note);
            }
        }
        self.measure_idle(&mut by_name);
        drop(by_name);

        if let Some(binary) = self.anchor(CRS) {
            let dir = self.volume(CRS);
            let mut command = Command::new(binary);
            command
                .env("CONFIG_DIR", &dir)
                .env("PROCESS_NAME", &name)
                .env("RELOAD_SIGNAL", "SIGHUP");
            let mut crs = Sidecar::spawn(CRS, command, self.log(CRS));
            self.wait_ready(false, &mut crs, &dir);
            self.emulated_row(false, &format!("rename → signal: {CRS}"), &dir);
            self.measure_idle(&mut crs);
        }
    }

    fn webhook_rows(&mut self) {
        let port = self.port;
        let url = format!("http://127.0.0.1:{port}/reload");
        let request = format!(
            "POST /reload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes();
        self.row(
            true,
            "webhook floor: fresh-connection POST from this process → arrival",
            |_| {
                post(port, &request);
                None
            },
        );

        let dir = self.volume("rekindle-webhook");
        let mut hook =
            self.rekindle_watch("rekindle --webhook-url", &dir, &["--webhook-url", &url]);
        self.wait_ready(true, &mut hook, &dir);
        self.emulated_row(true, "rename → webhook arrival: rekindle", &dir);
        self.measure_idle(&mut hook);
        drop(hook);

        if let Some(binary) = self.anchor(CMR) {
            let dir = self.volume(CMR);
            let mut command = Command::new(binary);
            command
                .arg(format!("--volume-dir={}", dir.display()))
                .arg(format!("--webhook-url={url}"))
                .arg("--web.listen-address=127.0.0.1:0");
            let mut cmr = Sidecar::spawn(CMR, command, self.log(CMR));
            self.wait_ready(true, &mut cmr, &dir);
            self.emulated_row(true, &format!("rename → webhook arrival: {CMR}"), &dir);
            self.measure_idle(&mut cmr);
        }
    }

    fn summary(&self) {
        let mut table = String::new();
        let _ = writeln!(
            table,
            "\n| what | swaps | median | p90 | p99 | max | events per swap | exactly one | missed | extra | before t0 | stray |"
        );
        let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for row in &self.rows {
            let _ = writeln!(
                table,
                "| {} | {} | {} ms | {} ms | {} ms | {} ms | {:.2} ({}) | {} | {} | {} | {} | {} |",
                row.label,
                row.swaps,
                ms(row.first_at(50.0)),
                ms(row.first_at(90.0)),
                ms(row.first_at(99.0)),
                ms(row.first_at(100.0)),
                row.mean(),
                row.histogram(),
                row.exactly_one(),
                row.missed(),
                row.extra(),
                row.early,
                row.stray,
            );
            if row.extra() > 0 {
                let _ = writeln!(
                    table,
                    "| … same, t0 → LAST event of the swap | {} | {} ms | {} ms | {} ms | {} ms | | | | | | |",
                    row.last.len(),
                    ms(percentile(&row.last, 50.0)),
                    ms(percentile(&row.last, 90.0)),
                    ms(percentile(&row.last, 99.0)),
                    ms(percentile(&row.last, 100.0)),
                );
            }
        }
        print!("{table}");
        println!(
            "(samples: t0 → FIRST event after t0; t0 = the ..data rename, or the start of the step for floors and the AtomicWriter; \
             'before t0' = events in a swap's window that came before its rename; signal counts are lower bounds, see the file's header)"
        );

        println!(
            "\n| idle (after its swaps, {} s settle) | VmRSS | of which RssAnon | of which RssFile (the binary's pages) | VmHWM | threads | context switches |",
            self.idle_settle.as_secs_f64()
        );
        println!("|---|---|---|---|---|---|---|");
        for line in &self.idles {
            println!("{line}");
        }

        let signal_rk = self.find_row("rename → signal: rekindle --process-name");
        let signal_pid = self.find_row("rename → signal: rekindle --pid");
        let signal_crs = self.find_row(&format!("rename → signal: {CRS}"));
        let p99 = |row: Option<&Row>| ms_f(row.and_then(|r| r.first_at(99.0)));
        let med = |row: Option<&Row>| ms_f(row.and_then(|r| r.first_at(50.0)));
        println!();
        match signal_crs.filter(|_| signal_rk.is_some()) {
            Some(crs) => println!(
                "rename→signal p99: rekindle {} (--process-name; --pid {}), {CRS} {} (rekindle/{CRS} = {}; target ≤ 0.50). \
                 Median {} vs {}. Signals per swap: rekindle {:.2} ({} of {} exactly one), {CRS} {:.2} ({})",
                opt_ms(p99(signal_rk)),
                opt_ms(p99(signal_pid)),
                opt_ms(p99(Some(crs))),
                ratio(p99(signal_rk), p99(Some(crs))),
                opt_ms(med(signal_rk)),
                opt_ms(med(Some(crs))),
                signal_rk.map_or(0.0, Row::mean),
                signal_rk.map_or(0, Row::exactly_one),
                signal_rk.map_or(0, |r| r.swaps),
                crs.mean(),
                crs.histogram(),
            ),
            None if signal_rk.is_some() => println!(
                "rename→signal p99: rekindle {}; {CRS} not measured (skipped)",
                opt_ms(p99(signal_rk))
            ),
            None => {}
        }

        if signal_crs.is_some() {
            println!(
                "note: {CRS} signals after each directory event; its first signal after the rename may be the one \
                 for the timestamped directory or ..data_tmp created just before it (the application still gets it \
                 after the rename, so it counts)"
            );
        }
        let floor =
            med(self.find_row("webhook floor: fresh-connection POST from this process → arrival"));
        let above =
            |row: Option<&Row>, p: f64| Some(ms_f(row.and_then(|r| r.first_at(p)))? - floor?);
        let hook_rk = self.find_row("rename → webhook arrival: rekindle");
        let hook_cmr = self.find_row(&format!("rename → webhook arrival: {CMR}"));
        match hook_cmr.filter(|_| hook_rk.is_some()) {
            Some(cmr) => println!(
                "webhook above floor median/p99: rekindle {}/{}, {CMR} {}/{} (rekindle/{CMR} = {}/{}; target ≤ 0.50). \
                 Floor = median of the fresh-connection POST, {}. Calls per swap: rekindle {:.2} ({}), {CMR} {:.2} ({})",
                opt_ms(above(hook_rk, 50.0)),
                opt_ms(above(hook_rk, 99.0)),
                opt_ms(above(Some(cmr), 50.0)),
                opt_ms(above(Some(cmr), 99.0)),
                ratio(above(hook_rk, 50.0), above(Some(cmr), 50.0)),
                ratio(above(hook_rk, 99.0), above(Some(cmr), 99.0)),
                opt_ms(floor),
                hook_rk.map_or(0.0, Row::mean),
                hook_rk.map_or_else(String::new, Row::histogram),
                cmr.mean(),
                cmr.histogram(),
            ),
            None if hook_rk.is_some() => println!(
                "webhook above floor median/p99: rekindle {}/{}; {CMR} not measured (skipped)",
                opt_ms(above(hook_rk, 50.0)),
                opt_ms(above(hook_rk, 99.0)),
            ),
            None => {}
        }
        let unexpected = self.unexpected.load(Ordering::Relaxed);
        if unexpected > 0 {
            println!(
                "webhook receiver: {unexpected} request(s) that were not a whole POST /reload"
            );
        }
        let skipped: BTreeSet<&String> = self.notes.iter().collect();
        for note in skipped {
            println!("note: {note}");
        }
    }
}
