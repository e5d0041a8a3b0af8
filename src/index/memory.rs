//! An in-memory index, for tests, decoder-only builds and small temporary overlays.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::error::Result;
use crate::id::{ChunkId, PackId};
use crate::index::{ChunkIndex, Location, PackInfo};
use crate::pack::BlobEntry;

#[derive(Default)]
pub struct MemIndex {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    chunks: HashMap<ChunkId, Location>,
    packs: HashMap<PackId, PackInfo>,
}

impl MemIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl ChunkIndex for MemIndex {
    fn get(&self, id: &ChunkId) -> Result<Option<Location>> {
        Ok(self.read().chunks.get(id).copied())
    }

    fn add_pack(&self, pack: PackId, size: u64, entries: &[BlobEntry]) -> Result<()> {
        let mut inner = self.write();
        for e in entries {
            inner.chunks.insert(e.id, Location::new(pack, e));
        }
        let blobs = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        inner.packs.insert(pack, PackInfo { size, blobs });
        Ok(())
    }

    fn remove_pack(&self, pack: PackId, _ids: Option<&[ChunkId]>) -> Result<()> {
        let mut inner = self.write();
        inner.packs.remove(&pack);
        inner.chunks.retain(|_, loc| loc.pack != pack);
        Ok(())
    }

    fn pack_info(&self, pack: &PackId) -> Result<Option<PackInfo>> {
        Ok(self.read().packs.get(pack).copied())
    }

    fn for_each_pack(&self, f: &mut dyn FnMut(PackId, PackInfo) -> Result<()>) -> Result<()> {
        let packs: Vec<_> = self.read().packs.iter().map(|(k, v)| (*k, *v)).collect();
        packs.into_iter().try_for_each(|(k, v)| f(k, v))
    }

    fn for_each_chunk(&self, f: &mut dyn FnMut(ChunkId, Location) -> Result<()>) -> Result<()> {
        let chunks: Vec<_> = self.read().chunks.iter().map(|(k, v)| (*k, *v)).collect();
        chunks.into_iter().try_for_each(|(k, v)| f(k, v))
    }

    fn clear(&self) -> Result<()> {
        *self.write() = Inner::default();
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory index".to_string()
    }
}
