//! The watcher as a task on a tokio runtime (feature `tokio`).
//!
//! Same state machine, same reads, same reports as [`DirWatcher`](super::DirWatcher);
//! what differs is who waits. The thread watcher waits on its own threads and hands
//! each report to the application, which must then wake its runtime: two thread
//! wake-ups between the kubelet's `..data` rename and an action. Here the runtime
//! itself polls the inotify descriptor, reads the volume and calls the handler, so
//! the rename wakes one thread, and the handler's work (a signal, a webhook) starts on
//! it at once. `rekindle watch` uses this.
//!
//! The read of the volume runs on the runtime's thread. A kubelet volume is at most a
//! few MiB of tmpfs or page cache (and [`ReadLimits`](crate::ReadLimits) bounds it), so
//! it is short; a runtime that must never block for that long should use the thread
//! watcher.

use std::future::pending;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::classify::{Reaction, classify};
use super::inotify::Inotify;
use super::machine::Input;
use super::{Core, Gate, ThreadWork, WatchError, WatchEvent, WatchOptions, look};

/// Watches one directory from a task on the current tokio runtime and calls a handler
/// with each [`WatchEvent`], on the runtime. Stops when dropped.
///
/// The events, and the rules for them, are those of [`DirWatcher`](super::DirWatcher).
#[derive(Debug)]
#[must_use = "the watcher stops when dropped; keep it for as long as the directory should be watched"]
pub struct AsyncDirWatcher {
    dir: PathBuf,
    ready: Arc<AtomicBool>,
    rescan: Arc<Notify>,
    gate: Arc<Gate>,
    task: JoinHandle<()>,
}

impl AsyncDirWatcher {
    /// Starts watching `dir` from a task spawned on the current runtime (this panics
    /// outside one, as `tokio::spawn` does). The runtime needs its IO and time drivers
    /// (`enable_all`, or `enable_io` and `enable_time`). The directory need not exist yet.
    ///
    /// `handler` runs on the runtime, one event at a time, and should not block: it
    /// holds up the watcher and the tasks sharing its thread. Fails at once if
    /// `options` are out of range (see [`WatchOptions::validate`]).
    pub fn spawn<H>(
        dir: impl AsRef<Path>,
        options: WatchOptions,
        handler: H,
    ) -> Result<AsyncDirWatcher, WatchError>
    where
        H: FnMut(WatchEvent) + Send + 'static,
    {
        let core = Core::prepare(dir.as_ref(), &options, handler)?;
        let (dir, ready, gate) = (core.dir.clone(), core.ready.clone(), core.gate.clone());
        let rescan = Arc::new(Notify::new());
        let task = tokio::spawn(run(core, rescan.clone()));
        Ok(AsyncDirWatcher {
            dir,
            ready,
            rescan,
            gate,
            task,
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
        self.rescan.notify_one();
    }
}

impl Drop for AsyncDirWatcher {
    fn drop(&mut self) {
        // No report after this returns (on another worker thread, a report in progress
        // is waited for), and the task ends at its next await.
        self.gate.close();
        self.task.abort();
    }
}

async fn run<H: FnMut(WatchEvent)>(mut core: Core<H>, rescan: Arc<Notify>) {
    let mut inotify: Option<AsyncFd<Inotify>> = None;
    let mut inputs = vec![Input::Start];
    loop {
        settle(&mut core, &mut inotify, inputs);
        let wake = core.machine.next_wake();
        inputs = tokio::select! {
            biased;
            events = next_events(inotify.as_mut()) => match events {
                // The machine ignores what `classify` says to ignore; dropping it here
                // saves the step.
                Ok(events) => events
                    .iter()
                    .map(|event| classify(event, &core.dir))
                    .filter(|observed| observed.reaction != Reaction::Ignore)
                    .map(Input::Event)
                    .collect(),
                // The machine sets up a new watch, which replaces this descriptor.
                Err(error) => vec![Input::InotifyFailed(error.to_string())],
            },
            () = rescan.notified() => vec![Input::Rescan],
            () = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => pending().await,
                }
            } => vec![Input::Wake],
        };
        // The select prefers events: a writer that never pauses would keep the timer
        // from ever being polled, and with it the bounds on how long a read may wait.
        if wake.is_some_and(|at| at <= Instant::now())
            && !matches!(inputs.last(), Some(Input::Wake))
        {
            inputs.push(Input::Wake);
        }
    }
}

/// Feeds `inputs`, and the answers to the effects they bring, until the machine waits.
fn settle<H: FnMut(WatchEvent)>(
    core: &mut Core<H>,
    inotify: &mut Option<AsyncFd<Inotify>>,
    inputs: Vec<Input>,
) {
    let mut inputs = inputs;
    loop {
        let work = core.feed(inputs);
        if work.is_empty() {
            return;
        }
        inputs = work
            .into_iter()
            .filter_map(|work| perform(&core.dir, inotify, work))
            .collect();
    }
}

fn perform(dir: &Path, inotify: &mut Option<AsyncFd<Inotify>>, work: ThreadWork) -> Option<Input> {
    match work {
        ThreadWork::Look => Some(Input::Looked(look(dir))),
        ThreadWork::StartInotify { recursive } => {
            *inotify = None;
            let started = Inotify::start(dir, recursive)
                .and_then(register)
                .map(|fd| {
                    tracing::debug!(
                        dir = %dir.display(),
                        recursive,
                        directories = fd.get_ref().watched(),
                        "inotify watch set up"
                    );
                    *inotify = Some(fd);
                })
                .map_err(describe_inotify_error);
            Some(Input::InotifyStarted(started))
        }
        ThreadWork::StopInotify => {
            *inotify = None;
            None
        }
    }
}

/// Puts the descriptor in the runtime's poller.
///
/// `AsyncFd::new` is deprecated because a type could hand out a descriptor it does not
/// own, or a different one later; registering that way is `unsafe`, which this crate
/// forbids. [`Inotify`] owns its descriptor for its whole life and always returns that
/// one, which is exactly the condition `register` states.
#[allow(deprecated)]
fn register(inotify: Inotify) -> io::Result<AsyncFd<Inotify>> {
    AsyncFd::with_interest(inotify, tokio::io::Interest::READABLE)
}

/// Everything waiting on the descriptor, once it is readable; never, without one.
async fn next_events(inotify: Option<&mut AsyncFd<Inotify>>) -> io::Result<Vec<notify::Event>> {
    let Some(fd) = inotify else {
        return pending().await;
    };
    loop {
        let mut guard = fd.readable_mut().await?;
        if let Ok(result) = guard.try_io(|fd| fd.get_mut().read_events()) {
            return result;
        }
    }
}

/// Turns the errors of setting up inotify into advice an operator can act on.
fn describe_inotify_error(error: io::Error) -> String {
    match error.raw_os_error() {
        Some(28) => {
            "the inotify watch limit is reached (raise fs.inotify.max_user_watches)".to_owned()
        }
        Some(24) => format!(
            "cannot create an inotify instance: {error} (raise fs.inotify.max_user_instances or the open-file limit)"
        ),
        _ => error.to_string(),
    }
}
