//! The local filesystem backend: one file per object under the repository directory.
//!
//! A put writes a temporary file (`.tmp-*`) in the target directory, fsyncs it, renames it into
//! place (or hard-links it, for put-if-absent, which fails atomically when the name exists) and
//! fsyncs the directory, so an object is either wholly there and durable or absent. A crash can
//! leave temporary files behind; listings skip them and `repo check` reports them.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::backend::{Backend, ObjectInfo, PutMode, PutOutcome};
use crate::error::{Error, Result};

pub const TEMP_PREFIX: &str = ".tmp-";
/// A file of [`RESERVE_BYTES`] at the repository's root that only `forget` and `prune` give
/// up (and set aside again when they finish): on a disk filled to the last byte, taking their
/// lock and opening the index need a little space before deleting anything frees more.
pub const RESERVE_FILE: &str = "reserve";
/// 4 MiB: a lock record, the index's new log and manifest, and the first deletions' index
/// updates, with room to spare; small beside any repository worth pruning.
pub const RESERVE_BYTES: u64 = 4 << 20;

/// Temporary files younger than this are never removed as leftovers.
pub const TEMP_MIN_AGE_SECS: u64 = 3600;

/// Objects kept open for range reads. A restore or a check reads tens of thousands of small
/// blobs (trees) from a few packs; opening the file for each read cost an `openat` and a
/// `close` per blob (~90 000 of each restoring corpus (c) of `docs/performance.md`).
const OPEN_FOR_RANGES: usize = 32;

pub struct LocalBackend {
    root: PathBuf,
    /// Objects recently read by range, least recently used first. Range reads are for packs,
    /// which never change once written, so a kept handle reads what the name stands for (a
    /// pack another process deletes meanwhile still reads as what it was); this process's own
    /// puts and deletes drop the handle all the same.
    open_for_ranges: Mutex<Vec<(String, Arc<File>)>>,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into(), open_for_ranges: Mutex::new(Vec::new()) }
    }

    /// The file behind `key`, opened for range reads, or kept open from an earlier one.
    fn open_for_ranges(&self, key: &str, path: &Path) -> io::Result<Arc<File>> {
        let lock = || self.open_for_ranges.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut open = lock();
            if let Some(i) = open.iter().position(|(k, _)| k == key) {
                let entry = open.remove(i);
                let file = Arc::clone(&entry.1);
                open.push(entry);
                return Ok(file);
            }
        }
        let file = Arc::new(File::open(path)?);
        let mut open = lock();
        if open.len() >= OPEN_FOR_RANGES {
            open.remove(0);
        }
        open.push((key.to_string(), Arc::clone(&file)));
        Ok(file)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let valid = !key.is_empty()
            && key.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with(TEMP_PREFIX));
        if !valid {
            return Err(Error::Internal(format!("invalid object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn forget_open(&self, key: &str) {
        self.open_for_ranges.lock().unwrap_or_else(|p| p.into_inner()).retain(|(k, _)| k != key);
    }

    fn write_temp(&self, dir: &Path, data: &[u8]) -> Result<tempfile::NamedTempFile> {
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| Error::io("cannot create a file in", dir, e))?;
        tmp.write_all(data).map_err(|e| Error::io("cannot write", tmp.path(), e))?;
        tmp.as_file().sync_all().map_err(|e| Error::io("cannot sync", tmp.path(), e))?;
        Ok(tmp)
    }
}

/// Creates `dir` (and parents, all 0700 like the objects are 0600) and makes the new entries
/// durable.
fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    crate::io::create_private_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("cannot sync directory", dir, e))
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<PutOutcome> {
        let path = self.path(key)?;
        self.forget_open(key);
        let dir = path.parent().expect("object paths have a parent").to_path_buf();
        ensure_dir(&dir)?;
        let tmp = self.write_temp(&dir, data)?;
        let outcome = match mode {
            PutMode::Overwrite => {
                tmp.persist(&path).map_err(|e| Error::io("cannot rename into", &path, e.error))?;
                PutOutcome::Written
            }
            PutMode::IfAbsent => match tmp.persist_noclobber(&path) {
                Ok(_) => PutOutcome::Written,
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => PutOutcome::AlreadyExists,
                Err(e) => return Err(Error::io("cannot link into", &path, e.error)),
            },
        };
        sync_dir(&dir)?;
        Ok(outcome)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format!("object {key}")),
            _ => Error::io("cannot read", &path, e),
        })
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.get_range_into(key, offset, len, &mut buf)?;
        Ok(buf)
    }

    fn get_range_into(&self, key: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        let path = self.path(key)?;
        let file = self.open_for_ranges(key, &path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format!("object {key}")),
            _ => Error::io("cannot open", &path, e),
        })?;
        let len = usize::try_from(len).map_err(|_| Error::corrupt(key, "range too large"))?;
        // Bytes already in the buffer are overwritten by the read: only growth needs zeroing.
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf.truncate(len);
        file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                Error::corrupt(key, format!("shorter than {} bytes (truncated?)", offset + len as u64))
            }
            _ => Error::io("cannot read", &path, e),
        })
    }

    fn prefetch(&self, key: &str, offset: u64, len: u64) {
        let (Ok(path), Some(len)) = (self.path(key), std::num::NonZeroU64::new(len)) else { return };
        if let Ok(file) = self.open_for_ranges(key, &path) {
            let _ = rustix::fs::fadvise(&*file, offset, Some(len), rustix::fs::Advice::WillNeed);
        }
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot stat", &path, e)),
        }
    }

    fn list(&self, prefix: &str, f: &mut dyn FnMut(ObjectInfo) -> Result<()>) -> Result<()> {
        let dir_key = prefix.trim_end_matches('/');
        let dir = self.root.join(dir_key);
        walk_files(&dir, dir_key, &mut |key, path, size| {
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX)) {
                return Ok(());
            }
            f(ObjectInfo { key, size })
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        self.forget_open(key);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().expect("object paths have a parent")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot delete", &path, e)),
        }
    }

    fn delete_temporary(&self, key: &str) -> Result<bool> {
        let is_temp = key.rsplit('/').next().is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if !is_temp || key.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Internal(format!("{key:?} is not a temporary file")));
        }
        let path = self.root.join(key);
        // A young temporary file may be a write in progress by a process that is only
        // looking for a lock; only old ones are leftovers of crashes.
        let young = fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < std::time::Duration::from_secs(TEMP_MIN_AGE_SECS));
        if young {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(Error::io("cannot delete", &path, e)),
        }
    }

    fn release_reserve(&self) -> Result<bool> {
        let path = self.root.join(RESERVE_FILE);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("cannot remove", &path, e)),
        }
    }

    fn restore_reserve(&self) -> Result<()> {
        let path = self.root.join(RESERVE_FILE);
        let have = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if have >= RESERVE_BYTES {
            return Ok(());
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("cannot create", &path, e))?;
        // Real blocks (written zeros), not a sparse length: the point is to hold space.
        let block = vec![0u8; 64 << 10];
        let mut left = RESERVE_BYTES - have;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            match file.write_all(&block[..n]) {
                Ok(()) => left -= n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(Error::io("cannot write", &path, e)),
            }
        }
        match file.sync_all() {
            Err(e) if e.raw_os_error() != Some(libc::ENOSPC) => Err(Error::io("cannot sync", &path, e)),
            _ => Ok(()),
        }
    }

    fn stray_temporaries(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for top in ["packs", "snapshots", "wal", "locks", "sessions", "records"] {
            walk_files(&self.root.join(top), top, &mut |key, path, _| {
                if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX)) {
                    found.push(key);
                }
                Ok(())
            })?;
        }
        let mut root_tmp = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(|e| Error::io("cannot list", &self.root, e))? {
            let entry = entry.map_err(|e| Error::io("cannot list", &self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                root_tmp.push(name);
            }
        }
        found.extend(root_tmp);
        found.sort();
        Ok(found)
    }
}

