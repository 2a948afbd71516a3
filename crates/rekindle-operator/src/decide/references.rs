//! What a pod template reads: every ConfigMap, Secret and SecretProviderClass it
//! names, which of their keys, and which container Reloader would write its
//! marker on.
//!
//! The index keeps a [`TemplateRefs`] per workload instead of the `PodSpec`: it
//! is all a decision needs (which sources, which keys, which container, the
//! markers already written), and it stays small however large the template is.
//!
//! Container choice follows Reloader v1.4.21 (`getContainerUsingResource` in
//! `internal/pkg/handler/upgrade.go`) step by step, because the container is
//! where its `STAKATER_…` variable already lives: choosing another one after a
//! migration would write a second variable and roll once for nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use crate::model::{KeyUse, SourceKind};

/// The prefix of every env var Reloader (and rekindle) writes as a marker.
pub const MARKER_PREFIX: &str = "STAKATER_";

/// The CSI volume attribute that names a SecretProviderClass.
const SECRET_PROVIDER_CLASS_ATTRIBUTE: &str = "secretProviderClass";

/// How one pod template uses one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The keys read, over every use in the template (volumes, projections,
    /// env, envFrom, in regular and init containers alike).
    pub keys: KeyUse,
    /// The regular container Reloader would put the marker on, by name.
    ///
    /// `None` when the template names the source but no container uses it (a
    /// volume declared and never mounted) or the template has no regular
    /// container. Reloader's "auto" decision then does nothing; a "named"
    /// decision falls back to [`TemplateRefs::first_container`].
    pub container: Option<String>,
}

/// A marker variable found on a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Its literal value (empty for a `valueFrom` variable, as Reloader reads it).
    pub value: String,
    /// Its position in the container's `env`, for a guarded JSON-patch removal.
    pub env_index: usize,
}

/// One regular container: its name and the markers it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMarkers {
    /// The container's name.
    pub name: String,
    /// Every env var whose name starts with [`MARKER_PREFIX`], by name; when a
    /// name repeats, the first wins (Reloader reads and edits the first).
    pub markers: BTreeMap<String, Marker>,
}

/// Everything the index keeps about one pod template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateRefs {
    /// Each source the template names, keyed by kind and name (the namespace is
    /// the workload's own).
    pub sources: BTreeMap<(SourceKind, String), Usage>,
    /// The regular containers, in template order. Init containers are left out:
    /// Reloader never writes a marker on them.
    pub containers: Vec<ContainerMarkers>,
}

impl TemplateRefs {
    /// Reads a pod template. SecretProviderClasses (CSI volumes) are recorded
    /// only when `csi_enabled` (`--enable-csi-integration`).
    pub fn from_pod_spec(spec: &PodSpec, csi_enabled: bool) -> TemplateRefs {
        let regular = spec.containers.as_slice();
        let init = spec.init_containers.as_deref().unwrap_or_default();
        let volumes = spec.volumes.as_deref().unwrap_or_default();

        let mut keys: BTreeMap<(SourceKind, String), KeyUse> = BTreeMap::new();
        // Reloader looks for mounts of the *first* volume naming a source only.
        let mut first_volume: BTreeMap<(SourceKind, String), &str> = BTreeMap::new();
        for volume in volumes {
            for (kind, name, used) in volume_sources(volume, csi_enabled) {
                let id = (kind, name.to_owned());
                first_volume
                    .entry(id.clone())
                    .or_insert(volume.name.as_str());
                add_use(&mut keys, id, used);
            }
        }
        for container in regular.iter().chain(init) {
            for (kind, name, used) in env_sources(container) {
                add_use(&mut keys, (kind, name.to_owned()), used);
            }
        }

        let sources = keys
            .into_iter()
            .map(|(id, keys)| {
                let volume = first_volume.get(&id).copied();
                let container = choose_container(id.0, &id.1, volume, regular, init);
                (id, Usage { keys, container })
            })
            .collect();
        let containers = regular.iter().map(container_markers).collect();
        TemplateRefs {
            sources,
            containers,
        }
    }

    /// How the template uses one source, if it names it.
    pub fn usage(&self, kind: SourceKind, name: &str) -> Option<&Usage> {
        self.sources.get(&(kind, name.to_owned()))
    }

