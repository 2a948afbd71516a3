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
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use rustix::io::Errno;
use rustix::process::WaitOptions;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

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
                    .map(crate::signals::name)
                    .unwrap_or_else(|| format!("signal {signal}"))
            ),
        }
    }
}

type Table = Arc<Mutex<HashMap<i32, oneshot::Sender<Exit>>>>;

/// The owner of all our children. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Children {
    table: Table,
}

/// A child we started; [`Running::wait`] resolves when it has been reaped.
#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    exit: oneshot::Receiver<Exit>,
    done: Option<Exit>,
}

impl Running {
    pub async fn wait(&mut self) -> Exit {
        if let Some(exit) = self.done {
            return exit;
        }
        // The reaper never drops a registered sender without sending, except
        // when the runtime shuts down; report that as a kill.
        let exit = (&mut self.exit).await.unwrap_or(Exit::Signal(9));
        self.done = Some(exit);
        exit
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

    /// Spawns `command` and registers it for reaping.
    pub fn spawn(&self, command: &mut Command) -> io::Result<(Running, std::process::Child)> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let child = command.spawn()?;
        let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
        let (tx, rx) = oneshot::channel();
        table.insert(pid, tx);
        Ok((
            Running {
                pid,
                exit: rx,
                done: None,
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
                    let _ = tx.send(exit);
                }
                // Anything else is an orphan re-parented to us (PID 1): reaped,
                // nothing to report.
            }
            Err(Errno::INTR) => continue,
            Ok(None) | Err(_) => break,
        }
    }
}
