//! What runs when a change is accepted: one trait, one typed outcome, for every action
//! of `rekindle watch` (signal, exec, webhook) and for `rekindle run`'s child.

pub mod exec;
pub mod signal;
pub mod supervise;
pub mod webhook;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use rekindle::Digest;
use rekindle::snapshot::SnapshotDiff;

/// The change an action runs for.
#[derive(Debug, Clone)]
pub struct ChangeCtx {
    /// The watched directory that changed.
    pub dir: PathBuf,
    /// Its new content digest.
    pub digest: Digest,
    /// Key names that changed against the config in force (never values).
    pub diff: SnapshotDiff,
}

impl ChangeCtx {
    /// `REKINDLE_DIR` and `REKINDLE_DIGEST`, for commands.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("REKINDLE_DIR", self.dir.display().to_string()),
            ("REKINDLE_DIGEST", self.digest.to_string()),
        ]
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it is for; the text says what, for the change's log line.
    Done(String),
    /// It did not; the reason, for the log line. The action is retried with backoff.
    Failed(String),
    /// A newer change arrived first and will run the action again; not a failure.
    Superseded,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done(detail) => write!(f, "ok ({detail})"),
            Outcome::Failed(reason) => write!(f, "FAILED ({reason})"),
            Outcome::Superseded => f.write_str("superseded by a newer change"),
        }
    }
}

/// A future an action returns; actions run on the driver's single thread.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// One thing to do on each accepted change.
pub trait Action: fmt::Debug {
    /// The `action` label of the metrics and the log line.
    fn name(&self) -> &'static str;

    /// Whether a newer change may cancel this action while it runs. True for calls
    /// that the newer change repeats anyway (a webhook still retrying); false for
    /// anything that must not be cut in the middle.
    fn supersedable(&self) -> bool {
        false
    }

    /// Runs the action for `change`.
    fn run<'a>(&'a mut self, change: &'a ChangeCtx) -> ActionFuture<'a>;
}
