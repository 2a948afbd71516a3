//! Which ConfigMaps and Secrets a directory in a pod holds, and the content the kubelet
//! writes there: how a report about a directory is matched to objects in the API.
//!
//! A pod reports a mounted volume by its path (`/etc/app`). The pod's spec says what is
//! there: a container's `volumeMounts` entry whose `mountPath` is that path names a
//! volume, and the volume names a ConfigMap, a Secret, or several of them (a projected
//! volume). The kubelet writes one file per key (or per `items` entry, under its
//! `path`), so the digest the pod reports once it runs the current content is the
//! digest of that map, computed here from the objects' current content
//! ([`projection`]). For a volume of one whole object, that is the object's own digest.
//!
//! Matching is exact after trailing slashes are dropped: a report about a subdirectory
//! of a mount, or about a `subPath` mount (which the kubelet never updates), matches
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{KeyToPath, PodSpec, Volume};

use crate::api::ObjectKind;
use crate::snapshot::Snapshot;

/// `configmap/NAME` or `secret/NAME`: how reports and `rekindle status` name an object.
pub fn source_label(kind: ObjectKind, name: &str) -> String {
    format!("{kind}/{name}")
}

/// The kind and name of a `configmap/NAME` or `secret/NAME` label.
pub fn parse_source_label(label: &str) -> Option<(ObjectKind, &str)> {
    let (kind, name) = label.split_once('/')?;
    let kind = match kind {
        "configmap" => ObjectKind::ConfigMap,
        "secret" => ObjectKind::Secret,
        _ => return None,
    };
    (!name.is_empty() && !name.contains('/')).then_some((kind, name))
}

/// One ConfigMap or Secret a volume projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projected {
    /// ConfigMap or Secret.
    pub kind: ObjectKind,
    /// Its name, in the pod's namespace.
    pub name: String,
    /// `items`: which keys, written under which path; `None` for every key.
    pub items: Option<Vec<(String, String)>>,
    /// `optional: true`: a missing object or key is left out instead of failing.
    pub optional: bool,
}

impl Projected {
    /// `configmap/NAME` or `secret/NAME`.
    pub fn label(&self) -> String {
        source_label(self.kind, &self.name)
    }

    fn new(
        kind: ObjectKind,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
    ) -> Self {
        Projected {
            kind,
            name: name.to_owned(),
            // The kubelet treats an empty list as no list: every key.
            items: items.filter(|i| !i.is_empty()).map(|items| {
                items
                    .iter()
                    .map(|i| (i.key.clone(), i.path.clone()))
                    .collect()
            }),
            optional: optional.unwrap_or(false),
        }
    }
}

/// What a volume holds, as far as config goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeContent {
    /// ConfigMaps and Secrets only, in projection order (a later one's file replaces
    /// an earlier one's at the same path).
    Objects(Vec<Projected>),
    /// Something whose content is not in a ConfigMap or Secret: what, for people.
    Other(String),
}

impl VolumeContent {
    /// The volume's content: a `configMap` or `secret` volume, or a `projected` volume
    /// of ConfigMaps and Secrets only.
    pub fn of(volume: &Volume) -> VolumeContent {
        if let Some(cm) = &volume.config_map {
            return VolumeContent::Objects(vec![Projected::new(
                ObjectKind::ConfigMap,
                &cm.name,
                cm.items.as_deref(),
                cm.optional,
            )]);
        }
        if let Some(secret) = &volume.secret {
            return match &secret.secret_name {
                Some(name) => VolumeContent::Objects(vec![Projected::new(
                    ObjectKind::Secret,
                    name,
                    secret.items.as_deref(),
                    secret.optional,
                )]),
                None => VolumeContent::Other(format!("volume {} names no Secret", volume.name)),
            };
        }
        let Some(projected) = &volume.projected else {
            return VolumeContent::Other(format!(
                "volume {} is not a ConfigMap, Secret or projected volume",
                volume.name
            ));
        };
        let mut objects = Vec::new();
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                objects.push(Projected::new(
                    ObjectKind::ConfigMap,
                    &cm.name,
                    cm.items.as_deref(),
                    cm.optional,
                ));
            } else if let Some(secret) = &source.secret {
                objects.push(Projected::new(
                    ObjectKind::Secret,
                    &secret.name,
                    secret.items.as_deref(),
                    secret.optional,
                ));
            } else {
                return VolumeContent::Other(format!(
                    "projected volume {} also holds content that is not in a ConfigMap or \
                     Secret (downward API, token or trust bundle)",
                    volume.name
                ));
            }
        }
        VolumeContent::Objects(objects)
    }

    /// The one object of a volume that holds exactly one, whole (no `items`): its digest
    /// is the volume's.
    pub fn whole_object(&self) -> Option<(ObjectKind, &str)> {
        match self {
            VolumeContent::Objects(objects) => match objects.as_slice() {
                [only] if only.items.is_none() => Some((only.kind, only.name.as_str())),
                _ => None,
            },
            VolumeContent::Other(_) => None,
        }
    }
}

