//! What the operator keeps of each pod, for the fleet view only: the workload that owns
//! it and a reduced copy of its report (source names, digests, outcomes). Pods of no
//! Deployment, StatefulSet or DaemonSet, and terminating pods, are not kept. Indexed by
//! workload, so that a change recomputes one workload's counts from its own pods.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::decide::fleet::PodReportEntry;
use crate::model::WorkloadId;

/// A pod, by namespace and name.
pub type PodId = (String, String);

/// One pod, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEntry {
    pub workload: WorkloadId,
    pub report: PodReportEntry,
}

/// Every pod kept, with the reverse index by workload.
#[derive(Debug, Default)]
pub struct PodIndex {
    pods: HashMap<PodId, PodEntry>,
    by_workload: HashMap<WorkloadId, BTreeSet<String>>,
}

impl PodIndex {
    /// Stores a pod (`None`: it no longer counts) and returns the workloads whose
    /// counts may have changed.
    pub fn apply(&mut self, id: PodId, entry: Option<PodEntry>) -> Vec<WorkloadId> {
        let mut touched: Vec<WorkloadId> = self.remove(&id).into_iter().collect();
        if let Some(entry) = entry {
            self.by_workload
                .entry(entry.workload.clone())
                .or_default()
                .insert(id.1.clone());
            if !touched.contains(&entry.workload) {
                touched.push(entry.workload.clone());
            }
            self.pods.insert(id, entry);
        }
        touched
    }

    /// Forgets a pod; returns its workload.
    pub fn remove(&mut self, id: &PodId) -> Option<WorkloadId> {
        let entry = self.pods.remove(id)?;
        if let Some(names) = self.by_workload.get_mut(&entry.workload) {
            names.remove(&id.1);
            if names.is_empty() {
                self.by_workload.remove(&entry.workload);
            }
        }
        Some(entry.workload)
    }

    /// After a (re-)list of `namespace` (`None`: all), forgets the pods the list did
    /// not return; returns their workloads.
    pub fn retain_listed(
        &mut self,
        namespace: Option<&str>,
        listed: &HashSet<PodId>,
    ) -> Vec<WorkloadId> {
        let gone: Vec<PodId> = self
            .pods
            .keys()
            .filter(|id| namespace.is_none_or(|ns| id.0 == ns) && !listed.contains(*id))
            .cloned()
            .collect();
        let mut touched = Vec::new();
        for id in gone {
            if let Some(workload) = self.remove(&id)
                && !touched.contains(&workload)
            {
                touched.push(workload);
            }
        }
        touched
    }

    /// The pods of `workload`, by name, with their reports.
    pub fn of(&self, workload: &WorkloadId) -> Vec<(&str, &PodReportEntry)> {
        let Some(names) = self.by_workload.get(workload) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| {
                let entry = self.pods.get(&(workload.namespace.clone(), name.clone()))?;
                Some((name.as_str(), &entry.report))
            })
            .collect()
    }

    /// Workloads in `namespace` that have pods kept.
    pub fn workloads_in(&self, namespace: &str) -> Vec<WorkloadId> {
        self.by_workload
            .keys()
            .filter(|w| w.namespace == namespace)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKind;

    fn mk_id(name: &str) -> PodId {
        ("shop".to_owned(), name.to_owned())
    }

    fn mk_entry(workload: &str) -> PodEntry {
        PodEntry {
            workload: WorkloadId::new(WorkloadKind::Deployment, "shop", workload),
            report: PodReportEntry::Absent,
        }
    }

    fn web() -> WorkloadId {
        WorkloadId::new(WorkloadKind::Deployment, "shop", "web")
    }

    #[test]
    fn pods_are_found_by_workload_and_moves_touch_both() {
        let mut index = PodIndex::default();
        assert_eq!(index.apply(mk_id("a"), Some(mk_entry("web"))), [web()]);
        index.apply(mk_id("b"), Some(mk_entry("web")));
        assert_eq!(
            index.of(&web()).iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let touched = index.apply(mk_id("b"), Some(mk_entry("api")));
        assert_eq!(touched.len(), 2);
        assert_eq!(index.of(&web()).len(), 1);
        // Terminating: no longer counts.
        assert_eq!(index.apply(mk_id("a"), None), [web()]);
        assert!(index.of(&web()).is_empty());
        assert!(index.workloads_in("shop").len() == 1);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_relist_forgets_what_it_did_not_return() {
        let mut index = PodIndex::default();
        index.apply(mk_id("a"), Some(mk_entry("web")));
        index.apply(mk_id("b"), Some(mk_entry("web")));
        index.apply(("other".into(), "c".into()), Some(mk_entry("web")));
        let listed = HashSet::from([mk_id("a")]);
        assert_eq!(index.retain_listed(Some("shop"), &listed), [web()]);
        assert_eq!(index.len(), 2, "other namespaces are kept");
        assert!(index.retain_listed(Some("shop"), &listed).is_empty());
    }
}
