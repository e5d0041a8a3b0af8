//! A read-only shared index plus a private in-memory overlay.
//!
//! Used when another process holds the RocksDB index for writing: lookups consult the shared
//! (secondary) view and this process's own additions; the additions reach the shared index
//! when the next process that opens it for writing ingests the new packs from their trailers.

use std::collections::HashSet;
use std::sync::RwLock;

use crate::error::Result;
use crate::id::{ChunkId, PackId};
use crate::index::{ChunkIndex, Location, MemIndex, PackInfo};
use crate::pack::BlobEntry;

pub struct OverlayIndex {
    base: Box<dyn ChunkIndex>,
    overlay: MemIndex,
    /// Packs the base still lists but which no longer exist; their entries are hidden.
    hidden: RwLock<HashSet<PackId>>,
}

impl OverlayIndex {
    pub fn new(base: Box<dyn ChunkIndex>) -> Self {
        OverlayIndex { base, overlay: MemIndex::new(), hidden: RwLock::new(HashSet::new()) }
    }

    fn visible(&self, loc: Option<Location>) -> Option<Location> {
        loc.filter(|l| !self.hidden.read().unwrap_or_else(|p| p.into_inner()).contains(&l.pack))
    }
}

impl ChunkIndex for OverlayIndex {
    fn get(&self, id: &ChunkId) -> Result<Option<Location>> {
        if let Some(loc) = self.overlay.get(id)? {
            return Ok(Some(loc));
        }
        Ok(self.visible(self.base.get(id)?))
    }

    fn get_many(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        let mut found = self.base.get_many(ids)?;
        for (slot, id) in found.iter_mut().zip(ids) {
            match self.overlay.get(id)? {
                Some(loc) => *slot = Some(loc),
                None => *slot = self.visible(*slot),
            }
        }
        Ok(found)
    }

    fn add_pack(&self, pack: PackId, size: u64, entries: &[BlobEntry]) -> Result<()> {
        self.overlay.add_pack(pack, size, entries)
    }

    fn remove_pack(&self, pack: PackId, ids: Option<&[ChunkId]>) -> Result<()> {
        self.overlay.remove_pack(pack, ids)?;
        self.hidden.write().unwrap_or_else(|p| p.into_inner()).insert(pack);
        Ok(())
    }

    fn pack_info(&self, pack: &PackId) -> Result<Option<PackInfo>> {
        if let Some(info) = self.overlay.pack_info(pack)? {
            return Ok(Some(info));
        }
        if self.hidden.read().unwrap_or_else(|p| p.into_inner()).contains(pack) {
            return Ok(None);
        }
        self.base.pack_info(pack)
    }

    fn for_each_pack(&self, f: &mut dyn FnMut(PackId, PackInfo) -> Result<()>) -> Result<()> {
        let hidden = self.hidden.read().unwrap_or_else(|p| p.into_inner()).clone();
        self.base.for_each_pack(&mut |p, i| if hidden.contains(&p) { Ok(()) } else { f(p, i) })?;
        self.overlay.for_each_pack(f)
    }

    fn for_each_chunk(&self, f: &mut dyn FnMut(ChunkId, Location) -> Result<()>) -> Result<()> {
        let hidden = self.hidden.read().unwrap_or_else(|p| p.into_inner()).clone();
        self.base.for_each_chunk(&mut |c, l| {
            if hidden.contains(&l.pack) {
                Ok(())
            } else {
                f(c, l)
            }
        })?;
        self.overlay.for_each_chunk(f)
    }

    fn clear(&self) -> Result<()> {
        Err(crate::error::Error::Index("cannot clear the shared index while another process writes it".to_string()))
    }

    fn describe(&self) -> String {
        format!("{} (read-only, with a private overlay)", self.base.describe())
    }
}
