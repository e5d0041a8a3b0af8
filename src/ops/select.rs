//! Which part of a snapshot a restore or listing starts from, and `--include` patterns.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::snapshot::{Node, NodeContent, Snapshot, Tree};

/// Finds the node at absolute `path` (e.g. `/var/lib/data`) in a snapshot. `/` is the root.
pub fn find_node(repo: &Repository, snapshot: &Snapshot, path: &[u8]) -> Result<Option<Node>> {
    let mut tree = repo.load_tree(&snapshot.root)?;
    let mut comps = path.split(|b| *b == b'/').filter(|c| !c.is_empty()).peekable();
    if comps.peek().is_none() {
        return Ok(Some(root_node(snapshot)));
    }
    while let Some(name) = comps.next() {
        let Some(node) = tree.find(name).cloned() else {
            return Ok(None);
        };
        if comps.peek().is_none() {
            return Ok(Some(node));
        }
        match node.subtree() {
            Some(id) => tree = repo.load_tree(&id)?,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// A directory node standing for the snapshot's root tree.
pub fn root_node(snapshot: &Snapshot) -> Node {
    let mut node = Node::new(b"/".to_vec(), NodeContent::Dir { subtree: snapshot.root });
    node.mode = 0o755;
    node.mtime_ns = snapshot.time_ns;
    node.ctime_ns = snapshot.time_ns;
    node
}

/// The node a restore of the whole snapshot starts from: with one path, that path itself
/// (its contents land directly in the target); with several, the root.
pub fn restore_origin(repo: &Repository, snapshot: &Snapshot) -> Result<(Vec<u8>, Node)> {
    if let [only] = snapshot.paths.as_slice() {
        if let Some(node) = find_node(repo, snapshot, only)? {
            return Ok((only.clone(), node));
        }
    }
    Ok((b"/".to_vec(), root_node(snapshot)))
}

/// `--include` patterns. A pattern with a `/` matches the path relative to the restore origin;
/// one without matches any single name. A match on a directory includes all it holds.
pub struct Includes {
    by_path: GlobSet,
    by_name: GlobSet,
    empty: bool,
}

impl Includes {
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let bad = |e: globset::Error| Error::InvalidArgument(format!("bad --include pattern {p:?}: {e}"));
            if p.contains('/') {
                let trimmed = p.trim_start_matches('/').trim_end_matches('/');
                by_path.add(GlobBuilder::new(trimmed).literal_separator(true).build().map_err(bad)?);
            } else {
                by_name.add(Glob::new(p).map_err(bad)?);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidArgument(format!("bad --include: {e}")));
        Ok(Includes { by_path: build(by_path)?, by_name: build(by_name)?, empty: patterns.is_empty() })
    }

    /// Whether everything is included (no patterns).
    pub fn all(&self) -> bool {
        self.empty
    }

    /// Whether the entry at `rel` (relative, `/`-separated) with `name` matches.
    pub fn matches(&self, rel: &str, name: &str) -> bool {
        self.empty || self.by_path.is_match(rel) || self.by_name.is_match(name)
    }
}

/// Loads the tree of a directory node (empty for other kinds).
pub fn children(repo: &Repository, node: &Node) -> Result<Tree> {
    match node.subtree() {
        Some(id) => repo.load_tree(&id),
        None => Ok(Tree::default()),
    }
}
