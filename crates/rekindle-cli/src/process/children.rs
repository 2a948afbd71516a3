//! Child processes and reaping.
//!
//! All our children (commands for `--exec`/`--validate`, the supervised program)
//! are reaped in one place, on SIGCHLD, with `wait(-1)`. That single owner is
//! what lets `rekindle run` work as PID 1: orphans re-parented to us are reaped
//! too (their status is dropped), while the status of a child we started goes to
//! whoever waits for it. The table lock is held while spawning, so a child can
//! not be reaped before it is registered.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// The status a shell would report: the exit code, or 128 + signal.
    pub fn shell_code(self) -> u8 {
        let code = match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        };
        u8::try_from(code & 0xff).unwrap_or(1)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(
                f,
                "killed by {}",
                rustix::process::Signal::from_named_raw(*signal)
                    .map(crate::signal::name)
                    .unwrap_or_else(|| format!("signal {signal}"))
            ),
        }
    }
}

type Table = Arc<Mutex<HashMap<i32, watch::Sender<Option<Exit>>>>>;

/// The owner of all our children. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Children {
    table: Table,
}

/// A child we started. Clones share it: each can wait for its exit, and signals go
/// through the pidfd opened at spawn, so they reach this child or nobody — never a
/// process that got its PID after it was reaped.
#[derive(Debug, Clone)]
pub struct Running {
    pub pid: i32,
    pidfd: Arc<OwnedFd>,
    exit: watch::Receiver<Option<Exit>>,
}

impl Running {
    /// Resolves when the child has been reaped.
    pub async fn wait(&self) -> Exit {
        let mut exit = self.exit.clone();
        let outcome = exit.wait_for(Option::is_some).await.map(|e| *e);
        match outcome {
            Ok(Some(exit)) => exit,
            // The reaper never drops a registered sender without sending, except when
            // the runtime shuts down; report that as a kill.
            _ => Exit::Signal(9),
        }
    }

    /// The exit status, if the child has been reaped.
    pub fn exited(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Sends `signal` to this child through its pidfd.
    pub fn signal(&self, signal: Signal) -> Result<(), Errno> {
        rustix::process::pidfd_send_signal(&*self.pidfd, signal)
    }

    /// Sends `signal` to this child's process group, unless the child has been reaped
    /// (its PID, and so its group ID, may belong to someone else by then).
    pub fn signal_group(&self, signal: Signal) -> Result<(), Errno> {
        if self.exited().is_some() {
            return Err(Errno::SRCH);
        }
        let group = Pid::from_raw(self.pid).ok_or(Errno::INVAL)?;
        rustix::process::kill_process_group(group, signal)
    }
}

impl Children {
    /// Installs the SIGCHLD handler and starts the reaper task. Must be called
    /// inside the runtime, before anything is spawned.
    pub fn start() -> io::Result<Children> {
        let mut sigchld = signal(SignalKind::child())?;
        let table: Table = Arc::default();
        let reaper_table = table.clone();
        tokio::spawn(async move {
            loop {
                reap(&reaper_table);
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(Children { table })
    }

    /// Spawns `command`, pins it with a pidfd and registers it for reaping.
    pub fn spawn(&self, command: &mut Command) -> io::Result<(Running, std::process::Child)> {
        // Held while spawning and opening the pidfd: the reaper takes this lock before
        // `wait`, so the child cannot be reaped (and its PID reused) before it is pinned.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let child = command.spawn()?;
        let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
        let raw = Pid::from_raw(pid).ok_or_else(|| io::Error::other("PID 0 from spawn"))?;
        let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty())?;
        let (tx, rx) = watch::channel(None);
        table.insert(pid, tx);
        Ok((
            Running {
                pid,
                pidfd: Arc::new(pidfd),
                exit: rx,
            },
            child,
        ))
    }
}

fn reap(table: &Table) {
    let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                let exit = match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) => Exit::Code(code),
                    (None, Some(signal)) => Exit::Signal(signal),
                    (None, None) => continue,
                };
                if let Some(tx) = table.remove(&pid.as_raw_pid()) {
                    tx.send_replace(Some(exit));
                }
                // Anything else is an orphan re-parented to us (as PID 1 or as a child
                // subreaper): reaped, nothing to report.
            }
            Err(Errno::INTR) => continue,
            Ok(None) | Err(_) => break,
        }
    }
}
