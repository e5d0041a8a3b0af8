//! Pass 2: snapshots and trees. Decodes every snapshot and every tree reachable from it,
//! looks up every chunk reference, and attaches to the findings of pass 1 the snapshots, paths
//! and byte ranges they affect.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use super::{Affected, CheckStats, Findings, Severity};
use crate::error::{Error, Result};
use crate::id::{ChunkId, SnapshotId};
use crate::repo::Repository;
use crate::snapshot::{ChunkList, ChunkRef, ListPiece, NodeContent, Snapshot, Tree};

/// Trees and chunk-list pieces already found clean, so what snapshots share is audited once
/// (a sealed segment's pieces, say, in every snapshot after the one that stored it). Cleared
/// when it reaches this many ids, which bounds its memory (a cleared id is audited again).
const CLEAN_MAX: usize = 1 << 20;
/// Chunks already found in the index, so a file kept from one snapshot to the next is looked
/// up once even when its directory or its chunk-list piece changed. Bounded like [`CLEAN_MAX`],
/// lower: chunks outnumber trees, and at 5.5 M chunks a set of 2^20 ids added 52 MiB to the
/// check's peak (108 → 160 MiB) for lookups it rarely saved there.
const INDEXED_MAX: usize = 1 << 18;
/// Directories down to this depth below a snapshot's root are audited in parallel, by
/// recursion (about 1.4 KiB of stack a level); deeper ones by a loop with an explicit stack,
/// so a crafted or merely very deep tree cannot overflow a thread's stack. Real data
/// directories fan out near the top, where the parallelism pays.
const PARALLEL_DEPTH: usize = 32;

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
                    match e {
                        Error::Corrupt { detail, .. } => format!("is corrupt: {detail}"),
                        other => other.to_string(),
                    },
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
    // Every snapshot just listed was published after its packs were durable, so ingesting the
    // packs listed now gives the walk every pack those snapshots need. Without this, a writer
    // that publishes between the audit's index sync and this listing makes its new trees look
    // "in no pack" (2 false reports in 745 checks of the soak, docs/performance.md).
    repo.ingest_unknown_packs()?;
    let pool = crate::fs::decode_pool()?;
    let order: HashMap<String, usize> = snapshots.iter().enumerate().map(|(i, (id, _))| (id.to_hex(), i)).collect();
    let mut walker = Walker {
        repo,
        findings: Mutex::new(findings),
        counters: Counters::default(),
        clean: Mutex::new(HashSet::new()),
        indexed: Mutex::new(HashSet::new()),
        snapshot: String::new(),
        time: String::new(),
    };
    for (id, snap) in &snapshots {
        walker.snapshot = id.to_hex();
        walker.time = crate::time::format_ns_secs(snap.time_ns);
        pool.install(|| walker.tree(snap.root, "/", 0))?;
    }
    let c = &walker.counters;
    stats.trees += c.trees.load(Ordering::Relaxed);
    stats.files += c.files.load(Ordering::Relaxed);
    stats.chunk_refs += c.chunk_refs.load(Ordering::Relaxed);
    // Subtrees are walked in parallel: put what each finding affects back in walk order.
    let findings = walker.findings.into_inner().unwrap_or_else(|p| p.into_inner());
    for f in &mut findings.list {
        f.affects.sort_by(|a, b| {
            let rank = |x: &Affected| order.get(&x.snapshot).copied().unwrap_or(usize::MAX);
            (rank(a), &a.path, a.bytes).cmp(&(rank(b), &b.path, b.bytes))
        });
    }
    Ok(())
}

fn child_path(dir: &str, name: &[u8]) -> String {
    let mut path = dir.to_string();
    push_name(&mut path, name);
    path
}

/// Appends `/name` to a directory's path (`/` itself ends with one already).
fn push_name(path: &mut String, name: &[u8]) {
    if !path.ends_with('/') {
        path.push('/');
    }
    path.push_str(&String::from_utf8_lossy(name));
}

/// What auditing one tree's own entries found.
enum Visit {
    /// Nothing to walk below: the tree was found clean before (`true`), or it is lost (the
    /// finding is recorded).
    Done(bool),
    /// Its subdirectories (id, name) still to audit, and whether its own entries are clean.
    Read { subdirs: Vec<(ChunkId, Vec<u8>)>, clean: bool },
}

/// One level of [`Walker::deep`]'s stack.
struct Frame {
    id: ChunkId,
    /// Length of the path buffer at this directory.
    path_len: usize,
    subdirs: std::vec::IntoIter<(ChunkId, Vec<u8>)>,
    clean: bool,
}

