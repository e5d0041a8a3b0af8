//! The snapshot walk: every entry named relative to its directory's descriptor (`openat`,
//! `fstatat`, `readlinkat` with no symlink following), directories in parallel on the I/O pool
//! down to [`PARALLEL_DEPTH`] levels below a given path, iteratively below that (`deep.rs`).
//!
//! Descriptors: a directory's descriptor is held while its entries are processed, so the
//! parallel part holds one per directory in progress (at most the pool's threads times
//! [`PARALLEL_DEPTH`], in practice a few dozen); the iterative part holds one at a time.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::{BackupOptions, Counters, LateFiles, Log};
use crate::error::{Error, Result};
use crate::fs::{DirFd, EntryKind, FileMeta, OwnerNames};
use crate::id::ChunkId;
use crate::pack::BlobKind;
use crate::progress::Progress;
use crate::repo::{Repository, WriteSession};
use crate::snapshot::{Node, NodeContent, Tree, Xattr};

/// Directory levels below a given path walked by parallel recursion; deeper directories are
/// walked iteratively (their files still in parallel). Service data directories are shallow;
/// 24 levels of recursion use well under 1 MiB of a pool thread's 2 MiB stack.
pub(super) const PARALLEL_DEPTH: usize = 24;

pub(super) struct Archiver<'a> {
    pub filter: super::exclude::Filter<'a>,
    pub repo: &'a Repository,
    pub session: &'a WriteSession<'a>,
    pub opts: &'a BackupOptions,
    pub late: Option<&'a LateFiles<'a>>,
    /// `append_only` patterns, if any.
    pub append: Option<crate::ops::select::Includes>,
    /// Which files are cut at page boundaries.
    pub paged: super::paged::PagedFiles,
    pub progress: &'a dyn Progress,
    pub counters: Counters,
    pub log: Log,
    pub owners: OwnerNames,
    /// The repository stores version 2 trees (see `Config::stores_full_metadata`).
    pub full_metadata: bool,
}

/// The directories between `/` and the given paths, as a tree of names.
#[derive(Default)]
struct PathTrie {
    children: BTreeMap<Vec<u8>, PathTrie>,
    /// Set when this node is one of the given paths.
    real: Option<PathBuf>,
}

/// A directory entry found in a listing: where it is, its name and `lstat`.
pub(super) struct Found<'p> {
    pub dir: &'p DirFd,
    pub path: PathBuf,
    pub name: Vec<u8>,
    pub meta: FileMeta,
}

