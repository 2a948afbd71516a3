//! Finding the processes to signal by name, from `/proc`.
//!
//! The kernel cuts a process's name to 15 bytes, so a process called
//! `my-config-server-v2` shows up as `my-config-serve`. A name matches when it equals
//! that short name, or when the short name is its 15-byte prefix and the basename of
//! `argv[0]` (from `/proc/PID/cmdline`) equals it. Of the matches we keep only those with
//! no matching ancestor: nginx's master gets the signal, its workers (which share its
//! name) do not.
//!
//! This runs on every change, on every process of the pod, so it is kept cheap: one read
//! of `/proc/PID/stat` per process (name, parent and start time are all there), and
//! `cmdline` only for the rare process whose short name is a truncation of the wanted
//! one. Everything that looks at data is a pure function, unit-tested on strings; only
//! [`scan`] and [`stat_of`] touch `/proc`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

/// The kernel keeps this many bytes of a process's name (`TASK_COMM_LEN` - 1).
const COMM_LEN: usize = 15;

/// What `/proc/PID/stat` tells about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    pub ppid: i32,
    /// The short name (at most 15 bytes).
    pub comm: String,
    /// Clock ticks after boot at which the process started: with the PID, it names one
    /// process for good, since a reused PID comes with a later start time.
    pub start_time: u64,
}

/// Parses `/proc/PID/stat`. The second field is the name in parentheses, which may itself
/// contain spaces and `)`, so the fields after it start at the *last* `)`.
pub fn parse_stat(pid: i32, stat: &str) -> Option<Stat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // Field 3 (state) is the first after the name; ppid is field 4, starttime field 22.
    let mut fields = stat.get(close + 1..)?.split_ascii_whitespace();
    let ppid = fields.nth(1)?.parse().ok()?;
    let start_time = fields.nth(17)?.parse().ok()?;
    Some(Stat {
        pid,
        ppid,
        comm,
        start_time,
    })
}

/// The basename of `argv[0]` from the raw `/proc/PID/cmdline` bytes (NUL-separated
/// arguments). `None` for an empty command line (kernel threads, zombies).
pub fn parse_cmdline_argv0(cmdline: &[u8]) -> Option<String> {
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    if argv0.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(argv0);
    // Some programs rewrite their argv into one space-separated string (nginx: "nginx:
    // master process ..."), leaving only NULs after it; the first word is still the name.
    let rewritten = cmdline[argv0.len()..].iter().all(|b| *b == 0);
    let first = if rewritten && text.contains(' ') {
        text.split(' ').next().unwrap_or(&text).to_owned()
    } else {
        text.into_owned()
    };
    let base = first.rsplit('/').next().unwrap_or(&first);
    // nginx writes "nginx:" as the first word of its rewritten title.
    let base = base.strip_suffix(':').unwrap_or(base);
    (!base.is_empty()).then(|| base.to_owned())
}

/// How a short name relates to the wanted name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    /// The short name is the wanted name (also when the user wrote the truncated name,
    /// as configuration written for config-reloader-sidecar does).
    Yes,
    /// The short name is the kernel's truncation of the wanted name: `argv[0]` decides.
    Truncated,
    No,
}

pub fn match_comm(comm: &str, name: &str) -> NameMatch {
    if comm == name {
        NameMatch::Yes
    } else if comm.len() == COMM_LEN && name.len() > COMM_LEN && name.starts_with(comm) {
        NameMatch::Truncated
    } else {
        NameMatch::No
    }
}

/// The processes to signal among `matching`: those with no matching ancestor in
/// `procs`, never `own_pid`. Returns them sorted by PID.
pub fn select_targets(procs: &[Stat], matching: &[i32], own_pid: i32) -> Vec<i32> {
    let parent: HashMap<i32, i32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    let mut targets: Vec<i32> = matching
        .iter()
        .copied()
        .filter(|&pid| pid != own_pid)
        .filter(|&pid| {
            let mut current = pid;
            // Bounded walk: there cannot be more ancestors than processes, and the bound
            // ends a cycle from a racy read.
            for _ in 0..procs.len() {
                match parent.get(&current) {
                    Some(&ppid) if ppid > 0 && ppid != current && ppid != pid => {
                        if matching.contains(&ppid) {
                            return false;
                        }
                        current = ppid;
                    }
                    _ => break,
                }
            }
            true
        })
        .collect();
    targets.sort_unstable();
    targets
}

