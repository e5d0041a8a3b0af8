//! The version 1 tree layout, read from old repositories and written into version 1 ones.
//!
//! A version 1 entry is the version 2 [`Node`] without the fields after `content`, and with
//! only the first four [`NodeContent`] variants. It decodes into [`Node`] with those fields
//! empty and `legacy` set.

use serde::{Deserialize, Serialize};

use super::node::{Node, NodeContent};
use super::tree::Tree;
use crate::error::{Error, Result};

#[derive(Serialize, Deserialize)]
pub(super) struct NodeV1 {
    name: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    size: u64,
    content: NodeContent,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TreeV1 {
    nodes: Vec<NodeV1>,
}

/// Whether version 1 could hold `content` (version 2 appended the other variants; a zero run
/// would read as a missing chunk to a version 1 reader).
fn v1_content(content: &NodeContent) -> bool {
    match content {
        NodeContent::File { chunks } => !chunks.iter().any(|c| c.is_zero_run()),
        NodeContent::Dir { .. } | NodeContent::Symlink { .. } | NodeContent::LargeFile { .. } => true,
        _ => false,
    }
}

impl TreeV1 {
    pub(super) fn from_tree(tree: &Tree) -> Result<Self> {
        let nodes = tree
            .nodes
            .iter()
            .map(|n| {
                if !v1_content(&n.content) {
                    return Err(Error::InvalidArgument(format!(
                        "entry {:?} ({}) cannot be stored in a version 1 tree",
                        n.name_lossy(),
                        n.kind_name()
                    )));
                }
                Ok(NodeV1 {
                    name: n.name.clone(),
                    mode: n.mode,
                    uid: n.uid,
                    gid: n.gid,
                    mtime_ns: n.mtime_ns,
                    ctime_ns: n.ctime_ns,
                    inode: n.inode,
                    size: n.size,
                    content: n.content.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(TreeV1 { nodes })
    }

    pub(super) fn into_tree(self, what: &str) -> Result<Tree> {
        let nodes = self
            .nodes
            .into_iter()
            .map(|n| {
                if !v1_content(&n.content) {
                    return Err(Error::corrupt(what, "a version 1 tree holds a version 2 entry"));
                }
                let mut node = Node::new(n.name, n.content);
                node.mode = n.mode;
                node.uid = n.uid;
                node.gid = n.gid;
                node.mtime_ns = n.mtime_ns;
                node.ctime_ns = n.ctime_ns;
                node.inode = n.inode;
                node.size = n.size;
                node.legacy = true;
                Ok(node)
            })
            .collect::<Result<_>>()?;
        Ok(Tree { nodes })
    }
}
