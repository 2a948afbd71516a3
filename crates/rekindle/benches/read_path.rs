//! The reader's cost against the usual `RwLock<Arc<T>>`, measured in the same run, with
//! one thread and with a second thread reading the same config at the same time (where a
//! lock's shared reader count bounces between cores).
//!
//! * `rekindle_reader`: `Reader::load`, one reader per thread (the hot-path API)
//! * `rekindle_load`: `Reloadable::load`, a short-lived guard
//! * `rekindle_current_arc`: `Reloadable::current`, an `Arc` to keep
//! * `rwlock_read`, `rwlock_clone_arc`: the baseline, borrowed and cloned

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use rekindle::Reloadable;

#[derive(Debug)]
struct Settings {
    max_connections: u32,
}

fn settings() -> Settings {
    Settings {
        max_connections: 100,
    }
}

/// Times `iters` reads on this thread while `contenders` other threads read in a loop.
/// `make` builds each thread's own read function (a reader is per thread).
fn timed<M, R>(iters: u64, contenders: usize, make: M) -> Duration
where
    M: Fn() -> R + Send + Clone + 'static,
    R: FnMut() -> u32,
{
    let stop = Arc::new(AtomicBool::new(false));
    let others: Vec<_> = (0..contenders)
        .map(|_| {
            let stop = stop.clone();
            let make = make.clone();
            thread::spawn(move || {
                let mut read = make();
                while !stop.load(Ordering::Relaxed) {
                    black_box(read());
                }
            })
        })
        .collect();
    let mut read = make();
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

/// Adds one benchmark: `make` builds a thread's read function, run by `timed`.
fn bench<M, R>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, contenders: usize, make: M)
where
    M: Fn() -> R + Send + Clone + 'static,
    R: FnMut() -> u32,
{
    group.bench_function(name, move |b| {
        let make = make.clone();
        b.iter_custom(move |iters| timed(iters, contenders, make.clone()))
    });
}

fn read_path(c: &mut Criterion) {
    let reloadable = Reloadable::builder_with(|_| Ok(settings())).build(settings());
    let rwlock = Arc::new(RwLock::new(Arc::new(settings())));

    for threads in [1usize, 2] {
        let contenders = threads - 1;
        let mut group = c.benchmark_group(format!("read_path/{threads}_threads"));
        let r = reloadable.clone();
        bench(&mut group, "rekindle_reader", contenders, move || {
            let mut reader = r.reader();
            move || reader.load().max_connections
        });
        let r = reloadable.clone();
        bench(&mut group, "rekindle_load", contenders, move || {
            let r = r.clone();
            move || r.load().max_connections
        });
        let r = reloadable.clone();
        bench(&mut group, "rekindle_current_arc", contenders, move || {
            let r = r.clone();
            move || r.current().max_connections
        });
        let l = rwlock.clone();
        bench(&mut group, "rwlock_read", contenders, move || {
            let l = l.clone();
            move || l.read().expect("not poisoned").max_connections
        });
        let l = rwlock.clone();
        bench(&mut group, "rwlock_clone_arc", contenders, move || {
            let l = l.clone();
            move || {
                let arc = l.read().expect("not poisoned").clone();
                arc.max_connections
            }
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
