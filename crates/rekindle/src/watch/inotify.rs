//! inotify on a non-blocking descriptor, read by whoever polls it: the async watcher
//! reads it on the runtime's own thread, so a `..data` swap wakes one thread, not two.
//!
//! Raw events are turned into [`notify::Event`]s, so that `classify` (shared with the
//! thread watcher, which uses the `notify` crate) sees the same thing from both.
//! Only the events that can change a snapshot are asked for: no `IN_OPEN`, `IN_ACCESS`
//! or `IN_CLOSE_NOWRITE`, which our own reads would otherwise produce on every read.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use notify::event::{
    AccessKind, AccessMode, CreateKind, DataChange, Event, EventKind, Flag, MetadataKind,
    ModifyKind, RemoveKind, RenameMode,
};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

/// A directory below a recursive watch is followed this deep at most (as the reader's
/// own depth limit).
const MAX_DEPTH: usize = 32;

/// A batch handed to the watcher at most: one kubelet swap is a handful of events, an
/// overflowing queue (16,384 by default) a few batches.
const MAX_EVENTS_PER_READ: usize = 4096;

/// An inotify instance watching one directory, and below it when `recursive`.
#[derive(Debug)]
pub(crate) struct Inotify {
    fd: OwnedFd,
    root: PathBuf,
    recursive: bool,
    /// Watch descriptor → the directory it watches.
    watches: HashMap<i32, PathBuf>,
    /// Room for at least a few hundred events per read.
    buffer: Vec<MaybeUninit<u8>>,
}

fn mask() -> WatchFlags {
    WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MODIFY
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::ATTRIB
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
}

