//! What `rekindle status` knows at each moment, fed by its watches: the workload's
//! facts, its live pods, and the current content of every object that matters. Pure:
//! the I/O (`mod.rs`) turns watch events into calls here, starts a watch for each
//! object [`Knowledge::unwatched`] returns, and compares once [`Knowledge::view`]
//! gives a result, which is only when every piece is known (the first list of pods is
//! complete and every needed object has been read or found missing). So a `--wait`
//! never decides on half a picture, and follows whatever changes while it waits: a
//! source updated again moves the target, a rollout adds and removes pods, a report
//! naming another object brings that object in.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::watcher::Event;
use rekindle::Snapshot;
use rekindle::fleet::volume::source_label;

use super::compare::{Contents, ObjectKey, PodFacts, View, compare, needed};
use super::workload::WorkloadFacts;

/// A pod as the pods' watch delivers it: its name, and its facts if it is live
/// (`None`: terminating or finished, so it no longer counts).
pub type PodSeen = (String, Option<PodFacts>);

/// An object's content as far as known.
#[derive(Debug, Clone)]
enum Content {
    /// Its watch has not answered yet.
    Pending,
    /// It does not exist (or was deleted).
    Missing,
    /// Its current content.
    Present(Arc<Snapshot>),
}

/// Everything known, and whether it is enough to compare.
#[derive(Debug)]
pub struct Knowledge {
    facts: WorkloadFacts,
    pods: BTreeMap<String, PodFacts>,
    /// A (re-)list of pods in progress: what it returned so far.
    relisting: Option<BTreeMap<String, PodFacts>>,
    pods_listed: bool,
    objects: BTreeMap<ObjectKey, Content>,
}

impl Knowledge {
    /// Starts from the workload as first read; no pod and no object known yet.
    pub fn new(facts: WorkloadFacts) -> Knowledge {
        Knowledge {
            facts,
            pods: BTreeMap::new(),
            relisting: None,
            pods_listed: false,
            objects: BTreeMap::new(),
        }
    }

    /// The workload changed (its template may name other sources now).
    pub fn workload(&mut self, facts: WorkloadFacts) {
        self.facts = facts;
    }

    pub fn facts(&self) -> &WorkloadFacts {
        &self.facts
    }

    /// One event of the pods' watch.
    pub fn pods(&mut self, event: Event<PodSeen>) {
        match event {
            Event::Init => self.relisting = Some(BTreeMap::new()),
            Event::InitApply((name, facts)) => {
                if let (Some(list), Some(facts)) = (self.relisting.as_mut(), facts) {
                    list.insert(name, facts);
                }
            }
            Event::InitDone => {
                if let Some(list) = self.relisting.take() {
                    self.pods = list;
                }
                self.pods_listed = true;
            }
            Event::Apply((name, Some(facts))) => {
                self.pods.insert(name, facts);
            }
            Event::Apply((name, None)) | Event::Delete((name, _)) => {
                self.pods.remove(&name);
            }
        }
    }

    /// An object's watch answered: its content, or `None` when it does not exist.
    pub fn object(&mut self, key: ObjectKey, content: Option<Arc<Snapshot>>) {
        let content = match content {
            Some(snapshot) => Content::Present(snapshot),
            None => Content::Missing,
        };
        self.objects.insert(key, content);
    }

    /// The needed objects nobody watches yet, now marked as waited for: start a watch
    /// for each.
    pub fn unwatched(&mut self) -> Vec<ObjectKey> {
        let pods: Vec<PodFacts> = self.pods.values().cloned().collect();
        let mut new = Vec::new();
        for key in needed(&pods) {
            if !self.objects.contains_key(&key) {
                self.objects.insert(key.clone(), Content::Pending);
                new.push(key);
            }
        }
        new
    }

    /// What is not known yet, for a message: `the list of pods`, `configmap/app`.
    pub fn waiting_for(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.pods_listed {
            out.push("the list of pods".to_owned());
        }
        out.extend(
            self.objects
                .iter()
                .filter(|(_, c)| matches!(c, Content::Pending))
                .map(|((kind, name), _)| source_label(*kind, name)),
        );
        out
    }

