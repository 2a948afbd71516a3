//! What the operator keeps of each ConfigMap and Secret: a digest per key and
//! the two annotations that decide anything, never the data. Memory follows the
//! number of objects and keys, not their size.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::decide::annotations::SourceFlags;
use crate::decide::digest::{KeyDigests, changed_keys};
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
}

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
        self.entries.insert(id, entry);
        change
    }

    pub fn get(&self, id: &SourceId) -> Option<&SourceEntry> {
        self.entries.get(id)
    }

    pub fn remove(&mut self, id: &SourceId) -> Option<SourceEntry> {
        self.entries.remove(id)
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
            .filter_map(|id| self.entries.remove(&id).map(|entry| (id, entry)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
