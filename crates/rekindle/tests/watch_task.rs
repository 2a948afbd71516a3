//! The task watcher (`AsyncDirWatcher`, feature `tokio`) against directories written the
//! way the kubelet writes them: the same cases as the thread watcher
//! (`support/watch_cases.rs`), each watcher spawned on a runtime whose one worker
//! thread polls inotify and calls the handler.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::OnceLock;

use rekindle::watch::AsyncDirWatcher as Watcher;
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn spawn<H>(
    dir: impl AsRef<Path>,
    options: rekindle::WatchOptions,
    handler: H,
) -> Result<Watcher, rekindle::WatchError>
where
    H: FnMut(rekindle::WatchEvent) + Send + 'static,
{
    let _entered = runtime().enter();
    Watcher::spawn(dir, options, handler)
}

include!("support/watch_cases.rs");
