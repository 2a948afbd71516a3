//! The reader's cost: `Reloadable::load`/`current` against the usual `RwLock<Arc<T>>`,
//! measured in the same run, with one thread and with a second thread reading the same
//! config at the same time (the case where a lock's shared counter bounces between cores).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rekindle::Reloadable;

#[derive(Debug)]
struct Settings {
    max_connections: u32,
    #[allow(dead_code)]
    features: HashMap<String, bool>,
}

fn settings() -> Settings {
    Settings {
        max_connections: 100,
        features: HashMap::from([("a".to_owned(), true)]),
    }
}

/// Times `iters` calls of `read` on this thread while `contenders` other threads call it
/// in a loop.
fn timed<F>(iters: u64, contenders: usize, read: F) -> Duration
where
    F: Fn() -> u32 + Send + Sync + Clone + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let others: Vec<_> = (0..contenders)
        .map(|_| {
            let stop = stop.clone();
            let read = read.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    black_box(read());
                }
            })
        })
        .collect();
    let start = Instant::now();
    for _ in 0..iters {
        black_box(read());
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for other in others {
        other.join().expect("contender thread");
    }
    elapsed
}

fn read_path(c: &mut Criterion) {
    let reloadable = Reloadable::builder_with(|_| Ok(settings())).build(settings());
    let rwlock = Arc::new(RwLock::new(Arc::new(settings())));

    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("read_path/{threads}_threads"));
        let r = reloadable.clone();
        group.bench_function("rekindle_load", |b| {
            b.iter_custom(|iters| {
                let r = r.clone();
                timed(iters, threads - 1, move || r.load().max_connections)
            })
        });
        let r = reloadable.clone();
        group.bench_function("rekindle_current_arc", |b| {
            b.iter_custom(|iters| {
                let r = r.clone();
                timed(iters, threads - 1, move || r.current().max_connections)
            })
        });
        let l = rwlock.clone();
        group.bench_function("rwlock_read", |b| {
            b.iter_custom(|iters| {
                let l = l.clone();
                timed(iters, threads - 1, move || {
                    l.read().expect("not poisoned").max_connections
                })
            })
        });
        let l = rwlock.clone();
        group.bench_function("rwlock_clone_arc", |b| {
            b.iter_custom(|iters| {
                let l = l.clone();
                timed(iters, threads - 1, move || {
                    let arc = l.read().expect("not poisoned").clone();
                    arc.max_connections
                })
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = read_path
}
criterion_main!(benches);
