//! Watching a mounted directory and reporting each real change of its content.
//!
//! Detection is inotify on the directory itself, never on the files: in a kubelet volume
//! the files are symlinks through `..data`, and a watch on them dies at the first swap.
//! Every event schedules a re-read; the result counts as a change only when its
//! [`Digest`](crate::Digest) differs from the last one reported. That single rule gives
//! one change per kubelet swap, none for a content-identical rewrite, and correctness
//! after any missed event, since a later read always catches up.
//!
//! A directory once seen with `..data` is a kubelet volume for good: a read that finds
//! no `..data` there (the volume recreated but not yet written, or being torn down) is
//! not reported.
//!
//! The watcher runs on a thread of its own and needs no async runtime.

mod classify;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use notify::{INotifyWatcher, RecursiveMode, Watcher as _};

use crate::read::{DATA_LINK, SnapshotError};
use crate::snapshot::Snapshot;
use classify::{Reaction, classify};

/// A burst of writes to a plain directory may postpone the read at most this many quiet
/// periods, so that a writer that never stops cannot starve the reader.
const MAX_QUIET_PERIODS: u32 = 10;

/// Tuning for a [`DirWatcher`].
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long a plain directory (no `..data`) must be free of events before it is read,
    /// so that a writer replacing several files non-atomically is seen once, finished.
    /// Kubelet swaps do not wait: the `..data` rename marks them complete.
    pub quiet_period: Duration,
    /// The safety net: how often the directory is re-read even when no event came.
    pub rescan_interval: Duration,
    /// How often the directory is read when inotify cannot be used, and how often a
    /// missing directory is looked for.
    pub poll_interval: Duration,
    /// Poll instead of using inotify (for filesystems where inotify sees nothing, such as
    /// some network mounts).
    pub force_polling: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            quiet_period: Duration::from_millis(100),
            rescan_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            force_polling: false,
        }
    }
}

/// What a [`DirWatcher`] reports to its handler.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchEvent {
    /// The content differs from the last snapshot reported (or this is the first read).
    Changed(Change),
    /// The directory does not exist: at start, or it was deleted. It is looked for every
    /// [`WatchOptions::poll_interval`]; reported once per disappearance.
    Missing {
        /// The watched directory.
        dir: PathBuf,
    },
    /// The directory could not be read (reported once per distinct error until a read
    /// succeeds). The last snapshot reported stays the current one.
    Failed {
        /// The watched directory.
        dir: PathBuf,
        /// Why the read failed.
        error: Arc<SnapshotError>,
    },
    /// inotify could not be used, so the directory is being polled instead.
    Polling {
        /// The watched directory.
        dir: PathBuf,
        /// Why inotify was not available.
        reason: String,
    },
}

/// A new snapshot of a watched directory.
#[derive(Debug, Clone)]
pub struct Change {
    /// The watched directory, as given to [`DirWatcher::spawn`] but made absolute.
    pub dir: PathBuf,
    /// The content now.
    pub snapshot: Arc<Snapshot>,
    /// The content last reported; `None` on the first successful read.
    pub previous: Option<Arc<Snapshot>>,
}

