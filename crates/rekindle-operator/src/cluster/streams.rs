//! Which watches the operator runs: the optional APIs it discovers first (CronJob
//! version, Argo Rollouts, the Secrets Store CSI driver's CRDs), then one watch per
//! kind and namespace scope, each reducing its objects at once through
//! [`crate::index::objects`].

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::cluster::watch::{self, Message, StreamId, Watched};
use crate::index::objects::{self, WorkloadSettings};
use crate::model::{SourceKind, WorkloadKind};
use crate::reconcile::Object;

/// What is watched, from the command line.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The namespaces watched one by one; `None` for all of them at once.
    pub namespaces: Vec<Option<String>>,
    pub namespace_selector: Option<&'a str>,
    pub resource_label_selector: Option<&'a str>,
    pub sources: &'a BTreeSet<SourceKind>,
    pub workloads: &'a BTreeSet<WorkloadKind>,
    pub settings: &'a WorkloadSettings,
}

/// The optional APIs, as discovered on the cluster.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub cron_jobs: ApiResource,
    /// Argo Rollouts, when asked for and served.
    pub argo: Option<ApiResource>,
    /// SecretProviderClassPodStatuses, when asked for and served.
    pub csi: Option<ApiResource>,
}

impl Discovered {
    /// Asks the API server which versions and optional APIs it serves. Only the
    /// CronJob version is required; a missing CRD is logged and its kind left out.
    pub async fn discover(
        client: &kube::Client,
        sources: &BTreeSet<SourceKind>,
        workloads: &BTreeSet<WorkloadKind>,
    ) -> Result<Discovered, kube::Error> {
        let cron_jobs = cron_job_resource(client).await?;
        let argo = match workloads.contains(&WorkloadKind::Rollout) {
            true => argo_rollout_resource(client).await,
            false => None,
        };
        let csi = match sources.contains(&SourceKind::SecretProviderClass) {
            true => pod_status_resource(client).await,
            false => None,
        };
        Ok(Discovered {
            cron_jobs,
            argo,
            csi,
        })
    }
}

/// Starts every watch of `plan`; returns their ids, which the reconciler waits on
/// before it calls itself synced.
pub fn spawn(
    plan: &Plan<'_>,
    apis: &Discovered,
    client: &kube::Client,
    tx: &mpsc::Sender<Message<Object>>,
) -> Vec<StreamId> {
    let mut streams = Streams {
        client,
        tx,
        ids: Vec::new(),
    };
    for ns in &plan.namespaces {
        streams.sources(plan, ns);
        if let Some(csi) = &apis.csi {
            streams.csi(plan, ns, csi);
        }
        for &kind in plan.workloads {
            streams.workload(kind, plan.settings, ns, apis);
        }
        streams.pods(ns);
    }
    if let Some(selector) = plan.namespace_selector {
        streams.start(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default().labels(selector),
            Watched::Namespaces,
            &None,
            |o: Namespace| Object::Namespace(o.metadata.name.unwrap_or_default()),
        );
    }
    streams.ids
}

/// Spawns watches and keeps the ids of those that count for readiness.
struct Streams<'a> {
    client: &'a kube::Client,
    tx: &'a mpsc::Sender<Message<Object>>,
    ids: Vec<StreamId>,
}

