//! Where the provisioned Kubernetes binaries live.
//!
//! `scripts/provision-k8s.sh` builds them once and caches them outside the
//! checkout, so a fresh clone or `cargo clean` does not cost another build.

use std::path::{Path, PathBuf};

/// The Kubernetes release the binaries are built from.
pub const K8S_VERSION: &str = "1.20.2";

/// Environment variable naming a directory to use instead of [`bin_dir`]'s default.
pub const BIN_DIR_ENV: &str = "REKINDLE_K8S_BIN";

/// A provisioned binary that is not where it should be.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} not found at {}; run scripts/provision-k8s.sh to build the test binaries \
     (or point {BIN_DIR_ENV} at a directory holding them)",
    path.display()
)]
pub struct MissingBinary {
    /// The binary's file name.
    pub name: String,
    /// Where it was looked for.
    pub path: PathBuf,
}

/// rekindle's cache directory: `~/.cache/rekindle`.
pub fn cache_dir() -> PathBuf {
    // The provisioning script uses $HOME too; keep the two in step.
    let home = std::env::home_dir().unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("rekindle")
}

/// The directory holding the binaries: `$REKINDLE_K8S_BIN` if set, else
/// `~/.cache/rekindle/k8s-1.20.2`.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => cache_dir().join(format!("k8s-{K8S_VERSION}")),
    }
}

/// The path of the provisioned binary `name`, if it is there.
pub fn locate(name: &str) -> Result<PathBuf, MissingBinary> {
    locate_in(&bin_dir(), name)
}

fn locate_in(dir: &Path, name: &str) -> Result<PathBuf, MissingBinary> {
    let path = dir.join(name);
    // `metadata` follows symlinks: the script links `etcd` to the system's.
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() && meta.len() > 0 => Ok(path),
        _ => Err(MissingBinary {
            name: name.to_owned(),
            path,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_says_how_to_provision() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = locate_in(dir.path(), "kube-apiserver").expect_err("nothing is there");
        let message = err.to_string();
        assert!(message.contains("scripts/provision-k8s.sh"), "{message}");
        assert!(message.contains("kube-apiserver"), "{message}");
    }

    #[test]
    fn empty_file_is_not_a_binary() {
        // A failed `make` leaves empty files behind; they must not count.
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("etcd"), b"").expect("write");
        assert!(locate_in(dir.path(), "etcd").is_err());
        std::fs::write(dir.path().join("etcd"), b"#!").expect("write");
        assert!(locate_in(dir.path(), "etcd").is_ok());
    }
}
