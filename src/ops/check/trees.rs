//! Pass 2: snapshots and trees. Decodes every snapshot and every tree reachable from it,
//! looks up every chunk reference, and attaches to the findings of pass 1 the snapshots, paths
//! and byte ranges they affect.

use std::collections::HashSet;

use super::{Affected, CheckStats, Findings, Severity};
use crate::error::Result;
use crate::id::{ChunkId, SnapshotId};
use crate::repo::Repository;
use crate::snapshot::{NodeContent, Snapshot};

/// Trees and chunk-list pieces already found clean, so what snapshots share is audited once
/// (a sealed segment's pieces, say, in every snapshot after the one that stored it). Cleared
/// when it reaches this many ids, which bounds its memory (a cleared id is audited again).
const CLEAN_MAX: usize = 1 << 20;

pub(super) fn audit(repo: &Repository, findings: &mut Findings, stats: &mut CheckStats) -> Result<()> {
    let mut snapshots: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for (id, snap) in repo.snapshots()? {
        stats.snapshots += 1;
        match snap {
            Ok(s) => snapshots.push((id, s)),
            Err(e) => {
                let idx = findings.add(
                    Severity::Damage,
                    format!("snapshot {id}"),
                    strip(&e.to_string(), &format!("snapshot {id}")),
                );
                findings.list[idx].affects.push(Affected {
                    snapshot: id.to_hex(),
                    time: String::new(),
                    path: String::new(),
                    bytes: None,
                });
            }
        }
    }
    let mut walker =
        Walker { repo, findings, stats, clean: HashSet::new(), snapshot: String::new(), time: String::new() };
    for (id, snap) in &snapshots {
        walker.snapshot = id.to_hex();
        walker.time = crate::time::format_ns_secs(snap.time_ns);
        walker.tree(snap.root, "/")?;
    }
    Ok(())
}

fn strip(msg: &str, what: &str) -> String {
    msg.strip_prefix(&format!("{what} ")).unwrap_or(msg).to_string()
}

struct Walker<'a> {
    repo: &'a Repository,
    findings: &'a mut Findings,
    stats: &'a mut CheckStats,
    /// See [`CLEAN_MAX`].
    clean: HashSet<ChunkId>,
    snapshot: String,
    time: String,
}

impl Walker<'_> {
    fn affected(&self, path: &str, bytes: Option<(u64, u64)>) -> Affected {
        Affected { snapshot: self.snapshot.clone(), time: self.time.clone(), path: path.to_string(), bytes }
    }

    /// Checks a file's chunks (starting at byte `offset` of the file) against the index and
    /// the damage found so far; returns whether all are intact.
    fn chunks(&mut self, chunks: &[crate::snapshot::ChunkRef], mut offset: u64, file: &str) -> Result<bool> {
        self.stats.chunk_refs += chunks.len() as u64;
        let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
        let found = self.repo.index().get_many(&ids)?;
        let mut clean = true;
        for (c, loc) in chunks.iter().zip(found) {
            let range = (offset, offset + u64::from(c.len));
            offset = range.1;
            let idx = match (self.findings.damaged_chunks.get(&c.id), loc) {
                (Some(idx), _) => *idx,
                (None, None) => {
                    let idx = self.findings.add(Severity::Damage, format!("chunk {}", c.id), "is in no pack");
                    self.findings.damage_chunk(c.id, idx);
                    idx
                }
                (None, Some(_)) => continue,
            };
            clean = false;
            let a = self.affected(file, Some(range));
            self.findings.list[idx].affects.push(a);
        }
        Ok(clean)
    }

    /// Loads a piece of a large file's chunk list, or records why it cannot be loaded.
    fn chunk_list(&mut self, id: &ChunkId) -> Result<Option<crate::snapshot::ChunkList>> {
        if self.findings.damaged_chunks.contains_key(id) {
            return Ok(None);
        }
        let Some(loc) = self.repo.index().get(id)? else {
            let idx = self.findings.add(Severity::Damage, format!("chunk list {id}"), "is in no pack");
            self.findings.damage_chunk(*id, idx);
            return Ok(None);
        };
        match self.repo.read_blob_at(id, &loc).and_then(|b| crate::snapshot::ChunkList::decode(&b, "chunk list")) {
            Ok(list) => Ok(Some(list)),
            Err(e) => {
                let msg = e.to_string();
                let detail = msg.split_once("is corrupt: ").map(|(_, d)| d.to_string()).unwrap_or(msg);
                let idx = self.findings.add(Severity::Damage, format!("pack {} chunk list {id}", loc.pack), detail);
                self.findings.damage_chunk(*id, idx);
                Ok(None)
            }
        }
    }

    /// Audits the tree `id` at `path`; returns whether everything below is clean.
    fn tree(&mut self, id: ChunkId, path: &str) -> Result<bool> {
        if self.clean.contains(&id) {
            return Ok(true);
        }
        self.stats.trees += 1;
        let tree = match self.repo.index().get(&id)? {
            None if !self.findings.damaged_chunks.contains_key(&id) => {
                let idx = self.findings.add(Severity::Damage, format!("tree {id}"), "is in no pack");
                self.findings.damage_chunk(id, idx);
                None
            }
            None => None,
            Some(loc) => {
                match self.repo.read_blob_at(&id, &loc).and_then(|b| crate::snapshot::Tree::decode(&b, "tree")) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        if !self.findings.damaged_chunks.contains_key(&id) {
                            let msg = e.to_string();
                            let detail = msg.split_once("is corrupt: ").map(|(_, d)| d.to_string()).unwrap_or(msg);
                            let idx =
                                self.findings.add(Severity::Damage, format!("pack {} tree {id}", loc.pack), detail);
                            self.findings.damage_chunk(id, idx);
                        }
                        None
                    }
                }
            }
        };
        let Some(tree) = tree else {
            let idx = self.findings.damaged_chunks[&id];
            let a = self.affected(&format!("{path} (directory and everything below)"), None);
            self.findings.list[idx].affects.push(a);
            return Ok(false);
        };
        let mut clean = true;
        for node in &tree.nodes {
            let child = if path.ends_with('/') {
                format!("{path}{}", node.name_lossy())
            } else {
                format!("{path}/{}", node.name_lossy())
            };
            match &node.content {
                NodeContent::Dir { subtree } => clean &= self.tree(*subtree, &child)?,
                NodeContent::File { chunks } => {
                    self.stats.files += 1;
                    clean &= self.chunks(chunks, 0, &child)?;
                }
                NodeContent::LargeFile { pieces } => {
                    self.stats.files += 1;
                    let mut offset = 0u64;
                    for p in pieces {
                        let range = (offset, offset + p.bytes);
                        offset = range.1;
                        if self.clean.contains(&p.id) {
                            self.stats.chunk_refs += u64::from(p.chunks);
                            continue;
                        }
                        match self.chunk_list(&p.id)? {
                            Some(list) => {
                                let piece_clean = self.chunks(&list.chunks, range.0, &child)?;
                                if piece_clean {
                                    self.mark_clean(p.id);
                                }
                                clean &= piece_clean;
                            }
                            None => {
                                clean = false;
                                let idx = self.findings.damaged_chunks[&p.id];
                                let a = self.affected(&child, Some(range));
                                self.findings.list[idx].affects.push(a);
                            }
                        }
                    }
                }
                NodeContent::Symlink { .. } => {}
            }
        }
        if clean {
            self.mark_clean(id);
        }
        Ok(clean)
    }

    fn mark_clean(&mut self, id: ChunkId) {
        if self.clean.len() >= CLEAN_MAX {
            self.clean.clear();
        }
        self.clean.insert(id);
    }
}
