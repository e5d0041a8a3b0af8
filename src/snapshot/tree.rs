//! A directory: its entries sorted by name. Stored as a blob of kind `Tree`, so an unchanged
//! directory encodes to the same bytes and deduplicates for free.
//!
//! Version 2 (current) stores [`Node`] as it is; version 1 (`tree_v1.rs`) is still read, and
//! written into version 1 repositories (`docs/format.md`, "Tree record").

use serde::{Deserialize, Serialize};

use super::node::{ChunkRef, Node};
use super::tree_v1;
use crate::codec::{self, RecordKind};
use crate::error::{Error, Result};

pub const TREE_VERSION: u16 = 2;

/// A piece of a large file's chunk list, stored as a blob of kind `Tree`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    pub chunks: Vec<ChunkRef>,
}

/// Unchanged in format version 2; zero-run refs appear only in lists of version 2 trees.
pub const CHUNK_LIST_VERSION: u16 = 1;

impl ChunkList {
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::seal(RecordKind::ChunkList, CHUNK_LIST_VERSION, self)
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        codec::unseal(bytes, RecordKind::ChunkList, CHUNK_LIST_VERSION, what)
    }
}

/// A directory's entries, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Encodes the tree at the current version (entries sorted, so equal directories give
    /// equal bytes).
    pub fn encode(&mut self) -> Result<Vec<u8>> {
        self.encode_as(TREE_VERSION)
    }

    /// Encodes at `version` (1 or 2). Version 1 drops the version 2 fields and fails on what
    /// it cannot hold at all (special files, zero runs): callers leave those out first.
    pub fn encode_as(&mut self, version: u16) -> Result<Vec<u8>> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        match version {
            1 => codec::seal(RecordKind::Tree, 1, &tree_v1::TreeV1::from_tree(self)?),
            _ => codec::seal(RecordKind::Tree, TREE_VERSION, self),
        }
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        let opened = codec::open(bytes, RecordKind::Tree, what)?;
        Self::decode_payload(opened.version, opened.payload, what)
    }

    /// The tree from the payload of a tree record of `version` (what [`Tree::decode`] finds
    /// behind the record's checksum), validated.
    pub fn decode_payload(version: u16, payload: &[u8], what: &str) -> Result<Self> {
        let tree = match version {
            1 => codec::from_bytes::<tree_v1::TreeV1>(payload, what)?.into_tree(what)?,
            TREE_VERSION => codec::from_bytes::<Tree>(payload, what)?,
            found => {
                return Err(Error::UnsupportedVersion {
                    what: what.to_string(),
                    found: u32::from(found),
                    supported: u32::from(TREE_VERSION),
                })
            }
        };
        let sorted = tree.nodes.windows(2).all(|w| w[0].name < w[1].name);
        let names_ok = tree.nodes.iter().all(|n| valid_name(&n.name));
        if !sorted || !names_ok {
            return Err(Error::corrupt(what, "entries unsorted, duplicated or badly named"));
        }
        if let Some(e) = tree.nodes.iter().find_map(|n| n.validate().err()) {
            return Err(Error::corrupt(what, e));
        }
        Ok(tree)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }
}

/// A name a restore may create: no separators, not `.` or `..`, not empty. A hostile tree
/// must not make a restore write outside its target.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;
    use crate::snapshot::{HardLink, NodeContent, Xattr};

    fn file(name: &str) -> Node {
        let mut n =
            Node::new(name.into(), NodeContent::File { chunks: vec![ChunkRef { id: ChunkId::of(b"x"), len: 1 }] });
        n.mode = 0o644;
        n.size = 1;
        n.inode = 9;
        n
    }

    #[test]
    fn v1_tree_decodes_with_empty_v2_fields_marked_legacy() {
        let mut tree = Tree { nodes: vec![file("a"), file("b")] };
        tree.nodes[0].xattrs.push(Xattr { name: b"user.k".to_vec(), value: b"v".to_vec() });
        let back = Tree::decode(&tree.encode_as(1).unwrap(), "t").unwrap();
        assert!(back.nodes.iter().all(|n| n.legacy && n.xattrs.is_empty() && n.hardlink.is_none()));
        assert_eq!(back.nodes[1].inode, 9);
    }

    #[test]
    fn v2_tree_round_trips_every_field() {
        let mut a = file("a");
        a.user = b"root".to_vec();
        a.hardlink = Some(HardLink { device: 3, links: 2 });
        a.xattrs = vec![Xattr { name: b"user.k".to_vec(), value: vec![0, 1] }];
        let mut fifo = Node::new(b"p".to_vec(), NodeContent::Fifo);
        fifo.mode = 0o600;
        let dev = Node::new(b"z".to_vec(), NodeContent::CharDevice { rdev: 0x0103 });
        let mut tree = Tree { nodes: vec![dev, a, fifo] };
        let back = Tree::decode(&tree.encode().unwrap(), "t").unwrap();
        assert_eq!(back, tree);
    }

    #[test]
    fn v1_cannot_hold_special_files_or_zero_runs() {
        let mut tree = Tree { nodes: vec![Node::new(b"p".to_vec(), NodeContent::Fifo)] };
        assert!(tree.encode_as(1).is_err());
        let mut holes = Tree { nodes: vec![file("f")] };
        holes.nodes[0].content = NodeContent::File { chunks: vec![ChunkRef::zero_run(4096)] };
        assert!(holes.encode_as(1).is_err());
    }

    #[test]
    fn unsorted_xattrs_are_corrupt() {
        let mut a = file("a");
        a.xattrs =
            vec![Xattr { name: b"user.z".to_vec(), value: vec![] }, Xattr { name: b"user.a".to_vec(), value: vec![] }];
        let bytes = codec::seal(RecordKind::Tree, TREE_VERSION, &Tree { nodes: vec![a] }).unwrap();
        assert!(matches!(Tree::decode(&bytes, "t"), Err(Error::Corrupt { .. })));
    }
}
