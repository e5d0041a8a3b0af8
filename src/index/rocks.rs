//! The persistent chunk index in RocksDB.
//!
//! Column families: `chunks` (chunk id → [`Location`]), `packs` (pack id → [`PackInfo`]).
//! Tuned for point lookups: bloom filters, a bounded block cache, no compression (values are
//! hashes). RocksDB admits one writing process; others open it as a *secondary* (a read-only
//! view that follows the primary) — see `docs/design.md`, "Sharing the index".

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, DataBlockIndexType,
    InfoLogger, IteratorMode, LogLevel, Options, WriteBatch, DB,
};

use crate::error::{Error, Result};
use crate::id::{ChunkId, PackId};
use crate::index::{ChunkIndex, Location, PackInfo};
use crate::pack::BlobEntry;

const CF_CHUNKS: &str = "chunks";
const CF_PACKS: &str = "packs";
/// Keys per RocksDB multi-get; see `get_many`.
const MULTI_GET_KEYS: usize = 256;
/// Block cache shared by both column families: bounds the index's memory whatever its size.
const BLOCK_CACHE_BYTES: usize = 32 << 20;
const WRITE_BUFFER_BYTES: usize = 16 << 20;

/// How a process holds the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The one writer.
    Primary,
    /// A read-only view that can catch up with a running primary.
    Secondary,
}

/// Called with each raw key and value of a column family.
type RawVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

pub struct RocksIndex {
    db: DB,
    path: PathBuf,
    mode: OpenMode,
    /// Keeps the secondary's private directory alive as long as the handle.
    _secondary_dir: Option<tempfile::TempDir>,
    /// Declared after `db`, so it runs once the database is closed.
    _private: Option<PrivateOnDrop>,
}

/// Makes a primary's files private again when it closes (see [`RocksIndex::open`]).
struct PrivateOnDrop(PathBuf);

impl Drop for PrivateOnDrop {
    fn drop(&mut self) {
        crate::io::make_tree_private(&self.0);
    }
}

fn rocks_err(path: &Path, e: rocksdb::Error) -> Error {
    Error::Index(format!("{}: {e}", path.display()))
}

/// Options for the database and each column family; all share `cache`, so the bound holds for
/// the whole index (one cache per column family would triple it).
fn options(mode: OpenMode, cache: &Cache) -> Options {
    let mut block = BlockBasedOptions::default();
    block.set_bloom_filter(10.0, false);
    block.set_block_cache(cache);
    // Index and filter blocks live in the bounded cache, partitioned so that a lookup needs
    // only the small top level plus one partition (whole per-file index and filter blocks of a
    // large index thrash a small cache: 36-113 µs per lookup at 1-10 M entries before this;
    // see docs/performance.md). The top level and L0's blocks, which every lookup touches, stay pinned.
    block.set_cache_index_and_filter_blocks(true);
    block.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    block.set_partition_filters(true);
    block.set_pin_top_level_index_and_filter(true);
    block.set_pin_l0_filter_and_index_blocks_in_cache(true);
    block.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&block);
    opts.set_compression_type(DBCompressionType::None);
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
    // RocksDB's own log (LOG, renamed to LOG.old.<time> at every open and pruned) lived in the
    // index directory, which several processes open at once (a writer and secondaries): one
    // process's pruning raced another's renaming, and an open failed with "while unlink()
    // file: .../LOG.old.…". Its messages are not for users either: on a full disk it logged
    // ~46 lines of `VersionEdit {…}` internals at error level. Every failure that matters
    // comes back as the error of the call, which our one-line message carries; the log is
    // dropped, unless CAIRN_DEBUG_INDEX is set (then errors go to stderr, for debugging).
    let debug = std::env::var_os("CAIRN_DEBUG_INDEX").is_some_and(|v| !v.is_empty());
    opts.set_info_logger(InfoLogger::new_callback_logger(LogLevel::Error, move |level, msg| {
        // Headers (options, version) come at any level; only errors are worth a line.
        if debug && matches!(level, LogLevel::Error | LogLevel::Fatal) {
            eprintln!("cairn: index (RocksDB): {}", msg.trim_end());
        }
    }));
    // Little preallocation: on a nearly full disk the index must still open, so that the
    // repository stays usable (and prunable) after a backup ran out of space.
    opts.set_manifest_preallocation_size(64 << 10);
    opts.create_if_missing(mode == OpenMode::Primary);
    opts.create_missing_column_families(mode == OpenMode::Primary);
    // A secondary must keep every file open to follow the primary's compactions.
    opts.set_max_open_files(if mode == OpenMode::Secondary { -1 } else { 256 });
    opts
}