/// Why a volume's content cannot be computed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// A non-optional object does not exist: the kubelet cannot set the volume up.
    #[error("{object} does not exist")]
    Missing {
        /// `configmap/NAME` or `secret/NAME`.
        object: String,
    },
    /// A non-optional `items` entry names a key the object does not have.
    #[error("{object} has no key {key:?}")]
    MissingKey {
        /// `configmap/NAME` or `secret/NAME`.
        object: String,
        /// The key (a name, never a value).
        key: String,
    },
}

/// The content the kubelet writes for `objects` (one volume), given each object's
/// current content (`lookup` answers `None` for an object that does not exist).
pub fn projection<'a, F>(objects: &[Projected], lookup: F) -> Result<Snapshot, ProjectionError>
where
    F: Fn(ObjectKind, &str) -> Option<&'a Snapshot>,
{
    let mut files: BTreeMap<String, &[u8]> = BTreeMap::new();
    for object in objects {
        let Some(content) = lookup(object.kind, &object.name) else {
            if object.optional {
                continue;
            }
            return Err(ProjectionError::Missing {
                object: object.label(),
            });
        };
        match &object.items {
            None => {
                for (key, value) in content.iter() {
                    files.insert(key.to_owned(), value);
                }
            }
            Some(items) => {
                for (key, path) in items {
                    match content.get(key) {
                        Some(value) => {
                            files.insert(path.clone(), value);
                        }
                        None if object.optional => {}
                        None => {
                            return Err(ProjectionError::MissingKey {
                                object: object.label(),
                                key: key.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(Snapshot::from_entries(files))
}

/// Why a directory of a pod cannot be matched to a volume.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// No container mounts anything at the path.
    #[error("no volume is mounted at {path}")]
    NotMounted {
        /// The directory.
        path: String,
    },
    /// The mount is a `subPath` mount: the kubelet does not update those.
    #[error("{path} is a subPath mount of volume {volume}, which the kubelet never updates")]
    SubPath {
        /// The directory.
        path: String,
        /// The volume's name.
        volume: String,
    },
    /// Containers mount different volumes at the path.
    #[error("different volumes are mounted at {path}: {}", volumes.join(", "))]
    Ambiguous {
        /// The directory.
        path: String,
        /// The volumes' names.
        volumes: Vec<String>,
    },
    /// A mount names a volume the pod does not declare.
    #[error("{path} mounts volume {volume}, which the pod does not declare")]
    NoVolume {
        /// The directory.
        path: String,
        /// The volume's name.
        volume: String,
    },
}

/// `path` without trailing slashes (`/` stays `/`).
fn normalize(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { path } else { trimmed }
}

/// The volume mounted at `path` by any container of the pod (regular or init, which is
/// where sidecars run), matched exactly after trailing slashes are dropped.
pub fn mounted_at<'a>(spec: &'a PodSpec, path: &str) -> Result<&'a Volume, MountError> {
    let path = normalize(path);
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut names = BTreeSet::new();
    let mut sub_path = None;
    for mount in containers.flat_map(|c| c.volume_mounts.iter().flatten()) {
        if normalize(&mount.mount_path) != path {
            continue;
        }
        let is_sub_path = mount.sub_path.as_deref().is_some_and(|s| !s.is_empty())
            || mount
                .sub_path_expr
                .as_deref()
                .is_some_and(|s| !s.is_empty());
        if is_sub_path {
            sub_path = Some(mount.name.as_str());
        } else {
            names.insert(mount.name.as_str());
        }
    }
    let mut names = names.into_iter();
    let name = match (names.next(), names.next()) {
        (Some(name), None) => name,
        (None, _) => {
            return Err(match sub_path {
                Some(volume) => MountError::SubPath {
                    path: path.to_owned(),
                    volume: volume.to_owned(),
                },
                None => MountError::NotMounted {
                    path: path.to_owned(),
                },
            });
        }
        (Some(first), Some(second)) => {
            let volumes = [first, second]
                .into_iter()
                .chain(names)
                .map(str::to_owned)
                .collect();
            return Err(MountError::Ambiguous {
                path: path.to_owned(),
                volumes,
            });
        }
    };
    spec.volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .ok_or_else(|| MountError::NoVolume {
            path: path.to_owned(),
            volume: name.to_owned(),
        })
}

/// Every directory a volume is mounted at (not `subPath` mounts), with the volume's
/// content: what the operator keeps of a pod template to match directory reports.
pub fn mounts(spec: &PodSpec) -> BTreeMap<String, VolumeContent> {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut out = BTreeMap::new();
    for mount in containers.flat_map(|c| c.volume_mounts.iter().flatten()) {
        let path = normalize(&mount.mount_path);
        if out.contains_key(path) {
            continue;
        }
        let content = match mounted_at(spec, path) {
            Ok(volume) => VolumeContent::of(volume),
            Err(MountError::NotMounted { .. }) | Err(MountError::SubPath { .. }) => continue,
            Err(error) => VolumeContent::Other(error.to_string()),
        };
        out.insert(path.to_owned(), content);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk_spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).expect("pod spec")
    }

    /// A pod whose `app` container mounts `volume` at /etc/app.
    fn mk_pod_with(volume: serde_json::Value) -> PodSpec {
        mk_spec(json!({
            "containers": [{"name": "app", "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}],
            "volumes": [volume],
        }))
    }

    fn mk_snapshot(entries: &[(&str, &str)]) -> Snapshot {
        Snapshot::from_entries(entries.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    #[test]
    fn labels_round_trip() {
        assert_eq!(source_label(ObjectKind::Secret, "tls"), "secret/tls");
        assert_eq!(
            parse_source_label("configmap/app"),
            Some((ObjectKind::ConfigMap, "app"))
        );
        assert_eq!(parse_source_label("/etc/app"), None);
        assert_eq!(parse_source_label("configmap/"), None);
        assert_eq!(parse_source_label("pod/x"), None);
        assert_eq!(parse_source_label("secret/a/b"), None);
    }

    #[test]
    fn a_mount_path_leads_to_its_volume_and_objects() {
        let spec = mk_pod_with(json!({"name": "config", "configMap": {"name": "app"}}));
        let volume = mounted_at(&spec, "/etc/app/").expect("mounted");
        let content = VolumeContent::of(volume);
        assert_eq!(content.whole_object(), Some((ObjectKind::ConfigMap, "app")));
        assert_eq!(
            mounted_at(&spec, "/etc/app/sub"),
            Err(MountError::NotMounted {
                path: "/etc/app/sub".into()
            })
        );
    }

    #[test]
    fn sidecars_in_init_containers_count_and_sub_paths_do_not() {
        let spec = mk_spec(json!({
            "containers": [{"name": "app", "volumeMounts": [{"name": "config", "mountPath": "/etc/one", "subPath": "a"}]}],
            "initContainers": [{"name": "rekindle", "volumeMounts": [{"name": "config", "mountPath": "/etc/two"}]}],
            "volumes": [{"name": "config", "secret": {"secretName": "tls"}}],
        }));
        assert!(mounted_at(&spec, "/etc/two").is_ok());
        let error = mounted_at(&spec, "/etc/one").expect_err("subPath");
        assert!(error.to_string().contains("never updates"), "{error}");
        let mounts = mounts(&spec);
        assert_eq!(mounts.keys().collect::<Vec<_>>(), ["/etc/two"]);
        assert_eq!(
            mounts["/etc/two"].whole_object(),
            Some((ObjectKind::Secret, "tls"))
        );
    }

    #[test]
    fn two_volumes_at_one_path_or_an_undeclared_volume_are_errors() {
        let spec = mk_spec(json!({
            "containers": [
                {"name": "a", "volumeMounts": [{"name": "one", "mountPath": "/etc/x"}]},
                {"name": "b", "volumeMounts": [{"name": "two", "mountPath": "/etc/x"}, {"name": "ghost", "mountPath": "/etc/g"}]},
            ],
            "volumes": [{"name": "one", "configMap": {"name": "a"}}, {"name": "two", "configMap": {"name": "b"}}],
        }));
        assert!(matches!(
            mounted_at(&spec, "/etc/x"),
            Err(MountError::Ambiguous { .. })
        ));
        assert!(matches!(
            mounted_at(&spec, "/etc/g"),
            Err(MountError::NoVolume { .. })
        ));
        assert!(matches!(mounts(&spec)["/etc/x"], VolumeContent::Other(_)));
    }

    #[test]
    fn a_whole_object_projects_to_its_own_digest() {
        let spec = mk_pod_with(json!({"name": "config", "configMap": {"name": "app"}}));
        let VolumeContent::Objects(objects) =
            VolumeContent::of(mounted_at(&spec, "/etc/app").expect("mounted"))
        else {
            panic!("objects")
        };
        let app = mk_snapshot(&[("a.yaml", "1"), ("b", "2")]);
        let written = projection(&objects, |_, _| Some(&app)).expect("projection");
        assert_eq!(written.digest(), app.digest());
    }

    #[test]
    fn items_and_projections_write_what_the_kubelet_writes() {
        let volume: Volume = serde_json::from_value(json!({
            "name": "config",
            "projected": {"sources": [
                {"configMap": {"name": "app", "items": [{"key": "a.yaml", "path": "conf/app.yaml"}]}},
                {"secret": {"name": "tls"}},
                {"configMap": {"name": "absent", "optional": true}},
            ]},
        }))
        .expect("volume");
        let content = VolumeContent::of(&volume);
        assert_eq!(content.whole_object(), None);
        let VolumeContent::Objects(objects) = content else {
            panic!("objects")
        };
        let app = mk_snapshot(&[("a.yaml", "1"), ("b", "2")]);
        let tls = mk_snapshot(&[("tls.key", "k")]);
        let lookup = |kind: ObjectKind, name: &str| match (kind, name) {
            (ObjectKind::ConfigMap, "app") => Some(&app),
            (ObjectKind::Secret, "tls") => Some(&tls),
            _ => None,
        };
        let written = projection(&objects, lookup).expect("projection");
        assert_eq!(
            written.digest(),
            mk_snapshot(&[("conf/app.yaml", "1"), ("tls.key", "k")]).digest()
        );
        // Without the Secret the volume cannot be set up.
        let error = projection(&objects, |kind, name| {
            (kind == ObjectKind::ConfigMap && name == "app").then_some(&app)
        })
        .expect_err("missing");
        assert_eq!(error.to_string(), "secret/tls does not exist");
        // An item naming an absent key fails unless optional.
        let item_spec = mk_pod_with(
            json!({"name": "config", "configMap": {"name": "app", "items": [{"key": "zz", "path": "z"}]}}),
        );
        let VolumeContent::Objects(objects) =
            VolumeContent::of(mounted_at(&item_spec, "/etc/app").expect("mounted"))
        else {
            panic!("objects")
        };
        assert!(matches!(
            projection(&objects, |_, _| Some(&app)),
            Err(ProjectionError::MissingKey { .. })
        ));
    }

    #[test]
    fn other_volumes_are_named() {
        for volume in [
            json!({"name": "scratch", "emptyDir": {}}),
            json!({"name": "info", "projected": {"sources": [{"configMap": {"name": "a"}}, {"downwardAPI": {"items": []}}]}}),
        ] {
            let volume: Volume = serde_json::from_value(volume).expect("volume");
            let VolumeContent::Other(why) = VolumeContent::of(&volume) else {
                panic!("not config")
            };
            assert!(why.contains(&volume.name), "{why}");
        }
    }
}
