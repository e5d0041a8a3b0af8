//! Reading file data for chunking: memory maps for quiet files, positional reads for live ones.
//!
//! Data directories are read while their service writes them. A memory map of a file that
//! another process truncates raises SIGBUS when the vanished pages are touched, so only files
//! that look quiet (not modified for [`LIVE_WINDOW_SECS`]) are mapped, window by window, and only up to the size
//! seen at open. Files modified recently are read with `pread` into a reusable buffer instead
//! (copy-on-read): a file that shrinks just yields a short read, never a fault.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime};

use memmap2::{Mmap, MmapOptions};

/// Files whose mtime or ctime is younger than this are treated as being written.
pub const LIVE_WINDOW_SECS: u64 = 60;

/// Bounds of the window a file is read in (mapped or copied): the caller picks a size in this
/// range, several times its largest chunk (see `ChunkerParams::window_bytes`). At most two
/// windows per file are in memory at a time (one chunked while the other is compressed), so
/// this bounds what each file being read costs, which matters with many files in flight.
pub const MIN_WINDOW_BYTES: usize = 1 << 20;
pub const MAX_WINDOW_BYTES: usize = 4 << 20;

/// How far ahead of the reader the kernel is asked to read a large file (into the page cache,
/// not this process's memory). A window or two ahead left a cold 512 MiB file read at ~300 MB/s
/// on the reference VM; the disk does ~590 MB/s sequentially.
const READ_AHEAD_BYTES: u64 = 16 << 20;

/// Map offsets must be page-aligned; this covers every page size Linux uses by default.
const MAP_ALIGN_BYTES: u64 = 64 << 10;

/// How file data is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadStrategy {
    /// Map quiet files, copy live ones (the default).
    #[default]
    Auto,
    /// Always copy with positional reads.
    Copy,
}

/// A file opened for chunking, with the length it had when opened.
pub struct FileData {
    file: File,
    len: u64,
    /// Whether the file is read through memory maps.
    mapped: bool,
    /// A buffer of a window handed back with [`FileData::recycle`], for the next copied read.
    spare: Option<Vec<u8>>,
    /// Bytes read or mapped at once.
    window: u64,
    /// End of the range already handed to the kernel for background reading.
    advised_until: u64,
}

/// Bytes of a file from some offset on, owned, so that a file can have two windows at once:
/// the one being chunked and the one being hashed and compressed.
pub struct Window {
    bytes: WindowBytes,
    /// Where the requested offset lies in `bytes` (maps start at an aligned offset before it).
    skip: usize,
}

enum WindowBytes {
    Mapped(Mmap),
    Copied(Vec<u8>),
}

impl std::ops::Deref for Window {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.bytes {
            WindowBytes::Mapped(m) => &m[self.skip..],
            WindowBytes::Copied(v) => &v[self.skip..],
        }
    }
}

impl FileData {
    /// Opens `file` whose length at open was `len`; `modified` is the newer of mtime and ctime;
    /// `window` bytes (a multiple of 64 KiB within [`MIN_WINDOW_BYTES`, `MAX_WINDOW_BYTES`])
    /// are read at a time.
    pub fn new(file: File, len: u64, modified: SystemTime, strategy: ReadStrategy, window: usize) -> io::Result<Self> {
        assert!((MIN_WINDOW_BYTES..=MAX_WINDOW_BYTES).contains(&window) && window as u64 % MAP_ALIGN_BYTES == 0);
        let quiet = SystemTime::now()
            .duration_since(modified)
            .map(|age| age >= Duration::from_secs(LIVE_WINDOW_SECS))
            .unwrap_or(false);
        // A file that fits in one window is read with one `pread`: mapping and unmapping it
        // would cost more (page tables, and a TLB shootdown across threads at every unmap:
        // ~8% of the CPU time of a first snapshot of many small files).
        let mapped = strategy == ReadStrategy::Auto && quiet && len > window as u64;
        if len > window as u64 {
            // Sequential access: the kernel's own readahead doubles its window.
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
        }
        Ok(FileData { file, len, mapped, spare: None, window: window as u64, advised_until: 0 })
    }

    /// Length of the file when it was opened; reads never go past it.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// Bytes read or mapped at once.
    pub fn window_len(&self) -> u64 {
        self.window
    }