    /// The comparison, once everything it needs is known.
    pub fn view(&self) -> Option<View> {
        let pods: Vec<PodFacts> = self.pods.values().cloned().collect();
        let needed = needed(&pods);
        let mut contents = Contents::new();
        if !self.pods_listed {
            return None;
        }
        for key in needed {
            match self.objects.get(&key) {
                None | Some(Content::Pending) => return None,
                Some(Content::Missing) => {
                    contents.insert(key, None);
                }
                Some(Content::Present(snapshot)) => {
                    contents.insert(key, Some(snapshot.clone()));
                }
            }
        }
        Some(View {
            fleet: compare(&pods, &self.facts.declared, &contents),
            desired: self.facts.desired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::compare::tests::{mk_declared, mk_pod, mk_snapshot};
    use kube::core::Selector;
    use rekindle::api::ObjectKind;
    use rekindle::fleet::State;
    use rekindle::report::Result as Outcome;

    fn mk_knowledge() -> Knowledge {
        Knowledge::new(WorkloadFacts {
            selector: Selector::from_iter([("app", "web")]),
            declared: mk_declared(&["configmap/app"]),
            desired: None,
        })
    }

    fn seen(pod: PodFacts) -> PodSeen {
        (pod.input.name.clone(), Some(pod))
    }

    fn app() -> ObjectKey {
        (ObjectKind::ConfigMap, "app".to_owned())
    }

    #[test]
    fn nothing_is_compared_before_pods_and_objects_are_known() {
        let v1 = mk_snapshot(&[("k", "1")]);
        let mut k = mk_knowledge();
        assert!(k.view().is_none());
        assert!(k.unwatched().is_empty(), "no pod reports anything yet");
        k.pods(Event::Init);
        k.pods(Event::InitApply(seen(mk_pod(
            "a",
            None,
            &[("/etc/app", *v1.digest(), Outcome::Applied)],
        ))));
        assert!(k.view().is_none(), "the list is not complete");
        k.pods(Event::InitDone);
        assert_eq!(k.unwatched(), [app()]);
        assert!(k.unwatched().is_empty(), "asked once");
        assert_eq!(k.waiting_for(), ["configmap/app"]);
        assert!(k.view().is_none(), "the object is not read yet");
        k.object(app(), Some(v1.clone()));
        assert!(k.view().expect("complete").converged());
    }

    #[test]
    fn the_target_moves_and_pods_come_and_go() {
        let v1 = mk_snapshot(&[("k", "1")]);
        let v2 = mk_snapshot(&[("k", "2")]);
        let mut k = mk_knowledge();
        k.unwatched();
        k.object(app(), Some(v1.clone()));
        k.pods(Event::Init);
        k.pods(Event::InitApply(seen(mk_pod(
            "a",
            None,
            &[("/etc/app", *v1.digest(), Outcome::Applied)],
        ))));
        k.pods(Event::InitDone);
        assert!(k.view().expect("complete").converged());
        k.object(app(), Some(v2.clone()));
        assert_eq!(
            k.view().expect("complete").fleet.pods[0].state,
            State::Stale
        );
        k.pods(Event::Apply(seen(mk_pod(
            "a",
            None,
            &[("/etc/app", *v2.digest(), Outcome::Applied)],
        ))));
        k.pods(Event::Apply(seen(mk_pod("b", None, &[]))));
        let fleet = k.view().expect("complete").fleet;
        assert_eq!(fleet.pods.len(), 2);
        assert!(!fleet.converged());
        // b terminates: it no longer counts.
        k.pods(Event::Apply(("b".to_owned(), None)));
        assert!(k.view().expect("complete").converged());
        k.object(app(), None);
        assert!(!k.view().expect("complete").converged());
    }

    #[test]
    fn a_pod_still_to_come_keeps_it_waiting() {
        let v1 = mk_snapshot(&[("k", "1")]);
        let mut k = mk_knowledge();
        k.workload(WorkloadFacts {
            desired: Some(2),
            ..k.facts().clone()
        });
        k.unwatched();
        k.object(app(), Some(v1.clone()));
        k.pods(Event::Init);
        k.pods(Event::InitApply(seen(mk_pod(
            "a",
            None,
            &[("/etc/app", *v1.digest(), Outcome::Applied)],
        ))));
        k.pods(Event::InitDone);
        let view = k.view().expect("complete");
        assert!(view.fleet.converged());
        assert!(!view.converged());
        k.pods(Event::Apply(seen(mk_pod(
            "b",
            None,
            &[("/etc/app", *v1.digest(), Outcome::Applied)],
        ))));
        assert!(k.view().expect("complete").converged());
    }

    #[test]
    fn a_relist_replaces_the_pods_and_new_names_are_watched() {
        let v1 = mk_snapshot(&[("k", "1")]);
        let mut k = mk_knowledge();
        k.unwatched();
        k.object(app(), Some(v1.clone()));
        k.pods(Event::Init);
        k.pods(Event::InitApply(seen(mk_pod("old", None, &[]))));
        k.pods(Event::InitDone);
        k.pods(Event::Init);
        k.pods(Event::InitApply(seen(mk_pod(
            "new",
            None,
            &[("secret/extra", *v1.digest(), Outcome::Applied)],
        ))));
        k.pods(Event::InitDone);
        assert_eq!(k.unwatched(), [(ObjectKind::Secret, "extra".to_owned())]);
        assert!(k.view().is_none());
        k.object((ObjectKind::Secret, "extra".to_owned()), Some(v1));
        let fleet = k.view().expect("complete").fleet;
        assert_eq!(fleet.pods.len(), 1);
        assert_eq!(fleet.pods[0].name, "new");
    }
}