    /// The first regular container: where a "named" reload of a source no
    /// container references puts its marker.
    pub fn first_container(&self) -> Option<&str> {
        self.containers.first().map(|c| c.name.as_str())
    }

    /// The current value of marker `var` on `container`.
    pub fn marker(&self, container: &str, var: &str) -> Option<&str> {
        self.find_marker(container, var)
            .map(|(_, marker)| marker.value.as_str())
    }

    /// Where marker `var` sits on `container`: (container index, env index), as
    /// a JSON patch addresses it.
    pub fn marker_position(&self, container: &str, var: &str) -> Option<(usize, usize)> {
        self.find_marker(container, var)
            .map(|(index, marker)| (index, marker.env_index))
    }

    fn find_marker(&self, container: &str, var: &str) -> Option<(usize, &Marker)> {
        let (index, found) = self
            .containers
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == container)?;
        found.markers.get(var).map(|marker| (index, marker))
    }
}

fn add_use(
    keys: &mut BTreeMap<(SourceKind, String), KeyUse>,
    id: (SourceKind, String),
    used: KeyUse,
) {
    let merged = match keys.remove(&id) {
        Some(earlier) => earlier.union(used),
        None => used,
    };
    keys.insert(id, merged);
}

/// The sources one volume projects, with the keys it reads. An empty `items`
/// list projects every key, as the kubelet treats it.
fn volume_sources(volume: &Volume, csi_enabled: bool) -> Vec<(SourceKind, &str, KeyUse)> {
    let mut found = Vec::new();
    if let Some(cm) = &volume.config_map {
        found.push((
            SourceKind::ConfigMap,
            cm.name.as_str(),
            items_use(cm.items.as_deref()),
        ));
    }
    if let Some(secret) = &volume.secret
        && let Some(name) = &secret.secret_name
    {
        found.push((
            SourceKind::Secret,
            name.as_str(),
            items_use(secret.items.as_deref()),
        ));
    }
    let projections = volume
        .projected
        .as_ref()
        .and_then(|p| p.sources.as_deref())
        .unwrap_or_default();
    for projection in projections {
        if let Some(cm) = &projection.config_map {
            found.push((
                SourceKind::ConfigMap,
                cm.name.as_str(),
                items_use(cm.items.as_deref()),
            ));
        }
        if let Some(secret) = &projection.secret {
            found.push((
                SourceKind::Secret,
                secret.name.as_str(),
                items_use(secret.items.as_deref()),
            ));
        }
    }
    if csi_enabled {
        let class = volume
            .csi
            .as_ref()
            .and_then(|csi| csi.volume_attributes.as_ref())
            .and_then(|attrs| attrs.get(SECRET_PROVIDER_CLASS_ATTRIBUTE));
        if let Some(class) = class {
            found.push((SourceKind::SecretProviderClass, class.as_str(), KeyUse::All));
        }
    }
    // An empty name refers to nothing the API can hold.
    found.retain(|(_, name, _)| !name.is_empty());
    found
}

fn items_use(items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>) -> KeyUse {
    match items {
        Some(items) if !items.is_empty() => {
            KeyUse::Keys(items.iter().map(|item| item.key.clone()).collect())
        }
        _ => KeyUse::All,
    }
}

/// The sources one container reads through `env[].valueFrom` and `envFrom`.
fn env_sources(container: &Container) -> Vec<(SourceKind, &str, KeyUse)> {
    let mut found = Vec::new();
    for var in container.env.as_deref().unwrap_or_default() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(cm) = &from.config_map_key_ref {
            found.push((SourceKind::ConfigMap, cm.name.as_str(), one_key(&cm.key)));
        }
        if let Some(secret) = &from.secret_key_ref {
            found.push((
                SourceKind::Secret,
                secret.name.as_str(),
                one_key(&secret.key),
            ));
        }
    }
    for from in container.env_from.as_deref().unwrap_or_default() {
        if let Some(cm) = &from.config_map_ref {
            found.push((SourceKind::ConfigMap, cm.name.as_str(), KeyUse::All));
        }
        if let Some(secret) = &from.secret_ref {
            found.push((SourceKind::Secret, secret.name.as_str(), KeyUse::All));
        }
    }
    found.retain(|(_, name, _)| !name.is_empty());
    found
}

