//! Signals: names as users write them, finding target processes, and delivering
//! through pidfds to exactly the process meant.
//!
//! [`Signaller`] holds what is known about the target between changes. For
//! `--process-name` that is the pidfds of the processes found last time: the next change
//! signals them at once (no `/proc` scan on the critical path) unless one has exited;
//! a scan right after the signals catches any newly started match, which is signalled
//! then, so nothing is missed and nothing is signalled twice.

pub mod find;
pub mod names;
pub mod send;

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::process::Signal;

use crate::plan::{SignalPlan, Target};
use send::{DeliverError, Pinned};

pub use names::name;

/// What one delivery did: the PIDs signalled and, for the rest, why not.
#[derive(Debug, Default)]
pub struct Delivery {
    pub sent: Vec<i32>,
    pub failed: Vec<DeliverError>,
    /// Set when no process could be signalled for a reason other than a per-process
    /// error (none found, unreadable pid file).
    pub problem: Option<String>,
}

impl Delivery {
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.problem.is_none() && !self.sent.is_empty()
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.sent.is_empty() {
            let pids: Vec<String> = self.sent.iter().map(i32::to_string).collect();
            parts.push(format!("sent to PID {}", pids.join(", ")));
        }
        parts.extend(self.failed.iter().map(ToString::to_string));
        parts.extend(self.problem.clone());
        f.write_str(&parts.join("; "))
    }
}

#[derive(Debug)]
enum State {
    Name {
        name: String,
        held: Vec<Pinned>,
    },
    /// `--pid`: the start time recorded at the first lookup identifies the process for
    /// good; a different process that later gets the PID is refused.
    Pid {
        pid: i32,
        start_time: Option<u64>,
    },
    PidFile {
        path: PathBuf,
    },
}

/// Delivers one signal to the target of a [`SignalPlan`], change after change.
#[derive(Debug)]
pub struct Signaller {
    signal: Signal,
    state: State,
    proc_dir: OwnedFd,
}

/// How often a pid file is read again when it changes while we open the process.
const PID_FILE_ATTEMPTS: usize = 3;

