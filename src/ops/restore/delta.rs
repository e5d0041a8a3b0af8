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

/// Chunks compared per task: enough work per task, many tasks per large file.
const CHUNKS_PER_TASK: usize = 64;

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
    let parts: Vec<io::Result<Reused>> = placed
        .par_chunks(CHUNKS_PER_TASK)
        .map(|group| {
            let mut part = Reused { bytes: 0, missing: Vec::new() };
            let mut buf = Vec::new();
            for &(id, offset, len) in group {
                if offset + u64::from(len) <= old_len {
                    buf.resize(len as usize, 0);
                    if old.read_exact_at(&mut buf, offset).is_ok() && sealer.id_of(&buf) == id {
                        if let Some(new) = new {
                            new.write_all_at(&buf, offset)?;
                        }
                        part.bytes += u64::from(len);
                        continue;
                    }
                }
                part.missing.push((id, offset));
            }
            Ok(part)
        })
        .collect();
    let mut all = Reused { bytes: 0, missing: Vec::new() };
    for part in parts {
        let part = part?;
        all.bytes += part.bytes;
        all.missing.extend(part.missing);
    }
    Ok(all)
}