fn one_key(key: &str) -> KeyUse {
    KeyUse::Keys([key.to_owned()].into())
}

/// Reloader's order: the first regular container mounting the source's first
/// volume; else, if an init container mounts it, the first regular container;
/// else the first regular container with an env/envFrom reference; else, if an
/// init container has one, the first regular container; else none.
fn choose_container(
    kind: SourceKind,
    name: &str,
    volume: Option<&str>,
    regular: &[Container],
    init: &[Container],
) -> Option<String> {
    // A marker on an init container would not restart the long-running ones.
    let first_regular = || regular.first().map(|c| c.name.clone());
    if let Some(volume) = volume {
        if let Some(c) = regular.iter().find(|c| mounts(c, volume)) {
            return Some(c.name.clone());
        }
        if init.iter().any(|c| mounts(c, volume)) {
            return first_regular();
        }
    }
    let by_env = |c: &&Container| {
        env_sources(c)
            .iter()
            .any(|(k, n, _)| *k == kind && *n == name)
    };
    if let Some(c) = regular.iter().find(by_env) {
        return Some(c.name.clone());
    }
    if init.iter().any(|c| by_env(&c)) {
        return first_regular();
    }
    None
}

fn mounts(container: &Container, volume: &str) -> bool {
    container
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|m| m.name == volume)
}

