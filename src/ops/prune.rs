//! `prune`: delete data no snapshot and no WAL record references.
//!
//! Planned first, then applied (`--dry-run` prints the plan):
//! 1. **mark** — walk every snapshot's trees and every WAL record, putting each referenced
//!    chunk id into a [`MarkSet`] on disk (memory stays flat); a tree already marked is not
//!    walked again;
//! 2. **plan** — read every pack's trailer; a blob is *used* when it is marked and the index
//!    locates it in this pack (other copies are duplicates). Packs with nothing used are
//!    deleted; packs whose unused share exceeds `max_unused_percent` are repacked;
//! 3. **apply** — after re-checking the exclusive lock, delete the unused packs (index entries
//!    first) and temporary files left by interrupted writes: this needs no space and frees
//!    some, so a full repository can always make progress. Then repack, most unused first:
//!    copy the used blobs of a few packs into a new pack (stored bytes copied, each blob
//!    verified first), make it and the index durable, re-check the lock, and delete the packs
//!    it replaces, so the repack needs room for about one new pack at a time. A full disk
//!    stops the repack early (reported, not an error): what is left waits for the next prune.
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
use crate::repo::{pack_key, Access, LockGuard, LockKind, Repository};
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
    /// Temporary files left by interrupted writes: removed when older than an hour.
    pub temporary_files: Vec<String>,
    /// Those of `temporary_files` kept because they are younger than an hour: they may be a
    /// write still in progress.
    pub temporary_kept: Vec<String>,
    pub dry_run: bool,
    /// Packs of `repack` that were repacked (all of them unless the repack stopped).
    pub repacked: u64,
    /// Why the repack stopped early (no space left for a new pack); the rest waits for the
    /// next prune, nothing is lost.
    pub repack_stopped: Option<String>,
}

struct PackUse {
    id: PackId,
    size: u64,
    used: Vec<BlobEntry>,
    used_bytes: u64,
    unused_bytes: u64,
}

pub fn prune(repo: &Repository, opts: &PruneOptions, progress: &dyn Progress) -> Result<PrunePlan> {
    // Marking what is used reads every snapshot's trees.
    repo.require_read("prune (it must read which data the snapshots use)")?;
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
    // Deleting needs no space and frees some: on a full disk it is what makes room for the
    // repack, so it comes first (after re-checking the lock, as before every deletion).
    lock.verify()?;
    progress.phase("prune: delete", None);
    delete_packs(repo, &to_delete)?;
    for t in &plan.temporary_files {
        if !repo.backend().delete_temporary(t)? {
            plan.temporary_kept.push(t.clone());
        }
    }
    // Most unused first: the most space freed for each byte copied, should space run out.
    to_repack.sort_by(|a, b| b.unused_bytes.cmp(&a.unused_bytes).then(a.id.cmp(&b.id)));
    progress.phase("prune: repack", Some(plan.repack_bytes));
    let (done, stopped) = repack(repo, &lock, &to_repack, progress)?;
    if stopped.is_some() {
        let undone: u64 = to_repack[done..].iter().map(|u| u.size.saturating_sub(u.used_bytes)).sum();
        plan.freed_bytes = plan.freed_bytes.saturating_sub(undone);
    }
    plan.repack_stopped = stopped;
    plan.repacked = done as u64;
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

/// Marks the tree `root` and everything below it. Walks with a work list of trees still to
/// mark, not by recursion, so no depth of tree can exhaust the stack; the list holds the
/// unwalked subdirectories of the levels above the current one.
fn mark_tree(repo: &Repository, marks: &MarkSet, root: ChunkId) -> Result<()> {
    let mut pending = vec![root];
    while let Some(tree_id) = pending.pop() {
        if !marks.insert(&tree_id)? {
            continue; // already walked
        }
        let tree = repo.load_tree(&tree_id)?;
        for node in &tree.nodes {
            match &node.content {
                NodeContent::Dir { subtree } => pending.push(*subtree),
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

/// Removes packs from the index and deletes them.
fn delete_packs(repo: &Repository, ids: &[PackId]) -> Result<()> {
    for id in ids {
        let entries = repo.read_trailer(id, repo.backend().size(&pack_key(id))?.unwrap_or(0)).unwrap_or_default();
        let chunks: Vec<ChunkId> = entries.iter().map(|e| e.id).collect();
        repo.index().remove_pack(*id, if chunks.is_empty() { None } else { Some(&chunks) })?;
        repo.backend().delete(&pack_key(id))?;
    }
    repo.index().persist()
}

/// Copies the used blobs of `packs` into new packs, verified and indexed, deleting the packs
/// each new one replaces as soon as it is durable: the repack needs free space for about one
/// new pack at a time, which the deletions before it provide. Returns how many of `packs` were
/// repacked, and why it stopped early if it did (no space for a new pack).
fn repack(
    repo: &Repository,
    lock: &LockGuard,
    packs: &[PackUse],
    progress: &dyn Progress,
) -> Result<(usize, Option<String>)> {
    let target = repo.config().pack_target_bytes as usize;
    let fresh = || PackBuilder::for_sealer(Vec::new(), repo.sealer());
    let mut builder = fresh();
    let (mut done, mut pending) = (0usize, Vec::new());
    for p in packs {
        let bytes = repo.backend().get(&pack_key(&p.id))?;
        let what = format!("pack {}", p.id);
        parse_pack(&bytes, repo.sealer(), &what)?;
        for e in &p.used {
            let stored = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            // Never copy damage forward: a blob that does not verify stops the prune.
            // Sealed blobs are bound to their ids, not their pack: they move as they are.
            verify_blob(e, stored, &what, repo.sealer())?;
            builder.add(e.id, e.kind, e.raw_len, &EncodedBlob { codec: e.codec, bytes: stored.to_vec() });
            progress.add_bytes(u64::from(e.stored_len));
        }
        pending.push(p.id);
        // Whole source packs only, so each new pack replaces a set of old ones completely.
        if builder.data_len() >= target {
            if let Some(why) = replace(repo, lock, std::mem::replace(&mut builder, fresh()), &pending)? {
                return Ok((done, Some(why)));
            }
            done += std::mem::take(&mut pending).len();
        }
    }
    if !builder.is_empty() {
        if let Some(why) = replace(repo, lock, builder, &pending)? {
            return Ok((done, Some(why)));
        }
        done += pending.len();
    }
    Ok((done, None))
}

/// Writes `builder`'s pack and indexes it durably, then deletes the packs in `old` it replaces.
/// A full disk is not an error here: it ends the repack (`Some(why)`), with every old pack
/// still in place.
fn replace(repo: &Repository, lock: &LockGuard, builder: PackBuilder, old: &[PackId]) -> Result<Option<String>> {
    let pack = builder.finish(repo.sealer())?;
    match repo.backend().put(&pack_key(&pack.id), &pack.bytes, PutMode::Overwrite) {
        Ok(_) => {}
        Err(e @ Error::NoSpace { .. }) => return Ok(Some(format!("{e}; the remaining packs wait for the next prune"))),
        Err(e) => return Err(e),
    }
    repo.index().add_pack(pack.id, pack.bytes.len() as u64, &pack.entries)?;
    repo.index().persist()?;
    lock.verify()?;
    delete_packs(repo, old)?;
    Ok(None)
}
