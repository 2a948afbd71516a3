//! One applied config with the facts about it: version, digest, time.

use std::ops::Deref;
use std::time::SystemTime;

use crate::digest::Digest;

/// One applied config: the value with its version number and content digest.
#[derive(Debug)]
pub struct Versioned<T> {
    version: u64,
    digest: Option<Digest>,
    applied_at: SystemTime,
    value: T,
}

impl<T> Versioned<T> {
    pub(crate) fn new(version: u64, digest: Option<Digest>, value: T) -> Versioned<T> {
        Versioned {
            version,
            digest,
            applied_at: SystemTime::now(),
            value,
        }
    }

    /// 0 for the built-in initial value, then 1, 2, … in the order configs were applied.
    /// A rollback brings back an earlier version with its number.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The digest of the snapshot this was decoded from; `None` for a built-in initial value.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// When this version was first applied.
    pub fn applied_at(&self) -> SystemTime {
        self.applied_at
    }

    /// The config itself (also reachable through `Deref`).
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T> Deref for Versioned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}
