//! What the operator keeps of each ConfigMap and Secret: a digest per key and
//! the two annotations that decide anything, never the data. Memory follows the
//! number of objects and keys, not their size.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::decide::annotations::SourceFlags;
use crate::decide::digest::{KeyDigests, changed_keys};
use crate::decide::envname::env_var_name;
use crate::decide::references::MARKER_PREFIX;
use crate::model::{SourceId, SourceKind};

/// One ConfigMap or Secret, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub uid: String,
    pub flags: SourceFlags,
    pub digests: KeyDigests,
    /// Reloader's SHA-1 of the whole object: the value written with
    /// `--hash reloader-sha1`, and how a marker Reloader wrote is recognised as
    /// current when migrating (20 bytes, as hex).
    pub reloader_sha1: String,
    /// The public digest of the whole content (rekindle's snapshot format), which pods
    /// report: the fleet view compares with it. It cannot be rebuilt from the per-key
    /// digests (it hashes the values themselves), so it is kept too: 32 bytes.
    pub digest: rekindle::Digest,
}

/// How an object differs from what the index held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChange {
    /// Not in the index before.
    Created,
    /// These keys were added, removed or changed.
    Data(BTreeSet<String>),
    /// Only metadata changed (labels, annotations, resourceVersion).
    Unchanged,
}

/// Every source in scope, by identity.
#[derive(Debug, Default)]
pub struct SourceIndex {
    entries: HashMap<SourceId, SourceEntry>,
    /// How many sources fold to each marker variable, by a 64-bit hash of
    /// (namespace, kind, variable name): almost always 1. Where it is more,
    /// [`SourceIndex::sharing_variable`] looks for the others; keeping the
    /// sources themselves here would cost a copy of every id for a rare case.
    /// A hash collision only costs a needless look.
    variables: HashMap<u64, u32>,
}

/// The key of [`SourceIndex::variables`]. `DefaultHasher::new()` has fixed
/// keys, so the value is the same at every start.
fn variable_key(id: &SourceId) -> u64 {
    variable_hash(&id.namespace, id.kind, &env_var_name(id.kind, &id.name))
}

/// [`variable_key`] from the variable's name itself.
fn variable_hash(namespace: &str, kind: SourceKind, var: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    namespace.hash(&mut hasher);
    kind.hash(&mut hasher);
    var.hash(&mut hasher);
    hasher.finish()
}

/// [`SourceIndex::folding_to`] tries at most 2^this spellings of a variable's
/// name before it looks through the index instead.
const MAX_SPELLING_GAPS: usize = 10;

impl SourceIndex {
    /// Stores `entry` and says what changed.
    pub fn apply(&mut self, id: SourceId, entry: SourceEntry) -> SourceChange {
        let change = match self.entries.get(&id) {
            None => SourceChange::Created,
            Some(old) => {
                let keys = changed_keys(&old.digests, &entry.digests);
                if keys.is_empty() {
                    SourceChange::Unchanged
                } else {
                    SourceChange::Data(keys)
                }
            }
        };
        if change == SourceChange::Created {
            *self.variables.entry(variable_key(&id)).or_default() += 1;
        }
        self.entries.insert(id, entry);
        change
    }

    pub fn get(&self, id: &SourceId) -> Option<&SourceEntry> {
        self.entries.get(id)
    }

