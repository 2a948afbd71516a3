//! From the pods' reports and the sources' current digests to one state per pod and
//! source: the comparison `rekindle status` prints and the operator counts.
//!
//! The caller knows the cluster; this module knows the rules. The caller passes:
//! - the pods, each with what its [`ANNOTATION`](crate::report::ANNOTATION) held;
//! - the sources it knows of (the workload's pod template names them), with the
//!   public digest of each object's current content, or `None` when it does not exist;
//! - a resolver that says what one source name of one pod's report is about: which
//!   ConfigMaps and Secrets, and the digest the pod would report had it applied their
//!   current content ([`Resolved`]). A `configmap/NAME` or `secret/NAME` name is that
//!   object, whole; a directory is whatever volume the pod mounts there.
//!
//! The rules:
//! - A source is **tracked** when at least one pod reports it. Only tracked sources
//!   decide: a ConfigMap read through environment variables is named by the template,
//!   but no process reloads it, so no pod reports it and it is not waited for.
//! - Each pod gets, per tracked source, the [`State`] of its report
//!   ([`State::of`]); a source it does not report is `unknown`. Two report entries
//!   about the same source (a directory and `configmap/NAME`) give the worse state.
//! - A pod's own state is the worst over the tracked sources ([`State::worst`]);
//!   with no tracked source at all, it is `unknown`.
//! - The workload has **converged** when it has pods, at least one source is tracked,
//!   and every pod is `current`.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::fleet::State;
use crate::report::{Report, SourceReport};

/// What a pod's report annotation held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodReport {
    /// No annotation: rekindle runs without `--report-pod`, or has not reported yet.
    Absent,
    /// An annotation that is not a report: why (a parse error, never the text).
    Invalid(String),
    /// The report.
    Present(Report),
}

impl PodReport {
    /// Reads the annotation's value, if the pod has it.
    pub fn from_annotation(value: Option<&str>) -> PodReport {
        match value.map(Report::parse) {
            None => PodReport::Absent,
            Some(Ok(report)) => PodReport::Present(report),
            Some(Err(error)) => PodReport::Invalid(error.to_string()),
        }
    }
}

/// One pod, as the comparison needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInput {
    /// The pod's name.
    pub name: String,
    /// Its report.
    pub report: PodReport,
}

/// What one source name of a pod's report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// These ConfigMaps and Secrets (`configmap/NAME`, `secret/NAME`; a projected
    /// volume may hold several), and the digest the pod reports once it has applied
    /// their current content: `None` when that cannot be known now (an object the
    /// volume needs does not exist).
    Objects {
        /// The sources, as `configmap/NAME` or `secret/NAME`.
        sources: Vec<String>,
        /// The digest of their current content, as the pod sees it.
        expected: Option<Digest>,
    },
    /// Nothing the API can tell the content of (an `emptyDir`, a path nothing is
    /// mounted at, a downward API projection): why, for people.
    Unknown(String),
}

/// One pod's standing with one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The state.
    pub state: State,
    /// The name the pod reported it under (a directory or `configmap/NAME`).
    pub via: String,
    /// The report entry.
    pub report: SourceReport,
    /// The digest the pod would report with the current content, if known.
    pub expected: Option<Digest>,
}

/// A report entry that is about nothing the API can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    /// The name the pod reported.
    pub via: String,
    /// Why it cannot be compared.
    pub why: String,
}

/// One pod's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// The pod's name.
    pub name: String,
    /// The worst state over the tracked sources.
    pub state: State,
    /// Per source (`configmap/NAME`), the pod's standing; a tracked source missing
    /// here is `unknown` for this pod.
    pub cells: BTreeMap<String, Cell>,
    /// Report entries that could not be compared.
    pub unmatched: Vec<Unmatched>,
    /// Why the pod's annotation could not be read, if it could not.
    pub invalid: Option<String>,
}

impl PodView {
    /// The pod's state for `source`: its cell's, else `unknown`.
    pub fn state_of(&self, source: &str) -> State {
        self.cells.get(source).map_or(State::Unknown, |c| c.state)
    }
}

/// How many pods are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pods in state `current`.
    pub current: usize,
    /// Pods in state `stale`.
    pub stale: usize,
    /// Pods in state `rejected`.
    pub rejected: usize,
    /// Pods in state `failed`.
    pub failed: usize,
    /// Pods in state `unknown`.
    pub unknown: usize,
}

