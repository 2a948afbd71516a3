//! The one event driver of `rekindle watch` and `rekindle run`: from watcher changes to
//! actions, in one place.
//!
//! For each directory: take its newest content, compare it with the config in force (a
//! change is a new digest), validate it, check it did not move during validation, make
//! it the config in force, run the actions, count and log the outcome, and retry what
//! failed with backoff until it succeeds or newer content replaces it. The first read of
//! a directory only records the config in force (unless `--reload-on-start`).
//!
//! What differs between the two commands is outside: the actions (signal, exec and
//! webhook; or the supervised program) and the [`Host`], which decides when to stop.

mod backoff;
mod mailbox;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rekindle::ReadLimits;
use rekindle::snapshot::{Snapshot, SnapshotDiff};
use rekindle::watch::{AsyncDirWatcher, Change, WatchError, WatchEvent, WatchOptions};

use crate::action::{Action, ChangeCtx, Outcome};
use crate::metrics::{ActionResult, Metrics};
use crate::plan::CommandPlan;
use crate::process::{Children, shell};
use crate::report::Reporter;
use crate::server::Readiness;
use crate::verify::{Verifier, VerifyPlan};
pub use mailbox::Mailbox;
use rekindle::report::Result as Reported;

/// What the driver runs inside: it says when to stop.
pub trait Host {
    /// Resolves with the exit code when rekindle should stop, doing meanwhile whatever
    /// the mode needs (`rekindle run` forwards signals to its program). It is dropped
    /// and called again between changes, so it must not lose anything when dropped.
    fn stopped(&mut self) -> impl Future<Output = ExitCode>;
}

/// Starts one watcher per directory, each leaving its changes in `mailbox`. Dropping
/// the returned watchers stops them.
///
/// The watchers are tasks on this runtime, which polls inotify itself: a kubelet swap
/// wakes this thread once, and the driver's task runs right after the watcher's.
pub fn watch(
    dirs: &[PathBuf],
    options: &WatchOptions,
    mailbox: &Arc<Mailbox>,
    metrics: &Arc<Metrics>,
) -> Result<Vec<AsyncDirWatcher>, WatchError> {
    dirs.iter()
        .map(|dir| {
            let (mailbox, metrics) = (mailbox.clone(), metrics.clone());
            // The watcher logs what it reports; here it is only routed: changes to the
            // mailbox, read failures to the metrics.
            AsyncDirWatcher::spawn(dir, options.clone(), move |event| match event {
                WatchEvent::Changed(change) => mailbox.put(change),
                WatchEvent::Failed { .. } => metrics.watch_error(),
                _ => {}
            })
        })
        .collect()
}

/// Where a piece of work stands.
#[derive(Debug, Clone)]
enum Stage {
    /// Not validated yet.
    Validate,
    /// Validated and in force; these actions (indexes) are still to run.
    Act(Vec<usize>),
}

#[derive(Debug)]
struct Work {
    dir: PathBuf,
    snapshot: Arc<Snapshot>,
    diff: SnapshotDiff,
    stage: Stage,
    /// 0 for a new change, then the number of the retry.
    attempt: u32,
}

impl Work {
    fn ctx(&self) -> ChangeCtx {
        ChangeCtx {
            dir: self.dir.clone(),
            digest: *self.snapshot.digest(),
            diff: self.diff.clone(),
        }
    }
}

/// The driver's bookkeeping: what is in force, what waits, what to retry.
#[derive(Debug)]
struct Intake {
    mailbox: Arc<Mailbox>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    reload_on_start: bool,
    reporter: Option<Reporter>,
    in_force: HashMap<PathBuf, Arc<Snapshot>>,
    queue: VecDeque<Work>,
    retries: Vec<(Instant, Work)>,
}

impl Intake {
    /// Takes what the watchers left; true when it queued new content to act on.
    fn collect(&mut self) -> bool {
        let mut queued = false;
        for change in self.mailbox.take() {
            queued |= self.triage(change);
        }
        queued
    }