/// Reads `/proc` (through `proc_dir`, an open fd on it) and returns every process with
/// the processes that match `name` (whole-name rule above).
pub fn scan(proc_dir: &OwnedFd, name: &str) -> io::Result<(Vec<Stat>, Vec<Stat>)> {
    let mut all = Vec::new();
    let mut matching = Vec::new();
    let mut buf = Vec::with_capacity(512);
    for entry in rustix::fs::Dir::read_from(proc_dir)? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // A process that exits mid-scan is simply not there.
        let Some(stat) = read_stat(proc_dir, pid, &mut buf) else {
            continue;
        };
        let matched = match match_comm(&stat.comm, name) {
            NameMatch::Yes => true,
            NameMatch::Truncated => {
                read_small(proc_dir, &format!("{pid}/cmdline"), &mut buf, 4096).is_ok()
                    && parse_cmdline_argv0(&buf).as_deref() == Some(name)
            }
            NameMatch::No => false,
        };
        if matched {
            matching.push(stat.clone());
        }
        all.push(stat);
    }
    Ok((all, matching))
}

/// `/proc/PID/stat` of one process, `None` if it does not exist (any more).
pub fn stat_of(proc_dir: &OwnedFd, pid: i32) -> Option<Stat> {
    read_stat(proc_dir, pid, &mut Vec::with_capacity(512))
}

fn read_stat(proc_dir: &OwnedFd, pid: i32, buf: &mut Vec<u8>) -> Option<Stat> {
    read_small(proc_dir, &format!("{pid}/stat"), buf, 1024).ok()?;
    parse_stat(pid, std::str::from_utf8(buf).ok()?)
}

