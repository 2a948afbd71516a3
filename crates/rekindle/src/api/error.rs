//! Why an object could not be read or watched.

use super::object::ObjectRef;

/// A failure to read or watch a ConfigMap or Secret through the API.
///
/// Messages name the object and, for a denial, the RBAC rule that is missing; they never
/// quote the object's content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The object does not exist.
    #[error("{object} not found")]
    NotFound {
        /// The object, with its namespace.
        object: ObjectRef,
    },
    /// The object was deleted after it had been read.
    #[error("{object} was deleted; the last content read stays in force until it is created again")]
    Deleted {
        /// The object, with its namespace.
        object: ObjectRef,
    },
    /// The credentials in use may not read the object.
    #[error(
        "access to {object} denied by the API server ({message}); the ServiceAccount needs a Role with \
         apiGroups: [\"\"], resources: [\"{resource}\"], resourceNames: [\"{name}\"], verbs: [\"get\", \"list\", \"watch\"]",
        resource = object.kind.resource(),
        name = object.name
    )]
    Forbidden {
        /// The object, with its namespace.
        object: ObjectRef,
        /// The API server's message.
        message: String,
    },
    /// Any other failure of a request: connection, TLS, server errors.
    #[error("reading {object}: {source}")]
    Request {
        /// The object, with its namespace.
        object: ObjectRef,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The watch failed; it is retried with backoff.
    #[error("watching {object}: {source}")]
    Watch {
        /// The object, with its namespace.
        object: ObjectRef,
        /// The watcher's error.
        #[source]
        source: kube::runtime::watcher::Error,
    },
}

impl ApiError {
    /// Classifies a client error for `object`: not found and forbidden get their own
    /// variants, so that callers (and `rekindle sync --once`) can say what to fix.
    pub(crate) fn from_request(object: &ObjectRef, source: kube::Error) -> ApiError {
        match &source {
            kube::Error::Api(status) if status.is_forbidden() => ApiError::Forbidden {
                object: object.clone(),
                message: status.message.clone(),
            },
            kube::Error::Api(status) if status.is_not_found() => ApiError::NotFound {
                object: object.clone(),
            },
            _ => ApiError::Request {
                object: object.clone(),
                source,
            },
        }
    }

    /// Classifies a watcher error: a denied list or watch is [`ApiError::Forbidden`].
    pub(crate) fn from_watch(
        object: &ObjectRef,
        source: kube::runtime::watcher::Error,
    ) -> ApiError {
        use kube::runtime::watcher::Error as W;
        let denied = match &source {
            W::InitialListFailed(kube::Error::Api(status))
            | W::WatchStartFailed(kube::Error::Api(status))
            | W::WatchFailed(kube::Error::Api(status)) => {
                status.is_forbidden().then(|| status.message.clone())
            }
            W::WatchError(status) => status.is_forbidden().then(|| status.message.clone()),
            _ => None,
        };
        match denied {
            Some(message) => ApiError::Forbidden {
                object: object.clone(),
                message,
            },
            None => ApiError::Watch {
                object: object.clone(),
                source,
            },
        }
    }

    /// True when the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }

    /// True when the credentials may not read the object.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ApiError::Forbidden { .. })
    }
}
