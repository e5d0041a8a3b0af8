//! Looking inside snapshots without restoring: `ls`, `snapshot diff`, `find` (entries matching
//! patterns across snapshots) and `dump` (one file's bytes, each chunk verified before it is
//! handed on, so a pipe never receives bytes the repository did not prove).

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::ops::select::{children, find_node, root_node, Includes};
use crate::repo::Repository;
use crate::snapshot::{Node, NodeContent, Snapshot};

/// One listed entry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LsEntry {
    /// The path as text; bytes that are not UTF-8 become U+FFFD here.
    pub path: String,
    /// The exact path bytes, present only when `path` could not hold them (not UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn ls_entry(path: &[u8], n: &Node) -> LsEntry {
    LsEntry {
        path: String::from_utf8_lossy(path).into_owned(),
        path_bytes: std::str::from_utf8(path).is_err().then(|| path.to_vec()),
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

/// Appends `/name` to a directory's path (`/` itself ends with one already).
fn push_name(path: &mut Vec<u8>, name: &[u8]) {
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    path.extend_from_slice(name);
}

/// Lists everything at and below absolute `path` (default `/`), depth first, sorted by name.
/// Calls `f` for each entry, depth first; an error from `f` (say, a closed stdout) stops the
/// listing and is returned.
pub fn ls(
    repo: &Repository,
    snapshot: &Snapshot,
    path: Option<&str>,
    f: &mut dyn FnMut(LsEntry) -> Result<()>,
) -> Result<()> {
    repo.require_read("list a snapshot's files")?;
    let (path, start) = resolve_path(repo, snapshot, path.unwrap_or("/"))?;
    let path = path.as_str();
    let clean = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    if path != "/" {
        f(ls_entry(clean.as_bytes(), &start))?;
    }
    walk(repo, &start, clean, f)
}

/// The absolute path and node of `path` in a snapshot. A relative path is relative to the
/// snapshot's own path (`ls latest data/svc` in a snapshot of /srv/app lists /srv/app/data/svc),
/// as restore's --include takes it. A path that is not in the snapshot is NotFound.
pub fn resolve_path(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<(String, Node)> {
    let path = match path {
        "/" | "" => return Ok(("/".to_string(), root_node(snapshot))),
        p if p.starts_with('/') => p.to_string(),
        p => {
            let (origin, _) = crate::ops::select::restore_origin(repo, snapshot)?;
            let origin = String::from_utf8_lossy(&origin).trim_end_matches('/').to_string();
            format!("{origin}/{}", p.trim_start_matches("./"))
        }
    };
    let node = find_node(repo, snapshot, path.as_bytes())?.ok_or_else(|| Error::not_found(format!("path {path}")))?;
    Ok((path, node))
}

/// Lists what is below `node` (at `path`) depth first, without recursion: a stack of the
/// entries still to list at each level and one path buffer, so a tree of any depth lists in
/// memory that grows by one level's remaining entries per level.
fn walk(repo: &Repository, node: &Node, path: &str, f: &mut dyn FnMut(LsEntry) -> Result<()>) -> Result<()> {
    if !node.is_dir() {
        return Ok(());
    }
    let mut path = path.as_bytes().to_vec();
    let mut stack = vec![(children(repo, node)?.nodes.into_iter(), path.len())];
    while let Some((entries, len)) = stack.last_mut() {
        let Some(child) = entries.next() else {
            stack.pop();
            continue;
        };
        path.truncate(*len);
        push_name(&mut path, &child.name);
        f(ls_entry(&path, &child))?;
        if child.is_dir() {
            stack.push((children(repo, &child)?.nodes.into_iter(), path.len()));
        }
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
/// (same id) are skipped without being read. Walks without recursion (see [`walk`]): one
/// frame per level, merging the two directories' sorted entries.
pub fn diff(repo: &Repository, a: &Snapshot, b: &Snapshot, f: &mut dyn FnMut(DiffEntry)) -> Result<()> {
    repo.require_read("compare snapshots")?;
    let mut path = b"/".to_vec();
    let mut stack: Vec<DiffFrame> = Vec::new();
    stack.extend(DiffFrame::open(repo, Some(&root_node(a)), Some(&root_node(b)), path.len())?);
    while let Some(top) = stack.last_mut() {
        let Some((x, y)) = top.next_pair() else {
            stack.pop();
            continue;
        };
        path.truncate(top.path_len);
        let name = x.as_ref().or(y.as_ref()).map(|n| n.name.as_slice()).unwrap_or_default();
        push_name(&mut path, name);
        if report(x.as_ref(), y.as_ref(), &String::from_utf8_lossy(&path), f) {
            stack.extend(DiffFrame::open(repo, x.as_ref(), y.as_ref(), path.len())?);
        }
    }
    Ok(())
}

/// One directory compared in both snapshots: the entries of each not yet compared.
struct DiffFrame {
    a: std::iter::Peekable<std::vec::IntoIter<Node>>,
    b: std::iter::Peekable<std::vec::IntoIter<Node>>,
    /// Length of the path buffer at this directory.
    path_len: usize,
}

impl DiffFrame {
    /// The comparison of directories `a` and `b` (either may be absent or not a directory);
    /// `None` when there is nothing to compare (same subtree, or neither is a directory).
    fn open(repo: &Repository, a: Option<&Node>, b: Option<&Node>, path_len: usize) -> Result<Option<Self>> {
        if a.and_then(Node::subtree).is_some() && a.and_then(Node::subtree) == b.and_then(Node::subtree) {
            return Ok(None);
        }
        let (a, b) = (a.filter(|n| n.is_dir()), b.filter(|n| n.is_dir()));
        if a.is_none() && b.is_none() {
            return Ok(None);
        }
        let ta = a.map(|n| children(repo, n)).transpose()?.unwrap_or_default();
        let tb = b.map(|n| children(repo, n)).transpose()?.unwrap_or_default();
        Ok(Some(DiffFrame { a: ta.nodes.into_iter().peekable(), b: tb.nodes.into_iter().peekable(), path_len }))
    }

    /// The next entry by name: from one side, or from both when both have it.
    fn next_pair(&mut self) -> Option<(Option<Node>, Option<Node>)> {
        use std::cmp::Ordering;
        let order = match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => return None,
        };
        Some(match order {
            Ordering::Less => (self.a.next(), None),
            Ordering::Greater => (None, self.b.next()),
            Ordering::Equal => (self.a.next(), self.b.next()),
        })
    }
}

/// Reports how the entry at `p` changed (`x` before, `y` after); returns whether what is
/// below it must be compared too.
fn report(x: Option<&Node>, y: Option<&Node>, p: &str, f: &mut dyn FnMut(DiffEntry)) -> bool {
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
            true
        }
        (None, Some(y)) => {
            f(entry(Change::Added, y));
            true
        }
        (Some(x), Some(y)) => {
            if x.kind_name() != y.kind_name() {
                f(entry(Change::Removed, x));
                f(entry(Change::Added, y));
                return true;
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
            x.is_dir()
        }
        (None, None) => false,
    }
}

/// Chunks read in parallel at a time: enough to hide an object store's latency, few enough
/// (at most 4 MiB of 128 KiB chunks) to keep memory flat.
const BATCH: usize = 32;

/// Hands the content of the regular file at `path` (absolute, or relative to the snapshot's
/// path) to `out` in order, verified piece by piece; returns the bytes handed over. A
/// directory, symlink or special file is an invalid argument naming what it is. An error from
/// `out` (a closed pipe) stops the dump and is returned.
pub fn dump(
    repo: &Repository,
    snapshot: &Snapshot,
    path: &str,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    repo.require_read("read a snapshot's files")?;
    let (path, node) = resolve_path(repo, snapshot, path)?;
    if !matches!(node.content, NodeContent::File { .. } | NodeContent::LargeFile { .. }) {
        return Err(Error::InvalidArgument(format!(
            "{path} is a {} in the snapshot, not a file: `cairn dump` writes one file's content (use `cairn restore --include` for more)",
            node.kind_name()
        )));
    }
    let chunks = repo.file_chunks(&node)?;
    let mut written = 0u64;
    for batch in chunks.chunks(BATCH) {
        let data: Vec<Vec<u8>> = batch
            .par_iter()
            .map(|c| match c.is_zero_run() {
                true => Ok(vec![0; c.len as usize]),
                false => repo.read_blob(&c.id),
            })
            .collect::<Result<_>>()?;
        for d in data {
            out(&d)?;
            written += d.len() as u64;
        }
    }
    if written != node.size {
        return Err(Error::corrupt(
            format!("file {path}"),
            format!("chunks hold {written} bytes, the entry says {}", node.size),
        ));
    }
    Ok(written)
}

/// Patterns as `--include` takes them: without `/` a name anywhere (`*.conf`), with `/` an
/// absolute path (`/etc/**/*.conf`). Bad patterns are invalid arguments naming them.
pub fn find_patterns(patterns: &[String]) -> Result<Includes> {
    Includes::for_origin(patterns, b"/", "find")
}

/// Walks each of `snapshots` in turn and calls `f` with every entry `patterns` match, depth
/// first and sorted within a snapshot. An error from `f` (a closed stdout) stops the search.
pub fn find(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    patterns: &Includes,
    f: &mut dyn FnMut(&SnapshotId, &Snapshot, LsEntry) -> Result<()>,
) -> Result<()> {
    repo.require_read("search snapshots")?;
    for (id, snapshot) in snapshots {
        ls(repo, snapshot, None, &mut |entry| {
            let rel = entry.path.trim_start_matches('/');
            let name = rel.rsplit('/').next().unwrap_or(rel);
            match patterns.matches(rel, name) {
                true => f(id, snapshot, entry),
                false => Ok(()),
            }
        })?;
    }
    Ok(())
}
