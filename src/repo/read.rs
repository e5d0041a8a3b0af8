//! Reading blobs and trees back, always verified against their ids.

use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::index::Location;
use crate::pack::decode_blob;
use crate::repo::layout::pack_key;
use crate::repo::Repository;
use crate::snapshot::{ChunkList, ChunkRef, Node, NodeContent, Tree};

impl Repository {
    /// Where blob `id` is stored, or a clear error when no pack holds it.
    ///
    /// A miss gets a second look before it is an error: packs the index does not know yet are
    /// ingested and the lookup repeated. Another writer may have published the blob after this
    /// process last synced its index — a snapshot of the same paths taken by a concurrent
    /// `snapshot create` is the next one's parent, and its packs (durable before it) are then
    /// unknown to a process that synced earlier, or that holds the index while the other was a
    /// guest. Only a blob in no pack that exists now is missing.
    pub fn locate(&self, id: &ChunkId) -> Result<Location> {
        if let Some(loc) = self.index.get(id)? {
            return Ok(loc);
        }
        self.ingest_unknown_packs()?;
        self.index
            .get(id)?
            .ok_or_else(|| Error::not_found(format!("chunk {id} (in no pack the index knows; run `cairn repo check`)")))
    }

    /// Reads, decompresses and verifies one blob.
    pub fn read_blob(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        self.read_blob_at(id, &loc)
    }

    pub fn read_blob_at(&self, id: &ChunkId, loc: &Location) -> Result<Vec<u8>> {
        let stored = self.backend.get_range(&pack_key(&loc.pack), u64::from(loc.offset), u64::from(loc.stored_len))?;
        decode_blob(&loc.entry(*id), &stored, &format!("pack {}", loc.pack), &self.sealer)
    }

    /// Reads one blob as stored (compressed and, encrypted, sealed) together with its
    /// plaintext, verified: what a copy between repositories sharing a master key moves as it
    /// is, once it knows the bytes are sound.
    pub fn read_blob_stored(&self, id: &ChunkId, loc: &Location) -> Result<(Vec<u8>, Vec<u8>)> {
        let stored = self.backend.get_range(&pack_key(&loc.pack), u64::from(loc.offset), u64::from(loc.stored_len))?;
        let plain = decode_blob(&loc.entry(*id), &stored, &format!("pack {}", loc.pack), &self.sealer)?;
        Ok((stored, plain))
    }

    /// Loads and decodes a directory tree.
    pub fn load_tree(&self, id: &ChunkId) -> Result<Tree> {
        let bytes = self.own_blob(id).unwrap_or_else(|| self.read_blob(id))?;
        Tree::decode(&bytes, &format!("tree {id}"))
    }
}

impl Repository {
    /// A file's complete chunk list, loading the pieces of a large file. The list is checked
    /// against the entry first (see `snapshot::validate`): a file whose chunks disagree with
    /// its size, or a piece that disagrees with its entry, is corrupt, and nothing is
    /// allocated from a count before it is checked.
    pub fn file_chunks(&self, node: &Node) -> Result<Vec<ChunkRef>> {
        let what = || format!("file {}", node.name_lossy());
        if let Some(why) = node.content_problem() {
            return Err(Error::corrupt(what(), why));
        }
        match &node.content {
            NodeContent::File { chunks } => Ok(chunks.clone()),
            NodeContent::LargeFile { pieces } => {
                // Sized by what is loaded, never by a declared count.
                let mut all = Vec::new();
                for p in pieces {
                    let list = self.load_chunk_list(&p.id)?;
                    if let Some(why) = p.check_list(&list) {
                        return Err(Error::corrupt(format!("{}: chunk list {}", what(), p.id), why));
                    }
                    all.extend(list.chunks);
                }
                Ok(all)
            }
            _ => Ok(Vec::new()),
        }
    }

    pub fn load_chunk_list(&self, id: &ChunkId) -> Result<ChunkList> {
        let bytes = self.own_blob(id).unwrap_or_else(|| self.read_blob(id))?;
        ChunkList::decode(&bytes, &format!("chunk list {id}"))
    }
}
