//! The operator's pure decisions on generated workloads: annotation parsing
//! (named lists of regexes, exclude lists, auto, search/match, pause), the
//! decision order, reference extraction from pod specs, env-var names and
//! the rollout plan.
//!
//! Checks that nothing panics, that the decision order holds (an ignored
//! workload type, then an ignored source, then an exclusion win over every
//! selection), that extracted references point at real containers and env
//! positions, that marker names are well formed, that every pending source is
//! accounted for exactly once in a plan, and that a plan applied to the
//! workload plans nothing more: the operator never rolls twice for one change.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use k8s_openapi::api::core::v1::{
    CSIVolumeSource, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection,
    ConfigMapVolumeSource, Container, EnvFromSource, EnvVar, EnvVarSource, KeyToPath, PodSpec,
    ProjectedVolumeSource, SecretKeySelector, SecretVolumeSource, Volume, VolumeProjection,
};
use libfuzzer_sys::fuzz_target;
use rekindle_operator::decide::annotations::{
    AnnotationNames, RolloutStrategy, SourceFlags, WorkloadRules,
};
use rekindle_operator::decide::decision::{DecideSettings, Decision, SkipReason, decide};
use rekindle_operator::decide::digest::{KeyDigests, MarkerKey};
use rekindle_operator::decide::envname::env_var_name;
use rekindle_operator::decide::fleet::Mounts;
use rekindle_operator::decide::pause::Pause;
use rekindle_operator::decide::plan::{
    HashMode, NoChange, PlanSettings, Strategy, plan, stale_sources,
};
use rekindle_operator::decide::references::TemplateRefs;
use rekindle_operator::index::{SourceEntry, SourceIndex, WorkloadEntry};
use rekindle_operator::model::{SourceId, SourceKind, WorkloadId, WorkloadKind};

#[derive(Arbitrary, Debug)]
struct Input {
    kind: u8,
    metadata: Vec<(AnnotationKey, AnnotationValue)>,
    template: Vec<(AnnotationKey, AnnotationValue)>,
    containers: Vec<ContainerSpec>,
    init_containers: Vec<ContainerSpec>,
    volumes: Vec<VolumeSpec>,
    sources: Vec<SourceSpec>,
    auto_reload_all: bool,
    ignore_jobs: bool,
    csi: bool,
    annotations_strategy: bool,
    reloader_sha1: bool,
    reload_on_delete: bool,
    key: [u8; 32],
    /// Names for the env-var name check only.
    free_names: Vec<String>,
}

#[derive(Arbitrary, Debug)]
enum AnnotationKey {
    Known(u8),
    Free(String),
}

const KEYS: &[&str] = &[
    "reloader.stakater.com/auto",
    "configmap.reloader.stakater.com/auto",
    "secret.reloader.stakater.com/auto",
    "secretproviderclass.reloader.stakater.com/auto",
    "configmap.reloader.stakater.com/reload",
    "secret.reloader.stakater.com/reload",
    "secretproviderclass.reloader.stakater.com/reload",
    "configmaps.exclude.reloader.stakater.com/reload",
    "secrets.exclude.reloader.stakater.com/reload",
    "secretproviderclasses.exclude.reloader.stakater.com/reload",
    "reloader.stakater.com/search",
    "reloader.stakater.com/match",
    "reloader.stakater.com/ignore",
    "reloader.stakater.com/rollout-strategy",
    "deployment.reloader.stakater.com/pause-period",
    "deployment.reloader.stakater.com/paused-at",
];

#[derive(Arbitrary, Debug)]
enum AnnotationValue {
    Known(u8),
    /// A comma-separated list of source names and patterns.
    List(Vec<u8>),
    Free(String),
}

const VALUES: &[&str] = &[
    "true",
    "false",
    "True",
    "1",
    "",
    "restart",
    "5m",
    "1h30m",
    "-1s",
    "2026-12-07T10:00:00Z",
    "garbage",
    "[",
    "(",
    "a|b",
    ".*",
    "app-.*",
    "app-config,db-*",
    " app-config , ",
    "\\",
];