impl Archiver<'_> {
    /// Builds the root tree: each given path under its full name, with the directories above
    /// it carrying their real metadata.
    pub fn synthetic_root(&self, paths: &[PathBuf], parent_root: Option<&Tree>) -> Result<ChunkId> {
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
        // The given paths are canonical and short: opening their directory by path is safe.
        let dir = DirFd::open_path(at).map_err(|e| Error::io("cannot open", at, e))?;
        for (name, child) in &trie.children {
            let path = at.join(OsStr::from_bytes(name));
            let parent_node = parent.and_then(|t| t.find(name));
            let meta = dir.stat(name).map_err(|e| Error::io("cannot access", &path, e))?;
            let node = if child.real.is_some() {
                let found = Found { dir: &dir, path, name: name.clone(), meta };
                self.archive_entry(found, parent_node, 0)?
            } else {
                let parent_tree = self.parent_subtree(parent_node)?;
                let subtree = self.store_synthetic(child, &path, parent_tree.as_ref())?;
                // Directories above the given paths keep only mode and owner: their times change
                // with every sibling (think /tmp), which must not make an unchanged snapshot new.
                let stable = FileMeta { mtime_ns: 0, ctime_ns: 0, inode: 0, ..meta };
                Some(self.node_from(name.clone(), &stable, NodeContent::Dir { subtree }))
            };
            tree.nodes.extend(node);
        }
        self.store_tree(tree)
    }

    pub fn parent_subtree(&self, parent_node: Option<&Node>) -> Result<Option<Tree>> {
        match parent_node.and_then(Node::subtree) {
            Some(id) => self.repo.load_tree(&id).map(Some),
            None => Ok(None),
        }
    }

    /// Stores a directory's tree at the repository's tree version.
    pub fn store_tree(&self, mut tree: Tree) -> Result<ChunkId> {
        let bytes = match self.full_metadata {
            true => tree.encode()?,
            false => tree.encode_as(1)?,
        };
        self.session.store(BlobKind::Tree, &bytes)
    }

    /// The listing of directory `dir` (at `path`), sorted, without excluded names.
    pub fn list(&self, dir: &DirFd, path: &Path) -> Vec<Vec<u8>> {
        let mut names = dir.names().unwrap_or_else(|e| {
            self.log.skip(path, e);
            Vec::new()
        });
        let emptied = self.filter.emptied(dir, path);
        names.retain(|n| {
            let child = path.join(OsStr::from_bytes(n));
            let Some(why) = self.filter.why_excluded(&emptied, &child, n) else { return true };
            self.excluded(&child, why);
            false
        });
        names
    }

    /// Counts (and with `list_excluded` names) an entry left out by the exclusion rules.
    fn excluded(&self, path: &Path, why: String) {
        self.counters.excluded.fetch_add(1, Ordering::Relaxed);
        if self.opts.list_excluded {
            self.log.with(|l| l.excluded.push(crate::ops::Skipped { path: path.display().to_string(), reason: why }));
        }
    }

    /// `lstat` of each name; entries that vanished are logged and left out.
    pub fn stat_all<'d>(&self, dir: &'d DirFd, path: &Path, names: Vec<Vec<u8>>) -> Vec<Found<'d>> {
        names
            .into_par_iter()
            .filter_map(|name| {
                let child = path.join(OsStr::from_bytes(&name));
                match dir.stat(&name) {
                    Ok(meta) if meta.kind == EntryKind::File && self.filter.skips_size(meta.size) => {
                        self.excluded(&child, self.filter.why_too_large(meta.size).unwrap_or_default());
                        None
                    }
                    Ok(meta) => Some(Found { dir, path: child, name, meta }),
                    Err(e) => {
                        self.log.unreadable(&child, &e);
                        None
                    }
                }
            })
            .collect()
    }

    /// Backs up one entry; `None` when it was skipped (and logged). `depth` counts directory
    /// levels below the given path the entry is in.
    pub fn archive_entry(&self, f: Found<'_>, parent: Option<&Node>, depth: usize) -> Result<Option<Node>> {
        match f.meta.kind {
            EntryKind::Dir => {
                let Some((fd, xattrs)) = self.open_dir(&f) else { return Ok(None) };
                // A damaged parent tree only costs re-reading.
                let parent_tree = self.parent_subtree(parent.filter(|n| n.is_dir())).unwrap_or_default();
                let subtree = match depth < PARALLEL_DEPTH {
                    true => self.archive_dir(fd, &f.path, parent_tree.as_ref(), depth + 1)?,
                    false => self.archive_deep(fd, &f, parent_tree)?,
                };
                Ok(Some(self.with_xattrs(self.node_from(f.name, &f.meta, NodeContent::Dir { subtree }), xattrs)))
            }
            EntryKind::File => self.archive_file(f, parent),
            _ => Ok(self.archive_other(&f)),
        }
    }

    /// Opens directory `f` and reads its xattrs (counted as a directory); `None` if skipped.
    pub fn open_dir(&self, f: &Found<'_>) -> Option<(DirFd, Vec<Xattr>)> {
        let opened = f.dir.open_dir(&f.name).and_then(|fd| crate::fs::xattrs_fd(&fd).map(|x| (fd, to_xattrs(x))));
        match opened {
            Ok(done) => {
                self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                Some(done)
            }
            Err(e) => {
                self.log.unreadable(&f.path, &e);
                None
            }
        }
    }

    /// Stores the entries of directory `fd` (at `path`) with parallel recursion.
    fn archive_dir(&self, fd: DirFd, path: &Path, parent: Option<&Tree>, depth: usize) -> Result<ChunkId> {
        let names = self.list(&fd, path);
        let found = self.stat_all(&fd, path, names);
        let nodes: Vec<Option<Node>> = found
            .into_par_iter()
            .map(|f| {
                let parent_node = parent.and_then(|t| t.find(&f.name));
                self.archive_entry(f, parent_node, depth)
            })
            .collect::<Result<_>>()?;
        let nodes = self.add_late(nodes.into_iter().flatten().collect(), &fd, path)?;
        self.store_tree(Tree { nodes })
    }

    /// `nodes` plus the late files of the directory at `path`, if it is [`LateFiles::dir`].
    pub fn add_late(&self, mut nodes: Vec<Node>, dir: &DirFd, path: &Path) -> Result<Vec<Node>> {
        if let Some(late) = self.late.filter(|l| l.dir == path) {
            let dir_meta = dir.meta().map_err(|e| Error::io("cannot access", path, e))?;
            for (name, content) in (late.produce)()? {
                nodes.retain(|n| n.name != name.as_bytes());
                nodes.push(self.store_late_file(name, &content, &dir_meta)?);
            }
        }
        Ok(nodes)
    }

    /// A symlink or special file; `None` when skipped (and logged).
    fn archive_other(&self, f: &Found<'_>) -> Option<Node> {
        let content = match f.meta.kind {
            EntryKind::Symlink => match f.dir.read_link(&f.name) {
                Ok(target) => NodeContent::Symlink { target },
                Err(e) => {
                    self.log.unreadable(&f.path, &e);
                    return None;
                }
            },
            EntryKind::Fifo => NodeContent::Fifo,
            EntryKind::Socket => NodeContent::Socket,
            EntryKind::CharDevice => NodeContent::CharDevice { rdev: f.meta.rdev },
            EntryKind::BlockDevice => NodeContent::BlockDevice { rdev: f.meta.rdev },
            _ => {
                self.log.skip(&f.path, "unknown file type: not stored");
                return None;
            }
        };
        if !matches!(content, NodeContent::Symlink { .. }) {
            if !self.full_metadata {
                self.log
                    .skip(&f.path, "a FIFO, socket or device node cannot be stored in a format version 1 repository");
                return None;
            }
            self.counters.specials.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.symlinks.fetch_add(1, Ordering::Relaxed);
        }
        // Without xattr support there is nothing to record; other failures are not worth
        // losing the entry for, but are named.
        let xattrs = f.dir.xattrs(&f.name).unwrap_or_else(|e| {
            self.log.skip(&f.path, format!("extended attributes not stored: {e}"));
            Vec::new()
        });
        Some(self.with_xattrs(self.node_from(f.name.clone(), &f.meta, content), to_xattrs(xattrs)))
    }
}

fn to_xattrs(pairs: crate::fs::Xattrs) -> Vec<Xattr> {
    pairs.into_iter().map(|(name, value)| Xattr { name, value }).collect()
}
