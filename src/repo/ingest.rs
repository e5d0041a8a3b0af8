//! Reading a file into the repository: open, chunk, hash, store. Shared by snapshots and WAL
//! pushes.

use std::fs::File;
use std::io;
use std::path::Path;

use rayon::prelude::*;

use crate::chunker::{chunk_file, Cuts, Piece};
use crate::error::Error;
use crate::fs::FileMeta;
use crate::id::ChunkId;
use crate::io::{FileData, ReadStrategy};
use crate::pack::BlobKind;
use crate::repo::{FileList, Repository, WriteSession};
use crate::snapshot::{ChunkRef, MAX_ZERO_RUN_BYTES};

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

/// Holes shorter than this are read as zeros rather than stored as zero runs: on a file with
/// many small holes (a database file with unwritten pages), every hole would otherwise restart
/// the chunker and cut small chunks around it. A restored file may allocate these short holes.
pub const MIN_HOLE_BYTES: u64 = 64 << 10;

impl WriteSession<'_> {
    /// Stores the data of the file at `path`, its refs going to `chunks` (pieced for a
    /// snapshot, flat for a WAL record); `on_bytes` hears of every batch read.
    pub fn store_file(
        &self,
        path: &Path,
        strategy: ReadStrategy,
        chunks: FileList,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<StoredFile, FileFailure> {
        self.store_opened(File::open(path)?, strategy, chunks, false, Cuts::ContentDefined, on_bytes)
    }

    /// Stores the data of an open file. With `sparse`, holes of at least [`MIN_HOLE_BYTES`]
    /// (found with `SEEK_DATA`/`SEEK_HOLE`, only in a file with fewer bytes allocated than its
    /// size) become zero-run refs that store nothing; `bytes` then counts them too. `cuts` says
    /// where chunks end (content-defined, or aligned for a paged file).
    pub fn store_opened(
        &self,
        file: File,
        strategy: ReadStrategy,
        mut chunks: FileList,
        sparse: bool,
        cuts: Cuts,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<StoredFile, FileFailure> {
        let meta = FileMeta::from_metadata(&file.metadata()?);
        let ranges = match sparse && meta.allocated < meta.size {
            true => merge_short_holes(crate::fs::data_ranges(&file, meta.size)?, meta.size),
            false => vec![(0, meta.size)],
        };
        if ranges == [(0, meta.size)] {
            let window = self.repo().config().chunker.window_bytes();
            let mut data = FileData::new(file, meta.size, meta.last_change(), strategy, window)?;
            let bytes = self.store_from(&mut data, 0, cuts, &mut chunks, on_bytes)?;
            return Ok(StoredFile { meta, chunks, bytes });
        }
        let bytes = self.store_ranges(&file, &meta, &ranges, (strategy, cuts), &mut chunks, on_bytes)?;
        Ok(StoredFile { meta, chunks, bytes })
    }

    /// Stores the data `ranges` of a sparse file, with zero runs between them and up to its
    /// size; returns the bytes covered (less than the size if it shrank while read).
    fn store_ranges(
        &self,
        file: &File,
        meta: &FileMeta,
        ranges: &[(u64, u64)],
        (strategy, cuts): (ReadStrategy, Cuts),
        chunks: &mut FileList,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, FileFailure> {
        let window = self.repo().config().chunker.window_bytes();
        let mut pos = 0;
        for &(start, end) in ranges {
            self.extend_list(chunks, zero_runs(start.saturating_sub(pos))).map_err(FileFailure::Repo)?;
            let mut data = FileData::new(file.try_clone()?, end, meta.last_change(), strategy, window)?;
            let read = self.store_from(&mut data, start, cuts, chunks, on_bytes)?;
            pos = start + read;
            if read < end - start {
                return Ok(pos); // shrank underneath: stored as read
            }
        }
        self.extend_list(chunks, zero_runs(meta.size.saturating_sub(pos))).map_err(FileFailure::Repo)?;
        Ok(meta.size.max(pos))
    }

    /// Chunks `data` from `start` (a cut point), stores new chunks, appends their refs to
    /// `chunks`; returns the bytes read.
    fn store_from(
        &self,
        data: &mut FileData,
        start: u64,
        cuts: Cuts,
        chunks: &mut FileList,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, FileFailure> {
        let permit = if data.len() - start > data.window_len() { self.overlap_permit() } else { None };
        chunk_file(&self.repo().config().chunker, cuts, data, start, permit.is_some(), |pieces: &[Piece<'_>]| {
            self.store_pieces(pieces, chunks, on_bytes)
        })
    }

    /// Hashes a batch of consecutive chunks in parallel, stores the new ones and appends their
    /// refs to `chunks`.
    fn store_pieces(
        &self,
        pieces: &[Piece<'_>],
        chunks: &mut FileList,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(), FileFailure> {
        let items: Vec<(ChunkId, &[u8])> =
            pieces.par_iter().map(|p| (self.repo().sealer.id_of(p.data), p.data)).collect();
        self.store_many(BlobKind::Data, &items).map_err(FileFailure::Repo)?;
        on_bytes(items.iter().map(|(_, d)| d.len() as u64).sum());
        let refs = items.iter().map(|(id, d)| ChunkRef { id: *id, len: d.len() as u32 });
        self.extend_list(chunks, refs).map_err(FileFailure::Repo)
    }

    /// Stores a stream (standard input, a command's output) as one file's data, chunked as
    /// it arrives; returns its refs (pieced) and its length. A read error is the source's.
    pub fn store_stream(
        &self,
        reader: &mut dyn std::io::Read,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(FileList, u64), FileFailure> {
        let mut chunks = FileList::pieced();
        let read = crate::chunker::chunk_stream(&self.repo().config().chunker, reader, |pieces: &[Piece<'_>]| {
            self.store_pieces(pieces, &mut chunks, on_bytes)
        })?;
        Ok((chunks, read))
    }

    /// Stores a file that grew since it was stored as `prev` (`prev_size` bytes): proves the
    /// old tail is unchanged by re-hashing `prev`'s last chunk from the file, then chunks only
    /// from that chunk's start onward (a cut point, so the cuts match a full read with `cuts`).
    /// `None` when the proof fails or the file did not grow: the caller reads it whole. The
    /// refs go to a pieced list (the unchanged pieces are found already stored).
    pub fn store_appended(
        &self,
        file: &File,
        prev: &[ChunkRef],
        prev_size: u64,
        (strategy, cuts): (ReadStrategy, Cuts),
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<Option<StoredFile>, FileFailure> {
        let Some((last, kept)) = prev.split_last() else { return Ok(None) };
        let meta = FileMeta::from_metadata(&file.metadata()?);
        if meta.size <= prev_size {
            return Ok(None);
        }
        let start = prev_size - u64::from(last.len);
        let mut data = FileData::new(
            file.try_clone()?,
            meta.size,
            meta.last_change(),
            strategy,
            self.repo().config().chunker.window_bytes(),
        )?;
        let window = data.window(start)?;
        let proven =
            window.len() >= last.len as usize && self.repo().sealer.id_of(&window[..last.len as usize]) == last.id;
        data.recycle(window);
        if !proven {
            return Ok(None);
        }
        let mut chunks = FileList::pieced();
        self.extend_list(&mut chunks, kept.iter().copied()).map_err(FileFailure::Repo)?;
        let read = self.store_from(&mut data, start, cuts, &mut chunks, on_bytes)?;
        Ok(Some(StoredFile { meta, chunks, bytes: start + read }))
    }
}

/// Zero-run refs covering `len` bytes.
fn zero_runs(len: u64) -> impl Iterator<Item = ChunkRef> {
    let max = u64::from(MAX_ZERO_RUN_BYTES);
    (0..len.div_ceil(max)).map(move |i| ChunkRef::zero_run((len - i * max).min(max) as u32))
}

/// `ranges` of a file of `size` bytes with holes shorter than [`MIN_HOLE_BYTES`] (at the
/// start, between ranges and at the end) joined into the data around them.
fn merge_short_holes(ranges: Vec<(u64, u64)>, size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start.saturating_sub(last.1) < MIN_HOLE_BYTES => last.1 = end,
            None if start < MIN_HOLE_BYTES => out.push((0, end)),
            _ => out.push((start, end)),
        }
    }
    if let Some(last) = out.last_mut().filter(|l| size.saturating_sub(l.1) < MIN_HOLE_BYTES) {
        last.1 = size;
    }
    out
}

/// The chunks a file would be stored as in `repo` (its chunker and id function), without
/// storing anything: to compare a file with a copy already in the repository.
pub fn hash_file(repo: &Repository, path: &Path) -> io::Result<(FileMeta, Vec<ChunkRef>)> {
    let params = &repo.config().chunker;
    let file = File::open(path)?;
    let meta = FileMeta::from_metadata(&file.metadata()?);
    let mut data = FileData::new(file, meta.size, meta.last_change(), ReadStrategy::Copy, params.window_bytes())?;
    let mut chunks = Vec::new();
    chunk_file(params, Cuts::ContentDefined, &mut data, 0, true, |pieces: &[Piece<'_>]| {
        chunks.extend(
            pieces
                .par_iter()
                .map(|p| ChunkRef { id: repo.sealer.id_of(p.data), len: p.data.len() as u32 })
                .collect::<Vec<_>>(),
        );
        Ok::<(), io::Error>(())
    })?;
    Ok((meta, chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_holes_merge_and_long_runs_split() {
        let k = 1u64 << 10;
        let ranges = vec![(4 * k, 8 * k), (20 * k, 30 * k), (200 * k, 210 * k)];
        assert_eq!(merge_short_holes(ranges.clone(), 1 << 30), vec![(0, 30 * k), (200 * k, 210 * k)]);
        assert_eq!(merge_short_holes(ranges, 220 * k), vec![(0, 30 * k), (200 * k, 220 * k)]);
        let runs: Vec<u32> = zero_runs(3 * u64::from(MAX_ZERO_RUN_BYTES) + 5).map(|r| r.len).collect();
        assert_eq!(runs, vec![MAX_ZERO_RUN_BYTES, MAX_ZERO_RUN_BYTES, MAX_ZERO_RUN_BYTES, 5]);
        assert!(zero_runs(0).next().is_none());
    }
}
