//! Finding the processes to signal by name, from `/proc`.
//!
//! The kernel cuts `/proc/PID/comm` to 15 bytes, so a process called
//! `my-config-server-v2` shows up there as `my-config-serve`. We therefore match
//! the whole name against both `comm` and the basename of `argv[0]` from
//! `/proc/PID/cmdline`. Of the matches we keep only those with no matching
//! ancestor: nginx's master gets the signal, its workers (which share its name)
//! do not. Everything that looks at data is a pure function, unit-tested on
//! strings; only [`scan`] touches `/proc`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// What we know about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    /// `/proc/PID/comm` without its newline (at most 15 bytes).
    pub comm: String,
    /// Basename of `argv[0]`, if the process has a command line (kernel threads
    /// and zombies do not).
    pub argv0: Option<String>,
}

/// Parses the parent PID out of `/proc/PID/stat`. The second field is the
/// command name in parentheses, which may itself contain spaces and `)`, so we
/// look for the *last* `)`.
pub fn parse_stat_ppid(stat: &str) -> Option<i32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// The basename of `argv[0]` from the raw `/proc/PID/cmdline` bytes
/// (NUL-separated arguments). `None` for an empty command line.
pub fn parse_cmdline_argv0(cmdline: &[u8]) -> Option<String> {
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    if argv0.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(argv0);
    // Some programs rewrite their argv into one space-separated string
    // (nginx: "nginx: master process ..."), leaving only NULs after it; the
    // first word is still the name.
    let rewritten = cmdline[argv0.len()..].iter().all(|b| *b == 0);
    let first = if rewritten && text.contains(' ') {
        text.split(' ').next().unwrap_or(&text).to_owned()
    } else {
        text.into_owned()
    };
    let base = first.rsplit('/').next().unwrap_or(&first);
    // nginx writes "nginx:" as the first word of its rewritten title.
    let base = base.strip_suffix(':').unwrap_or(base);
    if base.is_empty() {
        None
    } else {
        Some(base.to_owned())
    }
}

/// Whether a process is called `name`: the whole name equals `comm` or the
/// basename of `argv[0]`.
pub fn matches(info: &ProcInfo, name: &str) -> bool {
    info.comm == name || info.argv0.as_deref() == Some(name)
}

/// The PIDs to signal: processes called `name`, except `own_pid` and except
/// any process that has another matching process among its ancestors.
pub fn select_targets(procs: &[ProcInfo], name: &str, own_pid: i32) -> Vec<i32> {
    let parent: HashMap<i32, i32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    let matching: Vec<i32> = procs
        .iter()
        .filter(|p| p.pid != own_pid && matches(p, name))
        .map(|p| p.pid)
        .collect();
    let mut targets: Vec<i32> = matching
        .iter()
        .copied()
        .filter(|&pid| {
            let mut current = pid;
            // Bounded walk: a PID table cannot have more ancestors than entries,
            // and the bound protects against a cycle from a racy read.
            for _ in 0..procs.len() {
                match parent.get(&current) {
                    // Back at the start: a cycle from a racy read.
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

/// Reads one process's entry; `None` if it vanished meanwhile or is unreadable.
pub fn read_proc(proc_root: &Path, pid: i32) -> Option<ProcInfo> {
    let dir = proc_root.join(pid.to_string());
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    let ppid = parse_stat_ppid(&stat)?;
    let comm = fs::read_to_string(dir.join("comm"))
        .ok()
        .map(|c| c.trim_end_matches('\n').to_owned())
        .unwrap_or_default();
    let argv0 = fs::read(dir.join("cmdline"))
        .ok()
        .and_then(|c| parse_cmdline_argv0(&c));
    Some(ProcInfo {
        pid,
        ppid,
        comm,
        argv0,
    })
}

/// Lists every process visible in `proc_root` (normally `/proc`).
pub fn scan(proc_root: &Path) -> std::io::Result<Vec<ProcInfo>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(info) = read_proc(proc_root, pid) {
            out.push(info);
        }
    }
    Ok(out)
}

/// Scans `/proc` and selects the processes to signal.
pub fn find_targets(name: &str) -> std::io::Result<Vec<i32>> {
    let own = rustix::process::getpid().as_raw_pid();
    Ok(select_targets(&scan(Path::new("/proc"))?, name, own))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_proc(pid: i32, ppid: i32, comm: &str, argv0: Option<&str>) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            comm: comm.to_owned(),
            argv0: argv0.map(str::to_owned),
        }
    }

    #[test]
    fn stat_with_odd_command_names() {
        assert_eq!(parse_stat_ppid("42 (nginx) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parse_stat_ppid("42 (a b) c)) R 1 42 42 0"), Some(1));
        assert_eq!(parse_stat_ppid("42 (x"), None);
        assert_eq!(parse_stat_ppid("42 (x) S"), None);
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
            parse_cmdline_argv0(b"./a-very-long-process-name\0"),
            Some("a-very-long-process-name".into())
        );
        assert_eq!(parse_cmdline_argv0(b""), None);
        assert_eq!(parse_cmdline_argv0(b"\0"), None);
    }

    #[test]
    fn argv0_with_spaces_in_real_argument() {
        // A real argv with several entries keeps a space in argv[0].
        assert_eq!(
            parse_cmdline_argv0(b"/opt/my app/server\0--flag\0"),
            Some("server".into())
        );
    }

    #[test]
    fn long_names_match_via_argv0() {
        let p = mk_proc(10, 1, "config-reloader", Some("config-reloader-server"));
        assert!(matches(&p, "config-reloader-server"));
        // The truncated name still works, as configuration written for
        // config-reloader-sidecar expects.
        assert!(matches(&p, "config-reloader"));
        assert!(!matches(&p, "config"));
        assert!(!matches(&p, "config-reloader-server-x"));
    }

    #[test]
    fn master_not_workers() {
        let procs = vec![
            mk_proc(1, 0, "pause", Some("pause")),
            mk_proc(20, 1, "nginx", Some("nginx")),
            mk_proc(21, 20, "nginx", Some("nginx")),
            mk_proc(22, 20, "nginx", Some("nginx")),
            mk_proc(30, 1, "sh", Some("sh")),
            mk_proc(31, 30, "nginx", Some("nginx")),
        ];
        assert_eq!(select_targets(&procs, "nginx", 99), vec![20, 31]);
    }

    #[test]
    fn grandchildren_are_skipped_too() {
        let procs = vec![
            mk_proc(5, 1, "app", Some("app")),
            mk_proc(6, 5, "sh", Some("sh")),
            mk_proc(7, 6, "app", Some("app")),
        ];
        assert_eq!(select_targets(&procs, "app", 99), vec![5]);
    }

    #[test]
    fn never_ourselves() {
        let procs = vec![mk_proc(5, 1, "rekindle", Some("rekindle"))];
        assert!(select_targets(&procs, "rekindle", 5).is_empty());
    }

    #[test]
    fn cycles_terminate() {
        let procs = vec![mk_proc(5, 6, "a", None), mk_proc(6, 5, "b", None)];
        assert_eq!(select_targets(&procs, "a", 99), vec![5]);
    }

    #[test]
    fn scan_sees_ourselves() {
        let own = rustix::process::getpid().as_raw_pid();
        let procs = scan(Path::new("/proc")).expect("scan /proc");
        assert!(procs.iter().any(|p| p.pid == own));
    }
}
