//! The operator's brain: watch messages in, rollouts out. Pure: time is passed
//! in, and the caller performs the rollouts and reports back, so every rule
//! here (no roll at start, catch-up, key precision, cooldown, retries) is
//! unit-tested without a cluster.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::cluster::watch::{Message, StreamEvent, StreamId, Watched};
use crate::decide::cooldown::{Cooldown, Queued};
use crate::decide::plan::{NoChange, Plan, PlanSettings, plan, selects, stale_sources};
use crate::index::{SourceChange, SourceEntry, SourceIndex, WorkloadEntry, WorkloadIndex};
use crate::metrics::{EventType, Metrics, Skipped};
use crate::model::{SourceId, WorkloadId};

/// An object as a watch stream delivers it, already reduced.
#[derive(Debug)]
pub enum Object {
    Source(SourceId, SourceEntry),
    Workload(WorkloadId, WorkloadEntry),
    /// A namespace matching `--namespace-selector`.
    Namespace(String),
}

/// Settings of the reconciler.
#[derive(Debug, Clone)]
pub struct Settings {
    pub plan: PlanSettings,
    /// `--reload-on-create`: a source created after start rolls its users.
    pub reload_on_create: bool,
    /// `--namespaces-to-ignore`.
    pub ignored_namespaces: BTreeSet<String>,
    /// `--namespace-selector` is set: only namespaces a `Namespaces` stream
    /// delivered are in scope.
    pub namespace_selector: bool,
    /// `--cooldown`.
    pub cooldown: Duration,
    /// How long a first change waits for others to join it.
    pub gather: Duration,
}

/// A rollout to perform now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub workload: WorkloadId,
    pub plan: Plan,
    /// The sources that were pending, to put back if the rollout fails.
    pub pending: BTreeSet<SourceId>,
    /// A suspended CronJob is never instantiated.
    pub suspended: bool,
    /// When the first of its changes was queued.
    pub queued_at: Instant,
}

/// How a rollout ended, as the caller reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Failed; retried with backoff.
    Failed,
    /// The workload is gone.
    Gone,
}

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Watch messages in, rollouts out.
#[derive(Debug)]
pub struct Reconciler {
    settings: Settings,
    sources: SourceIndex,
    workloads: WorkloadIndex,
    cooldown: Cooldown,
    /// Streams whose first list is not complete yet.
    unsynced: HashSet<StreamId>,
    /// Streams in a (re-)list, with what the list returned so far.
    listing: HashMap<StreamId, HashSet<Listed>>,
    /// Whether stale markers were caught up after the first complete sync.
    caught_up: bool,
    queued_at: HashMap<WorkloadId, Instant>,
    attempts: HashMap<WorkloadId, u32>,
    /// Namespaces selected by `--namespace-selector`.
    selected_namespaces: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Listed {
    Source(SourceId),
    Workload(WorkloadId),
    Namespace(String),
}

impl Reconciler {
    /// `streams`: every stream that will feed this reconciler; it is ready when
    /// each has completed its first list.
    pub fn new(settings: Settings, streams: impl IntoIterator<Item = StreamId>) -> Reconciler {
        Reconciler {
            cooldown: Cooldown::new(settings.cooldown, settings.gather),
            settings,
            sources: SourceIndex::default(),
            workloads: WorkloadIndex::default(),
            unsynced: streams.into_iter().collect(),
            listing: HashMap::new(),
            caught_up: false,
            queued_at: HashMap::new(),
            attempts: HashMap::new(),
            selected_namespaces: HashSet::new(),
        }
    }

    /// Whether every stream has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.unsynced.is_empty()
    }

    /// Sizes of the index, for `rekindle_operator_cached_objects`.
    pub fn cached(&self) -> (usize, usize) {
        (self.sources.len(), self.workloads.len())
    }

    /// Workloads with a rollout pending.
    pub fn pending(&self) -> usize {
        self.cooldown.pending()
    }

    /// When [`Reconciler::take_due`] next has something.
    pub fn next_due(&self) -> Option<Instant> {
        self.cooldown.next_due()
    }

