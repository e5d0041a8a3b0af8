//! A map from chunk id to chunk id that can outgrow memory: what `repo copy` between
//! repositories with different id keys uses to name each source chunk, tree and chunk list by
//! its id in the destination.
//!
//! With RocksDB it lives in a private temporary database (no WAL: it only saves work within
//! one run), so a copy of any size keeps memory flat; without RocksDB it is a `HashMap`.

use std::collections::HashMap;
use std::sync::Mutex;

#[cfg(feature = "rocksdb")]
use crate::error::Error;
use crate::error::Result;
use crate::id::ChunkId;

pub struct IdMap {
    inner: Inner,
}

enum Inner {
    Memory(Mutex<HashMap<ChunkId, ChunkId>>),
    #[cfg(feature = "rocksdb")]
    Disk {
        db: rocksdb::DB,
        _dir: tempfile::TempDir,
    },
}

impl IdMap {
    pub fn in_memory() -> Self {
        IdMap { inner: Inner::Memory(Mutex::new(HashMap::new())) }
    }

    /// On disk when RocksDB is available.
    pub fn on_disk() -> Result<Self> {
        #[cfg(feature = "rocksdb")]
        {
            let (db, dir) = super::marks::temp_db("idmap")?;
            Ok(IdMap { inner: Inner::Disk { db, _dir: dir } })
        }
        #[cfg(not(feature = "rocksdb"))]
        Ok(Self::in_memory())
    }

    /// Maps `from` to `to` (replacing an earlier value).
    pub fn insert(&self, from: &ChunkId, to: &ChunkId) -> Result<()> {
        match &self.inner {
            Inner::Memory(map) => {
                map.lock().unwrap_or_else(|p| p.into_inner()).insert(*from, *to);
                Ok(())
            }
            #[cfg(feature = "rocksdb")]
            Inner::Disk { db, .. } => {
                let mut w = rocksdb::WriteOptions::default();
                w.disable_wal(true);
                db.put_opt(from.as_bytes(), to.as_bytes(), &w).map_err(|e| Error::Index(e.to_string()))
            }
        }
    }

    pub fn get(&self, from: &ChunkId) -> Result<Option<ChunkId>> {
        match &self.inner {
            Inner::Memory(map) => Ok(map.lock().unwrap_or_else(|p| p.into_inner()).get(from).copied()),
            #[cfg(feature = "rocksdb")]
            Inner::Disk { db, .. } => {
                let value = db.get_pinned(from.as_bytes()).map_err(|e| Error::Index(e.to_string()))?;
                // Only this module writes the database, always 32-byte values.
                Ok(value.and_then(|v| ChunkId::from_slice(&v)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_ids_in_memory_and_on_disk() {
        for map in [IdMap::in_memory(), IdMap::on_disk().unwrap()] {
            let (a, b, c) = (ChunkId::of(b"a"), ChunkId::of(b"b"), ChunkId::of(b"c"));
            assert_eq!(map.get(&a).unwrap(), None);
            map.insert(&a, &b).unwrap();
            map.insert(&c, &a).unwrap();
            assert_eq!(map.get(&a).unwrap(), Some(b));
            assert_eq!(map.get(&c).unwrap(), Some(a));
            assert_eq!(map.get(&b).unwrap(), None);
        }
    }
}
