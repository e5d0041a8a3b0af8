//! File metadata cairn records (mode, owner, times, change-detection keys) and restores.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Sockets, FIFOs, devices: not backed up.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub size: u64,
}

impl FileMeta {
    pub fn from_metadata(m: &std::fs::Metadata) -> Self {
        let ft = m.file_type();
        let kind = if ft.is_file() {
            EntryKind::File
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        FileMeta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
            inode: m.ino(),
            size: if kind == EntryKind::File { m.len() } else { 0 },
        }
    }

    /// The later of mtime and ctime, as a `SystemTime`.
    pub fn last_change(&self) -> std::time::SystemTime {
        let ns = self.mtime_ns.max(self.ctime_ns).max(0) as u64;
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns)
    }
}

/// `lstat` of `path`.
pub fn stat(path: &Path) -> io::Result<FileMeta> {
    std::fs::symlink_metadata(path).map(|m| FileMeta::from_metadata(&m))
}

/// Whether this process runs as root (and so may restore owners).
pub fn is_root() -> bool {
    // /proc/self is owned by the process's effective uid.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}
