//! `stats`: what the chosen snapshots hold and what they cost: the bytes a restore of each
//! would write, the distinct data they reference, what that occupies in packs, and so the
//! deduplication and compression ratios.
//!
//! Trees are content-addressed, so a directory unchanged between snapshots is one tree: each
//! distinct tree is walked once, and a run over many hourly snapshots reads about as many trees
//! as changed. Memory: one entry per distinct chunk and tree seen (about 60 bytes each).

use std::collections::HashSet;

use serde::Serialize;

use crate::error::Result;
use crate::id::{ChunkId, SnapshotId};
use crate::repo::Repository;
use crate::snapshot::{ChunkRef, NodeContent, Snapshot};

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub snapshots: u64,
    /// Files and their bytes summed over the snapshots (what restoring each would write).
    pub files: u64,
    pub restore_bytes: u64,
    /// Distinct data chunks the snapshots reference, and their plaintext bytes.
    pub unique_chunks: u64,
    pub unique_bytes: u64,
    /// What those chunks occupy in packs (compressed, and sealed when encrypted).
    pub stored_bytes: u64,
    /// Distinct trees and chunk lists, and what they occupy in packs.
    pub metadata_blobs: u64,
    pub metadata_stored_bytes: u64,
}

impl Stats {
    /// Restore bytes per unique byte: how much deduplication saves (≥ 1 when anything repeats).
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.restore_bytes, self.unique_bytes)
    }

    /// Unique bytes per stored byte: what compression saves.
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.unique_bytes, self.stored_bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Counts `snapshots` (each counted once even if given twice).
pub fn stats(repo: &Repository, snapshots: &[(SnapshotId, Snapshot)]) -> Result<Stats> {
    repo.require_read("measure snapshots")?;
    let mut out = Stats::default();
    let mut seen_snapshots = HashSet::new();
    let mut seen: HashSet<ChunkId> = HashSet::new();
    for (id, snap) in snapshots {
        if !seen_snapshots.insert(*id) {
            continue;
        }
        out.snapshots += 1;
        out.files += snap.summary.files;
        out.restore_bytes += snap.summary.bytes;
        let mut trees = vec![snap.root];
        while let Some(tree_id) = trees.pop() {
            if !seen.insert(tree_id) {
                continue;
            }
            count_metadata(repo, &tree_id, &mut out)?;
            for node in repo.load_tree(&tree_id)?.nodes {
                if let Some(sub) = node.subtree() {
                    trees.push(sub);
                    continue;
                }
                match &node.content {
                    NodeContent::File { chunks } => count_chunks(repo, chunks, &mut seen, &mut out)?,
                    // A piece seen before holds chunks counted before: skipped unread.
                    NodeContent::LargeFile { pieces } => {
                        for p in pieces {
                            if !seen.insert(p.id) {
                                continue;
                            }
                            count_metadata(repo, &p.id, &mut out)?;
                            count_chunks(repo, &repo.load_chunk_list(&p.id)?.chunks, &mut seen, &mut out)?;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

fn count_chunks(repo: &Repository, chunks: &[ChunkRef], seen: &mut HashSet<ChunkId>, out: &mut Stats) -> Result<()> {
    for chunk in chunks.iter().filter(|c| !c.is_zero_run()) {
        if seen.insert(chunk.id) {
            let loc = repo.locate(&chunk.id)?;
            out.unique_chunks += 1;
            out.unique_bytes += u64::from(loc.raw_len);
            out.stored_bytes += u64::from(loc.stored_len);
        }
    }
    Ok(())
}

fn count_metadata(repo: &Repository, id: &ChunkId, out: &mut Stats) -> Result<()> {
    let loc = repo.locate(id)?;
    out.metadata_blobs += 1;
    out.metadata_stored_bytes += u64::from(loc.stored_len);
    Ok(())
}
