//! The thread watcher (`DirWatcher`) against directories written the way the kubelet
//! writes them. The cases are in `support/watch_cases.rs`; `watch_task.rs` runs them
//! against the task watcher.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use rekindle::DirWatcher as Watcher;

fn spawn<H>(
    dir: impl AsRef<Path>,
    options: rekindle::WatchOptions,
    handler: H,
) -> Result<Watcher, rekindle::WatchError>
where
    H: FnMut(rekindle::WatchEvent) + Send + 'static,
{
    Watcher::spawn(dir, options, handler)
}

include!("support/watch_cases.rs");
