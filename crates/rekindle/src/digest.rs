//! The snapshot digest: one public, stable fingerprint of a ConfigMap or Secret's content.
//!
//! The same data hashed from its volume, from the API, by the sidecar or by the operator
//! must give the same value, so the format is fixed: SHA-256 over, for each key in byte
//! order of its UTF-8 path, the key's length as a big-endian `u64`, the key bytes, the
//! value's length as a big-endian `u64`, then the value bytes. Length prefixes make the
//! encoding injective: no two different maps share a hash input.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Length of the abbreviated digest shown in logs.
pub const SHORT_LEN: usize = 12;

/// SHA-256 fingerprint of a snapshot's keys and values; see the module docs for the format.
///
/// Displays as 64 lowercase hex characters; [`Digest::short`] gives the 12-character prefix
/// used in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Hashes entries that are already in byte order of their keys.
    ///
    /// The order is part of the format; [`crate::Snapshot`] guarantees it, and callers
    /// building digests from other sources (an API object, say) must sort first.
    pub fn of_sorted<'a, I>(entries: I) -> Digest
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut hasher = Sha256::new();
        for (key, value) in entries {
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(key.as_bytes());
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value);
        }
        Digest(hasher.finalize().into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex characters, for logs.
    pub fn short(&self) -> String {
        let mut hex = self.to_string();
        hex.truncate(SHORT_LEN);
        hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

/// A string that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a digest is 64 hex characters, got {0:?}")]
pub struct ParseDigestError(String);

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseDigestError(s.to_owned()))?;
        Ok(Digest(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format is public: pin it to an independent computation of the same bytes.
    #[test]
    fn format_is_length_prefixed_pairs_in_order() {
        let digest = Digest::of_sorted([("a", b"1".as_slice()), ("bc", b"".as_slice())]);
        let mut input = Vec::new();
        input.extend_from_slice(&1u64.to_be_bytes());
        input.extend_from_slice(b"a");
        input.extend_from_slice(&1u64.to_be_bytes());
        input.extend_from_slice(b"1");
        input.extend_from_slice(&2u64.to_be_bytes());
        input.extend_from_slice(b"bc");
        input.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(
            digest.as_bytes().as_slice(),
            Sha256::digest(&input).as_slice()
        );
    }

    #[test]
    fn empty_map_is_sha256_of_nothing() {
        assert_eq!(
            Digest::of_sorted([]).to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn length_prefixes_keep_concatenations_apart() {
        let split_one_way = Digest::of_sorted([("ab", b"c".as_slice())]);
        let split_other_way = Digest::of_sorted([("a", b"bc".as_slice())]);
        assert_ne!(split_one_way, split_other_way);
    }

    #[test]
    fn parses_its_own_display_and_rejects_garbage() {
        let digest = Digest::of_sorted([("k", b"v".as_slice())]);
        assert_eq!(digest.to_string().parse::<Digest>(), Ok(digest));
        assert_eq!(digest.short().len(), SHORT_LEN);
        assert!("xyz".parse::<Digest>().is_err());
    }
}