/// Source names shared by the spec, the lists and the sources, so they meet.
const NAMES: &[&str] = &[
    "app-config",
    "db",
    "app.config",
    "App-Config",
    "x",
    "app-config-2",
];
const DATA_KEYS: &[&str] = &["a", "b", "config.yaml", "password"];

fn name(i: u8) -> String {
    NAMES[usize::from(i) % NAMES.len()].to_owned()
}

fn data_key(i: u8) -> String {
    DATA_KEYS[usize::from(i) % DATA_KEYS.len()].to_owned()
}

impl AnnotationKey {
    fn render(&self) -> String {
        match self {
            AnnotationKey::Known(i) => KEYS[usize::from(*i) % KEYS.len()].to_owned(),
            AnnotationKey::Free(s) => s.clone(),
        }
    }
}

impl AnnotationValue {
    fn render(&self) -> String {
        match self {
            AnnotationValue::Known(i) => VALUES[usize::from(*i) % VALUES.len()].to_owned(),
            AnnotationValue::List(items) => items
                .iter()
                .take(6)
                .map(|i| match i % 3 {
                    0 => name(*i / 3),
                    1 => format!("{}.*", name(*i / 3).chars().take(2).collect::<String>()),
                    _ => VALUES[usize::from(*i / 3) % VALUES.len()].to_owned(),
                })
                .collect::<Vec<_>>()
                .join(","),
            AnnotationValue::Free(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct ContainerSpec {
    env: Vec<EnvSpec>,
    env_from: Vec<(bool, u8)>,
}

#[derive(Arbitrary, Debug)]
enum EnvSpec {
    Literal {
        marker: Option<(bool, u8)>,
        value: u8,
    },
    ConfigMapKey {
        source: u8,
        key: u8,
    },
    SecretKey {
        source: u8,
        key: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum VolumeSpec {
    ConfigMap { source: u8, items: Option<Vec<u8>> },
    Secret { source: u8, items: Option<Vec<u8>> },
    Projected(Vec<(bool, u8, Option<Vec<u8>>)>),
    Csi(u8),
}

#[derive(Arbitrary, Debug)]
struct SourceSpec {
    kind: u8,
    name: u8,
    deleted: bool,
    ignore: bool,
    matched: bool,
    data: Vec<(u8, u8)>,
}

fn source_kind(i: u8) -> SourceKind {
    match i % 3 {
        0 => SourceKind::ConfigMap,
        1 => SourceKind::Secret,
        _ => SourceKind::SecretProviderClass,
    }
}

fn items(keys: &Option<Vec<u8>>) -> Option<Vec<KeyToPath>> {
    keys.as_ref().map(|keys| {
        keys.iter()
            .take(4)
            .map(|k| KeyToPath {
                key: data_key(*k),
                path: data_key(*k),
                ..Default::default()
            })
            .collect()
    })
}

fn container(index: usize, spec: &ContainerSpec, prefix: &str) -> Container {
    let env = spec
        .env
        .iter()
        .take(8)
        .map(|e| match e {
            EnvSpec::Literal { marker, value } => EnvVar {
                name: match marker {
                    Some((secret, n)) => env_var_name(
                        if *secret {
                            SourceKind::Secret
                        } else {
                            SourceKind::ConfigMap
                        },
                        &name(*n),
                    ),
                    None => format!("PLAIN_{value}"),
                },
                value: Some(format!("v{value}")),
                ..Default::default()
            },
            EnvSpec::ConfigMapKey { source, key } => EnvVar {
                name: format!("FROM_CM_{key}"),
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: name(*source),
                        key: data_key(*key),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            EnvSpec::SecretKey { source, key } => EnvVar {
                name: format!("FROM_SECRET_{key}"),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: name(*source),
                        key: data_key(*key),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        })
        .collect::<Vec<_>>();
    // One variable per name, as manifests have them (the API server warns about
    // duplicates); with two, a removal would leave the second behind.
    let mut seen = std::collections::HashSet::new();
    let env: Vec<EnvVar> = env
        .into_iter()
        .filter(|e| seen.insert(e.name.clone()))
        .collect();
    let env_from = spec
        .env_from
        .iter()
        .take(4)
        .map(|(secret, source)| {
            if *secret {
                EnvFromSource {
                    secret_ref: Some(k8s_openapi::api::core::v1::SecretEnvSource {
                        name: name(*source),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            } else {
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: name(*source),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            }
        })
        .collect::<Vec<_>>();
    Container {
        // Kubernetes refuses two containers of one name; so do we here.
        name: format!("{prefix}{index}"),
        env: (!env.is_empty()).then_some(env),
        env_from: (!env_from.is_empty()).then_some(env_from),
        ..Default::default()
    }
}

fn pod_spec(input: &Input) -> PodSpec {
    let volumes = input
        .volumes
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, v)| {
            let mut volume = Volume {
                name: format!("v{i}"),
                ..Default::default()
            };
            match v {
                VolumeSpec::ConfigMap {
                    source,
                    items: keys,
                } => {
                    volume.config_map = Some(ConfigMapVolumeSource {
                        name: name(*source),
                        items: items(keys),
                        ..Default::default()
                    })
                }
                VolumeSpec::Secret {
                    source,
                    items: keys,
                } => {
                    volume.secret = Some(SecretVolumeSource {
                        secret_name: Some(name(*source)),
                        items: items(keys),
                        ..Default::default()
                    })
                }
                VolumeSpec::Projected(parts) => {
                    volume.projected = Some(ProjectedVolumeSource {
                        sources: Some(
                            parts
                                .iter()
                                .take(4)
                                .map(|(secret, source, keys)| {
                                    if *secret {
                                        VolumeProjection {
                                            secret: Some(
                                                k8s_openapi::api::core::v1::SecretProjection {
                                                    name: name(*source),
                                                    items: items(keys),
                                                    ..Default::default()
                                                },
                                            ),
                                            ..Default::default()
                                        }
                                    } else {
                                        VolumeProjection {
                                            config_map: Some(ConfigMapProjection {
                                                name: name(*source),
                                                items: items(keys),
                                                ..Default::default()
                                            }),
                                            ..Default::default()
                                        }
                                    }
                                })
                                .collect(),
                        ),
                        ..Default::default()
                    })
                }
                VolumeSpec::Csi(source) => {
                    volume.csi = Some(CSIVolumeSource {
                        driver: "secrets-store.csi.k8s.io".into(),
                        volume_attributes: Some(BTreeMap::from([(
                            "secretProviderClass".to_owned(),
                            name(*source),
                        )])),
                        ..Default::default()
                    })
                }
            }
            volume
        })
        .collect::<Vec<_>>();
    PodSpec {
        containers: input
            .containers
            .iter()
            .take(4)
            .enumerate()
            .map(|(i, c)| container(i, c, "c"))
            .collect(),
        init_containers: Some(
            input
                .init_containers
                .iter()
                .take(2)
                .enumerate()
                .map(|(i, c)| container(i, c, "init"))
                .collect(),
        ),
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..Default::default()
    }
}

fn annotations(pairs: &[(AnnotationKey, AnnotationValue)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .take(8)
        .map(|(k, v)| (k.render(), v.render()))
        .collect()
}

fn well_formed_marker_name(var: &str, kind: SourceKind) -> bool {
    let Some(rest) = var.strip_prefix("STAKATER_") else {
        return false;
    };
    rest.ends_with(&format!("_{}", kind.upper()))
        && rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Writes the plan into the pod spec, as the patches would: the removals first
/// (by position in the template, as the JSON patch removes them), then the
/// markers set.
fn apply(spec: &mut PodSpec, plan: &rekindle_operator::decide::plan::Plan) {
    let mut removals = plan.remove.clone();
    removals.sort();
    removals.dedup();
    for (c, e, var) in removals.iter().rev() {
        let env = spec.containers[*c]
            .env
            .as_mut()
            .expect("a removal names an env entry");
        assert_eq!(&env[*e].name, var, "a removal at the wrong position");
        env.remove(*e);
    }
    assert_eq!(
        removals.len(),
        plan.remove.len(),
        "one variable removed twice: {plan:?}"
    );
    for marker in &plan.env {
        let container = spec
            .containers
            .iter_mut()
            .find(|c| c.name == marker.container)
            .expect("a marker goes on a regular container of the template");
        let env = container.env.get_or_insert_with(Vec::new);
        match env.iter_mut().find(|e| e.name == marker.name) {
            Some(var) => {
                var.value = Some(marker.value.clone());
                var.value_from = None;
            }
            None => env.push(EnvVar {
                name: marker.name.clone(),
                value: Some(marker.value.clone()),
                ..Default::default()
            }),
        }
    }
}

fuzz_target!(|input: Input| {
    let names = AnnotationNames::default();
    let kind = WorkloadKind::ALL[usize::from(input.kind) % WorkloadKind::ALL.len()];
    let metadata = annotations(&input.metadata);
    let template = annotations(&input.template);
    let rules = WorkloadRules::parse(&metadata, &template, &names);
    let mut spec = pod_spec(&input);
    let refs = TemplateRefs::from_pod_spec(&spec, input.csi);

    // References point at real containers and env positions.
    for ((source_kind, _), usage) in &refs.sources {
        if *source_kind == SourceKind::SecretProviderClass {
            assert!(
                input.csi,
                "a CSI source recorded without --enable-csi-integration"
            );
        }
        if let Some(c) = &usage.container {
            assert!(
                refs.containers.iter().any(|m| &m.name == c),
                "{c} is not a container"
            );
        }
    }
    for (ci, container) in refs.containers.iter().enumerate() {
        for (var, marker) in &container.markers {
            assert_eq!(
                refs.marker_position(&container.name, var),
                Some((ci, marker.env_index))
            );
            let actual = &spec.containers[ci].env.as_ref().expect("env")[marker.env_index];
            assert_eq!(&actual.name, var);
        }
    }

    let mut settings = DecideSettings {
        auto_reload_all: input.auto_reload_all,
        ..Default::default()
    };
    if input.ignore_jobs {
        settings.ignored_workload_types.insert(WorkloadKind::Job);
    }
    let _ = RolloutStrategy::from_annotations(&metadata);
    if let Some(pause) = Pause::from_annotations(&metadata, &names.pause_period, &names.paused_at) {
        let _ = pause.resume_at();
        for value in template.values() {
            let _ = pause.should_pause(value);
        }
    }

    for name in input.free_names.iter().take(4) {
        for kind in [
            SourceKind::ConfigMap,
            SourceKind::Secret,
            SourceKind::SecretProviderClass,
        ] {
            assert!(
                well_formed_marker_name(&env_var_name(kind, name), kind),
                "{name:?}"
            );
        }
    }

    let id = WorkloadId::new(kind, "ns", "workload");
    let mut sources = SourceIndex::default();
    let mut pending = BTreeSet::new();
    for s in input.sources.iter().take(6) {
        let source = SourceId::new(source_kind(s.kind), "ns", name(s.name));
        let flags = SourceFlags {
            ignore: s.ignore,
            matched: s.matched,
        };
        let decision = decide(kind, &rules, &source, flags, &settings);
        let kind_rules = rules.for_kind(source.kind);
        if settings.ignored_workload_types.contains(&kind) {
            assert_eq!(decision, Decision::Skip(SkipReason::IgnoredWorkloadType));
        } else if flags.ignore {
            assert_eq!(decision, Decision::Skip(SkipReason::SourceIgnored));
        } else if kind_rules.is_excluded(&source.name) {
            assert_eq!(decision, Decision::Skip(SkipReason::Excluded));
        } else if kind_rules.named_matches(&source.name) {
            assert!(decision.is_reload());
        }
        assert!(well_formed_marker_name(
            &env_var_name(source.kind, &source.name),
            source.kind
        ));

        if !s.deleted {
            let data: Vec<(String, Vec<u8>)> = s
                .data
                .iter()
                .take(4)
                .map(|(k, v)| (data_key(*k), vec![*v]))
                .collect();
            let digests = KeyDigests::new(data.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
            let entry = SourceEntry {
                uid: "uid".into(),
                flags,
                digests,
                reloader_sha1: format!("{:040x}", s.data.len()),
                digest: rekindle::Snapshot::from_entries(data.clone())
                    .digest()
                    .to_owned(),
            };
            sources.apply(source.clone(), entry);
        }
        pending.insert(source);
    }

    let plan_settings = PlanSettings {
        strategy: if input.annotations_strategy {
            Strategy::Annotations
        } else {
            Strategy::EnvVars
        },
        hash: if input.reloader_sha1 {
            HashMode::ReloaderSha1
        } else {
            HashMode::Keyed(MarkerKey::new(input.key))
        },
        decide: settings,
        reload_on_delete: input.reload_on_delete,
    };
    let entry = |spec: &PodSpec| WorkloadEntry {
        uid: "w".into(),
        rules: rules.clone(),
        refs: TemplateRefs::from_pod_spec(spec, input.csi),
        reloaded_from: None,
        reloaded_digests: None,
        suspended: false,
        rollout_strategy: RolloutStrategy::from_annotations(&metadata),
        pause: None,
        mounts: Mounts::from_pod_spec(spec),
    };
    let first = plan(&id, &entry(&spec), &pending, &sources, &plan_settings);
    let accounted: Vec<&SourceId> = first
        .because
        .iter()
        .chain(first.unchanged.iter().map(|(s, _)| s))
        .collect();
    assert_eq!(accounted.len(), pending.len(), "{first:?}");
    assert_eq!(
        accounted.iter().collect::<BTreeSet<_>>().len(),
        pending.len(),
        "{first:?}"
    );
    for marker in &first.env {
        assert!(marker.name.starts_with("STAKATER_"), "{marker:?}");
    }
    assert_eq!(
        first,
        plan(&id, &entry(&spec), &pending, &sources, &plan_settings)
    );

    if plan_settings.strategy == Strategy::Annotations {
        // The annotations written, the same change rolls nothing more for a source
        // that exists, and the start-up catch-up finds none of them stale.
        let mut written = entry(&spec);
        written.reloaded_from = first.reloaded_from.clone();
        written.reloaded_digests = first.reloaded_digests.clone();
        let second = plan(&id, &written, &pending, &sources, &plan_settings);
        for source in &second.because {
            assert!(
                sources.get(source).is_none(),
                "{source:?} rolled twice for one change: {first:?} then {second:?}"
            );
        }
        let stale = stale_sources(&id, &written, &sources, &plan_settings);
        for source in &first.because {
            assert!(
                !stale.contains(source),
                "{source:?} stale right after its rollout: {first:?}"
            );
        }
        return;
    }
    if plan_settings.strategy != Strategy::EnvVars {
        return;
    }
    // One value per variable, whichever of the sources sharing it is planned.
    for source in &first.because {
        let alone = plan(
            &id,
            &entry(&spec),
            &BTreeSet::from([source.clone()]),
            &sources,
            &plan_settings,
        );
        for marker in &alone.env {
            if let Some(together) = first
                .env
                .iter()
                .find(|m| m.container == marker.container && m.name == marker.name)
            {
                assert_eq!(
                    marker.value, together.value,
                    "{source:?} alone: {alone:?}, together: {first:?}"
                );
            }
        }
    }

    // The plan written (markers set, then removals), the same change plans
    // nothing more, and the start-up catch-up finds none of its sources stale.
    apply(&mut spec, &first);
    let written = entry(&spec);
    let second = plan(&id, &written, &pending, &sources, &plan_settings);
    assert!(
        second.env.is_empty() && second.remove.is_empty(),
        "rolled twice for one change: {first:?} then {second:?}"
    );
    for (source, why) in &second.unchanged {
        if first.because.contains(source) {
            let deleted = sources.get(source).is_none();
            assert!(
                why == &NoChange::Current || (deleted && why == &NoChange::Deleted),
                "{source:?}: {why:?}"
            );
        }
    }
    let stale = stale_sources(&id, &written, &sources, &plan_settings);
    for source in &first.because {
        assert!(
            !stale.contains(source),
            "{source:?} stale right after its rollout: {first:?}"
        );
    }
});
