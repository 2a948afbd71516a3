//! Sending a signal without ever hitting the wrong process.
//!
//! Between reading `/proc` and sending, the process we found may exit and its
//! PID be reused. A pidfd pins the process: `pidfd_open` either refers to the
//! process that has that PID now, or fails; `pidfd_send_signal` through it never
//! reaches a different process. We re-check the name after opening the pidfd,
//! which closes the remaining window (PID reused between scan and open).

use std::path::Path;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::discovery;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{0} is not a valid PID")]
    BadPid(i32),
    #[error("refusing to signal rekindle's own process (PID {0})")]
    Ourselves(i32),
    #[error("process {0} does not exist (any more)")]
    Gone(i32),
    #[error(
        "not permitted to signal process {0}: it likely runs as a different user \
         (run rekindle with the same UID, or grant it CAP_KILL), or is not visible \
         to rekindle (set `shareProcessNamespace: true` on the pod)"
    )]
    Permission(i32),
    #[error("process {pid} is no longer called {name:?} (its PID was reused)")]
    Reused { pid: i32, name: String },
    #[error("signalling process {pid}: {source}")]
    Other {
        pid: i32,
        #[source]
        source: Errno,
    },
}

fn classify(pid: i32, errno: Errno) -> DeliverError {
    match errno {
        Errno::SRCH => DeliverError::Gone(pid),
        Errno::PERM | Errno::ACCESS => DeliverError::Permission(pid),
        other => DeliverError::Other { pid, source: other },
    }
}

/// Sends `signal` to `pid` through a pidfd. With `expect_name`, the process
/// must still carry that name once the pidfd is open.
pub fn send(pid: i32, signal: Signal, expect_name: Option<&str>) -> Result<(), DeliverError> {
    // `Pid::from_raw` asserts non-negative input.
    let target = (pid > 0)
        .then(|| Pid::from_raw(pid))
        .flatten()
        .ok_or(DeliverError::BadPid(pid))?;
    let own = rustix::process::getpid();
    if target == own {
        return Err(DeliverError::Ourselves(pid));
    }
    let pidfd =
        rustix::process::pidfd_open(target, PidfdFlags::empty()).map_err(|e| classify(pid, e))?;
    if let Some(name) = expect_name {
        let still = discovery::read_proc(Path::new("/proc"), pid)
            .is_some_and(|info| discovery::matches(&info, name));
        if !still {
            return Err(DeliverError::Reused {
                pid,
                name: name.to_owned(),
            });
        }
    }
    rustix::process::pidfd_send_signal(&pidfd, signal).map_err(|e| classify(pid, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_ourselves() {
        let own = rustix::process::getpid().as_raw_pid();
        assert!(matches!(
            send(own, Signal::CONT, None),
            Err(DeliverError::Ourselves(_))
        ));
    }

    #[test]
    fn bad_pid() {
        assert!(matches!(
            send(0, Signal::CONT, None),
            Err(DeliverError::BadPid(0))
        ));
        assert!(matches!(
            send(-5, Signal::CONT, None),
            Err(DeliverError::BadPid(-5))
        ));
    }

    #[test]
    fn permission_message_names_causes() {
        let text = classify(7, Errno::PERM).to_string();
        assert!(text.contains("CAP_KILL"));
        assert!(text.contains("shareProcessNamespace"));
        assert!(text.contains("different user"));
    }

    #[test]
    fn signals_a_real_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid fits");
        send(pid, Signal::TERM, Some("sleep")).expect("signal sleep");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::TERM.as_raw()));
    }

    #[test]
    fn name_recheck() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid fits");
        assert!(matches!(
            send(pid, Signal::TERM, Some("not-sleep")),
            Err(DeliverError::Reused { .. })
        ));
        child.kill().expect("kill");
        child.wait().expect("wait");
    }
}