    /// Feeds one watch message.
    pub fn handle(&mut self, now: Instant, message: Message<Object>, metrics: &Metrics) {
        let Message { stream, event } = message;
        let synced = !self.unsynced.contains(&stream);
        match event {
            StreamEvent::Relisting => {
                self.listing.insert(stream, HashSet::new());
            }
            StreamEvent::Listed(object) => {
                if let Some(seen) = self.listing.get_mut(&stream) {
                    seen.insert(match &object {
                        Object::Source(id, _) => Listed::Source(id.clone()),
                        Object::Workload(id, _) => Listed::Workload(id.clone()),
                        Object::Namespace(name) => Listed::Namespace(name.clone()),
                    });
                }
                // A re-list after the stream was synced may carry changes made
                // while the watch was broken: those are real changes. The first
                // list only fills the index.
                self.apply(now, object, synced, metrics);
            }
            StreamEvent::Applied(object) => self.apply(now, object, true, metrics),
            StreamEvent::Deleted(object) => self.delete(now, object, metrics),
            StreamEvent::ListDone => {
                let seen = self.listing.remove(&stream).unwrap_or_default();
                self.drop_unlisted(now, &stream, &seen, synced, metrics);
                self.unsynced.remove(&stream);
                if self.unsynced.is_empty() && !self.caught_up {
                    self.caught_up = true;
                    self.catch_up(now, metrics);
                }
            }
        }
    }

    fn apply(&mut self, now: Instant, object: Object, live: bool, metrics: &Metrics) {
        match object {
            Object::Namespace(name) => {
                self.selected_namespaces.insert(name);
            }
            Object::Workload(id, entry) => self.workloads.apply(id, entry),
            Object::Source(id, entry) => {
                let change = self.sources.apply(id.clone(), entry);
                if !live {
                    return;
                }
                let event = if change == SourceChange::Created {
                    EventType::Create
                } else {
                    EventType::Update
                };
                metrics.event_received(event, id.kind);
                match change {
                    SourceChange::Created if self.settings.reload_on_create => {
                        self.changed(now, &id, None, metrics);
                    }
                    SourceChange::Created => metrics.event_processed(event, id.kind, "skipped"),
                    SourceChange::Unchanged => {
                        metrics.skipped(Skipped::NoDataChange);
                        metrics.event_processed(event, id.kind, "skipped");
                    }
                    SourceChange::Data(keys) => self.changed(now, &id, Some(&keys), metrics),
                }
            }
        }
    }

    fn delete(&mut self, now: Instant, object: Object, metrics: &Metrics) {
        match object {
            Object::Namespace(name) => {
                self.selected_namespaces.remove(&name);
            }
            Object::Workload(id, _) => self.forget_workload(&id),
            Object::Source(id, _) => self.source_gone(now, &id, metrics),
        }
    }

    fn source_gone(&mut self, now: Instant, id: &SourceId, metrics: &Metrics) {
        if self.sources.remove(id).is_none() {
            return;
        }
        metrics.event_received(EventType::Delete, id.kind);
        if self.settings.plan.reload_on_delete {
            self.changed(now, id, None, metrics);
        } else {
            metrics.event_processed(EventType::Delete, id.kind, "skipped");
        }
    }

    fn forget_workload(&mut self, id: &WorkloadId) {
        self.workloads.remove(id);
        self.cooldown.forget(id);
        self.queued_at.remove(id);
        self.attempts.remove(id);
    }

    fn drop_unlisted(
        &mut self,
        now: Instant,
        stream: &StreamId,
        seen: &HashSet<Listed>,
        synced: bool,
        metrics: &Metrics,
    ) {
        let namespace = stream.namespace.as_deref();
        match stream.watched {
            Watched::Source(kind) => {
                let listed = seen
                    .iter()
                    .filter_map(|l| match l {
                        Listed::Source(id) => Some(id.clone()),
                        _ => None,
                    })
                    .collect();
                // Put them back one by one so each goes through the same path as
                // a delete event (reload-on-delete, metrics).
                for id in self.sources.retain_listed(kind, namespace, &listed) {
                    if synced && self.settings.plan.reload_on_delete {
                        metrics.event_received(EventType::Delete, id.kind);
                        self.changed(now, &id, None, metrics);
                    }
                }
            }
            Watched::Workload(kind) => {
                let listed = seen
                    .iter()
                    .filter_map(|l| match l {
                        Listed::Workload(id) => Some(id.clone()),
                        _ => None,
                    })
                    .collect();
                for id in self.workloads.retain_listed(kind, namespace, &listed) {
                    self.forget_workload(&id);
                }
            }
            Watched::Namespaces => {
                self.selected_namespaces
                    .retain(|name| seen.contains(&Listed::Namespace(name.clone())));
            }
        }
    }