impl Streams<'_> {
    /// Spawns one watch and records its id.
    fn start<K, F>(
        &mut self,
        api: Api<K>,
        config: watcher::Config,
        watched: Watched,
        ns: &Option<String>,
        convert: F,
    ) where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
        F: Fn(K) -> Object + Send + 'static,
    {
        let id = StreamId {
            watched,
            namespace: ns.clone(),
        };
        tokio::spawn(watch::run(
            api,
            config,
            id.clone(),
            convert,
            self.tx.clone(),
        ));
        self.ids.push(id);
    }

    /// ConfigMaps and Secrets, filtered by `--resource-label-selector`.
    fn sources(&mut self, plan: &Plan<'_>, ns: &Option<String>) {
        if plan.sources.contains(&SourceKind::ConfigMap) {
            let names = plan.settings.names.clone();
            self.start(
                typed::<ConfigMap>(self.client, ns),
                source_config(plan),
                Watched::Source(SourceKind::ConfigMap),
                ns,
                move |o: ConfigMap| {
                    let (id, entry) = objects::config_map(&o, &names);
                    Object::Source(id, entry)
                },
            );
        }
        if plan.sources.contains(&SourceKind::Secret) {
            let names = plan.settings.names.clone();
            self.start(
                typed::<Secret>(self.client, ns),
                source_config(plan),
                Watched::Source(SourceKind::Secret),
                ns,
                move |o: Secret| {
                    let (id, entry) = objects::secret(&o, &names);
                    Object::Source(id, entry)
                },
            );
        }
    }

    /// `--enable-csi-integration`: the pod statuses, whose rotations are the
    /// changes, and the SecretProviderClasses, for their `ignore` and `match`
    /// annotations.
    fn csi(&mut self, plan: &Plan<'_>, ns: &Option<String>, pod_statuses: &ApiResource) {
        // Reloader applies the resource label selector to the pod statuses too.
        self.start(
            dynamic(self.client, ns, pod_statuses),
            source_config(plan),
            Watched::Source(SourceKind::SecretProviderClass),
            ns,
            |o: DynamicObject| match objects::pod_status(&o.metadata, &o.data["status"]) {
                Some((status, source, entry)) => Object::PodStatus {
                    status,
                    source,
                    entry,
                },
                None => Object::Ignored,
            },
        );
        // No label selector here: Reloader reads a class's annotations whatever its
        // labels.
        let classes = ApiResource {
            kind: "SecretProviderClass".into(),
            plural: "secretproviderclasses".into(),
            ..pod_statuses.clone()
        };
        let names = plan.settings.names.clone();
        self.start(
            dynamic(self.client, ns, &classes),
            watcher::Config::default(),
            Watched::ClassFlags,
            ns,
            move |o: DynamicObject| {
                let (id, flags) = objects::class_flags(&o.metadata, &names);
                Object::ClassFlags(id, flags)
            },
        );
    }

    /// One workload kind. Rollouts are skipped when their CRD is not served (logged
    /// at discovery).
    fn workload(
        &mut self,
        kind: WorkloadKind,
        settings: &WorkloadSettings,
        ns: &Option<String>,
        apis: &Discovered,
    ) {
        let s = settings.clone();
        let config = watcher::Config::default();
        let watched = Watched::Workload(kind);
        let client = self.client;
        match kind {
            WorkloadKind::Deployment => self.start(
                typed::<Deployment>(client, ns),
                config,
                watched,
                ns,
                move |o: Deployment| {
                    let (id, e) = objects::deployment(&o, &s);
                    Object::Workload(id, e)
                },
            ),
            WorkloadKind::DaemonSet => self.start(
                typed::<DaemonSet>(client, ns),
                config,
                watched,
                ns,
                move |o: DaemonSet| {
                    let (id, e) = objects::daemon_set(&o, &s);
                    Object::Workload(id, e)
                },
            ),
            WorkloadKind::StatefulSet => self.start(
                typed::<StatefulSet>(client, ns),
                config,
                watched,
                ns,
                move |o: StatefulSet| {
                    let (id, e) = objects::stateful_set(&o, &s);
                    Object::Workload(id, e)
                },
            ),
            WorkloadKind::Job => self.start(
                typed::<Job>(client, ns),
                config,
                watched,
                ns,
                move |o: Job| {
                    let (id, e) = objects::job(&o, &s);
                    Object::Workload(id, e)
                },
            ),
            // Read as dynamic objects: `batch/v1beta1` before Kubernetes 1.21.
            WorkloadKind::CronJob => self.start(
                dynamic(client, ns, &apis.cron_jobs),
                config,
                watched,
                ns,
                move |o: DynamicObject| {
                    let cron = objects::typed_cron_job(&o).unwrap_or_default();
                    let (id, e) = objects::cron_job(&cron, &s);
                    Object::Workload(id, e)
                },
            ),
            WorkloadKind::Rollout => {
                if let Some(argo) = &apis.argo {
                    self.start(
                        dynamic(client, ns, argo),
                        config,
                        watched,
                        ns,
                        move |o: DynamicObject| {
                            let (id, e) = objects::rollout(&o.metadata, &o.data["spec"], &s);
                            Object::Workload(id, e)
                        },
                    )
                }
            }
        }
    }

    /// The fleet view: pods, metadata only (labels, annotations and owners are all
    /// it reads). Not a readiness condition, so its id is not kept: rollouts do not
    /// depend on it, and a ServiceAccount without `list`/`watch` on pods still rolls
    /// workloads (the watch logs the missing permission once and retries).
    fn pods(&mut self, ns: &Option<String>) {
        let id = StreamId {
            watched: Watched::Pods,
            namespace: ns.clone(),
        };
        // `Api<PartialObjectMeta<_>>` asks for `PartialObjectMetadata`: the server
        // sends no spec or status, so pages stay small and nothing of them is decoded.
        tokio::spawn(watch::run(
            typed::<PartialObjectMeta<Pod>>(self.client, ns),
            watcher::Config::default(),
            id,
            |o: PartialObjectMeta<Pod>| {
                let (id, entry) = objects::pod(&o.metadata);
                Object::Pod(id, entry)
            },
            self.tx.clone(),
        ));
    }
}