/// Why a watcher could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The path could not be made absolute.
    #[error("{}: cannot resolve the path: {source}", dir.display())]
    Path {
        /// The path given.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The watcher thread could not be started.
    #[error("cannot start the watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

enum Message {
    Fs(notify::Result<notify::Event>),
    Rescan,
    Stop,
}

/// Watches one directory on a background thread and calls a handler with each
/// [`WatchEvent`]. Stops when dropped.
///
/// The first successful read is reported as a [`Change`] with `previous: None`; after
/// that, only reads whose digest differs are.
#[derive(Debug)]
pub struct DirWatcher {
    dir: PathBuf,
    messages: Sender<Message>,
    ready: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DirWatcher {
    /// Starts watching `dir`. The directory need not exist yet: it is waited for.
    ///
    /// `handler` runs on the watcher's thread, one event at a time; a slow handler delays
    /// the next read, never loses it.
    pub fn spawn<H>(
        dir: impl AsRef<Path>,
        options: WatchOptions,
        handler: H,
    ) -> Result<DirWatcher, WatchError>
    where
        H: FnMut(WatchEvent) + Send + 'static,
    {
        let dir = std::path::absolute(dir.as_ref()).map_err(|source| WatchError::Path {
            dir: dir.as_ref().to_owned(),
            source,
        })?;
        let (messages, inbox) = mpsc::channel();
        let ready = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            dir: dir.clone(),
            options,
            handler,
            ready: ready.clone(),
            messages: messages.clone(),
            source: Source::Missing,
            last: None,
            last_error: None,
            missing_reported: false,
            kubelet_volume: false,
            pending: None,
            next_tick: Instant::now(),
        };
        let thread = thread::Builder::new()
            .name("rekindle-watch".into())
            .spawn(move || worker.run(inbox))
            .map_err(WatchError::Thread)?;
        Ok(DirWatcher {
            dir,
            messages,
            ready,
            thread: Some(thread),
        })
    }

    /// The watched directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True once the directory has been read successfully at least once.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Asks for an immediate re-read, as the periodic rescan would do.
    pub fn rescan(&self) {
        let _ = self.messages.send(Message::Rescan);
    }
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        let _ = self.messages.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            // A handler that drops its own watcher must not wait for itself.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// Where the worker's knowledge of the directory comes from.
enum Source {
    /// inotify on the directory whose device and inode are `identity`: a directory
    /// recreated at the same path is a different one and needs a new watch.
    Inotify {
        _watcher: INotifyWatcher,
        identity: (u64, u64),
    },
    /// inotify was unavailable: read every poll interval.
    Polling,
    /// The directory does not exist: look for it every poll interval.
    Missing,
}

struct Pending {
    first_event: Instant,
    deadline: Instant,
}

struct Worker<H> {
    dir: PathBuf,
    options: WatchOptions,
    handler: H,
    ready: Arc<AtomicBool>,
    messages: Sender<Message>,
    source: Source,
    last: Option<Arc<Snapshot>>,
    last_error: Option<String>,
    /// Whether the current absence of the directory was reported already.
    missing_reported: bool,
    /// Whether the directory has been seen as a kubelet volume (with `..data`).
    kubelet_volume: bool,
    pending: Option<Pending>,
    next_tick: Instant,
}

impl<H: FnMut(WatchEvent)> Worker<H> {
    fn run(mut self, inbox: Receiver<Message>) {
        self.establish();
        loop {
            let wake = match &self.pending {
                Some(pending) => pending.deadline.min(self.next_tick),
                None => self.next_tick,
            };
            match inbox.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Message::Rescan) => self.read(),
                Ok(Message::Fs(Ok(event))) => self.react(classify(&event, &self.dir)),
                Ok(Message::Fs(Err(error))) => {
                    // inotify itself failed (a watch could not be added, the queue could
                    // not be read): trust nothing, start over.
                    tracing::warn!(dir = %self.dir.display(), %error, "inotify error; re-establishing the watch");
                    self.establish();
                }
                Err(RecvTimeoutError::Timeout) => self.on_timeout(),
            }
        }
    }

    fn react(&mut self, reaction: Reaction) {
        match reaction {
            Reaction::Ignore => {}
            Reaction::ReadSoon => {
                let now = Instant::now();
                let quiet = self.options.quiet_period;
                let pending = self.pending.get_or_insert(Pending {
                    first_event: now,
                    deadline: now + quiet,
                });
                pending.deadline =
                    (now + quiet).min(pending.first_event + quiet * MAX_QUIET_PERIODS);
            }
            Reaction::ReadNow => self.read(),
            Reaction::Rescan => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    "inotify queue overflowed, events were lost; re-reading the directory"
                );
                self.read();
            }
            Reaction::RootGone => self.establish(),
        }
    }

    fn on_timeout(&mut self) {
        let now = Instant::now();
        if self.pending.as_ref().is_some_and(|p| p.deadline <= now) {
            self.read();
        }
        if self.next_tick <= now {
            self.tick();
        }
    }

    /// The periodic pass: the safety-net rescan, a poll, or a look for a missing directory.
    fn tick(&mut self) {
        match &self.source {
            Source::Missing => self.establish(),
            Source::Polling => {
                self.read();
                self.schedule_tick();
            }
            Source::Inotify { identity, .. } => {
                if identity_of(&self.dir) == Some(*identity) {
                    self.read();
                    self.schedule_tick();
                } else {
                    self.establish();
                }
            }
        }
    }

    fn schedule_tick(&mut self) {
        let interval = match self.source {
            Source::Inotify { .. } => self.options.rescan_interval,
            Source::Polling | Source::Missing => self.options.poll_interval,
        };
        self.next_tick = Instant::now() + interval;
    }

    /// (Re)creates the watch for whatever directory is at the path now, then reads it.
    fn establish(&mut self) {
        let Some(identity) = identity_of(&self.dir) else {
            self.go_missing();
            return;
        };
        self.missing_reported = false;
        self.source = if self.options.force_polling {
            Source::Polling
        } else {
            match self.start_inotify() {
                Ok(watcher) => Source::Inotify {
                    _watcher: watcher,
                    identity,
                },
                Err(reason) => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        %reason,
                        poll_interval = ?self.options.poll_interval,
                        "inotify unavailable; falling back to polling"
                    );
                    (self.handler)(WatchEvent::Polling {
                        dir: self.dir.clone(),
                        reason,
                    });
                    Source::Polling
                }
            }
        };
        self.schedule_tick();
        self.read();
    }

    fn start_inotify(&self) -> Result<INotifyWatcher, String> {
        let messages = self.messages.clone();
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = INotifyWatcher::new(
            move |event| {
                let _ = messages.send(Message::Fs(event));
            },
            config,
        )
        .map_err(describe_notify_error)?;
        // In a kubelet volume every change goes through `..data` in the root, so the root
        // alone is enough. A plain directory may be changed anywhere below.
        let mode = if fs::symlink_metadata(self.dir.join(DATA_LINK)).is_ok() {
            RecursiveMode::NonRecursive
        } else {
            RecursiveMode::Recursive
        };
        watcher
            .watch(&self.dir, mode)
            .map_err(describe_notify_error)?;
        Ok(watcher)
    }

    fn go_missing(&mut self) {
        if !self.missing_reported {
            tracing::info!(dir = %self.dir.display(), "directory missing; waiting for it");
            (self.handler)(WatchEvent::Missing {
                dir: self.dir.clone(),
            });
            self.missing_reported = true;
        }
        self.source = Source::Missing;
        self.pending = None;
        self.schedule_tick();
    }

    fn read(&mut self) {
        self.pending = None;
        match Snapshot::read(&self.dir) {
            Ok(snapshot) => {
                // A kubelet volume always has `..data`, even for an empty ConfigMap. Once
                // seen, a state without it is the volume being set up (created empty,
                // not yet written) or torn down: not content to report. The `..data`
                // that follows brings the next read.
                if fs::symlink_metadata(self.dir.join(DATA_LINK)).is_ok() {
                    self.kubelet_volume = true;
                } else if self.kubelet_volume {
                    tracing::debug!(dir = %self.dir.display(), "volume without ..data (being set up or torn down); waiting");
                    return;
                }
                self.last_error = None;
                self.ready.store(true, Ordering::Release);
                if self
                    .last
                    .as_ref()
                    .is_some_and(|last| last.digest() == snapshot.digest())
                {
                    return;
                }
                let snapshot = Arc::new(snapshot);
                let previous = self.last.replace(snapshot.clone());
                (self.handler)(WatchEvent::Changed(Change {
                    dir: self.dir.clone(),
                    snapshot,
                    previous,
                }));
            }
            Err(error) if error.is_missing() => self.go_missing(),
            Err(error) => {
                let text = error.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(dir = %self.dir.display(), %error, "cannot read directory; keeping the last snapshot");
                    self.last_error = Some(text);
                    (self.handler)(WatchEvent::Failed {
                        dir: self.dir.clone(),
                        error: Arc::new(error),
                    });
                }
            }
        }
    }
}

fn identity_of(dir: &Path) -> Option<(u64, u64)> {
    fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// Turns notify's errors into advice an operator can act on.
fn describe_notify_error(error: notify::Error) -> String {
    match &error.kind {
        notify::ErrorKind::MaxFilesWatch => {
            "the inotify watch limit is reached (raise fs.inotify.max_user_watches)".to_owned()
        }
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(24) => format!(
            "cannot create an inotify instance: {io} (raise fs.inotify.max_user_instances or the open-file limit)"
        ),
        _ => error.to_string(),
    }
}
