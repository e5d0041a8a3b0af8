//! A write session: stores new blobs into packs and makes them durable in the commit order.
//!
//! Order (see `docs/design.md`, "Commit order"): a pack is written and fsynced through the
//! backend, then its entries go into the index, and only after [`WriteSession::flush`] returns
//! may a snapshot or WAL record that references its blobs be written. Blobs already in the
//! index or in a pack of this session are not stored again.

use std::collections::HashSet;
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::PutMode;
use crate::error::Result;
use crate::id::ChunkId;
use crate::pack::{encode_blob, BlobKind, EncodedBlob, PackBuilder};
use crate::repo::layout::pack_key;
use crate::repo::Repository;
use crate::snapshot::{ChunkList, ChunkRef, ListPiece, NodeContent, LIST_PIECE_CHUNKS};

/// What a session added to the repository.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionStats {
    pub chunks_added: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Bytes of new packs (compressed blobs plus headers and trailers).
    pub bytes_stored: u64,
    pub packs_written: u64,
}

/// Room for a full pack: the target, one more blob (the one that crosses it) and the trailer.
fn new_builder(repo: &Repository) -> PackBuilder {
    PackBuilder::with_capacity(repo.config.pack_target_bytes as usize + (1 << 20))
}

pub struct WriteSession<'r> {
    repo: &'r Repository,
    open: Mutex<OpenPack>,
    stats: Mutex<SessionStats>,
}

/// The pack being filled, and ids stored by this session that the index does not show yet.
struct OpenPack {
    builder: PackBuilder,
    pending: HashSet<ChunkId>,
}

impl<'r> WriteSession<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        WriteSession {
            repo,
            open: Mutex::new(OpenPack { builder: new_builder(repo), pending: HashSet::new() }),
            stats: Mutex::new(SessionStats::default()),
        }
    }

    pub fn repo(&self) -> &Repository {
        self.repo
    }

    pub fn stats(&self) -> SessionStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the blobs among `items` (id, plaintext) that the repository lacks; compresses
    /// them in parallel. Returns the plaintext bytes that were new.
    pub fn store_many(&self, kind: BlobKind, items: &[(ChunkId, &[u8])]) -> Result<u64> {
        let ids: Vec<ChunkId> = items.iter().map(|(id, _)| *id).collect();
        let known = self.repo.index.get_many(&ids)?;
        let mut seen = HashSet::new();
        let fresh: Vec<&(ChunkId, &[u8])> = items
            .iter()
            .zip(&known)
            .filter(|((id, _), k)| k.is_none() && seen.insert(*id))
            .map(|(item, _)| item)
            .collect();
        let level = self.repo.config.compression_level;
        let encoded: Vec<EncodedBlob> =
            fresh.par_iter().map(|(_, data)| encode_blob(data, level)).collect::<Result<_>>()?;
        let mut added = 0;
        for ((id, data), blob) in fresh.into_iter().zip(encoded) {
            if self.add(kind, *id, data.len(), blob)? {
                added += data.len() as u64;
            }
        }
        Ok(added)
    }

    /// Stores one blob, returning its id.
    pub fn store(&self, kind: BlobKind, data: &[u8]) -> Result<ChunkId> {
        let id = ChunkId::of(data);
        self.store_many(kind, &[(id, data)])?;
        Ok(id)
    }

    /// Adds an encoded blob unless another thread stored it meanwhile; writes the pack out
    /// when it is full.
    fn add(&self, kind: BlobKind, id: ChunkId, raw_len: usize, blob: EncodedBlob) -> Result<bool> {
        let full = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            if open.pending.contains(&id) || self.repo.index.get(&id)?.is_some() {
                return Ok(false);
            }
            let raw_len = u32::try_from(raw_len).expect("chunks and trees are far below 4 GiB");
            open.builder.add(id, kind, raw_len, &blob);
            open.pending.insert(id);
            if open.builder.data_len() >= self.repo.config.pack_target_bytes as usize {
                Some(std::mem::replace(&mut open.builder, new_builder(self.repo)))
            } else {
                None
            }
        };
        if let Some(builder) = full {
            self.write_pack(builder)?;
        }
        Ok(true)
    }

    /// Writes the open pack, if any. After this, every blob stored so far is durable and
    /// indexed, and records referencing them may be written.
    pub fn flush(&self) -> Result<()> {
        let builder = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut open.builder)
        };
        if !builder.is_empty() {
            self.write_pack(builder)?;
        }
        Ok(())
    }

    fn write_pack(&self, builder: PackBuilder) -> Result<()> {
        let pack = builder.finish();
        self.repo.backend.put(&pack_key(&pack.id), &pack.bytes, PutMode::Overwrite)?;
        self.repo.index.add_pack(pack.id, pack.bytes.len() as u64, &pack.entries)?;
        {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            for e in &pack.entries {
                open.pending.remove(&e.id);
            }
        }
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.chunks_added += pack.entries.len() as u64;
        stats.bytes_added += pack.raw_bytes;
        stats.bytes_stored += pack.bytes.len() as u64;
        stats.packs_written += 1;
        Ok(())
    }
}

impl WriteSession<'_> {
    /// The content entry for a file with `chunks`: inline when short, else stored as list
    /// pieces (each piece a blob, deduplicated like any other).
    pub fn file_content(&self, chunks: Vec<ChunkRef>) -> Result<NodeContent> {
        if chunks.len() <= LIST_PIECE_CHUNKS {
            return Ok(NodeContent::File { chunks });
        }
        let mut pieces = Vec::with_capacity(chunks.len().div_ceil(LIST_PIECE_CHUNKS));
        for part in chunks.chunks(LIST_PIECE_CHUNKS) {
            let list = ChunkList { chunks: part.to_vec() };
            let id = self.store(BlobKind::Tree, &list.encode()?)?;
            let bytes = part.iter().map(|c| u64::from(c.len)).sum();
            pieces.push(ListPiece { id, chunks: part.len() as u32, bytes });
        }
        Ok(NodeContent::LargeFile { pieces })
    }
}