impl Counts {
    /// The count for `state`.
    pub fn get(&self, state: State) -> usize {
        match state {
            State::Current => self.current,
            State::Stale => self.stale,
            State::Rejected => self.rejected,
            State::Failed => self.failed,
            State::Unknown => self.unknown,
        }
    }

    /// Counts one more pod in `state`.
    pub fn add(&mut self, state: State) {
        match state {
            State::Current => self.current += 1,
            State::Stale => self.stale += 1,
            State::Rejected => self.rejected += 1,
            State::Failed => self.failed += 1,
            State::Unknown => self.unknown += 1,
        }
    }

    /// All pods counted.
    pub fn total(&self) -> usize {
        State::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// One source, over all pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceView {
    /// `configmap/NAME` or `secret/NAME`.
    pub source: String,
    /// The digest of the object's current content; `None` when it does not exist (or
    /// the caller could not read it).
    pub digest: Option<Digest>,
    /// Whether at least one pod reports it (only tracked sources decide).
    pub tracked: bool,
    /// Pods per state for this source (all zero when not tracked).
    pub counts: Counts,
}

/// The comparison's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    /// Every source known or reported, by name.
    pub sources: Vec<SourceView>,
    /// Every pod, by name.
    pub pods: Vec<PodView>,
}

impl Fleet {
    /// Whether every pod runs the current content of every tracked source (see the
    /// module docs: there must be pods, and at least one tracked source).
    pub fn converged(&self) -> bool {
        !self.pods.is_empty()
            && self.sources.iter().any(|s| s.tracked)
            && self.pods.iter().all(|p| p.state == State::Current)
    }

    /// Pods per state, by their own (worst) state.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for pod in &self.pods {
            counts.add(pod.state);
        }
        counts
    }

    /// The tracked sources.
    pub fn tracked(&self) -> impl Iterator<Item = &SourceView> {
        self.sources.iter().filter(|s| s.tracked)
    }

    /// Whether any pod has a report at all (the operator shows only such workloads).
    pub fn any_report(&self) -> bool {
        self.pods
            .iter()
            .any(|p| !p.cells.is_empty() || !p.unmatched.is_empty() || p.invalid.is_some())
    }
}

/// Compares every pod's report with the current content (see the module docs).
pub fn evaluate<F>(
    pods: &[PodInput],
    objects: &BTreeMap<String, Option<Digest>>,
    mut resolve: F,
) -> Fleet
where
    F: FnMut(&PodInput, &str) -> Resolved,
{
    let mut views: Vec<PodView> = pods
        .iter()
        .map(|pod| {
            let mut view = PodView {
                name: pod.name.clone(),
                state: State::Unknown,
                cells: BTreeMap::new(),
                unmatched: Vec::new(),
                invalid: None,
            };
            match &pod.report {
                PodReport::Absent => {}
                PodReport::Invalid(why) => view.invalid = Some(why.clone()),
                PodReport::Present(report) => {
                    for (via, entry) in &report.sources {
                        match resolve(pod, via) {
                            Resolved::Objects { sources, expected } => {
                                let state = State::of(entry, expected.as_ref());
                                for source in sources {
                                    let cell = Cell {
                                        state,
                                        via: via.clone(),
                                        report: entry.clone(),
                                        expected,
                                    };
                                    keep_worse(&mut view.cells, source, cell);
                                }
                            }
                            Resolved::Unknown(why) => view.unmatched.push(Unmatched {
                                via: via.clone(),
                                why,
                            }),
                        }
                    }
                }
            }
            view
        })
        .collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));

    let mut names: BTreeMap<&str, bool> = objects.keys().map(|k| (k.as_str(), false)).collect();
    for view in &views {
        for source in view.cells.keys() {
            names.insert(source.as_str(), true);
        }
    }
    let mut sources: Vec<SourceView> = names
        .into_iter()
        .map(|(source, tracked)| SourceView {
            source: source.to_owned(),
            digest: objects.get(source).copied().flatten(),
            tracked,
            counts: Counts::default(),
        })
        .collect();

    for view in &mut views {
        let mut state = None::<State>;
        for source in sources.iter_mut().filter(|s| s.tracked) {
            let here = view.state_of(&source.source);
            source.counts.add(here);
            state = Some(state.map_or(here, |s| s.worst(here)));
        }
        view.state = state.unwrap_or(State::Unknown);
    }
    Fleet {
        sources,
        pods: views,
    }
}

