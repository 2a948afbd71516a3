//! What to write on one workload for the sources that changed: the marker per
//! source (env var or annotation), computed from the index at the time the
//! rollout falls due, so a trailing rollout carries the latest data.
//!
//! A marker is a pure function of the data, so "is this workload current?" is
//! one comparison, and a workload already carrying the value is left alone:
//! re-applying the same data, restarting the operator or failing over rolls
//! nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::decide::decision::{DecideSettings, Decision, SkipReason, Trigger, decide};
use crate::decide::digest::{MarkerKey, marker};
use crate::decide::envname::env_var_name;
use crate::decide::patch::EnvMarker;
use crate::decide::references::TemplateRefs;
use crate::index::{SourceEntry, SourceIndex, WorkloadEntry};
use crate::model::{KeyUse, SourceId, WorkloadId};

/// `--reload-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// A `STAKATER_<NAME>_<KIND>` variable on the container that uses the source.
    EnvVars,
    /// The pod-template annotation `reloader.stakater.com/last-reloaded-from`.
    Annotations,
}

/// `--hash`: what value is written.
#[derive(Debug, Clone)]
pub enum HashMode {
    /// HMAC-SHA256 over the used keys, keyed by the operator's own key.
    Keyed(MarkerKey),
    /// Reloader's SHA-1 of the whole object, for a migration that rolls nothing.
    ReloaderSha1,
}

/// The settings a plan depends on.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    pub strategy: Strategy,
    pub hash: HashMode,
    pub decide: DecideSettings,
    pub reload_on_delete: bool,
}

/// Reloader's `last-reloaded-from` JSON, without `observedAt`: with a time in
/// it every pass would change the template (Reloader issue #777).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadedFrom {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub hash: String,
    #[serde(rename = "containerRefs", default)]
    pub container_refs: Vec<String>,
}

/// The hash Reloader writes in `last-reloaded-from` for a deleted source: the
/// SHA-1 of this string.
const DELETE_MARKER: &str = "__RELOADER_EMPTY_DELETE_MARKER__";

/// Why a source contributes nothing to a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoChange {
    /// The decision order said no.
    NotSelected(SkipReason),
    /// Selected by `auto`/`search`, but no container uses it.
    Unused,
    /// The workload already carries this value.
    Current,
    /// Deleted, and `--reload-on-delete` is off (or nothing to remove).
    Deleted,
}

/// What to write on one workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Env markers to set (env-vars strategy).
    pub env: Vec<EnvMarker>,
    /// Env markers to remove, as (container index, env index, variable name),
    /// for deleted sources with `--reload-on-delete`.
    pub remove: Vec<(usize, usize, String)>,
    /// The `last-reloaded-from` value to write (annotations strategy).
    pub reloaded_from: Option<String>,
    /// The sources that make this rollout, for events, alerts and logs.
    pub because: Vec<SourceId>,
    /// The sources that do not, and why.
    pub unchanged: Vec<(SourceId, NoChange)>,
}

impl Plan {
    /// Whether there is anything to write.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.remove.is_empty() && self.reloaded_from.is_none()
    }
}

/// What one source wants on the workload.
struct Want {
    container: String,
    value: String,
    keys: KeyUse,
}

/// Decides which container and value a source wants on a workload, or why it
/// wants nothing. `entry` is `None` for a deleted source.
fn want(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    source: &SourceId,
    entry: Option<&SourceEntry>,
    settings: &PlanSettings,
) -> Result<Want, NoChange> {
    let flags = entry.map(|e| e.flags).unwrap_or_default();
    let trigger = match decide(id.kind, &workload.rules, source, flags, &settings.decide) {
        Decision::Skip(reason) => return Err(NoChange::NotSelected(reason)),
        Decision::Reload(trigger) => trigger,
    };
    let usage = workload.refs.usage(source.kind, &source.name);
    let (container, keys) = match (usage.and_then(|u| u.container.clone()), trigger) {
        (Some(container), _) => (container, usage.map_or(KeyUse::All, |u| u.keys.clone())),
        // Reloader rolls a named source even when no container uses it, on the
        // first container; an auto decision needs a user.
        (None, Trigger::Named) => match workload.refs.first_container() {
            Some(first) => (first.to_owned(), KeyUse::All),
            None => return Err(NoChange::Unused),
        },
        (None, Trigger::Auto) => return Err(NoChange::Unused),
    };
    let value = match entry {
        None => String::new(),
        Some(entry) => match &settings.hash {
            HashMode::Keyed(key) => marker(key, source, &entry.digests, &keys),
            HashMode::ReloaderSha1 => entry.reloader_sha1.clone(),
        },
    };
    Ok(Want {
        container,
        value,
        keys,
    })
}

