//! Copying between repositories whose ids agree: both unencrypted, or twins sharing a master
//! key. Snapshots and WAL records keep their ids and object keys.
//!
//! Unencrypted, blobs are read (verified) and stored through the destination's write session
//! (compressed with its settings), and objects are copied byte for byte. Between twins, each
//! blob is read and verified, then its sealed bytes are stored as they are (a blob binds only
//! its kind and id, not its pack: `docs/format.md` §13.5); snapshot and WAL objects are copied
//! byte for byte. The exception is what a write-only session sealed (envelope suite 2): its
//! session header lives in the source's `sessions/`, so such a blob or object is sealed again
//! with the destination's key rather than copied with a dangling session.

use super::run::{in_source, CopyMode, CopyReport, Transfer};
use crate::backend::PutMode;
use crate::crypto::{inspect_envelope, Kind};
use crate::error::{Error, Result};
use crate::id::{ChunkId, SnapshotId};
use crate::index::MarkSet;
use crate::pack::{BlobKind, EncodedBlob};
use crate::progress::Progress;
use crate::repo::{snapshot_key, Repository, WriteSession};
use crate::snapshot::{NodeContent, Snapshot, WalRecord};

pub(super) struct SameIds<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    session: WriteSession<'a>,
    /// Twins: sealed bytes move as they are.
    sealed: bool,
    /// Blobs handled in this run (so shared trees are walked once).
    seen: MarkSet,
    progress: &'a dyn Progress,
}

impl<'a> SameIds<'a> {
    pub(super) fn new(
        src: &'a Repository,
        dst: &'a Repository,
        mode: CopyMode,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let sealed = mode == CopyMode::SameKey;
        Ok(SameIds { src, dst, session: WriteSession::new(dst), sealed, seen: MarkSet::on_disk()?, progress })
    }

    /// Whether a sealed object can be copied as it is: sealed with the repository key, not by
    /// a write-only session.
    fn movable(&self, bytes: &[u8], kind: Kind) -> bool {
        self.sealed && matches!(inspect_envelope(bytes, kind), Ok((None, _)))
    }

    /// Copies one blob unless the destination has it.
    fn blob(&mut self, id: ChunkId, report: &mut CopyReport) -> Result<()> {
        if !self.seen.insert(&id)? || self.dst.index().get(&id)?.is_some() {
            return Ok(());
        }
        let loc = self.src.locate(&id).map_err(in_source)?;
        let (stored, data) = self.src.read_blob_stored(&id, &loc).map_err(in_source)?;
        let kind = match loc.kind {
            BlobKind::Data => Kind::DataBlob,
            BlobKind::Tree => Kind::Tree,
        };
        if self.movable(&stored, kind) {
            self.session.store_encoded(loc.kind, id, loc.raw_len, EncodedBlob { codec: loc.codec, bytes: stored })?;
        } else {
            self.session.store_many(loc.kind, &[(id, &data)])?;
        }
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
        let src = self.src;
        let load = |id: &ChunkId| src.load_tree(id).map_err(in_source);
        let mut stack = vec![(root, load(&root)?.nodes.into_iter())];
        while let Some((id, nodes)) = stack.last_mut() {
            let Some(node) = nodes.next() else {
                let id = *id;
                stack.pop();
                self.blob(id, report)?;
                continue;
            };
            match node.content {
                NodeContent::Dir { subtree } if !self.seen.contains(&subtree)? => {
                    stack.push((subtree, load(&subtree)?.nodes.into_iter()));
                }
                NodeContent::File { chunks } => {
                    for id in chunks.iter().filter_map(|c| c.stored_id()) {
                        self.blob(id, report)?;
                    }
                }
                NodeContent::LargeFile { pieces } => {
                    for p in pieces {
                        let list = self.src.load_chunk_list(&p.id).map_err(in_source)?;
                        for id in list.chunks.iter().filter_map(|c| c.stored_id()) {
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

impl Transfer for SameIds<'_> {
    fn snapshot(
        &mut self,
        id: SnapshotId,
        snap: &Snapshot,
        _parent: Option<SnapshotId>,
        report: &mut CopyReport,
    ) -> Result<SnapshotId> {
        self.tree(snap.root, report)?;
        self.session.flush()?;
        let key = snapshot_key(&id);
        let bytes = self.src.backend().get(&key).map_err(in_source)?;
        if !self.src.is_encrypted() || self.movable(&bytes, Kind::Snapshot) {
            self.dst.backend().put(&key, &bytes, PutMode::Overwrite)?;
            return Ok(id);
        }
        // Sealed by a write-only session: sealed again; the same id key gives the same id.
        let again = self.dst.save_snapshot(snap)?;
        if again != id {
            return Err(Error::corrupt(format!("snapshot {id}"), "sealed again it has another id"));
        }
        Ok(again)
    }

    fn wal(&mut self, record: &WalRecord, report: &mut CopyReport) -> Result<()> {
        for c in record.chunks.iter().filter_map(|c| c.stored_id()) {
            self.blob(c, report)?;
        }
        self.session.flush()?;
        // Equal id keys give equal object keys on both sides.
        let key = self.src.wal_object_key(&record.stream, &record.name);
        let bytes = self.src.backend().get(&key).map_err(in_source)?;
        let bytes = match !self.src.is_encrypted() || self.movable(&bytes, Kind::WalRecord) {
            true => bytes,
            false => self.dst.encode_wal(&key, record)?,
        };
        self.dst.backend().put(&key, &bytes, PutMode::IfAbsent)?;
        Ok(())
    }
}
