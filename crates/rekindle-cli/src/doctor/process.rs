//! Whether the process to signal is visible (a shared PID namespace) and may be
//! signalled (same UID, or CAP_KILL): the two reasons `--process-name` finds nothing or
//! is refused.

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::Pid;

use super::problem::Problem;
use crate::signal::find;

/// What doctor was asked to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Name(String),
    Pid(i32),
}

/// One process found, and whether this process may signal it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub pid: i32,
    pub uid: Option<u32>,
    pub signallable: bool,
}

const SHARE_FIX: &str = "\
Share the pod's process namespace, so that the sidecar sees the application:
  spec:
    shareProcessNamespace: true
or make rekindle the application's entrypoint (`rekindle run -- PROGRAM`), which needs no
shared namespace.";

const UID_FIX: &str = "\
Run rekindle as the same user as the target (or give it CAP_KILL):
  containers:
    - name: rekindle
      securityContext:
        runAsUser: <the target's UID>
or use `rekindle run -- PROGRAM`, which signals its own child.";

/// Looks for the target; returns what was found and the problems.
pub fn examine(target: &Target) -> (Vec<Found>, Vec<Problem>) {
    let pids = match target {
        Target::Pid(pid) => vec![*pid],
        Target::Name(name) => match by_name(name) {
            Ok(pids) => pids,
            Err(error) => {
                return (
                    Vec::new(),
                    vec![Problem::new(
                        "process-not-visible",
                        format!("process {name}"),
                        format!("cannot read /proc: {error}"),
                        "Mount /proc (it is there in every container unless removed).",
                    )],
                );
            }
        },
    };
    let subject = match target {
        Target::Name(name) => format!("process {name}"),
        Target::Pid(pid) => format!("PID {pid}"),
    };
    let found: Vec<Found> = pids
        .into_iter()
        .filter_map(|pid| {
            let signallable = match rustix::process::test_kill_process(Pid::from_raw(pid)?) {
                Ok(()) => true,
                Err(Errno::PERM) => false,
                Err(_) => return None,
            };
            Some(Found {
                pid,
                uid: uid_of(pid),
                signallable,
            })
        })
        .collect();
    let mut problems = Vec::new();
    if found.is_empty() {
        problems.push(Problem::new(
            "process-not-visible",
            subject.clone(),
            format!("{subject} is not visible from here"),
            SHARE_FIX,
        ));
    }
    for f in found.iter().filter(|f| !f.signallable) {
        let own = rustix::process::getuid().as_raw();
        problems.push(Problem::new(
            "process-not-signallable",
            subject.clone(),
            format!(
                "PID {} runs as UID {} and rekindle as UID {own} without CAP_KILL: a signal would be refused",
                f.pid,
                f.uid.map_or("?".to_owned(), |u| u.to_string())
            ),
            UID_FIX,
        ));
    }
    (found, problems)
}

/// The processes `rekindle watch --process-name` would signal.
fn by_name(name: &str) -> std::io::Result<Vec<i32>> {
    let proc_dir = rustix::fs::open(
        "/proc",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let (all, matching) = find::scan(&proc_dir, name)?;
    let pids: Vec<i32> = matching.iter().map(|s| s.pid).collect();
    Ok(find::select_targets(
        &all,
        &pids,
        rustix::process::getpid().as_raw_pid(),
    ))
}

fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
