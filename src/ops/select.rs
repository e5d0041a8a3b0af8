//! Which part of a snapshot a restore or listing starts from, and `--include` patterns.

use std::sync::atomic::{AtomicBool, Ordering};

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

/// `--include` / `--exclude` patterns. A pattern with a `/` matches the path relative to the
/// restore origin; one without matches any single name. A match on a directory covers all it
/// holds. An absolute pattern (as `cairn ls` prints paths) is taken relative to the origin.
pub struct Includes {
    by_path: GlobSet,
    by_name: GlobSet,
    /// Which pattern each glob of `by_path` and `by_name` came from.
    path_source: Vec<usize>,
    name_source: Vec<usize>,
    patterns: Vec<String>,
    /// Whether each pattern matched anything.
    hit: Vec<AtomicBool>,
    /// A pattern named the origin itself.
    everything: bool,
}

impl Includes {
    /// Patterns relative to the snapshot's root.
    pub fn new(patterns: &[String]) -> Result<Self> {
        Self::for_origin(patterns, b"/", "--include")
    }

    /// Patterns for a walk that starts at `origin` (an absolute path in the snapshot); `flag`
    /// names the option in errors.
    pub fn for_origin(patterns: &[String], origin: &[u8], flag: &str) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        let (mut path_source, mut name_source) = (Vec::new(), Vec::new());
        let mut everything = false;
        let origin = String::from_utf8_lossy(origin).trim_end_matches('/').to_string();
        for (i, p) in patterns.iter().enumerate() {
            let bad = |e: globset::Error| Error::InvalidArgument(format!("bad {flag} pattern {p:?}: {e}"));
            let relative = match p.strip_prefix('/') {
                Some(_) => match p.trim_end_matches('/').strip_prefix(origin.as_str()) {
                    Some("") => {
                        everything = true;
                        continue;
                    }
                    Some(rest) if rest.starts_with('/') => rest.to_string(),
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "{flag} {p:?} is outside the snapshot's path {}",
                            if origin.is_empty() { "/" } else { &origin }
                        )))
                    }
                },
                None => p.clone(),
            };
            if relative.contains('/') {
                let trimmed = relative.trim_start_matches('/').trim_end_matches('/');
                by_path.add(GlobBuilder::new(trimmed).literal_separator(true).build().map_err(bad)?);
                path_source.push(i);
            } else {
                by_name.add(Glob::new(&relative).map_err(bad)?);
                name_source.push(i);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidArgument(format!("bad {flag}: {e}")));
        Ok(Includes {
            by_path: build(by_path)?,
            by_name: build(by_name)?,
            path_source,
            name_source,
            patterns: patterns.to_vec(),
            hit: patterns.iter().map(|_| AtomicBool::new(false)).collect(),
            everything,
        })
    }

    /// Whether everything is included (no patterns, or one naming the origin).
    pub fn all(&self) -> bool {
        self.patterns.is_empty() || self.everything
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the entry at `rel` (relative, `/`-separated) with `name` matches.
    pub fn matches(&self, rel: &str, name: &str) -> bool {
        if self.all() {
            return true;
        }
        let mut any = false;
        for i in self.by_path.matches(rel) {
            self.hit[self.path_source[i]].store(true, Ordering::Relaxed);
            any = true;
        }
        for i in self.by_name.matches(name) {
            self.hit[self.name_source[i]].store(true, Ordering::Relaxed);
            any = true;
        }
        any
    }

    /// Patterns that matched nothing so far.
    pub fn unmatched(&self) -> Vec<String> {
        if self.everything {
            return Vec::new();
        }
        self.patterns
            .iter()
            .zip(&self.hit)
            .filter(|(_, h)| !h.load(Ordering::Relaxed))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// Loads the tree of a directory node (empty for other kinds).
pub fn children(repo: &Repository, node: &Node) -> Result<Tree> {
    match node.subtree() {
        Some(id) => repo.load_tree(&id),
        None => Ok(Tree::default()),
    }
}
