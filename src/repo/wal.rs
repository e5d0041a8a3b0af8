//! The WAL catalog: reading, listing and materialising archived WAL records.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::repo::{wal_key, wal_prefix, Repository};
use crate::snapshot::{valid_wal_name, WalRecord};

/// Checks stream and file names before they become object keys.
pub fn check_wal_names(stream: &str, name: &str) -> Result<()> {
    for (what, n) in [("stream", stream), ("WAL file", name)] {
        if !valid_wal_name(n) {
            return Err(Error::InvalidArgument(format!(
                "{what} name {n:?} is not valid: use 1-255 letters, digits, '.', '_' or '-', not starting with '.'"
            )));
        }
    }
    Ok(())
}

impl Repository {
    /// The record archived under `stream`/`name`, if any.
    pub fn find_wal(&self, stream: &str, name: &str) -> Result<Option<WalRecord>> {
        check_wal_names(stream, name)?;
        match self.backend().get(&wal_key(stream, name)) {
            Ok(bytes) => WalRecord::decode(&bytes, &format!("WAL record {stream}/{name}")).map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Materialises a WAL record's content at `dest` (temporary file, fsync, rename).
    /// Writes the WAL file `record` describes into directory `dir` (opened by the caller, so
    /// nothing is resolved through a path again) under its own name: a temporary file, synced,
    /// then renamed into place. `path` names the directory in errors.
    pub fn write_wal_file_at(&self, record: &WalRecord, dir: &crate::fs::DirFd, path: &Path) -> Result<()> {
        let mut data = Vec::with_capacity(record.size.min(64 << 20) as usize);
        for c in &record.chunks {
            data.extend_from_slice(&self.read_blob(&c.id)?);
        }
        dir.write_file(record.name.as_bytes(), &data, None, 0o600)
            .map_err(|e| Error::io(format!("cannot write {} into", record.name), path, e))
    }

    pub fn write_wal_file(&self, record: &WalRecord, dest: &Path) -> Result<()> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".cairn-fetch-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("cannot create a file in", &dir, e))?;
        for c in &record.chunks {
            let data = self.read_blob(&c.id)?;
            tmp.write_all(&data).map_err(|e| Error::io("cannot write", tmp.path(), e))?;
        }
        tmp.as_file().sync_all().map_err(|e| Error::io("cannot sync", tmp.path(), e))?;
        tmp.persist(dest).map_err(|e| Error::io("cannot rename into", dest, e.error))?;
        Ok(())
    }

    /// Visits every record of `stream` (or of all streams), in no particular order, one at a
    /// time: memory does not grow with the archive.
    pub fn for_each_wal(&self, stream: Option<&str>, f: &mut dyn FnMut(WalRecord) -> Result<()>) -> Result<()> {
        if let Some(s) = stream {
            check_wal_names(s, "x")?;
        }
        let mut keys = Vec::new();
        self.backend().list(&wal_prefix(stream), &mut |obj| {
            keys.push(obj.key);
            Ok(())
        })?;
        for key in keys {
            let bytes = match self.backend().get(&key) {
                // Forgotten since the listing (`forget` runs beside readers).
                Err(e) if e.is_not_found() => continue,
                other => other?,
            };
            f(WalRecord::decode(&bytes, &format!("WAL record {key}"))?)?;
        }
        Ok(())
    }
}
