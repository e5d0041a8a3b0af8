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
use crate::repo::WriteSession;
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
/// the read shows up as a change next time), its chunks, and the bytes actually read (less
/// than `meta.size` when it shrank underneath).
pub struct StoredFile {
    pub meta: FileMeta,
    pub chunks: Vec<ChunkRef>,
    pub bytes: u64,
}

impl WriteSession<'_> {
    /// Stores the data of the file at `path`; `on_bytes` hears of every batch read.
    pub fn store_file(
        &self,
        path: &Path,
        strategy: ReadStrategy,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<StoredFile, FileFailure> {
        let file = File::open(path)?;
        let meta = FileMeta::from_metadata(&file.metadata()?);
        let mut data = FileData::new(file, meta.size, meta.last_change(), strategy)?;
        let mut chunks = Vec::new();
        let bytes = chunk_file(&self.repo().config().chunker, &mut data, 0, |pieces: &[Piece<'_>]| {
            let items: Vec<(ChunkId, &[u8])> = pieces.par_iter().map(|p| (ChunkId::of(p.data), p.data)).collect();
            self.store_many(BlobKind::Data, &items).map_err(FileFailure::Repo)?;
            on_bytes(items.iter().map(|(_, d)| d.len() as u64).sum());
            chunks.extend(items.iter().map(|(id, d)| ChunkRef { id: *id, len: d.len() as u32 }));
            Ok::<(), FileFailure>(())
        })?;
        Ok(StoredFile { meta, chunks, bytes })
    }
}

/// The chunks a file would be stored as, without storing anything: to compare a file with a
/// copy already in the repository.
pub fn hash_file(params: &ChunkerParams, path: &Path) -> io::Result<(FileMeta, Vec<ChunkRef>)> {
    let file = File::open(path)?;
    let meta = FileMeta::from_metadata(&file.metadata()?);
    let mut data = FileData::new(file, meta.size, meta.last_change(), ReadStrategy::Copy)?;
    let mut chunks = Vec::new();
    chunk_file(params, &mut data, 0, |pieces: &[Piece<'_>]| {
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