impl Signaller {
    /// Opens `/proc` and looks the target up once, so the first change is fast and a
    /// `--pid` is pinned to the process that has it now.
    pub fn new(plan: &SignalPlan) -> io::Result<Signaller> {
        let proc_dir = find::open_proc()?;
        let state = match &plan.target {
            Target::Name(name) => State::Name {
                name: name.clone(),
                held: Vec::new(),
            },
            Target::Pid(pid) => State::Pid {
                pid: *pid,
                start_time: find::stat_of(&proc_dir, *pid).map(|s| s.start_time),
            },
            Target::PidFile(path) => State::PidFile { path: path.clone() },
        };
        let mut signaller = Signaller {
            signal: plan.signal,
            state,
            proc_dir,
        };
        if let State::Name { name, held } = &mut signaller.state {
            // Errors are for the change to report; at start, finding nothing is normal.
            let mut unused = Delivery::default();
            *held = refresh(
                &signaller.proc_dir,
                name,
                Vec::new(),
                None,
                false,
                &mut unused,
            )
            .unwrap_or_default();
        }
        Ok(signaller)
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// Signals the target. For `--process-name`, when every process found last time is
    /// still there, they are signalled at once and the `/proc` scan that finds new matches
    /// is left to [`Signaller::finish`]; the second value says whether it is needed.
    pub fn deliver(&mut self) -> (Delivery, bool) {
        let mut delivery = Delivery::default();
        let signal = self.signal;
        let mut scan_pending = false;
        match &mut self.state {
            State::Name { held, .. } => {
                let fast = !held.is_empty() && held.iter().all(|p| !p.has_exited());
                if fast {
                    for pinned in held.iter() {
                        record(&mut delivery, pinned.pid, pinned.send(signal));
                    }
                    scan_pending = true;
                } else {
                    self.finish(&mut delivery, false);
                }
            }
            State::Pid { pid, start_time } => match Pinned::open(&self.proc_dir, *pid, *start_time)
            {
                Ok(pinned) => {
                    *start_time = Some(pinned.start_time);
                    record(&mut delivery, *pid, pinned.send(signal));
                }
                Err(e) => delivery.failed.push(e),
            },
            State::PidFile { path } => match open_from_pid_file(&self.proc_dir, path) {
                Ok(pinned) => record(&mut delivery, pinned.pid, pinned.send(signal)),
                Err(PidFileError::Deliver(e)) => delivery.failed.push(e),
                Err(PidFileError::File(problem)) => delivery.problem = Some(problem),
            },
        }
        (delivery, scan_pending)
    }

    /// The `--process-name` scan: finds the matching processes now, signals those not
    /// signalled yet (all of them unless `held_signalled`), and holds them for the next
    /// change.
    pub fn finish(&mut self, delivery: &mut Delivery, held_signalled: bool) {
        let State::Name { name, held } = &mut self.state else {
            return;
        };
        let previous = std::mem::take(held);
        let signal = Some(self.signal);
        match refresh(
            &self.proc_dir,
            name,
            previous,
            signal,
            held_signalled,
            delivery,
        ) {
            Ok(found) => *held = found,
            Err(e) => delivery.problem = Some(format!("cannot read /proc: {e}")),
        }
        if delivery.sent.is_empty() && delivery.failed.is_empty() && delivery.problem.is_none() {
            delivery.problem = Some(format!(
                "no process named {name:?} found (is `shareProcessNamespace: true` set on the pod?)"
            ));
        }
    }
}

fn record(delivery: &mut Delivery, pid: i32, result: Result<(), DeliverError>) {
    match result {
        Ok(()) => delivery.sent.push(pid),
        Err(e) => delivery.failed.push(e),
    }
}

/// Scans for the processes called `name` now and returns them pinned. Those already in
/// `previous` (same PID and start time) are kept without reopening. With `signal`, every
/// process found gets it, except kept ones when `kept_signalled` says they already did
/// (the fast path); without, nothing is sent (warming up at start).
fn refresh(
    proc_dir: &OwnedFd,
    name: &str,
    mut previous: Vec<Pinned>,
    signal: Option<Signal>,
    kept_signalled: bool,
    delivery: &mut Delivery,
) -> io::Result<Vec<Pinned>> {
    let (all, matching) = find::scan(proc_dir, name)?;
    let matching_pids: Vec<i32> = matching.iter().map(|s| s.pid).collect();
    let own = rustix::process::getpid().as_raw_pid();
    let mut held = Vec::new();
    for pid in find::select_targets(&all, &matching_pids, own) {
        let Some(start) = matching.iter().find(|s| s.pid == pid).map(|s| s.start_time) else {
            continue;
        };
        let kept = previous
            .iter()
            .position(|p| p.pid == pid && p.start_time == start)
            .map(|i| previous.swap_remove(i));
        let (pinned, due) = match kept {
            Some(pinned) => (pinned, !kept_signalled),
            None => match Pinned::open(proc_dir, pid, Some(start)) {
                Ok(pinned) => (pinned, true),
                // Exited between the scan and the open: nothing to signal.
                Err(DeliverError::Gone(_) | DeliverError::Reused { .. }) => continue,
                Err(e) => {
                    delivery.failed.push(e);
                    continue;
                }
            },
        };
        if let Some(signal) = signal.filter(|_| due) {
            record(delivery, pinned.pid, pinned.send(signal));
        }
        held.push(pinned);
    }
    Ok(held)
}

enum PidFileError {
    Deliver(DeliverError),
    File(String),
}

/// Reads the PID from `path`, pins that process, and reads the file again: if it names
/// another PID now, the process restarted meanwhile and the new one is taken instead.
fn open_from_pid_file(proc_dir: &OwnedFd, path: &Path) -> Result<Pinned, PidFileError> {
    let mut pid = read_pid_file(path).map_err(PidFileError::File)?;
    for _ in 0..PID_FILE_ATTEMPTS {
        let pinned = Pinned::open(proc_dir, pid, None).map_err(PidFileError::Deliver)?;
        let again = read_pid_file(path).map_err(PidFileError::File)?;
        if again == pid {
            return Ok(pinned);
        }
        pid = again;
    }
    Err(PidFileError::File(format!(
        "pid file {} changed during each of {PID_FILE_ATTEMPTS} reads",
        path.display()
    )))
}

fn read_pid_file(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read pid file {}: {e}", path.display()))?;
    // The content is a PID, never config; still, quote only what parsed as one.
    text.trim()
        .parse()
        .map_err(|_| format!("pid file {} does not hold a PID", path.display()))
}