/// Which keys of `source` matter to `workload`, or why none do: the check made
/// when a change arrives, before the workload is queued. `entry` is `None` for a
/// deleted source.
pub fn selects(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    source: &SourceId,
    entry: Option<&SourceEntry>,
    settings: &PlanSettings,
) -> Result<KeyUse, NoChange> {
    want(id, workload, source, entry, settings).map(|want| want.keys)
}

/// Whether `current` (a value found on the workload) stands for the data in
/// `entry`. Besides our own value, a SHA-1 Reloader wrote for the same data
/// counts: switching from Reloader then rolls nothing until the data changes.
fn is_current(current: &str, wanted: &str, entry: &SourceEntry) -> bool {
    current == wanted || current == entry.reloader_sha1
}

/// The plan for `workload` given the `pending` sources.
pub fn plan(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    pending: &BTreeSet<SourceId>,
    sources: &SourceIndex,
    settings: &PlanSettings,
) -> Plan {
    let mut plan = Plan::default();
    for source in pending {
        let entry = sources.get(source);
        let want = match want(id, workload, source, entry, settings) {
            Ok(want) => want,
            Err(why) => {
                plan.unchanged.push((source.clone(), why));
                continue;
            }
        };
        let var = env_var_name(source.kind, &source.name);
        match (settings.strategy, entry) {
            (Strategy::EnvVars, None) => {
                match workload.refs.marker_position(&want.container, &var) {
                    Some((c, e)) if settings.reload_on_delete => {
                        plan.remove.push((c, e, var));
                        plan.because.push(source.clone());
                    }
                    _ => plan.unchanged.push((source.clone(), NoChange::Deleted)),
                }
            }
            (Strategy::EnvVars, Some(_)) => {
                if workload.refs.marker(&want.container, &var) == Some(want.value.as_str()) {
                    plan.unchanged.push((source.clone(), NoChange::Current));
                } else {
                    plan.env.push(EnvMarker {
                        container: want.container,
                        name: var,
                        value: want.value,
                    });
                    plan.because.push(source.clone());
                }
            }
            (Strategy::Annotations, entry) => {
                if entry.is_none() && !settings.reload_on_delete {
                    plan.unchanged.push((source.clone(), NoChange::Deleted));
                    continue;
                }
                let hash = match entry {
                    Some(_) => want.value.clone(),
                    None => crate::decide::digest::sha1_hex(DELETE_MARKER.as_bytes()),
                };
                let value = ReloadedFrom {
                    kind: source.kind.upper().to_owned(),
                    name: source.name.clone(),
                    namespace: source.namespace.clone(),
                    hash,
                    container_refs: vec![want.container],
                };
                if parse_reloaded_from(workload.reloaded_from.as_deref()).as_ref() == Some(&value) {
                    plan.unchanged.push((source.clone(), NoChange::Current));
                } else {
                    plan.reloaded_from = Some(
                        serde_json::to_string(&value)
                            .expect("a struct of strings always serializes"),
                    );
                    plan.because.push(source.clone());
                }
            }
        }
    }
    plan
}

fn parse_reloaded_from(text: Option<&str>) -> Option<ReloadedFrom> {
    serde_json::from_str(text?).ok()
}

/// Sources whose marker on `workload` is present but stale: changed while the
/// operator was not watching. A source with no marker on the workload is not
/// stale (installing the operator rolls nothing).
pub fn stale_sources(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    sources: &SourceIndex,
    settings: &PlanSettings,
) -> BTreeSet<SourceId> {
    let mut stale = BTreeSet::new();
    for (kind, name) in workload.refs.sources.keys() {
        let source = SourceId::new(*kind, id.namespace.clone(), name.clone());
        let Some(entry) = sources.get(&source) else {
            continue;
        };
        let Ok(want) = want(id, workload, &source, Some(entry), settings) else {
            continue;
        };
        let current = match settings.strategy {
            Strategy::EnvVars => current_env(&workload.refs, &want.container, &source),
            Strategy::Annotations => parse_reloaded_from(workload.reloaded_from.as_deref())
                .filter(|r| r.kind == source.kind.upper() && r.name == source.name)
                .map(|r| r.hash),
        };
        if current.is_some_and(|current| !is_current(&current, &want.value, entry)) {
            stale.insert(source);
        }
    }
    stale
}

fn current_env(refs: &TemplateRefs, container: &str, source: &SourceId) -> Option<String> {
    refs.marker(container, &env_var_name(source.kind, &source.name))
        .map(str::to_owned)
}
