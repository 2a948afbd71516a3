//! The value written on a workload, a pure function of the data it uses.
//!
//! The index keeps, per key of each ConfigMap or Secret, the SHA-256 of the
//! value ([`KeyDigests`]) and drops the data. From those, two values can be
//! made:
//!
//! - **Keyed marker** (default, [`marker`]): HMAC-SHA256 under the operator's
//!   own 32-byte key ([`MarkerKey`], random, kept in a Secret in the operator's
//!   namespace). The message is, each as a u64 big-endian length followed by
//!   the bytes: the tag `rekindle-marker-v1`, the source's kind (`CONFIGMAP`…), namespace and name, then for
//!   each *used* key in byte order the key and the SHA-256 of its value (the
//!   public digest layout of DESIGN.md, applied to the per-key digests).
//!   Without the key, a reader of Deployments cannot test guesses of a
//!   Secret's value against the marker, which Reloader's unsalted SHA-1
//!   allows. Only the used keys are hashed, so a workload that reads one key
//!   keeps its marker when another key changes.
//! - **Reloader's SHA-1** ([`reloader_sha1_config_map`],
//!   [`reloader_sha1_secret`]): `key=value` items (base64 for `binaryData`),
//!   sorted as whole strings, joined with `;`, SHA-1, lower-case hex. Written
//!   with `--hash reloader-sha1` so that a migration rolls nothing, and always
//!   computed (20 bytes) to recognise markers Reloader left behind.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::model::{KeyUse, SourceId};

/// Per key of one object, the SHA-256 of its value, sorted by key.
///
/// A boxed slice, not a map: one is kept per ConfigMap and Secret in scope, most
/// have a handful of keys, and a `BTreeMap` allocates a whole node (eleven
/// slots, about 640 bytes here) even for one key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyDigests(Box<[(Box<str>, [u8; 32])]>);

impl std::fmt::Debug for KeyDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys only: an unsalted digest of a Secret's value can be tested
        // against guesses, so it is never printed.
        f.debug_set()
            .entries(self.0.iter().map(|(key, _)| key))
            .finish()
    }
}

