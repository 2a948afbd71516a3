//! From watch events to "run the actions now": what both `rekindle watch` and
//! `rekindle run` do with each event before their own actions.
//!
//! The rule: a change is a snapshot whose digest differs from the config in
//! force (the last one that passed validation, or the first read). The first
//! read of each directory only records the config in force (unless
//! `--reload-on-start`); a change that fails validation leaves it in force.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use rekindle::snapshot::{Snapshot, SnapshotDiff};
use rekindle::watch::{Change, WatchEvent};

use crate::children::Children;
use crate::metrics::Metrics;
use crate::plan::CommandPlan;
use crate::server::Readiness;
use crate::shell;

/// A change waiting for its actions.
#[derive(Debug)]
pub struct Pending {
    pub change: Change,
    /// Against the config in force.
    pub diff: SnapshotDiff,
}

impl Pending {
    pub fn digest(&self) -> String {
        self.change.snapshot.digest().to_string()
    }

    pub fn short(&self) -> String {
        self.change.snapshot.digest().short()
    }

    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("REKINDLE_DIR", self.change.dir.display().to_string()),
            ("REKINDLE_DIGEST", self.digest()),
        ]
    }
}

#[derive(Debug)]
pub struct Pipeline {
    pub children: Children,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    validate: Option<CommandPlan>,
    reload_on_start: bool,
    in_force: HashMap<PathBuf, Arc<Snapshot>>,
}

impl Pipeline {
    pub fn new(
        children: Children,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        validate: Option<CommandPlan>,
        reload_on_start: bool,
    ) -> Pipeline {
        Pipeline {
            children,
            metrics,
            readiness,
            validate,
            reload_on_start,
            in_force: HashMap::new(),
        }
    }

    /// Bookkeeping for one event; queues the change to act on, if any.
    /// Returns true when a change was queued.
    pub fn take(&mut self, event: WatchEvent, queue: &mut VecDeque<Pending>) -> bool {
        let Some(pending) = self.triage(event, queue) else {
            return false;
        };
        if let Some(slot) = queue
            .iter_mut()
            .find(|p| p.change.dir == pending.change.dir)
        {
            tracing::debug!(dir = %pending.change.dir.display(), "a newer change replaces one not yet acted on");
            *slot = pending;
        } else {
            queue.push_back(pending);
        }
        true
    }

    fn triage(&mut self, event: WatchEvent, queue: &mut VecDeque<Pending>) -> Option<Pending> {
        match event {
            WatchEvent::Changed(change) => self.triage_change(change, queue),
            WatchEvent::Missing { dir } => {
                tracing::warn!(dir = %dir.display(), "directory does not exist (yet); waiting for it");
                None
            }
            WatchEvent::Failed { dir, error } => {
                self.metrics.watch_error();
                tracing::warn!(dir = %dir.display(), error = %error, "cannot read directory; the config in force stays");
                None
            }
            WatchEvent::Polling { dir, reason } => {
                tracing::warn!(dir = %dir.display(), reason = %reason, "inotify unavailable; polling the directory instead");
                None
            }
            other => {
                tracing::debug!(event = ?other, "ignoring watch event");
                None
            }
        }
    }

    fn triage_change(&mut self, change: Change, queue: &mut VecDeque<Pending>) -> Option<Pending> {
        self.readiness.mark_read(&change.dir);
        let Some(in_force) = self.in_force.get(&change.dir).cloned() else {
            tracing::info!(
                dir = %change.dir.display(),
                keys = change.snapshot.len(),
                digest = %change.snapshot.digest().short(),
                "watching"
            );
            self.in_force
                .insert(change.dir.clone(), change.snapshot.clone());
            if !self.reload_on_start {
                return None;
            }
            self.metrics.change();
            let diff = Snapshot::from_entries(std::iter::empty::<(String, Vec<u8>)>())
                .diff(&change.snapshot);
            return Some(Pending { change, diff });
        };
        if in_force.digest() == change.snapshot.digest() {
            tracing::debug!(
                dir = %change.dir.display(),
                digest = %change.snapshot.digest().short(),
                "content is the config in force again; nothing to do"
            );
            // A change queued for this directory is stale now.
            queue.retain(|p| p.change.dir != change.dir);
            return None;
        }
        self.metrics.change();
        let diff = in_force.diff(&change.snapshot);
        Some(Pending { change, diff })
    }

    /// Runs `--validate` for a change; true if there is none or it passed.
    pub async fn validate(&self, pending: &Pending) -> bool {
        let Some(plan) = &self.validate else {
            return true;
        };
        let env = pending.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let outcome = shell::run(&self.children, &plan.command, &env, plan.timeout, true).await;
        let (status, stderr) = match outcome {
            Ok(o) if o.exit.success() => return true,
            Ok(o) => (o.exit.to_string(), o.stderr_tail),
            Err(shell::ShellError::Timeout { stderr_tail, .. }) => {
                (format!("timed out after {:?}", plan.timeout), stderr_tail)
            }
            Err(e) => (e.to_string(), String::new()),
        };
        self.metrics.validation_failure();
        tracing::warn!(
            dir = %pending.change.dir.display(),
            digest = %pending.short(),
            added = %pending.diff.added.join(","),
            removed = %pending.diff.removed.join(","),
            modified = %pending.diff.modified.join(","),
            validate = %plan.command,
            status = %status,
            stderr = %stderr,
            "validation failed: no action; the config in force stays"
        );
        false
    }

    /// Records a validated change as the config in force.
    pub fn accept(&mut self, pending: &Pending) {
        self.in_force
            .insert(pending.change.dir.clone(), pending.change.snapshot.clone());
    }

    /// One line per change: digest, key names (never values), actions and outcome.
    pub fn log_applied(
        &self,
        pending: &Pending,
        outcome: &[(&'static str, Result<String, String>)],
    ) {
        let actions: Vec<String> = outcome
            .iter()
            .map(|(name, result)| match result {
                Ok(detail) => format!("{name}: ok ({detail})"),
                Err(error) => format!("{name}: FAILED ({error})"),
            })
            .collect();
        let failed = outcome.iter().any(|(_, r)| r.is_err());
        let (dir, digest) = (pending.change.dir.display(), pending.short());
        let (added, removed, modified) = (
            pending.diff.added.join(","),
            pending.diff.removed.join(","),
            pending.diff.modified.join(","),
        );
        let actions = actions.join("; ");
        if failed {
            tracing::error!(dir = %dir, digest = %digest, added = %added, removed = %removed, modified = %modified, actions = %actions, "config change: action failed");
        } else {
            tracing::info!(dir = %dir, digest = %digest, added = %added, removed = %removed, modified = %modified, actions = %actions, "config change applied");
        }
    }
}
