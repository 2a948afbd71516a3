//! Reading a mounted volume (or any directory) into a [`Snapshot`].
//!
//! The kubelet publishes a ConfigMap or Secret volume atomically: it writes the payload
//! into a fresh `..<timestamp>` directory, points a `..data_tmp` symlink at it, renames
//! that over `..data`, and exposes each top-level key as a symlink through `..data`.
//! Reading the user-visible names one by one could mix two versions if a swap happens
//! mid-read, so when `..data` exists we resolve it once, read the directory it names, and
//! accept the result only if `..data` still names the same directory afterwards.
//! A plain directory (no `..data`) is read as it is.
//!
//! Whichever it is, the read decides once and says so ([`Layout`]): looking for `..data`
//! again afterwards could see a different answer, since the kubelet may create it in between.
//!
//! A read is bounded ([`ReadLimits`]): a watched directory is not necessarily a kubelet
//! volume, and a stray huge file or a symlink farm must not take the process's memory or
//! time with it.

use std::collections::BTreeMap;
use std::ffi::{CStr, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, OFlags};

use crate::snapshot::Snapshot;

/// The symlink the kubelet swaps to publish a new version of a volume.
pub const DATA_LINK: &str = "..data";

/// How many times a read is retried when the kubelet swaps `..data` underneath it.
const MAX_ATTEMPTS: usize = 5;

/// How deep nested directories may go; deeper means a mistake (cycles are caught earlier).
const MAX_DEPTH: usize = 32;

/// How a directory was read: the decision [`Snapshot::read_volume`] made, so that callers
/// never look for `..data` a second time (it may appear or vanish in between).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// A kubelet volume: `..data` is a symlink, and the snapshot is the directory it named.
    Kubelet,
    /// A plain directory tree (no `..data` symlink), read as it is.
    Plain,
}

/// Bounds on what one read may cost, so that a stray file or a symlink farm in a watched
/// directory fails the read instead of exhausting memory or time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLimits {
    /// The most bytes all values together may hold. The default, 64 MiB, is far above
    /// anything a ConfigMap or Secret can carry: Kubernetes refuses objects over 1 MiB, so
    /// even a projected volume of many of them stays well below it.
    pub max_volume_bytes: u64,
    /// The most files, directories and symlinks a read may visit (names starting with
    /// `..` are skipped, not visited). Symlinks are followed, so this bounds the work,
    /// not just the listing: a few links to a shared directory multiply it. Default 10 000.
    pub max_entries: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_volume_bytes: 64 * 1024 * 1024,
            max_entries: 10_000,
        }
    }
}

impl ReadLimits {
    /// Refuses limits no directory could meet. A zero is most likely someone meaning
    /// "unlimited", which these limits deliberately do not offer; check where the limits
    /// are configured, so the mistake is reported there rather than on every read.
    pub fn validate(&self) -> Result<(), ReadLimitsError> {
        if self.max_volume_bytes == 0 {
            return Err(ReadLimitsError::ZeroVolumeBytes);
        }
        if self.max_entries == 0 {
            return Err(ReadLimitsError::ZeroEntries);
        }
        Ok(())
    }
}

/// Why a [`ReadLimits`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadLimitsError {
    /// `max_volume_bytes` is zero: only empty values could ever be read.
    #[error("the volume size limit is 0 bytes; it must be at least 1")]
    ZeroVolumeBytes,
    /// `max_entries` is zero: only an empty directory could ever be read.
    #[error("the entry limit is 0; it must be at least 1")]
    ZeroEntries,
}

