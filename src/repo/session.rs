//! A write session: stores new blobs into packs and makes them durable in the commit order.
//!
//! Order (see `docs/design.md`, "Commit order"): a pack is written and fsynced through the
//! backend, then its entries go into the index, and only after [`WriteSession::flush`] returns
//! may a snapshot or WAL record that references its blobs be written. Blobs already in the
//! index or in a pack of this session are not stored again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::PutMode;
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::pack::{encode_blob, seal_blob, BlobKind, EncodedBlob, PackBuilder, MAX_BLOB_RAW_BYTES};
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

/// Files read with two windows in flight at once by one session: one per core of the
/// reference machine; more did not make (a) faster and cost memory.
const OVERLAPPED_FILES: usize = 2;

/// Room for a full pack: the target, one more blob (the one that crosses it) and the trailer.
fn pack_capacity(repo: &Repository) -> usize {
    repo.config.pack_target_bytes as usize + (1 << 20)
}

pub struct WriteSession<'r> {
    repo: &'r Repository,
    open: Mutex<OpenPack>,
    /// Signalled when a pack write ends.
    written: Condvar,
    stats: Mutex<SessionStats>,
    /// Files read with two windows in flight now; see [`WriteSession::overlap_permit`].
    overlapped: AtomicUsize,
}

pub(crate) struct OverlapPermit<'s>(&'s AtomicUsize);

impl Drop for OverlapPermit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The packs being filled, and ids stored by this session that the index does not show yet.
///
/// Trees and chunk lists go to packs of their own: a snapshot's metadata then sits in a few
/// packs, read with a few large reads (by the next snapshot, `ls`, `check`), instead of being
/// scattered between data blobs across the whole repository.
struct OpenPack {
    data: PackBuilder,
    metadata: PackBuilder,
    pending: HashSet<ChunkId>,
    /// A full pack is being written (by the thread that filled it).
    writing: bool,
    /// Packs whose blobs moved from `pending` to the index so far.
    packs_indexed: u64,
    /// The buffer of the last data pack written, reused for the next one. Allocating a fresh
    /// 17 MiB buffer per pack on whichever thread filled it left a freed copy in each thread's
    /// malloc arena: +90 MiB of resident memory with 8 threads.
    spare: Option<Vec<u8>>,
}

impl OpenPack {
    fn builder(&mut self, kind: BlobKind) -> &mut PackBuilder {
        match kind {
            BlobKind::Data => &mut self.data,
            BlobKind::Tree => &mut self.metadata,
        }
    }
}

