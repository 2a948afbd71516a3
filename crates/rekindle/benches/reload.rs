//! The time to reload a 1,000-key ConfigMap: read the kubelet volume, hash it, decode it
//! into a typed map, validate it and swap it in; with, as the floor measured in the same
//! run, a plain `std::fs` read of the same 1,000 files without rekindle.
//!
//! `cargo bench -p rekindle --bench reload` (add `-- --test` to run each row once).

use std::collections::HashMap;
use std::fs;
use std::hint::black_box;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rekindle::{Applied, ReloadError, Reloadable, Snapshot, ValidationError};

const KEYS: usize = 1_000;

/// A kubelet-style volume of `KEYS` keys of about 64 bytes each; with `empty`, that key's
/// value is empty (a volume the validator must refuse).
fn volume(root: &Path, flavour: &str, empty: Option<usize>) {
    let data = root.join("..2026_01_01_00_00_00.1");
    fs::create_dir_all(&data).expect("mkdir");
    for i in 0..KEYS {
        let value = if empty == Some(i) {
            String::new()
        } else {
            format!("{flavour}-value-{i:04}-{}", "x".repeat(40))
        };
        fs::write(data.join(format!("key-{i:04}")), value).expect("write");
        symlink(
            format!("..data/key-{i:04}"),
            root.join(format!("key-{i:04}")),
        )
        .expect("link");
    }
    symlink("..2026_01_01_00_00_00.1", root.join("..data")).expect("..data");
}

/// The validator of the full-pipeline row: exactly `KEYS` keys, none of them empty.
fn validate(config: &HashMap<String, String>) -> Result<(), ValidationError> {
    if config.len() != KEYS {
        return Err(ValidationError::new(format!(
            "must have {KEYS} keys, has {}",
            config.len()
        )));
    }
    for (key, value) in config {
        if value.trim().is_empty() {
            return Err(ValidationError::for_key(key.clone(), "must not be empty"));
        }
    }
    Ok(())
}

/// The floor: what any reloader has to do at least, with nothing but `std::fs`: resolve
/// `..data`, list it and read every file. Returns the bytes read.
fn plain_read(root: &Path) -> usize {
    let data = root.join(fs::read_link(root.join("..data")).expect("..data"));
    let mut total = 0;
    for entry in fs::read_dir(&data).expect("read_dir") {
        let entry = entry.expect("entry");
        total += fs::read(entry.path()).expect("read").len();
    }
    total
}

fn reload(c: &mut Criterion) {
    let dirs = tempfile::tempdir().expect("tempdir");
    let (a, b, bad) = (
        dirs.path().join("a"),
        dirs.path().join("b"),
        dirs.path().join("bad"),
    );
    volume(&a, "a", None);
    volume(&b, "b", None);
    volume(&bad, "bad", Some(KEYS / 2));

    let validations = Arc::new(AtomicUsize::new(0));
    let counted = validations.clone();
    let config = Reloadable::<HashMap<String, String>>::builder()
        .validate(move |config| {
            counted.fetch_add(1, Ordering::Relaxed);
            validate(config)
        })
        .build(HashMap::new());

    // The validator is really in the pipeline: a volume with one empty value is refused
    // (outside the timed rows).
    let refused = config.apply(&Snapshot::read(&bad).expect("read"));
    let invalid = matches!(&refused, Err(error) if matches!(**error, ReloadError::Invalid { .. }));
    assert!(
        invalid,
        "the volume with an empty value was not refused: {refused:?}"
    );
    assert_eq!(plain_read(&a), plain_read(&b), "same sizes in both volumes");

    let mut group = c.benchmark_group("reload_1000_keys");
    group.bench_function("baseline_std_fs_read", |bench| {
        bench.iter(|| black_box(plain_read(&a)))
    });
    group.bench_function("read_digest", |bench| {
        bench.iter(|| Snapshot::read(&a).expect("read"))
    });
    // Alternating two contents makes every iteration a real change.
    let mut flip = false;
    let before = validations.load(Ordering::Relaxed);
    group.bench_function("read_digest_decode_validate_swap", |bench| {
        bench.iter(|| {
            flip = !flip;
            let snapshot = Snapshot::read(if flip { &a } else { &b }).expect("read");
            let applied = config.apply(&snapshot).expect("valid");
            assert!(matches!(applied, Applied::New(_)));
        })
    });
    group.finish();
    assert!(
        validations.load(Ordering::Relaxed) > before,
        "the validator never ran in the full-pipeline row"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = reload
}
criterion_main!(benches);
