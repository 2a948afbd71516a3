//! A step-by-step imitation of the kubelet's AtomicWriter, for faults the real writer
//! cannot be made to produce (a swap that publishes identical content, a symlink that
//! escapes the volume).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Publishes `payload` with the kubelet's sequence of steps, even when the content is
/// unchanged (which the real writer would skip).
pub fn swap(dir: &Path, payload: &BTreeMap<String, Vec<u8>>) {
    fs::create_dir_all(dir).unwrap();
    let old_target = fs::read_link(dir.join("..data")).ok();
    let name = format!(
        "..2026_11_22_00_00_00.{}",
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let ts_dir = dir.join(&name);
    for (key, value) in payload {
        let path = ts_dir.join(key);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, value).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    symlink(&name, &tmp).unwrap();
    fs::rename(&tmp, dir.join("..data")).unwrap();
    let wanted: BTreeMap<&str, ()> = payload
        .keys()
        .map(|k| (k.split('/').next().unwrap(), ()))
        .collect();
    for top in wanted.keys() {
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            symlink(PathBuf::from("..data").join(top), link).unwrap();
        }
    }
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.starts_with("..") && !wanted.contains_key(name.as_str()) {
            fs::remove_file(dir.join(name)).unwrap();
        }
    }
    if let Some(old) = old_target {
        fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

pub struct Emulated;

impl super::Volume for Emulated {
    fn publish(&self, dir: &Path, payload: &BTreeMap<String, Vec<u8>>) {
        swap(dir, payload);
    }
}