impl<'r> WriteSession<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        WriteSession {
            repo,
            open: Mutex::new(OpenPack {
                data: PackBuilder::for_sealer(Vec::with_capacity(pack_capacity(repo)), &repo.sealer),
                spare: None,
                metadata: PackBuilder::for_sealer(Vec::new(), &repo.sealer),
                pending: HashSet::new(),
                writing: false,
                packs_indexed: 0,
            }),
            written: Condvar::new(),
            stats: Mutex::new(SessionStats::default()),
            overlapped: AtomicUsize::new(0),
        }
    }

    pub fn repo(&self) -> &Repository {
        self.repo
    }

    /// A permit to read a file with two windows in flight (one cut while the other is
    /// compressed), if fewer than [`OVERLAPPED_FILES`] files hold one. With every one of 16
    /// I/O threads on a large file, the second windows took a first snapshot of corpus (a) of
    /// `docs/performance.md` from 99 to 117-127 MiB, for no speed: a few files overlapped keep
    /// two cores busy. Never waits: waiting on a rayon thread that may hold a permit further
    /// down its stack could deadlock, so a file without a permit is read one window at a time.
    pub(crate) fn overlap_permit(&self) -> Option<OverlapPermit<'_>> {
        let take = |held: usize| (held < OVERLAPPED_FILES).then_some(held + 1);
        self.overlapped.fetch_update(Ordering::Relaxed, Ordering::Relaxed, take).ok()?;
        Some(OverlapPermit(&self.overlapped))
    }

    pub fn stats(&self) -> SessionStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the blobs among `items` (id, plaintext) that the repository lacks; compresses
    /// them in parallel. Returns the plaintext bytes that were new.
    ///
    /// A blob larger than a pack reader accepts ([`MAX_BLOB_RAW_BYTES`]) is refused here:
    /// written, it would make its whole pack unreadable, unrelated blobs included.
    pub fn store_many(&self, kind: BlobKind, items: &[(ChunkId, &[u8])]) -> Result<u64> {
        if let Some((_, data)) = items.iter().find(|(_, data)| data.len() > MAX_BLOB_RAW_BYTES as usize) {
            return Err(Error::TooLarge(format!(
                "a {} of {} bytes is larger than the {} bytes a pack can hold; a directory with this many \
                 entries cannot be stored (split it into subdirectories)",
                match kind {
                    BlobKind::Data => "chunk",
                    BlobKind::Tree => "directory listing",
                },
                data.len(),
                MAX_BLOB_RAW_BYTES
            )));
        }
        if kind == BlobKind::Tree {
            // Known to the index or not: the next snapshot's change detection reads them.
            items.iter().for_each(|(id, data)| self.repo.keep_own_blob(id, data));
        }
        let ids: Vec<ChunkId> = items.iter().map(|(id, _)| *id).collect();
        let generation = self.open.lock().unwrap_or_else(|p| p.into_inner()).packs_indexed;
        let known = self.repo.index.get_many(&ids)?;
        let mut seen = HashSet::new();
        let fresh: Vec<&(ChunkId, &[u8])> = items
            .iter()
            .zip(&known)
            .filter(|((id, _), k)| k.is_none() && seen.insert(*id))
            .map(|(item, _)| item)
            .collect();
        let level = self.repo.config.compression_level;
        let sealer = self.repo.sealer.as_ref();
        // Compress, then seal: each blob on its own, bound to its id (docs/format.md §13.5).
        let encoded: Vec<EncodedBlob> = fresh
            .par_iter()
            .map(|(id, data)| seal_blob(sealer, kind, id, encode_blob(data, level)?))
            .collect::<Result<_>>()?;
        let mut added = 0;
        for ((id, data), blob) in fresh.into_iter().zip(encoded) {
            if self.add(kind, *id, data.len(), blob, generation)? {
                added += data.len() as u64;
            }
        }
        Ok(added)
    }

    /// Stores one blob, returning its id.
    pub fn store(&self, kind: BlobKind, data: &[u8]) -> Result<ChunkId> {
        let id = self.repo.sealer.id_of(data);
        self.store_many(kind, &[(id, data)])?;
        Ok(id)
    }

    /// Stores a blob exactly as another repository with the same master key stored it
    /// (compressed and sealed, `raw_len` bytes of plaintext), unless this repository has it:
    /// `repo copy` between twins moves ciphertext without opening it again. The caller
    /// verified it. Returns whether it was stored.
    pub fn store_encoded(&self, kind: BlobKind, id: ChunkId, raw_len: u32, blob: EncodedBlob) -> Result<bool> {
        let generation = self.open.lock().unwrap_or_else(|p| p.into_inner()).packs_indexed;
        if self.repo.index.get(&id)?.is_some() {
            return Ok(false);
        }
        self.add(kind, id, raw_len as usize, blob, generation)
    }

    /// Adds an encoded blob unless another thread stored it meanwhile; writes the pack out
    /// when it is full.
    ///
    /// One pack is written at a time. A thread that fills a pack while the previous one is
    /// still being written waits for it: that backpressure keeps at most two packs in memory
    /// however many threads compress (without it, 8 threads on a slow disk held 8).
    ///
    /// `generation` is `packs_indexed` from before the caller looked `id` up in the index: if
    /// no pack of this session was indexed since, `pending` alone tells whether another thread
    /// stored `id` meanwhile, and the second index lookup is skipped (it cost 3-6 µs per chunk).
    fn add(&self, kind: BlobKind, id: ChunkId, raw_len: usize, blob: EncodedBlob, generation: u64) -> Result<bool> {
        let full = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let stored_meanwhile =
                open.pending.contains(&id) || (open.packs_indexed != generation && self.repo.index.get(&id)?.is_some());
            if stored_meanwhile {
                return Ok(false);
            }
            // `store_many` refused anything over MAX_BLOB_RAW_BYTES (512 MiB).
            let raw_len = raw_len as u32;
            open.builder(kind).add(id, kind, raw_len, &blob);
            open.pending.insert(id);
            let target = self.repo.config.pack_target_bytes as usize;
            loop {
                if open.builder(kind).data_len() < target {
                    break None;
                }
                if !open.writing {
                    open.writing = true;
                    break Some(match kind {
                        BlobKind::Data => {
                            let buffer =
                                open.spare.take().unwrap_or_else(|| Vec::with_capacity(pack_capacity(self.repo)));
                            std::mem::replace(&mut open.data, PackBuilder::for_sealer(buffer, &self.repo.sealer))
                        }
                        BlobKind::Tree => std::mem::replace(
                            &mut open.metadata,
                            PackBuilder::for_sealer(Vec::new(), &self.repo.sealer),
                        ),
                    });
                }
                open = self.written.wait(open).unwrap_or_else(|p| p.into_inner());
            }
        };
        if let Some(builder) = full {
            let result = self.write_pack(builder);
            self.open.lock().unwrap_or_else(|p| p.into_inner()).writing = false;
            self.written.notify_all();
            result?;
        }
        Ok(true)
    }

    /// Writes the open pack, if any. After this, every blob stored so far is durable and
    /// indexed, and records referencing them may be written.
    pub fn flush(&self) -> Result<()> {
        // Both before any snapshot or WAL record that names their blobs. (A tree may become
        // durable before chunks it names; that is harmless: whoever reuses the tree produced
        // the same nodes and stored their chunks in its own session first.)
        for kind in [BlobKind::Data, BlobKind::Tree] {
            let builder = {
                let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                while open.writing {
                    open = self.written.wait(open).unwrap_or_else(|p| p.into_inner());
                }
                std::mem::replace(open.builder(kind), PackBuilder::for_sealer(Vec::new(), &self.repo.sealer))
            };
            if !builder.is_empty() {
                self.write_pack(builder)?;
            }
        }
        Ok(())
    }

    fn write_pack(&self, builder: PackBuilder) -> Result<()> {
        self.repo.store_session_header()?;
        let pack = builder.finish(&self.repo.sealer)?;
        self.repo.backend.put(&pack_key(&pack.id), &pack.bytes, PutMode::Overwrite)?;
        self.repo.index.add_pack(pack.id, pack.bytes.len() as u64, &pack.entries)?;
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.chunks_added += pack.entries.len() as u64;
            stats.bytes_added += pack.raw_bytes;
            stats.bytes_stored += pack.bytes.len() as u64;
            stats.packs_written += 1;
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for e in &pack.entries {
            open.pending.remove(&e.id);
        }
        open.packs_indexed += 1;
        if pack.bytes.capacity() >= pack_capacity(self.repo) {
            open.spare = Some(pack.bytes);
        }
        Ok(())
    }
}

