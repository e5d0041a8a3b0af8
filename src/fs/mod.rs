//! The local filesystem as a source and target: reading metadata and applying it on restore,
//! by directory descriptor wherever an entry is named (see each module).

mod at;
mod meta;
mod owners;
mod sparse;
mod special;
mod xattr;

pub use at::{set_fd_meta, set_fd_owner, DirFd, Occupant, TEMP_PREFIX};
pub use meta::{is_root, stat, EntryKind, FileMeta};
pub use owners::OwnerNames;
pub use sparse::data_ranges;
pub use special::NodeKind;
pub use xattr::{
    list_fd as xattrs_fd, set_fd as set_xattr_fd, unsupported as xattrs_unsupported, user_xattrs_supported, Xattrs,
};

/// Raises this process's soft limit of open files to its hard limit: a restore holds the
/// directories along its path and those of up to three batches open.
pub fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// This machine's host name, recorded in snapshots.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A pool with more threads than cores, for work that mostly waits on the disk: `lstat`,
/// directory reads, many small files, creating files and setting their metadata. With a cold
/// page cache each of those is a synchronous read, and two threads leave the disk idle most of
/// the time (measured on corpus (c) of `docs/performance.md`: an unchanged snapshot of 50 000
/// files in 40 000 directories took 6.1 s with 2 threads, 2.3 s with 8 and 1.7 s with 16,
/// for 8 more MiB of peak memory in a first snapshot than 8 threads). CPU work run on it
/// (compression, during a snapshot) is shared between the cores by the OS.
/// `CAIRN_IO_THREADS` overrides the size (a spinning disk may prefer fewer).
pub fn io_pool() -> crate::error::Result<rayon::ThreadPool> {
    let threads = std::env::var("CAIRN_IO_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=256).contains(n))
        .unwrap_or((8 * cores()).clamp(16, 64));
    pool(threads, "cairn-io")
}

/// A pool of twice as many threads as cores, for work that alternates between reading from
/// the disk and decoding what it read (`repo check`'s two passes): while some threads wait for
/// a read, the others keep the cores busy. (Restore measured no better with it: its many small
/// files then cost more kernel time; `docs/performance.md`.)
pub fn decode_pool() -> crate::error::Result<rayon::ThreadPool> {
    pool(2 * cores(), "cairn-decode")
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn pool(threads: usize, name: &'static str) -> crate::error::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(move |i| format!("{name}-{i}")).build().map_err(
        |e| crate::error::Error::Io { context: "cannot start worker threads".into(), source: std::io::Error::other(e) },
    )
}
