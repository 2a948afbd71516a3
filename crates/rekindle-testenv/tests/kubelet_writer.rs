//! The kubelet writer really produces the kubelet's volume layout.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rekindle_testenv::kubelet_writer::Error;
use rekindle_testenv::{FileProjection, KubeletWriter};

fn writer() -> KubeletWriter {
    KubeletWriter::locate().expect("kubelet-writer is provisioned")
}

fn payload(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.as_bytes().to_vec()))
        .collect()
}

fn link(path: &Path) -> PathBuf {
    std::fs::read_link(path).unwrap_or_else(|err| panic!("{} is a symlink: {err}", path.display()))
}

/// The permission bits of the file `path` leads to.
fn mode(path: &Path) -> u32 {
    let meta = std::fs::metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    meta.permissions().mode() & 0o777
}

#[test]
#[ignore = "needs scripts/provision-k8s.sh"]
fn writes_data_link_to_a_timestamp_dir_and_user_visible_links() {
    let volume = tempfile::tempdir().expect("temp dir");
    let dir = volume.path();
    writer()
        .write(
            dir,
            &payload(&[("app.conf", "a=1\n"), ("dir/file", "nested")]),
        )
        .expect("write");

    // ..data -> ..<timestamp>, a real directory beside it.
    let target = link(&dir.join("..data"));
    let name = target.to_str().expect("UTF-8 target");
    assert!(
        name.starts_with("..") && name != "..data",
        "..data -> {name}"
    );
    assert!(dir.join(&target).is_dir());

    // User-visible entries are symlinks through ..data; a nested key is
    // reached through its top-level directory.
    assert_eq!(link(&dir.join("app.conf")), Path::new("..data/app.conf"));
    assert_eq!(link(&dir.join("dir")), Path::new("..data/dir"));
    assert_eq!(
        std::fs::read_to_string(dir.join("app.conf")).expect("read"),
        "a=1\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("dir/file")).expect("read"),
        "nested"
    );
    assert_eq!(mode(&dir.join("app.conf")), 0o644);

    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .collect();
    names.sort();
    assert_eq!(names, [name, "..data", "app.conf", "dir"]);
}

#[test]
#[ignore = "needs scripts/provision-k8s.sh"]
fn unchanged_content_skips_the_swap_and_a_change_swaps() {
    let volume = tempfile::tempdir().expect("temp dir");
    let dir = volume.path();
    let writer = writer();
    let first = payload(&[("a", "1"), ("b/c", "2")]);
    writer.write(dir, &first).expect("first write");
    let before = link(&dir.join("..data"));

    writer.write(dir, &first).expect("same write");
    assert_eq!(
        link(&dir.join("..data")),
        before,
        "no swap for unchanged content"
    );

    writer
        .write(dir, &payload(&[("a", "1"), ("b/c", "3")]))
        .expect("changed write");
    let after = link(&dir.join("..data"));
    assert_ne!(after, before, "a change swaps ..data");
    assert!(
        !dir.join(&before).exists(),
        "the old timestamp dir is removed"
    );
    assert_eq!(std::fs::read_to_string(dir.join("b/c")).expect("read"), "3");
}

#[test]
#[ignore = "needs scripts/provision-k8s.sh"]
fn removed_keys_disappear_and_modes_apply() {
    let volume = tempfile::tempdir().expect("temp dir");
    let dir = volume.path();
    let writer = writer();
    writer
        .write(dir, &payload(&[("keep", "k"), ("drop", "d")]))
        .expect("write");

    let files = BTreeMap::from([(
        "keep".to_owned(),
        FileProjection {
            data: b"k".to_vec(),
            mode: 0o600,
        },
    )]);
    writer
        .write_with_modes(dir, &files)
        .expect("write with modes");
    assert!(
        std::fs::symlink_metadata(dir.join("drop")).is_err(),
        "drop is gone"
    );
    assert_eq!(mode(&dir.join("keep")), 0o600);
}

#[test]
#[ignore = "needs scripts/provision-k8s.sh"]
fn a_key_escaping_the_volume_is_refused() {
    let volume = tempfile::tempdir().expect("temp dir");
    let err = writer()
        .write(volume.path(), &payload(&[("../escape", "x")]))
        .expect_err("AtomicWriter validates paths");
    match err {
        Error::Failed { stderr, .. } => assert!(stderr.contains(".."), "{stderr}"),
        other => panic!("expected the writer to refuse, got {other}"),
    }
}
