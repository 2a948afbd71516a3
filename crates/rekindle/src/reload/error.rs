//! Why a change was not applied, and why a rollback did not happen.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::Digest;
use crate::format::DecodeError;
use crate::read::SnapshotError;

/// A config rejected by a validator: which key, and why.
///
/// The reason is shown to operators (logs, status endpoints): describe what is wrong
/// without quoting the value, which may be a Secret (`must be between 1 and 10000`,
/// not `got 0`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct ValidationError {
    /// The key at fault, when one is.
    pub key: Option<String>,
    /// What is wrong with it.
    pub reason: String,
}

impl ValidationError {
    /// A problem with the config as a whole.
    pub fn new(reason: impl Into<String>) -> ValidationError {
        ValidationError {
            key: None,
            reason: reason.into(),
        }
    }

    /// A problem with one key.
    pub fn for_key(key: impl Into<String>, reason: impl Into<String>) -> ValidationError {
        ValidationError {
            key: Some(key.into()),
            reason: reason.into(),
        }
    }
}

/// Why a change was not applied. The previous config stays in force.
///
/// No variant's text quotes a config value. [`ReloadError::Read`] keeps its cause as its
/// [`source`](std::error::Error::source), so show the whole chain (as `anyhow`'s `{:#}`
/// does) to see it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The directory could not be read.
    #[error("cannot read {}", read_subject(dir, error))]
    Read {
        /// The watched directory.
        dir: PathBuf,
        /// What went wrong; it names the path concerned.
        #[source]
        error: Arc<SnapshotError>,
    },
    /// A value could not be decoded.
    #[error("config {} rejected: {error}", digest.short())]
    Decode {
        /// The rejected content.
        digest: Digest,
        /// Which key and why.
        error: DecodeError,
    },
    /// A validator refused the decoded config.
    #[error("config {} rejected: invalid: {error}", digest.short())]
    Invalid {
        /// The rejected content.
        digest: Digest,
        /// Which key and why.
        error: ValidationError,
    },
    /// The object could not be read or watched through the Kubernetes API (feature
    /// `kube`), or it was deleted.
    #[cfg(feature = "kube")]
    #[error("cannot read the config object")]
    Api {
        /// What went wrong; it names the object.
        #[source]
        error: Arc<crate::api::ApiError>,
    },
}

/// The directory, unless the cause names a path itself: a chain such as
/// `cannot read the config directory: /etc/config: directory does not exist` says it once.
fn read_subject(dir: &Path, error: &SnapshotError) -> String {
    match error.path() {
        Some(_) => "the config directory".to_owned(),
        None => dir.display().to_string(),
    }
}

/// Why a rollback did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// The config in force is the oldest one kept.
    #[error("no earlier version is kept (history holds {available:?})")]
    NoEarlierVersion {
        /// The versions in the history.
        available: Vec<u64>,
    },
    /// The version asked for is not (or no longer) in the history.
    #[error("version {version} is not in the history (it holds {available:?})")]
    NotInHistory {
        /// The version asked for.
        version: u64,
        /// The versions in the history.
        available: Vec<u64>,
    },
}

/// Shows an error and its sources on one line, `outer: inner: innermost`, for logs.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_error(dir: &str, error: SnapshotError) -> ReloadError {
        ReloadError::Read {
            dir: PathBuf::from(dir),
            error: Arc::new(error),
        }
    }

    #[test]
    fn a_read_error_names_the_directory_once() {
        let error = read_error(
            "/etc/config",
            SnapshotError::Missing {
                dir: PathBuf::from("/etc/config"),
            },
        );
        let shown = Chain(&error).to_string();
        assert_eq!(
            shown,
            "cannot read the config directory: /etc/config: directory does not exist"
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn a_read_error_whose_cause_names_no_path_names_the_directory() {
        let error = read_error("/etc/config", SnapshotError::TooManyEntries { limit: 3 });
        let shown = Chain(&error).to_string();
        assert!(
            shown.starts_with("cannot read /etc/config: more than 3 "),
            "{shown}"
        );
        assert_eq!(shown.matches("/etc/config").count(), 1, "{shown}");
    }
}
