//! Looking inside snapshots without restoring: `ls` and `snapshot diff`.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ops::select::{children, find_node, root_node};
use crate::repo::Repository;
use crate::snapshot::{Node, NodeContent, Snapshot};

/// One listed entry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LsEntry {
    pub path: String,
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn ls_entry(path: &str, n: &Node) -> LsEntry {
    LsEntry {
        path: path.to_string(),
        kind: n.kind_name(),
        mode: n.mode,
        uid: n.uid,
        gid: n.gid,
        size: n.size,
        mtime: crate::time::format_ns(n.mtime_ns),
        target: match &n.content {
            NodeContent::Symlink { target } => Some(String::from_utf8_lossy(target).into_owned()),
            _ => None,
        },
    }
}

fn join(parent: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if parent.ends_with('/') {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Lists everything at and below absolute `path` (default `/`), depth first, sorted by name.
pub fn ls(repo: &Repository, snapshot: &Snapshot, path: Option<&str>, f: &mut dyn FnMut(LsEntry)) -> Result<()> {
    let path = path.unwrap_or("/");
    let start = if path == "/" {
        root_node(snapshot)
    } else {
        find_node(repo, snapshot, path.as_bytes())?
            .ok_or_else(|| Error::not_found(format!("path {path} in the snapshot")))?
    };
    let clean = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    if path != "/" {
        f(ls_entry(clean, &start));
    }
    walk(repo, &start, clean, f)
}

fn walk(repo: &Repository, node: &Node, path: &str, f: &mut dyn FnMut(LsEntry)) -> Result<()> {
    if !node.is_dir() {
        return Ok(());
    }
    for child in &children(repo, node)?.nodes {
        let p = join(path, &child.name);
        f(ls_entry(&p, child));
        walk(repo, child, &p, f)?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    /// Content differs (file data, symlink target, or the kind of entry).
    Modified,
    /// Only mode, owner or mtime differ.
    Metadata,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DiffEntry {
    pub change: Change,
    pub path: String,
    pub kind: &'static str,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
}

/// Compares two snapshots, calling `f` for each difference in path order. Identical subtrees
/// (same id) are skipped without being read.
pub fn diff(repo: &Repository, a: &Snapshot, b: &Snapshot, f: &mut dyn FnMut(DiffEntry)) -> Result<()> {
    diff_dirs(repo, Some(&root_node(a)), Some(&root_node(b)), "/", f)
}

fn diff_dirs(
    repo: &Repository,
    a: Option<&Node>,
    b: Option<&Node>,
    path: &str,
    f: &mut dyn FnMut(DiffEntry),
) -> Result<()> {
    if a.and_then(Node::subtree).is_some() && a.and_then(Node::subtree) == b.and_then(Node::subtree) {
        return Ok(());
    }
    let ta = a.filter(|n| n.is_dir()).map(|n| children(repo, n)).transpose()?.unwrap_or_default();
    let tb = b.filter(|n| n.is_dir()).map(|n| children(repo, n)).transpose()?.unwrap_or_default();
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let (x, y) = (ta.nodes.get(i), tb.nodes.get(j));
        let order = match (x, y) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (x, y) = match order {
            std::cmp::Ordering::Less => (x, None),
            std::cmp::Ordering::Greater => (None, y),
            std::cmp::Ordering::Equal => (x, y),
        };
        i += usize::from(x.is_some());
        j += usize::from(y.is_some());
        let name = x.or(y).map(|n| n.name.clone()).unwrap_or_default();
        let p = join(path, &name);
        diff_entry(repo, x, y, &p, f)?;
    }
    Ok(())
}

fn diff_entry(
    repo: &Repository,
    x: Option<&Node>,
    y: Option<&Node>,
    p: &str,
    f: &mut dyn FnMut(DiffEntry),
) -> Result<()> {
    let entry = |change, n: &Node| DiffEntry {
        change,
        path: p.to_string(),
        kind: n.kind_name(),
        size_before: x.map(|n| n.size),
        size_after: y.map(|n| n.size),
    };
    match (x, y) {
        (Some(x), None) => {
            f(entry(Change::Removed, x));
            diff_dirs(repo, Some(x), None, p, f)
        }
        (None, Some(y)) => {
            f(entry(Change::Added, y));
            diff_dirs(repo, None, Some(y), p, f)
        }
        (Some(x), Some(y)) => {
            if x.kind_name() != y.kind_name() {
                f(entry(Change::Removed, x));
                f(entry(Change::Added, y));
                return diff_dirs(repo, Some(x), Some(y), p, f);
            }
            let content_same = match (&x.content, &y.content) {
                (NodeContent::File { chunks: a }, NodeContent::File { chunks: b }) => a == b,
                (NodeContent::LargeFile { pieces: a }, NodeContent::LargeFile { pieces: b }) => a == b,
                (NodeContent::File { .. }, NodeContent::LargeFile { .. })
                | (NodeContent::LargeFile { .. }, NodeContent::File { .. }) => false,
                (NodeContent::Symlink { target: a }, NodeContent::Symlink { target: b }) => a == b,
                (NodeContent::CharDevice { rdev: a }, NodeContent::CharDevice { rdev: b })
                | (NodeContent::BlockDevice { rdev: a }, NodeContent::BlockDevice { rdev: b }) => a == b,
                _ => true,
            };
            // A version 1 entry's xattrs are unknown, not empty: not a change.
            let xattrs_same = x.legacy || y.legacy || x.xattrs == y.xattrs;
            let meta_same =
                x.mode == y.mode && x.uid == y.uid && x.gid == y.gid && x.mtime_ns == y.mtime_ns && xattrs_same;
            if !content_same {
                f(entry(Change::Modified, y));
            } else if !meta_same && !x.is_dir() {
                f(entry(Change::Metadata, y));
            }
            if x.is_dir() {
                diff_dirs(repo, Some(x), Some(y), p, f)?;
            }
            Ok(())
        }
        (None, None) => Ok(()),
    }
}
