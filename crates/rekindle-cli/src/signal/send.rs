//! Sending a signal without ever hitting the wrong process.
//!
//! Between finding a process and signalling it, the process may exit and its PID be
//! reused. A pidfd pins one process: `pidfd_open(pid)` refers to whatever has that PID
//! at that moment, and `pidfd_send_signal` through it never reaches another process. So
//! we open the pidfd first and then check that the process it refers to is the one we
//! found: same start time (a reused PID always comes with a later one). A process that
//! exits after that check gets nothing: the send fails with "no such process".

use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use super::find::{self, Stat};

/// Why a signal was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// Zero or negative: `kill` would reach a process group or everything.
    #[error("{0} is not a valid PID")]
    BadPid(i32),
    /// The PID is rekindle's own.
    #[error("refusing to signal rekindle's own process (PID {0})")]
    Ourselves(i32),
    /// No process has this PID (any more).
    #[error("process {0} does not exist (any more)")]
    Gone(i32),
    /// The kernel refused: another user, or not visible.
    #[error(
        "not permitted to signal process {pid}: it runs as UID {uid} and rekindle as UID {own_uid} \
         (run rekindle as the same user, or grant it CAP_KILL), or it is not visible to \
         rekindle (set `shareProcessNamespace: true` on the pod)",
        uid = uid.map_or_else(|| "?".to_owned(), |u| u.to_string()),
        own_uid = rustix::process::getuid().as_raw()
    )]
    Permission { pid: i32, uid: Option<u32> },
    /// The PID now belongs to another process than the one found.
    #[error(
        "process {pid} is not the process found before (its PID was reused); not signalling it"
    )]
    Reused { pid: i32 },
    /// Anything else the kernel said.
    #[error("signalling process {pid}: {errno}")]
    Other { pid: i32, errno: Errno },
}

fn classify(pid: i32, errno: Errno) -> DeliverError {
    match errno {
        Errno::SRCH => DeliverError::Gone(pid),
        Errno::PERM | Errno::ACCESS => DeliverError::Permission {
            pid,
            uid: owner_uid(pid),
        },
        other => DeliverError::Other { pid, errno: other },
    }
}

fn owner_uid(pid: i32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// One process, pinned by a pidfd, with the start time that identifies it.
#[derive(Debug)]
pub struct Pinned {
    pub pid: i32,
    pub start_time: u64,
    pidfd: OwnedFd,
}

impl Pinned {
    /// Opens a pidfd on `pid` and checks that it is the process `expected` describes
    /// (when given); without it, records whatever process has the PID now.
    pub fn open(
        proc_dir: &OwnedFd,
        pid: i32,
        expected_start: Option<u64>,
    ) -> Result<Pinned, DeliverError> {
        let target = (pid > 0)
            .then(|| Pid::from_raw(pid))
            .flatten()
            .ok_or(DeliverError::BadPid(pid))?;
        if target == rustix::process::getpid() {
            return Err(DeliverError::Ourselves(pid));
        }
        let pidfd = rustix::process::pidfd_open(target, PidfdFlags::empty())
            .map_err(|e| classify(pid, e))?;
        // Read after the pidfd is open: if this stat is of the process the pidfd refers
        // to, the start time proves its identity; if that process exited and the PID was
        // reused in between, the pidfd refers to the dead one and sending fails.
        let Some(Stat { start_time, .. }) = find::stat_of(proc_dir, pid) else {
            return Err(DeliverError::Gone(pid));
        };
        if expected_start.is_some_and(|expected| expected != start_time) {
            return Err(DeliverError::Reused { pid });
        }
        Ok(Pinned {
            pid,
            start_time,
            pidfd,
        })
    }

    /// Sends `signal` to exactly this process.
    pub fn send(&self, signal: Signal) -> Result<(), DeliverError> {
        rustix::process::pidfd_send_signal(&self.pidfd, signal).map_err(|e| classify(self.pid, e))
    }

    /// True once the process has exited: a pidfd becomes readable then. Costs one
    /// `poll` with a zero timeout, no `/proc` read.
    pub fn has_exited(&self) -> bool {
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(n) => n > 0,
            // Cannot tell: treat it as gone, which only costs a fresh scan.
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that sleeps until signalled, with its PID.
    fn mk_sleeper() -> (std::process::Child, i32) {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid fits");
        (child, pid)
    }

    fn proc_dir() -> OwnedFd {
        find::open_proc().expect("open /proc")
    }

    #[test]
    fn refuses_ourselves_and_bad_pids() {
        let own = rustix::process::getpid().as_raw_pid();
        let dir = proc_dir();
        assert_eq!(
            Pinned::open(&dir, own, None).map(|_| ()),
            Err(DeliverError::Ourselves(own))
        );
        assert_eq!(
            Pinned::open(&dir, 0, None).map(|_| ()),
            Err(DeliverError::BadPid(0))
        );
        assert_eq!(
            Pinned::open(&dir, -5, None).map(|_| ()),
            Err(DeliverError::BadPid(-5))
        );
    }

    #[test]
    fn permission_message_names_causes() {
        let text = classify(1, Errno::PERM).to_string();
        assert!(text.contains("CAP_KILL"), "{text}");
        assert!(text.contains("shareProcessNamespace"), "{text}");
        assert!(text.contains("runs as UID 0"), "{text}");
    }

    #[test]
    fn signals_a_real_child_and_sees_it_exit() {
        let (mut child, pid) = mk_sleeper();
        let dir = proc_dir();
        let pinned = Pinned::open(&dir, pid, None).expect("open");
        assert!(!pinned.has_exited());
        pinned.send(Signal::TERM).expect("signal sleep");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::TERM.as_raw()));
        assert!(pinned.has_exited());
        // Reaped: the pidfd refers to a process that no longer exists, whatever has the
        // PID now.
        assert_eq!(pinned.send(Signal::TERM), Err(DeliverError::Gone(pid)));
    }

    #[test]
    fn a_different_start_time_is_a_different_process() {
        let (mut child, pid) = mk_sleeper();
        let dir = proc_dir();
        let real = Pinned::open(&dir, pid, None).expect("open").start_time;
        assert_eq!(
            Pinned::open(&dir, pid, Some(real + 1)).map(|_| ()),
            Err(DeliverError::Reused { pid })
        );
        assert!(Pinned::open(&dir, pid, Some(real)).is_ok());
        child.kill().expect("kill");
        child.wait().expect("wait");
    }
}