/// The watch settings of ConfigMaps, Secrets and pod statuses.
fn source_config(plan: &Plan<'_>) -> watcher::Config {
    let config = watcher::Config::default();
    match plan.resource_label_selector {
        Some(selector) => config.labels(selector),
        None => config,
    }
}

fn typed<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn dynamic(
    client: &kube::Client,
    namespace: &Option<String>,
    resource: &ApiResource,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// CronJobs are `batch/v1` from Kubernetes 1.21, `batch/v1beta1` before.
async fn cron_job_resource(client: &kube::Client) -> Result<ApiResource, kube::Error> {
    let version = match client.list_api_group_resources("batch/v1").await {
        Ok(list) if list.resources.iter().any(|r| r.name == "cronjobs") => "v1",
        Ok(_) => "v1beta1",
        Err(error) => return Err(error),
    };
    Ok(ApiResource {
        group: "batch".into(),
        version: version.into(),
        api_version: format!("batch/{version}"),
        kind: "CronJob".into(),
        plural: "cronjobs".into(),
    })
}

/// Argo Rollouts (`argoproj.io/v1alpha1`), if their CRD is served.
async fn argo_rollout_resource(client: &kube::Client) -> Option<ApiResource> {
    match client
        .list_api_group_resources("argoproj.io/v1alpha1")
        .await
    {
        Ok(list) if list.resources.iter().any(|r| r.name == "rollouts") => Some(ApiResource {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            plural: "rollouts".into(),
        }),
        _ => {
            tracing::warn!(
                "--is-Argo-Rollouts=true, but argoproj.io/v1alpha1 rollouts are not served; Rollouts are not watched"
            );
            None
        }
    }
}

/// The Secrets Store CSI driver's SecretProviderClassPodStatuses
/// (`secrets-store.csi.x-k8s.io/v1`), if their CRD is served.
async fn pod_status_resource(client: &kube::Client) -> Option<ApiResource> {
    const GROUP: &str = "secrets-store.csi.x-k8s.io";
    const PLURAL: &str = "secretproviderclasspodstatuses";
    match client
        .list_api_group_resources(&format!("{GROUP}/v1"))
        .await
    {
        Ok(list) if list.resources.iter().any(|r| r.name == PLURAL) => Some(ApiResource {
            group: GROUP.into(),
            version: "v1".into(),
            api_version: format!("{GROUP}/v1"),
            kind: "SecretProviderClassPodStatus".into(),
            plural: PLURAL.into(),
        }),
        _ => {
            tracing::warn!(
                "--enable-csi-integration: {PLURAL}.{GROUP}/v1 is not served (is the Secrets Store \
                 CSI driver installed?); SecretProviderClasses are not watched"
            );
            None
        }
    }
}
