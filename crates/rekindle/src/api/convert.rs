//! From an API object to the [`Snapshot`] a volume of it would give.
//!
//! The kubelet projects a ConfigMap's `data` and `binaryData` and a Secret's `data` as
//! one file per key, named by the key, holding the value's bytes (text as UTF-8,
//! `binaryData` and Secret data decoded from base64 by the API client already). So the
//! snapshot of an object read from the API is the map of its keys to those bytes, and its
//! digest equals the digest of the same object read from a mounted volume.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use crate::digest::Digest;
use crate::snapshot::Snapshot;

/// The snapshot of a ConfigMap's `data` and `binaryData`.
///
/// The API rejects a key present in both; were one to appear, `binaryData` wins, as it
/// is written after `data` by the kubelet too.
pub fn config_map_snapshot(config_map: &ConfigMap) -> Snapshot {
    let text = config_map
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_bytes()));
    let binary = config_map
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()));
    Snapshot::from_entries(text.chain(binary))
}

/// The snapshot of a Secret's `data`.
///
/// `stringData` is write-only (the API merges it into `data` and never returns it); if a
/// caller passes an object that still has it, it overrides `data` as the API would.
pub fn secret_snapshot(secret: &Secret) -> Snapshot {
    let data = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()));
    let string_data = secret
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_bytes()));
    Snapshot::from_entries(data.chain(string_data))
}

/// The digest of [`config_map_snapshot`], without copying the data: for a caller that
/// keeps only digests (the operator indexes every ConfigMap in scope).
pub fn config_map_digest(config_map: &ConfigMap) -> Digest {
    let text = config_map
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_bytes()));
    let binary = config_map
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()));
    sorted_digest(text.chain(binary))
}

/// The digest of [`secret_snapshot`], without copying the data.
pub fn secret_digest(secret: &Secret) -> Digest {
    let data = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()));
    let string_data = secret
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_bytes()));
    sorted_digest(data.chain(string_data))
}

/// Sorts borrowed entries by key (a later duplicate wins, as in a snapshot) and hashes them.
fn sorted_digest<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> Digest {
    let sorted: BTreeMap<&str, &[u8]> = entries.collect();
    Digest::of_sorted(sorted)
}

#[cfg(test)]
mod tests {

    use k8s_openapi::ByteString;

    use super::*;

    fn mk_config_map(data: &[(&str, &str)], binary: &[(&str, &[u8])]) -> ConfigMap {
        ConfigMap {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            binary_data: Some(
                binary
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn config_map_text_and_binary_keys_are_one_map() {
        let cm = mk_config_map(&[("b.conf", "x=1\n")], &[("a.bin", &[0, 255, 1])]);
        let snapshot = config_map_snapshot(&cm);
        assert_eq!(snapshot.keys().collect::<Vec<_>>(), ["a.bin", "b.conf"]);
        assert_eq!(snapshot.get("a.bin"), Some(&[0u8, 255, 1][..]));
        assert_eq!(
            snapshot.digest(),
            Snapshot::from_entries([("b.conf", "x=1\n".as_bytes()), ("a.bin", &[0, 255, 1])])
                .digest()
        );
    }

    #[test]
    fn digests_without_copies_equal_the_snapshots_digests() {
        let cm = mk_config_map(
            &[("b.conf", "x=1\n"), ("z", "")],
            &[("a.bin", &[0, 255, 1])],
        );
        assert_eq!(config_map_digest(&cm), *config_map_snapshot(&cm).digest());
        let secret = Secret {
            data: Some(BTreeMap::from([
                ("user".to_owned(), ByteString(b"old".to_vec())),
                ("b".to_owned(), ByteString(vec![9])),
            ])),
            string_data: Some(BTreeMap::from([("user".to_owned(), "new".to_owned())])),
            ..Secret::default()
        };
        assert_eq!(secret_digest(&secret), *secret_snapshot(&secret).digest());
        assert_eq!(
            config_map_digest(&ConfigMap::default()),
            *Snapshot::from_entries::<&str, &[u8], _>([]).digest()
        );
    }

    #[test]
    fn an_empty_object_is_an_empty_snapshot() {
        assert!(config_map_snapshot(&ConfigMap::default()).is_empty());
        assert!(secret_snapshot(&Secret::default()).is_empty());
    }

    #[test]
    fn secret_data_is_bytes_and_string_data_overrides_it() {
        let secret = Secret {
            data: Some(BTreeMap::from([
                ("tls.key".to_owned(), ByteString(vec![1, 2, 3])),
                ("user".to_owned(), ByteString(b"old".to_vec())),
            ])),
            string_data: Some(BTreeMap::from([("user".to_owned(), "new".to_owned())])),
            ..Secret::default()
        };
        let snapshot = secret_snapshot(&secret);
        assert_eq!(snapshot.get("tls.key"), Some(&[1u8, 2, 3][..]));
        assert_eq!(snapshot.get_str("user"), Some("new"));
    }
}
