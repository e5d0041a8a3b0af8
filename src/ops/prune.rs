//! `prune`: delete data no snapshot and no WAL record references.
//!
//! Planned first, then applied (`--dry-run` prints the plan):
//! 1. **mark** — walk every snapshot's trees and every WAL record, putting each referenced
//!    chunk id into a [`MarkSet`] on disk (memory stays flat); a tree already marked is not
//!    walked again;
//! 2. **plan** — read every pack's trailer; a blob is *used* when it is marked and the index
//!    locates it in this pack (other copies are duplicates). Packs with nothing used are
//!    deleted; packs whose unused share exceeds `max_unused_percent` are repacked;
//! 3. **apply** — copy the used blobs of repacked packs into new packs (stored bytes copied,
//!    each blob verified first), make the new packs and the index durable, then — after
//!    re-checking the exclusive lock — remove the old packs from the index and delete them, and
//!    delete temporary files left by interrupted writes.
//!
//! The whole run holds the exclusive lock: no writer can reference a chunk while prune decides
//! it is unused.

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::PutMode;
use crate::error::{Error, Result};
use crate::id::{ChunkId, PackId};
use crate::index::MarkSet;
use crate::pack::{parse_pack, verify_blob, BlobEntry, EncodedBlob, PackBuilder};
use crate::progress::Progress;
use crate::repo::{pack_key, Access, LockKind, Repository};
use crate::snapshot::NodeContent;

#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this share of its bytes is unused.
    pub max_unused_percent: f64,
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { max_unused_percent: 10.0, dry_run: false }
    }
}

/// What prune will do (or did).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PrunePlan {
    pub snapshots: u64,
    pub wal_records: u64,
    pub packs: u64,
    pub pack_bytes: u64,
    pub used_bytes: u64,
    pub unused_bytes: u64,
    /// Packs with no used blob.
    pub delete: Vec<String>,
    /// Packs whose used blobs are copied into new packs before they are deleted.
    pub repack: Vec<String>,
    /// Used bytes copied by the repack.
    pub repack_bytes: u64,
    /// Bytes the deletions free (minus the repacked copies).
    pub freed_bytes: u64,
    pub temporary_files: Vec<String>,
    pub dry_run: bool,
}

struct PackUse {
    id: PackId,
    size: u64,
    used: Vec<BlobEntry>,
    used_bytes: u64,
    unused_bytes: u64,
}

pub fn prune(repo: &Repository, opts: &PruneOptions, progress: &dyn Progress) -> Result<PrunePlan> {
    if repo.access() != Access::Write || !repo.index().shared_writer() {
        return Err(Error::Locked("prune needs the index for writing, and another process holds it".into()));
    }
    // Taking the lock also syncs the index, so packs written by guests are known before
    // deciding what is used.
    let lock = repo.lock(LockKind::Exclusive, "prune")?;
    progress.phase("prune: mark", None);
    let marks = MarkSet::on_disk()?;
    let (snapshots, wal_records) = mark(repo, &marks)?;
    progress.phase("prune: plan", None);
    let uses = plan_packs(repo, &marks)?;
    let mut plan = PrunePlan { snapshots, wal_records, dry_run: opts.dry_run, ..Default::default() };
    let mut to_repack = Vec::new();
    let mut to_delete = Vec::new();
    for u in uses {
        plan.packs += 1;
        plan.pack_bytes += u.size;
        plan.used_bytes += u.used_bytes;
        plan.unused_bytes += u.unused_bytes;
        let total = (u.used_bytes + u.unused_bytes).max(1) as f64;
        if u.used.is_empty() {
            plan.delete.push(u.id.to_hex());
            plan.freed_bytes += u.size;
            to_delete.push(u.id);
        } else if u.unused_bytes as f64 / total * 100.0 > opts.max_unused_percent {
            plan.repack.push(u.id.to_hex());
            plan.repack_bytes += u.used_bytes;
            plan.freed_bytes += u.size - u.used_bytes;
            to_repack.push(u);
        }
    }
    plan.temporary_files = repo.backend().stray_temporaries()?;
    if opts.dry_run {
        return Ok(plan);
    }
    progress.phase("prune: repack", Some(plan.repack_bytes));
    repack(repo, &to_repack, progress)?;
    repo.index().persist()?;
    lock.verify()?;
    progress.phase("prune: delete", None);
    for r in &to_repack {
        to_delete.push(r.id);
    }
    for id in to_delete {
        let entries = repo.read_trailer(&id, repo.backend().size(&pack_key(&id))?.unwrap_or(0)).unwrap_or_default();
        let ids: Vec<ChunkId> = entries.iter().map(|e| e.id).collect();
        repo.index().remove_pack(id, if ids.is_empty() { None } else { Some(&ids) })?;
        repo.backend().delete(&pack_key(&id))?;
    }
    repo.index().persist()?;
    for t in &plan.temporary_files {
        repo.backend().delete_temporary(t)?;
    }
    progress.finish();
    Ok(plan)
}

