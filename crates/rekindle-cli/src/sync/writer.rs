//! Writing a snapshot into a directory exactly as the kubelet projects a ConfigMap or
//! Secret volume, so that everything reading the directory (rekindle's own watcher, the
//! application, `nginx -t`) sees a real volume and every swap is atomic.
//!
//! The layout: the files live in a timestamped directory `..2026_11_22_09_30_00.123456789`;
//! the symlink `..data` points at it; each top-level key is a symlink `KEY -> ..data/KEY`.
//! An update writes a new timestamped directory, points a fresh `..data_tmp` at it and
//! renames that over `..data` (one atomic step: a reader sees all old or all new files),
//! adds the symlinks of new keys, then removes the old directory and the symlinks of keys
//! that are gone. A failure before the rename (a full disk, say) removes the partial new
//! directory and leaves the old content in force.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rekindle::Snapshot;

/// The symlink to the directory in force.
const DATA: &str = "..data";
/// The symlink renamed over [`DATA`].
const DATA_TMP: &str = "..data_tmp";
/// Directories the kubelet creates: the timestamped one and nested key paths.
const DIR_MODE: u32 = 0o755;

/// Why a write did not happen. The content in force before it stays in force.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A key that cannot be a file path inside the directory.
    #[error("key {key:?} cannot be written: {reason}")]
    BadKey { key: String, reason: &'static str },
    /// Something that is not ours is where a key's symlink must go.
    #[error(
        "{} exists and was not written by rekindle sync; sync into an empty directory (an emptyDir volume)",
        path.display()
    )]
    Occupied { path: PathBuf },
    /// A filesystem operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The directory already held exactly this content with this mode.
    Unchanged,
    /// The content was swapped in.
    Swapped,
}

/// Writes snapshots into one directory with the kubelet's layout.
#[derive(Debug, Clone)]
pub struct VolumeWriter {
    dir: PathBuf,
    mode: u32,
}

impl VolumeWriter {
    /// Files get `mode` (the kubelet's default is 0644), whatever the umask.
    pub fn new(dir: PathBuf, mode: u32) -> VolumeWriter {
        VolumeWriter { dir, mode }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the directory hold exactly `snapshot`, atomically.
    pub fn write(&self, snapshot: &Snapshot) -> Result<Written, WriteError> {
        for key in snapshot.keys() {
            check_key(key)?;
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .map_err(io_error("creating", &self.dir))?;
        let old = fs::read_link(self.dir.join(DATA))
            .ok()
            .map(|target| self.dir.join(target));
        if let Some(old) = &old
            && self.holds(old, snapshot)
        {
            return Ok(Written::Unchanged);
        }
        let new_tops = top_levels(snapshot.keys());
        // Refuse before writing anything if a key's place is taken by something else.
        for top in &new_tops {
            let path = self.dir.join(top);
            if let Ok(meta) = fs::symlink_metadata(&path)
                && !(meta.file_type().is_symlink() && is_our_link(&path, top))
            {
                return Err(WriteError::Occupied { path });
            }
        }

        let (new_name, new_dir) = self.create_timestamped_dir()?;
        if let Err(error) = self.fill(&new_dir, snapshot) {
            // Nothing points at the new directory yet: removing it restores the state
            // before the write.
            let _ = fs::remove_dir_all(&new_dir);
            return Err(error);
        }
        let tmp = self.dir.join(DATA_TMP);
        let _ = fs::remove_file(&tmp);
        let swap = symlink(&new_name, &tmp)
            .map_err(io_error("creating the symlink", &tmp))
            .and_then(|()| {
                fs::rename(&tmp, self.dir.join(DATA)).map_err(io_error("renaming", &tmp))
            });
        if let Err(error) = swap {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_dir_all(&new_dir);
            return Err(error);
        }

        // The new content is in force. What follows only tidies up: a failure is logged
        // and the next write tries again.
        for top in &new_tops {
            let path = self.dir.join(top);
            if fs::symlink_metadata(&path).is_err()
                && let Err(error) = symlink(Path::new(DATA).join(top), &path)
            {
                tracing::warn!(path = %path.display(), %error, "cannot create a key's symlink");
            }
        }
        self.remove_stale(&new_name, &new_tops);
        Ok(Written::Swapped)
    }

    /// True when `dir` holds exactly the snapshot's files, each with our mode.
    fn holds(&self, dir: &Path, snapshot: &Snapshot) -> bool {
        let mut found = BTreeMap::new();
        if collect_files(dir, dir, &mut found).is_err() {
            return false;
        }
        found.len() == snapshot.len()
            && snapshot.iter().all(|(key, value)| {
                found.get(key).is_some_and(|(mode, path)| {
                    *mode == self.mode && fs::read(path).is_ok_and(|bytes| bytes == value)
                })
            })
    }

    /// A new `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN` directory, named by the UTC time as the
    /// kubelet names them (it adds a random number; the nanoseconds serve the same end).
    fn create_timestamped_dir(&self) -> Result<(String, PathBuf), WriteError> {
        loop {
            let name = timestamp_name(SystemTime::now());
            let path = self.dir.join(&name);
            match fs::DirBuilder::new().mode(DIR_MODE).create(&path) {
                Ok(()) => {
                    // The umask may have taken bits away.
                    fs::set_permissions(&path, fs::Permissions::from_mode(DIR_MODE))
                        .map_err(io_error("setting the mode of", &path))?;
                    return Ok((name, path));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error("creating", &path)(e)),
            }
        }
    }

    fn fill(&self, dir: &Path, snapshot: &Snapshot) -> Result<(), WriteError> {
        for (key, value) in snapshot.iter() {
            let path = dir.join(key);
            if let Some(parent) = path.parent()
                && parent != dir
            {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(parent)
                    .map_err(io_error("creating", parent))?;
            }
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.mode)
                .open(&path)
                .map_err(io_error("creating", &path))?;
            file.write_all(value).map_err(io_error("writing", &path))?;
            file.set_permissions(fs::Permissions::from_mode(self.mode))
                .map_err(io_error("setting the mode of", &path))?;
        }
        Ok(())
    }

    /// Removes the timestamped directories other than `keep` (the one replaced, and any
    /// left by an interrupted earlier write) and the symlinks of keys no longer present.
    fn remove_stale(&self, keep: &str, tops: &BTreeSet<String>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            let result = if is_timestamp_name(name) && name != keep {
                fs::remove_dir_all(&path)
            } else if !name.starts_with("..") && !tops.contains(name) && is_our_link(&path, name) {
                fs::remove_file(&path)
            } else {
                continue;
            };
            if let Err(error) = result {
                tracing::warn!(path = %path.display(), %error, "cannot remove a stale entry");
            }
        }
    }
}

