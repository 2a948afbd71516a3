//! Supervising one control-plane process: spawn it with its output in a log
//! file, notice when it dies, and kill it by PID.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting {name} ({}): {source}", program.display())]
pub struct SpawnError {
    pub name: &'static str,
    pub program: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A running child process, killed when dropped.
#[derive(Debug)]
pub(crate) struct Process {
    name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Starts `program args`, appending its stdout and stderr to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: Vec<OsString>,
        log: PathBuf,
    ) -> Result<Self, SpawnError> {
        let mut process = Self {
            name,
            program: program.to_owned(),
            args,
            log,
            child: None,
        };
        process.start()?;
        Ok(process)
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Kills the process and starts it again with the same arguments (same
    /// ports, same data directory).
    pub(crate) fn restart(&mut self) -> Result<(), SpawnError> {
        self.kill();
        self.start()
    }

    fn start(&mut self) -> Result<(), SpawnError> {
        let error = |source| SpawnError {
            name: self.name,
            program: self.program.clone(),
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(error)?;
        writeln!(log, "==== rekindle-testenv: starting {}", self.name).map_err(error)?;
        let stderr = log.try_clone().map_err(error)?;
        let child = command(&self.program, &self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(error)?;
        self.child = Some(child);
        Ok(())
    }

    /// The exit status, if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILL by PID, then reap it so no zombie is left.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only if the process was already reaped; nothing to do then.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last `lines` lines of the process's log, for error messages.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        match std::fs::read(&self.log) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let all: Vec<&str> = text.lines().collect();
                let start = all.len().saturating_sub(lines);
                all[start..].join("\n")
            }
            Err(err) => format!("(no log at {}: {err})", self.log.display()),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The command for `program args`, wrapped in `setpriv --pdeathsig KILL` when
/// available: Drop kills the process when a test ends or panics, but a test
/// binary that is itself killed (a CI timeout) runs no Drop, and the kernel's
/// parent-death signal then stops the child instead of leaving it running.
/// `setpriv` execs the program, so the PID is the program's own.
///
/// The signal is tied to the *thread* that spawned the child; a control plane
/// started on a thread that ends before it is dropped loses its processes.
fn command(program: &Path, args: &[OsString]) -> Command {
    const SETPRIV: &str = "/usr/bin/setpriv";
    if Path::new(SETPRIV).exists() {
        let mut cmd = Command::new(SETPRIV);
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(args);
        cmd
    } else {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_output_reports_exit_and_restarts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("sh.log");
        let mut process = Process::spawn(
            "sh",
            Path::new("/bin/sh"),
            vec!["-c".into(), "echo hello; exit 3".into()],
            log.clone(),
        )
        .expect("spawn sh");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = process.exited() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "sh did not exit");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(3));
        assert!(process.log_tail(1).contains("hello"));
        process.restart().expect("restart");
        process.kill();
        let text = std::fs::read_to_string(&log).expect("read log");
        assert_eq!(
            text.matches("==== rekindle-testenv: starting sh").count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn kill_stops_a_running_process() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut process = Process::spawn(
            "sleep",
            Path::new("/bin/sleep"),
            vec!["600".into()],
            dir.path().join("sleep.log"),
        )
        .expect("spawn sleep");
        let pid = process.child.as_ref().expect("running").id();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        process.kill();
        assert!(process.exited().is_none(), "no child left to wait for");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "killed and reaped"
        );
    }
}
