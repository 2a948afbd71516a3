//! Volumes updated the way the kubelet updates ConfigMap/Secret volumes.
//!
//! Tests write through the kubelet's own AtomicWriter (`rekindle_testenv`'s
//! `kubelet-writer`, built by `scripts/provision-k8s.sh`); tests that use it are
//! `#[ignore]`d for a plain `cargo test` and run by `scripts/test`. The step-by-step
//! emulation below is for the latency bench only, which must timestamp the instant of
//! the `..data` rename, inside the swap.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rekindle_testenv::kubelet_writer::KubeletWriter;

#[derive(Debug)]
pub struct Volume {
    pub dir: PathBuf,
    writer: KubeletWriter,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Volume {
    /// A fresh temporary directory holding a volume already written with `files`.
    pub fn in_tempdir(files: &[(&str, &str)]) -> (tempfile::TempDir, Volume) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let volume = Volume::new(tmp.path());
        volume.write(files);
        (tmp, volume)
    }

    /// A volume under `parent`, written by the kubelet's own writer.
    pub fn new(parent: &Path) -> Volume {
        let writer = KubeletWriter::locate()
            .expect("kubelet-writer not provisioned: run scripts/provision-k8s.sh");
        Volume {
            dir: parent.join("volume"),
            writer,
        }
    }

    pub fn write(&self, files: &[(&str, &str)]) {
        let payload: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
        // The kubelet creates the volume directory before its first write.
        fs::create_dir_all(&self.dir).expect("volume dir");
        self.writer
            .write(&self.dir, &payload)
            .expect("kubelet-writer");
    }
}

/// The AtomicWriter's swap, step by step; returns the instant of the `..data` rename.
pub fn emulate(dir: &Path, payload: &BTreeMap<String, Vec<u8>>) -> Instant {
    fs::create_dir_all(dir).expect("volume dir");
    let old = fs::read_link(dir.join("..data")).ok();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let stamp = format!("..2026_01_01_00_00_00.{}{seq}", std::process::id());
    let new = dir.join(&stamp);
    fs::create_dir(&new).expect("timestamped dir");
    for (key, value) in payload {
        let path = new.join(key);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("nested dir");
        }
        fs::write(path, value).expect("write file");
    }
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    symlink(&stamp, &tmp).expect("..data_tmp");
    let renamed = Instant::now();
    fs::rename(&tmp, dir.join("..data")).expect("rename over ..data");
    for key in payload.keys() {
        let top = key.split('/').next().unwrap_or(key);
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), &link).expect("user-visible link");
        }
    }
    // Remove links of keys that are gone, then the old directory.
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..")
                && !payload.keys().any(|k| k.split('/').next() == Some(&name))
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    if let Some(old) = old {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    renamed
}