    fn triage(&mut self, change: Change) -> bool {
        let Change { dir, snapshot, .. } = change;
        self.readiness.mark_read(&dir);
        // Whatever waits for this directory with other content is outdated now.
        self.queue
            .retain(|w| w.dir != dir || w.snapshot.digest() == snapshot.digest());
        self.retries
            .retain(|(_, w)| w.dir != dir || w.snapshot.digest() == snapshot.digest());
        let diff = match self.in_force.get(&dir) {
            None => {
                tracing::info!(
                    dir = %dir.display(),
                    keys = snapshot.len(),
                    digest = %snapshot.digest().short(),
                    "watching"
                );
                self.in_force.insert(dir.clone(), snapshot.clone());
                // The content at start is what the application started with.
                self.report(&dir, &snapshot, Reported::Applied, None);
                if !self.reload_on_start {
                    return false;
                }
                Snapshot::from_entries(std::iter::empty::<(String, Vec<u8>)>()).diff(&snapshot)
            }
            Some(in_force) if in_force.digest() == snapshot.digest() => {
                tracing::debug!(dir = %dir.display(), digest = %snapshot.digest().short(), "content is the config in force; nothing to do");
                return false;
            }
            Some(in_force) => in_force.diff(&snapshot),
        };
        if self.queue.iter().any(|w| w.dir == dir) || self.retries.iter().any(|(_, w)| w.dir == dir)
        {
            // The same content is already on its way.
            return false;
        }
        self.metrics.change();
        self.queue.push_back(Work {
            dir,
            snapshot,
            diff,
            stage: Stage::Validate,
            attempt: 0,
        });
        true
    }

    /// Resolves when new content arrives that makes the work in hand outdated.
    async fn newer_change(&mut self) {
        loop {
            self.mailbox.wait().await;
            if self.collect() {
                return;
            }
        }
    }

    fn report(&self, dir: &Path, snapshot: &Snapshot, result: Reported, reason: Option<&str>) {
        if let Some(reporter) = &self.reporter {
            reporter.report(dir, *snapshot.digest(), result, reason);
        }
    }

    fn retry_later(&mut self, mut work: Work, stage: Stage) {
        work.attempt += 1;
        work.stage = stage;
        let delay = backoff::delay(work.attempt);
        tracing::warn!(
            dir = %work.dir.display(),
            digest = %work.snapshot.digest().short(),
            attempt = work.attempt,
            delay = ?delay,
            "will try this change again"
        );
        self.retries.push((Instant::now() + delay, work));
    }

    fn queue_due_retries(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.retries = later;
        self.queue.extend(due.into_iter().map(|(_, work)| work));
    }

    fn next_retry(&self) -> Option<Instant> {
        self.retries.iter().map(|(at, _)| *at).min()
    }
}

/// Runs validation and actions for every change, until the host says stop.
#[derive(Debug)]
pub struct Driver {
    intake: Intake,
    actions: Vec<Box<dyn Action>>,
    validate: Option<CommandPlan>,
    verifier: Option<Verifier>,
    children: Children,
    limits: ReadLimits,
}

/// Everything a [`Driver`] is made of.
#[derive(Debug)]
pub struct DriverParts {
    pub mailbox: Arc<Mailbox>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub children: Children,
    pub actions: Vec<Box<dyn Action>>,
    pub validate: Option<CommandPlan>,
    pub reload_on_start: bool,
    pub limits: ReadLimits,
    /// `--verify-url` / `--verify-exec`: run after the actions.
    pub verify: Option<VerifyPlan>,
    /// `--report-pod`: where outcomes go.
    pub reporter: Option<Reporter>,
}

impl Driver {
    pub fn new(parts: DriverParts) -> Driver {
        Driver {
            intake: Intake {
                mailbox: parts.mailbox,
                metrics: parts.metrics,
                readiness: parts.readiness,
                reload_on_start: parts.reload_on_start,
                reporter: parts.reporter,
                in_force: HashMap::new(),
                queue: VecDeque::new(),
                retries: Vec::new(),
            },
            actions: parts.actions,
            validate: parts.validate,
            verifier: parts
                .verify
                .map(|plan| Verifier::new(plan, parts.children.clone())),
            children: parts.children,
            limits: parts.limits,
        }
    }

