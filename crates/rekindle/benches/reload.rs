//! The time to reload a 1,000-key ConfigMap: read the kubelet volume, hash it, decode it
//! into a typed map and swap it in.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rekindle::{Applied, Reloadable, Snapshot};

const KEYS: usize = 1_000;

/// A kubelet-style volume of `KEYS` keys of about 64 bytes each.
fn volume(root: &Path, flavour: &str) {
    let data = root.join("..2026_01_01_00_00_00.1");
    fs::create_dir_all(&data).expect("mkdir");
    for i in 0..KEYS {
        fs::write(
            data.join(format!("key-{i:04}")),
            format!("{flavour}-value-{i:04}-{}", "x".repeat(40)),
        )
        .expect("write");
        symlink(
            format!("..data/key-{i:04}"),
            root.join(format!("key-{i:04}")),
        )
        .expect("link");
    }
    symlink("..2026_01_01_00_00_00.1", root.join("..data")).expect("..data");
}

fn reload(c: &mut Criterion) {
    let dirs = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dirs.path().join("a"), dirs.path().join("b"));
    volume(&a, "a");
    volume(&b, "b");
    let config = Reloadable::<HashMap<String, String>>::builder().build(HashMap::new());
    let mut group = c.benchmark_group("reload_1000_keys");
    group.bench_function("read_only", |bench| {
        bench.iter(|| Snapshot::read(&a).expect("read"))
    });
    // Alternating two contents makes every iteration a real change.
    let mut flip = false;
    group.bench_function("read_decode_swap", |bench| {
        bench.iter(|| {
            flip = !flip;
            let snapshot = Snapshot::read(if flip { &a } else { &b }).expect("read");
            let applied = config.apply(&snapshot).expect("valid");
            assert!(matches!(applied, Applied::New(_)));
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = reload
}
criterion_main!(benches);