/// Reads at most `limit` bytes of a `/proc` file into `buf`, relative to the open
/// `/proc` directory: no path walk from `/` for each of hundreds of processes.
fn read_small(proc_dir: &OwnedFd, path: &str, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    buf.clear();
    let file = rustix::fs::openat(
        proc_dir.as_fd(),
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    buf.reserve(limit);
    loop {
        let len = buf.len();
        if len >= limit {
            return Ok(());
        }
        match rustix::io::read(&file, rustix::buffer::spare_capacity(&mut *buf)) {
            Ok(0) => return Ok(()),
            Ok(_) if buf.len() > len => {}
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens `/proc` once, for [`scan`] and [`stat_of`].
pub fn open_proc() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        "/proc",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_stat(pid: i32, ppid: i32, comm: &str) -> Stat {
        Stat {
            pid,
            ppid,
            comm: comm.to_owned(),
            start_time: 100 + pid as u64,
        }
    }

    const STAT: &str = "42 (nginx) S 7 42 42 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 1 0 5678 1 2 3";

    #[test]
    fn stat_fields_with_odd_names() {
        let stat = parse_stat(42, STAT).expect("parse");
        assert_eq!(
            (stat.ppid, stat.comm.as_str(), stat.start_time),
            (7, "nginx", 5678)
        );
        let odd = STAT.replace("(nginx)", "(a b) c))");
        let stat = parse_stat(42, &odd).expect("parse");
        assert_eq!(
            (stat.comm.as_str(), stat.ppid, stat.start_time),
            ("a b) c)", 7, 5678)
        );
        assert_eq!(parse_stat(42, "42 (x"), None);
        assert_eq!(parse_stat(42, "42 (x) S 1 2"), None);
    }

    #[test]
    fn argv0_basename() {
        assert_eq!(
            parse_cmdline_argv0(b"/usr/sbin/nginx\0-g\0daemon off;\0"),
            Some("nginx".into())
        );
        assert_eq!(
            parse_cmdline_argv0(b"nginx: master process /usr/sbin/nginx -g daemon off;\0\0\0"),
            Some("nginx".into())
        );
        assert_eq!(
            parse_cmdline_argv0(b"/opt/my app/server\0--flag\0"),
            Some("server".into())
        );
        assert_eq!(parse_cmdline_argv0(b""), None);
        assert_eq!(parse_cmdline_argv0(b"\0"), None);
    }

    #[test]
    fn long_names_need_argv0_short_ones_do_not() {
        assert_eq!(match_comm("nginx", "nginx"), NameMatch::Yes);
        assert_eq!(match_comm("nginx", "nginx-x"), NameMatch::No);
        assert_eq!(
            match_comm("config-reloader", "config-reloader-server"),
            NameMatch::Truncated
        );
        // Written for config-reloader-sidecar, which compares the short name.
        assert_eq!(
            match_comm("config-reloader", "config-reloader"),
            NameMatch::Yes
        );
        // A 14-byte name is not a truncation of anything.
        assert_eq!(
            match_comm("config-reloade", "config-reloader-server"),
            NameMatch::No
        );
    }

    #[test]
    fn master_not_workers() {
        let procs = vec![
            mk_stat(1, 0, "pause"),
            mk_stat(20, 1, "nginx"),
            mk_stat(21, 20, "nginx"),
            mk_stat(22, 20, "nginx"),
            mk_stat(30, 1, "sh"),
            mk_stat(31, 30, "nginx"),
        ];
        assert_eq!(select_targets(&procs, &[20, 21, 22, 31], 99), vec![20, 31]);
    }

    #[test]
    fn grandchildren_are_skipped_and_never_ourselves() {
        let procs = vec![
            mk_stat(5, 1, "app"),
            mk_stat(6, 5, "sh"),
            mk_stat(7, 6, "app"),
        ];
        assert_eq!(select_targets(&procs, &[5, 7], 99), vec![5]);
        assert!(select_targets(&procs, &[5], 5).is_empty());
    }

    #[test]
    fn cycles_terminate() {
        let procs = vec![mk_stat(5, 6, "a"), mk_stat(6, 5, "b")];
        assert_eq!(select_targets(&procs, &[5], 99), vec![5]);
    }

    #[test]
    fn scan_finds_a_long_named_child_and_its_start_time() {
        // Run `sleep` under a long name, as a real long-named program runs: the kernel
        // keeps 15 bytes of it as the short name, argv[0] holds all of it.
        let name = "rekindle-find-test-process";
        let dir = tempfile::tempdir().expect("tempdir");
        let sleep = std::fs::canonicalize("/bin/sleep").expect("sleep");
        std::os::unix::fs::symlink(sleep, dir.path().join(name)).expect("symlink");
        let mut child = std::process::Command::new(dir.path().join(name))
            .arg("30")
            .spawn()
            .expect("spawn");
        let pid = i32::try_from(child.id()).expect("pid");
        let proc_dir = open_proc().expect("open /proc");
        // `spawn` may return before the child's exec is complete (the parent resumes when
        // the child leaves its memory, early in exec; the name is set next, the new
        // argv later): wait for both.
        let exec_done = || {
            let argv0 = std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .and_then(|c| parse_cmdline_argv0(&c));
            stat_of(&proc_dir, pid).is_some_and(|s| s.comm == name[..COMM_LEN])
                && argv0.as_deref() == Some(name)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exec_done() {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never exec'd"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let (_, matching) = scan(&proc_dir, name).expect("scan");
        let found = matching.into_iter().find(|s| s.pid == pid);
        let found = found.expect("the child is found by its whole name");
        assert_eq!(found.comm, &name[..COMM_LEN]);
        assert_eq!(
            stat_of(&proc_dir, pid).map(|s| s.start_time),
            Some(found.start_time)
        );
        // The truncated name alone finds it too; another long name with the same first
        // 15 bytes does not.
        let (_, short) = scan(&proc_dir, &name[..COMM_LEN]).expect("scan");
        assert!(short.iter().any(|s| s.pid == pid));
        let (_, other) = scan(&proc_dir, "rekindle-find-test-other").expect("scan");
        assert!(!other.iter().any(|s| s.pid == pid));
        child.kill().expect("kill");
        child.wait().expect("wait");
    }
}
