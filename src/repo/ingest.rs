//! Reading a file into the repository: open, chunk, hash, store. Shared by snapshots and WAL
//! pushes.

use std::fs::File;
use std::io;
use std::path::Path;

use rayon::prelude::*;

use crate::chunker::{chunk_file, ChunkerParams, Piece};
use crate::error::Error;
use crate::fs::FileMeta;
use crate::id::ChunkId;
use crate::io::{FileData, ReadStrategy};
use crate::pack::BlobKind;
use crate::repo::{FileList, WriteSession};
use crate::snapshot::ChunkRef;

/// Why a file could not be stored: its own fault (skip it) or the repository's (abort).
#[derive(Debug)]
pub enum FileFailure {
    Source(io::Error),
    Repo(Error),
}

impl From<io::Error> for FileFailure {
    fn from(e: io::Error) -> Self {
        FileFailure::Source(e)
    }
}

/// A file as stored: metadata from the open handle (taken before reading, so a change during
/// the read shows up as a change next time), its chunk list, and the bytes actually read (less
/// than `meta.size` when it shrank underneath).
pub struct StoredFile {
    pub meta: FileMeta,
    pub chunks: FileList,
    pub bytes: u64,
}

impl WriteSession<'_> {
    /// Stores the data of the file at `path`, its refs going to `chunks` (pieced for a
    /// snapshot, flat for a WAL record); `on_bytes` hears of every batch read.
    pub fn store_file(
        &self,
        path: &Path,
        strategy: ReadStrategy,
        mut chunks: FileList,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<StoredFile, FileFailure> {
        let file = File::open(path)?;
        let meta = FileMeta::from_metadata(&file.metadata()?);
        let mut data =
            FileData::new(file, meta.size, meta.last_change(), strategy, self.repo().config().chunker.window_bytes())?;
        let bytes = self.store_from(&mut data, 0, &mut chunks, on_bytes)?;
        Ok(StoredFile { meta, chunks, bytes })
    }

    /// Chunks `data` from `start` (a cut point), stores new chunks, appends their refs to
    /// `chunks`; returns the bytes read.
    fn store_from(
        &self,
        data: &mut FileData,
        start: u64,
        chunks: &mut FileList,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, FileFailure> {
        let permit = if data.len() - start > data.window_len() { self.overlap_permit() } else { None };
        chunk_file(&self.repo().config().chunker, data, start, permit.is_some(), |pieces: &[Piece<'_>]| {
            let items: Vec<(ChunkId, &[u8])> = pieces.par_iter().map(|p| (ChunkId::of(p.data), p.data)).collect();
            self.store_many(BlobKind::Data, &items).map_err(FileFailure::Repo)?;
            on_bytes(items.iter().map(|(_, d)| d.len() as u64).sum());
            let refs = items.iter().map(|(id, d)| ChunkRef { id: *id, len: d.len() as u32 });
            self.extend_list(chunks, refs).map_err(FileFailure::Repo)
        })
    }

    /// Stores a file that grew since it was stored as `prev` (`prev_size` bytes): proves the
    /// old tail is unchanged by re-hashing `prev`'s last chunk from the file, then chunks only
    /// from that chunk's start onward (a FastCDC cut point, so the cuts match a full read).
    /// `None` when the proof fails or the file did not grow: the caller reads it whole. The
    /// refs go to a pieced list (the unchanged pieces are found already stored).
    pub fn store_appended(
        &self,
        path: &Path,
        prev: &[ChunkRef],
        prev_size: u64,
        strategy: ReadStrategy,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<Option<StoredFile>, FileFailure> {
        let Some((last, kept)) = prev.split_last() else { return Ok(None) };
        let file = File::open(path)?;
        let meta = FileMeta::from_metadata(&file.metadata()?);
        if meta.size <= prev_size {
            return Ok(None);
        }
        let start = prev_size - u64::from(last.len);
        let mut data =
            FileData::new(file, meta.size, meta.last_change(), strategy, self.repo().config().chunker.window_bytes())?;
        let window = data.window(start)?;
        let proven = window.len() >= last.len as usize && ChunkId::of(&window[..last.len as usize]) == last.id;
        data.recycle(window);
        if !proven {
            return Ok(None);
        }
        let mut chunks = FileList::pieced();
        self.extend_list(&mut chunks, kept.iter().copied()).map_err(FileFailure::Repo)?;
        let read = self.store_from(&mut data, start, &mut chunks, on_bytes)?;
        Ok(Some(StoredFile { meta, chunks, bytes: start + read }))
    }
}

/// The chunks a file would be stored as, without storing anything: to compare a file with a
/// copy already in the repository.
pub fn hash_file(params: &ChunkerParams, path: &Path) -> io::Result<(FileMeta, Vec<ChunkRef>)> {
    let file = File::open(path)?;
    let meta = FileMeta::from_metadata(&file.metadata()?);
    let mut data = FileData::new(file, meta.size, meta.last_change(), ReadStrategy::Copy, params.window_bytes())?;
    let mut chunks = Vec::new();
    chunk_file(params, &mut data, 0, true, |pieces: &[Piece<'_>]| {
        chunks.extend(
            pieces
                .par_iter()
                .map(|p| ChunkRef { id: ChunkId::of(p.data), len: p.data.len() as u32 })
                .collect::<Vec<_>>(),
        );
        Ok::<(), io::Error>(())
    })?;
    Ok((meta, chunks))
}