    /// The bytes from `pos` on: for a mapped file, to the end of the window-sized map that
    /// starts at or before `pos` (at least a window minus 64 KiB unless the file ends first),
    /// else up to a window. An empty window before `len()` means the file shrank while being
    /// read. Hand it back with [`FileData::recycle`] when done, so its buffer is reused.
    pub fn window(&mut self, pos: u64) -> io::Result<Window> {
        if pos >= self.len {
            return Ok(Window { bytes: WindowBytes::Copied(Vec::new()), skip: 0 });
        }
        self.read_ahead(pos);
        if self.mapped {
            let start = pos - pos % MAP_ALIGN_BYTES;
            let end = (start + self.window).min(self.len);
            let len = usize::try_from(end - start).expect("a window is at most MAX_WINDOW_BYTES");
            let map = map_readonly(&self.file, start, len)?;
            return Ok(Window { bytes: WindowBytes::Mapped(map), skip: (pos - start) as usize });
        }
        let want = usize::try_from((self.len - pos).min(self.window)).expect("window is bounded by MAX_WINDOW_BYTES");
        let mut buf = self.spare.take().unwrap_or_default();
        buf.resize(want, 0);
        let filled = read_fully(&self.file, &mut buf, pos)?;
        buf.truncate(filled);
        Ok(Window { bytes: WindowBytes::Copied(buf), skip: 0 })
    }

    /// Takes back a window's buffer for the next read (a map is just unmapped).
    pub fn recycle(&mut self, window: Window) {
        if let WindowBytes::Copied(buf) = window.bytes {
            self.spare = Some(buf);
        }
    }
}

impl FileData {
    /// Asks the kernel to read the next [`READ_AHEAD_BYTES`] from `pos` in the background, so
    /// that disk reads overlap with chunking and compressing.
    fn read_ahead(&mut self, pos: u64) {
        let window = self.window;
        if self.len <= window {
            return; // read at once; the hint would cost a system call and gain nothing
        }
        // Keep READ_AHEAD_BYTES requested ahead of the reader, topped up every half of it.
        if self.advised_until >= (pos + READ_AHEAD_BYTES / 2).min(self.len) {
            return;
        }
        let until = (pos + READ_AHEAD_BYTES).min(self.len);
        let from = pos.max(self.advised_until);
        if let Some(len) = std::num::NonZeroU64::new(until - from) {
            // Only a hint: if the kernel declines, reads are just not overlapped.
            let _ = rustix::fs::fadvise(&self.file, from, Some(len), rustix::fs::Advice::WillNeed);
        }
        self.advised_until = until;
    }
}

/// Reads into `buf` from `pos` until it is full or the file ends; returns the bytes read.
fn read_fully(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], pos + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Maps `len` bytes of `file` from `offset` (page-aligned) read-only.
#[allow(unsafe_code)]
fn map_readonly(file: &File, offset: u64, len: usize) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and never outlives `FileData`, which owns the file. Another
    // process may still modify the file: changed bytes are read as they are at access time
    // (we store what we read, and the chunk ids describe exactly those bytes), and a
    // truncation into the mapped window would fault on access. We map only files that have been quiet for
    // LIVE_WINDOW_SECS; files being written are read with `pread` instead, where a
    // truncation is a short read.
    unsafe { MmapOptions::new().offset(offset).len(len).map(file) }
}

/// A private temporary directory `cairn-<purpose>-<pid>-<random>` in the system temp dir, removed
/// when dropped. Directories of the same purpose left by processes that no longer run (killed
/// with `kill -9`, say) are removed first, so crashes do not accumulate them.
pub fn private_temp_dir(purpose: &str) -> io::Result<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    let prefix = format!("cairn-{purpose}-");
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&prefix) else { continue };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    tempfile::Builder::new().prefix(&format!("{prefix}{}-", std::process::id())).tempdir_in(tmp)
}

/// Creates `dir` and any missing parents with mode 0700 (whatever the umask: the mode is
/// applied explicitly to each directory this call creates). Existing directories keep theirs.
pub fn create_private_dir_all(dir: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes `dir` 0700 and everything under it private (files 0600, directories 0700), for
/// directories whose files a library creates with the umask's modes (RocksDB). Best effort:
/// entries that vanish meanwhile or belong to someone else are left alone.
pub fn make_tree_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                pending.push(e.path());
            } else if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                let mode = meta.permissions().mode() & 0o700;
                let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode | 0o600));
            }
        }
    }
}
