//! The recipes of `examples/recipes` cannot rot:
//!
//! - every document of every manifest is accepted by a real Kubernetes 1.20 API server
//!   (server-side dry run);
//! - every container that runs rekindle has a command line this build accepts: it is run
//!   with `--help` added before its program, so clap checks each flag and value in order
//!   and nothing starts;
//! - a container in config-reloader-sidecar's mode (no arguments, only environment) is
//!   run with its environment, and signals the process that environment names;
//! - each recipe has a README, among the files whose `rekindle` commands the docs test
//!   checks, that shows how to apply it.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rekindle_testenv::ControlPlane;
use rekindle_testenv::docs::{create_document, flags_of, markdown_files, repo_root};
use serde_json::{Value, json};
use support::{Rekindle, SignalCounter, wait_for};

/// The rekindle image, without its tag.
const IMAGE: &str = "ghcr.io/rekindle-rs/rekindle";

/// The environment variables rekindle reads: config-reloader-sidecar's, its own log
/// settings, the pod's identity for `--report-pod`, and the kubeconfig outside a pod.
/// Anything else on a rekindle container is a misspelling that would be ignored.
const KNOWN_ENV: &[&str] = &[
    "CONFIG_DIR",
    "PROCESS_NAME",
    "RELOAD_SIGNAL",
    "VERBOSE",
    "REKINDLE_LOG_FORMAT",
    "REKINDLE_LOG_LEVEL",
    "POD_NAME",
    "POD_NAMESPACE",
    "KUBECONFIG",
];

fn recipes_dir() -> PathBuf {
    repo_root().join("examples/recipes")
}

/// A path as the messages show it: relative to the repository.
fn shown(path: &Path) -> String {
    let root = repo_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Each recipe's directory, sorted.
fn recipes() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(recipes_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no recipe in {}", shown(&recipes_dir()));
    dirs
}

/// Every manifest of the recipes (`*.yaml`, `*.yml`), sorted.
fn manifest_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in recipes() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The documents of a manifest, empty ones dropped.
fn documents(file: &Path) -> Vec<Value> {
    let text = fs::read_to_string(file).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", shown(file)));
    docs.into_iter().filter(|doc| !doc.is_null()).collect()
}

/// The pod spec of a workload (or a Pod), if the document has one.
fn pod_spec(doc: &Value) -> Option<&Value> {
    let spec = doc.get("spec")?;
    match doc.get("kind")?.as_str()? {
        "Pod" => Some(spec),
        "CronJob" => spec.pointer("/jobTemplate/spec/template/spec"),
        _ => spec.pointer("/template/spec"),
    }
}

/// A list of strings (a container's `command` or `args`).
fn strings(value: Option<&Value>, place: &str) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{place}: {v} is not a string"))
                .to_owned()
        })
        .collect()
}

/// A container of a recipe that runs rekindle.
#[derive(Debug)]
struct RekindleContainer {
    /// The file, the workload and the container, for messages.
    place: String,
    /// rekindle's arguments: what follows the binary.
    args: Vec<String>,
    /// The container's environment: literal values, and `None` for values taken from
    /// elsewhere (the downward API, a Secret).
    env: Vec<(String, Option<String>)>,
}

impl RekindleContainer {
    fn literal_env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_deref()?)))
    }

    fn env_value(&self, name: &str) -> Option<&str> {
        self.literal_env().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Every container (and init container) of the recipes that runs rekindle.
fn rekindle_containers() -> Vec<RekindleContainer> {
    let mut found = Vec::new();
    for file in manifest_files() {
        for doc in documents(&file) {
            let Some(spec) = pod_spec(&doc) else {
                continue;
            };
            let workload = format!(
                "{}: {} {}",
                shown(&file),
                doc["kind"].as_str().unwrap_or("?"),
                doc["metadata"]["name"].as_str().unwrap_or("?")
            );
            for list in ["initContainers", "containers"] {
                let containers = spec.get(list).and_then(Value::as_array);
                found.extend(
                    containers
                        .into_iter()
                        .flatten()
                        .filter_map(|c| rekindle_container(&workload, c)),
                );
            }
        }
    }
    found
}

/// The container, if its image is rekindle's or its command runs the rekindle binary
/// (an application image the binary was copied into).
fn rekindle_container(workload: &str, container: &Value) -> Option<RekindleContainer> {
    let place = format!(
        "{workload}, container {}",
        container["name"].as_str().unwrap_or("?")
    );
    let image = container["image"].as_str().unwrap_or_default();
    let repository = image.split('@').next().unwrap_or(image);
    let repository = match repository.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => repository,
    };
    let command = strings(container.get("command"), &place);
    let runs_binary = command
        .first()
        .is_some_and(|c| c == "rekindle" || c.ends_with("/rekindle"));
    if repository != IMAGE && !runs_binary {
        return None;
    }
    // rekindle's image holds the binary and nothing else.
    assert!(
        command.is_empty() || runs_binary,
        "{place}: the command {command:?} does not run rekindle"
    );
    let args = command
        .into_iter()
        .skip(1)
        .chain(strings(container.get("args"), &place))
        .collect();
    let env = container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|var| {
            let name = var["name"].as_str().unwrap().to_owned();
            let value = var.get("value").and_then(Value::as_str).map(str::to_owned);
            (name, value)
        })
        .collect();
    Some(RekindleContainer { place, args, env })
}

