//! The walk below [`PARALLEL_DEPTH`](super::walk::PARALLEL_DEPTH): iterative, with an explicit
//! stack of directories instead of the call stack, so a tree of any depth (a hostile 10 000
//! levels, say) neither overflows a thread's stack nor needs a path that exceeds `PATH_MAX`.
//!
//! Each directory's non-directory entries are still stored in parallel. Only the directory
//! being listed holds a descriptor: on descending, the parent's descriptor is closed, and on
//! coming back it is reopened as `..` of the child and checked to be the same directory
//! (device and inode). A directory moved away meanwhile loses its remaining subdirectories
//! (each named as skipped), never its place in the tree.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rayon::prelude::*;

use super::walk::{Archiver, Found};
use crate::error::Result;
use crate::fs::{DirFd, EntryKind, FileMeta};
use crate::id::ChunkId;
use crate::snapshot::{Node, NodeContent, Tree, Xattr};

/// One directory being walked.
struct Frame {
    /// Open while this is the directory being worked on; `None` while a child is.
    fd: Option<DirFd>,
    path: PathBuf,
    /// This directory's entry in its parent (its subtree set when it is done).
    name: Vec<u8>,
    meta: FileMeta,
    xattrs: Vec<Xattr>,
    /// Its entry in the parent snapshot, for change detection.
    parent: Option<Tree>,
    /// Subdirectories still to walk, in reverse order (popped from the end).
    dirs: Vec<(Vec<u8>, FileMeta)>,
    /// Entries done.
    nodes: Vec<Node>,
}

impl Archiver<'_> {
    /// Stores the tree of directory `top` (found as `f`, opened as `fd`) and everything below.
    pub(super) fn archive_deep(&self, fd: DirFd, f: &Found<'_>, parent: Option<Tree>) -> Result<ChunkId> {
        let mut stack = vec![self.enter(fd, f.path.clone(), f.name.clone(), f.meta, Vec::new(), parent)?];
        loop {
            let top = stack.last_mut().expect("the stack holds the top directory until it returns");
            if let Some((name, meta)) = top.dirs.pop() {
                if let Some(child) = self.descend(top, name, meta)? {
                    top.fd = None; // only the directory being worked on holds a descriptor
                    stack.push(child);
                }
                continue;
            }
            let done = stack.pop().expect("checked above");
            let nodes = match &done.fd {
                Some(fd) => self.add_late(done.nodes, fd, &done.path)?,
                None => done.nodes,
            };
            let subtree = self.store_tree(Tree { nodes })?;
            let Some(parent) = stack.last_mut() else { return Ok(subtree) };
            let node = self.node_from(done.name, &done.meta, NodeContent::Dir { subtree });
            parent.nodes.push(self.with_xattrs(node, done.xattrs));
            self.reopen(parent, done.fd);
        }
    }

    /// Lists directory `fd`, stores its non-directory entries (in parallel) and returns its
    /// frame with the subdirectories still to walk.
    fn enter(
        &self,
        fd: DirFd,
        path: PathBuf,
        name: Vec<u8>,
        meta: FileMeta,
        xattrs: Vec<Xattr>,
        parent: Option<Tree>,
    ) -> Result<Frame> {
        let names = self.list(&fd, &path);
        let (dirs, others): (Vec<Found<'_>>, Vec<Found<'_>>) =
            self.stat_all(&fd, &path, names).into_iter().partition(|f| f.meta.kind == EntryKind::Dir);
        let nodes: Vec<Option<Node>> = others
            .into_par_iter()
            .map(|f| {
                let prev = parent.as_ref().and_then(|t| t.find(&f.name));
                // Not a directory: no recursion happens below this call.
                self.archive_entry(f, prev, 0)
            })
            .collect::<Result<_>>()?;
        let mut dirs: Vec<(Vec<u8>, FileMeta)> = dirs.into_iter().map(|f| (f.name, f.meta)).collect();
        dirs.reverse();
        let nodes = nodes.into_iter().flatten().collect();
        Ok(Frame { fd: Some(fd), path, name, meta, xattrs, parent, dirs, nodes })
    }

    /// Opens subdirectory `name` of `top` and enters it; `None` when it was skipped.
    fn descend(&self, top: &mut Frame, name: Vec<u8>, meta: FileMeta) -> Result<Option<Frame>> {
        let path = top.path.join(std::ffi::OsStr::from_bytes(&name));
        let Some(dir) = top.fd.as_ref() else {
            self.log.skip(&path, "its directory was moved during the snapshot");
            return Ok(None);
        };
        let found = Found { dir, path, name, meta };
        let Some((fd, xattrs)) = self.open_dir(&found) else { return Ok(None) };
        let prev = top.parent.as_ref().and_then(|t| t.find(&found.name)).filter(|n| n.is_dir());
        // A damaged parent tree only costs re-reading.
        let parent_tree = self.parent_subtree(prev).unwrap_or_default();
        let Found { path, name, meta, .. } = found;
        self.enter(fd, path, name, meta, xattrs, parent_tree).map(Some)
    }

    /// Gives `parent` its descriptor back, as `..` of its child `child_fd`, if that is still
    /// the same directory; else its remaining subdirectories are skipped (see `descend`). Also
    /// when none remain: its own parent is reopened from it in turn.
    fn reopen(&self, parent: &mut Frame, child_fd: Option<DirFd>) {
        if parent.fd.is_some() {
            return;
        }
        let Some(child) = child_fd else { return };
        let same = |fd: &DirFd| fd.meta().is_ok_and(|m| m.inode == parent.meta.inode && m.dev == parent.meta.dev);
        parent.fd = child.open_dir(b"..").ok().filter(same);
    }
}
