//! The two thread pools: many threads for work that waits on the disk, one per core for work
//! that computes.

use std::sync::OnceLock;

use rayon::ThreadPool;

use crate::error::{Error, Result};

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A pool with more threads than cores, for work that mostly waits on the disk: `lstat`,
/// directory reads, many small files, creating files and setting their metadata. With a cold
/// page cache each of those is a synchronous read, and two threads leave the disk idle most of
/// the time (measured on corpus (c) of `docs/performance.md`: an unchanged snapshot of 50 000
/// files in 40 000 directories took 6.1 s with 2 threads, 2.3 s with 8 and 1.7 s with 16,
/// for 8 more MiB of peak memory in a first snapshot than 8 threads). Its threads hand their
/// CPU-heavy parts (hashing, compression) to [`on_cores`], so that idle I/O threads do not
/// spin beside them. `CAIRN_IO_THREADS` overrides the size (a spinning disk may prefer fewer).
pub fn io_pool() -> Result<ThreadPool> {
    let threads = std::env::var("CAIRN_IO_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=256).contains(n))
        .unwrap_or((8 * cores()).clamp(16, 64));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("cairn-io-{i}"))
        .build()
        .map_err(|e| Error::Io { context: "cannot start worker threads".into(), source: std::io::Error::other(e) })
}

/// One thread per core, created on first use; `None` if the threads could not be started
/// (callers then compute on their own pool rather than fail).
fn cores_pool() -> Option<&'static ThreadPool> {
    static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new().num_threads(cores()).thread_name(|i| format!("cairn-cpu-{i}")).build().ok()
    })
    .as_ref()
}

/// Runs `f` on the pool of one thread per core, for CPU-bound parallel work (hashing,
/// compressing) started from threads of [`io_pool`]; the caller waits. Run on the 16-thread
/// I/O pool instead, hashing and compressing one large file spent 16% of the CPU time in idle
/// workers' `sched_yield` (perf, first snapshot of corpus (b) of `docs/performance.md`).
pub fn on_cores<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match cores_pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Runs `work` on the cores' pool while `meanwhile` runs on the calling thread, and returns
/// both results once both are done: a two-stage pipeline whose stages really run at once
/// (with `rayon::join`, the caller often ran both itself, one after the other).
pub fn overlap<A: Send, B>(work: impl FnOnce() -> A + Send, meanwhile: impl FnOnce() -> B) -> (A, B) {
    let Some(pool) = cores_pool() else {
        let a = work();
        return (a, meanwhile());
    };
    let mut a = None;
    let b = pool.in_place_scope(|scope| {
        scope.spawn(|_| a = Some(work()));
        meanwhile()
    });
    (a.expect("the scope ends after its spawned work"), b)
}