    pub async fn run(mut self, host: &mut impl Host) -> ExitCode {
        loop {
            self.intake.collect();
            self.intake.queue_due_retries(Instant::now());
            if let Some(work) = self.intake.queue.pop_front() {
                tokio::select! {
                    code = host.stopped() => return code,
                    () = self.process(work) => {}
                }
                continue;
            }
            let retry = self.intake.next_retry();
            // Without a retry pending, the timer branch is disabled; its deadline is unused.
            let deadline = retry.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                code = host.stopped() => return code,
                () = self.intake.mailbox.wait() => {}
                () = tokio::time::sleep_until(deadline.into()), if retry.is_some() => {}
            }
        }
    }

    async fn process(&mut self, mut work: Work) {
        if matches!(work.stage, Stage::Validate) {
            let Some(valid) = self.validated(work).await else {
                return;
            };
            work = valid;
            self.intake
                .in_force
                .insert(work.dir.clone(), work.snapshot.clone());
            work.stage = Stage::Act((0..self.actions.len()).collect());
        }
        let Stage::Act(todo) = &work.stage else {
            return;
        };
        let ctx = work.ctx();
        let mut outcomes = Vec::new();
        let mut failed = Vec::new();
        for &index in todo {
            let action = &mut self.actions[index];
            let started = Instant::now();
            let outcome = if action.supersedable() {
                tokio::select! {
                    outcome = action.run(&ctx) => outcome,
                    () = self.intake.newer_change() => Outcome::Superseded,
                }
            } else {
                action.run(&ctx).await
            };
            let result = match outcome {
                Outcome::Done(_) => ActionResult::Success,
                Outcome::Failed(_) => ActionResult::Failure,
                Outcome::Superseded => ActionResult::Superseded,
            };
            self.intake
                .metrics
                .action(action.name(), result, started.elapsed());
            if matches!(outcome, Outcome::Failed(_)) {
                failed.push(index);
            }
            outcomes.push((action.name(), outcome));
        }
        // Verification: only when every action did its part for this very content.
        let mut unverified = false;
        let all_done = outcomes.iter().all(|(_, o)| matches!(o, Outcome::Done(_)));
        if let Some(verifier) = self.verifier.as_ref().filter(|_| all_done) {
            let started = Instant::now();
            let outcome = tokio::select! {
                result = verifier.verify(&ctx) => match result {
                    Ok(detail) => Outcome::Done(detail),
                    Err(reason) => Outcome::Failed(reason),
                },
                () = self.intake.newer_change() => Outcome::Superseded,
            };
            let result = match outcome {
                Outcome::Done(_) => ActionResult::Success,
                Outcome::Failed(_) => ActionResult::Failure,
                Outcome::Superseded => ActionResult::Superseded,
            };
            self.intake
                .metrics
                .action("verify", result, started.elapsed());
            unverified = matches!(outcome, Outcome::Failed(_));
            outcomes.push(("verify", outcome));
        }
        log_outcome(&ctx, work.attempt, &outcomes);
        // The report names the failing action and our own reason for it; an exec's
        // reason is only its exit status (its command line may hold credentials).
        let failure = outcomes.iter().find_map(|(name, o)| match o {
            Outcome::Failed(_) if *name == "exec" => Some(format!("{name} failed")),
            Outcome::Failed(reason) => Some(format!("{name} failed: {reason}")),
            _ => None,
        });
        match failure {
            Some(reason) => {
                self.intake
                    .report(&work.dir, &work.snapshot, Reported::Failed, Some(&reason))
            }
            None if outcomes.iter().all(|(_, o)| matches!(o, Outcome::Done(_))) => self
                .intake
                .report(&work.dir, &work.snapshot, Reported::Applied, None),
            // Superseded: the newer change reports.
            None => {}
        }
        if !failed.is_empty() {
            self.intake.retry_later(work, Stage::Act(failed));
        } else if unverified {
            // The application did not take the change: do the whole reload again.
            let all = (0..self.actions.len()).collect();
            self.intake.retry_later(work, Stage::Act(all));
        }
    }

    /// Runs `--validate`, then checks the directory still holds what was validated; if it
    /// moved on meanwhile, validates the newer content instead. `None` when the work ends
    /// here (rejected and set to be retried, or nothing new after all).
    async fn validated(&mut self, mut work: Work) -> Option<Work> {
        let Some(plan) = &self.validate else {
            return Some(work);
        };
        loop {
            let ctx = work.ctx();
            let env = ctx.env();
            let outcome = shell::run(&self.children, &plan.command, &env, plan.timeout, true).await;
            let (status, stderr) = match outcome {
                Ok(o) if o.exit.success() => match self.moved_on(&work) {
                    Moved::No => return Some(work),
                    Moved::ToInForce => return None,
                    Moved::To(newer) => {
                        tracing::info!(
                            dir = %work.dir.display(),
                            validated = %work.snapshot.digest().short(),
                            now = %newer.digest().short(),
                            "the directory changed during validation; validating the newer content"
                        );
                        work.diff = self
                            .intake
                            .in_force
                            .get(&work.dir)
                            .map_or_else(SnapshotDiff::default, |f| f.diff(&newer));
                        work.snapshot = newer;
                        self.intake.metrics.change();
                        continue;
                    }
                },
                Ok(o) => (o.exit.to_string(), o.stderr_tail),
                Err(shell::ShellError::Timeout { stderr_tail, .. }) => {
                    (format!("timed out after {:?}", plan.timeout), stderr_tail)
                }
                Err(e) => (e.to_string(), String::new()),
            };
            self.intake.metrics.validation_failure();
            self.intake.report(
                &work.dir,
                &work.snapshot,
                Reported::Rejected,
                Some(&format!("validation failed: {status}")),
            );
            // The command's own stderr is logged as it wrote it: it is the reason an
            // operator needs (`nginx -t` names the line). rekindle adds no value of its own.
            tracing::warn!(
                dir = %work.dir.display(),
                digest = %work.snapshot.digest().short(),
                added = %work.diff.added.join(","),
                removed = %work.diff.removed.join(","),
                modified = %work.diff.modified.join(","),
                validate = %plan.command,
                status = %status,
                stderr = %stderr,
                "validation failed: no action; the config in force stays"
            );
            self.intake.retry_later(work, Stage::Validate);
            return None;
        }
    }

    /// Reads the directory again after a validation.
    fn moved_on(&self, work: &Work) -> Moved {
        // A failed read says nothing about the content: the watcher reports it, and the
        // validated content stands.
        let Ok((now, _)) = Snapshot::read_volume(&work.dir, &self.limits) else {
            return Moved::No;
        };
        if now.digest() == work.snapshot.digest() {
            Moved::No
        } else if self
            .intake
            .in_force
            .get(&work.dir)
            .is_some_and(|f| f.digest() == now.digest())
        {
            Moved::ToInForce
        } else {
            Moved::To(Arc::new(now))
        }
    }
}

enum Moved {
    No,
    ToInForce,
    To(Arc<Snapshot>),
}

/// One line per change: digest, key names (never values), each action's outcome.
fn log_outcome(ctx: &ChangeCtx, attempt: u32, outcomes: &[(&'static str, Outcome)]) {
    let actions: Vec<String> = outcomes
        .iter()
        .map(|(name, outcome)| format!("{name}: {outcome}"))
        .collect();
    let actions = actions.join("; ");
    let (dir, digest) = (ctx.dir.display(), ctx.digest.short());
    let (added, removed, modified) = (
        ctx.diff.added.join(","),
        ctx.diff.removed.join(","),
        ctx.diff.modified.join(","),
    );
    if outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Failed(_)))
    {
        tracing::error!(dir = %dir, digest = %digest, attempt, added = %added, removed = %removed, modified = %modified, actions = %actions, "config change: action failed");
    } else if outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Superseded))
    {
        tracing::info!(dir = %dir, digest = %digest, attempt, added = %added, removed = %removed, modified = %modified, actions = %actions, "config change superseded");
    } else {
        tracing::info!(dir = %dir, digest = %digest, attempt, added = %added, removed = %removed, modified = %modified, actions = %actions, "config change applied");
    }
}