impl KeyDigests {
    /// Digests of `(key, value)` pairs. ConfigMap `data` and `binaryData` keys
    /// cannot collide (the API refuses it), so both go through here as bytes.
    /// Should a key come twice, the last value counts.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> KeyDigests {
        let sorted: BTreeMap<&str, [u8; 32]> = entries
            .into_iter()
            .map(|(k, v)| (k, Sha256::digest(v).into()))
            .collect();
        KeyDigests(sorted.into_iter().map(|(k, d)| (k.into(), d)).collect())
    }

    pub fn get(&self, key: &str) -> Option<&[u8; 32]> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(key, digest)` in key order.
    fn iter(&self) -> impl Iterator<Item = (&str, &[u8; 32])> {
        self.0.iter().map(|(k, d)| (&**k, d))
    }
}

/// The keys added, removed or changed between `old` and `new`.
pub fn changed_keys(old: &KeyDigests, new: &KeyDigests) -> BTreeSet<String> {
    let mut changed: BTreeSet<String> = new
        .iter()
        .filter(|(k, v)| old.get(k) != Some(*v))
        .map(|(k, _)| k.to_owned())
        .collect();
    changed.extend(
        old.iter()
            .filter(|(k, _)| new.get(k).is_none())
            .map(|(k, _)| k.to_owned()),
    );
    changed
}

/// The operator's HMAC key.
#[derive(Clone)]
pub struct MarkerKey([u8; 32]);

impl MarkerKey {
    pub fn new(bytes: [u8; 32]) -> MarkerKey {
        MarkerKey(bytes)
    }
}

impl std::fmt::Debug for MarkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("MarkerKey(..)")
    }
}

/// The keyed marker of the keys `used` of `source` (see the module docs).
pub fn marker(key: &MarkerKey, source: &SourceId, digests: &KeyDigests, used: &KeyUse) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes a key of any length");
    let mut field = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    // A format tag first: a future layout cannot collide with this one.
    field(b"rekindle-marker-v1");
    field(source.kind.upper().as_bytes());
    field(source.namespace.as_bytes());
    field(source.name.as_bytes());
    for (k, digest) in digests.iter() {
        if used.covers(k) {
            field(k.as_bytes());
            field(digest);
        }
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Reloader's hash of a ConfigMap.
pub fn reloader_sha1_config_map<'a>(
    data: impl IntoIterator<Item = (&'a str, &'a str)>,
    binary_data: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> String {
    let mut items: Vec<Vec<u8>> = data
        .into_iter()
        .map(|(k, v)| item(k, v.as_bytes()))
        .collect();
    let engine = base64::engine::general_purpose::STANDARD;
    items.extend(
        binary_data
            .into_iter()
            .map(|(k, v)| item(k, engine.encode(v).as_bytes())),
    );
    joined_sha1(items)
}

/// Reloader's hash of a Secret (values as decoded bytes).
pub fn reloader_sha1_secret<'a>(data: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    joined_sha1(data.into_iter().map(|(k, v)| item(k, v)).collect())
}

/// Reloader's hash of a SecretProviderClassPodStatus: `ID=VERSION` for each object
/// the driver mounted, plus `SecretProviderClassName=NAME`, sorted and joined as above.
pub fn reloader_sha1_pod_status<'a>(
    class: &str,
    objects: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut items: Vec<Vec<u8>> = objects
        .into_iter()
        .map(|(id, version)| item(id, version.as_bytes()))
        .collect();
    items.push(item("SecretProviderClassName", class.as_bytes()));
    joined_sha1(items)
}

fn item(key: &str, value: &[u8]) -> Vec<u8> {
    let mut item = Vec::with_capacity(key.len() + 1 + value.len());
    item.extend_from_slice(key.as_bytes());
    item.push(b'=');
    item.extend_from_slice(value);
    item
}

fn joined_sha1(mut items: Vec<Vec<u8>>) -> String {
    // Whole items sort bytewise, as Go's sort.Strings does: `a-b=…` < `a=…`.
    items.sort();
    let mut hasher = Sha1::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            hasher.update(b";");
        }
        hasher.update(item);
    }
    hex::encode(hasher.finalize())
}

/// SHA-1 of `bytes`, lower-case hex.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// The one value of a marker variable that several sources share (their names
/// fold to the same `STAKATER_…` name): SHA-256 over each source's name and own
/// value, length-prefixed, in the order given (the caller sorts by name). The
/// values are already keyed markers or public SHA-1s, so this reveals nothing
/// they do not.
pub fn shared_marker<'a>(parts: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(b"rekindle-shared-marker-v1");
    for (name, value) in parts {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceKind;

    fn mk_digests(pairs: &[(&str, &str)]) -> KeyDigests {
        KeyDigests::new(pairs.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    fn mk_source(name: &str) -> SourceId {
        SourceId::new(SourceKind::ConfigMap, "ns", name)
    }

    #[test]
    fn pod_status_hash_is_reloaders() {
        // Reloader's formula by hand: "SecretProviderClassName=vault-db;db-pass=2;db-user=1"
        // sorted bytewise: "SecretProviderClassName=…" < "db-pass=2" < "db-user=1".
        let by_hand = sha1_hex(b"SecretProviderClassName=vault-db;db-pass=2;db-user=1");
        assert_eq!(
            reloader_sha1_pod_status("vault-db", [("db-user", "1"), ("db-pass", "2")]),
            by_hand
        );
        assert_ne!(
            reloader_sha1_pod_status("vault-db", [("db-user", "1"), ("db-pass", "3")]),
            by_hand
        );
    }

    fn keys(names: &[&str]) -> KeyUse {
        KeyUse::Keys(names.iter().map(|n| n.to_string()).collect())
    }

    const KEY: MarkerKey = MarkerKey([7; 32]);

    #[test]
    fn reloader_known_pairs() {
        let none: [(&str, &[u8]); 0] = [];
        assert_eq!(
            reloader_sha1_config_map([("test", "test")], none),
            "b3cefbcce711f8574b0e66c41fc1dcf06eb5b6db"
        );
        assert_eq!(
            reloader_sha1_config_map([("test", "test")], [("bintest", b"test".as_slice())]),
            "0d58150de76a895b24f4ca213f590766160c4349"
        );
        assert_eq!(
            reloader_sha1_config_map([], [("bintest", b"test".as_slice())]),
            "f327fede9d5cda17ab984fabce9eddeee1611a84"
        );
        assert_eq!(
            reloader_sha1_config_map([("a", "1"), ("b", "2")], none),
            "f83e99e324ba68ccc373a58ef1eb42f8ab88646a"
        );
        assert_eq!(
            reloader_sha1_secret([("b", b"2".as_slice()), ("a", b"1".as_slice())]),
            "f83e99e324ba68ccc373a58ef1eb42f8ab88646a"
        );
        assert_eq!(
            reloader_sha1_config_map([], none),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    #[test]
    fn reloader_sorts_whole_items() {
        // `a-b=2` sorts before `a=1` ('-' < '='), unlike a sort by key then join.
        let none: [(&str, &[u8]); 0] = [];
        assert_eq!(
            reloader_sha1_config_map([("a", "1"), ("a-b", "2")], none),
            sha1_hex(b"a-b=2;a=1")
        );
    }

    #[test]
    fn changed_keys_sees_added_removed_and_changed() {
        let old = mk_digests(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let new = mk_digests(&[("a", "1"), ("b", "x"), ("d", "4")]);
        let changed: Vec<String> = changed_keys(&old, &new).into_iter().collect();
        assert_eq!(changed, ["b", "c", "d"]);
        assert!(changed_keys(&old, &old).is_empty());
    }

    #[test]
    fn digests_are_found_by_key_whatever_the_input_order() {
        let forward = mk_digests(&[("a", "1"), ("b.yaml", "2"), ("c", "3"), ("B", "4")]);
        let backward = mk_digests(&[("B", "4"), ("c", "3"), ("b.yaml", "2"), ("a", "1")]);
        assert_eq!(forward, backward);
        for (k, v) in [("a", "1"), ("b.yaml", "2"), ("c", "3"), ("B", "4")] {
            let want: [u8; 32] = Sha256::digest(v.as_bytes()).into();
            assert_eq!(forward.get(k), Some(&want), "key {k}");
        }
        assert_eq!(forward.get("b"), None);
        assert_eq!(forward.get(""), None);
        assert_eq!(forward.len(), 4);
        // A key given twice keeps its last value, as a map would.
        let twice = mk_digests(&[("a", "1"), ("a", "2")]);
        assert_eq!(twice, mk_digests(&[("a", "2")]));
    }

    #[test]
    fn the_marker_follows_only_the_used_keys() {
        let source = mk_source("app");
        let before = mk_digests(&[("used", "1"), ("other", "1")]);
        let other_changed = mk_digests(&[("used", "1"), ("other", "2")]);
        let used_changed = mk_digests(&[("used", "2"), ("other", "1")]);
        let only = keys(&["used"]);
        assert_eq!(
            marker(&KEY, &source, &before, &only),
            marker(&KEY, &source, &other_changed, &only)
        );
        assert_ne!(
            marker(&KEY, &source, &before, &only),
            marker(&KEY, &source, &used_changed, &only)
        );
        assert_ne!(
            marker(&KEY, &source, &before, &KeyUse::All),
            marker(&KEY, &source, &other_changed, &KeyUse::All)
        );
    }

    #[test]
    fn a_used_key_appearing_changes_the_marker() {
        let source = mk_source("app");
        let only = keys(&["late"]);
        assert_ne!(
            marker(&KEY, &source, &mk_digests(&[("x", "1")]), &only),
            marker(
                &KEY,
                &source,
                &mk_digests(&[("x", "1"), ("late", "")]),
                &only
            )
        );
    }

    #[test]
    fn the_marker_depends_on_the_key_and_the_source() {
        let data = mk_digests(&[("a", "1")]);
        let value = marker(&KEY, &mk_source("app"), &data, &KeyUse::All);
        assert_eq!(value.len(), 64);
        assert_eq!(value, marker(&KEY, &mk_source("app"), &data, &KeyUse::All));
        assert_ne!(
            value,
            marker(&MarkerKey([8; 32]), &mk_source("app"), &data, &KeyUse::All)
        );
        assert_ne!(
            value,
            marker(&KEY, &mk_source("other"), &data, &KeyUse::All)
        );
        let secret = SourceId::new(SourceKind::Secret, "ns", "app");
        assert_ne!(value, marker(&KEY, &secret, &data, &KeyUse::All));
    }

    #[test]
    fn key_value_boundaries_are_unambiguous() {
        // With lengths in the message, ("ab","c") and ("a","bc") cannot collide.
        let source = mk_source("app");
        assert_ne!(
            marker(&KEY, &source, &mk_digests(&[("ab", "")]), &KeyUse::All),
            marker(&KEY, &source, &mk_digests(&[("a", "")]), &KeyUse::All)
        );
    }

    #[test]
    fn the_key_is_never_printed() {
        assert_eq!(format!("{KEY:?}"), "MarkerKey(..)");
    }
}