    pub fn remove(&mut self, id: &SourceId) -> Option<SourceEntry> {
        let entry = self.entries.remove(id)?;
        let key = variable_key(id);
        if let Some(count) = self.variables.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.variables.remove(&key);
            }
        }
        Some(entry)
    }

    /// The other sources in the index whose marker variable has the same name
    /// as `id`'s (same namespace and kind; `app-config` and `app.config`, say).
    /// Empty, without a scan, unless such a source exists.
    pub fn sharing_variable<'a>(
        &'a self,
        id: &'a SourceId,
    ) -> impl Iterator<Item = (&'a SourceId, &'a SourceEntry)> + 'a {
        let own = self.entries.contains_key(id) as u32;
        let shared = self.variables.get(&variable_key(id)).copied().unwrap_or(0) > own;
        let var = shared.then(|| env_var_name(id.kind, &id.name));
        // `var` is `None` in the common case, and then nothing is scanned.
        var.into_iter().flat_map(move |var| {
            self.entries.iter().filter(move |(other, _)| {
                *other != id
                    && other.kind == id.kind
                    && other.namespace == id.namespace
                    && env_var_name(other.kind, &other.name) == var
            })
        })
    }

    /// The sources in the index whose marker variable in `namespace` is `var`
    /// (e.g. `STAKATER_APP_CONFIG_CONFIGMAP` for the ConfigMaps `app-config` and
    /// `app.config`), leaving out the `known` names (the caller has them).
    ///
    /// The folding loses the name, so it is spelled back: each `_` between
    /// kept characters is a `-` or a `.` in a Kubernetes name, the spelling all
    /// in `-` first. The count kept per variable tells how many sources fold to
    /// `var`, so the search stops once they are all found, and nothing is
    /// looked up when only `known` ones do (a referenced source's marker).
    /// Only a name spelled otherwise (`a--b`), more than `MAX_SPELLING_GAPS`
    /// gaps or a hash collision costs a scan.
    pub fn folding_to<'a>(
        &'a self,
        namespace: &str,
        kind: SourceKind,
        var: &str,
        known: &[&str],
    ) -> Vec<(&'a SourceId, &'a SourceEntry)> {
        let mut found: Vec<(&SourceId, &SourceEntry)> = Vec::new();
        // `STAKATER_<folded name>_<KIND>`, as `env_var_name` writes it.
        let Some(folded) = var
            .strip_prefix(MARKER_PREFIX)
            .and_then(|rest| rest.strip_suffix(kind.upper()))
            .and_then(|rest| rest.strip_suffix('_'))
        else {
            return found;
        };
        let folds_to_var = |name: &str| env_var_name(kind, name) == var;
        let mut known: Vec<&str> = known
            .iter()
            .copied()
            .filter(|&name| {
                folds_to_var(name)
                    && self
                        .entries
                        .contains_key(&SourceId::new(kind, namespace, name))
            })
            .collect();
        known.sort_unstable();
        known.dedup();
        let total = self
            .variables
            .get(&variable_hash(namespace, kind, var))
            .copied()
            .unwrap_or(0) as usize;
        let wanted = total.saturating_sub(known.len());
        if wanted == 0 {
            return found;
        }

        let lower = folded.to_ascii_lowercase();
        let gaps: Vec<usize> = lower.match_indices('_').map(|(at, _)| at).collect();
        if gaps.len() <= MAX_SPELLING_GAPS {
            for spelling in 0u32..(1 << gaps.len()) {
                let mut name = lower.clone();
                for (bit, &at) in gaps.iter().enumerate() {
                    let gap = if (spelling >> bit) & 1 == 0 { "-" } else { "." };
                    name.replace_range(at..=at, gap);
                }
                if known.contains(&name.as_str()) || !folds_to_var(&name) {
                    continue;
                }
                let candidate = SourceId::new(kind, namespace, name);
                if let Some(hit) = self.entries.get_key_value(&candidate) {
                    found.push(hit);
                    if found.len() == wanted {
                        return found;
                    }
                }
            }
        }
        // Some source is spelled otherwise: look through the index.
        for (id, entry) in &self.entries {
            if id.kind == kind
                && id.namespace == namespace
                && !known.contains(&id.name.as_str())
                && !found.iter().any(|(seen, _)| *seen == id)
                && folds_to_var(&id.name)
            {
                found.push((id, entry));
            }
        }
        found
    }

    /// After a (re-)list of `kind` in `namespace` (`None`: all), removes the
    /// entries the list did not return: they were deleted while the watch was
    /// down, and no delete event will come for them. Returns them, as a delete
    /// event would carry them.
    pub fn retain_listed(
        &mut self,
        kind: SourceKind,
        namespace: Option<&str>,
        listed: &HashSet<SourceId>,
    ) -> Vec<(SourceId, SourceEntry)> {
        let gone: Vec<SourceId> = self
            .entries
            .keys()
            .filter(|id| {
                id.kind == kind
                    && namespace.is_none_or(|ns| id.namespace == ns)
                    && !listed.contains(*id)
            })
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|id| self.remove(&id).map(|entry| (id, entry)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::digest::KeyDigests;

    fn mk_entry() -> SourceEntry {
        SourceEntry {
            uid: "uid".into(),
            flags: SourceFlags::default(),
            digests: KeyDigests::new([("a", b"1".as_slice())]),
            reloader_sha1: String::new(),
            digest: rekindle::Snapshot::from_entries([("a", "1")])
                .digest()
                .to_owned(),
        }
    }

    fn mk_id(namespace: &str, name: &str) -> SourceId {
        SourceId::new(SourceKind::ConfigMap, namespace, name)
    }

    fn sharing(index: &SourceIndex, id: &SourceId) -> Vec<String> {
        let mut names: Vec<String> = index
            .sharing_variable(id)
            .map(|(s, _)| s.name.clone())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn sources_whose_names_fold_alike_share_a_variable() {
        let mut index = SourceIndex::default();
        for id in [
            mk_id("a", "app-config"),
            mk_id("a", "app.config"),
            mk_id("a", "other"),
            mk_id("b", "app_config"),
        ] {
            index.apply(id, mk_entry());
        }
        // Applied again (an update): still counted once.
        index.apply(mk_id("a", "app.config"), mk_entry());
        assert_eq!(sharing(&index, &mk_id("a", "app-config")), ["app.config"]);
        assert_eq!(
            sharing(&index, &mk_id("a", "APP_CONFIG")),
            ["app-config", "app.config"]
        );
        assert!(sharing(&index, &mk_id("a", "other")).is_empty());
        assert!(
            sharing(&index, &mk_id("b", "app_config")).is_empty(),
            "other namespace"
        );
        assert!(
            sharing(
                &index,
                &SourceId::new(SourceKind::Secret, "a", "app-config")
            )
            .is_empty(),
            "other kind"
        );

        index.remove(&mk_id("a", "app.config"));
        assert!(sharing(&index, &mk_id("a", "app-config")).is_empty());
        let listed = HashSet::from([mk_id("b", "app_config")]);
        index.retain_listed(SourceKind::ConfigMap, Some("a"), &listed);
        assert!(index.variables.keys().count() == 1, "{:?}", index.variables);
    }

    fn folding(index: &SourceIndex, kind: SourceKind, var: &str, known: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = index
            .folding_to("a", kind, var, known)
            .into_iter()
            .map(|(s, _)| s.name.clone())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_variable_is_spelled_back_to_the_sources_that_fold_to_it() {
        let mut index = SourceIndex::default();
        for id in [
            mk_id("a", "app-config"),
            mk_id("a", "app.config"),
            // Not one `-` or `.` per gap: found by the scan.
            mk_id("a", "app--config"),
            mk_id("a", "my.app-config"),
            mk_id("a", "other"),
            mk_id("b", "app-config"),
        ] {
            index.apply(id, mk_entry());
        }
        const CM: SourceKind = SourceKind::ConfigMap;
        let var = "STAKATER_APP_CONFIG_CONFIGMAP";
        assert_eq!(
            folding(&index, CM, var, &[]),
            ["app--config", "app-config", "app.config"]
        );
        assert_eq!(
            folding(&index, CM, var, &["app-config", "absent", "other"]),
            ["app--config", "app.config"]
        );
        assert_eq!(
            folding(&index, CM, "STAKATER_MY_APP_CONFIG_CONFIGMAP", &[]),
            ["my.app-config"]
        );
        assert_eq!(
            folding(&index, CM, "STAKATER_OTHER_CONFIGMAP", &[]),
            ["other"]
        );
        assert!(folding(&index, CM, "STAKATER_OTHER_CONFIGMAP", &["other"]).is_empty());
        assert!(folding(&index, CM, "STAKATER_NONE_CONFIGMAP", &[]).is_empty());
        assert!(folding(&index, SourceKind::Secret, "STAKATER_OTHER_SECRET", &[]).is_empty());
        assert!(folding(&index, SourceKind::Secret, "STAKATER_OTHER_CONFIGMAP", &[]).is_empty());
        assert!(folding(&index, CM, "STAKATER_OTHER_SECRET", &[]).is_empty());
        assert!(folding(&index, CM, "OTHER", &[]).is_empty());
    }
}
