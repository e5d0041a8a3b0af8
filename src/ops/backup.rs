//! `snapshot create`: walk paths, store what changed, write trees and the snapshot last.
//!
//! Files whose size, mtime, ctime and inode match the parent snapshot's entry are taken from
//! it without being opened. Others are chunked (FastCDC), hashed (BLAKE3) and handed to the
//! write session, which stores only chunks the repository lacks. Entries that vanish or cannot
//! be read are reported and left out; the snapshot is still written (exit code 3 in the CLI).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fs::{stat, EntryKind, FileMeta};
use crate::id::{ChunkId, SnapshotId};
use crate::io::ReadStrategy;
use crate::ops::Skipped;
use crate::pack::BlobKind;
use crate::progress::Progress;
use crate::repo::{FileFailure, FileList, LockKind, Repository, SnapshotSpec, WriteSession};
use crate::snapshot::{ChunkRef, Node, NodeContent, Snapshot, Summary, Tree};

#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    /// Defaults to this machine's host name.
    pub host: Option<String>,
    /// Defaults to the newest snapshot with the same host and paths.
    pub parent: Option<SnapshotSpec>,
    /// Read every file even if it looks unchanged.
    pub force_read: bool,
    pub read_strategy: ReadStrategy,
    /// Record the path of every file whose data was read (for tests and audits).
    pub record_reads: bool,
    /// Entries left out of the snapshot.
    pub excludes: Excludes,
    /// Files (by name, or by absolute path for patterns with a `/`) that are only ever
    /// appended to: when one grew since the parent, only its new part is read, after its last
    /// stored chunk is re-hashed to prove the old content is unchanged. See `docs/design.md`.
    pub append_only: Vec<String>,
    /// Record this time instead of now (importing old backups; tests).
    pub time_ns: Option<i64>,
    /// Take an online base backup of the PostgreSQL cluster at this connection string: the
    /// single path must be its data directory (see `docs/pitr.md`).
    pub postgres: Option<String>,
}

/// What a snapshot leaves out. Paths are absolute and symlink-resolved.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    /// Entries skipped entirely.
    pub paths: Vec<PathBuf>,
    /// Directories kept, but empty.
    pub contents_of: Vec<PathBuf>,
    /// Names skipped wherever they appear, by prefix.
    pub name_prefixes: Vec<String>,
}

impl Excludes {
    fn skips(&self, path: &Path, name: &[u8]) -> bool {
        self.paths.iter().any(|p| p == path)
            || self.name_prefixes.iter().any(|p| name.starts_with(p.as_bytes()))
            || path.parent().is_some_and(|parent| self.contents_of.iter().any(|d| d == parent))
    }
}

/// Files added to a directory of the snapshot once everything in it has been read, such as
/// PostgreSQL's `backup_label`, which exists only after `pg_backup_stop`.
pub struct LateFiles<'a> {
    /// The directory (absolute, symlink-resolved) the files go into.
    pub dir: PathBuf,
    /// Produces (name, content) pairs; called once, after the directory's entries are read.
    pub produce: &'a (dyn Fn() -> Result<Vec<(String, Vec<u8>)>> + Sync),
}

#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub skipped: Vec<Skipped>,
    /// Files that changed size while being read (stored as read).
    pub changed_while_reading: Vec<String>,
    /// With `record_reads`: every file whose data was read.
    pub read_paths: Vec<String>,
    /// Files read only from their last chunk on, as append-only files that grew.
    pub appended_files: u64,
}

