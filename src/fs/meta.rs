//! File metadata cairn records (mode, owner, times, change-detection keys) and restores.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    /// Anything else the kernel may report (not backed up).
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
    /// `st_nlink`: more than 1 for a file with hard links.
    pub nlink: u64,
    /// `st_dev`: with `inode`, identifies a hard-link group.
    pub dev: u64,
    /// `st_rdev`: the device a device node stands for.
    pub rdev: u64,
    /// Bytes allocated (`st_blocks * 512`): less than `size` only for a sparse file.
    pub allocated: u64,
}

impl FileMeta {
    pub fn from_metadata(m: &std::fs::Metadata) -> Self {
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_file() {
            EntryKind::File
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_socket() {
            EntryKind::Socket
        } else if ft.is_char_device() {
            EntryKind::CharDevice
        } else if ft.is_block_device() {
            EntryKind::BlockDevice
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
            nlink: m.nlink(),
            dev: m.dev(),
            rdev: m.rdev(),
            allocated: m.blocks().saturating_mul(512),
        }
    }

    /// The same from a `stat` taken through a directory descriptor.
    // The `Stat` field types differ between architectures: casts that are no-ops on x86_64
    // are conversions elsewhere.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_stat(st: &rustix::fs::Stat) -> Self {
        use rustix::fs::FileType;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            FileType::Fifo => EntryKind::Fifo,
            FileType::Socket => EntryKind::Socket,
            FileType::CharacterDevice => EntryKind::CharDevice,
            FileType::BlockDevice => EntryKind::BlockDevice,
            FileType::Unknown => EntryKind::Other,
        };
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        FileMeta {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
            inode: st.st_ino,
            size: if kind == EntryKind::File { st.st_size.max(0) as u64 } else { 0 },
            nlink: st.st_nlink as u64,
            dev: st.st_dev as u64,
            rdev: st.st_rdev as u64,
            allocated: (st.st_blocks as u64).saturating_mul(512),
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
