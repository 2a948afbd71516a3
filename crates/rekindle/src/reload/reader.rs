//! A per-thread reader that caches the config in force.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Shared, Versioned};

/// A per-thread reader of a [`Reloadable`](super::Reloadable), from
/// [`Reloadable::reader`](super::Reloadable::reader).
///
/// It caches the config in force and checks, on each [`Reader::load`], only whether the
/// pointer changed, so reads cost no reference counting and no shared writes. It keeps the
/// version it last loaded alive until the next load.
pub struct Reader<T> {
    cache: arc_swap::Cache<CurrentOf<T>, Arc<Versioned<T>>>,
}

impl<T> Reader<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Reader<T> {
        Reader {
            cache: arc_swap::Cache::new(CurrentOf(shared)),
        }
    }

    /// The config in force.
    pub fn load(&mut self) -> &Arc<Versioned<T>> {
        self.cache.load()
    }
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

/// Lets the reader's cache reach the shared `ArcSwap` while keeping it alive.
struct CurrentOf<T>(Arc<Shared<T>>);

impl<T> Deref for CurrentOf<T> {
    type Target = ArcSwap<Versioned<T>>;
    fn deref(&self) -> &Self::Target {
        &self.0.current
    }
}