/// Keys are relative paths below the directory, never escaping it nor clashing with the
/// `..`-named bookkeeping. ConfigMap and Secret keys are validated by the API server
/// already; this guards against anything else.
fn check_key(key: &str) -> Result<(), WriteError> {
    let bad = |reason| WriteError::BadKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.starts_with('/') {
        return Err(bad("absolute path"));
    }
    for part in key.split('/') {
        if part.is_empty() || part == "." {
            return Err(bad("empty or '.' path element"));
        }
        if part.starts_with("..") {
            return Err(bad("a path element starting with '..'"));
        }
        if part.len() > 255 {
            return Err(bad("a path element longer than 255 bytes"));
        }
    }
    Ok(())
}

fn top_levels<'a>(keys: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    keys.map(|k| k.split('/').next().unwrap_or(k).to_owned())
        .collect()
}

/// Whether `path` is the symlink this writer makes for `top`: `..data/TOP`.
fn is_our_link(path: &Path, top: &str) -> bool {
    fs::read_link(path).is_ok_and(|target| target == Path::new(DATA).join(top))
}

/// Every regular file below `dir`, by its path relative to `root`, with its mode.
fn collect_files(
    root: &Path,
    dir: &Path,
    found: &mut BTreeMap<String, (u32, PathBuf)>,
) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect_files(root, &path, found)?;
        } else {
            let key = path
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .to_string_lossy()
                .into_owned();
            let mode = entry.metadata()?.permissions().mode() & 0o7777;
            found.insert(key, (mode, path));
        }
    }
    Ok(())
}

/// `..2026_11_22_09_30_00.123456789` for that instant in UTC.
fn timestamp_name(at: SystemTime) -> String {
    let ((year, month, day), (h, m, s), nanos) = rekindle::report::utc(at);
    format!("..{year:04}_{month:02}_{day:02}_{h:02}_{m:02}_{s:02}.{nanos:09}")
}

