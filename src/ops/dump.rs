//! `dump`: one file of a snapshot written to a stream (stdout), every chunk verified before
//! its bytes are written, so a pipe (`cairn dump latest db.sql | psql`) never receives bytes
//! the repository did not prove.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::browse::resolve_path;
use crate::repo::Repository;
use crate::snapshot::{NodeContent, Snapshot};

/// Chunks read in parallel at a time: enough to hide an object store's latency, few enough
/// (at most 4 MiB of 128 KiB chunks) to keep memory flat.
const BATCH: usize = 32;

/// Hands the content of the regular file at `path` (absolute, or relative to the snapshot's
/// path) to `out` in order, verified piece by piece; returns the bytes handed over. A
/// directory, symlink or special file is an invalid argument naming what it is. An error from
/// `out` (a closed pipe) stops the dump and is returned.
pub fn dump(
    repo: &Repository,
    snapshot: &Snapshot,
    path: &str,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    repo.require_read("read a snapshot's files")?;
    let (path, node) = resolve_path(repo, snapshot, path)?;
    if !matches!(node.content, NodeContent::File { .. } | NodeContent::LargeFile { .. }) {
        return Err(Error::InvalidArgument(format!(
            "{path} is a {} in the snapshot, not a file: `cairn dump` writes one file's content (use `cairn restore --include` for more)",
            node.kind_name()
        )));
    }
    let chunks = repo.file_chunks(&node)?;
    let mut written = 0u64;
    for batch in chunks.chunks(BATCH) {
        let data: Vec<Vec<u8>> = batch
            .par_iter()
            .map(|c| match c.is_zero_run() {
                true => Ok(vec![0; c.len as usize]),
                false => repo.read_blob(&c.id),
            })
            .collect::<Result<_>>()?;
        for d in data {
            out(&d)?;
            written += d.len() as u64;
        }
    }
    if written != node.size {
        return Err(Error::corrupt(
            format!("file {path}"),
            format!("chunks hold {written} bytes, the entry says {}", node.size),
        ));
    }
    Ok(written)
}