impl RocksIndex {
    /// Opens the index at `path`. A primary open fails with `Error::Locked` when another
    /// process holds it.
    pub fn open(path: &Path, mode: OpenMode) -> Result<Self> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let opts = options(mode, &cache);
        let cfs = || [CF_CHUNKS, CF_PACKS].map(|n| ColumnFamilyDescriptor::new(n, options(mode, &cache)));
        let (db, secondary_dir) = match mode {
            OpenMode::Primary => {
                // RocksDB creates its files with the umask's modes (0644 under umask 022) and
                // has no option for it. The directory is made 0700 before RocksDB writes into
                // it, so nothing is ever readable by others; files are chmod-ed 0600 after
                // the open and again at close (compactions create new ones in between).
                crate::io::create_private_dir_all(path).map_err(|e| Error::io("cannot create", path, e))?;
                crate::io::make_tree_private(path);
                let db = DB::open_cf_descriptors(&opts, path, cfs()).map_err(|e| {
                    let msg = e.to_string();
                    if msg.contains("LOCK") || msg.contains("lock hold") {
                        Error::Locked(format!("index {} is held by another process", path.display()))
                    } else {
                        rocks_err(path, e)
                    }
                })?;
                (db, None)
            }
            OpenMode::Secondary => {
                let dir = crate::io::private_temp_dir("index-secondary")
                    .map_err(|e| Error::io("cannot create a temporary directory in", &std::env::temp_dir(), e))?;
                let db = DB::open_cf_descriptors_as_secondary(&opts, path, dir.path(), cfs())
                    .map_err(|e| rocks_err(path, e))?;
                db.try_catch_up_with_primary().map_err(|e| rocks_err(path, e))?;
                (db, Some(dir))
            }
        };
        let private = (mode == OpenMode::Primary).then(|| {
            crate::io::make_tree_private(path);
            PrivateOnDrop(path.to_path_buf())
        });
        Ok(RocksIndex { db, path: path.to_path_buf(), mode, _secondary_dir: secondary_dir, _private: private })
    }

    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column families are created at open")
    }

    fn err(&self, e: rocksdb::Error) -> Error {
        rocks_err(&self.path, e)
    }

    fn for_each_in(&self, cf: &str, f: &mut RawVisitor<'_>) -> Result<()> {
        for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            f(&k, &v)?;
        }
        Ok(())
    }
}

fn chunk_key(b: &[u8]) -> Result<ChunkId> {
    ChunkId::from_slice(b).ok_or_else(|| Error::corrupt("index key", "not 32 bytes"))
}

impl ChunkIndex for RocksIndex {
    fn get(&self, id: &ChunkId) -> Result<Option<Location>> {
        match self.db.get_pinned_cf(self.cf(CF_CHUNKS), id.as_bytes()).map_err(|e| self.err(e))? {
            Some(v) => Location::decode(&v).map(Some),
            None => Ok(None),
        }
    }

    fn get_many(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        let mut found = Vec::with_capacity(ids.len());
        // Each result pins its data block in the cache until it is dropped, beyond the cache's
        // capacity: a check looking up a pack's 80 000 entries at once, on 4 threads, reached
        // 717 MiB on the 5.5 M-chunk repository. A few hundred keys keep the benefit of a batch.
        for part in ids.chunks(MULTI_GET_KEYS) {
            let keys: Vec<&[u8]> = part.iter().map(|id| id.as_bytes().as_slice()).collect();
            for r in self.db.batched_multi_get_cf(self.cf(CF_CHUNKS), keys, false) {
                found.push(match r.map_err(|e| self.err(e))? {
                    Some(v) => Some(Location::decode(&v)?),
                    None => None,
                });
            }
        }
        Ok(found)
    }

    fn add_pack(&self, pack: PackId, size: u64, entries: &[BlobEntry]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for e in entries {
            batch.put_cf(self.cf(CF_CHUNKS), e.id.as_bytes(), Location::new(pack, e).encode());
        }
        let blobs = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        batch.put_cf(self.cf(CF_PACKS), pack.as_bytes(), PackInfo { size, blobs }.encode());
        self.db.write(batch).map_err(|e| self.err(e))
    }

    fn remove_pack(&self, pack: PackId, ids: Option<&[ChunkId]>) -> Result<()> {
        let mut batch = WriteBatch::default();
        let points_here = |v: &[u8]| v.len() >= 32 && v[..32] == pack.as_bytes()[..];
        match ids {
            Some(ids) => {
                for id in ids {
                    let v = self.db.get_pinned_cf(self.cf(CF_CHUNKS), id.as_bytes()).map_err(|e| self.err(e))?;
                    if v.is_some_and(|v| points_here(&v)) {
                        batch.delete_cf(self.cf(CF_CHUNKS), id.as_bytes());
                    }
                }
            }
            None => self.for_each_in(CF_CHUNKS, &mut |k, v| {
                if points_here(v) {
                    batch.delete_cf(self.cf(CF_CHUNKS), k);
                }
                Ok(())
            })?,
        }
        batch.delete_cf(self.cf(CF_PACKS), pack.as_bytes());
        self.db.write(batch).map_err(|e| self.err(e))
    }

    fn persist(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(|e| self.err(e))
    }

    fn pack_info(&self, pack: &PackId) -> Result<Option<PackInfo>> {
        match self.db.get_pinned_cf(self.cf(CF_PACKS), pack.as_bytes()).map_err(|e| self.err(e))? {
            Some(v) => PackInfo::decode(&v).map(Some),
            None => Ok(None),
        }
    }

    fn for_each_pack(&self, f: &mut dyn FnMut(PackId, PackInfo) -> Result<()>) -> Result<()> {
        self.for_each_in(CF_PACKS, &mut |k, v| {
            let id = PackId::from_slice(k).ok_or_else(|| Error::corrupt("index pack key", "not 32 bytes"))?;
            f(id, PackInfo::decode(v)?)
        })
    }

    fn for_each_chunk(&self, f: &mut dyn FnMut(ChunkId, Location) -> Result<()>) -> Result<()> {
        self.for_each_in(CF_CHUNKS, &mut |k, v| f(chunk_key(k)?, Location::decode(v)?))
    }

    fn clear(&self) -> Result<()> {
        // Keys are 32 bytes; 33 0xff bytes sorts after all of them. One batch for both column
        // families: a secondary catching up in between would see packs without their chunks,
        // and take the packs for indexed (so their chunks for missing).
        let (start, end) = (vec![0u8; 32], vec![0xffu8; 33]);
        let mut batch = WriteBatch::default();
        for cf in [CF_CHUNKS, CF_PACKS] {
            batch.delete_range_cf(self.cf(cf), &start, &end);
        }
        self.db.write(batch).map_err(|e| self.err(e))
    }

    fn describe(&self) -> String {
        format!("RocksDB index at {}", self.path.display())
    }
}
