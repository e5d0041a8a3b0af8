//! The local filesystem as a source and target: reading metadata, applying it on restore.

mod meta;

pub use meta::{apply_metadata, is_root, stat, EntryKind, FileMeta};

/// This machine's host name, recorded in snapshots.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