fn keep_worse(cells: &mut BTreeMap<String, Cell>, source: String, cell: Cell) {
    match cells.get(&source) {
        Some(held) if held.state.worst(cell.state) == held.state => {}
        _ => {
            cells.insert(source, cell);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Snapshot;
    use crate::report::Result as Outcome;

    fn mk_digest(content: &str) -> Digest {
        *Snapshot::from_entries([("k", content)]).digest()
    }

    fn mk_entry(content: &str, result: Outcome) -> SourceReport {
        SourceReport {
            digest: mk_digest(content),
            at: "2026-11-22T09:33:20Z".into(),
            result,
            reason: (result != Outcome::Applied).then(|| "nginx: [emerg] bad".to_owned()),
        }
    }

    fn mk_pod(name: &str, entries: &[(&str, &str, Outcome)]) -> PodInput {
        let mut report = Report::default();
        for (via, content, result) in entries {
            report
                .sources
                .insert((*via).to_owned(), mk_entry(content, *result));
        }
        PodInput {
            name: name.to_owned(),
            report: PodReport::Present(report),
        }
    }

    fn mk_silent_pod(name: &str) -> PodInput {
        PodInput {
            name: name.to_owned(),
            report: PodReport::Absent,
        }
    }

    fn mk_objects(entries: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<Digest>> {
        entries
            .iter()
            .map(|(name, content)| ((*name).to_owned(), content.map(mk_digest)))
            .collect()
    }

    /// Names are objects; `/etc/app` is the volume of `configmap/app`.
    fn mk_resolver(
        objects: &BTreeMap<String, Option<Digest>>,
    ) -> impl FnMut(&PodInput, &str) -> Resolved + '_ {
        move |_, via| {
            let source = match via {
                "/etc/app" => "configmap/app",
                other if other.starts_with('/') => {
                    return Resolved::Unknown(format!("nothing is mounted at {other}"));
                }
                other => other,
            };
            Resolved::Objects {
                sources: vec![source.to_owned()],
                expected: objects.get(source).copied().flatten(),
            }
        }
    }

    fn states(fleet: &Fleet) -> Vec<(String, State)> {
        fleet
            .pods
            .iter()
            .map(|p| (p.name.clone(), p.state))
            .collect()
    }

    #[test]
    fn each_pod_gets_the_state_of_its_report() {
        let objects = mk_objects(&[("configmap/app", Some("v2"))]);
        let pods = [
            mk_pod("c", &[("/etc/app", "v2", Outcome::Rejected)]),
            mk_pod("a", &[("/etc/app", "v2", Outcome::Applied)]),
            mk_pod("b", &[("configmap/app", "v1", Outcome::Applied)]),
            mk_silent_pod("d"),
        ];
        let fleet = evaluate(&pods, &objects, mk_resolver(&objects));
        assert_eq!(
            states(&fleet),
            [
                ("a".to_owned(), State::Current),
                ("b".to_owned(), State::Stale),
                ("c".to_owned(), State::Rejected),
                ("d".to_owned(), State::Unknown),
            ]
        );
        assert!(!fleet.converged());
        let source = &fleet.sources[0];
        assert!(source.tracked);
        assert_eq!(source.digest, Some(mk_digest("v2")));
        assert_eq!(
            source.counts,
            Counts {
                current: 1,
                stale: 1,
                rejected: 1,
                failed: 0,
                unknown: 1
            }
        );
        assert_eq!(fleet.pods[0].cells["configmap/app"].via, "/etc/app");
        assert_eq!(fleet.counts().total(), 4);
    }

    #[test]
    fn converged_when_every_pod_applied_the_current_content() {
        let objects = mk_objects(&[("configmap/app", Some("v2"))]);
        let pods = [
            mk_pod("a", &[("/etc/app", "v2", Outcome::Applied)]),
            mk_pod("b", &[("configmap/app", "v2", Outcome::Applied)]),
        ];
        let fleet = evaluate(&pods, &objects, mk_resolver(&objects));
        assert!(fleet.converged());
        // The target moves: the same reports are now stale.
        let moved = mk_objects(&[("configmap/app", Some("v3"))]);
        let fleet = evaluate(&pods, &moved, mk_resolver(&moved));
        assert!(!fleet.converged());
        assert_eq!(fleet.counts().stale, 2);
    }

    #[test]
    fn a_source_nobody_reports_does_not_decide() {
        let objects = mk_objects(&[("configmap/app", Some("v1")), ("secret/env", Some("s"))]);
        let pods = [mk_pod("a", &[("/etc/app", "v1", Outcome::Applied)])];
        let fleet = evaluate(&pods, &objects, mk_resolver(&objects));
        assert!(fleet.converged());
        let env = fleet
            .sources
            .iter()
            .find(|s| s.source == "secret/env")
            .expect("listed");
        assert!(!env.tracked);
        assert_eq!(env.counts.total(), 0);
    }

    #[test]
    fn nothing_reported_or_no_pods_is_not_converged() {
        let objects = mk_objects(&[("configmap/app", Some("v1"))]);
        let fleet = evaluate(&[mk_silent_pod("a")], &objects, mk_resolver(&objects));
        assert!(!fleet.converged());
        assert_eq!(states(&fleet), [("a".to_owned(), State::Unknown)]);
        assert!(!fleet.any_report());
        assert!(!evaluate(&[], &objects, mk_resolver(&objects)).converged());
    }

    #[test]
    fn a_pod_missing_one_tracked_source_is_unknown_for_it() {
        let objects = mk_objects(&[("configmap/app", Some("v1")), ("secret/tls", Some("t"))]);
        let pods = [
            mk_pod(
                "a",
                &[
                    ("/etc/app", "v1", Outcome::Applied),
                    ("secret/tls", "t", Outcome::Applied),
                ],
            ),
            mk_pod("b", &[("/etc/app", "v1", Outcome::Applied)]),
        ];
        let fleet = evaluate(&pods, &objects, mk_resolver(&objects));
        assert_eq!(fleet.pods[1].state, State::Unknown);
        assert_eq!(fleet.pods[1].state_of("secret/tls"), State::Unknown);
        assert!(!fleet.converged());
    }

    #[test]
    fn two_entries_about_one_source_give_the_worse_state() {
        let objects = mk_objects(&[("configmap/app", Some("v2"))]);
        let pods = [mk_pod(
            "a",
            &[
                ("/etc/app", "v2", Outcome::Applied),
                ("configmap/app", "v2", Outcome::Failed),
            ],
        )];
        let fleet = evaluate(&pods, &objects, mk_resolver(&objects));
        let cell = &fleet.pods[0].cells["configmap/app"];
        assert_eq!(cell.state, State::Failed);
        assert_eq!(cell.via, "configmap/app");
    }

    #[test]
    fn unmatched_and_unreadable_reports_are_kept_apart() {
        let objects = mk_objects(&[("configmap/app", Some("v1"))]);
        let pods = [
            mk_pod(
                "a",
                &[
                    ("/etc/app", "v1", Outcome::Applied),
                    ("/scratch", "x", Outcome::Applied),
                ],
            ),
            PodInput {
                name: "b".into(),
                report: PodReport::from_annotation(Some("{not json")),
            },
        ];
        let fleet = evaluate(&pods, &objects, mk_resolver(&objects));
        assert_eq!(fleet.pods[0].unmatched[0].via, "/scratch");
        assert_eq!(fleet.pods[0].state, State::Current);
        assert!(fleet.pods[1].invalid.is_some());
        assert_eq!(fleet.pods[1].state, State::Unknown);
        assert!(fleet.any_report());
    }

    #[test]
    fn a_missing_object_is_listed_and_nobody_is_current_with_it() {
        let objects = mk_objects(&[("configmap/app", None)]);
        let pods = [mk_pod("a", &[("/etc/app", "v1", Outcome::Applied)])];
        let fleet = evaluate(&pods, &objects, mk_resolver(&objects));
        assert_eq!(fleet.sources[0].digest, None);
        assert_eq!(fleet.pods[0].state, State::Stale);
        assert!(!fleet.converged());
    }
}