impl Frame {
    fn new(id: ChunkId, path_len: usize, subdirs: Vec<(ChunkId, Vec<u8>)>, clean: bool) -> Self {
        Frame { id, path_len, subdirs: subdirs.into_iter(), clean }
    }
}

/// The id under which a piece is known clean: its blob id with the counts its entry declares.
fn piece_key(p: &ListPiece) -> ChunkId {
    let mut bytes = [0u8; 32 + 4 + 8];
    bytes[..32].copy_from_slice(p.id.as_bytes());
    bytes[32..36].copy_from_slice(&p.chunks.to_le_bytes());
    bytes[36..].copy_from_slice(&p.bytes.to_le_bytes());
    ChunkId::of(&bytes)
}

#[derive(Default)]
struct Counters {
    trees: AtomicU64,
    files: AtomicU64,
    chunk_refs: AtomicU64,
}

/// Walks one snapshot at a time; within it, subdirectories in parallel (on a pool of twice as
/// many threads as cores, so that trees read from a cold disk overlap), each directory's small
/// files looked up in the index with one multi-get. The findings are behind a lock taken once
/// per directory (damage is rare; the lookups and reads happen outside it).
struct Walker<'a> {
    repo: &'a Repository,
    findings: Mutex<&'a mut Findings>,
    counters: Counters,
    /// Trees and pieces found clean; see [`CLEAN_MAX`].
    clean: Mutex<HashSet<ChunkId>>,
    /// Chunks found in the index (kept apart from `clean`: a tree id found as a chunk says
    /// nothing about what is below it); see [`INDEXED_MAX`].
    indexed: Mutex<HashSet<ChunkId>>,
    snapshot: String,
    time: String,
}

impl<'a> Walker<'a> {
    fn affected(&self, path: String, bytes: Option<(u64, u64)>) -> Affected {
        Affected { snapshot: self.snapshot.clone(), time: self.time.clone(), path, bytes }
    }