pub fn backup(repo: &Repository, opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupReport> {
    match &opts.postgres {
        None => backup_with(repo, opts, None, progress),
        Some(conninfo) => postgres_base_backup(repo, opts, conninfo, progress),
    }
}

/// A snapshot of a running PostgreSQL data directory between `pg_backup_start` and
/// `pg_backup_stop`, leaving out what PostgreSQL documents as excludable and adding the
/// `backup_label` (and `tablespace_map`) that `pg_backup_stop` returns.
fn postgres_base_backup(
    repo: &Repository,
    opts: &BackupOptions,
    conninfo: &str,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let [pgdata] = canonical_paths(&opts.paths)?.try_into().map_err(|_| {
        Error::InvalidArgument("--postgres takes exactly one path: the cluster's data directory".into())
    })?;
    if !crate::pg::is_data_directory(&pgdata) {
        return Err(Error::InvalidArgument(format!("{} is not a PostgreSQL data directory", pgdata.display())));
    }
    let label = format!("cairn {}", crate::time::format_ns(crate::time::now_ns()));
    let mut session = crate::pg::BaseBackup::start(conninfo, &label)?;
    let served = session.data_directory()?;
    if std::fs::canonicalize(&served).ok().as_deref() != Some(pgdata.as_path()) {
        return Err(Error::InvalidArgument(format!(
            "the PostgreSQL server at {conninfo:?} serves {served}, not {}",
            pgdata.display()
        )));
    }
    let mut opts = opts.clone();
    opts.excludes.contents_of.extend(crate::pg::EXCLUDED_CONTENTS.iter().map(|d| pgdata.join(d)));
    opts.excludes.paths.extend(crate::pg::EXCLUDED_FILES.iter().map(|f| pgdata.join(f)));
    opts.excludes.name_prefixes.extend(crate::pg::EXCLUDED_NAME_PREFIXES.iter().map(|p| p.to_string()));
    let session = Mutex::new(Some(session));
    let produce = || -> Result<Vec<(String, Vec<u8>)>> {
        let backup = session.lock().unwrap_or_else(|p| p.into_inner()).take();
        let label = backup.ok_or_else(|| Error::InvalidArgument("base backup already stopped".into()))?.stop()?;
        let mut files = vec![("backup_label".to_string(), label.label)];
        files.extend(label.tablespace_map.map(|m| ("tablespace_map".to_string(), m)));
        Ok(files)
    };
    let late = LateFiles { dir: pgdata, produce: &produce };
    backup_with(repo, &opts, Some(&late), progress)
}

/// [`backup`] with files added late to one directory (see [`LateFiles`]).
pub fn backup_with(
    repo: &Repository,
    opts: &BackupOptions,
    late: Option<&LateFiles<'_>>,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let _lock = repo.lock(LockKind::Shared, "snapshot create")?;
    let started = Instant::now();
    let time_ns = opts.time_ns.unwrap_or_else(crate::time::now_ns);
    let paths = canonical_paths(&opts.paths)?;
    let path_bytes: Vec<Vec<u8>> = paths.iter().map(|p| p.as_os_str().as_bytes().to_vec()).collect();
    let host = opts.host.clone().unwrap_or_else(crate::fs::hostname);
    let parent = match &opts.parent {
        Some(spec) => Some(repo.resolve_snapshot(spec)?),
        None => repo.find_parent(&host, &path_bytes)?,
    };
    let parent_root = match &parent {
        Some((_, snap)) if !opts.force_read => Some(repo.load_tree(&snap.root)?),
        _ => None,
    };
    progress.phase("snapshot", None);
    let session = WriteSession::new(repo);
    let append = match opts.append_only.is_empty() {
        true => None,
        false => Some(crate::ops::select::Includes::new(&opts.append_only)?),
    };
    let archiver = Archiver {
        repo,
        session: &session,
        opts,
        late,
        append,
        progress,
        counters: Counters::default(),
        log: Log::default(),
    };
    let root = crate::fs::io_pool()?.install(|| archiver.synthetic_root(&paths, parent_root.as_ref()))?;
    session.flush()?;
    let stats = session.stats();
    let c = &archiver.counters;
    let archiver_appended = c.appended.load(Ordering::Relaxed);
    let log = archiver.log.into_inner();
    let summary = Summary {
        files: c.files.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        symlinks: c.symlinks.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        files_read: c.files_read.load(Ordering::Relaxed),
        bytes_read: c.bytes_read.load(Ordering::Relaxed),
        bytes_added: stats.bytes_added,
        bytes_stored: stats.bytes_stored,
        chunks_added: stats.chunks_added,
        packs_written: stats.packs_written,
        skipped: log.skipped.len() as u64,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let snapshot = Snapshot {
        time_ns,
        host,
        paths: path_bytes,
        tags: opts.tags.clone(),
        root,
        parent: parent.map(|(id, _)| id),
        summary,
        tool: format!("cairn {}", env!("CARGO_PKG_VERSION")),
    };
    let id = repo.save_snapshot(&snapshot)?;
    progress.finish();
    let mut read_paths = log.read_paths;
    read_paths.sort();
    Ok(BackupReport {
        id,
        snapshot,
        skipped: log.skipped,
        changed_while_reading: log.changed,
        read_paths,
        appended_files: archiver_appended,
    })
}

/// Absolute, symlink-resolved, deduplicated paths; paths inside another given path are dropped.
fn canonical_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::InvalidArgument("no path given to back up".into()));
    }
    let mut out: Vec<PathBuf> = paths
        .iter()
        .map(|p| {
            std::fs::canonicalize(p).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::InvalidArgument(format!("path {} does not exist", p.display())),
                _ => Error::io("cannot access", p, e),
            })
        })
        .collect::<Result<_>>()?;
    out.sort();
    out.dedup();
    let all = out.clone();
    out.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    Ok(out)
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    bytes: AtomicU64,
    files_read: AtomicU64,
    bytes_read: AtomicU64,
    /// Files read only from their last chunk on (append-only and grown).
    appended: AtomicU64,
}

