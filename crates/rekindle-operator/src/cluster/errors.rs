//! Turning API errors into log lines an operator can act on.

use std::fmt;

/// Displays a [`kube::Error`] in one line. A 403 says which permission is
/// missing (the apiserver's message names the user, verb, resource and
/// namespace) and where to add it.
#[derive(Debug)]
pub struct Explain<'a>(pub &'a kube::Error);

impl fmt::Display for Explain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            kube::Error::Api(status) if status.code == 403 => write!(
                f,
                "permission denied: {} (add the verb and resource to the operator's ClusterRole or Role; see deploy/README.md)",
                status.message
            ),
            kube::Error::Api(status) => {
                write!(f, "{} ({} {})", status.message, status.code, status.reason)
            }
            other => write!(f, "{other}"),
        }
    }
}

/// Whether the error is the apiserver refusing for lack of permission.
pub fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403)
}

/// Whether the error is a write that lost a race (resourceVersion conflict).
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// Whether the object is gone.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