    /// A source changed (`keys`: which; `None`: created or deleted, all keys):
    /// queues every workload it concerns.
    fn changed(
        &mut self,
        now: Instant,
        source: &SourceId,
        keys: Option<&BTreeSet<String>>,
        metrics: &Metrics,
    ) {
        let event = match (keys, self.sources.get(source)) {
            (Some(_), _) => EventType::Update,
            (None, Some(_)) => EventType::Create,
            (None, None) => EventType::Delete,
        };
        if self.settings.ignored_namespaces.contains(&source.namespace)
            || (self.settings.namespace_selector && !self.selected_namespaces.contains(&source.namespace))
        {
            metrics.skipped(Skipped::IgnoredOrNotSelected);
            metrics.event_processed(event, source.kind, "skipped");
            return;
        }
        let entry = self.sources.get(source);
        let mut concerned = Vec::new();
        for id in self.workloads.candidates(source) {
            let Some(workload) = self.workloads.get(&id) else {
                continue;
            };
            let matched = match selects(&id, workload, source, entry, &self.settings.plan) {
                // Key precision: a workload that reads only some keys is not
                // concerned by a change to others.
                Ok(used) => keys.is_none_or(|keys| keys.iter().any(|k| used.covers(k))),
                Err(NoChange::Deleted) => true,
                Err(_) => false,
            };
            metrics.workloads(id.kind, 1, u64::from(matched));
            if matched {
                concerned.push(id);
            }
        }
        let queued = concerned.len();
        for id in concerned {
            self.enqueue(now, &id, source, metrics);
        }
        metrics.event_processed(
            event,
            source.kind,
            if queued > 0 { "queued" } else { "skipped" },
        );
    }

    fn enqueue(&mut self, now: Instant, id: &WorkloadId, source: &SourceId, metrics: &Metrics) {
        let queued = self.cooldown.enqueue(now, id, source);
        metrics.queued(matches!(queued, Queued::Coalesced { .. }));
        self.queued_at.entry(id.clone()).or_insert(now);
        metrics.queue_depth(self.cooldown.pending());
    }

    /// After the first complete sync (and on becoming the leader): queues every
    /// workload whose marker is present but stale, i.e. whose data changed while
    /// no operator was watching. Workloads without a marker are left alone.
    pub fn catch_up(&mut self, now: Instant, metrics: &Metrics) {
        let mut stale = Vec::new();
        for (id, workload) in self.workloads.iter() {
            for source in stale_sources(id, workload, &self.sources, &self.settings.plan) {
                stale.push((id.clone(), source));
            }
        }
        if !stale.is_empty() {
            tracing::info!(
                workloads = stale.len(),
                "catching up markers that changed while not watching"
            );
        }
        for (id, source) in stale {
            self.enqueue(now, &id, &source, metrics);
        }
    }

    /// The rollouts due at `now`. A workload whose markers are all current
    /// gives none.
    pub fn take_due(&mut self, now: Instant, metrics: &Metrics) -> Vec<Rollout> {
        let mut out = Vec::new();
        for due in self.cooldown.take_due(now) {
            let queued_at = self.queued_at.remove(&due.workload).unwrap_or(now);
            let Some(workload) = self.workloads.get(&due.workload) else {
                continue;
            };
            let plan = plan(
                &due.workload,
                workload,
                &due.sources,
                &self.sources,
                &self.settings.plan,
            );
            if plan.is_empty() {
                metrics.skipped(Skipped::StrategyNotUpdated);
                continue;
            }
            metrics.queue_latency(now.saturating_duration_since(queued_at));
            out.push(Rollout {
                workload: due.workload,
                plan,
                pending: due.sources,
                suspended: workload.suspended,
                queued_at,
            });
        }
        metrics.queue_depth(self.cooldown.pending());
        out
    }

    /// Reports how a rollout from [`Reconciler::take_due`] ended.
    pub fn finished(&mut self, now: Instant, rollout: Rollout, outcome: Outcome) {
        match outcome {
            Outcome::Done => {
                self.attempts.remove(&rollout.workload);
                self.cooldown.rolled(&rollout.workload, now);
            }
            Outcome::Gone => self.forget_workload(&rollout.workload),
            Outcome::Failed => {
                let attempt = self.attempts.entry(rollout.workload.clone()).or_insert(0);
                let wait = RETRY_FIRST
                    .saturating_mul(1 << (*attempt).min(6))
                    .min(RETRY_MAX);
                *attempt += 1;
                self.queued_at
                    .entry(rollout.workload.clone())
                    .or_insert(rollout.queued_at);
                self.cooldown
                    .retry(&rollout.workload, rollout.pending, now + wait);
            }
        }
    }

    /// The workload entry, for the executor (container indexes, uid).
    pub fn workload(&self, id: &WorkloadId) -> Option<&WorkloadEntry> {
        self.workloads.get(id)
    }
}