#[derive(Default)]
struct Log(Mutex<LogInner>);

#[derive(Default)]
struct LogInner {
    skipped: Vec<Skipped>,
    changed: Vec<String>,
    read_paths: Vec<String>,
}

impl Log {
    fn with(&self, f: impl FnOnce(&mut LogInner)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
    fn skip(&self, path: &Path, reason: impl std::fmt::Display) {
        self.with(|l| l.skipped.push(Skipped { path: path.display().to_string(), reason: reason.to_string() }));
    }
    fn into_inner(self) -> LogInner {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

struct Archiver<'a> {
    repo: &'a Repository,
    session: &'a WriteSession<'a>,
    opts: &'a BackupOptions,
    late: Option<&'a LateFiles<'a>>,
    /// `append_only` patterns, if any.
    append: Option<crate::ops::select::Includes>,
    progress: &'a dyn Progress,
    counters: Counters,
    log: Log,
}

/// The directories between `/` and the given paths, as a tree of names.
#[derive(Default)]
struct PathTrie {
    children: BTreeMap<Vec<u8>, PathTrie>,
    /// Set when this node is one of the given paths.
    real: Option<PathBuf>,
}

impl Archiver<'_> {
    /// Builds the root tree: each given path under its full name, with the directories above
    /// it carrying their real metadata.
    fn synthetic_root(&self, paths: &[PathBuf], parent_root: Option<&Tree>) -> Result<ChunkId> {
        let mut trie = PathTrie::default();
        for p in paths {
            let mut node = &mut trie;
            for comp in p.components().skip(1) {
                node = node.children.entry(comp.as_os_str().as_bytes().to_vec()).or_default();
            }
            node.real = Some(p.clone());
        }
        self.store_synthetic(&trie, Path::new("/"), parent_root)
    }

    fn store_synthetic(&self, trie: &PathTrie, at: &Path, parent: Option<&Tree>) -> Result<ChunkId> {
        let mut tree = Tree::default();
        for (name, child) in &trie.children {
            let path = at.join(std::ffi::OsStr::from_bytes(name));
            let parent_node = parent.and_then(|t| t.find(name));
            let meta = stat(&path).map_err(|e| Error::io("cannot access", &path, e))?;
            let node = if child.real.is_some() {
                self.archive_entry(&path, name.clone(), meta, parent_node)?
            } else {
                let parent_tree = self.parent_subtree(parent_node)?;
                let subtree = self.store_synthetic(child, &path, parent_tree.as_ref())?;
                // Directories above the given paths keep only mode and owner: their times change
                // with every sibling (think /tmp), which must not make an unchanged snapshot new.
                let stable = FileMeta { mtime_ns: 0, ctime_ns: 0, inode: 0, ..meta };
                Some(node_from(name.clone(), &stable, NodeContent::Dir { subtree }))
            };
            if let Some(node) = node {
                tree.nodes.push(node);
            }
        }
        self.store_tree(tree)
    }

    fn parent_subtree(&self, parent_node: Option<&Node>) -> Result<Option<Tree>> {
        match parent_node.and_then(Node::subtree) {
            Some(id) => self.repo.load_tree(&id).map(Some),
            None => Ok(None),
        }
    }

    fn store_tree(&self, mut tree: Tree) -> Result<ChunkId> {
        let bytes = tree.encode()?;
        self.session.store(BlobKind::Tree, &bytes)
    }

    /// Backs up one entry; `None` when it was skipped (and logged).
    fn archive_entry(&self, path: &Path, name: Vec<u8>, meta: FileMeta, parent: Option<&Node>) -> Result<Option<Node>> {
        match meta.kind {
            EntryKind::Dir => {
                self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                // A damaged parent tree only costs re-reading.
                let parent_tree = self.parent_subtree(parent.filter(|n| n.is_dir())).unwrap_or_default();
                let subtree = self.archive_dir(path, parent_tree.as_ref())?;
                Ok(Some(node_from(name, &meta, NodeContent::Dir { subtree })))
            }
            EntryKind::Symlink => match std::fs::read_link(path) {
                Ok(target) => {
                    self.counters.symlinks.fetch_add(1, Ordering::Relaxed);
                    let target = target.as_os_str().as_bytes().to_vec();
                    Ok(Some(node_from(name, &meta, NodeContent::Symlink { target })))
                }
                Err(e) => {
                    self.log.skip(path, e);
                    Ok(None)
                }
            },
            EntryKind::File => self.archive_file(path, name, meta, parent),
            EntryKind::Other => Ok(None),
        }
    }

    fn archive_dir(&self, path: &Path, parent: Option<&Tree>) -> Result<ChunkId> {
        let mut names = Vec::new();
        match std::fs::read_dir(path) {
            Ok(entries) => {
                for entry in entries {
                    match entry {
                        Ok(e) => names.push(e.file_name()),
                        Err(e) => self.log.skip(path, e),
                    }
                }
            }
            Err(e) => self.log.skip(path, e),
        }
        names.sort();
        names.retain(|n| !self.opts.excludes.skips(&path.join(n), n.as_bytes()));
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|name| {
                let child = path.join(name);
                let meta = match stat(&child) {
                    Ok(m) => m,
                    Err(e) => {
                        self.log.skip(&child, e);
                        return Ok(None);
                    }
                };
                let name = name.as_bytes().to_vec();
                let parent_node = parent.and_then(|t| t.find(&name));
                self.archive_entry(&child, name, meta, parent_node)
            })
            .collect::<Result<_>>()?;
        let mut nodes: Vec<Node> = nodes.into_iter().flatten().collect();
        if let Some(late) = self.late.filter(|l| l.dir == path) {
            let dir_meta = stat(path).map_err(|e| Error::io("cannot access", path, e))?;
            for (name, content) in (late.produce)()? {
                nodes.retain(|n| n.name != name.as_bytes());
                nodes.push(self.store_late_file(name, &content, &dir_meta)?);
            }
        }
        self.store_tree(Tree { nodes })
    }

