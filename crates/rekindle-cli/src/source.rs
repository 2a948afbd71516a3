//! The library's directory watchers, bridged into the async world.
//!
//! Each [`DirWatcher`] runs its own thread and calls a handler; the handler
//! only forwards the event into an unbounded channel (events are rare: one per
//! change, error or disappearance).

use std::path::PathBuf;
use std::time::Duration;

use rekindle::watch::{DirWatcher, WatchError, WatchEvent, WatchOptions};
use tokio::sync::mpsc;

#[derive(Debug)]
pub struct Sources {
    // Dropping a watcher stops it; they live as long as the receiver is used.
    _watchers: Vec<DirWatcher>,
    pub events: mpsc::UnboundedReceiver<WatchEvent>,
}

pub fn start(dirs: &[PathBuf], rescan_interval: Duration) -> Result<Sources, WatchError> {
    let (tx, events) = mpsc::unbounded_channel();
    let options = WatchOptions {
        rescan_interval,
        ..WatchOptions::default()
    };
    let mut watchers = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let tx = tx.clone();
        watchers.push(DirWatcher::spawn(dir, options.clone(), move |event| {
            let _ = tx.send(event);
        })?);
    }
    Ok(Sources {
        _watchers: watchers,
        events,
    })
}