/// Recursively visits files under `dir`, naming each by `key_prefix/relative/path`. A missing
/// directory is an empty listing, and so is an entry that vanishes while it is listed.
fn walk_files(dir: &Path, key_prefix: &str, f: &mut dyn FnMut(String, &Path, u64) -> Result<()>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = format!("{key_prefix}/{name}");
        let path = entry.path();
        // Another process may remove or rename an entry between the directory read and its
        // stat: a lock released, a temporary file renamed into place, a pack pruned. Such an
        // entry is simply not in the listing (as if listed a moment later).
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("cannot stat", &path, e)),
        };
        if meta.is_dir() {
            walk_files(&path, &key, f)?;
        } else {
            f(key, &path, meta.len())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry removed by another process between the directory read and its stat (a lock
    /// released, a temporary file renamed, a pack pruned) is left out, not an error.
    #[test]
    fn listing_skips_entries_that_vanish_while_listed() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        for i in 0..64 {
            backend.put(&format!("locks/{i:02}"), b"x", PutMode::Overwrite).unwrap();
        }
        let mut seen = Vec::new();
        backend
            .list(LOCKS_DIR_FOR_TEST, &mut |obj| {
                if seen.is_empty() {
                    // Everything else goes while the listing is under way.
                    for e in fs::read_dir(dir.path().join("locks")).unwrap() {
                        let p = e.unwrap().path();
                        if !p.ends_with(obj.key.rsplit('/').next().unwrap()) {
                            fs::remove_file(p).unwrap();
                        }
                    }
                }
                seen.push(obj.key);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
    }

    const LOCKS_DIR_FOR_TEST: &str = "locks/";
}