    /// Stores a file that exists only in the snapshot, owned like its directory.
    fn store_late_file(&self, name: String, content: &[u8], dir: &FileMeta) -> Result<Node> {
        let items: Vec<(ChunkId, &[u8])> = self
            .repo
            .config()
            .chunker
            .cut_all(content)
            .into_iter()
            .map(|(o, l)| (ChunkId::of(&content[o..o + l]), &content[o..o + l]))
            .collect();
        self.session.store_many(BlobKind::Data, &items)?;
        let now = crate::time::now_ns();
        let chunks = items.iter().map(|(id, d)| ChunkRef { id: *id, len: d.len() as u32 }).collect();
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(content.len() as u64, Ordering::Relaxed);
        Ok(Node {
            name: name.into_bytes(),
            mode: 0o600,
            uid: dir.uid,
            gid: dir.gid,
            mtime_ns: now,
            ctime_ns: now,
            inode: 0,
            size: content.len() as u64,
            content: self.session.file_content(chunks)?,
        })
    }

    fn archive_file(&self, path: &Path, name: Vec<u8>, meta: FileMeta, parent: Option<&Node>) -> Result<Option<Node>> {
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        if let Some(prev) = parent.filter(|p| unchanged(p, &meta)) {
            self.counters.bytes.fetch_add(meta.size, Ordering::Relaxed);
            self.progress.add_bytes(meta.size);
            self.progress.add_files(1);
            let mut node = prev.clone();
            node.name = name;
            node.mode = meta.mode;
            node.uid = meta.uid;
            node.gid = meta.gid;
            return Ok(Some(node));
        }
        match self.read_file(path, parent.filter(|p| self.appendable(path, p, &meta))) {
            Ok((meta, chunks, read)) => {
                self.counters.bytes.fetch_add(read, Ordering::Relaxed);
                self.progress.add_files(1);
                let content = self.session.finish_list(chunks)?;
                let mut node = node_from(name, &meta, content);
                node.size = read;
                if read != meta.size {
                    self.log.with(|l| l.changed.push(path.display().to_string()));
                }
                Ok(Some(node))
            }
            Err(FileFailure::Source(e)) => {
                self.log.skip(path, e);
                Ok(None)
            }
            Err(FileFailure::Repo(e)) => Err(e),
        }
    }

