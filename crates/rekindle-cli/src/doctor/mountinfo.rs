//! `/proc/self/mountinfo`, parsed: which mount a path is on, and what of the source
//! file system that mount shows (its root). That root is how a `subPath` mount gives
//! itself away: the kubelet bind-mounts one file or directory of a volume, and the
//! bind keeps pointing at it after the volume's `..data` moves on.

use std::path::{Path, PathBuf};

/// One line of mountinfo (the fields rekindle uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the source file system that is mounted.
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    pub fstype: String,
}

/// Parses the text of a mountinfo file; malformed lines are skipped.
///
/// Format (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE
/// SOURCE SUPER_OPTIONS`, where paths escape space, tab, newline and backslash as `\ooo`.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let root = unescape(fields.nth(3)?);
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let fstype = after.split(' ').next()?.to_owned();
    Some(Mount {
        root,
        mount_point,
        fstype,
    })
}

/// Undoes the kernel's `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount `path` is on: the last-mounted one whose mount point is the longest prefix
/// of `path` (mountinfo lists mounts in mount order, so a later one over the same point
/// hides an earlier one).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m)
}

/// The mount whose mount point is exactly `path`, if any (the last one).
pub fn mounted_at<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == path)
}

/// What a mount's root says about the volume it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    ConfigMap,
    Secret,
    Projected,
    DownwardApi,
    EmptyDir,
    /// A `subPath` of a volume (the kubelet's `volume-subpaths` bind).
    SubPath,
    /// Inside one of a volume's timestamped directories: pinned to that version.
    PinnedVersion,
    Other,
}

impl Origin {
    pub fn of(root: &str) -> Origin {
        if root.contains("/volume-subpaths/") {
            return Origin::SubPath;
        }
        if root.split('/').any(is_timestamp_dir) {
            return Origin::PinnedVersion;
        }
        for (marker, origin) in [
            ("kubernetes.io~configmap", Origin::ConfigMap),
            ("kubernetes.io~secret", Origin::Secret),
            ("kubernetes.io~projected", Origin::Projected),
            ("kubernetes.io~downward-api", Origin::DownwardApi),
            ("kubernetes.io~empty-dir", Origin::EmptyDir),
        ] {
            if root.contains(marker) {
                return origin;
            }
        }
        Origin::Other
    }

    pub fn never_updates(self) -> bool {
        matches!(self, Origin::SubPath | Origin::PinnedVersion)
    }
}

/// `..2026_11_22_09_33_20.123456789`: a directory the kubelet's writer made.
pub fn is_timestamp_dir(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("..") else {
        return false;
    };
    let stamp = rest.split('.').next().unwrap_or("");
    let parts: Vec<&str> = stamp.split('_').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_mountinfo() -> &'static str {
        "22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw\n\
         30 22 0:25 / /proc rw - proc proc rw\n\
         41 22 8:1 /var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/config /etc/app ro,relatime - ext4 /dev/sda1 rw\n\
         42 22 0:40 / /etc/tls ro,relatime - tmpfs tmpfs rw\n\
         43 22 8:1 /var/lib/kubelet/pods/u1/volume-subpaths/config/app/0 /etc/nginx/nginx.conf ro - ext4 /dev/sda1 rw\n\
         44 22 8:1 /tmp/vol/..2026_11_22_09_33_20.1/app\\040conf /srv/with\\040space ro - ext4 /dev/sda1 rw\n\
         garbage line\n"
    }

    #[test]
    fn lines_parse_with_their_escapes() {
        let mounts = parse(mk_mountinfo());
        assert_eq!(mounts.len(), 6, "the malformed line is skipped");
        assert_eq!(mounts[5].mount_point, Path::new("/srv/with space"));
        assert_eq!(mounts[5].root, "/tmp/vol/..2026_11_22_09_33_20.1/app conf");
        assert_eq!(mounts[3].fstype, "tmpfs");
    }

    #[test]
    fn the_longest_mount_point_wins() {
        let mounts = parse(mk_mountinfo());
        let m = mount_of(&mounts, Path::new("/etc/app/app.yaml")).expect("a mount");
        assert_eq!(m.mount_point, Path::new("/etc/app"));
        let m = mount_of(&mounts, Path::new("/etc/other")).expect("a mount");
        assert_eq!(m.mount_point, Path::new("/"));
        assert!(mounted_at(&mounts, Path::new("/etc/nginx/nginx.conf")).is_some());
        assert!(mounted_at(&mounts, Path::new("/etc/nginx")).is_none());
    }

    #[test]
    fn roots_tell_where_a_mount_comes_from() {
        let origin = |root: &str| Origin::of(root);
        assert_eq!(
            origin("/var/lib/kubelet/pods/u/volumes/kubernetes.io~configmap/c"),
            Origin::ConfigMap
        );
        assert_eq!(
            origin("/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/s"),
            Origin::Secret
        );
        assert_eq!(
            origin("/var/lib/kubelet/pods/u/volume-subpaths/c/app/0"),
            Origin::SubPath
        );
        assert_eq!(
            origin("/tmp/v/..2026_11_22_09_33_20.5/a"),
            Origin::PinnedVersion
        );
        assert_eq!(origin("/"), Origin::Other);
        assert!(Origin::SubPath.never_updates());
        assert!(!Origin::ConfigMap.never_updates());
        assert!(!is_timestamp_dir("..data"));
    }
}
