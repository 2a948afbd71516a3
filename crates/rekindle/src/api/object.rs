//! Which object to watch: a ConfigMap or a Secret, by name, in a namespace.

use std::fmt;

/// The two kinds of object whose content is config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A core/v1 ConfigMap: `data` (text) and `binaryData` (bytes).
    ConfigMap,
    /// A core/v1 Secret: `data` (bytes).
    Secret,
}

impl ObjectKind {
    /// The lowercase name used in source labels and messages: `configmap`, `secret`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::Secret => "secret",
        }
    }

    /// The plural resource name, as RBAC rules spell it: `configmaps`, `secrets`.
    pub fn resource(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmaps",
            ObjectKind::Secret => "secrets",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ConfigMap or Secret. Without a namespace, the client's default namespace is used
/// (in a pod, the pod's own, read from the service-account mount; elsewhere the
/// kubeconfig's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// ConfigMap or Secret.
    pub kind: ObjectKind,
    /// The namespace, if given.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

/// A `[NAMESPACE/]NAME` that is not a valid object reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectRefError {
    /// Nothing was given.
    #[error("empty name: expected NAME or NAMESPACE/NAME")]
    Empty,
    /// More than one `/`.
    #[error("{given:?} has more than one '/': expected NAME or NAMESPACE/NAME")]
    TooManyParts {
        /// The text given (a name, never config content).
        given: String,
    },
    /// The name is not a DNS subdomain (lowercase letters, digits, '-' and '.', at most
    /// 253 characters, starting and ending with a letter or digit).
    #[error("invalid name {name:?}: {reason}")]
    Name {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The namespace is not a DNS label (lowercase letters, digits and '-', at most 63
    /// characters, starting and ending with a letter or digit).
    #[error("invalid namespace {namespace:?}: {reason}")]
    Namespace {
        /// The namespace given.
        namespace: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ObjectRef {
    /// The ConfigMap `name` in the client's default namespace.
    pub fn config_map(name: impl Into<String>) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::ConfigMap,
            namespace: None,
            name: name.into(),
        }
    }

    /// The Secret `name` in the client's default namespace.
    pub fn secret(name: impl Into<String>) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::Secret,
            namespace: None,
            name: name.into(),
        }
    }

    /// The same object in `namespace`.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> ObjectRef {
        self.namespace = Some(namespace.into());
        self
    }

    /// Parses `NAME` or `NAMESPACE/NAME`, checking both against Kubernetes' naming rules
    /// so that a typo fails at start rather than as a "not found" later.
    pub fn parse(kind: ObjectKind, text: &str) -> Result<ObjectRef, ObjectRefError> {
        if text.is_empty() {
            return Err(ObjectRefError::Empty);
        }
        let mut parts = text.split('/');
        let (namespace, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(name), None, None) => (None, name),
            (Some(namespace), Some(name), None) => (Some(namespace), name),
            _ => {
                return Err(ObjectRefError::TooManyParts {
                    given: text.to_owned(),
                });
            }
        };
        if let Some(namespace) = namespace {
            check_dns(namespace, 63, false).map_err(|reason| ObjectRefError::Namespace {
                namespace: namespace.to_owned(),
                reason,
            })?;
        }
        check_dns(name, 253, true).map_err(|reason| ObjectRefError::Name {
            name: name.to_owned(),
            reason,
        })?;
        Ok(ObjectRef {
            kind,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// The label of this source in reports and logs: `configmap/NAME`, `secret/NAME`.
    pub fn source_label(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

impl fmt::Display for ObjectRef {
    /// `configmap/NAME`, or `configmap/NAMESPACE/NAME` when the namespace is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{}/{}/{}", self.kind, namespace, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Kubernetes' DNS-1123 rules: a label (no dots) or a subdomain (dot-separated labels).
fn check_dns(text: &str, max: usize, dots: bool) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("must not be empty");
    }
    if text.len() > max {
        return Err(if dots {
            "must be at most 253 characters"
        } else {
            "must be at most 63 characters"
        });
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let labels: Vec<&str> = if dots {
        text.split('.').collect()
    } else {
        vec![text]
    };
    for label in labels {
        if label.is_empty() {
            return Err("must not have empty parts between dots");
        }
        if !label.chars().all(allowed) {
            return Err(if dots {
                "only lowercase letters, digits, '-' and '.' are allowed"
            } else {
                "only lowercase letters, digits and '-' are allowed"
            });
        }
        let first = label.chars().next().is_some_and(edge);
        let last = label.chars().next_back().is_some_and(edge);
        if !first || !last {
            return Err("must start and end with a lowercase letter or digit");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_ok(text: &str) -> ObjectRef {
        ObjectRef::parse(ObjectKind::ConfigMap, text).expect(text)
    }

    #[test]
    fn name_alone_leaves_the_namespace_to_the_client() {
        assert_eq!(mk_ok("app-config"), ObjectRef::config_map("app-config"));
        assert_eq!(mk_ok("app-config").to_string(), "configmap/app-config");
    }

    #[test]
    fn namespace_and_name() {
        let parsed = mk_ok("prod/app.config-1");
        assert_eq!(
            parsed,
            ObjectRef::config_map("app.config-1").in_namespace("prod")
        );
        assert_eq!(parsed.to_string(), "configmap/prod/app.config-1");
        assert_eq!(parsed.source_label(), "configmap/app.config-1");
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let err = |text: &str| {
            ObjectRef::parse(ObjectKind::Secret, text)
                .expect_err(text)
                .to_string()
        };
        assert!(err("").contains("empty"));
        assert!(err("a/b/c").contains("more than one '/'"));
        assert!(err("App").contains("lowercase"));
        assert!(err("-app").contains("start and end"));
        assert!(err("a..b").contains("empty parts"));
        assert!(err("my.ns/app").contains("invalid namespace"));
        assert!(err("ns/").contains("must not be empty"));
        assert!(err(&"x".repeat(254)).contains("253"));
        assert!(err(&format!("{}/a", "n".repeat(64))).contains("63"));
    }

    #[test]
    fn kinds_name_their_resources() {
        assert_eq!(ObjectKind::ConfigMap.resource(), "configmaps");
        assert_eq!(ObjectKind::Secret.resource(), "secrets");
        assert_eq!(ObjectRef::secret("tls").source_label(), "secret/tls");
    }
}
