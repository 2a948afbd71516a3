//! What to write on one workload for the sources that changed: the marker per
//! source (env var or annotation), computed from the index at the time the
//! rollout falls due, so a trailing rollout carries the latest data.
//!
//! A marker is a pure function of the data, so "is this workload current?" is
//! one comparison, and a workload already carrying the value is left alone:
//! re-applying the same data, restarting the operator or failing over rolls
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::decide::annotations::SourceFlags;
use crate::decide::decision::{
    DecideSettings, Decision, SkipReason, Trigger, decide, needs_named_scan,
};
use crate::decide::digest::{MarkerKey, marker, shared_marker};
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
    pub remove: Vec<super::patch::Removal>,
    /// The `last-reloaded-from` value to write (annotations strategy).
    pub reloaded_from: Option<String>,
    /// The `rekindle.io/reloaded-digests` value written with it: every source the
    /// workload rolls for, at its current value (the rollout restarts the pods, which
    /// then read all of them).
    pub reloaded_digests: Option<String>,
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

    /// Whether the plan already sets or removes `var` on `container`: another
    /// source sharing the variable got there first (see `shared_want`).
    fn touches(&self, refs: &TemplateRefs, container: &str, var: &str) -> bool {
        self.env
            .iter()
            .any(|m| m.container == container && m.name == var)
            || self.remove.iter().any(|(c, _, v)| {
                v == var && refs.containers.get(*c).is_some_and(|m| m.name == container)
            })
    }
}

/// What one source wants on the workload.
struct Want {
    container: String,
    value: String,
}

/// The flags a deleted source is planned with. It was selected with its last
/// annotations when it was queued (see [`selects`]); its entry is gone and
/// `ignore`/`match` cannot be read again, so the decision made then stands.
const GONE: SourceFlags = SourceFlags {
    ignore: false,
    matched: true,
};

/// Decides which container a source's marker goes on and which of its keys
/// the marker covers, or why it wants nothing.
fn choose(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    source: &SourceId,
    flags: SourceFlags,
    settings: &PlanSettings,
) -> Result<(String, KeyUse), NoChange> {
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
    let keys = match settings.hash {
        HashMode::Keyed(_) => keys,
        // Reloader's SHA-1 covers every key: if a change to a key the workload
        // does not read left it alone, its marker would be stale from then on
        // and the next start or leader change would roll it.
        HashMode::ReloaderSha1 => KeyUse::All,
    };
    Ok((container, keys))
}

/// The container and value a source wants on a workload, or why it wants
/// nothing. `entry` is `None` for a deleted source.
fn want(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    source: &SourceId,
    entry: Option<&SourceEntry>,
    settings: &PlanSettings,
) -> Result<Want, NoChange> {
    let flags = entry.map_or(GONE, |e| e.flags);
    let (container, keys) = choose(id, workload, source, flags, settings)?;
    let value = match entry {
        None => String::new(),
        Some(entry) => match &settings.hash {
            HashMode::Keyed(key) => marker(key, source, &entry.digests, &keys),
            HashMode::ReloaderSha1 => entry.reloader_sha1.clone(),
        },
    };
    Ok(Want { container, value })
}

/// Which keys of `source` matter to `workload`, or why none do: the check made
/// when a change arrives, before the workload is queued. `flags` are the
/// source's (for a deleted source, as they were before it went).
pub fn selects(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    source: &SourceId,
    flags: SourceFlags,
    settings: &PlanSettings,
) -> Result<KeyUse, NoChange> {
    choose(id, workload, source, flags, settings).map(|(_, keys)| keys)
}