impl Inotify {
    /// Watches `root` (and, when `recursive`, every directory below it, not through
    /// symlinks). The descriptor is non-blocking.
    pub(crate) fn start(root: &Path, recursive: bool) -> io::Result<Inotify> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let mut inotify = Inotify {
            fd,
            root: root.to_owned(),
            recursive,
            watches: HashMap::new(),
            buffer: vec![MaybeUninit::uninit(); 64 * 1024],
        };
        // The root follows a symlink, as a directory given by a link should be watched;
        // the directories below do not (`ONLYDIR` also refuses a file at the path).
        let wd = inotify::add_watch(&inotify.fd, root, mask() | WatchFlags::ONLYDIR)?;
        inotify.watches.insert(wd, root.to_owned());
        if recursive {
            inotify.add_below(root, 0)?;
        }
        Ok(inotify)
    }

    /// How many directories are watched.
    pub(crate) fn watched(&self) -> usize {
        self.watches.len()
    }

    /// Adds watches for the directories below `dir`. A directory that vanished meanwhile
    /// is skipped: the event that removed it is on its way.
    fn add_below(&mut self, dir: &Path, depth: usize) -> io::Result<()> {
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.add_dir(&entry.path(), depth + 1)?;
            }
        }
        Ok(())
    }

    fn add_dir(&mut self, dir: &Path, depth: usize) -> io::Result<()> {
        let flags = mask() | WatchFlags::ONLYDIR | WatchFlags::DONT_FOLLOW;
        match inotify::add_watch(&self.fd, dir, flags) {
            Ok(wd) => {
                self.watches.insert(wd, dir.to_owned());
                self.add_below(dir, depth)
            }
            // Gone again, or replaced by a file: nothing to watch.
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the watches of `dir` and of every directory below it.
    fn forget_below(&mut self, dir: &Path) {
        let gone: Vec<i32> = self
            .watches
            .iter()
            .filter(|(_, path)| path.starts_with(dir))
            .map(|(wd, _)| *wd)
            .collect();
        for wd in gone {
            self.watches.remove(&wd);
            // Already gone if the kernel dropped it meanwhile.
            let _ = inotify::remove_watch(&self.fd, wd);
        }
    }

    /// Reads the events waiting, up to about [`MAX_EVENTS_PER_READ`] (a writer faster than
    /// the reader must not keep it here for ever: the rest stays queued, and the
    /// descriptor stays readable). `WouldBlock` when there was none, so that a poller
    /// can wait for the next readiness.
    pub(crate) fn read_events(&mut self) -> io::Result<Vec<Event>> {
        let mut raw = Vec::new();
        {
            let mut reader = inotify::Reader::new(&self.fd, &mut self.buffer);
            // Stops only between two reads: what one read returned is all taken, or
            // it would be lost with the reader's buffer.
            while raw.len() < MAX_EVENTS_PER_READ || !reader.is_buffer_empty() {
                match reader.next() {
                    Ok(event) => raw.push((
                        event.wd(),
                        event.events(),
                        event.file_name().map(|n| n.to_bytes().to_vec()),
                    )),
                    Err(Errno::AGAIN) if !raw.is_empty() => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut events = Vec::with_capacity(raw.len());
        for (wd, flags, name) in raw {
            if let Some(event) = self.translate(wd, flags, name.as_deref())? {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn translate(
        &mut self,
        wd: i32,
        flags: ReadFlags,
        name: Option<&[u8]>,
    ) -> io::Result<Option<Event>> {
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            // A directory created during the lost events has no watch yet.
            if self.recursive {
                let root = self.root.clone();
                self.add_below(&root, 0)?;
            }
            return Ok(Some(Event::new(EventKind::Other).set_flag(Flag::Rescan)));
        }
        if flags.contains(ReadFlags::IGNORED) {
            // The watch is gone (its directory removed, or unmounted). For the root, the
            // `DELETE_SELF` or `UNMOUNT` before this said so already.
            self.watches.remove(&wd);
            return Ok(None);
        }
        let Some(dir) = self.watches.get(&wd) else {
            // An event of a watch already dropped.
            return Ok(None);
        };
        let is_root = *dir == self.root;
        let path = match name {
            Some(name) => dir.join(OsStr::from_bytes(name)),
            None => dir.clone(),
        };
        let is_dir = flags.contains(ReadFlags::ISDIR);
        let kind = if flags.contains(ReadFlags::CREATE) {
            EventKind::Create(if is_dir {
                CreateKind::Folder
            } else {
                CreateKind::File
            })
        } else if flags.contains(ReadFlags::DELETE) {
            EventKind::Remove(if is_dir {
                RemoveKind::Folder
            } else {
                RemoveKind::File
            })
        } else if flags.contains(ReadFlags::MODIFY) {
            EventKind::Modify(ModifyKind::Data(DataChange::Any))
        } else if flags.contains(ReadFlags::CLOSE_WRITE) {
            EventKind::Access(AccessKind::Close(AccessMode::Write))
        } else if flags.contains(ReadFlags::MOVED_FROM) {
            EventKind::Modify(ModifyKind::Name(RenameMode::From))
        } else if flags.contains(ReadFlags::MOVED_TO) {
            EventKind::Modify(ModifyKind::Name(RenameMode::To))
        } else if flags.contains(ReadFlags::ATTRIB) {
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any))
        } else if flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::UNMOUNT) {
            // Below the root, the parent's `DELETE` said it already.
            if !is_root {
                return Ok(None);
            }
            EventKind::Remove(RemoveKind::Folder)
        } else if flags.contains(ReadFlags::MOVE_SELF) {
            if !is_root {
                return Ok(None);
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Any))
        } else {
            return Ok(None);
        };
        // A directory moved out of the tree takes its watches along: drop them, or
        // writes far away would be reported as if they were here.
        if is_dir && flags.contains(ReadFlags::MOVED_FROM) {
            self.forget_below(&path);
        }
        // A directory that appears below a recursive watch is watched too; one moved in
        // may bring a whole tree.
        if self.recursive && is_dir && flags.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO) {
            let depth = path
                .strip_prefix(&self.root)
                .map_or(MAX_DEPTH, |p| p.components().count());
            self.add_dir(&path, depth)?;
        }
        Ok(Some(Event::new(kind).add_path(path)))
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Inotify {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(inotify: &mut Inotify) -> Vec<Event> {
        match inotify.read_events() {
            Ok(events) => events,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
            Err(e) => panic!("reading inotify: {e}"),
        }
    }

    fn has(events: &[Event], kind: EventKind, path: &Path) -> bool {
        events
            .iter()
            .any(|e| e.kind == kind && e.paths.first().map(PathBuf::as_path) == Some(path))
    }

    #[test]
    fn nothing_waiting_is_would_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut inotify = Inotify::start(dir.path(), false).unwrap();
        let error = inotify.read_events().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_rename_over_data_is_seen_as_renamed_to() {
        let dir = tempfile::tempdir().unwrap();
        let mut inotify = Inotify::start(dir.path(), false).unwrap();
        std::os::unix::fs::symlink("..x", dir.path().join("..data_tmp")).unwrap();
        fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        let events = drain(&mut inotify);
        assert!(has(
            &events,
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            &dir.path().join("..data")
        ));
    }

    #[test]
    fn our_own_reads_produce_no_event() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("k"), "v").unwrap();
        let mut inotify = Inotify::start(dir.path(), true).unwrap();
        let _ = fs::read(dir.path().join("k")).unwrap();
        let _ = fs::read_dir(dir.path()).unwrap().count();
        assert!(drain(&mut inotify).is_empty());
    }

    #[test]
    fn recursive_follows_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mut inotify = Inotify::start(dir.path(), true).unwrap();
        let nested = dir.path().join("a/b");
        fs::create_dir_all(&nested).unwrap();
        drain(&mut inotify);
        fs::write(nested.join("k"), "v").unwrap();
        let events = drain(&mut inotify);
        assert!(has(
            &events,
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            &nested.join("k")
        ));
    }

    #[test]
    fn a_long_queue_is_read_in_batches_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut inotify = Inotify::start(dir.path(), false).unwrap();
        // Two events each (created, closed after writing): 6,000 in all, within the
        // kernel's default queue of 16,384.
        // Names of varied lengths, so that event sizes vary and a batch's bound falls
        // inside what one read(2) returned.
        for n in 0..3000 {
            let name = format!("f{n}{}", "x".repeat(n % 23));
            fs::File::create(dir.path().join(name)).unwrap();
        }
        let first = drain(&mut inotify);
        assert!(
            first.len() >= MAX_EVENTS_PER_READ && first.len() < 6000,
            "one batch holds about {MAX_EVENTS_PER_READ} events: {}",
            first.len()
        );
        let mut all = first;
        loop {
            let batch = drain(&mut inotify);
            if batch.is_empty() {
                break;
            }
            all.extend(batch);
        }
        let created = all
            .iter()
            .filter(|e| e.kind == EventKind::Create(CreateKind::File))
            .count();
        assert_eq!((all.len(), created), (6000, 3000));
    }

    #[test]
    fn a_directory_moved_out_is_no_longer_watched() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        let mut inotify = Inotify::start(&root, true).unwrap();
        fs::rename(root.join("sub"), parent.path().join("away")).unwrap();
        drain(&mut inotify);
        assert_eq!(inotify.watched(), 1);
        fs::write(parent.path().join("away/k"), "v").unwrap();
        let events = drain(&mut inotify);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn not_recursive_sees_only_the_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let mut inotify = Inotify::start(dir.path(), false).unwrap();
        fs::write(dir.path().join("sub/k"), "v").unwrap();
        assert!(drain(&mut inotify).is_empty());
    }

    #[test]
    fn the_root_removed_is_reported_on_the_root() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("root");
        fs::create_dir(&root).unwrap();
        let mut inotify = Inotify::start(&root, false).unwrap();
        fs::remove_dir(&root).unwrap();
        let events = drain(&mut inotify);
        assert!(has(&events, EventKind::Remove(RemoveKind::Folder), &root));
    }
}