    fn findings(&self) -> std::sync::MutexGuard<'_, &'a mut Findings> {
        self.findings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attributes damage among a file's `chunks` (starting at byte `offset` of the file), of
    /// which those marked in `found` are in the index; returns whether all are intact.
    fn attribute(
        &self,
        findings: &mut Findings,
        chunks: &[ChunkRef],
        found: &[bool],
        mut offset: u64,
        file: &dyn Fn() -> String,
    ) -> bool {
        self.counters.chunk_refs.fetch_add(chunks.len() as u64, Ordering::Relaxed);
        let mut clean = true;
        for (c, loc) in chunks.iter().zip(found) {
            let range = (offset, offset.saturating_add(u64::from(c.len)));
            offset = range.1;
            let idx = match (findings.damaged_chunks.get(&c.id), loc) {
                (Some(idx), _) => *idx,
                (None, false) => {
                    let idx = findings.add(Severity::Damage, format!("chunk {}", c.id), "is in no pack");
                    findings.damage_chunk(c.id, idx);
                    idx
                }
                (None, true) => continue,
            };
            clean = false;
            findings.list[idx].affects.push(self.affected(file(), Some(range)));
        }
        clean
    }

    /// Loads the piece `p` of a large file's chunk list and checks it holds what its entry
    /// declares, or records why not (a piece that disagrees with its entry is recorded under
    /// `key`, which stands for the piece with those counts).
    fn chunk_list(&self, p: &ListPiece, key: &ChunkId) -> Result<Option<ChunkList>> {
        {
            let findings = self.findings();
            if findings.damaged_chunks.contains_key(&p.id) || findings.damaged_chunks.contains_key(key) {
                return Ok(None);
            }
        }
        let Some(list) = self.load(&p.id, "chunk list", ChunkList::decode)? else {
            return Ok(None);
        };
        if let Some(why) = p.check_list(&list) {
            self.damage_once(key, || (format!("chunk list {}", p.id), format!("is corrupt: {why}")));
            return Ok(None);
        }
        Ok(Some(list))
    }

    /// Loads and decodes the metadata blob `id` (`what`: a tree or a chunk list), or records
    /// why it cannot be loaded, unless that is known already.
    fn load<T>(&self, id: &ChunkId, what: &str, decode: impl Fn(&[u8], &str) -> Result<T>) -> Result<Option<T>> {
        let Some(loc) = self.repo.index().get(id)? else {
            self.damage_once(id, || (format!("{what} {id}"), "is in no pack".to_string()));
            return Ok(None);
        };
        match self.repo.read_blob_at(id, &loc).and_then(|b| decode(&b, what)) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let detail = match e {
                    Error::Corrupt { detail, .. } => detail,
                    other => other.to_string(),
                };
                self.damage_once(id, || (format!("pack {} {what} {id}", loc.pack), detail));
                Ok(None)
            }
        }
    }

    /// Records damage to `id` as the finding `(object, problem)` unless `id` is known damaged.
    fn damage_once(&self, id: &ChunkId, finding: impl FnOnce() -> (String, String)) {
        let mut findings = self.findings();
        if !findings.damaged_chunks.contains_key(id) {
            let (object, problem) = finding();
            let idx = findings.add(Severity::Damage, object, problem);
            findings.damage_chunk(*id, idx);
        }
    }

    /// Audits the tree `id` at `path`, `depth` levels below the snapshot's root; returns
    /// whether everything below is clean. Subdirectories are audited in parallel down to
    /// [`PARALLEL_DEPTH`]; below it, [`Walker::deep`] goes on without recursion.
    fn tree(&self, id: ChunkId, path: &str, depth: usize) -> Result<bool> {
        if depth >= PARALLEL_DEPTH {
            return self.deep(id, path);
        }
        let (subdirs, clean) = match self.visit(id, path)? {
            Visit::Done(clean) => return Ok(clean),
            Visit::Read { subdirs, clean } => (subdirs, clean),
        };
        let subtrees: Vec<(ChunkId, String)> =
            subdirs.into_iter().map(|(sub, name)| (sub, child_path(path, &name))).collect();
        let below =
            subtrees.par_iter().map(|(sub, child)| self.tree(*sub, child, depth + 1)).collect::<Result<Vec<bool>>>()?;
        let clean = clean && below.iter().all(|c| *c);
        if clean {
            self.mark_clean(id);
        }
        Ok(clean)
    }

    /// Audits the tree `root` at `path` and everything below, depth first on this thread,
    /// with an explicit stack: one frame per level holding the subdirectories still to audit
    /// there, and one path buffer. However deep a crafted tree is, this uses no more stack,
    /// and memory grows with the depth by a frame, not by a path per level.
    fn deep(&self, root: ChunkId, path: &str) -> Result<bool> {
        let mut path = path.to_string();
        let mut stack: Vec<Frame> = Vec::new();
        match self.visit(root, &path)? {
            Visit::Done(clean) => return Ok(clean),
            Visit::Read { subdirs, clean } => stack.push(Frame::new(root, path.len(), subdirs, clean)),
        }
        loop {
            let top = stack.last_mut().expect("the loop returns when the stack empties");
            if let Some((sub, name)) = top.subdirs.next() {
                path.truncate(top.path_len);
                push_name(&mut path, &name);
                match self.visit(sub, &path)? {
                    Visit::Done(clean) => top.clean &= clean,
                    Visit::Read { subdirs, clean } => stack.push(Frame::new(sub, path.len(), subdirs, clean)),
                }
                continue;
            }
            let done = stack.pop().expect("top exists");
            if done.clean {
                self.mark_clean(done.id);
            }
            match stack.last_mut() {
                Some(parent) => parent.clean &= done.clean,
                None => return Ok(done.clean),
            }
        }
    }

    /// Audits one tree's own entries (not its subdirectories): loads it, checks each file
    /// entry against itself and its chunks against the index. Returns its subdirectories.
    fn visit(&self, id: ChunkId, path: &str) -> Result<Visit> {
        if self.is_clean(&id) {
            return Ok(Visit::Done(true));
        }
        self.counters.trees.fetch_add(1, Ordering::Relaxed);
        let Some(tree) = self.load(&id, "tree", Tree::decode)? else {
            let mut findings = self.findings();
            let idx = findings.damaged_chunks[&id];
            let a = self.affected(format!("{path} (directory and everything below)"), None);
            findings.list[idx].affects.push(a);
            return Ok(Visit::Done(false));
        };
        let mut clean = self.entries_consistent(id, &tree, path);
        // The small files' chunks, all looked up at once.
        let ids: Vec<ChunkId> = tree
            .nodes
            .iter()
            .filter_map(|n| match &n.content {
                NodeContent::File { chunks } => Some(chunks.iter().map(|c| c.id)),
                _ => None,
            })
            .flatten()
            .collect();
        let found = self.indexed(&ids)?;
        {
            let mut findings = self.findings();
            let mut found = found.as_slice();
            for node in &tree.nodes {
                if let NodeContent::File { chunks } = &node.content {
                    self.counters.files.fetch_add(1, Ordering::Relaxed);
                    let (mine, rest) = found.split_at(chunks.len());
                    found = rest;
                    clean &= self.attribute(&mut findings, chunks, mine, 0, &|| child_path(path, &node.name));
                }
            }
        }
        for node in &tree.nodes {
            if let NodeContent::LargeFile { pieces } = &node.content {
                self.counters.files.fetch_add(1, Ordering::Relaxed);
                clean &= self.large_file(pieces, &child_path(path, &node.name))?;
            }
        }
        let subdirs = tree.nodes.into_iter().filter_map(|n| n.subtree().map(|sub| (sub, n.name))).collect();
        Ok(Visit::Read { subdirs, clean })
    }

    /// Checks every file entry of `tree` (stored as `id`, at `path`) against itself: its
    /// chunks' lengths add up to its size, its pieces' counts are in bounds. Each entry that
    /// disagrees is one finding, naming every snapshot and path that holds it. Returns
    /// whether all agree.
    fn entries_consistent(&self, id: ChunkId, tree: &Tree, path: &str) -> bool {
        let mut clean = true;
        for node in &tree.nodes {
            let Some(why) = node.content_problem() else { continue };
            clean = false;
            let mut findings = self.findings();
            let key = (id, node.name.clone());
            let idx = match findings.bad_entries.get(&key) {
                Some(idx) => *idx,
                None => {
                    let object = format!("tree {id} file {}", node.name_lossy());
                    let idx = findings.add(Severity::Damage, object, format!("is corrupt: {why}"));
                    findings.bad_entries.insert(key, idx);
                    idx
                }
            };
            let a = self.affected(child_path(path, &node.name), None);
            findings.list[idx].affects.push(a);
        }
        clean
    }

    /// Audits the pieces of a large file's chunk list; returns whether all are clean.
    fn large_file(&self, pieces: &[ListPiece], file: &str) -> Result<bool> {
        let mut clean = true;
        let mut offset = 0u64;
        for p in pieces {
            let range = (offset, offset.saturating_add(p.bytes));
            offset = range.1;
            // A piece is clean together with the counts its entry declares: another entry
            // naming the same piece with other counts is audited on its own.
            let key = piece_key(p);
            if self.is_clean(&key) {
                self.counters.chunk_refs.fetch_add(u64::from(p.chunks), Ordering::Relaxed);
                continue;
            }
            match self.chunk_list(p, &key)? {
                Some(list) => {
                    let ids: Vec<ChunkId> = list.chunks.iter().map(|c| c.id).collect();
                    let found = self.indexed(&ids)?;
                    let piece_clean =
                        self.attribute(&mut self.findings(), &list.chunks, &found, range.0, &|| file.to_string());
                    if piece_clean {
                        self.mark_clean(key);
                    }
                    clean &= piece_clean;
                }
                None => {
                    clean = false;
                    let mut findings = self.findings();
                    let idx = findings.damaged_chunks.get(&p.id).or(findings.damaged_chunks.get(&key)).copied();
                    let a = self.affected(file.to_string(), Some(range));
                    if let Some(idx) = idx {
                        findings.list[idx].affects.push(a);
                    }
                }
            }
        }
        Ok(clean)
    }

    /// Which of `ids` are in the index: looked up there unless found before.
    fn indexed(&self, ids: &[ChunkId]) -> Result<Vec<bool>> {
        let lock = || self.indexed.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<bool> = {
            let known = lock();
            // A zero run (a hole) names no blob: nothing to find.
            ids.iter().map(|id| *id == ChunkId::ZERO_RUN || known.contains(id)).collect()
        };
        let unknown: Vec<ChunkId> = ids.iter().zip(&found).filter(|(_, k)| !**k).map(|(id, _)| *id).collect();
        if unknown.is_empty() {
            return Ok(found);
        }
        let looked_up = self.repo.index().get_many(&unknown)?;
        let mut known = lock();
        let mut next = looked_up.iter();
        for (id, f) in ids.iter().zip(found.iter_mut()) {
            if !*f {
                *f = next.next().is_some_and(|loc| loc.is_some());
                if *f {
                    insert_bounded(&mut known, *id, INDEXED_MAX);
                }
            }
        }
        Ok(found)
    }

    fn is_clean(&self, id: &ChunkId) -> bool {
        self.clean.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    fn mark_clean(&self, id: ChunkId) {
        insert_bounded(&mut self.clean.lock().unwrap_or_else(|p| p.into_inner()), id, CLEAN_MAX);
    }
}

/// Adds `id` to `set`, emptying the set first when it holds `max` ids (a forgotten id is only
/// audited again).
fn insert_bounded(set: &mut HashSet<ChunkId>, id: ChunkId, max: usize) {
    if set.len() >= max {
        set.clear();
    }
    set.insert(id);
}
