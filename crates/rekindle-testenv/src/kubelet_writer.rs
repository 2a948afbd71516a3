//! Writing volume directories exactly as the kubelet does.
//!
//! The kubelet updates ConfigMap, Secret and projected volumes with its
//! `AtomicWriter`: the files go into a fresh `..<timestamp>` directory, a
//! `..data_tmp` symlink to it is renamed over `..data`, and every user-visible
//! path is a symlink through `..data`. When nothing changed it does nothing at
//! all. Rather than imitate that, [`KubeletWriter`] runs `kubelet-writer`, a
//! small Go program (`kubelet-writer/main.go` in this crate) built against the
//! kubelet's own code by `scripts/provision-k8s.sh`.
//!
//! This module needs neither kube nor tokio, so a crate that only tests
//! volumes can use `rekindle-testenv` with `default-features = false`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use base64::Engine as _;

use crate::binaries::{self, MissingBinary};

/// The file name of the writer binary in [`binaries::bin_dir`].
pub const BINARY: &str = "kubelet-writer";

/// The mode the kubelet gives files when the volume sets none (`defaultMode: 0644`).
pub const DEFAULT_MODE: u32 = 0o644;

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The writer has not been built.
    #[error(transparent)]
    Missing(#[from] MissingBinary),
    /// The writer could not be run or fed its payload.
    #[error("running {}: {source}", binary.display())]
    Run {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The payload could not be encoded for the writer.
    #[error("encoding the payload: {0}")]
    Encode(#[from] serde_json::Error),
    /// The kubelet's AtomicWriter refused or failed (bad path, I/O error...).
    #[error("kubelet-writer failed on {} ({status}): {stderr}", dir.display())]
    Failed {
        dir: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
}

/// One file of a payload: its content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

impl FileProjection {
    /// A file with the kubelet's default mode, 0644.
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        Self {
            data: data.into(),
            mode: DEFAULT_MODE,
        }
    }
}

/// Runs the kubelet's AtomicWriter on a directory.
#[derive(Debug, Clone)]
pub struct KubeletWriter {
    binary: PathBuf,
}

impl KubeletWriter {
    /// Finds the provisioned `kubelet-writer` (see [`binaries::bin_dir`]).
    pub fn locate() -> Result<Self, Error> {
        Ok(Self {
            binary: binaries::locate(BINARY)?,
        })
    }

    /// The binary this writer runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Makes `dir` hold exactly `payload` (key: path relative to `dir`, nested
    /// paths allowed; value: content), every file with mode 0644, as one
    /// atomic kubelet update. Keys absent from `payload` disappear.
    pub fn write(&self, dir: &Path, payload: &BTreeMap<String, Vec<u8>>) -> Result<(), Error> {
        let files = payload
            .iter()
            .map(|(key, data)| (key.as_str(), encode(data, DEFAULT_MODE)))
            .collect();
        self.run(dir, &files)
    }

    /// Like [`write`](Self::write), with each file's mode given.
    pub fn write_with_modes(
        &self,
        dir: &Path,
        payload: &BTreeMap<String, FileProjection>,
    ) -> Result<(), Error> {
        let files = payload
            .iter()
            .map(|(key, file)| (key.as_str(), encode(&file.data, file.mode)))
            .collect();
        self.run(dir, &files)
    }

    fn run(&self, dir: &Path, files: &BTreeMap<&str, serde_json::Value>) -> Result<(), Error> {
        let input = serde_json::to_vec(files)?;
        let run_error = |source| Error::Run {
            binary: self.binary.clone(),
            source,
        };
        let mut child = Command::new(&self.binary)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(run_error)?;
        // The writer reads all of stdin before it writes anything, so feeding
        // it first and collecting stderr afterwards cannot deadlock.
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&input).map_err(run_error)?;
        }
        let output = child.wait_with_output().map_err(run_error)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Failed {
                dir: dir.to_owned(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }
}

/// The writer's JSON for one file: Go decodes a base64 string into `[]byte`.
fn encode(data: &[u8], mode: u32) -> serde_json::Value {
    serde_json::json!({
        "data": base64::engine::general_purpose::STANDARD.encode(data),
        "mode": mode,
    })
}
