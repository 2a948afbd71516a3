//! The documentation cannot drift: the operator's reference page holds its own
//! `--help`, every `rekindle-operator` command shown in the docs uses only flags it
//! has, and every manifest in the docs is accepted by the real API server (server-side
//! dry run).

mod support;

use std::process::Command;

use rekindle_testenv::docs::{
    ManifestError, check_help_blocks, commands_of, create_document, flags_of, manifests,
    markdown_files, repo_root,
};
use serde_json::Value;
use support::*;

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rekindle-operator"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .expect("run rekindle-operator --help");
    assert!(output.status.success());
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn the_reference_page_holds_the_operators_own_help() {
    let page = repo_root().join("docs/reference/rekindle-operator.md");
    let checked = check_help_blocks(&page, help);
    assert_eq!(checked, ["rekindle-operator"]);
}

#[test]
fn documented_operator_commands_use_only_real_flags() {
    let help = help(&[]);
    let mut seen = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("read");
        for command in commands_of("rekindle-operator", &text) {
            for flag in flags_of(&command) {
                assert!(
                    help.contains(&format!("--{flag}")),
                    "{}: `rekindle-operator {}` uses --{flag}, which --help does not list",
                    file.display(),
                    command.join(" ")
                );
            }
            seen += 1;
        }
    }
    assert!(seen >= 2, "only {seen} documented commands found");
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn every_manifest_in_the_docs_is_accepted_by_the_api_server() {
    let cluster = Cluster::start().await;
    let namespace = "docs";
    create_namespace(&cluster.client, namespace).await;
    let mut applied = 0;
    for (file, text) in manifests() {
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}\n{text}", file.display()));
        for doc in docs.into_iter().filter(|d| d.get("kind").is_some()) {
            let api_version = doc["apiVersion"].as_str().expect("apiVersion");
            // A kustomization.yaml is Kustomize's own file, never sent to a server.
            if api_version.starts_with("kustomize.config.k8s.io/") {
                continue;
            }
            let kind = doc["kind"].as_str().expect("kind");
            let name = doc["metadata"]["name"].as_str();
            match create_document(&cluster.client, &doc, namespace, true).await {
                Ok(()) => {}
                // A namespace a manifest names may not exist here: that is not the
                // manifest's fault.
                Err(ManifestError::Rejected(kube::Error::Api(status))) if status.code == 404 => {}
                // A kind this 1.20 server does not serve (a PodMonitor without its CRD)
                // is named, not silently skipped.
                Err(error) => panic!("{}: {kind} {name:?}: {error}", file.display()),
            }
            applied += 1;
        }
    }
    assert!(applied >= 1, "no manifest found in the docs");
}
