//! What a directory is: a volume the kubelet keeps up to date, a plain directory, or a
//! `subPath` mount that will never see an update; and what it holds (digest and key
//! names, never values).

use std::fs;
use std::path::{Path, PathBuf};

use rekindle::{Layout, ReadLimits, Snapshot};

use super::mountinfo::{self, Mount, Origin};
use super::problem::Problem;

/// What doctor found at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirReport {
    pub path: PathBuf,
    pub kind: Kind,
    /// The public digest, when the directory could be read.
    pub digest: Option<String>,
    /// Key names, when the directory could be read.
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `..data` is there: the kubelet (or `rekindle sync`) swaps it atomically.
    Volume(Option<Origin>),
    /// No `..data`: a directory written in place.
    Plain,
    /// A bind mount of part of a volume: it will never change.
    SubPath,
    /// A file, not a directory.
    File,
    Missing,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Volume(Some(Origin::ConfigMap)) => "a ConfigMap volume (kubelet layout, ..data)",
            Kind::Volume(Some(Origin::Secret)) => "a Secret volume (kubelet layout, ..data)",
            Kind::Volume(Some(Origin::Projected)) => "a projected volume (kubelet layout, ..data)",
            Kind::Volume(Some(Origin::DownwardApi)) => {
                "a downward API volume (kubelet layout, ..data)"
            }
            Kind::Volume(Some(Origin::EmptyDir)) => {
                "a directory with the kubelet's layout on an emptyDir (rekindle sync?)"
            }
            Kind::Volume(_) => "a directory with the kubelet's layout (..data)",
            Kind::Plain => "a plain directory (no ..data: written in place)",
            Kind::SubPath => "a subPath mount: it will never be updated",
            Kind::File => "a file",
            Kind::Missing => "missing",
        }
    }

    /// The name used in JSON output.
    pub fn code(self) -> &'static str {
        match self {
            Kind::Volume(_) => "volume",
            Kind::Plain => "plain",
            Kind::SubPath => "subpath",
            Kind::File => "file",
            Kind::Missing => "missing",
        }
    }
}

const SUBPATH_FIX: &str = "\
Mount the whole volume on a directory of its own, without subPath, and point the
application at the file in it (or symlink the file from where the application looks):
  volumeMounts:
    - name: config
      mountPath: /etc/app        # the whole volume; no subPath
A subPath is a bind mount made when the container starts: the kubelet's updates swap
..data in the volume, which the bind never sees.";

/// Examines `path` against the mounts of this process.
pub fn examine(path: &Path, mounts: &[Mount]) -> (DirReport, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut report = DirReport {
        path: path.to_owned(),
        kind: Kind::Missing,
        digest: None,
        keys: Vec::new(),
    };
    let Ok(real) = fs::canonicalize(path) else {
        problems.push(Problem::new(
            "missing",
            path.display().to_string(),
            format!("{} does not exist", path.display()),
            "Check the container's volumeMounts: the mountPath must be this directory.",
        ));
        return (report, problems);
    };
    let pinned = |p: &Path, is_file: bool| {
        mountinfo::mounted_at(mounts, p)
            .map(|m| Origin::of(&m.root))
            .is_some_and(|origin| origin.never_updates() || is_file)
    };
    if real.is_file() {
        report.kind = if pinned(&real, true) {
            Kind::SubPath
        } else {
            Kind::File
        };
    } else if pinned(&real, false) {
        report.kind = Kind::SubPath;
    } else {
        let origin = mountinfo::mount_of(mounts, &real).map(|m| Origin::of(&m.root));
        report.kind = if fs::symlink_metadata(real.join(rekindle::DATA_LINK))
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            Kind::Volume(origin.filter(|o| *o != Origin::Other))
        } else {
            Kind::Plain
        };
        // A file of the volume mounted with subPath into this directory.
        for entry in fs::read_dir(&real).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("..") {
                continue;
            }
            let inside = real.join(&name);
            if pinned(&inside, inside.is_file()) {
                problems.push(Problem::new(
                    "subpath",
                    inside.display().to_string(),
                    format!(
                        "{} is a subPath mount: it will never be updated",
                        inside.display()
                    ),
                    SUBPATH_FIX,
                ));
            }
        }
    }
    if report.kind == Kind::SubPath {
        problems.push(Problem::new(
            "subpath",
            path.display().to_string(),
            format!(
                "{} is a subPath mount: it will never be updated",
                path.display()
            ),
            SUBPATH_FIX,
        ));
    }
    if report.kind != Kind::File {
        match Snapshot::read_volume(&real, &ReadLimits::default()) {
            Ok((snapshot, layout)) => {
                if layout == Layout::Plain && matches!(report.kind, Kind::Volume(_)) {
                    report.kind = Kind::Plain;
                }
                report.digest = Some(snapshot.digest().to_string());
                report.keys = snapshot.keys().map(str::to_owned).collect();
            }
            Err(error) => problems.push(Problem::new(
                "unreadable",
                path.display().to_string(),
                format!("{} cannot be read: {error}", path.display()),
                read_fix(&error),
            )),
        }
    }
    (report, problems)
}

/// What to change for a failed read, by its cause.
fn read_fix(error: &rekindle::SnapshotError) -> &'static str {
    use rekindle::SnapshotError as E;
    match error {
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            "Let rekindle's user read every file of the volume: a pod securityContext.fsGroup \
             with the volume's defaultMode 0440 (Secrets default to 0644 for root), or run \
             rekindle as the files' owner (securityContext.runAsUser)."
        }
        E::SymlinkEscapes { .. } | E::SymlinkCycle { .. } => {
            "Keep every symlink of the directory inside it: rekindle refuses to follow one \
             that leaves it (a volume never has such links; a plain directory may)."
        }
        E::TooLarge { .. } | E::TooManyEntries { .. } | E::TooDeep { .. } => {
            "Watch a smaller directory, or raise the limit (--max-volume-size)."
        }
        _ => "See the message: it names the file and the cause.",
    }
}
