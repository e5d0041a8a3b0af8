//! `repo copy`: copy snapshots and WAL from one repository to another, sending only the blobs
//! the destination lacks — the daily off-site copy of an hourly local repository.
//!
//! Snapshots and WAL records are copied byte for byte (their ids stay the same); blobs are read
//! from the source (verified) and stored through the destination's write session (compressed
//! with its settings). Each snapshot's blobs are flushed before its object is written, so the
//! destination never holds a snapshot with missing parts.

use serde::Serialize;

use crate::backend::PutMode;
use crate::error::Result;
use crate::id::ChunkId;
use crate::index::MarkSet;
use crate::progress::Progress;
use crate::repo::{snapshot_key, wal_key, LockKind, Repository, WriteSession};
use crate::snapshot::NodeContent;

#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    pub snapshots_copied: u64,
    pub snapshots_present: u64,
    pub wal_copied: u64,
    pub wal_present: u64,
    pub blobs_copied: u64,
    pub bytes_copied: u64,
}

pub fn copy(src: &Repository, dst: &Repository, progress: &dyn Progress) -> Result<CopyReport> {
    src.require_read("copy from this repository")?;
    if src.is_encrypted() || dst.is_encrypted() {
        // Objects are sealed with their repository's keys and copied as they are here.
        return Err(crate::error::Error::InvalidArgument(
            "repo copy to or from an encrypted repository is not built yet (see docs/security.md)".into(),
        ));
    }
    let _src_lock = src.lock_for_reading("repo copy (source)")?;
    let _dst_lock = dst.lock(LockKind::Shared, "repo copy")?;
    let mut report = CopyReport::default();
    let mut copier = Copier { src, dst, session: WriteSession::new(dst), seen: MarkSet::on_disk()?, progress };
    let mut snaps: Vec<_> = src.snapshots()?.into_iter().collect();
    snaps.sort_by_key(|(_, s)| s.as_ref().map(|s| s.time_ns).unwrap_or(0));
    for (id, snap) in snaps {
        let key = snapshot_key(&id);
        if dst.backend().size(&key)?.is_some() {
            report.snapshots_present += 1;
            continue;
        }
        let snap = snap?;
        copier.tree(snap.root, &mut report)?;
        copier.session.flush()?;
        dst.backend().put(&key, &src.backend().get(&key)?, PutMode::Overwrite)?;
        report.snapshots_copied += 1;
    }
    let mut records = Vec::new();
    src.for_each_wal(None, &mut |r| {
        records.push((r.stream, r.name));
        Ok(())
    })?;
    for (stream, name) in records {
        if dst.find_wal(&stream, &name)?.is_some() {
            report.wal_present += 1;
            continue;
        }
        let Some(record) = src.find_wal(&stream, &name)? else { continue };
        for c in &record.chunks {
            copier.blob(c.id, &mut report)?;
        }
        copier.session.flush()?;
        let key = wal_key(&stream, &name);
        dst.backend().put(&key, &src.backend().get(&key)?, PutMode::IfAbsent)?;
        report.wal_copied += 1;
    }
    progress.finish();
    Ok(report)
}

struct Copier<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    session: WriteSession<'a>,
    /// Blobs handled in this run (so shared trees are walked once).
    seen: MarkSet,
    progress: &'a dyn Progress,
}

impl Copier<'_> {
    /// Copies one blob unless the destination has it.
    fn blob(&mut self, id: ChunkId, report: &mut CopyReport) -> Result<()> {
        if !self.seen.insert(&id)? || self.dst.index().get(&id)?.is_some() {
            return Ok(());
        }
        let loc = self.src.locate(&id)?;
        let data = self.src.read_blob_at(&id, &loc)?;
        self.session.store_many(loc.kind, &[(id, &data)])?;
        report.blobs_copied += 1;
        report.bytes_copied += data.len() as u64;
        self.progress.add_bytes(data.len() as u64);
        Ok(())
    }

    /// Copies the tree `root` and everything below it, each tree after what it names (the
    /// commit order). Walks depth first with a stack of the entries still to copy at each
    /// level, not by recursion, so no depth of tree can exhaust the stack.
    fn tree(&mut self, root: ChunkId, report: &mut CopyReport) -> Result<()> {
        // Walked once per run; a tree present in the destination is still walked, since a
        // crash there may have left a tree indexed before everything below it.
        if self.seen.contains(&root)? {
            return Ok(());
        }
        let mut stack = vec![(root, self.src.load_tree(&root)?.nodes.into_iter())];
        while let Some((id, nodes)) = stack.last_mut() {
            let Some(node) = nodes.next() else {
                let id = *id;
                stack.pop();
                self.blob(id, report)?;
                continue;
            };
            match node.content {
                NodeContent::Dir { subtree } if !self.seen.contains(&subtree)? => {
                    stack.push((subtree, self.src.load_tree(&subtree)?.nodes.into_iter()));
                }
                NodeContent::File { chunks } => {
                    for id in chunks.iter().filter_map(|c| c.stored_id()) {
                        self.blob(id, report)?;
                    }
                }
                NodeContent::LargeFile { pieces } => {
                    for p in pieces {
                        for id in self.src.load_chunk_list(&p.id)?.chunks.iter().filter_map(|c| c.stored_id()) {
                            self.blob(id, report)?;
                        }
                        self.blob(p.id, report)?;
                    }
                }
                _ => {} // symlinks and special files reference no blob
            }
        }
        Ok(())
    }
}
