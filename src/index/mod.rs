//! The chunk index: chunk id → where its blob lives. Derived data, rebuildable from pack
//! trailers at any time (`repo repair index`), so losing it loses nothing.
//!
//! [`ChunkIndex`] is the one interface; [`MemIndex`] backs tests and guest overlays,
//! `RocksIndex` (feature `rocksdb`) is the persistent one. Nothing here holds the whole index
//! in memory except `MemIndex`, which is only used for small or temporary sets.

mod idmap;
mod location;
mod marks;
mod memory;
mod overlay;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use idmap::IdMap;
pub use location::{Location, PackInfo, LOCATION_BYTES, PACK_INFO_BYTES};
pub use marks::MarkSet;
pub use memory::MemIndex;
pub use overlay::OverlayIndex;
#[cfg(feature = "rocksdb")]
pub use rocks::{OpenMode, RocksIndex};

use crate::error::Result;
use crate::id::{ChunkId, PackId};
use crate::pack::BlobEntry;

/// Lookup and maintenance of chunk locations. Implementations are `Send + Sync` and
/// internally synchronised; all writes of one pack are atomic.
pub trait ChunkIndex: Send + Sync {
    fn get(&self, id: &ChunkId) -> Result<Option<Location>>;

    /// Looks up many ids at once (RocksDB batches these).
    fn get_many(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        ids.iter().map(|id| self.get(id)).collect()
    }

    /// Records a durable pack and all its blobs, atomically.
    fn add_pack(&self, pack: PackId, size: u64, entries: &[BlobEntry]) -> Result<()>;

    /// Forgets a pack and every chunk entry that points into it. `ids`, when given, are the
    /// pack's blobs (from its trailer), which spares a scan of the whole index.
    fn remove_pack(&self, pack: PackId, ids: Option<&[ChunkId]>) -> Result<()>;

    /// Whether this handle writes the shared index (false for a guest's overlay).
    fn shared_writer(&self) -> bool {
        true
    }

    /// Makes written entries durable (the index is derived, so this only saves a rebuild).
    fn persist(&self) -> Result<()> {
        Ok(())
    }

    fn pack_info(&self, pack: &PackId) -> Result<Option<PackInfo>>;

    /// Visits every known pack.
    fn for_each_pack(&self, f: &mut dyn FnMut(PackId, PackInfo) -> Result<()>) -> Result<()>;

    /// Visits every chunk entry.
    fn for_each_chunk(&self, f: &mut dyn FnMut(ChunkId, Location) -> Result<()>) -> Result<()>;

    /// Drops everything (before a rebuild).
    fn clear(&self) -> Result<()>;

    /// A short description for messages (`rocksdb at …`, `memory`).
    fn describe(&self) -> String;
}