/// Why a directory could not be read into a snapshot.
///
/// Every variant but [`SnapshotError::TooManyEntries`] names the path it concerns, so an
/// error wrapping this one need not repeat it.
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
    /// A symlink resolves to a directory that contains it: following it would never end.
    #[error(
        "{}: symlink leads back to {}, a directory it is inside of (a cycle)",
        path.display(), target.display()
    )]
    SymlinkCycle {
        /// The symlink.
        path: PathBuf,
        /// The directory it resolves to, canonicalized.
        target: PathBuf,
    },
    /// Directories nest deeper than any volume should.
    #[error("{}: nested more than {MAX_DEPTH} directories deep", path.display())]
    TooDeep {
        /// Where the limit was hit.
        path: PathBuf,
    },
    /// The values add up to more than [`ReadLimits::max_volume_bytes`].
    #[error("{}: reading this file takes the volume past its limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file that crossed the limit (it was not read whole).
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The read visited more than [`ReadLimits::max_entries`] files, directories and symlinks.
    #[error("more than {limit} files, directories and symlinks (counting each symlink followed)")]
    TooManyEntries {
        /// The limit.
        limit: usize,
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

    /// The path the error concerns, when its message names one.
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            SnapshotError::Missing { dir }
            | SnapshotError::NotADirectory { dir }
            | SnapshotError::Unstable { dir } => Some(dir),
            SnapshotError::SymlinkEscapes { path, .. }
            | SnapshotError::SymlinkCycle { path, .. }
            | SnapshotError::TooDeep { path }
            | SnapshotError::TooLarge { path, .. }
            | SnapshotError::NonUtf8Name { path }
            | SnapshotError::Io { path, .. } => Some(path),
            SnapshotError::TooManyEntries { .. } => None,
        }
    }

    /// A vanished file inside a kubelet volume means a swap raced the read: try again.
    fn is_race(&self) -> bool {
        matches!(self, SnapshotError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl Snapshot {
    /// Reads `root` into a snapshot: through `..data` when it is a kubelet volume, as a
    /// plain directory tree otherwise. Names starting with `..` are skipped; symlinks are
    /// followed only while they stay inside `root`. The [`ReadLimits`] are the defaults.
    pub fn read(root: impl AsRef<Path>) -> Result<Snapshot, SnapshotError> {
        Snapshot::read_volume(root, &ReadLimits::default()).map(|(snapshot, _)| snapshot)
    }

    /// Reads `root` as [`Snapshot::read`] does, within `limits`, and says which
    /// [`Layout`] it found: the one the snapshot was actually read with.
    ///
    /// The limits are applied as given; [`ReadLimits::validate`] is for where they are
    /// configured.
    pub fn read_volume(
        root: impl AsRef<Path>,
        limits: &ReadLimits,
    ) -> Result<(Snapshot, Layout), SnapshotError> {
        read(root.as_ref(), limits)
    }
}

fn read(root: &Path, limits: &ReadLimits) -> Result<(Snapshot, Layout), SnapshotError> {
    // Everything below is reached from this descriptor: no path walk from `/` per file,
    // which is most of a read's cost on a volume of small keys.
    let root_dir = match open_dir(root) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::Missing {
                dir: root.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(SnapshotError::NotADirectory {
                dir: root.to_owned(),
            });
        }
        Err(e) => return Err(SnapshotError::io(root, e)),
    };
    let data_link = root.join(DATA_LINK);
    for _ in 0..MAX_ATTEMPTS {
        let target = match read_link_at(root_dir.as_fd(), DATA_LINK) {
            Ok(target) => target,
            // No `..data` (or not a symlink): a plain directory.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::InvalidInput =>
            {
                let mut reader = TreeReader::new(root, Mode::Plain, limits);
                reader.read_open_dir(root_dir, root, "", 0)?;
                return Ok((Snapshot::from_entries(reader.entries), Layout::Plain));
            }
            Err(e) => return Err(SnapshotError::io(&data_link, e)),
        };
        // A fresh reader per attempt: a retried read starts with its whole budget.
        let mut reader = TreeReader::new(root, Mode::Atomic, limits);
        let result = match one_name(&target) {
            // The kubelet's own link, `..data` → `..<timestamp>`: a directory right in
            // the root, opened without following a link, so it cannot lead out of it.
            Some(name) => match open_dir_at(root_dir.as_fd(), name) {
                Ok(data_dir) => reader.read_open_dir(data_dir, &root.join(name), "", 0),
                // The target is itself a link (or not a directory): resolve it in full.
                Err(e) if is_link_or_not_dir(&e) => reader
                    .follow(&data_link)
                    .and_then(|data_dir| reader.read_dir(&data_dir, "", 0)),
                Err(e) => Err(SnapshotError::io(&root.join(name), e)),
            },
            None => reader
                .follow(&data_link)
                .and_then(|data_dir| reader.read_dir(&data_dir, "", 0)),
        };
        match result {
            Ok(()) if read_link_at(root_dir.as_fd(), DATA_LINK).ok().as_ref() == Some(&target) => {
                return Ok((Snapshot::from_entries(reader.entries), Layout::Kubelet));
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

/// The target as one plain name (`..2026_11_22_01_02_03.1`), if it is one.
fn one_name(target: &Path) -> Option<&OsStr> {
    let mut components = target.components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(name)), None) => Some(name),
        _ => None,
    }
}

fn is_link_or_not_dir(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error()
            || code == rustix::io::Errno::NOTDIR.raw_os_error()
    )
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

/// A directory's identity: two paths (through symlinks) to one directory share it.
type DirId = (u64, u64);

fn dir_id(metadata: &fs::Metadata) -> DirId {
    (metadata.dev(), metadata.ino())
}

struct TreeReader {
    /// The watched root, as given.
    root: PathBuf,
    /// The root canonicalized, once a symlink needs it (most reads follow none).
    canonical_root: Option<PathBuf>,
    mode: Mode,
    entries: BTreeMap<String, Vec<u8>>,
    limits: ReadLimits,
    /// Bytes the values read so far left of `limits.max_volume_bytes`.
    bytes_left: u64,
    /// Files, directories and symlinks visited so far.
    visited: usize,
    /// The directories from the top of the read down to the one being read. A symlink to
    /// any of them is a cycle; the depth limit alone would stop it only after following
    /// it 32 times, and with two such links, after 2^32 directories.
    open_dirs: Vec<DirId>,
}

impl TreeReader {
    fn new(root: &Path, mode: Mode, limits: &ReadLimits) -> TreeReader {
        TreeReader {
            root: root.to_owned(),
            canonical_root: None,
            mode,
            entries: BTreeMap::new(),
            limits: limits.clone(),
            bytes_left: limits.max_volume_bytes,
            visited: 0,
            open_dirs: Vec::new(),
        }
    }

    /// Resolves a symlink, refusing targets outside the watched root.
    fn follow(&mut self, link: &Path) -> Result<PathBuf, SnapshotError> {
        let canonical_root = match &self.canonical_root {
            Some(root) => root.clone(),
            None => {
                let root =
                    fs::canonicalize(&self.root).map_err(|e| SnapshotError::io(&self.root, e))?;
                self.canonical_root = Some(root.clone());
                root
            }
        };
        let target = fs::canonicalize(link).map_err(|e| SnapshotError::io(link, e))?;
        if !target.starts_with(&canonical_root) {
            return Err(SnapshotError::SymlinkEscapes {
                path: link.to_owned(),
                target,
                root: canonical_root,
            });
        }
        Ok(target)
    }

    /// Counts one more entry against the budget.
    fn visit(&mut self) -> Result<(), SnapshotError> {
        self.visited += 1;
        if self.visited > self.limits.max_entries {
            return Err(SnapshotError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    fn read_dir(&mut self, dir: &Path, prefix: &str, depth: usize) -> Result<(), SnapshotError> {
        let fd = open_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
        self.read_open_dir(fd, dir, prefix, depth)
    }

    /// Reads the open directory `fd`, whose path (for errors, and for following symlinks)
    /// is `dir`.
    fn read_open_dir(
        &mut self,
        fd: OwnedFd,
        dir: &Path,
        prefix: &str,
        depth: usize,
    ) -> Result<(), SnapshotError> {
        if depth > MAX_DEPTH {
            return Err(SnapshotError::TooDeep {
                path: dir.to_owned(),
            });
        }
        let mut listing = rustix::fs::Dir::new(fd).map_err(|e| SnapshotError::io(dir, e.into()))?;
        // The identity of the directory actually opened, not of whatever the path names
        // by the time a later stat would run.
        let stat = listing
            .stat()
            .map_err(|e| SnapshotError::io(dir, e.into()))?;
        let names = list(&mut listing).map_err(|e| SnapshotError::io(dir, e))?;
        let dir_fd = listing.fd().map_err(|e| SnapshotError::io(dir, e.into()))?;
        self.open_dirs.push((stat.st_dev, stat.st_ino));
        let result = self.read_listing(&names, dir_fd, dir, prefix, depth);
        self.open_dirs.pop();
        result
    }

    fn read_listing(
        &mut self,
        names: &[(std::ffi::CString, FileType)],
        dir_fd: BorrowedFd<'_>,
        dir: &Path,
        prefix: &str,
        depth: usize,
    ) -> Result<(), SnapshotError> {
        for (raw, file_type) in names {
            let path = dir.join(OsStr::from_bytes(raw.to_bytes()));
            let Ok(name) = raw.to_str() else {
                return Err(SnapshotError::NonUtf8Name { path });
            };
            if name.starts_with("..") {
                continue;
            }
            self.visit()?;
            let key = format!("{prefix}{name}");
            let file_type = match file_type {
                // Filesystems that do not fill in the type: ask.
                FileType::Unknown => match stat_at(dir_fd, raw) {
                    Ok(file_type) => file_type,
                    Err(e) if self.mode == Mode::Plain && e.kind() == io::ErrorKind::NotFound => {
                        continue;
                    }
                    Err(e) => return Err(SnapshotError::io(&path, e)),
                },
                known => *known,
            };
            match self.read_entry(dir_fd, raw, &path, file_type, &key, depth) {
                Err(e) if self.mode == Mode::Plain && e.is_race() => continue,
                other => other?,
            }
        }
        Ok(())
    }

    fn read_entry(
        &mut self,
        dir_fd: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        file_type: FileType,
        key: &str,
        depth: usize,
    ) -> Result<(), SnapshotError> {
        if file_type == FileType::RegularFile {
            // The common case inside a kubelet volume's data directory.
            let file = open_at(dir_fd, name).map_err(|e| SnapshotError::io(path, e))?;
            return self.take_value(file, path, key);
        }
        let resolved = if file_type == FileType::Symlink {
            self.follow(path)?
        } else {
            path.to_owned()
        };
        let metadata = fs::metadata(&resolved).map_err(|e| SnapshotError::io(path, e))?;
        if metadata.is_dir() {
            if self.open_dirs.contains(&dir_id(&metadata)) {
                return Err(SnapshotError::SymlinkCycle {
                    path: path.to_owned(),
                    target: resolved,
                });
            }
            self.read_dir(&resolved, &format!("{key}/"), depth + 1)
        } else if metadata.is_file() {
            let file = open(&resolved).map_err(|e| SnapshotError::io(path, e))?;
            self.take_value(file, path, key)
        } else {
            // FIFOs, sockets and devices are not configuration; opening a FIFO would block.
            tracing::debug!(path = %path.display(), "skipping a file that is neither regular nor a directory");
            Ok(())
        }
    }

    /// Reads an open file as the value of `key`, within what is left of the byte budget.
    fn take_value(&mut self, file: OwnedFd, path: &Path, key: &str) -> Result<(), SnapshotError> {
        let bytes = read_bounded(&file, self.bytes_left).map_err(|e| SnapshotError::io(path, e))?;
        // `read_bounded` stops one byte past the budget: enough to know it is exceeded.
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len > self.bytes_left {
            return Err(SnapshotError::TooLarge {
                path: path.to_owned(),
                limit: self.limits.max_volume_bytes,
            });
        }
        self.bytes_left -= len;
        self.entries.insert(key.to_owned(), bytes);
        Ok(())
    }
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

/// Opens the directory `name` in `dir`, refusing a symlink there.
fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

fn read_link_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
}

/// The names in a directory with their types as the listing gives them (`.` and `..`
/// left out). Taken whole before any file is opened: the listing and the opens share
/// the descriptor.
fn list(listing: &mut rustix::fs::Dir) -> io::Result<Vec<(std::ffi::CString, FileType)>> {
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        names.push((name.to_owned(), entry.file_type()));
    }
    Ok(names)
}

/// The type of `name` in `dir`, not following a symlink.
fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<FileType> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(FileType::from_raw_mode(stat.st_mode))
}

/// Opens a file found through a symlink (checked to be a regular file just before; a
/// non-blocking open keeps a FIFO swapped in since from holding the read).
fn open(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )?)
}

/// Opens a file by its name in an open directory: no path walk from the root, which is
/// most of the cost when a volume holds a thousand small keys.
///
/// The listing said it was a regular file, but the name may have been replaced since: a
/// symlink is not followed (it could lead out of the root) and the open never blocks
/// (a FIFO would hold the watcher, and in `rekindle watch` the whole runtime, until a
/// writer came). Anything but a regular file is reported as gone: the change that
/// replaced it brings another read.
fn open_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let replaced = || io::Error::from(io::ErrorKind::NotFound);
    let file = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            replaced()
        } else {
            e.into()
        }
    })?;
    let stat = rustix::fs::fstat(&file)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(replaced());
    }
    Ok(file)
}