/// [`want`], for a marker variable that other sources may share.
///
/// Reloader folds everything but letters and digits in a name to `_`, so
/// `app-config` and `app.config` both get `STAKATER_APP_CONFIG_CONFIGMAP`. If
/// each wrote its own value into that one variable, every plan would find the
/// other's value there and roll again, at each change and at each start (found
/// by fuzzing). So when sources the workload selects share the variable on the
/// same container (referenced or named, whichever way each was selected), it
/// holds one value made from all of theirs ([`shared_marker`]): the same
/// whichever of them is being planned.
fn shared_want(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    source: &SourceId,
    entry: Option<&SourceEntry>,
    sources: &SourceIndex,
    settings: &PlanSettings,
) -> Result<Want, NoChange> {
    let mut own = want(id, workload, source, entry, settings)?;
    if entry.is_none() || settings.strategy != Strategy::EnvVars {
        return Ok(own);
    }
    let mut parts = vec![(source.name.clone(), own.value.clone())];
    for (other, other_entry) in sources.sharing_variable(source) {
        if let Ok(theirs) = want(id, workload, other, Some(other_entry), settings)
            && theirs.container == own.container
        {
            parts.push((other.name.clone(), theirs.value));
        }
    }
    if parts.len() > 1 {
        parts.sort();
        own.value = shared_marker(parts.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    }
    Ok(own)
}

/// For a deleted `source` whose variable other sources share: the value the
/// variable keeps, that of the sources still selected on `container` (see
/// [`shared_want`]); `None` when none remains and the variable goes.
fn survivor_want(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    source: &SourceId,
    container: &str,
    sources: &SourceIndex,
    settings: &PlanSettings,
) -> Option<String> {
    sources
        .sharing_variable(source)
        .filter_map(|(other, entry)| {
            shared_want(id, workload, other, Some(entry), sources, settings).ok()
        })
        .find(|theirs| theirs.container == container)
        .map(|theirs| theirs.value)
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
        let want = match shared_want(id, workload, source, entry, sources, settings) {
            Ok(want) => want,
            Err(why) => {
                plan.unchanged.push((source.clone(), why));
                continue;
            }
        };
        let var = env_var_name(source.kind, &source.name);
        match (settings.strategy, entry) {
            (Strategy::EnvVars, None) => {
                let position = workload.refs.marker_position(&want.container, &var);
                let Some((c, e)) = position.filter(|_| settings.reload_on_delete) else {
                    plan.unchanged.push((source.clone(), NoChange::Deleted));
                    continue;
                };
                if plan.touches(&workload.refs, &want.container, &var) {
                    // Another source of this plan already removes or sets the variable.
                    plan.because.push(source.clone());
                    continue;
                }
                // A source still selected shares the variable: it keeps the variable,
                // now with the value of those that remain.
                match survivor_want(id, workload, source, &want.container, sources, settings) {
                    None => plan.remove.push((c, e, var)),
                    Some(remaining) => {
                        if workload.refs.marker(&want.container, &var) == Some(&*remaining) {
                            plan.unchanged.push((source.clone(), NoChange::Current));
                            continue;
                        }
                        plan.env.push(EnvMarker {
                            container: want.container,
                            name: var,
                            value: remaining,
                        });
                    }
                }
                plan.because.push(source.clone());
            }
            (Strategy::EnvVars, Some(entry)) => {
                let current = workload.refs.marker(&want.container, &var);
                if plan.touches(&workload.refs, &want.container, &var) {
                    // Same variable, same value (see `shared_want`): one marker.
                    plan.because.push(source.clone());
                } else if current.is_some_and(|c| is_current(c, &want.value, entry)) {
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
                let current = match entry {
                    Some(entry) => recorded(workload, source)
                        .is_some_and(|recorded| is_current(&recorded, &want.value, entry)),
                    None => false,
                };
                let value = ReloadedFrom {
                    kind: source.kind.upper().to_owned(),
                    name: source.name.clone(),
                    namespace: source.namespace.clone(),
                    hash,
                    container_refs: vec![want.container],
                };
                if current
                    || parse_reloaded_from(workload.reloaded_from.as_deref()).as_ref()
                        == Some(&value)
                {
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
    if plan.reloaded_from.is_some() {
        plan.reloaded_digests = Some(recorded_digests(id, workload, pending, sources, settings));
    }
    plan
}

fn parse_reloaded_from(text: Option<&str>) -> Option<ReloadedFrom> {
    serde_json::from_str(text?).ok()
}

/// A source's key in `rekindle.io/reloaded-digests`: `CONFIGMAP/NAME`, the type
/// spelt as in `last-reloaded-from`.
fn digest_key(source: &SourceId) -> String {
    format!("{}/{}", source.kind.upper(), source.name)
}

/// `rekindle.io/reloaded-digests`, read; an unreadable value reads as none (the
/// catch-up then falls back to `last-reloaded-from`, and the next rollout
/// rewrites it).
fn parse_reloaded_digests(text: Option<&str>) -> BTreeMap<String, String> {
    text.and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// `rekindle.io/reloaded-digests` as far as it still describes the template.
///
/// A rollout writes it together with `last-reloaded-from`, so the source that
/// annotation names is recorded in it at the same value (or, deleted, not at
/// all). When it is not, another writer (Reloader, or an older rekindle during a
/// migration back and forth) rolled the workload since and left the digests
/// behind: they are not read, and the workload is compared on the source
/// `last-reloaded-from` names only, as before the digests existed. Reading them
/// would roll it again for changes that writer already rolled for.
fn reloaded_digests(workload: &WorkloadEntry) -> BTreeMap<String, String> {
    let digests = parse_reloaded_digests(workload.reloaded_digests.as_deref());
    let Some(last) = parse_reloaded_from(workload.reloaded_from.as_deref()) else {
        return digests;
    };
    let agrees = match digests.get(&format!("{}/{}", last.kind, last.name)) {
        Some(value) => *value == last.hash,
        None => last.hash == crate::decide::digest::sha1_hex(DELETE_MARKER.as_bytes()),
    };
    if agrees { digests } else { BTreeMap::new() }
}

/// The value the workload's template records for `source` (annotations strategy):
/// from `rekindle.io/reloaded-digests`, else from `last-reloaded-from` if that names
/// it (written by Reloader, or before the digests annotation existed).
fn recorded(workload: &WorkloadEntry, source: &SourceId) -> Option<String> {
    reloaded_digests(workload)
        .remove(&digest_key(source))
        .or_else(|| {
            parse_reloaded_from(workload.reloaded_from.as_deref())
                .filter(|r| r.kind == source.kind.upper() && r.name == source.name)
                .map(|r| r.hash)
        })
}

/// The `rekindle.io/reloaded-digests` a rollout writes: each source the workload
/// rolls for (those its template references, those a named reload marked, and the
/// pending ones) that exists and is selected, at the value it wants now.
///
/// A source the index does not hold and that is not being rolled for (a deletion
/// is) keeps the value recorded before: during the start its watch may not have
/// listed yet, and dropping it would leave a later change to it, made while the
/// operator is down, to no catch-up.
fn recorded_digests(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    pending: &BTreeSet<SourceId>,
    sources: &SourceIndex,
    settings: &PlanSettings,
) -> String {
    let candidates: BTreeSet<SourceId> = referenced(id, workload)
        .chain(marked_unreferenced(id, workload, sources, settings))
        .chain(pending.iter().cloned())
        .collect();
    let before = reloaded_digests(workload);
    let digests: BTreeMap<String, String> = candidates
        .iter()
        .filter_map(|source| {
            let key = digest_key(source);
            let Some(entry) = sources.get(source) else {
                let kept = before.get(&key).filter(|_| !pending.contains(source))?;
                return Some((key, kept.clone()));
            };
            let want = shared_want(id, workload, source, Some(entry), sources, settings).ok()?;
            Some((key, want.value))
        })
        .collect();
    serde_json::to_string(&digests).expect("a map of strings always serializes")
}

/// The sources the workload's pod template references.
fn referenced<'a>(
    id: &'a WorkloadId,
    workload: &'a WorkloadEntry,
) -> impl Iterator<Item = SourceId> + 'a {
    workload
        .refs
        .sources
        .keys()
        .map(|(kind, name)| SourceId::new(*kind, id.namespace.clone(), name.clone()))
}

/// Sources whose marker on `workload` is present but stale: changed while the
/// operator was not watching. A source with no marker on the workload is not
/// stale (installing the operator rolls nothing).
///
/// The sources looked at are those the template references and those it does
/// not but whose marker the workload carries (a named reload of a source no
/// container uses, see `marked_unreferenced`); each counts only if the
/// workload still selects it, as a change to it would.
pub fn stale_sources(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    sources: &SourceIndex,
    settings: &PlanSettings,
) -> BTreeSet<SourceId> {
    let mut stale = BTreeSet::new();
    let unreferenced = marked_unreferenced(id, workload, sources, settings);
    for source in referenced(id, workload).chain(unreferenced) {
        let Some(entry) = sources.get(&source) else {
            continue;
        };
        let Ok(want) = shared_want(id, workload, &source, Some(entry), sources, settings) else {
            continue;
        };
        let current = match settings.strategy {
            Strategy::EnvVars => current_env(&workload.refs, &want.container, &source),
            Strategy::Annotations => recorded(workload, &source),
        };
        if current.is_some_and(|current| !is_current(&current, &want.value, entry)) {
            stale.insert(source);
        }
    }
    stale
}

/// The sources the template does not reference but whose marker the workload
/// carries. Only a named reload puts such a marker there (on the first
/// container, see [`choose`]), and a named list is made of regexes, so the
/// sources are found from the markers instead: for env vars, the sources of
/// each `STAKATER_…` variable of a kind the workload has a named list for (see
/// [`SourceIndex::folding_to`]); for the annotation, the source it names.
/// Whether the workload selects them is left to the caller ([`shared_want`]).
fn marked_unreferenced(
    id: &WorkloadId,
    workload: &WorkloadEntry,
    sources: &SourceIndex,
    settings: &PlanSettings,
) -> BTreeSet<SourceId> {
    use crate::model::SourceKind;
    const KINDS: [SourceKind; 3] = [
        SourceKind::ConfigMap,
        SourceKind::Secret,
        SourceKind::SecretProviderClass,
    ];
    let refs = &workload.refs;
    let mut found = BTreeSet::new();
    match settings.strategy {
        Strategy::EnvVars => {
            let vars: BTreeSet<&str> = refs
                .containers
                .iter()
                .flat_map(|c| c.markers.keys())
                .map(String::as_str)
                .collect();
            for kind in KINDS {
                if !needs_named_scan(&workload.rules, kind) {
                    continue;
                }
                let known: Vec<&str> = refs
                    .sources
                    .keys()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, name)| name.as_str())
                    .collect();
                for var in &vars {
                    for (source, _) in sources.folding_to(&id.namespace, kind, var, &known) {
                        found.insert(source.clone());
                    }
                }
            }
        }
        Strategy::Annotations => {
            let last =
                parse_reloaded_from(workload.reloaded_from.as_deref()).map(|r| (r.kind, r.name));
            let recorded = reloaded_digests(workload).into_keys().filter_map(|key| {
                let (kind, name) = key.split_once('/')?;
                Some((kind.to_owned(), name.to_owned()))
            });
            for (kind, name) in last.into_iter().chain(recorded) {
                let Some(kind) = KINDS.into_iter().find(|k| k.upper() == kind) else {
                    continue;
                };
                if refs.usage(kind, &name).is_none() {
                    found.insert(SourceId::new(kind, id.namespace.clone(), name));
                }
            }
        }
    }
    found
}

fn current_env(refs: &TemplateRefs, container: &str, source: &SourceId) -> Option<String> {
    refs.marker(container, &env_var_name(source.kind, &source.name))
        .map(str::to_owned)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Plan-level rules, with workloads and sources built from real API objects
    //! and reduced by [`crate::index::objects`], as in production. The `mk_*`
    //! builders are shared with the reconciler's tests.

    use super::*;
    use crate::decide::annotations::{
        AnnotationNames, CONFIGMAPS_EXCLUDE, LAST_RELOADED_FROM, RELOADED_DIGESTS,
    };
    use crate::decide::digest::sha1_hex;
    use crate::index::objects::{self, WorkloadSettings};
    use crate::model::SourceKind;
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapVolumeSource, Container,
        EnvFromSource, EnvVar, EnvVarSource, KeyToPath, PodSpec, PodTemplateSpec, Volume,
        VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    // ---- builders (shared with `reconcile::tests`) --------------------------

    pub(crate) const NS: &str = "team";

    pub(crate) fn mk_key() -> MarkerKey {
        MarkerKey::new([7; 32])
    }

    fn mk_map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        (!pairs.is_empty()).then(|| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
    }

    fn mk_meta(ns: &str, name: &str, annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.to_owned()),
            name: Some(name.to_owned()),
            uid: Some(format!("uid-{ns}-{name}")),
            annotations: mk_map(annotations),
            ..ObjectMeta::default()
        }
    }

    pub(crate) fn mk_config_map(
        ns: &str,
        name: &str,
        data: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> ConfigMap {
        ConfigMap {
            metadata: mk_meta(ns, name, annotations),
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    pub(crate) fn mk_container(name: &str) -> Container {
        Container {
            name: name.to_owned(),
            ..Container::default()
        }
    }

    /// `envFrom: configMapRef`: the whole ConfigMap.
    pub(crate) fn with_env_from(mut c: Container, cm: &str) -> Container {
        c.env_from.get_or_insert_with(Vec::new).push(EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: cm.to_owned(),
                optional: None,
            }),
            ..EnvFromSource::default()
        });
        c
    }

    /// `env[].valueFrom.configMapKeyRef`: one key.
    pub(crate) fn with_key_ref(mut c: Container, cm: &str, key: &str) -> Container {
        c.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: format!("FROM_{}", key.to_uppercase()),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: cm.to_owned(),
                    key: key.to_owned(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        c
    }

    pub(crate) fn with_mount(mut c: Container, volume: &str) -> Container {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: volume.to_owned(),
                mount_path: format!("/etc/{volume}"),
                ..VolumeMount::default()
            });
        c
    }

    /// A plain env var, e.g. a marker written earlier.
    pub(crate) fn with_var(mut c: Container, var: &str, value: &str) -> Container {
        c.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: var.to_owned(),
            value: Some(value.to_owned()),
            ..EnvVar::default()
        });
        c
    }

    pub(crate) fn mk_deployment(
        ns: &str,
        name: &str,
        annotations: &[(&str, &str)],
        containers: Vec<Container>,
    ) -> Deployment {
        Deployment {
            metadata: mk_meta(ns, name, annotations),
            spec: Some(DeploymentSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta::default()),
                    spec: Some(PodSpec {
                        containers,
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    fn template(d: &mut Deployment) -> &mut PodTemplateSpec {
        &mut d.spec.as_mut().expect("built by mk_deployment").template
    }

    /// A ConfigMap volume; `items` empty projects every key.
    pub(crate) fn with_volume(
        mut d: Deployment,
        volume: &str,
        cm: &str,
        items: &[&str],
    ) -> Deployment {
        let items = (!items.is_empty()).then(|| {
            items
                .iter()
                .map(|k| KeyToPath {
                    key: (*k).to_owned(),
                    path: (*k).to_owned(),
                    mode: None,
                })
                .collect()
        });
        let spec = template(&mut d)
            .spec
            .as_mut()
            .expect("built by mk_deployment");
        spec.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: volume.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: cm.to_owned(),
                items,
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        d
    }

    /// A pod-template annotation, e.g. `last-reloaded-from`.
    pub(crate) fn with_template_annotation(
        mut d: Deployment,
        key: &str,
        value: &str,
    ) -> Deployment {
        let meta = template(&mut d)
            .metadata
            .get_or_insert_with(ObjectMeta::default);
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        d
    }

    /// What the executor would write: the plan applied to the object, so that
    /// the workload the watch then reports carries the new markers.
    pub(crate) fn roll(mut d: Deployment, plan: &Plan) -> Deployment {
        let spec = template(&mut d)
            .spec
            .as_mut()
            .expect("built by mk_deployment");
        for (c, e, _) in &plan.remove {
            spec.containers[*c]
                .env
                .as_mut()
                .expect("a marker to remove is in env")
                .remove(*e);
        }
        for marker in &plan.env {
            let container = spec
                .containers
                .iter_mut()
                .find(|c| c.name == marker.container)
                .expect("the plan names a container of the template");
            let env = container.env.get_or_insert_with(Vec::new);
            match env.iter_mut().find(|v| v.name == marker.name) {
                Some(var) => var.value = Some(marker.value.clone()),
                None => env.push(EnvVar {
                    name: marker.name.clone(),
                    value: Some(marker.value.clone()),
                    ..EnvVar::default()
                }),
            }
        }
        if let Some(json) = &plan.reloaded_from {
            d = with_template_annotation(d, LAST_RELOADED_FROM, json);
        }
        d
    }

    pub(crate) fn source_of(cm: &ConfigMap) -> (SourceId, SourceEntry) {
        objects::config_map(cm, &AnnotationNames::default())
    }

    pub(crate) fn workload_of(d: &Deployment) -> (WorkloadId, WorkloadEntry) {
        objects::deployment(d, &WorkloadSettings::default())
    }

    pub(crate) fn mk_plan_settings(strategy: Strategy) -> PlanSettings {
        PlanSettings {
            strategy,
            hash: HashMode::Keyed(mk_key()),
            decide: DecideSettings::default(),
            reload_on_delete: false,
        }
    }

    /// The keyed marker of `cm` for the keys `used`, computed independently of
    /// the plan.
    pub(crate) fn keyed_marker(cm: &ConfigMap, used: &KeyUse) -> String {
        let (id, entry) = source_of(cm);
        marker(&mk_key(), &id, &entry.digests, used)
    }

    pub(crate) fn keys(names: &[&str]) -> KeyUse {
        KeyUse::Keys(names.iter().map(|n| (*n).to_owned()).collect())
    }

    pub(crate) const AUTO: (&str, &str) = ("reloader.stakater.com/auto", "true");
    pub(crate) const VAR: &str = "STAKATER_APP_CONFIG_CONFIGMAP";

    // ---- plan-level helpers ------------------------------------------------

    fn mk_index(cms: &[&ConfigMap]) -> SourceIndex {
        let mut index = SourceIndex::default();
        for cm in cms {
            let (id, entry) = source_of(cm);
            index.apply(id, entry);
        }
        index
    }

    fn app_config(data: &[(&str, &str)]) -> ConfigMap {
        mk_config_map(NS, "app-config", data, &[])
    }

    fn app_config_id() -> SourceId {
        SourceId::new(SourceKind::ConfigMap, NS, "app-config")
    }

    /// `web` with `auto: "true"`, a sidecar first and `app` reading the
    /// ConfigMap through `envFrom`, so that the chosen container is not simply
    /// the first.
    fn mk_web(app: Container) -> Deployment {
        mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![mk_container("sidecar"), with_env_from(app, "app-config")],
        )
    }

    fn plan_for(d: &Deployment, sources: &SourceIndex, settings: &PlanSettings) -> Plan {
        let (id, entry) = workload_of(d);
        plan(
            &id,
            &entry,
            &BTreeSet::from([app_config_id()]),
            sources,
            settings,
        )
    }

    fn reloaded_from_json(plan: &Plan) -> serde_json::Value {
        serde_json::from_str(
            plan.reloaded_from
                .as_deref()
                .expect("an annotation is planned"),
        )
        .expect("valid JSON")
    }

    /// SHA-1 of `__RELOADER_EMPTY_DELETE_MARKER__`, computed outside this crate.
    const RELOADER_DELETE_HASH: &str = "aae45badef99284e4dae01d6046154ea9d99532f";

    // ---- env-vars strategy ---------------------------------------------------

    #[test]
    fn env_vars_sets_the_keyed_marker_on_the_container_that_uses_the_source() {
        let cm = app_config(&[("a", "1")]);
        let plan = plan_for(
            &mk_web(mk_container("app")),
            &mk_index(&[&cm]),
            &mk_plan_settings(Strategy::EnvVars),
        );
        assert_eq!(
            plan.env,
            [EnvMarker::new("app", VAR, keyed_marker(&cm, &KeyUse::All))]
        );
        assert_eq!(plan.reloaded_from, None);
        assert!(plan.remove.is_empty());
        assert_eq!(plan.because, [app_config_id()]);
    }

    #[test]
    fn env_vars_marker_covers_only_the_used_keys() {
        let cm = app_config(&[("a", "1"), ("b", "2")]);
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_key_ref(mk_container("app"), "app-config", "a")],
        );
        let plan = plan_for(
            &web,
            &mk_index(&[&cm]),
            &mk_plan_settings(Strategy::EnvVars),
        );
        assert_eq!(plan.env[0].value, keyed_marker(&cm, &keys(&["a"])));
        assert_ne!(plan.env[0].value, keyed_marker(&cm, &KeyUse::All));
    }

    #[test]
    fn env_vars_with_the_value_already_there_plans_nothing() {
        let cm = app_config(&[("a", "1")]);
        let current = keyed_marker(&cm, &KeyUse::All);
        let web = mk_web(with_var(mk_container("app"), VAR, &current));
        let plan = plan_for(
            &web,
            &mk_index(&[&cm]),
            &mk_plan_settings(Strategy::EnvVars),
        );
        assert!(plan.is_empty());
        assert_eq!(plan.unchanged, [(app_config_id(), NoChange::Current)]);
    }

    #[test]
    fn env_vars_replaces_a_stale_value() {
        let cm = app_config(&[("a", "2")]);
        let web = mk_web(with_var(mk_container("app"), VAR, "stale"));
        let plan = plan_for(
            &web,
            &mk_index(&[&cm]),
            &mk_plan_settings(Strategy::EnvVars),
        );
        assert_eq!(
            plan.env,
            [EnvMarker::new("app", VAR, keyed_marker(&cm, &KeyUse::All))]
        );
    }

    /// Found by fuzzing: `app-config` and `app.config` share one variable;
    /// each wrote its own value, so every plan found the other's there and
    /// rolled the workload again, at each change and at each start.
    #[test]
    fn sources_sharing_a_variable_write_one_value_and_roll_once() {
        let dash = app_config(&[("a", "1")]);
        let dot = mk_config_map(NS, "app.config", &[("b", "2")], &[]);
        let dot_id = SourceId::new(SourceKind::ConfigMap, NS, "app.config");
        let settings = mk_plan_settings(Strategy::EnvVars);
        let sources = mk_index(&[&dash, &dot]);
        let both = BTreeSet::from([app_config_id(), dot_id.clone()]);
        let referenced = with_env_from(
            with_env_from(mk_container("app"), "app-config"),
            "app.config",
        );
        // Named but not referenced: the marker goes on the first container.
        let named = (
            "configmap.reloader.stakater.com/reload",
            "app-config,app.config",
        );

        for (annotations, app) in [(AUTO, referenced), (named, mk_container("app"))] {
            let (id, entry) =
                workload_of(&mk_deployment(NS, "web", &[annotations], vec![app.clone()]));
            let first = plan(&id, &entry, &both, &sources, &settings);
            assert_eq!(first.env.len(), 1, "one variable, one marker: {first:?}");
            assert_eq!(first.env[0].name, VAR);
            assert_eq!(first.because.len(), 2);
            for one in [app_config_id(), dot_id.clone()] {
                let alone = plan(&id, &entry, &BTreeSet::from([one]), &sources, &settings);
                assert_eq!(
                    alone.env, first.env,
                    "the same value whichever source is planned"
                );
            }

            let app = with_var(app, VAR, &first.env[0].value);
            let (id, entry) = workload_of(&mk_deployment(NS, "web", &[annotations], vec![app]));
            let again = plan(&id, &entry, &both, &sources, &settings);
            assert!(again.is_empty(), "rolled twice: {again:?}");
            assert!(stale_sources(&id, &entry, &sources, &settings).is_empty());
        }
    }

    /// Found in review: deleting sources that share a variable removed it twice
    /// in one patch (a patch that fails for ever), or removed it from under a
    /// source still using it.
    #[test]
    fn deleting_sources_that_share_a_variable() {
        let dash = app_config(&[("a", "1")]);
        let dot_id = SourceId::new(SourceKind::ConfigMap, NS, "app.config");
        let app = with_env_from(
            with_env_from(mk_container("app"), "app-config"),
            "app.config",
        );
        let app = with_var(app, VAR, "shared-value-of-both");
        let (id, entry) = workload_of(&mk_deployment(NS, "web", &[AUTO], vec![app]));
        let settings = PlanSettings {
            reload_on_delete: true,
            ..mk_plan_settings(Strategy::EnvVars)
        };
        let both = BTreeSet::from([app_config_id(), dot_id.clone()]);

        // Both gone: one removal.
        let gone = plan(&id, &entry, &both, &mk_index(&[]), &settings);
        assert_eq!(gone.remove, [(0, 0, VAR.to_owned())]);
        assert!(gone.env.is_empty());
        assert_eq!(gone.because.len(), 2);

        // One gone: the variable stays, with the value of the one that remains,
        // whichever of them is planned, and alone or together.
        let remaining = mk_index(&[&dash]);
        let own = keyed_marker(&dash, &KeyUse::All);
        for pending in [
            both.clone(),
            BTreeSet::from([dot_id]),
            BTreeSet::from([app_config_id()]),
        ] {
            let one = plan(&id, &entry, &pending, &remaining, &settings);
            assert!(one.remove.is_empty(), "{one:?}");
            assert_eq!(one.env, [EnvMarker::new("app", VAR, own.clone())]);
        }
    }

    #[test]
    fn hash_reloader_sha1_writes_the_entry_sha1() {
        // Reloader's known pair: ConfigMap {test: test}.
        let cm = app_config(&[("test", "test")]);
        let settings = PlanSettings {
            hash: HashMode::ReloaderSha1,
            ..mk_plan_settings(Strategy::EnvVars)
        };
        let plan = plan_for(&mk_web(mk_container("app")), &mk_index(&[&cm]), &settings);
        assert_eq!(
            plan.env[0].value,
            "b3cefbcce711f8574b0e66c41fc1dcf06eb5b6db"
        );
        assert_eq!(plan.env[0].value, source_of(&cm).1.reloader_sha1);
    }

    #[test]
    fn env_vars_delete_removes_the_variable_where_it_sits() {
        let web = mk_web(with_var(
            with_var(mk_container("app"), "OTHER", "x"),
            VAR,
            "old",
        ));
        let settings = PlanSettings {
            reload_on_delete: true,
            ..mk_plan_settings(Strategy::EnvVars)
        };
        // The ConfigMap is not in the index: deleted.
        let plan = plan_for(&web, &mk_index(&[]), &settings);
        assert_eq!(plan.remove, [(1, 1, VAR.to_owned())]);
        assert!(plan.env.is_empty());
        assert_eq!(plan.because, [app_config_id()]);
    }

    #[test]
    fn env_vars_delete_without_reload_on_delete_or_marker_plans_nothing() {
        let marked = mk_web(with_var(mk_container("app"), VAR, "old"));
        let off = plan_for(
            &marked,
            &mk_index(&[]),
            &mk_plan_settings(Strategy::EnvVars),
        );
        assert!(off.is_empty());
        assert_eq!(off.unchanged, [(app_config_id(), NoChange::Deleted)]);

        let settings = PlanSettings {
            reload_on_delete: true,
            ..mk_plan_settings(Strategy::EnvVars)
        };
        let unmarked = plan_for(&mk_web(mk_container("app")), &mk_index(&[]), &settings);
        assert!(unmarked.is_empty());
        assert_eq!(unmarked.unchanged, [(app_config_id(), NoChange::Deleted)]);
    }

    // ---- selection -----------------------------------------------------------

    #[test]
    fn a_named_source_no_container_uses_goes_on_the_first_container() {
        let cm = mk_config_map(NS, "extra", &[("a", "1")], &[]);
        let web = mk_deployment(
            NS,
            "web",
            &[("configmap.reloader.stakater.com/reload", "extra")],
            vec![mk_container("first"), mk_container("second")],
        );
        let (id, entry) = workload_of(&web);
        let extra = SourceId::new(SourceKind::ConfigMap, NS, "extra");
        let plan = plan(
            &id,
            &entry,
            &BTreeSet::from([extra]),
            &mk_index(&[&cm]),
            &mk_plan_settings(Strategy::EnvVars),
        );
        assert_eq!(
            plan.env,
            [EnvMarker::new(
                "first",
                "STAKATER_EXTRA_CONFIGMAP",
                keyed_marker(&cm, &KeyUse::All)
            )]
        );
    }

    #[test]
    fn an_auto_source_no_container_uses_is_unused() {
        // A volume declared and never mounted.
        let cm = app_config(&[("a", "1")]);
        let web = with_volume(
            mk_deployment(NS, "web", &[AUTO], vec![mk_container("app")]),
            "config",
            "app-config",
            &[],
        );
        let plan = plan_for(
            &web,
            &mk_index(&[&cm]),
            &mk_plan_settings(Strategy::EnvVars),
        );
        assert!(plan.is_empty());
        assert_eq!(plan.unchanged, [(app_config_id(), NoChange::Unused)]);
    }

    #[test]
    fn a_source_not_selected_by_the_workload_plans_nothing() {
        let cm = app_config(&[("a", "1")]);
        let web = mk_deployment(
            NS,
            "web",
            &[],
            vec![with_env_from(mk_container("app"), "app-config")],
        );
        let plan = plan_for(
            &web,
            &mk_index(&[&cm]),
            &mk_plan_settings(Strategy::EnvVars),
        );
        assert!(plan.is_empty());
        assert_eq!(
            plan.unchanged,
            [(
                app_config_id(),
                NoChange::NotSelected(SkipReason::NotSelected)
            )]
        );
    }

    #[test]
    fn selects_narrows_to_the_used_keys_only_with_a_keyed_marker() {
        let web = mk_deployment(
            NS,
            "web",
            &[AUTO],
            vec![with_key_ref(mk_container("app"), "app-config", "a")],
        );
        let (id, entry) = workload_of(&web);
        let flags = SourceFlags::default();
        let keyed = mk_plan_settings(Strategy::EnvVars);
        assert_eq!(
            selects(&id, &entry, &app_config_id(), flags, &keyed),
            Ok(keys(&["a"]))
        );
        // Reloader's SHA-1 changes with every key, so every key concerns it.
        let sha1 = PlanSettings {
            hash: HashMode::ReloaderSha1,
            ..keyed
        };
        assert_eq!(
            selects(&id, &entry, &app_config_id(), flags, &sha1),
            Ok(KeyUse::All)
        );
    }

    // ---- annotations strategy -------------------------------------------------

    #[test]
    fn annotations_writes_last_reloaded_from_without_observed_at() {
        let cm = app_config(&[("a", "1")]);
        let plan = plan_for(
            &mk_web(mk_container("app")),
            &mk_index(&[&cm]),
            &mk_plan_settings(Strategy::Annotations),
        );
        assert!(plan.env.is_empty());
        assert_eq!(
            reloaded_from_json(&plan),
            serde_json::json!({
                "type": "CONFIGMAP",
                "name": "app-config",
                "namespace": NS,
                "hash": keyed_marker(&cm, &KeyUse::All),
                "containerRefs": ["app"],
            })
        );
        assert!(
            !plan
                .reloaded_from
                .as_deref()
                .unwrap_or("")
                .contains("observedAt")
        );
        assert_eq!(plan.because, [app_config_id()]);
    }

    #[test]
    fn annotations_with_our_json_already_there_plans_nothing() {
        let cm = app_config(&[("a", "1")]);
        let index = mk_index(&[&cm]);
        let settings = mk_plan_settings(Strategy::Annotations);
        let first = plan_for(&mk_web(mk_container("app")), &index, &settings);
        let rolled = roll(mk_web(mk_container("app")), &first);
        let again = plan_for(&rolled, &index, &settings);
        assert!(again.is_empty());
        assert_eq!(again.unchanged, [(app_config_id(), NoChange::Current)]);
    }

    #[test]
    fn annotations_delete_writes_reloaders_delete_hash() {
        assert_eq!(
            sha1_hex(b"__RELOADER_EMPTY_DELETE_MARKER__"),
            RELOADER_DELETE_HASH
        );
        let settings = PlanSettings {
            reload_on_delete: true,
            ..mk_plan_settings(Strategy::Annotations)
        };
        let plan = plan_for(&mk_web(mk_container("app")), &mk_index(&[]), &settings);
        assert_eq!(reloaded_from_json(&plan)["hash"], RELOADER_DELETE_HASH);
        assert_eq!(
            reloaded_from_json(&plan)["containerRefs"],
            serde_json::json!(["app"])
        );
    }

    #[test]
    fn annotations_delete_without_reload_on_delete_plans_nothing() {
        let plan = plan_for(
            &mk_web(mk_container("app")),
            &mk_index(&[]),
            &mk_plan_settings(Strategy::Annotations),
        );
        assert!(plan.is_empty());
        assert_eq!(plan.unchanged, [(app_config_id(), NoChange::Deleted)]);
    }

    // ---- stale markers ---------------------------------------------------------

    fn stale(d: &Deployment, sources: &SourceIndex, settings: &PlanSettings) -> BTreeSet<SourceId> {
        let (id, entry) = workload_of(d);
        stale_sources(&id, &entry, sources, settings)
    }

    #[test]
    fn stale_env_marker_is_found_and_a_missing_one_is_not() {
        let cm = app_config(&[("a", "1")]);
        let index = mk_index(&[&cm]);
        let settings = mk_plan_settings(Strategy::EnvVars);
        let marked = mk_web(with_var(mk_container("app"), VAR, "old"));
        assert_eq!(
            stale(&marked, &index, &settings),
            BTreeSet::from([app_config_id()])
        );
        assert!(stale(&mk_web(mk_container("app")), &index, &settings).is_empty());
        let current = mk_web(with_var(
            mk_container("app"),
            VAR,
            &keyed_marker(&cm, &KeyUse::All),
        ));
        assert!(stale(&current, &index, &settings).is_empty());
    }

    #[test]
    fn reloaders_sha1_counts_as_current_in_keyed_mode() {
        let cm = app_config(&[("test", "test")]);
        let web = mk_web(with_var(
            mk_container("app"),
            VAR,
            "b3cefbcce711f8574b0e66c41fc1dcf06eb5b6db",
        ));
        let settings = mk_plan_settings(Strategy::EnvVars);
        assert!(stale(&web, &mk_index(&[&cm]), &settings).is_empty());
        let changed = app_config(&[("test", "changed")]);
        assert_eq!(
            stale(&web, &mk_index(&[&changed]), &settings),
            BTreeSet::from([app_config_id()])
        );
    }

    #[test]
    fn stale_annotation_compares_the_hash_of_the_named_source() {
        let cm = app_config(&[("a", "1")]);
        let index = mk_index(&[&cm]);
        let settings = mk_plan_settings(Strategy::Annotations);
        let json = |name: &str, hash: &str| {
            serde_json::json!({
                "type": "CONFIGMAP", "name": name, "namespace": NS, "hash": hash,
                "containerRefs": ["app"], "observedAt": 1_700_000_000,
            })
            .to_string()
        };
        let annotated = |name: &str, hash: &str| {
            with_template_annotation(
                mk_web(mk_container("app")),
                LAST_RELOADED_FROM,
                &json(name, hash),
            )
        };
        assert_eq!(
            stale(&annotated("app-config", "old"), &index, &settings),
            BTreeSet::from([app_config_id()])
        );
        let current = keyed_marker(&cm, &KeyUse::All);
        assert!(stale(&annotated("app-config", &current), &index, &settings).is_empty());
        // Reloader's own JSON (with observedAt and its SHA-1) is current too.
        let sha1 = source_of(&cm).1.reloader_sha1;
        assert!(stale(&annotated("app-config", &sha1), &index, &settings).is_empty());
        // The annotation names another source: nothing to say about this one.
        assert!(stale(&annotated("other", "old"), &index, &settings).is_empty());
    }

    /// `web` reading `app-config` and `extra` whole, carrying both annotations of
    /// the `annotations` strategy: `last-reloaded-from` naming `app-config` at
    /// `last`, and `digests`.
    fn mk_recorded(last: &str, digests: serde_json::Value) -> Deployment {
        let json = serde_json::json!({
            "type": "CONFIGMAP", "name": "app-config", "namespace": NS, "hash": last,
            "containerRefs": ["app"],
        });
        let d = mk_web(with_env_from(mk_container("app"), "extra"));
        let d = with_template_annotation(d, LAST_RELOADED_FROM, &json.to_string());
        with_template_annotation(d, RELOADED_DIGESTS, &digests.to_string())
    }

    #[test]
    fn digests_another_writer_left_behind_are_not_read() {
        let cm = app_config(&[("a", "2")]);
        let other = extra(&[("b", "1")]);
        let index = mk_index(&[&cm, &other]);
        let settings = mk_plan_settings(Strategy::Annotations);
        let ours = |source: &ConfigMap| keyed_marker(source, &KeyUse::All);
        // Written together by one rollout: read, and app-config is behind.
        let digests =
            serde_json::json!({"CONFIGMAP/app-config": "old", "CONFIGMAP/extra": ours(&other)});
        assert_eq!(
            stale(&mk_recorded("old", digests.clone()), &index, &settings),
            BTreeSet::from([app_config_id()])
        );
        // Reloader rolled for app-config's new data since (its SHA-1 in
        // last-reloaded-from): the digests are older than the template.
        let sha1 = source_of(&cm).1.reloader_sha1;
        assert!(stale(&mk_recorded(&sha1, digests), &index, &settings).is_empty());
        // Left behind, they are not read for the other sources either.
        let behind = serde_json::json!({"CONFIGMAP/app-config": "old", "CONFIGMAP/extra": "old"});
        assert!(stale(&mk_recorded(&sha1, behind), &index, &settings).is_empty());
    }

    #[test]
    fn a_source_not_in_the_index_keeps_its_recorded_value() {
        let cm = app_config(&[("a", "2")]);
        // `extra` not listed yet (its watch still listing): only app-config is known.
        let index = mk_index(&[&cm]);
        let settings = mk_plan_settings(Strategy::Annotations);
        let recorded = serde_json::json!({"CONFIGMAP/app-config": "old", "CONFIGMAP/extra": "e1"});
        let d = mk_recorded("old", recorded);
        let written = |plan: &Plan| -> serde_json::Value {
            serde_json::from_str(plan.reloaded_digests.as_deref().expect("written")).expect("JSON")
        };
        assert_eq!(
            written(&plan_for(&d, &index, &settings)),
            serde_json::json!({
                "CONFIGMAP/app-config": keyed_marker(&cm, &KeyUse::All),
                "CONFIGMAP/extra": "e1",
            })
        );
        // Deleted, and rolled for: its value goes.
        let settings = PlanSettings {
            reload_on_delete: true,
            ..settings
        };
        let (id, entry) = workload_of(&d);
        let pending = BTreeSet::from([app_config_id(), extra_id()]);
        let plan = plan(&id, &entry, &pending, &index, &settings);
        assert_eq!(
            written(&plan),
            serde_json::json!({"CONFIGMAP/app-config": keyed_marker(&cm, &KeyUse::All)})
        );
    }

    // A source the workload names in its reload annotation but no container
    // uses: its marker sits on the first container (see
    // `a_named_source_no_container_uses_goes_on_the_first_container`).

    const EXTRA_VAR: &str = "STAKATER_EXTRA_CONFIGMAP";

    fn extra(data: &[(&str, &str)]) -> ConfigMap {
        mk_config_map(NS, "extra", data, &[])
    }

    fn extra_id() -> SourceId {
        SourceId::new(SourceKind::ConfigMap, NS, "extra")
    }

    /// `web` naming `extra` with `reload` (and, if given, excluding `exclude`),
    /// with `first` first and a container reading `app-config`.
    fn mk_naming(named: &str, exclude: &str, first: Container) -> Deployment {
        let mut annotations = vec![("configmap.reloader.stakater.com/reload", named)];
        if !exclude.is_empty() {
            annotations.push((CONFIGMAPS_EXCLUDE, exclude));
        }
        mk_deployment(
            NS,
            "web",
            &annotations,
            vec![first, with_env_from(mk_container("app"), "app-config")],
        )
    }

    #[test]
    fn stale_marker_of_a_named_unreferenced_source_is_found() {
        let index = mk_index(&[&extra(&[("a", "2")]), &app_config(&[("a", "1")])]);
        let settings = mk_plan_settings(Strategy::EnvVars);
        let first = with_var(mk_container("first"), EXTRA_VAR, "old");
        assert_eq!(
            stale(&mk_naming("extra", "", first.clone()), &index, &settings),
            BTreeSet::from([extra_id()])
        );
        // A regex item selects it as well as the plain name.
        assert_eq!(
            stale(&mk_naming("ext.*", "", first.clone()), &index, &settings),
            BTreeSet::from([extra_id()])
        );
        // Still only if the workload selects it: excluded, or not named at all.
        assert!(
            stale(
                &mk_naming("extra", "extra", first.clone()),
                &index,
                &settings
            )
            .is_empty()
        );
        assert!(stale(&mk_naming("other", "", first), &index, &settings).is_empty());
        // A marker on another container than the first is not this source's.
        let web = mk_deployment(
            NS,
            "web",
            &[("configmap.reloader.stakater.com/reload", "extra")],
            vec![
                mk_container("first"),
                with_var(mk_container("app"), EXTRA_VAR, "old"),
            ],
        );
        assert!(stale(&web, &index, &settings).is_empty());
    }

    #[test]
    fn current_marker_of_a_named_unreferenced_source_is_not_stale() {
        let old = extra(&[("a", "1")]);
        let settings = mk_plan_settings(Strategy::EnvVars);
        // The marker a live change wrote...
        let web = mk_naming("extra", "", mk_container("first"));
        let (id, entry) = workload_of(&web);
        let written = plan(
            &id,
            &entry,
            &BTreeSet::from([extra_id()]),
            &mk_index(&[&old]),
            &settings,
        );
        assert_eq!(written.env[0].name, EXTRA_VAR);
        let web = roll(web, &written);
        // ... is current while the data stays ...
        assert!(stale(&web, &mk_index(&[&old]), &settings).is_empty());
        // ... and stale once it changed.
        assert_eq!(
            stale(&web, &mk_index(&[&extra(&[("a", "2")])]), &settings),
            BTreeSet::from([extra_id()])
        );
    }

    #[test]
    fn a_named_unreferenced_source_without_marker_is_not_stale() {
        let index = mk_index(&[&extra(&[("a", "2")])]);
        let settings = mk_plan_settings(Strategy::EnvVars);
        assert!(
            stale(
                &mk_naming("extra", "", mk_container("first")),
                &index,
                &settings
            )
            .is_empty()
        );
        // Only the marker makes the difference.
        let marked = with_var(mk_container("first"), EXTRA_VAR, "old");
        assert_eq!(
            stale(&mk_naming("extra", "", marked), &index, &settings),
            BTreeSet::from([extra_id()])
        );
    }

    /// Several named sources folding to one variable: one shared value (see
    /// `shared_want`), stale for each of them once one changed.
    #[test]
    fn stale_shared_marker_of_named_unreferenced_sources() {
        let dash = app_config(&[("a", "1")]);
        let dot = mk_config_map(NS, "app.config", &[("b", "2")], &[]);
        let dot_id = SourceId::new(SourceKind::ConfigMap, NS, "app.config");
        let settings = mk_plan_settings(Strategy::EnvVars);
        let web = mk_deployment(
            NS,
            "web",
            &[(
                "configmap.reloader.stakater.com/reload",
                "app-config,app.config",
            )],
            vec![mk_container("first")],
        );
        let (id, entry) = workload_of(&web);
        let both = BTreeSet::from([app_config_id(), dot_id]);
        let written = plan(&id, &entry, &both, &mk_index(&[&dash, &dot]), &settings);
        let web = roll(web, &written);
        assert!(stale(&web, &mk_index(&[&dash, &dot]), &settings).is_empty());
        let changed = mk_config_map(NS, "app.config", &[("b", "3")], &[]);
        assert_eq!(stale(&web, &mk_index(&[&dash, &changed]), &settings), both);
    }

    #[test]
    fn stale_annotation_of_a_named_unreferenced_source_is_found() {
        let cm = extra(&[("a", "1")]);
        let index = mk_index(&[&cm]);
        let settings = mk_plan_settings(Strategy::Annotations);
        let annotated = |hash: &str| {
            let json = serde_json::json!({
                "type": "CONFIGMAP", "name": "extra", "namespace": NS, "hash": hash,
                "containerRefs": ["first"], "observedAt": 1_700_000_000,
            });
            with_template_annotation(
                mk_naming("extra", "", mk_container("first")),
                LAST_RELOADED_FROM,
                &json.to_string(),
            )
        };
        assert_eq!(
            stale(&annotated("old"), &index, &settings),
            BTreeSet::from([extra_id()])
        );
        let current = keyed_marker(&cm, &KeyUse::All);
        assert!(stale(&annotated(&current), &index, &settings).is_empty());
        let sha1 = source_of(&cm).1.reloader_sha1;
        assert!(stale(&annotated(&sha1), &index, &settings).is_empty());
        assert!(
            stale(
                &mk_naming("extra", "", mk_container("first")),
                &index,
                &settings
            )
            .is_empty()
        );
        // Named no more: not selected, whatever the annotation says.
        let unnamed = with_template_annotation(
            mk_deployment(NS, "web", &[], vec![mk_container("first")]),
            LAST_RELOADED_FROM,
            &serde_json::json!({
                "type": "CONFIGMAP", "name": "extra", "namespace": NS, "hash": "old",
            })
            .to_string(),
        );
        assert!(stale(&unnamed, &index, &settings).is_empty());
    }
}
