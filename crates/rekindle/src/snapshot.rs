//! A snapshot: the user-visible content of a mounted ConfigMap or Secret at one instant.

use std::collections::BTreeMap;
use std::fmt;

use crate::digest::Digest;

/// The keys of a watched directory mapped to their bytes, with the content [`Digest`].
///
/// Keys are paths relative to the watched root, `/`-separated (projected volumes and
/// `items` with a `path` nest them). Names starting with `..` are Kubernetes bookkeeping
/// and never appear. Values are arbitrary bytes: ConfigMap `binaryData` and Secrets are
/// not necessarily text.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    // A BTreeMap over `String` iterates in byte order of the UTF-8 keys, which is the
    // order the digest format requires.
    entries: BTreeMap<String, Vec<u8>>,
    digest: Digest,
}

impl Snapshot {
    /// Builds a snapshot from key/value pairs in any order; a repeated key keeps its last value.
    pub fn from_entries<K, V, I>(entries: I) -> Snapshot
    where
        K: Into<String>,
        V: Into<Vec<u8>>,
        I: IntoIterator<Item = (K, V)>,
    {
        let entries: BTreeMap<String, Vec<u8>> = entries
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let digest = Digest::of_sorted(entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        Snapshot { entries, digest }
    }

    /// The content digest in the public format (see [`crate::digest`]).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// The value of `key` as UTF-8 text, if present and valid UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All keys, in byte order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// All entries, in byte order of their keys.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the directory had no user-visible keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What changed from `self` to `newer`: names only, never values, so it is safe to log
    /// for Secrets.
    pub fn diff(&self, newer: &Snapshot) -> SnapshotDiff {
        let mut diff = SnapshotDiff::default();
        for (key, value) in &newer.entries {
            match self.entries.get(key) {
                None => diff.added.push(key.clone()),
                Some(old) if old != value => diff.modified.push(key.clone()),
                Some(_) => {}
            }
        }
        diff.removed = self
            .entries
            .keys()
            .filter(|k| !newer.entries.contains_key(*k))
            .cloned()
            .collect();
        diff
    }
}

impl fmt::Debug for Snapshot {
    // Values may be Secret material: show the shape, never the bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("digest", &self.digest)
            .field("keys", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Names of the keys that differ between two snapshots, each list in byte order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// Keys only in the newer snapshot.
    pub added: Vec<String>,
    /// Keys only in the older snapshot.
    pub removed: Vec<String>,
    /// Keys in both whose values differ.
    pub modified: Vec<String>,
}

impl SnapshotDiff {
    /// True when both snapshots hold the same keys and values.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

impl fmt::Display for SnapshotDiff {
    /// `added [a, b] removed [] modified [c]`, omitting empty lists.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (label, keys) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("modified", &self.modified),
        ] {
            if keys.is_empty() {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{label} [{}]", keys.join(", "))?;
        }
        if first {
            f.write_str("no key changed")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_insertion_order() {
        let a = Snapshot::from_entries([("b", "2"), ("a", "1")]);
        let b = Snapshot::from_entries([("a", "1"), ("b", "2")]);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn digest_changes_with_any_byte() {
        let a = Snapshot::from_entries([("a", "1")]);
        let b = Snapshot::from_entries([("a", "2")]);
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn keys_sort_by_utf8_bytes() {
        // 'Z' (0x5a) < '_' (0x5f) < 'a' (0x61) < 'é' (0xc3 0xa9)
        let s = Snapshot::from_entries([("é", ""), ("a", ""), ("_", ""), ("Z", "")]);
        assert_eq!(s.keys().collect::<Vec<_>>(), ["Z", "_", "a", "é"]);
    }

    #[test]
    fn diff_names_added_removed_and_modified_keys() {
        let old = Snapshot::from_entries([("keep", "1"), ("change", "1"), ("drop", "1")]);
        let new = Snapshot::from_entries([("keep", "1"), ("change", "2"), ("new", "1")]);
        let diff = old.diff(&new);
        assert_eq!(diff.added, ["new"]);
        assert_eq!(diff.removed, ["drop"]);
        assert_eq!(diff.modified, ["change"]);
        assert_eq!(
            diff.to_string(),
            "added [new] removed [drop] modified [change]"
        );
        assert!(old.diff(&old).is_empty());
        assert_eq!(old.diff(&old).to_string(), "no key changed");
    }

    #[test]
    fn debug_never_shows_values() {
        let s = Snapshot::from_entries([("password", "hunter2")]);
        let shown = format!("{s:?}");
        assert!(shown.contains("password"));
        assert!(!shown.contains("hunter2"));
    }
}
