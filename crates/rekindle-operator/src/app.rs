//! From the command line to a running operator: parse, check, set up logging,
//! start the runtime, hand over to [`crate::run`].

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;

use crate::cli::{
    Args, Env, HashMode as HashFlag, LogFormat, LogLevel, NamespaceScope, ReloadStrategy, Settings,
};
use crate::decide::annotations::AnnotationNames;
use crate::decide::decision::DecideSettings;
use crate::decide::plan::{HashMode, PlanSettings, Strategy};
use crate::index::objects::WorkloadSettings;
use crate::reconcile;
use crate::run::{Config, Ha, HashChoice, Scope};

/// How long a first change of a workload that uses several sources waits for
/// the others (sources applied together arrive a few milliseconds apart).
const GATHER: Duration = Duration::from_millis(200);

/// Parses the command line and runs the operator.
pub fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let env = Env::from_lookup(|name| std::env::var(name).ok());
    let settings = match Settings::from_args(&args, &env) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("rekindle-operator: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    init_logging(settings.log_format, settings.log_level);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let config = config(&settings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!("no Kubernetes client configuration (in-cluster or KUBECONFIG): {e}")
        })?;
        crate::run::run(config, client).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat, level: LogLevel) {
    use tracing_subscriber::filter::LevelFilter;
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        // Colours only for a person at a terminal: in a pod (or any file) the
        // escape codes would end up in `kubectl logs` and log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The annotation names, Reloader's unless a flag renamed them.
fn annotation_names(settings: &Settings) -> AnnotationNames {
    let o = &settings.annotation_overrides;
    let mut names = AnnotationNames::default();
    let set = |field: &mut String, value: &Option<String>| {
        if let Some(value) = value {
            field.clone_from(value);
        }
    };
    set(&mut names.auto, &o.auto);
    set(&mut names.configmap_auto, &o.configmap_auto);
    set(&mut names.secret_auto, &o.secret_auto);
    set(&mut names.configmap_reload, &o.configmap_reload);
    set(&mut names.secret_reload, &o.secret_reload);
    set(&mut names.search, &o.auto_search);
    set(&mut names.search_match, &o.search_match);
    set(&mut names.ignore, &o.ignore);
    set(&mut names.pause_period, &o.pause_period);
    set(&mut names.paused_at, &o.paused_at);
    names
}

/// The run configuration for `settings`.
pub fn config(settings: &Settings) -> Config {
    let (scope, ignored_namespaces, namespace_selector) = match &settings.scope {
        NamespaceScope::All { ignored, selector } => {
            (Scope::All, ignored.clone(), selector.clone())
        }
        NamespaceScope::Only(list) => (
            Scope::Namespaces(list.iter().cloned().collect()),
            BTreeSet::new(),
            None,
        ),
    };
    let names = annotation_names(settings);
    let plan = PlanSettings {
        strategy: match settings.strategy {
            ReloadStrategy::EnvVars => Strategy::EnvVars,
            ReloadStrategy::Annotations => Strategy::Annotations,
        },
        // Replaced by the keyed mode once the key is loaded.
        hash: HashMode::ReloaderSha1,
        decide: DecideSettings {
            auto_reload_all: settings.auto_reload_all,
            ignored_workload_types: settings.ignored_workload_types.clone(),
        },
        reload_on_delete: settings.reload_on_delete,
    };
    Config {
        scope,
        namespace_selector: namespace_selector.clone(),
        resource_label_selector: settings.resource_label_selector.clone(),
        sources: settings.sources.clone(),
        workloads: settings.workload_kinds(),
        workload: WorkloadSettings {
            names: names.clone(),
            csi_enabled: settings
                .sources
                .contains(&crate::model::SourceKind::SecretProviderClass),
            patterns: Default::default(),
        },
        reconcile: reconcile::Settings {
            plan,
            reload_on_create: settings.reload_on_create,
            ignored_namespaces,
            namespace_selector: namespace_selector.is_some(),
            cooldown: settings.cooldown,
            gather: GATHER,
            pause_period_annotation: names.pause_period.clone(),
            webhook_mode: settings.webhook_url.is_some(),
        },
        webhook_url: settings.webhook_url.clone(),
        alerts: settings.alerts.clone(),
        hash: match settings.hash {
            HashFlag::Keyed => HashChoice::Keyed {
                secret: settings.hash_key_secret.clone(),
            },
            HashFlag::ReloaderSha1 => HashChoice::ReloaderSha1,
        },
        ha: settings.ha.as_ref().map(|ha| Ha {
            lease_name: ha.lease_name.clone(),
            identity: ha.identity.clone(),
        }),
        metrics_addr: settings.metrics_addr,
        by_namespace_metrics: settings.metrics_by_namespace,
        operator_namespace: settings.operator_namespace.clone(),
    }
}