/// Marks every chunk and tree referenced by a snapshot or a WAL record.
fn mark(repo: &Repository, marks: &MarkSet) -> Result<(u64, u64)> {
    let ids = repo.snapshot_ids()?;
    for id in &ids {
        // A snapshot that cannot be read stops the prune: we cannot know what it needs.
        let snap = repo.load_snapshot(id)?;
        mark_tree(repo, marks, snap.root)?;
    }
    let mut wal = 0u64;
    repo.for_each_wal(None, &mut |r| {
        wal += 1;
        for c in &r.chunks {
            marks.insert(&c.id)?;
        }
        Ok(())
    })?;
    Ok((ids.len() as u64, wal))
}

fn mark_tree(repo: &Repository, marks: &MarkSet, tree_id: ChunkId) -> Result<()> {
    if !marks.insert(&tree_id)? {
        return Ok(()); // already walked
    }
    let tree = repo.load_tree(&tree_id)?;
    for node in &tree.nodes {
        match &node.content {
            NodeContent::Dir { subtree } => mark_tree(repo, marks, *subtree)?,
            NodeContent::File { chunks } => {
                for id in chunks.iter().filter_map(|c| c.stored_id()) {
                    marks.insert(&id)?;
                }
            }
            NodeContent::LargeFile { pieces } => {
                for p in pieces {
                    if marks.insert(&p.id)? {
                        for id in repo.load_chunk_list(&p.id)?.chunks.iter().filter_map(|c| c.stored_id()) {
                            marks.insert(&id)?;
                        }
                    }
                }
            }
            _ => {} // symlinks and special files reference no blob
        }
    }
    Ok(())
}

/// How much of each pack is used.
fn plan_packs(repo: &Repository, marks: &MarkSet) -> Result<Vec<PackUse>> {
    let packs = repo.list_packs()?;
    packs
        .par_iter()
        .map(|(id, size)| {
            let entries = repo.read_trailer(id, *size)?;
            let mut u = PackUse { id: *id, size: *size, used: Vec::new(), used_bytes: 0, unused_bytes: 0 };
            for e in entries {
                let used = marks.contains(&e.id)? && repo.index().get(&e.id)?.is_some_and(|l| l.pack == *id);
                if used {
                    u.used_bytes += u64::from(e.stored_len);
                    u.used.push(e);
                } else {
                    u.unused_bytes += u64::from(e.stored_len);
                }
            }
            Ok(u)
        })
        .collect()
}

/// Copies the used blobs of `packs` into new packs, verified, and indexes them.
fn repack(repo: &Repository, packs: &[PackUse], progress: &dyn Progress) -> Result<()> {
    let target = repo.config().pack_target_bytes as usize;
    let mut builder = PackBuilder::new();
    for p in packs {
        let bytes = repo.backend().get(&pack_key(&p.id))?;
        let what = format!("pack {}", p.id);
        parse_pack(&bytes, &what)?;
        for e in &p.used {
            let stored = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            // Never copy damage forward: a blob that does not verify stops the prune.
            verify_blob(e, stored, &what)?;
            builder.add(e.id, e.kind, e.raw_len, &EncodedBlob { codec: e.codec, bytes: stored.to_vec() });
            progress.add_bytes(u64::from(e.stored_len));
            if builder.data_len() >= target {
                write_pack(repo, std::mem::take(&mut builder))?;
            }
        }
    }
    if !builder.is_empty() {
        write_pack(repo, builder)?;
    }
    Ok(())
}

fn write_pack(repo: &Repository, builder: PackBuilder) -> Result<()> {
    let pack = builder.finish();
    repo.backend().put(&pack_key(&pack.id), &pack.bytes, PutMode::Overwrite)?;
    repo.index().add_pack(pack.id, pack.bytes.len() as u64, &pack.entries)
}