fn is_timestamp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("..") else {
        return false;
    };
    let (stamp, suffix) = rest.split_once('.').unwrap_or((rest, ""));
    let fields: Vec<&str> = stamp.split('_').collect();
    fields.len() == 6
        && fields
            .iter()
            .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
        && !suffix.is_empty()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn mk_snapshot(entries: &[(&str, &str)]) -> Snapshot {
        Snapshot::from_entries(entries.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    fn mk_writer() -> (tempfile::TempDir, VolumeWriter) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let writer = VolumeWriter::new(tmp.path().join("vol"), 0o644);
        (tmp, writer)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn timestamps_are_utc_calendar_times() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_795_340_000, 5);
        // 2026-11-22T09:33:20Z
        assert_eq!(timestamp_name(at), "..2026_11_22_09_33_20.000000005");
        assert_eq!(
            timestamp_name(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "..2000_02_29_00_00_00.000000000"
        );
        assert!(is_timestamp_name(&timestamp_name(at)));
        assert!(!is_timestamp_name("..data"));
        assert!(!is_timestamp_name("..data_tmp"));
        assert!(!is_timestamp_name("..2026_11_22"));
    }

    #[test]
    fn first_write_makes_the_kubelet_layout_and_reads_back() {
        let (_tmp, writer) = mk_writer();
        let snapshot = mk_snapshot(&[("app.conf", "a=1\n"), ("b", "2")]);
        assert_eq!(writer.write(&snapshot).expect("write"), Written::Swapped);
        let entries = names(writer.dir());
        assert_eq!(entries.len(), 4, "{entries:?}");
        assert!(entries.iter().any(|n| is_timestamp_name(n)), "{entries:?}");
        assert_eq!(
            fs::read_link(writer.dir().join("app.conf")).expect("link"),
            Path::new("..data/app.conf")
        );
        let read = Snapshot::read(writer.dir()).expect("read");
        assert_eq!(read.digest(), snapshot.digest());
    }

    #[test]
    fn same_content_is_not_written_again() {
        let (_tmp, writer) = mk_writer();
        let snapshot = mk_snapshot(&[("k", "v")]);
        writer.write(&snapshot).expect("write");
        let before = fs::read_link(writer.dir().join(DATA)).expect("..data");
        assert_eq!(writer.write(&snapshot).expect("write"), Written::Unchanged);
        assert_eq!(
            fs::read_link(writer.dir().join(DATA)).expect("..data"),
            before
        );
        // Another mode is a change.
        let other_mode = VolumeWriter::new(writer.dir().to_owned(), 0o600);
        assert_eq!(
            other_mode.write(&snapshot).expect("write"),
            Written::Swapped
        );
    }

    #[test]
    fn removed_keys_and_old_directories_disappear() {
        let (_tmp, writer) = mk_writer();
        writer
            .write(&mk_snapshot(&[("gone", "1"), ("kept", "1")]))
            .expect("write");
        // A directory left by an interrupted write.
        fs::create_dir(writer.dir().join("..2020_01_01_00_00_00.1")).expect("mkdir");
        writer
            .write(&mk_snapshot(&[("kept", "2"), ("new", "3")]))
            .expect("write");
        let entries = names(writer.dir());
        let stamps: Vec<_> = entries.iter().filter(|n| is_timestamp_name(n)).collect();
        assert_eq!(stamps.len(), 1, "{entries:?}");
        assert!(!entries.contains(&"gone".to_owned()), "{entries:?}");
        let read = Snapshot::read(writer.dir()).expect("read");
        assert_eq!(read.keys().collect::<Vec<_>>(), ["kept", "new"]);
        assert_eq!(read.get_str("kept"), Some("2"));
    }

    #[test]
    fn nested_keys_get_directories_and_one_top_level_link() {
        let (_tmp, writer) = mk_writer();
        writer
            .write(&mk_snapshot(&[("conf/a", "1"), ("conf/sub/b", "2")]))
            .expect("write");
        assert_eq!(
            fs::read_link(writer.dir().join("conf")).expect("link"),
            Path::new("..data/conf")
        );
        let read = Snapshot::read(writer.dir()).expect("read");
        assert_eq!(read.keys().collect::<Vec<_>>(), ["conf/a", "conf/sub/b"]);
    }

    #[test]
    fn bad_keys_and_foreign_files_are_refused_and_nothing_changes() {
        let (_tmp, writer) = mk_writer();
        for key in ["", "/etc/passwd", "a/../../x", "..data", "a//b"] {
            let error = writer
                .write(&mk_snapshot(&[(key, "x")]))
                .expect_err(key)
                .to_string();
            assert!(error.contains("cannot be written"), "{key}: {error}");
        }
        assert!(!writer.dir().exists(), "a refused write creates nothing");
        fs::create_dir(writer.dir()).expect("mkdir");
        fs::write(writer.dir().join("app.conf"), "mine").expect("write");
        let error = writer
            .write(&mk_snapshot(&[("app.conf", "x")]))
            .expect_err("occupied")
            .to_string();
        assert!(
            error.contains("was not written by rekindle sync"),
            "{error}"
        );
        assert_eq!(names(writer.dir()), ["app.conf"]);
        assert_eq!(
            fs::read_to_string(writer.dir().join("app.conf")).expect("read"),
            "mine"
        );
    }

    #[test]
    fn modes_are_exact_whatever_the_umask() {
        let (_tmp, writer) = mk_writer();
        let writer = VolumeWriter::new(writer.dir().to_owned(), 0o640);
        writer.write(&mk_snapshot(&[("k", "v")])).expect("write");
        let meta = fs::metadata(writer.dir().join("k")).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    }
}
