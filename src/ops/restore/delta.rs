//! Chunk-level delta restore: a target file that already exists is read where the snapshot's
//! chunks lie, and every chunk whose bytes there still hash to its id is copied from it instead
//! of being fetched from the repository. Rolling a database file back an hour, where a few
//! percent of its pages changed, then reads only the changed chunks from the repository.
//!
//! Chunks are compared at the offsets the snapshot gives them (pages rewritten in place and
//! files that grew keep their offsets); content that moved is fetched. The hash is the
//! repository's chunk id function: keyed BLAKE3 in an encrypted repository, so an unkeyed hash
//! would match nothing there and every chunk would be fetched.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;

use crate::crypto::Sealer;
use crate::id::ChunkId;

/// Makes the ranges of `holes` (offset, length) read as zeros in a file rewritten in place:
/// punched out where the filesystem can, written with zeros where it cannot.
pub(super) fn clear(file: &File, holes: &[(u64, u64)]) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    for &(offset, len) in holes {
        let punch = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        if rustix::fs::fallocate(file, punch, offset, len).is_ok() {
            continue;
        }
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], offset + done)?;
            done += n as u64;
        }
    }
    Ok(())
}

/// Chunks compared per task, read in one piece: ~2 MiB at the default chunk size, enough for
/// sequential reads, many tasks per large file.
const CHUNKS_PER_TASK: usize = 64;
/// Largest single read of the existing file; a group spread wider (holes between its chunks)
/// is read chunk by chunk.
const MAX_SPAN_BYTES: u64 = 16 << 20;

pub(super) struct Reused {
    /// Bytes copied from the existing file.
    pub bytes: u64,
    /// Chunks still to fetch, with their offsets.
    pub missing: Vec<(ChunkId, u64)>,
}

/// Copies into `new` every chunk of `placed` (id, offset, length) that `old` holds at the same
/// offset, verified by its id under `sealer`. With `new` = `None` the file is being rewritten
/// in place (`--in-place`): a matching chunk is already where it belongs and is left alone.
pub(super) fn reuse(
    old: &File,
    new: Option<&File>,
    placed: &[(ChunkId, u64, u32)],
    sealer: &Sealer,
) -> io::Result<Reused> {
    let old_len = old.metadata()?.len();
    let parts: Vec<io::Result<Reused>> =
        placed.par_chunks(CHUNKS_PER_TASK).map(|group| compare_group(old, old_len, new, group, sealer)).collect();
    let mut all = Reused { bytes: 0, missing: Vec::new() };
    for part in parts {
        let part = part?;
        all.bytes += part.bytes;
        all.missing.extend(part.missing);
    }
    Ok(all)
}

/// [`reuse`] for one group of chunks (in file order). The group is read in one piece when it
/// spans at most [`MAX_SPAN_BYTES`]: large sequential reads, where a read per chunk left a cold
/// file's readahead useless (`docs/performance.md`, "Delta restore").
fn compare_group(
    old: &File,
    old_len: u64,
    new: Option<&File>,
    group: &[(ChunkId, u64, u32)],
    sealer: &Sealer,
) -> io::Result<Reused> {
    let mut part = Reused { bytes: 0, missing: Vec::new() };
    let start = group[0].1;
    let end = group.iter().map(|&(_, o, l)| o + u64::from(l)).max().unwrap_or(start);
    let span = (end - start <= MAX_SPAN_BYTES).then(|| read_span(old, start, end.min(old_len))).flatten();
    let mut one = Vec::new();
    for &(id, offset, len) in group {
        let chunk_end = offset + u64::from(len);
        let bytes: Option<&[u8]> = match &span {
            Some(span) => span.get((offset - start) as usize..(chunk_end - start) as usize),
            None if chunk_end <= old_len => {
                one.resize(len as usize, 0);
                old.read_exact_at(&mut one, offset).ok().map(|_| &one[..])
            }
            None => None,
        };
        match bytes.filter(|b| sealer.id_of(b) == id) {
            Some(bytes) => {
                if let Some(new) = new {
                    new.write_all_at(bytes, offset)?;
                }
                part.bytes += u64::from(len);
            }
            None => part.missing.push((id, offset)),
        }
    }
    Ok(part)
}

/// Bytes `start..end` of `file` (empty when `start >= end`), or `None` if they cannot be read.
fn read_span(file: &File, start: u64, end: u64) -> Option<Vec<u8>> {
    let mut span = vec![0u8; end.saturating_sub(start) as usize];
    file.read_exact_at(&mut span, start).ok().map(|_| span)
}