/// Runs this build's `rekindle` with `args` and only `container`'s literal environment,
/// to its end: (success, stdout, stderr).
fn run_rekindle(args: &[String], container: &RekindleContainer) -> (bool, String, String) {
    let output = Rekindle::command()
        .args(args)
        .env_clear()
        .envs(container.literal_env())
        .env("COLUMNS", "100")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `rekindle SUB ARGS... --help [-- PROGRAM...]` must succeed, and list every flag used.
fn check_subcommand(container: &RekindleContainer) {
    let sub = container.args[0].as_str();
    if !cfg!(feature = "kube") && matches!(sub, "sync" | "status") {
        eprintln!(
            "{}: skipped: `rekindle {sub}` needs the kube feature, off in this build",
            container.place
        );
        return;
    }
    // clap reads the words in order and stops at --help: each flag and value before it
    // is checked (an unknown flag or a bad value is a usage error), and nothing runs.
    // `run`'s program comes after `--`, so --help goes before it.
    let end = container
        .args
        .iter()
        .position(|a| a == "--")
        .unwrap_or(container.args.len());
    let mut args = container.args[..end].to_vec();
    args.push("--help".to_owned());
    args.extend_from_slice(&container.args[end..]);
    let (ok, help, stderr) = run_rekindle(&args, container);
    let line = container.args.join(" ");
    assert!(
        ok,
        "{}: `rekindle {line}` is refused:\n{stderr}",
        container.place
    );
    for flag in flags_of(&container.args) {
        assert!(
            help.contains(&format!("--{flag}")),
            "{}: `rekindle {line}` uses --{flag}, which `rekindle {sub} --help` does not list",
            container.place
        );
    }
}

/// configmap-reload's flags without a subcommand: with --help, the help of that mode.
fn check_configmap_reload(container: &RekindleContainer) {
    let mut args = container.args.clone();
    args.push("--help".to_owned());
    let (ok, help, stderr) = run_rekindle(&args, container);
    assert!(
        ok && help.contains("configmap-reload compatible mode"),
        "{}: `rekindle {}` is not taken as configmap-reload's command line:\n{stderr}{help}",
        container.place,
        container.args.join(" ")
    );
}

#[test]
fn every_manifest_is_a_namespace_free_kubernetes_object() {
    let mut seen = 0;
    for file in manifest_files() {
        for doc in documents(&file) {
            for field in ["/apiVersion", "/kind", "/metadata/name"] {
                assert!(
                    doc.pointer(field).and_then(Value::as_str).is_some(),
                    "{}: a document without {field}",
                    shown(&file)
                );
            }
            // A recipe is applied into the reader's namespace (`kubectl apply -n`).
            assert!(
                doc.pointer("/metadata/namespace").is_none(),
                "{}: {} {} names a namespace",
                shown(&file),
                doc["kind"],
                doc["metadata"]["name"]
            );
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} documents in the recipes");
}

#[test]
fn every_rekindle_command_line_in_the_recipes_is_accepted() {
    let containers = rekindle_containers();
    let mut native = 0;
    for container in &containers {
        for (name, _) in &container.env {
            assert!(
                KNOWN_ENV.contains(&name.as_str()),
                "{}: rekindle does not read {name} (it reads {KNOWN_ENV:?})",
                container.place
            );
        }
        match container.args.first() {
            // config-reloader-sidecar's mode: the next test runs it.
            None => {}
            Some(first) if first.starts_with('-') => check_configmap_reload(container),
            Some(_) => {
                check_subcommand(container);
                native += 1;
            }
        }
    }
    // The walk itself: nginx, prometheus-webhook, run-entrypoint and sync's two.
    assert!(
        native >= 5,
        "only {native} rekindle command lines found in the recipes: {containers:#?}"
    );
}

#[test]
fn config_reloader_sidecar_mode_signals_the_process_its_environment_names() {
    let mut checked = 0;
    for container in rekindle_containers().iter().filter(|c| c.args.is_empty()) {
        let place = &container.place;
        let config_dir = container.env_value("CONFIG_DIR").unwrap_or_else(|| {
            panic!("{place}: rekindle without arguments needs CONFIG_DIR (config-reloader-sidecar's mode)")
        });
        let process = container.env_value("PROCESS_NAME").unwrap_or_else(|| {
            panic!("{place}: config-reloader-sidecar's mode needs PROCESS_NAME")
        });
        let signal = container.env_value("RELOAD_SIGNAL").unwrap_or("SIGHUP");
        let expected = signal.trim_start_matches("SIG");
        assert!(
            ["HUP", "USR1", "USR2"].contains(&expected),
            "{place}: RELOAD_SIGNAL={signal}: this test counts HUP, USR1 and USR2"
        );

        // Each directory of CONFIG_DIR becomes a plain directory here; the rest of the
        // environment is the container's own.
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = config_dir
            .split(',')
            .filter(|d| !d.trim().is_empty())
            .enumerate()
            .map(|(i, _)| {
                let dir = tmp.path().join(format!("config-{i}"));
                fs::create_dir(&dir).unwrap();
                fs::write(dir.join("settings"), "1").unwrap();
                dir
            })
            .collect();
        assert!(!dirs.is_empty(), "{place}: CONFIG_DIR names no directory");
        let counter = SignalCounter::start(process, tmp.path());
        let mut command = Rekindle::command();
        command.env_clear().envs(container.literal_env()).env(
            "CONFIG_DIR",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        let rekindle = Rekindle::spawn(command, tmp.path().join("rekindle.log"));
        rekindle.wait_log("watching", dirs.len());

        fs::write(dirs[0].join("settings"), "2").unwrap();
        wait_for(&format!("{place}: {signal} to {process}"), || {
            counter.count(expected) == 1
        });
        rekindle.wait_log("config change applied", 1);
        assert_eq!(counter.count(expected), 1, "{place}: one signal per change");
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no recipe runs rekindle in config-reloader-sidecar's mode"
    );
}

#[test]
fn every_recipe_has_a_checked_readme_that_shows_how_to_apply_it() {
    let checked = markdown_files();
    let index = fs::read_to_string(recipes_dir().join("README.md")).unwrap();
    for dir in recipes() {
        let name = dir.file_name().unwrap().to_str().unwrap();
        let readme = dir.join("README.md");
        assert!(readme.is_file(), "{}: no README.md", shown(&dir));
        assert!(
            checked.contains(&readme),
            "{}: not among the files whose rekindle commands tests/docs.rs checks",
            shown(&readme)
        );
        let apply = format!("kubectl apply -f examples/recipes/{name}/");
        assert!(
            fs::read_to_string(&readme).unwrap().contains(&apply),
            "{}: does not show `{apply}`",
            shown(&readme)
        );
        assert!(
            index.contains(&format!("]({name})")),
            "examples/recipes/README.md does not link {name}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the control plane: scripts/provision-k8s.sh"]
async fn every_recipe_manifest_is_accepted_by_the_api_server() {
    let plane = ControlPlane::start()
        .await
        .expect("the control plane (scripts/provision-k8s.sh)");
    let client = plane.client();
    let namespace = "recipes";
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    create_document(&client, &ns, "", false)
        .await
        .expect("the namespace");
    let mut accepted = 0;
    for file in manifest_files() {
        for doc in documents(&file) {
            if let Err(error) = create_document(&client, &doc, namespace, true).await {
                panic!(
                    "{}: {} {} rejected: {error}",
                    shown(&file),
                    doc["kind"],
                    doc["metadata"]["name"]
                );
            }
            accepted += 1;
        }
    }
    assert!(accepted >= 20, "only {accepted} documents in the recipes");
}
