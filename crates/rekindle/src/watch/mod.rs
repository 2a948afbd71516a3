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
//! The decisions live in a pure state machine (`machine.rs`); the thread here only
//! performs its effects (stat, inotify, read, report) and feeds back their results. It
//! needs no async runtime. With the `tokio` feature, [`AsyncDirWatcher`] runs the same
//! machine as a task that polls inotify itself (`task.rs`), one thread wake-up fewer
//! between a swap and the handler.

mod classify;
#[cfg(feature = "tokio")]
mod inotify;
mod machine;
mod options;
#[cfg(feature = "tokio")]
mod task;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use notify::{INotifyWatcher, RecursiveMode, Watcher as _};

use crate::read::{DATA_LINK, ReadLimits, SnapshotError};
use crate::reload::lock;
use crate::snapshot::Snapshot;
use classify::{Reaction, classify};
use machine::{Effect, Input, Looked, Machine};

pub use options::{InvalidOptions, WatchOptions};
#[cfg(feature = "tokio")]
pub use task::AsyncDirWatcher;

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
    #[error("{}: cannot resolve the path", dir.display())]
    Path {
        /// The path given.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The [`WatchOptions`] are out of range.
    #[error(transparent)]
    Options(#[from] InvalidOptions),
    /// The watcher thread could not be started.
    #[error("cannot start the watcher thread")]
    Thread(#[source] std::io::Error),
}

enum Message {
    Fs(notify::Result<notify::Event>),
    /// Work the core left while handling an event on inotify's thread.
    Perform(Vec<ThreadWork>),
    Rescan,
    Stop,
}

/// Watches one directory on a background thread and calls a handler with each
/// [`WatchEvent`]. Stops when dropped, so keep it for as long as the directory should be
/// watched.
///
/// The first successful read is reported as a [`Change`] with `previous: None`; after
/// that, only reads whose digest differs are.
#[derive(Debug)]
#[must_use = "the watcher stops when dropped; keep it for as long as the directory should be watched"]
pub struct DirWatcher {
    dir: PathBuf,
    messages: Sender<Message>,
    ready: Arc<AtomicBool>,
    gate: Arc<Gate>,
    thread: Option<JoinHandle<()>>,
}

impl DirWatcher {
    /// Starts watching `dir`. The directory need not exist yet: it is waited for.
    ///
    /// `handler` runs on the watcher's thread, one event at a time; a slow handler delays
    /// the next read, never loses it. Fails at once if `options` are out of range (see
    /// [`WatchOptions::validate`]).
    pub fn spawn<H>(
        dir: impl AsRef<Path>,
        options: WatchOptions,
        handler: H,
    ) -> Result<DirWatcher, WatchError>
    where
        H: FnMut(WatchEvent) + Send + 'static,
    {
        let core = Core::prepare(dir.as_ref(), &options, handler)?;
        let (dir, ready, gate) = (core.dir.clone(), core.ready.clone(), core.gate.clone());
        let (messages, inbox) = mpsc::channel();
        let worker = Worker {
            core: Arc::new(Mutex::new(core)),
            dir: dir.clone(),
            messages: messages.clone(),
            inotify: None,
        };
        let thread = thread::Builder::new()
            .name("rekindle-watch".into())
            .spawn(move || worker.run(inbox))
            .map_err(WatchError::Thread)?;
        Ok(DirWatcher {
            dir,
            messages,
            ready,
            gate,
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
        // No report after this returns: inotify's thread may be reading a swap right now.
        let inside_handler = self.gate.close();
        let _ = self.messages.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            // A handler that drops its own watcher must not wait for the thread, which
            // may be waiting for the handler to finish.
            if !inside_handler && thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// Lets the owner stop reports: once closed, the handler is never called again, and
/// closing waits for a call in progress (unless the handler itself is closing).
#[derive(Debug, Default)]
struct Gate {
    closed: AtomicBool,
    /// Held while the handler runs, with the thread running it.
    calling: Mutex<Option<thread::ThreadId>>,
    busy: Mutex<()>,
}

impl Gate {
    /// Returns true when called from inside the handler.
    fn close(&self) -> bool {
        self.closed.store(true, Ordering::Release);
        let inside = *lock(&self.calling) == Some(thread::current().id());
        if !inside {
            // Waits for a call in progress to end; later ones see `closed`.
            drop(lock(&self.busy));
        }
        inside
    }

    fn call<H: FnMut(WatchEvent)>(&self, handler: &mut H, event: WatchEvent) {
        let _busy = lock(&self.busy);
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        *lock(&self.calling) = Some(thread::current().id());
        handler(event);
        *lock(&self.calling) = None;
    }
}

/// The effects only the watcher thread performs: it owns the inotify watch, and a look
/// at the path decides how the watch is set up.
#[derive(Debug)]
enum ThreadWork {
    Look,
    StartInotify { recursive: bool },
    StopInotify,
}

/// The machine with what it needs to read and report. Shared by the watcher thread and
/// inotify's own thread, which handles a `..data` swap itself: one thread wake-up fewer
/// between the kubelet's rename and the handler.
struct Core<H> {
    machine: Machine,
    dir: PathBuf,
    limits: ReadLimits,
    handler: H,
    ready: Arc<AtomicBool>,
    gate: Arc<Gate>,
}

impl<H> Core<H> {
    /// What both watchers start from: `options` checked, the path made absolute, the
    /// machine, and the readiness flag and gate their owners share.
    fn prepare(dir: &Path, options: &WatchOptions, handler: H) -> Result<Core<H>, WatchError> {
        options.validate()?;
        let dir = std::path::absolute(dir).map_err(|source| WatchError::Path {
            dir: dir.to_owned(),
            source,
        })?;
        Ok(Core {
            machine: Machine::new(dir.clone(), options),
            dir,
            limits: options.limits.clone(),
            handler,
            ready: Arc::new(AtomicBool::new(false)),
            gate: Arc::new(Gate::default()),
        })
    }
}

impl<H: FnMut(WatchEvent)> Core<H> {
    /// Steps the machine with `inputs` and with the reads it asks for, and reports what it
    /// says. Reads asked for during a batch are done once, at its end: a read shows the
    /// directory as it is then, which answers every request. Returns the work that needs
    /// the watcher thread (stat, inotify set-up).
    fn feed(&mut self, inputs: Vec<Input>) -> Vec<ThreadWork> {
        let mut inputs = std::collections::VecDeque::from(inputs);
        let mut others = Vec::new();
        loop {
            let mut read = false;
            while let Some(input) = inputs.pop_front() {
                for effect in self.machine.step(Instant::now(), input) {
                    match effect {
                        Effect::Read => read = true,
                        Effect::Report(event) => {
                            // Ready before the handler hears of the first content: whoever
                            // it tells may ask.
                            self.ready.store(self.machine.is_ready(), Ordering::Release);
                            self.gate.call(&mut self.handler, event);
                        }
                        Effect::Look => others.push(ThreadWork::Look),
                        Effect::StartInotify { recursive } => {
                            others.push(ThreadWork::StartInotify { recursive });
                        }
                        Effect::StopInotify => others.push(ThreadWork::StopInotify),
                    }
                }
            }
            if !read {
                break;
            }
            inputs.push_back(Input::Read(Snapshot::read_volume(&self.dir, &self.limits)));
        }
        self.ready.store(self.machine.is_ready(), Ordering::Release);
        others
    }
}

/// The watcher thread: timers, messages, and the effects that touch inotify.
struct Worker<H> {
    core: Arc<Mutex<Core<H>>>,
    dir: PathBuf,
    messages: Sender<Message>,
    inotify: Option<INotifyWatcher>,
}

impl<H: FnMut(WatchEvent) + Send + 'static> Worker<H> {
    fn run(mut self, inbox: Receiver<Message>) {
        let mut batch = vec![Input::Start];
        loop {
            self.feed(batch);
            let timeout = match lock(&self.core).machine.next_wake() {
                Some(wake) => wake.saturating_duration_since(Instant::now()),
                // Nothing scheduled: only a message can wake the machine.
                None => std::time::Duration::MAX,
            };
            let first = match inbox.recv_timeout(timeout) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    batch = vec![Input::Wake];
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Everything already queued joins this batch: one kubelet swap arrives as
            // several events, and one read answers them all.
            batch = Vec::new();
            for message in std::iter::once(first).chain(inbox.try_iter()) {
                match message {
                    Message::Stop => return,
                    Message::Rescan => batch.push(Input::Rescan),
                    Message::Fs(Ok(event)) => batch.push(Input::Event(classify(&event, &self.dir))),
                    Message::Fs(Err(error)) => batch.push(Input::InotifyFailed(error.to_string())),
                    Message::Perform(effects) => {
                        batch.extend(effects.into_iter().filter_map(|e| self.perform(e)));
                    }
                }
            }
        }
    }

    fn feed(&mut self, inputs: Vec<Input>) {
        let mut inputs = inputs;
        loop {
            let effects = lock(&self.core).feed(inputs);
            if effects.is_empty() {
                return;
            }
            inputs = effects
                .into_iter()
                .filter_map(|e| self.perform(e))
                .collect();
        }
    }

    /// Performs work the core left to this thread.
    fn perform(&mut self, work: ThreadWork) -> Option<Input> {
        match work {
            ThreadWork::Look => Some(Input::Looked(look(&self.dir))),
            ThreadWork::StartInotify { recursive } => {
                // The old watch goes first: its thread would otherwise deliver events
                // about a directory that is gone.
                self.inotify = None;
                let started = self
                    .start_inotify(recursive)
                    .map(|w| self.inotify = Some(w));
                Some(Input::InotifyStarted(started))
            }
            ThreadWork::StopInotify => {
                self.inotify = None;
                None
            }
        }
    }

    fn start_inotify(&self, recursive: bool) -> Result<INotifyWatcher, String> {
        let messages = self.messages.clone();
        let core = self.core.clone();
        let dir = self.dir.clone();
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = INotifyWatcher::new(
            move |event: notify::Result<notify::Event>| {
                let observed = match &event {
                    Ok(e) => classify(e, &dir),
                    Err(_) => {
                        let _ = messages.send(Message::Fs(event));
                        return;
                    }
                };
                match observed.reaction {
                    // Our own reads open and close files: dropped here instead of
                    // waking the watcher thread for each, right when a swap is read.
                    Reaction::Ignore => {}
                    // A finished kubelet swap: read and report right here.
                    Reaction::ReadNow => {
                        let others = lock(&core).feed(vec![Input::Event(observed)]);
                        if !others.is_empty() {
                            let _ = messages.send(Message::Perform(others));
                        }
                    }
                    _ => {
                        let _ = messages.send(Message::Fs(event));
                    }
                }
            },
            config,
        )
        .map_err(describe_notify_error)?;
        // In a kubelet volume every change goes through `..data` in the root, so the root
        // alone is enough. A plain directory may be changed anywhere below.
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        watcher
            .watch(&self.dir, mode)
            .map_err(describe_notify_error)?;
        Ok(watcher)
    }
}

fn look(dir: &Path) -> Option<Looked> {
    let metadata = fs::metadata(dir).ok().filter(|m| m.is_dir())?;
    Some(Looked {
        identity: (metadata.dev(), metadata.ino()),
        has_data_link: fs::symlink_metadata(dir.join(DATA_LINK)).is_ok(),
    })
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
