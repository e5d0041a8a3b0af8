//! A set of chunk ids that can outgrow memory: what `prune` marks as referenced.
//!
//! With RocksDB it lives in a private temporary database (no WAL: it is rebuilt if lost), so
//! marking a repository of any size keeps memory flat; without RocksDB it is a `HashSet`.

use std::collections::HashSet;
use std::sync::Mutex;

#[cfg(feature = "rocksdb")]
use crate::error::Error;
use crate::error::Result;
use crate::id::ChunkId;

pub struct MarkSet {
    inner: Inner,
}

enum Inner {
    Memory(Mutex<HashSet<ChunkId>>),
    #[cfg(feature = "rocksdb")]
    Disk {
        db: rocksdb::DB,
        _dir: tempfile::TempDir,
    },
}

impl MarkSet {
    pub fn in_memory() -> Self {
        MarkSet { inner: Inner::Memory(Mutex::new(HashSet::new())) }
    }

    /// On disk when RocksDB is available.
    pub fn on_disk() -> Result<Self> {
        #[cfg(feature = "rocksdb")]
        {
            let (db, dir) = temp_db("marks")?;
            Ok(MarkSet { inner: Inner::Disk { db, _dir: dir } })
        }
        #[cfg(not(feature = "rocksdb"))]
        Ok(Self::in_memory())
    }

    /// Adds `id`; returns whether it was new.
    pub fn insert(&self, id: &ChunkId) -> Result<bool> {
        match &self.inner {
            Inner::Memory(set) => Ok(set.lock().unwrap_or_else(|p| p.into_inner()).insert(*id)),
            #[cfg(feature = "rocksdb")]
            Inner::Disk { db, .. } => {
                if db.get_pinned(id.as_bytes()).map_err(|e| Error::Index(e.to_string()))?.is_some() {
                    return Ok(false);
                }
                let mut w = rocksdb::WriteOptions::default();
                w.disable_wal(true);
                db.put_opt(id.as_bytes(), [], &w).map_err(|e| Error::Index(e.to_string()))?;
                Ok(true)
            }
        }
    }

    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        match &self.inner {
            Inner::Memory(set) => Ok(set.lock().unwrap_or_else(|p| p.into_inner()).contains(id)),
            #[cfg(feature = "rocksdb")]
            Inner::Disk { db, .. } => {
                Ok(db.get_pinned(id.as_bytes()).map_err(|e| Error::Index(e.to_string()))?.is_some())
            }
        }
    }
}

/// A private temporary RocksDB (no compression; writes skip the WAL, since it is rebuilt if
/// lost), removed with the returned directory. `name` names the directory.
#[cfg(feature = "rocksdb")]
pub(crate) fn temp_db(name: &str) -> Result<(rocksdb::DB, tempfile::TempDir)> {
    let dir = crate::io::private_temp_dir(name)
        .map_err(|e| Error::io("cannot create a temporary directory in", &std::env::temp_dir(), e))?;
    let mut block = rocksdb::BlockBasedOptions::default();
    block.set_bloom_filter(10.0, false);
    block.set_block_cache(&rocksdb::Cache::new_lru_cache(16 << 20));
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.set_block_based_table_factory(&block);
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    opts.set_write_buffer_size(16 << 20);
    let db = rocksdb::DB::open(&opts, dir.path()).map_err(|e| Error::Index(format!("{name}: {e}")))?;
    Ok((db, dir))
}
