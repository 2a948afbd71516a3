//! Reading a mounted volume (or any directory) into a [`Snapshot`].
//!
//! The kubelet publishes a ConfigMap or Secret volume atomically: it writes the payload
//! into a fresh `..<timestamp>` directory, points a `..data_tmp` symlink at it, renames
//! that over `..data`, and exposes each top-level key as a symlink through `..data`.
//! Reading the user-visible names one by one could mix two versions if a swap happens
//! mid-read, so when `..data` exists we resolve it once, read the directory it names, and
//! accept the result only if `..data` still names the same directory afterwards.
//! A plain directory (no `..data`) is read as it is.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use crate::snapshot::Snapshot;

/// The symlink the kubelet swaps to publish a new version of a volume.
pub const DATA_LINK: &str = "..data";

/// How many times a read is retried when the kubelet swaps `..data` underneath it.
const MAX_ATTEMPTS: usize = 5;

/// How deep nested directories may go; deeper means a symlink cycle or a mistake.
const MAX_DEPTH: usize = 32;

/// Why a directory could not be read into a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The directory does not exist (yet, or any more).
    #[error("{}: directory does not exist", dir.display())]
    Missing {
        /// The watched directory.
        dir: PathBuf,
    },
    /// The path exists but is not a directory.
    #[error("{}: not a directory", dir.display())]
    NotADirectory {
        /// The watched path.
        dir: PathBuf,
    },
    /// A symlink resolves outside the watched root; following it could expose unrelated files.
    #[error(
        "{}: symlink resolves to {}, outside the watched directory {}; refusing to follow it",
        path.display(), target.display(), root.display()
    )]
    SymlinkEscapes {
        /// The symlink.
        path: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
        /// The watched root, canonicalized.
        root: PathBuf,
    },
    /// Directories nest deeper than any volume should, most likely a symlink cycle.
    #[error("{}: nested more than {MAX_DEPTH} directories deep (symlink cycle?)", path.display())]
    TooDeep {
        /// Where the limit was hit.
        path: PathBuf,
    },
    /// Keys are UTF-8 (Kubernetes requires it); this file name is not.
    #[error("{}: file name is not valid UTF-8", path.display())]
    NonUtf8Name {
        /// The offending path.
        path: PathBuf,
    },
    /// The volume was swapped again during every read attempt.
    #[error("{}: the volume changed during each of {MAX_ATTEMPTS} read attempts", dir.display())]
    Unstable {
        /// The watched directory.
        dir: PathBuf,
    },
    /// Any other I/O failure, with the path it concerns.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl SnapshotError {
    fn io(path: &Path, source: io::Error) -> SnapshotError {
        SnapshotError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// True when the watched directory itself is absent.
    pub fn is_missing(&self) -> bool {
        matches!(self, SnapshotError::Missing { .. })
    }

    /// A vanished file inside a kubelet volume means a swap raced the read: try again.
    fn is_race(&self) -> bool {
        matches!(self, SnapshotError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl Snapshot {
    /// Reads `root` into a snapshot: through `..data` when it is a kubelet volume, as a
    /// plain directory tree otherwise. Names starting with `..` are skipped; symlinks are
    /// followed only while they stay inside `root`.
    pub fn read(root: impl AsRef<Path>) -> Result<Snapshot, SnapshotError> {
        read(root.as_ref())
    }
}

fn read(root: &Path) -> Result<Snapshot, SnapshotError> {
    let canonical_root = match fs::canonicalize(root) {
        Ok(path) => path,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::Missing {
                dir: root.to_owned(),
            });
        }
        Err(e) => return Err(SnapshotError::io(root, e)),
    };
    if !canonical_root.is_dir() {
        return Err(SnapshotError::NotADirectory {
            dir: root.to_owned(),
        });
    }
    let data_link = root.join(DATA_LINK);
    for _ in 0..MAX_ATTEMPTS {
        let target = match fs::read_link(&data_link) {
            Ok(target) => target,
            // No `..data` (or not a symlink): a plain directory.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::InvalidInput =>
            {
                let mut reader = TreeReader::new(canonical_root, Mode::Plain);
                reader.read_dir(root, "", 0)?;
                return Ok(Snapshot::from_entries(reader.entries));
            }
            Err(e) => return Err(SnapshotError::io(&data_link, e)),
        };
        let mut reader = TreeReader::new(canonical_root.clone(), Mode::Atomic);
        let result = reader
            .follow(&data_link)
            .and_then(|data_dir| reader.read_dir(&data_dir, "", 0));
        match result {
            Ok(()) if fs::read_link(&data_link).ok().as_ref() == Some(&target) => {
                return Ok(Snapshot::from_entries(reader.entries));
            }
            Ok(()) => continue,
            Err(e) if e.is_race() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(SnapshotError::Unstable {
        dir: root.to_owned(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Inside a kubelet volume's data directory: nothing there changes in place, so a
    /// missing file means a swap happened and the whole read is retried.
    Atomic,
    /// A plain directory: files may come and go while we read; a vanished one is skipped
    /// and the event that removed it brings another read.
    Plain,
}

struct TreeReader {
    canonical_root: PathBuf,
    mode: Mode,
    entries: BTreeMap<String, Vec<u8>>,
}

impl TreeReader {
    fn new(canonical_root: PathBuf, mode: Mode) -> TreeReader {
        TreeReader {
            canonical_root,
            mode,
            entries: BTreeMap::new(),
        }
    }

    /// Resolves a symlink, refusing targets outside the watched root.
    fn follow(&self, link: &Path) -> Result<PathBuf, SnapshotError> {
        let target = fs::canonicalize(link).map_err(|e| SnapshotError::io(link, e))?;
        if !target.starts_with(&self.canonical_root) {
            return Err(SnapshotError::SymlinkEscapes {
                path: link.to_owned(),
                target,
                root: self.canonical_root.clone(),
            });
        }
        Ok(target)
    }

    fn read_dir(&mut self, dir: &Path, prefix: &str, depth: usize) -> Result<(), SnapshotError> {
        if depth > MAX_DEPTH {
            return Err(SnapshotError::TooDeep {
                path: dir.to_owned(),
            });
        }
        let listing = fs::read_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
        let dir_fd = open_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| SnapshotError::io(dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(SnapshotError::NonUtf8Name { path });
            };
            if name.starts_with("..") {
                continue;
            }
            let key = format!("{prefix}{name}");
            // The type comes with the directory listing on common filesystems: no stat.
            let file_type = entry.file_type().map_err(|e| SnapshotError::io(&path, e))?;
            match self.read_entry(&dir_fd, &name, &path, file_type, &key, depth) {
                Err(e) if self.mode == Mode::Plain && e.is_race() => continue,
                other => other?,
            }
        }
        Ok(())
    }

    fn read_entry(
        &mut self,
        dir_fd: &OwnedFd,
        name: &str,
        path: &Path,
        file_type: fs::FileType,
        key: &str,
        depth: usize,
    ) -> Result<(), SnapshotError> {
        if file_type.is_file() {
            // The common case inside a kubelet volume's data directory.
            let bytes = read_at(dir_fd, name).map_err(|e| SnapshotError::io(path, e))?;
            self.entries.insert(key.to_owned(), bytes);
            return Ok(());
        }
        let resolved = if file_type.is_symlink() {
            self.follow(path)?
        } else {
            path.to_owned()
        };
        let metadata = fs::metadata(&resolved).map_err(|e| SnapshotError::io(path, e))?;
        if metadata.is_dir() {
            self.read_dir(&resolved, &format!("{key}/"), depth + 1)
        } else if metadata.is_file() {
            let bytes = fs::read(&resolved).map_err(|e| SnapshotError::io(path, e))?;
            self.entries.insert(key.to_owned(), bytes);
            Ok(())
        } else {
            // FIFOs, sockets and devices are not configuration; opening a FIFO would block.
            tracing::debug!(path = %path.display(), "skipping a file that is neither regular nor a directory");
            Ok(())
        }
    }
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

/// Reads a file by its name in an open directory: no path walk from the root and no stat
/// for a size hint, which is most of the cost when a volume holds a thousand small keys.
fn read_at(dir: &OwnedFd, name: &str) -> io::Result<Vec<u8>> {
    let file = rustix::fs::openat(
        dir.as_fd(),
        name,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )?;
    let mut bytes = Vec::with_capacity(512);
    loop {
        if bytes.len() == bytes.capacity() {
            bytes.reserve(bytes.capacity());
        }
        match rustix::io::read(&file, rustix::buffer::spare_capacity(&mut bytes)) {
            Ok(0) => return Ok(bytes),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("create a temp dir")
    }

    fn write(path: &Path, content: &str) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent");
        }
        fs::write(path, content).expect("write file");
    }

    #[test]
    fn plain_directory_with_nested_keys_and_skipped_bookkeeping() {
        let dir = tempdir();
        write(&dir.path().join("a"), "1");
        write(&dir.path().join("sub/b.json"), "{}");
        write(
            &dir.path().join(".hidden"),
            "kept: a single dot is a valid key",
        );
        write(&dir.path().join("..bookkeeping"), "skipped");
        let snap = Snapshot::read(dir.path()).expect("read");
        assert_eq!(
            snap.keys().collect::<Vec<_>>(),
            [".hidden", "a", "sub/b.json"]
        );
        assert_eq!(snap.get("sub/b.json"), Some(b"{}".as_slice()));
    }

    #[test]
    fn reads_through_data_link_not_stale_user_links() {
        let dir = tempdir();
        write(&dir.path().join("..v1/key"), "one");
        write(&dir.path().join("..v2/key"), "two");
        write(&dir.path().join("..v2/new"), "added in v2");
        symlink("..v2", dir.path().join("..data")).expect("link ..data");
        // The user-visible link for `new` is not created yet: the read must still see it,
        // because the kubelet creates user-visible links around the swap, not before it.
        symlink("..data/key", dir.path().join("key")).expect("link key");
        let snap = Snapshot::read(dir.path()).expect("read");
        assert_eq!(snap.get("key"), Some(b"two".as_slice()));
        assert_eq!(snap.get("new"), Some(b"added in v2".as_slice()));
        assert_eq!(snap.len(), 2);
    }

    #[test]
    fn large_values_are_read_whole() {
        let dir = tempdir();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(dir.path().join("big"), &big).expect("write");
        let snap = Snapshot::read(dir.path()).expect("read");
        assert_eq!(snap.get("big"), Some(big.as_slice()));
    }

    #[test]
    fn binary_values_are_kept_byte_for_byte() {
        let dir = tempdir();
        let bytes = [0u8, 159, 146, 150, 255];
        fs::write(dir.path().join("blob"), bytes).expect("write");
        let snap = Snapshot::read(dir.path()).expect("read");
        assert_eq!(snap.get("blob"), Some(bytes.as_slice()));
    }

    #[test]
    fn symlink_leaving_the_root_is_refused() {
        let outside = tempdir();
        write(&outside.path().join("secret"), "not yours");
        let dir = tempdir();
        symlink(outside.path().join("secret"), dir.path().join("sneaky")).expect("link");
        let err = Snapshot::read(dir.path()).expect_err("must refuse");
        assert!(matches!(err, SnapshotError::SymlinkEscapes { .. }), "{err}");
        assert!(
            err.to_string().contains("outside the watched directory"),
            "{err}"
        );
    }

    #[test]
    fn data_link_leaving_the_root_is_refused() {
        let outside = tempdir();
        write(&outside.path().join("key"), "x");
        let dir = tempdir();
        symlink(outside.path(), dir.path().join("..data")).expect("link");
        let err = Snapshot::read(dir.path()).expect_err("must refuse");
        assert!(matches!(err, SnapshotError::SymlinkEscapes { .. }), "{err}");
    }

    #[test]
    fn symlink_inside_the_root_is_followed() {
        let dir = tempdir();
        write(&dir.path().join("real/x"), "1");
        symlink("real", dir.path().join("alias")).expect("link");
        let snap = Snapshot::read(dir.path()).expect("read");
        assert_eq!(snap.keys().collect::<Vec<_>>(), ["alias/x", "real/x"]);
    }

    #[test]
    fn symlink_cycle_is_reported_not_followed_forever() {
        let dir = tempdir();
        fs::create_dir(dir.path().join("d")).expect("mkdir");
        symlink("..", dir.path().join("d/up")).expect("link");
        let err = Snapshot::read(dir.path()).expect_err("cycle");
        assert!(matches!(err, SnapshotError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn missing_and_non_directory_roots_are_named() {
        let dir = tempdir();
        let missing = dir.path().join("nope");
        assert!(Snapshot::read(&missing).expect_err("missing").is_missing());
        write(&dir.path().join("file"), "x");
        let err = Snapshot::read(dir.path().join("file")).expect_err("file");
        assert!(matches!(err, SnapshotError::NotADirectory { .. }), "{err}");
    }
}
