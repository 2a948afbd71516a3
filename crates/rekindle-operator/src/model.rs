//! The nouns every other module speaks: which kind of config source, which kind of
//! workload, and how they are named. Plain data, no I/O.

use std::collections::BTreeSet;
use std::fmt;

/// A kind of object whose change can roll a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    ConfigMap,
    Secret,
    /// A Secrets Store CSI driver `SecretProviderClass` (only with
    /// `--enable-csi-integration`).
    SecretProviderClass,
}

impl SourceKind {
    /// Reloader's upper-case spelling, used in the env-var suffix, the
    /// `last-reloaded-from` JSON and alert texts (`CONFIGMAP`, `SECRET`, …).
    pub fn upper(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "CONFIGMAP",
            SourceKind::Secret => "SECRET",
            SourceKind::SecretProviderClass => "SECRETPROVIDERCLASS",
        }
    }

    /// The API kind, as in `kind:` of a manifest.
    pub fn kind(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
            SourceKind::SecretProviderClass => "SecretProviderClass",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// One ConfigMap, Secret or SecretProviderClass.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId {
    pub kind: SourceKind,
    pub namespace: String,
    pub name: String,
}

impl SourceId {
    pub fn new(kind: SourceKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        SourceId {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.kind.kind().to_ascii_lowercase(),
            self.namespace,
            self.name
        )
    }
}

/// A kind of object that runs pods from a template and can be rolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    StatefulSet,
    CronJob,
    Job,
    /// An Argo Rollout (only with `--is-Argo-Rollouts=true`).
    Rollout,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 6] = [
        WorkloadKind::Deployment,
        WorkloadKind::DaemonSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::CronJob,
        WorkloadKind::Job,
        WorkloadKind::Rollout,
    ];

    /// The API kind, as in `kind:` of a manifest and in Reloader's events.
    pub fn kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Job => "Job",
            WorkloadKind::Rollout => "Rollout",
        }
    }

    /// The plural resource name, as `--ignored-workload-types` and metrics spell it.
    pub fn plural(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::DaemonSet => "daemonsets",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::CronJob => "cronjobs",
            WorkloadKind::Job => "jobs",
            WorkloadKind::Rollout => "rollouts",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// One workload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadId {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl WorkloadId {
    pub fn new(kind: WorkloadKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadId {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind.plural(), self.namespace, self.name)
    }
}

/// Which keys of a source a workload reads. Decides key precision: a workload that
/// reads only some keys is rolled only when one of those changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUse {
    /// The whole object: a volume without `items`, `envFrom`, a CSI volume, or a
    /// name in a `…reloader.stakater.com/reload` list.
    All,
    /// Only these keys: `configMapKeyRef` / `secretKeyRef`, volume `items`.
    Keys(BTreeSet<String>),
}

impl KeyUse {
    /// The union of two uses of the same source by one workload.
    pub fn union(self, other: KeyUse) -> KeyUse {
        match (self, other) {
            (KeyUse::Keys(mut a), KeyUse::Keys(b)) => {
                a.extend(b);
                KeyUse::Keys(a)
            }
            _ => KeyUse::All,
        }
    }

    pub fn covers(&self, key: &str) -> bool {
        match self {
            KeyUse::All => true,
            KeyUse::Keys(keys) => keys.contains(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> KeyUse {
        KeyUse::Keys(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn key_uses_combine_to_the_wider_use() {
        assert_eq!(keys(&["a"]).union(keys(&["b"])), keys(&["a", "b"]));
        assert_eq!(keys(&["a"]).union(KeyUse::All), KeyUse::All);
        assert!(keys(&["a"]).covers("a"));
        assert!(!keys(&["a"]).covers("b"));
        assert!(KeyUse::All.covers("anything"));
    }
}