/// Reads a file to its end or to `limit + 1` bytes, whichever comes first, so that a huge
/// file costs at most the budget in memory. No stat for a size hint: for small files it
/// costs more than it saves, and the size could change before the read anyway.
fn read_bounded(file: &OwnedFd, limit: u64) -> io::Result<Vec<u8>> {
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    let mut filled = 0;
    loop {
        if filled == bytes.len() {
            if filled == cap {
                break;
            }
            // Doubling from 512 bytes, never past the cap.
            let grow = filled.max(512).min(cap - filled);
            bytes.resize(filled + grow, 0);
        }
        match rustix::io::read(file, &mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

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

    /// A name listed as a regular file is opened only if it still is one: a symlink or a
    /// FIFO put there since (by whoever can write the directory) is not followed, and
    /// does not block, and counts as gone (a race: the change brings another read).
    #[test]
    fn a_file_replaced_after_the_listing_is_not_followed_or_waited_on() {
        let dir = tempdir();
        write(&dir.path().join("plain"), "v");
        symlink("/etc/hostname", dir.path().join("link")).expect("link");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.path().join("fifo"),
            rustix::fs::Mode::RUSR,
        )
        .expect("fifo");
        let fd = open_dir(dir.path()).expect("open");
        let name = |n: &str| std::ffi::CString::new(n).expect("name");
        assert!(open_at(fd.as_fd(), &name("plain")).is_ok());
        for replaced in ["link", "fifo"] {
            let error = open_at(fd.as_fd(), &name(replaced)).expect_err(replaced);
            assert_eq!(error.kind(), io::ErrorKind::NotFound, "{replaced}: {error}");
        }
    }

    /// `..data` naming a plain name in the root is opened without following links: a
    /// name that is itself a link out of the root is still refused, one to a directory
    /// inside it still read.
    #[test]
    fn data_target_that_is_itself_a_link_is_resolved_in_full() {
        let outside = tempdir();
        write(&outside.path().join("key"), "x");
        let dir = tempdir();
        symlink(outside.path(), dir.path().join("..ts")).expect("link");
        symlink("..ts", dir.path().join("..data")).expect("link");
        let err = Snapshot::read(dir.path()).expect_err("must refuse");
        assert!(matches!(err, SnapshotError::SymlinkEscapes { .. }), "{err}");

        let dir = tempdir();
        write(&dir.path().join("..real/key"), "inside");
        symlink("..real", dir.path().join("..ts")).expect("link");
        symlink("..ts", dir.path().join("..data")).expect("link");
        let (snap, layout) =
            Snapshot::read_volume(dir.path(), &ReadLimits::default()).expect("read");
        assert_eq!(layout, Layout::Kubelet);
        assert_eq!(snap.get("key"), Some(b"inside".as_slice()));
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
        match &err {
            SnapshotError::SymlinkCycle { path, .. } => assert!(path.ends_with("d/up"), "{err}"),
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    /// Runs a read on its own thread and fails the test if it takes longer than `bound`:
    /// the defects these tests guard against make a read run for hours, not fail.
    fn read_within(
        root: &Path,
        limits: ReadLimits,
        bound: Duration,
    ) -> Result<(Snapshot, Layout), SnapshotError> {
        let (tx, rx) = mpsc::channel();
        let root = root.to_owned();
        thread::spawn(move || {
            let _ = tx.send(Snapshot::read_volume(&root, &limits));
        });
        rx.recv_timeout(bound)
            .unwrap_or_else(|_| panic!("the read did not finish within {bound:?}"))
    }

    fn limits(max_volume_bytes: u64, max_entries: usize) -> ReadLimits {
        ReadLimits {
            max_volume_bytes,
            max_entries,
        }
    }

    #[test]
    fn default_limits_are_valid_and_zero_is_refused() {
        let defaults = ReadLimits::default();
        assert_eq!(defaults, limits(64 * 1024 * 1024, 10_000));
        assert_eq!(defaults.validate(), Ok(()));
        assert_eq!(
            limits(0, 10).validate(),
            Err(ReadLimitsError::ZeroVolumeBytes)
        );
        assert_eq!(limits(10, 0).validate(), Err(ReadLimitsError::ZeroEntries));
    }

    #[test]
    fn a_file_above_the_limit_is_named() {
        let dir = tempdir();
        write(&dir.path().join("small"), "0123456789");
        fs::write(dir.path().join("big"), vec![b'x'; 1001]).expect("write");
        let err = Snapshot::read_volume(dir.path(), &limits(1000, 100)).expect_err("too large");
        match &err {
            SnapshotError::TooLarge { path, limit } => {
                assert!(path.ends_with("big"), "{err}");
                assert_eq!(*limit, 1000);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(err.to_string().contains("1000"), "{err}");
    }

    #[test]
    fn the_limit_counts_the_volume_not_each_file() {
        let dir = tempdir();
        for name in ["a", "b", "c"] {
            fs::write(dir.path().join(name), vec![b'x'; 400]).expect("write");
        }
        let err = Snapshot::read_volume(dir.path(), &limits(1000, 100)).expect_err("too large");
        assert!(
            matches!(err, SnapshotError::TooLarge { limit: 1000, .. }),
            "{err}"
        );
        // Exactly at the limit is within it.
        let (snapshot, _) =
            Snapshot::read_volume(dir.path(), &limits(1200, 100)).expect("at the limit");
        assert_eq!(snapshot.len(), 3);
    }

    #[test]
    fn a_huge_file_is_not_read_whole() {
        let dir = tempdir();
        // Sparse: 512 MiB that cost no disk. Reading it whole would take that much memory.
        let file = fs::File::create(dir.path().join("huge")).expect("create");
        file.set_len(512 * 1024 * 1024).expect("extend");
        let err = read_within(
            dir.path(),
            limits(1024 * 1024, 100),
            Duration::from_secs(10),
        )
        .expect_err("too large");
        assert!(matches!(err, SnapshotError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn limits_apply_through_data_link_too() {
        let dir = tempdir();
        fs::create_dir(dir.path().join("..v1")).expect("mkdir");
        fs::write(dir.path().join("..v1/key"), vec![b'x'; 2000]).expect("write");
        symlink("..v1", dir.path().join("..data")).expect("link ..data");
        let err = Snapshot::read_volume(dir.path(), &limits(1000, 100)).expect_err("too large");
        assert!(matches!(err, SnapshotError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn too_many_entries_are_refused() {
        let dir = tempdir();
        for name in ["a", "b", "c", "d"] {
            write(&dir.path().join("sub").join(name), "1");
        }
        // `sub` and its four files: five entries.
        let err = Snapshot::read_volume(dir.path(), &limits(1000, 4)).expect_err("too many");
        assert!(
            matches!(err, SnapshotError::TooManyEntries { limit: 4 }),
            "{err}"
        );
        let (snapshot, _) = Snapshot::read_volume(dir.path(), &limits(1000, 5)).expect("five");
        assert_eq!(snapshot.len(), 4);
    }

    #[test]
    fn two_links_to_the_parent_stop_at_once() {
        let dir = tempdir();
        write(&dir.path().join("d/key"), "1");
        symlink("..", dir.path().join("d/up1")).expect("link");
        symlink("..", dir.path().join("d/up2")).expect("link");
        let err = read_within(dir.path(), ReadLimits::default(), Duration::from_secs(10))
            .expect_err("cycle");
        match &err {
            SnapshotError::SymlinkCycle { path, .. } => {
                assert!(path.ends_with("d/up1") || path.ends_with("d/up2"), "{err}");
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn wide_acyclic_fan_out_is_bounded() {
        // Each level holds two links to the level below: no cycle, but 2^24 directories
        // to walk from the top. The entry budget must stop it, not the depth limit.
        let dir = tempdir();
        fs::create_dir(dir.path().join("l0")).expect("mkdir");
        for level in 1..=24 {
            let here = dir.path().join(format!("l{level}"));
            fs::create_dir(&here).expect("mkdir");
            let below = format!("../l{}", level - 1);
            symlink(&below, here.join("a")).expect("link");
            symlink(&below, here.join("b")).expect("link");
        }
        let err = read_within(dir.path(), ReadLimits::default(), Duration::from_secs(10))
            .expect_err("too many");
        assert!(
            matches!(err, SnapshotError::TooManyEntries { limit: 10_000 }),
            "{err}"
        );
    }

    #[test]
    fn the_layout_is_reported_with_the_snapshot() {
        let plain = tempdir();
        write(&plain.path().join("key"), "1");
        let (_, layout) =
            Snapshot::read_volume(plain.path(), &ReadLimits::default()).expect("plain");
        assert_eq!(layout, Layout::Plain);

        let kubelet = tempdir();
        write(&kubelet.path().join("..v1/key"), "1");
        symlink("..v1", kubelet.path().join("..data")).expect("link ..data");
        let (snapshot, layout) =
            Snapshot::read_volume(kubelet.path(), &ReadLimits::default()).expect("kubelet");
        assert_eq!(layout, Layout::Kubelet);
        assert_eq!(snapshot.get("key"), Some(b"1".as_slice()));

        // A `..data` that is not a symlink is not the kubelet's.
        let odd = tempdir();
        write(&odd.path().join("..data/key"), "1");
        let (_, layout) = Snapshot::read_volume(odd.path(), &ReadLimits::default()).expect("odd");
        assert_eq!(layout, Layout::Plain);
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
