//! The WAL catalog: reading, listing and materialising archived WAL records.
//!
//! In an encrypted repository a record's object key names no stream or file: it is
//! `wal/<keyed id of the stream, 32 hex>/<keyed id of stream and name, 64 hex>`, and the
//! record is sealed with that key as its associated data (`docs/format.md` §13.5).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::repo::{wal_key, wal_prefix, Repository, WAL_DIR};
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
    /// The object key of the record of `stream`/`name` (names checked by the caller).
    pub fn wal_object_key(&self, stream: &str, name: &str) -> String {
        if !self.sealer.is_encrypted() {
            return wal_key(stream, name);
        }
        let full = self.sealer.chunk_id(format!("cairn wal name\0{stream}\0{name}").as_bytes());
        format!("{}{}", self.wal_stream_prefix(stream), hex(&full))
    }

    /// `wal/<stream dir>/`: where the records of `stream` are.
    fn wal_stream_prefix(&self, stream: &str) -> String {
        if !self.sealer.is_encrypted() {
            return wal_prefix(Some(stream));
        }
        let id = self.sealer.chunk_id(format!("cairn wal stream\0{stream}").as_bytes());
        format!("{WAL_DIR}{}/", hex(&id[..16]))
    }

    /// Encodes (and, encrypted, seals) a record stored under `key`.
    /// A write-only session's header is stored first, as the record names it.
    pub fn encode_wal(&self, key: &str, record: &WalRecord) -> Result<Vec<u8>> {
        self.store_session_header()?;
        self.sealer.seal(Kind::WalRecord, key.as_bytes(), &record.encode()?)
    }

    fn decode_wal(&self, key: &str, bytes: &[u8], what: &str) -> Result<WalRecord> {
        let plain;
        let bytes = if self.sealer.is_encrypted() {
            plain = self.sealer.open(Kind::WalRecord, key.as_bytes(), bytes).map_err(|e| match e {
                Error::Corrupt { detail, .. } => Error::corrupt(what, detail),
                other => other,
            })?;
            &plain[..]
        } else {
            bytes
        };
        let record = WalRecord::decode(bytes, what)?;
        // Bound by name too: a record moved under another name's key is refused.
        if self.sealer.is_encrypted() && self.wal_object_key(&record.stream, &record.name) != key {
            return Err(Error::corrupt(what, "record does not belong under its name"));
        }
        Ok(record)
    }

    /// The record archived under `stream`/`name`, if any.
    pub fn find_wal(&self, stream: &str, name: &str) -> Result<Option<WalRecord>> {
        check_wal_names(stream, name)?;
        self.require_read("read WAL records")?;
        let key = self.wal_object_key(stream, name);
        match self.backend().get(&key) {
            Ok(bytes) => self.decode_wal(&key, &bytes, &format!("WAL record {stream}/{name}")).map(Some),
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

    /// Object keys of every WAL record (for `repo check`).
    pub fn wal_keys(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        self.backend().list(&wal_prefix(None), &mut |obj| {
            keys.push(obj.key);
            Ok(())
        })?;
        keys.sort();
        Ok(keys)
    }

    /// The record stored under object key `key`, opened and checked.
    pub fn load_wal(&self, key: &str) -> Result<WalRecord> {
        let bytes = self.backend().get(key)?;
        self.decode_wal(key, &bytes, &format!("WAL record {key}"))
    }

    /// Visits every record of `stream` (or of all streams), in no particular order, one at a
    /// time: memory does not grow with the archive.
    pub fn for_each_wal(&self, stream: Option<&str>, f: &mut dyn FnMut(WalRecord) -> Result<()>) -> Result<()> {
        self.require_read("read WAL records")?;
        if let Some(s) = stream {
            check_wal_names(s, "x")?;
        }
        let mut keys = Vec::new();
        let prefix = match stream {
            Some(s) => self.wal_stream_prefix(s),
            None => wal_prefix(None),
        };
        self.backend().list(&prefix, &mut |obj| {
            keys.push(obj.key);
            Ok(())
        })?;
        for key in keys {
            let bytes = match self.backend().get(&key) {
                // Forgotten since the listing (`forget` runs beside readers).
                Err(e) if e.is_not_found() => continue,
                other => other?,
            };
            f(self.decode_wal(&key, &bytes, &format!("WAL record {key}"))?)?;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
