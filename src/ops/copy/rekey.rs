//! Copying between repositories whose ids differ: different master keys, or one side
//! unencrypted (the migration path). Every blob is opened with the source's key and sealed
//! with the destination's.
//!
//! Chunk ids are keyed, so the same plaintext has another id in the destination. Each source
//! chunk keeps its boundaries and is stored under the destination's id of its plaintext;
//! chunk-list pieces and trees are rewritten bottom-up with the mapped ids, and the snapshot
//! gets the new root (and so a new id). A map from source id to destination id ([`IdMap`], a
//! temporary RocksDB: memory stays flat however large the repository) holds every chunk,
//! piece and tree mapped in this run, so shared subtrees and repeated chunks are read once.
//! A rerun starts with an empty map, but finds its snapshots already copied (see `identity`).

use super::run::{in_source, CopyReport, Transfer};
use crate::backend::PutMode;
use crate::error::{Error, Result};
use crate::id::{ChunkId, SnapshotId};
use crate::index::IdMap;
use crate::pack::BlobKind;
use crate::progress::Progress;
use crate::repo::{Repository, WriteSession};
use crate::snapshot::{ChunkList, ChunkRef, ListPiece, Node, NodeContent, Snapshot, Tree, WalRecord};

pub(super) struct Rekeyer<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    session: WriteSession<'a>,
    /// Source id → destination id of every blob mapped in this run.
    map: IdMap,
    progress: &'a dyn Progress,
}

/// A source tree being rewritten: its entries, mapped up to `next`.
struct Frame {
    src: ChunkId,
    nodes: Vec<Node>,
    next: usize,
    /// Read from a version 1 tree: written as version 1 again, so nothing reads as known that
    /// was unknown (`Node::legacy`).
    v1: bool,
}

impl<'a> Rekeyer<'a> {
    pub(super) fn new(src: &'a Repository, dst: &'a Repository, progress: &'a dyn Progress) -> Result<Self> {
        Ok(Rekeyer { src, dst, session: WriteSession::new(dst), map: IdMap::on_disk()?, progress })
    }

    /// Stores `plain` in the destination under its id there; counts it when it was new.
    fn store(&mut self, kind: BlobKind, plain: &[u8], report: &mut CopyReport) -> Result<ChunkId> {
        let id = self.dst.sealer().id_of(plain);
        let added = self.session.store_many(kind, &[(id, plain)])?;
        if added > 0 {
            report.blobs_copied += 1;
            report.bytes_copied += added;
            self.progress.add_bytes(added);
        }
        Ok(id)
    }

    /// The destination id of source data chunk `id`, copying it if this run has not.
    fn chunk(&mut self, id: ChunkId, report: &mut CopyReport) -> Result<ChunkId> {
        if let Some(mapped) = self.map.get(&id)? {
            return Ok(mapped);
        }
        // Verified against its source id while read.
        let plain = self.src.read_blob(&id).map_err(in_source)?;
        let mapped = self.store(BlobKind::Data, &plain, report)?;
        self.map.insert(&id, &mapped)?;
        Ok(mapped)
    }

    /// `refs` with every stored chunk mapped (zero runs stay as they are).
    fn map_refs(&mut self, refs: &mut [ChunkRef], report: &mut CopyReport) -> Result<()> {
        for r in refs.iter_mut().filter(|r| !r.is_zero_run()) {
            r.id = self.chunk(r.id, report)?;
        }
        Ok(())
    }

    /// The destination id of a large file's list piece, rewritten with mapped chunk ids.
    fn piece(&mut self, piece: &ListPiece, report: &mut CopyReport) -> Result<ChunkId> {
        if let Some(mapped) = self.map.get(&piece.id)? {
            return Ok(mapped);
        }
        let mut list = self.src.load_chunk_list(&piece.id).map_err(in_source)?;
        if let Some(why) = piece.check_list(&list) {
            return Err(in_source(Error::corrupt(format!("chunk list {}", piece.id), why)));
        }
        self.map_refs(&mut list.chunks, report)?;
        let mapped = self.store(BlobKind::Tree, &ChunkList { chunks: list.chunks }.encode()?, report)?;
        self.map.insert(&piece.id, &mapped)?;
        Ok(mapped)
    }

    /// Maps what a file entry names; other entries name no blob (directories are mapped by
    /// [`Rekeyer::tree`]).
    fn map_content(&mut self, content: &mut NodeContent, report: &mut CopyReport) -> Result<()> {
        match content {
            NodeContent::File { chunks } => self.map_refs(chunks, report),
            NodeContent::LargeFile { pieces } => {
                for p in pieces.iter_mut() {
                    p.id = self.piece(p, report)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn frame(&self, id: ChunkId) -> Result<Frame> {
        let tree = self.src.load_tree(&id).map_err(in_source)?;
        let v1 = !tree.nodes.is_empty() && tree.nodes.iter().all(|n| n.legacy);
        Ok(Frame { src: id, nodes: tree.nodes, next: 0, v1 })
    }

    /// Writes a rewritten tree; returns its destination id.
    fn store_tree(&mut self, frame: Frame, report: &mut CopyReport) -> Result<ChunkId> {
        let mut tree = Tree { nodes: frame.nodes };
        let bytes = if frame.v1 { tree.encode_as(1)? } else { tree.encode()? };
        let mapped = self.store(BlobKind::Tree, &bytes, report)?;
        self.map.insert(&frame.src, &mapped)?;
        Ok(mapped)
    }

    /// The destination id of source tree `root`, rewriting it and everything below it that
    /// this run has not mapped yet. Depth first with an explicit stack (no recursion, so no
    /// depth of tree exhausts the stack); a tree is stored after every subtree it names.
    fn tree(&mut self, root: ChunkId, report: &mut CopyReport) -> Result<ChunkId> {
        if let Some(mapped) = self.map.get(&root)? {
            return Ok(mapped);
        }
        let mut stack = vec![self.frame(root)?];
        while let Some(top) = stack.last_mut() {
            let Some(node) = top.nodes.get_mut(top.next) else {
                let done = stack.pop().expect("the loop just looked at it");
                let mapped = self.store_tree(done, report)?;
                if stack.is_empty() {
                    return Ok(mapped);
                }
                continue;
            };
            if let NodeContent::Dir { subtree } = node.content {
                let Some(mapped) = self.map.get(&subtree)? else {
                    let child = self.frame(subtree)?;
                    stack.push(child);
                    continue;
                };
                node.content = NodeContent::Dir { subtree: mapped };
            } else {
                self.map_content(&mut node.content, report)?;
            }
            top.next += 1;
        }
        Err(Error::corrupt(format!("tree {root}"), "the walk ended before its root was written"))
    }
}

impl Transfer for Rekeyer<'_> {
    fn snapshot(
        &mut self,
        _id: SnapshotId,
        snap: &Snapshot,
        parent: Option<SnapshotId>,
        report: &mut CopyReport,
    ) -> Result<SnapshotId> {
        let root = self.tree(snap.root, report)?;
        self.session.flush()?;
        let copy = Snapshot { root, parent, ..snap.clone() };
        self.dst.save_snapshot(&copy)
    }

    fn wal(&mut self, record: &WalRecord, report: &mut CopyReport) -> Result<()> {
        let mut copy = record.clone();
        self.map_refs(&mut copy.chunks, report)?;
        self.session.flush()?;
        let key = self.dst.wal_object_key(&copy.stream, &copy.name);
        self.dst.backend().put(&key, &self.dst.encode_wal(&key, &copy)?, PutMode::IfAbsent)?;
        Ok(())
    }
}
