//! Backing up one regular file: taken from the parent snapshot when unchanged, read from its
//! last chunk on when it is append-only and grew, else read whole (holes as zero runs).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::walk::{Archiver, Found};
use crate::chunker::Cuts;
use crate::error::Result;
use crate::fs::FileMeta;
use crate::id::ChunkId;
use crate::pack::BlobKind;
use crate::repo::{FileFailure, FileList};
use crate::snapshot::{ChunkRef, HardLink, Node, NodeContent, Xattr};

impl Archiver<'_> {
    /// Stores a file that exists only in the snapshot, owned like its directory.
    pub(super) fn store_late_file(&self, name: String, content: &[u8], dir: &FileMeta) -> Result<Node> {
        let items: Vec<(ChunkId, &[u8])> = self
            .repo
            .config()
            .chunker
            .cut_all(content)
            .into_iter()
            .map(|(o, l)| (self.repo.sealer().id_of(&content[o..o + l]), &content[o..o + l]))
            .collect();
        self.session.store_many(BlobKind::Data, &items)?;
        let now = crate::time::now_ns();
        let chunks = items.iter().map(|(id, d)| ChunkRef { id: *id, len: d.len() as u32 }).collect();
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(content.len() as u64, Ordering::Relaxed);
        let mut node = Node::new(name.into_bytes(), self.session.file_content(chunks)?);
        node.mode = 0o600;
        node.uid = dir.uid;
        node.gid = dir.gid;
        node.user = self.owners.user(dir.uid);
        node.group = self.owners.group(dir.gid);
        node.mtime_ns = now;
        node.ctime_ns = now;
        node.size = content.len() as u64;
        Ok(node)
    }

    pub(super) fn archive_file(&self, f: Found<'_>, parent: Option<&Node>) -> Result<Option<Node>> {
        let meta = f.meta;
        // A version 1 parent entry lacks what a version 2 tree records: read the file again.
        let reusable = |p: &&Node| unchanged(p, &meta) && !(self.full_metadata && p.legacy);
        if let Some(prev) = parent.filter(reusable) {
            self.counters.files.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes.fetch_add(meta.size, Ordering::Relaxed);
            self.progress.add_bytes(meta.size);
            self.progress.add_files(1);
            // Content, holes and xattrs are the parent's (an xattr change moves the ctime).
            let fresh = self.node_from(f.name, &meta, prev.content.clone());
            return Ok(Some(Node { xattrs: prev.xattrs.clone(), ..fresh }));
        }
        let opened = f.dir.open_read(&f.name).and_then(|file| crate::fs::xattrs_fd(&file).map(|x| (file, x)));
        let (file, xattrs) = match opened {
            Ok(o) => o,
            Err(e) => {
                self.log.unreadable(&f.path, &e);
                return Ok(None);
            }
        };
        // A second handle to the same open file, to see whether it changed while read.
        let probe = file.try_clone().ok();
        let grown_from = parent.filter(|p| self.appendable(&f.path, p, &meta));
        match self.read_file(&f.path, file, grown_from) {
            Ok((meta, chunks, read)) => {
                self.counters.files.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes.fetch_add(read, Ordering::Relaxed);
                self.progress.add_files(1);
                let content = self.session.finish_list(chunks)?;
                let mut node = self.node_from(f.name, &meta, content);
                node.size = read;
                if read != meta.size || probe.is_some_and(|p| changed_since(&p, &meta)) {
                    self.log.with(|l| l.changed.push(f.path.display().to_string()));
                }
                let xattrs = xattrs.into_iter().map(|(name, value)| Xattr { name, value }).collect();
                Ok(Some(self.with_xattrs(node, xattrs)))
            }
            Err(FileFailure::Source(e)) => {
                self.log.skip(&f.path, e);
                Ok(None)
            }
            Err(FileFailure::Repo(e)) => Err(e),
        }
    }

    /// A file declared append-only that grew in place since the parent snapshot.
    fn appendable(&self, path: &Path, prev: &Node, now: &FileMeta) -> bool {
        let declared = self.append.as_ref().is_some_and(|a| super::paged::matches(a, path));
        declared && prev.is_file() && prev.inode == now.inode && now.size > prev.size && prev.size > 0
    }

    /// Reads and stores a file's data: only the new part when `grown_from` (its parent entry)
    /// is given and the old tail proves unchanged, else all of it. Counted as read only when
    /// it was (a file that fails to read is skipped, not read).
    fn read_file(
        &self,
        path: &Path,
        file: File,
        grown_from: Option<&Node>,
    ) -> Result<(FileMeta, FileList, u64), FileFailure> {
        let on_bytes = |n: u64| {
            self.counters.bytes_read.fetch_add(n, Ordering::Relaxed);
            self.progress.add_bytes(n);
        };
        let strategy = self.opts.read_strategy;
        let cuts = self.paged.cuts_for(path);
        if cuts != Cuts::ContentDefined {
            self.counters.paged.fetch_add(1, Ordering::Relaxed);
        }
        let mut stored = None;
        if let Some(prev) = grown_from {
            let prev_chunks = self.repo.file_chunks(prev).map_err(FileFailure::Repo)?;
            stored = self.session.store_appended(&file, &prev_chunks, prev.size, (strategy, cuts), &on_bytes)?;
            if stored.is_some() {
                self.counters.appended.fetch_add(1, Ordering::Relaxed);
            }
        }
        let stored = match stored {
            Some(s) => s,
            None => {
                self.session.store_opened(file, strategy, FileList::pieced(), self.full_metadata, cuts, &on_bytes)?
            }
        };
        self.counters.files_read.fetch_add(1, Ordering::Relaxed);
        if self.opts.record_reads {
            self.log.with(|l| l.read_paths.push(path.display().to_string()));
        }
        Ok((stored.meta, stored.chunks, stored.bytes))
    }

    /// A node with `meta`'s metadata, owner names and hard-link membership.
    pub(super) fn node_from(&self, name: Vec<u8>, meta: &FileMeta, content: NodeContent) -> Node {
        let mut node = Node::new(name, content);
        node.mode = meta.mode;
        node.uid = meta.uid;
        node.gid = meta.gid;
        node.mtime_ns = meta.mtime_ns;
        node.ctime_ns = meta.ctime_ns;
        node.inode = meta.inode;
        node.size = meta.size;
        node.user = self.owners.user(meta.uid);
        node.group = self.owners.group(meta.gid);
        if node.is_file() && meta.nlink > 1 {
            node.hardlink = Some(HardLink { device: meta.dev, links: u32::try_from(meta.nlink).unwrap_or(u32::MAX) });
        }
        if !self.full_metadata && node.hardlink.is_some() {
            self.counters.metadata_dropped.fetch_add(1, Ordering::Relaxed);
        }
        node
    }

    /// `node` with `xattrs`, counted as not stored in a version 1 repository.
    pub(super) fn with_xattrs(&self, mut node: Node, xattrs: Vec<Xattr>) -> Node {
        if !self.full_metadata && !xattrs.is_empty() && node.hardlink.is_none() {
            self.counters.metadata_dropped.fetch_add(1, Ordering::Relaxed);
        }
        node.xattrs = xattrs;
        node
    }
}

/// Whether open file `file` now has another size or mtime than `before` (taken when it was
/// opened): it was written while being read, so what was stored may mix old and new data.
fn changed_since(file: &File, before: &FileMeta) -> bool {
    match file.metadata() {
        Ok(m) => {
            let now = FileMeta::from_metadata(&m);
            now.size != before.size || now.mtime_ns != before.mtime_ns
        }
        Err(_) => false,
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
