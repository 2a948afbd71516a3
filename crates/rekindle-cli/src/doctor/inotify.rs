//! inotify limits and what this user already uses of them. The limits are per user and
//! per node, shared by every container running as that UID on the node; rekindle needs
//! one instance per watched directory.

use std::fs;

use super::problem::Problem;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inotify {
    pub max_user_instances: Option<u64>,
    pub max_user_watches: Option<u64>,
    /// inotify instances open by processes of this real UID (those visible here).
    pub instances: u64,
    /// Watches held by those instances.
    pub watches: u64,
    pub uid: u32,
}

/// Reads the limits from `/proc/sys/fs/inotify` and counts this UID's instances and
/// watches from `/proc/*/fd` and `/proc/*/fdinfo`.
pub fn gather() -> Inotify {
    let uid = rustix::process::getuid().as_raw();
    let limit = |name: &str| {
        fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    };
    let mut found = Inotify {
        max_user_instances: limit("max_user_instances"),
        max_user_watches: limit("max_user_watches"),
        uid,
        ..Inotify::default()
    };
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if real_uid(pid) != Some(uid) {
            continue;
        }
        for fd in fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let is_inotify = fs::read_link(fd.path())
                .is_ok_and(|target| target.as_os_str() == "anon_inode:inotify");
            if !is_inotify {
                continue;
            }
            found.instances += 1;
            let info = fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            found.watches += count_watches(&info);
        }
    }
    found
}

fn real_uid(pid: &str) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Watches in one inotify fd's fdinfo: one `inotify wd:` line each.
pub fn count_watches(fdinfo: &str) -> u64 {
    fdinfo
        .lines()
        .filter(|l| l.starts_with("inotify wd:"))
        .count() as u64
}

impl Inotify {
    /// Problems, given that `needed` more instances are wanted (one per directory).
    pub fn problems(&self, needed: u64) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Some(max) = self.max_user_instances
            && self.instances + needed > max
        {
            problems.push(Problem::new(
                "inotify",
                "fs.inotify.max_user_instances",
                format!(
                    "UID {} has {} of {max} inotify instances in use and rekindle needs {needed} more: it would fall back to polling",
                    self.uid, self.instances
                ),
                "Raise the per-user limit on the nodes (a DaemonSet or the node's sysctl configuration):\n  sysctl -w fs.inotify.max_user_instances=1024\nor run rekindle as a UID of its own (securityContext.runAsUser).",
            ));
        }
        if let Some(max) = self.max_user_watches
            && self.watches * 10 >= max * 9
        {
            problems.push(Problem::new(
                "inotify",
                "fs.inotify.max_user_watches",
                format!(
                    "UID {} holds {} of {max} inotify watches",
                    self.uid, self.watches
                ),
                "Raise the per-user limit on the nodes:\n  sysctl -w fs.inotify.max_user_watches=524288",
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_inotify(instances: u64, watches: u64) -> Inotify {
        Inotify {
            max_user_instances: Some(128),
            max_user_watches: Some(1000),
            instances,
            watches,
            uid: 1000,
        }
    }

    #[test]
    fn watches_are_counted_from_fdinfo() {
        let info = "pos:\t0\nflags:\t02000000\nmnt_id:\t14\ninotify wd:1 ino:2 sdev:3 mask:fce ignored_mask:0\ninotify wd:2 ino:5 sdev:3 mask:fce ignored_mask:0\n";
        assert_eq!(count_watches(info), 2);
        assert_eq!(count_watches("pos: 0\n"), 0);
    }

    #[test]
    fn limits_near_their_end_are_problems_with_the_sysctl_to_raise() {
        assert!(mk_inotify(10, 10).problems(2).is_empty());
        let full = mk_inotify(127, 10).problems(2);
        assert_eq!(full.len(), 1);
        assert!(full[0].fix.contains("max_user_instances"));
        let watches = mk_inotify(1, 950).problems(1);
        assert_eq!(watches.len(), 1);
        assert!(watches[0].fix.contains("max_user_watches"));
    }
}
