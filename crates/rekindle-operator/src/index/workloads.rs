//! What the operator keeps of each workload: its parsed rules, what its pod
//! template references (and which keys), the markers already written on it,
//! and the few fields rollouts need. Indexed by source, so that a ConfigMap
//! event finds its workloads without listing anything.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::decide::annotations::{RolloutStrategy, WorkloadRules};
use crate::decide::decision::needs_named_scan;
use crate::decide::fleet::Mounts;
use crate::decide::pause::Pause;
use crate::decide::references::TemplateRefs;
use crate::model::{SourceId, SourceKind, WorkloadId, WorkloadKind};
use k8s_openapi::jiff::Timestamp;

/// One workload, reduced.
#[derive(Debug)]
pub struct WorkloadEntry {
    pub uid: String,
    pub rules: WorkloadRules,
    pub refs: TemplateRefs,
    /// The pod template's `reloader.stakater.com/last-reloaded-from`, if any.
    pub reloaded_from: Option<String>,
    /// The pod template's `rekindle.io/reloaded-digests`, if any.
    pub reloaded_digests: Option<String>,
    /// A CronJob with `spec.suspend: true` is never instantiated.
    pub suspended: bool,
    /// An Argo Rollout's `rollout-strategy` annotation.
    pub rollout_strategy: RolloutStrategy,
    /// A Deployment's `pause-period` / `paused-at` annotations.
    pub pause: Option<Pause>,
    /// Where the pod template mounts whole ConfigMaps and Secrets, to match the
    /// directories pods report (the fleet view).
    pub mounts: Mounts,
}

/// Every workload in scope, with reverse indexes by what it uses.
#[derive(Debug, Default)]
pub struct WorkloadIndex {
    entries: HashMap<WorkloadId, WorkloadEntry>,
    /// Workloads whose pod template references the source.
    referencing: HashMap<SourceId, BTreeSet<WorkloadId>>,
    /// Workloads that carry a named list (`configmap.reloader.stakater.com/reload`
    /// …) for a source kind in a namespace: a name in it may match a source the
    /// template does not reference, and Reloader rolls those too.
    naming: HashMap<(String, SourceKind), BTreeSet<WorkloadId>>,
    /// Deployments the operator paused, with the time to resume them.
    resumes: HashMap<WorkloadId, Timestamp>,
}

const SOURCE_KINDS: [SourceKind; 3] = [
    SourceKind::ConfigMap,
    SourceKind::Secret,
    SourceKind::SecretProviderClass,
];

impl WorkloadIndex {
    /// Stores `entry`, replacing what was known of `id`.
    pub fn apply(&mut self, id: WorkloadId, entry: WorkloadEntry) {
        self.unlink(&id);
        for (kind, name) in entry.refs.sources.keys() {
            self.referencing
                .entry(SourceId::new(*kind, id.namespace.clone(), name.clone()))
                .or_default()
                .insert(id.clone());
        }
        for kind in SOURCE_KINDS {
            if needs_named_scan(&entry.rules, kind) {
                self.naming
                    .entry((id.namespace.clone(), kind))
                    .or_default()
                    .insert(id.clone());
            }
        }
        if let Some(at) = entry.pause.as_ref().and_then(Pause::resume_at) {
            self.resumes.insert(id.clone(), at);
        }
        self.entries.insert(id, entry);
    }

    pub fn remove(&mut self, id: &WorkloadId) -> Option<WorkloadEntry> {
        self.unlink(id);
        self.entries.remove(id)
    }

    fn unlink(&mut self, id: &WorkloadId) {
        self.resumes.remove(id);
        let Some(old) = self.entries.get(id) else {
            return;
        };
        for (kind, name) in old.refs.sources.keys() {
            let source = SourceId::new(*kind, id.namespace.clone(), name.clone());
            if let Some(set) = self.referencing.get_mut(&source) {
                set.remove(id);
                if set.is_empty() {
                    self.referencing.remove(&source);
                }
            }
        }
        for kind in SOURCE_KINDS {
            let key = (id.namespace.clone(), kind);
            if let Some(set) = self.naming.get_mut(&key) {
                set.remove(id);
                if set.is_empty() {
                    self.naming.remove(&key);
                }
            }
        }
    }

    pub fn get(&self, id: &WorkloadId) -> Option<&WorkloadEntry> {
        self.entries.get(id)
    }

    /// The workloads a change of `source` may concern: those that reference it
    /// and those with a named list for its kind in its namespace. The decision
    /// order then says which of them roll.
    pub fn candidates(&self, source: &SourceId) -> BTreeSet<WorkloadId> {
        let mut out = self.referencing.get(source).cloned().unwrap_or_default();
        if let Some(naming) = self.naming.get(&(source.namespace.clone(), source.kind)) {
            out.extend(naming.iter().cloned());
        }
        out
    }

    /// After a (re-)list of `kind` in `namespace` (`None`: all), removes the
    /// workloads the list did not return.
    pub fn retain_listed(
        &mut self,
        kind: WorkloadKind,
        namespace: Option<&str>,
        listed: &HashSet<WorkloadId>,
    ) -> Vec<WorkloadId> {
        let gone: Vec<WorkloadId> = self
            .entries
            .keys()
            .filter(|id| {
                id.kind == kind
                    && namespace.is_none_or(|ns| id.namespace == ns)
                    && !listed.contains(*id)
            })
            .cloned()
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone
    }

    /// Paused Deployments and when to resume each.
    pub fn resumes(&self) -> impl Iterator<Item = (&WorkloadId, &Timestamp)> {
        self.resumes.iter()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&WorkloadId, &WorkloadEntry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