fn container_markers(container: &Container) -> ContainerMarkers {
    let mut markers = BTreeMap::new();
    for (env_index, var) in container
        .env
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if var.name.starts_with(MARKER_PREFIX) && !markers.contains_key(&var.name) {
            let value = var.value.clone().unwrap_or_default();
            markers.insert(var.name.clone(), Marker { value, env_index });
        }
    }
    ContainerMarkers {
        name: container.name.clone(),
        markers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        CSIVolumeSource, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection,
        ConfigMapVolumeSource, EnvFromSource, EnvVar, EnvVarSource, KeyToPath,
        ProjectedVolumeSource, SecretEnvSource, SecretKeySelector, SecretProjection,
        SecretVolumeSource, VolumeMount, VolumeProjection,
    };

    // ---- helpers ----------------------------------------------------------

    fn mk_container(name: &str) -> Container {
        Container {
            name: name.to_owned(),
            ..Container::default()
        }
    }

    fn with_mount(mut c: Container, volume: &str) -> Container {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: volume.to_owned(),
                mount_path: format!("/etc/{volume}"),
                ..VolumeMount::default()
            });
        c
    }

    fn with_env(mut c: Container, var: EnvVar) -> Container {
        c.env.get_or_insert_with(Vec::new).push(var);
        c
    }

    fn with_env_from(mut c: Container, from: EnvFromSource) -> Container {
        c.env_from.get_or_insert_with(Vec::new).push(from);
        c
    }

    fn cm_key_env(var: &str, cm: &str, key: &str) -> EnvVar {
        EnvVar {
            name: var.to_owned(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: cm.to_owned(),
                    key: key.to_owned(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    fn secret_key_env(var: &str, secret: &str, key: &str, optional: Option<bool>) -> EnvVar {
        EnvVar {
            name: var.to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.to_owned(),
                    key: key.to_owned(),
                    optional,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    fn plain_env(var: &str, value: &str) -> EnvVar {
        EnvVar {
            name: var.to_owned(),
            value: Some(value.to_owned()),
            ..EnvVar::default()
        }
    }

    fn cm_env_from(cm: &str) -> EnvFromSource {
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: cm.to_owned(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }
    }

    fn secret_env_from(secret: &str) -> EnvFromSource {
        EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.to_owned(),
                optional: Some(true),
            }),
            ..EnvFromSource::default()
        }
    }

    fn items(keys: &[&str]) -> Option<Vec<KeyToPath>> {
        Some(
            keys.iter()
                .map(|k| KeyToPath {
                    key: (*k).to_owned(),
                    path: format!("p/{k}"),
                    mode: None,
                })
                .collect(),
        )
    }

    fn mk_cm_volume(volume: &str, cm: &str, keys: Option<&[&str]>) -> Volume {
        Volume {
            name: volume.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: cm.to_owned(),
                items: keys.and_then(items),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        }
    }

    fn mk_secret_volume(volume: &str, secret: &str, keys: Option<&[&str]>) -> Volume {
        Volume {
            name: volume.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_owned()),
                items: keys.and_then(items),
                optional: Some(true),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }
    }

    fn mk_projected_volume(volume: &str, projections: Vec<VolumeProjection>) -> Volume {
        Volume {
            name: volume.to_owned(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(projections),
                default_mode: None,
            }),
            ..Volume::default()
        }
    }

    fn cm_projection(cm: &str, keys: Option<&[&str]>) -> VolumeProjection {
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: cm.to_owned(),
                items: keys.and_then(items),
                optional: None,
            }),
            ..VolumeProjection::default()
        }
    }

    fn secret_projection(secret: &str, keys: Option<&[&str]>) -> VolumeProjection {
        VolumeProjection {
            secret: Some(SecretProjection {
                name: secret.to_owned(),
                items: keys.and_then(items),
                optional: None,
            }),
            ..VolumeProjection::default()
        }
    }

    fn mk_csi_volume(volume: &str, class: &str) -> Volume {
        Volume {
            name: volume.to_owned(),
            csi: Some(CSIVolumeSource {
                driver: "secrets-store.csi.k8s.io".to_owned(),
                volume_attributes: Some(
                    [(SECRET_PROVIDER_CLASS_ATTRIBUTE.to_owned(), class.to_owned())].into(),
                ),
                ..CSIVolumeSource::default()
            }),
            ..Volume::default()
        }
    }

    fn mk_pod_spec(
        containers: Vec<Container>,
        init: Vec<Container>,
        volumes: Vec<Volume>,
    ) -> PodSpec {
        PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..PodSpec::default()
        }
    }

    fn keys(names: &[&str]) -> KeyUse {
        KeyUse::Keys(names.iter().map(|n| (*n).to_owned()).collect())
    }

    fn usage(refs: &TemplateRefs, kind: SourceKind, name: &str) -> Usage {
        refs.usage(kind, name)
            .unwrap_or_else(|| panic!("{kind} {name} not found in {refs:#?}"))
            .clone()
    }

    fn used_by(keys: KeyUse, container: &str) -> Usage {
        Usage {
            keys,
            container: Some(container.to_owned()),
        }
    }

    // ---- reference forms ---------------------------------------------------

    #[test]
    fn env_key_refs_read_only_their_key() {
        let app = with_env(
            with_env(mk_container("app"), cm_key_env("A", "cfg", "a")),
            secret_key_env("P", "creds", "password", None),
        );
        let refs = TemplateRefs::from_pod_spec(&mk_pod_spec(vec![app], vec![], vec![]), false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg"),
            used_by(keys(&["a"]), "app")
        );
        assert_eq!(
            usage(&refs, SourceKind::Secret, "creds"),
            used_by(keys(&["password"]), "app")
        );
        assert_eq!(refs.sources.len(), 2);
    }

    #[test]
    fn env_from_reads_every_key() {
        let app = with_env_from(
            with_env_from(mk_container("app"), cm_env_from("cfg")),
            secret_env_from("creds"),
        );
        let refs = TemplateRefs::from_pod_spec(&mk_pod_spec(vec![app], vec![], vec![]), false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg"),
            used_by(KeyUse::All, "app")
        );
        assert_eq!(
            usage(&refs, SourceKind::Secret, "creds"),
            used_by(KeyUse::All, "app")
        );
    }

    #[test]
    fn volumes_with_items_read_those_keys_and_without_read_all() {
        let app = with_mount(with_mount(mk_container("app"), "v-cm"), "v-secret");
        let spec = mk_pod_spec(
            vec![app],
            vec![],
            vec![
                mk_cm_volume("v-cm", "cfg", Some(&["x", "y"])),
                mk_secret_volume("v-secret", "creds", None),
            ],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg"),
            used_by(keys(&["x", "y"]), "app")
        );
        assert_eq!(
            usage(&refs, SourceKind::Secret, "creds"),
            used_by(KeyUse::All, "app")
        );
    }

    #[test]
    fn an_empty_items_list_projects_every_key() {
        let spec = mk_pod_spec(
            vec![with_mount(mk_container("app"), "v")],
            vec![],
            vec![mk_cm_volume("v", "cfg", Some(&[]))],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(usage(&refs, SourceKind::ConfigMap, "cfg").keys, KeyUse::All);
    }

    #[test]
    fn projected_volumes_count_each_source_with_its_items() {
        let spec = mk_pod_spec(
            vec![
                mk_container("sidecar"),
                with_mount(mk_container("app"), "bundle"),
            ],
            vec![],
            vec![mk_projected_volume(
                "bundle",
                vec![
                    cm_projection("cfg", Some(&["k"])),
                    secret_projection("creds", None),
                ],
            )],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg"),
            used_by(keys(&["k"]), "app")
        );
        assert_eq!(
            usage(&refs, SourceKind::Secret, "creds"),
            used_by(KeyUse::All, "app")
        );
    }

    #[test]
    fn csi_volumes_name_a_secret_provider_class_only_when_enabled() {
        let spec = mk_pod_spec(
            vec![
                mk_container("first"),
                with_mount(mk_container("app"), "vault"),
            ],
            vec![],
            vec![mk_csi_volume("vault", "vault-db")],
        );
        let on = TemplateRefs::from_pod_spec(&spec, true);
        assert_eq!(
            usage(&on, SourceKind::SecretProviderClass, "vault-db"),
            used_by(KeyUse::All, "app")
        );
        let off = TemplateRefs::from_pod_spec(&spec, false);
        assert!(off.sources.is_empty(), "{off:#?}");
    }

    #[test]
    fn a_csi_volume_without_the_attribute_names_nothing() {
        let mut volume = mk_csi_volume("v", "x");
        if let Some(csi) = volume.csi.as_mut() {
            csi.volume_attributes = Some([("other".to_owned(), "x".to_owned())].into());
        }
        let spec = mk_pod_spec(
            vec![with_mount(mk_container("app"), "v")],
            vec![],
            vec![volume],
        );
        assert!(TemplateRefs::from_pod_spec(&spec, true).sources.is_empty());
    }

    #[test]
    fn optional_references_still_count() {
        // secret_key_env with optional, secret_env_from and mk_secret_volume are all optional: true.
        let app = with_env(
            mk_container("app"),
            secret_key_env("P", "a", "k", Some(true)),
        );
        let app = with_env_from(app, secret_env_from("b"));
        let app = with_mount(app, "v");
        let spec = mk_pod_spec(vec![app], vec![], vec![mk_secret_volume("v", "c", None)]);
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        for name in ["a", "b", "c"] {
            assert!(
                refs.usage(SourceKind::Secret, name).is_some(),
                "{name} missing"
            );
        }
    }

    #[test]
    fn kinds_do_not_mix_for_one_name() {
        let app = with_env(mk_container("app"), cm_key_env("A", "same", "a"));
        let app = with_env_from(app, secret_env_from("same"));
        let refs = TemplateRefs::from_pod_spec(&mk_pod_spec(vec![app], vec![], vec![]), false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "same").keys,
            keys(&["a"])
        );
        assert_eq!(usage(&refs, SourceKind::Secret, "same").keys, KeyUse::All);
    }

    #[test]
    fn uses_of_one_source_union_their_keys() {
        let app = with_env(mk_container("app"), cm_key_env("A", "cfg", "a"));
        let init = with_env(mk_container("init"), cm_key_env("B", "cfg", "b"));
        let spec = mk_pod_spec(
            vec![with_mount(app, "v")],
            vec![init],
            vec![
                mk_cm_volume("v", "cfg", Some(&["c"])),
                mk_projected_volume("p", vec![cm_projection("cfg", Some(&["d"]))]),
            ],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg").keys,
            keys(&["a", "b", "c", "d"])
        );

        // One whole-object use widens the union to every key.
        let widened = with_env_from(mk_container("other"), cm_env_from("cfg"));
        let mut spec = spec;
        spec.containers.push(widened);
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(usage(&refs, SourceKind::ConfigMap, "cfg").keys, KeyUse::All);
    }

    #[test]
    fn unrelated_env_and_volumes_name_nothing() {
        let app = with_env(mk_container("app"), plain_env("PLAIN", "1"));
        let empty_dir = Volume {
            name: "scratch".to_owned(),
            ..Volume::default()
        };
        let spec = mk_pod_spec(vec![with_mount(app, "scratch")], vec![], vec![empty_dir]);
        assert!(TemplateRefs::from_pod_spec(&spec, true).sources.is_empty());
    }

    #[test]
    fn empty_names_name_nothing() {
        let app = with_env(mk_container("app"), cm_key_env("A", "", "a"));
        let app = with_env_from(app, secret_env_from(""));
        let spec = mk_pod_spec(
            vec![with_mount(app, "v")],
            vec![],
            vec![
                mk_cm_volume("v", "", None),
                mk_projected_volume("p", vec![secret_projection("", None)]),
                mk_csi_volume("c", ""),
            ],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, true);
        assert!(refs.sources.is_empty(), "{refs:#?}");
    }

    // ---- container choice ------------------------------------------------

    #[test]
    fn a_mount_beats_an_env_reference_in_an_earlier_container() {
        let env_user = with_env(mk_container("env-user"), cm_key_env("A", "cfg", "a"));
        let mounter = with_mount(mk_container("mounter"), "v");
        let spec = mk_pod_spec(
            vec![env_user, mounter],
            vec![],
            vec![mk_cm_volume("v", "cfg", None)],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg")
                .container
                .as_deref(),
            Some("mounter")
        );
    }

    #[test]
    fn a_mount_beats_an_env_reference_in_a_later_container() {
        let mounter = with_mount(mk_container("mounter"), "v");
        let env_user = with_env_from(mk_container("env-user"), cm_env_from("cfg"));
        let spec = mk_pod_spec(
            vec![mounter, env_user],
            vec![],
            vec![mk_cm_volume("v", "cfg", None)],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg")
                .container
                .as_deref(),
            Some("mounter")
        );
    }

    #[test]
    fn the_first_mounting_container_wins() {
        let spec = mk_pod_spec(
            vec![
                mk_container("none"),
                with_mount(mk_container("second"), "v"),
                with_mount(mk_container("third"), "v"),
            ],
            vec![],
            vec![mk_secret_volume("v", "creds", None)],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::Secret, "creds")
                .container
                .as_deref(),
            Some("second")
        );
    }

    #[test]
    fn the_first_env_referencing_container_wins_and_env_from_counts() {
        let spec = mk_pod_spec(
            vec![
                mk_container("none"),
                with_env_from(mk_container("second"), secret_env_from("creds")),
                with_env(
                    mk_container("third"),
                    secret_key_env("P", "creds", "p", None),
                ),
            ],
            vec![],
            vec![],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::Secret, "creds")
                .container
                .as_deref(),
            Some("second")
        );
    }

    #[test]
    fn an_init_container_mount_picks_the_first_regular_container() {
        // Even though a later regular container references it by env: Reloader
        // returns at the init-container mount, before looking at env.
        let spec = mk_pod_spec(
            vec![
                mk_container("main"),
                with_env(mk_container("env-user"), cm_key_env("A", "cfg", "a")),
            ],
            vec![with_mount(mk_container("init"), "v")],
            vec![mk_cm_volume("v", "cfg", None)],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg")
                .container
                .as_deref(),
            Some("main")
        );
    }

    #[test]
    fn an_init_only_env_reference_picks_the_first_regular_container() {
        let spec = mk_pod_spec(
            vec![mk_container("main"), mk_container("side")],
            vec![with_env(
                mk_container("init"),
                secret_key_env("P", "creds", "p", None),
            )],
            vec![],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::Secret, "creds"),
            used_by(keys(&["p"]), "main")
        );
    }

    #[test]
    fn a_regular_env_reference_beats_an_init_env_reference() {
        let spec = mk_pod_spec(
            vec![
                mk_container("main"),
                with_env_from(mk_container("side"), cm_env_from("cfg")),
            ],
            vec![with_env_from(mk_container("init"), cm_env_from("cfg"))],
            vec![],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg")
                .container
                .as_deref(),
            Some("side")
        );
    }

    #[test]
    fn an_unmounted_volume_falls_through_to_env() {
        let spec = mk_pod_spec(
            vec![
                mk_container("main"),
                with_env_from(mk_container("side"), cm_env_from("cfg")),
            ],
            vec![],
            vec![mk_cm_volume("v", "cfg", None)],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg")
                .container
                .as_deref(),
            Some("side")
        );
    }

    #[test]
    fn a_declared_but_unused_source_has_no_container() {
        let spec = mk_pod_spec(
            vec![mk_container("main")],
            vec![],
            vec![mk_cm_volume("v", "cfg", None)],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg"),
            Usage {
                keys: KeyUse::All,
                container: None
            }
        );
        assert_eq!(refs.first_container(), Some("main"));
    }

    #[test]
    fn only_the_first_volume_naming_a_source_is_looked_up() {
        // Reloader's getVolumeMountName stops at the first volume: "second"
        // mounts the first volume, so it wins over "first", which mounts the
        // second volume of the same ConfigMap.
        let spec = mk_pod_spec(
            vec![
                with_mount(mk_container("first"), "v2"),
                with_mount(mk_container("second"), "v1"),
            ],
            vec![],
            vec![
                mk_cm_volume("v1", "cfg", Some(&["a"])),
                mk_cm_volume("v2", "cfg", Some(&["b"])),
            ],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(
            usage(&refs, SourceKind::ConfigMap, "cfg"),
            used_by(keys(&["a", "b"]), "second")
        );
    }

    #[test]
    fn secret_provider_classes_are_found_by_mount_only() {
        let spec = mk_pod_spec(
            vec![
                mk_container("main"),
                with_mount(mk_container("app"), "vault"),
            ],
            vec![],
            vec![mk_csi_volume("vault", "spc")],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, true);
        assert_eq!(
            usage(&refs, SourceKind::SecretProviderClass, "spc")
                .container
                .as_deref(),
            Some("app")
        );

        let unmounted = mk_pod_spec(
            vec![mk_container("main")],
            vec![],
            vec![mk_csi_volume("vault", "spc")],
        );
        let refs = TemplateRefs::from_pod_spec(&unmounted, true);
        assert_eq!(
            usage(&refs, SourceKind::SecretProviderClass, "spc").container,
            None
        );
    }

    #[test]
    fn an_init_only_mount_with_no_regular_container_picks_none() {
        let spec = mk_pod_spec(
            vec![],
            vec![with_mount(mk_container("init"), "v")],
            vec![mk_cm_volume("v", "cfg", None)],
        );
        let refs = TemplateRefs::from_pod_spec(&spec, false);
        assert_eq!(usage(&refs, SourceKind::ConfigMap, "cfg").container, None);
        assert_eq!(refs.first_container(), None);
    }

    // ---- markers ---------------------------------------------------------

    #[test]
    fn stakater_vars_are_captured_per_regular_container_and_nothing_else() {
        let app = with_env(mk_container("app"), plain_env("PLAIN", "x"));
        let app = with_env(app, plain_env("STAKATER_CFG_CONFIGMAP", "abc"));
        let app = with_env(app, plain_env("STAKATER_CFG_CONFIGMAP", "shadowed"));
        let app = with_env(app, secret_key_env("STAKATER_FROM_SECRET", "s", "k", None));
        let side = with_env(
            mk_container("side"),
            plain_env("STAKATER_CREDS_SECRET", "def"),
        );
        let init = with_env(
            mk_container("init"),
            plain_env("STAKATER_INIT_SECRET", "nope"),
        );
        let spec = mk_pod_spec(vec![app, side], vec![init], vec![]);
        let refs = TemplateRefs::from_pod_spec(&spec, false);

        let names: Vec<&str> = refs.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "side"]);
        assert_eq!(
            refs.containers[0].markers,
            BTreeMap::from([
                (
                    "STAKATER_CFG_CONFIGMAP".to_owned(),
                    Marker {
                        value: "abc".to_owned(),
                        env_index: 1
                    }
                ),
                (
                    "STAKATER_FROM_SECRET".to_owned(),
                    Marker {
                        value: String::new(),
                        env_index: 3
                    }
                ),
            ])
        );
        assert_eq!(refs.marker("side", "STAKATER_CREDS_SECRET"), Some("def"));
        assert_eq!(refs.marker("app", "STAKATER_CREDS_SECRET"), None);
        assert_eq!(refs.marker("init", "STAKATER_INIT_SECRET"), None);
        assert_eq!(
            refs.marker_position("side", "STAKATER_CREDS_SECRET"),
            Some((1, 0))
        );
        assert_eq!(
            refs.marker_position("app", "STAKATER_CFG_CONFIGMAP"),
            Some((0, 1))
        );
        assert_eq!(refs.first_container(), Some("app"));
    }
}
