//! Test support: volumes updated as the kubelet does, the `rekindle` binary as
//! a child with its log captured, processes that count the signals they get,
//! and a loopback HTTP server with scripted answers.

#![allow(dead_code)]

pub mod http;
pub mod kubelet;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // not every test binary uses it
pub use kubelet::Volume;

pub const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `condition` until it holds or `DEADLINE` passes (then panics with `what`).
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `rekindle`, killed on drop, its stderr in a file.
#[derive(Debug)]
pub struct Rekindle {
    pub child: Child,
    pub log: PathBuf,
}

impl Rekindle {
    pub fn command() -> Command {
        Command::new(env!("CARGO_BIN_EXE_rekindle"))
    }

    pub fn spawn(mut command: Command, log: PathBuf) -> Rekindle {
        use std::os::unix::process::CommandExt;
        let file = fs::File::create(&log).expect("log file");
        // Its own process group, so that dropping it also ends whatever it
        // started (a supervised program must not outlive the test).
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn rekindle");
        Rekindle { child, log }
    }

    pub fn start(args: &[&str], dir: &Path) -> Rekindle {
        let mut command = Self::command();
        command.args(args);
        Self::spawn(command, dir.join("rekindle.log"))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn count_in_log(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    /// Waits until the log contains `needle` at least `n` times.
    pub fn wait_log(&self, needle: &str, n: usize) {
        let start = Instant::now();
        while self.count_in_log(needle) < n {
            if start.elapsed() > DEADLINE {
                panic!(
                    "timed out waiting for {n}× {needle:?} in the log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("pid");
        rustix::process::kill_process(pid, signal).expect("signal rekindle");
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "rekindle did not exit:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Rekindle {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.pid()) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `rekindle` to completion (for usage errors) and returns (status, stderr).
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut command = Rekindle::command();
    command.args(args).env_clear().envs(env.iter().copied());
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (child.wait().expect("wait"), stderr)
}

/// A process that appends the name of each HUP/USR1/USR2 it receives to a file.
/// It is bash started through a symlink called NAME, as a real program called NAME
/// runs: `argv[0]` is NAME and the kernel's short name is its first 15 bytes, so a
/// name longer than that is found only through the argv[0] comparison.
#[derive(Debug)]
pub struct SignalCounter {
    pub child: Child,
    pub file: PathBuf,
}

pub const COUNTER_SCRIPT: &str = r#"
out="$1"
trap 'echo HUP >> "$out"' HUP
trap 'echo USR1 >> "$out"' USR1
trap 'echo USR2 >> "$out"' USR2
trap 'exit 0' TERM
echo ready >> "$out"
while :; do sleep 5 & wait $!; done
"#;

impl SignalCounter {
    pub fn command(name: &str, dir: &Path) -> (Command, PathBuf) {
        let script = dir.join("counter.sh");
        fs::write(&script, COUNTER_SCRIPT).expect("write counter script");
        let file = dir.join(format!("{name}.signals"));
        let program = dir.join(name);
        if !program.exists() {
            let bash = fs::canonicalize("/bin/bash").expect("bash");
            std::os::unix::fs::symlink(bash, &program).expect("symlink bash");
        }
        let mut command = Command::new(&program);
        command.arg(&script).arg(&file);
        (command, file)
    }

    pub fn start(name: &str, dir: &Path) -> SignalCounter {
        let (mut command, file) = Self::command(name, dir);
        let child = command.spawn().expect("spawn counter");
        let counter = SignalCounter { child, file };
        wait_for("the signal counter to start", || {
            counter.count("ready") == 1
        });
        counter
    }

    pub fn count(&self, what: &str) -> usize {
        count_lines(&self.file, what)
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }
}

/// How many lines `file` holds (0 while it does not exist).
pub fn line_count(file: &Path) -> usize {
    fs::read_to_string(file).unwrap_or_default().lines().count()
}

/// How many lines of `file` are exactly `what`.
pub fn count_lines(file: &Path, what: &str) -> usize {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == what)
        .count()
}

impl Drop for SignalCounter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's state letter and parent PID from `/proc/PID/stat`; `None` once
/// it is gone (a zombie keeps its entry until reaped). The command name may
/// hold spaces and `)`, so the fields are read after the last `)`.
pub fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// GET over loopback; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Starts `command` as a process with exactly `pid`, reusing the PID of a process that
/// has exited: as root, the kernel's next PID can be set through
/// `/proc/sys/kernel/ns_last_pid`. Other processes forking meanwhile can take the PID
/// first, so this retries; `None` if it never got it.
pub fn spawn_with_pid(pid: i32, mut command: Command) -> Option<KillOnDrop> {
    for _ in 0..50 {
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write ns_last_pid (needs root)");
        let mut child = command.spawn().expect("spawn");
        if i32::try_from(child.id()).ok() == Some(pid) {
            return Some(KillOnDrop(child));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

/// The PIDs of `pid`'s children, from `/proc/PID/task/PID/children`.
pub fn proc_children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether any process's command line contains `text`.
pub fn any_process_mentions(text: &str) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        fs::read(entry.path().join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(text))
    })
}

/// A child process killed and reaped when dropped, also when a test fails first.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