    /// A file declared append-only that grew in place since the parent snapshot.
    fn appendable(&self, path: &Path, prev: &Node, now: &FileMeta) -> bool {
        let declared = self.append.as_ref().is_some_and(|a| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            a.matches(path.to_string_lossy().trim_start_matches('/'), &name)
        });
        declared && prev.is_file() && prev.inode == now.inode && now.size > prev.size && prev.size > 0
    }

    /// Reads and stores a file's data: only the new part when `grown_from` (its parent entry)
    /// is given and the old tail proves unchanged, else all of it.
    fn read_file(&self, path: &Path, grown_from: Option<&Node>) -> Result<(FileMeta, FileList, u64), FileFailure> {
        self.counters.files_read.fetch_add(1, Ordering::Relaxed);
        if self.opts.record_reads {
            self.log.with(|l| l.read_paths.push(path.display().to_string()));
        }
        let on_bytes = |n: u64| {
            self.counters.bytes_read.fetch_add(n, Ordering::Relaxed);
            self.progress.add_bytes(n);
        };
        if let Some(prev) = grown_from {
            let prev_chunks = self.repo.file_chunks(prev).map_err(FileFailure::Repo)?;
            let appended =
                self.session.store_appended(path, &prev_chunks, prev.size, self.opts.read_strategy, &on_bytes)?;
            if let Some(stored) = appended {
                self.counters.appended.fetch_add(1, Ordering::Relaxed);
                return Ok((stored.meta, stored.chunks, stored.bytes));
            }
        }
        let stored = self.session.store_file(path, self.opts.read_strategy, FileList::pieced(), &on_bytes)?;
        Ok((stored.meta, stored.chunks, stored.bytes))
    }
}

/// Same size, mtime, ctime and inode as in the parent: the file is not read again.
fn unchanged(prev: &Node, now: &FileMeta) -> bool {
    prev.is_file()
        && prev.size == now.size
        && prev.mtime_ns == now.mtime_ns
        && prev.ctime_ns == now.ctime_ns
        && prev.inode == now.inode
}

fn node_from(name: Vec<u8>, meta: &FileMeta, content: NodeContent) -> Node {
    Node {
        name,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        mtime_ns: meta.mtime_ns,
        ctime_ns: meta.ctime_ns,
        inode: meta.inode,
        size: meta.size,
        content,
    }
}