/// A file's chunk list while the file is read.
///
/// In a snapshot (`FileList::pieced`), each full piece of [`LIST_PIECE_CHUNKS`] refs is stored
/// as a blob as soon as a ref past it arrives, so a file in flight holds at most one piece of
/// its list, not all of it: a 64 MiB file at 1 KiB chunks has 55 000 refs (2-3.5 MiB with the
/// vector's growth), and 16 such files in flight took the first snapshot of the 5.5 M-chunk
/// repository of `docs/performance.md` past its memory bound. The pieces are those
/// [`WriteSession::file_content`] would cut from the whole list, so they deduplicate alike.
/// A WAL record holds a flat list (`FileList::flat`).
pub struct FileList {
    /// Pieces stored so far; empty while the file has at most [`LIST_PIECE_CHUNKS`] chunks.
    pieces: Vec<ListPiece>,
    /// Refs not yet in a stored piece.
    tail: Vec<ChunkRef>,
    store_pieces: bool,
}

impl FileList {
    pub fn pieced() -> Self {
        FileList { pieces: Vec::new(), tail: Vec::new(), store_pieces: true }
    }

    pub fn flat() -> Self {
        FileList { pieces: Vec::new(), tail: Vec::new(), store_pieces: false }
    }

    /// Every ref of a flat list.
    pub fn into_flat(self) -> Vec<ChunkRef> {
        assert!(!self.store_pieces, "a pieced list is not kept whole");
        self.tail
    }
}

impl WriteSession<'_> {
    /// Appends `refs` to `list`, storing each piece that is complete and followed by more refs
    /// (a list of exactly [`LIST_PIECE_CHUNKS`] stays inline).
    pub fn extend_list(&self, list: &mut FileList, refs: impl IntoIterator<Item = ChunkRef>) -> Result<()> {
        list.tail.extend(refs);
        if list.store_pieces {
            while list.tail.len() > LIST_PIECE_CHUNKS {
                list.pieces.push(self.store_piece(&list.tail[..LIST_PIECE_CHUNKS])?);
                list.tail.drain(..LIST_PIECE_CHUNKS);
            }
        }
        Ok(())
    }

    /// The content entry for a file whose refs are all in `list`.
    pub fn finish_list(&self, mut list: FileList) -> Result<NodeContent> {
        if list.pieces.is_empty() {
            return self.file_content(list.tail);
        }
        // Never empty: a piece is stored only when a ref past it arrived.
        list.pieces.push(self.store_piece(&list.tail)?);
        Ok(NodeContent::LargeFile { pieces: list.pieces })
    }

    /// The content entry for a file with `chunks`: inline when short, else stored as list
    /// pieces (each piece a blob, deduplicated like any other).
    pub fn file_content(&self, chunks: Vec<ChunkRef>) -> Result<NodeContent> {
        if chunks.len() <= LIST_PIECE_CHUNKS {
            return Ok(NodeContent::File { chunks });
        }
        let pieces = chunks.chunks(LIST_PIECE_CHUNKS).map(|part| self.store_piece(part)).collect::<Result<_>>()?;
        Ok(NodeContent::LargeFile { pieces })
    }

    fn store_piece(&self, part: &[ChunkRef]) -> Result<ListPiece> {
        let list = ChunkList { chunks: part.to_vec() };
        let id = self.store(BlobKind::Tree, &list.encode()?)?;
        let bytes = part.iter().map(|c| u64::from(c.len)).sum();
        Ok(ListPiece { id, chunks: part.len() as u32, bytes })
    }
}
