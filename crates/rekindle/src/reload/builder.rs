//! Setting up a [`Reloadable`]: decoder, validators, history size, metrics, first config.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::error::{Chain, ReloadError, ValidationError};
use super::{Decoder, Reloadable, Validator, Versioned, check};
use crate::metrics::ReloadMetrics;
use crate::snapshot::Snapshot;

/// Sets up a [`Reloadable`]: how to decode and validate, how much history, which metrics.
pub struct ReloadableBuilder<T> {
    pub(super) decode: Decoder<T>,
    pub(super) validators: Vec<Validator<T>>,
    pub(super) history_limit: usize,
    pub(super) metrics: Option<ReloadMetrics>,
}

impl<T> fmt::Debug for ReloadableBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableBuilder")
            .field("validators", &self.validators.len())
            .field("history_limit", &self.history_limit)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl<T: Send + Sync + 'static> ReloadableBuilder<T> {
    /// Adds a validator; all must accept a config for it to be applied, and the first
    /// refusal is the reason reported.
    ///
    /// Validators run outside any lock: one may read the config it belongs to
    /// ([`Reloadable::last_error`], [`Reloadable::history`], the config in force).
    pub fn validate<F>(mut self, validator: F) -> Self
    where
        F: Fn(&T) -> Result<(), ValidationError> + Send + Sync + 'static,
    {
        self.validators.push(Box::new(validator));
        self
    }

    /// How many applied versions to keep for rollback (at least 1; default 10).
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    /// Registers the reload metrics (see [`ReloadMetrics`]) into `registry`.
    pub fn metrics(mut self, registry: &mut Registry) -> Self {
        self.metrics = Some(ReloadMetrics::register(registry));
        self
    }

    /// Starts from a built-in value (version 0, no digest) until the first valid config
    /// is applied. Use this when the service must start even without its config.
    pub fn build(self, initial: T) -> Reloadable<T> {
        Reloadable::new(self, Versioned::new(0, None, initial), 1)
    }

    /// Reads `dir` once and starts from it as version 1; fails with the reason if the
    /// directory cannot be read or its content is not valid.
    pub fn load(self, dir: impl AsRef<Path>) -> Result<Reloadable<T>, ReloadError> {
        let first = self.read_first(dir.as_ref())?;
        Ok(Reloadable::new(self, first, 2))
    }

    /// Reads `dir` once and starts from it as version 1 when it is valid; otherwise
    /// starts from `fallback` as version 0 with the reason in [`Reloadable::last_error`].
    /// For services that must come up even when their config is missing or broken.
    pub fn load_or(self, dir: impl AsRef<Path>, fallback: T) -> Reloadable<T> {
        match self.read_first(dir.as_ref()) {
            Ok(first) => Reloadable::new(self, first, 2),
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "starting from the built-in config");
                let config = self.build(fallback);
                config.record_error(error);
                config
            }
        }
    }

    /// Reads a ConfigMap or Secret through the API (feature `kube`) and starts from it
    /// as version 1; fails with the reason if it cannot be read (not found, access
    /// denied: [`crate::api::ApiError`] says which) or its content is not valid. Follow
    /// its changes with [`Reloadable::watch_api`].
    #[cfg(feature = "kube")]
    pub async fn load_api(
        self,
        client: &kube::Client,
        object: &crate::api::ObjectRef,
    ) -> Result<Reloadable<T>, ReloadError> {
        let snapshot = crate::api::get(client, object)
            .await
            .map_err(|error| ReloadError::Api {
                error: Arc::new(error),
            })?;
        let value = check(&self.decode, &self.validators, &snapshot)?;
        let first = Versioned::new(1, Some(*snapshot.digest()), value);
        Ok(Reloadable::new(self, first, 2))
    }

    fn read_first(&self, dir: &Path) -> Result<Versioned<T>, ReloadError> {
        let snapshot = Snapshot::read(dir).map_err(|error| ReloadError::Read {
            dir: dir.to_owned(),
            error: Arc::new(error),
        })?;
        let value = check(&self.decode, &self.validators, &snapshot)?;
        Ok(Versioned::new(1, Some(*snapshot.digest()), value))
    }
}
