//! What a filesystem event means for a watched directory. Pure: no I/O, unit-tested.

use std::path::{Component, Path, PathBuf};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};

use crate::read::DATA_LINK;

/// One event, classified: how to react, and what it says about files being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) reaction: Reaction,
    pub(crate) write: Option<WriteActivity>,
}

/// A plain-directory writer at work. A file that was modified and not yet closed is
/// still being written: reading it after a pause longer than the quiet period would
/// apply half a file, so the watcher waits for its close (up to a bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteActivity {
    /// Data was written to this file; a close-write will follow.
    Writing(PathBuf),
    /// This file was closed after writing, removed, or renamed away.
    Finished(PathBuf),
}

/// How the watcher responds to one event, weakest first: when a batch of events arrives
/// the strongest reaction wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reaction {
    /// Nothing that can change the snapshot (our own reads, kubelet scratch directories).
    Ignore,
    /// A user-visible file changed: wait for the writer to go quiet, then read.
    ReadSoon,
    /// `..data` was swapped: the kubelet's update is complete and can be read at once.
    ReadNow,
    /// Events were lost (inotify queue overflow): read now, nothing can be assumed.
    Rescan,
    /// The watched directory itself was deleted or moved: the watch is dead, set it up again.
    RootGone,
}

pub(crate) fn classify(event: &notify::Event, root: &Path) -> Observed {
    let reaction = reaction(event, root);
    let write = match (&event.kind, event.paths.first()) {
        (_, None) => None,
        (_, Some(_)) if reaction != Reaction::ReadSoon => None,
        (EventKind::Modify(ModifyKind::Data(_)), Some(path)) => {
            Some(WriteActivity::Writing(path.clone()))
        }
        (
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            Some(path),
        ) => Some(WriteActivity::Finished(path.clone())),
        _ => None,
    };
    Observed { reaction, write }
}

fn reaction(event: &notify::Event, root: &Path) -> Reaction {
    if event.need_rescan() {
        return Reaction::Rescan;
    }
    match event.kind {
        // A close after writing ends a write: activity, like the writes before it.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        // Opening and closing files without writing is what our own reads produce;
        // reacting to them would make every read schedule the next one.
        EventKind::Access(_) => return Reaction::Ignore,
        _ => {}
    }
    event
        .paths
        .iter()
        .map(|path| classify_path(&event.kind, path, root))
        .max()
        .unwrap_or(Reaction::ReadSoon)
}

fn classify_path(kind: &EventKind, path: &Path, root: &Path) -> Reaction {
    let Ok(relative) = path.strip_prefix(root) else {
        return Reaction::Ignore;
    };
    let Some(Component::Normal(first)) = relative.components().next() else {
        // The event is about the root itself.
        return match kind {
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => Reaction::RootGone,
            _ => Reaction::Ignore,
        };
    };
    let first = first.to_string_lossy();
    if first == DATA_LINK {
        // Only a `..data` that appears marks a finished swap. One that disappears is the
        // volume being torn down: reading at once would report a half-deleted directory.
        if matches!(kind, EventKind::Remove(_)) {
            Reaction::ReadSoon
        } else {
            Reaction::ReadNow
        }
    } else if first.starts_with("..") {
        // `..data_tmp` and `..<timestamp>`: the kubelet preparing a swap that `..data`
        // will announce.
        Reaction::Ignore
    } else {
        Reaction::ReadSoon
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, Flag, RemoveKind};
    use notify::{Event, EventKind};
    use std::path::PathBuf;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    const ROOT: &str = "/etc/config";

    fn react(kind: EventKind, path: &str) -> Reaction {
        classify(&event(kind, path), Path::new(ROOT)).reaction
    }

    #[test]
    fn data_swap_is_read_at_once() {
        let renamed_to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(react(renamed_to, "/etc/config/..data"), Reaction::ReadNow);
        let created = EventKind::Create(CreateKind::File);
        assert_eq!(react(created, "/etc/config/..data"), Reaction::ReadNow);
    }

    #[test]
    fn data_link_removal_waits_for_quiet() {
        let removed = EventKind::Remove(RemoveKind::File);
        assert_eq!(react(removed, "/etc/config/..data"), Reaction::ReadSoon);
    }

    #[test]
    fn kubelet_scratch_names_are_ignored() {
        let created = EventKind::Create(CreateKind::Folder);
        assert_eq!(
            react(created, "/etc/config/..2026_11_22_01_02_03.123"),
            Reaction::Ignore
        );
        let renamed_from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(
            react(renamed_from, "/etc/config/..data_tmp"),
            Reaction::Ignore
        );
    }

    #[test]
    fn user_files_wait_for_quiet() {
        let written = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert_eq!(react(written, "/etc/config/app.yaml"), Reaction::ReadSoon);
        assert_eq!(
            react(written, "/etc/config/nested/deep.json"),
            Reaction::ReadSoon
        );
    }

    #[test]
    fn writes_open_and_close_a_file() {
        let path = "/etc/config/app.yaml";
        let written = classify(
            &event(
                EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)),
                path,
            ),
            Path::new(ROOT),
        );
        assert_eq!(written.write, Some(WriteActivity::Writing(path.into())));
        let closed = classify(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                path,
            ),
            Path::new(ROOT),
        );
        assert_eq!(closed.reaction, Reaction::ReadSoon);
        assert_eq!(closed.write, Some(WriteActivity::Finished(path.into())));
        let removed = classify(
            &event(EventKind::Remove(RemoveKind::File), path),
            Path::new(ROOT),
        );
        assert_eq!(removed.write, Some(WriteActivity::Finished(path.into())));
        // Kubelet scratch files are nobody's half-written config.
        let scratch = classify(
            &event(
                EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)),
                "/etc/config/..2026_11_22/app.yaml",
            ),
            Path::new(ROOT),
        );
        assert_eq!(scratch.write, None);
    }

    #[test]
    fn our_own_reads_are_ignored() {
        let opened = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert_eq!(react(opened, ROOT), Reaction::Ignore);
        assert_eq!(react(opened, "/etc/config/app.yaml"), Reaction::Ignore);
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert_eq!(react(closed, "/etc/config/app.yaml"), Reaction::Ignore);
    }

    #[test]
    fn losing_the_root_is_noticed() {
        assert_eq!(
            react(EventKind::Remove(RemoveKind::Folder), ROOT),
            Reaction::RootGone
        );
        let moved = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(react(moved, ROOT), Reaction::RootGone);
        let attrib = EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any));
        assert_eq!(react(attrib, ROOT), Reaction::Ignore);
    }

    #[test]
    fn overflow_means_rescan() {
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert_eq!(
            classify(&overflow, Path::new(ROOT)).reaction,
            Reaction::Rescan
        );
    }

    #[test]
    fn strongest_reaction_wins_and_strays_are_ignored() {
        let both = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
            .add_path(PathBuf::from("/etc/config/..data_tmp"))
            .add_path(PathBuf::from("/etc/config/..data"));
        assert_eq!(classify(&both, Path::new(ROOT)).reaction, Reaction::ReadNow);
        let created = EventKind::Create(CreateKind::File);
        assert_eq!(react(created, "/elsewhere/file"), Reaction::Ignore);
    }
}
