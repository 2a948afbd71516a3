//! The operator's brain: watch messages in, rollouts out. Pure: time is passed
//! in, and the caller performs the rollouts and reports back, so every rule
//! here (no roll at start, catch-up, key precision, cooldown, retries) is
//! unit-tested without a cluster.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::cluster::watch::{Message, StreamEvent, StreamId, Watched};
use crate::decide::annotations::{InvalidPattern, RolloutStrategy, SourceFlags};
use crate::decide::cooldown::{Cooldown, Due, Queued};
use crate::decide::decision::needs_named_scan;
use crate::decide::fleet::workload_counts;
use crate::decide::pause::PauseError;
use crate::decide::plan::{Plan, PlanSettings, plan, selects, stale_sources};
use crate::index::{
    PodEntry, PodId, PodIndex, SourceChange, SourceEntry, SourceIndex, WorkloadEntry, WorkloadIndex,
};
use crate::metrics::{EventType, Metrics, Skipped};
use crate::model::{SourceId, SourceKind, WorkloadId};
use k8s_openapi::jiff::Timestamp;
use rekindle::fleet::Counts;

/// An object as a watch stream delivers it, already reduced.
// A message is moved once through a bounded channel and consumed: boxing the
// larger variant would add an allocation per workload event to save a few
// hundred bytes per channel slot.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Object {
    Source(SourceId, SourceEntry),
    Workload(WorkloadId, WorkloadEntry),
    /// A namespace matching `--namespace-selector`.
    Namespace(String),
    /// A SecretProviderClassPodStatus (`--enable-csi-integration`): the CSI driver's
    /// record of what it mounted for one pod from one SecretProviderClass.
    PodStatus {
        /// `namespace/name` of the status object.
        status: String,
        /// The SecretProviderClass it stands for.
        source: SourceId,
        /// What the driver mounted, as the class's content.
        entry: SourceEntry,
    },
    /// A SecretProviderClass's own `ignore` and `match` annotations, which decide for
    /// every change of its pod statuses (Reloader reads them from the class too).
    ClassFlags(SourceId, SourceFlags),
    /// An object the operator has no use for (a pod status without a class name).
    Ignored,
    /// A pod, for the fleet view (`None`: it does not count, e.g. terminating).
    Pod(PodId, Option<PodEntry>),
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
    /// The `pause-period` annotation's name, for error messages.
    pub pause_period_annotation: String,
    /// `--webhook-url`: changes are announced instead of rolling anything.
    pub webhook_mode: bool,
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
    /// Whether to pause the Deployment with this rollout (`pause-period`).
    pub pause: Result<bool, PauseError>,
    /// An Argo Rollout with `rollout-strategy: restart`.
    pub restart: bool,
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
const RESUME_RETRY: Duration = Duration::from_secs(5);

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
    /// When a resume of a paused Deployment was last attempted.
    resume_tried: HashMap<WorkloadId, Instant>,
    /// Changed sources to announce (`--webhook-url` mode).
    announcements: Vec<SourceId>,
    /// Each SecretProviderClassPodStatus's content (Reloader's SHA-1 of it), by
    /// `namespace/name`: a class changes when one of them changes.
    pod_statuses: HashMap<String, String>,
    /// The annotations of the SecretProviderClasses seen (`--enable-csi-integration`),
    /// kept apart from the index: a pod status's entry replaces the class's whole
    /// entry, and takes its flags from here.
    class_flags: HashMap<SourceId, SourceFlags>,
    /// Pods of workloads, for the fleet view.
    pods: PodIndex,
    /// Workloads whose fleet counts may have changed since they were last taken.
    fleet_dirty: HashSet<WorkloadId>,
    /// Workloads that have counts out (series in the metric).
    fleet_shown: HashSet<WorkloadId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Listed {
    Source(SourceId),
    Class(SourceId),
    Workload(WorkloadId),
    Namespace(String),
    PodStatus(String),
    Pod(PodId),
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
            resume_tried: HashMap::new(),
            announcements: Vec::new(),
            pod_statuses: HashMap::new(),
            class_flags: HashMap::new(),
            pods: PodIndex::default(),
            fleet_dirty: HashSet::new(),
            fleet_shown: HashSet::new(),
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
                        Object::PodStatus { status, .. } => Listed::PodStatus(status.clone()),
                        Object::ClassFlags(id, _) => Listed::Class(id.clone()),
                        Object::Ignored => return,
                        Object::Pod(id, _) => Listed::Pod(id.clone()),
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
            Object::Pod(id, entry) => {
                let touched = self.pods.apply(id, entry);
                self.fleet_dirty.extend(touched);
            }
            Object::Workload(id, entry) => {
                self.fleet_dirty.insert(id.clone());
                self.resume_tried.remove(&id);
                for invalid in newly_invalid(self.workloads.get(&id), &entry) {
                    tracing::warn!(workload = %id, "{invalid}; the item is skipped");
                }
                self.workloads.apply(id, entry);
            }
            Object::Ignored => {}
            Object::ClassFlags(id, flags) => self.set_class_flags(id, Some(flags)),
            Object::PodStatus {
                status,
                source,
                mut entry,
            } => {
                entry.flags = self.class_flags.get(&source).copied().unwrap_or_default();
                let content = entry.reloader_sha1.clone();
                let previous = self.pod_statuses.insert(status, content.clone());
                let known = self.sources.get(&source).is_some();
                match previous {
                    // The first list, or a class seen for the first time: what the
                    // driver mounted is the class's content, and nothing rolls (a
                    // new pod's mount is no change, as in Reloader).
                    _ if !live || !known => {
                        self.sources.apply(source, entry);
                    }
                    // The driver rotated this pod's objects: a change of the class,
                    // unless another pod's status brought the class there already.
                    Some(previous) if previous != content => {
                        self.apply(now, Object::Source(source, entry), true, metrics);
                    }
                    // A refresh with the same versions, or a new pod's status.
                    _ => {}
                }
            }
            Object::Source(id, entry) => {
                self.fleet_dirty
                    .extend(self.pods.workloads_in(&id.namespace));
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
                        self.changed(now, &id, None, None, metrics);
                    }
                    SourceChange::Created => metrics.event_processed(event, id.kind, "skipped"),
                    SourceChange::Unchanged => {
                        metrics.skipped(Skipped::NoDataChange);
                        metrics.event_processed(event, id.kind, "skipped");
                    }
                    SourceChange::Data(keys) => {
                        self.changed(now, &id, Some(&keys), None, metrics);
                    }
                }
            }
        }
    }

    fn delete(&mut self, now: Instant, object: Object, metrics: &Metrics) {
        match object {
            Object::Namespace(name) => {
                self.selected_namespaces.remove(&name);
            }
            Object::Pod(id, _) => {
                self.fleet_dirty.extend(self.pods.remove(&id));
            }
            // The cooldown slot stays: a Job is rolled by deleting and
            // re-creating it, and the re-created one must still wait out the
            // period. A pending rollout of a workload that stays gone is dropped
            // when it falls due; an idle slot expires on its own.
            Object::Workload(id, _) => {
                self.workloads.remove(&id);
                self.resume_tried.remove(&id);
                self.fleet_dirty.insert(id);
            }
            Object::Source(id, _) => {
                self.fleet_dirty
                    .extend(self.pods.workloads_in(&id.namespace));
                self.source_gone(now, &id, metrics);
            }
            // A pod's mount went away; the class itself is not deleted (and Reloader
            // does nothing either).
            Object::PodStatus { status, .. } => {
                self.pod_statuses.remove(&status);
            }
            Object::ClassFlags(id, _) => self.set_class_flags(id, None),
            Object::Ignored => {}
        }
    }

    /// Records a SecretProviderClass's flags (`None`: the class is gone, or was not
    /// listed again) for its next changes, and on the class's entry if it has one.
    /// A change of annotations alone rolls nothing, as for ConfigMaps.
    fn set_class_flags(&mut self, id: SourceId, flags: Option<SourceFlags>) {
        let value = flags.unwrap_or_default();
        if let Some(entry) = self.sources.get(&id) {
            let mut entry = entry.clone();
            entry.flags = value;
            self.sources.apply(id.clone(), entry);
        }
        match flags {
            Some(flags) => self.class_flags.insert(id, flags),
            None => self.class_flags.remove(&id),
        };
    }

    fn source_gone(&mut self, now: Instant, id: &SourceId, metrics: &Metrics) {
        let Some(last) = self.sources.remove(id) else {
            return;
        };
        metrics.event_received(EventType::Delete, id.kind);
        if self.settings.plan.reload_on_delete {
            self.changed(now, id, None, Some(&last), metrics);
        } else {
            metrics.event_processed(EventType::Delete, id.kind, "skipped");
        }
    }

    fn forget_workload(&mut self, id: &WorkloadId) {
        self.fleet_dirty.insert(id.clone());
        self.workloads.remove(id);
        self.cooldown.forget(id);
        self.queued_at.remove(id);
        self.attempts.remove(id);
        self.resume_tried.remove(id);
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
            // The stream of a SecretProviderClass carries pod statuses, not classes.
            Watched::Source(SourceKind::SecretProviderClass) => {
                let prefix = namespace.map(|ns| format!("{ns}/"));
                self.pod_statuses.retain(|status, _| {
                    prefix
                        .as_ref()
                        .is_some_and(|p| !status.starts_with(p.as_str()))
                        || seen.contains(&Listed::PodStatus(status.clone()))
                });
            }
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
                for (id, last) in self.sources.retain_listed(kind, namespace, &listed) {
                    self.fleet_dirty
                        .extend(self.pods.workloads_in(&id.namespace));
                    if synced && self.settings.plan.reload_on_delete {
                        metrics.event_received(EventType::Delete, id.kind);
                        self.changed(now, &id, None, Some(&last), metrics);
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
            Watched::ClassFlags => {
                let gone: Vec<SourceId> = self
                    .class_flags
                    .keys()
                    .filter(|id| namespace.is_none_or(|ns| id.namespace == ns))
                    .filter(|id| !seen.contains(&Listed::Class((*id).clone())))
                    .cloned()
                    .collect();
                for id in gone {
                    self.set_class_flags(id, None);
                }
            }
            Watched::Namespaces => {
                self.selected_namespaces
                    .retain(|name| seen.contains(&Listed::Namespace(name.clone())));
            }
            Watched::Pods => {
                let listed = seen
                    .iter()
                    .filter_map(|l| match l {
                        Listed::Pod(id) => Some(id.clone()),
                        _ => None,
                    })
                    .collect();
                let touched = self.pods.retain_listed(namespace, &listed);
                self.fleet_dirty.extend(touched);
            }
        }
    }

    /// A source changed (`keys`: which; `None`: created or deleted, all keys):
    /// queues every workload it concerns. `gone`: the last entry of a deleted
    /// source, whose annotations (`ignore`, `match`) still decide, as they do
    /// in Reloader.
    fn changed(
        &mut self,
        now: Instant,
        source: &SourceId,
        keys: Option<&BTreeSet<String>>,
        gone: Option<&SourceEntry>,
        metrics: &Metrics,
    ) {
        let event = match (keys, self.sources.get(source)) {
            (Some(_), _) => EventType::Update,
            (None, Some(_)) => EventType::Create,
            (None, None) => EventType::Delete,
        };
        if !self.in_scope(&source.namespace) {
            metrics.skipped(Skipped::IgnoredOrNotSelected);
            metrics.event_processed(event, source.kind, "skipped");
            return;
        }
        if self.settings.webhook_mode {
            // Reloader's webhook mode announces every change in scope and
            // consults no annotation.
            self.announcements.push(source.clone());
            metrics.event_processed(event, source.kind, "queued");
            return;
        }
        let entry = self.sources.get(source);
        let flags = entry.or(gone).map(|e| e.flags).unwrap_or_default();
        let mut concerned = Vec::new();
        for id in self.workloads.candidates(source) {
            let Some(workload) = self.workloads.get(&id) else {
                continue;
            };
            let matched = match selects(&id, workload, source, flags, &self.settings.plan) {
                // Key precision: a workload that reads only some keys is not
                // concerned by a change to others.
                Ok(used) => keys.is_none_or(|keys| keys.iter().any(|k| used.covers(k))),
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
        // Sources applied together (one `kubectl apply`) arrive a few ms apart;
        // only a workload that uses several can have them coalesced.
        let gather = self.workloads.get(id).is_some_and(|w| {
            let named = [
                SourceKind::ConfigMap,
                SourceKind::Secret,
                SourceKind::SecretProviderClass,
            ]
            .into_iter()
            .any(|kind| needs_named_scan(&w.rules, kind));
            w.refs.sources.len() + usize::from(named) > 1
        });
        let queued = self.cooldown.enqueue(now, id, source, gather);
        metrics.queued(matches!(queued, Queued::Coalesced { .. }));
        self.queued_at.entry(id.clone()).or_insert(now);
        metrics.queue_depth(self.cooldown.pending());
    }

    /// Whether changes in `namespace` may roll anything: not in
    /// `--namespaces-to-ignore`, and selected by `--namespace-selector` if set.
    fn in_scope(&self, namespace: &str) -> bool {
        !self.settings.ignored_namespaces.contains(namespace)
            && (!self.settings.namespace_selector || self.selected_namespaces.contains(namespace))
    }

    /// After the first complete sync (and on becoming the leader): queues every
    /// workload whose marker is present but stale, i.e. whose data changed while
    /// no operator was watching. Workloads without a marker are left alone.
    pub fn catch_up(&mut self, now: Instant, metrics: &Metrics) {
        // Webhook mode announces changes and never rolls.
        if self.settings.webhook_mode {
            return;
        }
        let mut stale = Vec::new();
        for (id, workload) in self.workloads.iter() {
            // The namespace scope holds for catch-up as for events.
            if !self.in_scope(&id.namespace) {
                continue;
            }
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

    /// At most `limit` rollouts due at `now` (the longest due first), each
    /// planned from the index as it is now, so it carries the latest data. A
    /// workload whose markers are all current gives none. Each rollout given is
    /// in flight until [`Reconciler::finished`]: its workload gives no other.
    pub fn take_due(&mut self, now: Instant, metrics: &Metrics, limit: usize) -> Vec<Rollout> {
        let mut out = Vec::new();
        while out.len() < limit {
            let batch = self.cooldown.take_due(now, limit - out.len());
            if batch.is_empty() {
                break;
            }
            for due in batch {
                match self.rollout_for(now, due, metrics) {
                    Ok(rollout) => out.push(rollout),
                    Err(workload) => self.cooldown.release(&workload),
                }
            }
        }
        metrics.queue_depth(self.cooldown.pending());
        out
    }

    /// The rollout for a due slot, or the workload back when it needs none.
    fn rollout_for(
        &mut self,
        now: Instant,
        due: Due,
        metrics: &Metrics,
    ) -> Result<Rollout, WorkloadId> {
        let queued_at = self.queued_at.remove(&due.workload).unwrap_or(now);
        let Some(workload) = self.workloads.get(&due.workload) else {
            return Err(due.workload);
        };
        if workload.suspended {
            // A suspended CronJob is never instantiated (as in Reloader),
            // and nothing is reported as reloaded.
            tracing::debug!(workload = %due.workload, "suspended CronJob: no Job created");
            return Err(due.workload);
        }
        let plan = plan(
            &due.workload,
            workload,
            &due.sources,
            &self.sources,
            &self.settings.plan,
        );
        if plan.is_empty() {
            // Already current (perhaps a failed attempt went through after
            // all): the next failure starts its backoff afresh.
            self.attempts.remove(&due.workload);
            metrics.skipped(Skipped::StrategyNotUpdated);
            return Err(due.workload);
        }
        metrics.queue_latency(now.saturating_duration_since(queued_at));
        Ok(Rollout {
            workload: due.workload,
            plan,
            pending: due.sources,
            suspended: workload.suspended,
            queued_at,
            pause: workload.pause.as_ref().map_or(Ok(false), |p| {
                p.should_pause(&self.settings.pause_period_annotation)
            }),
            restart: workload.rollout_strategy == RolloutStrategy::Restart,
        })
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

    /// The paused Deployment to resume first, if any, and when. A Deployment
    /// whose resume was attempted at `tried` is skipped until its watch event
    /// shows the outcome (or 5 s pass).
    pub fn next_resume(&self, now: Instant) -> Option<(WorkloadId, Timestamp)> {
        self.workloads
            .resumes()
            .filter(|(id, _)| {
                self.resume_tried
                    .get(*id)
                    .is_none_or(|at| now.duration_since(*at) >= RESUME_RETRY)
            })
            .min_by_key(|(_, at)| **at)
            .map(|(id, at)| (id.clone(), *at))
    }

    /// Pods kept for the fleet view, for `rekindle_operator_cached_objects`.
    pub fn cached_pods(&self) -> usize {
        self.pods.len()
    }

    /// The fleet view's counts of every workload that may have changed since the last
    /// call: pods per state (`None`: the workload has no series any more, because it is
    /// gone, out of scope, or none of its pods reports).
    pub fn take_fleet_changes(&mut self) -> Vec<(WorkloadId, Option<Counts>)> {
        let dirty: Vec<WorkloadId> = self.fleet_dirty.drain().collect();
        let mut out = Vec::new();
        for id in dirty {
            let counts = self.fleet_counts(&id);
            let shown = counts.is_some();
            let was_shown = if shown {
                !self.fleet_shown.insert(id.clone())
            } else {
                self.fleet_shown.remove(&id)
            };
            if shown || was_shown {
                out.push((id, counts));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn fleet_counts(&self, id: &WorkloadId) -> Option<Counts> {
        if !self.in_scope(&id.namespace) {
            return None;
        }
        let workload = self.workloads.get(id)?;
        let declared = workload
            .refs
            .sources
            .keys()
            .map(|(kind, name)| (*kind, name.as_str()));
        workload_counts(
            id,
            &workload.mounts,
            declared,
            &self.pods.of(id),
            |source| self.sources.get(source).map(|e| e.digest),
        )
    }

    /// Sources whose change is to be announced (`--webhook-url` mode).
    pub fn take_announcements(&mut self) -> Vec<SourceId> {
        std::mem::take(&mut self.announcements)
    }

    /// Records an attempt to resume `id`.
    pub fn resume_tried(&mut self, id: &WorkloadId, now: Instant) {
        self.resume_tried.insert(id.clone(), now);
    }

    /// The workload entry, for the executor (container indexes, uid).
    pub fn workload(&self, id: &WorkloadId) -> Option<&WorkloadEntry> {
        self.workloads.get(id)
    }
}

/// The invalid named-list items of `new` to report: all of them when the
/// workload is new or its invalid items changed, none when this is the same
/// version seen again (a status update, a re-list), so that each is logged
/// once per workload version rather than on every event.
fn newly_invalid<'a>(old: Option<&WorkloadEntry>, new: &'a WorkloadEntry) -> &'a [InvalidPattern] {
    let invalid = new.rules.invalid_patterns();
    match old {
        Some(old) if old.rules.invalid_patterns() == invalid => &[],
        _ => invalid,
    }
}

#[cfg(test)]
mod tests {
    //! Every rule of the reconciler, driven by watch messages built from real
    //! API objects (reduced by [`crate::index::objects`], as in production) and
    //! an `Instant` advanced by hand: no cluster, no sleeps.

    use super::*;
    use crate::decide::decision::DecideSettings;
    use crate::decide::digest::sha1_hex;
    use crate::decide::patch::EnvMarker;
    use crate::decide::plan::tests::{
        AUTO, NS, VAR, keyed_marker, keys, mk_config_map, mk_container, mk_deployment, mk_key,
        mk_plan_settings, roll, source_of, with_env_from, with_key_ref, with_mount,
        with_template_annotation, with_var, with_volume, workload_of,
    };
    use crate::decide::plan::{HashMode, Strategy};
    use crate::model::{KeyUse, SourceKind, WorkloadKind};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;

    const GATHER: Duration = Duration::from_millis(100);
    const COOLDOWN: Duration = Duration::from_secs(10);
    const MS: Duration = Duration::from_millis(1);

    // ---- helpers -------------------------------------------------------------

    fn mk_settings() -> Settings {
        Settings {
            plan: mk_plan_settings(Strategy::EnvVars),
            reload_on_create: false,
            ignored_namespaces: BTreeSet::new(),
            namespace_selector: false,
            cooldown: COOLDOWN,
            gather: GATHER,
            pause_period_annotation: "deployment.reloader.stakater.com/pause-period".to_owned(),
            webhook_mode: false,
        }
    }

    fn with_reload_on_delete(mut settings: Settings) -> Settings {
        settings.plan.reload_on_delete = true;
        settings
    }

    fn cm_stream() -> StreamId {
        StreamId {
            watched: Watched::Source(SourceKind::ConfigMap),
            namespace: None,
        }
    }

    fn deploy_stream() -> StreamId {
        StreamId {
            watched: Watched::Workload(WorkloadKind::Deployment),
            namespace: None,
        }
    }

    fn cm_object(cm: &ConfigMap) -> Object {
        let (id, entry) = source_of(cm);
        Object::Source(id, entry)
    }

    fn deploy_object(d: &Deployment) -> Object {
        let (id, entry) = workload_of(d);
        Object::Workload(id, entry)
    }

    fn cm_id(name: &str) -> SourceId {
        SourceId::new(SourceKind::ConfigMap, NS, name)
    }

    fn deploy_id(name: &str) -> WorkloadId {
        WorkloadId::new(WorkloadKind::Deployment, NS, name)
    }

    /// `app-config` with `data`.
    fn app_config(data: &[(&str, &str)]) -> ConfigMap {
        mk_config_map(NS, "app-config", data, &[])
    }

    /// A Deployment `name` with `annotations` whose one container `app` reads
    /// `app-config` whole through `envFrom`.
    fn mk_user(name: &str, annotations: &[(&str, &str)]) -> Deployment {
        mk_deployment(
            NS,
            name,
            annotations,
            vec![with_env_from(mk_container("app"), "app-config")],
        )
    }

    /// The marker the current data of `cm` gives a whole-object user.
    fn whole(cm: &ConfigMap) -> String {
        keyed_marker(cm, &KeyUse::All)
    }

    fn names(rollouts: &[Rollout]) -> Vec<&str> {
        rollouts.iter().map(|r| r.workload.name.as_str()).collect()
    }

    /// A reconciler fed by one ConfigMap stream and one Deployment stream, with
    /// the clock in hand.
    struct Harness {
        reconciler: Reconciler,
        metrics: Metrics,
        now: Instant,
    }

    impl Harness {
        fn new(settings: Settings) -> Harness {
            Harness {
                reconciler: Reconciler::new(settings, [cm_stream(), deploy_stream()]),
                metrics: Metrics::new(false),
                now: Instant::now(),
            }
        }

        /// Both first lists (Deployments first, so that a ConfigMap listed
        /// would find its users if the list were taken for changes).
        fn started(settings: Settings, cms: &[&ConfigMap], deployments: &[&Deployment]) -> Harness {
            let mut h = Harness::new(settings);
            h.list_deployments(deployments);
            h.list_config_maps(cms);
            assert!(h.reconciler.is_synced());
            h
        }

        fn send(&mut self, stream: StreamId, event: StreamEvent<Object>) {
            self.reconciler
                .handle(self.now, Message { stream, event }, &self.metrics);
        }

        fn list_config_maps(&mut self, cms: &[&ConfigMap]) {
            self.send(cm_stream(), StreamEvent::Relisting);
            for cm in cms {
                self.send(cm_stream(), StreamEvent::Listed(cm_object(cm)));
            }
            self.send(cm_stream(), StreamEvent::ListDone);
        }

        fn list_deployments(&mut self, deployments: &[&Deployment]) {
            self.send(deploy_stream(), StreamEvent::Relisting);
            for d in deployments {
                self.send(deploy_stream(), StreamEvent::Listed(deploy_object(d)));
            }
            self.send(deploy_stream(), StreamEvent::ListDone);
        }

        fn apply_config_map(&mut self, cm: &ConfigMap) {
            self.send(cm_stream(), StreamEvent::Applied(cm_object(cm)));
        }

        fn delete_config_map(&mut self, cm: &ConfigMap) {
            self.send(cm_stream(), StreamEvent::Deleted(cm_object(cm)));
        }

        fn apply_deployment(&mut self, d: &Deployment) {
            self.send(deploy_stream(), StreamEvent::Applied(deploy_object(d)));
        }

        fn advance(&mut self, by: Duration) {
            self.now += by;
        }

        fn take(&mut self) -> Vec<Rollout> {
            self.reconciler
                .take_due(self.now, &self.metrics, usize::MAX)
        }

        /// Advances past the gather window and takes what is due.
        fn take_after_gather(&mut self) -> Vec<Rollout> {
            self.advance(GATHER);
            self.take()
        }

        fn finish(&mut self, rollout: Rollout, outcome: Outcome) {
            self.reconciler.finished(self.now, rollout, outcome);
        }

        /// Everything that would ever fall due, with every rollout succeeding.
        fn drain(&mut self) -> Vec<Rollout> {
            let mut all = Vec::new();
            while let Some(due) = self.reconciler.next_due() {
                self.now = self.now.max(due);
                for rollout in self.take() {
                    all.push(rollout.clone());
                    self.finish(rollout, Outcome::Done);
                }
            }
            all
        }

        fn metric(&self, line: &str) -> bool {
            self.metrics.render().lines().any(|l| l == line)
        }
    }

    // ---- SecretProviderClasses (CSI) -------------------------------------------

    fn spc_stream() -> StreamId {
        StreamId {
            watched: Watched::Source(SourceKind::SecretProviderClass),
            namespace: None,
        }
    }

    /// A pod status of class `vault-db` with objects `(id, version)`.
    fn mk_pod_status(pod: &str, objects: &[(&str, &str)]) -> Object {
        let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            namespace: Some(NS.to_owned()),
            name: Some(format!("{pod}-vault-db")),
            ..Default::default()
        };
        let objects: Vec<serde_json::Value> = objects
            .iter()
            .map(|(id, v)| serde_json::json!({"id": id, "version": v}))
            .collect();
        let status = serde_json::json!({"secretProviderClassName": "vault-db", "objects": objects});
        let (status, source, entry) =
            crate::index::objects::pod_status(&meta, &status).expect("a class name");
        Object::PodStatus {
            status,
            source,
            entry,
        }
    }

    /// A Deployment mounting the class through a CSI volume, with `auto`.
    fn mk_csi_user() -> Object {
        let mut d = mk_deployment(NS, "vault-user", &[AUTO], vec![mk_container("app")]);
        let spec = d
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .expect("built by mk_deployment");
        spec.volumes = Some(vec![k8s_openapi::api::core::v1::Volume {
            name: "secrets".into(),
            csi: Some(k8s_openapi::api::core::v1::CSIVolumeSource {
                driver: "secrets-store.csi.k8s.io".into(),
                volume_attributes: Some(
                    [("secretProviderClass".to_owned(), "vault-db".to_owned())].into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        spec.containers[0].volume_mounts = Some(vec![k8s_openapi::api::core::v1::VolumeMount {
            name: "secrets".into(),
            mount_path: "/mnt/secrets".into(),
            ..Default::default()
        }]);
        let settings = crate::index::objects::WorkloadSettings {
            csi_enabled: true,
            ..Default::default()
        };
        let (id, entry) = crate::index::objects::deployment(&d, &settings);
        Object::Workload(id, entry)
    }

    #[test]
    fn a_rotation_in_a_pod_status_rolls_the_users_of_its_class_once() {
        let mut h = Harness {
            reconciler: Reconciler::new(mk_settings(), [spc_stream(), deploy_stream()]),
            metrics: Metrics::new(false),
            now: Instant::now(),
        };
        h.send(deploy_stream(), StreamEvent::Relisting);
        h.send(deploy_stream(), StreamEvent::Listed(mk_csi_user()));
        h.send(deploy_stream(), StreamEvent::ListDone);
        h.send(spc_stream(), StreamEvent::Relisting);
        h.send(
            spc_stream(),
            StreamEvent::Listed(mk_pod_status("a", &[("db-pass", "1")])),
        );
        h.send(
            spc_stream(),
            StreamEvent::Listed(mk_pod_status("b", &[("db-pass", "1")])),
        );
        h.send(spc_stream(), StreamEvent::ListDone);
        assert!(h.drain().is_empty(), "the first list rolls nothing");

        // A refresh with the same versions, and a new pod's status: nothing.
        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("a", &[("db-pass", "1")])),
        );
        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("c", &[("db-pass", "2")])),
        );
        assert!(h.drain().is_empty());

        // The driver rotates pod a's secret: one rollout; pod b catching up to the
        // same version is the same class content: nothing more.
        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("a", &[("db-pass", "2")])),
        );
        let rolled = h.drain();
        assert_eq!(names(&rolled), ["vault-user"]);
        h.advance(COOLDOWN * 2);
        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("b", &[("db-pass", "2")])),
        );
        assert!(h.drain().is_empty());

        // A pod's status deleted: nothing; its re-creation is a new pod's mount.
        h.send(
            spc_stream(),
            StreamEvent::Deleted(mk_pod_status("a", &[("db-pass", "2")])),
        );
        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("a", &[("db-pass", "3")])),
        );
        assert!(h.drain().is_empty());
    }

    fn class_stream() -> StreamId {
        StreamId {
            watched: Watched::ClassFlags,
            namespace: None,
        }
    }

    /// The SecretProviderClass `vault-db` itself, with these annotations.
    fn mk_class(annotations: &[(&str, &str)]) -> Object {
        let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            namespace: Some(NS.to_owned()),
            name: Some("vault-db".to_owned()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        };
        let names = crate::decide::annotations::AnnotationNames::default();
        let (id, flags) = crate::index::objects::class_flags(&meta, &names);
        Object::ClassFlags(id, flags)
    }

    /// `reloader.stakater.com/ignore` on the SecretProviderClass itself stops its
    /// rotations from rolling anything, as in Reloader; removing it lets the next one
    /// roll; the annotation's changes alone roll nothing.
    #[test]
    fn the_class_s_own_ignore_annotation_decides_for_its_rotations() {
        const IGNORE: &str = "reloader.stakater.com/ignore";
        let mut h = Harness {
            reconciler: Reconciler::new(
                mk_settings(),
                [spc_stream(), class_stream(), deploy_stream()],
            ),
            metrics: Metrics::new(false),
            now: Instant::now(),
        };
        h.send(deploy_stream(), StreamEvent::Relisting);
        h.send(deploy_stream(), StreamEvent::Listed(mk_csi_user()));
        h.send(deploy_stream(), StreamEvent::ListDone);
        h.send(class_stream(), StreamEvent::Relisting);
        h.send(
            class_stream(),
            StreamEvent::Listed(mk_class(&[(IGNORE, "true")])),
        );
        h.send(class_stream(), StreamEvent::ListDone);
        h.send(spc_stream(), StreamEvent::Relisting);
        h.send(
            spc_stream(),
            StreamEvent::Listed(mk_pod_status("a", &[("db-pass", "1")])),
        );
        h.send(spc_stream(), StreamEvent::ListDone);
        assert!(h.drain().is_empty(), "the first list rolls nothing");

        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("a", &[("db-pass", "2")])),
        );
        assert!(h.drain().is_empty(), "an ignored class rolls nothing");

        h.send(class_stream(), StreamEvent::Applied(mk_class(&[])));
        assert!(
            h.drain().is_empty(),
            "an annotation change alone rolls nothing"
        );
        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("a", &[("db-pass", "3")])),
        );
        assert_eq!(names(&h.drain()), ["vault-user"]);

        // Set again, then the class deleted: its flags go with it.
        h.advance(COOLDOWN * 2);
        h.send(
            class_stream(),
            StreamEvent::Applied(mk_class(&[(IGNORE, "true")])),
        );
        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("a", &[("db-pass", "4")])),
        );
        assert!(h.drain().is_empty());
        h.send(
            class_stream(),
            StreamEvent::Deleted(mk_class(&[(IGNORE, "true")])),
        );
        h.advance(COOLDOWN * 2);
        h.send(
            spc_stream(),
            StreamEvent::Applied(mk_pod_status("a", &[("db-pass", "5")])),
        );
        assert_eq!(names(&h.drain()), ["vault-user"]);
    }

    // ---- invalid named-list items -------------------------------------------

    #[test]
    fn invalid_list_items_are_reported_once_per_workload_version() {
        let reload = "configmap.reloader.stakater.com/reload";
        let broken = mk_user("web", &[(reload, "app-.*, broken[")]);
        let (_, first) = workload_of(&broken);
        let reported: Vec<String> = newly_invalid(None, &first)
            .iter()
            .map(|i| i.item.clone())
            .collect();
        assert_eq!(reported, ["broken["]);
        // The same version again (a status update, a re-list): nothing.
        let (_, again) = workload_of(&broken);
        assert!(newly_invalid(Some(&first), &again).is_empty());
        // Another invalid item: reported.
        let (_, other) = workload_of(&mk_user("web", &[(reload, "(unclosed")]));
        assert_eq!(newly_invalid(Some(&again), &other).len(), 1);
        // Fixed: nothing to report.
        let (_, fixed) = workload_of(&mk_user("web", &[(reload, "app-.*")]));
        assert!(newly_invalid(Some(&other), &fixed).is_empty());
        assert!(newly_invalid(None, &fixed).is_empty());
    }

    // ---- start -----------------------------------------------------------------

    #[test]
    fn the_first_list_rolls_nothing_even_with_reload_on_create() {
        let cm = app_config(&[("a", "1")]);
        let marked = mk_deployment(
            NS,
            "marked",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                &whole(&cm),
            )],
        );
        let unmarked = mk_user("unmarked", &[AUTO]);
        let mut h = Harness::new(Settings {
            reload_on_create: true,
            ..mk_settings()
        });
        h.list_deployments(&[&marked, &unmarked]);
        assert!(!h.reconciler.is_synced());
        h.list_config_maps(&[&cm]);
        assert!(h.reconciler.is_synced());
        assert_eq!(h.reconciler.cached(), (1, 2));
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn catch_up_rolls_a_stale_marker_once() {
        let cm = app_config(&[("a", "2")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                "written-for-older-data",
            )],
        );
        let mut h = Harness::new(mk_settings());
        h.list_config_maps(&[&cm]);
        assert_eq!(
            h.reconciler.pending(),
            0,
            "not before every stream is synced"
        );
        h.list_deployments(&[&web]);
        assert_eq!(h.reconciler.pending(), 1);
        // The ConfigMap watch restarts before the rollout: no second catch-up.
        h.list_config_maps(&[&cm]);
        assert!(h.metric("reloader_workqueue_adds_total 1"));

        let rollouts = h.take_after_gather();
        assert_eq!(names(&rollouts), ["web"]);
        assert_eq!(
            rollouts[0].plan.env,
            [EnvMarker::new("app", VAR, whole(&cm))]
        );
        let web = roll(web, &rollouts[0].plan);
        h.finish(rollouts[0].clone(), Outcome::Done);
        h.apply_deployment(&web);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn catch_up_leaves_a_workload_without_marker_alone() {
        let cm = app_config(&[("a", "1")]);
        let mut h = Harness::started(mk_settings(), &[&cm], &[&mk_user("web", &[AUTO])]);
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn catch_up_takes_reloaders_sha1_of_the_current_data_as_current() {
        // Migration from Reloader in keyed mode: its marker is not ours, but it
        // stands for the same data.
        let cm = app_config(&[("test", "test")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                "b3cefbcce711f8574b0e66c41fc1dcf06eb5b6db",
            )],
        );
        let mut h = Harness::started(mk_settings(), &[&cm], &[&web]);
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn catch_up_with_annotations_strategy_compares_last_reloaded_from() {
        let cm = app_config(&[("a", "1")]);
        let json = |hash: &str| {
            serde_json::json!({
                "type": "CONFIGMAP", "name": "app-config", "namespace": NS,
                "hash": hash, "containerRefs": ["app"],
            })
            .to_string()
        };
        let key = crate::decide::annotations::LAST_RELOADED_FROM;
        let stale = with_template_annotation(mk_user("stale", &[AUTO]), key, &json("old"));
        let current =
            with_template_annotation(mk_user("current", &[AUTO]), key, &json(&whole(&cm)));
        let settings = Settings {
            plan: mk_plan_settings(Strategy::Annotations),
            ..mk_settings()
        };
        let mut h = Harness::started(settings, &[&cm], &[&stale, &current]);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["stale"]);
        let written: serde_json::Value = serde_json::from_str(
            rollouts[0]
                .plan
                .reloaded_from
                .as_deref()
                .expect("an annotation is planned"),
        )
        .expect("valid JSON");
        assert_eq!(written["hash"], whole(&cm));
    }

    /// `name` reading `app-config` and `extra-config` whole, carrying the two
    /// annotations of the `annotations` strategy.
    fn mk_two_source_user(name: &str, last: &ConfigMap, digests: serde_json::Value) -> Deployment {
        use crate::decide::annotations::{LAST_RELOADED_FROM, RELOADED_DIGESTS};
        let app = with_env_from(
            with_env_from(mk_container("app"), "app-config"),
            "extra-config",
        );
        let last = serde_json::json!({
            "type": "CONFIGMAP", "name": last.metadata.name, "namespace": NS,
            "hash": whole(last), "containerRefs": ["app"],
        });
        let d = mk_deployment(NS, name, &[AUTO], vec![app]);
        let d = with_template_annotation(d, LAST_RELOADED_FROM, &last.to_string());
        with_template_annotation(d, RELOADED_DIGESTS, &digests.to_string())
    }

    #[test]
    fn catch_up_with_annotations_strategy_covers_every_recorded_source() {
        let cm = app_config(&[("a", "2")]);
        let extra = mk_config_map(NS, "extra-config", &[("b", "1")], &[]);
        // Both last rolled for extra-config; app-config changed since for `behind`
        // only. last-reloaded-from, which names extra-config, cannot tell them apart.
        let behind = mk_two_source_user(
            "behind",
            &extra,
            serde_json::json!({"CONFIGMAP/app-config": "old", "CONFIGMAP/extra-config": whole(&extra)}),
        );
        let settled = mk_two_source_user(
            "settled",
            &extra,
            serde_json::json!({"CONFIGMAP/app-config": whole(&cm), "CONFIGMAP/extra-config": whole(&extra)}),
        );
        let settings = Settings {
            plan: mk_plan_settings(Strategy::Annotations),
            ..mk_settings()
        };
        let mut h = Harness::started(settings, &[&cm, &extra], &[&behind, &settled]);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["behind"]);
        let plan = &rollouts[0].plan;
        let json = |text: &Option<String>| -> serde_json::Value {
            serde_json::from_str(text.as_deref().expect("written")).expect("JSON")
        };
        assert_eq!(json(&plan.reloaded_from)["name"], "app-config");
        assert_eq!(
            json(&plan.reloaded_digests),
            serde_json::json!({"CONFIGMAP/app-config": whole(&cm), "CONFIGMAP/extra-config": whole(&extra)})
        );
    }

    #[test]
    fn an_annotations_rollout_records_every_source_and_a_second_change_reads_it() {
        let cm = app_config(&[("a", "1")]);
        let extra = mk_config_map(NS, "extra-config", &[("b", "1")], &[]);
        let user = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_env_from(
                with_env_from(mk_container("app"), "app-config"),
                "extra-config",
            )],
        );
        let settings = Settings {
            plan: mk_plan_settings(Strategy::Annotations),
            ..mk_settings()
        };
        let mut h = Harness::started(settings, &[&cm, &extra], &[&user]);
        assert!(h.drain().is_empty(), "no marker yet: nothing to catch up");
        let cm2 = app_config(&[("a", "2")]);
        h.apply_config_map(&cm2);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["web"]);
        let digests: serde_json::Value = serde_json::from_str(
            rollouts[0]
                .plan
                .reloaded_digests
                .as_deref()
                .expect("written"),
        )
        .expect("JSON");
        // The source that did not change is recorded too: the new pods read it.
        assert_eq!(
            digests,
            serde_json::json!({"CONFIGMAP/app-config": whole(&cm2), "CONFIGMAP/extra-config": whole(&extra)})
        );
    }

    // ---- webhook mode -------------------------------------------------------------

    #[test]
    fn webhook_mode_announces_changes_and_rolls_nothing() {
        let cm = app_config(&[("a", "1")]);
        let mut settings = mk_settings();
        settings.webhook_mode = true;
        let mut h = Harness::started(settings, &[&cm], &[&mk_user("web", &[AUTO])]);
        assert!(
            h.reconciler.take_announcements().is_empty(),
            "the first list announces nothing"
        );
        h.apply_config_map(&app_config(&[("a", "2")]));
        assert_eq!(h.reconciler.take_announcements(), [cm_id("app-config")]);
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
        h.apply_config_map(&mk_config_map(
            NS,
            "app-config",
            &[("a", "2")],
            &[("team", "x")],
        ));
        assert!(
            h.reconciler.take_announcements().is_empty(),
            "a metadata-only change is not announced"
        );
    }

    // ---- changes ------------------------------------------------------------------

    #[test]
    fn a_data_change_rolls_every_concerned_single_source_workload_at_once() {
        let v1 = app_config(&[("a", "1")]);
        let other = mk_deployment(NS, "other", &[AUTO], vec![mk_container("app")]);
        let mut h = Harness::started(
            mk_settings(),
            &[&v1],
            &[&mk_user("web", &[AUTO]), &mk_user("api", &[AUTO]), &other],
        );
        let v2 = app_config(&[("a", "2")]);
        h.apply_config_map(&v2);
        assert_eq!(h.reconciler.pending(), 2);
        // Each uses one source only: nothing to wait for.
        let rollouts = h.take();
        assert_eq!(names(&rollouts), ["api", "web"]);
        for rollout in &rollouts {
            assert_eq!(rollout.plan.env, [EnvMarker::new("app", VAR, whole(&v2))]);
            assert_eq!(rollout.pending, BTreeSet::from([cm_id("app-config")]));
            assert_eq!(rollout.queued_at, h.now);
        }
    }

    #[test]
    fn a_metadata_only_change_rolls_nothing() {
        let cm = app_config(&[("a", "1")]);
        let mut h = Harness::started(mk_settings(), &[&cm], &[&mk_user("web", &[AUTO])]);
        let relabelled = mk_config_map(NS, "app-config", &[("a", "1")], &[("team", "x")]);
        h.apply_config_map(&relabelled);
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
        assert!(h.metric("reloader_skipped_total{reason=\"no_data_change\"} 1"));
        assert!(h.metric("reloader_reconcile_total{result=\"skipped\"} 1"));
    }

    #[test]
    fn the_env_marker_goes_on_the_container_reloader_picks() {
        // A sidecar first; `app` mounts a volume of `app-config` that projects
        // key `a` only: the marker goes on `app`, over key `a`.
        let v1 = app_config(&[("a", "1"), ("b", "1")]);
        let web = with_volume(
            mk_deployment(
                NS,
                "web",
                &[AUTO],
                vec![
                    mk_container("sidecar"),
                    with_mount(mk_container("app"), "config"),
                ],
            ),
            "config",
            "app-config",
            &["a"],
        );
        let mut h = Harness::started(mk_settings(), &[&v1], &[&web]);
        let v2 = app_config(&[("a", "2"), ("b", "1")]);
        h.apply_config_map(&v2);
        let rollouts = h.take_after_gather();
        assert_eq!(
            rollouts[0].plan.env,
            [EnvMarker::new(
                "app",
                "STAKATER_APP_CONFIG_CONFIGMAP",
                crate::decide::digest::marker(
                    &mk_key(),
                    &cm_id("app-config"),
                    &source_of(&v2).1.digests,
                    &keys(&["a"]),
                )
            )]
        );
    }

    // ---- key precision ----------------------------------------------------------

    /// Starts with `app-config` {a: 1, b: 1} and `d`, then changes key `b`.
    fn change_b(d: &Deployment) -> Harness {
        let mut h = Harness::started(
            mk_settings(),
            &[&app_config(&[("a", "1"), ("b", "1")])],
            &[d],
        );
        h.apply_config_map(&app_config(&[("a", "1"), ("b", "2")]));
        h
    }

    #[test]
    fn a_key_ref_user_of_a_is_not_queued_when_b_changes() {
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_key_ref(mk_container("app"), "app-config", "a")],
        );
        let mut h = change_b(&web);
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn a_volume_items_user_of_a_is_not_queued_when_b_changes() {
        let web = with_volume(
            mk_deployment(
                NS,
                "web",
                &[AUTO],
                vec![with_mount(mk_container("app"), "config")],
            ),
            "config",
            "app-config",
            &["a"],
        );
        let mut h = change_b(&web);
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn an_env_from_user_is_queued_when_b_changes() {
        let mut h = change_b(&mk_user("web", &[AUTO]));
        assert_eq!(names(&h.drain()), ["web"]);
    }

    #[test]
    fn a_whole_volume_user_is_queued_when_b_changes() {
        let web = with_volume(
            mk_deployment(
                NS,
                "web",
                &[AUTO],
                vec![with_mount(mk_container("app"), "config")],
            ),
            "config",
            "app-config",
            &[],
        );
        let mut h = change_b(&web);
        assert_eq!(names(&h.drain()), ["web"]);
    }

    // ---- decision order ------------------------------------------------------------

    /// Starts with `app-config` v1 and `deployments`, changes it, and returns
    /// the names of the workloads rolled.
    fn rolled_on_change(settings: Settings, deployments: &[&Deployment]) -> Vec<String> {
        let mut h = Harness::started(settings, &[&app_config(&[("a", "1")])], deployments);
        h.apply_config_map(&app_config(&[("a", "2")]));
        h.drain().iter().map(|r| r.workload.name.clone()).collect()
    }

    #[test]
    fn auto_true_rolls_and_no_annotation_does_not() {
        let rolled = rolled_on_change(
            mk_settings(),
            &[&mk_user("auto", &[AUTO]), &mk_user("plain", &[])],
        );
        assert_eq!(rolled, ["auto"]);
    }

    #[test]
    fn auto_reload_all_respects_an_explicit_auto_false() {
        let mut settings = mk_settings();
        settings.plan.decide = DecideSettings {
            auto_reload_all: true,
            ..DecideSettings::default()
        };
        let rolled = rolled_on_change(
            settings,
            &[
                &mk_user("plain", &[]),
                &mk_user("opted-out", &[("reloader.stakater.com/auto", "false")]),
            ],
        );
        assert_eq!(rolled, ["plain"]);
    }

    #[test]
    fn a_named_item_matching_an_unreferenced_source_rolls_the_first_container() {
        let web = mk_deployment(
            NS,
            "web",
            &[("configmap.reloader.stakater.com/reload", "app-.*")],
            vec![mk_container("first"), mk_container("second")],
        );
        let v1 = app_config(&[("a", "1")]);
        let mut h = Harness::started(mk_settings(), &[&v1], &[&web]);
        let v2 = app_config(&[("a", "2")]);
        h.apply_config_map(&v2);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["web"]);
        assert_eq!(
            rollouts[0].plan.env,
            [EnvMarker::new("first", VAR, whole(&v2))]
        );
    }

    #[test]
    fn an_ignored_config_map_rolls_nothing() {
        let ignore = [("reloader.stakater.com/ignore", "true")];
        let v1 = mk_config_map(NS, "app-config", &[("a", "1")], &ignore);
        let mut h = Harness::started(mk_settings(), &[&v1], &[&mk_user("web", &[AUTO])]);
        h.apply_config_map(&mk_config_map(NS, "app-config", &[("a", "2")], &ignore));
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    // ---- cooldown ------------------------------------------------------------------

    #[test]
    fn twenty_rapid_changes_give_two_rollouts_the_last_with_the_final_data() {
        let mut web = mk_user("web", &[AUTO]);
        let mut h = Harness::started(mk_settings(), &[&app_config(&[("n", "0")])], &[&web]);
        let mut done_at = Vec::new();
        let mut last = app_config(&[("n", "0")]);
        // One change every 200 ms for 4 s, well within the 10 s cooldown; each
        // rollout done at once and reported back by the watch.
        for n in 1..=20 {
            last = app_config(&[("n", &n.to_string())]);
            h.apply_config_map(&last);
            h.advance(Duration::from_millis(200));
            for rollout in h.take() {
                web = roll(web, &rollout.plan);
                h.finish(rollout, Outcome::Done);
                done_at.push(h.now);
                h.apply_deployment(&web);
            }
        }
        assert_eq!(done_at.len(), 1, "the first change rolls at once");
        assert_eq!(h.reconciler.next_due(), Some(done_at[0] + COOLDOWN));
        let trailing = h.drain();
        assert_eq!(trailing.len(), 1, "then one trailing rollout");
        assert_eq!(
            trailing[0].plan.env,
            [EnvMarker::new("app", VAR, whole(&last))]
        );
    }

    #[test]
    fn two_config_maps_changed_within_the_gather_window_give_one_rollout() {
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_env_from(
                with_env_from(mk_container("app"), "app-config"),
                "feature-flags",
            )],
        );
        let flags = |v: &str| mk_config_map(NS, "feature-flags", &[("on", v)], &[]);
        let mut h = Harness::started(
            mk_settings(),
            &[&app_config(&[("a", "1")]), &flags("no")],
            &[&web],
        );
        let (config2, flags2) = (app_config(&[("a", "2")]), flags("yes"));
        h.apply_config_map(&config2);
        h.advance(GATHER / 2);
        h.apply_config_map(&flags2);
        let rollouts = h.drain();
        assert_eq!(rollouts.len(), 1);
        assert_eq!(
            rollouts[0].plan.env,
            [
                EnvMarker::new("app", VAR, whole(&config2)),
                EnvMarker::new("app", "STAKATER_FEATURE_FLAGS_CONFIGMAP", whole(&flags2)),
            ]
        );
        assert!(h.metric("rekindle_operator_rollouts_coalesced_total 1"));
    }

    #[test]
    fn a_change_during_a_rollout_waits_for_the_cooldown() {
        let mut web = mk_user("web", &[AUTO]);
        let mut h = Harness::started(mk_settings(), &[&app_config(&[("n", "0")])], &[&web]);
        h.apply_config_map(&app_config(&[("n", "1")]));
        let first = h.take_after_gather().remove(0);
        // The rollout is in flight when the next change arrives.
        h.advance(GATHER);
        let last = app_config(&[("n", "2")]);
        h.apply_config_map(&last);
        h.advance(GATHER);
        web = roll(web, &first.plan);
        h.finish(first, Outcome::Done);
        h.apply_deployment(&web);
        let done_at = h.now;
        assert!(h.take_after_gather().is_empty());
        assert_eq!(h.reconciler.next_due(), Some(done_at + COOLDOWN));
        let trailing = h.drain();
        assert_eq!(
            trailing[0].plan.env,
            [EnvMarker::new("app", VAR, whole(&last))]
        );
    }

    #[test]
    fn a_value_already_on_the_workload_rolls_nothing() {
        // Changed and changed back within the gather window: the marker on the
        // workload is the one the final data gives.
        let v1 = app_config(&[("a", "1")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                &whole(&v1),
            )],
        );
        let mut h = Harness::started(mk_settings(), &[&v1], &[&web]);
        h.apply_config_map(&app_config(&[("a", "2")]));
        h.apply_config_map(&v1);
        assert_eq!(h.reconciler.pending(), 1);
        assert!(h.drain().is_empty());
        assert!(h.metric("reloader_skipped_total{reason=\"strategy_not_updated\"} 1"));
    }

    // ---- outcomes ----------------------------------------------------------------------

    #[test]
    fn a_failed_rollout_is_retried_with_backoff_keeping_its_sources() {
        let mut h = Harness::started(
            mk_settings(),
            &[&app_config(&[("a", "1")])],
            &[&mk_user("web", &[AUTO])],
        );
        h.apply_config_map(&app_config(&[("a", "2")]));
        let first = h.take_after_gather().remove(0);
        h.finish(first.clone(), Outcome::Failed);

        h.advance(Duration::from_secs(1) - MS);
        assert!(h.take().is_empty(), "not before 1 s");
        h.advance(MS);
        let second = h.take().remove(0);
        assert_eq!(second.pending, first.pending);
        assert_eq!(second.plan, first.plan);
        assert_eq!(second.queued_at, first.queued_at);
        h.finish(second, Outcome::Failed);

        h.advance(Duration::from_secs(2) - MS);
        assert!(h.take().is_empty(), "not before 2 s");
        h.advance(MS);
        let third = h.take().remove(0);
        assert_eq!(third.pending, first.pending);
        h.finish(third, Outcome::Done);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn the_backoff_starts_over_after_a_retry_found_nothing_to_do() {
        let v1 = app_config(&[("a", "1")]);
        let web = mk_user("web", &[AUTO]);
        let mut h = Harness::started(mk_settings(), &[&v1], &[&web]);
        let v2 = app_config(&[("a", "2")]);
        h.apply_config_map(&v2);
        let failed = h.take_after_gather().remove(0);
        h.finish(failed.clone(), Outcome::Failed);
        // The write went through after all: the watch shows the marker.
        h.apply_deployment(&roll(web.clone(), &failed.plan));
        h.advance(Duration::from_secs(1));
        assert!(h.take().is_empty());
        // Much later, a new change fails once: retried after 1 s again.
        h.advance(COOLDOWN);
        h.apply_config_map(&app_config(&[("a", "3")]));
        let again = h.take_after_gather().remove(0);
        h.finish(again, Outcome::Failed);
        h.advance(Duration::from_secs(1));
        assert_eq!(names(&h.take()), ["web"]);
    }

    #[test]
    fn a_gone_workload_is_forgotten() {
        let mut h = Harness::started(
            mk_settings(),
            &[&app_config(&[("a", "1")])],
            &[&mk_user("web", &[AUTO])],
        );
        h.apply_config_map(&app_config(&[("a", "2")]));
        let rollout = h.take_after_gather().remove(0);
        h.finish(rollout, Outcome::Gone);
        assert!(h.reconciler.workload(&deploy_id("web")).is_none());
        assert_eq!(h.reconciler.cached(), (1, 0));
        h.apply_config_map(&app_config(&[("a", "3")]));
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    // ---- re-lists ------------------------------------------------------------------------

    #[test]
    fn a_relist_with_changed_data_rolls() {
        let mut h = Harness::started(
            mk_settings(),
            &[&app_config(&[("a", "1")])],
            &[&mk_user("web", &[AUTO])],
        );
        let v2 = app_config(&[("a", "2")]);
        h.list_config_maps(&[&v2]);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["web"]);
        assert_eq!(
            rollouts[0].plan.env,
            [EnvMarker::new("app", VAR, whole(&v2))]
        );
    }

    #[test]
    fn a_relist_with_identical_data_rolls_nothing() {
        // Even with reload-on-create: a listed object already known is no
        // creation.
        let cm = app_config(&[("a", "1")]);
        let web = mk_user("web", &[AUTO]);
        let settings = Settings {
            reload_on_create: true,
            ..mk_settings()
        };
        let mut h = Harness::started(settings, &[&cm], &[&web]);
        h.list_config_maps(&[&cm]);
        h.list_deployments(&[&web]);
        assert_eq!(h.reconciler.cached(), (1, 1));
        assert!(h.drain().is_empty());
    }

    #[test]
    fn an_object_missing_from_a_relist_is_removed() {
        let cm = app_config(&[("a", "1")]);
        let mut h = Harness::started(mk_settings(), &[&cm], &[&mk_user("web", &[AUTO])]);
        h.list_config_maps(&[]);
        assert_eq!(h.reconciler.cached(), (0, 1));
        h.list_deployments(&[]);
        assert_eq!(h.reconciler.cached(), (0, 0));
        assert!(h.drain().is_empty(), "without reload-on-delete");
    }

    #[test]
    fn a_workload_missing_from_a_relist_loses_its_pending_rollout() {
        let mut h = Harness::started(
            mk_settings(),
            &[&app_config(&[("a", "1")])],
            &[&mk_user("web", &[AUTO])],
        );
        h.apply_config_map(&app_config(&[("a", "2")]));
        assert_eq!(h.reconciler.pending(), 1);
        h.list_deployments(&[]);
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others() {
        let stream = |ns: &str| StreamId {
            watched: Watched::Source(SourceKind::ConfigMap),
            namespace: Some(ns.to_owned()),
        };
        let metrics = Metrics::new(false);
        let now = Instant::now();
        let mut reconciler = Reconciler::new(mk_settings(), [stream("a"), stream("b")]);
        for ns in ["a", "b"] {
            let cm = mk_config_map(ns, "app-config", &[("k", "v")], &[]);
            for event in [
                StreamEvent::Relisting,
                StreamEvent::Listed(cm_object(&cm)),
                StreamEvent::ListDone,
            ] {
                let stream = stream(ns);
                reconciler.handle(now, Message { stream, event }, &metrics);
            }
        }
        assert_eq!(reconciler.cached(), (2, 0));
        for event in [StreamEvent::Relisting, StreamEvent::ListDone] {
            let stream = stream("a");
            reconciler.handle(now, Message { stream, event }, &metrics);
        }
        assert_eq!(reconciler.cached(), (1, 0));
    }

    #[test]
    fn with_reload_on_delete_an_object_missing_from_a_relist_removes_the_marker() {
        let cm = app_config(&[("a", "1")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                &whole(&cm),
            )],
        );
        let mut h = Harness::started(with_reload_on_delete(mk_settings()), &[&cm], &[&web]);
        h.list_config_maps(&[]);
        assert_eq!(h.reconciler.pending(), 1);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["web"]);
        assert_eq!(rollouts[0].plan.remove, [(0, 0, VAR.to_owned())]);
        assert!(rollouts[0].plan.env.is_empty());
    }

    #[test]
    fn with_reload_on_delete_a_deleted_config_map_removes_the_marker() {
        let cm = app_config(&[("a", "1")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                &whole(&cm),
            )],
        );
        let mut h = Harness::started(with_reload_on_delete(mk_settings()), &[&cm], &[&web]);
        h.delete_config_map(&cm);
        let rollouts = h.drain();
        assert_eq!(rollouts[0].plan.remove, [(0, 0, VAR.to_owned())]);
    }

    #[test]
    fn without_reload_on_delete_a_deleted_config_map_rolls_nothing() {
        let cm = app_config(&[("a", "1")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                &whole(&cm),
            )],
        );
        let mut h = Harness::started(mk_settings(), &[&cm], &[&web]);
        h.delete_config_map(&cm);
        assert_eq!(h.reconciler.cached(), (0, 1));
        assert!(h.drain().is_empty());
    }

    #[test]
    fn an_ignored_config_map_deleted_with_reload_on_delete_rolls_nothing() {
        let cm = mk_config_map(
            NS,
            "app-config",
            &[("a", "1")],
            &[("reloader.stakater.com/ignore", "true")],
        );
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                "written-before-the-ignore",
            )],
        );
        let mut h = Harness::started(with_reload_on_delete(mk_settings()), &[&cm], &[&web]);
        h.delete_config_map(&cm);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn an_ignored_config_map_missing_from_a_relist_rolls_nothing() {
        let cm = mk_config_map(
            NS,
            "app-config",
            &[("a", "1")],
            &[("reloader.stakater.com/ignore", "true")],
        );
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                "written-before-the-ignore",
            )],
        );
        let mut h = Harness::started(with_reload_on_delete(mk_settings()), &[&cm], &[&web]);
        h.list_config_maps(&[]);
        assert_eq!(h.reconciler.cached(), (0, 1));
        assert!(h.drain().is_empty());
    }

    /// `web` with `search: "true"`, carrying a marker for `app-config`.
    fn mk_searching_user() -> Deployment {
        mk_deployment(
            NS,
            "web",
            &[("reloader.stakater.com/search", "true")],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                "some-earlier-value",
            )],
        )
    }

    #[test]
    fn a_matched_config_map_deleted_with_reload_on_delete_rolls_a_search_workload() {
        let cm = mk_config_map(
            NS,
            "app-config",
            &[("a", "1")],
            &[("reloader.stakater.com/match", "true")],
        );
        let web = mk_searching_user();
        let mut h = Harness::started(with_reload_on_delete(mk_settings()), &[&cm], &[&web]);
        h.delete_config_map(&cm);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["web"]);
        assert_eq!(rollouts[0].plan.remove, [(0, 0, VAR.to_owned())]);
    }

    #[test]
    fn an_unmatched_config_map_deleted_with_reload_on_delete_rolls_no_search_workload() {
        let cm = app_config(&[("a", "1")]);
        let web = mk_searching_user();
        let mut h = Harness::started(with_reload_on_delete(mk_settings()), &[&cm], &[&web]);
        h.delete_config_map(&cm);
        assert_eq!(h.reconciler.pending(), 0);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn annotations_strategy_delete_writes_reloaders_delete_hash() {
        let cm = app_config(&[("a", "1")]);
        let mut settings = with_reload_on_delete(mk_settings());
        settings.plan.strategy = Strategy::Annotations;
        let mut h = Harness::started(settings, &[&cm], &[&mk_user("web", &[AUTO])]);
        h.delete_config_map(&cm);
        let rollouts = h.drain();
        let written: serde_json::Value = serde_json::from_str(
            rollouts[0]
                .plan
                .reloaded_from
                .as_deref()
                .expect("an annotation is planned"),
        )
        .expect("valid JSON");
        assert_eq!(
            written["hash"],
            sha1_hex(b"__RELOADER_EMPTY_DELETE_MARKER__")
        );
    }

    // ---- create --------------------------------------------------------------------------

    #[test]
    fn reload_on_create_rolls_the_users_of_a_new_source() {
        let settings = Settings {
            reload_on_create: true,
            ..mk_settings()
        };
        let mut h = Harness::started(settings, &[], &[&mk_user("web", &[AUTO])]);
        let cm = app_config(&[("a", "1")]);
        h.apply_config_map(&cm);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["web"]);
        assert_eq!(
            rollouts[0].plan.env,
            [EnvMarker::new("app", VAR, whole(&cm))]
        );
    }

    #[test]
    fn without_reload_on_create_a_new_source_rolls_nothing() {
        let mut h = Harness::started(mk_settings(), &[], &[&mk_user("web", &[AUTO])]);
        h.apply_config_map(&app_config(&[("a", "1")]));
        assert_eq!(h.reconciler.cached(), (1, 1));
        assert!(h.drain().is_empty());
    }

    // ---- namespaces --------------------------------------------------------------------

    fn ignoring_team() -> Settings {
        Settings {
            ignored_namespaces: BTreeSet::from([NS.to_owned()]),
            ..mk_settings()
        }
    }

    #[test]
    fn a_change_in_an_ignored_namespace_rolls_nothing() {
        let rolled = rolled_on_change(ignoring_team(), &[&mk_user("web", &[AUTO])]);
        assert!(rolled.is_empty());
    }

    #[test]
    fn a_change_in_another_namespace_still_rolls() {
        let settings = Settings {
            ignored_namespaces: BTreeSet::from(["elsewhere".to_owned()]),
            ..mk_settings()
        };
        let rolled = rolled_on_change(settings, &[&mk_user("web", &[AUTO])]);
        assert_eq!(rolled, ["web"]);
    }

    #[test]
    fn a_change_rolls_only_users_in_its_namespace() {
        let here = app_config(&[("a", "1")]);
        let there = mk_config_map("elsewhere", "app-config", &[("a", "1")], &[]);
        let far_user = mk_deployment(
            "elsewhere",
            "web",
            &[AUTO],
            vec![with_env_from(mk_container("app"), "app-config")],
        );
        let mut h = Harness::started(
            mk_settings(),
            &[&here, &there],
            &[&mk_user("web", &[AUTO]), &far_user],
        );
        h.apply_config_map(&app_config(&[("a", "2")]));
        let rollouts = h.drain();
        assert_eq!(rollouts.len(), 1);
        assert_eq!(rollouts[0].workload, deploy_id("web"));
    }

    #[test]
    fn catch_up_skips_ignored_namespaces() {
        let cm = app_config(&[("a", "2")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                "written-for-older-data",
            )],
        );
        let mut h = Harness::started(ignoring_team(), &[&cm], &[&web]);
        assert!(h.drain().is_empty());
    }

    fn stale_web() -> Deployment {
        mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_env_from(mk_container("app"), "app-config"),
                VAR,
                "written-for-older-data",
            )],
        )
    }

    #[test]
    fn catch_up_rolls_nothing_in_webhook_mode() {
        let cm = app_config(&[("a", "2")]);
        let mut settings = mk_settings();
        settings.webhook_mode = true;
        let mut h = Harness::started(settings, &[&cm], &[&stale_web()]);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn catch_up_skips_namespaces_the_selector_did_not_select() {
        let cm = app_config(&[("a", "2")]);
        let mut settings = mk_settings();
        // The selector is on and selected nothing (no Namespaces stream fed).
        settings.namespace_selector = true;
        let mut h = Harness::started(settings, &[&cm], &[&stale_web()]);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn a_deleted_and_recreated_workload_keeps_its_cooldown() {
        // A Job is rolled by delete and re-create: the new one must still wait
        // out the period after the rollout that re-created it.
        let v1 = app_config(&[("a", "1")]);
        let web = mk_user("web", &[AUTO]);
        let mut h = Harness::started(mk_settings(), &[&v1], &[&web]);
        h.apply_config_map(&app_config(&[("a", "2")]));
        let rollout = h.take().remove(0);
        h.finish(rollout, Outcome::Done);
        h.send(deploy_stream(), StreamEvent::Deleted(deploy_object(&web)));
        h.apply_deployment(&web);
        h.advance(MS);
        h.apply_config_map(&app_config(&[("a", "3")]));
        assert!(h.take().is_empty(), "within the cooldown");
        h.advance(COOLDOWN);
        assert_eq!(h.take().len(), 1);
    }

    // ---- hash modes --------------------------------------------------------------------

    #[test]
    fn with_reloader_sha1_a_change_to_an_unread_key_leaves_no_stale_marker() {
        // The SHA-1 covers the whole object: if a change to key `b` did not
        // roll a user of key `a`, its marker would be stale from then on and
        // the next start or leader change would roll it, at a surprising time.
        let mut settings = mk_settings();
        settings.plan.hash = HashMode::ReloaderSha1;
        let v1 = app_config(&[("a", "1"), ("b", "1")]);
        let v2 = app_config(&[("a", "1"), ("b", "2")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_var(
                with_key_ref(mk_container("app"), "app-config", "a"),
                VAR,
                &source_of(&v1).1.reloader_sha1,
            )],
        );
        let mut h = Harness::started(settings.clone(), &[&v1], &[&web]);
        h.apply_config_map(&v2);
        let rollouts = h.drain();
        assert_eq!(names(&rollouts), ["web"], "the SHA-1 changed: roll now");
        let web = roll(web, &rollouts[0].plan);
        // Restart.
        let mut restarted = Harness::started(settings, &[&v2], &[&web]);
        assert!(restarted.drain().is_empty(), "nothing left to catch up");
    }

    // ---- the fleet view ------------------------------------------------------

    fn pod_stream() -> StreamId {
        StreamId {
            watched: Watched::Pods,
            namespace: None,
        }
    }

    /// A pod of Deployment `deployment` (through its ReplicaSet) reporting `digest`
    /// for `configmap/app-config`, or nothing.
    fn pod_object(name: &str, deployment: &str, digest: Option<rekindle::Digest>) -> Object {
        let mut meta = serde_json::json!({
            "name": name,
            "namespace": NS,
            "labels": {"pod-template-hash": "abc12"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-abc12"),
                "uid": "u", "controller": true,
            }],
        });
        if let Some(digest) = digest {
            let mut report = rekindle::report::Report::default();
            report.sources.insert(
                "configmap/app-config".to_owned(),
                rekindle::report::SourceReport::now(
                    digest,
                    rekindle::report::Result::Applied,
                    None,
                ),
            );
            meta["annotations"] =
                serde_json::json!({rekindle::report::ANNOTATION: report.to_json()});
        }
        let meta = serde_json::from_value(meta).expect("meta");
        let (id, entry) = crate::index::objects::pod(&meta);
        Object::Pod(id, entry)
    }

    #[test]
    fn fleet_counts_follow_pods_sources_and_workloads() {
        let v1 = app_config(&[("k", "1")]);
        let mut h = Harness::started(mk_settings(), &[&v1], &[&mk_user("web", &[])]);
        let d1 = rekindle::api::config_map_digest(&v1);
        h.send(pod_stream(), StreamEvent::Relisting);
        h.send(
            pod_stream(),
            StreamEvent::Listed(pod_object("web-1", "web", Some(d1))),
        );
        h.send(
            pod_stream(),
            StreamEvent::Listed(pod_object("web-2", "web", None)),
        );
        h.send(
            pod_stream(),
            StreamEvent::Listed(pod_object("api-1", "api", None)),
        );
        h.send(pod_stream(), StreamEvent::ListDone);
        let counts = |current, stale, unknown| Counts {
            current,
            stale,
            unknown,
            ..Counts::default()
        };
        // `api` has no reporting pod (and is not even known): no series.
        assert_eq!(
            h.reconciler.take_fleet_changes(),
            [(deploy_id("web"), Some(counts(1, 0, 1)))]
        );
        assert!(h.reconciler.take_fleet_changes().is_empty(), "nothing new");

        // The ConfigMap changes: the reporting pod is stale.
        let v2 = app_config(&[("k", "2")]);
        h.apply_config_map(&v2);
        assert_eq!(
            h.reconciler.take_fleet_changes(),
            [(deploy_id("web"), Some(counts(0, 1, 1)))]
        );
        let d2 = rekindle::api::config_map_digest(&v2);
        h.send(
            pod_stream(),
            StreamEvent::Applied(pod_object("web-2", "web", Some(d2))),
        );
        assert_eq!(
            h.reconciler.take_fleet_changes(),
            [(deploy_id("web"), Some(counts(1, 1, 0)))]
        );
        // A re-list without the reporting pods: the series go.
        h.send(pod_stream(), StreamEvent::Relisting);
        h.send(pod_stream(), StreamEvent::ListDone);
        assert_eq!(
            h.reconciler.take_fleet_changes(),
            [(deploy_id("web"), None)]
        );
        assert_eq!(h.reconciler.cached_pods(), 0);
    }
}
